//! The two body types of the proxy. Neither buffers: each frame is passed on as it
//! arrives.
//!
//! - [`UpstreamBody`] carries the client's request body to a worker and counts it
//!   against `max_body_bytes`. When a retry is allowed it can *give the body back*: if
//!   the upstream client drops the request without ever polling the body (the
//!   connection to the worker failed), the untouched body returns through a oneshot
//!   channel and is sent to the next replica.
//! - [`ResponseBody`] is what the client receives: the worker's body, or a small body the
//!   gateway wrote itself (an error or admin answer). It carries the guards that count
//!   the request as in flight (for the worker's load and the connection's idleness)
//!   until its last frame is sent.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::connection::ActiveRequest;
use crate::routing::Outstanding;
use crate::upstream::Checkin;

/// The error type of [`UpstreamBody`]: the client's own error, or the size limit.
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// The request body crossed `max_body_bytes` while streaming.
#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds the limit")]
pub(crate) struct BodyTooLarge;

/// How far the client's body got, shared between the body and the proxy: it tells a
/// failed exchange caused by the body (`413`, or `408` on a timeout) from a worker's
/// failure.
#[derive(Debug)]
pub(crate) struct BodyProgress(AtomicU8);

const SENDING: u8 = 0;
const COMPLETE: u8 = 1;
const TOO_LARGE: u8 = 2;

impl BodyProgress {
    /// A body that is being sent.
    pub(crate) fn new() -> Self {
        Self(AtomicU8::new(SENDING))
    }

    /// Whether the client sent its whole body.
    pub(crate) fn is_complete(&self) -> bool {
        self.0.load(Ordering::Relaxed) == COMPLETE
    }

    /// Whether the body crossed the limit.
    pub(crate) fn is_too_large(&self) -> bool {
        self.0.load(Ordering::Relaxed) == TOO_LARGE
    }
}

/// A request body on its way to a worker.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    /// The client's body; `None` for a request known to have no body.
    inner: Option<Incoming>,
    /// Where to return `inner` if it is dropped before its first frame was read. Set
    /// only when the request may be retried; cleared on the first poll, because from
    /// then on bytes may have reached the worker and the body is no longer whole.
    giveback: Option<oneshot::Sender<Incoming>>,
    /// Bytes the body may still carry under `max_body_bytes`.
    budget: u64,
    /// Shared with the proxy; `None` for an empty body.
    progress: Option<Arc<BodyProgress>>,
}

impl UpstreamBody {
    /// Streams `body` upstream under a budget of `max` bytes; it cannot be recovered.
    pub(crate) fn streaming(body: Incoming, max: u64, progress: Arc<BodyProgress>) -> Self {
        Self {
            inner: Some(body),
            giveback: None,
            budget: max,
            progress: Some(progress),
        }
    }

    /// No body at all. Used for requests whose body is known to be empty, so a retry
    /// can send another empty body without recovering anything.
    pub(crate) fn empty() -> Self {
        Self {
            inner: None,
            giveback: None,
            budget: 0,
            progress: None,
        }
    }

    /// Streams `body` upstream, returning it on the receiver if it is dropped unread.
    pub(crate) fn returnable(
        body: Incoming,
        max: u64,
        progress: Arc<BodyProgress>,
    ) -> (Self, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        let this = Self {
            inner: Some(body),
            giveback: Some(tx),
            budget: max,
            progress: Some(progress),
        };
        (this, rx)
    }

    fn mark(&self, state: u8) {
        if let Some(progress) = &self.progress {
            progress.0.store(state, Ordering::Relaxed);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        this.giveback = None;
        let Some(body) = &mut this.inner else {
            return Poll::Ready(None);
        };
        match Pin::new(body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > this.budget {
                        this.mark(TOO_LARGE);
                        this.inner = None;
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge))));
                    }
                    this.budget -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.mark(COMPLETE);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(Box::new(err)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if let (Some(tx), Some(body)) = (self.giveback.take(), self.inner.take()) {
            // The receiver may be gone (the request succeeded or was abandoned): then the
            // body is simply dropped, as it would have been without us.
            let _ = tx.send(body);
        }
    }
}

/// A response body on its way to the client.
#[derive(Debug)]
pub(crate) struct ResponseBody {
    /// Where the bytes come from.
    source: Source,
    /// Counts the request as in flight on its worker until the body ends.
    outstanding: Option<Outstanding>,
    /// The worker connection, back to its pool when the body has ended.
    checkin: Option<Checkin>,
    /// Counts the request as in flight on its client connection until the body ends.
    active: Option<ActiveRequest>,
}

#[derive(Debug)]
enum Source {
    /// The worker's body, streamed.
    Upstream(Incoming),
    /// A body the gateway wrote; `None` once it has been sent.
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// A complete body of `bytes`.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            source: Source::Full(Some(bytes.into())),
            outstanding: None,
            checkin: None,
            active: None,
        }
    }

    /// A worker's body; `outstanding` ends when it does, and the connection it came on
    /// goes back to its pool if it ends whole.
    pub(crate) fn upstream(body: Incoming, outstanding: Outstanding, checkin: Checkin) -> Self {
        let mut this = Self {
            source: Source::Upstream(body),
            outstanding: Some(outstanding),
            checkin: Some(checkin),
            active: None,
        };
        // A body without content (a 204, a `Content-Length: 0`) is never polled.
        if this.is_end_stream() {
            this.finished(true);
        }
        this
    }

    /// Ties the client connection's in-flight count to this body.
    pub(crate) fn set_active(&mut self, active: ActiveRequest) {
        self.active = Some(active);
    }

    /// Releases the guards as soon as the last frame is out, rather than whenever the
    /// connection gets round to dropping the body; `whole` returns the worker
    /// connection to its pool, else it is closed.
    fn finished(&mut self, whole: bool) {
        if let Some(checkin) = self.checkin.take()
            && whole
        {
            checkin.release();
        }
        self.outstanding = None;
        self.active = None;
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.source {
            Source::Upstream(body) => Pin::new(body).poll_frame(cx),
            Source::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        };
        match &polled {
            Poll::Ready(None) => this.finished(true),
            Poll::Ready(Some(Err(_))) => this.finished(false),
            Poll::Ready(Some(Ok(_))) if this.is_end_stream() => this.finished(true),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.source {
            Source::Upstream(body) => body.is_end_stream(),
            Source::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.source {
            Source::Upstream(body) => body.size_hint(),
            Source::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
