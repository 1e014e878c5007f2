//! TLS termination with real TLS clients (rustls, trusting a CA made for the test):
//! routing by SNI and Host over HTTP/1.1 and HTTP/2, SNI/Host agreement, protocol
//! versions, and the redirect from the plain listener.

use super::*;

async fn tls_gateway(extra: &str) -> (TestGateway, Pki, FakeWorker, FakeWorker) {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let pki = Pki::new();
    let text = map_text(
        &entries(&[us0.addr]),
        &entries(&[eu0.addr]),
        &pki.gateway_table(extra),
    );
    let gw = TestGateway::start(parse(&text)).await;
    (gw, pki, us0, eu0)
}

#[tokio::test]
async fn each_host_is_served_over_tls_by_sni_with_http1_and_http2() {
    let (gw, pki, _us0, _eu0) = tls_gateway("").await;
    let tls = gw.tls.unwrap();
    for (alpn, version) in [
        (&b"h2"[..], Version::HTTP_2),
        (b"http/1.1", Version::HTTP_11),
    ] {
        let config = tls_client(&pki.ca_pem(), &[alpn], BOTH_VERSIONS);
        for (host, worker) in [
            (US_API, "us-0"),
            (US_APP, "us-0"),
            (EU_API, "eu-0"),
            (EU_APP, "eu-0"),
        ] {
            let mut sender = TlsSender::open(tls, host, config.clone()).await;
            let answer = sender.get(host, "/whoami?x=1").await;
            assert_eq!(answer.status, StatusCode::OK, "{host}");
            assert_eq!(answer.version, version);
            assert_eq!(answer.worker(), worker, "{host}");
            assert_eq!(answer.seen("x-forwarded-proto"), ["https"]);
            assert_eq!(answer.seen("host"), [host]);
            assert_eq!(answer.json()["uri"], "/whoami?x=1");
            // A second request on the same connection (keep-alive / multiplexed).
            assert_eq!(sender.get(host, "/again").await.worker(), worker);
        }
    }
    // No ALPN at all: HTTP/1.1.
    let config = tls_client(&pki.ca_pem(), &[], BOTH_VERSIONS);
    let mut sender = TlsSender::open(tls, US_API, config).await;
    assert!(matches!(sender, TlsSender::H1(_)));
    assert_eq!(sender.get(US_API, "/").await.version, Version::HTTP_11);
}

#[tokio::test]
async fn host_and_sni_must_agree_on_a_tls_connection() {
    let (gw, pki, us0, eu0) = tls_gateway("").await;
    let tls = gw.tls.unwrap();
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let config = tls_client(&pki.ca_pem(), &[alpn], BOTH_VERSIONS);
        let mut sender = TlsSender::open(tls, US_API, config).await;
        // Same certificate (US_APP is on it), other host: still misdirected.
        for host in [US_APP, EU_API, "unknown.example"] {
            let answer = sender.get(host, "/").await;
            answer.assert_error(StatusCode::MISDIRECTED_REQUEST, "misdirected_request");
        }
        // Port and case do not matter.
        let answer = sender.get("API.closedloop.localhost:443", "/").await;
        assert_eq!(answer.status, StatusCode::OK);
    }
    assert_eq!(eu0.hits(), 0);
    assert_eq!(us0.hits(), 2);
}

#[tokio::test]
async fn unknown_names_and_untrusted_clients_get_no_handshake() {
    let (gw, pki, _us0, _eu0) = tls_gateway("").await;
    let tls = gw.tls.unwrap();
    let config = tls_client(&pki.ca_pem(), &[b"h2"], BOTH_VERSIONS);
    // A name we serve no certificate for.
    assert!(tls_connect(tls, "unknown.example", config).await.is_err());
    // A client that does not trust our CA.
    let other = Pki::new();
    let config = tls_client(&other.ca_pem(), &[b"h2"], BOTH_VERSIONS);
    assert!(tls_connect(tls, US_API, config).await.is_err());
}

#[tokio::test]
async fn tls_1_2_and_1_3_are_both_served() {
    let (gw, pki, _us0, _eu0) = tls_gateway("").await;
    let tls = gw.tls.unwrap();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let config = tls_client(&pki.ca_pem(), &[b"h2"], &[version]);
        let stream = tls_connect(tls, EU_APP, config).await.unwrap();
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
    }
}

#[tokio::test]
async fn the_plain_listener_redirects_to_https_when_asked() {
    let (gw, pki, us0, _eu0) = tls_gateway("redirect_http_to_https = true").await;
    let tls = gw.tls.unwrap();
    let request = gw
        .request(Method::POST, "API.closedloop.localhost:8080", "/api/x?y=1")
        .body(empty())
        .unwrap();
    let answer = gw.send(request).await;
    assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        answer.header("location"),
        Some(format!("https://API.closedloop.localhost:{}/api/x?y=1", tls.port()).as_str())
    );
    assert_eq!(us0.hits(), 0);
    // An unknown host is not redirected anywhere.
    gw.get("evil.example", "/")
        .await
        .assert_error(StatusCode::MISDIRECTED_REQUEST, "misdirected_request");
    // HTTPS itself serves.
    let config = tls_client(&pki.ca_pem(), &[b"h2"], BOTH_VERSIONS);
    let mut sender = TlsSender::open(tls, US_API, config).await;
    assert_eq!(sender.get(US_API, "/").await.worker(), "us-0");
}
