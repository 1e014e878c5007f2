//! What both binaries install for operators to see them by: the process-wide Prometheus
//! recorder ([`prometheus`]), the log subscriber with its one JSON line schema, and
//! OpenTelemetry traces exported over OTLP/HTTP ([`init`]), plus the W3C trace context
//! the gateway hands the worker ([`TraceParent`]).
//!
//! The `metrics` facade has exactly one global recorder per process; the gateway and
//! the worker both install it through [`prometheus`] so that, when several of them run
//! in one process (the integration tests), they share one registry instead of one of
//! them silently recording into nothing.
//!
//! Traces are off unless `[telemetry] otlp_endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`/`OTEL_EXPORTER_OTLP_ENDPOINT` name a collector.
//! Off, no span meant for export is made ([`tracing_on`] is checked first) and no
//! exporter runs. On, only spans of [`TRACE_TARGET`] are exported, each with the
//! attributes it states: log events never become span data.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Upper bounds of every `*_duration_seconds` histogram: from sub-millisecond
/// proxying to a 30 s upstream timeout.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Installs the recorder on first call and returns its handle (the same one after).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Only this function installs a recorder, and only once.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The target of every span meant for export. Only spans of this target reach the
/// OpenTelemetry layer, and no events at all: a log line's fields (an email in a
/// warning, say) never become span data by accident. Each span states its attributes.
pub const TRACE_TARGET: &str = "closedloop::trace";

/// Whether traces are exported. Read on every request before a span is made, so that a
/// process without an OTLP endpoint creates no span at all (no allocation, no
/// registry entry): tracing off costs one relaxed load.
static TRACING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports traces (an OTLP endpoint was configured at start).
#[inline]
pub fn tracing_on() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// The sampling ratio in force (the bits of an `f64`), set by [`init`].
static RATIO: AtomicU64 = AtomicU64::new(0);

/// Whether a request gets spans: traces are exported and the request is sampled, by
/// its caller's `traceparent` flag (parent-based) or, for a trace that starts here, by
/// the ratio. The decision is made before any span exists, so an unsampled request
/// costs what it costs with traces off (the SDK's own sampler, parent-based over
/// always-on, then agrees with it).
pub fn should_trace(incoming: Option<&TraceParent>) -> bool {
    if !tracing_on() {
        return false;
    }
    match incoming {
        Some(parent) => parent.sampled,
        None => sample(
            f64::from_bits(RATIO.load(Ordering::Relaxed)),
            rand::random(),
        ),
    }
}

/// The root decision: `draw` (uniform in [0, 1)) falls below `ratio`.
fn sample(ratio: f64, draw: f64) -> bool {
    ratio >= 1.0 || draw < ratio
}

/// Whether a span made now would join a request's trace: traces are exported and a
/// span is current. Store calls use it, so that background work (the revocation
/// journal's polling, audit pruning, start-up checks) makes no one-span traces.
pub fn in_trace() -> bool {
    tracing_on() && !tracing::Span::current().is_none()
}

/// The region this process serves (a worker's), for span attributes.
static REGION: OnceLock<String> = OnceLock::new();

/// The region given to [`init`] (empty for the gateway, which serves them all).
pub fn region() -> &'static str {
    REGION.get().map_or("", String::as_str)
}

/// How log lines are written: `--log-format` or `CLOSEDLOOP_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Compact human-readable lines (the default).
    #[default]
    Compact,
    /// One JSON object per line in the schema of `deploy/README.md` ("Logs").
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "compact" | "text" => Ok(Self::Compact),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?} (json or compact)")),
        }
    }
}

/// `[telemetry]` of `regions.toml`: where traces go and how many are kept. The default
/// (no table): no collector, so no traces unless the standard variables name one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); traces go to its
    /// `/v1/traces`. `None`: the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` decide, and without them traces are off.
    pub otlp_endpoint: Option<url::Url>,
    /// The share of new traces recorded (0.0–1.0). Parent-based: a request whose
    /// `traceparent` says sampled (or not) is followed as the caller decided. `None`:
    /// the standard `OTEL_TRACES_SAMPLER_ARG`, else 1.0.
    pub sampling_ratio: Option<f64>,
}

