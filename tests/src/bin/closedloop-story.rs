//! `closedloop-story`: the seed's whole story ([`closedloop_tests::story`]) against the
//! running local stack (`closedloop-local`, whose `.local/stack.json` it reads), in each
//! region with a simulated Okta org of its own, printing each step with ✔ or ✘; then
//! each region's credentials presented to the other region. `closedloop-local demo`
//! runs it. Exits non-zero when a step fails.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::region::Region;
use closedloop_tests::story::{
    Credential, LocalStack, StoryOutcome, StoryTarget, credential_status, run_story,
};

#[derive(Parser)]
#[command(about = "Run the Okta story against the running local stack")]
struct Args {
    /// The local stack's record.
    #[arg(long, default_value = ".local/stack.json")]
    stack: PathBuf,
    /// The regions to run the story in.
    #[arg(long, value_delimiter = ',', default_value = "us,eu")]
    regions: Vec<Region>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let worker = std::env::current_exe()?.with_file_name("region-worker");
    let local = LocalStack::load(&args.stack, worker)?;
    println!(
        "The Okta story against {} (emails @{}.acme.test)\n",
        local.gateway, local.tag
    );
    let target = StoryTarget::Local(local);
    let mut failed = 0usize;
    let mut outcomes: Vec<StoryOutcome> = Vec::new();
    for region in &args.regions {
        let sim = OktaSim::start()
            .await
            .context("starting the simulated Okta org")?;
        println!("region {region} — simulated Okta org at {}", sim.base_url());
        let result = run_story(&target, &sim, *region, &mut |line, ok| {
            println!("  {} {line}", if ok { "✔" } else { "✘" });
            if !ok {
                failed += 1;
            }
        })
        .await;
        match result {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                println!("  ✘ [{region}] stopped: {e:#}");
                failed += 1;
            }
        }
        sim.stop().await?;
        println!();
    }
    if let [a, b] = outcomes.as_slice() {
        println!("isolation — each region's credentials at the other region");
        let gw = target.gateway();
        for (own, other) in [(a, b), (b, a)] {
            for (name, cred) in [
                ("session cookie", Credential::Session(&own.session_cookie)),
                ("API token", Credential::Api(&own.api_token)),
                ("MCP token", Credential::Mcp(&own.mcp_token)),
            ] {
                let home = credential_status(&gw, &target.app_base(own.region), cred).await?;
                let away = credential_status(&gw, &target.app_base(other.region), cred).await?;
                let ok = home == 200 && matches!(away, 303 | 401);
                if !ok {
                    failed += 1;
                }
                println!(
                    "  {} {} {name}: {home} at {}, {away} at {}",
                    if ok { "✔" } else { "✘" },
                    own.region,
                    own.region,
                    other.region
                );
            }
        }
        println!();
    }
    if failed > 0 {
        println!("{failed} step(s) failed");
        std::process::exit(1);
    }
    println!("every step passed");
    Ok(())
}
