//! Calls through the PBX between SIPp peers: the callee is a SIPp UAS
//! registered as an extension, the caller a SIPp UAC that authenticates
//! its INVITE (407). Scenarios: answer (caller and callee hang up), busy,
//! cancel, no answer (the PBX's ring timer), hold/resume re-INVITEs, and
//! bad input (unknown codec, broken SDP, unknown number, loop, unregistered
//! callee). Each scenario is in tests/sipp (see its README).

mod common;

use std::time::Duration;

use common::sipp::{
    CALLER, PCMU_OFFER, config, config_with_limit, invite_status, pair, passed, register_callee,
    uac_spawn, uas, wait_cdr,
};
use common::{Pbx, free_port, require_sipp};

const CALLEE: &str = "2002";

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

/// Sends one raw INVITE from the SIPp caller's extension (authenticated
/// with its digest) and returns the final status.
fn raw_invite(pbx: &Pbx, to: &str, body: &str, extra_headers: &str) -> u16 {
    invite_from(pbx, CALLER, to, body, extra_headers)
}

/// Sends one raw INVITE from extension `from` and returns the final status.
fn invite_from(pbx: &Pbx, from: &str, to: &str, body: &str, extra_headers: &str) -> u16 {
    let mut phone = common::Phone::new("127.0.0.1", from, "127.0.0.1");
    invite_status(pbx, &mut phone, to, body, extra_headers)
}

/// `max_calls = 1`: while 2001 talks to 2002, 2001 cannot place another
/// call (403) and 2002 is busy for others (486); once the call ends both
/// are free again.
#[test]
fn call_limits_refuse_the_caller_and_busy_the_callee() {
    require_sipp();
    let pbx = Pbx::start(&config_with_limit("", 1), false);
    let port = free_port();
    register_callee(&pbx, CALLEE, port);
    let callee = uas(&pbx, "call_uas.xml", port, 1, &[]);
    std::thread::sleep(Duration::from_millis(200));
    let caller = uac_spawn(&pbx, "call_uac.xml", CALLEE, 1, &["-d", "4000"]);
    assert!(
        pbx.wait_log("media call=1 leg=B", Duration::from_secs(10)),
        "{}",
        pbx.log()
    );
    assert_eq!(invite_from(&pbx, "2003", CALLEE, PCMU_OFFER, ""), 486);
    assert_eq!(invite_from(&pbx, CALLER, "2004", PCMU_OFFER, ""), 403);
    // Others are not affected: 2004 is simply not registered.
    assert_eq!(invite_from(&pbx, "2003", "2004", PCMU_OFFER, ""), 480);
    passed(&pbx, "caller", caller);
    passed(&pbx, "callee", callee);
    wait_cdr(&pbx, "ANSWERED", 2);
    assert_eq!(invite_from(&pbx, CALLER, "2004", PCMU_OFFER, ""), 480);
    assert!(pbx.log().contains("call refused: caller at its call limit"));
    assert!(pbx.log().contains("callee at its call limit: busy"));
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
    // Reliable provisionals demanded of the PBX: not offered to callers.
    assert_eq!(
        raw_invite(&pbx, CALLEE, &sdp("0"), "Require: 100rel\r\n"),
        420
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

/// SIGTERM with a call up: both phones get BYE before the PBX exits.
#[test]
fn shutdown_hangs_up_calls_in_progress() {
    require_sipp();
    let mut pbx = Pbx::start(&config(""), false);
    let port = free_port();
    register_callee(&pbx, "2005", port);
    let callee = uas(&pbx, "call_uas.xml", port, 1, &[]);
    std::thread::sleep(Duration::from_millis(200));
    let caller = uac_spawn(&pbx, "call_uac_recv_bye.xml", "2005", 1, &[]);
    pbx.wait_log("media call=1 leg=B", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let status = pbx.terminate(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()));
    passed(&pbx, "caller", caller);
    passed(&pbx, "callee", callee);
    assert!(pbx.wait_log("calls hung up for the shutdown", Duration::from_secs(3)));
}
