//! Email domains a workspace claims for sign-in by email domain (home realm discovery,
//! `email_domains`, V14): the normalised domain ([`EmailDomain`]), the DNS TXT record
//! that proves a claim, and the claims themselves.
//!
//! A claim is pending until the worker finds its record in the domain's DNS (only the
//! domain's owner can publish it), and only a verified claim routes sign-ins: otherwise
//! any tenant could claim `acme.com` and send every new Acme user typing their email
//! at `/auth` to its own Okta login page. One verified claim per domain per region (a
//! unique index); an operator releases it for another workspace. Every change is
//! audited in the transaction that makes it.

use std::fmt;

use rand::RngCore;
use serde_json::json;
use shared::ids::TeamId;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use super::audit::{self, AuditAction, AuditEvent};
use crate::store::pg::{GenericClient, Pool};

/// The label in front of the domain where the proof is published.
pub const CHALLENGE_LABEL: &str = "_closedloop-challenge";
/// What the TXT value starts with; the claim's token follows.
pub const CHALLENGE_PREFIX: &str = "closedloop-domain-verification=";
/// The most claims (pending or verified) one workspace holds: enough for any company's
/// domains, few enough that a workspace cannot fill the table.
pub const MAX_CLAIMS_PER_WORKSPACE: i64 = 50;

/// Free mail providers: their users belong to no one company, so a workspace that
/// claimed one would receive everyone's sign-ins. A short list of the common ones;
/// verification stops the rest (no tenant can publish records in their DNS).
const FREE_MAIL: &[&str] = &[
    "aol.com",
    "fastmail.com",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hey.com",
    "hotmail.com",
    "icloud.com",
    "live.com",
    "mac.com",
    "mail.com",
    "me.com",
    "msn.com",
    "outlook.com",
    "pm.me",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "tutanota.com",
    "web.de",
    "yahoo.com",
    "yandex.com",
    "yandex.ru",
    "ymail.com",
    "zoho.com",
];

/// Suffixes under which anyone registers a name (`acme.co.uk`, `acme.github.io`): the
/// suffix itself is nobody's email domain.
const SHARED_SUFFIXES: &[&str] = &[
    "ac.uk",
    "co.in",
    "co.jp",
    "co.nz",
    "co.uk",
    "co.za",
    "com.au",
    "com.br",
    "com.cn",
    "com.mx",
    "gov.uk",
    "net.au",
    "org.au",
    "org.uk",
    "github.io",
    "herokuapp.com",
    "netlify.app",
    "pages.dev",
    "vercel.app",
];

/// Top-level labels that never reach the public DNS (RFC 6761, RFC 6762).
const LOCAL_TLDS: &[&str] = &["arpa", "internal", "invalid", "local", "localhost"];

/// Why a domain cannot be claimed; the text is what the admin reads beside the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// Nothing was entered.
    #[error("Enter your company's email domain, for example acme.com.")]
    Empty,
    /// A URL, an address or something that is not a host name.
    #[error(
        "Enter only the domain of your email addresses, for example acme.com (no https://, path or user name)."
    )]
    Malformed,
    /// An IP address.
    #[error("An IP address is not an email domain. Enter a domain such as acme.com.")]
    IpAddress,
    /// One label (`com`, `acme`) or a suffix shared by many companies (`co.uk`).
    #[error(
        "{0} is not a company's own domain. Enter the domain of your email addresses, such as acme.com."
    )]
    Suffix(String),
    /// A name that never resolves in the public DNS.
    #[error("{0} is not a public domain: it cannot be verified.")]
    Local(String),
    /// A free mail provider's domain.
    #[error(
        "{0} is a free email provider's domain, shared by people of many companies: it cannot be claimed. Claim your company's own domain."
    )]
    FreeMail(String),
}

/// An email domain as claims store and compare it: lower-case ASCII (internationalised
/// names in their IDNA form, `xn--…`), no final dot, at least two labels of letters,
/// digits and hyphens, neither a free mail provider nor a shared suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailDomain(String);

