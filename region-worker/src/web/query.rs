//! The query strings of the list pages (People, Groups, Activity): reading the
//! parameters a browser sent, and writing the links that keep a page's filter.

/// A page's query parameters: the first value of each name, as the browser sent it
/// (percent-decoded; anything not UTF-8 replaced).
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of `query` (the part after `?`, if any).
    pub fn parse(query: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first non-empty value of `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// `pairs` as a query string, the empty values left out.
pub fn encode(pairs: &[(&str, Option<&str>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    query.finish()
}

/// A link to `path` with `pairs` (empty values left out) as its query.
pub fn link(path: &str, pairs: &[(&str, Option<&str>)]) -> String {
    let query = encode(pairs);
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}
