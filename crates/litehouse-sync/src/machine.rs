//! The sans-I/O sync core: a device's sync logic as a state machine.
//!
//! [`SyncMachine::handle`] takes an [`Event`] and the current time and returns the
//! [`Action`]s a transport must run. It performs no I/O, reads no clock and spawns nothing, so
//! the HTTP transport, an in-memory simulation and a Python binding drive the same logic.
//!
//! Liveness rules (each one a bug that real sync engines shipped):
//! - after any failure the machine schedules a retry ([`Action::SleepUntil`]) itself; it never
//!   waits for a new local write to try again;
//! - every request carries a deadline; a request with no answer by its deadline is failed by
//!   the machine on the next [`Event::Timer`], even if the transport never reports back;
//! - a local write, the network coming back, [`Event::Resume`] or [`Event::ForceSync`] wake it
//!   at once, cutting a backoff wait short;
//! - entries leave the pending queue only when the server acknowledged them.
//!
//! Push batch size: a push that timed out or was answered 5xx (503 `overloaded` included) is
//! sent again with half as many entries (never fewer than one); the batch doubles back
//! towards [`SyncConfig::max_batch`] only after [`GROW_AFTER`] acknowledged pushes in a row,
//! so a server that is just coping is not pushed straight back into overload. A
//! `Retry-After` the server sent is the least the machine waits before the next attempt
//! (capped at [`SyncConfig::max_backoff`]).

use std::collections::VecDeque;

use crate::protocol::{
    GapResponse, OutboxEntry, PullResponse, PulledChange, PushRequest, PushResponse, Rejection,
    StaleEpochResponse,
};

/// Milliseconds on the caller's monotonic clock. The machine only compares and adds them.
pub type Millis = u64;

/// Acknowledged pushes in a row after which a shrunk push batch doubles again.
pub const GROW_AFTER: u32 = 4;

/// Tuning of a [`SyncMachine`]. Serializable (missing fields take their defaults) so a
/// device can keep it in its config table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyncConfig {
    /// Most entries in one push.
    pub max_batch: usize,
    /// First backoff delay after a failure.
    pub base_backoff: Millis,
    /// Cap of the backoff delay (jitter included): a failed request is retried within this.
    pub max_backoff: Millis,
    /// How often to pull when idle.
    pub poll_interval: Millis,
    /// Deadline of every request.
    pub request_timeout: Millis,
    /// Seed of the jitter generator (use something per-device, e.g. a hash of the device id).
    pub jitter_seed: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            max_batch: 256,
            base_backoff: 250,
            max_backoff: 30_000,
            poll_interval: 5_000,
            request_timeout: 10_000,
            jitter_seed: 0x5eed,
        }
    }
}

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushFailure {
    /// Connection error or an unreadable response: retried with backoff.
    Transport(String),
    /// No answer within the request's deadline: retried with backoff and half the batch.
    TimedOut,
    /// 409: the server expects another sequence.
    Gap(GapResponse),
    /// 403: the device's epoch is older than the server's.
    StaleEpoch(StaleEpochResponse),
    /// Any other non-success status: retried with backoff. A 5xx also halves the next push.
    Server {
        /// HTTP status.
        status: u16,
        /// Response body or reason.
        message: String,
        /// The server's `Retry-After`, in milliseconds, when it sent one: the least the
        /// machine waits before trying again (capped at [`SyncConfig::max_backoff`]).
        retry_after: Option<Millis>,
    },
}

/// Why a pull failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullFailure {
    /// Connection error, timeout or an unreadable response: retried with backoff.
    Transport(String),
    /// 410: the cursor is older than the server's retention; the machine asks for a full re-read.
    Expired,
    /// Any other non-success status: retried with backoff.
    Server {
        /// HTTP status.
        status: u16,
        /// Response body or reason.
        message: String,
        /// The server's `Retry-After`, in milliseconds, when it sent one: the least the
        /// machine waits before trying again (capped at [`SyncConfig::max_backoff`]).
        retry_after: Option<Millis>,
    },
}

