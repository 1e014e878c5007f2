//! Authenticating a Global Token Revocation request: its bearer is a
//! `global-token-revocation+jwt` signed with the Okta org's ID-token key (OKTA.md §7).
//!
//! 1. The token's unverified `iss` and `sub` name the workspace: the one whose Okta
//!    settings have that issuer and client id ([`okta::settings::by_client`]). No such
//!    workspace: `401`, before any key is fetched.
//! 2. The signature is checked by the shared verifier ([`shared::jwt`], asymmetric
//!    algorithms only: `alg: none` and HMAC are refused before any key is looked at)
//!    with the org's keys from the worker's key cache ([`okta::jwks`]):
//!    `{issuer}/oauth2/v1/keys`, and, for a `kid` that set lacks even after its
//!    rate-limited refetch, the app-pinned set `…/keys?client_id=` (unconfirmed in
//!    OKTA.md, so both are accepted).
//! 3. The claims: `typ` exactly `global-token-revocation+jwt`, `iss` the workspace's
//!    issuer, `aud` exactly this region's endpoint URL, `sub` its client id, `exp`,
//!    `nbf` and `iat` within the sign-in clock skew, `jti` present.
//!
//! Replay (`jti` single use until `exp`) is the caller's next step, in Redis.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use shared::jwt::{Expectations, JwtError, TypRule, Verified};
use url::Url;

use crate::okta::jwks::VerifyError;
use crate::okta::settings::{self, OktaSettings};
use crate::state::AppState;
use crate::store::StoreError;

/// The JWT `typ` of a Global Token Revocation request.
pub const LOGOUT_TYP: &str = "global-token-revocation+jwt";

/// Claims that must be present besides `iss`, `aud` and `exp`.
const REQUIRED: &[&str] = &["jti", "sub", "iat"];

/// The longest `jti` accepted (Okta's are short random strings).
const MAX_JTI: usize = 256;

/// What the token claims before anything is verified: only used to find the workspace
/// and its keys, and (truncated) in the audit trail of refused requests.
#[derive(Debug, Clone, Default)]
pub struct Claimed {
    /// `iss`, as sent.
    pub iss: String,
    /// `sub`, as sent.
    pub sub: String,
}

/// Reads `iss` and `sub` from a compact JWT's payload without verifying anything.
/// `None` when the token is not three base64url parts with a JSON object in the middle
/// holding both as strings.
pub fn claimed(token: &str) -> Option<Claimed> {
    if token.len() > shared::jwt::MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let Value::Object(claims) = serde_json::from_slice::<Value>(&bytes).ok()? else {
        return None;
    };
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(Claimed {
        iss: text("iss")?,
        sub: text("sub")?,
    })
}

/// A request whose JWT passed every check.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The workspace whose Okta app sent it.
    pub settings: OktaSettings,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (Unix seconds).
    pub exp: i64,
}

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// `401`: no workspace has this issuer and client, or the JWT is bad; the reason is
    /// a stable code for the audit trail.
    #[error("the JWT is invalid: {0}")]
    Invalid(&'static str),
    /// `422`: the org's keys could not be fetched and none are cached.
    #[error("the Okta org's signing keys are unavailable")]
    KeysUnavailable,
    /// `422`: a store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The org's key-set URL and its app-pinned variant.
fn key_urls(settings: &OktaSettings) -> Option<(Url, Url)> {
    let org = Url::parse(&format!(
        "{}/oauth2/v1/keys",
        settings.issuer.trim_end_matches('/')
    ))
    .ok()?;
    let mut pinned = org.clone();
    pinned
        .query_pairs_mut()
        .append_pair("client_id", &settings.client_id);
    Some((org, pinned))
}

/// Finds the workspace the token names and verifies the token for it. `workspace`
/// receives the workspace as soon as it is known, so that a refused request is audited
/// in the workspace it targeted.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    claimed: &Claimed,
    audience: &str,
    workspace: &mut Option<shared::ids::TeamId>,
) -> Result<Authenticated, Refusal> {
    let (settings, permitted) = {
        let client = state.pg.get().await.map_err(StoreError::from)?;
        let Some(settings) = settings::by_client(&client, &claimed.iss, &claimed.sub).await? else {
            return Err(Refusal::Invalid("unknown_issuer_or_client"));
        };
        let permitted =
            settings::org_permitted(&client, &settings, state.config.development).await?;
        (settings, permitted)
    };
    *workspace = Some(settings.team_id);
    // The keys are fetched only from an org the workspace may still use (Okta's own
    // domains, or a custom domain an operator allows): the same rule as sign-in.
    if permitted.is_err() {
        return Err(Refusal::Invalid("okta_domain_not_allowed"));
    }
    let (org_keys, pinned_keys) = key_urls(&settings).ok_or(Refusal::Invalid("unusable_issuer"))?;
    let now = state.config.clock.now().unix_timestamp();
    let expect = Expectations {
        typ: TypRule::Exactly(LOGOUT_TYP),
        leeway: state.config.sign_in.clock_skew.whole_seconds(),
        required: REQUIRED,
        ..Expectations::new(&settings.issuer, audience, now)
    };
    let okta = &state.okta;
    let verified = match okta
        .jwks
        .verify(&okta.http, &org_keys, token, &expect)
        .await
    {
        Err(VerifyError::Jwt(JwtError::UnknownKey)) => {
            match okta
                .jwks
                .verify(&okta.http, &pinned_keys, token, &expect)
                .await
            {
                // The org's own set answered and lacks the key: the app-pinned set
                // failing as well only confirms that the key is unknown.
                Err(VerifyError::Keys(_)) => Err(Refusal::Invalid(JwtError::UnknownKey.reason())),
                other => other.map_err(refusal),
            }
        }
        other => other.map_err(refusal),
    }?;
    let sub = verified.str_claim("sub");
    if sub != Some(settings.client_id.as_str()) {
        return Err(Refusal::Invalid("wrong_client"));
    }
    let jti = verified
        .str_claim("jti")
        .filter(|j| j.len() <= MAX_JTI)
        .ok_or(Refusal::Invalid("malformed_jti"))?
        .to_owned();
    let exp = exp_of(&verified)?;
    Ok(Authenticated { settings, jti, exp })
}

fn exp_of(verified: &Verified) -> Result<i64, Refusal> {
    verified
        .time_claim("exp")
        .ok_or(Refusal::Invalid("missing_claim"))
}

fn refusal(e: VerifyError) -> Refusal {
    match e {
        VerifyError::Jwt(e) => Refusal::Invalid(e.reason()),
        VerifyError::Keys(e) => {
            tracing::warn!(error = %e, "the Okta org's signing keys are unavailable");
            Refusal::KeysUnavailable
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn jwt(claims: Value) -> String {
        let b = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.c2ln", b(json!({ "alg": "RS256" })), b(claims))
    }

    #[test]
    fn reads_the_claimed_issuer_and_client() {
        let c = claimed(&jwt(
            json!({ "iss": "https://acme.okta.com", "sub": "0oa1" }),
        ))
        .unwrap();
        assert_eq!(c.iss, "https://acme.okta.com");
        assert_eq!(c.sub, "0oa1");
        assert!(claimed(&jwt(json!({ "iss": "https://acme.okta.com" }))).is_none());
        assert!(claimed(&jwt(json!({ "iss": 1, "sub": "0oa1" }))).is_none());
        assert!(claimed("a.b").is_none());
        assert!(claimed("a.b.c.d").is_none());
        assert!(claimed("e30.!!!.c2ln").is_none());
        assert!(claimed(&"a".repeat(shared::jwt::MAX_TOKEN_LEN + 1)).is_none());
    }
}
