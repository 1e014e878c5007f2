//! Connections to the workers: HTTP/1.1 keep-alive, pooled per worker.
//!
//! Each serving thread has its own [`Pools`] (see `server.rs`), so a connection to a
//! worker is driven on the thread whose requests use it, and taking one from the pool
//! is an uncontended lock and a `Vec::pop`. A connection goes back to the pool when
//! the worker's response body has been read to its end, the only point at which
//! HTTP/1.1 can carry the next request; a response cut short closes its connection.
//!
//! A pooled connection may have been closed by the worker while idle. Sending on it
//! then fails *before* the request is written, and hyper hands the request back
//! (`try_send_request`): it is sent again on the next pooled connection or a fresh
//! one. That is not a retry in the sense of the proxy's policy: the request provably
//! never left the gateway.

use std::io;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::UpstreamBody;
use crate::routing::Worker;

/// The idle connections of one serving thread, per worker.
#[derive(Debug)]
pub(crate) struct Pools {
    /// One entry per worker this thread has talked to. A handful of entries: a linear
    /// scan by pointer beats hashing an address.
    pools: Mutex<Vec<Pool>>,
    /// How long a TCP connect to a worker may take.
    connect_timeout: Duration,
    /// Idle connections kept per worker.
    max_idle: usize,
    /// How long an idle connection is kept.
    idle_timeout: Duration,
}

#[derive(Debug)]
struct Pool {
    /// The worker; entries of workers removed by a reload are dropped when seen dead.
    worker: Weak<Worker>,
    /// Idle connections, the most recently used last (it is taken first: warm and
    /// least likely to have been closed).
    idle: Vec<Idle>,
}

#[derive(Debug)]
struct Idle {
    /// The connection's request side; its driver task runs on this thread.
    sender: SendRequest<UpstreamBody>,
    /// When it went idle, for `idle_timeout`.
    since: Instant,
}

/// Why a request could not be exchanged with a worker.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection could be made: the request reached no worker.
    #[error("connecting to the worker")]
    Connect(#[source] io::Error),
    /// The exchange failed on an open connection before a response head arrived.
    #[error("exchanging with the worker")]
    Request(#[source] hyper::Error),
}

impl SendError {
    /// Whether no connection could be made.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// A connection lent to one request; back to the pool by [`Checkin::release`] once
/// the response body has ended, closed if dropped before that.
#[derive(Debug)]
pub(crate) struct Checkin {
    /// The pool it goes back to.
    pools: Arc<Pools>,
    /// The worker it is connected to (the pool's key).
    worker: Arc<Worker>,
    /// The connection.
    sender: SendRequest<UpstreamBody>,
}

impl Checkin {
    /// The response body ended: the connection can carry the next request.
    pub(crate) fn release(self) {
        self.pools.put(&self.worker, self.sender);
    }
}

impl Pools {
    pub(crate) fn new(
        connect_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            pools: Mutex::new(Vec::new()),
            connect_timeout,
            max_idle,
            idle_timeout,
        })
    }

    /// Sends `request` to `worker` on a pooled connection, or a new one.
    pub(crate) async fn send(
        self: &Arc<Self>,
        worker: &Arc<Worker>,
        mut request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, Checkin), SendError> {
        loop {
            let (mut sender, reused) = match self.take(worker) {
                Some(sender) => (sender, true),
                None => (self.connect(worker).await?, false),
            };
            // A pooled connection is ready, or about to be once its last response has
            // been wound up; a closed one fails here without taking the request.
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let checkin = Checkin {
                        pools: self.clone(),
                        worker: worker.clone(),
                        sender,
                    };
                    return Ok((response, checkin));
                }
                Err(mut err) => match err.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(SendError::Request(err.into_error())),
                },
            }
        }
    }

    /// An idle connection to `worker`, if one is usable.
    fn take(&self, worker: &Arc<Worker>) -> Option<SendRequest<UpstreamBody>> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let pool = pools
            .iter_mut()
            .find(|p| std::ptr::eq(p.worker.as_ptr(), Arc::as_ptr(worker)))?;
        while let Some(idle) = pool.idle.pop() {
            if !idle.sender.is_closed() && idle.since.elapsed() < self.idle_timeout {
                return Some(idle.sender);
            }
        }
        None
    }

    /// Returns a connection to the pool, unless it is closed or the pool is full.
    fn put(&self, worker: &Arc<Worker>, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let position = pools
            .iter()
            .position(|p| std::ptr::eq(p.worker.as_ptr(), Arc::as_ptr(worker)));
        let pool = match position {
            Some(index) => &mut pools[index],
            None => {
                // A worker first seen: forget the ones a reload removed.
                pools.retain(|p| p.worker.strong_count() > 0);
                pools.push(Pool {
                    worker: Arc::downgrade(worker),
                    idle: Vec::new(),
                });
                pools.last_mut().expect("just pushed")
            }
        };
        if pool.idle.len() < self.max_idle {
            pool.idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// Opens a connection to `worker` and starts driving it on this thread.
    async fn connect(&self, worker: &Worker) -> Result<SendRequest<UpstreamBody>, SendError> {
        let connecting = TcpStream::connect(worker.authority.as_str());
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return Err(SendError::Connect(err)),
            Err(_) => {
                let err = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
                return Err(SendError::Connect(err));
            }
        };
        // Small requests must not wait for Nagle's algorithm.
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Request)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}
