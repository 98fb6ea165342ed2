//! The in-memory directory of who may authenticate: SIP username → HA1
//! values for the realm. Checks run on the core's hot path, so they never
//! touch the database; the directory is rebuilt when extensions change.

use ahash::HashMap;

use sip::auth::Algorithm;

/// HA1 values of one user.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// H(user:realm:password) with MD5.
    pub ha1_md5: String,
    /// The same with SHA-256.
    pub ha1_sha256: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// Username → credentials (only enabled extensions are present).
#[derive(Debug, Default, Clone)]
pub struct Directory {
    users: HashMap<String, Credentials>,
}

impl Directory {
    /// Adds or replaces a user.
    pub fn insert(&mut self, user: String, creds: Credentials) {
        self.users.insert(user, creds);
    }

    /// The stored HA1 for `user` and `alg`.
    pub fn ha1(&self, user: &str, alg: Algorithm) -> Option<String> {
        self.users.get(user).map(|c| match alg {
            Algorithm::Md5 => c.ha1_md5.clone(),
            Algorithm::Sha256 => c.ha1_sha256.clone(),
        })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }
}
