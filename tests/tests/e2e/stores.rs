//! The stores as operators run them in production: Postgres over TLS (verified, and
//! enforced by the server), and Redis behind Sentinel, followed through a failover.

use closedloop_tests::harness::{
    RegionStores, Scim, SentinelSet, TestWorker, eventually, fresh_database, operator_token,
    redis_prefix, temp_dir, worker_config,
};
use closedloop_tests::region::Region;
use deploy::stores::PostgresServer;

/// A CA and a server certificate it signed, as PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(hosts: &[&str]) -> Pki {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Managed Postgres test CA");
    let ca =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn stores_with_pg(pg_url: String) -> RegionStores {
    RegionStores {
        pg_url,
        redis_url: closedloop_tests::harness::redis_url(),
        redis_prefix: redis_prefix(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_is_verified_and_plain_text_is_refused() {
    let dir = temp_dir("pg-tls");
    let mut pg =
        tokio::task::block_in_place(|| PostgresServer::start_on_free_port(&dir.join("pg"), false))
            .unwrap();
    let server = pki(&["localhost"]);
    tokio::task::block_in_place(|| pg.require_tls(&server.cert_pem, &server.key_pem)).unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &server.ca_pem).unwrap();
    let other_ca = dir.join("other-ca.pem");
    std::fs::write(&other_ca, pki(&["localhost"]).ca_pem).unwrap();
    let port = pg.port();
    // The name the certificate carries, at the address the server listens on.
    let url = |host: &str, query: &str| {
        format!("postgres://postgres@{host}:{port}/postgres?hostaddr=127.0.0.1&{query}")
    };

    let worker = TestWorker::start(worker_config(
        Region::Us,
        &stores_with_pg(url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )),
    ))
    .await
    .unwrap();
    let conn = worker.state.pg.get().await.unwrap();
    let ssl: bool = conn
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the worker's connection is encrypted");
    drop(conn);
    // Serving over it: a workspace and a SCIM read.
    let scim = Scim::operator_workspace(&worker.state, &worker.url()).await;
    assert_eq!(scim.get("/Users").await.0, 200);
    worker.stop().await.unwrap();

    // Each way of connecting that must not work, and what the operator reads.
    let refused = [
        (
            url(
                "localhost",
                &format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
            ),
            "invalid peer certificate",
        ),
        (
            url(
                "127.0.0.1",
                &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
            ),
            "certificate not valid for name \"127.0.0.1\"",
        ),
        (
            url("localhost", "sslmode=require"),
            "invalid peer certificate: UnknownIssuer",
        ),
        (url("localhost", "sslmode=disable"), "no encryption"),
    ];
    for (url, expected) in refused {
        let err = region_worker::connect(worker_config(Region::Us, &stores_with_pg(url.clone())))
            .await
            .map(|_| ())
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains(expected), "{url}: {msg}");
    }
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_failover_moves_the_worker_to_the_new_master() {
    let dir = temp_dir("sentinel");
    let SentinelSet {
        sentinel,
        replica,
        mut master,
    } = SentinelSet::start(&dir).await;

    let stores = RegionStores {
        pg_url: fresh_database().await.unwrap().url,
        redis_url: format!("redis+sentinel://127.0.0.1:{}/closedloop-us", sentinel.port),
        redis_prefix: redis_prefix(),
    };
    let worker = TestWorker::start(worker_config(Region::Us, &stores))
        .await
        .unwrap();
    let scim = Scim::operator_workspace(&worker.state, &worker.url()).await;
    assert_eq!(scim.get("/Users").await.0, 200);
    assert!(master.info("keyspace").await.contains("db0:keys="));

    // The master dies; Sentinel promotes the replica; the worker follows by itself.
    master.child.kill().unwrap();
    master.child.wait().unwrap();
    let seen = std::sync::Mutex::new(Vec::new());
    eventually("the worker to serve from the new master", || async {
        let status = scim.get("/Users").await.0;
        seen.lock().unwrap().push(status);
        status == 200
    })
    .await;
    let seen = seen.into_inner().unwrap();
    assert!(
        seen.iter().all(|s| *s == 200 || *s == 503),
        "only 503 during the failover: {seen:?}"
    );
    let role: Vec<redis::Value> = redis::cmd("ROLE")
        .query_async(&mut replica.conn().await)
        .await
        .unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    // New writes land on the promoted server: a token issued now is found there.
    let fresh = operator_token(&worker.state, &scim.team_id).await;
    let hash = shared::token::TokenHash::of(&fresh).to_hex();
    let key = format!("{}tok:{hash}", stores.redis_prefix);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut replica.conn().await)
        .await
        .unwrap();
    assert!(exists, "{key} on the new master");
    assert_eq!(scim.with_token(&fresh).get("/Users").await.0, 200);
    worker.stop().await.unwrap();
    drop((sentinel, replica, master));
    let _ = std::fs::remove_dir_all(&dir);
}
