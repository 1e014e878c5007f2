//! The seed's whole story ([`closedloop_tests::story`]) in the US and the EU at once,
//! with the same emails and names, then proof that region data never mixes: both
//! regions' Postgres databases and Redis key spaces dumped and searched for the other
//! region's identifiers, token hashes and region-only emails; every US credential
//! refused at the EU hosts and vice versa; a worker given the other region's stores
//! refuses to start.

use std::collections::BTreeSet;

use closedloop_tests::harness::{RegionStores, TestStack, TestWorker, pg_connect, worker_config};
use closedloop_tests::okta_sim::OktaSim;
use closedloop_tests::region::Region;
use closedloop_tests::story::{
    Credential, StoryOutcome, StoryTarget, credential_status, run_story,
};
use reqwest::Method;

/// Runs the story in one region with its own Okta org, printing each step.
async fn story(target: &StoryTarget<'_>, region: Region) -> StoryOutcome {
    let sim = OktaSim::start().await.unwrap();
    let mut lines = Vec::new();
    let outcome = run_story(target, &sim, region, &mut |line, ok| {
        let mark = if ok { "✔" } else { "✘" };
        println!("{mark} {line}");
        lines.push((line.to_owned(), ok));
    })
    .await;
    let outcome = outcome.unwrap_or_else(|e| panic!("{e:#}"));
    assert!(lines.iter().all(|(_, ok)| *ok), "{lines:?}");
    assert!(lines.len() >= 20, "every step reported: {lines:?}");
    outcome
}

#[tokio::test]
async fn the_whole_story_runs_in_both_regions_and_their_data_never_mixes() {
    let stack = TestStack::start().await.unwrap();
    let target = StoryTarget::InProcess(&stack);
    let (us, eu) = tokio::join!(story(&target, Region::Us), story(&target, Region::Eu));

    // A second US workspace: a one-time link never used.
    let fresh_us = stack
        .workspace(Region::Us, "Globex", "owner@globex.test")
        .await;
    let fresh_eu = stack
        .workspace(Region::Eu, "Globex", "owner@globex.test")
        .await;

    // Every credential of one region is refused at the other's hosts, and still works
    // at its own (so the refusal is the region's, not a dead credential's).
    for (own, other, fresh) in [(&us, &eu, &fresh_us), (&eu, &us, &fresh_eu)] {
        let own_app = own.region.app_url();
        let other_app = other.region.app_url();
        for cred in [
            Credential::Session(&own.session_cookie),
            Credential::Api(&own.api_token),
            Credential::Mcp(&own.mcp_token),
        ] {
            let gw = stack.gateway.url();
            assert_eq!(
                credential_status(&gw, &own_app, cred).await.unwrap(),
                200,
                "{cred:?} works in {}",
                own.region
            );
            let there = credential_status(&gw, &other_app, cred).await.unwrap();
            assert!(
                matches!(there, 303 | 401),
                "{} {cred:?} answered {there} in {}",
                own.region,
                other.region
            );
        }
        // The SCIM access token: at the other region, for either workspace.
        for team in [&own.team_id, &other.team_id] {
            // 404 for a workspace the region does not hold, 401 for a foreign token.
            let s = scim_status(&stack, other.region, team, &own.scim_access_token).await;
            assert!(
                matches!(s, 401 | 404),
                "{} SCIM token at {} for {team}: {s}",
                own.region,
                other.region
            );
        }
        assert_eq!(
            scim_status(&stack, own.region, &own.team_id, &own.scim_access_token).await,
            200
        );
        // The refresh token at the other region's token endpoint, with its client.
        let (id, secret) = other.region.scim_client();
        let r = stack
            .request(
                Method::POST,
                other.region.api(),
                "/api/okta/scim/oauth/token",
            )
            .basic_auth(id, Some(secret))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", own.scim_refresh_token.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            400,
            "{} refresh token at {}",
            own.region,
            other.region
        );
        // A one-time link of one region at the other's app host.
        let code = fresh.sign_in_url.split("code=").nth(1).unwrap();
        let r = stack
            .request(Method::POST, other.region.app(), "/auth/link")
            .form(&[("code", code)])
            .send()
            .await
            .unwrap();
        assert_ne!(
            r.status(),
            303,
            "a {} link signs no one in at {}",
            own.region,
            other.region
        );
    }

    // The dumps: nothing of one region in the other's stores.
    let us_dump = dump(&stack.us_stores).await;
    let eu_dump = dump(&stack.eu_stores).await;
    let us_hashes = hashes(&stack.us_stores).await;
    let eu_hashes = hashes(&stack.eu_stores).await;
    assert!(!us_hashes.is_empty() && !eu_hashes.is_empty());
    for (own, own_hashes, own_extra, other_dump, other) in [
        (&us, &us_hashes, &fresh_us, &eu_dump, "eu"),
        (&eu, &eu_hashes, &fresh_eu, &us_dump, "us"),
    ] {
        let mut needles: Vec<&str> =
            vec![&own.team_id, &own_extra.team_id, &own_extra.admin_user_id];
        needles.extend(own.user_ids.iter().map(String::as_str));
        needles.extend(own.group_ids.iter().map(String::as_str));
        needles.extend(own.region_emails.iter().map(String::as_str));
        needles.extend(own_hashes.iter().map(String::as_str));
        for secret in [
            &own.api_token,
            &own.mcp_token,
            &own.scim_access_token,
            &own.scim_refresh_token,
        ] {
            needles.push(secret);
        }
        for n in needles {
            assert!(n.len() >= 8, "a needle too short to mean anything: {n:?}");
            assert!(
                !other_dump.contains(n),
                "{}'s {n:?} is in the {other} stores",
                own.region
            );
        }
    }
    // The same emails were used on purpose: both regions hold them, each its own.
    for dump in [&us_dump, &eu_dump] {
        assert!(dump.contains(closedloop_tests::story::JANE));
    }

    // A worker given the other region's stores refuses to start, naming the stamp.
    for (region, stores, stamped) in [
        (Region::Eu, &stack.us_stores, "us"),
        (Region::Us, &stack.eu_stores, "eu"),
    ] {
        let err = TestWorker::start(worker_config(region, stores))
            .await
            .expect_err("a worker on the other region's stores");
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("stamped for region {stamped}"))
                && msg.contains(&format!("serves region {region}")),
            "{msg}"
        );
    }
}

