//! RFC 4475 (SIP Torture Test Messages) as conformance tests.
//!
//! The 49 messages live outside the repository, in
//! `shared/conformance/rfc4475/*.dat` beside the repository root, and are
//! read at test time. [`TABLE`] maps every file to the reaction RFC 4475
//! asks of a UAS / registrar (what this PBX is); the per-message tests below
//! check the field values the RFC describes.

use std::path::PathBuf;

use bytes::Bytes;
use sip::header::{NameAddr, Via};
use sip::uri::Uri;
use sip::validate::{self, Capabilities};
use sip::{HeaderName, Message, Method, Request, Response, StatusCode};

fn vector_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/rfc4475");
    assert!(
        dir.is_dir(),
        "RFC 4475 test vectors not found at {}: the `shared/` folder must sit beside the \
         repository root (shared/conformance/rfc4475/*.dat)",
        dir.display()
    );
    dir
}

fn load(name: &str) -> Bytes {
    let path = vector_dir().join(format!("{name}.dat"));
    let raw =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    Bytes::from(raw)
}

fn parse(name: &str) -> Message {
    Message::parse(load(name)).unwrap_or_else(|e| panic!("{name} must parse: {e}"))
}

fn request(name: &str) -> Request {
    match parse(name) {
        Message::Request(r) => r,
        Message::Response(_) => panic!("{name} is a request"),
    }
}

fn response(name: &str) -> Response {
    match parse(name) {
        Message::Response(r) => r,
        Message::Request(_) => panic!("{name} is a response"),
    }
}

fn header<'a>(r: &'a Request, name: &str) -> Option<&'a Bytes> {
    r.headers.get(&HeaderName::from_bytes(name.as_bytes()))
}

fn all_vias(h: &sip::Headers) -> Vec<Via<'_>> {
    h.get_all(&HeaderName::Via)
        .flat_map(|v| Via::parse_all(v).expect("Via parses"))
        .collect()
}

/// What the server does with a message, as far as this crate decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reaction {
    /// Passes every gate: handed to the transaction user (for a request
    /// the TU may still answer, e.g. 501 for an unknown method).
    Process,
    /// Answered by the stack with this status; the reason phrase must
    /// contain the text.
    Answer(u16, &'static str),
    /// Dropped without an answer (responses, unrecognisable input).
    Drop,
}
use Reaction::*;

/// The pipeline a UAS / registrar runs: parse, syntax gate, capability
/// gate, registrar gate; responses go through the response gate.
fn react(raw: Bytes) -> (Reaction, String) {
    match Message::parse(raw) {
        Err(e) => match e.status() {
            Some(s) => (Answer(s.0, ""), e.detail.to_string()),
            None => (Drop, e.detail.to_string()),
        },
        Ok(Message::Response(r)) => match validate::check_response(&r) {
            Ok(()) => (Process, String::new()),
            Err(reason) => (Drop, reason.to_string()),
        },
        Ok(Message::Request(r)) => {
            let verdict = validate::check_request(&r)
                .and_then(|()| Capabilities::default().check(&r))
                .and_then(|()| match r.method {
                    Method::Register => validate::check_register(&r),
                    _ => Ok(()),
                });
            match verdict {
                Ok(()) => (Process, String::new()),
                Err(rej) => (Answer(rej.status.0, ""), rej.reason.to_string()),
            }
        }
    }
}

