//! Calls through the PBX between SIPp peers: the callee is a SIPp UAS
//! registered as an extension, the caller a SIPp UAC that authenticates
//! its INVITE (407). Scenarios: answer (caller and callee hang up), busy,
//! cancel, no answer (the PBX's ring timer), hold/resume re-INVITEs, and
//! bad input (unknown codec, broken SDP, unknown number, loop, unregistered
//! callee). Each scenario is in tests/sipp (see its README).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Pbx, free_port, repo_root, require_sipp};

const CALLER: &str = "2001";
const CALLEE: &str = "2002";

/// The caller 2001 and callees 2002..=2006 (one per scenario pair, since a
/// callee's REGISTER 200 lists all its contacts and the scenario checks the
/// first).
fn config(extra: &str) -> String {
    let mut c = format!("realm = \"pbx.test\"\n{extra}\n");
    for n in 2001..=2006 {
        c.push_str(&format!(
            "[[extensions]]\nnumber = \"{n}\"\npassword = \"pw{n}secret\"\n"
        ));
    }
    c
}

fn scenario(name: &str) -> PathBuf {
    repo_root().join("tests/sipp").join(name)
}

fn write_csv(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("SEQUENTIAL\n{body}\n")).unwrap();
    path
}

fn explain(what: &str, out: &Output, pbx: &Pbx) -> String {
    format!(
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}\nPBX log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        pbx.log()
    )
}

