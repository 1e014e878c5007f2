//! TLS termination: the certificates of `[gateway] certificates`, chosen per connection
//! by the client's SNI name, and the rustls server configuration (ring provider, TLS 1.2
//! and 1.3 only, ALPN `h2` and `http/1.1`).
//!
//! The rustls `ServerConfig` is built once; what changes on reload is the table behind
//! its certificate resolver, [`Certificates`]. A reload swaps the table in one step, so
//! connections in progress keep the certificate they were handshaken with, new
//! handshakes get the new one, and no connection is dropped.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::version::{TLS12, TLS13};
use shared::regions::CertificateSettings;

/// ALPN protocol ids, in the server's order of preference.
pub(crate) const ALPN_H2: &[u8] = b"h2";
/// ALPN id of HTTP/1.1.
pub(crate) const ALPN_HTTP11: &[u8] = b"http/1.1";

/// A certificate that could not be loaded; the map it came with is not applied.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file named in the config.
        path: PathBuf,
        /// Why it could not be read.
        source: io::Error,
    },
    /// The file is not the PEM it should be.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file named in the config.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// The key does not belong to the certificate, or rustls refuses it.
    #[error("{} with {}: {source}", cert.display(), key.display())]
    Key {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls says.
        source: rustls::Error,
    },
    /// The map has no certificates while the TLS listener needs them.
    #[error("the TLS listener needs at least one certificate")]
    NoCertificates,
    /// rustls refused the protocol versions (cannot happen with the ring provider).
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The host → certificate table of the TLS listener, swappable at run time.
#[derive(Debug)]
pub(crate) struct Certificates {
    /// The current table. Read once per handshake (a read lock and a reference-count
    /// increment), written only by a reload.
    table: RwLock<Arc<Table>>,
    /// The crypto provider that parses private keys.
    provider: Arc<CryptoProvider>,
}

