//! Benchmark workloads for `litehouse bench`: each workload measures litehouse and its peers
//! in the same process run, so results can be quoted as ratios.
//!
//! A [`Workload`] reports one [`Measurement`] per (implementation, thread count) through a
//! callback; the CLI prints them as a table with ratios against the workload's reference
//! implementation at the same thread count, or as JSON lines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

mod buffer;
mod docs;
mod engine;
mod logging;
mod peers;
mod runner;

/// How a run is sized.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Short run (the whole `--quick` suite stays under 60 s).
    pub quick: bool,
    /// Scratch directory for database files; each workload makes its own files inside it.
    pub dir: PathBuf,
    /// PostgreSQL URL for workloads that also measure the PostgreSQL backend; they skip
    /// that part (and say so in a note) when it is `None`.
    pub pg: Option<String>,
}

impl BenchOptions {
    /// Picks `quick` or `full` depending on the run size.
    pub fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick { quick } else { full }
    }

    /// A fresh database path inside the scratch directory.
    pub fn db_path(&self, name: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.db"));
        remove_db(&path);
        path
    }
}

/// The value at quantile `q` (0 to 1, nearest rank) of `sorted`, which is sorted ascending;
/// `None` when it is empty.
///
/// ```
/// let latencies = [1, 2, 3, 4, 100];
/// assert_eq!(litehouse_bench::quantile(&latencies, 0.5), Some(3));
/// assert_eq!(litehouse_bench::quantile(&latencies, 0.99), Some(100));
/// assert_eq!(litehouse_bench::quantile::<u64>(&[], 0.5), None);
/// ```
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).copied()
}

/// `count` over `elapsed`, per second (an empty `elapsed` counts as a nanosecond, not a
/// division by zero).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(litehouse_bench::per_second(500, Duration::from_millis(250)), 2000.0);
/// ```
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Deletes a database file with its WAL and shared-memory files.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// One measured (workload, implementation, threads) cell.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Workload id, e.g. `W1`.
    pub workload: String,
    /// Implementation, e.g. `litehouse` or `naive`.
    pub implementation: String,
    /// Concurrent writers or readers (threads or tasks).
    pub threads: usize,
    /// Operations completed successfully.
    pub ops: u64,
    /// Operations that failed.
    pub failures: u64,
    /// Wall time of the measured part.
    #[serde(skip)]
    pub elapsed: Duration,
    /// Successful operations per second.
    pub ops_per_sec: f64,
    /// Anything else worth reporting (final counter, p50 latency, ...).
    pub note: String,
}

impl Measurement {
    /// Builds a measurement and computes `ops_per_sec`.
    pub fn new(
        workload: &str,
        implementation: &str,
        threads: usize,
        ops: u64,
        failures: u64,
        elapsed: Duration,
    ) -> Measurement {
        Measurement {
            workload: workload.to_owned(),
            implementation: implementation.to_owned(),
            threads,
            ops,
            failures,
            elapsed,
            ops_per_sec: per_second(ops, elapsed),
            note: String::new(),
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Measurement {
        self.note = note.into();
        self
    }
}

/// A benchmark workload.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Short id used on the command line (`W1`, `B1`, ...).
    pub id: &'static str,
    /// One-line description.
    pub title: &'static str,
    /// Ratios in the table are against this implementation at the same thread count.
    pub reference: &'static str,
    /// Runs every implementation, reporting each measurement as it completes.
    pub run: fn(&BenchOptions, &mut dyn FnMut(Measurement)) -> anyhow::Result<()>,
}

/// Every workload, in the order `litehouse bench` runs them.
pub fn workloads() -> Vec<Workload> {
    let mut all = Vec::new();
    all.extend(engine::workloads());
    all.extend(docs::workloads());
    all.extend(buffer::workloads());
    all.extend(logging::workloads());
    all
}
