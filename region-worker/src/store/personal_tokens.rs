//! Personal API and MCP tokens, and revoking everything a user holds.
//!
//! A personal token is a row of `tokens` (hash only) with a public `id` (V6) by which
//! its owner lists and revokes it, and a hot entry in Redis like every token. It is
//! checked by [`tokens::check_personal_at`] (token entry and user epoch read from Redis
//! together once the worker knows the token's owner, Postgres when Redis lacks either
//! or is behind on revocations). Every
//! revocation here (a token's `revoked_at`, a user's epoch) is also numbered in the
//! revocation journal by a trigger in the same transaction (V9,
//! [`super::revocations`]), so a Redis that later goes back in time cannot undo it.
//!
//! - A new token carries the revocation epoch of the credential that authenticated its
//!   creation, and is only recorded while the user still has that epoch: a creation
//!   racing a Universal Logout yields a token that is already dead, never one that
//!   outlives the logout.
//! - "Last used" is claimed in Redis by the check itself, at most once per
//!   [`LAST_USED_RESOLUTION_SECS`] per token, and only then written to Postgres, off the
//!   request path ([`record_use`]). Lists therefore show the last use to the minute,
//!   and a busy token costs one Postgres write a minute, not one per request.
//! - [`revoke_users`] ends every credential of users at once: one `UPDATE` of their
//!   epochs and one Redis write each, whatever the number of tokens and sessions.

use serde_json::json;
use shared::ids::TeamId;
use shared::token::{self, TokenHash, TokenKind};
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, AuditAction, AuditEvent};
use super::redis::Redis;
use super::tokens::{self, NewTokenRecord, TokenRecord};
use crate::store::pg::{GenericClient, Pool};

/// How often, at most, a token's last use is written to Postgres.
pub const LAST_USED_RESOLUTION_SECS: i64 = 60;

/// The most live personal tokens one user may hold: enough for any automation, and a
/// bound on what one account can make the stores keep.
pub const MAX_LIVE_TOKENS_PER_USER: i64 = 10_000;

/// The longest and shortest lifetimes a personal token may be given, in days.
pub const LIFETIME_DAYS: std::ops::RangeInclusive<i64> = 1..=366;

/// The kinds of token a user holds: API tokens for the product's API, MCP tokens for
/// its MCP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonalKind {
    /// `clk_{region}_api_…`.
    Api,
    /// `clk_{region}_mcp_…`.
    Mcp,
}

impl PersonalKind {
    /// Both kinds, in the order pages list them.
    pub const ALL: [PersonalKind; 2] = [PersonalKind::Api, PersonalKind::Mcp];

    /// Parses `api` or `mcp`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "api" => Some(Self::Api),
            "mcp" => Some(Self::Mcp),
            _ => None,
        }
    }

    /// The personal kind a token kind is, if it is one (sessions, SCIM and one-time
    /// codes are not).
    pub fn of(kind: TokenKind) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.token_kind() == kind)
    }

    /// The token kind.
    pub fn token_kind(self) -> TokenKind {
        match self {
            Self::Api => TokenKind::Api,
            Self::Mcp => TokenKind::Mcp,
        }
    }

    /// The short code (`api`, `mcp`).
    pub fn code(self) -> &'static str {
        self.token_kind().code()
    }

    /// In words, for pages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Api => "API token",
            Self::Mcp => "MCP token",
        }
    }
}

/// The signed-in user a request acts for, with the revocation epoch of the credential
/// that authenticated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The workspace.
    pub team_id: TeamId,
    /// The user.
    pub user_id: Uuid,
    /// The epoch the authenticating session or token was issued under.
    pub epoch: i64,
}

impl Owner {
    /// The owner a checked personal credential names, if it names a user.
    pub fn of(record: &TokenRecord) -> Option<Self> {
        Some(Self {
            team_id: record.team_id,
            user_id: record.user_id?,
            epoch: record.user_epoch,
        })
    }

    /// The audit actor: `user:<id>`.
    pub fn actor(&self) -> String {
        format!("user:{}", self.user_id)
    }
}

