//! The Okta domain a workspace admin types on Integrations > Okta, normalised and
//! validated, and the org issuer made from it (OKTA.md §8: exactly `https://{domain}`).
//!
//! Admins paste all sorts of things: `acme.okta.com`, `https://acme.okta.com/`, the
//! admin console's `https://acme-admin.okta.com/admin/dashboard`, a custom domain.
//! [`OktaDomain::parse`] strips a pasted `https://`, a trailing `/` and any path, then
//! accepts a DNS host name: Okta's own (`*.okta.com`, `*.oktapreview.com`,
//! `*.okta-emea.com`, `*.okta-gov.com`, `*.okta.mil`, `*.trexcloud.com`) or a custom
//! domain. IP addresses, user info and ports are refused; only under the development
//! switch is a plain-HTTP loopback origin (`http://127.0.0.1:PORT`, `localhost:PORT`,
//! as the simulated org's) accepted.
//!
//! The policy of which orgs a workspace may use lives here too (DESIGN.md, "Sign-in
//! trust"): every workspace shares one redirect URI, so a code must only ever go to an
//! org Okta runs. Okta's own domains are always allowed; a custom URL domain only once
//! an operator allowed it for that workspace ([`OktaDomain::permitted`]). And a domain
//! must lead to the public internet ([`is_public`]): a name resolving to a loopback,
//! private, link-local or unique-local address would turn the page's discovery check
//! into a probe of the region's own network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which kind of Okta domain it is (for the page's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// `*.okta.com`.
    Okta,
    /// `*.oktapreview.com` (sandbox orgs).
    OktaPreview,
    /// `*.okta-emea.com`.
    OktaEmea,
    /// `*.okta-gov.com` (Okta for US government).
    OktaGov,
    /// `*.okta.mil` (Okta for the US Department of Defense).
    OktaMil,
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
            DomainKind::OktaGov => "Okta for Government domain",
            DomainKind::OktaMil => "Okta for Defense domain",
            DomainKind::Trexcloud => "Okta test-cell domain",
            DomainKind::Custom => "custom domain",
            DomainKind::Loopback => "local development org",
        }
    }

    /// Whether Okta itself operates every host of this kind (no allowance needed).
    pub fn okta_operated(self) -> bool {
        !matches!(self, DomainKind::Custom | DomainKind::Loopback)
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
    /// A custom domain that no operator allowed for this workspace.
    #[error(
        "{0} is not an Okta domain (such as acme.okta.com). A custom Okta domain can be \
         used only after ClosedLoop AI allows it for this workspace: ask ClosedLoop AI \
         support (an operator runs `region-worker workspace allow-okta-domain --team \
         <your workspace ID> --domain {0}`), or enter your org's okta.com domain."
    )]
    CustomNotAllowed(String),
}

/// Okta's own parent domains and their kinds.
const OKTA_PARENTS: [(&str, DomainKind); 6] = [
    ("okta.com", DomainKind::Okta),
    ("oktapreview.com", DomainKind::OktaPreview),
    ("okta-emea.com", DomainKind::OktaEmea),
    ("okta-gov.com", DomainKind::OktaGov),
    ("okta.mil", DomainKind::OktaMil),
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

    /// The host name alone (without the port of a loopback development org).
    pub fn host(&self) -> &str {
        match self.kind {
            DomainKind::Loopback => split_port(&self.domain).0,
            _ => &self.domain,
        }
    }

    /// Whether a workspace whose operator-allowed custom domains are `allowed` may use
    /// this org: Okta's own domains always, a loopback development org always (parsing
    /// already refused it outside the development switch), a custom domain only when it
    /// is in `allowed` (compared as stored: lower case, no trailing dot).
    pub fn permitted(&self, allowed: &[String]) -> Result<(), DomainError> {
        match self.kind {
            DomainKind::Custom if !allowed.iter().any(|a| a == &self.domain) => {
                Err(DomainError::CustomNotAllowed(self.domain.clone()))
            }
            _ => Ok(()),
        }
    }
}

/// An issuer as the settings store it, for comparing an authorization response's `iss`
/// (RFC 9207 §2.4: a simple string comparison) with the issuer a sign-in was sent to.
/// Only what URL syntax makes equivalent is folded: the scheme's and host's case, a
/// default port, and an empty path written as `/`. A path is kept (an Okta custom
/// authorization server is another issuer), and user info, a query or a fragment make
/// it no issuer at all (RFC 8414 §2).
pub fn normalize_issuer(iss: &str) -> Option<String> {
    if iss.len() > 512 {
        return None;
    }
    let url = url::Url::parse(iss).ok()?;
    if !matches!(url.scheme(), "https" | "http")
        || url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return None;
    }
    let mut text = url.to_string();
    if url.path() == "/" {
        text.pop();
    }
    Some(text)
}

