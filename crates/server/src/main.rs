//! `pbx`: the PBX server binary.
//!
//! With no arguments it serves with the configuration found as described in
//! [`config`] (built-in defaults when there is none). Subcommands manage it
//! (see [`admin`]).

mod admin;
mod config;
mod core;
mod dialplan;
mod logging;
mod media;
mod storage;
mod transport;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tracing::{error, info};

// mimalloc: the SIP path allocates many small, short-lived buffers from
// several threads; glibc malloc spent a tenth of the CPU on them under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "pbx",
    version,
    about = "An enterprise PBX: SIP registrar, B2BUA and call features"
)]
struct Cli {
    /// Configuration file (TOML). Default: $PBX_CONFIG, else ./pbx.toml if
    /// present, else built-in defaults.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default when no subcommand is given).
    Serve,
    /// Load and validate the configuration, then print it (secrets hidden).
    CheckConfig,
    /// Manage extensions.
    #[command(subcommand)]
    Extension(admin::ExtensionCommand),
    /// Show registrations (current bindings and history).
    #[command(subcommand)]
    Registration(admin::RegistrationCommand),
    /// Show the security audit log.
    #[command(subcommand)]
    Audit(admin::AuditCommand),
    /// Show call detail records.
    #[command(subcommand)]
    Cdr(admin::CdrCommand),
    /// Manage the dialplan rules kept in the database (a running server
    /// applies changes within two seconds).
    #[command(subcommand)]
    Dialplan(admin::DialplanCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let (cfg, origin) = match config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pbx: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::CheckConfig = command {
        return match toml::to_string_pretty(&cfg.redacted()) {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pbx: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let serving = matches!(command, Command::Serve);
    // Held until main returns: dropping it flushes the queued log lines.
    let _log_guard = serving.then(|| logging::init(&cfg.log));
    if serving {
        info!(config = ?origin, "starting pbx {}", env!("CARGO_PKG_VERSION"));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pbx: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match command {
            Command::Serve => serve(cfg).await,
            Command::Extension(c) => admin::extension(&cfg, c).await,
            Command::Registration(c) => admin::registration(&cfg, c).await,
            Command::Audit(c) => admin::audit(&cfg, c).await,
            Command::Cdr(c) => admin::cdr(&cfg, c).await,
            Command::Dialplan(c) => admin::dialplan(&cfg, c).await,
            Command::CheckConfig => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if serving {
                error!("{e:#}");
            }
            eprintln!("pbx: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How often the server checks the database's dialplan revision (the CLI
/// also signals the server, so this bounds only other writers' delay).
const DIALPLAN_POLL: Duration = Duration::from_secs(1);

async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let store = storage::open(&cfg).await?;
    let directory = storage::load_directory(&store).await?;
    info!(extensions = directory.len(), "directory loaded");

    let outbound = transport::Outbound::default();
    let (media_events, media_rx) = tokio::sync::mpsc::unbounded_channel();
    let media =
        media::MediaManager::new(&cfg.media, tokio::runtime::Handle::current(), media_events)
            .context("setting up the RTP relay ([media] in the configuration)")?;
    info!(
        ports = %cfg.media.rtp_ports,
        pairs = media.available_ports(),
        kernel_forwarding = %media.kernel_interfaces().join(","),
        "RTP relay ready"
    );
    let mut sip_core = core::Core::new(
        &cfg,
        directory,
        outbound.clone(),
        true,
        Some(media),
        Instant::now(),
    );
    // Before any transport starts: the first call already sees the
    // database's rules.
    let (plan, dialplan_revision) = dialplan::load(&store, &cfg).await?;
    sip_core.control(core::Control::Dialplan(plan));
    let bindings = storage::load_bindings(&store).await?;
    let restored = bindings.len();
    sip_core.registrar_mut().restore(bindings, core::unix_ms());
    info!(bindings = restored, "registrations restored");
    let sip_core = core::SharedCore::new(sip_core);
    let stop_writer = std::sync::Arc::new(tokio::sync::Notify::new());
    let writer = tokio::spawn(storage::run_writer(
        store.clone(),
        sip_core.clone(),
        stop_writer.clone(),
    ));

    let mut tasks = JoinSet::new();
    let mut udp_workers = transport::udp::UdpWorkers::default();
    transport::start(&cfg, &outbound, &sip_core, &mut tasks, &mut udp_workers)?;
    // Trunks register once the transports can send.
    sip_core.start();
    tasks.spawn(sip_core.clone().run_timers());
    tasks.spawn(sip_core.clone().run_media_events(media_rx));
    tasks.spawn(storage::watch_extensions(
        store.clone(),
        sip_core.clone(),
        Duration::from_secs(2),
    ));
    tasks.spawn(dialplan::watch(
        store.clone(),
        sip_core.clone(),
        std::sync::Arc::new(cfg.clone()),
        DIALPLAN_POLL,
        dialplan_revision,
    ));

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("installing the SIGUSR1 handler")?;
    let pid_file = storage::pid_file(&cfg.storage);
    if let Err(e) = std::fs::write(&pid_file, format!("{}\n", std::process::id())) {
        tracing::warn!(path = %pid_file.display(), error = %e, "cannot write the pid file");
    }
    info!("ready");
    let outcome = loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: shutting down"); break Ok(()); }
            _ = int.recv() => { info!("SIGINT: shutting down"); break Ok(()); }
            _ = usr1.recv() => {
                let on = logging::toggle_sip_trace();
                info!(sip_trace = on, "SIP message trace toggled");
            }
            Some(done) = tasks.join_next() => {
                // Listener and timer tasks never end on their own.
                break Err(anyhow::anyhow!("a server task ended unexpectedly: {done:?}"));
            }
        }
    };
    let ended = sip_core.hang_up_all();
    if ended > 0 {
        info!(calls = ended, "calls hung up for the shutdown");
    }
    let (calls, relays, ports_free) = sip_core.call_summary();
    info!(calls, relays, ports_free, "calls at shutdown");
    // Stop listening, then let the writer store what is pending.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    let _ = tokio::task::spawn_blocking(move || udp_workers.stop()).await;
    stop_writer.notify_one();
    if tokio::time::timeout(Duration::from_secs(5), writer)
        .await
        .is_err()
    {
        error!("pending database writes did not finish within 5 s");
    }
    store.close().await;
    let _ = std::fs::remove_file(&pid_file);
    info!("stopped");
    outcome
}
