//! How Okta's admin console obtains the SCIM bearer token from our OAuth server
//! (OKTA.md §6): it sends the admin's browser to the authorize endpoint with its client
//! id, its fixed callback (`https://system-admin.okta.com/admin/app/cpc/{appName}/oauth/callback`),
//! a `state`, the SCIM scopes and (optionally) a PKCE S256 challenge; the signed-in
//! workspace admin approves; Okta exchanges the code at the token endpoint with
//! `client_secret_basic` or `client_secret_post`, keeps the access and refresh tokens,
//! and refreshes only when a provisioning job runs and finds the access token expired.
//!
//! This is the client side only, generic over endpoints: the test (or a browser) does
//! what the admin does and hands the callback URL back.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use shared::regions::Secret;
use url::Url;

use super::clock::Clock;
use super::directory::random_secret;
use super::oidc::token::s256;
use super::upstream::Upstream;

/// Okta's fixed OAuth callback for an app named `app_name` on the production cell.
pub fn okta_callback(app_name: &str) -> String {
    format!("https://system-admin.okta.com/admin/app/cpc/{app_name}/oauth/callback")
}

/// The scopes Okta asks for (seed doc, step 5).
pub const SCIM_SCOPES: &str = "scim.read scim.write entitlements.read";

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// The client's settings, as an Okta app integration holds them.
#[derive(Debug, Clone)]
pub struct OAuthClientConfig {
    /// The authorize endpoint, as the admin's browser reaches it.
    pub authorize_url: Url,
    /// The token endpoint, and how the sim reaches it.
    pub token_endpoint: Upstream,
    /// The client id (one per region, shared by every Okta tenant).
    pub client_id: String,
    /// The client secret.
    pub client_secret: Secret,
    /// The callback sent as `redirect_uri`.
    pub redirect_uri: String,
    /// Space-separated scopes.
    pub scope: String,
    /// Token endpoint authentication.
    pub client_auth: ClientAuth,
    /// Whether to send a PKCE S256 challenge.
    pub pkce: bool,
    /// Token request timeout.
    pub timeout: Duration,
}

impl OAuthClientConfig {
    /// Okta's defaults: the `closedloop` app's callback, the SCIM scopes, Basic
    /// authentication, PKCE on, 60 s timeout.
    pub fn okta(
        authorize_url: &str,
        token_endpoint: Upstream,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, url::ParseError> {
        Ok(Self {
            authorize_url: Url::parse(authorize_url)?,
            token_endpoint,
            client_id: client_id.to_owned(),
            client_secret: Secret::new(client_secret),
            redirect_uri: okta_callback("closedloop"),
            scope: SCIM_SCOPES.to_owned(),
            client_auth: ClientAuth::Basic,
            pkce: true,
            timeout: Duration::from_secs(60),
        })
    }
}

/// Why obtaining or refreshing a token failed.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// A callback arrived but no authorization was started.
    #[error("no authorization is in progress")]
    NoPendingAuthorization,
    /// The callback's `state` is not the one sent (CSRF, or a stale tab).
    #[error("the callback's state does not match")]
    StateMismatch,
    /// The authorization server redirected with an error.
    #[error("authorization refused: {error}")]
    Denied {
        /// The `error` code.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The callback carried neither `code` nor `error`.
    #[error("the callback carries no code")]
    MissingCode,
    /// The token endpoint answered an error.
    #[error("token endpoint: HTTP {status}: {error}")]
    Endpoint {
        /// HTTP status.
        status: u16,
        /// The `error` code (or the body when not RFC 6749 JSON).
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },
    /// The token endpoint could not be reached or timed out.
    #[error("token endpoint: {0}")]
    Transport(#[from] reqwest::Error),
    /// A success answer without a usable token.
    #[error("token endpoint answer unusable: {0}")]
    BadResponse(String),
    /// No token yet: complete an authorization or set a bearer token.
    #[error("not authorized yet")]
    NotAuthorized,
    /// The access token expired and there is no refresh token.
    #[error("the access token expired and there is no refresh token")]
    NoRefreshToken,
    /// A URL could not be built or parsed.
    #[error("URL: {0}")]
    Url(#[from] url::ParseError),
}

/// Tokens held.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The SCIM bearer token.
    pub access_token: Secret,
    /// The refresh token (kept when a refresh answer omits it).
    pub refresh_token: Option<Secret>,
    /// When the access token expires (Unix seconds), if `expires_in` was given.
    pub expires_at: Option<i64>,
    /// Granted scopes, if the server said.
    pub scope: Option<String>,
}

/// The authorization in progress.
#[derive(Debug)]
struct Pending {
    /// Sent as `state`, checked on the callback.
    state: String,
    /// The PKCE verifier, sent with the code.
    verifier: Option<String>,
}

/// An authorization to send the admin's browser to.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// The full authorize URL.
    pub url: Url,
    /// Its `state`.
    pub state: String,
}

/// The OAuth client of one app instance.
#[derive(Debug)]
pub struct OAuthClient {
    /// Settings.
    config: OAuthClientConfig,
    /// HTTP client for the token endpoint.
    http: reqwest::Client,
    /// Decides expiry.
    clock: Clock,
    /// The authorization in progress.
    pending: Option<Pending>,
    /// Tokens held.
    tokens: Option<TokenSet>,
}

/// Refresh this many seconds before expiry, so a job never starts with a token about
/// to lapse.
const EXPIRY_SKEW_SECS: i64 = 30;

impl OAuthClient {
    /// A client with `config`; `clock` decides when tokens have expired.
    pub fn new(config: OAuthClientConfig, clock: Clock) -> Result<Self, OAuthError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .build()?;
        Ok(Self {
            config,
            http,
            clock,
            pending: None,
            tokens: None,
        })
    }

