//! Configuration: one TOML file, environment overrides, validation.
//!
//! Lookup order: `--config PATH`, else `$PBX_CONFIG`, else `./pbx.toml` if it
//! exists, else the built-in defaults. Any key can then be overridden from
//! the environment as `PBX__SECTION__KEY=value` (double underscores separate
//! the path; the value is read as TOML, falling back to a plain string), e.g.
//! `PBX__SIP__TIMERS__T1_MS=250`. Every error names its source (file and
//! line, or the environment variable), the field and the value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod calls;
pub use calls::{
    ActionName, CallsSection, ClassName, DialplanEntry, KernelForwarding, MediaSection, TrunkEntry,
};

/// The whole configuration tree.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// SIP transports and protocol settings.
    pub sip: SipConfig,
    /// Registrar limits.
    pub registrar: RegistrarSection,
    /// Brute-force protection.
    pub security: SecuritySection,
    /// Extensions created at start-up (zero-setup demo); see
    /// docs/configuration.md.
    pub extensions: Vec<ExtensionEntry>,
    /// Database and data directory.
    pub storage: StorageConfig,
    /// Logging.
    pub log: LogConfig,
    /// The RTP relay.
    pub media: MediaSection,
    /// Call handling.
    pub calls: CallsSection,
    /// Dialplan rules, tried in order, before the database's (`pbx
    /// dialplan`); with no rule from either, a dialled extension number
    /// rings that extension.
    pub dialplan: Vec<DialplanEntry>,
    /// SIP trunks.
    pub trunks: Vec<TrunkEntry>,
}

/// `[storage]`
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where the SQLite database and the generated master key live.
    /// Default: `$PBX_DATA_DIR`, else `/var/lib/pbx` for root, else
    /// `~/.local/share/pbx`.
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`. Default: SQLite in the
    /// data directory.
    pub database_url: Option<String>,
    /// 32-byte key (64 hex digits) that encrypts stored SIP credentials.
    /// Default: `$PBX_MASTER_KEY`, else `DATA_DIR/master.key`, generated on
    /// first run.
    pub master_key: Option<String>,
}

impl Config {
    /// The configuration with secrets replaced, for printing.
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        if c.storage.master_key.is_some() {
            c.storage.master_key = Some("<redacted>".into());
        }
        if let Some(url) = &mut c.storage.database_url
            && let Some((scheme, rest)) = url.split_once("://")
            && let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _password)) = userinfo.split_once(':')
        {
            *url = format!("{scheme}://{user}:<redacted>@{host}");
        }
        for e in &mut c.extensions {
            e.password = "<redacted>".into();
        }
        c
    }
}

/// `[registrar]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrarSection {
    /// Shorter expiries get 423 Interval Too Brief.
    pub min_expires_s: u32,
    /// Longer expiries are shortened to this.
    pub max_expires_s: u32,
    /// Expiry when the phone asks for none.
    pub default_expires_s: u32,
    /// Most contacts per extension.
    pub max_contacts: usize,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        RegistrarSection {
            min_expires_s: 60,
            max_expires_s: 3600,
            default_expires_s: 3600,
            max_contacts: 10,
        }
    }
}

/// `[security]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
    /// Authentication failures within the window that block a source.
    pub max_failures: u32,
    /// Counting window in seconds.
    pub window_s: u64,
    /// Block duration in seconds.
    pub block_s: u64,
    /// Networks never blocked (CIDR), e.g. `["10.0.0.0/8"]`.
    pub trusted_networks: Vec<String>,
    /// What a blocked source gets: `forbidden` (403) or `silent` (nothing).
    pub blocked_response: BlockedResponse,
    /// Lifetime of digest nonces in seconds (older ones get stale=true).
    pub nonce_ttl_s: u64,
    /// Digest algorithms offered, one challenge each, in this order
    /// (RFC 8760). Default: MD5 alone, because many clients fail when they
    /// meet a challenge they cannot answer instead of skipping it (SIPp
    /// takes the first one; baresip 1.0 gives up on a SHA-256 one). Add
    /// `SHA-256` where every phone supports it.
    pub digest_algorithms: Vec<DigestAlgorithm>,
}