/// Input to the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A local mutation was committed together with this outbox entry. Also used at start-up to
    /// load the entries still pending in the outbox (entries already known are ignored).
    LocalWrite(OutboxEntry),
    /// The network is reachable again.
    NetworkUp,
    /// The network is gone: the request in flight (if any) is abandoned.
    NetworkDown,
    /// A [`Action::SleepUntil`] expired (extra timer events are harmless).
    Timer,
    /// The outcome of [`Action::SendPush`] number `req`.
    PushResult {
        /// The request number from the action.
        req: u64,
        /// Outcome.
        result: Result<PushResponse, PushFailure>,
    },
    /// The outcome of [`Action::FetchChangesSince`] or [`Action::ReadAll`] number `req`.
    PullResult {
        /// The request number from the action.
        req: u64,
        /// Outcome.
        result: Result<PullResponse, PullFailure>,
    },
    /// Applying an [`Action::ApplyBatch`] failed locally: `cursor` is the cursor still stored
    /// on the device. The machine goes back to it and retries the pull with backoff.
    ApplyFailed {
        /// The cursor the device still has.
        cursor: Option<String>,
        /// What went wrong.
        error: String,
    },
    /// Some other local step failed (e.g. marking entries synced); recorded in the status.
    /// Harmless for correctness: unmarked entries are re-sent and the server deduplicates them.
    LocalError(String),
    /// Offline mode: stop talking to the server (local writes continue).
    Pause,
    /// Leave offline mode.
    Resume,
    /// Try now: cut a backoff wait short and pull even if not due.
    ForceSync,
    /// Shut down: no more actions.
    Stop,
}

/// Output of the machine, for the transport to run.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// POST this batch; report with [`Event::PushResult`] carrying `req`.
    SendPush {
        /// Request number.
        req: u64,
        /// The batch.
        request: PushRequest,
        /// Give up at this time.
        deadline: Millis,
    },
    /// GET the changes after `cursor` (`None` = from the start); report with
    /// [`Event::PullResult`].
    FetchChangesSince {
        /// Request number.
        req: u64,
        /// The device's cursor.
        cursor: Option<String>,
        /// Give up at this time.
        deadline: Millis,
    },
    /// The cursor expired: read the full current state of the synced collections (every live
    /// document as a `Put` change, and the head cursor as `next`); report with
    /// [`Event::PullResult`].
    ReadAll {
        /// Request number.
        req: u64,
        /// Give up at this time.
        deadline: Millis,
    },
    /// Apply these changes with last-writer-wins and store `cursor`, in one local transaction.
    /// With `full`, the changes are the whole server state: local documents absent from it
    /// and without pending local writes are deleted.
    ApplyBatch {
        /// Changes in server commit order.
        changes: Vec<PulledChange>,
        /// The cursor to store with them.
        cursor: Option<String>,
        /// Whether this is a full re-read.
        full: bool,
    },
    /// The server acknowledged every entry up to `up_to_seq`: mark them synced. `rejected`
    /// lists acknowledged entries the server refused to apply.
    MarkSynced {
        /// Highest acknowledged sequence.
        up_to_seq: u64,
        /// Entries the server did not apply.
        rejected: Vec<Rejection>,
    },
    /// Deliver [`Event::Timer`] at (or after) this time.
    SleepUntil(Millis),
    /// Record this in the sync log.
    Log(LogRecord),
}

/// One sync-log record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogRecord {
    /// When.
    pub at: Millis,
    /// Short kind: `push`, `pull`, `push-failed`, `pull-failed`, `rejected`, `resync`, `state`.
    pub kind: &'static str,
    /// Human-readable detail.
    pub message: String,
}

/// Coarse state, as the seed's demo shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SyncState {
    /// Connected and idle (or waiting for the next poll).
    Online,
    /// No network, or paused by the user (offline mode).
    Offline {
        /// Paused by the user rather than by the network.
        paused: bool,
    },
    /// A request is in flight.
    Syncing,
    /// Waiting after a failure.
    BackingOff {
        /// Next attempt at.
        until: Millis,
    },
    /// Stopped.
    Stopped,
}

/// A snapshot of the machine's status (serializable for a status endpoint or a demo).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SyncStatus {
    /// Coarse state.
    pub state: SyncState,
    /// Entries not yet acknowledged by the server.
    pub pending: usize,
    /// Age of the oldest pending entry (since the machine learnt of it).
    pub oldest_pending_age: Option<Millis>,
    /// Time of the last acknowledged push.
    pub last_push_ok: Option<Millis>,
    /// Time of the last successful pull.
    pub last_pull_ok: Option<Millis>,
    /// The last error (cleared by nothing: it stays for inspection).
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Retries scheduled since start.
    pub total_retries: u64,
    /// Entries acknowledged as rejected since start.
    pub rejected_total: u64,
    /// The stored pull cursor.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inflight {
    Push {
        req: u64,
        deadline: Millis,
        /// Entries in the push.
        entries: usize,
    },
    Pull {
        req: u64,
        deadline: Millis,
        full: bool,
    },
}

