//! Error modes a test switches on, each one a way a real Okta (or an attacker between
//! us and it) can misbehave: a denied sign-in, a failing or slow token endpoint, and ID
//! tokens that a relying party must refuse. Each stays on until cleared.

use std::sync::Arc;
use std::time::Duration;

use super::{Org, lock};

/// How `/oauth2/v1/token` misbehaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TokenFault {
    /// It works.
    #[default]
    None,
    /// Answers `status` with the OAuth error body `{"error": error, …}`.
    Fail {
        /// The HTTP status (e.g. 500, 503, 400).
        status: u16,
        /// The `error` code (e.g. `server_error`, `temporarily_unavailable`).
        error: String,
    },
    /// Answers normally after this delay (set it small in tests, larger than the
    /// client's timeout to see the timeout path).
    Delay(Duration),
    /// Never answers: the client must time out.
    Hang,
}

/// How the ID token of the next exchanges is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenFault {
    /// `aud` is another client's id.
    WrongAudience,
    /// `iss` is a custom authorization server's (`{org}/oauth2/default`), the classic
    /// org-versus-custom mix-up.
    WrongIssuer,
    /// `nonce` is not the one the authorize request carried.
    WrongNonce,
    /// `iat` two hours ago, `exp` one hour ago.
    Expired,
    /// Signed with a key the JWKS never lists (its `kid` is unknown).
    UnpublishedKey,
}

/// The switched-on error modes.
#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    /// `/authorize` redirects with `error=access_denied`.
    pub(crate) deny_authorize: bool,
    /// The token endpoint's behaviour.
    pub(crate) token: TokenFault,
    /// The ID token's defect.
    pub(crate) id_token: Option<IdTokenFault>,
}

/// Switches error modes of a running org.
#[derive(Debug, Clone)]
pub struct FaultsHandle {
    /// The org.
    org: Arc<Org>,
}

impl FaultsHandle {
    pub(crate) fn new(org: Arc<Org>) -> Self {
        Self { org }
    }

    /// `/oauth2/v1/authorize` answers `error=access_denied` (as when a policy denies).
    pub fn deny_authorize(&self, on: bool) {
        lock(&self.org.faults).deny_authorize = on;
    }

    /// Sets the token endpoint's behaviour.
    pub fn token_endpoint(&self, fault: TokenFault) {
        lock(&self.org.faults).token = fault;
    }

    /// Sets (or with `None` clears) the ID token defect.
    pub fn id_token(&self, fault: Option<IdTokenFault>) {
        lock(&self.org.faults).id_token = fault;
    }

    /// Turns every fault off.
    pub fn clear(&self) {
        *lock(&self.org.faults) = Faults::default();
    }
}
