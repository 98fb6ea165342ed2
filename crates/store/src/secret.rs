//! Secrets at rest: AES-256-GCM sealing of small values, PBKDF2 password
//! hashes and SIP digest HA1 values.
//!
//! * Sealed values are `v1:` followed by base64 (standard alphabet, padded)
//!   of `nonce (12 bytes) || ciphertext || tag (16 bytes)`. Each value gets a
//!   fresh random 96-bit nonce. A caller-chosen *context* is authenticated as
//!   associated data, so a ciphertext copied to another row or column fails
//!   to open.
//! * Password hashes are `pbkdf2-sha256$600000$<salt>$<hash>` with unpadded
//!   standard base64, a 16-byte random salt and a 32-byte PBKDF2-HMAC-SHA256
//!   output (600 000 iterations, the OWASP 2023 figure). Verification is
//!   constant-time.
//! * HA1 for SIP digest authentication is `H(username:realm:password)` with
//!   MD5 (RFC 2617 §3.2.2.2) or SHA-256 (RFC 7616 §3.4.2), in lowercase hex.
//!
//! All primitives come from aws-lc-rs (one provider, FIPS-capable) except MD5,
//! which only the `md-5` crate offers.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, pbkdf2, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// Length of a [`MasterKey`] in bytes.
pub const KEY_LEN: usize = 32;
/// PBKDF2 iterations used by [`hash_password`].
pub const PBKDF2_ITERATIONS: u32 = 600_000;
/// Upper bound accepted when verifying a stored hash, so a tampered row cannot
/// make verification run for minutes.
const PBKDF2_MAX_ITERATIONS: u32 = 10_000_000;
const SEALED_PREFIX: &str = "v1:";
const HASH_PREFIX: &str = "pbkdf2-sha256";
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Failures of the secret primitives.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// The master key text is not 64 hex characters or base64 of 32 bytes.
    #[error("invalid master key: {0}")]
    InvalidKey(&'static str),
    /// A sealed value is not `v1:` + base64 of a plausible length.
    #[error("malformed sealed value")]
    MalformedSealed,
    /// Authentication failed: wrong key, wrong context or tampered data.
    #[error("cannot decrypt sealed value (wrong key or tampered data)")]
    Decrypt,
    /// A stored password hash is not in the `pbkdf2-sha256$…` format.
    #[error("malformed password hash")]
    MalformedHash,
    /// The system random generator or the cipher failed.
    #[error("crypto provider failure")]
    Provider,
}

/// The 32-byte key that seals secrets in the database.
///
/// Parse it from configuration with [`str::parse`] (64 hex characters or
/// base64 of 32 bytes) or create one with [`MasterKey::generate`]. The key is
/// never shown by `Debug` and is zeroed when dropped.
#[derive(Clone)]
pub struct MasterKey([u8; KEY_LEN]);

impl MasterKey {
    /// A fresh random key from the system CSPRNG.
    pub fn generate() -> Result<Self, SecretError> {
        let mut key = [0u8; KEY_LEN];
        rand::fill(&mut key).map_err(|_| SecretError::Provider)?;
        Ok(Self(key))
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The key as 64 lowercase hex characters, for writing a generated key
    /// into configuration. Handle the result as a secret.
    pub fn to_hex(&self) -> String {
        to_hex(&self.0)
    }

    /// Encrypts `plaintext`, binding it to `context` (e.g. the table, column
    /// and row key), and returns the `v1:` text form.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, SecretError> {
        let key = self.aead_key()?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| SecretError::Provider)?;
        let mut body = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            &mut body,
        )
        .map_err(|_| SecretError::Provider)?;
        let mut buf = Vec::with_capacity(NONCE_LEN + body.len());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(&body);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(&buf)))
    }

    /// Decrypts a value produced by [`MasterKey::seal`] with the same
    /// `context`.
    pub fn open(&self, sealed: &str, context: &[u8]) -> Result<Vec<u8>, SecretError> {
        let b64 = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SecretError::MalformedSealed)?;
        let raw = STANDARD
            .decode(b64)
            .map_err(|_| SecretError::MalformedSealed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretError::MalformedSealed);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretError::MalformedSealed)?;
        let mut body = body.to_vec();
        let key = self.aead_key()?;
        let plain = key
            .open_in_place(nonce, Aad::from(context), &mut body)
            .map_err(|_| SecretError::Decrypt)?;
        Ok(plain.to_vec())
    }

    fn aead_key(&self) -> Result<LessSafeKey, SecretError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.0).map_err(|_| SecretError::Provider)?;
        Ok(LessSafeKey::new(unbound))
    }
}

