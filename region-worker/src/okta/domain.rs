//! The Okta domain a workspace admin types on Integrations > Okta, normalised and
//! validated, and the org issuer made from it (OKTA.md §8: exactly `https://{domain}`).
//!
//! Admins paste all sorts of things: `acme.okta.com`, `https://acme.okta.com/`, the
//! admin console's `https://acme-admin.okta.com/admin/dashboard`, a custom domain.
//! [`OktaDomain::parse`] strips a pasted `https://`, a trailing `/` and any path, then
//! accepts a DNS host name: Okta's own (`*.okta.com`, `*.oktapreview.com`,
//! `*.okta-emea.com`, `*.trexcloud.com`) or a custom domain. IP addresses, user info
//! and ports are refused; only under the development switch is a plain-HTTP loopback
//! origin (`http://127.0.0.1:PORT`, `localhost:PORT`, as the simulated org's) accepted.

use std::fmt;
use std::net::IpAddr;

/// Which kind of Okta domain it is (for the page's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// `*.okta.com`.
    Okta,
    /// `*.oktapreview.com` (sandbox orgs).
    OktaPreview,
    /// `*.okta-emea.com`.
    OktaEmea,
    /// `*.trexcloud.com` (Okta's test cells).
    Trexcloud,
    /// Any other host name: an Okta custom URL domain.
    Custom,
    /// A loopback origin, development switch only.
    Loopback,
}

impl DomainKind {
    /// In words, for the page.
    pub fn describe(self) -> &'static str {
        match self {
            DomainKind::Okta => "Okta domain",
            DomainKind::OktaPreview => "Okta preview (sandbox) domain",
            DomainKind::OktaEmea => "Okta EMEA domain",
            DomainKind::Trexcloud => "Okta test-cell domain",
            DomainKind::Custom => "custom domain",
            DomainKind::Loopback => "local development org",
        }
    }
}

/// A validated Okta domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OktaDomain {
    /// The domain as stored and shown: a lower-case host name, or `host:port` for a
    /// loopback development org.
    domain: String,
    /// `https`, or `http` for a loopback development org.
    scheme: &'static str,
    /// What kind it is.
    kind: DomainKind,
}

/// Why a typed domain was refused; the message is shown next to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing was typed.
    #[error("Enter your Okta domain, for example acme.okta.com.")]
    Empty,
    /// A scheme other than `https`.
    #[error("Okta is reached over HTTPS: enter the domain only, for example acme.okta.com.")]
    NotHttps,
    /// `user@host`.
    #[error("Enter the domain only, without a user name.")]
    UserInfo,
    /// `host:port`.
    #[error("Enter the domain only, without a port.")]
    Port,
    /// An IP address.
    #[error("Enter a domain name, not an IP address.")]
    IpAddress,
    /// Not a valid DNS host name.
    #[error("This is not a valid domain name.")]
    Invalid,
    /// Okta's admin console domain (`acme-admin.okta.com`).
    #[error("This is your Okta admin console. Enter your org's domain instead: {0}.")]
    AdminConsole(String),
}

/// Okta's own parent domains and their kinds.
const OKTA_PARENTS: [(&str, DomainKind); 4] = [
    ("okta.com", DomainKind::Okta),
    ("oktapreview.com", DomainKind::OktaPreview),
    ("okta-emea.com", DomainKind::OktaEmea),
    ("trexcloud.com", DomainKind::Trexcloud),
];

