//! The request body of a Global Token Revocation request (OKTA.md §7): whom to log out.
//!
//! `{"sub_id": {"format": "email", "email": "…"}}`, or the older drafts' key `subject`
//! in its place. Formats: `email`, `iss_sub` (`iss`, `sub`) and `opaque` (`id`); any
//! other format is "unknown" (`400`), as is a body that is not this shape. Pure: no
//! I/O, unit-tested here.

use serde_json::{Map, Value};

/// Whom a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `format: email`: the user's email (user name or primary email).
    Email(String),
    /// `format: iss_sub`: the user `sub` at issuer `iss` (Okta's user id at the org):
    /// the user bound to that pair at their first sign-in, or provisioned by SCIM with
    /// `sub` as `externalId`, so that a just-in-time user is found too.
    IssSub {
        /// The issuer.
        iss: String,
        /// The subject at that issuer.
        sub: String,
    },
    /// `format: opaque`: an identifier the two sides agreed on: our SCIM id of the user,
    /// or Okta's user id (the SCIM `externalId`).
    Opaque(String),
}

impl Subject {
    /// The format's name, for the audit trail.
    pub fn format(&self) -> &'static str {
        match self {
            Subject::Email(_) => "email",
            Subject::IssSub { .. } => "iss_sub",
            Subject::Opaque(_) => "opaque",
        }
    }

    /// The identifier, for the audit trail.
    pub fn describe(&self) -> String {
        match self {
            Subject::Email(e) => e.clone(),
            Subject::IssSub { iss, sub } => format!("{iss} {sub}"),
            Subject::Opaque(id) => id.clone(),
        }
    }
}

/// Why a body was refused (both are `400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    /// Not a JSON object with a well-formed subject.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// A subject format this endpoint does not support.
    #[error("unsupported subject format")]
    UnknownFormat,
}

impl SubjectError {
    /// A short, stable code for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            SubjectError::Malformed(_) => "malformed_body",
            SubjectError::UnknownFormat => "unknown_format",
        }
    }
}

/// The longest identifier accepted (an email is at most 254 characters).
const MAX_IDENTIFIER: usize = 1024;

/// Parses a request body.
pub fn parse(body: &[u8]) -> Result<Subject, SubjectError> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err(SubjectError::Malformed("the body is not a JSON object"));
    };
    let subject = match (body.get("sub_id"), body.get("subject")) {
        (Some(s), _) | (None, Some(s)) => s,
        (None, None) => return Err(SubjectError::Malformed("no sub_id")),
    };
    let Value::Object(subject) = subject else {
        return Err(SubjectError::Malformed("sub_id is not an object"));
    };
    let format = match subject.get("format") {
        Some(Value::String(f)) => f.as_str(),
        _ => return Err(SubjectError::Malformed("sub_id has no format")),
    };
    match format {
        "email" => {
            let email = field(subject, "email")?;
            let plausible = email
                .rsplit_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
            if !plausible {
                return Err(SubjectError::Malformed("email is not an email address"));
            }
            Ok(Subject::Email(email.to_owned()))
        }
        "iss_sub" => Ok(Subject::IssSub {
            iss: field(subject, "iss")?.to_owned(),
            sub: field(subject, "sub")?.to_owned(),
        }),
        "opaque" => Ok(Subject::Opaque(field(subject, "id")?.to_owned())),
        _ => Err(SubjectError::UnknownFormat),
    }
}

/// A non-empty, bounded string member.
fn field<'a>(subject: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, SubjectError> {
    match subject.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= MAX_IDENTIFIER => Ok(s.trim()),
        _ => Err(SubjectError::Malformed(
            "a subject member is missing or empty",
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(v: Value) -> Result<Subject, SubjectError> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn reads_every_supported_format_under_both_keys() {
        assert_eq!(
            p(json!({ "sub_id": { "format": "email", "email": "jane@acme.test" } })),
            Ok(Subject::Email("jane@acme.test".into()))
        );
        assert_eq!(
            p(json!({ "subject": { "format": "email", "email": " jane@acme.test " } })),
            Ok(Subject::Email("jane@acme.test".into()))
        );
        assert_eq!(
            p(
                json!({ "sub_id": { "format": "iss_sub", "iss": "https://acme.okta.com", "sub": "00u1" } })
            ),
            Ok(Subject::IssSub {
                iss: "https://acme.okta.com".into(),
                sub: "00u1".into()
            })
        );
        assert_eq!(
            p(json!({ "sub_id": { "format": "opaque", "id": "00u1" } })),
            Ok(Subject::Opaque("00u1".into()))
        );
        // sub_id wins over the older key.
        assert_eq!(
            p(
                json!({ "sub_id": { "format": "opaque", "id": "a" }, "subject": { "format": "opaque", "id": "b" } })
            ),
            Ok(Subject::Opaque("a".into()))
        );
    }

    #[test]
    fn unknown_formats_and_malformed_bodies_are_told_apart() {
        for format in [
            "phone_number",
            "account",
            "did",
            "uri",
            "aliases",
            "EMAIL",
            "",
        ] {
            assert_eq!(
                p(json!({ "sub_id": { "format": format, "email": "a@b.c" } })),
                Err(SubjectError::UnknownFormat),
                "{format}"
            );
        }
        for bad in [
            json!(null),
            json!([]),
            json!({}),
            json!({ "sub_id": "jane@acme.test" }),
            json!({ "sub_id": { "email": "jane@acme.test" } }),
            json!({ "sub_id": { "format": 1 } }),
            json!({ "sub_id": { "format": "email" } }),
            json!({ "sub_id": { "format": "email", "email": "" } }),
            json!({ "sub_id": { "format": "email", "email": "jane" } }),
            json!({ "sub_id": { "format": "email", "email": 7 } }),
            json!({ "sub_id": { "format": "iss_sub", "iss": "https://acme.okta.com" } }),
            json!({ "sub_id": { "format": "opaque", "id": "x".repeat(2000) } }),
        ] {
            assert!(
                matches!(p(bad.clone()), Err(SubjectError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse(b"not json"),
            Err(SubjectError::Malformed(_))
        ));
        assert!(matches!(parse(b""), Err(SubjectError::Malformed(_))));
    }
}
