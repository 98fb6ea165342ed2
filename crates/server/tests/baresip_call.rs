//! Audio interop with two real softphones (baresip, Debian package): phone A
//! (5001) calls phone B (5002) through the PBX; A's "microphone" is a WAV of
//! band-limited noise, B auto-answers and records what it receives, and the
//! recording must be recognisably the same audio: normalized
//! cross-correlation at the best lag (see `common::audio`). B plays a
//! different noise signal back, which A records, so one-way audio fails too.
//!
//! `baresip_direct_call_audio` runs the same harness without the PBX (A
//! dials B's own address): if it fails, the harness or baresip is broken,
//! not the PBX.
//!
//! Threshold: measured on this harness, a direct baresip-to-baresip G.711
//! call correlates at 0.9999 (lag 0: sndfile starts recording at the first
//! received packet). Unrelated signals (other noise, a tone, the signal
//! reversed) score <= 0.05 over the whole lag range; 40% of frames lost
//! scores 0.78; PCMU decoded as PCMA still scores 0.88 (this test proves
//! audio flows, not which law was used). So 0.6 sits far above chance and
//! well below any healthy path. A single dropped 20 ms frame mid-call splits
//! the signal into two halves with different lags (whole-signal 0.51), which
//! is why the per-0.5 s-window median also counts (see `AudioMatch::passes`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Pbx;
use common::audio::{self, AudioMatch};
use common::baresip::{Softphone, SoftphoneConfig, require_baresip};

/// Minimum correlation; see the module docs for the measurements behind it.
const THRESHOLD: f64 = 0.6;
/// A's signal (the call lasts this long: A hangs up when its file ends).
const CALL_SECS: f64 = 4.0;
/// B's signal; longer than A's so B never hangs up first.
const ANSWER_SECS: f64 = 8.0;

/// The two test signals written as WAVs under `dir`: (A's, B's).
fn signals(dir: &Path) -> (Vec<i16>, Vec<i16>) {
    let a = audio::test_signal(CALL_SECS, 42);
    let b = audio::test_signal(ANSWER_SECS, 7);
    audio::write_wav(&dir.join("a.wav"), audio::RATE, &a).unwrap();
    audio::write_wav(&dir.join("b.wav"), audio::RATE, &b).unwrap();
    (a, b)
}

/// Reads `phone`'s newest received-audio recording and compares it with
/// `sent`.
fn received_match(phone: &Softphone, sent: &[i16]) -> Result<AudioMatch, String> {
    let path = phone.received_wav().ok_or_else(|| {
        format!(
            "{} recorded nothing in {}",
            phone.name,
            phone.record_dir.display()
        )
    })?;
    let wav = audio::read_wav(&path)?;
    // Lags up to 2 s either way: setup timing, not media delay, sets it.
    Ok(audio::compare(
        sent,
        &audio::to_8k(&wav),
        2 * audio::RATE as usize,
    ))
}

