//! Sync devices: heartbeats and rejections of device-token sync requests, written through the
//! engine's [`WriteBuffer`] (one row per device per flush, however many requests), and
//! `GET /api/debug/sync/devices`, which joins them with the push state the store keeps.
//!
//! Heartbeats never hold up a sync request: they are handed to the buffer with `try_upsert`,
//! which never waits; a full buffer drops the heartbeat and counts it
//! ([`HeartbeatStats::dropped`]), any other refusal counts as failed, and both show in
//! `/metrics` and in the devices route.
//!
//! Rejections are bounded: each device keeps its newest [`MAX_REJECTIONS_PER_DEVICE`]. A
//! pruner task (one per [`Heartbeats`]), woken after rejections are recorded, flushes the
//! buffer and deletes the older rows of each device that had new ones, counting them in
//! [`HeartbeatStats::rejections_pruned`]; [`Heartbeats::start`] prunes every device once.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use litehouse::{BufferConfig, BufferStats, Database, Row, WriteBuffer};
use litehouse_sync::{DeviceIdentity, PushAcknowledged, PushResponse};
use serde::Serialize;
use serde_json::{Value as Json_, json};

use crate::debug::engine_error;
use crate::error::ApiError;
use crate::state::AppState;

/// The table of one row per device: when it was last seen, on which route, from where.
pub const HEARTBEAT_TABLE: &str = "_litehouse_sync_heartbeats";
/// The table of entries the push route rejected (acknowledged, not applied), per device.
pub const REJECTION_TABLE: &str = "_litehouse_sync_rejections";
/// A device seen within this long is shown as online.
pub const ONLINE_WINDOW: Duration = Duration::from_secs(30);
/// Most devices the devices route lists.
pub(crate) const MAX_DEVICES: usize = 10_000;
/// The longest user agent kept; longer ones are cut.
const MAX_USER_AGENT: usize = 200;
/// Most rejections kept per device: the newest (by time, then sequence); older ones are
/// pruned and counted in [`HeartbeatStats::rejections_pruned`]. The devices route shows the
/// count kept and the newest, so a device rejecting entry after entry cannot grow the log
/// database without bound.
pub const MAX_REJECTIONS_PER_DEVICE: usize = 1_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS _litehouse_sync_heartbeats (
    device TEXT PRIMARY KEY NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    last_route TEXT NOT NULL,
    remote_addr TEXT,
    user_agent TEXT,
    last_push_ms INTEGER,
    last_pull_ms INTEGER
);
CREATE TABLE IF NOT EXISTS _litehouse_sync_rejections (
    device TEXT NOT NULL,
    op_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (device, op_id)
);
CREATE INDEX IF NOT EXISTS _litehouse_sync_rejections_newest
    ON _litehouse_sync_rejections (device, at_ms, seq);
";

/// Which sync route a heartbeat came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRoute {
    /// `POST /api/sync/push`.
    Push,
    /// `GET /api/sync/pull`.
    Pull,
}

impl SyncRoute {
    fn name(self) -> &'static str {
        match self {
            SyncRoute::Push => "push",
            SyncRoute::Pull => "pull",
        }
    }
}

/// Counters of [`Heartbeats`], from [`Heartbeats::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HeartbeatStats {
    /// Heartbeats handed to the write buffer.
    pub recorded: u64,
    /// Heartbeats dropped because the write buffer was full.
    pub dropped: u64,
    /// Heartbeats and rejections the buffer refused for another reason (stopped, bad value).
    pub failed: u64,
    /// Rejected push entries handed to the write buffer.
    pub rejections_recorded: u64,
    /// Rejected push entries dropped because the write buffer was full.
    pub rejections_dropped: u64,
    /// Recorded rejections deleted because their device had more than
    /// [`MAX_REJECTIONS_PER_DEVICE`] newer ones.
    pub rejections_pruned: u64,
    /// The last refusal, if any.
    pub last_error: Option<String>,
}

