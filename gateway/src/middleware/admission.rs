//! Connection admission: at most `max_connections` open client connections in all, and
//! at most `max_connections_per_ip` from one client address. Sits at accept, before the
//! TLS handshake and before any request is read, because that is where refusing costs
//! least: an over-limit connection is served a canned `503` (with `Retry-After`) and
//! closed, so a well-behaved client learns to back off, and the workers never see the
//! load. The shed connections are bounded too: past that bound a connection is closed
//! without an answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use metrics::Counter;
use shared::regions::GatewayLimits;

/// How many over-limit connections may be open at once being told `503`.
const MAX_SHEDDING: usize = 1024;

/// The connection counters.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Open admitted connections.
    open: AtomicUsize,
    /// Open admitted connections per client IP; entries are removed at zero, so the
    /// map holds only addresses with open connections.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Open connections being shed.
    shedding: AtomicUsize,
    /// `gateway_shed_connections_total{reason="global"}`.
    shed_global: Counter,
    /// `gateway_shed_connections_total{reason="per_ip"}`.
    shed_per_ip: Counter,
}

/// The verdict on a new connection: `Some(Ok)` serve it, `Some(Err)` answer `503` and
/// close, `None` (over every bound) close it at once. Each guard releases its place
/// when dropped.
pub(crate) type Verdict = Option<Result<Admitted, Shedding>>;

impl Admission {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            shedding: AtomicUsize::new(0),
            shed_global: crate::metrics::shed("global"),
            shed_per_ip: crate::metrics::shed("per_ip"),
        })
    }

    /// Decides on a connection from `ip` under `limits`.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, limits: &GatewayLimits) -> Verdict {
        let global = self.open.fetch_add(1, Ordering::Relaxed) < limits.max_connections;
        if global {
            let mut per_ip = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let count = per_ip.entry(ip).or_insert(0);
            if *count < limits.max_connections_per_ip {
                *count += 1;
                return Some(Ok(Admitted {
                    admission: self.clone(),
                    ip,
                }));
            }
            drop(per_ip);
            self.shed_per_ip.increment(1);
        } else {
            self.shed_global.increment(1);
        }
        self.open.fetch_sub(1, Ordering::Relaxed);
        if self.shedding.fetch_add(1, Ordering::Relaxed) < MAX_SHEDDING {
            Some(Err(Shedding(self.clone())))
        } else {
            self.shedding.fetch_sub(1, Ordering::Relaxed);
            None
        }
    }

    /// Open admitted connections.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// An admitted connection's place.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The counters to release.
    admission: Arc<Admission>,
    /// The client address it counts against.
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_ip = self
            .admission
            .per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
        drop(per_ip);
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A shed connection's place.
#[derive(Debug)]
pub(crate) struct Shedding(Arc<Admission>);

impl Drop for Shedding {
    fn drop(&mut self) {
        self.0.shedding.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize) -> GatewayLimits {
        GatewayLimits {
            max_connections: max,
            max_connections_per_ip: per_ip,
            ..GatewayLimits::default()
        }
    }

    #[test]
    fn per_ip_and_global_limits_shed_and_release() {
        let admission = Admission::new();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let l = limits(3, 2);
        let a1 = admission.admit(a, &l);
        let a2 = admission.admit(a, &l);
        assert!(matches!(a1, Some(Ok(_))));
        assert!(matches!(a2, Some(Ok(_))));
        assert!(matches!(admission.admit(a, &l), Some(Err(_))));
        let b1 = admission.admit(b, &l);
        assert!(matches!(b1, Some(Ok(_))));
        assert!(matches!(admission.admit(b, &l), Some(Err(_))), "global");
        assert_eq!(admission.open(), 3);
        drop(a1);
        assert!(matches!(admission.admit(b, &l), Some(Ok(_))));
        drop((a2, b1));
        assert_eq!(admission.open(), 0);
        assert!(admission.per_ip.lock().unwrap().is_empty());
    }
}
