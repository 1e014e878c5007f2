//! `loadgen` — a lean closed-loop HTTP/1.1 load generator (in the spirit of `wrk` / `oha`).
//!
//! It is used to benchmark the ClosedLoop gateway (reverse proxy vs nginx, SCIM API) at
//! 10k+ requests/s on small machines, so the hot path is kept allocation-light:
//!
//! * one keep-alive HTTP/1.1 connection per concurrency slot (`--connections`), opened with
//!   hyper's low-level `client::conn::http1` handshake over a `TcpStream` with `TCP_NODELAY`,
//!   re-opened whenever the server closes it or an error / timeout occurs;
//! * each slot sends its next request as soon as the previous response body has been read
//!   (closed loop), unless `--rate` asks for open-loop pacing;
//! * latency goes into a per-connection fixed-memory log-linear histogram (~0.8 % precision),
//!   merged once at the end — no lock or shared counter is touched per request, except the
//!   optional `{n}` counter and `--requests` budget (one relaxed atomic add each);
//! * URL path and body are pre-built `Bytes` that are reference-counted into every request,
//!   unless they contain the `{n}` (per-request counter) or `{rand}` (random `u64`) placeholders.
//!
//! The run stops by itself after `--warmup` + `--duration`, after `--requests` measured
//! requests, or on Ctrl-C, whichever comes first. Requests *started* during the warm-up are
//! excluded from every figure; requests still in flight when the run ends are discarded.
//!
//! # Usage
//!
//! ```text
//! loadgen --url http://127.0.0.1:8080/scim/v2/Users --host api.closedloop.localhost \
//!         --connections 32 --duration 10s --warmup 1s \
//!         [--method POST] [--header 'Content-Type: application/scim+json' ...] \
//!         [--body '{"userName":"user{n}@x"}' | --body-file body.json] \
//!         [--requests N] [--rate N] [--timeout 5s] [--threads N] [--counter-start N] [--json]
//! ```
//!
//! Durations accept `500ms`, `10s`, `1.5s`, `2m`, `1h` (a bare number means seconds).
//! `https://` URLs are served over TLS (rustls with the ring provider, ALPN `http/1.1`):
//! `--cacert` names the PEM file of the CA to trust (a benchmark's own CA), and the TLS
//! server name is the `--host` name (without port), else the URL's host. Each connection
//! does one full handshake when it opens, then keeps it.
//!
//! The human report lists requests, duration, requests/s, latency percentiles in ms, status
//! counts and errors. `--json` prints a single JSON object instead, with the keys `requests`,
//! `seconds`, `rps`, `p50_ms`, `p90_ms`, `p99_ms`, `p999_ms`, `max_ms`, `mean_ms`, `non_2xx`,
//! `status_counts` (exact status → count), `status_classes` (`"2xx"` → count), `errors`,
//! `timeouts`, `connects` and `bytes`. The exit code is 0 even when non-2xx responses were
//! received (they are reported); it is 1 on invalid arguments or when no response at all was
//! measured.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Request body type sent on every connection.
type ReqBody = Full<Bytes>;

/// Pause after a failed connection attempt, so a dead server does not make us spin.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

/// Placeholder help. clap turns every literal "{n}" of help text into a line break, so the
/// counter placeholder is spelled out in words here.
const PLACEHOLDER_HELP: &str = "Placeholders, substituted per request in the URL path/query \
and in the body: the letter n in curly braces is a per-request counter (starting at \
--counter-start, unique across connections); {rand} is a random u64. Without placeholders \
the same bytes are reused for every request.";

/// Command-line arguments (see the module documentation).
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Closed-loop HTTP/1.1 load generator for benchmarking the ClosedLoop gateway.",
    after_help = PLACEHOLDER_HELP
)]
struct Args {
    /// Target URL `http://host:port/path?query` (path/query may contain placeholders).
    #[arg(long)]
    url: String,

    /// Value of the Host header (defaults to the URL's host[:port]); the URL decides where to connect.
    #[arg(long)]
    host: Option<String>,

    /// Number of concurrent keep-alive connections (one in-flight request each).
    #[arg(short, long, default_value_t = 32)]
    connections: usize,

    /// Measured duration, after the warm-up (e.g. `500ms`, `10s`, `2m`).
    #[arg(short, long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,

    /// Warm-up period whose requests are excluded from all figures.
    #[arg(short, long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,

    /// HTTP method.
    #[arg(short, long, default_value = "GET", value_parser = parse_method)]
    method: Method,

    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,

    /// `Authorization: Bearer` value, rendered per request (may contain placeholders:
    /// `clk_us_scim_{rand}` makes every request present another made-up token).
    #[arg(long)]
    bearer: Option<String>,

    /// Request body (may contain placeholders).
    #[arg(short, long, conflicts_with = "body_file")]
    body: Option<String>,

    /// Read the request body (template) from this file.
    #[arg(long)]
    body_file: Option<PathBuf>,

    /// Stop after this many measured requests, failed ones included (the duration still
    /// bounds the run).
    #[arg(short = 'n', long)]
    requests: Option<u64>,

    /// Open-loop pacing: total requests/s spread over all connections (a request sent late
    /// because the previous one was slow is timed from its scheduled slot).
    #[arg(short, long)]
    rate: Option<f64>,

    /// Per-request timeout (send and full response body); also bounds each connect.
    #[arg(short, long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,

