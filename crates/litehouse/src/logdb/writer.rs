//! The log writer thread: batches records into transactions and applies retention.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use flume::{RecvTimeoutError, TryRecvError};
use rusqlite::{Connection, ToSql};

use super::layer::{IS_LOG_WRITER, Record};
use super::query::unix_micros;
use super::{Counters, LogConfig, RELAXED};
use crate::Database;
use crate::error::{Error, Result};
use crate::reply::Reply;
use crate::worker::Worker;

/// How often the thread looks at its control channel while no record arrives.
const CONTROL_POLL: Duration = Duration::from_millis(50);
/// Records per INSERT statement: 6 parameters each, well under SQLite's 32766.
const ROWS_PER_INSERT: usize = 500;

pub(crate) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS logs(
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        level INTEGER NOT NULL,
        target TEXT NOT NULL,
        message TEXT NOT NULL,
        fields TEXT,
        spans TEXT
    );
    CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts);
";

pub(crate) enum Control {
    /// Write everything queued now.
    Flush(Reply<usize>),
    /// Apply retention now.
    Purge(Reply<u64>),
    /// Write everything queued, then exit.
    Shutdown(Reply<usize>),
}

pub(crate) struct LogWriter {
    pub(crate) db: Database,
    pub(crate) records: flume::Receiver<Record>,
    pub(crate) control: flume::Receiver<Control>,
    pub(crate) config: LogConfig,
    pub(crate) counters: Arc<Counters>,
    pub(crate) batch: Vec<Record>,
    /// The last write's error and when it happened, if it failed. A shutdown within one busy
    /// budget of an [`Error::Busy`] (another process held the file's lock for the whole
    /// budget) does not wait for that lock a second time.
    pub(crate) last_write_error: Option<(Instant, Error)>,
}

impl LogWriter {
    pub(crate) fn spawn(self) -> Result<Worker> {
        Worker::spawn(
            "lh-log",
            self.control.clone(),
            move |_| {
                IS_LOG_WRITER.with(|flag| flag.set(true));
                self.run();
            },
            refuse,
        )
    }

    fn run(mut self) {
        let mut next_flush = Instant::now() + self.config.flush_interval;
        // Retention runs once at start, before any control message is answered, then on its
        // schedule.
        let _ = self.purge();
        let mut next_purge = Instant::now() + self.config.purge_interval;
        loop {
            match self.control.try_recv() {
                Ok(Control::Flush(reply)) => reply.send(self.write_queued()),
                Ok(Control::Purge(reply)) => reply.send(self.purge()),
                Ok(Control::Shutdown(reply)) => return reply.send(self.shutdown()),
                Err(TryRecvError::Disconnected) => {
                    let _ = self.write_queued();
                    return;
                }
                Err(TryRecvError::Empty) => {}
            }
            let wait_until = next_flush
                .min(next_purge)
                .min(Instant::now() + CONTROL_POLL);
            match self.records.recv_deadline(wait_until) {
                Ok(record) => {
                    self.batch.push(record);
                    self.fill();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.write_batch();
                    return;
                }
            }
            let now = Instant::now();
            if self.batch.len() >= self.config.batch_size || now >= next_flush {
                // A failed batch is counted as dropped and in `write_errors`.
                let _ = self.write_batch();
                next_flush = now + self.config.flush_interval;
            }
            if now >= next_purge {
                let _ = self.purge();
                next_purge = Instant::now() + self.config.purge_interval;
            }
        }
    }

    /// Writes what is queued and stops. Bounded by one busy budget: once a write fails (a
    /// foreign lock held past the budget, a full disk), or if the write just before failed
    /// with `Busy`, nothing more is tried; what could not be written is counted as dropped
    /// and reported in [`Error::Unwritten`].
    fn shutdown(&mut self) -> Result<usize> {
        // From here on the layer counts events as dropped instead of queueing them (Release:
        // pairs with the layer's Acquire load).
        self.counters.closed.store(true, Ordering::Release);
        let mut written = 0;
        let mut lost = 0_u64;
        let budget = self.db.config().busy_budget;
        let mut failure = self
            .last_write_error
            .take()
            .filter(|(at, err)| err.is_busy() && at.elapsed() < budget)
            .map(|(_, err)| err);
        while failure.is_none() {
            self.fill();
            let count = self.batch.len() as u64;
            if count == 0 {
                break;
            }
            match self.write_batch() {
                Ok(rows) => written += rows,
                Err(err) => {
                    lost += count;
                    failure = Some(err);
                }
            }
        }
        // Events sent while the flag was being set, and whatever a failure left, are lost.
        let late = (self.records.drain().count() + self.batch.len()) as u64;
        self.batch.clear();
        self.counters.pending_batch.store(0, RELAXED);
        self.counters.dropped.fetch_add(late, RELAXED);
        lost += late;
        match failure {
            Some(source) if lost > 0 => Err(Error::Unwritten {
                entries: lost,
                source: Box::new(source),
            }),
            _ => Ok(written),
        }
    }

