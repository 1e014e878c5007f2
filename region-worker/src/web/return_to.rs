//! Where a browser may be sent after sign-in or after a form: only a relative path on
//! this host. Every page that takes a `return_to` (sign-in, the sign-in link, the
//! Disconnect forms) goes through [`safe`], so an open redirect cannot creep in.

use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::layout::Text;
use crate::paths::app::SIGN_IN;

/// `return_to` if it is safe to redirect to after sign-in: a relative path on this
/// host. It must start with `/` but not `//` or `/\` (browsers read both as another
/// host), contain no backslash and no control or space characters (browsers strip tabs
/// and newlines, which could turn `/\t/evil` into `//evil`), and stay short.
pub fn safe(s: &str) -> Option<&str> {
    let ok = s.len() <= 2048
        && s.starts_with('/')
        && !s.starts_with("//")
        && !s.contains('\\')
        && !s.bytes().any(|b| b <= b' ' || b == 0x7f);
    ok.then_some(s)
}

/// The hidden form field carrying `return_to` on to the form's target, when it is safe;
/// nothing otherwise.
pub fn field(return_to: Option<&str>) -> Markup {
    html! {
        @if let Some(r) = return_to.and_then(safe) {
            input type="hidden" name="return_to" value=(Text(r));
        }
    }
}

/// The sign-in page's address, coming back to `path` (when safe) after sign-in.
pub fn sign_in_location(path: &str) -> String {
    match safe(path) {
        Some(p) => format!(
            "{SIGN_IN}?return_to={}",
            url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>()
        ),
        None => SIGN_IN.to_owned(),
    }
}

/// Sends a signed-out browser to sign in, coming back to `path` afterwards.
pub fn sign_in_redirect(path: &str) -> Response {
    Redirect::to(&sign_in_location(path)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_must_be_a_relative_path_on_this_host() {
        for good in [
            "/",
            "/oauth/consent?request=4b7e6a1c-0f52-4a8e-9a57-1c3d2b4a5e6f",
            "/integrations/okta/provisioning",
        ] {
            assert_eq!(safe(good), Some(good), "{good}");
        }
        for bad in [
            "",
            "https://evil.test/",
            "//evil.test/",
            "/\\evil.test/",
            "/a\\b",
            "javascript:alert(1)",
            "evil.test",
            "/\t/evil.test",
            "/ /evil",
            "/\n/evil",
        ] {
            assert_eq!(safe(bad), None, "{bad:?}");
        }
        assert_eq!(safe(&format!("/{}", "a".repeat(2048))), None);
    }

    #[test]
    fn sign_in_comes_back_only_to_safe_paths() {
        assert_eq!(sign_in_location("/tokens"), "/auth?return_to=%2Ftokens");
        assert_eq!(sign_in_location("//evil.test"), "/auth");
    }
}
