//! `hostile-as`: the hostile authorization server of the OIDC mix-up test (see
//! `closedloop_tests::hostile_as`), as its own process. A test tool: it never ships.
//!
//! ```text
//! hostile-as [--listen 127.0.0.1:0]
//! ```
//!
//! When it serves, it prints one JSON line on stdout: `{"event":"ready","base_url":…}`.
//! Ctrl-C or SIGTERM stops it.

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;

/// A hostile authorization server.
#[derive(Debug, Parser)]
#[command(name = "hostile-as", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    println!(
        "{}",
        closedloop_tests::hostile_as::ready_line(listener.local_addr()?)
    );
    closedloop_tests::hostile_as::serve(listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
