//! Logging (JSON lines on stdout, filtered by `SSOBRIDGE_LOG`, default `info`) and Prometheus
//! metrics (`/metrics`), kept by the `prometheus` crate: each series is its own atomic, found
//! through its family's read-mostly map, so counting takes no process-wide lock. The metric
//! families are declared once, in [`FAMILIES`]; every layer counts through [`count`],
//! [`gauge`] and [`observe`] by family name, without threading a handle through.

use std::collections::HashMap;
use std::sync::OnceLock;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_env("SSOBRIDGE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `future` as the handling of the request `id` (its `x-request-id`): what it records
/// (a login event) can name the request without the id being passed down.
pub async fn with_request_id<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// The id of the request being handled, if any.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Latency buckets in seconds: from a store round trip to an upstream timeout.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric family: name, kind, help, label names.
const FAMILIES: &[(&str, Kind, &str, &[&str])] = &[
    ("ssobridge_logins_started_total", Kind::Counter, "Logins sent to the upstream, by client.", &["client"]),
    (
        "ssobridge_logins_completed_total",
        Kind::Counter,
        "Logins that reached the client with a code, by client.",
        &["client"],
    ),
    (
        "ssobridge_logins_failed_total",
        Kind::Counter,
        "Logins that ended in an error, by client and reason.",
        &["client", "reason"],
    ),
    ("ssobridge_tokens_issued_total", Kind::Counter, "Token responses, by client.", &["client"]),
    ("ssobridge_store_errors_total", Kind::Counter, "Store operations that failed.", &[]),
    ("ssobridge_rate_limited_total", Kind::Counter, "Requests refused with 429, by limit.", &["limit"]),
    (
        "ssobridge_upstream_duration_seconds",
        Kind::Histogram,
        "Upstream calls, by operation and outcome (ok: the upstream answered; error: unreachable, 5xx or 429).",
        &["operation", "outcome"],
    ),
    (
        "ssobridge_adapter_duration_seconds",
        Kind::Histogram,
        "Downstream adapter calls, by adapter and outcome (linked, created, unchanged, refused, transient, \
         misconfigured).",
        &["adapter", "outcome"],
    ),
    (
        "ssobridge_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route template, method and status.",
        &["route", "method", "status"],
    ),
    (
        "ssobridge_http_request_duration_seconds",
        Kind::Histogram,
        "Time to answer HTTP requests, by route template and method.",
        &["route", "method"],
    ),
    (
        "ssobridge_token_failures_total",
        Kind::Counter,
        "/token requests answered with an error, by client (unknown before it authenticated) and OAuth error.",
        &["client", "error"],
    ),
    (
        "ssobridge_authorize_refusals_total",
        Kind::Counter,
        "/authorize requests answered with an error instead of a sign-in, by client and reason.",
        &["client", "reason"],
    ),
    (
        "ssobridge_ready",
        Kind::Gauge,
        "The last readiness check, by check (store, upstream, credentials): 1 ok.",
        &["check"],
    ),
    ("ssobridge_build_info", Kind::Gauge, "Always 1, labelled with the running version.", &["version"]),
    (
        "ssobridge_signing_key_age_seconds",
        Kind::Gauge,
        "Age of each published signing key with a known creation time (rotated keys), by kid and key type.",
        &["kid", "kty"],
    ),
    (
        "ssobridge_route_sync_total",
        Kind::Counter,
        "Full route syncs from Scalekit, by outcome (ok, error, skipped).",
        &["outcome"],
    ),
    ("ssobridge_route_sync_last_success_timestamp_seconds", Kind::Gauge, "When a full route sync last completed.", &[]),
    (
        "ssobridge_routes",
        Kind::Gauge,
        "Routes in the table, by source (config, api, synced), as of the last sync.",
        &["source"],
    ),
    (
        "ssobridge_webhooks_total",
        Kind::Counter,
        "Scalekit webhook deliveries, by event and outcome.",
        &["event", "outcome"],
    ),
    ("ssobridge_route_lookups_total", Kind::Counter, "Route-table misses asked of Scalekit, by outcome.", &["outcome"]),
    (
        "ssobridge_jobs_total",
        Kind::Counter,
        "Attempts of queued jobs, by kind and outcome (done, retry, failed).",
        &["kind", "outcome"],
    ),
    ("ssobridge_events_total", Kind::Counter, "Events recorded in the event log, by type.", &["type"]),
    (
        "ssobridge_events_dropped_total",
        Kind::Counter,
        "Events lost: the writer could not keep up or the store refused them.",
        &[],
    ),
];

struct Metrics {
    registry: Registry,
    counters: HashMap<&'static str, (IntCounterVec, &'static [&'static str])>,
    gauges: HashMap<&'static str, (GaugeVec, &'static [&'static str])>,
    histograms: HashMap<&'static str, (HistogramVec, &'static [&'static str])>,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = Registry::new();
        let mut metrics =
            Metrics { registry, counters: HashMap::new(), gauges: HashMap::new(), histograms: HashMap::new() };
        for &(name, kind, help, labels) in FAMILIES {
            // The declarations above are constants: a failure here is a typo in them, which the
            // unit test below catches; such a family is left out rather than stopping the broker.
            let registered = match kind {
                Kind::Counter => IntCounterVec::new(Opts::new(name, help), labels).map(|c| {
                    metrics.counters.insert(name, (c.clone(), labels));
                    Box::new(c) as Box<dyn Collector>
                }),
                Kind::Gauge => GaugeVec::new(Opts::new(name, help), labels).map(|g| {
                    metrics.gauges.insert(name, (g.clone(), labels));
                    Box::new(g) as Box<dyn Collector>
                }),
                Kind::Histogram => HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels)
                    .map(|h| {
                        metrics.histograms.insert(name, (h.clone(), labels));
                        Box::new(h) as Box<dyn Collector>
                    }),
            };
            if let Err(error) = registered.and_then(|c| metrics.registry.register(c)) {
                tracing::error!(metric = name, error = %error, "metric family not registered");
            }
        }
        if let Err(error) = metrics.registry.register(Box::new(Process::new())) {
            tracing::error!(error = %error, "process metrics not registered");
        }
        // A counter without labels is one series: there at zero from the start, as Prometheus's
        // own clients do it, so that an alert on its increase evaluates before the first error.
        for (family, labels) in metrics.counters.values() {
            if labels.is_empty() {
                family.with_label_values::<&str>(&[]);
            }
        }
        if let Some((family, _)) = metrics.gauges.get("ssobridge_build_info") {
            family.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
        }
        metrics
    })
}

/// The label values in the family's order; a label the caller did not give is empty.
fn values<'a>(labels: &[&str], pairs: &[(&str, &'a str)]) -> Vec<&'a str> {
    labels.iter().map(|label| pairs.iter().find(|(k, _)| k == label).map(|(_, v)| *v).unwrap_or("")).collect()
}