    /// Tokio worker threads (defaults to the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,

    /// First value of the counter placeholder.
    #[arg(long, default_value_t = 0)]
    counter_start: u64,

    /// How much the counter advances per request (e.g. 100 to walk `startIndex` pages).
    #[arg(long, default_value_t = 1)]
    counter_step: u64,

    /// Wrap the counter after this many distinct values (e.g. the number of seeded
    /// users, so lookups and updates stay on existing resources).
    #[arg(long)]
    counter_wrap: Option<u64>,

    /// Print one JSON object instead of the human-readable report.
    #[arg(long)]
    json: bool,

    /// For `https://` URLs: PEM file of the certificate authority to trust.
    #[arg(long, value_name = "PEM")]
    cacert: Option<PathBuf>,
}

/// Parses `500ms`, `10s`, `1.5s`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration `{text}` (expected e.g. 500ms, 10s, 2m)"))?;
    let scale = match unit {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit `{unit}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("invalid duration `{text}` (must be finite and non-negative)"))
}

/// Parses a `Name: value` header argument.
fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid header `{text}` (expected `Name: value`)"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("invalid header name in `{text}`"))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("invalid header value in `{text}`"))?;
    Ok((name, value))
}

/// Parses an HTTP method token (case is preserved, as HTTP methods are case-sensitive).
fn parse_method(text: &str) -> Result<Method, String> {
    Method::from_bytes(text.as_bytes()).map_err(|_| format!("invalid HTTP method `{text}`"))
}

// ---------------------------------------------------------------------------------------------
// Templates
// ---------------------------------------------------------------------------------------------

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Bytes copied verbatim.
    Literal(Bytes),
    /// `{n}`: the per-request counter.
    Counter,
    /// `{n12}`: the counter zero-padded to 12 digits (the last group of a UUID).
    Counter12,
    /// `{rand}`: a random `u64`.
    Random,
}

/// A byte string with optional `{n}` / `{rand}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Splits `source` into literals and placeholders; other braces are kept literally.
    fn parse(source: &[u8]) -> Self {
        let mut pieces = Vec::new();
        let mut literal_start = 0;
        let mut i = 0;
        while i < source.len() {
            let rest = &source[i..];
            let found = if rest.starts_with(b"{n}") {
                Some((Piece::Counter, 3))
            } else if rest.starts_with(b"{n12}") {
                Some((Piece::Counter12, 5))
            } else if rest.starts_with(b"{rand}") {
                Some((Piece::Random, 6))
            } else {
                None
            };
            match found {
                Some((piece, len)) => {
                    if literal_start < i {
                        let literal = Bytes::copy_from_slice(&source[literal_start..i]);
                        pieces.push(Piece::Literal(literal));
                    }
                    pieces.push(piece);
                    i += len;
                    literal_start = i;
                }
                None => i += 1,
            }
        }
        if literal_start < source.len() {
            pieces.push(Piece::Literal(Bytes::copy_from_slice(
                &source[literal_start..],
            )));
        }
        Self { pieces }
    }

    /// Returns the bytes when the template has no placeholder at all.
    fn fixed(&self) -> Option<Bytes> {
        match self.pieces.as_slice() {
            [] => Some(Bytes::new()),
            [Piece::Literal(bytes)] => Some(bytes.clone()),
            _ => None,
        }
    }

    /// Whether the template contains `{n}`.
    fn uses_counter(&self) -> bool {
        self.pieces.contains(&Piece::Counter) || self.pieces.contains(&Piece::Counter12)
    }

    /// Renders the template with counter `n` and random value `random`.
    fn render(&self, n: u64, random: u64) -> Bytes {
        let mut out = Vec::with_capacity(self.len_hint());
        for piece in &self.pieces {
            match piece {
                Piece::Literal(bytes) => out.extend_from_slice(bytes),
                Piece::Counter => push_decimal(&mut out, n),
                Piece::Counter12 => {
                    let mut digits = Vec::with_capacity(20);
                    push_decimal(&mut digits, n);
                    out.extend(std::iter::repeat_n(
                        b'0',
                        12usize.saturating_sub(digits.len()),
                    ));
                    out.extend_from_slice(&digits);
                }
                Piece::Random => push_decimal(&mut out, random),
            }
        }
        Bytes::from(out)
    }

    /// Upper bound of the rendered length (20 digits per placeholder).
    fn len_hint(&self) -> usize {
        self.pieces
            .iter()
            .map(|piece| match piece {
                Piece::Literal(bytes) => bytes.len(),
                Piece::Counter | Piece::Counter12 | Piece::Random => 20,
            })
            .sum()
    }
}

/// Appends the decimal representation of `value` without allocating.
fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Either a value built once and cloned by reference count, or a template rendered per request.
#[derive(Debug)]
enum Source<T> {
    Fixed(T),
    Template(Template),
}

impl<T> Source<T> {
    fn uses_counter(&self) -> bool {
        matches!(self, Source::Template(t) if t.uses_counter())
    }

    fn is_template(&self) -> bool {
        matches!(self, Source::Template(_))
    }
}

