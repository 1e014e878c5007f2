//! The gateway in front of real workers: a replica that stops mid-run costs no request,
//! and a region with no worker left answers `503` while the other region serves on.

use closedloop_tests::harness::{EU_API, TestStack, US_API};
use serde_json::Value;
use tokio::sync::watch;

/// Sends 60 `GET /api/ping` to the US API, pausing after the 20th until `stopped`;
/// returns the failures.
async fn client(stack: &TestStack, mut stopped: watch::Receiver<bool>) -> Vec<String> {
    let mut failures = Vec::new();
    for i in 0..60 {
        match stack.get(US_API, "/api/ping").send().await {
            Ok(r) if r.status() == 200 => {
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["region"], "us");
            }
            Ok(r) => failures.push(r.status().to_string()),
            Err(e) => failures.push(e.to_string()),
        }
        if i == 20 {
            let _ = stopped.wait_for(|s| *s).await;
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopping_mid_run_costs_no_request() {
    let mut stack = TestStack::start_with(2).await.unwrap();
    // The gateway still lists it: it stops under the gateway's feet.
    let first = stack.us.remove(0);
    let stack = &stack;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = async move {
        for _ in 0..10 {
            let r = stack.get(US_API, "/api/ping").send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        first.stop().await.unwrap();
        stop_tx.send(true).unwrap();
    };
    let (a, b, c, d, ()) = tokio::join!(
        client(stack, stop_rx.clone()),
        client(stack, stop_rx.clone()),
        client(stack, stop_rx.clone()),
        client(stack, stop_rx.clone()),
        stopper,
    );
    let failures: Vec<String> = [a, b, c, d].into_iter().flatten().collect();
    assert!(failures.is_empty(), "{failures:?}");
}

#[tokio::test]
async fn a_region_without_workers_answers_503_and_the_other_serves_on() {
    let mut stack = TestStack::start().await.unwrap();
    stack.us.remove(0).stop().await.unwrap();
    for _ in 0..3 {
        let r = stack.get(US_API, "/api/ping").send().await.unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "service_unavailable");
        let r = stack.get(EU_API, "/api/ping").send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}
