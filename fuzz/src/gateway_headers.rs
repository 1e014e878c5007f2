//! `gateway_headers`: a client request head through the gateway's request-path
//! decisions (`gateway::edge`, the functions the proxy calls), in the proxy's order:
//! the host the request names, its region, SNI agreement (TLS) or the redirect to HTTPS
//! (cleartext), then the rewritten headers that go upstream. The region map is the
//! production one, whose hosts overlap as text (`api.closedloop.sh`,
//! `eu.api.closedloop.sh`).
//!
//! Input: UTF-8 (lossy) lines. The first is the request line, `METHOD TARGET
//! [HTTP/2|HTTP/1.0|HTTP/1.1]` (an absolute-form target, or any target on HTTP/2,
//! carries the authority); then `name: value` headers, any case, repeated at will,
//! and three connection facts: `:peer IP` (the client address), `:sni NAME` or `:tls`
//! (a TLS listener, with or without SNI) and `:port N` (the HTTPS port redirects
//! name). Heads that `http` cannot represent are skipped, as hyper refuses them.
//!
//! Checks, besides "never panics":
//! - a host routes to a region exactly when, without case, a port and one trailing dot,
//!   it is that region's app or API host: never to another region, never when it
//!   merely contains or extends a host;
//! - SNI agrees exactly when it names the routed host; a redirect's `Location` is
//!   `https://` + that host (+ port) + the request's path and query;
//! - upstream, no hop-by-hop header, no `Forwarded`, no header `Connection` named and
//!   no client `X-Forwarded-*` survives; `Host`, `X-Forwarded-Host`, `-For`, `-Proto`
//!   and `X-Request-Id` appear once each with the gateway's values; every other
//!   header arrives unchanged, values in order; the map is a valid HTTP header block.

use std::net::IpAddr;
use std::sync::OnceLock;

use gateway::edge::{self, HostRouter};
use http::header::{CONNECTION, HOST};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};
use shared::ids::RegionId;
use shared::regions::RegionMap;

/// The production region map's routing-relevant part.
const REGIONS: &str = r#"
[regions.us]
app_url = "https://app.closedloop.sh"
api_url = "https://api.closedloop.sh"
workers = ["region-worker-us-0.closedloop-us.svc.cluster.local:8081", "10.0.0.2:8081"]
worker_listen = "0.0.0.0:8081"
postgres = { env = "US_DATABASE_URL" }
redis = { env = "US_REDIS_URL" }
encryption_key = { env = "US_KEY" }

[regions.eu]
app_url = "https://eu.app.closedloop.sh"
api_url = "https://eu.api.closedloop.sh"
workers = ["region-worker-eu-0.closedloop-eu.svc.cluster.local:8081"]
worker_listen = "0.0.0.0:8081"
postgres = { env = "EU_DATABASE_URL" }
redis = { env = "EU_REDIS_URL" }
encryption_key = { env = "EU_KEY" }
"#;

/// Hop-by-hop headers (RFC 9110 §7.6.1) and `Forwarded`: never sent upstream.
const NEVER_UPSTREAM: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "forwarded",
];

/// Headers the gateway sets on every forwarded request.
const SET_BY_GATEWAY: [&str; 5] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
];

struct Fixture {
    router: HostRouter,
    /// Each region's host names (lower case), in the model's hands.
    hosts: Vec<(RegionId, Vec<String>)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let map = RegionMap::parse(REGIONS).expect("the fixed region map");
        let hosts = map
            .regions()
            .iter()
            .map(|r| {
                let names = [r.app_host(), r.api_host()].map(str::to_ascii_lowercase);
                (r.id.clone(), names.to_vec())
            })
            .collect();
        Fixture {
            router: HostRouter::new(&map).expect("the fixed routes"),
            hosts,
        }
    })
}

/// The connection a request came on.
#[derive(Debug)]
struct Conn {
    peer: IpAddr,
    /// `Some(sni)` on a TLS listener (the SNI itself optional).
    tls: Option<Option<String>>,
    https_port: u16,
}

/// Runs every check on `data`.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return;
    };
    let mut words = request_line.split(' ').filter(|w| !w.is_empty());
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return;
    };
    let version = match words.next() {
        Some("HTTP/2") => Version::HTTP_2,
        Some("HTTP/1.0") => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let (Ok(method), Ok(uri)) = (Method::from_bytes(method.as_bytes()), Uri::try_from(target))
    else {
        return;
    };
    let mut conn = Conn {
        peer: IpAddr::from([203, 0, 113, 7]),
        tls: None,
        https_port: 8443,
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some(peer) = line.strip_prefix(":peer ") {
            conn.peer = peer.trim().parse().unwrap_or(conn.peer);
        } else if let Some(sni) = line.strip_prefix(":sni ") {
            conn.tls = Some(Some(sni.to_owned()));
        } else if line == ":tls" {
            conn.tls = Some(None);
        } else if let Some(port) = line.strip_prefix(":port ") {
            conn.https_port = port.trim().parse().unwrap_or(conn.https_port);
        } else if let Some((name, value)) = line.split_once(':')
            && let Ok(name) = HeaderName::from_bytes(name.trim().as_bytes())
            && let Ok(value) = HeaderValue::from_bytes(value.trim_start().as_bytes())
        {
            headers.append(name, value);
        }
    }
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .version(version)
        .body(())
    else {
        return;
    };
    let (mut parts, ()) = request.into_parts();
    parts.headers = headers;
    through_the_gateway(parts, &conn);
}