/// A token as its owner sees it in lists (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSummary {
    /// Its public id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: PersonalKind,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it was last used (to the minute), if ever.
    pub last_used_at: Option<OffsetDateTime>,
    /// When it expires.
    pub expires_at: Option<OffsetDateTime>,
}

/// A token just created: the secret, shown once, and its summary.
pub struct CreatedToken {
    /// The token text; never stored, never logged.
    pub secret: String,
    /// What lists show.
    pub summary: TokenSummary,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("secret", &"[redacted]")
            .field("summary", &self.summary)
            .finish()
    }
}

/// What creating a token came to.
#[derive(Debug)]
pub enum Creation {
    /// Recorded and primed.
    Created(CreatedToken),
    /// The user is gone, deactivated, or was revoked since the authenticating
    /// credential was issued: the request is no longer authenticated.
    Stale,
    /// The user already holds [`MAX_LIVE_TOKENS_PER_USER`] live tokens.
    TooMany,
}

/// What to create.
#[derive(Debug)]
pub struct NewToken<'a> {
    /// For whom.
    pub owner: Owner,
    /// Which kind.
    pub kind: PersonalKind,
    /// Its name (validated by the caller with [`valid_name`]).
    pub name: &'a str,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// Now, by the worker's clock.
    pub now: OffsetDateTime,
}

/// A name's trimmed form if it is acceptable: 1 to 100 characters, no control
/// characters.
pub fn valid_name(name: &str) -> Option<&str> {
    let name = name.trim();
    let ok = !name.is_empty() && name.chars().count() <= 100 && !name.chars().any(char::is_control);
    ok.then_some(name)
}

const SUMMARY_COLUMNS: &str =
    "t.id, t.kind, coalesce(t.name, ''), t.created_at, t.last_used_at, t.expires_at";

fn summary(row: &tokio_postgres::Row) -> Option<TokenSummary> {
    Some(TokenSummary {
        id: row.get(0),
        kind: PersonalKind::parse(row.get::<_, &str>(1))?,
        name: row.get(2),
        created_at: row.get(3),
        last_used_at: row.get(4),
        expires_at: row.get(5),
    })
}

/// Creates a token: records it (with an audit event) while the owner still has the
/// authenticating epoch and fewer than [`MAX_LIVE_TOKENS_PER_USER`] live tokens, then
/// primes Redis.
pub async fn create(
    pool: &Pool,
    redis: &Redis,
    region: &shared::ids::RegionId,
    new: &NewToken<'_>,
) -> Result<Creation, StoreError> {
    let owner = new.owner;
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    // FOR SHARE waits for (and is waited on by) a concurrent epoch bump, so the epoch
    // read here is the one the token is recorded under.
    let user = tx
        .query_opt(
            "SELECT token_epoch, active FROM users WHERE team_id = $1 AND id = $2 FOR SHARE",
            &[&owner.team_id.as_uuid(), &owner.user_id],
        )
        .await?;
    match user {
        Some(row) if row.get::<_, bool>(1) && row.get::<_, i64>(0) == owner.epoch => {}
        _ => return Ok(Creation::Stale),
    }
    let live: i64 = tx
        .query_one(
            "SELECT count(*) FROM tokens
              WHERE team_id = $1 AND user_id = $2 AND id IS NOT NULL AND revoked_at IS NULL
                AND (expires_at IS NULL OR expires_at > $3) AND user_epoch >= $4",
            &[
                &owner.team_id.as_uuid(),
                &owner.user_id,
                &new.now,
                &owner.epoch,
            ],
        )
        .await?
        .get(0);
    if live >= MAX_LIVE_TOKENS_PER_USER {
        return Ok(Creation::TooMany);
    }
    let minted = token::mint(region, new.kind.token_kind());
    let id = Uuid::now_v7();
    let actor = owner.actor();
    let row = tx
        .query_one(
            "INSERT INTO tokens (hash, team_id, kind, user_id, user_epoch, name, created_by,
                                 created_at, expires_at, id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING created_at",
            &[
                &minted.hash.0.as_slice(),
                &owner.team_id.as_uuid(),
                &new.kind.code(),
                &owner.user_id,
                &owner.epoch,
                &new.name,
                &actor,
                &new.now,
                &new.expires_at,
                &id,
            ],
        )
        .await?;
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(owner.team_id),
            actor: &actor,
            action: AuditAction::TokenCreated,
            target: Some(&id.to_string()),
            detail: json!({ "kind": new.kind.code(), "name": new.name, "expires_at": new.expires_at.unix_timestamp() }),
        },
    )
    .await?;
    tx.commit().await?;
    let record = TokenRecord {
        team_id: owner.team_id,
        kind: new.kind.token_kind(),
        scopes: Vec::new(),
        user_id: Some(owner.user_id),
        user_epoch: owner.epoch,
        expires_at: Some(new.expires_at.unix_timestamp()),
    };
    tokens::prime(
        redis,
        &NewTokenRecord {
            hash: minted.hash,
            record,
            name: Some(new.name),
            created_by: &actor,
        },
        None,
    )
    .await;
    Ok(Creation::Created(CreatedToken {
        secret: minted.secret,
        summary: TokenSummary {
            id,
            name: new.name.to_owned(),
            kind: new.kind,
            created_at: row.get(0),
            last_used_at: None,
            expires_at: Some(new.expires_at),
        },
    }))
}