/// Where a server keeps device heartbeats and push rejections: two tables in a litehouse
/// [`Database`], written through a [`WriteBuffer`] so a device's many requests within one
/// flush interval become one row write. Cheap to clone.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use litehouse_server::{Heartbeats, SyncRoute};
/// let db = litehouse::Database::open_memory("doc-heartbeats", litehouse::Config::default())?;
/// let heartbeats = Heartbeats::start(db, litehouse::BufferConfig::default()).await?;
/// for _ in 0..100 {
///     heartbeats.record("sensor-1", SyncRoute::Push, None, None);
/// }
/// heartbeats.buffer().force_flush().await?;
/// assert_eq!(heartbeats.buffer().stats().flushed, 1); // 100 heartbeats, one row write
/// heartbeats.stop().await?;
/// # Ok::<(), litehouse::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Heartbeats {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    buffer: WriteBuffer,
    recorded: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    rejections_recorded: AtomicU64,
    rejections_dropped: AtomicU64,
    rejections_pruned: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
    /// Devices with rejections recorded since the last prune (at most [`MAX_DEVICES`]; past
    /// that, `prune_all` is set instead).
    to_prune: std::sync::Mutex<BTreeSet<String>>,
    /// Relaxed, like `stopped` and the counters: each is a hint read after the `Notify`
    /// wake-up, and a prune that misses one runs again at the next wake-up.
    prune_all: AtomicBool,
    /// Wakes the pruner task; also when this is dropped or stopped, so that the task ends.
    wake: Arc<tokio::sync::Notify>,
    stopped: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Rows an engine call changed, as a counter value.
fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

impl Heartbeats {
    /// Creates the two tables in `db` if missing and starts a write buffer over it.
    ///
    /// # Errors
    /// The engine's error creating the tables; [`litehouse::Error::Config`] for an invalid
    /// `config`.
    pub async fn start(db: Database, config: BufferConfig) -> litehouse::Result<Heartbeats> {
        db.script(SCHEMA).await?;
        let buffer = WriteBuffer::start(db.clone(), config)?;
        let wake = Arc::new(tokio::sync::Notify::new());
        let heartbeats = Heartbeats {
            inner: Arc::new(Inner {
                db,
                buffer,
                recorded: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                rejections_recorded: AtomicU64::new(0),
                rejections_dropped: AtomicU64::new(0),
                rejections_pruned: AtomicU64::new(0),
                last_error: std::sync::Mutex::new(None),
                to_prune: std::sync::Mutex::new(BTreeSet::new()),
                // Tables written by a server without the bound are pruned once at start.
                prune_all: AtomicBool::new(true),
                wake: Arc::clone(&wake),
                stopped: AtomicBool::new(false),
            }),
        };
        if let Err(err) = heartbeats.prune_rejections().await {
            tracing::warn!(error = %err, "sync rejections not pruned at start; retried later");
        }
        tokio::spawn(pruner(Arc::downgrade(&heartbeats.inner), wake));
        Ok(heartbeats)
    }

    /// The write buffer heartbeats go through (for its statistics and forced flushes).
    pub fn buffer(&self) -> &WriteBuffer {
        &self.inner.buffer
    }

    /// The database the tables live in.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// Records that `device` was seen now on `route`. Never waits: a full buffer drops the
    /// heartbeat and counts it in [`HeartbeatStats::dropped`]; other refusals count in
    /// [`HeartbeatStats::failed`] and are logged.
    pub fn record(
        &self,
        device: &str,
        route: SyncRoute,
        remote: Option<&str>,
        user_agent: Option<&str>,
    ) {
        let now = now_ms();
        let mut row = Row::new()
            .set("device", device)
            .set("last_seen_ms", now)
            .set("last_route", route.name());
        if let Some(remote) = remote {
            row = row.set("remote_addr", remote);
        }
        if let Some(agent) = user_agent {
            let cut: String = agent.chars().take(MAX_USER_AGENT).collect();
            row = row.set("user_agent", cut);
        }
        row = match route {
            SyncRoute::Push => row.set("last_push_ms", now),
            SyncRoute::Pull => row.set("last_pull_ms", now),
        };
        match self
            .inner
            .buffer
            .try_upsert(HEARTBEAT_TABLE, row, &["device"])
        {
            Ok(()) => {
                self.inner.recorded.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) if err.is_buffer_full() => {
                self.inner.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => self.failed("heartbeat", device, &err),
        }
    }

    /// Records the entries a push of `device` rejected, keyed by `(device, op id)`, so a
    /// rejection reported twice is kept once.
    pub fn record_rejections(&self, device: &str, response: &PushResponse) {
        let now = now_ms();
        for rejection in &response.rejected {
            let row = Row::new()
                .set("device", device)
                .set("op_id", rejection.op_id.as_str())
                .set("seq", i64::try_from(rejection.seq).unwrap_or(i64::MAX))
                .set("reason", rejection.reason.as_str())
                .set("at_ms", now);
            match self
                .inner
                .buffer
                .try_upsert(REJECTION_TABLE, row, &["device", "op_id"])
            {
                Ok(()) => {
                    self.inner
                        .rejections_recorded
                        .fetch_add(1, Ordering::Relaxed);
                    self.mark_for_pruning(device);
                }
                Err(err) if err.is_buffer_full() => {
                    self.inner
                        .rejections_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        device,
                        seq = rejection.seq,
                        "write buffer full: a sync rejection was not recorded"
                    );
                }
                Err(err) => self.failed("rejection", device, &err),
            }
        }
    }

