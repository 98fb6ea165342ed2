//! Transcoding through the network with two real softphones (baresip): the
//! caller and the callee are each restricted to a codec the other lacks, so
//! the PBX must offer its transcodable codecs to the callee, answer the
//! caller with the caller's own codec, and convert every packet both ways.
//! Each phone plays a WAV of band-limited noise and records what it hears;
//! the recordings must correlate with what the other phone sent (see
//! `common::audio`), and the CDR and the call summary must show that the
//! relay really converted (each leg's own codec, packets transcoded).
//!
//! Thresholds: G.711 µ-law to A-law goes through the ITU-T table and costs
//! a fraction of a quantisation step, so the PCMU/PCMA call correlates like
//! a plain G.711 call (about 0.9999 on this harness, see
//! `tests/baresip_call.rs`); 0.99 leaves room for a lost packet. The
//! G.722/PCMU call decodes, resamples 8 <-> 16 kHz and re-encodes with
//! ADPCM and µ-law in tandem; see `G722_THRESHOLD` for what it measured.
//! Measured: PCMU/PCMA 0.9998 both ways (the same as a plain G.711 call).

mod common;

use std::time::{Duration, Instant};

use common::Pbx;
use common::audio::{self, AudioMatch};
use common::baresip::{Softphone, SoftphoneConfig, require_baresip};

/// G.711 A <-> µ through the table.
const G711_THRESHOLD: f64 = 0.99;
/// G.722 <-> PCMU, measured on this harness: G.722 to PCMU 0.989 (decode,
/// 16 -> 8 kHz, µ-law), PCMU to G.722 0.970 (8 -> 16 kHz, ADPCM), both
/// steady over every 0.5 s window and over repeated runs, with a constant
/// 3.25 ms resampler delay. 0.93 leaves a margin for a lost
/// packet while unrelated audio scores <= 0.05 and a one-way path 0.
const G722_THRESHOLD: f64 = 0.93;
/// A's signal; the call lasts this long (A hangs up when its file ends).
const CALL_SECS: f64 = 4.0;
/// B's signal, longer so that B never hangs up first.
const ANSWER_SECS: f64 = 8.0;

/// One side of the call: its codec list and the rate its WAVs are at.
struct Side {
    codecs: &'static [&'static str],
    rate: u32,
}

/// What the call measured.
struct Measured {
    a_to_b: AudioMatch,
    b_to_a: AudioMatch,
    /// The CDR rows ("...-a" and "...-b" legs).
    cdr: String,
    /// transcoded_a_in, transcoded_b_in from the PBX's call summary.
    transcoded: (u64, u64),
}

/// Compares what `phone` recorded with `sent` (8 kHz) at the recording's
/// own rate: the PBX's resampler delays by a fraction of an 8 kHz sample,
/// which at 8 kHz lag resolution alone costs several hundredths of
/// correlation on noise reaching 3.4 kHz; at 16 kHz much less.
fn received(phone: &Softphone, sent: &[i16]) -> Result<AudioMatch, String> {
    let path = phone
        .received_wav()
        .ok_or_else(|| format!("{} recorded nothing", phone.name))?;
    let wav = audio::read_wav(&path)?;
    let sent = audio::resample(sent, audio::RATE, wav.rate);
    Ok(audio::compare(&sent, &wav.samples, 2 * wav.rate as usize))
}

fn report(phones: &[&Softphone], pbx: &Pbx) -> String {
    let mut out = String::new();
    for p in phones {
        out += &format!("\n--- {} log tail ---\n{}\n", p.name, p.log_tail(60));
    }
    let log = pbx.log();
    let lines: Vec<&str> = log.lines().collect();
    out += &format!(
        "\n--- PBX log tail ---\n{}\n",
        lines[lines.len().saturating_sub(60)..].join("\n")
    );
    out
}