impl TelemetrySettings {
    /// The full traces URL to export to, if the file names a collector.
    fn traces_url(&self) -> Option<String> {
        self.otlp_endpoint
            .as_ref()
            .map(|base| format!("{}/v1/traces", base.as_str().trim_end_matches('/')))
    }

    /// The ratio in force: the file's, else `OTEL_TRACES_SAMPLER_ARG` (when a ratio),
    /// else every trace.
    fn ratio(&self, env: &dyn Fn(&str) -> Option<String>) -> f64 {
        self.sampling_ratio
            .or_else(|| {
                env("OTEL_TRACES_SAMPLER_ARG")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|r| (0.0..=1.0).contains(r))
            })
            .unwrap_or(1.0)
    }

    /// Whether traces are on: the file or a standard variable names a collector.
    fn enabled(&self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        self.otlp_endpoint.is_some()
            || [
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ]
            .iter()
            .any(|name| env(name).is_some_and(|v| !v.trim().is_empty()))
    }
}

/// Why logging or tracing could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

/// What a process installs at start.
#[derive(Debug)]
pub struct Setup<'a> {
    /// `service.name` of exported spans (`gateway`, `region-worker`).
    pub service: &'static str,
    /// How log lines are written.
    pub format: LogFormat,
    /// Colours in compact lines: only for a person at a terminal, never in files or
    /// log collectors.
    pub ansi: bool,
    /// The region a worker serves: on every JSON line and every span. `None` for the
    /// gateway, whose lines say a request's region in their own fields.
    pub region: Option<String>,
    /// Where traces go; `None` for a process that never exports (operator commands).
    pub traces: Option<&'a TelemetrySettings>,
}

/// Keeps the exporter alive; dropping it flushes the spans still queued.
#[derive(Debug)]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

/// Installs the process's global subscriber: log lines in `format` to `writer`,
/// filtered by `RUST_LOG` (default `info`), and, when a collector is configured, the
/// OpenTelemetry layer for spans of [`TRACE_TARGET`].
pub fn init<W>(setup: Setup<'_>, writer: W) -> Result<Guard, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = setup.ansi && std::env::var_os("NO_COLOR").is_none();
    let fmt = match setup.format {
        LogFormat::Compact => tracing_subscriber::fmt::layer()
            .compact()
            .with_ansi(ansi)
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine {
                region: setup.region.clone(),
            })
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    };
    let env = |name: &str| std::env::var(name).ok();
    let (otel, provider) = match setup.traces {
        Some(settings) if settings.enabled(&env) => {
            let provider = provider(setup.service, setup.region.as_deref(), settings)?;
            let tracer = provider.tracer(setup.service);
            let layer = tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
                .with_target(false)
                .with_level(false)
                .with_tracked_inactivity(false)
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    meta.is_span() && meta.target() == TRACE_TARGET
                }));
            (Some(layer), Some(provider))
        }
        _ => (None, None),
    };
    let on = otel.is_some();
    if let Some(region) = &setup.region {
        let _ = REGION.set(region.clone());
    }
    let subscriber = tracing_subscriber::registry().with(fmt).with(otel);
    let dispatch = tracing::Dispatch::new(subscriber);
    let _ = DISPATCH.set(dispatch.clone());
    tracing::dispatcher::set_global_default(dispatch).map_err(|e| TelemetryError(e.to_string()))?;
    TRACING.store(on, Ordering::Relaxed);
    Ok(Guard { provider })
}

/// The installed dispatch, for reading a span's OpenTelemetry context while a log
/// line is formatted (when the global dispatcher cannot be re-entered).
static DISPATCH: OnceLock<tracing::Dispatch> = OnceLock::new();