/// splitmix64: a tiny, fast, statistically decent PRNG for `{rand}`.
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeds from the wall clock and the connection index.
    fn for_connection(index: usize) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut rng = Self(nanos ^ (index as u64).wrapping_mul(0xA076_1D64_78BD_642F));
        rng.next_u64();
        rng
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Where to connect and what to put in the request line, parsed from `--url`.
#[derive(Debug)]
struct Target {
    /// Socket address to connect to.
    addr: SocketAddr,
    /// Whether the URL is `https://`.
    tls: bool,
    /// The URL's host, for the TLS server name when `--host` is not given.
    url_host: String,
    /// Default Host header value (`host[:port]` as written in the URL).
    host_header: String,
    /// Path-and-query template (origin form, always starting with `/`).
    path: Template,
}

/// Parses an `http://` or `https://` URL and resolves its host once.
fn parse_url(url: &str) -> anyhow::Result<Target> {
    let lower = url.to_ascii_lowercase();
    let (tls, rest) = if lower.starts_with("https://") {
        (true, &url["https://".len()..])
    } else if lower.starts_with("http://") {
        (false, &url["http://".len()..])
    } else {
        bail!("--url must start with http:// or https:// (got `{url}`)");
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains(['{', '}']) {
        bail!("placeholders are only allowed in the path and query of --url");
    }
    let authority: Authority = authority
        .parse()
        .with_context(|| format!("invalid host/port in --url `{url}`"))?;
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let addr = (bare_host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}:{port}`"))?
        .next()
        .with_context(|| format!("`{host}` resolved to no address"))?;
    let host_header = match authority.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let path = match path.split('#').next().unwrap_or_default() {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(Target {
        addr,
        tls,
        url_host: bare_host.to_owned(),
        host_header,
        path: Template::parse(path.as_bytes()),
    })
}

/// Validated run configuration.
#[derive(Debug)]
struct Config {
    addr: SocketAddr,
    /// TLS client and server name for `https://` targets.
    tls: Option<Tls>,
    method: Method,
    path: Source<Uri>,
    body: Source<Bytes>,
    /// `Authorization: Bearer …`, rendered per request (`--bearer`).
    bearer: Option<Template>,
    headers: HeaderMap,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    requests: Option<u64>,
    /// Per-connection send interval derived from `--rate`.
    pace: Option<Duration>,
    timeout: Duration,
    counter_start: u64,
    counter_step: u64,
    counter_wrap: Option<u64>,
}

impl Config {
    /// Validates the command line and pre-builds everything that does not change per request.
    fn from_args(args: &Args) -> anyhow::Result<Self> {
        if args.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if args.duration.is_zero() {
            bail!("--duration must be greater than zero");
        }
        if args.timeout.is_zero() {
            bail!("--timeout must be greater than zero");
        }
        if args.requests == Some(0) {
            bail!("--requests must be at least 1");
        }
        let pace = args
            .rate
            .map(|rate| pace_interval(rate, args.connections))
            .transpose()?;
        if let Some(bearer) = &args.bearer {
            HeaderValue::from_str(&format!("Bearer {bearer}"))
                .context("--bearer is not a header value")?;
        }
        let target = parse_url(&args.url)?;
        let tls = if target.tls {
            Some(Tls::new(args, &target)?)
        } else {
            None
        };
        Ok(Self {
            addr: target.addr,
            tls,
            method: args.method.clone(),
            path: path_source(target.path)?,
            body: body_source(args)?,
            bearer: args
                .bearer
                .as_deref()
                .map(|b| Template::parse(b.as_bytes())),
            headers: build_headers(args, &target.host_header)?,
            connections: args.connections,
            duration: args.duration,
            warmup: args.warmup,
            requests: args.requests,
            pace,
            timeout: args.timeout,
            counter_start: args.counter_start,
            counter_step: args.counter_step,
            counter_wrap: args.counter_wrap.filter(|w| *w > 0),
        })
    }
}

/// The TLS side of an `https://` target.
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// A client trusting `--cacert`, offering HTTP/1.1 by ALPN, naming the `--host` host
    /// (or the URL's) in SNI.
    fn new(args: &Args, target: &Target) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, ServerName};
        let path = args
            .cacert
            .as_ref()
            .context("https:// needs --cacert (the PEM file of the CA to trust)")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path)
            .with_context(|| format!("cannot read --cacert `{}`", path.display()))?
        {
            let cert = cert.with_context(|| format!("invalid PEM in `{}`", path.display()))?;
            roots.add(cert).context("invalid CA certificate")?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS configuration")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = match &args.host {
            Some(host) => host
                .rsplit_once(':')
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map_or(host.as_str(), |(name, _)| name)
                .to_owned(),
            None => target.url_host.clone(),
        };
        let server_name = ServerName::try_from(name.clone())
            .with_context(|| format!("`{name}` is not a valid TLS server name"))?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

/// Interval between two sends of one connection so that all together send `rate` per second.
fn pace_interval(rate: f64, connections: usize) -> anyhow::Result<Duration> {
    if !(rate.is_finite() && rate > 0.0) {
        bail!("--rate must be a positive number of requests per second");
    }
    Duration::try_from_secs_f64(connections as f64 / rate)
        .ok()
        .filter(|interval| !interval.is_zero())
        .context("--rate is out of range")
}

/// Pre-parses a placeholder-free path, or checks that the template renders to a valid URI.
fn path_source(template: Template) -> anyhow::Result<Source<Uri>> {
    let uri = Uri::from_maybe_shared(template.render(0, 0))
        .context("--url has an invalid path or query")?;
    Ok(match template.fixed() {
        Some(_) => Source::Fixed(uri),
        None => Source::Template(template),
    })
}

