//! The Approve / Deny form of the consent pages of both OAuth servers (Okta's SCIM
//! provisioning, MCP clients): the buttons, the fields they post and reading the
//! decision, so the two pages cannot drift apart in what they accept.

use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::{PageError, Text, csrf};

/// The buttons, posting the pending request's id and the page's CSRF token to
/// `action`.
pub fn decision_buttons(action: &str, request: Uuid, csrf_token: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            input type="hidden" name="request" value=(request);
            input type="hidden" name=(csrf::FIELD) value=(Text(csrf_token));
            button type="submit" name="decision" value="approve" { "Approve" }
            " "
            button type="submit" name="decision" value="deny" { "Deny" }
        }
    }
}

/// What the buttons post; missing fields read as empty and fail their checks.
#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    request: String,
    /// The CSRF token, for [`crate::web::SignedIn::check_form`].
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    decision: String,
}

impl DecisionForm {
    /// The pending request decided on; `None` when the field is not one (an expired or
    /// made-up form).
    pub fn request(&self) -> Option<Uuid> {
        Uuid::parse_str(&self.request).ok()
    }

    /// Whether the user approved (`true`) or denied (`false`); anything else is refused.
    pub fn approved(&self) -> Result<bool, PageError> {
        match self.decision.as_str() {
            "approve" => Ok(true),
            "deny" => Ok(false),
            _ => Err(PageError::BadRequest {
                title: "No decision",
                explanation: "Choose Approve or Deny.",
            }),
        }
    }
}
