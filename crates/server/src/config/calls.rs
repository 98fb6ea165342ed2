//! `[media]` and `[calls]`: the RTP relay and call handling.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `[media]`: where relayed RTP lives.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// Relay port range `"START-END"` (even RTP ports, RTCP on the next odd
    /// one); default `10000-20000`.
    pub rtp_ports: String,
    /// Address the relay sockets bind to (default all IPv4 interfaces).
    pub bind_address: IpAddr,
    /// Address written into SDP when the PBX is behind NAT; by default the
    /// local address that routes to each phone.
    pub public_address: Option<IpAddr>,
    /// Hang up a call after this many seconds without RTP from a leg that
    /// should be sending (0 disables).
    pub media_timeout_s: u64,
    /// Forward latched, untranscoded IPv4 RTP in the kernel (eBPF on TCX
    /// ingress, Linux 6.6+, needs root or `CAP_BPF` + `CAP_NET_ADMIN`).
    pub kernel_forwarding: KernelForwarding,
}

/// `[media] kernel_forwarding`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum KernelForwarding {
    /// Use it when the kernel and privileges allow, else relay in user
    /// space (said once in the log).
    #[default]
    Auto,
    /// Always relay in user space.
    Off,
    /// Refuse to start without it.
    On,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            rtp_ports: "10000-20000".into(),
            bind_address: IpAddr::from([0, 0, 0, 0]),
            public_address: None,
            media_timeout_s: 30,
            kernel_forwarding: KernelForwarding::Auto,
        }
    }
}

impl MediaSection {
    /// The relay port range, checked.
    pub fn port_range(&self) -> Result<(u16, u16), String> {
        let (start, end) = self
            .rtp_ports
            .split_once('-')
            .ok_or_else(|| format!("\"{}\" is not START-END", self.rtp_ports))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|_| format!("\"{}\": {s:?} is not a port number", self.rtp_ports))
        };
        let (start, end) = (parse(start)?, parse(end)?);
        if start < 1024 || end <= start || end - start < 3 {
            return Err(format!(
                "\"{}\" must be a range of at least 4 ports above 1023",
                self.rtp_ports
            ));
        }
        Ok((start, end))
    }
}

/// `[calls]`: call handling.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CallsSection {
    /// Seconds a call rings before it is given up with 480.
    pub no_answer_timeout_s: u64,
    /// Codecs passed between the legs, by SDP name, in preference order.
    pub codecs: Vec<String>,
    /// Transcode between legs that share no codec (the relay decodes and
    /// re-encodes); off, such calls fail with 488 as before.
    #[serde(deserialize_with = "transcoding_flag")]
    pub transcoding: bool,
    /// Session timers (RFC 4028) on both legs of every call.
    pub session_timers: bool,
    /// The session interval asked for and accepted at most, seconds.
    pub session_expires_s: u32,
    /// The smallest session interval accepted (Min-SE), seconds (>= 90).
    pub min_se_s: u32,
}

/// `transcoding` as a boolean, with an error naming the field (serde's
/// own "invalid type" message does not).
fn transcoding_flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match toml::Value::deserialize(d)? {
        toml::Value::Boolean(b) => Ok(b),
        other => Err(serde::de::Error::custom(format!(
            "calls.transcoding: {other} is not true or false"
        ))),
    }
}

impl CallsSection {
    /// The codecs the media engine can transcode, by SDP name, if
    /// transcoding is on (an empty list turns it off in the calls).
    pub fn transcodable_codecs(&self) -> Vec<String> {
        if !self.transcoding {
            return Vec::new();
        }
        media::codec::CodecKind::ALL
            .iter()
            .map(|k| k.name().to_owned())
            .collect()
    }

    /// The session timer settings, if enabled.
    pub fn session_config(&self) -> Option<pbx::session_timer::SessionConfig> {
        self.session_timers
            .then_some(pbx::session_timer::SessionConfig {
                session_expires: self.session_expires_s,
                min_se: self.min_se_s,
                insist: false,
            })
    }
}

impl Default for CallsSection {
    fn default() -> Self {
        CallsSection {
            session_timers: true,
            session_expires_s: 1800,
            min_se_s: 90,
            no_answer_timeout_s: 60,
            codecs: pbx::call::anchor::DEFAULT_CODECS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            transcoding: true,
        }
    }
}

/// A call class in the configuration.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClassName {
    /// Extensions and internal services.
    #[default]
    Internal,
    /// National numbers.
    National,
    /// International numbers.
    International,
}

impl ClassName {
    /// The dialplan's class.
    pub fn class(self) -> pbx::dialplan::CallClass {
        match self {
            ClassName::Internal => pbx::dialplan::CallClass::Internal,
            ClassName::National => pbx::dialplan::CallClass::National,
            ClassName::International => pbx::dialplan::CallClass::International,
        }
    }
}

/// What a dialplan rule does.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ActionName {
    /// Ring the extension with the (rewritten) number.
    Extension,
    /// Out through `trunks`, in order (failover; the order is the cost order).
    Trunk,
    /// Refuse with `status`.
    Reject,
}