/// Loads the body from `--body` / `--body-file`.
fn body_source(args: &Args) -> anyhow::Result<Source<Bytes>> {
    let raw = match (&args.body, &args.body_file) {
        (Some(body), _) => body.clone().into_bytes(),
        (None, Some(path)) => std::fs::read(path)
            .with_context(|| format!("cannot read --body-file `{}`", path.display()))?,
        (None, None) => Vec::new(),
    };
    let template = Template::parse(&raw);
    Ok(match template.fixed() {
        Some(bytes) => Source::Fixed(bytes),
        None => Source::Template(template),
    })
}

/// Builds the header map cloned into every request; `--host` wins over a `Host` header.
fn build_headers(args: &Args, default_host: &str) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::with_capacity(args.headers.len() + 1);
    for (name, value) in &args.headers {
        headers.append(name.clone(), value.clone());
    }
    if let Some(host) = &args.host {
        let value = HeaderValue::from_str(host).context("invalid --host value")?;
        headers.insert(HOST, value);
    } else if !headers.contains_key(HOST) {
        let value = HeaderValue::from_str(default_host).context("invalid host in --url")?;
        headers.insert(HOST, value);
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------------------------
// Histogram
// ---------------------------------------------------------------------------------------------

/// Linear sub-buckets per power of two (precision 1/64 ≈ 1.6 % worst case, 0.8 % on midpoints).
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
const HALF: u64 = SUB / 2;
/// Enough buckets to cover the whole `u64` range.
const BUCKETS: usize = (SUB + (64 - SUB_BITS as u64) * HALF) as usize;

/// Fixed-memory HDR-style log-linear histogram of nanosecond values (~30 KiB).
#[derive(Debug, Clone)]
struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value.
    fn record(&mut self, value: u64) {
        self.counts[bucket_index(value)] += 1;
        self.count += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds all values of `other`.
    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Value at quantile `q` (0.0..=1.0); bucket midpoint clamped to the observed range.
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bucket_bounds(index);
                return (low + (high - low) / 2).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Exact arithmetic mean.
    fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Exact maximum (0 when empty).
    fn max(&self) -> u64 {
        self.max
    }
}

/// Bucket of `value`: exact below `SUB`, then `HALF` linear steps per power of two.
fn bucket_index(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let shift = (63 - value.leading_zeros()) - (SUB_BITS - 1);
    let top = value >> shift;
    (SUB + u64::from(shift - 1) * HALF + (top - HALF)) as usize
}

/// Inclusive value range covered by bucket `index`.
fn bucket_bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, index);
    }
    let offset = index - SUB;
    let shift = offset / HALF + 1;
    let top = HALF + offset % HALF;
    (top << shift, ((top + 1) << shift).wrapping_sub(1))
}

// ---------------------------------------------------------------------------------------------
// Per-connection statistics
// ---------------------------------------------------------------------------------------------

/// Figures gathered by one connection slot (no sharing on the hot path).
#[derive(Debug, Clone)]
struct Stats {
    latency: Histogram,
    /// Responses by exact status code (index = code, 100..=999).
    statuses: Box<[u64]>,
    errors: u64,
    timeouts: u64,
    connects: u64,
    bytes: u64,
}

impl Stats {
    fn new() -> Self {
        Self {
            latency: Histogram::new(),
            statuses: vec![0; 1000].into_boxed_slice(),
            errors: 0,
            timeouts: 0,
            connects: 0,
            bytes: 0,
        }
    }

    fn merge(&mut self, other: &Self) {
        self.latency.merge(&other.latency);
        for (mine, theirs) in self.statuses.iter_mut().zip(other.statuses.iter()) {
            *mine += theirs;
        }
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.connects += other.connects;
        self.bytes += other.bytes;
    }

    /// Records a completed response.
    fn record_response(&mut self, status: StatusCode, latency: Duration, bytes: u64) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency.record(nanos);
        self.statuses[usize::from(status.as_u16())] += 1;
        self.bytes += bytes;
    }
}

// ---------------------------------------------------------------------------------------------
// Load engine
// ---------------------------------------------------------------------------------------------

/// State shared (read-only, plus two atomics) by all connection slots.
#[derive(Debug)]
struct Shared {
    config: Arc<Config>,
    /// Requests started at or after this instant are measured.
    measure_start: Instant,
    /// Hard end of the run.
    end: Instant,
    /// `{n}` counter.
    counter: AtomicU64,
    /// Measured requests started so far (for `--requests`).
    issued: AtomicU64,
}

impl Shared {
    /// Claims one measured request from the `--requests` budget; false once it is exhausted.
    fn claim(&self) -> bool {
        match self.config.requests {
            Some(limit) => self.issued.fetch_add(1, Ordering::Relaxed) < limit,
            None => true,
        }
    }

