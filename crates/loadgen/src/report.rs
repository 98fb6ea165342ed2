//! The end-of-run report: plain text for people, one JSON line for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::hist::Histogram;
use crate::rtp::DirStats;

/// Everything measured in one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `pbx` or `direct`.
    pub mode: &'static str,
    /// Wall-clock seconds from start to report.
    pub duration_s: f64,
    /// Seconds spent registering.
    pub register_s: f64,
    /// Registrations answered 2xx.
    pub registered: u64,
    /// Registrations that failed (by status; 0 = timeout).
    pub register_failed: BTreeMap<u16, u64>,
    /// 401/407 challenges answered to REGISTER.
    pub register_challenges: u64,
    /// 401/407 challenges answered to INVITE (and BYE).
    pub invite_challenges: u64,
    /// Direct mode with challenge: 407s the UAS side sent.
    pub uas_challenges: u64,
    /// Direct mode with challenge: ACKs of those 407s on the INVITE's branch.
    pub uas_challenge_acks: u64,
    /// Direct mode with challenge: credentials that did not verify.
    pub uas_auth_failed: u64,
    /// INVITEs started.
    pub attempted: u64,
    /// Calls that got a 200 OK.
    pub established: u64,
    /// Calls that did not (by final status; 0 = timeout).
    pub failed: BTreeMap<u16, u64>,
    /// Established calls the other side hung up (BYE) before the hold time.
    pub dropped: u64,
    /// Established calls that ended normally (BYE answered 2xx).
    pub completed: u64,
    /// BYEs that got a non-2xx final response or none.
    pub bye_failed: u64,
    /// 200 OKs without a usable SDP answer.
    pub no_media: u64,
    /// UAS calls whose 200 OK was never ACKed.
    pub ack_timeouts: u64,
    /// INVITEs received by the UAS side.
    pub uas_invites: u64,
    /// Calls up at once, at most.
    pub peak_concurrent: u64,
    /// INVITE (the one with credentials, if challenged) → 200 OK, µs.
    pub setup_us: Histogram,
    /// Caller → callee media.
    pub fwd: DirStats,
    /// Callee → caller media.
    pub rev: DirStats,
    /// How late the pacer ran against the 1 ms slot schedule, µs.
    pub sender_lag_us: Histogram,
    /// This process's CPU time (user+system), µs.
    pub cpu_us: u64,
    /// Allowed failures before the exit code is non-zero.
    pub max_failed: u64,
    /// Allowed loss % before the exit code is non-zero (None: any).
    pub max_loss_pct: Option<f64>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn loss_pct(d: &DirStats) -> f64 {
    if d.sent == 0 {
        0.0
    } else {
        (d.sent.saturating_sub(d.received)) as f64 * 100.0 / d.sent as f64
    }
}

/// A failure status code's name: the code, or `timeout` for 0.
fn status_name(code: u16) -> String {
    if code == 0 {
        "timeout".to_string()
    } else {
        code.to_string()
    }
}

fn statuses(m: &BTreeMap<u16, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{}:{v}", status_name(*k)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn statuses_json(m: &BTreeMap<u16, u64>) -> String {
    let inner = m
        .iter()
        .map(|(k, v)| format!("\"{}\":{v}", status_name(*k)))
        .collect::<Vec<_>>()
        .join(",");
    format!("{{{inner}}}")
}

fn hist_json(h: &Histogram) -> String {
    format!(
        "{{\"n\":{},\"p50\":{:.3},\"p99\":{:.3},\"max\":{:.3}}}",
        h.count(),
        ms(h.quantile(0.5)),
        ms(h.quantile(0.99)),
        ms(h.max())
    )
}

fn hist_text(h: &Histogram) -> String {
    format!(
        "p50 {:.3} p99 {:.3} max {:.3}",
        ms(h.quantile(0.5)),
        ms(h.quantile(0.99)),
        ms(h.max())
    )
}

impl Report {
    /// Calls that failed to establish.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// Loss % caller → callee.
    pub fn loss_fwd_pct(&self) -> f64 {
        loss_pct(&self.fwd)
    }

    /// Loss % callee → caller.
    pub fn loss_rev_pct(&self) -> f64 {
        loss_pct(&self.rev)
    }

    /// Loadgen CPU as % of one core over the run.
    pub fn cpu_pct(&self) -> f64 {
        if self.duration_s <= 0.0 {
            0.0
        } else {
            self.cpu_us as f64 / 1e6 / self.duration_s * 100.0
        }
    }

    /// Whether the run passed its thresholds.
    pub fn ok(&self) -> bool {
        let fails = self.failed_total() + self.dropped + self.register_failed.values().sum::<u64>();
        if fails > self.max_failed {
            return false;
        }
        match self.max_loss_pct {
            Some(max) => self.loss_fwd_pct() <= max && self.loss_rev_pct() <= max,
            None => true,
        }
    }