/// One page of the owner's live tokens, newest first, after the token `starting_after`
/// (the last id of the previous page) when given; and whether more follow.
pub async fn list(
    client: &impl GenericClient,
    owner: Owner,
    now: OffsetDateTime,
    limit: i64,
    starting_after: Option<Uuid>,
) -> Result<(Vec<TokenSummary>, bool), StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {SUMMARY_COLUMNS}
                   FROM tokens t JOIN users u ON u.team_id = t.team_id AND u.id = t.user_id
                  WHERE t.team_id = $1 AND t.user_id = $2 AND t.id IS NOT NULL
                    AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $3)
                    AND t.user_epoch >= u.token_epoch
                    AND ($4::uuid IS NULL OR (t.created_at, t.id) <
                         (SELECT created_at, id FROM tokens
                           WHERE id = $4 AND team_id = $1 AND user_id = $2))
                  ORDER BY t.created_at DESC, t.id DESC
                  LIMIT $5"
            ),
            &[
                &owner.team_id.as_uuid(),
                &owner.user_id,
                &now,
                &starting_after,
                &(limit + 1),
            ],
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page = rows
        .iter()
        .take(limit.max(0) as usize)
        .filter_map(summary)
        .collect();
    Ok((page, more))
}

/// Revokes the owner's token `id`: a tombstone in Redis before the Postgres commit, so
/// that once this returns no check can accept the token, and an audit event. Returns
/// `false` when the owner has no such live token.
pub async fn revoke(
    pool: &Pool,
    redis: &Redis,
    owner: Owner,
    id: Uuid,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE tokens SET revoked_at = now()
              WHERE id = $1 AND team_id = $2 AND user_id = $3 AND revoked_at IS NULL
          RETURNING hash, kind",
            &[&id, &owner.team_id.as_uuid(), &owner.user_id],
        )
        .await?;
    let Some(row) = row else { return Ok(false) };
    let hash: Vec<u8> = row.get(0);
    let kind: String = row.get(1);
    let hash = TokenHash(
        hash.try_into()
            .map_err(|_| StoreError::Corrupt("a token hash is not 32 bytes".into()))?,
    );
    let actor = owner.actor();
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(owner.team_id),
            actor: &actor,
            action: AuditAction::TokenRevoked,
            target: Some(&id.to_string()),
            detail: json!({ "kind": kind }),
        },
    )
    .await?;
    tokens::publish_revoked(redis, &hash).await?;
    tx.commit().await?;
    Ok(true)
}

