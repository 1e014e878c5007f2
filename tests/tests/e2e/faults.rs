//! A store that goes away makes requests answer `503` with `Retry-After` (never a
//! crash), `/readyz` fail, and service return by itself when the store comes back.

use closedloop_tests::harness::{
    RegionStores, TestWorker, US_API, client, ensure_template, fresh_database_on, with_database,
    worker_config,
};
use deploy::stores::{PostgresServer, RedisServer, free_port};

async fn scim_users(worker: &TestWorker, team: &str, token: &str) -> reqwest::Response {
    client()
        .get(format!("{}/api/scim/v2/{team}/Users", worker.url()))
        .header("host", US_API)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn ready(worker: &TestWorker) -> u16 {
    client()
        .get(format!("http://{}/readyz", worker.admin_addr))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_means_503_and_recovery_without_restart() {
    let dir = std::env::temp_dir().join(format!("clt-pg-{}", uuid::Uuid::new_v4().simple()));
    let mut pg =
        tokio::task::block_in_place(|| PostgresServer::start_on_free_port(&dir, false)).unwrap();
    let admin = pg.url("postgres");
    let template = ensure_template(&admin).await.unwrap();
    let db = fresh_database_on(&admin, &template).await.unwrap();
    let stores = RegionStores {
        pg_url: with_database(&admin, &db.name),
        redis_url: closedloop_tests::harness::redis_url(),
        redis_prefix: closedloop_tests::harness::redis_prefix(),
    };
    let worker = TestWorker::start(worker_config("us", &stores))
        .await
        .unwrap();
    let created = region_worker::cli::workspace_create(&worker.state, "Acme", "a@acme.test")
        .await
        .unwrap();
    let team = created["team_id"].as_str().unwrap().to_owned();
    assert_eq!(scim_users(&worker, &team, "non-token").await.status(), 401);

    tokio::task::block_in_place(|| pg.stop(true)).unwrap();
    let r = scim_users(&worker, &team, "non-token").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(r.headers()["content-type"], "application/scim+json");
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("postgres") && !body.contains("connection"),
        "no internals: {body}"
    );
    assert_eq!(ready(&worker).await, 503);

    tokio::task::block_in_place(|| pg.resume()).unwrap();
    // The pool reconnects by itself; no restart of the worker.
    assert_eq!(scim_users(&worker, &team, "non-token").await.status(), 401);
    assert_eq!(ready(&worker).await, 200);
    worker.stop().await.unwrap();
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_means_503_and_recovery_without_restart() {
    let dir = std::env::temp_dir().join(format!("clt-redis-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port().unwrap();
    let mut redis = tokio::task::block_in_place(|| RedisServer::start(&dir, port, false)).unwrap();
    let stores = RegionStores {
        pg_url: closedloop_tests::harness::fresh_database()
            .await
            .unwrap()
            .url,
        redis_url: redis.url(),
        redis_prefix: String::new(),
    };
    let worker = TestWorker::start(worker_config("us", &stores))
        .await
        .unwrap();
    let created = region_worker::cli::workspace_create(&worker.state, "Acme", "a@acme.test")
        .await
        .unwrap();
    let team = created["team_id"].as_str().unwrap().to_owned();
    let issued = region_worker::cli::token_issue(&worker.state, &team, "scim", "", 1)
        .await
        .unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    assert_ne!(scim_users(&worker, &team, &token).await.status(), 401);

    tokio::task::block_in_place(|| redis.stop()).unwrap();
    let r = scim_users(&worker, &team, &token).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert_eq!(ready(&worker).await, 503);

    // Restarted empty: the token is re-read from Postgres, nothing was lost.
    tokio::task::block_in_place(|| redis.resume()).unwrap();
    let mut status = 0;
    for _ in 0..50 {
        status = scim_users(&worker, &team, &token).await.status().as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        status != 503 && status != 401,
        "token accepted again, got {status}"
    );
    assert_eq!(ready(&worker).await, 200);
}
