//! baresip (a real softphone, Debian package) registers with digest auth;
//! the registration shows in `pbx registration list` with its User-Agent.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Pbx, free_port};

#[test]
fn baresip_registers() {
    assert!(
        Command::new("baresip").arg("-h").output().is_ok(),
        "baresip is not installed: apt-get install baresip-core (CI's scripts/test.sh does this)"
    );
    let pbx = Pbx::start(
        "realm = \"pbx.test\"\n[[extensions]]\nnumber = \"5001\"\npassword = \"baresip-secret-1\"\n",
        false,
    );
    let dir = pbx.dir.join("baresip");
    std::fs::create_dir_all(&dir).unwrap();
    let sip_port = free_port();
    std::fs::write(
        dir.join("config"),
        format!(
            "sip_listen\t127.0.0.1:{sip_port}\nnet_interface\t127.0.0.1\nmodule_path\t/usr/lib/baresip/modules\nmodule\tg711.so\nmodule_app\taccount.so\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:5001@127.0.0.1:{}>;auth_pass=baresip-secret-1;regint=600\n",
            pbx.port
        ),
    )
    .unwrap();
    let mut phone = Command::new("timeout")
        .args(["30", "baresip", "-f"])
        .arg(&dir)
        .args(["-t", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let config = pbx.dir.join("pbx.toml");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut listing = String::new();
    while Instant::now() < deadline {
        let out = Command::new(env!("CARGO_BIN_EXE_pbx"))
            .arg("--config")
            .arg(&config)
            .args(["registration", "list", "--aor", "5001"])
            .output()
            .unwrap();
        listing = String::from_utf8_lossy(&out.stdout).into_owned();
        if listing.contains("baresip") {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = phone.kill();
    let _ = phone.wait();
    assert!(
        listing.contains(&format!("127.0.0.1:{sip_port}")) && listing.contains("baresip"),
        "no baresip binding:\n{listing}\n{}",
        pbx.log()
    );
}