impl EmailDomain {
    /// Normalises what an admin typed (`ACME.com`, `@acme.com`, `bücher.de`).
    pub fn parse(input: &str) -> Result<Self, DomainError> {
        let s = input.trim();
        let s = s.strip_prefix('@').unwrap_or(s);
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(DomainError::Empty);
        }
        let bracketless = s.trim_start_matches('[').trim_end_matches(']');
        if bracketless.parse::<std::net::IpAddr>().is_ok() {
            return Err(DomainError::IpAddress);
        }
        if s.len() > 253
            || s.contains(['@', '/', ':', '\\', '?', '#'])
            || s.contains(char::is_whitespace)
        {
            return Err(DomainError::Malformed);
        }
        let domain = match url::Host::parse(s) {
            Ok(url::Host::Domain(d)) => d,
            Ok(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => return Err(DomainError::IpAddress),
            Err(_) => return Err(DomainError::Malformed),
        };
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if domain.len() > 253 || !labels.iter().all(label_ok) {
            return Err(DomainError::Malformed);
        }
        let tld = labels.last().copied().unwrap_or_default();
        if tld.bytes().all(|b| b.is_ascii_digit()) {
            return Err(DomainError::IpAddress);
        }
        if LOCAL_TLDS.contains(&tld) {
            return Err(DomainError::Local(domain));
        }
        if labels.len() < 2 || SHARED_SUFFIXES.contains(&domain.as_str()) {
            return Err(DomainError::Suffix(domain));
        }
        if FREE_MAIL.contains(&domain.as_str()) {
            return Err(DomainError::FreeMail(domain));
        }
        Ok(Self(domain))
    }

    /// The domain of an email address, normalised; `None` when it is not one a workspace
    /// could have claimed.
    pub fn of_email(email: &str) -> Option<Self> {
        let (_, domain) = email.trim().rsplit_once('@')?;
        Self::parse(domain).ok()
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name whose TXT record proves a claim: `_closedloop-challenge.<domain>`.
    pub fn challenge_name(&self) -> String {
        format!("{CHALLENGE_LABEL}.{}", self.0)
    }
}

impl fmt::Display for EmailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new claim's token: 128 random bits in lower-case hex, which no DNS console
/// mangles.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The TXT value that proves the claim holding `token`.
pub fn challenge_value(token: &str) -> String {
    format!("{CHALLENGE_PREFIX}{token}")
}

/// A workspace's claim of an email domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainClaim {
    /// The domain (normalised).
    pub domain: EmailDomain,
    /// The token its TXT record must carry.
    pub token: String,
    /// When it was claimed.
    pub claimed_at: OffsetDateTime,
    /// Who claimed it (`user:<id>`).
    pub claimed_by: String,
    /// When its record was found; `None` while pending.
    pub verified_at: Option<OffsetDateTime>,
}

impl DomainClaim {
    /// The TXT record's name.
    pub fn record_name(&self) -> String {
        self.domain.challenge_name()
    }

    /// The TXT record's value.
    pub fn record_value(&self) -> String {
        challenge_value(&self.token)
    }

    fn of(r: &tokio_postgres::Row) -> Self {
        Self {
            domain: EmailDomain(r.get(0)),
            token: r.get(1),
            claimed_at: r.get(2),
            claimed_by: r.get(3),
            verified_at: r.get(4),
        }
    }
}

const COLUMNS: &str = "domain, token, claimed_at, claimed_by, verified_at";

/// The claims of `team_id`, by domain.
pub async fn list(
    client: &impl GenericClient,
    team_id: TeamId,
) -> Result<Vec<DomainClaim>, StoreError> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM email_domains WHERE team_id = $1 ORDER BY domain"),
            &[&team_id.as_uuid()],
        )
        .await?;
    Ok(rows.iter().map(DomainClaim::of).collect())
}

/// The claim of `domain` by `team_id`, if any.
pub async fn get(
    client: &impl GenericClient,
    team_id: TeamId,
    domain: &EmailDomain,
) -> Result<Option<DomainClaim>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT {COLUMNS} FROM email_domains WHERE team_id = $1 AND domain = $2"),
            &[&team_id.as_uuid(), &domain.as_str()],
        )
        .await?;
    Ok(row.as_ref().map(DomainClaim::of))
}

/// What claiming a domain did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claimed {
    /// A new pending claim (audited).
    New(DomainClaim),
    /// The workspace already claims it: that claim, unchanged.
    Already(DomainClaim),
    /// The workspace holds [`MAX_CLAIMS_PER_WORKSPACE`] claims already.
    TooMany,
}

/// Claims `domain` for `team_id` (pending, with a fresh token), audited as
/// `workspace.domain.claimed` by `actor`. Another workspace's claim, even a verified
/// one, does not stop it: verifying does.
pub async fn claim(
    pool: &Pool,
    team_id: TeamId,
    domain: &EmailDomain,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Claimed, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    if let Some(existing) = get(&tx, team_id, domain).await? {
        return Ok(Claimed::Already(existing));
    }
    let held: i64 = tx
        .query_one(
            "SELECT count(*) FROM email_domains WHERE team_id = $1",
            &[&team_id.as_uuid()],
        )
        .await?
        .get(0);
    if held >= MAX_CLAIMS_PER_WORKSPACE {
        return Ok(Claimed::TooMany);
    }
    let row = tx
        .query_opt(
            &format!(
                "INSERT INTO email_domains (team_id, domain, token, claimed_at, claimed_by)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING {COLUMNS}"
            ),
            &[
                &team_id.as_uuid(),
                &domain.as_str(),
                &new_token(),
                &now,
                &actor,
            ],
        )
        .await?;
    let Some(row) = row else {
        // Claimed concurrently (a second tab): that claim.
        drop(tx);
        let client = pool.get().await?;
        return Ok(match get(&client, team_id, domain).await? {
            Some(c) => Claimed::Already(c),
            None => Claimed::TooMany,
        });
    };
    let claim = DomainClaim::of(&row);
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action: AuditAction::WorkspaceDomainClaimed,
            target: Some(domain.as_str()),
            detail: json!({ "domain": domain.as_str(), "record": claim.record_name() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Claimed::New(claim))
}

/// What recording a verification did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The claim is verified now (audited).
    Now,
    /// It was verified before; nothing changed.
    Already,
    /// The workspace does not claim this domain.
    NotClaimed,
    /// Another workspace of the region holds the verified claim.
    HeldElsewhere,
}

