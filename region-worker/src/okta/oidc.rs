//! The relying party's side of the authorization-code flow against an Okta org
//! (OKTA.md §8): random `state`, `nonce` and PKCE S256 values, the authorize URL, the
//! code exchange (`client_secret_basic`), userinfo, and the ID token's verification.
//!
//! Errors say what went wrong in words an admin can act on and never carry the code,
//! tokens or the client secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde_json::{Map, Value};
use shared::jwt::{Expectations, Verified};
use url::Url;

use super::discovery::Discovery;
use super::http::{HttpError, OktaHttp};
use super::jwks::{JwksCache, VerifyError};
use crate::pkce;

/// The scopes of every sign-in.
pub const SCOPES: &str = "openid email profile";

/// 32 random bytes, base64url: `state`, `nonce`, PKCE verifiers, flow bindings.
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE verifier (43 characters of the RFC 7636 alphabet) and its S256 challenge.
pub fn pkce_pair() -> (String, String) {
    let verifier = random_value();
    let challenge = pkce::s256(&verifier);
    (verifier, challenge)
}

/// What goes into the authorize URL.
#[derive(Debug)]
pub struct AuthorizeRequest<'a> {
    /// The client id of the workspace's Okta app.
    pub client_id: &'a str,
    /// The region's callback, exactly as registered in Okta.
    pub redirect_uri: &'a str,
    /// The single-use state.
    pub state: &'a str,
    /// The nonce the ID token must carry.
    pub nonce: &'a str,
    /// The PKCE S256 challenge.
    pub code_challenge: &'a str,
    /// The user's email, when known, so Okta can skip asking for it.
    pub login_hint: Option<&'a str>,
}

/// The URL the browser is sent to.
pub fn authorize_url(endpoint: &Url, req: &AuthorizeRequest<'_>) -> Url {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", req.client_id)
            .append_pair("redirect_uri", req.redirect_uri)
            .append_pair("scope", SCOPES)
            .append_pair("state", req.state)
            .append_pair("nonce", req.nonce)
            .append_pair("code_challenge", req.code_challenge)
            .append_pair("code_challenge_method", pkce::S256);
        if let Some(hint) = req.login_hint {
            q.append_pair("login_hint", hint);
        }
    }
    url
}

/// What a successful code exchange returns.
#[derive(Debug)]
pub struct Tokens {
    /// The ID token (compact JWT), not yet verified.
    pub id_token: String,
    /// The access token, for userinfo.
    pub access_token: Option<String>,
}

/// Why the code exchange or userinfo failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Okta could not be reached or did not answer in time.
    #[error("Okta could not be reached: {0}")]
    Unreachable(#[from] HttpError),
    /// Okta refused, with an OAuth error code (sanitised: letters, digits, `_` only).
    #[error("Okta refused the request: HTTP {status} {error}")]
    Refused {
        /// The status.
        status: u16,
        /// The RFC 6749 `error` code.
        error: String,
    },
    /// The answer is not what the protocol says.
    #[error("Okta's answer is not valid: {0}")]
    Invalid(&'static str),
}

impl ExchangeError {
    /// Whether the client credentials were refused (the admin must check them).
    pub fn is_invalid_client(&self) -> bool {
        matches!(self, ExchangeError::Refused { error, .. } if error == "invalid_client")
    }
}

/// An OAuth error code fit for logs and pages: at most 40 characters of `[A-Za-z0-9_]`.
pub fn sanitize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

/// The code exchange at the token endpoint.
pub async fn exchange_code(
    http: &OktaHttp,
    discovery: &Discovery,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
    code_verifier: &str,
) -> Result<Tokens, ExchangeError> {
    let response = http
        .post_form(
            &discovery.token_endpoint,
            (client_id, client_secret),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", code_verifier),
            ],
        )
        .await?;
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !response.status.is_success() {
        return Err(ExchangeError::Refused {
            status: response.status.as_u16(),
            error: sanitize_code(body["error"].as_str().unwrap_or("no_error_code")),
        });
    }
    let id_token = body["id_token"]
        .as_str()
        .ok_or(ExchangeError::Invalid("no id_token"))?
        .to_owned();
    Ok(Tokens {
        id_token,
        access_token: body["access_token"].as_str().map(str::to_owned),
    })
}

/// The claims of the userinfo endpoint (OIDC Core §5.3).
pub async fn userinfo(
    http: &OktaHttp,
    endpoint: &Url,
    access_token: &str,
) -> Result<Map<String, Value>, ExchangeError> {
    let response = http.get(endpoint, Some(access_token)).await?;
    if !response.status.is_success() {
        return Err(ExchangeError::Refused {
            status: response.status.as_u16(),
            error: "userinfo".to_owned(),
        });
    }
    match serde_json::from_slice(&response.body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ExchangeError::Invalid("userinfo is not a JSON object")),
    }
}

/// What an ID token is checked against, besides the issuer's keys.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenCheck<'a> {
    /// The `aud` (and `azp`): the workspace's client id.
    pub client_id: &'a str,
    /// The nonce sent with the authorize request.
    pub nonce: &'a str,
    /// Now, Unix seconds (the worker's clock).
    pub now: i64,
    /// Clock skew allowed, seconds.
    pub skew: i64,
}

/// Verifies an ID token from `discovery`'s issuer (OIDC Core §3.1.3.7).
pub async fn verify_id_token(
    http: &OktaHttp,
    keys: &JwksCache,
    discovery: &Discovery,
    id_token: &str,
    check: &IdTokenCheck<'_>,
) -> Result<Verified, VerifyError> {
    let expect = Expectations {
        leeway: check.skew,
        ..Expectations::id_token(&discovery.issuer, check.client_id, check.nonce, check.now)
    };
    keys.verify(http, &discovery.jwks_uri, id_token, &expect)
        .await
}

/// The URL of the org's logout (RP-initiated logout) that ends the Okta session and
/// brings the browser back to `post_logout_redirect_uri`.
pub fn logout_url(
    end_session_endpoint: &Url,
    id_token_hint: &str,
    post_logout_redirect_uri: &str,
    state: &str,
) -> Url {
    let mut url = end_session_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("id_token_hint", id_token_hint)
        .append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
        .append_pair("state", state);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_carries_every_parameter() {
        let endpoint = Url::parse("https://acme.okta.com/oauth2/v1/authorize").unwrap();
        let (verifier, challenge) = pkce_pair();
        assert!(pkce::verify(&challenge, &verifier));
        let url = authorize_url(
            &endpoint,
            &AuthorizeRequest {
                client_id: "0oa1",
                redirect_uri: "https://api.closedloop.sh/api/okta/oidc/callback",
                state: "s",
                nonce: "n",
                code_challenge: &challenge,
                login_hint: Some("jane@acme.test"),
            },
        );
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "openid email profile");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["login_hint"], "jane@acme.test");
        assert_eq!(
            q["redirect_uri"],
            "https://api.closedloop.sh/api/okta/oidc/callback"
        );
        assert_ne!(random_value(), random_value());
        assert_eq!(random_value().len(), 43);
    }

    #[test]
    fn error_codes_are_sanitised() {
        assert_eq!(sanitize_code("invalid_client"), "invalid_client");
        assert_eq!(sanitize_code("<script>x"), "scriptx");
        assert_eq!(sanitize_code(&"a".repeat(100)).len(), 40);
    }
}
