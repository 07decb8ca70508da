//! Settings and counters of the write buffer.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::row::normalize_name;
use crate::error::{Error, Result};

/// Settings for [`WriteBuffer::start`](crate::WriteBuffer::start).
///
/// ```
/// use std::time::Duration;
/// let config = litehouse::BufferConfig {
///     flush_interval: Duration::from_millis(200),
///     table_priorities: vec!["downloads".into(), "tracks".into()],
///     ..litehouse::BufferConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Most rows (distinct keys) held in memory, counting the batch being flushed. A write of
    /// a new key beyond it waits for a flush to make room (the `try_` methods return
    /// [`Error::BufferFull`] instead). Writes that coalesce into a pending key never wait.
    pub max_buffer_size: usize,
    /// Pending rows are flushed at least this often.
    pub flush_interval: Duration,
    /// A flush starts as soon as this many rows are pending, and one transaction writes at
    /// most this many rows.
    pub flush_batch_size: usize,
    /// Tables flushed first, in this order; tables not listed follow, by name.
    pub table_priorities: Vec<String>,
    /// First delay before retrying a failed flush; it doubles (with jitter) up to
    /// `retry_max_delay`.
    pub retry_min_delay: Duration,
    /// Longest delay between retries of a failed flush.
    pub retry_max_delay: Duration,
    /// How long [`WriteBuffer::stop`](crate::WriteBuffer::stop) keeps retrying a failing flush
    /// before giving up.
    pub stop_timeout: Duration,
}

impl Default for BufferConfig {
    fn default() -> BufferConfig {
        BufferConfig {
            max_buffer_size: 10_000,
            flush_interval: Duration::from_secs(1),
            flush_batch_size: 1_000,
            table_priorities: Vec::new(),
            retry_min_delay: Duration::from_millis(50),
            retry_max_delay: Duration::from_secs(5),
            stop_timeout: Duration::from_secs(30),
        }
    }
}

impl BufferConfig {
    /// Checks the numbers and normalizes the table names.
    pub(crate) fn validated(self) -> Result<BufferConfig> {
        let BufferConfig {
            max_buffer_size,
            flush_interval,
            flush_batch_size,
            table_priorities,
            retry_min_delay,
            retry_max_delay,
            stop_timeout,
        } = self;
        let bad = |message: &str| {
            Err(Error::Config {
                message: message.into(),
            })
        };
        if max_buffer_size == 0 || flush_batch_size == 0 {
            return bad("max_buffer_size and flush_batch_size must be at least 1");
        }
        if flush_interval.is_zero() || retry_min_delay.is_zero() {
            return bad("flush_interval and retry_min_delay must be longer than zero");
        }
        if retry_max_delay < retry_min_delay {
            return bad("retry_max_delay must be at least retry_min_delay");
        }
        let table_priorities = table_priorities
            .iter()
            .map(|table| normalize_name(table))
            .collect::<Result<Vec<_>>>()?;
        Ok(BufferConfig {
            max_buffer_size,
            flush_interval,
            flush_batch_size,
            table_priorities,
            retry_min_delay,
            retry_max_delay,
            stop_timeout,
        })
    }
}

/// A snapshot of a [`WriteBuffer`](crate::WriteBuffer)'s counters, from
/// [`WriteBuffer::stats`](crate::WriteBuffer::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BufferStats {
    /// Rows (distinct keys) waiting for a flush.
    pub pending: usize,
    /// Pending rows per table.
    pub pending_by_table: BTreeMap<String, usize>,
    /// Rows in the flush running now.
    pub in_flight: usize,
    /// Most rows ever held at once (pending plus in flight); never above `max_buffer_size`.
    pub peak_rows: usize,
    /// The configured `max_buffer_size`.
    pub max_buffer_size: usize,
    /// Producers waiting for room right now.
    pub waiting_producers: usize,
    /// Writes accepted (upserts, updates and deletes).
    pub buffered: u64,
    /// Writes that merged into a row already pending.
    pub coalesced: u64,
    /// Rows written to the database.
    pub flushed: u64,
    /// Successful flushes (one transaction each).
    pub flushes: u64,
    /// Flushes that failed; their rows were kept and retried.
    pub failed_flushes: u64,
    /// Times a producer had to wait for room.
    pub producer_waits: u64,
    /// `try_` writes refused with [`Error::BufferFull`].
    pub full_rejections: u64,
    /// Rows the database refused for good, moved to the `_litehouse_rejected` table (see
    /// [`WriteBuffer::rejected`](crate::WriteBuffer::rejected)).
    pub rejected: u64,
    /// When the last successful flush ended, in milliseconds since the Unix epoch.
    pub last_flush_unix_ms: Option<u64>,
    /// How long the last successful flush took, in microseconds.
    pub last_flush_micros: Option<u64>,
    /// The error of the last flush, if it failed.
    pub last_error: Option<String>,
    /// True once [`WriteBuffer::stop`](crate::WriteBuffer::stop) was called.
    pub stopped: bool,
}