async fn scim_status(stack: &TestStack, region: Region, team: &str, token: &str) -> u16 {
    stack
        .get(region.api(), &format!("/api/scim/v2/{team}/Users?count=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Every row of every table of the region's database as text, and every key of its
/// Redis key space with its value: what `pg_dump` and `redis-cli --scan` would show.
async fn dump(stores: &RegionStores) -> String {
    let db = pg_connect(&stores.pg_url).await.unwrap();
    let tables: Vec<String> = db
        .query(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)
               FROM information_schema.tables
              WHERE table_type = 'BASE TABLE'
                AND table_schema NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() > 5, "{tables:?}");
    let mut out = String::new();
    for t in &tables {
        for row in db
            .query(&format!("SELECT t::text FROM {t} t"), &[])
            .await
            .unwrap()
        {
            out.push_str(&row.get::<_, String>(0));
            out.push('\n');
        }
    }
    out.push_str(&redis_dump(stores).await);
    out
}

/// The region's Redis key space: `SCAN` its prefix, each key with its value.
async fn redis_dump(stores: &RegionStores) -> String {
    let client = redis::Client::open(stores.redis_url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: BTreeSet<String> = BTreeSet::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{}*", stores.redis_prefix))
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out = String::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        let value: Vec<String> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&k)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
                    .unwrap()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            _ => Vec::new(),
        };
        out.push_str(&format!("{k} {}\n", value.join(" ")));
    }
    out
}

/// Every stored token hash of the region (columns named `*hash*`), as text.
async fn hashes(stores: &RegionStores) -> Vec<String> {
    let db = pg_connect(&stores.pg_url).await.unwrap();
    let cols = db
        .query(
            "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name), quote_ident(column_name)
               FROM information_schema.columns
              WHERE column_name LIKE '%hash%'
                AND table_schema NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    for c in cols {
        let (t, col): (String, String) = (c.get(0), c.get(1));
        // bytea casts to `\x…` hex, which is how it appears in the row dump too.
        for row in db
            .query(
                &format!("SELECT {col}::text FROM {t} WHERE {col} IS NOT NULL"),
                &[],
            )
            .await
            .unwrap()
        {
            let v: String = row.get(0);
            if v.len() >= 16 {
                out.push(v);
            }
        }
    }
    out
}
