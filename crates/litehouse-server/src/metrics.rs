//! Prometheus metrics: HTTP requests and latency by route template and status, document
//! store operations by kind and collection, and the engine's statistics, rendered by `metrics-exporter-prometheus`.
//!
//! Each server owns its recorder (no process-global one), so several servers in one process
//! (tests, embedders) keep separate numbers. Engine numbers are read from
//! [`litehouse::Database::stats`] at scrape time.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Recorder, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use crate::state::AppState;

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// One server's metrics.
#[derive(Clone)]
pub(crate) struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    /// The request counter and latency histogram of each route template, by method and
    /// status: registered once, so a request records without building its labels.
    http: Arc<RwLock<HashMap<String, RouteSeries>>>,
}

/// A route's series by (method label, status).
type RouteSeries = HashMap<(&'static str, u16), HttpSeries>;

#[derive(Clone)]
struct HttpSeries {
    requests: metrics::Counter,
    latency: metrics::Histogram,
}

/// The method label: the methods the API serves, anything else `other` (a client's made-up
/// method must not add a series per request).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let buckets = PrometheusBuilder::new().set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            &LATENCY_BUCKETS,
        );
        // Only an empty bucket list fails; ours is not, but fall back to summaries anyway.
        let builder = buckets.unwrap_or_else(|_| PrometheusBuilder::new());
        Metrics {
            recorder: Arc::new(builder.build_recorder()),
            http: Arc::default(),
        }
    }

    /// Counts one request to `route` (a route template, or `unmatched`) and its latency.
    fn http_request(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let key = (method_label(method), status);
        let known = self
            .http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .and_then(|series| series.get(&key))
            .cloned();
        let series = known.unwrap_or_else(|| {
            let labels = [
                ("method", key.0.to_owned()),
                ("route", route.to_owned()),
                ("status", status.to_string()),
            ];
            let series = self.record(|| HttpSeries {
                requests: counter!("http_requests_total", &labels),
                latency: histogram!("http_request_duration_seconds", &labels),
            });
            self.http
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(route.to_owned())
                .or_default()
                .insert(key, series.clone());
            series
        });
        series.requests.increment(1);
        series.latency.record(seconds);
    }

    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder.as_ref() as &dyn Recorder, f)
    }

    /// Counts `count` document-store operations of kind `op` (create, read, update, delete,
    /// list) on `collection`; only successful ones, so every label names a real collection.
    pub(crate) fn store_op(&self, op: &'static str, collection: &str, count: u64) {
        self.record(|| {
            counter!(
                "litehouse_docs_operations_total",
                "op" => op,
                "collection" => collection.to_owned()
            )
            .increment(count);
        });
    }

    /// Records one realtime event leaving a subscriber's queue, with the events still queued
    /// behind it.
    pub(crate) fn realtime_event(&self, queued: usize) {
        self.record(|| {
            histogram!("litehouse_realtime_queue_depth").record(queued as f64);
            counter!("litehouse_realtime_events_sent_total").increment(1);
        });
    }

    fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// Middleware: counts every request and records its latency by method, route template and
