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

/// Who an extension is, for calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Extension number (what others dial).
    pub number: String,
    /// SIP username (the AOR phones register).
    pub username: String,
    /// Display name for caller ID.
    pub display_name: Option<String>,
    /// What the extension may dial.
    pub class: pbx::dialplan::CallClass,
    /// Calls it may be in at once, placed and received together
    /// (`u32::MAX` for callers from a trunk, which have no limit here).
    pub max_calls: u32,
}

/// Username → credentials, and the extension profiles (only enabled
/// extensions are present).
#[derive(Debug, Default, Clone)]
pub struct Directory {
    users: HashMap<String, Credentials>,
    profiles: HashMap<String, Profile>,
    by_number: HashMap<String, String>,
}

impl Directory {
    /// Adds or replaces a user.
    pub fn insert(&mut self, user: String, creds: Credentials) {
        self.users.insert(user, creds);
    }

    /// Adds or replaces an extension profile.
    pub fn insert_profile(&mut self, profile: Profile) {
        self.by_number
            .insert(profile.number.clone(), profile.username.clone());
        self.profiles.insert(profile.username.clone(), profile);
    }

    /// The profile of a SIP username.
    pub fn profile(&self, username: &str) -> Option<&Profile> {
        self.profiles.get(username)
    }

    /// The profile of an extension number.
    pub fn by_number(&self, number: &str) -> Option<&Profile> {
        self.profiles.get(self.by_number.get(number)?)
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