/// The device sync state machine. See the module docs.
#[derive(Debug)]
pub struct SyncMachine {
    config: SyncConfig,
    device: String,
    epoch: u64,
    pending: VecDeque<(OutboxEntry, Millis)>,
    highest_seq: u64,
    cursor: Option<String>,
    network_up: bool,
    paused: bool,
    stopped: bool,
    inflight: Option<Inflight>,
    next_req: u64,
    backoff_until: Option<Millis>,
    next_pull_at: Millis,
    pull_more: bool,
    need_full: bool,
    rng: u64,
    status_last_push: Option<Millis>,
    status_last_pull: Option<Millis>,
    last_error: Option<String>,
    consecutive_failures: u32,
    total_retries: u64,
    rejected_total: u64,
    /// Most entries in the next push: [`SyncConfig::max_batch`], halved after each push that
    /// timed out or got a 5xx, and doubled back after [`GROW_AFTER`] acknowledged pushes in a
    /// row, so a batch the server cannot apply in time shrinks until one can.
    push_batch: usize,
    /// Acknowledged pushes in a row since the batch last shrank or grew.
    push_streak: u32,
}

impl SyncMachine {
    /// A machine for `device` in `epoch`, starting from the stored `cursor` and with
    /// `acked_seq` the highest sequence the device knows the server acknowledged. The network
    /// is assumed up; send [`Event::NetworkDown`] otherwise.
    pub fn new(
        config: SyncConfig,
        device: impl Into<String>,
        epoch: u64,
        cursor: Option<String>,
        acked_seq: u64,
    ) -> Self {
        let rng = config.jitter_seed ^ 0x9e37_79b9_7f4a_7c15;
        let push_batch = config.max_batch.max(1);
        SyncMachine {
            config,
            device: device.into(),
            epoch,
            pending: VecDeque::new(),
            highest_seq: acked_seq,
            cursor,
            network_up: true,
            paused: false,
            stopped: false,
            inflight: None,
            next_req: 1,
            backoff_until: None,
            next_pull_at: 0,
            pull_more: false,
            need_full: false,
            rng,
            status_last_push: None,
            status_last_pull: None,
            last_error: None,
            consecutive_failures: 0,
            total_retries: 0,
            rejected_total: 0,
            push_batch,
            push_streak: 0,
        }
    }

    /// Current status at time `now`.
    pub fn status(&self, now: Millis) -> SyncStatus {
        let state = if self.stopped {
            SyncState::Stopped
        } else if self.paused || !self.network_up {
            SyncState::Offline {
                paused: self.paused,
            }
        } else if self.inflight.is_some() {
            SyncState::Syncing
        } else if let Some(until) = self.backoff_until.filter(|u| *u > now) {
            SyncState::BackingOff { until }
        } else {
            SyncState::Online
        };
        SyncStatus {
            state,
            pending: self.pending.len(),
            oldest_pending_age: self.pending.front().map(|(_, t)| now.saturating_sub(*t)),
            last_push_ok: self.status_last_push,
            last_pull_ok: self.status_last_pull,
            last_error: self.last_error.clone(),
            consecutive_failures: self.consecutive_failures,
            total_retries: self.total_retries,
            rejected_total: self.rejected_total,
            cursor: self.cursor.clone(),
        }
    }

    /// Whether nothing is pending, nothing is in flight and the last pull reached the head.
    pub fn is_quiescent(&self) -> bool {
        self.pending.is_empty() && self.inflight.is_none() && !self.pull_more && !self.need_full
    }

