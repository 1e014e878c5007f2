//! Postgres: the connection pool (whose connections span each statement while traces
//! are exported: `pg/traced.rs`), the embedded SQL migrations and the region stamp.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use shared::ids::RegionId;
use tokio_postgres::NoTls;

use super::StoreError;

mod traced;

pub use traced::{Client, GenericClient, Pool, Query, Statement, Transaction};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How the worker reaches Postgres: the connection settings, and the TLS client
/// configuration when the URL asks for TLS.
#[derive(Debug)]
pub struct Target {
    /// Everything tokio-postgres understands of the URL.
    pub config: tokio_postgres::Config,
    /// `Some` when the URL's `sslmode` asks for TLS.
    pub tls: Option<rustls::ClientConfig>,
}

/// Reads a Postgres URL. Besides what tokio-postgres understands, it takes libpq's
/// TLS parameters, with one difference that matters for an identity service: the
/// server's certificate is always verified (chain and host name), whatever the mode.
/// - `sslmode`: `disable` (default), `prefer` (TLS when the server offers it),
///   `require` or `verify-full` (TLS or no connection). `verify-ca`, which skips the
///   host-name check, is refused.
/// - `sslrootcert`: a PEM file of the CA certificates to trust (a managed Postgres's
///   CA bundle), or `system`; without it, Mozilla's roots (webpki-roots).
pub fn parse_url(url: &str) -> anyhow::Result<Target> {
    let invalid = |e: &dyn std::fmt::Display| anyhow::anyhow!("invalid Postgres URL: {e}");
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        // The `key=value` form: tokio-postgres reads it whole (its sslmode values only).
        let config: tokio_postgres::Config = url.parse().map_err(|e| invalid(&e))?;
        let tls = (config.get_ssl_mode() != tokio_postgres::config::SslMode::Disable)
            .then(|| tls_config(None))
            .transpose()?;
        return Ok(Target { config, tls });
    }
    let mut parsed = url::Url::parse(url).map_err(|e| invalid(&e))?;
    let mut mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match &*key {
            "sslmode" => mode = Some(value.into_owned()),
            "sslrootcert" => root_cert = Some(value.into_owned()),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(&kept);
    }
    let mut config: tokio_postgres::Config = parsed.as_str().parse().map_err(|e| invalid(&e))?;
    let ssl_mode = match mode.as_deref().unwrap_or("disable") {
        "disable" => tokio_postgres::config::SslMode::Disable,
        "prefer" => tokio_postgres::config::SslMode::Prefer,
        "require" | "verify-full" => tokio_postgres::config::SslMode::Require,
        "verify-ca" => anyhow::bail!(
            "invalid Postgres URL: sslmode=verify-ca skips the host-name check; use sslmode=verify-full"
        ),
        other => anyhow::bail!(
            "invalid Postgres URL: unknown sslmode {other:?} (disable, prefer, require or verify-full)"
        ),
    };
    config.ssl_mode(ssl_mode);
    if ssl_mode == tokio_postgres::config::SslMode::Disable {
        if root_cert.is_some() {
            anyhow::bail!("invalid Postgres URL: sslrootcert without an sslmode that uses TLS");
        }
        return Ok(Target { config, tls: None });
    }
    Ok(Target {
        config,
        tls: Some(tls_config(root_cert.as_deref())?),
    })
}

