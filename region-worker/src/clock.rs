//! The worker's clock, injected (STYLE.md rule 10) wherever a decision depends on time
//! that tests must control: OAuth code expiry, refresh-token idle expiry. Production
//! reads the system clock; a test advances a shared offset instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::{Duration, OffsetDateTime};

/// A clock: the system time plus an offset that only tests move. Cheap to clone;
/// clones share the offset, so a test advancing its handle moves the worker's time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Seconds added to the system time; `None` for the plain system clock, which
    /// cannot be moved.
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the system time and that [`Clock::advance`] moves
    /// forward (tests only).
    pub fn adjustable() -> Self {
        Self {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// The current time.
    pub fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        match &self.offset {
            Some(o) => now + Duration::seconds(o.load(Ordering::Relaxed)),
            None => now,
        }
    }

    /// Moves an adjustable clock forward by `by` (whole seconds). Returns `false`, and
    /// does nothing, on the system clock.
    pub fn advance(&self, by: std::time::Duration) -> bool {
        match &self.offset {
            Some(o) => {
                let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
                o.fetch_add(secs, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_offset_and_the_system_clock_does_not_move() {
        let clock = Clock::adjustable();
        let handle = clock.clone();
        let before = clock.now();
        let two_days = std::time::Duration::from_secs(2 * 86_400);
        assert!(handle.advance(two_days));
        assert!(clock.now() - before >= Duration::days(2));
        let system = Clock::system();
        assert!(!system.advance(two_days));
        assert!(system.now() - OffsetDateTime::now_utc() < Duration::seconds(5));
    }
}
