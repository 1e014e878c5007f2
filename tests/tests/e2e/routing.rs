//! The gateway routes by host, and only to the host's region.

use closedloop_tests::harness::{EU_API, EU_APP, TestStack, US_API, US_APP, client};
use closedloop_tests::region::Region;
use serde_json::Value;

#[tokio::test]
async fn each_host_reaches_only_its_own_region() {
    let stack = TestStack::start_with(2).await.unwrap();
    for (host, region) in [
        (US_API, "us"),
        (EU_API, "eu"),
        ("API.closedloop.localhost:8080", "us"),
    ] {
        for _ in 0..4 {
            let r = stack.get(host, "/api/ping").send().await.unwrap();
            assert_eq!(r.status(), 200, "{host}");
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["region"], region, "{host} answered by {body}");
        }
    }
    // The app hosts serve pages of their own region.
    for host in [US_APP, EU_APP] {
        let r = stack.get(host, "/auth").send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("Sign in"));
    }
    // An API path on the app host is not served there.
    let r = stack.get(US_APP, "/api/ping").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn unknown_host_is_misdirected_at_the_gateway_and_the_worker() {
    let stack = TestStack::start().await.unwrap();
    let r = stack
        .get("evil.example.com", "/api/ping")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].is_string(), "{body}");

    // Defense in depth: a worker refuses another region's host even if reached.
    let us = stack.worker(Region::Us);
    let r = client()
        .get(format!("{}/api/ping", us.url()))
        .header("host", EU_API)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "misdirected_request");
}

#[tokio::test]
async fn admin_listeners_answer_health_and_metrics() {
    let stack = TestStack::start().await.unwrap();
    let us = stack.worker(Region::Us);
    let http = client();
    let base = format!("http://{}", us.admin_addr);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["postgres"], "ok");
    assert_eq!(body["redis"], "ok");
    stack.get(US_API, "/api/ping").send().await.unwrap();
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("worker_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/api/ping\""), "{metrics}");
    let gw = http
        .get(format!("http://{}/metrics", stack.gateway.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(gw.contains("gateway_requests_total"), "{gw}");
}