/// A digest algorithm name as written in the configuration.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// MD5 (RFC 2617).
    #[serde(rename = "MD5")]
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Default for SecuritySection {
    fn default() -> Self {
        SecuritySection {
            max_failures: 5,
            window_s: 300,
            block_s: 900,
            trusted_networks: Vec::new(),
            blocked_response: BlockedResponse::Forbidden,
            nonce_ttl_s: 300,
            digest_algorithms: vec![DigestAlgorithm::Md5],
        }
    }
}

/// Answer to requests from blocked sources.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BlockedResponse {
    /// 403 Forbidden.
    Forbidden,
    /// No answer at all.
    Silent,
}

/// One `[[extensions]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExtensionEntry {
    /// Extension number, also the SIP username unless `username` is set.
    pub number: String,
    /// SIP password (only its digest hashes are kept in the database).
    pub password: String,
    /// SIP username, if it differs from the number.
    #[serde(default)]
    pub username: Option<String>,
    /// What the extension may dial (`internal`, `national`,
    /// `international`); applied at every start when given.
    #[serde(default)]
    pub permission: Option<calls::ClassName>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Calls the extension may be in at once (placed and received; 0
    /// bars calls); applied at every start when given. New extensions
    /// default to 2 (one call and one waiting).
    #[serde(default)]
    pub max_calls: Option<u32>,
}

/// `[sip]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Addresses to listen on; each gets every transport in `transports`.
    pub listen: Vec<SocketAddr>,
    /// Transports to serve: `udp`, `tcp`.
    pub transports: Vec<TransportKind>,
    /// Largest message accepted, in bytes (larger: 413 or dropped).
    pub max_message_size: usize,
    /// Idle TCP connections are closed after this many seconds.
    pub tcp_idle_timeout_s: u64,
    /// Most concurrent TCP connections; further ones are refused.
    pub max_tcp_connections: usize,
    /// Value of the Server / User-Agent header.
    pub user_agent: String,
    /// Digest authentication realm. Changing it invalidates stored
    /// passwords (their hashes include the realm).
    pub realm: String,
    /// Transaction timers.
    pub timers: TimerConfig,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: vec![
                "0.0.0.0:5060".parse().expect("static address"),
                "[::]:5060".parse().expect("static address"),
            ],
            transports: vec![TransportKind::Udp, TransportKind::Tcp],
            max_message_size: 65_535,
            tcp_idle_timeout_s: 600,
            max_tcp_connections: 10_000,
            user_agent: concat!("pbx/", env!("CARGO_PKG_VERSION")).to_string(),
            realm: "pbx".to_string(),
            timers: TimerConfig::default(),
        }
    }
}

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// UDP
    Udp,
    /// TCP
    Tcp,
}

/// `[sip.timers]`: RFC 3261 §17 T1/T2/T4 in milliseconds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimerConfig {
    /// RTT estimate (default 500).
    pub t1_ms: u64,
    /// Maximum retransmit interval for non-INVITE requests and INVITE
    /// responses (default 4000).
    pub t2_ms: u64,
    /// Maximum duration a message stays in the network (default 5000).
    pub t4_ms: u64,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Filter in `tracing` syntax (`info`, `debug`, `pbx=debug,info`).
    /// `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
    /// Log every SIP message sent and received (toggle at run time with
    /// SIGUSR1).
    pub sip_trace: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            sip_trace: false,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// A configuration error that says where and what.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file path or the environment variable.
    pub source_name: String,
    /// Line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong, naming field and value.
    pub message: String,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// Nothing found: built-in defaults.
    Defaults,
}