    /// Multi-line human-readable report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pbx-loadgen report: mode {}, {:.1} s",
            self.mode, self.duration_s
        );
        if self.mode != "direct" {
            let _ = writeln!(
                s,
                "  registrations: {} ok, {} failed [{}] in {:.2} s, {} challenges answered; INVITE/BYE challenges answered: {}",
                self.registered,
                self.register_failed.values().sum::<u64>(),
                statuses(&self.register_failed),
                self.register_s,
                self.register_challenges,
                self.invite_challenges
            );
        }
        if self.uas_challenges > 0 {
            let _ = writeln!(
                s,
                "  direct challenge: 407 sent {}, ACKed on the same branch {}, answered {}, credentials rejected {}",
                self.uas_challenges,
                self.uas_challenge_acks,
                self.invite_challenges,
                self.uas_auth_failed
            );
        }
        let _ = writeln!(
            s,
            "  calls: attempted {}, established {}, failed {} [{}], dropped {}, completed {}, bye failed {}, no media {}, peak concurrent {}",
            self.attempted,
            self.established,
            self.failed_total(),
            statuses(&self.failed),
            self.dropped,
            self.completed,
            self.bye_failed,
            self.no_media,
            self.peak_concurrent
        );
        let _ = writeln!(
            s,
            "  setup latency ms (INVITE with credentials -> 200): {}",
            hist_text(&self.setup_us)
        );
        for (name, d) in [("caller->callee", &self.fwd), ("callee->caller", &self.rev)] {
            let _ = writeln!(
                s,
                "  rtp {name}: sent {}, received {}, lost {} ({:.4} %), misrouted {}, duplicates {}, reordered {}, foreign {}, send errors {}",
                d.sent,
                d.received,
                d.sent.saturating_sub(d.received),
                loss_pct(d),
                d.misrouted,
                d.duplicates,
                d.reordered,
                d.foreign,
                d.send_errors
            );
            let _ = writeln!(
                s,
                "    jitter RFC 3550 per stream ms: {}",
                hist_text(&d.jitter)
            );
            let _ = writeln!(
                s,
                "    arrival deviation from the 20 ms schedule (includes loadgen pacing) ms: {}",
                hist_text(&d.iat_dev)
            );
            let _ = writeln!(
                s,
                "    delay variation, transit - min (relay only, send-time based) ms: {}",
                hist_text(&d.pdv)
            );
            let _ = writeln!(s, "    transit ms: {}", hist_text(&d.transit));
        }
        let _ = writeln!(
            s,
            "  loadgen: cpu {:.2} s ({:.1} % of one core), pacer lag ms {}",
            self.cpu_us as f64 / 1e6,
            self.cpu_pct(),
            hist_text(&self.sender_lag_us)
        );
        let _ = writeln!(s, "  result: {}", if self.ok() { "PASS" } else { "FAIL" });
        s
    }

    /// One JSON object on one line (times in ms unless named `_s`/`_us`).
    pub fn json(&self) -> String {
        let dir = |d: &DirStats| {
            format!(
                "{{\"sent\":{},\"received\":{},\"lost\":{},\"loss_pct\":{:.6},\"misrouted\":{},\"duplicates\":{},\"reordered\":{},\"foreign\":{},\"send_errors\":{},\"jitter_ms\":{},\"arrival_dev_ms\":{},\"pdv_ms\":{},\"transit_ms\":{}}}",
                d.sent,
                d.received,
                d.sent.saturating_sub(d.received),
                loss_pct(d),
                d.misrouted,
                d.duplicates,
                d.reordered,
                d.foreign,
                d.send_errors,
                hist_json(&d.jitter),
                hist_json(&d.iat_dev),
                hist_json(&d.pdv),
                hist_json(&d.transit)
            )
        };
        format!(
            "{{\"mode\":\"{}\",\"duration_s\":{:.3},\"register_s\":{:.3},\"registered\":{},\"register_failed\":{},\"register_challenges\":{},\"invite_challenges\":{},\"calls_attempted\":{},\"calls_established\":{},\"calls_failed\":{},\"failed_by_status\":{},\"calls_dropped\":{},\"calls_completed\":{},\"bye_failed\":{},\"no_media\":{},\"ack_timeouts\":{},\"uas_invites\":{},\"direct_challenge\":{{\"sent\":{},\"acked\":{},\"rejected\":{}}},\"peak_concurrent\":{},\"setup_ms\":{},\"rtp_caller_to_callee\":{},\"rtp_callee_to_caller\":{},\"pacer_lag_ms\":{},\"loadgen_cpu_s\":{:.3},\"loadgen_cpu_pct\":{:.2},\"ok\":{}}}",
            self.mode,
            self.duration_s,
            self.register_s,
            self.registered,
            statuses_json(&self.register_failed),
            self.register_challenges,
            self.invite_challenges,
            self.attempted,
            self.established,
            self.failed_total(),
            statuses_json(&self.failed),
            self.dropped,
            self.completed,
            self.bye_failed,
            self.no_media,
            self.ack_timeouts,
            self.uas_invites,
            self.uas_challenges,
            self.uas_challenge_acks,
            self.uas_auth_failed,
            self.peak_concurrent,
            hist_json(&self.setup_us),
            dir(&self.fwd),
            dir(&self.rev),
            hist_json(&self.sender_lag_us),
            self.cpu_us as f64 / 1e6,
            self.cpu_pct(),
            self.ok()
        )
    }
}
