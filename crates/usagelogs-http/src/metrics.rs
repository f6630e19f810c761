//! Prometheus metrics: requests and latency per route, ingested entries, pool state.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use usagelogs_store::PoolState;

/// The metrics of one server.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    ingested: IntCounter,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    pool_max: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("usagelogs_http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let latency = HistogramVec::new(
            HistogramOpts::new("usagelogs_http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["route", "method"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let ingested = IntCounter::new("usagelogs_ingested_entries_total", "Log entries stored through ingestion")
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let gauge = |name: &str, help: &str| {
            IntGauge::new(name, help).unwrap_or_else(|e| unreachable!("static metric definition: {e}"))
        };
        let pool_connections = gauge("usagelogs_db_pool_connections", "Open database connections");
        let pool_idle = gauge("usagelogs_db_pool_idle_connections", "Idle database connections");
        let pool_max = gauge("usagelogs_db_pool_max_connections", "Largest size of the database pool");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(ingested.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_idle.clone()),
            Box::new(pool_max.clone()),
        ] {
            registry.register(c).unwrap_or_else(|e| unreachable!("metrics registered once: {e}"));
        }
        Self { registry, requests, latency, ingested, pool_connections, pool_idle, pool_max }
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests.with_label_values(&[route, method, &status.to_string()]).inc();
        self.latency.with_label_values(&[route, method]).observe(seconds);
    }

    /// Counts stored entries.
    pub fn add_ingested(&self, n: usize) {
        self.ingested.inc_by(n as u64);
    }

    /// The text exposition, with the pool state read now.
    pub fn render(&self, pool: PoolState) -> String {
        self.pool_connections.set(i64::from(pool.connections));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max_size));
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
