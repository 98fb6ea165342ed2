//! Tests of the shipped prompts (`prompts/` at the repository root) and of
//! sequencing, framing and playback on synthetic audio.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::wav::reader::parse;

const RATE: u32 = 8000;
/// 50 ms at 8 kHz.
const WINDOW: usize = 400;

fn prompts_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../prompts")
}

fn shipped_catalog() -> Vec<CatalogEntry> {
    let text = std::fs::read_to_string(prompts_root().join("catalog.tsv")).unwrap();
    parse_catalog(&text).unwrap()
}

fn shipped_set() -> PromptSet {
    PromptSet::load(prompts_root().join("en"), RATE).unwrap()
}

fn rms(s: &[i16]) -> f64 {
    let sum: f64 = s.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    (sum / s.len().max(1) as f64).sqrt()
}

/// A scratch directory unique to this process and test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("media-prompts-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn catalog_ids_are_unique_kebab_case_with_feature_prefix() {
    let catalog = shipped_catalog();
    assert!((50..=90).contains(&catalog.len()), "{}", catalog.len());
    let mut ids: Vec<&str> = catalog.iter().map(|e| e.id.as_str()).collect();
    for id in &ids {
        assert!(is_valid_id(id), "{id}");
        let prefix = id.split('-').next().unwrap();
        assert!(
            ["vm", "ivr", "park", "queue", "conf", "gen", "digit", "num"].contains(&prefix),
            "{id} has no feature prefix"
        );
    }
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "duplicate ids");
}

#[test]
fn every_catalog_id_has_a_file_and_every_file_is_in_the_catalog() {
    let catalog = shipped_catalog();
    let set = shipped_set();
    assert_eq!(set.missing(&catalog), Vec::<&str>::new());
    let strays: Vec<&str> = set
        .ids()
        .filter(|id| !catalog.iter().any(|e| e.id == *id))
        .collect();
    assert!(strays.is_empty(), "WAVs not in the catalog: {strays:?}");
}

#[test]
fn shipped_files_are_8khz_mono_pcm_trimmed_and_audible() {
    for entry in shipped_catalog() {
        let id = &entry.id;
        let path = prompts_root().join("en").join(format!("{id}.wav"));
        let (info, s) = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            (info.format, info.channels, info.sample_rate, info.bits),
            (1, 1, RATE, 16),
            "{id}"
        );

        let secs = s.len() as f64 / f64::from(RATE);
        assert!((0.2..=8.0).contains(&secs), "{id}: {secs:.2} s");
        assert!(rms(&s) > 1000.0, "{id}: rms {:.0}", rms(&s));
        let peak = s.iter().map(|&x| i32::from(x).abs()).max().unwrap();
        assert!((16_000..32_767).contains(&peak), "{id}: peak {peak}");

        // Trimmed: at most 150 ms below -40 dBFS at either end, and the
        // edges fade rather than start or stop at full level.
        let quiet = |x: &i16| i32::from(*x).abs() < 330;
        let lead = s.iter().take_while(|x| quiet(x)).count();
        let trail = s.iter().rev().take_while(|x| quiet(x)).count();
        assert!(
            lead < 1200 && trail < 1200,
            "{id}: lead {lead}, trail {trail}"
        );
        let loudest = s.windows(WINDOW).step_by(80).map(rms).fold(0.0, f64::max);
        let head = rms(&s[..WINDOW]);
        let tail = rms(&s[s.len() - WINDOW..]);
        assert!(
            head < 0.75 * loudest,
            "{id}: head {head:.0} of {loudest:.0}"
        );
        assert!(
            tail < 0.75 * loudest,
            "{id}: tail {tail:.0} of {loudest:.0}"
        );
    }
}

#[test]
fn shipped_set_covers_every_spoken_number() {
    let set = shipped_set();
    for n in (0..=999).chain([1000, 4_294_967_295]) {
        for id in say_number(n) {
            assert!(set.contains(id), "{n}: {id}");
        }
    }
}