/// One generation of certificates.
#[derive(Debug, Default)]
struct Table {
    /// Exact host names (lower-case) → certificate.
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.parent` wildcards by their parent (lower-case) → certificate.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// When each entry's certificate expires, published as a gauge only once the whole
    /// table loaded, so a refused reload leaves the served certificates' dates.
    expiries: Vec<Expiry>,
}

/// The `notAfter` of one entry's leaf certificate.
#[derive(Debug)]
struct Expiry {
    /// The entry's first host name (the `host` label).
    host: String,
    /// The certificate file (the `path` label): what to renew.
    path: PathBuf,
    /// Seconds since the Unix epoch.
    not_after: i64,
}

impl Certificates {
    /// Loads every certificate of `settings`.
    pub(crate) fn load(settings: &[CertificateSettings]) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let table = Table::load(settings, &provider)?;
        table.publish_expiries();
        Ok(Self {
            table: RwLock::new(Arc::new(table)),
            provider,
        })
    }

    /// Reads the files again (they may have been renewed in place) and swaps the table;
    /// on any error the current table stays.
    pub(crate) fn reload(&self, settings: &[CertificateSettings]) -> Result<(), TlsError> {
        let table = Table::load(settings, &self.provider)?;
        table.publish_expiries();
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        Ok(())
    }

    /// The rustls server configuration serving these certificates.
    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&TLS13, &TLS12])
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        Ok(Arc::new(config))
    }

    fn current(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ResolvesServerCert for Certificates {
    /// Chooses by SNI: the exact name, else a wildcard of its parent. A client that sends
    /// no SNI, or a name we do not serve, gets no certificate and the handshake fails:
    /// every host we serve is named, and answering with some other host's certificate
    /// would only produce a certificate error later.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?;
        let table = self.current();
        table.find(name)
    }
}

impl Table {
    fn load(settings: &[CertificateSettings], provider: &CryptoProvider) -> Result<Self, TlsError> {
        if settings.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        let mut table = Table::default();
        for entry in settings {
            let key = Arc::new(load_certified_key(&entry.cert, &entry.key, provider)?);
            match key.cert.first().and_then(|leaf| not_after(leaf)) {
                Some(not_after) => table.expiries.push(Expiry {
                    host: entry.hosts.first().cloned().unwrap_or_default(),
                    path: entry.cert.clone(),
                    not_after,
                }),
                // rustls accepted it, so it is served; only the gauge goes without.
                None => {
                    tracing::warn!(cert = %entry.cert.display(), "could not read the certificate's notAfter")
                }
            }
            for host in &entry.hosts {
                let host = host.to_ascii_lowercase();
                match host.strip_prefix("*.") {
                    Some(parent) => table.wildcard.insert(parent.to_owned(), key.clone()),
                    None => table.exact.insert(host, key.clone()),
                };
            }
        }
        Ok(table)
    }

    /// Sets `gateway_tls_certificate_expiry_timestamp_seconds` for every entry.
    fn publish_expiries(&self) {
        for e in &self.expiries {
            crate::metrics::certificate_expiry(&e.host, &e.path, e.not_after);
        }
    }

    /// The certificate for SNI `name` (rustls hands it over lower-cased and without a
    /// trailing dot, but we do not rely on that).
    fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if let Some(key) = self.exact.get(&name) {
            return Some(key.clone());
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).cloned()
    }
}

/// The `notAfter` of a DER certificate, in Unix seconds.
fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Reads a PEM chain and a PEM private key and checks that they belong together.
fn load_certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let pem = |path: &Path, err: rustls::pki_types::pem::Error| match err {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
            path: path.to_owned(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_owned(),
            what: other.to_string(),
        },
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(cert, e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem {
            path: cert.to_owned(),
            what: "no CERTIFICATE section".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Key {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, hosts: &[&str]) -> CertificateSettings {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        CertificateSettings {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            cert: cert_path,
            key: key_path,
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gw-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn reads_each_entrys_not_after_for_the_expiry_gauge() {
        let dir = temp_dir();
        let api = write_pair(&dir, "api", &["api.example.test", "app.example.test"]);
        let table = Table::load(
            std::slice::from_ref(&api),
            &rustls::crypto::ring::default_provider(),
        )
        .unwrap();
        assert_eq!(table.expiries.len(), 1);
        let e = &table.expiries[0];
        assert_eq!(e.host, "api.example.test");
        assert_eq!(e.path, api.cert);
        // rcgen's default notAfter: 4096-01-01T00:00:00Z.
        assert_eq!(e.not_after, 67_090_118_400);
    }

    #[test]
    fn chooses_exact_names_then_wildcards() {
        let dir = temp_dir();
        let api = write_pair(&dir, "api", &["api.example.test"]);
        let wild = write_pair(&dir, "wild", &["*.eu.example.test"]);
        let certs = Certificates::load(&[api, wild]).unwrap();
        let table = certs.current();
        let exact = table.find("API.example.test.").unwrap();
        let wildcard = table.find("app.eu.example.test").unwrap();
        assert!(!Arc::ptr_eq(&exact, &wildcard));
        assert!(table.find("a.b.eu.example.test").is_none());
        assert!(table.find("example.test").is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_files_are_named_and_keep_the_old_table() {
        let dir = temp_dir();
        let good = write_pair(&dir, "good", &["api.example.test"]);
        let certs = Certificates::load(std::slice::from_ref(&good)).unwrap();

        let missing = CertificateSettings {
            cert: dir.join("missing.pem"),
            ..good.clone()
        };
        let e = certs.reload(&[missing]).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");

        std::fs::write(dir.join("junk.pem"), "not a certificate").unwrap();
        let junk = CertificateSettings {
            cert: dir.join("junk.pem"),
            ..good.clone()
        };
        assert!(certs.reload(&[junk]).is_err());

        let other = write_pair(&dir, "other", &["api.example.test"]);
        let mismatched = CertificateSettings {
            key: other.key.clone(),
            ..good.clone()
        };
        let e = certs.reload(&[mismatched]).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }), "{e}");

        assert!(certs.current().find("api.example.test").is_some());
        assert!(matches!(certs.reload(&[]), Err(TlsError::NoCertificates)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