/// The tracer provider: OTLP/HTTP protobuf through [`OtlpClient`], batched; the ratio
/// is applied by [`should_trace`].
fn provider(
    service: &'static str,
    region: Option<&str>,
    settings: &TelemetrySettings,
) -> Result<SdkTracerProvider, TelemetryError> {
    let ratio = settings.ratio(&|name| std::env::var(name).ok());
    RATIO.store(ratio.to_bits(), Ordering::Relaxed);
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(Duration::from_secs(10))
        .with_http_client(OtlpClient::new(Duration::from_secs(10)));
    if let Some(url) = settings.traces_url() {
        exporter = exporter.with_endpoint(url);
    }
    let exporter = exporter
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let mut resource = opentelemetry_sdk::Resource::builder().with_service_name(service);
    if let Some(region) = region {
        resource = resource.with_attribute(opentelemetry::KeyValue::new(
            "closedloop.region",
            region.to_owned(),
        ));
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        // Roots are decided by `should_trace` before a span is made.
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_resource(resource.build())
        .build())
}

/// The exporter's HTTP client: hyper's client over rustls with ring and Mozilla's roots,
/// the stack the worker already uses for Okta (no second HTTP client, no second TLS
/// stack). The batch processor calls it from its own thread, outside any runtime, so
/// each request runs on a small runtime of its own that lives as long as the process.
struct OtlpClient {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
    timeout: Duration,
}

impl std::fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpClient").finish_non_exhaustive()
    }
}

/// The runtime the exporter's requests run on (one thread, made on first export).
fn export_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .expect("a one-thread runtime can be built")
    })
}

impl OtlpClient {
    fn new(timeout: Duration) -> Self {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .unwrap_or_else(|_| unreachable!("ring supports the default TLS versions"))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector);
        Self { client, timeout }
    }
}

type HttpResult = Result<http::Response<Bytes>, opentelemetry_http::HttpError>;

impl opentelemetry_http::HttpClient for OtlpClient {
    fn send_bytes<'life0, 'async_trait>(
        &'life0 self,
        request: http::Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = HttpResult> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let client = self.client.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let request = request.map(Full::new);
            let call = async move {
                let response = client.request(request).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, 1024 * 1024).collect().await?.to_bytes();
                Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
            };
            export_runtime()
                .spawn(async move {
                    tokio::time::timeout(timeout, call)
                        .await
                        .map_err(|_| "the collector did not answer in time")?
                })
                .await?
        })
    }
}

/// A W3C trace context (`traceparent`, and `tracestate` passed on as it came).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// The caller's span, 8 bytes, never all zero.
    pub parent_id: [u8; 8],
    /// Bit 0: the caller records this trace.
    pub sampled: bool,
}

impl TraceParent {
    /// Reads a `traceparent` header value (version 00, or a later version's first four
    /// fields, as the spec asks). Anything malformed is `None`: a new trace starts.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?.trim();
        let mut parts = text.split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let parent = parts.next()?;
        let flags = parts.next()?;
        let rest = parts.next();
        if version.len() != 2 || version == "ff" || !is_lower_hex(version) {
            return None;
        }
        if version == "00" && rest.is_some() {
            return None;
        }
        if trace.len() != 32 || parent.len() != 16 || flags.len() != 2 {
            return None;
        }
        if !(is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags)) {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut parent_id = [0u8; 8];
        hex::decode_to_slice(trace, &mut trace_id).ok()?;
        hex::decode_to_slice(parent, &mut parent_id).ok()?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id,
            parent_id,
            sampled: flags & 1 == 1,
        })
    }

    /// A new trace (random ids, not sampled): for a request that came without one,
    /// when this process exports nothing, so that the hop still shares an id in logs.
    pub fn random() -> Self {
        loop {
            let trace_id: [u8; 16] = rand::random();
            let parent_id: [u8; 8] = rand::random();
            if trace_id != [0; 16] && parent_id != [0; 8] {
                return Self {
                    trace_id,
                    parent_id,
                    sampled: false,
                };
            }
        }
    }

    /// The header value, version 00.
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.parent_id),
            u8::from(self.sampled)
        )
    }

    /// The trace id as 32 lower-case hex digits (what logs carry).
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    /// This context as the remote parent of a span made here; `tracestate` (if any,
    /// and well-formed) is kept for the calls this span makes.
    pub fn remote_context(&self, tracestate: Option<&str>) -> opentelemetry::Context {
        let state = tracestate
            .and_then(|s| TraceState::from_str(s).ok())
            .unwrap_or_default();
        let span = SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.parent_id),
            if self.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            state,
        );
        opentelemetry::Context::new().with_remote_span_context(span)
    }

    /// The context of `span` (one made here, exported): what a call out of it passes
    /// on. `None` when the span is not known to the OpenTelemetry layer.
    pub fn of_span(span: &tracing::Span) -> Option<Self> {
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| Self {
            trace_id: sc.trace_id().to_bytes(),
            parent_id: sc.span_id().to_bytes(),
            sampled: sc.is_sampled(),
        })
    }
}