fn through_the_gateway(mut parts: http::request::Parts, conn: &Conn) {
    let fx = fixture();
    let host = edge::request_host(&parts);
    if let Some(authority) = parts.uri.authority() {
        let bare = authority
            .as_str()
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, h)| h);
        assert_eq!(
            host.as_ref().map(HeaderValue::as_bytes),
            Some(bare.as_bytes()),
            "the URI's authority names the host"
        );
    } else {
        assert_eq!(
            host.as_ref(),
            parts.headers.get(HOST),
            "else the Host header"
        );
    }
    let Some(host) = host else {
        return;
    };
    let Ok(host_text) = host.to_str() else {
        return;
    };

    let routed = fx.router.route(host_text);
    let model = model_route(&fx.hosts, host_text);
    assert_eq!(
        routed,
        model.map(|(region, _)| region),
        "host {host_text:?} routes to {routed:?}"
    );
    let Some((_, name)) = model else {
        return;
    };

    let https = conn.tls.is_some();
    if let Some(sni) = &conn.tls {
        let agrees = sni
            .as_deref()
            .is_some_and(|s| edge::sni_agrees(s, host_text));
        let model = sni
            .as_deref()
            .is_some_and(|s| s.strip_suffix('.').unwrap_or(s).eq_ignore_ascii_case(name));
        assert_eq!(agrees, model, "SNI {sni:?} for host {host_text:?}");
        if !agrees {
            return;
        }
    } else {
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        if let Some(location) = edge::https_redirect(host_text, &path, conn.https_port) {
            let host_part = host_name_as_sent(host_text);
            let expected = if conn.https_port == 443 {
                format!("https://{host_part}{path}")
            } else {
                format!("https://{host_part}:{}{path}", conn.https_port)
            };
            assert_eq!(location.as_bytes(), expected.as_bytes(), "redirect");
            assert!(
                host_part.eq_ignore_ascii_case(name),
                "a redirect to {host_part:?} for a request routed by {name:?}"
            );
        }
    }
    if parts.method == Method::CONNECT {
        return;
    }

    let original = parts.headers.clone();
    edge::forward_headers(&mut parts.headers, &host, conn.peer, https);
    upstream_headers_hold(&original, &parts.headers, &host, conn.peer, https);
}

/// The model's routing: the region whose app or API host `host` is, compared without
/// ASCII case, after removing a `:port` (digits, possibly none) and one trailing dot; a
/// bracketed name (an IPv6 literal's syntax) followed by nothing or a port is compared
/// by what is inside the brackets. Returns the region and the host name matched.
fn model_route<'a>(
    hosts: &'a [(RegionId, Vec<String>)],
    host: &str,
) -> Option<(&'a RegionId, &'a str)> {
    let name = host_name_as_sent(host);
    hosts.iter().find_map(|(region, names)| {
        names
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|n| (region, n.as_str()))
    })
}

/// `host` without port and one trailing dot, as sent (case kept).
fn host_name_as_sent(host: &str) -> &str {
    let name = if let Some(inner) = host.strip_prefix('[') {
        // The literal, then nothing or `:digits`; anything else stays as sent (and
        // names no region).
        match inner.split_once(']') {
            Some((literal, "")) => literal,
            Some((literal, rest))
                if rest
                    .strip_prefix(':')
                    .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())) =>
            {
                literal
            }
            _ => host,
        }
    } else {
        match host.rfind(':') {
            Some(i) if host[i + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..i],
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

fn upstream_headers_hold(
    original: &HeaderMap,
    upstream: &HeaderMap,
    host: &HeaderValue,
    peer: IpAddr,
    https: bool,
) {
    let listed: Vec<HeaderName> = original
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for (name, value) in upstream {
        let n = name.as_str();
        assert!(!NEVER_UPSTREAM.contains(&n), "{n} went upstream");
        assert!(
            !listed.contains(name) || SET_BY_GATEWAY.contains(&n),
            "{n}, named by Connection, went upstream"
        );
        assert_eq!(
            HeaderName::from_bytes(n.as_bytes()).ok().as_ref(),
            Some(name),
            "header name {n:?} is not canonical"
        );
        assert!(
            HeaderValue::from_bytes(value.as_bytes()).is_ok()
                && !value
                    .as_bytes()
                    .iter()
                    .any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "header {n} has an invalid value {value:?}"
        );
    }
    let once = |name: &str| -> &HeaderValue {
        let all: Vec<&HeaderValue> = upstream.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{name} upstream: {all:?}");
        all[0]
    };
    assert_eq!(once("host"), host);
    assert_eq!(once("x-forwarded-host"), host);
    assert_eq!(
        once("x-forwarded-for").as_bytes(),
        peer.to_string().as_bytes()
    );
    assert_eq!(
        once("x-forwarded-proto").as_bytes(),
        if https { &b"https"[..] } else { b"http" }
    );
    let id = once("x-request-id").as_bytes();
    match original.get("x-request-id") {
        Some(client) if well_formed_request_id(client.as_bytes()) => {
            assert_eq!(id, client.as_bytes(), "a well-formed client id is kept");
        }
        _ => assert!(is_uuid(id), "a fresh request id, not {id:?}"),
    }
    for name in original.keys() {
        let n = name.as_str();
        if NEVER_UPSTREAM.contains(&n) || SET_BY_GATEWAY.contains(&n) || listed.contains(name) {
            continue;
        }
        let sent: Vec<&HeaderValue> = original.get_all(name).iter().collect();
        let got: Vec<&HeaderValue> = upstream.get_all(name).iter().collect();
        assert_eq!(got, sent, "end-to-end header {n} changed");
    }
}

fn well_formed_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_uuid(id: &[u8]) -> bool {
    id.len() == 36
        && id.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}
