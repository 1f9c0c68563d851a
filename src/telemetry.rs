//! Logging (JSON lines on stdout, filtered by `SSOBRIDGE_LOG`, default `info`) and Prometheus
//! metrics (`/metrics`). The metrics registry is process-global so that every layer can count
//! without threading a handle through.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

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

/// Latency buckets in seconds: from a store round trip to an upstream timeout.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

type Series = (&'static str, String);

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<Series, u64>,
    gauges: BTreeMap<Series, f64>,
    histograms: BTreeMap<Series, Histogram>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(out, "{name}=\"{value}\"");
    }
    out
}

/// Adds one to a counter.
pub fn count(name: &'static str, pairs: &[(&str, &str)]) {
    let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
    *registry.counters.entry((name, labels(pairs))).or_default() += 1;
}

/// Sets a gauge.
pub fn gauge(name: &'static str, pairs: &[(&str, &str)], value: f64) {
    let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
    registry.gauges.insert((name, labels(pairs)), value);
}

/// Records a duration in seconds.
pub fn observe(name: &'static str, pairs: &[(&str, &str)], seconds: f64) {
    let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
    let histogram = registry.histograms.entry((name, labels(pairs))).or_default();
    if histogram.counts.is_empty() {
        histogram.counts = vec![0; BUCKETS.len()];
    }
    for (bucket, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
        if seconds <= *bucket {
            *count += 1;
        }
    }
    histogram.sum += seconds;
    histogram.count += 1;
}

/// Times `future` into the histogram `name`.
pub async fn timed<T>(name: &'static str, pairs: &[(&str, &str)], future: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let result = future.await;
    observe(name, pairs, started.elapsed().as_secs_f64());
    result
}

const HELP: &[(&str, &str, &str)] = &[
    ("ssobridge_logins_started_total", "counter", "Logins sent to the upstream, by client."),
    ("ssobridge_logins_completed_total", "counter", "Logins that reached the client with a code, by client."),
    ("ssobridge_logins_failed_total", "counter", "Logins that ended in an error, by client and reason."),
    ("ssobridge_tokens_issued_total", "counter", "Token responses, by client."),
    ("ssobridge_store_errors_total", "counter", "Store operations that failed."),
    ("ssobridge_rate_limited_total", "counter", "Requests refused with 429, by limit."),
    ("ssobridge_upstream_duration_seconds", "histogram", "Upstream calls, by operation."),
    ("ssobridge_route_sync_total", "counter", "Full route syncs from Scalekit, by outcome (ok, error, skipped)."),
    ("ssobridge_route_sync_last_success_timestamp_seconds", "gauge", "When a full route sync last completed."),
    ("ssobridge_routes", "gauge", "Routes in the table, by source (config, api, synced), as of the last sync."),
    ("ssobridge_webhooks_total", "counter", "Scalekit webhook deliveries, by event and outcome."),
    ("ssobridge_route_lookups_total", "counter", "Route-table misses asked of Scalekit, by outcome."),
    ("ssobridge_adapter_duration_seconds", "histogram", "Downstream adapter calls, by adapter."),
];

/// The Prometheus text exposition of everything counted so far.
pub fn render() -> String {
    let registry = registry().lock().unwrap_or_else(|p| p.into_inner());
    let mut out = String::new();
    for (name, kind, help) in HELP {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for ((series, labels), value) in registry.counters.iter().filter(|((n, _), _)| n == name) {
            let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
            let _ = writeln!(out, "{series}{braces} {value}");
        }
        for ((series, labels), value) in registry.gauges.iter().filter(|((n, _), _)| n == name) {
            let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
            let _ = writeln!(out, "{series}{braces} {value}");
        }
        for ((series, labels), h) in registry.histograms.iter().filter(|((n, _), _)| n == name) {
            let sep = if labels.is_empty() { "" } else { "," };
            for (bucket, count) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(out, "{series}_bucket{{{labels}{sep}le=\"{bucket}\"}} {count}");
            }
            let _ = writeln!(out, "{series}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
            let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
            let _ = writeln!(out, "{series}_sum{braces} {}", h.sum);
            let _ = writeln!(out, "{series}_count{braces} {}", h.count);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        count("ssobridge_logins_failed_total", &[("client", "a\"b"), ("reason", "access_denied")]);
        observe("ssobridge_adapter_duration_seconds", &[("adapter", "none")], 0.003);
        let text = render();
        assert!(text.contains("ssobridge_logins_failed_total{client=\"a\\\"b\",reason=\"access_denied\"} "), "{text}");
        assert!(text.contains("ssobridge_adapter_duration_seconds_bucket{adapter=\"none\",le=\"0.005\"} "), "{text}");
        assert!(text.contains("# TYPE ssobridge_upstream_duration_seconds histogram"));
    }
}
