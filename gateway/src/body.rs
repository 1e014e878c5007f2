//! The two body types of the proxy. Neither buffers: each frame is passed on as it
//! arrives.
//!
//! - [`UpstreamBody`] carries the client's request body to a worker. When a retry is
//!   allowed it can *give the body back*: if the upstream client drops the request
//!   without ever polling the body (the connection to the worker failed), the untouched
//!   body returns through a oneshot channel and is sent to the next replica.
//! - [`ResponseBody`] is what the client receives: the worker's body, or a small body the
//!   gateway wrote itself (an error or admin answer).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

/// A request body on its way to a worker.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    /// The client's body; `None` for a request known to have no body.
    inner: Option<Incoming>,
    /// Where to return `inner` if it is dropped before its first frame was read. Set
    /// only when the request may be retried; cleared on the first poll, because from
    /// then on bytes may have reached the worker and the body is no longer whole.
    giveback: Option<oneshot::Sender<Incoming>>,
}

impl UpstreamBody {
    /// Streams `body` upstream; it cannot be recovered.
    pub(crate) fn streaming(body: Incoming) -> Self {
        Self {
            inner: Some(body),
            giveback: None,
        }
    }

    /// No body at all. Used for requests whose body is known to be empty, so a retry
    /// can send another empty body without recovering anything.
    pub(crate) fn empty() -> Self {
        Self {
            inner: None,
            giveback: None,
        }
    }

    /// Streams `body` upstream, returning it on the receiver if it is dropped unread.
    pub(crate) fn returnable(body: Incoming) -> (Self, oneshot::Receiver<Incoming>) {
        let (tx, rx) = oneshot::channel();
        let this = Self {
            inner: Some(body),
            giveback: Some(tx),
        };
        (this, rx)
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        this.giveback = None;
        match &mut this.inner {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
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
pub(crate) enum ResponseBody {
    /// The worker's body, streamed.
    Upstream(Incoming),
    /// A body the gateway wrote; `None` once it has been sent.
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// A complete body of `bytes`.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self::Full(Some(bytes.into()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Upstream(body) => Pin::new(body).poll_frame(cx),
            ResponseBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Upstream(body) => body.is_end_stream(),
            ResponseBody::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Upstream(body) => body.size_hint(),
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}