    /// Starts an authorization: the URL for the admin's browser (a new `state` and
    /// PKCE verifier each time; the previous authorization is abandoned).
    pub fn authorize_url(&mut self) -> AuthorizeRequest {
        let state = random_secret(32);
        let verifier = self.config.pkce.then(|| random_secret(64));
        let mut url = self.config.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.config.client_id)
                .append_pair("redirect_uri", &self.config.redirect_uri)
                .append_pair("scope", &self.config.scope)
                .append_pair("state", &state);
            if let Some(v) = &verifier {
                q.append_pair("code_challenge", &s256(v))
                    .append_pair("code_challenge_method", "S256");
            }
        }
        self.pending = Some(Pending {
            state: state.clone(),
            verifier,
        });
        AuthorizeRequest { url, state }
    }

    /// Completes the authorization from the callback URL the browser landed on.
    pub async fn complete(&mut self, callback: &str) -> Result<(), OAuthError> {
        let url = Url::parse(callback)?;
        let param = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let state = param("state").unwrap_or_default();
        if let Some(error) = param("error") {
            if self.pending.as_ref().is_some_and(|p| p.state == state) {
                self.pending = None;
            }
            return Err(OAuthError::Denied {
                error,
                description: param("error_description"),
            });
        }
        let code = param("code").ok_or(OAuthError::MissingCode)?;
        self.exchange_code(&code, &state).await
    }

    /// Exchanges `code` (whose callback carried `state`) for tokens.
    pub async fn exchange_code(&mut self, code: &str, state: &str) -> Result<(), OAuthError> {
        let pending = self
            .pending
            .take()
            .ok_or(OAuthError::NoPendingAuthorization)?;
        if pending.state != state {
            self.pending = Some(pending);
            return Err(OAuthError::StateMismatch);
        }
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", self.config.redirect_uri.clone()),
        ];
        if let Some(v) = pending.verifier {
            form.push(("code_verifier", v));
        }
        let tokens = self.token_request(form).await?;
        self.tokens = Some(tokens);
        Ok(())
    }

    /// Refreshes with the refresh token (rotated when the answer carries a new one).
    pub async fn refresh(&mut self) -> Result<(), OAuthError> {
        let refresh = self
            .tokens
            .as_ref()
            .and_then(|t| t.refresh_token.clone())
            .ok_or(OAuthError::NoRefreshToken)?;
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh.expose().to_owned()),
        ];
        let mut tokens = self.token_request(form).await?;
        if tokens.refresh_token.is_none() {
            tokens.refresh_token = Some(refresh);
        }
        self.tokens = Some(tokens);
        Ok(())
    }

    /// The access token for a provisioning job, refreshed first if it has expired.
    pub async fn access_token(&mut self) -> Result<String, OAuthError> {
        let tokens = self.tokens.as_ref().ok_or(OAuthError::NotAuthorized)?;
        let expired = tokens
            .expires_at
            .is_some_and(|at| self.clock.now() >= at - EXPIRY_SKEW_SECS);
        if expired {
            self.refresh().await?;
        }
        self.tokens
            .as_ref()
            .map(|t| t.access_token.expose().to_owned())
            .ok_or(OAuthError::NotAuthorized)
    }

    /// The tokens held, if any.
    pub fn tokens(&self) -> Option<&TokenSet> {
        self.tokens.as_ref()
    }

    /// Its settings.
    pub fn config(&self) -> &OAuthClientConfig {
        &self.config
    }

    /// POSTs a token request with the configured client authentication.
    async fn token_request(
        &self,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<TokenSet, OAuthError> {
        let c = &self.config;
        let mut req = c
            .token_endpoint
            .request(&self.http, reqwest::Method::POST, "")?;
        match c.client_auth {
            ClientAuth::Basic => {
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                let pair = format!("{}:{}", enc(&c.client_id), enc(c.client_secret.expose()));
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            ClientAuth::Post => {
                form.push(("client_id", c.client_id.clone()));
                form.push(("client_secret", c.client_secret.expose().to_owned()));
            }
        }
        let resp = req
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status != 200 {
            return Err(OAuthError::Endpoint {
                status,
                error: body
                    .get("error")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect()),
                description: body
                    .get("error_description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        let access = body
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| OAuthError::BadResponse("no access_token".into()))?;
        let bearer = body
            .get("token_type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
        if !bearer {
            return Err(OAuthError::BadResponse("token_type is not Bearer".into()));
        }
        let expires_at = match body.get("expires_in") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| OAuthError::BadResponse("expires_in is not an integer".into()))?
                    .saturating_add(self.clock.now()),
            ),
        };
        Ok(TokenSet {
            access_token: Secret::new(access),
            refresh_token: body
                .get("refresh_token")
                .and_then(Value::as_str)
                .map(Secret::new),
            expires_at,
            scope: body.get("scope").and_then(Value::as_str).map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests;
