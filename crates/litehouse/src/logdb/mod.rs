//! The log database: `tracing` events shipped to their own SQLite database, in batches.
//!
//! [`LogDatabase`] owns a separate [`Database`] (so logging never competes with the
//! application's writes), a writer thread, and a bounded channel fed by [`LogLayer`]. The layer
//! never waits: a full channel drops the event and counts it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

mod layer;
mod query;
mod writer;

pub use layer::LogLayer;
pub use query::{LogEntry, LogLevel, LogOrder, LogQuery};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::worker::{Worker, wait_if_allowed};
use crate::{Database, reply};
use writer::{Control, LogWriter};

/// Counters are independent and only read for reporting, so relaxed ordering is enough.
const RELAXED: Ordering = Ordering::Relaxed;

/// Settings for a [`LogDatabase`].
///
/// ```
/// use std::time::Duration;
/// let config = litehouse::LogConfig { retention: Some(Duration::from_secs(24 * 3600)), ..Default::default() };
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Events that may wait for the writer thread. When full, new events are dropped (and
    /// counted) instead of slowing the application down.
    pub channel_capacity: usize,
    /// Most events written in one transaction; a batch is written as soon as it is full.
    pub batch_size: usize,
    /// Queued events are written at least this often.
    pub flush_interval: Duration,
    /// Entries older than this are deleted; `None` keeps everything.
    pub retention: Option<Duration>,
    /// How often retention runs (also once at start).
    pub purge_interval: Duration,
    /// Rows per DELETE transaction when applying retention, so a large purge never holds
    /// the write lock for long.
    pub delete_batch_size: usize,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            channel_capacity: 8192,
            batch_size: 512,
            flush_interval: Duration::from_millis(500),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            purge_interval: Duration::from_secs(600),
            delete_batch_size: 2000,
        }
    }
}

impl LogConfig {
    fn validate(&self) -> Result<()> {
        let LogConfig {
            channel_capacity,
            batch_size,
            flush_interval,
            retention: _,
            purge_interval,
            delete_batch_size,
        } = self;
        if *channel_capacity == 0 || *batch_size == 0 || *delete_batch_size == 0 {
            return Err(Error::Config {
                message: "channel_capacity, batch_size and delete_batch_size must be at least 1"
                    .into(),
            });
        }
        if flush_interval.is_zero() || purge_interval.is_zero() {
            return Err(Error::Config {
                message: "flush_interval and purge_interval must be longer than zero".into(),
            });
        }
        Ok(())
    }
}

/// Live counters shared by the layer and the writer thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    logged: AtomicU64,
    dropped: AtomicU64,
    batches: AtomicU64,
    write_errors: AtomicU64,
    purged: AtomicU64,
    /// Records taken from the channel but not yet written.
    pending_batch: AtomicU64,
    /// Set at shutdown: the layer stops queueing events.
    closed: AtomicBool,
}

/// A snapshot of a [`LogDatabase`], from [`LogDatabase::blocking_stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LogStats {
    /// Events written to the database.
    pub logged: u64,
    /// Events lost: the channel was full or closed, or their batch failed to write.
    pub dropped: u64,
    /// Events queued or batched but not written yet.
    pub pending: u64,
    /// Batches (transactions) written.
    pub batches: u64,
    /// Batches the database refused (their events count as dropped).
    pub write_errors: u64,
    /// Entries deleted by retention.
    pub purged: u64,
    /// Entries in the database now.
    pub entries: u64,
    /// Time of the oldest entry, in microseconds since the Unix epoch.
    pub oldest_unix_micros: Option<i64>,
    /// Time of the newest entry, in microseconds since the Unix epoch.
    pub newest_unix_micros: Option<i64>,
}

/// A SQLite database of `tracing` events, written in batches by its own thread.
///
/// Cheap to clone. Install [`layer`](LogDatabase::layer) in a subscriber; call
/// [`shutdown`](LogDatabase::shutdown) before exiting to write what is still queued (dropping
/// the last handle does the same).
///
/// ```
/// use litehouse::{LogConfig, LogDatabase, LogQuery};
/// use tracing_subscriber::layer::SubscriberExt;
/// let dir = tempfile::tempdir().unwrap();
/// let logs = LogDatabase::open(dir.path().join("logs.db"), LogConfig::default())?;
/// let subscriber = tracing_subscriber::registry().with(logs.layer());
/// tracing::subscriber::with_default(subscriber, || {
///     let span = tracing::info_span!("import", file = "a.csv");
///     let _entered = span.enter();
///     tracing::error!(line = 12, "bad date");
/// });
/// logs.blocking_shutdown()?;
/// let entries = logs.blocking_query(&LogQuery::default())?;
/// assert_eq!(entries[0].message, "bad date");
/// assert_eq!(entries[0].spans, ["import"]);
/// # Ok::<(), litehouse::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogDatabase {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    sender: flume::Sender<layer::Record>,
    /// Taken only in `Drop`, so the writer thread sees the channel close and exits.
    control: Option<flume::Sender<Control>>,
    counters: Arc<Counters>,
    writer: Mutex<Option<Worker>>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Control::Flush(_) => "Flush",
            Control::Purge(_) => "Purge",
            Control::Shutdown(_) => "Shutdown",
        })
    }
}

