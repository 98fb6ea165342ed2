//! SIP trunks with SIPp carriers on loopback: outbound calls through the
//! dialplan (prefix rule, number rewriting, permission class), failover
//! from a trunk answering 503 to the next one, digest authentication
//! towards a carrier that challenges, outbound registration of a trunk, and
//! inbound calls from a trunk's address routed by DID to an extension.
//! Carriers listen on 127.0.0.3/127.0.0.4 so that the callers (127.0.0.1)
//! are not mistaken for a trunk (trunks are recognised by address).

mod common;

use std::time::Duration;

use common::sipp::{
    CALLER, PCMU_OFFER, caller_passes, config, invite_status, passed, register_callee, uas, uas_on,
    wait_cdr,
};
use common::{Pbx, free_port, require_sipp};

/// Dialplan: `9` + number goes out through `trunks` with the 9 stripped
/// (national class); `00` numbers are international; 20xx are extensions.
fn routing(trunks_toml: &str, trunk_names: &str) -> String {
    format!(
        "{trunks_toml}\n\
         [[dialplan]]\nname = \"internal\"\npattern = \"_20XX\"\naction = \"extension\"\n\
         [[dialplan]]\nname = \"international\"\npattern = \"prefix:900\"\nclass = \"international\"\nstrip = 1\naction = \"trunk\"\ntrunks = [{trunk_names}]\n\
         [[dialplan]]\nname = \"national\"\npattern = \"prefix:9\"\nclass = \"national\"\nstrip = 1\naction = \"trunk\"\ntrunks = [{trunk_names}]\n\
         [[dialplan]]\nname = \"blocked\"\npattern = \"prefix:1900\"\naction = \"reject\"\nstatus = 603\n"
    )
}

fn with_caller_class(cfg: String, class: &str) -> String {
    // The caller's [[extensions]] entry is the first one.
    cfg.replacen(
        "password = \"pw2001secret\"\n",
        &format!("password = \"pw2001secret\"\npermission = \"{class}\"\n"),
        1,
    )
}

#[test]
fn outbound_call_fails_over_from_503_to_the_next_trunk() {
    require_sipp();
    let (pa, pb) = (free_port(), free_port());
    let trunks = format!(
        "[[trunks]]\nname = \"alpha\"\nhost = \"127.0.0.3:{pa}\"\n\
         [[trunks]]\nname = \"beta\"\nhost = \"127.0.0.4:{pb}\"\ncaller_id = \"+4930555777\"\n"
    );
    let pbx = Pbx::start(
        &with_caller_class(config(&routing(&trunks, "\"alpha\", \"beta\"")), "national"),
        false,
    );
    let alpha = uas_on(&pbx, "carrier_503_uas.xml", "127.0.0.3", pa, 1, &[]);
    let beta = uas_on(
        &pbx,
        "trunk_uas.xml",
        "127.0.0.4",
        pb,
        1,
        &["-set", "dialled", "030123456"],
    );
    caller_passes(&pbx, "call_uac.xml", "9030123456", 1, &["-d", "500"]);
    passed(&pbx, "alpha", alpha);
    passed(&pbx, "beta", beta);
    let cdr = wait_cdr(&pbx, "ANSWERED", 2);
    assert!(cdr.contains("beta") && cdr.contains("030123456"), "{cdr}");
    let log = pbx.log();
    assert!(log.contains("caller=2001"), "{log}");
}

#[test]
fn dialplan_refusals_and_permissions() {
    let trunks = "[[trunks]]\nname = \"alpha\"\nhost = \"127.0.0.3:5999\"\n";
    let pbx = Pbx::start(&config(&routing(trunks, "\"alpha\"")), false);
    let mut phone = common::Phone::new("127.0.0.1", CALLER, "127.0.0.1");
    let mut status = |to: &str| invite_status(&pbx, &mut phone, to, PCMU_OFFER, "");
    // An internal-only extension may not dial national or international.
    assert_eq!(status("9030123456"), 403);
    assert_eq!(status("90049301234"), 403);
    // A reject rule, and a number no rule matches.
    assert_eq!(status("1900123"), 603);
    assert_eq!(status("555"), 404);
    // An extension number goes to the extension (not registered: 480).
    assert_eq!(status("2003"), 480);
}