    /// Builds the next request; only templated parts are rendered.
    fn request(&self, rng: &mut SplitMix64) -> Result<Request<ReqBody>, http::uri::InvalidUri> {
        let config = &self.config;
        let bearer_counts = config.bearer.as_ref().is_some_and(Template::uses_counter);
        let n = if config.path.uses_counter() || config.body.uses_counter() || bearer_counts {
            let raw = self
                .counter
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_mul(config.counter_step);
            let raw = config.counter_wrap.map_or(raw, |w| raw % w);
            config.counter_start.wrapping_add(raw)
        } else {
            0
        };
        let random =
            if config.path.is_template() || config.body.is_template() || config.bearer.is_some() {
                rng.next_u64()
            } else {
                0
            };
        let uri = match &config.path {
            Source::Fixed(uri) => uri.clone(),
            Source::Template(t) => Uri::from_maybe_shared(t.render(n, random))?,
        };
        let body = match &config.body {
            Source::Fixed(bytes) => bytes.clone(),
            Source::Template(t) => t.render(n, random),
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = config.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = config.headers.clone();
        if let Some(bearer) = &config.bearer {
            let mut value = b"Bearer ".to_vec();
            value.extend_from_slice(&bearer.render(n, random));
            // Checked at start (placeholders only add digits): always a header value.
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
        }
        Ok(request)
    }
}

/// An open HTTP/1.1 connection; its driver task is aborted when dropped.
#[derive(Debug)]
struct Conn {
    sender: SendRequest<ReqBody>,
    driver: JoinHandle<()>,
    /// Responses received on this connection.
    served: u64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
enum ConnectError {
    Timeout,
    Failed,
}

/// Opens a TCP connection with `TCP_NODELAY`, the TLS session for `https://` targets,
/// and performs the HTTP/1.1 handshake.
async fn connect(
    addr: SocketAddr,
    tls: Option<&Tls>,
    timeout: Duration,
) -> Result<Conn, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(_)) => return Err(ConnectError::Failed),
        Ok(Ok(stream)) => stream,
    };
    stream.set_nodelay(true).map_err(|_| ConnectError::Failed)?;
    match tls {
        None => handshake(TokioIo::new(stream)).await,
        Some(tls) => {
            let connecting = tls.connector.connect(tls.server_name.clone(), stream);
            match tokio::time::timeout(timeout, connecting).await {
                Err(_) => Err(ConnectError::Timeout),
                Ok(Err(_)) => Err(ConnectError::Failed),
                Ok(Ok(stream)) => handshake(TokioIo::new(stream)).await,
            }
        }
    }
}

/// The HTTP/1.1 handshake over `io`, with the connection driven by its own task.
async fn handshake<I>(io: I) -> Result<Conn, ConnectError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| ConnectError::Failed)?;
    let driver = tokio::spawn(async move {
        // Errors surface through `sender`; nothing to do here.
        let _ = connection.await;
    });
    Ok(Conn {
        sender,
        driver,
        served: 0,
    })
}

/// Returns a connection ready to send, reusing `slot` when possible and reconnecting otherwise.
///
/// A keep-alive connection closed by the server after serving requests is replaced silently;
/// connection failures (and connections closed before serving anything) count as errors.
async fn ready_conn(mut slot: Option<Conn>, shared: &Shared, stats: &mut Stats) -> Conn {
    loop {
        let measuring = Instant::now() >= shared.measure_start;
        let mut conn = match slot.take() {
            Some(conn) => conn,
            None => match connect(
                shared.config.addr,
                shared.config.tls.as_ref(),
                shared.config.timeout,
            )
            .await
            {
                Ok(conn) => {
                    stats.connects += 1;
                    conn
                }
                Err(error) => {
                    if measuring {
                        match error {
                            ConnectError::Timeout => stats.timeouts += 1,
                            ConnectError::Failed => stats.errors += 1,
                        }
                    }
                    tokio::time::sleep(CONNECT_BACKOFF).await;
                    continue;
                }
            },
        };
        if conn.sender.ready().await.is_ok() {
            return conn;
        }
        if conn.served == 0 {
            if measuring {
                stats.errors += 1;
            }
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
    }
}

/// Sends one request and drains the response body; returns the status and body size.
async fn exchange(
    sender: &mut SendRequest<ReqBody>,
    request: Request<ReqBody>,
) -> Result<(StatusCode, u64), hyper::Error> {
    let response = sender.send_request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut bytes = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            bytes += data.len() as u64;
        }
    }
    Ok((status, bytes))
}

/// Open-loop pacing for one connection: one send slot every `interval`.
#[derive(Debug)]
struct Pacer {
    next: Instant,
    interval: Duration,
}

impl Pacer {
    /// Spreads the connections' first slots evenly over one interval.
    fn new(interval: Duration, connections: usize, index: usize, start: Instant) -> Self {
        let offset = interval.mul_f64(index as f64 / connections as f64);
        Self {
            next: start + offset,
            interval,
        }
    }

    /// Waits for the next slot and returns the instant latency is measured from.
    ///
    /// When the connection is behind schedule (the previous response came late), that is the
    /// scheduled slot, so queueing delay is charged to the server (no coordinated omission).
    /// When we had to sleep, it is the actual wake-up time, so the timer's ~1 ms granularity
    /// is not charged to the server.
    async fn wait(&mut self) -> Instant {
        let slot = self.next;
        self.next += self.interval;
        if slot <= Instant::now() {
            return slot;
        }
        tokio::time::sleep_until(slot).await;
        Instant::now()
    }
}

