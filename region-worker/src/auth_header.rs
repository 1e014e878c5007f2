//! The `Authorization` header, read one way for every route that takes a credential in
//! it: bearer tokens (SCIM, the token API, `/api/me`, Universal Logout's JWT) and HTTP
//! Basic client credentials (the OAuth token endpoint, introspection).
//!
//! Why one module: two copies of each parser had already drifted (one took
//! `Bearer ` with nothing after it as an empty token, the other as no token), and the
//! form-encoding quirk of RFC 6749 §2.3.1 was handled slightly differently at the two
//! Basic endpoints. The rules, for both schemes:
//! - exactly one `Authorization` header: a request with several is not guessed at;
//! - the scheme is matched case-insensitively (RFC 9110 §11.1), separated from its
//!   credentials by a space, and surrounding spaces around the credentials are ignored;
//! - a value that is not visible ASCII is no credential.
//!
//! Nothing here logs: a raw header never reaches a log line, and [`Basic`]'s `Debug`
//! hides the secret.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// The request's one `Authorization` header, or `None` when it has none; `Err` when it
/// has several.
fn single(headers: &HeaderMap) -> Result<Option<&HeaderValue>, BasicError> {
    let mut all = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(BasicError::Repeated);
    }
    Ok(Some(value))
}

/// `(scheme, credentials)` of a header value, the credentials trimmed of spaces.
fn scheme_and_credentials(value: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = value.split_once(' ')?;
    Some((scheme, rest.trim()))
}

/// The bearer token (RFC 6750 §2.1) of a request with exactly one `Authorization`
/// header. `None` when there is no header, several, another scheme, a value that is not
/// visible ASCII, or nothing after `Bearer `: callers treat all of these as "no token"
/// and answer `401` without a store lookup.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = single(headers).ok()??.to_str().ok()?;
    let (scheme, token) = scheme_and_credentials(value)?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Why HTTP Basic credentials could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BasicError {
    /// More than one `Authorization` header: which one authenticates is ambiguous.
    #[error("send one Authorization header")]
    Repeated,
    /// `Basic` with credentials that are not base64 of UTF-8 `id:secret`, or a header
    /// value that is not visible ASCII.
    #[error("malformed HTTP Basic credentials")]
    Malformed,
}

/// One part (client id or secret) of HTTP Basic credentials.
///
/// RFC 6749 §2.3.1 has clients form-encode the id and the secret before base64; many
/// skip it. So a part is accepted either as sent or form-decoded, and this type keeps
/// both forms so that no caller decodes on its own.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicPart {
    /// The text as it stood in the header, after base64.
    sent: String,
    /// Its form-decoding, when that differs from `sent`.
    decoded: Option<String>,
}

/// Redacted: a part may be the secret. [`Basic`] shows the id.
impl std::fmt::Debug for BasicPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl BasicPart {
    fn new(sent: &str) -> Self {
        let decoded = form_decoded(sent);
        Self {
            decoded: (decoded != sent).then_some(decoded),
            sent: sent.to_owned(),
        }
    }

    /// The forms to try: as sent, then form-decoded when it differs.
    pub fn forms(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.sent.as_str()).chain(self.decoded.as_deref())
    }

    /// Whether either form is exactly `expected` (for the client id, which is public).
    pub fn is(&self, expected: &str) -> bool {
        self.forms().any(|f| f == expected)
    }
}

/// Client credentials from `Authorization: Basic` (RFC 7617, RFC 6749 §2.3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct Basic {
    /// The client id.
    pub id: BasicPart,
    /// The client secret; compare it only in constant time.
    pub secret: BasicPart,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("id", &self.id.sent)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The `Basic` credentials of the request. `Ok(None)` when it sends none: no header, or
/// another scheme (a bearer token is not client authentication). `Err` for several
/// headers or malformed credentials, which the caller refuses in its own format.
pub fn basic(headers: &HeaderMap) -> Result<Option<Basic>, BasicError> {
    let Some(value) = single(headers)? else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| BasicError::Malformed)?;
    let Some((scheme, encoded)) = scheme_and_credentials(value) else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    // Padding is required by RFC 4648 but omitted by some clients: both are read.
    let bytes = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .map_err(|_| BasicError::Malformed)?;
    let text = String::from_utf8(bytes).map_err(|_| BasicError::Malformed)?;
    // The id cannot contain a colon (RFC 7617 §2); the secret may.
    let (id, secret) = text.split_once(':').ok_or(BasicError::Malformed)?;
    Ok(Some(Basic {
        id: BasicPart::new(id),
        secret: BasicPart::new(secret),
    }))
}