/// Places the call from `a` to `uri`, waits for it to end (A hangs up when
/// its WAV ends, and B must see that BYE) and checks the audio of both
/// directions. Err: a report for the assertion.
fn call_and_check(
    a: &Softphone,
    b: &Softphone,
    uri: &str,
    sent_a: &[i16],
    sent_b: &[i16],
) -> Result<(AudioMatch, AudioMatch), String> {
    a.dial(uri).map_err(|e| format!("dial {uri}: {e}"))?;
    // B answers at once; stop waiting early if A's call already failed
    // (e.g. "session closed: 405 Method Not Allowed").
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.log().contains("Call established") {
        let a_log = a.log();
        if Instant::now() > deadline
            || a_log.contains("session closed")
            || a_log.contains("terminated (duration")
        {
            return Err("B never established the call".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut problems = Vec::new();
    if !a.wait_call_end(Duration::from_secs_f64(CALL_SECS + 10.0)) {
        problems.push("A's call did not end when its WAV ended".to_string());
        let _ = a.hangup();
    }
    if !b.wait_call_end(Duration::from_secs(5)) {
        problems.push("B's call did not end after A hung up (BYE not relayed?)".to_string());
        let _ = b.hangup();
        b.wait_call_end(Duration::from_secs(2));
    }
    let a_to_b = received_match(b, sent_a);
    // B sent only while the call lasted: compare with that much of its file.
    let b_to_a = received_match(a, &sent_b[..sent_a.len().min(sent_b.len())]);
    let show = |m: &Result<AudioMatch, String>| match m {
        Ok(m) => m.to_string(),
        Err(e) => e.clone(),
    };
    let good = |m: &Result<AudioMatch, String>| m.as_ref().is_ok_and(|m| m.passes(THRESHOLD));
    if !good(&a_to_b) || !good(&b_to_a) {
        problems.push(format!("audio does not match (threshold {THRESHOLD})"));
    }
    match (a_to_b, b_to_a) {
        (Ok(x), Ok(y)) if problems.is_empty() => Ok((x, y)),
        (x, y) => Err(format!(
            "{}\n  A->B (B's recording of A's signal): {}\n  B->A (A's recording of B's signal): {}",
            problems.join("; "),
            show(&x),
            show(&y)
        )),
    }
}

fn report(phones: &[&Softphone], pbx_log: Option<String>) -> String {
    let mut out = String::new();
    for p in phones {
        out += &format!(
            "\n--- {} ({}) log tail, {}/baresip.log ---\n{}\n",
            p.name,
            p.aor(),
            p.dir.display(),
            p.log_tail(80)
        );
    }
    if let Some(log) = pbx_log {
        let lines: Vec<&str> = log.lines().collect();
        out += &format!(
            "\n--- PBX log tail ---\n{}\n",
            lines[lines.len().saturating_sub(80)..].join("\n")
        );
    }
    out
}

#[test]
fn audio_correlation_self_check() {
    audio::self_check();
}

#[test]
fn baresip_call_through_pbx_carries_audio() {
    require_baresip();
    let started = Instant::now();
    let pbx = Pbx::start(
        "realm = \"pbx.test\"\n\
         [[extensions]]\nnumber = \"5001\"\npassword = \"baresip-secret-1\"\n\
         [[extensions]]\nnumber = \"5002\"\npassword = \"baresip-secret-2\"\n",
        false,
    );
    let dir = pbx.dir.join("baresip-call");
    std::fs::create_dir_all(&dir).unwrap();
    let (sent_a, sent_b) = signals(&dir);
    let phone = |user: &str, pass: &str, wav: &str, auto_answer: bool| SoftphoneConfig {
        password: Some(pass.into()),
        registrar: Some(pbx.port),
        regint: 600,
        auto_answer,
        record: true,
        ..SoftphoneConfig::new(user, &dir.join(wav))
    };
    let b = Softphone::start(&dir, "b", phone("5002", "baresip-secret-2", "b.wav", true));
    let a = Softphone::start(&dir, "a", phone("5001", "baresip-secret-1", "a.wav", false));

    // Both registered (same check as tests/baresip.rs).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut pending = vec![("5001", a.sip_port), ("5002", b.sip_port)];
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|(aor, port)| {
            let out = pbx.cli(&["registration", "list", "--aor", aor]);
            let listing = String::from_utf8_lossy(&out.stdout);
            !(listing.contains("baresip") && listing.contains(&format!("127.0.0.1:{port}")))
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        pending.is_empty(),
        "not registered: {pending:?}{}",
        report(&[&a, &b], Some(pbx.log()))
    );

    let uri = format!("sip:5002@127.0.0.1:{}", pbx.port);
    match call_and_check(&a, &b, &uri, &sent_a, &sent_b) {
        Ok((a_to_b, b_to_a)) => {
            eprintln!(
                "A->B {a_to_b}\nB->A {b_to_a}\n(took {:.1} s)",
                started.elapsed().as_secs_f64()
            );
        }
        Err(e) => panic!("{e}{}", report(&[&a, &b], Some(pbx.log()))),
    }
    // The audio went through the PBX's relay, and the call has its CDR.
    let cdr = common::sipp::wait_cdr(&pbx, "ANSWERED", 2);
    assert_eq!(cdr.matches("ANSWERED").count(), 2, "CDR legs:\n{cdr}");
    eprintln!("{cdr}");
    assert!(cdr.contains("PCMU") || cdr.contains("PCMA"), "{cdr}");
    let log = pbx.log();
    let relayed = log
        .lines()
        .find(|l| l.contains("call ended"))
        .and_then(|l| {
            let field = |name: &str| -> Option<u64> {
                let rest = &l[l.find(name)? + name.len()..];
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            };
            Some((
                field("rtp_a_in=")?,
                field("rtp_b_in=")?,
                field("rtp_kernel=")?,
            ))
        });
    let (a_in, b_in, kernel) =
        relayed.unwrap_or_else(|| panic!("no call summary in the PBX log:\n{log}"));
    eprintln!("relayed: A {a_in}, B {b_in}, of them in the kernel {kernel}");
    // About 4 s of 20 ms packets each way went through the relay.
    assert!(
        a_in > 150 && b_in > 150,
        "relayed packets: A {a_in}, B {b_in}"
    );
    // As root (CI), latched media is forwarded in the kernel: all but the
    // packets before latching and the last second not yet accounted.
    if common::kernel_forwarding_expected() {
        assert!(
            log.contains("kernel_forwarding=lo") || log.contains("kernel_forwarding=\"lo"),
            "kernel forwarding should be on as root:\n{log}"
        );
        assert!(
            kernel * 10 > (a_in + b_in) * 7,
            "kernel forwarded {kernel} of {} packets",
            a_in + b_in
        );
    }
}

/// The same call without the PBX: A dials B's own address. Validates the
/// harness (baresip config, recording, correlation) on its own.
#[test]
fn baresip_direct_call_audio() {
    require_baresip();
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!(
        "pbx-test-{}-baresip-direct-{}",
        std::process::id(),
        common::free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (sent_a, sent_b) = signals(&dir);
    let phone = |user: &str, wav: &str, auto_answer: bool| SoftphoneConfig {
        auto_answer,
        record: true,
        ..SoftphoneConfig::new(user, &dir.join(wav))
    };
    let b = Softphone::start(&dir, "b", phone("b", "b.wav", true));
    let a = Softphone::start(&dir, "a", phone("a", "a.wav", false));
    let result = call_and_check(&a, &b, &b.direct_uri(), &sent_a, &sent_b);
    let diagnostics = report(&[&a, &b], None);
    drop((a, b));
    match result {
        Ok((a_to_b, b_to_a)) => {
            eprintln!(
                "A->B {a_to_b}\nB->A {b_to_a}\n(took {:.1} s)",
                started.elapsed().as_secs_f64()
            );
            let _ = std::fs::remove_dir_all(&dir);
        }
        Err(e) => panic!("{e}{diagnostics}"),
    }
}