/// Request loop of one connection slot; returns when the `--requests` budget is exhausted.
/// The caller cancels it at the end of the run (the in-flight request is then discarded).
async fn drive(index: usize, shared: &Shared, stats: &mut Stats) {
    let config = &shared.config;
    let mut rng = SplitMix64::for_connection(index);
    let mut pacer = config
        .pace
        .map(|interval| Pacer::new(interval, config.connections, index, Instant::now()));
    let mut slot = None;
    loop {
        let scheduled = match pacer.as_mut() {
            Some(pacer) => Some(pacer.wait().await),
            None => None,
        };
        let mut conn = ready_conn(slot.take(), shared, stats).await;
        let started = scheduled.unwrap_or_else(Instant::now);
        let measuring = started >= shared.measure_start;
        if measuring && !shared.claim() {
            return;
        }
        let Ok(request) = shared.request(&mut rng) else {
            stats.errors += u64::from(measuring);
            slot = Some(conn);
            continue;
        };
        let outcome = tokio::time::timeout(config.timeout, exchange(&mut conn.sender, request));
        match outcome.await {
            Ok(Ok((status, bytes))) => {
                if measuring {
                    stats.record_response(status, started.elapsed(), bytes);
                }
                conn.served += 1;
                slot = Some(conn);
            }
            Ok(Err(_)) => stats.errors += u64::from(measuring),
            Err(_) => stats.timeouts += u64::from(measuring),
        }
    }
}

/// Resolves once `stop` turns true; never resolves if its sender is gone without stopping.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One connection slot: drives requests until the budget, the deadline or a stop signal.
async fn slot_task(index: usize, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) -> Stats {
    let mut stats = Stats::new();
    tokio::select! {
        () = drive(index, &shared, &mut stats) => {}
        () = tokio::time::sleep_until(shared.end) => {}
        () = stopped(&mut stop) => {}
    }
    stats
}

/// Merged figures of a run.
#[derive(Debug)]
struct Summary {
    stats: Stats,
    /// Measured wall-clock seconds (warm-up excluded).
    seconds: f64,
}

