//! `litehouse.LogDatabase`: log entries in their own SQLite file, written in batches by a
//! thread of their own; `log` never waits (a full queue drops the entry and counts it).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use litehouse::{LogConfig, LogDatabase, LogLevel, LogOrder, LogQuery};
use pyo3::prelude::*;

use crate::errors::{IntoPyResult, to_py_err};
use crate::json;
use crate::values::seconds;

/// A SQLite database of log entries.
#[pyclass(name = "LogDatabase", module = "litehouse._litehouse", frozen)]
#[derive(Debug)]
pub(crate) struct PyLogDatabase {
    logs: LogDatabase,
}

fn level(name: &str) -> PyResult<LogLevel> {
    match name.to_ascii_uppercase().as_str() {
        "CRITICAL" | "FATAL" | "ERROR" => Ok(LogLevel::Error),
        "WARNING" | "WARN" => Ok(LogLevel::Warn),
        "INFO" => Ok(LogLevel::Info),
        "DEBUG" => Ok(LogLevel::Debug),
        "TRACE" | "NOTSET" => Ok(LogLevel::Trace),
        other => Err(to_py_err(litehouse::Error::Config {
            message: format!(
                "unknown log level {other:?}: use ERROR, WARNING, INFO, DEBUG or TRACE"
            ),
        })),
    }
}

/// The settings `LogDatabase(...)` and `LogDatabase.memory(...)` share.
fn log_config(
    retention: Option<f64>,
    channel_capacity: usize,
    batch_size: usize,
    flush_interval: f64,
) -> PyResult<LogConfig> {
    Ok(LogConfig {
        retention: retention
            .map(|keep| seconds(keep, "retention"))
            .transpose()?,
        channel_capacity,
        batch_size,
        flush_interval: seconds(flush_interval, "flush_interval")?,
        ..LogConfig::default()
    })
}

#[pymethods]
impl PyLogDatabase {
    /// Opens (creating if needed) the log database at `path`; `retention` in seconds (None
    /// keeps everything).
    #[new]
    #[pyo3(signature = (path, *, retention = Some(7.0 * 86400.0), channel_capacity = 8192,
                        batch_size = 512, flush_interval = 0.5))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        retention: Option<f64>,
        channel_capacity: usize,
        batch_size: usize,
        flush_interval: f64,
    ) -> PyResult<PyLogDatabase> {
        let config = log_config(retention, channel_capacity, batch_size, flush_interval)?;
        let logs = py.detach(|| LogDatabase::open(path, config)).py_result()?;
        Ok(PyLogDatabase { logs })
    }

    /// Opens the in-memory log database `name` (gone when the last handle closes).
    #[staticmethod]
    #[pyo3(signature = (name, *, retention = Some(7.0 * 86400.0), channel_capacity = 8192,
                        batch_size = 512, flush_interval = 0.5))]
    fn memory(
        py: Python<'_>,
        name: &str,
        retention: Option<f64>,
        channel_capacity: usize,
        batch_size: usize,
        flush_interval: f64,
    ) -> PyResult<PyLogDatabase> {
        let config = log_config(retention, channel_capacity, batch_size, flush_interval)?;
        let logs = py
            .detach(|| LogDatabase::open_memory(name, config))
            .py_result()?;
        Ok(PyLogDatabase { logs })
    }

    /// Queues one entry; never waits. Returns False when it was dropped (queue full or shut
    /// down; counted in `stats()["dropped"]`).
    #[pyo3(signature = (level_name, target, message, fields = None))]
    fn log(
        &self,
        level_name: &str,
        target: &str,
        message: &str,
        fields: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let fields = json::object_from_python(fields)?;
        Ok(self
            .logs
            .try_log(level(level_name)?, target, message, fields))
    }

    /// Writes everything queued now; returns how many entries were written.
    fn flush(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.logs.blocking_flush()).py_result()
    }

    /// Applies retention now; returns how many entries were deleted.
    fn purge(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.logs.blocking_purge()).py_result()
    }

    /// Writes what is queued and stops (within about one busy budget, even under a foreign
    /// lock); raises `UnwrittenError` with the count of entries it could not write.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.logs.blocking_shutdown()).py_result()
    }

    /// Entries, newest first: at least `min_level`, `target_prefix`, `since` (Unix seconds),
    /// text `contains`, at most `limit`.
    #[expect(
        clippy::too_many_arguments,
        reason = "Python keyword arguments, one per filter"
    )]
    #[pyo3(signature = (*, min_level = None, target_prefix = None, since = None, contains = None,
                        limit = 100, oldest_first = false))]
    fn query(
        &self,
        py: Python<'_>,
        min_level: Option<&str>,
        target_prefix: Option<String>,
        since: Option<f64>,
        contains: Option<String>,
        limit: usize,
        oldest_first: bool,
    ) -> PyResult<Py<PyAny>> {
        let since = since
            .filter(|since| since.is_finite() && *since >= 0.0)
            .map(|since| SystemTime::UNIX_EPOCH + Duration::from_secs_f64(since));
        let query = LogQuery {
            min_level: min_level.map(level).transpose()?,
            target_prefix,
            since,
            contains,
            order: if oldest_first {
                LogOrder::OldestFirst
            } else {
                LogOrder::NewestFirst
            },
            limit,
            ..LogQuery::default()
        };
        let entries = py.detach(|| self.logs.blocking_query(&query)).py_result()?;
        json::to_python(py, &entries)
    }

    /// Counters (logged, dropped, pending, batches, write_errors, purged) and the entries held.
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let stats = py.detach(|| self.logs.blocking_stats()).py_result()?;
        json::to_python(py, &stats)
    }
}
