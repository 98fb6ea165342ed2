//! RFC 4475 torture messages sent to the running server over UDP: every
//! file gets the answer the RFC asks of a UAS/registrar, or none where the
//! RFC says to drop it. The parser-level table (field values, 415/406 for
//! INVITE bodies) is in crates/sip/tests/rfc4475.rs. Here a valid INVITE
//! gets 407 (callers must authenticate), one for a dialog the server does
//! not know (a To tag) gets 481, and the body checks give 415 and 406.
//!
//! Several files reuse the same Via branch and sent-by; a server must treat
//! such a request as a retransmission of the earlier one (RFC 3261
//! §17.2.3), so each file's branch is made unique before sending.

mod common;

use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::Duration;

use common::{Pbx, repo_root, status_of};

/// File → expected status (None: no answer at all).
const EXPECTED: &[(&str, Option<u16>)] = &[
    ("badaspec", Some(400)),
    ("badbranch", Some(200)),
    ("baddate", Some(400)),
    ("baddn", Some(400)),
    ("badinv01", Some(400)),
    ("badvers", Some(505)),
    ("bcast", None),
    ("bext01", Some(420)),
    ("bigcode", None),
    ("clerr", Some(400)),
    ("cparam01", Some(401)),
    ("cparam02", Some(401)),
    ("dblreq", Some(401)),
    ("esc01", Some(407)),
    ("esc02", Some(501)),
    ("escnull", Some(401)),
    ("escruri", Some(400)),
    ("insuf", Some(400)),
    ("intmeth", Some(501)),
    ("inv2543", Some(407)),
    ("invut", Some(415)),
    ("longreq", Some(407)),
    ("ltgtruri", Some(400)),
    ("lwsdisp", Some(200)),
    ("lwsruri", Some(400)),
    ("lwsstart", Some(400)),
    ("mcl01", Some(400)),
    ("mismatch01", Some(400)),
    ("mismatch02", Some(400)),
    ("mpart01", Some(481)),
    ("multi01", Some(400)),
    ("ncl", Some(400)),
    ("noreason", None),
    ("novelsc", Some(416)),
    ("quotbal", Some(400)),
    ("regaut01", Some(401)),
    ("regbadct", Some(400)),
    ("regescrt", Some(401)),
    ("scalar02", Some(400)),
    ("scalarlg", None),
    ("sdp01", Some(406)),
    ("semiuri", Some(200)),
    ("transports", Some(200)),
    ("trws", Some(400)),
    ("unkscm", Some(416)),
    ("unksm2", Some(400)),
    ("unreason", None),
    ("wsinv", Some(481)),
    ("zeromf", Some(200)),
];

fn vectors() -> PathBuf {
    let dir = repo_root().join("../shared/conformance/rfc4475");
    assert!(
        dir.is_dir(),
        "RFC 4475 vectors not found at {}",
        dir.display()
    );
    dir
}

/// Appends `suffix` to the first `branch=` value (bytes, since some files
/// are not UTF-8).
fn unique_branch(data: &[u8], suffix: &str) -> Vec<u8> {
    let needle = b"branch=";
    let Some(at) = data.windows(needle.len()).position(|w| w == needle) else {
        return data.to_vec();
    };
    let mut end = at + needle.len();
    while end < data.len() && !matches!(data[end], b';' | b',' | b'\r' | b'\n' | b' ') {
        end += 1;
    }
    let mut out = data[..end].to_vec();
    out.extend_from_slice(suffix.as_bytes());
    out.extend_from_slice(&data[end..]);
    out
}

#[test]
fn every_torture_message_gets_the_rfc_reaction_over_udp() {
    let pbx = Pbx::start("", false);
    let dir = vectors();
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(
        files,
        EXPECTED.len(),
        "the table must cover every file in {}",
        dir.display()
    );
    let mut wrong = Vec::new();
    for (name, expected) in EXPECTED {
        let data = std::fs::read(dir.join(format!("{name}.dat"))).unwrap();
        let data = unique_branch(&data, &format!("-{name}"));
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Wait long for an expected answer, a little for unexpected extras.
        let first_wait = if expected.is_some() { 2000 } else { 300 };
        sock.set_read_timeout(Some(Duration::from_millis(first_wait)))
            .unwrap();
        sock.send_to(&data, pbx.addr()).unwrap();
        let mut answers = Vec::new();
        let mut buf = [0u8; 65535];
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            answers.push(status_of(&buf[..n]));
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
        }
        let want: Vec<Option<u16>> = expected.iter().map(|s| Some(*s)).collect();
        if answers != want {
            wrong.push(format!("{name}: expected {want:?}, got {answers:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), pbx.log());
    // The server is still healthy after all of it.
    assert_eq!(
        common::options_status(pbx.addr(), Duration::from_secs(2)),
        Some(200)
    );
}
