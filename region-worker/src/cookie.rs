//! The worker's cookies, written and read in one place. Every cookie is host-only,
//! `HttpOnly` and `SameSite=Lax`; whether it is `Secure` (and may carry a `__Host-` or
//! `__Secure-` prefix) follows from one fact, the scheme of the region's URL for that
//! host ([`secure`]), so no two cookies can disagree on it.
//!
//! Written by hand rather than with the `cookie` crate (or axum-extra's cookie
//! feature): those order the attributes `HttpOnly; SameSite; Secure; Path; Max-Age`,
//! and the `Set-Cookie` values the worker answers with are pinned byte for byte by the
//! security tests (`Path; HttpOnly; SameSite=Lax; Max-Age; Secure`). Five attributes,
//! values we mint ourselves: a small builder reads better than a dependency to fight.
//!
//! Below sessions and the web layer, so that both use it without importing each other.

use axum::http::{HeaderMap, HeaderValue, header};
use url::Url;

/// Whether cookies of the host `url` names are `Secure`: when the region serves that
/// host over HTTPS (production; a plain-HTTP development stack cannot use `Secure`).
pub fn secure(url: &Url) -> bool {
    url.scheme() == "https"
}

/// A `Set-Cookie` value: `name=value; Path=…; HttpOnly; SameSite=Lax; Max-Age=…`, and
/// `; Secure` when [`secure`].
#[derive(Debug, Clone, Copy)]
pub struct SetCookie<'a> {
    /// The cookie's name (with its prefix, if any).
    pub name: &'a str,
    /// Its value: a token or random value we minted (cookie-safe characters only).
    pub value: &'a str,
    /// The path it is sent to (`/` for `__Host-` cookies).
    pub path: &'a str,
    /// Seconds until the browser forgets it; `0` removes it.
    pub max_age: i64,
    /// Whether it is sent over HTTPS only.
    pub secure: bool,
}

impl SetCookie<'_> {
    /// The value that removes the cookie `name` at `path`.
    pub fn clear<'a>(name: &'a str, path: &'a str, secure: bool) -> SetCookie<'a> {
        SetCookie {
            name,
            value: "",
            path,
            max_age: 0,
            secure,
        }
    }

    /// The header value.
    pub fn header(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let cookie = format!(
            "{}={}; Path={}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
            self.name, self.value, self.path, self.max_age
        );
        HeaderValue::from_str(&cookie).expect("minted values and our names are cookie-safe")
    }
}

/// Finds a cookie's value among the request's `Cookie` headers.
pub fn value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cookies_among_several_headers() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; clk_session=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(value(&h, "clk_session"), Some("xyz"));
        assert_eq!(value(&h, "b"), Some("2"));
        assert_eq!(value(&h, "c"), None);
    }

    #[test]
    fn attributes_keep_their_order() {
        let set = SetCookie {
            name: "__Host-clk_session",
            value: "v",
            path: "/",
            max_age: 43200,
            secure: true,
        };
        assert_eq!(
            set.header(),
            "__Host-clk_session=v; Path=/; HttpOnly; SameSite=Lax; Max-Age=43200; Secure"
        );
        assert_eq!(
            SetCookie::clear("clk_session", "/", false).header(),
            "clk_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
        );
        assert!(secure(&Url::parse("https://app.example").unwrap()));
        assert!(!secure(&Url::parse("http://app.localhost").unwrap()));
    }
}
