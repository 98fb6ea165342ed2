//! Dialplan rules kept in the database, changed with `pbx dialplan …`
//! while the real server runs: a reject rule answers its status, a trunk
//! rule reaches a SIPp carrier with the rewritten number and enforces its
//! permission class, moving/disabling/removing rules changes routing at
//! once, and the server falls back to the configuration's rules. Also: bad
//! CLI input is refused in one line, and a stored rule whose trunk left the
//! configuration is skipped without breaking the others.
//! The carrier listens on 127.0.0.6 (no other test uses it) so the callers
//! on 127.0.0.1 are not taken for a trunk.

mod common;

use std::time::{Duration, Instant};

use common::sipp::{
    CALLER, PCMU_OFFER, caller_passes, config, invite_status, passed, uac_spawn, uas_on, wait_cdr,
};
use common::{Pbx, Phone, free_port, require_sipp};

const CARRIER_IP: &str = "127.0.0.6";

/// Rejects premium numbers (1900…) with 603.
const ADD_PREMIUM: &[&str] = &[
    "dialplan",
    "add",
    "--name",
    "premium",
    "--pattern",
    "prefix:1900",
    "--action",
    "reject",
    "--status",
    "603",
];

/// Extensions 2001..2006 (2001 may dial national numbers), a carrier
/// trunk, and one config rule: 20XX rings the extension.
fn pbx_config(carrier_port: u16, with_trunk: bool) -> String {
    let trunk = if with_trunk {
        format!("[[trunks]]\nname = \"carrier\"\nhost = \"{CARRIER_IP}:{carrier_port}\"\n")
    } else {
        String::new()
    };
    config(&format!(
        "{trunk}[[dialplan]]\nname = \"internal\"\npattern = \"_20XX\"\naction = \"extension\"\n"
    ))
    .replacen(
        "password = \"pw2001secret\"\n",
        "password = \"pw2001secret\"\npermission = \"national\"\n",
        1,
    )
}