/// Marks the claim of `domain` by `team_id` verified, once its record was found,
/// audited as `workspace.domain.verified`. Refused while another workspace holds the
/// verified claim (checked here for the message, and by the unique index against a
/// concurrent verification).
pub async fn mark_verified(
    pool: &Pool,
    team_id: TeamId,
    domain: &EmailDomain,
    actor: &str,
    now: OffsetDateTime,
) -> Result<Verified, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let team = team_id.as_uuid();
    let mine = tx
        .query_opt(
            "SELECT verified_at FROM email_domains WHERE team_id = $1 AND domain = $2 FOR UPDATE",
            &[&team, &domain.as_str()],
        )
        .await?;
    match mine.map(|r| r.get::<_, Option<OffsetDateTime>>(0)) {
        None => return Ok(Verified::NotClaimed),
        Some(Some(_)) => return Ok(Verified::Already),
        Some(None) => {}
    }
    let elsewhere = tx
        .query_opt(
            "SELECT 1 FROM email_domains
              WHERE domain = $1 AND verified_at IS NOT NULL AND team_id <> $2",
            &[&domain.as_str(), &team],
        )
        .await?;
    if elsewhere.is_some() {
        return Ok(Verified::HeldElsewhere);
    }
    let updated = tx
        .execute(
            "UPDATE email_domains SET verified_at = $3 WHERE team_id = $1 AND domain = $2",
            &[&team, &domain.as_str(), &now],
        )
        .await
        .map_err(StoreError::from);
    match updated {
        Ok(_) => {}
        Err(e) if e.is_unique_violation() => return Ok(Verified::HeldElsewhere),
        Err(e) => return Err(e),
    }
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action: AuditAction::WorkspaceDomainVerified,
            target: Some(domain.as_str()),
            detail: json!({ "domain": domain.as_str(), "record": domain.challenge_name() }),
        },
    )
    .await?;
    match tx.commit().await.map_err(StoreError::from) {
        Ok(()) => Ok(Verified::Now),
        Err(e) if e.is_unique_violation() => Ok(Verified::HeldElsewhere),
        Err(e) => Err(e),
    }
}

