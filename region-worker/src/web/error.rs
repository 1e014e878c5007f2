//! Every way a page stops, rendered in one place: the right status, a page that says
//! what happened and what to do, and never internal text. A store outage is logged,
//! counted (`worker_store_unavailable_total{protocol="pages"}`) and answered `503`
//! with `Retry-After`, through the one store-outage path every protocol's renderer
//! takes ([`crate::error::store_unavailable`]).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::csrf::CsrfError;
use super::layout::error_page;
use super::return_to::sign_in_redirect;
use crate::error::{Protocol, set_retry_after, store_unavailable};
use crate::store::StoreError;

/// Why a page cannot be shown, or a form not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// A store is unavailable: `503` with `Retry-After`.
    #[error(transparent)]
    Unavailable(#[from] StoreError),
    /// The browser has no live session: to sign-in, coming back to `return_to`.
    #[error("sign-in needed")]
    SignIn {
        /// The page to come back to after sign-in (dropped unless safe).
        return_to: String,
    },
    /// The signed-in user is not an admin of their workspace (`403`).
    #[error("not a workspace admin")]
    NotAdmin {
        /// Their workspace's name.
        workspace: String,
    },
    /// The signed-in user may not do this (`403`).
    #[error("{title}")]
    Forbidden {
        /// The page's title and heading.
        title: &'static str,
        /// What happened and what to do.
        explanation: String,
    },
    /// Nothing of this user's at this address (`404`).
    #[error("{title}")]
    NotFound {
        /// The page's title and heading.
        title: &'static str,
        /// What happened and what to do.
        explanation: &'static str,
    },
    /// The request cannot be used as it is (`400`).
    #[error("{title}")]
    BadRequest {
        /// The page's title and heading.
        title: &'static str,
        /// What happened and what to do.
        explanation: &'static str,
    },
    /// A form's CSRF token does not match its session and purpose (`403`).
    #[error("the form's CSRF token does not match")]
    FormRefused,
    /// A form was posted from another origin (`403`).
    #[error("the form was posted from another origin")]
    ForeignOrigin,
    /// Too many sign-in attempts from the client's network (`429`).
    #[error("too many sign-in attempts")]
    TooManyRequests {
        /// Seconds until the next attempt may succeed (`Retry-After`).
        wait: u64,
    },
}

impl PageError {
    /// The same error, with a sign-in coming back to `path` instead: for forms, whose
    /// endpoint is not the page to come back to.
    pub fn returning_to(self, path: impl Into<String>) -> Self {
        match self {
            PageError::SignIn { .. } => PageError::SignIn {
                return_to: path.into(),
            },
            other => other,
        }
    }
}

impl From<CsrfError> for PageError {
    fn from(e: CsrfError) -> Self {
        match e {
            CsrfError::ForeignOrigin => PageError::ForeignOrigin,
            CsrfError::NoSession | CsrfError::BadToken => PageError::FormRefused,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Unavailable(e) => {
                let outage = store_unavailable(Protocol::Pages, &e);
                let mut response = error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Temporarily unavailable",
                    "ClosedLoop AI cannot reach its data store right now. Please try again in \
                     a few seconds.",
                );
                outage.set_retry_after(response.headers_mut());
                response
            }
            PageError::SignIn { return_to } => sign_in_redirect(&return_to),
            PageError::NotAdmin { workspace } => error_page(
                StatusCode::FORBIDDEN,
                "Only workspace admins can open this page",
                &format!(
                    "This page is for the admins of the workspace {workspace}. Ask an admin of \
                     your workspace."
                ),
            ),
            PageError::Forbidden { title, explanation } => {
                error_page(StatusCode::FORBIDDEN, title, &explanation)
            }
            PageError::NotFound { title, explanation } => {
                error_page(StatusCode::NOT_FOUND, title, explanation)
            }
            PageError::BadRequest { title, explanation } => {
                error_page(StatusCode::BAD_REQUEST, title, explanation)
            }
            PageError::FormRefused => error_page(
                StatusCode::FORBIDDEN,
                "This form cannot be accepted",
                "The form expired or did not come from this ClosedLoop AI page. Reload the \
                 page and try again.",
            ),
            PageError::ForeignOrigin => error_page(
                StatusCode::FORBIDDEN,
                "This form cannot be accepted",
                "The form did not come from a ClosedLoop AI page. Open the sign-in page and \
                 try again.",
            ),
            PageError::TooManyRequests { wait } => {
                let mut response = error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many sign-in attempts",
                    "Too many sign-in attempts came from your network. Wait a moment and try \
                     again.",
                );
                set_retry_after(response.headers_mut(), wait);
                response
            }
        }
    }
}
