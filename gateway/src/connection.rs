//! One client connection, from accept to close: admission (connection limits), the TLS
//! handshake under the header read timeout, the protocol (ALPN `h2` or HTTP/1.1 on TLS;
//! HTTP/1.1 or h2c prior knowledge on the plain listener), then serving requests until
//! the client leaves, the connection is idle too long, or the gateway shuts down.
//!
//! Idleness is tracked here rather than by hyper because HTTP/2 has no idle timeout of
//! its own: each connection counts its requests in flight (a request counts until the
//! last byte of its response body is sent) and remembers when the last one ended. A
//! timer checks that state once per idle period, not once per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::header::CONNECTION;
use http::{HeaderValue, Response, Version};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics::Gauge;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::body::ResponseBody;
use crate::error::ProxyError;
use crate::headers::{ClientInfo, ForwardedProto};
use crate::reload::Live;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::server::Shared;
use crate::tls::ALPN_H2;

/// What the requests of one connection share.
#[derive(Debug)]
pub(crate) struct ConnInfo {
    /// The client's address and scheme, formatted once for all its requests.
    pub(crate) client: ClientInfo,
    /// The server name of the TLS handshake; `None` on the plain listener.
    pub(crate) sni: Option<Box<str>>,
    /// Requests in flight and the end of the last one, for the idle timeout.
    activity: Activity,
}

#[derive(Debug)]
struct Activity {
    /// Requests whose response has not been sent completely.
    in_flight: AtomicUsize,
    /// When the last request ended, in milliseconds since `epoch`; 0 before any.
    last_ms: AtomicU64,
    /// The connection's start.
    epoch: Instant,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// When the connection becomes idle enough to close, if nothing happens before:
    /// `None` while a request is in flight. Before the first request the allowance is
    /// `first` (the header read timeout: a connection that never completes a request is
    /// a slow loris); after it, `idle`.
    ///
    /// On HTTP/1.1 `idle` is the shorter of the idle and header read timeouts: the next
    /// request's head is awaited from the end of the last response, so a client slowly
    /// sending it is cut off like one that sends nothing.
    fn idle_deadline(&self, first: Duration, idle: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = self.last_ms.load(Ordering::Acquire);
        Some(if last == 0 {
            self.epoch + first
        } else {
            self.epoch + Duration::from_millis(last) + idle
        })
    }
}

/// Everything a request of this connection needs: the gateway and the connection.
#[derive(Debug)]
pub(crate) struct ConnCtx {
    /// The serving thread's gateway state.
    shared: Arc<Shared>,
    /// This connection.
    info: ConnInfo,
}

/// One request in flight on its connection; dropping it (when the response body ends)
/// records the end of the request.
#[derive(Debug)]
pub(crate) struct ActiveRequest(Arc<ConnCtx>);

