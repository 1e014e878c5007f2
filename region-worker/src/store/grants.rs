//! SCIM OAuth grants: what a workspace admin approved for Okta, from the pending
//! authorization request to revocation.
//!
//! - A *pending request* (Redis, ~10 min) is an `/authorize` call whose client and
//!   redirect URI were valid, waiting for an admin to sign in and decide.
//! - Approval creates the *grant* (Postgres) and its *authorization code*: the code's
//!   binding lives in Redis for at most 60 s and is taken once (`GETDEL`); its hash stays
//!   on the grant, so a second redemption is recognised and revokes the grant.
//! - Redeeming the code *connects* the grant; its access and refresh tokens are rows of
//!   `tokens` naming the grant (see [`super::tokens`]).
//! - Revoking a grant is one write (`revoked_at`), published to Redis and numbered in
//!   the revocation journal by a trigger in the same transaction (V9,
//!   [`super::revocations`]): a Redis that loses the publication is caught up.
//!
//! Only hashes of codes and tokens are stored. Callers pass a transaction where the
//! change must commit with its audit event.

use crate::store::pg::GenericClient;
use crate::store::pg::Pool;
use serde::{Deserialize, Serialize};
use shared::ids::TeamId;
use shared::scope::Scope;
use shared::token::TokenHash;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::redis::Redis;
use super::tokens::{parse_scopes, scope_names};

/// An `/authorize` request whose client and redirect URI were accepted, waiting for an
/// admin's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The client that asked.
    pub client_id: String,
    /// Where the answer goes, exactly as the client sent it.
    pub redirect_uri: String,
    /// The scopes asked for (canonical order; stored by name).
    pub scopes: Vec<Scope>,
    /// The client's `state`, echoed on the redirect.
    pub state: Option<String>,
    /// The PKCE S256 challenge, if the client sent one.
    pub code_challenge: Option<String>,
}

/// What an authorization code is bound to, for its short life in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The grant the code connects.
    pub grant_id: Uuid,
    /// The workspace the admin approved for.
    pub team_id: TeamId,
    /// The client the code was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request (must be repeated at the token
    /// endpoint, RFC 6749 §4.1.3).
    pub redirect_uri: String,
    /// The approved scopes.
    pub scopes: Vec<Scope>,
    /// The PKCE S256 challenge, if any.
    pub code_challenge: Option<String>,
    /// Expiry, Unix seconds by the worker's clock (Redis's TTL is only a backstop).
    pub expires_at: i64,
}

fn pending_key(redis: &Redis, id: Uuid) -> String {
    redis.key(&format!("oauth:req:{id}"))
}

fn code_key(redis: &Redis, hash: &TokenHash) -> String {
    redis.key(&format!("oauth:code:{}", hash.to_hex()))
}

/// Stores a pending request for `ttl_secs`.
pub async fn save_pending(
    redis: &Redis,
    id: Uuid,
    request: &PendingRequest,
    ttl_secs: u64,
) -> Result<(), StoreError> {
    redis
        .set_json(pending_key(redis, id), request, ttl_secs)
        .await
}

/// Reads a pending request without consuming it (the consent page).
pub async fn load_pending(redis: &Redis, id: Uuid) -> Result<Option<PendingRequest>, StoreError> {
    redis.get_json(pending_key(redis, id)).await
}

/// Consumes a pending request: an approval or denial happens once.
pub async fn take_pending(redis: &Redis, id: Uuid) -> Result<Option<PendingRequest>, StoreError> {
    redis.take_json(pending_key(redis, id)).await
}

/// Stores an authorization code's binding under the code's hash for `ttl_secs`.
pub async fn save_code(
    redis: &Redis,
    hash: &TokenHash,
    code: &CodeRecord,
    ttl_secs: u64,
) -> Result<(), StoreError> {
    redis.set_json(code_key(redis, hash), code, ttl_secs).await
}

/// Takes an authorization code: the first caller gets its binding, every later one
/// `None`.
pub async fn take_code(redis: &Redis, hash: &TokenHash) -> Result<Option<CodeRecord>, StoreError> {
    redis.take_json(code_key(redis, hash)).await
}

/// A grant to record at approval.
#[derive(Debug)]
pub struct NewGrant<'a> {
    /// Its id.
    pub id: Uuid,
    /// The workspace.
    pub team_id: TeamId,
    /// The client.
    pub client_id: &'a str,
    /// The redirect URI the code goes to.
    pub redirect_uri: &'a str,
    /// The approved scopes.
    pub scopes: &'a [Scope],
    /// The approving admin.
    pub approved_by: Uuid,
    /// Their user name now, for the grants list.
    pub approved_by_name: &'a str,
    /// The hash of the code issued with it.
    pub code_hash: &'a TokenHash,
}