/// Runs the load test described by `config` until its end, its request budget, or `stop`.
async fn run(config: Arc<Config>, stop: watch::Receiver<bool>) -> anyhow::Result<Summary> {
    let start = Instant::now();
    let measure_start = start + config.warmup;
    let shared = Arc::new(Shared {
        measure_start,
        end: measure_start + config.duration,
        counter: AtomicU64::new(0),
        issued: AtomicU64::new(0),
        config,
    });
    let tasks: Vec<_> = (0..shared.config.connections)
        .map(|index| tokio::spawn(slot_task(index, Arc::clone(&shared), stop.clone())))
        .collect();
    let mut stats = Stats::new();
    for task in tasks {
        stats.merge(&task.await.context("a connection task panicked")?);
    }
    let finished = Instant::now().min(shared.end);
    let seconds = finished
        .saturating_duration_since(measure_start)
        .as_secs_f64();
    Ok(Summary { stats, seconds })
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/// Final figures, printed as text or JSON.
#[derive(Debug, Serialize)]
struct Report {
    requests: u64,
    seconds: f64,
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    mean_ms: f64,
    non_2xx: u64,
    status_counts: BTreeMap<u16, u64>,
    status_classes: BTreeMap<String, u64>,
    errors: u64,
    timeouts: u64,
    connects: u64,
    bytes: u64,
}

/// Rounds to `decimals` decimal places (for stable JSON output).
fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Nanoseconds to milliseconds, 3 decimals.
fn ms(nanos: f64) -> f64 {
    round(nanos / 1e6, 3)
}

impl Report {
    fn new(summary: &Summary) -> Self {
        let stats = &summary.stats;
        let latency = &stats.latency;
        let status_counts: BTreeMap<u16, u64> = (0u16..)
            .zip(stats.statuses.iter())
            .filter(|&(_, &count)| count > 0)
            .map(|(code, &count)| (code, count))
            .collect();
        let mut status_classes = BTreeMap::new();
        for (code, count) in &status_counts {
            *status_classes
                .entry(format!("{}xx", code / 100))
                .or_default() += count;
        }
        let non_2xx = status_counts
            .iter()
            .filter(|&(code, _)| !(200..300).contains(code))
            .map(|(_, count)| count)
            .sum();
        let requests = latency.count;
        let rps = if summary.seconds > 0.0 {
            requests as f64 / summary.seconds
        } else {
            0.0
        };
        Self {
            requests,
            seconds: round(summary.seconds, 3),
            rps: round(rps, 1),
            p50_ms: ms(latency.quantile(0.50) as f64),
            p90_ms: ms(latency.quantile(0.90) as f64),
            p99_ms: ms(latency.quantile(0.99) as f64),
            p999_ms: ms(latency.quantile(0.999) as f64),
            max_ms: ms(latency.max() as f64),
            mean_ms: ms(latency.mean()),
            non_2xx,
            status_counts,
            status_classes,
            errors: stats.errors,
            timeouts: stats.timeouts,
            connects: stats.connects,
            bytes: stats.bytes,
        }
    }

    /// Human-readable multi-line report.
    fn human(&self) -> String {
        let join = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        let classes = self.status_classes.iter();
        let classes = join(classes.map(|(class, n)| format!("{class}: {n}")).collect());
        let non_2xx = self.status_counts.iter();
        let non_2xx = non_2xx.filter(|&(code, _)| !(200..300).contains(code));
        let non_2xx = join(non_2xx.map(|(code, n)| format!("{code}: {n}")).collect());
        format!(
            "  requests   {} in {:.3} s = {:.1} req/s ({} bytes read)\n\
             \x20 latency    p50 {:.3} ms | p90 {:.3} ms | p99 {:.3} ms | p99.9 {:.3} ms | max {:.3} ms | mean {:.3} ms\n\
             \x20 statuses   {}\n\
             \x20 non-2xx    {} ({})\n\
             \x20 errors     {} connection/IO errors, {} timeouts ({} connections opened)\n",
            self.requests,
            self.seconds,
            self.rps,
            self.bytes,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.mean_ms,
            classes,
            self.non_2xx,
            non_2xx,
            self.errors,
            self.timeouts,
            self.connects,
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    match load(&Args::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("loadgen: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the whole command: validate, load, report. Fails only on invalid arguments or when
/// nothing at all was measured.
fn load(args: &Args) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::from_args(args)?);
    let threads = worker_threads(args.threads)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    if !args.json {
        println!(
            "loadgen: {} {} -> {}, {} connections, {} threads, {:?} (+{:?} warm-up)",
            args.method,
            args.url,
            config.addr,
            config.connections,
            threads,
            config.duration,
            config.warmup,
        );
    }
    let summary = runtime.block_on(async {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = stop_tx.send(true);
            }
        });
        run(config, stop_rx).await
    })?;
    let report = Report::new(&summary);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.human());
    }
    if report.requests == 0 {
        eprintln!("loadgen: error: no response was measured (see errors and timeouts)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Tokio worker threads: `--threads`, or the number of CPUs.
fn worker_threads(requested: Option<usize>) -> anyhow::Result<usize> {
    match requested {
        Some(0) => bail!("--threads must be at least 1"),
        Some(threads) => Ok(threads),
        None => Ok(std::thread::available_parallelism().map_or(1, usize::from)),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use hyper::body::Incoming;
    use hyper::service::service_fn;
    use tokio::net::TcpListener;

    #[test]
    fn histogram_percentiles_on_known_data() {
        let mut histogram = Histogram::new();
        for micros in 1..=10_000u64 {
            histogram.record(micros * 1_000);
        }
        let close = |actual: u64, expected: u64| {
            let error = (actual as f64 - expected as f64).abs() / expected as f64;
            assert!(error < 0.01, "{actual} not within 1% of {expected}");
        };
        close(histogram.quantile(0.5), 5_000_000);
        close(histogram.quantile(0.9), 9_000_000);
        close(histogram.quantile(0.99), 9_900_000);
        close(histogram.quantile(0.999), 9_990_000);
        assert_eq!(histogram.max(), 10_000_000);
        assert_eq!(histogram.quantile(1.0), 10_000_000);
        close(histogram.quantile(0.0), 1_000);
        assert!((histogram.mean() - 5_000_500.0).abs() < 1e-6);
    }

    #[test]
    fn histogram_small_values_are_exact_and_merge_works() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        for value in 1..=50 {
            a.record(value);
        }
        for value in 51..=100 {
            b.record(value);
        }
        a.merge(&b);
        assert_eq!(a.count, 100);
        assert_eq!(a.quantile(0.5), 50);
        assert_eq!(a.quantile(0.99), 99);
        assert_eq!(a.max(), 100);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }

    #[test]
    fn buckets_cover_values_with_bounded_error() {
        let mut value = 1u64;
        while value < u64::MAX / 3 {
            for v in [value, value + 1, value * 3 / 2, value * 2 - 1] {
                let (low, high) = bucket_bounds(bucket_index(v));
                assert!(low <= v && v <= high, "{v} outside [{low}, {high}]");
                assert!(
                    (high - low) as f64 <= low as f64 / 64.0,
                    "bucket too wide at {v}"
                );
            }
            value *= 2;
        }
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_bounds(BUCKETS - 1).1, u64::MAX);
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "10x", "-1s", "abc", "1e400s", "NaNs"] {
            assert!(parse_duration(bad).is_err(), "`{bad}` should be rejected");
        }
    }

    #[test]
    fn parses_headers() {
        let (name, value) = parse_header("Content-Type: application/scim+json").unwrap();
        assert_eq!(name, "content-type");
        assert_eq!(value, "application/scim+json");
        let (name, value) = parse_header("X-Token:a:b").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-token", "a:b"));
        for bad in ["NoColon", ": value", "Bad Name: x", "X-Ok: bad\nvalue"] {
            assert!(parse_header(bad).is_err(), "`{bad}` should be rejected");
        }
    }

    #[test]
    fn substitutes_templates() {
        let template = Template::parse(b"userName=user{n}@x&id={rand}&{other}");
        assert!(template.fixed().is_none());
        assert!(template.uses_counter());
        assert_eq!(
            template.render(42, 7).as_ref(),
            b"userName=user42@x&id=7&{other}"
        );
        assert_eq!(
            Template::parse(b"{n}{n}").render(u64::MAX, 0).as_ref(),
            b"1844674407370955161518446744073709551615"
        );
        let fixed = Template::parse(b"/plain/{path}");
        assert_eq!(fixed.fixed().unwrap().as_ref(), b"/plain/{path}");
        assert_eq!(Template::parse(b"").fixed().unwrap().len(), 0);
        assert!(!Template::parse(b"{rand}").uses_counter());
        assert_eq!(
            Template::parse(b"00000000-0000-4000-8000-{n12}")
                .render(42, 0)
                .as_ref(),
            b"00000000-0000-4000-8000-000000000042"
        );
        assert!(Template::parse(b"{n12}").uses_counter());
    }

    #[test]
    fn parses_urls() {
        let target = parse_url("http://127.0.0.1:8080/scim?u={n}").unwrap();
        assert_eq!(target.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(target.host_header, "127.0.0.1:8080");
        assert_eq!(target.path.render(3, 0).as_ref(), b"/scim?u=3");
        let target = parse_url("http://[::1]").unwrap();
        assert_eq!(target.addr, "[::1]:80".parse().unwrap());
        assert_eq!(target.path.fixed().unwrap().as_ref(), b"/");
        let target = parse_url("https://127.0.0.1/").unwrap();
        assert!(target.tls);
        assert_eq!(target.addr, "127.0.0.1:443".parse().unwrap());
        let args = Args::try_parse_from(["loadgen", "--url", "https://127.0.0.1:1/"]).unwrap();
        let error = Config::from_args(&args).unwrap_err().to_string();
        assert!(error.contains("--cacert"), "{error}");
        assert!(parse_url("ftp://127.0.0.1/").is_err());
        assert!(parse_url("http://{n}.x/").is_err());
    }

    #[test]
    fn host_flag_overrides_url_authority() {
        let args = Args::try_parse_from([
            "loadgen",
            "--url",
            "http://127.0.0.1:9/",
            "--host",
            "api.closedloop.localhost",
            "-H",
            "Host: ignored",
            "-H",
            "X-A: 1",
        ])
        .unwrap();
        let config = Config::from_args(&args).unwrap();
        assert_eq!(config.headers[HOST], "api.closedloop.localhost");
        assert_eq!(config.headers["x-a"], "1");
        assert!(matches!(config.path, Source::Fixed(_)));
    }

    /// Starts a tiny hyper server on 127.0.0.1:0: 404 on `/missing`, 201 on POST, 200 otherwise.
    async fn spawn_server(hits: Arc<AtomicUsize>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let hits = Arc::clone(&hits);
                let service = service_fn(move |request: Request<Incoming>| {
                    hits.fetch_add(1, Ordering::Relaxed);
                    let status = match (request.method(), request.uri().path()) {
                        (_, "/missing") => StatusCode::NOT_FOUND,
                        (&Method::POST, _) => StatusCode::CREATED,
                        _ => StatusCode::OK,
                    };
                    async move {
                        let mut response = hyper::Response::new(Full::new(Bytes::from("ok")));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        addr
    }

    /// Parses `args` like the CLI would and runs the core engine.
    async fn run_cli(args: &[&str]) -> Report {
        let args =
            Args::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).unwrap();
        let config = Arc::new(Config::from_args(&args).unwrap());
        let (_stop_tx, stop_rx) = watch::channel(false);
        Report::new(&run(config, stop_rx).await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_for_the_duration_against_a_local_server() {
        let addr = spawn_server(Arc::default()).await;
        let url = format!("http://{addr}/hello");
        let report = run_cli(&["--url", &url, "-c", "4", "-d", "300ms"]).await;
        assert!(report.requests > 0);
        assert_eq!((report.errors, report.timeouts, report.non_2xx), (0, 0, 0));
        assert_eq!(report.status_counts[&200], report.requests);
        assert!(
            report.seconds > 0.25 && report.seconds <= 0.301,
            "{}",
            report.seconds
        );
        assert!(report.p50_ms > 0.0 && report.p50_ms <= report.max_ms);
        assert_eq!(report.connects, 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stops_after_the_request_budget_and_excludes_warmup() {
        let hits = Arc::new(AtomicUsize::new(0));
        let addr = spawn_server(Arc::clone(&hits)).await;
        let url = format!("http://{addr}/users?id={{n}}");
        let args = [
            "--url",
            &url,
            "-c",
            "3",
            "-d",
            "5s",
            "-w",
            "100ms",
            "-n",
            "200",
            "-m",
            "POST",
            "-b",
            "userName=user{n}@x&r={rand}",
        ];
        let report = run_cli(&args).await;
        assert_eq!(report.requests, 200);
        assert_eq!(report.status_counts[&201], 200);
        assert_eq!((report.errors, report.timeouts), (0, 0));
        assert!(report.seconds < 5.0);
        assert!(
            hits.load(Ordering::Relaxed) > 200,
            "warm-up requests were sent"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_over_tls_trusting_the_given_ca() {
        // A CA and a certificate for the name loadgen sends in SNI (from --host).
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["api.closedloop.localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = std::env::temp_dir().join(format!("loadgen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(|_| async {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let url = format!("https://{addr}/");
        let ca = ca.display().to_string();
        let args = [
            "--url",
            &url,
            "--host",
            "api.closedloop.localhost:443",
            "--cacert",
            &ca,
            "-c",
            "2",
            "-n",
            "40",
        ];
        let report = run_cli(&args).await;
        assert_eq!((report.requests, report.errors), (40, 0));
        assert_eq!(report.status_counts[&200], 40);
        assert_eq!(report.connects, 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_non_2xx_and_connection_errors() {
        let addr = spawn_server(Arc::default()).await;
        let url = format!("http://{addr}/missing");
        let report = run_cli(&["--url", &url, "-c", "2", "-n", "50"]).await;
        assert_eq!((report.requests, report.non_2xx), (50, 50));
        assert_eq!(report.status_classes["4xx"], 50);

        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let report = run_cli(&["--url", &url, "-c", "1", "-d", "50ms"]).await;
        assert_eq!(report.requests, 0);
        assert!(report.errors > 0);
    }
}
