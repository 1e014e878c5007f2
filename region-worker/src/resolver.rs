//! How the worker resolves the host names of Okta orgs: by the system's resolver, or
//! from a fixed table (the seam tests use to make a domain lead to a private address).
//! A leaf module, so that the configuration can name a resolver without depending on
//! the Okta client that uses it ([`crate::okta::http`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// How Okta host names are resolved: by the system's resolver, or from a fixed table,
/// which lets a test make a domain resolve to a private address without touching the
/// machine's DNS (the seam, like [`crate::clock::Clock`] for time).
#[derive(Clone, Default)]
pub enum Resolver {
    /// The system's resolver (`getaddrinfo`).
    #[default]
    System,
    /// Names and their addresses; any other name does not resolve.
    Fixed(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resolver::System => f.write_str("Resolver::System"),
            Resolver::Fixed(t) => f.debug_tuple("Resolver::Fixed").field(&t.len()).finish(),
        }
    }
}

impl Resolver {
    /// A fixed table of `(name, address)` pairs.
    pub fn fixed<'a>(entries: impl IntoIterator<Item = (&'a str, IpAddr)>) -> Self {
        let mut table: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for (name, ip) in entries {
            table.entry(name.to_ascii_lowercase()).or_default().push(ip);
        }
        Resolver::Fixed(Arc::new(table))
    }

    /// The addresses of `host`.
    pub(crate) async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, ResolveError> {
        match self {
            Resolver::System => Ok(tokio::net::lookup_host((host, 0))
                .await
                .map_err(|_| ResolveError::UnknownHost)?
                .map(|a| a.ip())
                .collect()),
            Resolver::Fixed(table) => table
                .get(&host.to_ascii_lowercase())
                .cloned()
                .ok_or(ResolveError::UnknownHost),
        }
    }
}

/// Why the connector's resolver gave no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name does not resolve.
    #[error("the domain name cannot be found")]
    UnknownHost,
    /// Every address of the name is loopback, private, link-local or otherwise not on
    /// the public internet.
    #[error("the domain resolves to no public address")]
    NotPublic,
}