impl OktaDomain {
    /// Normalises and validates what the admin typed. `development` is the region
    /// map's development switch, which alone allows loopback origins.
    pub fn parse(input: &str, development: bool) -> Result<Self, DomainError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(DomainError::Empty);
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("https") => (Some("https"), rest),
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => (Some("http"), rest),
            Some(_) => return Err(DomainError::NotHttps),
            None => (None, text),
        };
        // The authority ends at the first path, query or fragment character.
        let authority = rest.split(['/', '?', '#', '\\']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(DomainError::UserInfo);
        }
        if authority.is_empty() {
            return Err(DomainError::Empty);
        }
        if let Some(loopback) = Self::loopback(authority, scheme, development) {
            return loopback;
        }
        if scheme == Some("http") {
            return Err(DomainError::NotHttps);
        }
        let (host, port) = split_port(authority);
        if port.is_some() {
            return Err(DomainError::Port);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if host.starts_with('[') || host.parse::<IpAddr>().is_ok() || looks_numeric(&host) {
            return Err(DomainError::IpAddress);
        }
        if !valid_host_name(&host) {
            return Err(DomainError::Invalid);
        }
        let kind = OKTA_PARENTS
            .iter()
            .find(|(parent, _)| {
                host.strip_suffix(parent)
                    .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
            })
            .map_or(DomainKind::Custom, |(_, kind)| *kind);
        if kind != DomainKind::Custom
            && let Some((org, parent)) = host.split_once('.')
            && let Some(stripped) = org.strip_suffix("-admin")
            && !stripped.is_empty()
        {
            return Err(DomainError::AdminConsole(format!("{stripped}.{parent}")));
        }
        Ok(Self {
            domain: host,
            scheme: "https",
            kind,
        })
    }

    /// A loopback development origin (`127.0.0.1:PORT`, `localhost:PORT`, `[::1]:PORT`,
    /// with `http://` or `https://` or nothing), or `None` when `authority` is not one.
    fn loopback(
        authority: &str,
        scheme: Option<&'static str>,
        development: bool,
    ) -> Option<Result<Self, DomainError>> {
        let (host, port) = split_port(authority);
        let host = host.to_ascii_lowercase();
        let is_loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !is_loopback {
            return None;
        }
        if !development {
            return Some(Err(if port.is_some() {
                DomainError::Port
            } else if host == "localhost" {
                DomainError::Invalid
            } else {
                DomainError::IpAddress
            }));
        }
        let port = match port.map(str::parse::<u16>) {
            Some(Ok(p)) if p > 0 => p,
            _ => return Some(Err(DomainError::Port)),
        };
        Some(Ok(Self {
            domain: format!("{host}:{port}"),
            scheme: scheme.unwrap_or("http"),
            kind: DomainKind::Loopback,
        }))
    }

    /// The domain as stored and shown.
    pub fn as_str(&self) -> &str {
        &self.domain
    }

    /// What kind of domain it is.
    pub fn kind(&self) -> DomainKind {
        self.kind
    }

    /// The org authorization server's issuer: `https://{domain}` exactly, no slash.
    pub fn issuer(&self) -> String {
        format!("{}://{}", self.scheme, self.domain)
    }
}

impl fmt::Display for OktaDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.domain)
    }
}

/// Splits `host:port` (and `[v6]:port`); the port is `None` when absent.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => {
                let port = authority[end + 1..].strip_prefix(':');
                (&authority[..=end], port)
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// Dotted all-digit names (`10.0.0`, `1.2.3.4.5`) that some resolvers read as IPs.
fn looks_numeric(host: &str) -> bool {
    host.split('.')
        .next_back()
        .is_some_and(|tld| !tld.is_empty() && tld.bytes().all(|b| b.is_ascii_digit()))
}