/// Adds one to a counter.
pub fn count(name: &'static str, pairs: &[(&str, &str)]) {
    match metrics().counters.get(name) {
        Some((family, labels)) => family.with_label_values(&values(labels, pairs)).inc(),
        None => undeclared(name),
    }
}

/// Sets a gauge.
pub fn gauge(name: &'static str, pairs: &[(&str, &str)], value: f64) {
    match metrics().gauges.get(name) {
        Some((family, labels)) => family.with_label_values(&values(labels, pairs)).set(value),
        None => undeclared(name),
    }
}

/// Records a duration in seconds.
pub fn observe(name: &'static str, pairs: &[(&str, &str)], seconds: f64) {
    match metrics().histograms.get(name) {
        Some((family, labels)) => family.with_label_values(&values(labels, pairs)).observe(seconds),
        None => undeclared(name),
    }
}

/// Makes the series of a counter or histogram exist at zero, so that a rate over it, or a
/// ratio with it, reads 0 rather than nothing before the first event (Prometheus's advice for
/// labels with a known set of values: an alert on an outcome that never happened yet still
/// evaluates).
pub fn touch(name: &'static str, pairs: &[(&str, &str)]) {
    let m = metrics();
    if let Some((family, labels)) = m.counters.get(name) {
        family.with_label_values(&values(labels, pairs));
    } else if let Some((family, labels)) = m.histograms.get(name) {
        family.with_label_values(&values(labels, pairs));
    } else {
        undeclared(name);
    }
}

/// Replaces every series of a gauge with `series` (label pairs and value): for gauges over a
/// set that changes, such as the published signing keys.
pub fn gauge_set_all(name: &'static str, series: &[(Vec<(&str, &str)>, f64)]) {
    match metrics().gauges.get(name) {
        Some((family, labels)) => {
            family.reset();
            for (pairs, value) in series {
                family.with_label_values(&values(labels, pairs)).set(*value);
            }
        }
        None => undeclared(name),
    }
}

fn undeclared(name: &str) {
    // A programming error; metrics must never fail a request.
    debug_assert!(false, "metric {name} is not declared in telemetry::FAMILIES");
    tracing::error!(metric = name, "metric is not declared");
}

/// Times `future` into the histogram `name`.
pub async fn timed<T>(name: &'static str, pairs: &[(&str, &str)], future: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = future.await;
    observe(name, pairs, started.elapsed().as_secs_f64());
    result
}

