//! `GET {api}/api/okta/oidc/callback`: the seed's Redirect URI, where Okta sends the
//! browser back with `code` and `state` (or `error`).
//!
//! In order: the `state` is taken once from Redis (unknown, expired and replayed states
//! are refused), the browser must be the one that started the sign-in, the response's
//! `iss` (RFC 9207), when present, must be the issuer the state was made for, an Okta
//! error is shown as such, the workspace's setup must be unchanged, sign-in still on,
//! and its org still one the workspace may use (Okta's own domain or an allowed custom
//! one); an org whose discovery document promises `iss` must have sent it. Only then,
//! and only to that issuer's token endpoint, is the code sent: every workspace shares
//! this one callback, so the state alone must never decide where a code goes (mix-up,
//! RFC 9700 §4.4; OKTA.md §9). The code is exchanged with the workspace's client
//! credentials and PKCE verifier, the ID token is verified (signature by `kid` from the
//! cached JWKS, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`, small skew), the verified
//! email is read (from the ID token, else userinfo for the same `sub`), and the user is
//! found or created just in time.
//! The sign-in is then handed to the app host by a one-time code ([`super::handoff`]).

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Map, Value, json};
use shared::token::TokenHash;
use subtle::ConstantTimeEq;

use super::failure::{self, SignInFailure};
use super::handoff::{self, Handoff};
use super::login::binding_cookie_name;
use super::pending::{self, PendingSignIn, Taken};
use super::provision::{self, Identity};
use super::{no_store, redirect_uri};
use crate::cookie::value as cookie_value;
use crate::okta::domain::{DomainKind, OktaDomain, normalize_issuer};
use crate::okta::jwks::VerifyError;
use crate::okta::oidc::{self, ExchangeError, IdTokenCheck};
use crate::okta::settings;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::audit::AuditAction;

/// The callback's parameters (first value of each).
#[derive(Debug, Default)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    /// The issuer that answered (RFC 9207), in success and error responses alike.
    iss: Option<String>,
}

impl CallbackParams {
    fn parse(query: &str) -> Self {
        let mut p = Self::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "state" => &mut p.state,
                "code" => &mut p.code,
                "error" => &mut p.error,
                "iss" => &mut p.iss,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(v.into_owned());
            }
        }
        p
    }
}

/// The callback endpoint.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let p = CallbackParams::parse(query.as_deref().unwrap_or_default());
    let Some(state_value) = p
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return SignInFailure::StateUnknown
            .respond(
                &state,
                None,
                json!({ "step": "callback", "state": "missing" }),
            )
            .await;
    };
    let ttl = state.config.sign_in.state_ttl.whole_seconds().max(1) as u64;
    let pending = match pending::take(&state.redis, state_value, ttl).await {
        Ok(Taken::Found(p)) => *p,
        Ok(Taken::Replayed(team)) => {
            return SignInFailure::StateReplayed
                .respond(&state, Some(team), json!({ "step": "callback" }))
                .await;
        }
        Ok(Taken::Unknown) => {
            return SignInFailure::StateUnknown
                .respond(&state, None, json!({ "step": "callback" }))
                .await;
        }
        Err(e) => return SignInFailure::Store(e).page(&state),
    };
    let team_id = pending.team_id;
    crate::telemetry::record_team(team_id);
    match finish(&state, &headers, &p, &pending).await {
        Ok(location) => {
            let mut response = Redirect::to(&location).into_response();
            no_store(&mut response);
            response
        }
        Err((failure, detail)) => failure.respond(&state, Some(team_id), detail).await,
    }
}

type Refusal = (SignInFailure, Value);

fn refuse(f: SignInFailure) -> Refusal {
    (f, json!({ "step": "callback" }))
}

