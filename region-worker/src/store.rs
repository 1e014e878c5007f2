//! The region's stores: Postgres (the source of truth) and Redis (the hot path).
//! Database access is plain functions over a client or transaction, grouped by
//! aggregate; every store failure is a [`StoreError`], which the HTTP layer answers
//! with `503` and `Retry-After`.

pub mod audit;
pub mod cursors;
pub mod domains;
pub mod grants;
pub mod groups;
pub mod listing;
pub mod mcp;
pub mod people;
pub mod personal_tokens;
pub mod pg;
pub mod redis;
pub mod revocations;
pub mod roles;
pub mod tokens;
pub mod users;
pub mod workspaces;

/// A store could not be reached or failed; the request cannot be served right now.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres answered with an error or the connection broke.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No Postgres connection could be had in time.
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A store call took longer than the configured store timeout.
    #[error("store call timed out")]
    Timeout,
    /// A stored value could not be decoded (a bug or a foreign writer).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The SQLSTATE of a Postgres error, for the few constraint violations callers
    /// turn into protocol errors (unique violations become SCIM `409 uniqueness`).
    pub fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            StoreError::Postgres(e) => e.code(),
            _ => None,
        }
    }

    /// Whether this is a unique-constraint violation.
    pub fn is_unique_violation(&self) -> bool {
        self.sql_state() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    }
}
