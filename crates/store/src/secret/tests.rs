use super::*;

fn key() -> MasterKey {
    MasterKey::from_bytes([7u8; KEY_LEN])
}

#[test]
fn seal_round_trip_uses_fresh_nonces() {
    let k = key();
    let a = k.seal(b"secret value", b"ctx").unwrap();
    let b = k.seal(b"secret value", b"ctx").unwrap();
    assert!(a.starts_with("v1:"));
    assert_ne!(a, b, "each seal must use a new nonce");
    assert_eq!(k.open(&a, b"ctx").unwrap(), b"secret value");
    assert_eq!(k.open(&b, b"ctx").unwrap(), b"secret value");
}

#[test]
fn tampered_ciphertext_fails() {
    let k = key();
    let sealed = k.seal(b"secret value", b"ctx").unwrap();
    let mut raw = STANDARD.decode(&sealed[3..]).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    let tampered = format!("v1:{}", STANDARD.encode(&raw));
    assert_eq!(k.open(&tampered, b"ctx"), Err(SecretError::Decrypt));
    raw[last] ^= 0x01;
    raw[NONCE_LEN] ^= 0x80;
    let tampered = format!("v1:{}", STANDARD.encode(&raw));
    assert_eq!(k.open(&tampered, b"ctx"), Err(SecretError::Decrypt));
}

#[test]
fn wrong_key_or_context_fails() {
    let sealed = key().seal(b"secret value", b"ctx").unwrap();
    let other = MasterKey::from_bytes([8u8; KEY_LEN]);
    assert_eq!(other.open(&sealed, b"ctx"), Err(SecretError::Decrypt));
    assert_eq!(key().open(&sealed, b"other"), Err(SecretError::Decrypt));
}

#[test]
fn malformed_sealed_values_are_rejected() {
    let k = key();
    for bad in ["", "v2:AAAA", "v1:not base64!", "v1:AAAA"] {
        assert_eq!(k.open(bad, b""), Err(SecretError::MalformedSealed), "{bad}");
    }
}

#[test]
fn master_key_parses_hex_and_base64() {
    let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let from_hex: MasterKey = hex.parse().unwrap();
    assert_eq!(from_hex.to_hex(), hex);
    let from_upper: MasterKey = hex.to_uppercase().parse().unwrap();
    assert_eq!(from_upper.to_hex(), hex);
    let b64 = STANDARD.encode(from_hex.0);
    let from_b64: MasterKey = b64.parse().unwrap();
    assert_eq!(from_b64.0, from_hex.0);
    let b64_np = STANDARD_NO_PAD.encode(from_hex.0);
    assert_eq!(b64_np.parse::<MasterKey>().unwrap().0, from_hex.0);
    assert!("abcd".parse::<MasterKey>().is_err());
    assert!(STANDARD.encode([1u8; 31]).parse::<MasterKey>().is_err());
    assert!("zz".repeat(32).parse::<MasterKey>().is_err());
    let generated = MasterKey::generate().unwrap();
    assert_ne!(generated.0, MasterKey::generate().unwrap().0);
}

#[test]
fn debug_output_redacts_secrets() {
    let k: MasterKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
        .parse()
        .unwrap();
    let shown = format!("{k:?}");
    assert_eq!(shown, "MasterKey(<redacted>)");
    let ha1 = Ha1::compute(DigestAlgorithm::Md5, "u", "r", "p");
    let shown = format!("{ha1:?}");
    assert!(!shown.contains(ha1.as_hex()), "{shown}");
    assert_eq!(shown, "Ha1(<redacted>)");
}

#[test]
fn pbkdf2_round_trip_and_wrong_password() {
    let stored = hash_password("1234").unwrap();
    let parts: Vec<&str> = stored.split('$').collect();
    assert_eq!(parts[0], "pbkdf2-sha256");
    assert_eq!(parts[1], "600000");
    assert_eq!(STANDARD_NO_PAD.decode(parts[2]).unwrap().len(), SALT_LEN);
    assert_eq!(STANDARD_NO_PAD.decode(parts[3]).unwrap().len(), HASH_LEN);
    assert!(verify_password("1234", &stored).unwrap());
    assert!(!verify_password("1235", &stored).unwrap());
    assert!(!verify_password("", &stored).unwrap());
    assert_ne!(
        stored,
        hash_password("1234").unwrap(),
        "salt must be random"
    );
}

#[test]
fn pbkdf2_verifies_other_iteration_counts() {
    // A cheap hash in the same format, as an older or tuned deployment might store.
    let salt = b"0123456789abcdef";
    let mut out = [0u8; HASH_LEN];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(1000).unwrap(),
        salt,
        b"pin",
        &mut out,
    );
    let stored = format!(
        "pbkdf2-sha256$1000${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    );
    assert!(verify_password("pin", &stored).unwrap());
    assert!(!verify_password("pim", &stored).unwrap());
}

#[test]
fn malformed_hashes_are_errors() {
    for bad in [
        "",
        "pbkdf2-sha256$600000$abc",
        "pbkdf2-sha1$1000$AAAA$AAAA",
        "pbkdf2-sha256$0$AAAA$AAAA",
        "pbkdf2-sha256$99999999999$AAAA$AAAA",
        "pbkdf2-sha256$1000$!!$AAAA",
        "pbkdf2-sha256$1000$AAAA$",
        "pbkdf2-sha256$1000$AAAA$AAAA$extra",
    ] {
        assert_eq!(
            verify_password("x", bad),
            Err(SecretError::MalformedHash),
            "{bad}"
        );
    }
}

#[test]
fn ha1_matches_reference_values() {
    // RFC 2617 §3.5 example credentials.
    let md5 = Ha1::compute(
        DigestAlgorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
    );
    assert_eq!(md5.as_hex(), "939e7578ed9e3c518a452acee763bce9");
    // RFC 7616 §3.9.1 example credentials; value from coreutils sha256sum.
    let sha = Ha1::compute(
        DigestAlgorithm::Sha256,
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
    );
    assert_eq!(
        sha.as_hex(),
        "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
    );
}