/// Finds and loads the configuration (see the module docs).
pub fn load(explicit: Option<&Path>) -> Result<(Config, Origin), ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let path = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("PBX_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let p = PathBuf::from("pbx.toml");
            p.exists().then_some(p)
        });
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|e| ConfigError {
                source_name: p.display().to_string(),
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            let cfg = from_text(&text, &p.display().to_string(), &env)?;
            Ok((cfg, Origin::File(p)))
        }
        None => Ok((from_text("", "<defaults>", &env)?, Origin::Defaults)),
    }
}

/// Parses `text` (named `name` in errors), applies `PBX__` overrides from
/// `env`, and validates.
pub fn from_text(text: &str, name: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
        source_name: name.into(),
        line: line_of(e.span()),
        message: e.message().trim().to_string(),
    })?;
    // Typed parse of the file alone first, so errors carry file lines.
    let mut cfg: Config = toml::from_str(text).map_err(|e| ConfigError {
        source_name: name.into(),
        line: line_of(e.span()),
        message: e.message().trim().to_string(),
    })?;
    let mut overridden = Vec::new();
    for (key, value) in env {
        let Some(path) = key.strip_prefix("PBX__") else {
            continue;
        };
        let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if parts.iter().any(String::is_empty) {
            continue;
        }
        set_path(&mut table, &parts, parse_env_value(value));
        overridden.push((key.clone(), parts.join("."), value.clone()));
        cfg = Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| ConfigError {
            source_name: format!("environment variable {key}"),
            line: None,
            message: format!("{} = {value:?}: {}", parts.join("."), e.message().trim()),
        })?;
    }
    validate(&cfg).map_err(|(field, message)| {
        match overridden.iter().find(|(_, path, _)| *path == field) {
            Some((var, _, _)) => ConfigError {
                source_name: format!("environment variable {var}"),
                line: None,
                message,
            },
            None => ConfigError {
                source_name: name.into(),
                line: locate(text, &field),
                message,
            },
        }
    })?;
    Ok(cfg)
}

fn parse_env_value(v: &str) -> toml::Value {
    // Read the value as a TOML value (numbers, booleans, arrays); anything
    // that is not one is a plain string.
    let doc = format!("v = {v}");
    toml::from_str::<toml::Table>(&doc)
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        let toml::Value::Table(next) = entry else {
            return;
        };
        t = next;
    }
    t.insert(last.clone(), value);
}

/// Line of `key = ...` inside the section of a dotted `field` path.
fn locate(text: &str, field: &str) -> Option<usize> {
    let (section, key) = field.rsplit_once('.').unwrap_or(("", field));
    let mut current = String::new();
    // `[[name]]` tables are addressed as `name.INDEX`.
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(s) = l.strip_prefix("[[").and_then(|s| s.strip_suffix("]]")) {
            let name = s.trim().to_string();
            let index = seen.entry(name.clone()).or_insert(0);
            current = format!("{name}.{index}");
            *index += 1;
        } else if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.trim().to_string();
        } else if current == section && l.split('=').next().is_some_and(|k| k.trim() == key) {
            return Some(n + 1);
        }
    }
    None
}