/// The engine settings of a log database that litehouse opens itself: incremental
/// auto-vacuum (set before the first table exists) so retention can shrink the file.
fn engine_config() -> Config {
    Config {
        readers: 2,
        pragmas: vec![("auto_vacuum".into(), "INCREMENTAL".into())],
        ..Config::default()
    }
}

impl LogDatabase {
    /// Opens (creating if needed) a log database file and starts its writer thread.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config, [`Error::Io`] when the file cannot be opened.
    pub fn open(path: impl AsRef<Path>, config: LogConfig) -> Result<LogDatabase> {
        config.validate()?;
        LogDatabase::with_database(Database::open(path, engine_config())?, config)
    }

    /// Like [`open`](LogDatabase::open), for the in-memory database `name`.
    ///
    /// # Errors
    /// As [`open`](LogDatabase::open).
    pub fn open_memory(name: &str, config: LogConfig) -> Result<LogDatabase> {
        config.validate()?;
        LogDatabase::with_database(Database::open_memory(name, engine_config())?, config)
    }

    /// Uses `db` (which should hold nothing but logs) and creates the `logs` table in it.
    /// Retention can only shrink its file if it was created with `auto_vacuum=INCREMENTAL`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config; errors creating the table.
    pub fn with_database(db: Database, config: LogConfig) -> Result<LogDatabase> {
        config.validate()?;
        db.blocking_transaction(|conn| Ok(conn.execute_batch(writer::SCHEMA)?))?;
        let (sender, records) = flume::bounded(config.channel_capacity);
        // Control messages are rare and their senders wait for a reply anyway.
        let (control, control_receiver) = flume::bounded(16);
        let counters = Arc::new(Counters::default());
        let thread = LogWriter {
            db: db.clone(),
            records,
            control: control_receiver,
            batch: Vec::with_capacity(config.batch_size),
            config,
            counters: Arc::clone(&counters),
            last_write_error: None,
        }
        .spawn()?;
        Ok(LogDatabase {
            inner: Arc::new(Inner {
                db,
                sender,
                control: Some(control),
                counters,
                writer: Mutex::new(Some(thread)),
            }),
        })
    }

    /// A `tracing` layer feeding this database. Add it to a subscriber, for example
    /// `tracing_subscriber::registry().with(logs.layer())`; use the layer's `with_filter`
    /// to choose which events go in.
    pub fn layer(&self) -> LogLayer {
        LogLayer {
            sender: self.inner.sender.clone(),
            counters: Arc::clone(&self.inner.counters),
        }
    }

    /// Queues one entry without `tracing`, for bridges from other logging systems (the Python
    /// binding's `logging.Handler`). Never waits: returns false, and counts the entry in
    /// [`LogStats::dropped`], when the channel is full or the database was shut down.
    ///
    /// ```
    /// use litehouse::{LogConfig, LogDatabase, LogLevel, LogQuery};
    /// let logs = LogDatabase::open_memory("doc-try-log", LogConfig::default())?;
    /// let fields = serde_json::json!({"job": 7}).as_object().cloned().unwrap_or_default();
    /// assert!(logs.try_log(LogLevel::Warn, "worker", "slow job", fields));
    /// logs.blocking_flush()?;
    /// let entries = logs.blocking_query(&LogQuery::default())?;
    /// assert_eq!((entries[0].message.as_str(), entries[0].fields["job"].as_i64()), ("slow job", Some(7)));
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn try_log(
        &self,
        level: LogLevel,
        target: &str,
        message: &str,
        fields: serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        self.layer().try_send(layer::Record {
            unix_micros: query::unix_micros(std::time::SystemTime::now()),
            level,
            target: target.to_owned(),
            message: message.to_owned(),
            fields,
            spans: Vec::new(),
        })
    }