/// Every RFC 4475 message → (section, expected reaction).
const TABLE: &[(&str, &str, Reaction)] = &[
    // §3.1.1 Valid messages: all must parse and pass every gate.
    ("wsinv", "3.1.1.1", Process),
    ("intmeth", "3.1.1.2", Process),
    ("esc01", "3.1.1.3", Process),
    ("escnull", "3.1.1.4", Process),
    // The method is RE%47IST%45R, not REGISTER: the TU answers 501.
    ("esc02", "3.1.1.5", Process),
    ("lwsdisp", "3.1.1.6", Process),
    ("longreq", "3.1.1.7", Process),
    // Only the first request of the datagram is taken (Content-Length 0).
    ("dblreq", "3.1.1.8", Process),
    ("semiuri", "3.1.1.9", Process),
    ("transports", "3.1.1.10", Process),
    ("mpart01", "3.1.1.11", Process),
    ("unreason", "3.1.1.12", Process),
    ("noreason", "3.1.1.13", Process),
    // §3.1.2 Invalid messages.
    // Via ";;,;,," and Contact garbage: 400.
    ("badinv01", "3.1.2.1", Answer(400, "Via")),
    // Content-Length beyond the datagram: 400 over UDP (on a stream the
    // framer simply waits for more bytes).
    ("clerr", "3.1.2.2", Answer(400, "Content-Length exceeds")),
    ("ncl", "3.1.2.3", Answer(400, "Content-Length")),
    // CSeq, Max-Forwards, Expires and Contact expires out of range: 400.
    ("scalar02", "3.1.2.4", Answer(400, "CSeq")),
    // A response with out-of-range scalars is discarded.
    ("scalarlg", "3.1.2.5", Drop),
    ("quotbal", "3.1.2.6", Answer(400, "To")),
    ("ltgtruri", "3.1.2.7", Answer(400, "Request-URI")),
    ("lwsruri", "3.1.2.8", Answer(400, "Request-URI")),
    ("lwsstart", "3.1.2.9", Answer(400, "Request-URI")),
    ("trws", "3.1.2.10", Answer(400, "trailing white space")),
    // Escaped headers in the Request-URI: 400 is the acceptable answer.
    ("escruri", "3.1.2.11", Answer(400, "Request-URI")),
    // Date must be GMT: 400.
    ("baddate", "3.1.2.12", Answer(400, "Date")),
    // Contact URI with an escaped header must be in <>: 400.
    ("regbadct", "3.1.2.13", Answer(400, "Contact")),
    ("badaspec", "3.1.2.14", Answer(400, "To")),
    ("baddn", "3.1.2.15", Answer(400, "From")),
    ("badvers", "3.1.2.16", Answer(505, "version")),
    ("mismatch01", "3.1.2.17", Answer(400, "CSeq method")),
    // Unknown method and CSeq mismatch: RFC 4475 prefers 501 (better
    // future-proofing) but accepts 400; our syntax gate answers 400.
    ("mismatch02", "3.1.2.18", Answer(400, "CSeq method")),
    // Status code 4294967301: a response cannot be answered, drop it.
    ("bigcode", "3.1.2.19", Drop),
    // §3.2.1 branch=z9hG4bK with no identifier: the parser must not break;
    // the element may answer 400 or fall back to RFC 2543 matching. We
    // fall back (Via::has_rfc3261_branch() is false).
    ("badbranch", "3.2.1", Process),
    // §3.3 Application-layer semantics.
    // No Call-ID, From, To: 400.
    ("insuf", "3.3.1", Answer(400, "Missing")),
    // Unknown Request-URI scheme: a UAS answers 416.
    ("unkscm", "3.3.2", Answer(416, "Scheme")),
    // soap.beep: an element that never accepts the scheme answers 416.
    ("novelsc", "3.3.3", Answer(416, "Scheme")),
    // Non-SIP URIs in To/From/Contact are well-formed; a proxy forwards,
    // but a registrar answers 400 because the AOR (To) must be SIP/SIPS.
    ("unksm2", "3.3.4", Answer(400, "Address-of-record")),
    // Unknown Require tags: 420 with Unsupported (a UAS ignores
    // Proxy-Require; a proxy would answer 420 for it).
    ("bext01", "3.3.5", Answer(420, "Bad Extension")),
    // Unknown body type: 415 with Accept listing what we understand.
    ("invut", "3.3.6", Answer(415, "Media Type")),
    // Unknown Authorization scheme: well-formed; a registrar that
    // authenticates challenges with 401 (server policy, not syntax), one
    // that does not ignores the header. Must be forwarded unmodified.
    ("regaut01", "3.3.7", Process),
    ("multi01", "3.3.8", Answer(400, "Duplicate")),
    ("mcl01", "3.3.9", Answer(400, "Content-Length")),
    // A UAC processes this 200; a proxy must not forward it to the
    // broadcast sent-by of the second Via (see bcast_second_via_is_broadcast).
    ("bcast", "3.3.10", Process),
    // Max-Forwards 0: an endpoint processes the request as if it were
    // positive (OPTIONS answered normally); a proxy answers 483.
    ("zeromf", "3.3.11", Process),
    // ";unknownparam" outside <> is a contact-param: registration succeeds.
    ("cparam01", "3.3.12", Process),
    // ";unknownparam" inside <> is a URI parameter: registration succeeds.
    ("cparam02", "3.3.13", Process),
    // Escaped header inside <> in Contact is legal: the registrar stores it.
    ("regescrt", "3.3.14", Process),
    // Accept excludes application/sdp for an INVITE: 406.
    ("sdp01", "3.3.15", Answer(406, "Not Acceptable")),
    // §3.4.1 RFC 2543 INVITE (no branch, no From tag, no Content-Length,
    // no Max-Forwards): accepted for backward compatibility.
    ("inv2543", "3.4.1", Process),
];