/// Semantic checks; the error names the dotted field and its value.
fn validate(cfg: &Config) -> Result<(), (String, String)> {
    let fail = |field: &str, msg: String| Err((field.to_string(), format!("{field}: {msg}")));
    calls::validate_routing(&cfg.dialplan, &cfg.trunks)?;
    if let Err(e) = cfg.media.port_range() {
        return fail("media.rtp_ports", e);
    }
    if !(1..=3600).contains(&cfg.calls.no_answer_timeout_s) {
        return fail(
            "calls.no_answer_timeout_s",
            format!("{} is outside 1..=3600", cfg.calls.no_answer_timeout_s),
        );
    }
    if cfg.calls.min_se_s < 90 {
        return fail(
            "calls.min_se_s",
            format!("{} is below the RFC 4028 minimum of 90", cfg.calls.min_se_s),
        );
    }
    if cfg.calls.session_expires_s < cfg.calls.min_se_s {
        return fail(
            "calls.session_expires_s",
            format!(
                "{} must not be below min_se_s ({})",
                cfg.calls.session_expires_s, cfg.calls.min_se_s
            ),
        );
    }
    if cfg.calls.codecs.is_empty() {
        return fail("calls.codecs", "at least one codec is needed".into());
    }
    if cfg.sip.listen.is_empty() {
        return fail("sip.listen", "at least one address is needed".into());
    }
    if cfg.sip.transports.is_empty() {
        return fail(
            "sip.transports",
            "at least one of \"udp\", \"tcp\" is needed".into(),
        );
    }
    if !(1024..=1_048_576).contains(&cfg.sip.max_message_size) {
        return fail(
            "sip.max_message_size",
            format!("{} is outside 1024..=1048576", cfg.sip.max_message_size),
        );
    }
    let t = &cfg.sip.timers;
    if !(1..=60_000).contains(&t.t1_ms) {
        return fail(
            "sip.timers.t1_ms",
            format!("{} is outside 1..=60000", t.t1_ms),
        );
    }
    if t.t2_ms < t.t1_ms {
        return fail(
            "sip.timers.t2_ms",
            format!("{} must not be below t1_ms ({})", t.t2_ms, t.t1_ms),
        );
    }
    if !(1..=600_000).contains(&t.t4_ms) {
        return fail(
            "sip.timers.t4_ms",
            format!("{} is outside 1..=600000", t.t4_ms),
        );
    }
    if cfg.sip.user_agent.is_empty() || cfg.sip.user_agent.contains(['\r', '\n']) {
        return fail(
            "sip.user_agent",
            format!("{:?} must be one non-empty line", cfg.sip.user_agent),
        );
    }
    if cfg.sip.realm.is_empty() || cfg.sip.realm.contains(['"', '\\', '\r', '\n']) {
        return fail(
            "sip.realm",
            format!("{:?} must be non-empty text without quotes", cfg.sip.realm),
        );
    }
    let r = &cfg.registrar;
    if r.min_expires_s == 0 || r.min_expires_s > r.max_expires_s {
        return fail(
            "registrar.min_expires_s",
            format!(
                "{} must be between 1 and max_expires_s ({})",
                r.min_expires_s, r.max_expires_s
            ),
        );
    }
    if r.default_expires_s < r.min_expires_s || r.default_expires_s > r.max_expires_s {
        return fail(
            "registrar.default_expires_s",
            format!(
                "{} must lie within min_expires_s..=max_expires_s",
                r.default_expires_s
            ),
        );
    }
    if r.max_contacts == 0 {
        return fail("registrar.max_contacts", "0 must be at least 1".into());
    }
    let sec = &cfg.security;
    if sec.max_failures == 0 {
        return fail("security.max_failures", "0 must be at least 1".into());
    }
    if sec.window_s == 0 || sec.block_s == 0 || sec.nonce_ttl_s == 0 {
        return fail(
            "security.window_s",
            "window_s, block_s and nonce_ttl_s must be positive".into(),
        );
    }
    if sec.digest_algorithms.is_empty() {
        return fail(
            "security.digest_algorithms",
            "at least one of \"MD5\", \"SHA-256\" is needed".into(),
        );
    }
    for n in &sec.trusted_networks {
        if n.parse::<pbx::guard::IpNet>().is_err() {
            return fail(
                "security.trusted_networks",
                format!("{n:?} is not ADDRESS or ADDRESS/PREFIX"),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for e in &cfg.extensions {
        let user = e.username.as_deref().unwrap_or(&e.number);
        if e.number.is_empty() || !e.number.chars().all(|c| c.is_ascii_digit()) {
            return fail(
                "extensions.number",
                format!("{:?} must be digits", e.number),
            );
        }
        if user.is_empty()
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return fail(
                "extensions.username",
                format!("{user:?} must be letters, digits, - _ ."),
            );
        }
        if e.password.len() < 8 {
            return fail(
                "extensions.password",
                format!(
                    "extension {}: the password must have at least 8 characters",
                    e.number
                ),
            );
        }
        if !seen.insert(user.to_string()) {
            return fail("extensions.number", format!("{user:?} appears twice"));
        }
    }
    if let Some(url) = &cfg.storage.database_url
        && !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
    {
        return fail(
            "storage.database_url",
            "must start with sqlite:// or postgres:// (value not shown: it may hold a password)"
                .into(),
        );
    }
    if tracing_subscriber::EnvFilter::try_new(&cfg.log.level).is_err() {
        return fail(
            "log.level",
            format!("{:?} is not a valid filter", cfg.log.level),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = from_text("", "x", &[]).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn errors_name_file_line_field_and_value() {
        let text = "[sip]\nlisten = [\"127.0.0.1:5060\"]\n\n[sip.timers]\nt1_ms = 0\n";
        let e = from_text(text, "pbx.toml", &[]).unwrap_err().to_string();
        assert_eq!(e, "pbx.toml:5: sip.timers.t1_ms: 0 is outside 1..=60000");
        let e = from_text("[sip]\nlisten = [\"nope\"]\n", "pbx.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pbx.toml:2: "), "{e}");
        assert!(e.contains("invalid socket address"), "{e}");
        let e = from_text("[sip]\nlisen = []\n", "pbx.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pbx.toml:2: ") && e.contains("lisen"), "{e}");
    }

    #[test]
    fn routing_errors_name_the_rule_and_line() {
        let text = "[[trunks]]\nname = \"a\"\nhost = \"127.0.0.1:5080\"\n\n\
                    [[dialplan]]\nname = \"ok\"\npattern = \"_20XX\"\naction = \"extension\"\n\
                    [[dialplan]]\nname = \"out\"\npattern = \"prefix:9\"\naction = \"trunk\"\ntrunks = [\"b\"]\n";
        let e = from_text(text, "pbx.toml", &[]).unwrap_err().to_string();
        assert_eq!(e, "pbx.toml:13: dialplan.1.trunks: no trunk named \"b\"");
        let text = "[[dialplan]]\nname = \"x\"\npattern = \"_9Q\"\naction = \"extension\"\n";
        let e = from_text(text, "pbx.toml", &[]).unwrap_err().to_string();
        assert!(e.starts_with("pbx.toml:3: dialplan.0.pattern: "), "{e}");
        let text = "[media]\nrtp_ports = \"20000-10000\"\n";
        let e = from_text(text, "pbx.toml", &[]).unwrap_err().to_string();
        assert!(e.starts_with("pbx.toml:2: media.rtp_ports: "), "{e}");
    }

    #[test]
    fn env_overrides() {
        let env = vec![
            ("PBX__SIP__TIMERS__T1_MS".to_string(), "250".to_string()),
            (
                "PBX__SIP__LISTEN".to_string(),
                "[\"127.0.0.1:5099\"]".to_string(),
            ),
            ("PBX__LOG__LEVEL".to_string(), "debug".to_string()),
        ];
        let c = from_text("[sip.timers]\nt1_ms = 100\n", "f", &env).unwrap();
        assert_eq!(c.sip.timers.t1_ms, 250);
        assert_eq!(c.sip.listen, vec!["127.0.0.1:5099".parse().unwrap()]);
        assert_eq!(c.log.level, "debug");
        let bad = vec![("PBX__SIP__TIMERS__T2_MS".to_string(), "1".to_string())];
        let e = from_text("", "f", &bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "environment variable PBX__SIP__TIMERS__T2_MS: sip.timers.t2_ms: 1 must not be below t1_ms (500)"
        );
        let bad = vec![("PBX__SIP__TIMERS__T1_MS".to_string(), "abc".to_string())];
        let e = from_text("", "f", &bad).unwrap_err().to_string();
        assert!(
            e.contains("PBX__SIP__TIMERS__T1_MS") && e.contains("abc"),
            "{e}"
        );
    }
}