    /// The underlying database, for queries of your own.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    fn blocking_control<T>(&self, make: impl FnOnce(reply::Reply<T>) -> Control) -> Result<T> {
        let (reply, wait) = reply::blocking();
        self.inner
            .control()
            .send(make(reply))
            .map_err(|_| Error::Closed)?;
        wait()
    }

    async fn control<T>(&self, make: impl FnOnce(reply::Reply<T>) -> Control) -> Result<T> {
        let (reply, receiver) = reply::asynchronous();
        let message = make(reply);
        self.inner
            .control()
            .send_async(message)
            .await
            .map_err(|_| Error::Closed)?;
        reply::wait(receiver).await
    }

    /// Writes every event queued so far; returns how many were written.
    ///
    /// # Errors
    /// The database's error if a batch failed (its events count as dropped);
    /// [`Error::Closed`] after shutdown.
    pub fn blocking_flush(&self) -> Result<usize> {
        self.blocking_control(Control::Flush)
    }

    /// Async twin of [`blocking_flush`](LogDatabase::blocking_flush).
    pub async fn flush(&self) -> Result<usize> {
        self.control(Control::Flush).await
    }

    /// Applies retention now: deletes entries older than `retention` in batches, then runs an
    /// incremental vacuum. Returns how many entries were deleted.
    ///
    /// # Errors
    /// The database's error; [`Error::Closed`] after shutdown.
    pub fn blocking_purge(&self) -> Result<u64> {
        self.blocking_control(Control::Purge)
    }

    /// Async twin of [`blocking_purge`](LogDatabase::blocking_purge).
    pub async fn purge(&self) -> Result<u64> {
        self.control(Control::Purge).await
    }

    /// Writes what is queued and stops writing; later events are dropped (and counted).
    /// Shutting down twice is fine. The database stays open for queries.
    ///
    /// It takes at most about one busy budget (`Config::busy_budget` of the log database,
    /// 5 s by default) even while another process holds the file's lock: once a write fails,
    /// nothing more is tried.
    ///
    /// # Errors
    /// [`Error::Unwritten`] with the number of entries that could not be written and why.
    pub fn blocking_shutdown(&self) -> Result<()> {
        self.inner.shutdown()
    }

    /// Async twin of [`blocking_shutdown`](LogDatabase::blocking_shutdown).
    pub async fn shutdown(&self) -> Result<()> {
        match self.control(Control::Shutdown).await {
            Ok(_) | Err(Error::Closed) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Entries matching `query`; see [`Database::blocking_query_logs`].
    ///
    /// # Errors
    /// As [`Database::blocking_query_logs`].
    pub fn blocking_query(&self, query: &LogQuery) -> Result<Vec<LogEntry>> {
        self.inner.db.blocking_query_logs(query)
    }

    /// Async twin of [`blocking_query`](LogDatabase::blocking_query).
    pub async fn query(&self, query: &LogQuery) -> Result<Vec<LogEntry>> {
        self.inner.db.query_logs(query).await
    }

    fn counters_snapshot(&self) -> LogStats {
        let counters = &self.inner.counters;
        LogStats {
            logged: counters.logged.load(RELAXED),
            dropped: counters.dropped.load(RELAXED),
            pending: self.inner.sender.len() as u64 + counters.pending_batch.load(RELAXED),
            batches: counters.batches.load(RELAXED),
            write_errors: counters.write_errors.load(RELAXED),
            purged: counters.purged.load(RELAXED),
            ..LogStats::default()
        }
    }

    /// Counters plus the number of entries and the oldest and newest entry times.
    ///
    /// # Errors
    /// The database's error reading the `logs` table.
    pub fn blocking_stats(&self) -> Result<LogStats> {
        let stats = self.counters_snapshot();
        let row = self.inner.db.blocking_query_row(STATS_SQL, (), stats_row)?;
        Ok(with_table(stats, row))
    }

    /// Async twin of [`blocking_stats`](LogDatabase::blocking_stats).
    pub async fn stats(&self) -> Result<LogStats> {
        let stats = self.counters_snapshot();
        let row = self.inner.db.query_row(STATS_SQL, (), stats_row).await?;
        Ok(with_table(stats, row))
    }
}

const STATS_SQL: &str = "SELECT count(*), min(ts), max(ts) FROM logs";

type TableStats = (i64, Option<i64>, Option<i64>);

fn stats_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TableStats> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn with_table(stats: LogStats, (entries, oldest, newest): TableStats) -> LogStats {
    LogStats {
        entries: u64::try_from(entries).unwrap_or(0),
        oldest_unix_micros: oldest,
        newest_unix_micros: newest,
        ..stats
    }
}

impl Inner {
    fn control(&self) -> &flume::Sender<Control> {
        self.control
            .as_ref()
            .expect("the sender is only taken in drop")
    }

    fn shutdown(&self) -> Result<()> {
        let (reply, wait) = reply::blocking();
        if self.control().send(Control::Shutdown(reply)).is_err() {
            return Ok(());
        }
        match wait() {
            Ok(_) | Err(Error::Closed) => Ok(()),
            Err(err) => Err(err),
        }
    }

    fn join(&self) {
        if let Some(mut thread) = self.writer.lock().take() {
            thread.join();
        }
    }
}

impl Drop for Inner {
    /// The last handle writes what is queued, like [`LogDatabase::blocking_shutdown`], where a
    /// thread may wait (a plain thread; a multi-threaded tokio runtime, inside
    /// `block_in_place`). Elsewhere (a current-thread runtime, a `LocalSet`) it does not wait:
    /// the log writer finishes and ends on its own.
    fn drop(&mut self) {
        if wait_if_allowed(|| self.shutdown_and_join()) {
            return;
        }
        let (reply, _) = reply::blocking();
        let _ = self.control().try_send(Control::Shutdown(reply));
        self.control = None;
        if let Some(mut thread) = self.writer.lock().take() {
            thread.detach();
        }
    }
}

impl Inner {
    fn shutdown_and_join(&mut self) {
        let _ = self.shutdown();
        // Closing the channel ends the thread's wait for late control messages.
        self.control = None;
        self.join();
    }
}

#[cfg(test)]
mod tests;
