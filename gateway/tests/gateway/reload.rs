//! Reloading while running (what SIGHUP does in the binary): certificates renewed in
//! place without dropping connections, new workers and hosts, and a bad configuration
//! that is refused while the running one keeps serving.

use super::*;

/// The certificate a full handshake for `sni` gets. A fresh client configuration each
/// time: a resumed session would not send the certificate again.
async fn served_certificate(addr: SocketAddr, sni: &str, ca_pem: &str) -> Vec<u8> {
    let config = tls_client(ca_pem, &[b"h2"], BOTH_VERSIONS);
    let stream = tls_connect(addr, sni, config).await.unwrap();
    let certs = stream.get_ref().1.peer_certificates().unwrap();
    certs[0].to_vec()
}

#[tokio::test]
async fn renewed_certificates_are_served_after_a_reload_without_dropping_connections() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let pki = Pki::new();
    let text = map_text(
        &entries(&[us0.addr]),
        &entries(&[eu0.addr]),
        &pki.gateway_table(""),
    );
    let gw = TestGateway::start(parse(&text)).await;
    let tls = gw.tls.unwrap();
    let config = tls_client(&pki.ca_pem(), &[b"h2"], BOTH_VERSIONS);

    let before = served_certificate(tls, US_API, &pki.ca_pem()).await;
    let mut open = TlsSender::open(tls, US_API, config.clone()).await;
    assert_eq!(open.get(US_API, "/").await.status, StatusCode::OK);

    // Renew the US certificate in place (same files, new key and serial).
    pki.issue("us", &[US_API, US_APP]);
    gw.handle.reload(parse(&text)).unwrap();

    let after = served_certificate(tls, US_API, &pki.ca_pem()).await;
    assert_ne!(before, after, "the renewed certificate is served");
    // The connection opened before the reload still works.
    assert_eq!(open.get(US_API, "/still-open").await.status, StatusCode::OK);
    // The EU certificate was re-read too, and still validates.
    served_certificate(tls, EU_API, &pki.ca_pem()).await;
}

#[tokio::test]
async fn a_reload_adds_workers_and_hosts() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (us1, _) = FakeWorker::start("us-1").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let gw = TestGateway::start(region_map(&[us0.addr], &[eu0.addr])).await;
    assert_eq!(gw.get(US_API, "/").await.worker(), "us-0");

    let text = map_text(&entries(&[us0.addr, us1.addr]), &entries(&[eu0.addr]), "").replace(
        &format!("api_url = \"http://{EU_API}\""),
        "api_url = \"http://eu.api2.closedloop.localhost\"",
    );
    gw.handle.reload(parse(&text)).unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(gw.get(US_API, "/").await.worker().to_owned());
    }
    assert!(seen.contains(&"us-1".to_owned()), "{seen:?}");
    assert_eq!(
        gw.get("eu.api2.closedloop.localhost", "/").await.worker(),
        "eu-0"
    );
    gw.get(EU_API, "/")
        .await
        .assert_error(StatusCode::MISDIRECTED_REQUEST, "misdirected_request");
}

#[tokio::test]
async fn a_bad_reload_is_refused_and_the_running_configuration_stays() {
    let (us0, _) = FakeWorker::start("us-0").await;
    let (eu0, _) = FakeWorker::start("eu-0").await;
    let pki = Pki::new();
    let text = map_text(
        &entries(&[us0.addr]),
        &entries(&[eu0.addr]),
        &pki.gateway_table(""),
    );
    let gw = TestGateway::start(parse(&text)).await;
    let tls = gw.tls.unwrap();
    let config = tls_client(&pki.ca_pem(), &[b"http/1.1"], BOTH_VERSIONS);
    let before = served_certificate(tls, US_API, &pki.ca_pem()).await;

    // A map that names a missing certificate file, and moves the US hosts elsewhere.
    let (us_cert, _) = pki.paths("us");
    let broken = text
        .replace(&us_cert.display().to_string(), "/nonexistent/us.pem")
        .replace(&us0.addr.to_string(), &eu0.addr.to_string());
    let err = gw.handle.reload(parse(&broken)).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/us.pem"), "{err}");

    // A key that does not belong to its certificate.
    let (_, eu_key) = pki.paths("eu");
    let (_, us_key) = pki.paths("us");
    let mismatched = text.replace(&us_key.display().to_string(), &eu_key.display().to_string());
    assert!(gw.handle.reload(parse(&mismatched)).is_err());

    // Nothing changed: same routes, same certificate.
    let mut sender = TlsSender::open(tls, US_API, config.clone()).await;
    assert_eq!(sender.get(US_API, "/").await.worker(), "us-0");
    assert_eq!(served_certificate(tls, US_API, &pki.ca_pem()).await, before);

    // A text that does not validate never becomes a map at all (the binary logs the
    // line and keeps running).
    let invalid = text.replace("tls_listen", "tls_lisen");
    let e = RegionMap::parse(&invalid).unwrap_err();
    assert!(e.message.contains("tls_lisen"), "{e}");
}