/// status.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let elapsed = started.elapsed().as_secs_f64();
    state
        .metrics()
        .http_request(&method, route, response.status().as_u16(), elapsed);
    response
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics: HTTP requests and latency by route and status, engine statistics, realtime subscribers and the change feed",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        crate::openapi::DataErrors,
    )
)]
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    if let Some(database) = state.database() {
        let stats = database.stats();
        state.metrics().record(|| engine_gauges(&stats));
    }
    let feed = state.store().feed_stats();
    // How far the shared tailer is behind the log's head (other processes' commits on
    // PostgreSQL arrive by polling); 0 while nobody is live, and when the head is unreadable.
    let lag = match feed.tailer_position {
        Some(_) => state
            .store()
            .head()
            .await
            .map_or(0, |head| feed.lag_behind(head)),
        None => 0,
    };
    let open = state.realtime().open();
    state.metrics().record(|| feed_gauges(&feed, open, lag));
    let handles = state.debug_handles();
    if let Some(buffer) = &handles.buffer {
        let stats = buffer.stats();
        state.metrics().record(|| buffer_gauges(&stats));
    }
    if let Some(heartbeats) = state.heartbeats() {
        let stats = heartbeats.stats();
        state.metrics().record(|| {
            for (outcome, count) in [
                ("recorded", stats.recorded),
                ("dropped", stats.dropped),
                ("failed", stats.failed),
            ] {
                counter!("litehouse_sync_heartbeats_total", "outcome" => outcome).absolute(count);
            }
            for (outcome, count) in [
                ("recorded", stats.rejections_recorded),
                ("dropped", stats.rejections_dropped),
                ("pruned", stats.rejections_pruned),
            ] {
                counter!("litehouse_sync_rejections_total", "outcome" => outcome).absolute(count);
            }
        });
    }
    if let Some(logs) = &handles.logs
        && let Ok(stats) = logs.stats().await
    {
        state.metrics().record(|| {
            counter!("litehouse_log_logged_total").absolute(stats.logged);
            counter!("litehouse_log_dropped_total").absolute(stats.dropped);
            gauge!("litehouse_log_pending").set(stats.pending as f64);
            gauge!("litehouse_log_entries").set(stats.entries as f64);
        });
    }
    let mut response = state.metrics().render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn feed_gauges(feed: &litehouse_docs::FeedStats, open: usize, lag: u64) {
    gauge!("litehouse_realtime_subscribers").set(open as f64);
    gauge!("litehouse_feed_subscribers").set(feed.subscribers as f64);
    gauge!("litehouse_feed_live_subscribers").set(feed.live as f64);
    gauge!("litehouse_feed_max_queue_depth").set(feed.max_queue_depth as f64);
    counter!("litehouse_feed_events_delivered_total").absolute(feed.delivered);
    counter!("litehouse_realtime_resets_total").absolute(feed.resets);
    counter!("litehouse_feed_log_reads_total").absolute(feed.log_reads);
    counter!("litehouse_feed_tailer_reads_total").absolute(feed.tailer_reads);
    gauge!("litehouse_feed_lag_changes").set(lag as f64);
    gauge!("litehouse_feed_held_back_changes").set(feed.held_back as f64);
}

fn buffer_gauges(stats: &litehouse::BufferStats) {
    gauge!("litehouse_buffer_pending_rows").set(stats.pending as f64);
    gauge!("litehouse_buffer_in_flight_rows").set(stats.in_flight as f64);
    counter!("litehouse_buffer_buffered_total").absolute(stats.buffered);
    counter!("litehouse_buffer_coalesced_total").absolute(stats.coalesced);
    counter!("litehouse_buffer_flushed_rows_total").absolute(stats.flushed);
    counter!("litehouse_buffer_flushes_total").absolute(stats.flushes);
    counter!("litehouse_buffer_failed_flushes_total").absolute(stats.failed_flushes);
}

fn engine_gauges(stats: &litehouse::Stats) {
    let ops = [
        ("execute", stats.execute),
        ("execute_many", stats.execute_many),
        ("script", stats.script),
        ("transaction", stats.transaction),
        ("read", stats.read),
        ("maintenance", stats.maintenance),
    ];
    for (kind, op) in ops {
        counter!("litehouse_operations_total", "kind" => kind).absolute(op.count);
        counter!("litehouse_operation_errors_total", "kind" => kind).absolute(op.errors);
    }
    counter!("litehouse_commits_total").absolute(stats.groups);
    counter!("litehouse_commit_failures_total").absolute(stats.commit_failures);
    counter!("litehouse_busy_retries_total").absolute(stats.locks.busy_retries);
    counter!("litehouse_busy_errors_total").absolute(stats.locks.busy_errors);
    gauge!("litehouse_queue_depth").set(stats.queue_depth as f64);
    gauge!("litehouse_group_size_mean").set(stats.group_size.mean);
    let latencies = [
        ("write", &stats.write_latency_micros),
        ("commit", &stats.commit_latency_micros),
        ("read", &stats.read_latency_micros),
    ];
    for (kind, summary) in latencies {
        for (quantile, value) in [("0.5", summary.p50), ("0.99", summary.p99)] {
            gauge!("litehouse_latency_micros", "kind" => kind, "quantile" => quantile)
                .set(value as f64);
        }
    }
}
