//! SIPp against the real binary: OPTIONS pings over UDP, TCP and IPv6 get
//! 200 with Allow/Accept/Supported (checked inside the scenario), and the
//! server shuts down cleanly on SIGTERM.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Pbx, repo_root, require_sipp};

fn run_sipp(target: &str, extra: &[&str], calls: u32) -> (bool, String) {
    let scenario = repo_root().join("tests/sipp/options.xml");
    let out = Command::new("timeout")
        .arg("60")
        .arg("sipp")
        .arg(target)
        .arg("-sf")
        .arg(&scenario)
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            "200",
            "-nostdin",
            "-timeout",
            "30s",
        ])
        .args(["-timeout_error", "-max_recv_loops", "1000"])
        .args(extra)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run sipp");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let ok = out.status.success()
        && text.lines().any(|l| {
            l.contains("Successful call")
                && l.split('|')
                    .nth(2)
                    .is_some_and(|c| c.trim() == calls.to_string())
        });
    (ok, text)
}

#[test]
fn sipp_options_over_udp_tcp_and_ipv6() {
    require_sipp();
    let ipv6 = std::net::UdpSocket::bind("[::1]:0").is_ok();
    let mut pbx = Pbx::start("", ipv6);
    let target = format!("127.0.0.1:{}", pbx.port);
    let (ok, out) = run_sipp(&target, &["-i", "127.0.0.1"], 200);
    assert!(ok, "UDP OPTIONS failed:\n{out}\n{}", pbx.log());
    let (ok, out) = run_sipp(&target, &["-i", "127.0.0.1", "-t", "t1"], 200);
    assert!(ok, "TCP OPTIONS failed:\n{out}\n{}", pbx.log());
    if ipv6 {
        let target6 = format!("[::1]:{}", pbx.port);
        let (ok, out) = run_sipp(&target6, &["-i", "::1"], 50);
        assert!(ok, "IPv6 UDP OPTIONS failed:\n{out}\n{}", pbx.log());
        let (ok, out) = run_sipp(&target6, &["-i", "::1", "-t", "t1"], 50);
        assert!(ok, "IPv6 TCP OPTIONS failed:\n{out}\n{}", pbx.log());
    }
    let status = pbx
        .terminate(Duration::from_secs(10))
        .expect("pbx did not stop on SIGTERM");
    assert!(status.success(), "pbx exited with {status:?}");
    assert!(pbx.log().contains("SIGTERM: shutting down"));
}
