//! Structured logging (tracing) and the run-time SIP message trace switch.

use std::sync::atomic::{AtomicBool, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

static SIP_TRACE: AtomicBool = AtomicBool::new(false);

/// Installs the global subscriber. `RUST_LOG` wins over `log.level`.
///
/// Lines are written by a background thread: the SIP core logs while it
/// holds its lock, and a slow terminal or disk must not stall calls. Keep
/// the returned guard alive until exit; dropping it flushes what is queued.
pub fn init(cfg: &LogConfig) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("pbx-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let result = match cfg.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
    set_sip_trace(cfg.sip_trace);
    guard
}

/// Turns the SIP message trace on or off.
pub fn set_sip_trace(on: bool) {
    SIP_TRACE.store(on, Ordering::Relaxed);
}

/// Flips the SIP message trace; returns the new state.
pub fn toggle_sip_trace() -> bool {
    !SIP_TRACE.fetch_xor(true, Ordering::Relaxed)
}

/// Whether messages are traced.
#[inline]
pub fn sip_trace() -> bool {
    SIP_TRACE.load(Ordering::Relaxed)
}

/// Logs one message if the trace is on.
#[inline]
pub fn trace_message(direction: &str, transport: &str, peer: std::net::SocketAddr, bytes: &[u8]) {
    if sip_trace() {
        tracing::info!(
            target: "sip_trace",
            "{direction} {transport} {peer} {} bytes\n{}",
            bytes.len(),
            String::from_utf8_lossy(bytes)
        );
    }
}