/// Runs the CLI, expects success, returns stdout.
fn cli_ok(pbx: &Pbx, args: &[&str]) -> String {
    let out = pbx.cli(args);
    assert!(
        out.status.success(),
        "pbx {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        pbx.log()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the CLI, expects failure with a one-line error; returns it.
fn cli_refused(pbx: &Pbx, args: &[&str]) -> String {
    let out = pbx.cli(args);
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!out.status.success(), "pbx {args:?} was accepted");
    assert_eq!(out.status.code(), Some(1), "pbx {args:?}: {err}");
    assert!(
        err.starts_with("pbx: ") && !err.contains('\n') && !err.contains("panicked"),
        "pbx {args:?}: not a one-line error: {err}"
    );
    err
}

/// The id in "dialplan rule N added at position P".
fn added_id(stdout: &str) -> String {
    stdout
        .split_whitespace()
        .nth(2)
        .filter(|id| id.parse::<i64>().is_ok())
        .unwrap_or_else(|| panic!("no rule id in {stdout:?}"))
        .to_string()
}

/// The final status of one INVITE to `to` (0: no answer).
fn call(phone: &mut Phone, pbx: &Pbx, to: &str) -> u16 {
    invite_status(pbx, phone, to, PCMU_OFFER, "")
}

/// Calls `to` until the answer is `want`, for at most `within`; returns
/// the last answer and how long it took.
fn call_until(
    phone: &mut Phone,
    pbx: &Pbx,
    to: &str,
    want: u16,
    within: Duration,
) -> (u16, Duration) {
    let start = Instant::now();
    loop {
        let status = call(phone, pbx, to);
        if status == want || start.elapsed() > within {
            return (status, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The change must be live within this (the server polls every second,
/// and the CLI also signals it).
const LIVE: Duration = Duration::from_secs(3);

#[test]
fn rules_added_moved_disabled_and_removed_with_the_cli_route_live() {
    require_sipp();
    let carrier_port = free_port();
    let pbx = Pbx::start(&pbx_config(carrier_port, true), false);
    let mut caller = Phone::new("127.0.0.1", CALLER, "127.0.0.1");
    let mut internal_only = Phone::new("127.0.0.1", "2002", "127.0.0.1");

    // Only the config rule: other numbers have no route.
    assert_eq!(call(&mut caller, &pbx, "1900123"), 404);
    assert_eq!(call(&mut caller, &pbx, "8030123456"), 404);

    // A reject rule, added while the server runs.
    let premium = added_id(&cli_ok(&pbx, ADD_PREMIUM));
    let (status, took) = call_until(&mut caller, &pbx, "1900123", 603, LIVE);
    assert_eq!(status, 603, "reject rule not applied within {took:?}");

    // A trunk rule with a regex rewrite and the national class. The pid
    // file is hidden so the CLI cannot signal the server: this change must
    // be found by the server's own polling.
    let pid_file = pbx.dir.join("data/pbx.pid");
    let hidden = pbx.dir.join("data/pbx.pid.hidden");
    std::fs::rename(&pid_file, &hidden).unwrap();
    let out = added_id(&cli_ok(
        &pbx,
        &[
            "dialplan",
            "add",
            "--name",
            "out",
            "--pattern",
            r"regex:8(\d+)",
            "--class",
            "national",
            "--rewrite",
            "0049$1",
            "--action",
            "trunk",
            "--trunks",
            "carrier",
        ],
    ));
    std::fs::rename(&hidden, &pid_file).unwrap();
    // An internal-only extension may not use it.
    let (status, took) = call_until(&mut internal_only, &pbx, "8030123456", 403, LIVE);
    assert_eq!(status, 403, "polled change not applied within {took:?}");
    // 2001 may: the carrier gets the rewritten number (trunk_uas.xml fails
    // the call on any other Request-URI user).
    let carrier = uas_on(
        &pbx,
        "trunk_uas.xml",
        CARRIER_IP,
        carrier_port,
        1,
        &["-set", "dialled", "0049030123456"],
    );
    caller_passes(&pbx, "call_uac.xml", "8030123456", 1, &["-d", "300"]);
    passed(&pbx, "carrier", carrier);
    let cdr = wait_cdr(&pbx, "ANSWERED", 2);
    assert!(cdr.contains("carrier"), "{cdr}");

    // The listing shows the effective order, marked by source.
    let list = cli_ok(&pbx, &["dialplan", "list"]);
    let rows: Vec<Vec<&str>> = list
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let summary: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[4])).collect();
    assert_eq!(
        summary,
        [
            ("1", "config", "internal"),
            ("2", "db", "premium"),
            ("3", "db", "out")
        ],
        "{list}"
    );

    // A catch-all 8 reject rule after the trunk rule is shadowed by it
    // (the trunk rule's class check answers first)...
    let catch_all = added_id(&cli_ok(
        &pbx,
        &[
            "dialplan",
            "add",
            "--name",
            "no-8",
            "--pattern",
            "prefix:8",
            "--action",
            "reject",
            "--status",
            "486",
        ],
    ));
    // Past one poll period: the rule is loaded, and still answers nothing.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(call(&mut internal_only, &pbx, "8030123456"), 403);
    // ...until it is moved first. (Checked with the internal-only phone,
    // whose calls never reach the carrier, which has finished.)
    cli_ok(&pbx, &["dialplan", "move", &catch_all, "1"]);
    let (status, took) = call_until(&mut internal_only, &pbx, "8030123456", 486, LIVE);
    assert_eq!(status, 486, "move not applied within {took:?}");
    cli_ok(&pbx, &["dialplan", "remove", &catch_all]);

    // Disabled: no route; enabled again: back.
    cli_ok(&pbx, &["dialplan", "disable", &premium]);
    let (status, _) = call_until(&mut caller, &pbx, "1900123", 404, LIVE);
    assert_eq!(status, 404);
    let list = cli_ok(&pbx, &["dialplan", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains("premium") && l.trim_end().ends_with("disabled")),
        "{list}"
    );
    cli_ok(&pbx, &["dialplan", "enable", &premium]);
    let (status, _) = call_until(&mut caller, &pbx, "1900123", 603, LIVE);
    assert_eq!(status, 603);

    // Removed while a call it routed is up: that call goes on to its
    // normal end (the SIPp caller hangs up after 5 s, the carrier sees
    // the BYE), and new calls fall back to the configuration alone. The
    // trunk rule goes first, so once the premium removal is seen, so is
    // that.
    let carrier = uas_on(
        &pbx,
        "trunk_uas.xml",
        CARRIER_IP,
        carrier_port,
        1,
        &["-set", "dialled", "0049030123456"],
    );
    std::thread::sleep(Duration::from_millis(200));
    let mut in_progress = uac_spawn(&pbx, "call_uac.xml", "8030123456", 1, &["-d", "5000"]);
    // Call set-up on loopback takes well under this.
    std::thread::sleep(Duration::from_millis(1500));
    cli_ok(&pbx, &["dialplan", "remove", &out]);
    cli_ok(&pbx, &["dialplan", "remove", &premium]);
    let (status, _) = call_until(&mut caller, &pbx, "1900123", 404, LIVE);
    assert_eq!(status, 404);
    assert_eq!(call(&mut caller, &pbx, "8030123456"), 404);
    assert!(
        in_progress.try_wait().unwrap().is_none(),
        "the call ended before the rule change was checked; make -d longer"
    );
    let caller_out = in_progress.wait_with_output().unwrap();
    assert!(
        caller_out.status.success(),
        "{}",
        common::sipp::explain("call in progress", &caller_out, &pbx)
    );
    passed(&pbx, "carrier of the call in progress", carrier);
    // The config rule never stopped working (not registered: 480).
    assert_eq!(call(&mut caller, &pbx, "2003"), 480);

    // Every change is in the audit log.
    let audit = cli_ok(&pbx, &["audit", "list", "--event", "admin_action"]);
    for action in [
        "dialplan.add",
        "dialplan.move",
        "dialplan.disable",
        "dialplan.enable",
        "dialplan.remove",
    ] {
        assert!(audit.contains(action), "{action} not audited:\n{audit}");
    }
}

#[test]
fn bad_input_is_refused_and_a_rule_whose_trunk_left_the_config_is_skipped() {
    let carrier_port = free_port();
    let mut pbx = Pbx::start(&pbx_config(carrier_port, true), false);
    let base = ["dialplan", "add", "--name", "r"];
    let refused = |extra: &[&str]| cli_refused(&pbx, &[&base[..], extra].concat());
    assert!(refused(&["--pattern", "_9Q", "--action", "extension"]).contains("pattern"));
    assert!(refused(&["--pattern", "regex:(", "--action", "extension"]).contains("pattern"));
    let e = refused(&[
        "--pattern",
        "prefix:7",
        "--action",
        "trunk",
        "--trunks",
        "nope",
    ]);
    assert!(e.contains("no trunk named \"nope\""), "{e}");
    assert!(refused(&["--pattern", "prefix:7", "--action", "trunk"]).contains("trunk"));
    assert!(
        refused(&[
            "--pattern",
            "prefix:7",
            "--action",
            "reject",
            "--status",
            "99"
        ])
        .contains("status")
    );
    assert!(cli_refused(&pbx, &["dialplan", "remove", "999"]).contains("not found"));
    assert!(cli_refused(&pbx, &["dialplan", "move", "999", "1"]).contains("not found"));
    assert!(cli_refused(&pbx, &["dialplan", "disable", "999"]).contains("not found"));
    let listed = cli_ok(&pbx, &["dialplan", "list"]);
    assert_eq!(listed.lines().count(), 2, "nothing was stored:\n{listed}");

    let trunk_rule = added_id(&cli_ok(
        &pbx,
        &[
            "dialplan",
            "add",
            "--name",
            "out",
            "--pattern",
            "prefix:8",
            "--action",
            "trunk",
            "--trunks",
            "carrier",
        ],
    ));
    cli_ok(&pbx, ADD_PREMIUM);

    // The trunk leaves the configuration; the server restarts with it.
    std::fs::write(
        pbx.dir.join("pbx.toml"),
        std::fs::read_to_string(pbx.dir.join("pbx.toml"))
            .unwrap()
            .replace(
                &format!(
                    "[[trunks]]\nname = \"carrier\"\nhost = \"{CARRIER_IP}:{carrier_port}\"\n"
                ),
                "",
            ),
    )
    .unwrap();
    pbx.restart();
    let log = pbx.log();
    assert!(
        log.contains("database dialplan rule skipped")
            && log.contains(&format!("rule_id={trunk_rule}"))
            && log.contains("no trunk named"),
        "{log}"
    );
    // The other rules route as before; the skipped one routes nothing.
    let mut caller = Phone::new("127.0.0.1", CALLER, "127.0.0.1");
    assert_eq!(call(&mut caller, &pbx, "1900123"), 603);
    assert_eq!(call(&mut caller, &pbx, "8030123456"), 404);
    let list = cli_ok(&pbx, &["dialplan", "list"]);
    assert!(
        list.lines()
            .any(|l| l.contains("out") && l.contains("skipped: no trunk named \"carrier\"")),
        "{list}"
    );
}
