//! DNS TXT lookups: the one place the worker reads DNS records for itself, to check the
//! record that proves a workspace owns an email domain ([`crate::store::domains`]).
//!
//! Production reads the system's resolver configuration (`/etc/resolv.conf`), as every
//! other lookup of the host does. Development and tests name one server instead
//! ([`crate::config::WorkerConfig::dns_server`]), so the e2e suite sends real DNS
//! packets to a server whose records it controls. Plain DNS over UDP (and TCP for a
//! truncated answer): the record is public, and what it proves is checked on our side.
//!
//! Each lookup builds its own resolver: verification is a rare admin action, and a
//! fresh resolver keeps no cache between an admin publishing the record and pressing
//! Verify (a cached "no such record" would make them wait for its TTL).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

/// How long one query waits for its answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// The whole lookup's bound, retries included: the admin is waiting on a page.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(8);

/// Why a lookup gave no answer (a name with no TXT record is not an error: no values).
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The system's resolver configuration cannot be read.
    #[error("the resolver configuration cannot be read: {0}")]
    Config(String),
    /// The name servers did not answer in time, refused, or answered with an error.
    #[error("the DNS lookup failed: {0}")]
    Failed(String),
}

/// A resolver over `server`, or over the system's configuration when `None`.
fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, DnsError> {
    let mut builder = match server {
        Some(addr) => {
            let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = addr.port();
                    c
                })
                .collect();
            let name_server = NameServerConfig::new(addr.ip(), true, connections);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![name_server]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| DnsError::Config(e.to_string()))?,
    };
    let options: &mut ResolverOpts = builder.options_mut();
    options.timeout = QUERY_TIMEOUT;
    options.attempts = 1;
    builder.build().map_err(|e| DnsError::Config(e.to_string()))
}

/// The TXT values at `name` (a domain without its final dot), each record's strings
/// joined as one value (RFC 7208 §3.3: a long value is split into 255-byte strings).
/// No record, or no such name: no values.
pub async fn txt_records(server: Option<SocketAddr>, name: &str) -> Result<Vec<String>, DnsError> {
    let resolver = resolver(server)?;
    // Fully qualified: never tried under the host's search domains.
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let lookup = match tokio::time::timeout(LOOKUP_TIMEOUT, resolver.txt_lookup(fqdn)).await {
        Err(_) => return Err(DnsError::Failed("timed out".into())),
        Ok(Err(e)) if e.is_no_records_found() => return Ok(Vec::new()),
        Ok(Err(e)) => return Err(DnsError::Failed(e.to_string())),
        Ok(Ok(lookup)) => lookup,
    };
    Ok(lookup
        .answers()
        .iter()
        .filter_map(|record| match &record.data {
            RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}