/// Whether `ip` is an address of the public internet: not unspecified, loopback,
/// private (RFC 1918), shared (RFC 6598), link-local, unique-local (RFC 4193),
/// documentation, benchmarking, multicast, broadcast or reserved. IPv6 forms that embed
/// an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 blocks that are not the public internet (IANA's special-purpose registry):
/// network, prefix length.
const NON_PUBLIC_V4: [(Ipv4Addr, u32); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (carrier NAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local (cloud metadata services)
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, broadcast
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    !NON_PUBLIC_V4.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - len);
        ip & mask == u32::from(*net)
    })
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match ip.segments() {
        // IPv4-mapped, and IPv4-compatible (deprecated; covers `::` and `::1` too).
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => is_public_v4(v4(hi, lo)),
        // NAT64 (RFC 6052) and 6to4 (RFC 3056) reach the IPv4 address they embed.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] | [0x2002, hi, lo, ..] => is_public_v4(v4(hi, lo)),
        // Global unicast is 2000::/3 (so unique-local, link-local, multicast and
        // local-use NAT64 are out), less its special-purpose blocks.
        [first, second, ..] => {
            (first & 0xe000) == 0x2000
                && !(first == 0x2001 && second < 0x0200) // Teredo, benchmarking, ORCHID, …
                && !(first == 0x2001 && second == 0x0db8) // documentation
                && first != 0x3fff // documentation (RFC 9637)
        }
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
            (
                "agency.okta-gov.com",
                "agency.okta-gov.com",
                DomainKind::OktaGov,
            ),
            ("unit.okta.mil", "unit.okta.mil", DomainKind::OktaMil),
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

    #[test]
    fn okta_domains_are_permitted_and_custom_ones_only_when_an_operator_allowed_them() {
        let allowed = vec!["login.acme.com".to_owned()];
        for okta in [
            "acme.okta.com",
            "acme.oktapreview.com",
            "acme.okta-emea.com",
            "acme.okta-gov.com",
            "acme.okta.mil",
            "acme.trexcloud.com",
        ] {
            let d = ok(okta);
            assert!(d.kind().okta_operated(), "{okta}");
            assert_eq!(d.permitted(&[]), Ok(()), "{okta}");
        }
        assert_eq!(ok("LOGIN.acme.com.").permitted(&allowed), Ok(()));
        let other = ok("sso.acme.com");
        assert!(!other.kind().okta_operated());
        assert_eq!(
            other.permitted(&allowed),
            Err(DomainError::CustomNotAllowed("sso.acme.com".into()))
        );
        let message = other.permitted(&[]).unwrap_err().to_string();
        assert!(
            message.contains("region-worker workspace allow-okta-domain")
                && message.contains("--domain sso.acme.com"),
            "{message}"
        );
        // Look-alikes of Okta's domains are custom domains.
        for look_alike in [
            "okta.com.evil.test",
            "evilokta.com",
            "acme.okta.com.evil.test",
        ] {
            assert_eq!(ok(look_alike).kind(), DomainKind::Custom, "{look_alike}");
        }
        // The development switch keeps accepting loopback orgs without an allowance.
        let dev = OktaDomain::parse("127.0.0.1:5555", true).unwrap();
        assert_eq!(dev.permitted(&[]), Ok(()));
        assert_eq!(dev.host(), "127.0.0.1");
        assert_eq!(ok("acme.okta.com").host(), "acme.okta.com");
    }

    #[test]
    fn issuers_normalise_only_what_url_syntax_makes_equal() {
        for (input, expected) in [
            ("https://acme.okta.com", Some("https://acme.okta.com")),
            ("https://acme.okta.com/", Some("https://acme.okta.com")),
            ("HTTPS://ACME.okta.com:443", Some("https://acme.okta.com")),
            ("http://127.0.0.1:5555", Some("http://127.0.0.1:5555")),
            (
                "https://acme.okta.com/oauth2/default",
                Some("https://acme.okta.com/oauth2/default"),
            ),
            (
                "https://acme.okta.com:8443",
                Some("https://acme.okta.com:8443"),
            ),
            ("https://acme.okta.com?x=1", None),
            ("https://acme.okta.com#x", None),
            ("https://u@acme.okta.com", None),
            ("ftp://acme.okta.com", None),
            ("acme.okta.com", None),
            ("", None),
        ] {
            assert_eq!(normalize_issuer(input).as_deref(), expected, "{input:?}");
        }
        assert_ne!(
            normalize_issuer("https://evil.test"),
            normalize_issuer("https://acme.okta.com")
        );
        assert_eq!(
            normalize_issuer(&format!("https://a.test/{}", "x".repeat(600))),
            None
        );
        // What the settings store is its own normal form.
        let d = ok("acme.okta.com");
        assert_eq!(normalize_issuer(&d.issuer()), Some(d.issuer()));
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "0.0.0.0",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:c0a8:0101::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private} is not public");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.0.1",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public} is public");
        }
    }
}