/// A numeric `name=` field of the PBX's "call ended" line.
fn summary_field(log: &str, name: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("call ended"))?;
    let rest = &line[line.find(name)? + name.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Places a call from a phone limited to `a` to one limited to `b` through
/// the PBX and measures it. Err: a report for the assertion.
fn call(name: &str, a: Side, b: Side) -> Result<Measured, String> {
    require_baresip();
    let pbx = Pbx::start(
        "realm = \"pbx.test\"\n\
         [[extensions]]\nnumber = \"5001\"\npassword = \"transcode-secret-1\"\n\
         [[extensions]]\nnumber = \"5002\"\npassword = \"transcode-secret-2\"\n",
        false,
    );
    let dir = pbx.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    // The signals at 8 kHz (what is compared) and as each phone plays them.
    let sent_a = audio::test_signal(CALL_SECS, 42);
    let sent_b = audio::test_signal(ANSWER_SECS, 7);
    let write = |file: &str, x: &[i16], rate: u32| {
        audio::write_wav(
            &dir.join(file),
            rate,
            &audio::resample(x, audio::RATE, rate),
        )
        .unwrap();
    };
    write("a.wav", &sent_a, a.rate);
    write("b.wav", &sent_b, b.rate);
    let phone = |user: &str, pass: &str, wav: &str, side: &Side, auto: bool| SoftphoneConfig {
        password: Some(pass.into()),
        registrar: Some(pbx.port),
        regint: 600,
        auto_answer: auto,
        record: true,
        audio_codecs: side.codecs.iter().map(|c| c.to_string()).collect(),
        ..SoftphoneConfig::new(user, &dir.join(wav))
    };
    let pb = Softphone::start(
        &dir,
        "b",
        phone("5002", "transcode-secret-2", "b.wav", &b, true),
    );
    let pa = Softphone::start(
        &dir,
        "a",
        phone("5001", "transcode-secret-1", "a.wav", &a, false),
    );
    let fail = |what: String, phones: &[&Softphone]| Err(format!("{what}{}", report(phones, &pbx)));

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut pending = vec![("5001", pa.sip_port), ("5002", pb.sip_port)];
    while !pending.is_empty() && Instant::now() < deadline {
        pending.retain(|(aor, port)| {
            let out = pbx.cli(&["registration", "list", "--aor", aor]);
            !String::from_utf8_lossy(&out.stdout).contains(&format!("127.0.0.1:{port}"))
        });
        std::thread::sleep(Duration::from_millis(200));
    }
    if !pending.is_empty() {
        return fail(format!("not registered: {pending:?}"), &[&pa, &pb]);
    }

    let uri = format!("sip:5002@127.0.0.1:{}", pbx.port);
    pa.dial(&uri).map_err(|e| format!("dial: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pb.log().contains("Call established") {
        if Instant::now() > deadline || pa.log().contains("session closed") {
            return fail("B never established the call".into(), &[&pa, &pb]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if !pa.wait_call_end(Duration::from_secs_f64(CALL_SECS + 10.0)) {
        let _ = pa.hangup();
        return fail("A's call did not end".into(), &[&pa, &pb]);
    }
    if !pb.wait_call_end(Duration::from_secs(5)) {
        let _ = pb.hangup();
        return fail("B's call did not end after A hung up".into(), &[&pa, &pb]);
    }
    let a_to_b = received(&pb, &sent_a);
    let b_to_a = received(&pa, &sent_b[..sent_a.len()]);
    let (a_to_b, b_to_a) = match (a_to_b, b_to_a) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => {
            return fail(
                format!("no recording: A->B {:?}, B->A {:?}", x.err(), y.err()),
                &[&pa, &pb],
            );
        }
    };

    let cdr = common::sipp::wait_cdr(&pbx, "ANSWERED", 2);
    let log = pbx.log();
    let transcoded = (
        summary_field(&log, "transcoded_a_in=").unwrap_or(0),
        summary_field(&log, "transcoded_b_in=").unwrap_or(0),
    );
    Ok(Measured {
        a_to_b,
        b_to_a,
        cdr,
        transcoded,
    })
}

/// The codec the CDR row of leg `leg` ("a" or "b") names.
fn leg_codec<'a>(cdr: &'a str, leg: &str) -> Option<&'a str> {
    let suffix = format!("-{leg}");
    let row = cdr
        .lines()
        .find(|l| l.split_whitespace().any(|t| t.ends_with(&suffix)) && l.contains("ANSWERED"))?;
    let tokens: Vec<&str> = row.split_whitespace().collect();
    let at = tokens.iter().position(|t| *t == "ANSWERED")?;
    tokens.get(at + 1).copied()
}

fn check(m: &Measured, threshold: f64, codecs: (&str, &str)) {
    eprintln!(
        "A->B {}\nB->A {}\ntranscoded packets: from A {}, from B {}\n{}",
        m.a_to_b, m.b_to_a, m.transcoded.0, m.transcoded.1, m.cdr
    );
    assert!(
        m.a_to_b.passes(threshold) && m.b_to_a.passes(threshold),
        "audio does not match (threshold {threshold}): A->B {}, B->A {}",
        m.a_to_b,
        m.b_to_a
    );
    assert_eq!(leg_codec(&m.cdr, "a"), Some(codecs.0), "{}", m.cdr);
    assert_eq!(leg_codec(&m.cdr, "b"), Some(codecs.1), "{}", m.cdr);
    // About 4 s of 20 ms packets each way went through the transforms.
    assert!(
        m.transcoded.0 > 150 && m.transcoded.1 > 150,
        "transcoded packets: from A {}, from B {}",
        m.transcoded.0,
        m.transcoded.1
    );
}

#[test]
fn pcmu_caller_and_pcma_callee_are_transcoded_both_ways() {
    let a = Side {
        codecs: &["PCMU"],
        rate: 8000,
    };
    let b = Side {
        codecs: &["PCMA"],
        rate: 8000,
    };
    match call("pcmu-pcma", a, b) {
        Ok(m) => check(&m, G711_THRESHOLD, ("PCMU", "PCMA")),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn g722_caller_and_pcmu_callee_are_transcoded_both_ways() {
    let a = Side {
        codecs: &["G722/16000/1"],
        rate: 16000,
    };
    let b = Side {
        codecs: &["PCMU"],
        rate: 8000,
    };
    match call("g722-pcmu", a, b) {
        Ok(m) => check(&m, G722_THRESHOLD, ("G722", "PCMU")),
        Err(e) => panic!("{e}"),
    }
}
