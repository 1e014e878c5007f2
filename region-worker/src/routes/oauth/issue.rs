//! Issuing a grant's token pair: an access token the SCIM API accepts as it is (kind
//! `scim`, bound to the workspace and scopes, short-lived) and a refresh token (kind
//! `rt`, rotated on every use, idle expiry), both recorded by hash only, naming the
//! grant so that revoking it stops them.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use shared::ids::TeamId;
use shared::scope::{self, Scope};
use shared::token::{self, TokenHash, TokenKind};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::no_store;
use crate::config::ScimOAuthConfig;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::pg::GenericClient;
use crate::store::tokens::{self, NewTokenRecord, TokenRecord};

/// The RFC 6749 §5.1 success body. Its `Debug` hides both tokens.
#[derive(Serialize)]
pub struct TokenResponse {
    /// The SCIM bearer token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The next refresh token (the presented one, if any, is now retired).
    pub refresh_token: String,
    /// The access token's scopes, space-separated.
    pub scope: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"[redacted]")
            .field("scope", &self.scope)
            .finish()
    }
}

impl IntoResponse for TokenResponse {
    fn into_response(self) -> Response {
        let mut response = Json(self).into_response();
        no_store(response.headers_mut());
        response
    }
}

/// A token pair recorded in a transaction, waiting for the commit.
#[derive(Debug)]
pub struct Issued {
    /// What the client receives.
    pub response: TokenResponse,
    /// The access token's hash and record, to prime Redis after the commit.
    access: (TokenHash, TokenRecord),
    /// The grant, for the hot entry.
    grant_id: Uuid,
}

impl Issued {
    /// Primes the access token's hot entry (after the commit; best effort).
    pub async fn prime(&self, state: &AppState) {
        let (hash, record) = &self.access;
        let created_by = format!("oauth:{}", self.grant_id);
        tokens::prime(
            &state.redis,
            &NewTokenRecord {
                hash: *hash,
                record: record.clone(),
                name: None,
                created_by: &created_by,
            },
            Some(self.grant_id),
        )
        .await;
    }
}

/// What a token pair is for.
#[derive(Debug)]
pub struct Pair<'a> {
    /// The workspace.
    pub team_id: TeamId,
    /// The grant issuing it.
    pub grant_id: Uuid,
    /// The access token's scopes (a refresh may narrow them).
    pub access_scopes: &'a [Scope],
    /// The refresh token's scopes: always the grant's (RFC 6749 §6).
    pub refresh_scopes: &'a [Scope],
    /// Now, by the worker's clock.
    pub now: OffsetDateTime,
}

/// Mints and records a token pair with `client` (the caller's transaction).
pub async fn issue(
    client: &impl GenericClient,
    state: &AppState,
    server: &ScimOAuthConfig,
    pair: &Pair<'_>,
) -> Result<Issued, StoreError> {
    let region = state.config.region_id();
    let access = token::mint(region, TokenKind::Scim);
    let refresh = token::mint(region, TokenKind::Refresh);
    let created_by = format!("oauth:{}", pair.grant_id);
    let access_record = TokenRecord {
        team_id: pair.team_id,
        kind: TokenKind::Scim,
        scopes: pair.access_scopes.to_vec(),
        user_id: None,
        user_epoch: 0,
        expires_at: Some((pair.now + server.access_token_ttl).unix_timestamp()),
    };
    tokens::insert_in(
        client,
        &NewTokenRecord {
            hash: access.hash,
            record: access_record.clone(),
            name: None,
            created_by: &created_by,
        },
        Some(pair.grant_id),
    )
    .await?;
    tokens::insert_in(
        client,
        &NewTokenRecord {
            hash: refresh.hash,
            record: TokenRecord {
                team_id: pair.team_id,
                kind: TokenKind::Refresh,
                scopes: pair.refresh_scopes.to_vec(),
                user_id: None,
                user_epoch: 0,
                expires_at: Some((pair.now + server.refresh_idle_ttl).unix_timestamp()),
            },
            name: None,
            created_by: &created_by,
        },
        Some(pair.grant_id),
    )
    .await?;
    Ok(Issued {
        response: TokenResponse {
            access_token: access.secret,
            token_type: "Bearer",
            expires_in: server.access_token_ttl.whole_seconds(),
            refresh_token: refresh.secret,
            scope: scope::join(pair.access_scopes),
        },
        access: (access.hash, access_record),
        grant_id: pair.grant_id,
    })
}