    /// Queues `device`'s rejections for the pruner and wakes it.
    fn mark_for_pruning(&self, device: &str) {
        if let Ok(mut devices) = self.inner.to_prune.lock()
            && !devices.contains(device)
        {
            if devices.len() < MAX_DEVICES {
                devices.insert(device.to_owned());
            } else {
                // Bounded: past this many devices, the next prune covers them all.
                self.inner.prune_all.store(true, Ordering::Relaxed);
            }
        }
        self.inner.wake.notify_one();
    }

    /// Flushes the buffer, then deletes the rejections past the newest
    /// [`MAX_REJECTIONS_PER_DEVICE`] of each device that had new ones since the last prune
    /// (every device, the first time); returns how many it deleted (also added to
    /// [`HeartbeatStats::rejections_pruned`]). The pruner task runs this after rejections are
    /// recorded; call it to prune at once.
    ///
    /// # Errors
    /// The engine's error; the devices stay queued for the next prune.
    pub async fn prune_rejections(&self) -> litehouse::Result<u64> {
        let all = self.inner.prune_all.swap(false, Ordering::Relaxed);
        let devices = match self.inner.to_prune.lock() {
            Ok(mut devices) => std::mem::take(&mut *devices),
            Err(_) => BTreeSet::new(),
        };
        let result = self.prune(all, &devices).await;
        if result.is_err() {
            // Try again at the next prune.
            self.inner.prune_all.fetch_or(all, Ordering::Relaxed);
            if let Ok(mut queued) = self.inner.to_prune.lock() {
                queued.extend(devices);
            }
        }
        result
    }

    async fn prune(&self, all: bool, devices: &BTreeSet<String>) -> litehouse::Result<u64> {
        if !all && devices.is_empty() {
            return Ok(0);
        }
        // The rows recorded so far reach the table first.
        self.inner.buffer.force_flush().await?;
        let keep = i64::try_from(MAX_REJECTIONS_PER_DEVICE).unwrap_or(i64::MAX);
        let mut deleted = 0_u64;
        if all {
            let sql = format!(
                "DELETE FROM {REJECTION_TABLE} WHERE rowid IN (SELECT rowid FROM \
                 (SELECT rowid, row_number() OVER (PARTITION BY device \
                 ORDER BY at_ms DESC, seq DESC) AS newest FROM {REJECTION_TABLE}) \
                 WHERE newest > ?1)"
            );
            deleted = count(self.inner.db.execute(&sql, (keep,)).await?);
        } else {
            let sql = format!(
                "DELETE FROM {REJECTION_TABLE} WHERE rowid IN (SELECT rowid FROM \
                 {REJECTION_TABLE} WHERE device = ?1 ORDER BY at_ms DESC, seq DESC \
                 LIMIT -1 OFFSET ?2)"
            );
            for device in devices {
                let params = litehouse::params![device.as_str(), keep];
                deleted += count(self.inner.db.execute(&sql, params).await?);
            }
        }
        self.inner
            .rejections_pruned
            .fetch_add(deleted, Ordering::Relaxed);
        Ok(deleted)
    }

    fn failed(&self, what: &str, device: &str, err: &litehouse::Error) {
        self.inner.failed.fetch_add(1, Ordering::Relaxed);
        let message = format!("{what} of device {device:?} not recorded: {err}");
        tracing::warn!(error = %err, device, what, "sync {what} not recorded");
        if let Ok(mut last) = self.inner.last_error.lock() {
            *last = Some(message);
        }
    }