/// Everything after the state is taken; returns the hand-off URL.
async fn finish(
    state: &AppState,
    headers: &HeaderMap,
    p: &CallbackParams,
    pending: &PendingSignIn,
) -> Result<String, Refusal> {
    let now = state.config.clock.now().unix_timestamp();
    if pending.expires_at <= now {
        return Err(refuse(SignInFailure::StateUnknown));
    }
    let bound = cookie_value(headers, binding_cookie_name(state)).is_some_and(|v| {
        bool::from(
            TokenHash::of(v)
                .to_hex()
                .as_bytes()
                .ct_eq(pending.binding.as_bytes()),
        )
    });
    if !bound {
        return Err(refuse(SignInFailure::BrowserMismatch));
    }
    // RFC 9207 §2.4: before anything else of the response is used, even its error.
    if let Some(iss) = &p.iss {
        check_response_issuer(state, iss, pending).await?;
    }
    if let Some(error) = &p.error {
        return Err(refuse(SignInFailure::OktaError(oidc::sanitize_code(error))));
    }
    let Some(code) = p
        .code
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 2048)
    else {
        return Err(refuse(SignInFailure::OktaError("no_code".into())));
    };
    let settings = {
        let client = state
            .pg
            .get()
            .await
            .map_err(|e| refuse(StoreError::from(e).into()))?;
        settings::get(&client, pending.team_id)
            .await
            .map_err(|e| refuse(e.into()))?
            .ok_or_else(|| refuse(SignInFailure::NotConfigured))?
    };
    if !settings.sign_in_enabled {
        return Err(refuse(SignInFailure::Disabled));
    }
    if settings.issuer != pending.issuer || settings.client_id != pending.client_id {
        return Err(refuse(SignInFailure::SettingsChanged));
    }
    {
        let client = state
            .pg
            .get()
            .await
            .map_err(|e| refuse(StoreError::from(e).into()))?;
        settings::org_permitted(&client, &settings, state.config.development)
            .await
            .map_err(|e| refuse(e.into()))?
            .map_err(|e| refuse(SignInFailure::OrgNotAllowed(e)))?;
    }
    let okta = &state.okta;
    let discovery = okta
        .discovery
        .get(&okta.http, &settings.issuer)
        .await
        .map_err(|e| {
            tracing::warn!(team_id = %pending.team_id, error = %e, "Okta discovery failed");
            (
                SignInFailure::OktaUnreachable(e.to_string()),
                json!({ "step": "discovery" }),
            )
        })?;
    if p.iss.is_none() && discovery.iss_parameter_supported {
        return Err(refuse(SignInFailure::ResponseIssuerMissing));
    }
    let secret = settings
        .client_secret(&state.config.encryption_key)
        .map_err(|_| refuse(SignInFailure::SecretUnreadable))?;
    let redirect = redirect_uri(state);
    let tokens = oidc::exchange_code(
        &okta.http,
        &discovery,
        &settings.client_id,
        secret.expose(),
        code,
        &redirect,
        &pending.code_verifier,
    )
    .await
    .map_err(|e| {
        tracing::warn!(team_id = %pending.team_id, error = %e, "Okta code exchange failed");
        let detail = json!({ "step": "token" });
        match e {
            ExchangeError::Unreachable(_) => {
                (SignInFailure::OktaUnreachable(e.to_string()), detail)
            }
            e if e.is_invalid_client() => (SignInFailure::BadClientCredentials, detail),
            ExchangeError::Refused { error, .. } => (SignInFailure::TokenRefused(error), detail),
            ExchangeError::Invalid(what) => {
                (SignInFailure::TokenRefused(what.replace(' ', "_")), detail)
            }
        }
    })?;
    let check = IdTokenCheck {
        client_id: &settings.client_id,
        nonce: &pending.nonce,
        now,
        skew: state.config.sign_in.clock_skew.whole_seconds(),
    };
    let verified =
        oidc::verify_id_token(&okta.http, &okta.jwks, &discovery, &tokens.id_token, &check)
            .await
            .map_err(|e| {
                let detail = json!({ "step": "id_token" });
                match e {
                    VerifyError::Keys(k) => (SignInFailure::OktaUnreachable(k.to_string()), detail),
                    VerifyError::Jwt(j) => (SignInFailure::BadIdToken(j), detail),
                }
            })?;
    let sub = verified.str_claim("sub").unwrap_or_default().to_owned();
    let mut claims = verified.claims.clone();
    if claims.get("email").and_then(Value::as_str).is_none()
        && let (Some(endpoint), Some(access)) = (&discovery.userinfo_endpoint, &tokens.access_token)
    {
        let info = oidc::userinfo(&okta.http, endpoint, access)
            .await
            .map_err(|e| {
                let detail = json!({ "step": "userinfo" });
                match e {
                    ExchangeError::Unreachable(_) => {
                        (SignInFailure::OktaUnreachable(e.to_string()), detail)
                    }
                    _ => (SignInFailure::NoVerifiedEmail, detail),
                }
            })?;
        // OIDC Core §5.3.2: userinfo speaks for the ID token's subject only.
        if info.get("sub").and_then(Value::as_str) != Some(sub.as_str()) {
            return Err(refuse(SignInFailure::NoVerifiedEmail));
        }
        merge_profile(&mut claims, &info);
    }
    let identity = identity(&claims, sub, okta_operated(state, &settings.okta_domain))
        .ok_or_else(|| refuse(SignInFailure::NoVerifiedEmail))?;
    let signed_in = provision::resolve(state, &settings, &identity)
        .await
        .map_err(|f| {
            let mut detail =
                json!({ "step": "user", "email_domain": email_domain(&identity.email) });
            if let SignInFailure::SubjectMismatch { user_id } = &f {
                // Who was targeted and by which Okta subject: what the admin needs.
                detail["user_id"] = json!(user_id);
                detail["okta_sub"] = json!(identity.sub);
                detail["issuer"] = json!(settings.issuer);
            }
            (f, detail)
        })?;
    handoff::park(
        state,
        Handoff {
            team_id: settings.team_id,
            user_id: signed_in.user_id,
            user_epoch: signed_in.user_epoch,
            issuer: settings.issuer.clone(),
            id_token_sealed: String::new(),
            return_to: pending.return_to.clone(),
            expires_at: 0,
            app_binding: pending.app_binding.clone(),
            email: identity.email.clone(),
        },
        &tokens.id_token,
    )
    .await
    .map_err(|e| refuse(e.into()))
}

