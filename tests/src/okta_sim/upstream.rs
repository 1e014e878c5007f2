//! Where the sim sends a request. Real Okta talks HTTPS to the real host; in tests the
//! region hosts (`api.closedloop.localhost`) are served by the gateway on a port-0
//! address. An [`Upstream`] is the public URL Okta would be configured with (it is what
//! the `aud` of a logout JWT or a SCIM base URL must be) plus, optionally, the address
//! actually connected to, with the public host sent in the `Host` header.

use url::Url;

/// A public URL and, optionally, the address it is reached through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The URL as Okta is configured with it.
    public: Url,
    /// Scheme, host and port to connect to instead (path and query come from `public`).
    via: Option<Url>,
}

impl Upstream {
    /// `public`, connected to directly.
    pub fn direct(public: &str) -> Result<Self, url::ParseError> {
        Ok(Self {
            public: Url::parse(public)?,
            via: None,
        })
    }

    /// `public`, connected to at `connect` (e.g. the test gateway's `http://127.0.0.1:PORT`)
    /// with `Host:` the public host.
    pub fn via(public: &str, connect: &str) -> Result<Self, url::ParseError> {
        Ok(Self {
            public: Url::parse(public)?,
            via: Some(Url::parse(connect)?),
        })
    }

    /// The public URL.
    pub fn public_url(&self) -> &Url {
        &self.public
    }

    /// The public URL as a string without a trailing slash (an `aud`, a base URL).
    pub fn public_str(&self) -> &str {
        self.public.as_str().trim_end_matches('/')
    }

    /// The URL to connect to for `suffix` (a path under the public URL, with an
    /// already-encoded query), and the `Host` header value when it must be overridden.
    pub fn target(&self, suffix: &str) -> Result<(Url, Option<String>), url::ParseError> {
        let full = Url::parse(&format!("{}{suffix}", self.public_str()))?;
        let Some(via) = &self.via else {
            return Ok((full, None));
        };
        let host = match (full.host_str(), full.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let mut target = via.clone();
        target.set_path(full.path());
        target.set_query(full.query());
        Ok((target, Some(host)))
    }

    /// A request for `suffix` on `http`, with the `Host` override when there is one.
    pub fn request(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        suffix: &str,
    ) -> Result<reqwest::RequestBuilder, url::ParseError> {
        let (url, host) = self.target(suffix)?;
        let req = http.request(method, url);
        Ok(match host {
            Some(h) => req.header(reqwest::header::HOST, h),
            None => req,
        })
    }
}

/// Percent-encodes a query value as Okta does (`%20` for spaces, never `+`).
pub fn encode_query_value(value: &str) -> String {
    // form_urlencoded writes a space as `+` and a literal `+` as `%2B`, so every `+` in
    // its output is a space.
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_keeps_path_and_query_and_sends_the_public_host() {
        let up = Upstream::via(
            "http://api.closedloop.localhost/api/scim/v2/t1",
            "http://127.0.0.1:4000",
        )
        .unwrap();
        let (url, host) = up.target("/Users?startIndex=1&count=100").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4000/api/scim/v2/t1/Users?startIndex=1&count=100"
        );
        assert_eq!(host.as_deref(), Some("api.closedloop.localhost"));
        assert_eq!(
            up.public_str(),
            "http://api.closedloop.localhost/api/scim/v2/t1"
        );

        let with_port = Upstream::via("http://h.test:8443/x", "http://127.0.0.1:1").unwrap();
        assert_eq!(
            with_port.target("").unwrap().1.as_deref(),
            Some("h.test:8443")
        );
        let direct =
            Upstream::direct("https://api.closedloop.sh/api/okta/universal-logout").unwrap();
        assert_eq!(direct.target("").unwrap().1, None);
    }

    #[test]
    fn query_values_are_encoded_like_okta() {
        assert_eq!(
            encode_query_value(r#"userName eq "a+b@x.y""#),
            "userName%20eq%20%22a%2Bb%40x.y%22"
        );
    }
}