/// Makes `parent` (a request's incoming context) the parent of `span`.
pub fn set_remote_parent(span: &tracing::Span, parent: &TraceParent, tracestate: Option<&str>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let _ = span.set_parent(parent.remote_context(tracestate));
}

/// Records an attribute on an exported span (beyond the fields it was made with).
pub fn set_attribute(
    span: &tracing::Span,
    key: &'static str,
    value: impl Into<opentelemetry::Value>,
) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    span.set_attribute(key, value);
}

/// Marks an exported span failed, with its error kind as the status description.
pub fn set_error(span: &tracing::Span, kind: &'static str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    span.set_attribute("error.type", kind);
    span.set_status(opentelemetry::trace::Status::error(kind));
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The JSON line format: one object per line with `timestamp`, `level`, `target`,
/// `message`, `trace_id`, `span_id`, `request_id`, `region` (each `null` when
/// unknown) and `fields` (the rest of the event's fields).
struct JsonLine {
    /// The process's region (a worker's), used when neither the event nor a span
    /// says one.
    region: Option<String>,
}

/// The keys lifted out of `fields` to the top level.
const LIFTED: [&str; 4] = ["trace_id", "span_id", "request_id", "region"];

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let mut fields = fields.0;
        let message = fields.remove("message").unwrap_or(serde_json::Value::Null);
        let mut lifted: [serde_json::Value; 4] = Default::default();
        for (slot, key) in lifted.iter_mut().zip(LIFTED) {
            if let Some(value) = fields.remove(key) {
                *slot = value;
            }
        }
        // From the spans, innermost first: the request id and region a request's span
        // carries, and the ids of the innermost exported span.
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if lifted[2].is_null() || lifted[3].is_null() {
                    let ext = span.extensions();
                    if let Some(recorded) = ext.get::<FormattedFields<N>>()
                        && let Ok(serde_json::Value::Object(map)) =
                            serde_json::from_str::<serde_json::Value>(recorded.fields.as_str())
                    {
                        for (i, key) in [(2, "request_id"), (3, "region")] {
                            if lifted[i].is_null()
                                && let Some(v) = map.get(key)
                            {
                                lifted[i] = v.clone();
                            }
                        }
                    }
                }
                if lifted[1].is_null()
                    && tracing_on()
                    && span.metadata().target() == TRACE_TARGET
                    && let Some(dispatch) = DISPATCH.get()
                    && let Some(cx) = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)
                {
                    let sc = cx.span().span_context().clone();
                    if sc.is_valid() {
                        if lifted[0].is_null() {
                            lifted[0] = sc.trace_id().to_string().into();
                        }
                        lifted[1] = sc.span_id().to_string().into();
                    }
                }
            }
        }
        if lifted[3].is_null()
            && let Some(region) = &self.region
        {
            lifted[3] = region.clone().into();
        }
        let meta = event.metadata();
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut line = serde_json::Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        line.insert("message".into(), message);
        for (key, value) in LIFTED.iter().zip(lifted) {
            line.insert((*key).into(), value);
        }
        line.insert("fields".into(), serde_json::Value::Object(fields));
        let text =
            serde_json::to_string(&serde_json::Value::Object(line)).map_err(|_| std::fmt::Error)?;
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// An event's fields as JSON values (numbers and booleans kept as such).
#[derive(Default)]
struct JsonVisitor(serde_json::Map<String, serde_json::Value>);