#[test]
fn table_covers_every_file() {
    let mut files: Vec<String> = std::fs::read_dir(vector_dir())
        .expect("list vector folder")
        .filter_map(|e| {
            let p = e.ok()?.path();
            if p.extension()? != "dat" {
                return None;
            }
            Some(p.file_stem()?.to_string_lossy().into_owned())
        })
        .collect();
    files.sort();
    let mut listed: Vec<String> = TABLE.iter().map(|(n, _, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(files.len(), 49, "RFC 4475 has 49 messages");
    assert_eq!(
        files, listed,
        "every .dat file must have exactly one table row"
    );
}

#[test]
fn every_message_gets_the_rfc_reaction() {
    let mut failures = Vec::new();
    for &(name, section, expected) in TABLE {
        let (got, reason) = react(load(name));
        let ok = match (expected, got) {
            (Answer(e, text), Answer(g, _)) => {
                e == g && reason.to_lowercase().contains(&text.to_lowercase())
            }
            (e, g) => e == g,
        };
        if !ok {
            failures.push(format!(
                "{name} (§{section}): expected {expected:?}, got {got:?} ({reason})"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "RFC 4475 mismatches:\n{}",
        failures.join("\n")
    );
}

/// Parse → serialize → parse gives the same message for every valid one.
#[test]
fn valid_messages_round_trip() {
    for &(name, _, expected) in TABLE {
        if expected != Process {
            continue;
        }
        let first = parse(name);
        let again = Message::parse(first.to_bytes())
            .unwrap_or_else(|e| panic!("{name}: re-parse of serialized form failed: {e}"));
        assert_eq!(
            without_length(&first),
            without_length(&again),
            "{name}: round trip changed the message"
        );
    }
}

// ---- §3.1.1 valid messages: field values -------------------------------

#[test]
fn wsinv_short_tortuous_invite() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(uri.host(), "chair-dnrc.example.com");
    assert_eq!(uri.param("unknownparam"), Some(None));

    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.as_str(), "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(to.tag(), Some("1918181833n"));
    let from = r.headers.from().unwrap();
    assert_eq!(from.display_name().as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.uri.as_str(), "sip:jdrosen@example.com");
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(
        &r.headers.get(&HeaderName::MaxForwards).unwrap()[..],
        b"0068"
    );
    assert_eq!(sip::scan::parse_u32(b"0068"), Some(68));
    let cseq = r.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(r.headers.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
    assert_eq!(r.body.len(), 150);
    // Empty Subject ("s :") is kept.
    assert_eq!(
        r.headers.get(&HeaderName::Subject).map(|v| v.len()),
        Some(0)
    );

    // One Via line, then a `v:` line folded over three lines with two values.
    let lines: Vec<&Bytes> = r.headers.get_all(&HeaderName::Via).collect();
    assert_eq!(lines.len(), 2);
    let top = r.headers.top_via().unwrap();
    assert_eq!((top.transport, top.host), ("UDP", "192.0.2.2"));
    assert_eq!(top.branch(), Some("390skdjuw"));
    let v = Via::parse_all(lines[1]).unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!((v[0].transport, v[0].host), ("TCP", "spindle.example.com"));
    assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!((v[1].transport, v[1].host), ("UDP", "192.168.255.111"));
    assert_eq!(v[1].branch(), Some("z9hG4bK30239"));

    let contacts = r.headers.list_values(&HeaderName::Contact);
    assert_eq!(contacts.len(), 1);
    let c = NameAddr::parse(contacts[0].clone()).unwrap();
    assert_eq!(c.display_name().as_deref(), Some(r#"Quoted string """#));
    assert_eq!(c.param("newparam"), Some(Some("newvalue")));
    assert_eq!(c.param("secondparam"), Some(None));
    assert_eq!(c.param("q"), Some(Some("0.33")));
    let route = NameAddr::parse(r.headers.get(&HeaderName::Route).unwrap().clone()).unwrap();
    let ru = route.uri.as_sip().unwrap();
    assert!(ru.is_loose_route());
    assert_eq!(ru.param("unknownwith"), Some(Some("value")));
    assert_eq!(ru.param("unknown-no-value"), Some(None));

    // Unknown headers survive a serialize round trip byte-exact.
    assert_eq!(
        &header(&r, "NewFangledHeader").unwrap()[..],
        b"newfangled value continued newfangled value"
    );
    assert_eq!(
        &header(&r, "UnknownHeaderWithUnusualValue").unwrap()[..],
        b";;,,;;,;"
    );
    let out = Message::Request(r.clone()).to_bytes();
    let text = &out[..];
    assert!(memfind(
        text,
        b"\r\nUnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    ));
    assert!(memfind(
        text,
        b"\r\nNewFangledHeader: newfangled value continued newfangled value\r\n"
    ));
    let Message::Request(back) = Message::parse(out).unwrap() else {
        panic!()
    };
    assert_eq!(back.headers, r.headers);
    assert_eq!(back.body, r.body);
}

/// The message minus Content-Length lines (the serializer always writes
/// one, with the body's real length; inv2543 has none).
fn without_length(m: &Message) -> Message {
    let mut m = m.clone();
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn intmeth_wide_range_of_valid_characters() {
    let r = request("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(r.method.as_str(), method);
    assert!(matches!(r.method, Method::Other(_)));
    assert_eq!(r.headers.cseq().unwrap().method, r.method);
    assert_eq!(r.headers.cseq().unwrap().seq, 139122385);
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(
        uri.user(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(uri.host(), "example.com");
    assert!(!uri.has_headers());
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK-.!%66*_+`'~")
    );
    let to = r.headers.to().unwrap();
    assert_eq!(
        to.display_name().as_deref(),
        Some("BEL:\x07 NUL:\0 DEL:\x7f")
    );
    let from = r.headers.from().unwrap();
    assert_eq!(
        from.display_name().as_deref(),
        Some("token1~` token2'+_ token3*%!.-")
    );
    assert_eq!(from.tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        r.headers.call_id(),
        Some(r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#)
    );
    let ext = header(&r, "extensionHeader-!.%*+_`'~").unwrap();
    assert_eq!(
        std::str::from_utf8(ext).unwrap(),
        "\u{FEFF}\u{5927}\u{505C}\u{96FB}"
    );
}

#[test]
fn esc01_escaped_request_uri_user() {
    let r = request("esc01");
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(uri.user_decoded().unwrap(), b"sips:user@example.com");
    assert_eq!(uri.host(), "example.net");
    let to = r.headers.to().unwrap();
    assert_eq!(to.uri.as_sip().unwrap().user_decoded().unwrap(), b"user");
    let from = r.headers.from().unwrap();
    assert_eq!(
        from.uri.as_sip().unwrap().user_decoded().unwrap(),
        b"I have spaces"
    );
    // Compact forms i: and C:.
    assert_eq!(
        r.headers.call_id(),
        Some("esc01.239409asdfakjkn23onasd0-3234")
    );
    assert_eq!(
        r.headers.get_str(&HeaderName::ContentType),
        Some("application/sdp")
    );
    let c = r.headers.list_values(&HeaderName::Contact);
    let c = NameAddr::parse(c[0].clone()).unwrap();
    assert_eq!(
        c.uri.as_str(),
        "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31"
    );
    assert_eq!(c.uri.as_sip().unwrap().user_decoded().unwrap(), b"caller");
}

#[test]
fn escnull_escaped_nulls() {
    let r = request("escnull");
    assert_eq!(r.method, Method::Register);
    let to = r.headers.to().unwrap();
    assert_eq!(
        to.uri.as_sip().unwrap().user_decoded().unwrap(),
        b"null-\0-null"
    );
    let c = r.headers.list_values(&HeaderName::Contact);
    assert_eq!(c.len(), 2);
    let user = |b: &Bytes| {
        NameAddr::parse(b.clone())
            .unwrap()
            .uri
            .as_sip()
            .unwrap()
            .user_decoded()
            .unwrap()
    };
    assert_eq!(user(&c[0]), b"\0");
    assert_eq!(user(&c[1]), b"\0\0");
}

#[test]
fn esc02_escapes_are_not_names() {
    let r = request("esc02");
    // RE%47IST%45R is its own (unknown) method, not REGISTER.
    assert_eq!(r.method.as_str(), "RE%47IST%45R");
    assert_ne!(r.method, Method::Register);
    assert_eq!(r.headers.cseq().unwrap().method, r.method);
    assert_eq!(
        r.headers.to().unwrap().display_name().as_deref(),
        Some("%Z%45")
    );
    assert_eq!(
        r.headers.top_via().unwrap().branch(),
        Some("z9hG4bK209%fzsnel234")
    );
    // C%6Fntact is an unknown header, not a third Contact.
    let contacts = r.headers.list_values(&HeaderName::Contact);
    assert_eq!(contacts.len(), 2);
    assert_eq!(
        &header(&r, "C%6Fntact").unwrap()[..],
        b"<sip:alias2@host2.example.com>"
    );
}

#[test]
fn lwsdisp_no_lws_between_display_name_and_bracket() {
    let r = request("lwsdisp");
    let from = r.headers.from().unwrap();
    assert_eq!(from.display_name().as_deref(), Some("caller"));
    assert_eq!(from.uri.as_str(), "sip:caller@example.com");
    assert_eq!(from.tag(), Some("323"));
}

#[test]
fn longreq_long_values() {
    let r = request("longreq");
    let to = r.headers.to().unwrap();
    assert!(
        to.display_name()
            .unwrap()
            .starts_with("I have a user name of extremeextreme")
    );
    let tu = to.uri.as_sip().unwrap();
    assert_eq!(tu.port(), Some(6000));
    let long = tu.param("unknownparam1").flatten().unwrap();
    assert!(
        long.starts_with("verylonglong") && long.ends_with("longvalue"),
        "{long}"
    );
    assert!(tu.param("verylonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglonglongParameterNameWithNoValue").is_some());
    assert!(r.headers.from().unwrap().tag().unwrap().len() > 50);
    assert!(r.headers.call_id().unwrap().len() > 100);
    // 34 Via lines in every mixed-case and compact spelling.
    let vias = all_vias(&r.headers);
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, "sip33.example.com");
    let last = vias.last().unwrap();
    assert_eq!(last.received(), Some("192.0.2.5"));
    assert!(last.branch().unwrap().len() > 100);
    let unknown = r
        .headers
        .iter()
        .find(|h| h.name.as_str().starts_with("Unknown-LongLong"))
        .unwrap();
    assert!(unknown.name.as_str().len() > 80 && unknown.value.len() > 300);
    assert_eq!(r.body.len(), 150);
}

#[test]
fn dblreq_only_first_request_of_datagram() {
    let r = request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(
        r.headers.call_id(),
        Some("dblreq.0ha0isndaksdj99sdfafnl3lk233412")
    );
    assert_eq!(r.headers.len(), 8);
    assert!(r.headers.get(&HeaderName::ContentType).is_none());
    assert_eq!(r.headers.cseq().unwrap().method, Method::Register);
}

#[test]
fn semiuri_semicolon_in_user_part() {
    let r = request("semiuri");
    let u = r.uri.as_sip().unwrap();
    assert_eq!(u.user(), Some("user;par=u%40example.net"));
    assert_eq!(u.host(), "example.com");
    assert!(u.params().is_empty());
    let accept = r.headers.list_values(&HeaderName::Accept);
    assert_eq!(accept.len(), 6);
    assert_eq!(&accept[5][..], b"message/sipfrag");
}

#[test]
fn transports_unknown_transport_accepted() {
    let r = request("transports");
    let t: Vec<&str> = all_vias(&r.headers).iter().map(|v| v.transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    assert_eq!(
        r.headers.call_id(),
        Some("transports.kijh4akdnaqjkwendsasfdj")
    );
}

#[test]
fn mpart01_multipart_body_byte_exact() {
    let raw = load("mpart01");
    let r = request("mpart01");
    assert_eq!(r.method, Method::Message);
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(r.body.len(), 553);
    assert_eq!(&r.body[..], &raw[head_end..head_end + 553]);
    assert!(
        std::str::from_utf8(&r.body).is_err(),
        "body holds binary data"
    );
    assert!(
        r.headers
            .get_str(&HeaderName::ContentType)
            .unwrap()
            .starts_with("multipart/mixed;boundary=7a9cbec02ceef655")
    );
    let Message::Request(back) = Message::parse(Message::Request(r.clone()).to_bytes()).unwrap()
    else {
        panic!()
    };
    assert_eq!(back.body, r.body);
}

#[test]
fn unreason_utf8_reason_phrase() {
    let r = response("unreason");
    assert_eq!(r.status, StatusCode::OK);
    let reason = std::str::from_utf8(&r.reason).expect("UTF-8 reason phrase");
    assert!(reason.starts_with("= 2**3 * 5**2 "));
    assert!(reason.contains('\u{43d}'), "{reason}");
    assert_eq!(r.body.len(), 154);
    let out = Message::Response(r.clone()).to_bytes();
    let Message::Response(back) = Message::parse(out).unwrap() else {
        panic!()
    };
    assert_eq!(back.reason, r.reason);
}

#[test]
fn noreason_empty_reason_phrase() {
    let r = response("noreason");
    assert_eq!(r.status, StatusCode::TRYING);
    assert!(r.reason.is_empty());
    assert!(validate::check_response(&r).is_ok());
}

// ---- §3.1.2 invalid messages: details -----------------------------------

#[test]
fn invalid_request_lines_keep_headers_for_the_answer() {
    for name in [
        "badvers", "clerr", "ncl", "mcl01", "ltgtruri", "lwsruri", "lwsstart", "trws",
    ] {
        let e = Message::parse(load(name)).unwrap_err();
        assert!(e.is_request, "{name}");
        let h = e
            .headers
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: headers kept"));
        assert!(h.call_id().is_some() && h.top_via().is_some(), "{name}");
    }
}

#[test]
fn bigcode_and_scalarlg_are_dropped() {
    let e = Message::parse(load("bigcode")).unwrap_err();
    assert_eq!(e.kind, sip::message::ParseErrorKind::BadStatusCode);
    assert_eq!(e.status(), None);
    let r = response("scalarlg");
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(validate::check_response(&r), Err("Malformed CSeq"));
}

#[test]
fn scalar02_every_overlarge_scalar_is_caught() {
    let text = String::from_utf8(load("scalar02").to_vec()).unwrap();
    // Fix each field in turn: the next one must still be caught.
    let fixed_cseq = text.replace("36893488147419103232", "1");
    let (reaction, reason) = react(Bytes::from(fixed_cseq.clone()));
    assert_eq!(
        (reaction, reason.as_str()),
        (Answer(400, ""), "Malformed Contact expires")
    );
    let fixed_ct = fixed_cseq.replace("280297596632815", "3600");
    let (_, reason) = react(Bytes::from(fixed_ct.clone()));
    assert_eq!(reason, "Malformed Max-Forwards");
    let fixed_mf = fixed_ct.replace("Max-Forwards: 300", "Max-Forwards: 70");
    let (_, reason) = react(Bytes::from(fixed_mf.clone()));
    assert_eq!(reason, "Malformed Expires");
    let fixed_exp: String = fixed_mf
        .split_inclusive('\n')
        .map(|l| {
            if l.starts_with("Expires:") {
                "Expires: 10\r\n"
            } else {
                l
            }
        })
        .collect();
    assert_eq!(react(Bytes::from(fixed_exp)).0, Process);
}

#[test]
fn uas_rejections_carry_the_required_headers() {
    let bext = Capabilities::default()
        .check(&request("bext01"))
        .unwrap_err();
    assert_eq!(bext.status, StatusCode::BAD_EXTENSION);
    assert_eq!(
        bext.headers,
        vec![(
            HeaderName::Unsupported,
            "nothingSupportsThis, nothingSupportsThisEither".to_string()
        )]
    );
    let invut = Capabilities::default()
        .check(&request("invut"))
        .unwrap_err();
    assert_eq!(invut.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        invut.headers,
        vec![(HeaderName::Accept, "application/sdp".to_string())]
    );
}

// ---- §3.2 / §3.3 / §3.4 -------------------------------------------------

#[test]
fn badbranch_bare_cookie_falls_back_to_2543_matching() {
    let r = request("badbranch");
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.branch(), Some("z9hG4bK"));
    assert!(!via.has_rfc3261_branch());
}

#[test]
fn unkscm_and_unksm2_uri_schemes() {
    let r = request("unkscm");
    assert_eq!(r.uri.scheme(), "nobodyKnowsThisScheme");
    let r = request("novelsc");
    assert_eq!(r.uri.scheme(), "soap.beep");
    let r = request("unksm2");
    assert!(
        validate::check_request(&r).is_ok(),
        "well-formed for a proxy"
    );
    assert_eq!(r.headers.to().unwrap().uri.scheme(), "isbn");
    assert_eq!(r.headers.from().unwrap().uri.scheme(), "http");
    let c = r.headers.list_values(&HeaderName::Contact);
    assert_eq!(
        NameAddr::parse(c[0].clone()).unwrap().uri.as_str(),
        "name:John_Smith"
    );
    assert_eq!(
        validate::check_register(&r).unwrap_err().status,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn regaut01_unknown_auth_scheme_forwarded_unmodified() {
    let r = request("regaut01");
    let auth = r.headers.get(&HeaderName::Authorization).unwrap();
    assert_eq!(&auth[..], b"NoOneKnowsThisScheme opaque-data=here");
    let out = Message::Request(r).to_bytes();
    assert!(memfind(
        &out,
        b"\r\nAuthorization: NoOneKnowsThisScheme opaque-data=here\r\n"
    ));
}

#[test]
fn bcast_second_via_is_broadcast() {
    let r = response("bcast");
    let vias = all_vias(&r.headers);
    assert_eq!(vias.len(), 2);
    // A proxy pops the first Via and would send to this: it must drop the
    // response instead.
    assert_eq!(vias[1].host, "255.255.255.255");
    assert_eq!(r.body.len(), 154);
}

#[test]
fn zeromf_max_forwards_zero() {
    let r = request("zeromf");
    assert_eq!(r.method, Method::Options);
    assert_eq!(r.headers.get_str(&HeaderName::MaxForwards), Some("0"));
    // An endpoint (our UAS) processes it; a proxy would answer 483.
    assert!(validate::check_request(&r).is_ok());
}

#[test]
fn cparam_contact_vs_uri_parameters() {
    let r = request("cparam01");
    let c = NameAddr::parse(r.headers.list_values(&HeaderName::Contact)[0].clone()).unwrap();
    assert!(!c.is_bracketed());
    assert_eq!(c.param("unknownparam"), Some(None), "contact-param");
    assert_eq!(c.uri.as_str(), "sip:+19725552222@gw1.example.net");
    assert!(c.uri.as_sip().unwrap().params().is_empty());

    let r = request("cparam02");
    let c = NameAddr::parse(r.headers.list_values(&HeaderName::Contact)[0].clone()).unwrap();
    assert!(c.is_bracketed());
    assert_eq!(c.param("unknownparam"), None);
    assert_eq!(
        c.uri.as_sip().unwrap().param("unknownparam"),
        Some(None),
        "url-param"
    );
}

#[test]
fn regescrt_contact_with_escaped_header_is_stored() {
    let r = request("regescrt");
    let c = NameAddr::parse(r.headers.list_values(&HeaderName::Contact)[0].clone()).unwrap();
    let u = c.uri.as_sip().unwrap();
    assert!(u.has_headers());
    assert_eq!(u.headers_raw(), "Route=%3Csip:sip.example.com%3E");
    assert_eq!(
        c.uri.as_str(),
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    );
}

#[test]
fn inv2543_rfc2543_invite() {
    let raw = load("inv2543");
    let r = request("inv2543");
    let via = r.headers.top_via().unwrap();
    assert_eq!(via.branch(), None);
    assert!(!via.has_rfc3261_branch());
    assert_eq!(r.headers.from().unwrap().tag(), None);
    assert!(r.headers.get(&HeaderName::MaxForwards).is_none());
    assert!(r.headers.get(&HeaderName::ContentLength).is_none());
    // The body runs to the end of the datagram.
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&r.body[..], &raw[head_end..]);
    let rr = r.headers.list_values(&HeaderName::RecordRoute);
    let rr = NameAddr::parse(rr[0].clone()).unwrap();
    assert_eq!(
        rr.uri.as_sip().unwrap().param("maddr"),
        Some(Some("ss1.example.com"))
    );
    assert!(matches!(r.headers.to().unwrap().uri, Uri::Sip(_)));
}
