//! `litehouse.Database`: the engine for Python threads, with `*_async` twins for asyncio.
//!
//! Every call converts its arguments while it holds the GIL, then releases the GIL
//! (`Python::detach`) for the whole wait on the writer or a reader, so other Python threads
//! run meanwhile. Async twins hand the engine's own futures to a tokio runtime and return an
//! awaitable; the event loop never waits.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Duration;

use litehouse::rusqlite::Connection;
use litehouse::{BlockingWait, Config, Database, Error, Profile, Value};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{IntoPyResult, to_py_err};
use crate::transaction;
use crate::values::{Params, Rows};

thread_local! {
    /// The databases this Python thread is inside a `transaction` of: a call to the same
    /// database from inside would wait for the writer that waits for this thread.
    static IN_TRANSACTION: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// A SQLite database with one writer thread (group commit) and a pool of readers.
///
/// Many Python threads (and asyncio tasks, through the `*_async` methods or
/// `litehouse.AsyncDatabase`) can write at once without ever seeing "database is locked".
#[pyclass(name = "Database", module = "litehouse._litehouse", frozen)]
#[derive(Debug)]
pub(crate) struct PyDatabase {
    db: Database,
}

/// Settings shared by `Database(...)` and `Database.memory(...)`.
fn config(
    profile: &str,
    readers: Option<usize>,
    busy_timeout: Option<f64>,
    max_group_size: Option<usize>,
    queue_capacity: Option<usize>,
    pragmas: Option<Vec<(String, String)>>,
) -> PyResult<Config> {
    let profile = match profile.to_ascii_lowercase().as_str() {
        "balanced" => Profile::Balanced,
        "durable" => Profile::Durable,
        other => {
            return Err(to_py_err(Error::Config {
                message: format!("unknown profile {other:?}: use \"balanced\" or \"durable\""),
            }));
        }
    };
    let defaults = Config::default();
    let busy_budget = match busy_timeout {
        Some(seconds) if !(seconds.is_finite() && seconds >= 0.0) => {
            return Err(to_py_err(Error::Config {
                message: format!("busy_timeout must be a number of seconds >= 0, not {seconds}"),
            }));
        }
        Some(seconds) => Duration::from_secs_f64(seconds.min(86_400.0)),
        None => defaults.busy_budget,
    };
    Ok(Config {
        profile,
        readers: readers.unwrap_or(defaults.readers),
        max_group_size: max_group_size.unwrap_or(defaults.max_group_size),
        queue_capacity: queue_capacity.unwrap_or(defaults.queue_capacity),
        busy_budget,
        pragmas: pragmas.unwrap_or_default(),
        // Python threads run one at a time (the GIL), so the CPUs mostly idle while they
        // wait for the writer, under either profile: polling for the answer keeps one awake
        // (8 threads inserting, this machine: Durable about 23k/s sleeping, 30k/s polling;
        // Balanced about 65k/s sleeping, 90k/s polling).
        blocking_wait: BlockingWait::Poll(BlockingWait::DEFAULT_POLL),
        ..defaults
    })
}

impl PyDatabase {
    /// The async read behind `query_async` and its first-row twins: the query runs on a
    /// reader thread, and `shape` picks what of its rows becomes the Python result.
    fn read_async<'py, T>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
        tuples: bool,
        shape: fn(Rows) -> T,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: for<'a> IntoPyObject<'a> + Send + 'static,
    {
        let params = Params::extract(params)?;
        let db = self.db.clone();
        crate::port::awaitable(py, async move {
            let rows = db
                .read(move |conn| query_on(conn, &sql, &params, tuples, true))
                .await
                .py_result()?;
            Ok(shape(rows))
        })
    }

    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Refuses a call from inside this database's own `transaction` function.
    fn check_not_in_transaction(&self) -> PyResult<()> {
        let inside = IN_TRANSACTION.with(|open| open.borrow().contains(&self.id()));
        if inside {
            return Err(to_py_err(Error::Misuse {
                message: "a transaction function called a method of its own database, which \
                          would wait for the writer that waits for this function; use the \
                          connection passed to the function instead"
                    .into(),
            }));
        }
        Ok(())
    }
}

/// Runs a writing statement inside the caller's transaction (named parameters, transactions).
pub(crate) fn execute_on(
    conn: &Connection,
    sql: &str,
    params: &Params,
) -> litehouse::Result<usize> {
    let mut statement = conn.prepare_cached(sql)?;
    params.bind(&mut statement)?;
    Ok(statement.raw_execute()?)
}

/// Runs a statement and collects its rows; `read_only` refuses one that writes.
pub(crate) fn query_on(
    conn: &Connection,
    sql: &str,
    params: &Params,
    as_tuples: bool,
    read_only: bool,
) -> litehouse::Result<Rows> {
    let mut statement = conn.prepare_cached(sql)?;
    if read_only && !statement.readonly() {
        return Err(Error::ReadOnly {
            message: format!("`{sql}` writes to the database"),
        });
    }
    params.bind(&mut statement)?;
    Rows::collect(&mut statement, as_tuples)
}

async fn write(db: Database, sql: String, params: Params) -> litehouse::Result<usize> {
    match params {
        Params::Positional(values) => db.execute(&sql, values).await,
        named => {
            db.transaction(move |conn| execute_on(conn, &sql, &named))
                .await
        }
    }
}

fn blocking_write(db: &Database, sql: String, params: Params) -> litehouse::Result<usize> {
    match params {
        Params::Positional(values) => db.blocking_execute(&sql, values),
        named => db.blocking_transaction(move |conn| execute_on(conn, &sql, &named)),
    }
}

fn many_params(seq_of_params: &Bound<'_, PyAny>) -> PyResult<Vec<Params>> {
    seq_of_params
        .try_iter()?
        .map(|params| Params::extract(Some(&params?)))
        .collect()
}

async fn write_many(db: Database, sql: String, all: Vec<Params>) -> litehouse::Result<usize> {
    if all
        .iter()
        .all(|params| matches!(params, Params::Positional(_)))
    {
        let values = all.into_iter().map(|params| match params {
            Params::Positional(values) => values,
            Params::Named(_) => Vec::new(),
        });
        return db
            .execute_many(&sql, values.collect::<Vec<Vec<Value>>>())
            .await;
    }
    db.transaction(move |conn| many_on(conn, &sql, &all)).await
}

fn many_on(conn: &Connection, sql: &str, all: &[Params]) -> litehouse::Result<usize> {
    let mut changed = 0;
    for params in all {
        changed += execute_on(conn, sql, params)?;
    }
    Ok(changed)
}

fn script_to_python(py: Python<'_>, results: &[litehouse::StatementResult]) -> PyResult<Py<PyAny>> {
    crate::json::to_python(py, &results)
}

pub(crate) fn first_row(py: Python<'_>, rows: &Rows) -> PyResult<Option<Py<PyAny>>> {
    rows.rows
        .first()
        .map(|values| Ok(rows.row_to_python(py, values)?.unbind()))
        .transpose()
}

/// A query's first row, for the async twins (converted once the GIL is held again).
struct FirstRow {
    rows: Rows,
    required: bool,
}

impl<'py> IntoPyObject<'py> for FirstRow {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match first_row(py, &self.rows)? {
            Some(row) => Ok(row.into_bound(py)),
            None if self.required => Err(to_py_err(Error::NoRows)),
            None => Ok(py.None().into_bound(py)),
        }
    }
}

