//! `litehouse.WriteBuffer`: coalescing upserts for background workers, flushed in batches.

use litehouse::{BufferConfig, Row, WriteBuffer};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::database::PyDatabase;
use crate::errors::IntoPyResult;
use crate::json;
use crate::values::seconds;
use crate::values::to_value;

/// A write buffer over a `litehouse.Database`.
#[pyclass(name = "WriteBuffer", module = "litehouse._litehouse", frozen)]
#[derive(Debug)]
pub(crate) struct PyWriteBuffer {
    buffer: WriteBuffer,
}

fn row(values: &Bound<'_, PyDict>) -> PyResult<Row> {
    values
        .iter()
        .map(|(name, value)| Ok((name.extract::<String>()?, to_value(&value)?)))
        .collect()
}

#[pymethods]
impl PyWriteBuffer {
    /// Starts a buffer that flushes to `db` every `flush_interval` seconds or at
    /// `flush_batch_size` pending rows; writers wait while `max_buffer_size` rows are held.
    #[new]
    #[pyo3(signature = (db, *, max_buffer_size = 10_000, flush_interval = 1.0,
                        flush_batch_size = 1_000, table_priorities = None, stop_timeout = 30.0))]
    fn new(
        db: &PyDatabase,
        max_buffer_size: usize,
        flush_interval: f64,
        flush_batch_size: usize,
        table_priorities: Option<Vec<String>>,
        stop_timeout: f64,
    ) -> PyResult<PyWriteBuffer> {
        let config = BufferConfig {
            max_buffer_size,
            flush_interval: seconds(flush_interval, "flush_interval")?,
            flush_batch_size,
            table_priorities: table_priorities.unwrap_or_default(),
            stop_timeout: seconds(stop_timeout, "stop_timeout")?,
            ..BufferConfig::default()
        };
        let buffer = WriteBuffer::start(db.database().clone(), config).py_result()?;
        Ok(PyWriteBuffer { buffer })
    }

    /// Buffers an insert-or-update of `values` keyed by `key_columns`; waits (without the
    /// GIL) while the buffer is full.
    fn upsert(
        &self,
        py: Python<'_>,
        table: &str,
        values: &Bound<'_, PyDict>,
        key_columns: Vec<String>,
    ) -> PyResult<()> {
        let row = row(values)?;
        let keys: Vec<&str> = key_columns.iter().map(String::as_str).collect();
        py.detach(|| self.buffer.blocking_upsert(table, row, &keys))
            .py_result()
    }

    /// Buffers an update of the existing row keyed by `key_columns` (nothing if it is absent).
    fn update(
        &self,
        py: Python<'_>,
        table: &str,
        values: &Bound<'_, PyDict>,
        key_columns: Vec<String>,
    ) -> PyResult<()> {
        let row = row(values)?;
        let keys: Vec<&str> = key_columns.iter().map(String::as_str).collect();
        py.detach(|| self.buffer.blocking_update(table, row, &keys))
            .py_result()
    }

    /// Buffers a delete of the row whose key is `key` (a dict of key columns).
    fn delete(&self, py: Python<'_>, table: &str, key: &Bound<'_, PyDict>) -> PyResult<()> {
        let key = row(key)?;
        py.detach(|| self.buffer.blocking_delete(table, key))
            .py_result()
    }

    /// Like `upsert`, but raises `BufferFullError` instead of waiting.
    fn try_upsert(
        &self,
        table: &str,
        values: &Bound<'_, PyDict>,
        key_columns: Vec<String>,
    ) -> PyResult<()> {
        let keys: Vec<&str> = key_columns.iter().map(String::as_str).collect();
        self.buffer
            .try_upsert(table, row(values)?, &keys)
            .py_result()
    }

    /// Flushes everything pending now; returns how many rows were written.
    fn force_flush(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.buffer.blocking_force_flush()).py_result()
    }

    /// Refuses new writes, flushes everything, stops; returns the rows written. Raises
    /// `RejectedError` if the database refused rows (kept in `_litehouse_rejected`).
    fn stop(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.buffer.blocking_stop()).py_result()
    }

    /// Counters: pending, flushed, coalesced, failed_flushes, rejected, last_error, ...
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        json::to_python(py, &self.buffer.stats())
    }

    /// Rows the database refused for good, oldest first, with their errors.
    #[pyo3(signature = (limit = 100))]
    fn rejected(&self, py: Python<'_>, limit: usize) -> PyResult<Py<PyAny>> {
        let rows = py
            .detach(|| self.buffer.blocking_rejected(limit))
            .py_result()?;
        json::to_python(py, &rows)
    }

    /// Puts rejected rows back into the buffer (as they are in the table now) and removes
    /// them from the table; returns how many.
    fn retry_rejected(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<usize> {
        py.detach(|| self.buffer.blocking_retry_rejected(&ids))
            .py_result()
    }

    /// Deletes rejected rows from the table; returns how many were there.
    fn discard_rejected(&self, py: Python<'_>, ids: Vec<i64>) -> PyResult<usize> {
        py.detach(|| self.buffer.blocking_discard_rejected(&ids))
            .py_result()
    }
}