/// Records an approved grant (not yet connected).
pub async fn insert(client: &impl GenericClient, grant: &NewGrant<'_>) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO scim_oauth_grants
                 (id, team_id, client_id, redirect_uri, scopes, approved_by, approved_by_name, code_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &grant.id,
                &grant.team_id.as_uuid(),
                &grant.client_id,
                &grant.redirect_uri,
                &scope_names(grant.scopes),
                &grant.approved_by,
                &grant.approved_by_name,
                &grant.code_hash.0.as_slice(),
            ],
        )
        .await?;
    Ok(())
}

/// Connects a grant when its code is redeemed: succeeds once, and never for a revoked
/// grant.
pub async fn mark_redeemed(
    client: &impl GenericClient,
    grant_id: Uuid,
) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "UPDATE scim_oauth_grants SET code_redeemed_at = now()
              WHERE id = $1 AND code_redeemed_at IS NULL AND revoked_at IS NULL",
            &[&grant_id],
        )
        .await?;
    Ok(n == 1)
}

/// What became of an authorization code after its Redis entry is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeHistory {
    /// The grant it was issued with.
    pub grant_id: Uuid,
    /// The workspace.
    pub team_id: TeamId,
    /// Whether it was redeemed (so presenting it again is reuse).
    pub redeemed: bool,
    /// Whether the grant is already revoked.
    pub revoked: bool,
}

/// The grant a code hash was issued with, if any.
pub async fn by_code(
    client: &impl GenericClient,
    code_hash: &TokenHash,
) -> Result<Option<CodeHistory>, StoreError> {
    let row = client
        .query_opt(
            "SELECT id, team_id, code_redeemed_at IS NOT NULL, revoked_at IS NOT NULL
               FROM scim_oauth_grants WHERE code_hash = $1",
            &[&code_hash.0.as_slice()],
        )
        .await?;
    Ok(row.map(|r| CodeHistory {
        grant_id: r.get(0),
        team_id: TeamId::from(r.get::<_, Uuid>(1)),
        redeemed: r.get(2),
        revoked: r.get(3),
    }))
}

/// A refresh token as found at the token endpoint, with its grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRow {
    /// The grant that issued it.
    pub grant_id: Uuid,
    /// The workspace.
    pub team_id: TeamId,
    /// The scopes of the grant it carries.
    pub scopes: Vec<Scope>,
    /// Idle expiry, Unix seconds.
    pub expires_at: Option<i64>,
    /// Whether it was already rotated (or revoked): presenting it again is reuse.
    pub retired: bool,
    /// The client of its grant.
    pub client_id: String,
    /// Whether its grant is revoked.
    pub grant_revoked: bool,
}

/// Finds a refresh token and locks its row until the transaction ends, so that two
/// concurrent uses of one token are serialised: the second sees it retired.
pub async fn lock_refresh_token(
    client: &impl GenericClient,
    hash: &TokenHash,
) -> Result<Option<RefreshTokenRow>, StoreError> {
    let row = client
        .query_opt(
            "SELECT t.grant_id, t.team_id, t.scopes, extract(epoch FROM t.expires_at)::bigint,
                    t.revoked_at IS NOT NULL, g.client_id, g.revoked_at IS NOT NULL
               FROM tokens t JOIN scim_oauth_grants g ON g.id = t.grant_id
              WHERE t.hash = $1 AND t.kind = $2
                FOR UPDATE OF t",
            &[
                &hash.0.as_slice(),
                &shared::token::TokenKind::Refresh.code(),
            ],
        )
        .await?;
    row.map(|r| {
        Ok(RefreshTokenRow {
            grant_id: r.get(0),
            team_id: TeamId::from(r.get::<_, Uuid>(1)),
            scopes: parse_scopes(&r.get::<_, Vec<String>>(2))?,
            expires_at: r.get(3),
            retired: r.get(4),
            client_id: r.get(5),
            grant_revoked: r.get(6),
        })
    })
    .transpose()
}

/// Retires a refresh token that is being rotated.
pub async fn retire_refresh_token(
    client: &impl GenericClient,
    hash: &TokenHash,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE tokens SET revoked_at = now(), last_used_at = now()
              WHERE hash = $1 AND revoked_at IS NULL",
            &[&hash.0.as_slice()],
        )
        .await?;
    Ok(())
}

/// Notes that a grant's refresh token was rotated now.
pub async fn touch_refreshed(
    client: &impl GenericClient,
    grant_id: Uuid,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE scim_oauth_grants SET last_refreshed_at = now() WHERE id = $1",
            &[&grant_id],
        )
        .await?;
    Ok(())
}

