//! `region-worker`: serve one region, or run an operator command against its stores.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use region_worker::config::WorkerConfig;
use shared::ids::RegionId;
use shared::regions::RegionMap;

#[derive(Parser)]
#[command(version, about = "ClosedLoop region worker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format: `compact` (default) or `json` (one object per line, the schema
    /// of deploy/README.md "Logs"). The level filter comes from `RUST_LOG`.
    #[arg(
        long,
        global = true,
        env = "CLOSEDLOOP_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: Option<shared::telemetry::LogFormat>,
}

#[derive(clap::Args)]
struct Target {
    /// The region map (`regions.toml`).
    #[arg(long, default_value = "regions.toml")]
    config: PathBuf,
    /// The region to serve or operate on.
    #[arg(long)]
    region: RegionId,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the region's public and admin listeners.
    Serve {
        #[command(flatten)]
        target: Target,
        /// Public listener (default: the region's `worker_listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Admin listener (default: the region's `worker_admin_listen`).
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// Sustained SCIM requests per second per workspace (0: no limit).
        #[arg(long, env = "CLOSEDLOOP_SCIM_RATE_PER_SECOND", default_value_t = 2000)]
        scim_rate_per_second: u32,
        /// SCIM requests a workspace may burst above the sustained rate.
        #[arg(long, env = "CLOSEDLOOP_SCIM_RATE_BURST", default_value_t = 4000)]
        scim_rate_burst: u32,
        /// Postgres connections per worker.
        #[arg(long, env = "CLOSEDLOOP_PG_POOL_SIZE", default_value_t = 16)]
        pg_pool_size: usize,
        /// Sustained refused credential checks (and sign-in attempts) per second per
        /// client before it is turned away (0: no limit).
        #[arg(long, env = "CLOSEDLOOP_AUTH_RATE_PER_SECOND", default_value_t = 20)]
        auth_rate_per_second: u32,
        /// Refused credential checks a client may burst above the sustained rate.
        #[arg(long, env = "CLOSEDLOOP_AUTH_RATE_BURST", default_value_t = 200)]
        auth_rate_burst: u32,
    },
    /// Apply migrations and check the region stamps, then exit.
    Migrate {
        #[command(flatten)]
        target: Target,
    },
    /// Workspaces.
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The region encryption key.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-seal every sealed value under the current `encryption_key` (after a rotation
    /// moved the old key to `previous_encryption_keys`) and print the counts.
    Reencrypt {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum WorkspaceCommand {
    /// Create a workspace and print its team_id and its first admin's sign-in link.
    Create {
        #[command(flatten)]
        target: Target,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Email of the first admin.
        #[arg(long)]
        admin_email: String,
        /// Full name of the first admin (`"Jane Doe"`): given and family name split at
        /// the last space, stored as their SCIM `name`.
        #[arg(long)]
        admin_name: Option<String>,
    },
    /// List a workspace's admins (whom `sign-in-link` serves).
    Admins {
        #[command(flatten)]
        target: Target,
        /// The workspace (`team_id`).
        #[arg(long)]
        team: String,
    },
    /// Issue a new one-time sign-in link (24 h) for an admin of a workspace, revoking
    /// their unused ones: the way back in for an admin whose link expired. Audited.
    SignInLink {
        #[command(flatten)]
        target: Target,
        /// The workspace (`team_id`).
        #[arg(long)]
        team: String,
        /// The admin's email (or user name).
        #[arg(long)]
        email: String,
    },
    /// List the region's workspaces (with the custom Okta domains allowed for each).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Allow a workspace to use a custom Okta URL domain (Okta's own domains need no
    /// allowance). Audited.
    AllowOktaDomain {
        #[command(flatten)]
        target: Target,
        /// The workspace (`team_id`).
        #[arg(long)]
        team: String,
        /// The custom domain, as the admin enters it (`login.acme.com`).
        #[arg(long)]
        domain: String,
        /// Withdraw the allowance instead (the same as `disallow-okta-domain`).
        #[arg(long)]
        remove: bool,
    },
    /// Withdraw a custom Okta domain's allowance: sign-ins through it stop at once.
    /// Audited.
    DisallowOktaDomain {
        #[command(flatten)]
        target: Target,
        /// The workspace (`team_id`).
        #[arg(long)]
        team: String,
        /// The custom domain.
        #[arg(long)]
        domain: String,
    },
    /// List the email domains a workspace claimed for sign-in by email domain, pending
    /// and verified, with the DNS record each needs.
    Domains {
        #[command(flatten)]
        target: Target,
        /// The workspace (`team_id`).
        #[arg(long)]
        team: String,
    },
    /// Release a verified email domain from the workspace that holds it, so that
    /// another workspace may verify it. Audited.
    ReleaseDomain {
        #[command(flatten)]
        target: Target,
        /// The email domain (`acme.com`).
        #[arg(long)]
        domain: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a SCIM bearer token for a workspace.
    Issue {
        #[command(flatten)]
        target: Target,
        /// The workspace (`team_id`).
        #[arg(long)]
        team: String,
        /// Token kind; operators issue `scim` tokens.
        #[arg(long, default_value = "scim")]
        kind: String,
        /// Space-separated scopes (default: all three).
        #[arg(long, default_value = "")]
        scopes: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 365)]
        ttl_days: u32,
    },
}

fn read_map(target: &Target) -> anyhow::Result<RegionMap> {
    let text = std::fs::read_to_string(&target.config)
        .with_context(|| format!("reading {}", target.config.display()))?;
    RegionMap::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", target.config.display()))
}

fn load(target: &Target) -> anyhow::Result<WorkerConfig> {
    let map = read_map(target)?;
    // The store URLs come from the variables or files the map names.
    Ok(WorkerConfig::from_map(&map, &target.region, &|name| {
        std::env::var(name).ok()
    })?)
}

/// Prints a command's result as one JSON document: the one place results are
/// serialised. Through a `Value`, whose map keeps keys sorted, so the output has the
/// key order it always had, whatever the order of a result's fields.
fn print(result: &impl serde::Serialize) -> anyhow::Result<()> {
    let value = serde_json::to_value(result)?;
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Only `serve` exports traces (an operator command is no request to follow); every
    // command logs in the chosen format, to stderr (stdout carries command results).
    let (region, traces) = match &cli.command {
        Command::Serve { target, .. } => (
            Some(target.region.to_string()),
            Some(read_map(target)?.telemetry),
        ),
        _ => (None, None),
    };
    let _telemetry = shared::telemetry::init(
        shared::telemetry::Setup {
            service: "region-worker",
            format: cli.log_format.unwrap_or_default(),
            ansi: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            region,
            traces: traces.as_ref(),
        },
        std::io::stderr,
    )?;
    match cli.command {
        Command::Serve {
            target,
            listen,
            admin_listen,
            scim_rate_per_second,
            scim_rate_burst,
            pg_pool_size,
            auth_rate_per_second,
            auth_rate_burst,
        } => {
            let mut config = load(&target)?;
            config.scim_rate_limit = region_worker::config::RateLimit {
                per_second: scim_rate_per_second,
                burst: scim_rate_burst,
            };
            config.auth_rate_limit = region_worker::config::RateLimit {
                per_second: auth_rate_per_second,
                burst: auth_rate_burst,
            };
            config.pg_pool_size = pg_pool_size.max(1);
            if let Some(a) = listen {
                config.listen = a;
            }
            if let Some(a) = admin_listen {
                config.admin_listen = a;
            }
            let public = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            let admin = tokio::net::TcpListener::bind(config.admin_listen)
                .await
                .with_context(|| format!("binding {}", config.admin_listen))?;
            let state = region_worker::connect(config).await?;
            tracing::info!(
                region = %target.region,
                public = %public.local_addr()?,
                admin = %admin.local_addr()?,
                "region worker serving"
            );
            region_worker::run(public, admin, state, shutdown_signal()).await
        }
        Command::Migrate { target } => {
            region_worker::connect(load(&target)?).await?;
            print(&serde_json::json!({ "region": target.region, "migrated": true }))
        }
        Command::Workspace(WorkspaceCommand::Create {
            target,
            name,
            admin_email,
            admin_name,
        }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(
                &region_worker::cli::workspace_create_named(
                    &state,
                    &name,
                    &admin_email,
                    admin_name.as_deref(),
                )
                .await?,
            )
        }
        Command::Workspace(WorkspaceCommand::Admins { target, team }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(&region_worker::cli::workspace_admins(&state, &team).await?)
        }
        Command::Workspace(WorkspaceCommand::SignInLink {
            target,
            team,
            email,
        }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(&region_worker::cli::workspace_sign_in_link(&state, &team, &email).await?)
        }
        Command::Workspace(WorkspaceCommand::List { target }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(&region_worker::cli::workspace_list(&state).await?)
        }
        Command::Workspace(WorkspaceCommand::AllowOktaDomain {
            target,
            team,
            domain,
            remove,
        }) => {
            let state = region_worker::connect(load(&target)?).await?;
            let done = if remove {
                region_worker::cli::workspace_disallow_okta_domain(&state, &team, &domain).await?
            } else {
                region_worker::cli::workspace_allow_okta_domain(&state, &team, &domain).await?
            };
            print(&done)
        }
        Command::Workspace(WorkspaceCommand::DisallowOktaDomain {
            target,
            team,
            domain,
        }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(
                &region_worker::cli::workspace_disallow_okta_domain(&state, &team, &domain).await?,
            )
        }
        Command::Workspace(WorkspaceCommand::Domains { target, team }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(&region_worker::cli::workspace_domains(&state, &team).await?)
        }
        Command::Workspace(WorkspaceCommand::ReleaseDomain { target, domain }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(&region_worker::cli::workspace_release_domain(&state, &domain).await?)
        }
        Command::Token(TokenCommand::Issue {
            target,
            team,
            kind,
            scopes,
            ttl_days,
        }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(&region_worker::cli::token_issue(&state, &team, &kind, &scopes, ttl_days).await?)
        }
        Command::Keys(KeysCommand::Reencrypt { target }) => {
            let state = region_worker::connect(load(&target)?).await?;
            print(&region_worker::rekey::reencrypt(&state).await?)
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
