//! The `gateway` binary: parses its flags, reads `regions.toml`, sets up logging, binds
//! both listeners and runs the gateway until SIGTERM or Ctrl-C.

#![forbid(unsafe_code)]

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use gateway::GatewayConfig;
use shared::regions::RegionMap;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Routes requests by host to the workers of the region serving that host.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Args {
    /// The region map (hosts → region → worker addresses).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Public listen address; overrides `[gateway] listen` of the config.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Admin listen address (`/healthz`, `/metrics`); overrides `[gateway] admin_listen`.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Log line format. The level filter comes from `RUST_LOG` (default `info`).
    #[arg(
        long,
        value_enum,
        env = "GATEWAY_LOG_FORMAT",
        default_value = "compact"
    )]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Compact human-readable lines.
    Compact,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.config) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("{}: {err}", args.config.display());
            return ExitCode::from(2);
        }
    };
    let map = match RegionMap::parse(&text) {
        Ok(map) => map,
        Err(err) => {
            eprintln!(
                "{}: line {}: {}",
                args.config.display(),
                err.line,
                err.message
            );
            return ExitCode::from(2);
        }
    };
    init_tracing(args.log_format);
    match serve(&args, map) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "gateway failed");
            ExitCode::FAILURE
        }
    }
}

/// Reads `RUST_LOG` (default `info`) and installs the global subscriber.
fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Compact => builder.compact().init(),
    }
}

#[tokio::main]
async fn serve(args: &Args, map: RegionMap) -> anyhow::Result<()> {
    let listen = args.listen.unwrap_or(map.gateway.listen);
    let admin_listen = args.admin_listen.unwrap_or(map.gateway.admin_listen);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the public listener on {listen}"))?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .with_context(|| format!("binding the admin listener on {admin_listen}"))?;
    gateway::run(listener, admin, GatewayConfig::new(map), shutdown_signal()).await
}

/// Resolves on SIGTERM (how orchestrators stop us) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