/// A TLS client trusting `root_cert` (a PEM file, or `system`/`None` for Mozilla's
/// roots), with the ring provider.
fn tls_config(root_cert: Option<&str>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        None | Some("system") => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            use rustls::pki_types::{CertificateDer, pem::PemObject as _};
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| anyhow::anyhow!("reading sslrootcert {path}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                anyhow::bail!("sslrootcert {path} holds no usable CA certificate");
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Builds a pool for `url` (see [`parse_url`]). No connection is made yet: a Postgres
/// that is down at this moment only makes the first requests fail with `503`.
pub fn pool(url: &str, size: usize, timeout: Duration) -> anyhow::Result<Pool> {
    let Target { mut config, tls } = parse_url(url)?;
    config.connect_timeout(timeout);
    config.application_name("closedloop-region-worker");
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match tls {
        None => Manager::from_config(config, NoTls, manager_config),
        Some(tls) => Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            manager_config,
        ),
    };
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        // Runs inside `Pool::get`: marks its checkout span when it had to connect.
        .post_create(deadpool_postgres::Hook::sync_fn(|_, _| {
            traced::opened_connection();
            Ok(())
        }))
        .build()?;
    Ok(Pool::new(pool))
}

/// A fingerprint of the migrations compiled into this binary (names and checksums),
/// so that a test template built by one binary is never mistaken for another's.
pub fn migrations_fingerprint() -> String {
    let runner = embedded::migrations::runner();
    runner
        .get_migrations()
        .iter()
        .map(|m| format!("{}:{:016x}", m.name(), m.checksum()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Applies every pending migration, holding an advisory lock so that replicas
/// starting together do not race.
pub async fn migrate(client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
    const LOCK: i64 = 0x636c_6b5f_6d69_6772; // "clk_migr"
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await?;
    let result = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(client)
        .await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await?;
    result?;
    Ok(())
}

/// The region stamp of a store did not match this worker's region.
#[derive(Debug, thiserror::Error)]
#[error(
    "{store} is stamped for region {found}, but this worker serves region {expected}: refusing to start (regions never share stores)"
)]
pub struct StampMismatch {
    /// Which store (`Postgres` or `Redis`).
    pub store: &'static str,
    /// The region this worker serves.
    pub expected: RegionId,
    /// The region found in the store.
    pub found: String,
}

/// Writes the region stamp on first use and checks it on every start.
pub async fn check_stamp(
    client: &tokio_postgres::Client,
    region: &RegionId,
) -> Result<(), anyhow::Error> {
    client
        .execute(
            "INSERT INTO region_stamp (region) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&region.as_str()],
        )
        .await?;
    let found: String = client
        .query_one("SELECT region FROM region_stamp", &[])
        .await?
        .get(0);
    if found != region.as_str() {
        return Err(StampMismatch {
            store: "Postgres",
            expected: region.clone(),
            found,
        }
        .into());
    }
    Ok(())
}

/// Takes a pooled connection, mapping pool failures to [`StoreError`].
pub async fn client(pool: &Pool) -> Result<Client, StoreError> {
    Ok(pool.get().await?)
}

#[cfg(test)]
mod tests {
    use tokio_postgres::config::SslMode;

    use super::*;

    #[test]
    fn urls_choose_tls_by_sslmode_and_always_verify() {
        let plain = parse_url("postgres://u:p@db:5432/closedloop").unwrap();
        assert!(plain.tls.is_none());
        assert_eq!(plain.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(plain.config.get_dbname(), Some("closedloop"));

        for (mode, expected) in [
            ("require", SslMode::Require),
            ("verify-full", SslMode::Require),
            ("prefer", SslMode::Prefer),
        ] {
            let t = parse_url(&format!(
                "postgresql://u@db/closedloop?sslmode={mode}&application_name=x"
            ))
            .unwrap();
            assert!(t.tls.is_some(), "{mode}");
            assert_eq!(t.config.get_ssl_mode(), expected);
            assert_eq!(t.config.get_application_name(), Some("x"));
        }
        let kv = parse_url("host=db user=u dbname=closedloop sslmode=require").unwrap();
        assert!(kv.tls.is_some());
    }

    #[test]
    fn weak_or_broken_tls_settings_are_refused() {
        let err = |url: &str| parse_url(url).unwrap_err().to_string();
        assert!(err("postgres://db/x?sslmode=verify-ca").contains("verify-full"));
        assert!(err("postgres://db/x?sslmode=allow").contains("unknown sslmode"));
        assert!(err("postgres://db/x?sslrootcert=/ca.pem").contains("without an sslmode"));
        assert!(
            err("postgres://db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .contains("reading sslrootcert /nonexistent/ca.pem")
        );
        let dir = std::env::temp_dir().join(format!("pg-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(
            err(&format!(
                "postgres://db/x?sslmode=require&sslrootcert={}",
                empty.display()
            ))
            .contains("no usable CA certificate")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
