//! Header rewriting at the edge: hop-by-hop headers (RFC 9110 §7.6.1) belong to one
//! connection and are removed in both directions; the `X-Forwarded-*` headers tell the
//! worker who the client is, and are always *replaced*, because the gateway is the edge
//! and a client must not be able to choose its own apparent address.

use http::header::{CONNECTION, HOST, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`: the client's IP address, as the gateway saw it.
pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`: the scheme the client used to reach the gateway.
pub(crate) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`: the host the client asked for.
pub(crate) const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Standard `Forwarded` (RFC 7239). The gateway does not set it, and removes a
/// client-sent one for the same reason it replaces `X-Forwarded-For`: a worker must never
/// see a client-chosen claim about where the request came from.
const FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// Hop-by-hop headers removed besides `Connection` and the ones it lists.
const HOP_BY_HOP: [HeaderName; 6] = [
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// The scheme the client used, for `X-Forwarded-Proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForwardedProto {
    /// Cleartext HTTP/1.1 or h2c.
    Http,
    /// HTTP/1.1 or HTTP/2 over TLS.
    Https,
}

impl ForwardedProto {
    /// The scheme's name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ForwardedProto::Http => "http",
            ForwardedProto::Https => "https",
        }
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// Whether `name` is `Connection` or one of the fixed hop-by-hop headers.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == CONNECTION || HOP_BY_HOP.contains(name)
}

/// Removes `Connection`, every header it names, and the fixed hop-by-hop headers.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The common case has none: one pass over the few names present is cheaper than
    // seven hashed removals.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    if headers.contains_key(CONNECTION) {
        // `close` and `keep-alive` are the usual tokens and name no header to remove
        // besides `Keep-Alive`, which goes anyway; so the common case allocates nothing.
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                !t.is_empty()
                    && !t.eq_ignore_ascii_case("close")
                    && !t.eq_ignore_ascii_case("keep-alive")
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        headers.remove(CONNECTION);
        for name in listed {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// What the gateway knows about the client, computed once per connection.
#[derive(Debug, Clone)]
pub(crate) struct ClientInfo {
    /// The client's IP as an `X-Forwarded-For` value, formatted once per connection
    /// rather than once per request.
    pub(crate) forwarded_for: HeaderValue,
    /// The scheme of the listener the client came through.
    pub(crate) proto: ForwardedProto,
}

impl ClientInfo {
    /// Client info for a peer address seen on a listener speaking `proto`.
    pub(crate) fn new(peer: std::net::IpAddr, proto: ForwardedProto) -> Self {
        let forwarded_for = HeaderValue::from_str(&peer.to_string())
            .expect("an IP address is a valid header value");
        Self {
            forwarded_for,
            proto,
        }
    }
}

/// Rewrites the headers of a request about to be forwarded: strips hop-by-hop headers,
/// sets `Host` to the host the request was routed by, and replaces `X-Forwarded-*`.
/// Runs after stripping, so a client cannot use `Connection` to remove what we set.
pub(crate) fn prepare_upstream(headers: &mut HeaderMap, host: &HeaderValue, client: &ClientInfo) {
    strip_hop_by_hop(headers);
    headers.remove(FORWARDED);
    headers.insert(HOST, host.clone());
    headers.insert(X_FORWARDED_FOR, client.forwarded_for.clone());
    headers.insert(X_FORWARDED_PROTO, client.proto.header_value());
    headers.insert(X_FORWARDED_HOST, host.clone());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn strips_fixed_and_listed_hop_by_hop_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret-Hop"),
            ("connection", "close,other-hop"),
            ("x-secret-hop", "1"),
            ("other-hop", "2"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("authorization", "Bearer t"),
            ("x-end-to-end", "3"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "x-end-to-end"]);
    }

    #[test]
    fn forwarded_headers_replace_client_values_and_survive_connection_tricks() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "7.7.7.7"),
            ("x-forwarded-proto", "https"),
            ("forwarded", "for=6.6.6.6"),
            ("connection", "x-forwarded-for, host"),
            ("host", "api.example"),
        ]);
        let client = ClientInfo::new([10, 0, 0, 1].into(), ForwardedProto::Http);
        prepare_upstream(&mut h, &HeaderValue::from_static("api.example"), &client);
        let all = |name| {
            h.get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(all(X_FORWARDED_FOR), ["10.0.0.1"]);
        assert_eq!(all(X_FORWARDED_PROTO), ["http"]);
        assert_eq!(all(X_FORWARDED_HOST), ["api.example"]);
        assert_eq!(all(HOST), ["api.example"]);
        assert!(h.get(FORWARDED).is_none());
        assert!(h.get(CONNECTION).is_none());
    }

    #[test]
    fn ipv6_clients_are_formatted_plainly() {
        let client = ClientInfo::new("::1".parse().unwrap(), ForwardedProto::Http);
        assert_eq!(client.forwarded_for, "::1");
    }
}