    /// Feed one event at time `now`; returns the actions to run, in order.
    pub fn handle(&mut self, now: Millis, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        match event {
            Event::LocalWrite(entry) => {
                if entry.seq > self.highest_seq + 1 {
                    // The device's outbox skipped sequences: the server will refuse the batch
                    // (409) until they appear. Say so now rather than at the first push.
                    let msg = format!(
                        "outbox gap: seq {} follows {}; the server will refuse it",
                        entry.seq, self.highest_seq
                    );
                    self.log(&mut out, now, "local-error", msg.clone());
                    self.last_error = Some(msg);
                }
                if entry.seq > self.highest_seq {
                    self.highest_seq = entry.seq;
                    self.pending.push_back((entry, now));
                    self.backoff_until = None;
                }
            }
            Event::NetworkUp => {
                if !self.network_up {
                    self.network_up = true;
                    self.backoff_until = None;
                    self.next_pull_at = now;
                    self.log(&mut out, now, "state", "network up".into());
                }
            }
            Event::NetworkDown => {
                if self.network_up {
                    self.network_up = false;
                    self.inflight = None;
                    self.log(&mut out, now, "state", "network down".into());
                }
            }
            Event::Pause => {
                if !self.paused {
                    self.paused = true;
                    self.inflight = None;
                    self.log(&mut out, now, "state", "paused (offline mode)".into());
                }
            }
            Event::Resume => {
                if self.paused {
                    self.paused = false;
                    self.backoff_until = None;
                    self.next_pull_at = now;
                    self.log(&mut out, now, "state", "resumed".into());
                }
            }
            Event::ForceSync => {
                self.backoff_until = None;
                self.next_pull_at = now;
            }
            Event::Stop => {
                self.stopped = true;
                self.inflight = None;
                self.log(&mut out, now, "state", "stopped".into());
                return out;
            }
            Event::Timer => {}
            Event::ApplyFailed { cursor, error } => {
                self.cursor = cursor;
                self.pull_more = false;
                self.inflight = None;
                self.fail(now, "apply-failed", error, &mut out);
            }
            Event::LocalError(error) => {
                self.log(&mut out, now, "local-error", error.clone());
                self.last_error = Some(error);
            }
            Event::PushResult { req, result } => {
                if let Some(Inflight::Push {
                    req: r, entries, ..
                }) = self.inflight
                    && r == req
                {
                    self.inflight = None;
                    self.on_push_result(now, entries, result, &mut out);
                }
            }
            Event::PullResult { req, result } => {
                if let Some(Inflight::Pull { req: r, full, .. }) = self.inflight
                    && r == req
                {
                    self.inflight = None;
                    self.on_pull_result(now, full, result, &mut out);
                }
            }
        }
        self.drive(now, &mut out);
        out
    }

    fn log(&self, out: &mut Vec<Action>, at: Millis, kind: &'static str, message: String) {
        out.push(Action::Log(LogRecord { at, kind, message }));
    }

    fn ack(&mut self, now: Millis, up_to: u64, rejected: Vec<Rejection>, out: &mut Vec<Action>) {
        let before = self.pending.len();
        while self.pending.front().is_some_and(|(e, _)| e.seq <= up_to) {
            self.pending.pop_front();
        }
        let acknowledged = before - self.pending.len();
        for r in &rejected {
            self.log(
                out,
                now,
                "rejected",
                format!("seq {} ({}) rejected: {}", r.seq, r.op_id, r.reason),
            );
        }
        if let Some(r) = rejected.last() {
            self.last_error = Some(format!("seq {} rejected by server: {}", r.seq, r.reason));
        }
        self.rejected_total += rejected.len() as u64;
        self.status_last_push = Some(now);
        self.log(
            out,
            now,
            "push",
            format!(
                "{} acknowledged up to seq {up_to}",
                counted(acknowledged, "entry", "entries")
            ),
        );
        out.push(Action::MarkSynced {
            up_to_seq: up_to,
            rejected,
        });
        // Fetch what the push changed (and whatever else happened) right away.
        self.next_pull_at = now;
    }

