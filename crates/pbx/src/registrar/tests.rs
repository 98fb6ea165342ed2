//! Registrar flows on virtual time.

use super::*;
use sip::Message;
use sip::transaction::Transport;

const SRC: &str = "192.0.2.10:5062";

fn register(user: &str, cseq: u32, contacts: &[&str], extra: &str) -> Request {
    let mut text = format!(
        "REGISTER sip:pbx.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bK{cseq}\r\nTo: <sip:{user}@pbx.example>\r\nFrom: <sip:{user}@pbx.example>;tag=f\r\nCall-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\nUser-Agent: TestPhone 1.0 00:15:65:aa:bb:cc\r\n"
    );
    for c in contacts {
        text.push_str(&format!("Contact: {c}\r\n"));
    }
    text.push_str(extra);
    text.push_str("Content-Length: 0\r\n\r\n");
    match Message::parse(Bytes::from(text)).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn src() -> Remote {
    Remote::new(Transport::Udp, SRC.parse().unwrap())
}

fn contacts(r: &Response) -> Vec<String> {
    r.headers
        .get_all(&HeaderName::Contact)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn register_refresh_expire() {
    let mut reg = Registrar::new(RegistrarConfig::default());
    let out = reg.handle_register(
        &register("100", 1, &["<sip:100@192.0.2.10:5062>"], ""),
        src(),
        "100",
        0,
    );
    assert_eq!(out.response.status, StatusCode::OK);
    assert_eq!(
        contacts(&out.response),
        ["<sip:100@192.0.2.10:5062>;expires=3600"]
    );
    assert_eq!(out.changes[0].kind, ChangeKind::Registered);
    assert_eq!(
        out.changes[0].binding.mac.as_deref(),
        Some("00:15:65:aa:bb:cc")
    );
    assert_eq!(reg.poll_timeout(), Some(3_600_000));

    // Refresh at 30 min with a higher CSeq moves the expiry.
    let out = reg.handle_register(
        &register("100", 2, &["<sip:100@192.0.2.10:5062>"], "Expires: 600\r\n"),
        src(),
        "100",
        1_800_000,
    );
    assert_eq!(out.changes[0].kind, ChangeKind::Refreshed);
    assert_eq!(out.changes[0].binding.first_seen, 0);
    assert_eq!(reg.poll_timeout(), Some(2_400_000));
    // Replaying the same CSeq is refused and changes nothing.
    let out = reg.handle_register(
        &register("100", 2, &["<sip:100@192.0.2.10:5062>"], ""),
        src(),
        "100",
        1_800_001,
    );
    assert_eq!(out.response.status.0, 400);
    assert_eq!(reg.poll_timeout(), Some(2_400_000));

    // Nothing expires a millisecond early; then exactly on time.
    assert!(reg.handle_timeout(2_399_999).is_empty());
    let gone = reg.handle_timeout(2_400_000);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].kind, ChangeKind::Expired);
    assert!(reg.is_empty());
    assert_eq!(reg.poll_timeout(), None);
}

#[test]
fn expiry_limits() {
    let mut reg = Registrar::new(RegistrarConfig::default());
    let out = reg.handle_register(
        &register("100", 1, &["<sip:100@h>;expires=30"], ""),
        src(),
        "100",
        0,
    );
    assert_eq!(out.response.status.0, 423);
    assert_eq!(
        out.response.headers.get_str(&HeaderName::MinExpires),
        Some("60")
    );
    assert!(reg.is_empty());
    let out = reg.handle_register(
        &register("100", 2, &["<sip:100@h>"], "Expires: 99999\r\n"),
        src(),
        "100",
        0,
    );
    assert_eq!(contacts(&out.response), ["<sip:100@h>;expires=3600"]);
}

#[test]
fn several_contacts_q_order_and_removal() {
    let mut reg = Registrar::new(RegistrarConfig::default());
    let out = reg.handle_register(
        &register(
            "100",
            1,
            &["<sip:100@a>;q=0.5", "<sip:100@b>;q=0.9, <sip:100@c>"],
            "",
        ),
        src(),
        "100",
        0,
    );
    assert_eq!(out.changes.len(), 3);
    let order: Vec<&str> = reg
        .lookup("100")
        .iter()
        .map(|b| b.contact.as_str())
        .collect();
    assert_eq!(order, ["sip:100@c", "sip:100@b", "sip:100@a"]);
    let out = reg.handle_register(
        &register("100", 2, &["<sip:100@b>;expires=0"], ""),
        src(),
        "100",
        10,
    );
    assert_eq!(out.changes[0].kind, ChangeKind::Unregistered);
    assert_eq!(reg.lookup("100").len(), 2);
    assert_eq!(contacts(&out.response).len(), 2);
    // A REGISTER without Contact is a query.
    let out = reg.handle_register(&register("100", 3, &[], ""), src(), "100", 20);
    assert_eq!(contacts(&out.response).len(), 2);
    assert!(out.changes.is_empty());
}