#[test]
fn carrier_challenge_is_answered_with_the_trunk_credentials() {
    require_sipp();
    let port = free_port();
    let trunks = format!(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.3:{port}\"\nusername = \"trunkuser\"\npassword = \"s3cret-trunk\"\n"
    );
    let pbx = Pbx::start(
        &with_caller_class(config(&routing(&trunks, "\"carrier\"")), "national"),
        false,
    );
    // 401 first: SIPp checks the digest against the password.
    let carrier = uas_on(
        &pbx,
        "carrier_auth401_uas.xml",
        "127.0.0.3",
        port,
        1,
        &[
            "-set",
            "user",
            "trunkuser",
            "-set",
            "password",
            "s3cret-trunk",
        ],
    );
    caller_passes(&pbx, "call_uac.xml", "9030123456", 1, &["-d", "300"]);
    passed(&pbx, "carrier", carrier);
    // 407 (proxy) the same way.
    let carrier = uas_on(
        &pbx,
        "carrier_auth_uas.xml",
        "127.0.0.3",
        port,
        1,
        &["-set", "user", "trunkuser"],
    );
    caller_passes(&pbx, "call_uac.xml", "9030123456", 1, &["-d", "300"]);
    passed(&pbx, "carrier (407)", carrier);
}

#[test]
fn trunk_registers_with_the_carrier() {
    require_sipp();
    let port = free_port();
    let carrier_cfg = format!(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.3:{port}\"\nusername = \"trunkuser\"\npassword = \"s3cret-trunk\"\nregister = true\nregister_expires_s = 120\n"
    );
    // The carrier listens before the PBX starts (the PBX registers at once).
    let dir = std::env::temp_dir();
    let carrier = std::process::Command::new("timeout")
        .args(["60", "sipp", "-sf"])
        .arg(common::sipp::scenario("carrier_register_uas.xml"))
        .args(["-i", "127.0.0.3", "-p", &port.to_string()])
        .args([
            "-set",
            "user",
            "trunkuser",
            "-set",
            "password",
            "s3cret-trunk",
        ])
        .args(["-m", "1", "-nostdin", "-timeout", "30s", "-timeout_error"])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pbx = Pbx::start(&config(&carrier_cfg), false);
    passed(&pbx, "carrier registrar", carrier);
    pbx.wait_log("trunk registered", Duration::from_secs(5));
    let log = pbx.log();
    assert!(log.contains("trunk registered trunk=carrier"), "{log}");
    assert!(
        !log.contains("s3cret-trunk"),
        "the trunk password must not be logged"
    );
}

/// The carrier (on the trunk's address 127.0.0.2) calls `did` once.
fn carrier_calls(pbx: &Pbx, did: &str, port: u16, extra: &[&str]) -> std::process::Output {
    std::process::Command::new("timeout")
        .args(["60", "sipp", &format!("127.0.0.1:{}", pbx.port), "-sf"])
        .arg(common::sipp::scenario("carrier_inbound_uac.xml"))
        .args(["-set", "did", did, "-i", "127.0.0.2", "-p"])
        .arg(port.to_string())
        .args(["-m", "1", "-nostdin", "-timeout_error"])
        .args(extra)
        .current_dir(&pbx.dir)
        .output()
        .unwrap()
}

#[test]
fn inbound_did_from_a_trunk_rings_the_extension() {
    require_sipp();
    let carrier_port = free_port();
    let trunks = format!(
        "[[trunks]]\nname = \"carrier\"\nhost = \"127.0.0.2:{carrier_port}\"\n\
         [trunks.dids]\n\"4930123456\" = \"2004\"\n"
    );
    let pbx = Pbx::start(&config(&trunks), false);
    let uas_port = free_port();
    register_callee(&pbx, "2004", uas_port);
    let callee = uas(&pbx, "call_uas.xml", uas_port, 1, &[]);
    std::thread::sleep(Duration::from_millis(200));
    let out = carrier_calls(
        &pbx,
        "4930123456",
        carrier_port,
        &["-d", "500", "-timeout", "30s"],
    );
    assert!(
        out.status.success(),
        "{}",
        common::sipp::explain("carrier", &out, &pbx)
    );
    passed(&pbx, "callee", callee);
    let cdr = wait_cdr(&pbx, "ANSWERED", 2);
    assert!(
        cdr.contains("+4930555000") && cdr.contains("2004") && cdr.contains("carrier"),
        "{cdr}"
    );
    // An unknown DID is refused.
    let out = carrier_calls(&pbx, "999", carrier_port, &["-timeout", "10s"]);
    assert!(!out.status.success());
    assert!(
        pbx.wait_log("inbound DID not routed", Duration::from_secs(3)),
        "{}",
        pbx.log()
    );
}