/// A DNS host name of at least two labels: letters, digits and inner hyphens, labels
/// of 1 to 63 characters, 253 in all, a top-level label that is not all digits.
fn valid_host_name(host: &str) -> bool {
    let labels: Vec<&str> = host.split('.').collect();
    host.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> OktaDomain {
        OktaDomain::parse(input, false).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }

    #[test]
    fn accepts_okta_domains_and_custom_domains_in_any_pasted_form() {
        for (input, domain, kind) in [
            ("acme.okta.com", "acme.okta.com", DomainKind::Okta),
            (
                " https://Acme.Okta.com/ ",
                "acme.okta.com",
                DomainKind::Okta,
            ),
            (
                "https://acme.okta.com/oauth2/v1/authorize?x=1",
                "acme.okta.com",
                DomainKind::Okta,
            ),
            ("acme.okta.com.", "acme.okta.com", DomainKind::Okta),
            (
                "dev-123456.oktapreview.com",
                "dev-123456.oktapreview.com",
                DomainKind::OktaPreview,
            ),
            (
                "acme.okta-emea.com",
                "acme.okta-emea.com",
                DomainKind::OktaEmea,
            ),
            (
                "acme.trexcloud.com",
                "acme.trexcloud.com",
                DomainKind::Trexcloud,
            ),
            ("login.acme.com", "login.acme.com", DomainKind::Custom),
            (
                "HTTPS://sso.example.co.uk#frag",
                "sso.example.co.uk",
                DomainKind::Custom,
            ),
        ] {
            let d = ok(input);
            assert_eq!(d.as_str(), domain, "{input}");
            assert_eq!(d.kind(), kind, "{input}");
            assert_eq!(d.issuer(), format!("https://{domain}"));
        }
    }

    #[test]
    fn refuses_what_is_not_a_domain() {
        for (input, err) in [
            ("", DomainError::Empty),
            ("https://", DomainError::Empty),
            ("http://acme.okta.com", DomainError::NotHttps),
            ("ftp://acme.okta.com", DomainError::NotHttps),
            ("admin@acme.okta.com", DomainError::UserInfo),
            ("https://a:b@acme.okta.com/", DomainError::UserInfo),
            ("acme.okta.com:8443", DomainError::Port),
            ("93.184.216.34", DomainError::IpAddress),
            ("[2001:db8::1]", DomainError::IpAddress),
            ("1.2.3.4.5", DomainError::IpAddress),
            ("127.0.0.1:8080", DomainError::Port),
            ("localhost", DomainError::Invalid),
            ("okta", DomainError::Invalid),
            ("acme_corp.okta.com", DomainError::Invalid),
            ("-acme.okta.com", DomainError::Invalid),
            ("acme..okta.com", DomainError::Invalid),
        ] {
            assert_eq!(OktaDomain::parse(input, false), Err(err), "{input:?}");
        }
        assert_eq!(
            OktaDomain::parse(&format!("{}.okta.com", "a".repeat(64)), false),
            Err(DomainError::Invalid)
        );
        // A pasted path is dropped, whatever it holds.
        assert_eq!(ok("acme.okta.com/<script>").as_str(), "acme.okta.com");
    }

    #[test]
    fn the_admin_console_domain_is_recognised() {
        assert_eq!(
            OktaDomain::parse("https://acme-admin.okta.com/admin/dashboard", false),
            Err(DomainError::AdminConsole("acme.okta.com".into()))
        );
        // A custom domain may legitimately end in -admin.
        assert!(OktaDomain::parse("sso-admin.acme.com", false).is_ok());
    }

    #[test]
    fn loopback_origins_need_the_development_switch() {
        for input in ["127.0.0.1:5555", "http://127.0.0.1:5555/", "localhost:5555"] {
            assert!(OktaDomain::parse(input, false).is_err(), "{input}");
            let d = OktaDomain::parse(input, true).unwrap();
            assert_eq!(d.kind(), DomainKind::Loopback);
            assert!(d.issuer().starts_with("http://"), "{input}");
            assert!(d.issuer().ends_with(":5555"), "{input}");
        }
        assert_eq!(
            OktaDomain::parse("http://127.0.0.1:5555", true)
                .unwrap()
                .issuer(),
            "http://127.0.0.1:5555"
        );
        assert_eq!(OktaDomain::parse("127.0.0.1", true), Err(DomainError::Port));
        // The switch allows loopback only, never other plain-HTTP hosts.
        assert_eq!(
            OktaDomain::parse("http://acme.okta.com", true),
            Err(DomainError::NotHttps)
        );
        assert_eq!(
            OktaDomain::parse("10.0.0.1:80", true),
            Err(DomainError::Port)
        );
    }
}
