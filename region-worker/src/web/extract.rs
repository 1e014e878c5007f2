//! Who is asking, as axum extractors: a page names what it needs in its signature
//! ([`SignedIn`], [`WorkspaceAdmin`]) and never re-derives it from headers. A browser
//! without a live session is sent to sign in and brought back to the page it asked
//! for; a store outage is a [`PageError::Unavailable`].

use axum::extract::{FromRequestParts, OptionalFromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use shared::ids::TeamId;
use uuid::Uuid;

use super::csrf::{self, CsrfError};
use super::error::PageError;
use crate::session;
use crate::state::AppState;
use crate::store::grants::{self, Approver};
use crate::store::personal_tokens::Owner;

/// A browser with a live session of a user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user, their workspace and the revocation epoch the session was issued under.
    pub owner: Owner,
    /// The session's secret (its cookie's value): what the session's CSRF tokens are
    /// derived from.
    secret: String,
    /// Whether the request's `Origin`, if any, is the app host's: a form posted from
    /// another origin is refused whatever its token.
    origin: Result<(), CsrfError>,
}

impl SignedIn {
    /// The user's workspace.
    pub fn team_id(&self) -> TeamId {
        self.owner.team_id
    }

    /// The user.
    pub fn user_id(&self) -> Uuid {
        self.owner.user_id
    }

    /// The CSRF token to embed in a form for `purpose`.
    pub fn csrf_token(&self, purpose: &str) -> String {
        csrf::token(&self.secret, purpose)
    }

    /// Checks a submitted form: posted from the app host, carrying the token for
    /// `purpose` in this session.
    pub fn check_form(&self, purpose: &str, presented: &str) -> Result<(), PageError> {
        self.origin?;
        if csrf::verify(&self.secret, purpose, presented) {
            Ok(())
        } else {
            Err(PageError::FormRefused)
        }
    }

    /// The live session of the request, if any.
    async fn of(state: &AppState, headers: &HeaderMap) -> Result<Option<Self>, PageError> {
        let Some(record) = session::current(state, headers).await? else {
            return Ok(None);
        };
        let (Some(owner), Some(secret)) =
            (Owner::of(&record), csrf::session_secret(state, headers))
        else {
            return Ok(None);
        };
        crate::telemetry::record_team(owner.team_id);
        Ok(Some(Self {
            owner,
            secret: secret.to_owned(),
            origin: csrf::check_origin(state, headers),
        }))
    }
}

/// Where a signed-out browser comes back to after sign-in: the page it asked for. A
/// form's endpoint is no page to come back to; its handler names the page
/// ([`PageError::returning_to`]).
fn here(parts: &Parts) -> String {
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    match (&parts.method, uri.path_and_query()) {
        (&Method::GET, Some(pq)) => pq.as_str().to_owned(),
        _ => uri.path().to_owned(),
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        match Self::of(state, &parts.headers).await? {
            Some(s) => Ok(s),
            None => Err(PageError::SignIn {
                return_to: here(parts),
            }),
        }
    }
}

/// `Option<SignedIn>`: pages that also serve signed-out browsers (the home page, the
/// sign-in page). Only a store outage stops the request.
impl OptionalFromRequestParts<AppState> for SignedIn {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, PageError> {
        Self::of(state, &parts.headers).await
    }
}

/// A signed-in, active user holding their workspace's Admin role. Anyone else signed
/// in gets the Forbidden page.
#[derive(Debug, Clone)]
pub struct WorkspaceAdmin {
    /// The session.
    pub signed_in: SignedIn,
    /// The admin's workspace name and user name.
    pub approver: Approver,
}

impl WorkspaceAdmin {
    /// The workspace.
    pub fn team_id(&self) -> TeamId {
        self.signed_in.team_id()
    }

    /// The admin.
    pub fn user_id(&self) -> Uuid {
        self.signed_in.user_id()
    }
}

impl FromRequestParts<AppState> for WorkspaceAdmin {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let signed_in =
            <SignedIn as FromRequestParts<AppState>>::from_request_parts(parts, state).await?;
        match grants::approver(&state.pg, signed_in.team_id(), signed_in.user_id()).await? {
            Some(approver) if approver.is_admin => Ok(Self {
                signed_in,
                approver,
            }),
            Some(approver) => Err(PageError::NotAdmin {
                workspace: approver.workspace_name,
            }),
            // The user is gone since the session began.
            None => Err(PageError::SignIn {
                return_to: here(parts),
            }),
        }
    }
}
