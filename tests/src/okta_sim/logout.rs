//! Universal Logout (Global Token Revocation, OKTA.md §7): Okta POSTs the subject to
//! the app's revocation endpoint with a `global-token-revocation+jwt` signed with its
//! ID-token key, `sub` the app's client id, `aud` the endpoint's exact URL, valid five
//! minutes either side of now.
//!
//! Besides the genuine request, [`Forgery`] builds the bad ones an endpoint must refuse,
//! each wrong in exactly one way (everything else as genuine), so that a `401` proves
//! that one check.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::directory::random_secret;
use super::keys::KeyError;
use super::upstream::Upstream;
use super::{Org, lock};

/// The JWT `typ` of a Global Token Revocation request.
pub const LOGOUT_TYP: &str = "global-token-revocation+jwt";
/// `exp` is now plus this; `nbf` now minus this (seconds).
pub const LOGOUT_WINDOW_SECS: i64 = 300;

/// Whom to log out, in the request body's subject formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `{"sub_id":{"format":"email","email":…}}`: what Okta sends (subject format
    /// "Email" in the seed doc).
    Email(String),
    /// `{"subject":{"format":"email","email":…}}`: the older drafts' key.
    LegacyEmail(String),
    /// `{"sub_id":{"format":"iss_sub","iss":…,"sub":…}}`.
    IssSub {
        /// The issuer.
        iss: String,
        /// The subject at that issuer.
        sub: String,
    },
    /// `{"sub_id":{"format":"opaque","id":…}}`.
    Opaque(String),
}

impl Subject {
    /// The request body.
    pub fn body(&self) -> Value {
        match self {
            Self::Email(email) => json!({ "sub_id": { "format": "email", "email": email } }),
            Self::LegacyEmail(email) => {
                json!({ "subject": { "format": "email", "email": email } })
            }
            Self::IssSub { iss, sub } => {
                json!({ "sub_id": { "format": "iss_sub", "iss": iss, "sub": sub } })
            }
            Self::Opaque(id) => json!({ "sub_id": { "format": "opaque", "id": id } }),
        }
    }
}

/// One way a logout JWT is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// Signed with a key the JWKS never lists, under that key's own `kid`.
    UnpublishedKey,
    /// The header names the published signing key's `kid`, but another key signed.
    KidMismatch,
    /// `aud` is another URL (the other region's endpoint).
    WrongAudience,
    /// `iss` is a custom authorization server of the org, not the org.
    WrongIssuer,
    /// `iat` and `nbf` ten minutes ago, `exp` a minute ago.
    Expired,
    /// A fresh, genuine token carrying the previous request's `jti`.
    ReplayedJti,
    /// `alg: none` and an empty signature.
    AlgNone,
    /// `HS256` with the public key's PEM as the HMAC secret (algorithm confusion).
    Hs256WithPublicKey,
    /// `typ: JWT`.
    WrongTyp,
}

impl Forgery {
    /// Every forgery.
    pub const ALL: [Forgery; 9] = [
        Self::UnpublishedKey,
        Self::KidMismatch,
        Self::WrongAudience,
        Self::WrongIssuer,
        Self::Expired,
        Self::ReplayedJti,
        Self::AlgNone,
        Self::Hs256WithPublicKey,
        Self::WrongTyp,
    ];
}

