//! Several workers per region: least-outstanding balancing, failover when a worker dies
//! mid-run, ejection and return by the active health checks, and a region with every
//! worker down.

use super::*;

#[tokio::test]
async fn the_least_busy_replica_gets_the_next_request() {
    let (us0, mut arrivals) = FakeWorker::start("us-0").await;
    let (us1, _) = FakeWorker::start("us-1").await;
    let gw = TestGateway::start(region_map(&[us0.addr, us1.addr], &[us0.addr])).await;

    // A fresh gateway's first pick is the first listed worker; hold that request there.
    let held = {
        let request = gw
            .request(Method::GET, US_API, "/gated")
            .body(empty())
            .unwrap();
        let client = gw.client.clone();
        tokio::spawn(async move { client.request(request).await })
    };
    within(arrivals.recv()).await.unwrap();
    for _ in 0..4 {
        assert_eq!(gw.get(US_API, "/").await.worker(), "us-1");
    }
    us0.state.release.notify_one();
    let answer = Answer::collect(within(held).await.unwrap().unwrap()).await;
    assert_eq!(answer.body, "released");
    // Both idle again: back to alternating.
    let a = gw.get(US_API, "/").await.worker().to_owned();
    let b = gw.get(US_API, "/").await.worker().to_owned();
    assert_ne!(a, b);
    assert_eq!((us0.hits(), us1.hits()), (2, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_costs_no_idempotent_request() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (us1, _) = FakeWorker::start("us-1").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let gw = Arc::new(TestGateway::start(region_map(&[us0.addr, us1.addr], &[eu0.addr])).await);

    // Eight clients sending GETs in a loop; the first worker dies while they run.
    let (kill_tx, kill_rx) = tokio::sync::watch::channel(false);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let gw = gw.clone();
        let mut kill_rx = kill_rx.clone();
        clients.spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..150 {
                statuses.push(gw.get(US_API, &format!("/item/{i}")).await.status);
                if i == 100 {
                    // Keep going well past the kill.
                    let _ = within(kill_rx.wait_for(|killed| *killed)).await;
                }
            }
            statuses
        });
    }
    eventually("traffic reached both workers", || async {
        us0.hits() > 50 && us1.hits() > 50
    })
    .await;
    us0.kill().await;
    kill_tx.send(true).unwrap();
    let mut failures = 0;
    while let Some(statuses) = clients.join_next().await {
        failures += statuses
            .unwrap()
            .iter()
            .filter(|s| **s != StatusCode::OK)
            .count();
    }
    assert_eq!(failures, 0, "GETs failed while a replica died");
    assert!(us1.hits() > 600);
    assert_eq!(eu0.hits(), 0, "a retry left the region");

    let metrics = gw.admin_get("/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    let ejected = format!(
        "gateway_worker_ejections_total{{region=\"us\",worker=\"{}\",reason=\"connect\"}}",
        us0.addr
    );
    assert!(text.contains(&ejected), "{ejected} missing:\n{text}");
    assert!(text.contains("gateway_retries_total{region=\"us\"}"));
}

#[tokio::test]
async fn health_checks_eject_an_unready_worker_and_bring_it_back() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (us1, _) = FakeWorker::start("us-1").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let text = map_text(
        &[us0.entry_with_admin(), us1.entry_with_admin()],
        &entries(&[eu0.addr]),
        "listen = \"127.0.0.1:0\"\nhealth_check_interval_ms = 100",
    );
    let gw = TestGateway::start(parse(&text)).await;
    eventually("checks run", || async {
        us0.probes() > 0 && us1.probes() > 0
    })
    .await;

    us0.set_ready(false);
    // Ejected once every request goes to us-1.
    eventually("us-0 ejected", || async {
        let before = us0.hits();
        for _ in 0..4 {
            gw.get(US_API, "/").await;
        }
        us0.hits() == before
    })
    .await;
    let metrics = gw.admin_get("/metrics").await;
    let healthy = format!(
        "gateway_worker_healthy{{region=\"us\",worker=\"{}\"}} 0",
        us0.addr
    );
    assert!(String::from_utf8_lossy(&metrics.body).contains(&healthy));

    us0.set_ready(true);
    eventually("us-0 back", || async {
        let before = us0.hits();
        for _ in 0..4 {
            gw.get(US_API, "/").await;
        }
        us0.hits() > before
    })
    .await;
    // Workers without an admin address are probed on their public port.
    eventually("eu-0 probed", || async { eu0.probes() > 0 }).await;
}

#[tokio::test]
async fn a_region_with_every_worker_down_answers_503_and_the_other_region_is_unaffected() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (us1, _) = FakeWorker::start("us-1").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr, us1.addr], &[eu0.addr])).await;
    assert_eq!(gw.get(US_API, "/").await.status, StatusCode::OK);
    us0.kill().await;
    us1.kill().await;
    for _ in 0..3 {
        let answer = gw.get(US_API, "/").await;
        answer.assert_error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(gw.get(EU_API, "/").await.worker(), "eu-0");
    }
}
