//! Each limit: header and body sizes, a slow client (slow loris), the request timeout,
//! the idle timeout, the connection limits, and graceful shutdown's grace period.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

/// A gateway in front of one fake worker per region, with `gateway` as the body of the
/// `[gateway]` table, and `adjust` applied to the parsed map (for sub-second timeouts).
async fn limited(gateway: &str, adjust: impl FnOnce(&mut RegionMap)) -> (TestGateway, FakeWorker) {
    let (us0, _) = FakeWorker::start("us-0").await;
    let text = map_text(
        &entries(&[us0.addr]),
        &entries(&[us0.addr]),
        &format!("listen = \"127.0.0.1:0\"\n{gateway}"),
    );
    let mut map = parse(&text);
    adjust(&mut map);
    (TestGateway::start(map).await, us0)
}

/// Reads from `stream` until the peer closes it; returns what was read.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match within(stream.read(&mut buf)).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn oversized_headers_are_refused_with_431() {
    let (gw, us0) = limited("max_header_bytes = 2048", |_| {}).await;
    let big = "x".repeat(3000);
    let request = gw
        .request(Method::GET, US_API, "/")
        .header("x-big", big.as_str())
        .body(empty())
        .unwrap();
    gw.send(request).await.assert_error(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    );
    // Past hyper's read buffer the connection's own parser refuses it.
    let huge = "x".repeat(20_000);
    let request = gw
        .request(Method::GET, US_API, "/")
        .header("x-huge", huge.as_str())
        .body(empty())
        .unwrap();
    let response = within(gw.client.request(request)).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    assert_eq!(us0.hits(), 0);
    // Within the limit it passes.
    let request = gw
        .request(Method::GET, US_API, "/")
        .header("x-ok", "x".repeat(1500))
        .body(empty())
        .unwrap();
    assert_eq!(gw.send(request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let (gw, us0) = limited("max_body_bytes = 1000", |_| {}).await;
    // Declared too large: refused before anything is forwarded.
    let request = gw
        .request(Method::POST, US_API, "/api/x")
        .body(full(vec![b'a'; 1001]))
        .unwrap();
    gw.send(request)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(us0.hits(), 0);

    // Chunked, crossing the limit while streaming.
    let chunks = (0..4).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'b'; 400]))));
    let request = gw
        .request(Method::PUT, US_API, "/echo")
        .body(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        .unwrap();
    let response = within(gw.client.request(request)).await;
    // Either the gateway answers 413 before the worker does, or the stream is cut.
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    // At the limit it passes, whole.
    let request = gw
        .request(Method::POST, US_API, "/count")
        .body(full(vec![b'c'; 1000]))
        .unwrap();
    let answer = gw.send(request).await;
    assert_eq!(answer.json()["body_len"], 1000);
}

#[tokio::test]
async fn a_slow_client_is_cut_off_by_the_header_read_timeout() {
    let (gw, us0) = limited("", |map| {
        map.gateway.limits.header_read_timeout = Duration::from_millis(300);
    })
    .await;
    // HTTP/1.1: half a request line, then nothing.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: api.clo")
        .await
        .unwrap();
    read_until_closed(&mut stream).await;
    // A connection that never sends a byte (it could be HTTP/2 prior knowledge) too.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    read_until_closed(&mut stream).await;
    // TLS is covered by the same timeout during the handshake; see `tls.rs`.
    assert_eq!(us0.hits(), 0);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let (gw, _us0) = limited("", |map| {
        map.gateway.limits.idle_timeout = Duration::from_millis(300);
    })
    .await;
    // HTTP/1.1 keep-alive.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: api.closedloop.localhost\r\n\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Closed at the idle timeout, not at some later timer (generous for a busy machine).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // HTTP/2: the connection ends (GOAWAY) once idle.
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(connection);
    let request = Request::get(format!("http://{US_API}/"))
        .body(empty())
        .unwrap();
    let response = within(sender.send_request(request)).await.unwrap();
    Answer::collect(response).await;
    let started = tokio::time::Instant::now();
    within(driver).await.unwrap().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_worker_too_slow_is_a_504_and_a_client_too_slow_is_a_408() {
    let (gw, _us0) = limited("", |map| {
        map.gateway.limits.request_timeout = Duration::from_millis(300);
    })
    .await;
    gw.get(US_API, "/slow")
        .await
        .assert_error(StatusCode::GATEWAY_TIMEOUT, "gateway_timeout");

    // A body that never finishes: the worker (`/count` reads it all) waits for it.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let request = gw
        .request(Method::POST, US_API, "/count")
        .body(StreamBody::new(stream).boxed())
        .unwrap();
    tx.send(Bytes::from_static(b"start")).await.unwrap();
    let answer = gw.send(request).await;
    answer.assert_error(StatusCode::REQUEST_TIMEOUT, "request_timeout");
    drop(tx);
}

#[tokio::test]
async fn connections_over_the_per_ip_limit_are_shed_with_503() {
    let (gw, _us0) = limited("max_connections_per_ip = 2", |_| {}).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: api.closedloop.localhost\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        within(stream.read_exact(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(stream);
    }
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: api.closedloop.localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("\"overloaded\""), "{answer}");

    // A place frees when a connection closes.
    drop(held.pop());
    eventually("a place frees up", || async {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream
            .write_all(
                b"GET / HTTP/1.1\r\nHost: api.closedloop.localhost\r\nConnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        read_until_closed(&mut stream)
            .await
            .starts_with("HTTP/1.1 200")
    })
    .await;
}

#[tokio::test]
async fn the_global_connection_limit_sheds_too() {
    let (gw, _us0) = limited("max_connections = 1", |_| {}).await;
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: api.closedloop.localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    within(first.read_exact(&mut buf)).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");
    gw.get(US_API, "/")
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
}

#[tokio::test]
async fn shutdown_waits_for_in_flight_requests_only_as_long_as_the_grace_period() {
    let (us0, mut arrivals) = FakeWorker::start("us-0").await;
    let mut map = region_map(&[us0.addr], &[us0.addr]);
    map.gateway.shutdown_grace = Duration::from_millis(300);
    let mut gw = TestGateway::start(map).await;
    // HTTP/2 this time: the in-flight stream outlives GOAWAY until the grace ends.
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = Request::get(format!("http://{US_API}/gated"))
        .body(empty())
        .unwrap();
    let in_flight = tokio::spawn(sender.send_request(request));
    within(arrivals.recv()).await.unwrap();
    gw.stop();
    // The worker never answers: `run` returns after the grace period regardless.
    within(&mut gw.task).await.unwrap().unwrap();
    assert!(
        within(in_flight).await.unwrap().is_err(),
        "the stream was cut"
    );
}
