//! The web layer of the app host: everything a page needs that is not the page itself,
//! so that a new page is one handler file that cannot forget a check or an escape.
//!
//! - [`layout`]: the one page shell, the explained-error page and [`layout::Text`]
//!   (escaped text);
//! - [`assets`]: the stylesheets and the copy-button script, and the
//!   Content-Security-Policy computed from them;
//! - [`error`]: [`PageError`], every way a page stops, rendered in one place;
//! - [`extract`]: the [`SignedIn`] and [`WorkspaceAdmin`] extractors;
//! - [`csrf`]: the tokens that bind a page's forms to its session;
//! - [`consent`]: the Approve / Deny form of the OAuth consent pages;
//! - [`return_to`]: where a browser may be sent back to after sign-in;
//! - [`query`]: the list pages' query parameters and filter-keeping links.
//!
//! A page handler reads `async fn show(admin: WorkspaceAdmin, …) -> Result<Markup,
//! PageError>`. Nothing here knows any page: `web` imports nothing from `routes`.

pub mod assets;
pub mod consent;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod layout;
pub mod query;
pub mod return_to;

pub use error::PageError;
pub use extract::{SignedIn, WorkspaceAdmin};
pub use layout::{Text, page};
