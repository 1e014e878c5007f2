//! The redirect URIs the SCIM OAuth server may send a browser to
//! (`[regions.<id>.scim_oauth] redirect_uris`): [`RedirectUriPattern`], an exact URL in
//! which Okta's `{appName}` may stand for one path segment. Matching is by string, so no
//! normalisation can make the server and a client disagree on what was allowed.

use std::fmt;

use super::error::ConfigError;

/// An allowed redirect URI: an exact URL in which a whole path segment may be
/// `{appName}` (one segment of `[A-Za-z0-9_-]`, as in Okta's
/// `https://system-admin.okta.com/admin/app/cpc/{appName}/oauth/callback`) and, under
/// the development switch only, a loopback `http://127.0.0.1:*` or `http://localhost:*`
/// origin whose port is any port. Matching is by exact string otherwise (RFC 6749
/// §3.1.2.3; no normalisation a browser or client could disagree with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUriPattern {
    /// The pattern as written in the map.
    text: String,
    /// The pattern cut into literal text and placeholders.
    parts: Vec<PatternPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternPart {
    Literal(String),
    /// `{appName}`: one path segment of `[A-Za-z0-9_-]`, 1 to 100 characters.
    AppName,
    /// `*` in the port position: 1 to 65535.
    AnyPort,
}

/// Why a redirect URI pattern was refused; the text follows the pattern in
/// [`ConfigError::RedirectUri`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedirectUriProblem {
    /// No `scheme://`.
    #[error("must be an absolute https URL")]
    NotAbsolute,
    /// Only an origin: a redirect URI names a path.
    #[error("needs a path")]
    NoPath,
    /// Plain HTTP, allowed only for loopback under the development switch.
    #[error("must be https (plain http only for a loopback host with development = true)")]
    PlainHttp,
    /// A scheme other than `https` or `http`.
    #[error("must be an https URL")]
    NotHttps,
    /// A host that is not a lower-case DNS name (wildcards, user info, upper case).
    #[error("the host must be a lower-case DNS name, without wildcards")]
    Host,
    /// `:*` outside development loopback.
    #[error("a port wildcard is allowed only for loopback hosts with development = true")]
    PortWildcard,
    /// A port that is not 1 to 65535.
    #[error("invalid port")]
    Port,
    /// A path segment with characters that would need encoding, an empty segment, or
    /// `{appName}` not alone in its segment.
    #[error("path segments may hold only letters, digits, - . _ ~ or be exactly {{appName}}")]
    PathSegment,
}

/// The placeholder for Okta's app name in a redirect URI pattern.
const APP_NAME: &str = "{appName}";
/// The longest app name a pattern's placeholder accepts.
const MAX_APP_NAME: usize = 100;

