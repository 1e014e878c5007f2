//! The `gateway` binary: parses its flags, reads `regions.toml`, sets up logging, binds
//! the listeners and runs the gateway until SIGTERM or Ctrl-C. SIGHUP re-reads the
//! file and the certificates it names; a file that does not parse or validate is
//! refused with the reason in the log, and the running configuration stays.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gateway::{Gateway, GatewayConfig, GatewayHandle, Listeners};
use shared::regions::{RegionMap, RegionMapError};
use shared::telemetry::{self, LogFormat};
use tokio::net::TcpListener;
use tracing_appender::non_blocking::WorkerGuard;

/// Routes requests by host to the workers of the region serving that host.
#[derive(Debug, Parser)]
#[command(name = "gateway", version)]
struct Args {
    /// The region map (hosts → region → worker addresses, `[gateway]` settings).
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Plain-HTTP listen address; overrides `[gateway] listen` of the config.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// TLS listen address; overrides `[gateway] tls_listen` of the config.
    #[arg(long, value_name = "ADDR")]
    tls_listen: Option<SocketAddr>,
    /// Admin listen address (`/healthz`, `/metrics`); overrides `[gateway] admin_listen`.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Threads serving client connections, each with its own event loop (default: one
    /// per CPU).
    #[arg(long, env = "GATEWAY_THREADS", value_name = "N")]
    threads: Option<NonZeroUsize>,
    /// Log line format: `compact` (default) or `json` (one object per line, the schema
    /// of deploy/README.md "Logs"). Also `CLOSEDLOOP_LOG_FORMAT` (or the older
    /// `GATEWAY_LOG_FORMAT`). The level filter comes from `RUST_LOG` (default `info`; the
    /// access log is the `gateway::access` target, e.g. `RUST_LOG=info,gateway::access=off`).
    #[arg(long, env = "CLOSEDLOOP_LOG_FORMAT", value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let map = match read_map(&args.config) {
        Ok(map) => map,
        Err(err) => {
            eprintln!("{err:#}");
            return ExitCode::from(2);
        }
    };
    let format = args.log_format.or_else(|| {
        std::env::var("GATEWAY_LOG_FORMAT")
            .ok()
            .and_then(|f| f.parse().ok())
    });
    let _flush = match init_tracing(format.unwrap_or_default(), &map) {
        Ok(guards) => guards,
        Err(err) => {
            eprintln!("{err:#}");
            return ExitCode::from(2);
        }
    };
    match serve(&args, map) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "gateway failed");
            ExitCode::FAILURE
        }
    }
}

/// Reads and validates the region map; the error names the file and line.
fn read_map(path: &Path) -> anyhow::Result<RegionMap> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    RegionMap::parse(&text).map_err(|RegionMapError { line, message, .. }| {
        anyhow::anyhow!("{}: line {line}: {message}", path.display())
    })
}

/// Reads `RUST_LOG` (default `info`) and installs the global subscriber (shared with
/// the worker: one JSON schema, one trace setup). Lines are written by a background
/// thread (the access log writes one per request, and a request must not wait for the
/// terminal or the pipe); the guard flushes it at exit. The thread buffers what it has
/// queued and flushes whenever the queue runs dry, so a busy gateway writes its log in
/// large writes rather than one system call per line. Traces are exported when
/// `[telemetry]` or the standard `OTEL_EXPORTER_OTLP_*` variables name a collector.
fn init_tracing(
    format: LogFormat,
    map: &RegionMap,
) -> anyhow::Result<(telemetry::Guard, WorkerGuard)> {
    let stdout = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking(stdout);
    let telemetry = telemetry::init(
        telemetry::Setup {
            service: "gateway",
            format,
            ansi: std::io::IsTerminal::is_terminal(&std::io::stdout()),
            region: None,
            traces: Some(&map.telemetry),
        },
        writer,
    )?;
    Ok((telemetry, guard))
}

/// The caller's runtime is single-threaded: it accepts, and runs the admin listener,
/// health checks and signals. Client connections run on the gateway's own threads.
#[tokio::main(flavor = "current_thread")]
async fn serve(args: &Args, map: RegionMap) -> anyhow::Result<()> {
    let settings = &map.gateway;
    let plain = args.listen.or(settings.listen);
    let tls = args.tls_listen.or(settings.tls_listen);
    let admin_listen = args.admin_listen.unwrap_or(settings.admin_listen);
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {what} listener on {addr}"))
    };
    let listeners = Listeners {
        plain: match plain {
            Some(addr) => Some(bind(addr, "plain HTTP").await?),
            None => None,
        },
        tls: match tls {
            Some(addr) => Some(bind(addr, "TLS").await?),
            None => None,
        },
        admin: bind(admin_listen, "admin").await?,
    };
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .unwrap_or(NonZeroUsize::MIN);
    let gateway = Gateway::new(GatewayConfig::new(map)).context("starting the gateway")?;
    tokio::spawn(reload_on_sighup(args.config.clone(), gateway.handle()));
    gateway
        .serve_on_threads(listeners, threads, shutdown_signal())
        .await
}

/// Re-reads the map (and through it the certificates) on every SIGHUP.
async fn reload_on_sighup(path: PathBuf, handle: GatewayHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGHUP; reload disabled");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            tracing::info!(config = %path.display(), "SIGHUP: reloading");
            let map = match read_map(&path) {
                Ok(map) => map,
                Err(err) => {
                    tracing::error!(
                        error = format!("{err:#}"),
                        "the new configuration is invalid; keeping the running one"
                    );
                    continue;
                }
            };
            if let Err(err) = handle.reload(map) {
                tracing::error!(
                    error = %err,
                    "the new configuration cannot be applied; keeping the running one"
                );
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, handle);
    }
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