impl ActiveRequest {
    fn begin(ctx: Arc<ConnCtx>) -> Self {
        ctx.info.activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(ctx)
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let activity = &self.0.info.activity;
        let now = activity.epoch.elapsed().as_millis() as u64;
        activity.last_ms.store(now.max(1), Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Which listener a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerKind {
    /// Plain HTTP.
    Plain,
    /// TLS.
    Tls,
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shutdown: watch::Receiver<bool>,
) {
    // Small responses must not wait for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let live = shared.swap.live();
    let ip = peer.ip().to_canonical();
    let Some(place) = shared.admission.admit(ip, &live.config.map.gateway.limits) else {
        return;
    };
    let shed = place.is_err();
    let _open = OpenConnection::new(match kind {
        ListenerKind::Plain => &shared.open_plain,
        ListenerKind::Tls => &shared.open_tls,
    });
    let proto = match kind {
        ListenerKind::Plain => ForwardedProto::Http,
        ListenerKind::Tls => ForwardedProto::Https,
    };
    let client = ClientInfo::new(ip, proto);
    match (kind, &shared.tls) {
        (ListenerKind::Tls, Some(acceptor)) => {
            let handshake = acceptor.accept(stream);
            let limit = live.config.header_read_timeout;
            let tls = match tokio::time::timeout(limit, handshake).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let (_, session) = tls.get_ref();
            let sni = session.server_name().map(Box::from);
            let h2 = session.alpn_protocol() == Some(ALPN_H2);
            let builder = if h2 { &live.h2 } else { &live.h1 };
            let multiplexed = h2;
            let info = ConnInfo {
                client,
                sni,
                activity: Activity::new(),
            };
            let io = TokioIo::new(tls);
            if shed {
                serve_shed(builder, io, &live).await;
            } else {
                drive(
                    shared.clone(),
                    &live,
                    builder,
                    io,
                    info,
                    multiplexed,
                    shutdown,
                )
                .await;
            }
        }
        _ => {
            let info = ConnInfo {
                client,
                sni: None,
                activity: Activity::new(),
            };
            let io = TokioIo::new(stream);
            if shed {
                serve_shed(&live.plain, io, &live).await;
            } else {
                // HTTP/1.1 or, rarely, h2c: HTTP/1.1's stricter idle rule for both.
                drive(
                    shared.clone(),
                    &live,
                    &live.plain,
                    io,
                    info,
                    false,
                    shutdown,
                )
                .await;
            }
        }
    }
    drop(place);
}

/// Serves requests until the connection ends, closing it gracefully when it has been
/// idle too long or when the gateway shuts down (HTTP/1.1: after the response in
/// progress; HTTP/2: GOAWAY, then the open streams finish).
async fn drive<I>(
    shared: Arc<Shared>,
    live: &Live,
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    info: ConnInfo,
    multiplexed: bool,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = &live.config.map.gateway.limits;
    let first = live.config.header_read_timeout;
    let idle = if multiplexed {
        limits.idle_timeout
    } else {
        limits.idle_timeout.min(first)
    };
    let ctx = Arc::new(ConnCtx { shared, info });
    let service_ctx = ctx.clone();
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let active = ActiveRequest::begin(service_ctx.clone());
        async move {
            let ctx = &active.0;
            let live = ctx.shared.swap.live();
            let mut response = ctx.shared.proxy.handle(&live, &ctx.info, request).await;
            response.body_mut().set_active(active);
            Ok::<_, Infallible>(response)
        }
    });
    // No upgrades: the gateway does not tunnel (no WebSocket yet).
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut closing = *shutdown.borrow();
    if closing {
        connection.as_mut().graceful_shutdown();
    }
    // The first look comes at the shorter allowance; each look schedules the next one
    // at the earliest moment the connection could be idle long enough.
    let mut check = tokio::time::Instant::now() + first.min(idle);
    // Set once an idle connection was told to close: a client in the middle of a slow
    // request head has no request in flight but keeps HTTP/1.1's graceful close waiting
    // for it, so the connection is dropped if it has not closed by then.
    let mut cut_off: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(error = %err, "client connection ended with an error");
                }
                return;
            }
            _ = shutdown.changed(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(check), if !closing => {
                match ctx.info.activity.idle_deadline(first, idle) {
                    Some(deadline) if deadline <= Instant::now() => {
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                        cut_off = Some(tokio::time::Instant::now() + first.min(IDLE_CLOSE_GRACE));
                    }
                    Some(deadline) => check = deadline.into(),
                    None => check = tokio::time::Instant::now() + idle,
                }
            }
            () = sleep_until_some(cut_off) => {
                tracing::debug!("idle connection did not close; dropping it");
                return;
            }
        }
    }
}

/// How long an idle connection told to close may take to do so (HTTP/2 sends GOAWAY
/// and closes at once; HTTP/1.1 mid-head would wait forever).
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Sleeps until `at`, or forever when there is no deadline.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Serves a connection over a connection limit: every request is answered `503` with
/// `Retry-After`, HTTP/1.1 closes after the first answer, and the whole connection gets
/// no longer than the header read timeout.
async fn serve_shed<I>(builder: &auto::Builder<TokioExecutor>, io: TokioIo<I>, live: &Live)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(|request: hyper::Request<Incoming>| {
        let mut response: Response<ResponseBody> = ProxyError::Overloaded.to_response();
        let id = RequestId::from_headers(request.headers());
        response
            .headers_mut()
            .insert(X_REQUEST_ID, id.header_value().clone());
        if request.version() < Version::HTTP_2 {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        async move { Ok::<_, Infallible>(response) }
    });
    let mut builder = builder.clone();
    builder.http1().keep_alive(false);
    let served = builder.serve_connection(io, service);
    let _ = tokio::time::timeout(live.config.header_read_timeout, served).await;
}

/// Holds one unit of a `gateway_open_connections` gauge for as long as a connection
/// task lives, including when the task is cancelled.
struct OpenConnection(Gauge);

impl OpenConnection {
    fn new(gauge: &Gauge) -> Self {
        gauge.increment(1.0);
        Self(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idleness_starts_with_the_header_allowance_then_counts_from_the_last_request() {
        let activity = Activity::new();
        let (first, idle) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(
            activity.idle_deadline(first, idle),
            Some(activity.epoch + first)
        );
        activity.in_flight.store(1, Ordering::Relaxed);
        assert_eq!(activity.idle_deadline(first, idle), None);
        activity.in_flight.store(0, Ordering::Relaxed);
        activity.last_ms.store(5000, Ordering::Relaxed);
        assert_eq!(
            activity.idle_deadline(first, idle),
            Some(activity.epoch + Duration::from_secs(65))
        );
    }
}
