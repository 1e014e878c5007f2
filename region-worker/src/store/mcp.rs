//! MCP clients connecting with OAuth (issue 17): dynamically registered clients, the
//! grants users approve for them, their codes and refresh tokens.
//!
//! - A *pending request* (Redis, ~10 min) is an `/authorize` call whose client and
//!   redirect URI were valid, waiting for the user to sign in and decide.
//! - Approval creates the *grant* (Postgres) and its *authorization code*, whose binding
//!   lives in Redis for at most a minute and is taken once (`GETDEL`); the code's hash
//!   stays on the grant, so a second redemption is recognised and ends the grant.
//! - Access tokens are personal MCP tokens (`tokens` rows with the user and the
//!   approval's revocation epoch) naming the grant, so Universal Logout and SCIM
//!   deactivation end them like any personal token, and ending the grant revokes them
//!   one by one (a grant holds a handful of live ones: they live an hour).
//! - Refresh tokens live only here (`mcp_refresh_tokens`), checked under a row lock at
//!   the token endpoint, never from Redis.
//!
//! Only hashes of codes and tokens are stored.

use serde::{Deserialize, Serialize};
use shared::ids::TeamId;
use shared::token::{TokenHash, TokenKind};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::redis::Redis;
use super::tokens::{self, NewTokenRecord, TokenRecord};
use crate::store::pg::{GenericClient, Pool};

/// A client as the authorization server knows it, from its metadata document or its
/// registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The client id (a metadata document's URL, or the id registration gave).
    pub client_id: String,
    /// The name it gives itself: unverified, shown as such.
    pub client_name: String,
    /// The redirect URIs it may use.
    pub redirect_uris: Vec<String>,
}

/// An `/authorize` request whose client and redirect URI were accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRequest {
    /// The client.
    pub client_id: String,
    /// Its name, for the consent page.
    pub client_name: String,
    /// Where the answer goes, exactly as the client sent it.
    pub redirect_uri: String,
    /// The client's `state`, echoed on the redirect.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The RFC 8707 resource.
    pub resource: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
}

/// What an authorization code is bound to, for its short life in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// The grant the code connects.
    pub grant_id: Uuid,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the authorization request.
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The resource approved.
    pub resource: String,
    /// Expiry, Unix seconds by the worker's clock (Redis's TTL is only a backstop).
    pub expires_at: i64,
}

fn pending_key(redis: &Redis, id: Uuid) -> String {
    redis.key(&format!("mcp:req:{id}"))
}

fn code_key(redis: &Redis, hash: &TokenHash) -> String {
    redis.key(&format!("mcp:code:{}", hash.to_hex()))
}

fn document_key(redis: &Redis, client_id: &str) -> String {
    redis.key(&format!("mcp:cimd:{}", TokenHash::of(client_id).to_hex()))
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

/// Consumes a pending request: a decision happens once.
pub async fn take_pending(redis: &Redis, id: Uuid) -> Result<Option<PendingRequest>, StoreError> {
    redis.take_json(pending_key(redis, id)).await
}

/// Stores a code's binding under the code's hash for `ttl_secs`.
pub async fn save_code(
    redis: &Redis,
    hash: &TokenHash,
    code: &CodeRecord,
    ttl_secs: u64,
) -> Result<(), StoreError> {
    redis.set_json(code_key(redis, hash), code, ttl_secs).await
}

/// Takes a code: the first caller gets its binding, every later one `None`.
pub async fn take_code(redis: &Redis, hash: &TokenHash) -> Result<Option<CodeRecord>, StoreError> {
    redis.take_json(code_key(redis, hash)).await
}

/// A client metadata document fetched earlier and still fresh.
pub async fn cached_document(
    redis: &Redis,
    client_id: &str,
) -> Result<Option<ClientInfo>, StoreError> {
    redis.get_json(document_key(redis, client_id)).await
}

/// Caches a client metadata document for `ttl_secs`.
pub async fn cache_document(
    redis: &Redis,
    client: &ClientInfo,
    ttl_secs: u64,
) -> Result<(), StoreError> {
    redis
        .set_json(document_key(redis, &client.client_id), client, ttl_secs)
        .await
}

/// Records a dynamically registered client.
pub async fn register(pool: &Pool, client: &ClientInfo) -> Result<(), StoreError> {
    pool.get()
        .await?
        .execute(
            "INSERT INTO mcp_clients (client_id, client_name, redirect_uris) VALUES ($1, $2, $3)",
            &[
                &client.client_id,
                &client.client_name,
                &client.redirect_uris,
            ],
        )
        .await?;
    Ok(())
}

/// A registered client, its use noted (what keeps it from being pruned).
pub async fn registered(pool: &Pool, client_id: &str) -> Result<Option<ClientInfo>, StoreError> {
    let row = pool
        .get()
        .await?
        .query_opt(
            "UPDATE mcp_clients SET last_used_at = now() WHERE client_id = $1
             RETURNING client_name, redirect_uris",
            &[&client_id],
        )
        .await?;
    Ok(row.map(|r| ClientInfo {
        client_id: client_id.to_owned(),
        client_name: r.get(0),
        redirect_uris: r.get(1),
    }))
}

/// Deletes registered clients unused since `cutoff`; returns how many. Their grants
/// stay until the user disconnects them or they are refused for their client: a
/// refresh names the client, which must still exist.
pub async fn prune_clients(pool: &Pool, cutoff: OffsetDateTime) -> Result<u64, StoreError> {
    Ok(pool
        .get()
        .await?
        .execute(
            "DELETE FROM mcp_clients WHERE last_used_at < $1",
            &[&cutoff],
        )
        .await?)
}

/// A grant to record at approval.
#[derive(Debug)]
pub struct NewGrant<'a> {
    /// Its id.
    pub id: Uuid,
    /// The workspace.
    pub team_id: TeamId,
    /// The approving user.
    pub user_id: Uuid,
    /// The user's revocation epoch of the session that approved.
    pub user_epoch: i64,
    /// The pending request approved.
    pub request: &'a PendingRequest,
    /// The hash of the code issued with it.
    pub code_hash: &'a TokenHash,
}

