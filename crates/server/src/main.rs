//! `pbx`: the PBX server binary.
//!
//! With no arguments it serves with the configuration found as described in
//! [`config`] (built-in defaults when there is none). Subcommands manage it.

mod config;
mod core;
mod logging;
mod transport;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinSet;
use tracing::{error, info};

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
    /// Load and validate the configuration, then print it as TOML.
    CheckConfig,
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            match toml::to_string_pretty(&cfg) {
                Ok(text) => print!("{text}"),
                Err(e) => {
                    eprintln!("pbx: {e}");
                    return std::process::ExitCode::FAILURE;
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Command::Serve => {
            logging::init(&cfg.log);
            info!(config = ?origin, "starting pbx {}", env!("CARGO_PKG_VERSION"));
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    error!(error = %e, "cannot start the runtime");
                    return std::process::ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(cfg)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("pbx: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(cfg: config::Config) -> anyhow::Result<()> {
    let mut directory = core::Directory::default();
    for e in &cfg.extensions {
        let user = e.username.clone().unwrap_or_else(|| e.number.clone());
        let creds = core::Credentials::from_password(&user, &cfg.sip.realm, &e.password);
        directory.insert(user, creds);
    }
    info!(extensions = directory.len(), "directory loaded");
    let mut tasks = JoinSet::new();
    let outbound = transport::Outbound::default();
    let sip_core = core::SharedCore::new(core::Core::new(
        &cfg,
        directory,
        outbound.clone(),
        None,
        std::time::Instant::now(),
    ));
    transport::start(&cfg, &outbound, &sip_core, &mut tasks)?;
    tasks.spawn(sip_core.clone().run_timers());
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("installing the SIGUSR1 handler")?;
    info!("ready");
    loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { info!("SIGINT: shutting down"); break; }
            _ = usr1.recv() => {
                let on = logging::toggle_sip_trace();
                info!(sip_trace = on, "SIP message trace toggled");
            }
            Some(done) = tasks.join_next() => {
                // A listener task never ends on its own; if one does, fail loudly.
                anyhow::bail!("a transport task ended unexpectedly: {done:?}");
            }
        }
    }
    // Stop listening; in-flight stateless answers are already sent.
    tasks.abort_all();
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    info!("stopped");
    Ok(())
}