#[test]
fn wideband_load_doubles_the_length() {
    let narrow = shipped_set();
    let wide = PromptSet::load(prompts_root().join("en"), 16_000).unwrap();
    assert_eq!(wide.rate(), 16_000);
    assert_eq!(wide.len(), narrow.len());
    let n = narrow.get("gen-goodbye").unwrap().len();
    assert_eq!(wide.get("gen-goodbye").unwrap().len(), 2 * n);
}

#[test]
fn shipped_sequence_speaks_a_count() {
    let set = shipped_set();
    let mut ids = vec!["vm-you-have"];
    ids.extend(say_number(3));
    ids.push("vm-new-messages");
    let clip = set.sequence(&ids).unwrap();
    let parts: usize = ids.iter().map(|id| set.get(id).unwrap().len()).sum();
    assert_eq!(clip.samples().len(), parts + 2 * 640);
    assert_eq!(clip.rate(), RATE);
}

fn synthetic() -> PromptSet {
    PromptSet::from_prompts(RATE, [("a", vec![1i16; 300]), ("b", vec![2i16; 100])])
}

#[test]
fn sequence_puts_silence_between_prompts_only() {
    let set = synthetic();
    let clip = set
        .sequence_with_gap(&["a", "b", "a"], Duration::from_millis(10))
        .unwrap();
    let s = clip.samples();
    assert_eq!(s.len(), 300 + 80 + 100 + 80 + 300);
    assert!(s[..300].iter().all(|&x| x == 1));
    assert!(s[300..380].iter().all(|&x| x == 0));
    assert!(s[380..480].iter().all(|&x| x == 2));
    assert!(s[480..560].iter().all(|&x| x == 0));
    assert!(s[560..].iter().all(|&x| x == 1));
    assert_eq!(clip.duration(), Duration::from_micros(107_500));

    assert_eq!(set.sequence(&["b"]).unwrap().samples(), &[2; 100][..]);
    assert!(set.sequence(&[]).unwrap().samples().is_empty());
}

#[test]
fn unknown_id_is_an_error_naming_it() {
    let set = synthetic();
    let err = set.sequence(&["a", "vm-nope"]).unwrap_err();
    assert!(matches!(&err, PromptError::UnknownId(id) if id == "vm-nope"));
    assert!(err.to_string().contains("vm-nope"));
    assert!(set.get("x").is_err());
    assert!(set.clip("a").is_ok());
}

#[test]
fn frames_pad_the_last_one_and_borrow_the_rest() {
    let set = synthetic();
    let clip = set.sequence_with_gap(&["a", "b"], Duration::ZERO).unwrap();
    let frames: Vec<_> = clip.frames(160).collect();
    assert_eq!(clip.frames(160).len(), 3);
    assert_eq!(frames.len(), 400usize.div_ceil(160));
    assert!(frames.iter().all(|f| f.len() == 160));
    assert!(matches!(frames[0], Cow::Borrowed(_)));
    assert!(matches!(frames[2], Cow::Owned(_)));
    assert_eq!(&frames[1][..140], &[1; 140][..]);
    assert_eq!(&frames[1][140..], &[2; 20][..]);
    assert_eq!(&frames[2][..80], &[2; 80][..]);
    assert_eq!(&frames[2][80..], &[0; 80][..]);

    // An exact multiple has no padded frame.
    let exact = Clip::new(RATE, vec![5; 320]);
    assert_eq!(exact.frames(160).count(), 2);
    assert!(exact.frames(160).all(|f| matches!(f, Cow::Borrowed(_))));
    assert_eq!(Clip::new(RATE, Vec::new()).frames(160).count(), 0);
    assert_eq!(samples_per_frame(RATE, Duration::from_millis(20)), 160);
    assert_eq!(samples_per_frame(16_000, Duration::from_millis(20)), 320);
}