/// Records an approved grant (not yet connected).
pub async fn insert_grant(
    client: &impl GenericClient,
    grant: &NewGrant<'_>,
) -> Result<(), StoreError> {
    let r = grant.request;
    client
        .execute(
            "INSERT INTO mcp_grants (id, team_id, user_id, user_epoch, client_id, client_name,
                                     redirect_uri, resource, scopes, code_hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &grant.id,
                &grant.team_id.as_uuid(),
                &grant.user_id,
                &grant.user_epoch,
                &r.client_id,
                &r.client_name,
                &r.redirect_uri,
                &r.resource,
                &r.scopes,
                &grant.code_hash.0.as_slice(),
            ],
        )
        .await?;
    Ok(())
}

/// A grant as the token endpoint needs it, locked until the transaction ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// Its id.
    pub id: Uuid,
    /// The workspace.
    pub team_id: TeamId,
    /// The user.
    pub user_id: Uuid,
    /// The epoch its tokens are issued under.
    pub user_epoch: i64,
    /// The client.
    pub client_id: String,
    /// The resource (its tokens' audience).
    pub resource: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Whether the user is still active under the grant's epoch: no Universal Logout or
    /// deactivation since the approval.
    pub user_current: bool,
    /// Whether its code was redeemed.
    pub redeemed: bool,
    /// Whether it is revoked.
    pub revoked: bool,
}

const GRANT_COLUMNS: &str = "g.id, g.team_id, g.user_id, g.user_epoch, g.client_id, g.resource,
     g.scopes, coalesce(u.active AND u.token_epoch <= g.user_epoch, false),
     g.code_redeemed_at IS NOT NULL, g.revoked_at IS NOT NULL";

fn grant_row(r: &tokio_postgres::Row) -> GrantRow {
    GrantRow {
        id: r.get(0),
        team_id: TeamId::from(r.get::<_, Uuid>(1)),
        user_id: r.get(2),
        user_epoch: r.get(3),
        client_id: r.get(4),
        resource: r.get(5),
        scopes: r.get(6),
        user_current: r.get(7),
        redeemed: r.get(8),
        revoked: r.get(9),
    }
}

/// The grant `id`, locked.
pub async fn lock_grant(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<GrantRow>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM mcp_grants g
                   LEFT JOIN users u ON u.team_id = g.team_id AND u.id = g.user_id
                  WHERE g.id = $1 FOR UPDATE OF g"
            ),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(grant_row))
}

/// The grant a code hash was issued with, if any (after the code left Redis).
pub async fn grant_by_code(
    client: &impl GenericClient,
    code_hash: &TokenHash,
) -> Result<Option<GrantRow>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {GRANT_COLUMNS} FROM mcp_grants g
                   LEFT JOIN users u ON u.team_id = g.team_id AND u.id = g.user_id
                  WHERE g.code_hash = $1 FOR UPDATE OF g"
            ),
            &[&code_hash.0.as_slice()],
        )
        .await?;
    Ok(row.as_ref().map(grant_row))
}

