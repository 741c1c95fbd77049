//! Request counts and latencies by route, method and status, rendered in the Prometheus text
//! exposition format at `GET /metrics`.
//!
//! A series is created on first use and then only touched through atomics, so recording costs a
//! read lock and a few atomic adds.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    method: String,
    route: String,
    status: u16,
}

#[derive(Default)]
struct Series {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// The metrics of one service.
pub struct Metrics {
    service: String,
    series: RwLock<HashMap<Key, Arc<Series>>>,
}

impl Metrics {
    pub fn new(service: &str) -> Self {
        Self { service: service.to_owned(), series: RwLock::new(HashMap::new()) }
    }

    /// Records one request. `route` is the matched route pattern (not the raw path, so ids do
    /// not explode the number of series).
    pub fn record(&self, method: &str, route: &str, status: u16, latency: Duration) {
        let series = self.series_for(method, route, status);
        let seconds = latency.as_secs_f64();
        // Buckets are stored non-cumulatively; rendering adds them up.
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            series.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        series.count.fetch_add(1, Ordering::Relaxed);
        series.sum_micros.fetch_add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn series_for(&self, method: &str, route: &str, status: u16) -> Arc<Series> {
        let key = Key { method: method.to_owned(), route: route.to_owned(), status };
        if let Some(series) = self.series.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return series.clone();
        }
        self.series.write().unwrap_or_else(|p| p.into_inner()).entry(key).or_default().clone()
    }

    /// The Prometheus text exposition of every series, plus `extra` lines appended verbatim.
    pub fn render(&self, extra: &str) -> String {
        let series = self.series.read().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&Key> = series.keys().collect();
        keys.sort();
        let mut out = String::with_capacity(256 + keys.len() * 1024);
        out.push_str("# HELP http_requests_total Requests served, by method, route and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for key in &keys {
            let s = &series[*key];
            let _ = writeln!(out, "http_requests_total{{{}}} {}", self.labels(key), s.count.load(Ordering::Relaxed));
        }
        out.push_str("# HELP http_request_duration_seconds Time to answer a request, by method, route and status.\n");
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for key in &keys {
            let s = &series[*key];
            let labels = self.labels(key);
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}");
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "http_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "http_request_duration_seconds_count{{{labels}}} {count}");
        }
        out.push_str(extra);
        out
    }

    fn labels(&self, key: &Key) -> String {
        format!(
            "service=\"{}\",method=\"{}\",route=\"{}\",status=\"{}\"",
            escape(&self.service),
            escape(&key.method),
            escape(&key.route),
            key.status
        )
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::new("svc");
        m.record("GET", "/api/v1/tags", 200, Duration::from_micros(800));
        m.record("GET", "/api/v1/tags", 200, Duration::from_millis(30));
        m.record("POST", "/api/v1/tag", 409, Duration::from_millis(3));
        let text = m.render("");
        assert!(
            text.contains(r#"http_requests_total{service="svc",method="GET",route="/api/v1/tags",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(r#"http_request_duration_seconds_bucket{service="svc",method="GET",route="/api/v1/tags",status="200",le="0.001"} 1"#), "{text}");
        assert!(text.contains(r#"http_request_duration_seconds_bucket{service="svc",method="GET",route="/api/v1/tags",status="200",le="0.05"} 2"#), "{text}");
        assert!(
            text.contains(
                r#"http_request_duration_seconds_count{service="svc",method="POST",route="/api/v1/tag",status="409"} 1"#
            ),
            "{text}"
        );
    }
}
