//! SIPp helpers shared by the call tests: a caller extension (2001,
//! password `pw2001secret`) calling through the PBX, callees registered as
//! extensions with `register_once.xml`, and UAS scenarios on given ports.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Pbx, Phone, free_port, repo_root};

/// The calling extension of the SIPp callers.
pub const CALLER: &str = "2001";

/// A config with extensions 2001..=2006 (password `pwNNNNsecret`) and
/// `extra` TOML before them. SIPp places many calls between the same two
/// extensions at once, so their call limit is raised from the default 2.
pub fn config(extra: &str) -> String {
    config_with_limit(extra, 1000)
}

/// [`config`] with every extension limited to `max_calls` calls at once.
pub fn config_with_limit(extra: &str, max_calls: u32) -> String {
    let mut c = format!("realm = \"pbx.test\"\n{extra}\n");
    for n in 2001..=2006 {
        c.push_str(&format!(
            "[[extensions]]\nnumber = \"{n}\"\npassword = \"pw{n}secret\"\nmax_calls = {max_calls}\n"
        ));
    }
    c
}

/// A PCMU-only SDP offer for raw INVITEs.
pub const PCMU_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                              m=audio 30000 RTP/AVP 0\r\n";

/// Sends one raw INVITE from `phone` (an extension of [`config`], so its
/// password is `pwNNNNsecret`) to `to`, answering the 407, and returns the
/// final status (0: no answer).
pub fn invite_status(pbx: &Pbx, phone: &mut Phone, to: &str, body: &str, extra: &str) -> u16 {
    let password = format!("pw{}secret", phone.user);
    phone
        .invite_status(&password, to, body, extra, pbx.addr())
        .unwrap_or(0)
}

pub fn scenario(name: &str) -> PathBuf {
    repo_root().join("tests/sipp").join(name)
}

pub fn write_csv(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("SEQUENTIAL\n{body}\n")).unwrap();
    path
}

pub fn explain(what: &str, out: &Output, pbx: &Pbx) -> String {
    format!(
        "{what}: exit {:?}\nstdout:\n{}\nstderr:\n{}\nPBX log:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        pbx.log()
    )
}

/// Registers `callee` with a Contact at `uas_port`.
pub fn register_callee(pbx: &Pbx, callee: &str, uas_port: u16) {
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

/// Starts a SIPp UAS scenario on 127.0.0.1:`port` for `calls` calls.
pub fn uas(pbx: &Pbx, name: &str, port: u16, calls: u32, extra: &[&str]) -> Child {
    uas_on(pbx, name, "127.0.0.1", port, calls, extra)
}

/// Starts a SIPp UAS scenario on `ip`:`port` for `calls` calls.
pub fn uas_on(pbx: &Pbx, name: &str, ip: &str, port: u16, calls: u32, extra: &[&str]) -> Child {
    Command::new("timeout")
        .args(["200", "sipp", "-sf"])
        .arg(scenario(name))
        .args(["-i", ip, "-p"])
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

/// Waits for a SIPp UAS and checks it passed.
pub fn passed(pbx: &Pbx, what: &str, child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", explain(what, &out, pbx));
}

/// Runs a SIPp UAC scenario calling `dialled` through the PBX.
pub fn uac(pbx: &Pbx, name: &str, dialled: &str, calls: u32, extra: &[&str]) -> Output {
    uac_spawn(pbx, name, dialled, calls, extra)
        .wait_with_output()
        .unwrap()
}

/// Starts a SIPp UAC scenario calling `dialled` through the PBX.
pub fn uac_spawn(pbx: &Pbx, name: &str, dialled: &str, calls: u32, extra: &[&str]) -> Child {
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
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Gives the SIPp peers just started a moment to listen, then runs the
/// caller scenario `name` for `calls` calls to `dialled` and checks it
/// passed.
pub fn caller_passes(pbx: &Pbx, name: &str, dialled: &str, calls: u32, extra: &[&str]) {
    std::thread::sleep(Duration::from_millis(200));
    let caller = uac(pbx, name, dialled, calls, extra);
    assert!(caller.status.success(), "{}", explain(name, &caller, pbx));
}

/// Runs a caller/callee pair and checks both passed.
pub fn pair(
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
    caller_passes(pbx, uac_sf, callee, calls, uac_extra);
    passed(pbx, uas_sf, callee_sipp);
}

/// The CDR listing once `legs` legs with `disposition` are there.
pub fn wait_cdr(pbx: &Pbx, disposition: &str, legs: usize) -> String {
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
