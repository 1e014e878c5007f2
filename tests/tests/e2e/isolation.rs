//! Region isolation: stores are stamped, workers refuse foreign stores, and a
//! workspace of one region does not exist at the other's hosts.

use closedloop_tests::harness::{
    EU_API, RegionStores, TestStack, TestWorker, US_API, worker_config,
};
use closedloop_tests::region::Region;
use serde_json::Value;

#[tokio::test]
async fn a_worker_refuses_stores_stamped_by_another_region() {
    let us_stores = RegionStores::fresh().await.unwrap();
    let first = TestWorker::start(worker_config(Region::Us, &us_stores))
        .await
        .unwrap();
    first.stop().await.unwrap();

    // The US Postgres and Redis, handed to an EU worker.
    let err = TestWorker::start(worker_config(Region::Eu, &us_stores))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("Postgres is stamped for region us"), "{msg}");
    assert!(msg.contains("serves region eu"), "{msg}");

    // A fresh Postgres but the US Redis key space: Redis's stamp refuses.
    let mut mixed = RegionStores::fresh().await.unwrap();
    mixed.redis_prefix = us_stores.redis_prefix.clone();
    let err = TestWorker::start(worker_config(Region::Eu, &mixed))
        .await
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("Redis is stamped for region us"), "{msg}");
}

#[tokio::test]
async fn the_worker_binary_exits_non_zero_on_a_foreign_store() {
    let us_stores = RegionStores::fresh().await.unwrap();
    TestWorker::start(worker_config(Region::Us, &us_stores))
        .await
        .unwrap()
        .stop()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("clt-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = dir.join("regions.toml");
    std::fs::write(
        &map,
        "development = true\n[regions.eu]\napp_url = \"http://eu.app.closedloop.localhost\"\n\
         api_url = \"http://eu.api.closedloop.localhost\"\nworkers = [\"127.0.0.1:9\"]\n\
         postgres = { env = \"EU_PG\" }\nredis = { env = \"EU_REDIS\" }\n\
         encryption_key = { env = \"EU_KEY\" }\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(closedloop_tests::harness::binary("region-worker"))
        .args(["migrate", "--config"])
        .arg(&map)
        .args(["--region", "eu"])
        .env("EU_PG", &us_stores.pg_url)
        .env("EU_REDIS", &us_stores.redis_url)
        .env("EU_KEY", closedloop_tests::harness::EU_ENCRYPTION_KEY)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("stamped for region us") && stderr.contains("region eu"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_us_workspace_is_not_found_at_the_eu_host() {
    let stack = TestStack::start().await.unwrap();
    let created = region_worker::cli::workspace_create(
        &stack.worker(Region::Us).state,
        "Acme",
        "admin@acme.test",
    )
    .await
    .unwrap();
    let team = &created.team_id.to_string();
    let issued =
        region_worker::cli::token_issue(&stack.worker(Region::Us).state, team, "scim", "", 1)
            .await
            .unwrap();
    let token = issued.token.as_str();

    // At the EU host, the US workspace does not exist, whatever the token.
    let r = stack
        .get(EU_API, &format!("/api/scim/v2/{team}/Users"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(body["status"], "404");

    // At the US host, the same workspace exists: a bad token is 401, not 404.
    let r = stack
        .get(US_API, &format!("/api/scim/v2/{team}/Users"))
        .bearer_auth("non-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A token of this region for another workspace is 401 too.
    let other = region_worker::cli::workspace_create(
        &stack.worker(Region::Us).state,
        "Other",
        "a@other.test",
    )
    .await
    .unwrap();
    let r = stack
        .get(US_API, &format!("/api/scim/v2/{}/Users", other.team_id))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A US token is refused at the EU host for an EU workspace without any lookup.
    let eu = region_worker::cli::workspace_create(
        &stack.worker(Region::Eu).state,
        "Acme EU",
        "admin@acme.test",
    )
    .await
    .unwrap();
    let r = stack
        .get(EU_API, &format!("/api/scim/v2/{}/Users", eu.team_id))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
