//! What this worker remembers of failed authentications, for the per-client limit
//! that [`crate::routes::failed_auth`] enforces in front of every route taking one of
//! our credentials: the clients it turned away ([`Blocks`], kept in memory so that the
//! hot path pays no round trip), and whether the request being handled presented a
//! credential that was refused where the refusal is not a `401` ([`note_refused`], e.g.
//! a page answering an unknown session cookie by asking to sign in), and, for a blocked
//! client, keeping its credential lookups out of Postgres ([`store_allowed`]).
//!
//! A leaf module: the session check reports here and the state holds the blocks, while
//! the middleware, which needs both, lives with the routes.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// The most clients one worker remembers as blocked; past it, expired blocks are
/// dropped, and if all are live, new blocks are left to the shared bucket.
const MAX_BLOCKED: usize = 100_000;

/// What [`watch`] learns of the request it runs.
#[derive(Debug, Default)]
struct Watched {
    /// The client is blocked: its credential may be looked up in Redis, not in Postgres.
    blocked: bool,
    /// A presented credential was refused where the refusal is not a `401`.
    refused: Cell<bool>,
    /// A lookup needed Postgres and was not made (the client is blocked).
    skipped: Cell<bool>,
    /// A lookup went to Postgres: only such refusals count against the client (one
    /// Redis answers costs nothing worth limiting).
    looked_up: Cell<bool>,
}

tokio::task_local! {
    /// The request being handled under [`watch`].
    static WATCHED: Watched;
}

/// Records that the current request presented a credential that was refused (called
/// where the refusal is not a `401`). Outside [`watch`], does nothing.
pub fn note_refused() {
    let _ = WATCHED.try_with(|w| w.refused.set(true));
}

/// Whether a credential lookup of the current request may go to Postgres: not for a
/// blocked client, whose credentials are then answered from Redis alone (a valid token
/// in Redis still works; one only Postgres could confirm is refused with `429`). Outside
/// [`watch`], always.
pub fn store_allowed() -> bool {
    WATCHED
        .try_with(|w| {
            if w.blocked {
                w.skipped.set(true);
            } else {
                w.looked_up.set(true);
            }
            !w.blocked
        })
        .unwrap_or(true)
}

/// What [`watch`] reports of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// [`note_refused`] was called.
    pub refused: bool,
    /// A lookup was refused Postgres ([`store_allowed`] said no).
    pub skipped: bool,
    /// A lookup went to Postgres ([`store_allowed`] said yes).
    pub looked_up: bool,
}

/// Runs `handling` (a request being handled) for a client that is `blocked` or not,
/// reporting what it noted.
pub async fn watch<F: Future>(blocked: bool, handling: F) -> (F::Output, Outcome) {
    let watched = Watched {
        blocked,
        ..Watched::default()
    };
    WATCHED
        .scope(watched, async {
            let output = handling.await;
            let outcome = WATCHED.with(|w| Outcome {
                refused: w.refused.get(),
                skipped: w.skipped.get(),
                looked_up: w.looked_up.get(),
            });
            (output, outcome)
        })
        .await
}

/// The most requests of blocked clients held at once (see [`Blocks::hold`]); past it,
/// they are answered at once.
const MAX_HELD: usize = 10_000;

/// The clients this worker knows to be blocked, with the end of each block (Unix
/// milliseconds by the worker's clock), and how many of their requests are held.
#[derive(Debug, Default)]
pub struct Blocks {
    /// Client → end of its block.
    until: Mutex<HashMap<String, i64>>,
    /// Requests of blocked clients held now ([`Blocks::hold`]).
    held: AtomicUsize,
}

/// A held request of a blocked client; releases its place when dropped.
#[derive(Debug)]
pub struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Blocks {
    /// A place among the held requests, unless [`MAX_HELD`] are held already: holding
    /// costs a task and a socket, so it is bounded.
    pub fn hold(&self) -> Option<Held<'_>> {
        if self.held.fetch_add(1, Ordering::Relaxed) >= MAX_HELD {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Held(&self.held))
    }

    /// Whole seconds `client` is still blocked at `now_ms`, if it is.
    pub fn left(&self, client: &str, now_ms: i64) -> Option<u64> {
        let blocks = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if blocks.is_empty() {
            return None;
        }
        let until = *blocks.get(client)?;
        (until > now_ms).then(|| u64::try_from((until - now_ms + 999) / 1000).unwrap_or(1))
    }

    /// Blocks `client` for `seconds` from `now_ms`.
    pub fn block(&self, client: &str, now_ms: i64, seconds: u64) {
        let until = now_ms + i64::try_from(seconds).unwrap_or(i64::MAX / 2) * 1000;
        let mut blocks = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if blocks.len() >= MAX_BLOCKED && !blocks.contains_key(client) {
            blocks.retain(|_, u| *u > now_ms);
            if blocks.len() >= MAX_BLOCKED {
                return;
            }
        }
        blocks.insert(client.to_owned(), until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_lasts_its_seconds_by_the_clock() {
        let blocks = Blocks::default();
        assert_eq!(blocks.left("203.0.113.9", 0), None);
        blocks.block("203.0.113.9", 1_000, 3);
        assert_eq!(blocks.left("203.0.113.9", 1_000), Some(3));
        assert_eq!(blocks.left("203.0.113.9", 3_500), Some(1));
        assert_eq!(blocks.left("203.0.113.9", 4_000), None);
        assert_eq!(blocks.left("198.51.100.1", 1_000), None);
    }

    #[test]
    fn held_requests_are_bounded_and_released() {
        let blocks = Blocks::default();
        let held: Vec<_> = (0..MAX_HELD).map_while(|_| blocks.hold()).collect();
        assert_eq!(held.len(), MAX_HELD);
        assert!(blocks.hold().is_none(), "no more than MAX_HELD at once");
        drop(held);
        assert!(blocks.hold().is_some());
    }

    #[test]
    fn the_memory_of_blocks_is_bounded() {
        let blocks = Blocks::default();
        for i in 0..MAX_BLOCKED {
            blocks.block(&i.to_string(), 0, 1);
        }
        // All live: a new one is left to the shared bucket.
        blocks.block("new", 0, 1);
        assert_eq!(blocks.left("new", 0), None);
        // Once they expired, they make room.
        blocks.block("new", 5_000, 1);
        assert_eq!(blocks.left("new", 5_000), Some(1));
        assert_eq!(blocks.until.lock().unwrap().len(), 1);
    }
}
