//! The gateway's limits and edge policies, each a small piece in its own file. Where
//! each one sits, outermost first, and why:
//!
//! 1. [`admission`] (at accept, before any byte is read or any TLS work is done): the
//!    global and per-client-IP connection limits. Refusing early is what makes load
//!    shedding cheap; an over-limit connection gets a canned `503` and is closed.
//! 2. TLS handshake and header read timeouts (in `connection.rs`, configured on the
//!    connection builder): slow-loris protection, before a request exists.
//! 3. Idle timeout (`connection.rs`): a connection with no request in flight is closed.
//! 4. [`limits`] (first thing per request, before routing): header and body size, so an
//!    oversized request costs no routing and never reaches a worker.
//! 5. Routing by host (`proxy.rs`), then [`sni`] (needs the routed host, applies to TLS
//!    connections only) and [`redirect`] (needs a known host so that it is no open
//!    redirect, applies to the plain listener only).
//! 6. The request timeout (`proxy.rs`) around forwarding, retries included.

pub(crate) mod admission;
pub(crate) mod limits;
pub(crate) mod redirect;
pub(crate) mod sni;