#[test]
fn wildcard_unregister() {
    let mut reg = Registrar::new(RegistrarConfig::default());
    reg.handle_register(
        &register("100", 1, &["<sip:100@a>", "<sip:100@b>"], ""),
        src(),
        "100",
        0,
    );
    let out = reg.handle_register(&register("100", 2, &["*"], ""), src(), "100", 1);
    assert_eq!(out.response.status.0, 400);
    let out = reg.handle_register(
        &register("100", 2, &["*"], "Expires: 0\r\n"),
        src(),
        "100",
        1,
    );
    assert_eq!(out.response.status.0, 200);
    assert_eq!(out.changes.len(), 2);
    assert!(reg.is_empty());
    assert!(contacts(&out.response).is_empty());
}

#[test]
fn only_your_own_aor() {
    let mut reg = Registrar::new(RegistrarConfig::default());
    let out = reg.handle_register(&register("100", 1, &["<sip:100@a>"], ""), src(), "200", 0);
    assert_eq!(out.response.status.0, 403);
    assert!(reg.is_empty());
}

#[test]
fn contact_limit_replaces_least_recent() {
    let mut reg = Registrar::new(RegistrarConfig {
        max_contacts: 2,
        ..RegistrarConfig::default()
    });
    reg.handle_register(&register("100", 1, &["<sip:100@a>"], ""), src(), "100", 0);
    reg.handle_register(&register("100", 2, &["<sip:100@b>"], ""), src(), "100", 10);
    let out = reg.handle_register(&register("100", 3, &["<sip:100@c>"], ""), src(), "100", 20);
    let kinds: Vec<_> = out
        .changes
        .iter()
        .map(|c| (c.kind, c.binding.contact.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Registered, "sip:100@c"),
            (ChangeKind::Unregistered, "sip:100@a")
        ]
    );
}

#[test]
fn outbound_flows_and_path() {
    let mut reg = Registrar::new(RegistrarConfig::default());
    let inst = "+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1";
    let extra = "Supported: path, outbound\r\nPath: <sip:edge.example;lr>\r\n";
    let out = reg.handle_register(
        &register(
            "100",
            1,
            &[&format!("<sip:100@10.0.0.5:5060;ob>;{inst}")],
            extra,
        ),
        src(),
        "100",
        0,
    );
    assert_eq!(
        out.response.headers.get_str(&HeaderName::Require),
        Some("outbound")
    );
    assert_eq!(
        out.response.headers.get_str(&HeaderName::Path),
        Some("<sip:edge.example;lr>")
    );
    let b = &out.changes[0].binding;
    assert_eq!(
        b.key(),
        BindingKey::Flow("<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>".into(), 1)
    );
    assert_eq!(b.mac.as_deref(), Some("00:a0:c9:1e:6b:f6"));
    assert_eq!(b.path, ["<sip:edge.example;lr>"]);
    // Same flow from a new contact address replaces the binding.
    let out = reg.handle_register(
        &register(
            "100",
            2,
            &[&format!("<sip:100@10.0.0.6:5060;ob>;{inst}")],
            extra,
        ),
        src(),
        "100",
        5,
    );
    assert_eq!(out.changes[0].kind, ChangeKind::Refreshed);
    assert_eq!(reg.lookup("100").len(), 1);
    assert_eq!(reg.lookup("100")[0].contact, "sip:100@10.0.0.6:5060;ob");
}

#[test]
fn restore_skips_expired() {
    let mut reg = Registrar::new(RegistrarConfig::default());
    let out = reg.handle_register(
        &register("100", 1, &["<sip:100@a>", "<sip:100@b>;expires=100"], ""),
        src(),
        "100",
        0,
    );
    let saved: Vec<Binding> = out.changes.into_iter().map(|c| c.binding).collect();
    let mut fresh = Registrar::new(RegistrarConfig::default());
    let expired = fresh.restore(saved, 200_000);
    assert_eq!(expired.len(), 1);
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh.lookup("100")[0].contact, "sip:100@a");
}