/// Removes `team_id`'s claim of `domain` (pending or verified), audited as
/// `workspace.domain.removed`; `false` when it has none (nothing audited).
pub async fn remove(
    pool: &Pool,
    team_id: TeamId,
    domain: &EmailDomain,
    actor: &str,
) -> Result<bool, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let removed = tx
        .query_opt(
            "DELETE FROM email_domains WHERE team_id = $1 AND domain = $2
             RETURNING verified_at IS NOT NULL",
            &[&team_id.as_uuid(), &domain.as_str()],
        )
        .await?;
    let Some(row) = removed else {
        return Ok(false);
    };
    let was_verified: bool = row.get(0);
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action: AuditAction::WorkspaceDomainRemoved,
            target: Some(domain.as_str()),
            detail: json!({ "domain": domain.as_str(), "was_verified": was_verified }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Releases the verified claim of `domain`, whichever workspace holds it, audited as
/// `workspace.domain.released` under that workspace: its sign-ins stop routing there
/// and another workspace may verify the domain. The claim is deleted, not merely
/// unverified, so the former holder must claim it again with a new record. `None` when
/// no workspace holds it.
pub async fn release(
    pool: &Pool,
    domain: &EmailDomain,
    actor: &str,
) -> Result<Option<TeamId>, StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let released = tx
        .query_opt(
            "DELETE FROM email_domains WHERE domain = $1 AND verified_at IS NOT NULL
             RETURNING team_id",
            &[&domain.as_str()],
        )
        .await?;
    let Some(row) = released else {
        return Ok(None);
    };
    let team_id = TeamId::from(row.get::<_, Uuid>(0));
    audit::record(
        &tx,
        &AuditEvent {
            team_id: Some(team_id),
            actor,
            action: AuditAction::WorkspaceDomainReleased,
            target: Some(domain.as_str()),
            detail: json!({ "domain": domain.as_str() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(team_id))
}

/// The workspace whose verified claim routes sign-ins of `domain`, as `/auth` needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeRealm {
    /// The workspace.
    pub team_id: TeamId,
    /// Its display name.
    pub name: String,
    /// `None`: Okta not configured; `Some(false)`: sign-in turned off.
    pub sign_in: Option<bool>,
}

/// The home realm of `domain`: the workspace holding its verified claim, if any.
pub async fn home_realm(
    client: &impl GenericClient,
    domain: &EmailDomain,
) -> Result<Option<HomeRealm>, StoreError> {
    let row = client
        .query_opt(
            "SELECT w.team_id, w.name, o.sign_in_enabled
               FROM email_domains d
               JOIN workspaces w ON w.team_id = d.team_id
               LEFT JOIN okta_settings o ON o.team_id = d.team_id
              WHERE d.domain = $1 AND d.verified_at IS NOT NULL",
            &[&domain.as_str()],
        )
        .await?;
    Ok(row.map(|r| HomeRealm {
        team_id: TeamId::from(r.get::<_, Uuid>(0)),
        name: r.get(1),
        sign_in: r.get(2),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Result<String, DomainError> {
        EmailDomain::parse(s).map(|d| d.as_str().to_owned())
    }

    #[test]
    fn domains_are_normalised() {
        assert_eq!(parsed("acme.com").unwrap(), "acme.com");
        assert_eq!(parsed("  ACME.Com. ").unwrap(), "acme.com");
        assert_eq!(parsed("@acme.com").unwrap(), "acme.com");
        assert_eq!(parsed("eng.acme.co.uk").unwrap(), "eng.acme.co.uk");
        assert_eq!(parsed("Bücher.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(parsed("xn--bcher-kva.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(parsed("my-company.io").unwrap(), "my-company.io");
    }

    #[test]
    fn what_is_no_company_domain_is_refused() {
        assert_eq!(parsed(""), Err(DomainError::Empty));
        assert_eq!(parsed("  @ "), Err(DomainError::Empty));
        for bad in [
            "https://acme.com",
            "acme.com/path",
            "jane@acme.com",
            "acme .com",
            "acme..com",
            "-acme.com",
            "acme-.com",
            "ac_me.com",
            "acme.com:443",
            &format!("{}.com", "a".repeat(64)),
            &format!("{}com", "a.".repeat(127)),
        ] {
            assert_eq!(parsed(bad), Err(DomainError::Malformed), "{bad:?}");
        }
        assert_eq!(parsed("10.0.0.1"), Err(DomainError::IpAddress));
        assert_eq!(parsed("[::1]"), Err(DomainError::IpAddress));
        assert!(matches!(parsed("com"), Err(DomainError::Suffix(_))));
        assert!(matches!(parsed("acme"), Err(DomainError::Suffix(_))));
        assert!(matches!(parsed("co.uk"), Err(DomainError::Suffix(_))));
        assert!(matches!(parsed("CO.UK."), Err(DomainError::Suffix(_))));
        assert!(matches!(parsed("github.io"), Err(DomainError::Suffix(_))));
        assert!(matches!(parsed("localhost"), Err(DomainError::Local(_))));
        assert!(matches!(parsed("acme.local"), Err(DomainError::Local(_))));
        for free in [
            "gmail.com",
            "GMail.com",
            "outlook.com",
            "yahoo.com",
            "icloud.com",
            "proton.me",
            "hotmail.com",
        ] {
            assert!(
                matches!(parsed(free), Err(DomainError::FreeMail(_))),
                "{free}"
            );
        }
        let message = parsed("gmail.com").unwrap_err().to_string();
        assert!(message.contains("free email provider"), "{message}");
    }

    #[test]
    fn an_email_names_its_domain() {
        assert_eq!(
            EmailDomain::of_email("Jane@ACME.com").map(|d| d.0),
            Some("acme.com".to_owned())
        );
        assert_eq!(EmailDomain::of_email("jane@gmail.com"), None);
        assert_eq!(EmailDomain::of_email("no-at-sign"), None);
    }

    #[test]
    fn the_record_names_the_domain_and_carries_the_token() {
        let token = new_token();
        assert_eq!(token.len(), 32);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(token, new_token());
        let claim = DomainClaim {
            domain: EmailDomain::parse("acme.com").unwrap(),
            token: token.clone(),
            claimed_at: OffsetDateTime::UNIX_EPOCH,
            claimed_by: "user:x".into(),
            verified_at: None,
        };
        assert_eq!(claim.record_name(), "_closedloop-challenge.acme.com");
        assert_eq!(
            claim.record_value(),
            format!("closedloop-domain-verification={token}")
        );
    }
}
