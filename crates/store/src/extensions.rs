//! Extensions: the PBX's users, with their SIP digest credentials, voicemail
//! PIN and outbound calling permission.
//!
//! Credentials are stored as HA1 values (RFC 7616 §3.4.2), MD5 and SHA-256,
//! each sealed with the store's [`MasterKey`]; the plain password is never
//! kept. The seal's context is the column and the SIP username, so a sealed
//! value moved to another row does not open. The voicemail PIN is a PBKDF2
//! hash.

use crate::db::{Get, Pool, narrow, now_ms, on_pool};
use crate::error::{Result, StoreError};
use crate::secret::{self, DigestAlgorithm, Ha1, MasterKey};

/// How far an extension may dial out. Levels are ordered: each one includes
/// the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CallPermission {
    /// Other extensions and internal services only.
    #[default]
    Internal,
    /// Internal plus national numbers.
    National,
    /// Everything, including international numbers.
    International,
}

impl CallPermission {
    /// The stored form: `internal`, `national` or `international`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallPermission::Internal => "internal",
            CallPermission::National => "national",
            CallPermission::International => "international",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "internal" => Ok(CallPermission::Internal),
            "national" => Ok(CallPermission::National),
            "international" => Ok(CallPermission::International),
            other => Err(StoreError::Corrupt {
                column: "extensions.permission",
                value: other.to_owned(),
            }),
        }
    }
}

/// An extension as stored, without its secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Surrogate key.
    pub id: i64,
    /// Dialable number, 2 to 15 digits.
    pub number: String,
    /// Caller-ID name.
    pub display_name: String,
    /// SIP digest username (also the registrar AOR user part).
    pub sip_username: String,
    /// Whether a SIP password has been set.
    pub has_password: bool,
    /// Notification address (voicemail to email).
    pub email: Option<String>,
    /// Whether a voicemail PIN has been set.
    pub has_voicemail_pin: bool,
    /// Outbound calling level.
    pub permission: CallPermission,
    /// Simultaneous calls allowed (0 = none).
    pub max_concurrent_calls: u32,
    /// Disabled extensions cannot register or call.
    pub enabled: bool,
    /// Creation time, unix ms.
    pub created_at: i64,
    /// Last modification time, unix ms.
    pub updated_at: i64,
}

/// Fields for [`Extensions::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExtension {
    /// Dialable number, 2 to 15 digits.
    pub number: String,
    /// Caller-ID name.
    pub display_name: String,
    /// SIP digest username; cannot be changed later (HA1 depends on it).
    pub sip_username: String,
    /// Notification address.
    pub email: Option<String>,
    /// Outbound calling level.
    pub permission: CallPermission,
    /// Simultaneous calls allowed.
    pub max_concurrent_calls: u32,
    /// Whether the extension starts enabled.
    pub enabled: bool,
}

impl NewExtension {
    /// An enabled internal-only extension with 2 concurrent calls, whose SIP
    /// username is its number.
    pub fn new(number: impl Into<String>, display_name: impl Into<String>) -> Self {
        let number = number.into();
        NewExtension {
            sip_username: number.clone(),
            number,
            display_name: display_name.into(),
            email: None,
            permission: CallPermission::Internal,
            max_concurrent_calls: 2,
            enabled: true,
        }
    }
}

/// A partial update for [`Extensions::update`]: `None` leaves a field as is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtensionUpdate {
    /// New dialable number.
    pub number: Option<String>,
    /// New caller-ID name.
    pub display_name: Option<String>,
    /// `Some(None)` clears the address.
    pub email: Option<Option<String>>,
    /// New calling level.
    pub permission: Option<CallPermission>,
    /// New concurrent call limit.
    pub max_concurrent_calls: Option<u32>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Repository of extensions; get one from [`crate::Store::extensions`].
#[derive(Debug, Clone, Copy)]
pub struct Extensions<'a> {
    pool: &'a Pool,
    key: &'a MasterKey,
}