impl Visit for JsonVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod trace_tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_refuses_malformed_values() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(good).unwrap();
        assert!(tp.sampled);
        assert_eq!(tp.header().as_bytes(), good);
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            &b""[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(
                TraceParent::parse(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // A later version: its first four fields count.
        assert!(
            TraceParent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
    }

    #[test]
    fn random_contexts_are_valid_and_unsampled() {
        let tp = TraceParent::random();
        assert_eq!(TraceParent::parse(tp.header().as_bytes()), Some(tp));
        assert!(!tp.sampled);
    }

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[test]
    fn json_lines_have_one_schema_with_the_request_context_lifted() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLine {
                region: Some("eu".into()),
            })
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "gateway::access",
                request_id = "0b7c1f2e-1111-4222-8333-944445555666",
                trace_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                region = "us",
                status = 201u64,
                "done"
            );
            let span = tracing::info_span!("request", request_id = "r-2");
            let _entered = span.enter();
            tracing::warn!(ok = false, "inside");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let schema = [
            "fields",
            "level",
            "message",
            "region",
            "request_id",
            "span_id",
            "target",
            "timestamp",
            "trace_id",
        ];
        assert_eq!(keys(&lines[0]), schema);
        assert_eq!(keys(&lines[1]), schema);
        let access = &lines[0];
        assert_eq!(access["target"], "gateway::access");
        assert_eq!(access["level"], "INFO");
        assert_eq!(access["message"], "done");
        assert_eq!(access["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(access["request_id"], "0b7c1f2e-1111-4222-8333-944445555666");
        assert_eq!(access["region"], "us", "the event's own region wins");
        assert_eq!(access["fields"], serde_json::json!({ "status": 201 }));
        assert!(
            time::OffsetDateTime::parse(
                access["timestamp"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok()
        );
        let inside = &lines[1];
        assert_eq!(inside["request_id"], "r-2", "from the span");
        assert_eq!(inside["region"], "eu", "the process's region");
        assert_eq!(inside["trace_id"], serde_json::Value::Null);
        assert_eq!(inside["fields"], serde_json::json!({ "ok": false }));
    }

    #[test]
    fn sampling_follows_the_caller_else_the_ratio() {
        assert!(sample(1.0, 0.999));
        assert!(sample(0.01, 0.005));
        assert!(!sample(0.01, 0.5));
        assert!(!sample(0.0, 0.0));
        // Traces off in this test process: nothing is traced, whatever the caller says.
        let sampled = TraceParent {
            sampled: true,
            ..TraceParent::random()
        };
        assert!(!should_trace(Some(&sampled)));
        assert!(!should_trace(None));
    }

    #[test]
    fn log_formats_parse() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("JSON".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("compact".parse::<LogFormat>(), Ok(LogFormat::Compact));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn traces_are_on_with_an_endpoint_in_the_file_or_the_standard_variables() {
        let none = |_: &str| None;
        assert!(!TelemetrySettings::default().enabled(&none));
        let with_var = |name: &str| {
            (name == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4318".to_owned())
        };
        assert!(TelemetrySettings::default().enabled(&with_var));
        let settings = TelemetrySettings {
            otlp_endpoint: Some("http://collector:4318/".parse().unwrap()),
            sampling_ratio: Some(0.5),
        };
        assert!(settings.enabled(&none));
        assert_eq!(settings.ratio(&none), 0.5);
        let arg = |name: &str| (name == "OTEL_TRACES_SAMPLER_ARG").then(|| "0.01".to_owned());
        assert_eq!(settings.ratio(&arg), 0.5, "the file wins");
        assert_eq!(TelemetrySettings::default().ratio(&arg), 0.01);
        assert_eq!(TelemetrySettings::default().ratio(&none), 1.0);
        assert_eq!(
            settings.traces_url().unwrap(),
            "http://collector:4318/v1/traces"
        );
    }
}