    fn on_push_result(
        &mut self,
        now: Millis,
        entries: usize,
        result: Result<PushResponse, PushFailure>,
        out: &mut Vec<Action>,
    ) {
        let first = self.pending.front().map(|(e, _)| e.seq);
        if result.is_err() {
            self.push_streak = 0;
        }
        match result {
            Ok(resp) => {
                if first.is_some_and(|f| resp.acked_seq < f) {
                    let msg = format!(
                        "server acknowledged seq {} but the oldest pending is {}",
                        resp.acked_seq,
                        first.unwrap_or_default()
                    );
                    self.fail(now, "push-failed", msg, out);
                } else {
                    self.consecutive_failures = 0;
                    self.grow_push_batch();
                    self.ack(now, resp.acked_seq, resp.rejected, out);
                }
            }
            Err(PushFailure::Gap(gap)) if first.is_some_and(|f| gap.expected_seq > f) => {
                // The server already has entries before `expected_seq` (an ack got lost).
                self.consecutive_failures = 0;
                self.ack(now, gap.expected_seq - 1, Vec::new(), out);
            }
            Err(PushFailure::Gap(gap)) => {
                let msg = format!(
                    "server expects seq {} but the oldest pending entry is {:?}: entries are missing",
                    gap.expected_seq, first
                );
                self.fail(now, "push-failed", msg, out);
            }
            Err(PushFailure::StaleEpoch(s)) => {
                let msg = format!(
                    "epoch {} is older than the server's {}: this database was replaced",
                    self.epoch, s.current_epoch
                );
                self.fail(now, "push-failed", msg, out);
            }
            Err(PushFailure::Transport(msg)) => self.fail(now, "push-failed", msg, out),
            Err(PushFailure::TimedOut) => {
                let message = self.push_timed_out(entries);
                self.fail(now, "push-failed", message, out);
            }
            Err(PushFailure::Server {
                status,
                message,
                retry_after,
            }) => {
                let mut message = format!("HTTP {status}: {message}");
                if status >= 500
                    && let Some(batch) = self.shrink_push_batch(entries)
                {
                    message = format!("{message}; next push carries at most {batch}");
                }
                self.fail_after(now, "push-failed", message, retry_after, out);
            }
        }
    }

    fn on_pull_result(
        &mut self,
        now: Millis,
        full: bool,
        result: Result<PullResponse, PullFailure>,
        out: &mut Vec<Action>,
    ) {
        match result {
            Ok(resp) => {
                self.consecutive_failures = 0;
                self.status_last_pull = Some(now);
                if full {
                    self.need_full = false;
                }
                self.pull_more = !resp.up_to_date;
                if !resp.up_to_date {
                    self.next_pull_at = now;
                } else {
                    self.next_pull_at = now + self.config.poll_interval;
                }
                if resp.next.is_some() {
                    self.cursor.clone_from(&resp.next);
                }
                let n = resp.changes.len();
                if n > 0 || full || resp.next.is_some() {
                    out.push(Action::ApplyBatch {
                        changes: resp.changes,
                        cursor: self.cursor.clone(),
                        full,
                    });
                }
                if n > 0 || full {
                    let what = if full { "full re-read" } else { "pull" };
                    let applied = counted(n, "change", "changes");
                    self.log(out, now, "pull", format!("{what}: {applied} applied"));
                }
            }
            Err(PullFailure::Expired) => {
                self.need_full = true;
                self.next_pull_at = now;
                self.log(
                    out,
                    now,
                    "resync",
                    "cursor expired on the server: full re-read".into(),
                );
            }
            Err(PullFailure::Transport(msg)) => self.fail(now, "pull-failed", msg, out),
            Err(PullFailure::Server {
                status,
                message,
                retry_after,
            }) => {
                let message = format!("HTTP {status}: {message}");
                self.fail_after(now, "pull-failed", message, retry_after, out);
            }
        }
    }