/// Registers `callee` with a Contact at `uas_port`.
fn register_callee(pbx: &Pbx, callee: &str, uas_port: u16) {
    let csv = write_csv(
        &pbx.dir,
        &format!("callee-{callee}.csv"),
        &format!("{callee};[authentication username={callee} password=pw{callee}secret]"),
    );
    let out = Command::new("timeout")
        .args(["30", "sipp", &format!("127.0.0.1:{}", pbx.port)])
        .arg("-sf")
        .arg(scenario("register_once.xml"))
        .arg("-inf")
        .arg(&csv)
        .args(["-key", "domain", "127.0.0.1", "-key", "uas_port"])
        .arg(uas_port.to_string())
        .args(["-key", "expires", "3600", "-i", "127.0.0.1", "-p"])
        .arg(free_port().to_string())
        .args(["-m", "1", "-nostdin", "-timeout", "10s", "-timeout_error"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", explain("register", &out, pbx));
}

/// Starts a SIPp UAS scenario on `port` for `calls` calls.
fn uas(pbx: &Pbx, name: &str, port: u16, calls: u32, extra: &[&str]) -> Child {
    Command::new("timeout")
        .args(["200", "sipp", "-sf"])
        .arg(scenario(name))
        .args(["-i", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-m", &calls.to_string(), "-nostdin"])
        .args(["-timeout", "45s", "-timeout_error", "-recv_timeout", "40s"])
        .args(extra)
        .current_dir(&pbx.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs a SIPp UAC scenario calling `dialled` through the PBX.
fn uac(pbx: &Pbx, name: &str, dialled: &str, calls: u32, extra: &[&str]) -> Output {
    let csv = write_csv(
        &pbx.dir,
        &format!("callers-{name}.csv"),
        &format!("{CALLER};[authentication username={CALLER} password=pw{CALLER}secret];{dialled}"),
    );
    Command::new("timeout")
        .args(["200", "sipp", &format!("127.0.0.1:{}", pbx.port)])
        .arg("-sf")
        .arg(scenario(name))
        .arg("-inf")
        .arg(&csv)
        .args(["-key", "domain", "127.0.0.1", "-i", "127.0.0.1", "-p"])
        .arg(free_port().to_string())
        .args(["-m", &calls.to_string(), "-r", "10", "-nostdin"])
        .args(["-timeout", "40s", "-timeout_error", "-recv_timeout", "30s"])
        .args(extra)
        .current_dir(&pbx.dir)
        .output()
        .unwrap()
}

/// Runs a caller/callee pair and checks both passed.
fn pair(
    pbx: &Pbx,
    callee: &str,
    (uac_sf, uas_sf): (&str, &str),
    calls: u32,
    uac_extra: &[&str],
    uas_extra: &[&str],
) {
    let port = free_port();
    register_callee(pbx, callee, port);
    let callee_sipp = uas(pbx, uas_sf, port, calls, uas_extra);
    std::thread::sleep(Duration::from_millis(200));
    let caller = uac(pbx, uac_sf, callee, calls, uac_extra);
    let callee = callee_sipp;
    let callee = callee.wait_with_output().unwrap();
    assert!(caller.status.success(), "{}", explain(uac_sf, &caller, pbx));
    assert!(callee.status.success(), "{}", explain(uas_sf, &callee, pbx));
}

/// The CDR listing once `legs` legs with `disposition` are there.
fn wait_cdr(pbx: &Pbx, disposition: &str, legs: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = String::from_utf8_lossy(&pbx.cli(&["cdr", "list", "--limit", "500"]).stdout)
            .into_owned();
        if out.matches(disposition).count() >= legs || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn answered_calls_both_directions_of_hangup_udp_and_tcp() {
    require_sipp();
    let pbx = Pbx::start(&config(""), false);
    let calls = ("call_uac.xml", "call_uas.xml");
    pair(&pbx, "2002", calls, 5, &["-d", "500"], &[]);
    // The caller over TCP, the callee over UDP (the PBX does not open
    // TCP connections to phones yet).
    pair(&pbx, "2003", calls, 3, &["-d", "500", "-t", "t1"], &[]);
    let callee_hangs_up = ("call_uac_recv_bye.xml", "call_uas_bye.xml");
    pair(&pbx, "2004", callee_hangs_up, 3, &[], &["-d", "500"]);
    let cdr = wait_cdr(&pbx, "ANSWERED", 22);
    assert_eq!(cdr.matches("ANSWERED").count(), 22, "{cdr}");
    assert!(
        cdr.contains("caller hung up") && cdr.contains("callee hung up"),
        "{cdr}"
    );
}

#[test]
fn busy_cancel_and_no_answer() {
    require_sipp();
    let pbx = Pbx::start(&config("[calls]\nno_answer_timeout_s = 2\n"), false);
    pair(&pbx, "2002", ("busy_uac.xml", "busy_uas.xml"), 2, &[], &[]);
    pair(
        &pbx,
        "2003",
        ("cancel_uac.xml", "ring_uas.xml"),
        2,
        &[],
        &[],
    );
    pair(
        &pbx,
        "2004",
        ("noanswer_uac.xml", "ring_uas.xml"),
        1,
        &[],
        &[],
    );
    let cdr = wait_cdr(&pbx, "NO ANSWER", 2);
    assert_eq!(cdr.matches("BUSY").count(), 4, "{cdr}");
    assert_eq!(cdr.matches("CANCELLED").count(), 4, "{cdr}");
    assert_eq!(cdr.matches("NO ANSWER").count(), 2, "{cdr}");
}

#[test]
fn hold_and_resume_are_relayed() {
    require_sipp();
    let pbx = Pbx::start(&config(""), false);
    pair(&pbx, "2002", ("hold_uac.xml", "hold_uas.xml"), 1, &[], &[]);
}

/// Sends one raw INVITE (authenticated by `phone`'s digest) and returns the
/// final status.
fn raw_invite(pbx: &Pbx, to: &str, body: &str, extra_headers: &str) -> u16 {
    let mut phone = common::Phone::new("127.0.0.1", CALLER, "127.0.0.1");
    phone
        .invite_status(
            &format!("pw{CALLER}secret"),
            to,
            body,
            extra_headers,
            pbx.addr(),
        )
        .unwrap_or(0)
}

#[test]
fn bad_input_gets_the_right_answer_and_leaks_nothing() {
    let pbx = Pbx::start(&config("[media]\nrtp_ports = \"41000-41099\"\n"), false);
    let sdp = |codecs: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 30000 RTP/AVP {codecs}\r\na=rtpmap:98 FOO/8000\r\n"
        )
    };
    // Unregistered callee, unknown number.
    assert_eq!(raw_invite(&pbx, CALLEE, &sdp("0"), ""), 480);
    assert_eq!(raw_invite(&pbx, "9999", &sdp("0"), ""), 404);
    // A registered callee, but no codec we know, or SDP that is not SDP.
    let port = free_port();
    register_callee(&pbx, CALLEE, port);
    assert_eq!(raw_invite(&pbx, CALLEE, &sdp("98"), ""), 488);
    assert_eq!(
        raw_invite(&pbx, CALLEE, "v=0\r\nnot sdp at all\r\n", ""),
        400
    );
    // Max-Forwards exhausted.
    assert_eq!(
        raw_invite(&pbx, CALLEE, &sdp("0"), "Max-Forwards: 0\r\n"),
        483
    );
    // The callee's contact does not answer: 480 after Timer B; too slow
    // for a test, so that path is covered by the call engine's unit tests.
    let log = pbx.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// 10,000 short calls: every RTP port pair is back in the pool afterwards
/// and no call is left behind (checked in the shutdown summary).
#[test]
fn ten_thousand_calls_leak_no_ports() {
    require_sipp();
    let mut pbx = Pbx::start(
        &config("[media]\nrtp_ports = \"42000-42999\"\n[log]\nlevel = \"info\"\n"),
        false,
    );
    let calls = 10_000;
    pair(
        &pbx,
        "2002",
        ("call_uac.xml", "call_uas.xml"),
        calls,
        &["-d", "0", "-r", "250", "-l", "200", "-timeout", "180s"],
        &["-timeout", "180s"],
    );
    let status = pbx.terminate(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{:?}", status);
    let log = pbx.log();
    let summary = log
        .lines()
        .find(|l| l.contains("calls at shutdown"))
        .unwrap_or_else(|| panic!("no shutdown summary:\n{log}"));
    assert!(
        summary.contains("calls=0")
            && summary.contains("relays=0")
            && summary.contains("ports_free=500"),
        "{summary}"
    );
    let ended = log.matches("call ended").count();
    assert_eq!(ended, calls as usize, "calls ended");
}