    /// The counters.
    pub fn stats(&self) -> HeartbeatStats {
        HeartbeatStats {
            recorded: self.inner.recorded.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
            rejections_recorded: self.inner.rejections_recorded.load(Ordering::Relaxed),
            rejections_dropped: self.inner.rejections_dropped.load(Ordering::Relaxed),
            rejections_pruned: self.inner.rejections_pruned.load(Ordering::Relaxed),
            last_error: self
                .inner
                .last_error
                .lock()
                .ok()
                .and_then(|last| last.clone()),
        }
    }

    /// Flushes what is buffered and stops the buffer; later heartbeats count as failed.
    ///
    /// # Errors
    /// The buffer's error when the last flush failed.
    pub async fn stop(&self) -> litehouse::Result<()> {
        self.inner.stopped.store(true, Ordering::Relaxed);
        self.inner.wake.notify_one();
        self.inner.buffer.stop().await.map(drop)
    }

    /// Every heartbeat row, by device (what has been flushed so far).
    async fn seen(&self) -> litehouse::Result<BTreeMap<String, serde_json::Map<String, Json_>>> {
        let sql = format!(
            "SELECT device, last_seen_ms, last_route, remote_addr, user_agent, last_push_ms, \
             last_pull_ms FROM {HEARTBEAT_TABLE} ORDER BY device LIMIT {MAX_DEVICES}"
        );
        let rows = self.inner.db.query_json(&sql, ()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let device = row.get("device")?.as_str()?.to_owned();
                Some((device, row))
            })
            .collect())
    }

    /// Rejections per device: how many, and the newest.
    async fn rejections(&self) -> litehouse::Result<BTreeMap<String, Json_>> {
        let sql = format!(
            "SELECT device, COUNT(*) AS total, \
             (SELECT json_object('seq', r2.seq, 'opId', r2.op_id, 'reason', r2.reason, 'atMs', r2.at_ms) \
              FROM {REJECTION_TABLE} r2 WHERE r2.device = r.device \
              ORDER BY r2.at_ms DESC, r2.seq DESC LIMIT 1) AS last \
             FROM {REJECTION_TABLE} r GROUP BY device ORDER BY device LIMIT {MAX_DEVICES}"
        );
        let rows = self.inner.db.query_json(&sql, ()).await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let device = row.get("device")?.as_str()?.to_owned();
                let last = row
                    .get("last")
                    .and_then(Json_::as_str)
                    .and_then(|text| serde_json::from_str::<Json_>(text).ok())
                    .unwrap_or(Json_::Null);
                let total = row.get("total").cloned().unwrap_or(json!(0));
                Some((device, json!({ "total": total, "last": last })))
            })
            .collect())
    }
}

/// The pruner task of one [`Heartbeats`]: prunes after each wake-up (many rejections
/// recorded meanwhile make one prune), until the heartbeats are stopped or dropped. Holds
/// them weakly, so it never keeps their engine alive.
async fn pruner(heartbeats: Weak<Inner>, wake: Arc<tokio::sync::Notify>) {
    loop {
        wake.notified().await;
        let Some(inner) = heartbeats.upgrade() else {
            return;
        };
        if inner.stopped.load(Ordering::Relaxed) {
            return;
        }
        let heartbeats = Heartbeats { inner };
        if let Err(err) = heartbeats.prune_rejections().await {
            tracing::warn!(error = %err, "sync rejections not pruned; retried after the next");
        }
    }
}

/// Middleware on the sync routes: a request authenticated with a device token records a
/// heartbeat before it is handled; a push answered 200 with rejections records them.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (Some(heartbeats), Some(DeviceIdentity(device))) = (
        state.heartbeats(),
        request.extensions().get::<DeviceIdentity>().cloned(),
    ) else {
        return next.run(request).await;
    };
    let route = if request.uri().path() == "/api/sync/push" {
        SyncRoute::Push
    } else {
        SyncRoute::Pull
    };
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.to_string());
    let agent = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok());
    heartbeats.record(&device, route, remote.as_deref(), agent);
    if route != SyncRoute::Push {
        return next.run(request).await;
    }
    // A push finishes even when its device stops waiting (litehouse-sync runs it in a task of
    // its own); so does the recording of its rejections, here in a task too, or a rejection
    // committed after a timeout would never reach the devices view.
    let heartbeats = heartbeats.clone();
    match tokio::spawn(record_push(heartbeats, device, request, next)).await {
        Ok(response) => response,
        Err(err) => ApiError::internal(err).into_response(),
    }
}