/// Why a logout request could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// Signing failed.
    #[error("signing: {0}")]
    Key(#[from] KeyError),
    /// The endpoint could not be reached.
    #[error("sending: {0}")]
    Transport(#[from] reqwest::Error),
    /// The endpoint URL is unusable.
    #[error("URL: {0}")]
    Url(#[from] url::ParseError),
    /// A replay was asked for before any request was sent.
    #[error("no logout request was sent yet")]
    NothingToReplay,
}

/// A request as sent, kept for replays.
#[derive(Debug, Clone)]
pub(crate) struct SentRequest {
    /// Where it went.
    pub(crate) target: Upstream,
    /// Its bearer JWT.
    pub(crate) jwt: String,
    /// Its `jti`.
    pub(crate) jti: String,
    /// Its body.
    pub(crate) body: Value,
}

/// What the endpoint answered.
#[derive(Debug, Clone)]
pub struct LogoutResponse {
    /// The status (Okta reads only this).
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// The JWT sent.
    pub jwt: String,
    /// The body sent.
    pub request_body: Value,
}

fn b64_json(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Builds the logout JWT of app `client_id` for endpoint `aud`, forged as asked.
/// Returns the JWT and its `jti`.
pub(crate) fn build_jwt(
    org: &Org,
    client_id: &str,
    aud: &str,
    forgery: Option<Forgery>,
) -> Result<(String, String), LogoutError> {
    let now = org.clock.now();
    let jti = match forgery {
        Some(Forgery::ReplayedJti) => lock(&org.last_logout)
            .as_ref()
            .map(|s| s.jti.clone())
            .ok_or(LogoutError::NothingToReplay)?,
        _ => random_secret(32),
    };
    let (iat, nbf, exp) = match forgery {
        Some(Forgery::Expired) => (now - 600, now - 600, now - 60),
        _ => (now, now - LOGOUT_WINDOW_SECS, now + LOGOUT_WINDOW_SECS),
    };
    let iss = match forgery {
        Some(Forgery::WrongIssuer) => format!("{}/oauth2/default", org.issuer),
        _ => org.issuer.clone(),
    };
    let aud = match forgery {
        Some(Forgery::WrongAudience) => wrong_audience(aud),
        _ => aud.to_owned(),
    };
    let claims = json!({ "jti": jti, "iss": iss, "sub": client_id, "aud": aud, "iat": iat, "nbf": nbf, "exp": exp });
    let (signing, unpublished) = {
        let keys = lock(&org.keys);
        (keys.signing(), keys.unpublished())
    };
    let jwt = match forgery {
        Some(Forgery::UnpublishedKey) => unpublished.sign(Some(LOGOUT_TYP), &claims)?,
        Some(Forgery::KidMismatch) => {
            unpublished.sign_claiming(signing.kid(), Some(LOGOUT_TYP), &claims)?
        }
        Some(Forgery::WrongTyp) => signing.sign(Some("JWT"), &claims)?,
        Some(Forgery::AlgNone) => {
            let header = json!({ "alg": "none", "typ": LOGOUT_TYP, "kid": signing.kid() });
            format!("{}.{}.", b64_json(&header), b64_json(&claims))
        }
        Some(Forgery::Hs256WithPublicKey) => {
            let pem = signing.public_key_pem()?;
            let key = EncodingKey::from_secret(pem.as_bytes()).map_err(KeyError::from)?;
            let mut header = Header::new(Algorithm::HS256);
            header.typ = Some(LOGOUT_TYP.to_owned());
            header.kid = Some(signing.kid().to_owned());
            jsonwebtoken::encode(&header, &claims, &key).map_err(KeyError::from)?
        }
        _ => signing.sign(Some(LOGOUT_TYP), &claims)?,
    };
    Ok((jwt, jti))
}

/// Another endpoint's URL: the other region's (`eu.` added or removed).
fn wrong_audience(aud: &str) -> String {
    match url::Url::parse(aud) {
        Ok(mut u) => {
            let host = u.host_str().unwrap_or_default().to_owned();
            let other = host
                .strip_prefix("eu.")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("eu.{host}"));
            if u.set_host(Some(&other)).is_ok() {
                u.to_string().trim_end_matches('/').to_owned()
            } else {
                format!("{aud}/other")
            }
        }
        Err(_) => format!("{aud}/other"),
    }
}

/// POSTs a logout request and remembers it for replays.
pub(crate) async fn send(
    org: &Org,
    target: &Upstream,
    jwt: String,
    jti: String,
    body: Value,
) -> Result<LogoutResponse, LogoutError> {
    let resp = target
        .request(&org.http, reqwest::Method::POST, "")?
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .bearer_auth(&jwt)
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    *lock(&org.last_logout) = Some(SentRequest {
        target: target.clone(),
        jwt: jwt.clone(),
        jti,
        body: body.clone(),
    });
    Ok(LogoutResponse {
        status,
        body: text,
        jwt,
        request_body: body,
    })
}

/// Sends the last request again, byte for byte.
pub(crate) async fn replay_last(org: &Org) -> Result<LogoutResponse, LogoutError> {
    let last = lock(&org.last_logout)
        .clone()
        .ok_or(LogoutError::NothingToReplay)?;
    send(org, &last.target, last.jwt, last.jti, last.body).await
}

#[cfg(test)]
mod tests;