/// `[[dialplan]]`: one rule; rules are tried in file order.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DialplanEntry {
    /// Name for logs.
    pub name: String,
    /// `100` (exact), `prefix:9`, `_9NXXNXXXXXX` or `regex:^9(\d+)$`.
    pub pattern: String,
    /// The class a caller needs (default internal).
    #[serde(default)]
    pub class: ClassName,
    /// Digits removed from the front.
    #[serde(default)]
    pub strip: usize,
    /// Digits put in front after stripping.
    #[serde(default)]
    pub prepend: String,
    /// For regex patterns: the new number, `$1`..`$9` from the captures.
    #[serde(default)]
    pub rewrite: Option<String>,
    /// What to do.
    pub action: ActionName,
    /// For `trunk`: trunk names, tried in order.
    #[serde(default)]
    pub trunks: Vec<String>,
    /// For `reject`: the SIP status (default 403).
    #[serde(default)]
    pub status: Option<u16>,
}

/// `[[trunks]]`: a carrier or another PBX.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkEntry {
    /// Name used by dialplan rules and CDRs.
    pub name: String,
    /// The peer's SIP address (`IP:PORT`, UDP).
    pub host: std::net::SocketAddr,
    /// Username for digest authentication and registration.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for digest authentication and registration.
    #[serde(default)]
    pub password: Option<String>,
    /// Register with the peer (needs `username` and `password`).
    #[serde(default)]
    pub register: bool,
    /// Registration expiry asked for, seconds.
    #[serde(default = "default_trunk_expires")]
    pub register_expires_s: u32,
    /// Host part of From/To/Request-URI towards the peer (default the
    /// peer's IP).
    #[serde(default)]
    pub domain: Option<String>,
    /// Caller number presented on outbound calls (default the caller's
    /// extension number).
    #[serde(default)]
    pub caller_id: Option<String>,
    /// Inbound: dialled number (DID) → extension number.
    #[serde(default)]
    pub dids: std::collections::BTreeMap<String, String>,
    /// Inbound: extension for numbers not in `dids` (else 404).
    #[serde(default)]
    pub default_extension: Option<String>,
}

fn default_trunk_expires() -> u32 {
    3600
}

/// Checks dialplan rules and trunks; errors name the field.
pub fn validate_routing(
    dialplan: &[DialplanEntry],
    trunks: &[TrunkEntry],
) -> Result<(), (String, String)> {
    let fail = |field: String, msg: String| Err((field.clone(), format!("{field}: {msg}")));
    for (i, t) in trunks.iter().enumerate() {
        if trunks[..i].iter().any(|o| o.name == t.name) {
            return fail(
                format!("trunks.{i}.name"),
                format!("{:?} is used twice", t.name),
            );
        }
        if t.register && (t.username.is_none() || t.password.is_none()) {
            return fail(
                format!("trunks.{i}.register"),
                "registration needs username and password".into(),
            );
        }
        if t.password.is_some() != t.username.is_some() {
            return fail(
                format!("trunks.{i}.username"),
                "username and password go together".into(),
            );
        }
        if !(60..=86_400).contains(&t.register_expires_s) {
            return fail(
                format!("trunks.{i}.register_expires_s"),
                format!("{} is outside 60..=86400", t.register_expires_s),
            );
        }
    }
    for (i, r) in dialplan.iter().enumerate() {
        if let Err(e) = pbx::dialplan::Pattern::parse(&r.pattern) {
            return fail(format!("dialplan.{i}.pattern"), e.to_string());
        }
        match r.action {
            ActionName::Trunk if r.trunks.is_empty() => {
                return fail(
                    format!("dialplan.{i}.trunks"),
                    "action \"trunk\" needs at least one trunk".into(),
                );
            }
            ActionName::Trunk => {
                if let Some(t) = r
                    .trunks
                    .iter()
                    .find(|t| !trunks.iter().any(|x| &x.name == *t))
                {
                    return fail(
                        format!("dialplan.{i}.trunks"),
                        format!("no trunk named {t:?}"),
                    );
                }
            }
            ActionName::Reject if r.status.is_some_and(|s| !(400..=699).contains(&s)) => {
                return fail(
                    format!("dialplan.{i}.status"),
                    format!("{:?} is not a 4xx-6xx status", r.status),
                );
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::from_text;

    #[test]
    fn transcoding_is_on_by_default_and_can_be_turned_off() {
        let on = from_text("", "pbx.toml", &[]).unwrap();
        assert!(on.calls.transcoding);
        let names = on.calls.transcodable_codecs();
        assert!(names.iter().any(|n| n == "PCMU") && names.iter().any(|n| n == "G722"));
        let off = from_text("[calls]\ntranscoding = false\n", "pbx.toml", &[]).unwrap();
        assert!(off.calls.transcodable_codecs().is_empty());
        let e = from_text("[calls]\n\ntranscoding = \"yes\"\n", "pbx.toml", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "pbx.toml:3: calls.transcoding: \"yes\" is not true or false"
        );
    }
}
