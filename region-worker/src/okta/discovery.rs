//! OpenID Provider discovery (`{issuer}/.well-known/openid-configuration`): fetched
//! when an admin saves the Okta setup, to confirm the issuer, and on sign-in for the
//! endpoints, through a small in-memory cache that honours `Cache-Control: max-age`.
//!
//! The document must name exactly the issuer it was fetched for (OpenID Connect
//! Discovery §4.3), and every endpoint the worker calls or sends a browser to must be on
//! the issuer's own origin: a document that points elsewhere is refused. Whether the
//! org sends `iss` in its authorization responses (RFC 9207) is read too: the callback
//! then refuses a response without one (mix-up defence, OKTA.md §9).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use url::Url;

use super::http::{HttpError, OktaHttp};
use super::max_age;
use crate::clock::Clock;

/// Where the discovery document lives under an issuer.
pub const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// How long a document is kept when the answer names no `max-age`.
const DEFAULT_TTL_SECS: i64 = 3600;
/// Bounds of the cache lifetime, whatever `max-age` says.
const MIN_TTL_SECS: i64 = 60;
const MAX_TTL_SECS: i64 = 24 * 3600;

/// The endpoints of an OpenID Provider, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The issuer, exactly as configured and as the document names it.
    pub issuer: String,
    /// Where browsers are sent to sign in.
    pub authorization_endpoint: Url,
    /// Where codes are exchanged.
    pub token_endpoint: Url,
    /// The signing keys.
    pub jwks_uri: Url,
    /// Claims about the user, when the ID token lacks them.
    pub userinfo_endpoint: Option<Url>,
    /// RP-initiated logout.
    pub end_session_endpoint: Option<Url>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §3): the org puts
    /// `iss` in every authorization response, so a response without it did not come
    /// from this org.
    pub iss_parameter_supported: bool,
}

