//! Registration end to end: SIPp registers, re-registers and unregisters
//! with digest auth over UDP and TCP; a password-guessing source is blocked
//! after the 5th failure while a correct user from another source still
//! registers.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Pbx, Phone, repo_root, require_sipp};

fn extensions(from: u32, to: u32) -> String {
    let mut s = String::from("realm = \"127.0.0.1\"\n");
    for u in from..=to {
        s.push_str(&format!(
            "[[extensions]]\nnumber = \"{u}\"\npassword = \"pw{u}secret\"\n"
        ));
    }
    s
}

fn users_csv(dir: &std::path::Path, from: u32, to: u32) -> std::path::PathBuf {
    let path = dir.join("users.csv");
    let mut s = String::from("SEQUENTIAL\n");
    for u in from..=to {
        s.push_str(&format!(
            "{u};[authentication username={u} password=pw{u}secret]\n"
        ));
    }
    std::fs::write(&path, s).unwrap();
    path
}

#[test]
fn sipp_register_reregister_unregister() {
    require_sipp();
    let pbx = Pbx::start(&extensions(2000, 2019), false);
    let csv = users_csv(&pbx.dir, 2000, 2019);
    for transport in ["u1", "t1"] {
        let out = Command::new("timeout")
            .args(["60", "sipp", &format!("127.0.0.1:{}", pbx.port)])
            .arg("-sf")
            .arg(repo_root().join("tests/sipp/register_cycle.xml"))
            .arg("-inf")
            .arg(&csv)
            .args([
                "-key",
                "domain",
                "127.0.0.1",
                "-t",
                transport,
                "-i",
                "127.0.0.1",
            ])
            .args([
                "-m",
                "20",
                "-r",
                "50",
                "-nostdin",
                "-timeout",
                "30s",
                "-timeout_error",
            ])
            .current_dir(&pbx.dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let ok = text.lines().any(|l| {
            l.contains("Successful call") && l.split('|').nth(2).is_some_and(|c| c.trim() == "20")
        });
        assert!(
            out.status.success() && ok,
            "{transport}: {text}\n{}",
            pbx.log()
        );
    }
}

#[test]
fn brute_force_is_blocked_after_five_failures() {
    let pbx = Pbx::start(&extensions(3000, 3001), false);
    let target = pbx.addr();
    let mut attacker = Phone::new("127.0.0.1", "3000", "127.0.0.1");
    let mut statuses = Vec::new();
    for i in 0..50 {
        statuses.push(attacker.register(&format!("guess{i}"), 300, target));
    }
    // Failures 1-4 get a new challenge, the 5th is refused, and from then on
    // the source gets 403 before any challenge.
    assert!(
        statuses[..4].iter().all(|s| *s == Some(401)),
        "{statuses:?}"
    );
    assert!(
        statuses[4..].iter().all(|s| *s == Some(403)),
        "{statuses:?}"
    );
    // Even the right password is refused from the blocked source...
    assert_eq!(attacker.register("pw3000secret", 300, target), Some(403));
    // ...while the same user from another source registers.
    let mut phone = Phone::new("127.0.0.2", "3000", "127.0.0.1");
    assert_eq!(phone.register("pw3000secret", 300, target), Some(200));
    // Unknown users look exactly like wrong passwords: a challenge.
    let mut stranger = Phone::new("127.0.0.3", "9999", "127.0.0.1");
    assert_eq!(stranger.register("whatever", 300, target), Some(401));
    std::thread::sleep(Duration::from_millis(100));
    let log = pbx.log();
    assert!(
        log.contains("source blocked after repeated authentication failures"),
        "{log}"
    );
    assert!(!log.contains("guess"), "passwords must never be logged");
}