macro_rules! ext_cols {
    () => {
        "id, number, display_name, sip_username, \
         (ha1_md5 IS NOT NULL AND ha1_sha256 IS NOT NULL) AS has_password, email, \
         (voicemail_pin_hash IS NOT NULL) AS has_voicemail_pin, permission, \
         max_concurrent_calls, enabled, created_at, updated_at"
    };
}

fn extension_from(row: &impl Get) -> Result<Extension> {
    Ok(Extension {
        id: row.int("id")?,
        number: row.text("number")?,
        display_name: row.text("display_name")?,
        sip_username: row.text("sip_username")?,
        has_password: row.flag("has_password")?,
        email: row.opt_text("email")?,
        has_voicemail_pin: row.flag("has_voicemail_pin")?,
        permission: CallPermission::parse(&row.text("permission")?)?,
        max_concurrent_calls: narrow(
            "extensions.max_concurrent_calls",
            row.int("max_concurrent_calls")?,
        )?,
        enabled: row.flag("enabled")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// Checks the 2–15 digit rule before the database's CHECK does, for a
/// clearer error.
fn validate_number(number: &str) -> Result<()> {
    if (2..=15).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            field: "number",
            reason: format!("{number:?} is not 2 to 15 digits"),
        })
    }
}

fn ha1_context(algorithm: DigestAlgorithm, username: &str) -> Vec<u8> {
    let column = match algorithm {
        DigestAlgorithm::Md5 => "extensions.ha1_md5",
        DigestAlgorithm::Sha256 => "extensions.ha1_sha256",
    };
    format!("{column}|{username}").into_bytes()
}

fn not_found(key: &str) -> StoreError {
    StoreError::NotFound {
        what: "extension",
        key: key.to_owned(),
    }
}

/// Runs a PBKDF2 computation off the async executor threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

impl<'a> Extensions<'a> {
    pub(crate) fn new(pool: &'a Pool, key: &'a MasterKey) -> Self {
        Extensions { pool, key }
    }

    /// Inserts an extension. Fails with [`StoreError::Conflict`] if the
    /// number or SIP username is taken.
    pub async fn create(&self, new: &NewExtension) -> Result<Extension> {
        validate_number(&new.number)?;
        if new.sip_username.is_empty() {
            return Err(StoreError::Invalid {
                field: "sip_username",
                reason: "must not be empty".into(),
            });
        }
        let now = now_ms();
        const SQL: &str = concat!(
            "INSERT INTO extensions (number, display_name, sip_username, email, permission, \
             max_concurrent_calls, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING ",
            ext_cols!()
        );
        on_pool!(self.pool, p => {
            let row = sqlx::query(SQL)
                .bind(&new.number)
                .bind(&new.display_name)
                .bind(&new.sip_username)
                .bind(&new.email)
                .bind(new.permission.as_str())
                .bind(i64::from(new.max_concurrent_calls))
                .bind(new.enabled)
                .bind(now)
                .fetch_one(p)
                .await?;
            extension_from(&row)
        })
    }