/// Why a discovery document could not be had or used. Shown to admins on the Okta
/// page, so the messages say what to check.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The issuer is not a URL the worker may call.
    #[error("the issuer is not a valid URL")]
    BadIssuer,
    /// The call failed.
    #[error("could not reach {url}: {source}")]
    Unreachable {
        /// The document's URL.
        url: String,
        /// Why.
        source: HttpError,
    },
    /// The answer was not `200`.
    #[error("{url} answered HTTP {status}; check the domain")]
    Status {
        /// The document's URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// The answer is not a discovery document.
    #[error("the answer is not an OpenID discovery document ({0})")]
    Invalid(&'static str),
    /// The document names another issuer.
    #[error("the discovery document names the issuer {found}, not {expected}")]
    IssuerMismatch {
        /// The issuer made from the domain.
        expected: String,
        /// What the document says.
        found: String,
    },
    /// An endpoint is on another origin than the issuer.
    #[error("the discovery document's {0} is not on the issuer's domain")]
    ForeignEndpoint(&'static str),
}

impl DiscoveryError {
    /// A short reason for the Okta page. It never carries the transport's error chain
    /// (refused, reset, timed out, a TLS alert…): told apart, those would let an admin
    /// map which hosts and ports answer from inside the region.
    pub fn admin_reason(&self) -> String {
        match self {
            DiscoveryError::BadIssuer => "the domain does not make a valid issuer URL".into(),
            DiscoveryError::Unreachable {
                source: HttpError::NotPublic,
                ..
            } => "the domain leads to a private or local network address".into(),
            DiscoveryError::Unreachable {
                source: HttpError::UnknownHost,
                ..
            } => "the domain name cannot be found".into(),
            DiscoveryError::Unreachable { .. } | DiscoveryError::Status { .. } => {
                "no OpenID discovery document could be read from it".into()
            }
            DiscoveryError::Invalid(_) => "its answer is not an OpenID discovery document".into(),
            DiscoveryError::IssuerMismatch { .. } | DiscoveryError::ForeignEndpoint(_) => {
                self.to_string()
            }
        }
    }
}

/// Parses and checks a discovery document for `issuer`.
pub fn parse(issuer: &str, body: &[u8]) -> Result<Discovery, DiscoveryError> {
    let issuer_url = Url::parse(issuer).map_err(|_| DiscoveryError::BadIssuer)?;
    let doc: Value =
        serde_json::from_slice(body).map_err(|_| DiscoveryError::Invalid("not JSON"))?;
    let found = doc
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or(DiscoveryError::Invalid("no issuer"))?;
    if found != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: found.chars().take(200).collect(),
        });
    }
    let endpoint = |name: &'static str| -> Result<Option<Url>, DiscoveryError> {
        let Some(text) = doc.get(name).and_then(Value::as_str) else {
            return Ok(None);
        };
        let url = Url::parse(text).map_err(|_| DiscoveryError::Invalid(name))?;
        if url.origin() != issuer_url.origin() {
            return Err(DiscoveryError::ForeignEndpoint(name));
        }
        Ok(Some(url))
    };
    let required = |name: &'static str| -> Result<Url, DiscoveryError> {
        endpoint(name)?.ok_or(DiscoveryError::Invalid(name))
    };
    Ok(Discovery {
        issuer: issuer.to_owned(),
        authorization_endpoint: required("authorization_endpoint")?,
        token_endpoint: required("token_endpoint")?,
        jwks_uri: required("jwks_uri")?,
        userinfo_endpoint: endpoint("userinfo_endpoint")?,
        end_session_endpoint: endpoint("end_session_endpoint")?,
        iss_parameter_supported: doc
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Fetches and checks the discovery document of `issuer`; returns it with how long it
/// may be cached (seconds).
pub async fn fetch(http: &OktaHttp, issuer: &str) -> Result<(Discovery, i64), DiscoveryError> {
    let url =
        Url::parse(&format!("{issuer}{WELL_KNOWN}")).map_err(|_| DiscoveryError::BadIssuer)?;
    let response = http
        .get(&url, None)
        .await
        .map_err(|source| DiscoveryError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    if response.status != http::StatusCode::OK {
        return Err(DiscoveryError::Status {
            url: url.to_string(),
            status: response.status.as_u16(),
        });
    }
    let ttl = max_age(&response.headers)
        .unwrap_or(DEFAULT_TTL_SECS)
        .clamp(MIN_TTL_SECS, MAX_TTL_SECS);
    Ok((parse(issuer, &response.body)?, ttl))
}

/// Discovery documents by issuer, each until its `max-age` runs out.
#[derive(Debug)]
pub struct DiscoveryCache {
    /// issuer → (document, expiry in Unix seconds by [`Self::clock`]).
    entries: Mutex<HashMap<String, (Arc<Discovery>, i64)>>,
    /// The worker's clock.
    clock: Clock,
}

impl DiscoveryCache {
    /// An empty cache on `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// The document of `issuer`, from the cache while fresh.
    pub async fn get(
        &self,
        http: &OktaHttp,
        issuer: &str,
    ) -> Result<Arc<Discovery>, DiscoveryError> {
        let now = self.clock.now().unix_timestamp();
        let cached = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(issuer)
            .filter(|(_, expires)| *expires > now)
            .map(|(d, _)| d.clone());
        match cached {
            Some(d) => Ok(d),
            None => self.refresh(http, issuer).await,
        }
    }

    /// Fetches the document of `issuer` now and caches it.
    pub async fn refresh(
        &self,
        http: &OktaHttp,
        issuer: &str,
    ) -> Result<Arc<Discovery>, DiscoveryError> {
        let (doc, ttl) = fetch(http, issuer).await?;
        let doc = Arc::new(doc);
        let expires = self.clock.now().unix_timestamp() + ttl;
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(issuer.to_owned(), (doc.clone(), expires));
        Ok(doc)
    }

    /// The cached document of `issuer`, fresh or not, without any call (sign-out must
    /// not wait for Okta).
    pub fn peek(&self, issuer: &str) -> Option<Arc<Discovery>> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(issuer)
            .map(|(d, _)| d.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://acme.okta.com";

    fn doc(f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut d = json!({
            "issuer": ISS,
            "authorization_endpoint": "https://acme.okta.com/oauth2/v1/authorize",
            "token_endpoint": "https://acme.okta.com/oauth2/v1/token",
            "jwks_uri": "https://acme.okta.com/oauth2/v1/keys",
            "userinfo_endpoint": "https://acme.okta.com/oauth2/v1/userinfo",
            "end_session_endpoint": "https://acme.okta.com/oauth2/v1/logout",
        });
        f(&mut d);
        d.to_string().into_bytes()
    }

    #[test]
    fn an_org_servers_document_parses() {
        let d = parse(ISS, &doc(|_| {})).unwrap();
        assert_eq!(d.token_endpoint.path(), "/oauth2/v1/token");
        assert_eq!(
            d.end_session_endpoint.unwrap().as_str(),
            "https://acme.okta.com/oauth2/v1/logout"
        );
        assert!(!d.iss_parameter_supported);
        let with_iss = doc(|d| d["authorization_response_iss_parameter_supported"] = json!(true));
        assert!(parse(ISS, &with_iss).unwrap().iss_parameter_supported);
    }

    #[test]
    fn the_page_gets_a_short_reason_never_the_transport_chain() {
        let unreachable = |source| DiscoveryError::Unreachable {
            url: "https://sso.acme.test/.well-known/openid-configuration".into(),
            source,
        };
        let refused = unreachable(HttpError::Transport(
            "client error (Connect): tcp connect error: Connection refused (os error 111)".into(),
        ));
        let timed_out = unreachable(HttpError::Timeout(std::time::Duration::from_secs(10)));
        let status = DiscoveryError::Status {
            url: "https://sso.acme.test/x".into(),
            status: 404,
        };
        // Refused, timed out and a non-200 answer read the same: no port scanning.
        assert_eq!(refused.admin_reason(), timed_out.admin_reason());
        assert_eq!(refused.admin_reason(), status.admin_reason());
        assert!(!refused.admin_reason().contains("refused"));
        assert!(
            unreachable(HttpError::NotPublic)
                .admin_reason()
                .contains("private or local network address")
        );
        assert!(
            unreachable(HttpError::UnknownHost)
                .admin_reason()
                .contains("cannot be found")
        );
    }

    #[test]
    fn the_issuer_must_match_exactly_and_endpoints_stay_on_its_origin() {
        let custom = doc(|d| d["issuer"] = json!("https://acme.okta.com/oauth2/default"));
        assert!(matches!(
            parse(ISS, &custom),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let slash = doc(|d| d["issuer"] = json!("https://acme.okta.com/"));
        assert!(matches!(
            parse(ISS, &slash),
            Err(DiscoveryError::IssuerMismatch { .. })
        ));
        let foreign = doc(|d| d["token_endpoint"] = json!("https://evil.test/token"));
        assert!(matches!(
            parse(ISS, &foreign),
            Err(DiscoveryError::ForeignEndpoint("token_endpoint"))
        ));
        let missing = doc(|d| {
            d.as_object_mut().unwrap().remove("jwks_uri");
        });
        assert!(matches!(
            parse(ISS, &missing),
            Err(DiscoveryError::Invalid("jwks_uri"))
        ));
        assert!(matches!(
            parse(ISS, b"<html>"),
            Err(DiscoveryError::Invalid(_))
        ));
        let optional = doc(|d| {
            d.as_object_mut().unwrap().remove("end_session_endpoint");
        });
        assert!(
            parse(ISS, &optional)
                .unwrap()
                .end_session_endpoint
                .is_none()
        );
    }
}