/// Connects a grant when its code is redeemed.
pub async fn mark_redeemed(client: &impl GenericClient, id: Uuid) -> Result<bool, StoreError> {
    let n = client
        .execute(
            "UPDATE mcp_grants SET code_redeemed_at = now()
              WHERE id = $1 AND code_redeemed_at IS NULL AND revoked_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// A refresh token found at the token endpoint, with its grant; both rows locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRow {
    /// Its grant.
    pub grant: GrantRow,
    /// Idle expiry, Unix seconds.
    pub expires_at: i64,
    /// Whether it was already rotated: presenting it again is reuse.
    pub retired: bool,
}

/// Finds a refresh token and locks it and its grant, so that two concurrent uses of one
/// token are serialised: the second sees it retired.
pub async fn lock_refresh(
    client: &impl GenericClient,
    hash: &TokenHash,
) -> Result<Option<RefreshRow>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {GRANT_COLUMNS}, extract(epoch FROM r.expires_at)::bigint,
                        r.retired_at IS NOT NULL
                   FROM mcp_refresh_tokens r JOIN mcp_grants g ON g.id = r.grant_id
                   LEFT JOIN users u ON u.team_id = g.team_id AND u.id = g.user_id
                  WHERE r.hash = $1 FOR UPDATE OF r, g"
            ),
            &[&hash.0.as_slice()],
        )
        .await?;
    Ok(row.map(|r| RefreshRow {
        grant: grant_row(&r),
        expires_at: r.get(10),
        retired: r.get(11),
    }))
}

/// Retires a refresh token being rotated.
pub async fn retire_refresh(
    client: &impl GenericClient,
    hash: &TokenHash,
) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE mcp_refresh_tokens SET retired_at = now() WHERE hash = $1 AND retired_at IS NULL",
            &[&hash.0.as_slice()],
        )
        .await?;
    client
        .execute(
            "UPDATE mcp_grants SET last_refreshed_at = now()
              WHERE id = (SELECT grant_id FROM mcp_refresh_tokens WHERE hash = $1)",
            &[&hash.0.as_slice()],
        )
        .await?;
    Ok(())
}

/// A token pair just minted and recorded; the access token's hot copy is primed with
/// [`Minted::prime`] after the commit.
pub struct Minted {
    /// The access token (`clk_{region}_mcp_…`).
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    access_hash: TokenHash,
    record: TokenRecord,
    grant_id: Uuid,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("grant_id", &self.grant_id)
            .finish_non_exhaustive()
    }
}

impl Minted {
    /// Primes the access token's hot copy (best effort: a check falls back to Postgres).
    pub async fn prime(&self, redis: &Redis) {
        let created_by = format!("mcp-grant:{}", self.grant_id);
        tokens::prime(
            redis,
            &NewTokenRecord {
                hash: self.access_hash,
                record: self.record.clone(),
                name: None,
                created_by: &created_by,
            },
            None,
        )
        .await;
    }
}

/// Mints and records a token pair for `grant` with `client` (the caller's transaction).
pub async fn mint_pair(
    client: &impl GenericClient,
    region: &shared::ids::RegionId,
    grant: &GrantRow,
    access_expires_at: OffsetDateTime,
    refresh_expires_at: OffsetDateTime,
) -> Result<Minted, StoreError> {
    let access = shared::token::mint(region, TokenKind::Mcp);
    let refresh = shared::token::mint(region, TokenKind::Refresh);
    let created_by = format!("mcp-grant:{}", grant.id);
    client
        .execute(
            "INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, created_by,
                                 expires_at, mcp_grant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &access.hash.0.as_slice(),
                &grant.team_id.as_uuid(),
                &TokenKind::Mcp.code(),
                &grant.user_id,
                &grant.user_epoch,
                &created_by,
                &access_expires_at,
                &grant.id,
            ],
        )
        .await?;
    client
        .execute(
            "INSERT INTO mcp_refresh_tokens (hash, grant_id, expires_at) VALUES ($1, $2, $3)",
            &[&refresh.hash.0.as_slice(), &grant.id, &refresh_expires_at],
        )
        .await?;
    Ok(Minted {
        access_token: access.secret,
        refresh_token: refresh.secret,
        access_hash: access.hash,
        record: TokenRecord {
            team_id: grant.team_id,
            kind: TokenKind::Mcp,
            scopes: Vec::new(),
            user_id: Some(grant.user_id),
            user_epoch: grant.user_epoch,
            expires_at: Some(access_expires_at.unix_timestamp()),
        },
        grant_id: grant.id,
    })
}