/// Refuses a response whose `iss` is not the issuer the state was made for (after the
/// settings' normal form: exact otherwise). The refusal is also recorded under each
/// workspace of this region whose org the `iss` names, so the admin of a workspace
/// whose users' codes are being steered elsewhere sees it in their activity log too.
async fn check_response_issuer(
    state: &AppState,
    iss: &str,
    pending: &PendingSignIn,
) -> Result<(), Refusal> {
    let normal = normalize_issuer(iss);
    if normal.as_deref() == Some(pending.issuer.as_str()) {
        return Ok(());
    }
    let shown: String = iss.chars().take(200).collect();
    let detail = json!({
        "step": "callback",
        "expected_issuer": pending.issuer,
        "iss": shown,
    });
    if let Some(named) = &normal
        && let Ok(client) = state.pg.get().await
        && let Ok(victims) = settings::by_issuer(&client, named).await
    {
        for v in victims.iter().filter(|v| v.team_id != pending.team_id) {
            let mut d = detail.clone();
            d["reason"] = json!(SignInFailure::ResponseIssuerMismatch.reason());
            d["state_workspace"] = json!(pending.team_id);
            failure::record(
                state,
                Some(v.team_id),
                "okta",
                AuditAction::OidcSignInFailed,
                None,
                d,
            )
            .await;
        }
    }
    Err((SignInFailure::ResponseIssuerMismatch, detail))
}

/// Copies the profile claims userinfo released into the ID token's claims.
fn merge_profile(claims: &mut Map<String, Value>, info: &Map<String, Value>) {
    for name in [
        "email",
        "email_verified",
        "given_name",
        "family_name",
        "name",
    ] {
        if let Some(v) = info.get(name) {
            claims.entry(name).or_insert_with(|| v.clone());
        }
    }
}

/// Whether the workspace's org is one Okta operates (its own domains; a loopback org
/// under the development switch, as the simulated org): only such an org may leave
/// `email_verified` out.
fn okta_operated(state: &AppState, okta_domain: &str) -> bool {
    OktaDomain::parse(okta_domain, state.config.development)
        .is_ok_and(|d| d.kind() != DomainKind::Custom)
}

/// The identity in the claims: a plausible email that Okta does not call unverified,
/// and a subject. An explicit `email_verified: false` is refused, and so is its absence
/// unless the org is Okta-operated (`okta_operated`); the email only finds an account
/// that no other Okta subject holds ([`provision`]).
fn identity(claims: &Map<String, Value>, sub: String, okta_operated: bool) -> Option<Identity> {
    if sub.is_empty() {
        return None;
    }
    let email = claims.get("email")?.as_str()?.trim();
    let plausible = email.len() <= 254 && crate::store::users::looks_like_email(email);
    let verified = match claims.get("email_verified") {
        None => okta_operated,
        Some(Value::Bool(true)) => true,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        Some(_) => false,
    };
    if !plausible || !verified {
        return None;
    }
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
    Some(Identity {
        email: email.to_owned(),
        sub,
        given_name: text("given_name"),
        family_name: text("family_name"),
        name: text("name"),
    })
}

/// The domain of an email, for audit details (never the whole address of someone who
/// could not sign in).
fn email_domain(email: &str) -> &str {
    email.rsplit_once('@').map_or("", |(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_needs_a_plausible_email_not_called_unverified() {
        let claims = |v: Value| v.as_object().cloned().unwrap();
        let ok = identity(
            &claims(json!({ "email": "jane@acme.test", "email_verified": true })),
            "00u1".into(),
            false,
        )
        .unwrap();
        assert_eq!(ok.email, "jane@acme.test");
        // Absent: accepted from an Okta-operated org only.
        let bare = claims(json!({ "email": "jane@acme.test" }));
        assert!(identity(&bare, "s".into(), true).is_some());
        assert!(identity(&bare, "s".into(), false).is_none());
        assert!(
            identity(
                &claims(json!({ "email": "jane@acme.test", "email_verified": "true" })),
                "s".into(),
                false
            )
            .is_some()
        );
        assert!(identity(&bare, String::new(), true).is_none(), "no subject");
        for bad in [
            json!({ "email": "jane@acme.test", "email_verified": false }),
            json!({ "email": "jane@acme.test", "email_verified": "false" }),
            json!({ "email": "not-an-email" }),
            json!({ "email": 42 }),
            json!({}),
        ] {
            assert!(
                identity(&claims(bad.clone()), "s".into(), true).is_none(),
                "{bad}"
            );
        }
        assert_eq!(email_domain("jane@acme.test"), "acme.test");
    }

    #[test]
    fn callback_parameters_take_their_first_value() {
        let p = CallbackParams::parse(
            "code=a&state=s&code=b&error=access_denied&iss=https%3A%2F%2Facme.okta.com&iss=x",
        );
        assert_eq!(p.code.as_deref(), Some("a"));
        assert_eq!(p.state.as_deref(), Some("s"));
        assert_eq!(p.error.as_deref(), Some("access_denied"));
        assert_eq!(p.iss.as_deref(), Some("https://acme.okta.com"));
        assert!(CallbackParams::parse("code=a&state=s").iss.is_none());
    }
}