impl FromStr for MasterKey {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bytes = if s.len() == 2 * KEY_LEN && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            from_hex(s).ok_or(SecretError::InvalidKey("bad hex"))?
        } else {
            STANDARD
                .decode(s)
                .or_else(|_| STANDARD_NO_PAD.decode(s))
                .map_err(|_| SecretError::InvalidKey("neither 64 hex characters nor base64"))?
        };
        let key: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| SecretError::InvalidKey("must be exactly 32 bytes"))?;
        Ok(Self(key))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        for byte in &mut self.0 {
            // Volatile so the wipe is not optimised away as a dead store.
            // SAFETY: `byte` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// Hashes a password (or voicemail PIN) with PBKDF2-HMAC-SHA256 and a random
/// salt. Slow by design (hundreds of milliseconds): call it off the async
/// executor.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt).map_err(|_| SecretError::Provider)?;
    let mut out = [0u8; HASH_LEN];
    let iterations = NonZeroU32::new(PBKDF2_ITERATIONS).ok_or(SecretError::Provider)?;
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "{HASH_PREFIX}${PBKDF2_ITERATIONS}${}${}",
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(out)
    ))
}

/// Checks `password` against a hash from [`hash_password`] in constant time.
///
/// Returns `Ok(false)` for a wrong password and an error only when the stored
/// hash is malformed.
pub fn verify_password(password: &str, stored: &str) -> Result<bool, SecretError> {
    let mut parts = stored.split('$');
    let (Some(HASH_PREFIX), Some(iter), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SecretError::MalformedHash);
    };
    let iterations: u32 = iter.parse().map_err(|_| SecretError::MalformedHash)?;
    if iterations > PBKDF2_MAX_ITERATIONS {
        return Err(SecretError::MalformedHash);
    }
    let iterations = NonZeroU32::new(iterations).ok_or(SecretError::MalformedHash)?;
    let salt = STANDARD_NO_PAD
        .decode(salt)
        .map_err(|_| SecretError::MalformedHash)?;
    let hash = STANDARD_NO_PAD
        .decode(hash)
        .map_err(|_| SecretError::MalformedHash)?;
    if hash.is_empty() {
        return Err(SecretError::MalformedHash);
    }
    Ok(pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok())
}

/// Hash algorithm of a SIP digest credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `MD5` (RFC 2617; still what most phones send).
    Md5,
    /// `SHA-256` (RFC 7616).
    Sha256,
}

impl DigestAlgorithm {
    /// The token used in `WWW-Authenticate: Digest algorithm=…`.
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
}

/// An HA1 value, `H(username:realm:password)` in lowercase hex.
///
/// It is password-equivalent for its realm, so `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1(String);

impl Ha1 {
    /// Computes HA1 per RFC 7616 §3.4.2 (RFC 2617 §3.2.2.2 for MD5).
    pub fn compute(algorithm: DigestAlgorithm, username: &str, realm: &str, password: &str) -> Ha1 {
        let input = format!("{username}:{realm}:{password}");
        let hex = match algorithm {
            DigestAlgorithm::Md5 => {
                use md5::Digest as _;
                to_hex(&md5::Md5::digest(input.as_bytes()))
            }
            DigestAlgorithm::Sha256 => {
                to_hex(digest::digest(&digest::SHA256, input.as_bytes()).as_ref())
            }
        };
        Ha1(hex)
    }

    /// Wraps an HA1 already in lowercase hex (e.g. just decrypted).
    pub(crate) fn from_hex(hex: String) -> Ha1 {
        Ha1(hex)
    }

    /// The lowercase hex value, for the digest computation.
    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ha1(<redacted>)")
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