/// Records a token's use at `at` in Postgres, off the request path: the check already
/// claimed this minute's marker, so at most one such write per token per minute.
/// Best effort: a failure only leaves "last used" a little older.
pub fn record_use(pool: &Pool, hash: TokenHash, at: OffsetDateTime) {
    let pool = pool.clone();
    tokio::spawn(async move {
        let written = async {
            pool.get()
                .await?
                .execute(
                    "UPDATE tokens SET last_used_at = $2
                      WHERE hash = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
                    &[&hash.0.as_slice(), &at],
                )
                .await?;
            Ok::<(), StoreError>(())
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "could not record a token's last use");
        }
    });
}

/// The users of `team_id` an email names: by user name or primary email,
/// case-insensitively (a user name that is the email first). Several users may share
/// a primary email; all of them are named.
pub async fn users_by_email(
    client: &impl GenericClient,
    team_id: TeamId,
    email: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = client
        .query(
            "SELECT id FROM users
              WHERE team_id = $1 AND (lower(user_name) = lower($2) OR lower(email) = lower($2))
              ORDER BY (lower(user_name) = lower($2)) DESC, seq
              LIMIT 20",
            &[&team_id.as_uuid(), &email],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The users of `team_id` Okta knows by `okta_user_id` (its `sub`, which Okta
/// provisions as the SCIM `externalId`).
pub async fn users_by_external_id(
    client: &impl GenericClient,
    team_id: TeamId,
    okta_user_id: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = client
        .query(
            "SELECT id FROM users WHERE team_id = $1 AND external_id = $2 LIMIT 20",
            &[&team_id.as_uuid(), &okta_user_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The user of `team_id` whose id (the SCIM `id` Okta holds) is `id`, if any.
pub async fn user_by_id(
    client: &impl GenericClient,
    team_id: TeamId,
    id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = client
        .query(
            "SELECT id FROM users WHERE team_id = $1 AND id = $2",
            &[&team_id.as_uuid(), &id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Ends every session, API token and MCP token of `user_ids` in `team_id` with `tx`
/// (the caller commits, after this returns): raises each user's revocation epoch and
/// publishes it to Redis before the commit, so that the very next check of any of
/// their credentials, on any replica, refuses it. One `UPDATE` and one Redis write per
/// user, whatever they hold. Returns the users found with their new epochs.
pub async fn revoke_users(
    tx: &impl GenericClient,
    redis: &Redis,
    team_id: TeamId,
    user_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let rows = tx
        .query(
            "UPDATE users SET token_epoch = token_epoch + 1
              WHERE team_id = $1 AND id = ANY($2)
          RETURNING id, token_epoch",
            &[&team_id.as_uuid(), &user_ids],
        )
        .await?;
    let raised: Vec<(Uuid, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for (user_id, epoch) in &raised {
        tokens::publish_user_epoch(redis, team_id, *user_id, *epoch).await?;
    }
    Ok(raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(valid_name("  CI deploy "), Some("CI deploy"));
        assert_eq!(
            valid_name("é".repeat(100).as_str()).map(str::len),
            Some(200)
        );
        assert_eq!(valid_name(&"a".repeat(101)), None);
        assert_eq!(valid_name("   "), None);
        assert_eq!(valid_name("tab\there"), None);
        assert_eq!(valid_name("new\nline"), None);
    }

    #[test]
    fn kinds_parse_from_their_codes() {
        for kind in PersonalKind::ALL {
            assert_eq!(PersonalKind::parse(kind.code()), Some(kind));
        }
        assert_eq!(PersonalKind::parse("ses"), None);
        assert_eq!(PersonalKind::parse("scim"), None);
        assert_eq!(PersonalKind::Mcp.token_kind(), TokenKind::Mcp);
        for kind in TokenKind::ALL {
            let personal = PersonalKind::of(kind);
            assert_eq!(
                personal.map(PersonalKind::token_kind),
                personal.and(Some(kind))
            );
            assert_eq!(
                personal.is_some(),
                matches!(kind, TokenKind::Api | TokenKind::Mcp)
            );
        }
    }
}