#[pymethods]
impl PyDatabase {
    /// Opens (creating if needed) the database file at `path`.
    #[new]
    #[expect(
        clippy::too_many_arguments,
        reason = "Python keyword arguments, one per setting"
    )]
    #[pyo3(signature = (path, *, profile = "balanced", readers = None, busy_timeout = None,
                        max_group_size = None, queue_capacity = None, pragmas = None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        profile: &str,
        readers: Option<usize>,
        busy_timeout: Option<f64>,
        max_group_size: Option<usize>,
        queue_capacity: Option<usize>,
        pragmas: Option<Vec<(String, String)>>,
    ) -> PyResult<PyDatabase> {
        let config = config(
            profile,
            readers,
            busy_timeout,
            max_group_size,
            queue_capacity,
            pragmas,
        )?;
        let db = py.detach(|| Database::open(path, config)).py_result()?;
        Ok(PyDatabase { db })
    }

    /// Opens the in-memory database `name`, shared by every `Database.memory(name)` of this
    /// process.
    #[staticmethod]
    #[expect(
        clippy::too_many_arguments,
        reason = "Python keyword arguments, one per setting"
    )]
    #[pyo3(signature = (name, *, profile = "balanced", readers = None, busy_timeout = None,
                        max_group_size = None, queue_capacity = None, pragmas = None))]
    fn memory(
        py: Python<'_>,
        name: &str,
        profile: &str,
        readers: Option<usize>,
        busy_timeout: Option<f64>,
        max_group_size: Option<usize>,
        queue_capacity: Option<usize>,
        pragmas: Option<Vec<(String, String)>>,
    ) -> PyResult<PyDatabase> {
        let config = config(
            profile,
            readers,
            busy_timeout,
            max_group_size,
            queue_capacity,
            pragmas,
        )?;
        let db = py
            .detach(|| Database::open_memory(name, config))
            .py_result()?;
        Ok(PyDatabase { db })
    }

    /// Where the database lives: a file path, or `memory:NAME`.
    #[getter]
    fn location(&self) -> String {
        self.db.location().to_string()
    }

    /// True once `close()` has run.
    #[getter]
    fn closed(&self) -> bool {
        self.db.is_closed()
    }

    /// Runs one writing statement; returns the rows it changed.
    #[pyo3(signature = (sql, params = None))]
    fn execute(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        self.check_not_in_transaction()?;
        let params = Params::extract(params)?;
        py.detach(|| blocking_write(&self.db, sql, params))
            .py_result()
    }

    /// Runs one statement once per parameter set, all in one transaction.
    fn execute_many(
        &self,
        py: Python<'_>,
        sql: String,
        seq_of_params: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        self.check_not_in_transaction()?;
        let all = many_params(seq_of_params)?;
        let runtime = pyo3_async_runtimes::tokio::get_runtime();
        py.detach(|| runtime.block_on(write_many(self.db.clone(), sql, all)))
            .py_result()
    }

    /// Runs several statements separated by `;` in one transaction; returns one dict per
    /// statement (`sql`, `changes`, `rows`).
    fn script(&self, py: Python<'_>, sql: String) -> PyResult<Py<PyAny>> {
        self.check_not_in_transaction()?;
        let results = py.detach(|| self.db.blocking_script(&sql)).py_result()?;
        script_to_python(py, &results)
    }

    /// Runs a read-only query on a reader; returns every row as a dict (or a tuple).
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        tuples: bool,
    ) -> PyResult<Rows> {
        self.check_not_in_transaction()?;
        let params = Params::extract(params)?;
        py.detach(|| {
            self.db
                .blocking_read(|conn| query_on(conn, &sql, &params, tuples, true))
        })
        .py_result()
    }

    /// The first row of a read-only query; raises `NoRowsError` when there is none.
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query_row(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        tuples: bool,
    ) -> PyResult<Py<PyAny>> {
        let rows = self.query(py, sql, params, tuples)?;
        first_row(py, &rows)?.ok_or_else(|| to_py_err(Error::NoRows))
    }

    /// The first row of a read-only query, or None.
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query_optional(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        tuples: bool,
    ) -> PyResult<Option<Py<PyAny>>> {
        let rows = self.query(py, sql, params, tuples)?;
        first_row(py, &rows)
    }

    /// Runs `function(conn)` inside one transaction on the writer and returns its result.
    ///
    /// Every statement of `conn` runs on the writer, serialized with all other writes, so a
    /// read-modify-write never sees "database is locked" and never loses an update. If the
    /// function raises, everything it did is rolled back and the exception propagates.
    fn transaction(&self, py: Python<'_>, function: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.check_not_in_transaction()?;
        let id = self.id();
        IN_TRANSACTION.with(|open| open.borrow_mut().push(id));
        let result = transaction::run(py, &self.db, function);
        IN_TRANSACTION.with(|open| {
            let mut open = open.borrow_mut();
            if let Some(at) = open.iter().rposition(|entry| *entry == id) {
                open.remove(at);
            }
        });
        result
    }

    /// Counters, latencies and queue depth, as a dict.
    fn stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::json::to_python(py, &self.db.stats())
    }

    /// Sets a pragma on the writing connection, outside any transaction (so `synchronous`
    /// and the like can change); returns what the pragma reports afterwards, if anything.
    fn pragma_update(
        &self,
        py: Python<'_>,
        name: String,
        value: String,
    ) -> PyResult<Option<String>> {
        self.check_not_in_transaction()?;
        py.detach(|| self.db.blocking_pragma_update(&name, &value))
            .py_result()
    }

    /// Rebuilds the file to reclaim free pages (writes wait meanwhile).
    fn vacuum(&self, py: Python<'_>) -> PyResult<()> {
        self.check_not_in_transaction()?;
        py.detach(|| self.db.blocking_vacuum()).py_result()
    }

    /// Gathers statistics for the query planner.
    fn analyze(&self, py: Python<'_>) -> PyResult<()> {
        self.check_not_in_transaction()?;
        py.detach(|| self.db.blocking_analyze()).py_result()
    }

    /// Runs `PRAGMA optimize`.
    fn optimize(&self, py: Python<'_>) -> PyResult<()> {
        self.check_not_in_transaction()?;
        py.detach(|| self.db.blocking_optimize()).py_result()
    }

    /// Copies the WAL into the database file and truncates it; returns a dict with `busy`,
    /// `log_frames` and `checkpointed_frames`.
    fn checkpoint(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.check_not_in_transaction()?;
        let checkpoint = py.detach(|| self.db.blocking_checkpoint()).py_result()?;
        let dict = PyDict::new(py);
        dict.set_item("busy", checkpoint.busy)?;
        dict.set_item("log_frames", checkpoint.log_frames)?;
        dict.set_item("checkpointed_frames", checkpoint.checkpointed_frames)?;
        Ok(dict.into_any().unbind())
    }

    /// `PRAGMA integrity_check` on a reader: the problems found, empty when sound.
    fn integrity_check(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.check_not_in_transaction()?;
        py.detach(|| self.db.blocking_integrity_check()).py_result()
    }

    /// Copies the database to `path` online, calling `progress(pages_done, pages_total)`.
    #[pyo3(signature = (path, progress = None))]
    fn backup(
        &self,
        py: Python<'_>,
        path: PathBuf,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<(u64, u64)> {
        self.check_not_in_transaction()?;
        let mut callback_error: Option<PyErr> = None;
        let done = py
            .detach(|| {
                self.db.blocking_backup(&path, |step| {
                    let Some(progress) = &progress else { return };
                    if callback_error.is_some() {
                        return;
                    }
                    Python::attach(|py| {
                        if let Err(err) = progress.call1(py, (step.pages_done, step.pages_total)) {
                            callback_error = Some(err);
                        }
                    });
                })
            })
            .py_result()?;
        if let Some(err) = callback_error {
            return Err(err);
        }
        Ok((done.pages_done, done.pages_total))
    }

    /// Finishes every write queued so far and closes the database.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.check_not_in_transaction()?;
        py.detach(|| self.db.blocking_close()).py_result()
    }

    fn __enter__(slf: Py<PyDatabase>) -> Py<PyDatabase> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("<litehouse.Database {}>", self.db.location())
    }

    /// Async twin of `execute`.
    #[pyo3(signature = (sql, params = None))]
    fn execute_async<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let params = Params::extract(params)?;
        let db = self.db.clone();
        crate::port::awaitable(py, async move { write(db, sql, params).await.py_result() })
    }

    /// Async twin of `execute_many`.
    fn execute_many_async<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        seq_of_params: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let all = many_params(seq_of_params)?;
        let db = self.db.clone();
        crate::port::awaitable(
            py,
            async move { write_many(db, sql, all).await.py_result() },
        )
    }

    /// Async twin of `query`.
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query_async<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
        tuples: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.read_async(py, sql, params, tuples, |rows| rows)
    }

    /// Async twin of `query_row`.
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query_row_async<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
        tuples: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.read_async(py, sql, params, tuples, |rows| FirstRow {
            rows,
            required: true,
        })
    }

    /// Async twin of `query_optional`.
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query_optional_async<'py>(
        &self,
        py: Python<'py>,
        sql: String,
        params: Option<&Bound<'py, PyAny>>,
        tuples: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.read_async(py, sql, params, tuples, |rows| FirstRow {
            rows,
            required: false,
        })
    }

    /// Async twin of `close`.
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let db = self.db.clone();
        crate::port::awaitable(py, async move { db.close().await.py_result() })
    }
}
