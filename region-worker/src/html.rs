//! The shell of every server-rendered page: one accessible layout, no JavaScript
//! required, every interpolated value HTML-escaped.

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The stylesheet of every page (inline; allowed by its hash in [`content_security_policy`]).
pub const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1c1e21}\
main{max-width:40rem;margin:3rem auto;background:#fff;padding:2rem 2.5rem;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.12)}\
h1{font-size:1.5rem;margin-top:0}button,.button{background:#2952cc;color:#fff;border:0;border-radius:6px;padding:.6rem 1.2rem;font-size:1rem;cursor:pointer;text-decoration:none}\
button:focus,a:focus,input:focus{outline:3px solid #f5a623;outline-offset:2px}.error{color:#b00020}code{background:#eef0f3;padding:.1rem .3rem;border-radius:4px}";

/// A whole page with `title` and already-escaped `body` HTML.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let mut html = String::with_capacity(body.len() + 1024);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{} · ClosedLoop AI</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>",
        escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// A page that explains an error in words.
pub fn error_page(status: StatusCode, title: &str, explanation: &str) -> Response {
    page(
        status,
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\">{}</p>",
            escape(title),
            escape(explanation)
        ),
    )
}

/// The `Content-Security-Policy` of every page: nothing loads but the pages' own inline
/// stylesheets and copy-button script, each allowed by its SHA-256 (no `unsafe-inline`),
/// images from the page itself; no frames may embed a page (the consent page's button
/// cannot be clickjacked); no `<base>`, no plugins. `form-action` is left open: the
/// sign-in and sign-out forms end in redirects to the customer's own Okta domain.
pub fn content_security_policy() -> &'static str {
    static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine as _;
        use sha2::Digest as _;
        let hash = |text: &str| {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text))
        };
        format!(
            "default-src 'none'; style-src 'sha256-{}' 'sha256-{}'; script-src 'sha256-{}'; \
             img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; object-src 'none'",
            hash(STYLE),
            hash(crate::routes::integrations::PAGE_STYLE),
            hash(crate::routes::integrations::COPY_SCRIPT_BODY),
        )
    });
    &POLICY
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
