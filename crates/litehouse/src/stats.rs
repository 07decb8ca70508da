//! Statistics: counters, latency and group-size histograms, queue depth.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

use crate::Database;
use crate::readers::CachePadded;

/// Kinds of operation counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Execute,
    ExecuteMany,
    Script,
    Transaction,
    Maintenance,
}

const OP_KINDS: usize = 5;

/// One read in this many is timed for the read latency histogram.
pub(crate) const READ_SAMPLE_EVERY: u64 = 8;

/// Live counters. Relaxed atomics: each counter is independent and only read for reporting,
/// so no ordering with other memory is needed.
#[derive(Debug)]
pub(crate) struct StatsCollector {
    ops: [AtomicU64; OP_KINDS],
    errors: [AtomicU64; OP_KINDS],
    groups: AtomicU64,
    commit_failures: AtomicU64,
    busy_retries: AtomicU64,
    busy_errors: AtomicU64,
    busy_wait_micros: AtomicU64,
    group_sizes: Mutex<Histogram<u64>>,
    write_latency: Mutex<Histogram<u64>>,
    commit_latency: Mutex<Histogram<u64>>,
    /// One slot per reader connection, so concurrent readers never share a lock or a counter.
    reads: Vec<CachePadded<ReadSlot>>,
}

#[derive(Debug)]
struct ReadSlot {
    count: AtomicU64,
    errors: AtomicU64,
    latency: Mutex<Histogram<u64>>,
}

