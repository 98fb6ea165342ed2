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
    // The security audit log has the failures and the lockout of 127.0.0.1
    // (written by the batch writer within a second).
    let audit = wait_for(
        &pbx,
        &["audit", "list", "--event", "lockout"],
        "source=127.0.0.1",
    );
    assert!(
        audit.contains("user=3000") && audit.contains("source_failures"),
        "{audit}"
    );
    let failures = pbx.cli(&["audit", "list", "--event", "auth_failure", "--limit", "100"]);
    let failures = String::from_utf8_lossy(&failures.stdout);
    assert!(
        failures
            .lines()
            .filter(|l| l.contains("source=127.0.0.1"))
            .count()
            >= 5,
        "{failures}"
    );
    assert!(
        failures.contains("unknown user") && failures.contains("user=9999"),
        "{failures}"
    );
    assert!(
        !failures.contains("guess"),
        "passwords must never reach the audit log"
    );
}

/// Runs a CLI command until its output contains `needle` (at most 5 s).
fn wait_for(pbx: &Pbx, args: &[&str], needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let out = pbx.cli(args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(needle) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Registers once the server has reloaded its directory `reloads` times
/// (the CLI signals it after each change; failed attempts before the reload
/// would count towards the brute-force limit).
fn register_after_reload(
    pbx: &Pbx,
    reloads: usize,
    phone: &mut Phone,
    password: &str,
    target: std::net::SocketAddr,
) -> Option<u16> {
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    while pbx.log().matches("directory reloaded").count() < reloads
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    phone.register(password, 300, target)
}

#[test]
fn bindings_survive_restart_and_cli_changes_apply_live() {
    let mut pbx = Pbx::start(&extensions(6000, 6000), false);
    let target = pbx.addr();
    let mut phone = Phone::new("127.0.0.1", "6000", "127.0.0.1");
    assert_eq!(phone.register("pw6000secret", 600, target), Some(200));
    // A retransmission (the 200 was lost) gets the same 200 again, not a
    // replay rejection.
    let again = phone.last_request.clone();
    let first = phone.exchange(&again, target).unwrap();
    let second = phone.exchange(&again, target).unwrap();
    assert!(first.starts_with("SIP/2.0 200"), "{first}");
    assert_eq!(first, second);

    // An extension added from the CLI can register without a restart...
    let out = pbx.cli(&[
        "extension",
        "add",
        "6001",
        "--name",
        "Front Desk",
        "--password",
        "desk-6001-pass",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut desk = Phone::new("127.0.0.4", "6001", "127.0.0.1");
    assert_eq!(
        register_after_reload(&pbx, 1, &mut desk, "desk-6001-pass", target),
        Some(200)
    );
    // ...and one disabled from the CLI no longer can.
    let out = pbx.cli(&["extension", "set", "6001", "--enabled", "false"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        register_after_reload(&pbx, 2, &mut desk, "desk-6001-pass", target),
        Some(401)
    );
    // A generated password is printed once and works.
    let out = pbx.cli(&["extension", "add", "6002"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let generated = text
        .lines()
        .find_map(|l| l.strip_prefix("SIP password (shown once): "))
        .expect("generated password")
        .to_string();
    let mut third = Phone::new("127.0.0.5", "6002", "127.0.0.1");
    assert_eq!(
        register_after_reload(&pbx, 3, &mut third, &generated, target),
        Some(200)
    );

    let listing = wait_for(&pbx, &["registration", "list"], "sip:6002@");
    assert!(listing.contains("sip:6000@127.0.0.1"), "{listing}");

    // Restart: the bindings come back from the database.
    pbx.restart();
    assert!(
        pbx.log().contains("registrations restored bindings=3"),
        "{}",
        pbx.log()
    );
    let listing =
        String::from_utf8_lossy(&pbx.cli(&["registration", "list", "--aor", "6000"]).stdout)
            .into_owned();
    assert!(listing.contains("sip:6000@127.0.0.1"), "{listing}");
    let history =
        String::from_utf8_lossy(&pbx.cli(&["registration", "history"]).stdout).into_owned();
    assert!(
        history.contains("registered") && history.contains("6002"),
        "{history}"
    );
    // Every administrative change is in the audit log, without secrets.
    let audit = String::from_utf8_lossy(
        &pbx.cli(&["audit", "list", "--event", "admin_action"])
            .stdout,
    )
    .into_owned();
    for action in ["extension.add", "extension.set"] {
        assert!(audit.contains(action), "{audit}");
    }
    assert!(
        !audit.contains("desk-6001-pass") && !audit.contains(&generated),
        "{audit}"
    );
}

#[test]
fn sha256_digest_when_configured() {
    let extra = extensions(7000, 7000);
    // Offer SHA-256 first and MD5 second (RFC 8760): a client may use either.
    let pbx = Pbx::start(
        &format!("{extra}[security]\ndigest_algorithms = [\"SHA-256\", \"MD5\"]\n"),
        false,
    );
    let mut phone = Phone::new("127.0.0.1", "7000", "127.0.0.1");
    assert_eq!(
        phone.register_with(
            sip::auth::Algorithm::Sha256,
            "pw7000secret",
            300,
            pbx.addr()
        ),
        Some(200)
    );
    let mut old = Phone::new("127.0.0.2", "7000", "127.0.0.1");
    assert_eq!(
        old.register_with(sip::auth::Algorithm::Md5, "pw7000secret", 300, pbx.addr()),
        Some(200)
    );
    let mut wrong = Phone::new("127.0.0.3", "7000", "127.0.0.1");
    assert_eq!(
        wrong.register_with(
            sip::auth::Algorithm::Sha256,
            "not-the-password",
            300,
            pbx.addr()
        ),
        Some(401)
    );
}
