//! Paging parameters and the ListResponse body (RFC 7644 §3.4.2, §3.4.2.4). Okta pages
//! imports with `startIndex=1&count=100`, then 101…, and reads the paging fields as
//! JSON integers.

use serde_json::{Value, json};

use super::error::{ScimError, ScimType};

/// The URN of the SCIM list response message schema.
pub const LIST_RESPONSE_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// One page of a list request, normalised as RFC 7644 §3.4.2.4 prescribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based index of the first result; anything below 1 was read as 1.
    pub start_index: u64,
    /// How many results to return at most; negative was read as 0, and it never
    /// exceeds the server's advertised maximum.
    pub count: u32,
}

impl Paging {
    /// Reads the `startIndex` and `count` query parameters (absent or empty means
    /// "not given"). `max` is the advertised `filter.maxResults`; `default` is used
    /// when `count` is absent (and is itself capped at `max`). A non-integer is a
    /// `400 invalidValue`; out-of-range integers saturate instead of failing.
    pub fn parse(
        start_index: Option<&str>,
        count: Option<&str>,
        max: u32,
        default: u32,
    ) -> Result<Self, ScimError> {
        let start = match parse_integer("startIndex", start_index)? {
            Some(n) if n >= 1 => n.unsigned_abs(),
            _ => 1,
        };
        let count = match parse_integer("count", count)? {
            Some(n) if n < 0 => 0,
            Some(n) => u32::try_from(n).unwrap_or(u32::MAX).min(max),
            None => default.min(max),
        };
        Ok(Self {
            start_index: start,
            count,
        })
    }

    /// Rows to skip (`OFFSET`), as Postgres's `bigint`.
    pub fn offset(&self) -> i64 {
        i64::try_from(self.start_index.saturating_sub(1)).unwrap_or(i64::MAX)
    }

    /// Rows to return (`LIMIT`), as Postgres's `bigint`.
    pub fn limit(&self) -> i64 {
        i64::from(self.count)
    }

    /// The requested slice of an in-memory list (e.g. the fixed set of roles).
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        let start = usize::try_from(self.start_index.saturating_sub(1)).unwrap_or(usize::MAX);
        let start = start.min(items.len());
        let count = usize::try_from(self.count).unwrap_or(usize::MAX);
        let end = start.saturating_add(count).min(items.len());
        &items[start..end]
    }
}

/// An optionally signed decimal integer, saturating at the `i64` bounds so that
/// `startIndex=99999999999999999999` pages past the end rather than failing.
fn parse_integer(name: &str, raw: Option<&str>) -> Result<Option<i64>, ScimError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let (negative, digits) = match raw.as_bytes()[0] {
        b'-' => (true, &raw[1..]),
        b'+' => (false, &raw[1..]),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScimError::bad_request(
            ScimType::InvalidValue,
            format!("{name} must be an integer, got {raw:?}"),
        ));
    }
    let magnitude = digits.parse::<i64>().unwrap_or(i64::MAX);
    Ok(Some(if negative { -magnitude } else { magnitude }))
}

/// A page of resources as the RFC's ListResponse.
#[derive(Debug, Clone, PartialEq)]
pub struct ListResponse {
    /// How many resources match the query in total, across all pages.
    pub total_results: u64,
    /// The 1-based index of the first resource in this page.
    pub start_index: u64,
    /// The resources of this page, already projected for output.
    pub resources: Vec<Value>,
}

impl ListResponse {
    /// A page that started at `paging.start_index`.
    pub fn new(total_results: u64, paging: &Paging, resources: Vec<Value>) -> Self {
        Self {
            total_results,
            start_index: paging.start_index,
            resources,
        }
    }

    /// The RFC body: integer paging fields, `itemsPerPage` = resources in this page,
    /// and `Resources` present even when empty (Okta reads it on a zero-match filter).
    pub fn to_json(&self) -> Value {
        self.clone().into_json()
    }

    /// [`to_json`](Self::to_json) without copying the resources.
    pub fn into_json(self) -> Value {
        let mut body = json!({
            "schemas": [LIST_RESPONSE_URN],
            "totalResults": self.total_results,
            "startIndex": self.start_index,
            "itemsPerPage": self.resources.len(),
        });
        if let Some(obj) = body.as_object_mut() {
            obj.insert("Resources".into(), Value::Array(self.resources));
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(start: Option<&str>, count: Option<&str>) -> Result<Paging, ScimError> {
        Paging::parse(start, count, 200, 100)
    }

    #[test]
    fn defaults_and_okta_import_pages() {
        assert_eq!(
            page(None, None).unwrap(),
            Paging {
                start_index: 1,
                count: 100
            }
        );
        let p = page(Some("101"), Some("100")).unwrap();
        assert_eq!(
            (p.start_index, p.count, p.offset(), p.limit()),
            (101, 100, 100, 100)
        );
    }

    #[test]
    fn normalises_out_of_range_values() {
        assert_eq!(page(Some("0"), None).unwrap().start_index, 1);
        assert_eq!(page(Some("-5"), None).unwrap().start_index, 1);
        assert_eq!(page(None, Some("-1")).unwrap().count, 0);
        assert_eq!(page(None, Some("0")).unwrap().count, 0);
        assert_eq!(page(None, Some("5000")).unwrap().count, 200);
        assert_eq!(Paging::parse(None, None, 50, 100).unwrap().count, 50);
        let huge = page(
            Some("99999999999999999999999"),
            Some("99999999999999999999"),
        )
        .unwrap();
        assert_eq!(huge.count, 200);
        assert_eq!(huge.offset(), i64::MAX - 1);
        assert_eq!(page(Some(" 3 "), Some("+7")).unwrap().start_index, 3);
        assert_eq!(page(Some(""), Some("")).unwrap(), page(None, None).unwrap());
    }

    #[test]
    fn non_numeric_is_invalid_value() {
        for bad in ["abc", "1.5", "1e3", "-", "+", "0x10", "١"] {
            let e = page(Some(bad), None).unwrap_err();
            assert_eq!(
                (e.status, e.scim_type),
                (400, Some(ScimType::InvalidValue)),
                "{bad}"
            );
            assert!(page(None, Some(bad)).is_err());
        }
    }

    #[test]
    fn slices_in_memory_lists() {
        let items = [1, 2, 3, 4, 5];
        let p = |s: u64, c: u32| Paging {
            start_index: s,
            count: c,
        };
        assert_eq!(p(1, 2).slice(&items), &[1, 2]);
        assert_eq!(p(4, 10).slice(&items), &[4, 5]);
        assert_eq!(p(9, 10).slice(&items), &[] as &[i32]);
        assert_eq!(p(u64::MAX, u32::MAX).slice(&items), &[] as &[i32]);
    }

    #[test]
    fn renders_integer_paging_fields() {
        let p = page(Some("1"), Some("1")).unwrap();
        let body = ListResponse::new(7, &p, vec![json!({"id": "a"})]).to_json();
        assert_eq!(
            body,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                "totalResults": 7,
                "startIndex": 1,
                "itemsPerPage": 1,
                "Resources": [{"id": "a"}]
            })
        );
        let empty = ListResponse::new(0, &p, vec![]).to_json();
        assert_eq!(empty["Resources"], json!([]));
        assert_eq!(empty["itemsPerPage"], 0);
    }
}