fn histogram() -> Mutex<Histogram<u64>> {
    // Three significant figures, auto-resizing: covers 1 µs .. hours without configuration.
    let mut histogram = Histogram::new(3).expect("3 significant figures is a valid precision");
    histogram.auto(true);
    Mutex::new(histogram)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl StatsCollector {
    pub(crate) fn new(reader_slots: usize) -> StatsCollector {
        StatsCollector {
            ops: Default::default(),
            errors: Default::default(),
            groups: AtomicU64::new(0),
            commit_failures: AtomicU64::new(0),
            busy_retries: AtomicU64::new(0),
            busy_errors: AtomicU64::new(0),
            busy_wait_micros: AtomicU64::new(0),
            group_sizes: histogram(),
            write_latency: histogram(),
            commit_latency: histogram(),
            reads: (0..reader_slots.max(1))
                .map(|_| {
                    CachePadded(ReadSlot {
                        count: AtomicU64::new(0),
                        errors: AtomicU64::new(0),
                        latency: histogram(),
                    })
                })
                .collect(),
        }
    }

    pub(crate) fn op(&self, kind: OpKind, ok: bool) {
        self.ops[kind as usize].fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors[kind as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn group(&self, size: usize, commit: Duration, committed: bool) {
        self.groups.fetch_add(1, Ordering::Relaxed);
        if !committed {
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
        }
        let _ = self.group_sizes.lock().record(size as u64);
        let _ = self.commit_latency.lock().record(micros(commit));
    }

    /// Records the latencies of a whole group under one lock.
    pub(crate) fn write_latencies(&self, latencies: impl Iterator<Item = Duration>) {
        let mut histogram = self.write_latency.lock();
        for latency in latencies {
            let _ = histogram.record(micros(latency));
        }
    }

    /// Records one read on reader connection `slot`.
    /// Starts timing a read on reader connection `slot` if this read is sampled. Reads take
    /// about a microsecond, so timing every one (two clock reads and a histogram update)
    /// would be a noticeable share of it; one in [`READ_SAMPLE_EVERY`] is plenty for
    /// percentiles. Counts stay exact.
    pub(crate) fn start_read(&self, slot: usize) -> Option<Instant> {
        let slot = &self.reads[slot % self.reads.len()].0;
        let sampled = slot
            .count
            .load(Ordering::Relaxed)
            .is_multiple_of(READ_SAMPLE_EVERY);
        sampled.then(Instant::now)
    }

    /// Records one read on reader connection `slot`.
    pub(crate) fn read(&self, slot: usize, started: Option<Instant>, ok: bool) {
        let slot = &self.reads[slot % self.reads.len()].0;
        // Only the thread holding this slot's connection writes its counters, so a plain
        // load and store suffice (no locked read-modify-write); readers of the snapshot may
        // see a count one behind, which is fine for statistics.
        slot.count
            .store(slot.count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if !ok {
            slot.errors
                .store(slot.errors.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        if let Some(started) = started {
            let _ = slot.latency.lock().record(micros(started.elapsed()));
        }
    }

    pub(crate) fn busy_retry(&self, waited: Duration) {
        self.busy_retries.fetch_add(1, Ordering::Relaxed);
        self.busy_wait_micros
            .fetch_add(micros(waited), Ordering::Relaxed);
    }

    pub(crate) fn busy_error(&self) {
        self.busy_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request answered with [`Error::Busy`](crate::Error::Busy).
    pub(crate) fn count_busy<T>(&self, result: &crate::Result<T>) {
        if result.as_ref().is_err_and(crate::Error::is_busy) {
            self.busy_error();
        }
    }

    pub(crate) fn snapshot(&self, queue_depth: usize) -> Stats {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let kind = |kind: OpKind| OpStats {
            count: load(&self.ops[kind as usize]),
            errors: load(&self.errors[kind as usize]),
        };
        Stats {
            execute: kind(OpKind::Execute),
            execute_many: kind(OpKind::ExecuteMany),
            script: kind(OpKind::Script),
            transaction: kind(OpKind::Transaction),
            read: OpStats {
                count: self.reads.iter().map(|slot| load(&slot.0.count)).sum(),
                errors: self.reads.iter().map(|slot| load(&slot.0.errors)).sum(),
            },
            maintenance: kind(OpKind::Maintenance),
            groups: load(&self.groups),
            commit_failures: load(&self.commit_failures),
            locks: LockStats {
                busy_retries: load(&self.busy_retries),
                busy_errors: load(&self.busy_errors),
                busy_wait_micros: load(&self.busy_wait_micros),
            },
            queue_depth,
            group_size: Summary::of(&self.group_sizes.lock()),
            write_latency_micros: Summary::of(&self.write_latency.lock()),
            commit_latency_micros: Summary::of(&self.commit_latency.lock()),
            read_latency_micros: {
                let mut merged =
                    Histogram::new(3).expect("3 significant figures is a valid precision");
                merged.auto(true);
                for slot in &self.reads {
                    let _ = merged.add(&*slot.0.latency.lock());
                }
                Summary::of(&merged)
            },
        }
    }
}

/// A point-in-time copy of the engine's statistics, from [`Database::stats`].
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Single statements sent with `execute`.
    pub execute: OpStats,
    /// `execute_many` calls.
    pub execute_many: OpStats,
    /// `script` calls.
    pub script: OpStats,
    /// `transaction` closures.
    pub transaction: OpStats,
    /// Reads (every query method).
    pub read: OpStats,
    /// Maintenance and backup calls.
    pub maintenance: OpStats,
    /// Transactions the writer committed or tried to (one per group).
    pub groups: u64,
    /// Groups whose COMMIT failed (every request in them got the error).
    pub commit_failures: u64,
    /// Lock contention with other processes.
    pub locks: LockStats,
    /// Requests waiting in the write queue right now.
    pub queue_depth: usize,
    /// Requests per committed group.
    pub group_size: Summary,
    /// From submitting a write to its acknowledgement, in microseconds.
    pub write_latency_micros: Summary,
    /// Time spent in COMMIT per group, in microseconds.
    pub commit_latency_micros: Summary,
    /// Time a read spent on its connection, in microseconds (sampled: one read in 8).
    pub read_latency_micros: Summary,
}

/// Count and failures of one kind of operation.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpStats {
    /// Operations completed (successfully or not).
    pub count: u64,
    /// Operations that returned an error.
    pub errors: u64,
}

/// Lock metrics: waits caused by other processes holding SQLite's write lock.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockStats {
    /// Times the writer found the lock held and backed off.
    pub busy_retries: u64,
    /// Requests that failed with [`Error::Busy`](crate::Error::Busy) after the budget.
    pub busy_errors: u64,
    /// Total time spent backing off, in microseconds.
    pub busy_wait_micros: u64,
}

/// Percentiles of a histogram.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
#[non_exhaustive]
pub struct Summary {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl Summary {
    fn of(histogram: &Histogram<u64>) -> Summary {
        Summary {
            count: histogram.len(),
            mean: histogram.mean(),
            p50: histogram.value_at_quantile(0.50),
            p95: histogram.value_at_quantile(0.95),
            p99: histogram.value_at_quantile(0.99),
            max: histogram.max(),
        }
    }
}

impl Database {
    /// A snapshot of the engine's statistics.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("stats-doc", litehouse::Config::default())?;
    /// db.blocking_execute("CREATE TABLE t(x)", ())?;
    /// let stats = db.stats();
    /// assert_eq!(stats.execute.count, 1);
    /// println!("{}", serde_json::to_string(&stats).unwrap());
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot(self.inner.writer.queue_depth())
    }
}