    /// Moves queued records into the batch, up to the batch size.
    fn fill(&mut self) {
        while self.batch.len() < self.config.batch_size {
            let Ok(record) = self.records.try_recv() else {
                break;
            };
            self.batch.push(record);
        }
        self.counters
            .pending_batch
            .store(self.batch.len() as u64, RELAXED);
    }

    /// Writes every record queued when called (and the current batch).
    /// Stops at the first failed batch: under a foreign lock each attempt waits a whole busy
    /// budget, and the records left in the channel are tried again on the next round.
    fn write_queued(&mut self) -> Result<usize> {
        let mut left = self.records.len();
        let mut written = 0;
        loop {
            let before = self.batch.len();
            self.fill();
            left = left.saturating_sub(self.batch.len() - before);
            if self.batch.is_empty() {
                break;
            }
            written += self.write_batch()?;
            if left == 0 {
                break;
            }
        }
        Ok(written)
    }

    fn write_batch(&mut self) -> Result<usize> {
        if self.batch.is_empty() {
            return Ok(0);
        }
        let records = std::mem::take(&mut self.batch);
        self.counters.pending_batch.store(0, RELAXED);
        let count = records.len();
        match self
            .db
            .blocking_transaction(move |conn| insert(conn, &records))
        {
            Ok(()) => {
                self.last_write_error = None;
                self.counters.logged.fetch_add(count as u64, RELAXED);
                self.counters.batches.fetch_add(1, RELAXED);
                Ok(count)
            }
            Err(err) => {
                // Logging is best effort: a batch the database refuses is lost, but counted.
                self.counters.write_errors.fetch_add(1, RELAXED);
                self.counters.dropped.fetch_add(count as u64, RELAXED);
                self.last_write_error = Some((Instant::now(), err.clone()));
                Err(err)
            }
        }
    }

    /// Deletes entries older than the retention in small transactions, then gives the freed
    /// pages back to the file system with an incremental vacuum.
    fn purge(&mut self) -> Result<u64> {
        let Some(cutoff) = self
            .config
            .retention
            .and_then(|keep| SystemTime::now().checked_sub(keep))
        else {
            return Ok(0);
        };
        let cutoff = unix_micros(cutoff);
        let limit = i64::try_from(self.config.delete_batch_size).unwrap_or(i64::MAX);
        let mut total = 0_u64;
        loop {
            let deleted = self.db.blocking_execute(
                "DELETE FROM logs WHERE id IN (SELECT id FROM logs WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
                (cutoff, limit),
            )?;
            total += deleted as u64;
            if deleted < self.config.delete_batch_size {
                break;
            }
            // Events keep arriving during a long purge: write them between delete batches
            // so the channel does not overflow meanwhile.
            self.fill();
            if self.batch.len() >= self.config.batch_size {
                let _ = self.write_batch();
            }
        }
        if total > 0 {
            self.db.blocking_transaction(incremental_vacuum)?;
        }
        self.counters.purged.fetch_add(total, RELAXED);
        Ok(total)
    }
}

/// After shutdown: answers control messages until the last handle is dropped. The thread keeps
/// the control receiver until then, because a message queued on a channel whose receiver is
/// gone is never answered (flume keeps it while a sender lives) and its caller would wait
/// forever.
fn refuse(message: Control) {
    match message {
        Control::Flush(reply) => reply.send(Err(Error::Closed)),
        Control::Purge(reply) => reply.send(Err(Error::Closed)),
        Control::Shutdown(reply) => reply.send(Ok(0)),
    }
}

/// Frees every page on the free list. The pragma frees pages as it is stepped, so it is stepped
/// to the end (a single step, as `execute_batch` does, leaves most pages on the free list).
fn incremental_vacuum(conn: &Connection) -> Result<()> {
    let mut statement = conn.prepare_cached("PRAGMA incremental_vacuum")?;
    let mut rows = statement.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

fn insert(conn: &Connection, records: &[Record]) -> Result<()> {
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let values = vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql =
            format!("INSERT INTO logs(ts, level, target, message, fields, spans) VALUES {values}");
        let mut statement = conn.prepare_cached(&sql)?;
        // Empty fields and spans are stored as NULL rather than `{}` and `[]`.
        let encoded: Vec<(i64, Option<String>, Option<String>)> = chunk
            .iter()
            .map(|record| {
                let fields = (!record.fields.is_empty())
                    .then(|| serde_json::Value::Object(record.fields.clone()).to_string());
                let spans = (!record.spans.is_empty())
                    .then(|| serde_json::Value::from(record.spans.clone()).to_string());
                (record.level as i64, fields, spans)
            })
            .collect();
        let mut params: Vec<&dyn ToSql> = Vec::with_capacity(chunk.len() * 6);
        for (record, (level, fields, spans)) in chunk.iter().zip(&encoded) {
            params.extend([
                &record.unix_micros as &dyn ToSql,
                level,
                &record.target,
                &record.message,
                fields,
                spans,
            ]);
        }
        statement.execute(params.as_slice())?;
    }
    Ok(())
}