/// Times `future` into the histogram `name`, with the label `outcome` that `outcome` reads from
/// its result.
pub async fn timed_outcome<T>(
    name: &'static str,
    pairs: &[(&str, &str)],
    future: impl std::future::Future<Output = T>,
    outcome: impl FnOnce(&T) -> &'static str,
) -> T {
    let started = std::time::Instant::now();
    let result = future.await;
    let mut labelled = pairs.to_vec();
    labelled.push(("outcome", outcome(&result)));
    observe(name, &labelled, started.elapsed().as_secs_f64());
    result
}

/// An upstream HTTP call's outcome: `ok` when the upstream answered, whatever it said (a
/// refusal is its answer), `error` when it could not be reached or answered 5xx or 429.
pub fn http_outcome<E>(result: &Result<reqwest::Response, E>) -> &'static str {
    match result {
        Ok(response) if !response.status().is_server_error() && response.status().as_u16() != 429 => "ok",
        _ => "error",
    }
}

/// The operations of `ssobridge_upstream_duration_seconds` every deployment makes: discovery
/// (with the keys), the code exchange, the check of the broker's credentials.
pub const UPSTREAM_OPERATIONS: &[&str] = &["discovery", "token", "credentials_check"];
/// Those of Scalekit's management API (`[scalekit]`): its token, organizations, domains,
/// connections.
pub const SCALEKIT_OPERATIONS: &[&str] = &["api_token", "api_organizations", "api_domains", "api_connections"];

/// The Prometheus text exposition (format 0.0.4) of everything counted so far.
pub fn render() -> String {
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&metrics().registry.gather(), &mut out) {
        tracing::error!(error = %error, "metrics could not be encoded");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The `process_*` metrics every Prometheus exporter has, read from /proc at each scrape
/// (Linux; elsewhere they are left out).
struct Process {
    descs: Vec<Desc>,
}

const PROCESS: &[(&str, &str)] = &[
    ("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."),
    ("process_resident_memory_bytes", "Resident memory size in bytes."),
    ("process_virtual_memory_bytes", "Virtual memory size in bytes."),
    ("process_open_fds", "Number of open file descriptors."),
    ("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
];

impl Process {
    fn new() -> Process {
        let descs = PROCESS
            .iter()
            .filter_map(|(name, help)| Desc::new((*name).to_owned(), (*help).to_owned(), vec![], HashMap::new()).ok())
            .collect();
        Process { descs }
    }
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(readings) = process_readings() else { return Vec::new() };
        PROCESS
            .iter()
            .zip(readings)
            .filter_map(|((name, help), value)| {
                // The CPU time only grows: a counter, as every exporter has it; the rest gauges.
                if name.ends_with("_total") {
                    let counter = prometheus::Counter::with_opts(Opts::new(*name, *help)).ok()?;
                    counter.inc_by(value);
                    Some(counter.collect())
                } else {
                    let gauge = prometheus::Gauge::with_opts(Opts::new(*name, *help)).ok()?;
                    gauge.set(value);
                    Some(gauge.collect())
                }
            })
            .flatten()
            .collect()
    }
}

/// CPU seconds, RSS, virtual size, open fds and start time of this process, from /proc.
fn process_readings() -> Option<[f64; 5]> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let ticks = 100.0; // USER_HZ: 100 on every Linux the broker runs on
    let page = 4096.0;
    let cpu = (field(11)? + field(12)?) / ticks;
    let start_ticks = field(19)?;
    let vsize = field(20)?;
    let rss = field(21)? * page;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))?;
    let fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as f64).unwrap_or(0.0);
    Some([cpu, rss, vsize, fds, boot + start_ticks / ticks])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        count("ssobridge_logins_failed_total", &[("client", "a\"b"), ("reason", "access_denied")]);
        observe("ssobridge_adapter_duration_seconds", &[("adapter", "none"), ("outcome", "unchanged")], 0.003);
        touch("ssobridge_upstream_duration_seconds", &[("operation", "token"), ("outcome", "error")]);
        let text = render();
        assert!(text.contains("ssobridge_logins_failed_total{client=\"a\\\"b\",reason=\"access_denied\"} "), "{text}");
        assert!(
            text.contains(
                "ssobridge_adapter_duration_seconds_bucket{adapter=\"none\",outcome=\"unchanged\",le=\"0.005\"} "
            ),
            "{text}"
        );
        // Touched: there, at zero.
        assert!(
            text.contains("ssobridge_upstream_duration_seconds_count{operation=\"token\",outcome=\"error\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(&format!("ssobridge_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))),
            "{text}"
        );
        assert!(text.contains("# TYPE ssobridge_adapter_duration_seconds histogram"));
    }

    #[test]
    fn every_declared_family_registers_and_process_metrics_are_there() {
        let m = metrics();
        assert_eq!(m.counters.len() + m.gauges.len() + m.histograms.len(), FAMILIES.len(), "a family failed");
        let text = render();
        for name in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} in {text}");
        }
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"), "{text}");
    }
}