    fn next_random(&mut self) -> u64 {
        // splitmix64: enough for jitter, deterministic per seed.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Backoff delay for the `n`-th consecutive failure (n >= 1): an exponential ceiling
    /// `base * 2^(n-1)` capped at `max_backoff`, with "equal jitter" in `[ceiling/2, ceiling]`.
    fn backoff_delay(&mut self, n: u32) -> Millis {
        let shift = n.saturating_sub(1).min(32);
        let ceiling = self
            .config
            .base_backoff
            .max(1)
            .saturating_mul(1u64 << shift)
            .min(self.config.max_backoff.max(1));
        let half = ceiling / 2;
        half + self.next_random() % (ceiling - half + 1)
    }

    /// Halves the push batch after a push of `entries` timed out or got a 5xx; the new size,
    /// or `None` when that push carried one entry already.
    fn shrink_push_batch(&mut self, entries: usize) -> Option<usize> {
        self.push_streak = 0;
        if entries <= 1 {
            return None;
        }
        self.push_batch = entries / 2;
        Some(self.push_batch)
    }

    /// Shrinks the batch after a push of `entries` got no answer in time; the log message.
    fn push_timed_out(&mut self, entries: usize) -> String {
        match self.shrink_push_batch(entries) {
            Some(batch) => format!("request timed out; next push carries at most {batch}"),
            None => String::from("request timed out"),
        }
    }

    /// Counts an acknowledged push; doubles a shrunk batch (up to `max_batch`) after
    /// [`GROW_AFTER`] in a row.
    fn grow_push_batch(&mut self) {
        let max = self.config.max_batch.max(1);
        if self.push_batch >= max {
            self.push_streak = 0;
            return;
        }
        self.push_streak = self.push_streak.saturating_add(1);
        if self.push_streak >= GROW_AFTER {
            self.push_batch = self.push_batch.saturating_mul(2).min(max);
            self.push_streak = 0;
        }
    }

    fn fail(&mut self, now: Millis, kind: &'static str, msg: String, out: &mut Vec<Action>) {
        self.fail_after(now, kind, msg, None, out);
    }

    /// Records a failure and backs off for at least `retry_after` (the server's
    /// `Retry-After`, capped at `max_backoff` so the retry stays within it).
    fn fail_after(
        &mut self,
        now: Millis,
        kind: &'static str,
        msg: String,
        retry_after: Option<Millis>,
        out: &mut Vec<Action>,
    ) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.total_retries += 1;
        let floor = retry_after.map_or(0, |wait| wait.min(self.config.max_backoff.max(1)));
        let delay = self.backoff_delay(self.consecutive_failures).max(floor);
        self.backoff_until = Some(now + delay);
        self.log(
            out,
            now,
            kind,
            format!(
                "{msg} (failure {}, retry in {delay} ms)",
                self.consecutive_failures
            ),
        );
        self.last_error = Some(msg);
    }

    fn next_req(&mut self) -> u64 {
        let r = self.next_req;
        self.next_req += 1;
        r
    }

    fn drive(&mut self, now: Millis, out: &mut Vec<Action>) {
        if let Some(inflight) = self.inflight {
            let (deadline, pushed) = match inflight {
                Inflight::Push {
                    deadline, entries, ..
                } => (deadline, Some(entries)),
                Inflight::Pull { deadline, .. } => (deadline, None),
            };
            if now < deadline {
                out.push(Action::SleepUntil(deadline));
                return;
            }
            self.inflight = None;
            let kind = if pushed.is_some() {
                "push-failed"
            } else {
                "pull-failed"
            };
            let message = match pushed {
                Some(entries) => self.push_timed_out(entries),
                None => String::from("request timed out"),
            };
            self.fail(now, kind, message, out);
        }
        if self.paused || !self.network_up {
            return;
        }
        if let Some(until) = self.backoff_until {
            if now < until {
                out.push(Action::SleepUntil(until));
                return;
            }
            self.backoff_until = None;
        }
        let deadline = now + self.config.request_timeout;
        if !self.pending.is_empty() {
            let req = self.next_req();
            let entries: Vec<OutboxEntry> = self
                .pending
                .iter()
                .take(self.push_batch.clamp(1, self.config.max_batch.max(1)))
                .map(|(e, _)| e.clone())
                .collect();
            let request = PushRequest {
                device: self.device.clone(),
                epoch: self.epoch,
                first_seq: entries[0].seq,
                last_seq: entries[entries.len() - 1].seq,
                entries,
            };
            self.inflight = Some(Inflight::Push {
                req,
                deadline,
                entries: request.entries.len(),
            });
            out.push(Action::SendPush {
                req,
                request,
                deadline,
            });
            out.push(Action::SleepUntil(deadline));
            return;
        }
        if self.need_full || self.pull_more || now >= self.next_pull_at {
            let req = self.next_req();
            let full = self.need_full;
            self.inflight = Some(Inflight::Pull {
                req,
                deadline,
                full,
            });
            if full {
                out.push(Action::ReadAll { req, deadline });
            } else {
                out.push(Action::FetchChangesSince {
                    req,
                    cursor: self.cursor.clone(),
                    deadline,
                });
            }
            out.push(Action::SleepUntil(deadline));
            return;
        }
        out.push(Action::SleepUntil(self.next_pull_at));
    }
}

/// `n` and the noun in its right number: `1 entry`, `2 entries`, `0 entries`.
pub(crate) fn counted(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::counted;

    #[test]
    fn counted_picks_the_number() {
        assert_eq!(counted(0, "entry", "entries"), "0 entries");
        assert_eq!(counted(1, "entry", "entries"), "1 entry");
        assert_eq!(counted(2, "change", "changes"), "2 changes");
    }
}
