//! OAuth request parameters (a query string or a form body). RFC 6749 §3.1 and §3.2:
//! a parameter sent without a value is treated as omitted, and one sent twice is an
//! error, never silently resolved to the first or last value.

use std::collections::HashMap;

/// Parameters of one request, with repeated names remembered.
#[derive(Debug, Default)]
pub struct Params {
    /// Non-empty values by name.
    values: HashMap<String, String>,
    /// Names that appeared more than once (with a value).
    repeated: Vec<String>,
}

/// A parameter was sent more than once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {0} is repeated")]
pub struct Repeated(pub String);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or a body).
    pub fn parse(encoded: &[u8]) -> Self {
        let mut params = Self::default();
        for (k, v) in url::form_urlencoded::parse(encoded) {
            if v.is_empty() {
                continue;
            }
            if params.values.contains_key(k.as_ref()) {
                if !params.repeated.iter().any(|r| r == k.as_ref()) {
                    params.repeated.push(k.into_owned());
                }
                continue;
            }
            params.values.insert(k.into_owned(), v.into_owned());
        }
        params
    }

    /// The value of `name`: `Ok(None)` when absent or empty, an error when repeated.
    pub fn get(&self, name: &str) -> Result<Option<&str>, Repeated> {
        if self.repeated.iter().any(|r| r == name) {
            return Err(Repeated(name.to_owned()));
        }
        Ok(self.values.get(name).map(String::as_str))
    }

    /// The first repeated parameter, if any.
    pub fn first_repeated(&self) -> Option<&str> {
        self.repeated.first().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_repeats_are_errors() {
        let p = Params::parse(b"a=1&b=&c=x%20y&a=2&d=+");
        assert_eq!(p.get("a"), Err(Repeated("a".into())));
        assert_eq!(p.get("b"), Ok(None));
        assert_eq!(p.get("c"), Ok(Some("x y")));
        assert_eq!(p.get("d"), Ok(Some(" ")));
        assert_eq!(p.get("z"), Ok(None));
        assert_eq!(p.first_repeated(), Some("a"));
        assert_eq!(Params::parse(b"b=&b=1").get("b"), Ok(Some("1")));
    }
}