/// `application/x-www-form-urlencoded` decoding of one value: `+` is a space and
/// `%XX` a byte (invalid UTF-8 replaced). `&` and `=` are data here, not separators,
/// which is why the text is escaped before the form parser sees it.
fn form_decoded(s: &str) -> String {
    let escaped = s.replace('&', "%26");
    url::form_urlencoded::parse(format!("x={escaped}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    fn basic_of(text: &str) -> HeaderMap {
        with(&[format!("Basic {}", STANDARD.encode(text)).as_bytes()])
    }

    #[test]
    fn bearer_takes_exactly_one_header() {
        assert_eq!(bearer(&with(&[])), None);
        assert_eq!(bearer(&with(&[b"Bearer abc"])), Some("abc"));
        assert_eq!(bearer(&with(&[b"Bearer a", b"Bearer a"])), None);
        assert_eq!(bearer(&with(&[b"Bearer a", b"Basic b"])), None);
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_others_are_not_bearer() {
        assert_eq!(bearer(&with(&[b"bearer abc"])), Some("abc"));
        assert_eq!(bearer(&with(&[b"BEARER abc"])), Some("abc"));
        assert_eq!(bearer(&with(&[b"Basic abc"])), None);
        assert_eq!(bearer(&with(&[b"Bearerabc"])), None);
        assert_eq!(bearer(&with(&[b"abc"])), None);
    }

    #[test]
    fn bearer_with_nothing_after_the_scheme_is_no_token() {
        assert_eq!(bearer(&with(&[b"Bearer "])), None);
        assert_eq!(bearer(&with(&[b"Bearer    "])), None);
        assert_eq!(bearer(&with(&[b"Bearer"])), None);
    }

    #[test]
    fn bearer_ignores_extra_spaces_around_the_token() {
        assert_eq!(bearer(&with(&[b"Bearer abc "])), Some("abc"));
        assert_eq!(bearer(&with(&[b"Bearer   abc"])), Some("abc"));
        // Inside the token, a space is part of what was sent (and fails the lookup).
        assert_eq!(bearer(&with(&[b"Bearer a b"])), Some("a b"));
    }

    #[test]
    fn bearer_refuses_values_that_are_not_visible_ascii() {
        assert_eq!(bearer(&with(&["Bearer clk_ü".as_bytes()])), None);
        assert_eq!(bearer(&with(&[b"Bearer \xff"])), None);
    }

    #[test]
    fn basic_reads_id_and_secret() {
        let b = basic(&basic_of("client:s3cret")).unwrap().unwrap();
        assert!(b.id.is("client"));
        assert_eq!(b.secret.forms().collect::<Vec<_>>(), ["s3cret"]);
        // The secret may contain colons; the id may not.
        let b = basic(&basic_of("client:a:b")).unwrap().unwrap();
        assert_eq!(b.secret.forms().collect::<Vec<_>>(), ["a:b"]);
        // Unpadded base64, a lower-case scheme and extra spaces are read too.
        let unpadded = STANDARD_NO_PAD.encode("client:s3cret");
        let h = with(&[format!("basic   {unpadded} ").as_bytes()]);
        assert_eq!(
            basic(&h).unwrap(),
            basic(&basic_of("client:s3cret")).unwrap()
        );
    }

    #[test]
    fn basic_parts_are_tried_as_sent_and_form_decoded() {
        let b = basic(&basic_of("api%2Dservers:s%3Acret+x"))
            .unwrap()
            .unwrap();
        assert!(b.id.is("api%2Dservers"));
        assert!(b.id.is("api-servers"));
        assert!(!b.id.is("api"));
        assert_eq!(
            b.secret.forms().collect::<Vec<_>>(),
            ["s%3Acret+x", "s:cret x"]
        );
        // `&` and `=` are data in one value, not separators.
        let b = basic(&basic_of("id:a&b=c")).unwrap().unwrap();
        assert_eq!(b.secret.forms().collect::<Vec<_>>(), ["a&b=c"]);
        // Nothing to decode: one form only.
        let b = basic(&basic_of("id:plain")).unwrap().unwrap();
        assert_eq!(b.secret.forms().count(), 1);
    }

    #[test]
    fn no_basic_credentials_is_not_an_error() {
        assert_eq!(basic(&with(&[])), Ok(None));
        assert_eq!(basic(&with(&[b"Bearer abc"])), Ok(None));
        assert_eq!(basic(&with(&[b"Basic"])), Ok(None));
    }

    #[test]
    fn malformed_basic_credentials_are_refused() {
        assert_eq!(
            basic(&with(&[b"Basic", b"Basic"])),
            Err(BasicError::Repeated)
        );
        assert_eq!(
            basic(&with(&[b"Bearer a", b"Bearer b"])),
            Err(BasicError::Repeated)
        );
        // Bad base64.
        assert_eq!(basic(&with(&[b"Basic !!!"])), Err(BasicError::Malformed));
        assert_eq!(basic(&with(&[b"Basic "])), Err(BasicError::Malformed));
        // No colon.
        assert_eq!(basic(&basic_of("no-colon")), Err(BasicError::Malformed));
        // Not UTF-8 inside, or not visible ASCII outside.
        let latin1 = STANDARD.encode(b"id:\xe9");
        let h = with(&[format!("Basic {latin1}").as_bytes()]);
        assert_eq!(basic(&h), Err(BasicError::Malformed));
        assert_eq!(
            basic(&with(&["Basic ü".as_bytes()])),
            Err(BasicError::Malformed)
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let b = basic(&basic_of("client:s3cret")).unwrap().unwrap();
        let shown = format!("{b:?}");
        assert!(shown.contains("client"));
        assert!(!shown.contains("s3cret"));
    }
}