    /// Looks an extension up by its dialable number.
    pub async fn get_by_number(&self, number: &str) -> Result<Option<Extension>> {
        const SQL: &str = concat!("SELECT ", ext_cols!(), " FROM extensions WHERE number = $1");
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(number).fetch_optional(p).await?
                .map(|row| extension_from(&row)).transpose()
        })
    }

    /// Looks an extension up by its SIP username.
    pub async fn get_by_username(&self, username: &str) -> Result<Option<Extension>> {
        const SQL: &str = concat!(
            "SELECT ",
            ext_cols!(),
            " FROM extensions WHERE sip_username = $1"
        );
        on_pool!(self.pool, p => {
            sqlx::query(SQL).bind(username).fetch_optional(p).await?
                .map(|row| extension_from(&row)).transpose()
        })
    }

    /// All extensions, ordered by number.
    pub async fn list(&self) -> Result<Vec<Extension>> {
        const SQL: &str = concat!("SELECT ", ext_cols!(), " FROM extensions ORDER BY number");
        on_pool!(self.pool, p => {
            sqlx::query(SQL).fetch_all(p).await?.iter().map(extension_from).collect()
        })
    }

    /// Applies a partial update to the extension with `number` and returns
    /// the new row.
    pub async fn update(&self, number: &str, update: &ExtensionUpdate) -> Result<Extension> {
        if let Some(new_number) = &update.number {
            validate_number(new_number)?;
        }
        const SQL: &str = concat!(
            "UPDATE extensions SET \
             number = COALESCE($2, number), \
             display_name = COALESCE($3, display_name), \
             email = CASE WHEN $4 THEN $5 ELSE email END, \
             permission = COALESCE($6, permission), \
             max_concurrent_calls = COALESCE($7, max_concurrent_calls), \
             enabled = COALESCE($8, enabled), \
             updated_at = $9 \
             WHERE number = $1 RETURNING ",
            ext_cols!()
        );
        let (set_email, email) = match &update.email {
            Some(email) => (true, email.clone()),
            None => (false, None),
        };
        on_pool!(self.pool, p => {
            let row = sqlx::query(SQL)
                .bind(number)
                .bind(&update.number)
                .bind(&update.display_name)
                .bind(set_email)
                .bind(email)
                .bind(update.permission.map(CallPermission::as_str))
                .bind(update.max_concurrent_calls.map(i64::from))
                .bind(update.enabled)
                .bind(now_ms())
                .fetch_optional(p)
                .await?;
            row.map(|row| extension_from(&row)).transpose()?.ok_or_else(|| not_found(number))
        })
    }

    /// Deletes the extension with `number`; its registrar bindings go with it.
    pub async fn delete(&self, number: &str) -> Result<()> {
        let done = on_pool!(self.pool, p => {
            sqlx::query("DELETE FROM extensions WHERE number = $1")
                .bind(number).execute(p).await?.rows_affected()
        });
        if done == 0 {
            return Err(not_found(number));
        }
        Ok(())
    }

    /// Sets the SIP password of `username` for `realm`: stores sealed MD5 and
    /// SHA-256 HA1 values and forgets the password.
    pub async fn set_password(&self, username: &str, realm: &str, password: &str) -> Result<()> {
        let md5 = Ha1::compute(DigestAlgorithm::Md5, username, realm, password);
        let sha = Ha1::compute(DigestAlgorithm::Sha256, username, realm, password);
        let md5 = self.key.seal(
            md5.as_hex().as_bytes(),
            &ha1_context(DigestAlgorithm::Md5, username),
        )?;
        let sha = self.key.seal(
            sha.as_hex().as_bytes(),
            &ha1_context(DigestAlgorithm::Sha256, username),
        )?;
        let done = on_pool!(self.pool, p => {
            sqlx::query(
                "UPDATE extensions SET ha1_md5 = $2, ha1_sha256 = $3, updated_at = $4 \
                 WHERE sip_username = $1",
            )
            .bind(username).bind(md5).bind(sha).bind(now_ms())
            .execute(p).await?.rows_affected()
        });
        if done == 0 {
            return Err(not_found(username));
        }
        Ok(())
    }

    /// The HA1 of `username` for `algorithm`, or `None` if the extension is
    /// unknown, disabled or has no password.
    pub async fn get_ha1(&self, username: &str, algorithm: DigestAlgorithm) -> Result<Option<Ha1>> {
        let sql = match algorithm {
            DigestAlgorithm::Md5 => {
                "SELECT ha1_md5 AS ha1 FROM extensions WHERE sip_username = $1 AND enabled = $2"
            }
            DigestAlgorithm::Sha256 => {
                "SELECT ha1_sha256 AS ha1 FROM extensions WHERE sip_username = $1 AND enabled = $2"
            }
        };
        let sealed: Option<String> = on_pool!(self.pool, p => {
            match sqlx::query(sql).bind(username).bind(true).fetch_optional(p).await? {
                Some(row) => row.opt_text("ha1")?,
                None => None,
            }
        });
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self.key.open(&sealed, &ha1_context(algorithm, username))?;
        let hex = String::from_utf8(plain).map_err(|_| StoreError::Corrupt {
            column: "extensions.ha1",
            value: "<non-UTF-8 HA1>".into(),
        })?;
        Ok(Some(Ha1::from_hex(hex)))
    }

    /// Every enabled extension that has a password, with both HA1 values
    /// opened: what the SIP core's in-memory directory is built from (one
    /// query, however many extensions).
    pub async fn credentials(&self) -> Result<Vec<(String, Ha1, Ha1)>> {
        const SQL: &str = "SELECT sip_username, ha1_md5, ha1_sha256 FROM extensions \
             WHERE enabled = $1 AND ha1_md5 IS NOT NULL AND ha1_sha256 IS NOT NULL \
             ORDER BY sip_username";
        let rows: Vec<(String, String, String)> = on_pool!(self.pool, p => {
            let rows = sqlx::query(SQL).bind(true).fetch_all(p).await?;
            rows.iter()
                .map(|r| Ok((r.text("sip_username")?, r.text("ha1_md5")?, r.text("ha1_sha256")?)))
                .collect::<Result<Vec<_>>>()?
        });
        let open = |alg, user: &str, sealed: &str| -> Result<Ha1> {
            let plain = self.key.open(sealed, &ha1_context(alg, user))?;
            let hex = String::from_utf8(plain).map_err(|_| StoreError::Corrupt {
                column: "extensions.ha1",
                value: "<non-UTF-8 HA1>".into(),
            })?;
            Ok(Ha1::from_hex(hex))
        };
        rows.into_iter()
            .map(|(user, md5, sha)| {
                let md5 = open(DigestAlgorithm::Md5, &user, &md5)?;
                let sha = open(DigestAlgorithm::Sha256, &user, &sha)?;
                Ok((user, md5, sha))
            })
            .collect()
    }

    /// A value that changes whenever any extension is added, changed or
    /// removed (count and latest update time), so a running server can
    /// notice changes made by the CLI cheaply.
    pub async fn fingerprint(&self) -> Result<(i64, i64)> {
        on_pool!(self.pool, p => {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, COALESCE(MAX(updated_at), 0) AS latest FROM extensions",
            )
            .fetch_one(p)
            .await?;
            Ok((row.int("n")?, row.int("latest")?))
        })
    }

    /// Sets the voicemail PIN of the extension with `number` (PBKDF2 hash).
    pub async fn set_voicemail_pin(&self, number: &str, pin: &str) -> Result<()> {
        let pin = pin.to_owned();
        let hash = blocking(move || secret::hash_password(&pin)).await?;
        let done = on_pool!(self.pool, p => {
            sqlx::query(
                "UPDATE extensions SET voicemail_pin_hash = $2, updated_at = $3 WHERE number = $1",
            )
            .bind(number).bind(hash).bind(now_ms())
            .execute(p).await?.rows_affected()
        });
        if done == 0 {
            return Err(not_found(number));
        }
        Ok(())
    }

    /// Whether `pin` is the voicemail PIN of `number`. `false` if the
    /// extension does not exist or has no PIN.
    pub async fn verify_voicemail_pin(&self, number: &str, pin: &str) -> Result<bool> {
        let stored: Option<String> = on_pool!(self.pool, p => {
            match sqlx::query("SELECT voicemail_pin_hash FROM extensions WHERE number = $1")
                .bind(number).fetch_optional(p).await?
            {
                Some(row) => row.opt_text("voicemail_pin_hash")?,
                None => None,
            }
        });
        let Some(stored) = stored else {
            return Ok(false);
        };
        let pin = pin.to_owned();
        Ok(blocking(move || secret::verify_password(&pin, &stored)).await?)
    }
}