/// Runs a push and records the rejections of its answer.
async fn record_push(
    heartbeats: Heartbeats,
    device: String,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if let Some(PushAcknowledged(answer)) = response.extensions().get::<PushAcknowledged>()
        && !answer.rejected.is_empty()
    {
        heartbeats.record_rejections(&device, answer);
    }
    response
}

/// `GET /api/debug/sync/devices`: every device the server knows, from the push state the
/// store keeps and the heartbeats and rejections this server recorded.
#[utoipa::path(
    get,
    path = "/api/debug/sync/devices",
    operation_id = "debugSyncDevices",
    tag = "debug",
    summary = "Sync devices: epoch, last sequence, rejections, last seen, last push and pull",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{devices, serverTimeMs, onlineWithinMs, heartbeats}", body = Object),
        crate::openapi::AdminErrors,
    )
)]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Json_>, ApiError> {
    // Heartbeats and rejections first, the push state after: a rejection is recorded once
    // its push committed, so every rejection this reads has its push in the state read next
    // (read the other way round, a push committing between the two reads showed a rejection
    // beside a device with no state).
    let (mut seen, mut rejections, heartbeat_stats, buffer_stats) = match state.heartbeats() {
        Some(heartbeats) => (
            heartbeats.seen().await.map_err(engine_error)?,
            heartbeats.rejections().await.map_err(engine_error)?,
            Some(heartbeats.stats()),
            Some(heartbeats.buffer().stats()),
        ),
        None => (BTreeMap::new(), BTreeMap::new(), None, None),
    };
    let producers = litehouse_sync::list_producers(state.store(), MAX_DEVICES).await?;
    let now = now_ms();
    let window = i64::try_from(ONLINE_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let mut devices: BTreeMap<String, Json_> = BTreeMap::new();
    for producer in producers {
        devices.insert(
            producer.device.clone(),
            json!({
                "epoch": producer.state.map(|state| state.epoch),
                "lastSeq": producer.state.map(|state| state.last_seq),
                "stateError": producer.unreadable,
            }),
        );
    }
    for device in seen.keys().chain(rejections.keys()) {
        devices
            .entry(device.clone())
            .or_insert_with(|| json!({"epoch": null, "lastSeq": null, "stateError": null}));
    }
    let items: Vec<Json_> = devices
        .into_iter()
        .map(|(device, mut item)| {
            let row = seen.remove(&device).unwrap_or_default();
            let field = |name: &str| row.get(name).cloned().unwrap_or(Json_::Null);
            let last_seen = row.get("last_seen_ms").and_then(Json_::as_i64);
            let rejected = rejections
                .remove(&device)
                .unwrap_or_else(|| json!({"total": 0, "last": null}));
            item["device"] = json!(device);
            item["lastSeenMs"] = json!(last_seen);
            item["online"] = json!(last_seen.is_some_and(|at| now.saturating_sub(at) <= window));
            item["lastPushMs"] = field("last_push_ms");
            item["lastPullMs"] = field("last_pull_ms");
            item["lastRoute"] = field("last_route");
            item["remoteAddr"] = field("remote_addr");
            item["userAgent"] = field("user_agent");
            item["rejections"] = rejected["total"].clone();
            item["lastRejection"] = rejected["last"].clone();
            item
        })
        .collect();
    Ok(Json(json!({
        "devices": items,
        "serverTimeMs": now,
        "onlineWithinMs": window,
        "heartbeats": heartbeat_stats,
        "buffer": buffer_stats.map(|stats: BufferStats| json!({
            "pending": stats.pending,
            "buffered": stats.buffered,
            "coalesced": stats.coalesced,
            "flushed": stats.flushed,
            "flushes": stats.flushes,
            "failedFlushes": stats.failed_flushes,
            "fullRejections": stats.full_rejections,
            "lastError": stats.last_error,
        })),
    })))
}
