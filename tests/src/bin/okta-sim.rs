//! `okta-sim`: a simulated Okta org (see `closedloop_tests::okta_sim`) for the local
//! launcher and demos. A test and demo tool: it never ships in production images.
//!
//! ```text
//! okta-sim [--listen 127.0.0.1:0] [--base-url http://127.0.0.1:PORT]
//!          [--seed-file org.json] [--signing-key key.pem] [--jwks-max-age 3600]
//! ```
//!
//! When it serves, it prints one JSON line on stdout:
//! `{"event":"ready","base_url":…,"issuer":…,"listen":…,"jwks_uri":…,"apps":[{"name","client_id","client_secret","redirect_uris","post_logout_redirect_uris"}],"users":[…]}`.
//! The seed format is documented in `okta_sim::seed`. Ctrl-C or SIGTERM stops it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use closedloop_tests::okta_sim::keys::KeySource;
use closedloop_tests::okta_sim::seed::Seed;
use closedloop_tests::okta_sim::{OktaSim, SimConfig};
use tokio::net::TcpListener;

/// A simulated Okta org.
#[derive(Debug, Parser)]
#[command(name = "okta-sim", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The org URL, which is the OIDC issuer exactly; `http://{bound address}` if unset.
    #[arg(long)]
    base_url: Option<String>,
    /// JSON seed: apps (client id, secret, redirect URIs), users, groups.
    #[arg(long)]
    seed_file: Option<PathBuf>,
    /// A PEM RSA private key to sign with, so restarts keep the key relying parties
    /// cached; a fresh key if unset.
    #[arg(long)]
    signing_key: Option<PathBuf>,
    /// `Cache-Control: max-age` of the JWKS, in seconds.
    #[arg(long, default_value_t = 3600)]
    jwks_max_age: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seed = match &args.seed_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Seed::parse(&text).with_context(|| format!("parsing {}", path.display()))?
        }
        None => Seed::default(),
    };
    let signing_key_pem = match &args.signing_key {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let config = SimConfig {
        base_url: args.base_url,
        jwks_max_age: Duration::from_secs(args.jwks_max_age),
        key_source: KeySource::Fresh,
        seed,
        signing_key_pem,
    };
    let sim = OktaSim::start_on(listener, config).await?;
    let mut ready = sim.summary();
    ready["event"] = "ready".into();
    println!("{ready}");
    shutdown_signal().await;
    sim.stop().await
}

/// Ctrl-C, or SIGTERM from a launcher.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