/// Why a grant was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// An admin pressed Disconnect.
    Disconnected,
    /// Its authorization code was presented a second time (RFC 6749 §4.1.2).
    CodeReuse,
    /// A refresh token it had already rotated was presented again.
    RefreshTokenReuse,
}

impl RevokeReason {
    /// The stored and audited name.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Disconnected => "disconnected",
            RevokeReason::CodeReuse => "code_reuse",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
        }
    }
}

/// What revoking a grant found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// This call revoked the grant of this workspace.
    Revoked(TeamId),
    /// The grant was already revoked (publishing the flag again is harmless and heals
    /// a publication that failed after an earlier commit).
    AlreadyRevoked(TeamId),
    /// No such grant (in that workspace).
    NotFound,
}

/// Revokes a grant (of `team_id` when given): one write that every token of the grant
/// honours once [`super::tokens::publish_grant_revoked`] has run after the commit.
pub async fn revoke(
    client: &impl GenericClient,
    grant_id: Uuid,
    team_id: Option<TeamId>,
    reason: RevokeReason,
) -> Result<Revocation, StoreError> {
    let row = client
        .query_opt(
            "SELECT team_id, revoked_at IS NOT NULL FROM scim_oauth_grants
              WHERE id = $1 AND ($2::uuid IS NULL OR team_id = $2)
                FOR UPDATE",
            &[&grant_id, &team_id.map(|t| t.as_uuid())],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Revocation::NotFound);
    };
    let team = TeamId::from(row.get::<_, Uuid>(0));
    if row.get::<_, bool>(1) {
        return Ok(Revocation::AlreadyRevoked(team));
    }
    client
        .execute(
            "UPDATE scim_oauth_grants SET revoked_at = now(), revoked_reason = $2 WHERE id = $1",
            &[&grant_id, &reason.as_str()],
        )
        .await?;
    Ok(Revocation::Revoked(team))
}

/// A connected grant, as the Integrations page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSummary {
    /// Its id (what Disconnect names).
    pub id: Uuid,
    /// The client it was issued to.
    pub client_id: String,
    /// Where its code went (shows which Okta cell asked).
    pub redirect_uri: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
    /// The admin who approved it, by user name at the time.
    pub approved_by_name: String,
    /// When it was approved.
    pub approved_at: OffsetDateTime,
    /// When Okta redeemed its code.
    pub connected_at: Option<OffsetDateTime>,
    /// When Okta last rotated its refresh token.
    pub last_refreshed_at: Option<OffsetDateTime>,
    /// When one of its access tokens was last used at SCIM (to the minute).
    pub last_used_at: Option<OffsetDateTime>,
}

/// The workspace's connected grants (redeemed, not revoked), newest first.
pub async fn list_connected(
    client: &impl GenericClient,
    team_id: TeamId,
) -> Result<Vec<GrantSummary>, StoreError> {
    let rows = client
        .query(
            "SELECT id, client_id, redirect_uri, scopes, approved_by_name, approved_at,
                    code_redeemed_at, last_refreshed_at, last_used_at
               FROM scim_oauth_grants
              WHERE team_id = $1 AND revoked_at IS NULL AND code_redeemed_at IS NOT NULL
              ORDER BY approved_at DESC, id",
            &[&team_id.as_uuid()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(GrantSummary {
                id: r.get(0),
                client_id: r.get(1),
                redirect_uri: r.get(2),
                scopes: parse_scopes(&r.get::<_, Vec<String>>(3))?,
                approved_by_name: r.get(4),
                approved_at: r.get(5),
                connected_at: r.get(6),
                last_refreshed_at: r.get(7),
                last_used_at: r.get(8),
            })
        })
        .collect()
}

/// Who is deciding, for the consent page and the grant record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// The workspace's display name.
    pub workspace_name: String,
    /// The user's user name (an email).
    pub user_name: String,
    /// Whether the user holds the workspace's Admin role and is active.
    pub is_admin: bool,
}

/// The signed-in user's workspace, name and admin status; `None` when the user no
/// longer exists.
pub async fn approver(
    pool: &Pool,
    team_id: TeamId,
    user_id: Uuid,
) -> Result<Option<Approver>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT w.name, u.user_name, u.active
               FROM users u JOIN workspaces w USING (team_id)
              WHERE u.team_id = $1 AND u.id = $2",
            &[&team_id.as_uuid(), &user_id],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let active: bool = row.get(2);
    let is_admin = active && super::roles::user_has(&client, team_id, user_id, "admin").await?;
    Ok(Some(Approver {
        workspace_name: row.get(0),
        user_name: row.get(1),
        is_admin,
    }))
}