/// Why a grant ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The user pressed Disconnect on `/tokens`.
    Disconnected,
    /// Its code was presented a second time.
    CodeReuse,
    /// A refresh token it had already rotated was presented again.
    RefreshTokenReuse,
    /// The client revoked its refresh token (RFC 7009).
    RevokedByClient,
}

impl EndReason {
    /// The stored and audited name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::CodeReuse => "code_reuse",
            Self::RefreshTokenReuse => "refresh_token_reuse",
            Self::RevokedByClient => "revoked_by_client",
        }
    }
}

/// Ends grant `id` (of the user `owner` when given) with `client`, a transaction: marks
/// it revoked and revokes its live access tokens, publishing their tombstones before
/// the caller commits (so no check accepts them once this returns). `None` when there
/// is no such live grant.
pub async fn end_grant(
    client: &impl GenericClient,
    redis: &Redis,
    id: Uuid,
    owner: Option<(TeamId, Uuid)>,
    reason: EndReason,
) -> Result<Option<TeamId>, StoreError> {
    let row = client
        .query_opt(
            "UPDATE mcp_grants SET revoked_at = now(), revoked_reason = $2
              WHERE id = $1 AND revoked_at IS NULL
                AND ($3::uuid IS NULL OR (team_id = $3 AND user_id = $4))
             RETURNING team_id",
            &[
                &id,
                &reason.as_str(),
                &owner.map(|o| o.0.as_uuid()),
                &owner.map(|o| o.1),
            ],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let hashes = client
        .query(
            "UPDATE tokens SET revoked_at = now()
              WHERE mcp_grant_id = $1 AND revoked_at IS NULL
             RETURNING hash",
            &[&id],
        )
        .await?;
    for h in hashes {
        let bytes: &[u8] = h.get(0);
        if let Ok(hash) = <[u8; 32]>::try_from(bytes) {
            tokens::publish_revoked(redis, &TokenHash(hash)).await?;
        }
    }
    Ok(Some(TeamId::from(row.get::<_, Uuid>(0))))
}

/// The access token `hash` if it belongs to an MCP grant of `client_id`; revoked
/// (RFC 7009) by the caller.
pub async fn access_token_of_client(
    client: &impl GenericClient,
    hash: &TokenHash,
    client_id: &str,
) -> Result<bool, StoreError> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM tokens t JOIN mcp_grants g ON g.id = t.mcp_grant_id
              WHERE t.hash = $1 AND g.client_id = $2",
            &[&hash.0.as_slice(), &client_id],
        )
        .await?
        .is_some())
}

/// A connected app, as `/tokens` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedApp {
    /// The grant's id (what Disconnect names).
    pub id: Uuid,
    /// The client's name (unverified).
    pub client_name: String,
    /// The client's id.
    pub client_id: String,
    /// Where its codes went.
    pub redirect_uri: String,
    /// When the client first used the grant (redeemed its code).
    pub first_used_at: Option<OffsetDateTime>,
    /// When one of its tokens was last used or refreshed (to the minute).
    pub last_used_at: Option<OffsetDateTime>,
}

/// The user's live, connected grants, newest first. A grant from before the user's
/// last Universal Logout is over (its tokens are refused) and not listed.
pub async fn connected_apps(
    client: &impl GenericClient,
    team_id: TeamId,
    user_id: Uuid,
) -> Result<Vec<ConnectedApp>, StoreError> {
    let rows = client
        .query(
            "SELECT g.id, g.client_name, g.client_id, g.redirect_uri, g.code_redeemed_at,
                    greatest(g.last_refreshed_at,
                             (SELECT max(t.last_used_at) FROM tokens t WHERE t.mcp_grant_id = g.id))
               FROM mcp_grants g JOIN users u ON u.team_id = g.team_id AND u.id = g.user_id
              WHERE g.team_id = $1 AND g.user_id = $2 AND g.revoked_at IS NULL
                AND g.code_redeemed_at IS NOT NULL AND u.token_epoch <= g.user_epoch
              ORDER BY g.approved_at DESC, g.id
              LIMIT 200",
            &[&team_id.as_uuid(), &user_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ConnectedApp {
            id: r.get(0),
            client_name: r.get(1),
            client_id: r.get(2),
            redirect_uri: r.get(3),
            first_used_at: r.get(4),
            last_used_at: r.get(5),
        })
        .collect())
}
