//! The PBX opens TCP connections itself (RFC 3261 §18.1.1): a phone that
//! registered over TCP and then closed its connection is still reached,
//! on a new connection to its contact; a contact that refuses the connect
//! fails the call at once instead of after Timer B (32 s).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::sipp::{CALLER, PCMU_OFFER, config, invite_status};
use common::{Pbx, Phone, quoted_param, status_of};

/// Reads one Content-Length framed message from `s` (bytes of the next
/// one stay in `buf`); None on timeout or close.
fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        // Skip CRLF keep-alives between messages.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let msg: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Some(String::from_utf8_lossy(&msg).into_owned());
            }
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut chunk = [0u8; 8192];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Registers `user` (password `pwUSERsecret`) over a new TCP connection
/// with contact `sip:USER@127.0.0.1:PORT;transport=tcp`, then closes it.
fn register_over_tcp_and_close(pbx: &Pbx, user: &str, contact_port: u16) {
    let mut s = TcpStream::connect(pbx.addr()).unwrap();
    let local = s.local_addr().unwrap();
    let mut buf = Vec::new();
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcpreg{cseq}\r\nFrom: <sip:{user}@pbx.test>;tag=r{cseq}\r\nTo: <sip:{user}@pbx.test>\r\nCall-ID: tcpreg-{user}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{user}@127.0.0.1:{contact_port};transport=tcp>\r\nExpires: 600\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
        )
    };
    s.write_all(register(1, "").as_bytes()).unwrap();
    let challenge = read_message(&mut s, &mut buf, Duration::from_secs(5)).expect("401");
    assert_eq!(status_of(challenge.as_bytes()), Some(401), "{challenge}");
    let line = challenge
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:") && l.contains("algorithm=MD5"))
        .expect("MD5 challenge");
    let (realm, nonce) = (quoted_param(line, "realm"), quoted_param(line, "nonce"));
    let uri = "sip:pbx.test".to_string();
    let alg = sip::auth::Algorithm::Md5;
    let creds = sip::auth::Credentials {
        username: user.into(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: uri.clone(),
        ..Default::default()
    };
    let ha1 = sip::auth::ha1(alg, user, &realm, &format!("pw{user}secret"));
    let response = sip::auth::response(alg, &ha1, &creds, "REGISTER");
    let auth = format!(
        "Authorization: Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5\r\n"
    );
    s.write_all(register(2, &auth).as_bytes()).unwrap();
    let ok = read_message(&mut s, &mut buf, Duration::from_secs(5)).expect("200");
    assert_eq!(status_of(ok.as_bytes()), Some(200), "{ok}");
    drop(s);
    // Let the PBX see the close, so no connection to reuse remains.
    std::thread::sleep(Duration::from_millis(300));
}

/// A final response to `request` with `status`, copying what identifies
/// the transaction.
fn answer(request: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.lines() {
        let name = line.split(':').next().unwrap_or_default();
        if ["Via", "From", "Call-ID", "CSeq"].contains(&name) {
            out.push_str(&format!("{line}\r\n"));
        } else if name == "To" {
            out.push_str(&format!("{line};tag=callee1\r\n"));
        }
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out
}

/// Accepts one connection on `listener` within `within`.
fn accept(listener: &TcpListener, within: Duration) -> Option<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok((s, peer)) = listener.accept() {
            s.set_nonblocking(false).unwrap();
            return Some((s, peer));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn call_opens_new_tcp_connection_to_contact() {
    let pbx = Pbx::start(&config(""), false);
    let phone_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = phone_listener.local_addr().unwrap().port();
    register_over_tcp_and_close(&pbx, "2002", port);

    // The callee: accepts the PBX's connection, reads the INVITE, answers
    // 486 on the same connection and expects the ACK there too.
    let callee = std::thread::spawn(move || {
        let (mut s, peer) = accept(&phone_listener, Duration::from_secs(10)).expect("no connect");
        let mut buf = Vec::new();
        let invite = read_message(&mut s, &mut buf, Duration::from_secs(5)).expect("no INVITE");
        s.write_all(answer(&invite, "486 Busy Here").as_bytes())
            .unwrap();
        let ack = read_message(&mut s, &mut buf, Duration::from_secs(5)).unwrap_or_default();
        (peer, invite, ack)
    });
    let mut caller = Phone::new("127.0.0.1", CALLER, "pbx.test");
    let status = invite_status(&pbx, &mut caller, "2002", PCMU_OFFER, "");
    let (peer, invite, ack) = callee.join().unwrap();
    assert_eq!(status, 486, "log:\n{}", pbx.log());
    assert_eq!(peer.ip(), pbx.addr().ip());
    assert!(invite.starts_with("INVITE sip:2002@127.0.0.1:"), "{invite}");
    assert!(invite.contains("SIP/2.0/TCP"), "{invite}");
    assert!(
        ack.starts_with("ACK "),
        "ACK not on the new connection: {ack:?}"
    );
}

#[test]
fn refused_tcp_contact_fails_the_call_promptly() {
    let pbx = Pbx::start(&config(""), false);
    // A port nobody listens on: the connect is refused at once.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    register_over_tcp_and_close(&pbx, "2003", port);
    let mut caller = Phone::new("127.0.0.1", CALLER, "pbx.test");
    let started = Instant::now();
    let status = invite_status(&pbx, &mut caller, "2003", PCMU_OFFER, "");
    let took = started.elapsed();
    assert_eq!(status, 480, "log:\n{}", pbx.log());
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(
        pbx.wait_log("TCP connect failed", Duration::from_secs(2)),
        "{}",
        pbx.log()
    );
}