#[test]
fn player_counts_frames_pads_and_finishes() {
    let clip = Clip::new(RATE, (1..=330).collect());
    let mut player = PromptPlayer::new(clip, 160);
    assert_eq!(player.frame_count(), 3);
    assert_eq!(player.frame_duration(), Duration::from_millis(20));
    assert!(!player.is_done());

    let f0 = player.next_frame().unwrap().to_vec();
    assert_eq!(f0, (1..=160).collect::<Vec<i16>>());
    assert_eq!(player.next_frame().unwrap()[0], 161);
    let last = player.next_frame().unwrap();
    assert_eq!(last.len(), 160);
    assert_eq!(&last[..10], &(321..=330).collect::<Vec<i16>>()[..]);
    assert!(last[10..].iter().all(|&x| x == 0));
    assert!(player.is_done());
    assert_eq!(player.frames_played(), 3);
    assert!(player.next_frame().is_none());

    player.restart();
    assert!(!player.is_done());
    assert_eq!(player.next_frame().unwrap()[0], 1);
}

#[test]
fn player_on_virtual_time() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let mut player = PromptPlayer::new(Clip::new(RATE, vec![7; 480]), 160);
    assert_eq!(player.poll_timeout(), None, "not started");

    // t=0: frame 0 is due at once, frame 1 at 20 ms.
    assert!(player.poll_frame(ms(0)).is_some());
    assert!(player.poll_frame(ms(0)).is_none());
    assert!(!player.is_done());
    assert_eq!(player.poll_timeout(), Some(ms(20)));
    assert!(player.poll_frame(ms(19)).is_none());

    // A shell that wakes late at 45 ms gets frames 1 and 2 back to back.
    assert!(player.poll_frame(ms(45)).is_some());
    assert!(player.poll_frame(ms(45)).is_some());
    assert!(player.is_done());
    assert_eq!(player.poll_timeout(), None);
    assert!(player.poll_frame(ms(1000)).is_none());

    let mut empty = PromptPlayer::new(Clip::new(RATE, Vec::new()), 160);
    assert!(empty.is_done());
    assert!(empty.poll_frame(ms(0)).is_none());
}

#[test]
fn player_timing_does_not_drift() {
    let t0 = Instant::now();
    // 10 ms frames at 44.1 kHz are 441 samples: the due time of frame k is
    // computed from the sample position, not summed frame by frame.
    let mut player = PromptPlayer::new(Clip::new(44_100, vec![0; 441 * 1000]), 441);
    player.start(t0);
    for _ in 0..999 {
        player.next_frame();
    }
    assert_eq!(
        player.poll_timeout(),
        Some(t0 + Duration::from_millis(9990))
    );
}

#[test]
fn load_errors_name_the_path() {
    let missing = std::env::temp_dir().join("media-prompts-does-not-exist");
    let err = PromptSet::load(&missing, RATE).unwrap_err();
    assert!(matches!(err, PromptError::Directory { .. }), "{err}");
    assert!(err.to_string().contains("media-prompts-does-not-exist"));

    let empty = scratch("empty");
    std::fs::write(empty.join("README.md"), "not a prompt").unwrap();
    let err = PromptSet::load(&empty, RATE).unwrap_err();
    assert!(matches!(err, PromptError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("gen-prompts.sh"));

    let bad = scratch("bad");
    std::fs::write(bad.join("vm-broken.wav"), b"RIFF\0\0\0\0JUNK").unwrap();
    let err = PromptSet::load(&bad, RATE).unwrap_err();
    assert!(matches!(err, PromptError::Decode { .. }), "{err}");
    assert!(err.to_string().contains("vm-broken.wav"));

    let _ = std::fs::remove_dir_all(empty);
    let _ = std::fs::remove_dir_all(bad);
}

#[test]
fn load_ignores_other_files_and_resamples() {
    let dir = scratch("mixed");
    let src = prompts_root().join("en").join("gen-thank-you.wav");
    std::fs::copy(&src, dir.join("gen-thank-you.wav")).unwrap();
    std::fs::write(dir.join("notes.txt"), "ignored").unwrap();
    let set = PromptSet::load(&dir, 16_000).unwrap();
    assert_eq!(set.ids().collect::<Vec<_>>(), ["gen-thank-you"]);
    assert!(!set.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}