impl RedirectUriPattern {
    /// Parses a pattern. `development` allows plain-HTTP loopback patterns and the port
    /// wildcard (DESIGN.md, Configuration: test settings only behind the switch). A
    /// refusal is [`ConfigError::RedirectUri`].
    pub fn parse(text: &str, development: bool) -> Result<Self, ConfigError> {
        let bad = |problem| ConfigError::RedirectUri {
            pattern: text.to_owned(),
            problem,
        };
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad(RedirectUriProblem::NotAbsolute))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => return Err(bad(RedirectUriProblem::NoPath)),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        let loopback = matches!(host, "127.0.0.1" | "localhost");
        match scheme {
            "https" => {}
            "http" if development && loopback => {}
            "http" => return Err(bad(RedirectUriProblem::PlainHttp)),
            _ => return Err(bad(RedirectUriProblem::NotHttps)),
        }
        let host_ok = !host.is_empty()
            && (loopback
                || host.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                }));
        if !host_ok {
            return Err(bad(RedirectUriProblem::Host));
        }
        let mut parts = Vec::new();
        let mut literal = format!("{scheme}://{host}");
        match port {
            None => {}
            Some("*") if development && loopback => {
                literal.push(':');
                parts.push(PatternPart::Literal(std::mem::take(&mut literal)));
                parts.push(PatternPart::AnyPort);
            }
            Some("*") => return Err(bad(RedirectUriProblem::PortWildcard)),
            Some(p) if p.parse::<u16>().is_ok_and(|p| p != 0) => {
                literal.push(':');
                literal.push_str(p);
            }
            Some(_) => return Err(bad(RedirectUriProblem::Port)),
        }
        for (i, segment) in path.split('/').enumerate().skip(1) {
            literal.push('/');
            if segment == APP_NAME {
                parts.push(PatternPart::Literal(std::mem::take(&mut literal)));
                parts.push(PatternPart::AppName);
                continue;
            }
            let plain = segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !plain || (segment.is_empty() && i + 1 < path.split('/').count()) {
                return Err(bad(RedirectUriProblem::PathSegment));
            }
            literal.push_str(segment);
        }
        if !literal.is_empty() {
            parts.push(PatternPart::Literal(literal));
        }
        Ok(Self {
            text: text.to_owned(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `uri` matches: literals exactly, `{appName}` one segment of
    /// `[A-Za-z0-9_-]`, `*` a port number. No query, fragment or trailing text.
    pub fn matches(&self, uri: &str) -> bool {
        let mut rest = uri;
        for part in &self.parts {
            match part {
                PatternPart::Literal(l) => match rest.strip_prefix(l.as_str()) {
                    Some(r) => rest = r,
                    None => return false,
                },
                PatternPart::AppName => {
                    let n = rest
                        .bytes()
                        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
                        .count();
                    if n == 0 || n > MAX_APP_NAME {
                        return false;
                    }
                    rest = &rest[n..];
                }
                PatternPart::AnyPort => {
                    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                    if !rest[..n].parse::<u16>().is_ok_and(|p| p != 0) || rest.starts_with('0') {
                        return false;
                    }
                    rest = &rest[n..];
                }
            }
        }
        rest.is_empty()
    }
}

impl fmt::Display for RedirectUriPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::OKTA_CALLBACK;
    use super::*;

    #[test]
    fn okta_redirect_patterns_match_one_app_name_segment() {
        let p = RedirectUriPattern::parse(OKTA_CALLBACK, false).unwrap();
        for good in [
            "https://system-admin.okta.com/admin/app/cpc/closedloop/oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/Closed-Loop_2/oauth/callback",
        ] {
            assert!(p.matches(good), "{good}");
        }
        for bad in [
            "https://system-admin.okta.com/admin/app/cpc//oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/a/b/oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/a.b/oauth/callback",
            "https://system-admin.okta.com/admin/app/cpc/app/oauth/callback?x=1",
            "https://system-admin.okta.com/admin/app/cpc/app/oauth/callback#f",
            "https://system-admin.okta.com/admin/app/cpc/app/oauth/callback/",
            "https://system-admin.okta.com:443/admin/app/cpc/app/oauth/callback",
            "https://system-admin.okta.com.evil.test/admin/app/cpc/app/oauth/callback",
            "https://evil.test/admin/app/cpc/app/oauth/callback",
            "http://system-admin.okta.com/admin/app/cpc/app/oauth/callback",
            "https://SYSTEM-ADMIN.okta.com/admin/app/cpc/app/oauth/callback",
            "",
        ] {
            assert!(!p.matches(bad), "{bad}");
        }
        let long = format!(
            "https://system-admin.okta.com/admin/app/cpc/{}/oauth/callback",
            "a".repeat(101)
        );
        assert!(!p.matches(&long));
    }

    #[test]
    fn loopback_patterns_need_the_development_switch() {
        let dev = "http://127.0.0.1:*/admin/app/cpc/{appName}/oauth/callback";
        assert!(RedirectUriPattern::parse(dev, false).is_err());
        let p = RedirectUriPattern::parse(dev, true).unwrap();
        assert!(p.matches("http://127.0.0.1:8080/admin/app/cpc/app/oauth/callback"));
        for bad in [
            "http://127.0.0.1/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:0/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:080/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:70000/admin/app/cpc/app/oauth/callback",
            "http://127.0.0.1:80@evil.test/admin/app/cpc/app/oauth/callback",
        ] {
            assert!(!p.matches(bad), "{bad}");
        }
        for refused in [
            "http://example.com/cb",
            "https://example.com:*/cb",
            "https://*.okta.com/cb",
            "https://example.com",
            "https://example.com/a/{appName}x/cb",
            "https://example.com/a//cb",
            "https://user@example.com/cb",
            "ftp://example.com/cb",
        ] {
            assert!(
                RedirectUriPattern::parse(refused, true).is_err(),
                "{refused}"
            );
        }
    }

    #[test]
    fn refusals_say_what_is_wrong_with_which_pattern() {
        for (text, development, problem) in [
            ("example.com/cb", true, RedirectUriProblem::NotAbsolute),
            ("https://example.com", true, RedirectUriProblem::NoPath),
            ("http://example.com/cb", true, RedirectUriProblem::PlainHttp),
            ("http://127.0.0.1/cb", false, RedirectUriProblem::PlainHttp),
            ("ftp://example.com/cb", true, RedirectUriProblem::NotHttps),
            ("https://*.okta.com/cb", true, RedirectUriProblem::Host),
            (
                "https://example.com:*/cb",
                true,
                RedirectUriProblem::PortWildcard,
            ),
            ("https://example.com:0/cb", true, RedirectUriProblem::Port),
            (
                "https://example.com/a b",
                true,
                RedirectUriProblem::PathSegment,
            ),
        ] {
            assert_eq!(
                RedirectUriPattern::parse(text, development),
                Err(ConfigError::RedirectUri {
                    pattern: text.to_owned(),
                    problem,
                }),
                "{text}"
            );
        }
        let e = RedirectUriPattern::parse("https://example.com/a/{appName}x", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "redirect URI pattern \"https://example.com/a/{appName}x\": path segments may hold \
             only letters, digits, - . _ ~ or be exactly {appName}"
        );
    }
}
