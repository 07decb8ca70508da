//! `Database.transaction(function)`: a Python function whose statements all run on the writer,
//! inside one transaction.
//!
//! The function itself runs on the calling Python thread (the writer thread never takes the
//! GIL); the writer runs a closure that serves the function's statements over a channel until
//! the function returns (commit) or raises (rollback). So a read-modify-write is serialized
//! with every other write and never sees "database is locked".

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use litehouse::rusqlite::Connection;
use litehouse::{Database, Error};
use pyo3::prelude::*;

use crate::database::{execute_on, first_row, query_on};
use crate::errors::{IntoPyResult, to_py_err};
use crate::values::{Params, Rows};

/// What the transaction function asks the writer to do.
enum Command {
    Execute {
        sql: String,
        params: Params,
        reply: SyncSender<litehouse::Result<usize>>,
    },
    Query {
        sql: String,
        params: Params,
        tuples: bool,
        reply: SyncSender<litehouse::Result<Rows>>,
    },
    Finish {
        commit: bool,
    },
}

/// The function raised: the transaction is rolled back with this (never shown to anyone; the
/// function's own exception propagates instead).
#[derive(Debug)]
struct RolledBack;

impl std::fmt::Display for RolledBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the transaction function raised; rolled back")
    }
}

impl std::error::Error for RolledBack {}

/// Runs on the writer: serves the function's statements until it finishes.
fn serve(conn: &Connection, commands: &Receiver<Command>) -> litehouse::Result<()> {
    loop {
        match commands.recv() {
            Ok(Command::Execute { sql, params, reply }) => {
                let _ = reply.send(execute_on(conn, &sql, &params));
            }
            Ok(Command::Query {
                sql,
                params,
                tuples,
                reply,
            }) => {
                let _ = reply.send(query_on(conn, &sql, &params, tuples, false));
            }
            Ok(Command::Finish { commit: true }) => return Ok(()),
            Ok(Command::Finish { commit: false }) | Err(_) => return Err(Error::user(RolledBack)),
        }
    }
}

/// The connection a transaction function gets: `execute`, `execute_many`, `query`,
/// `query_row`, `query_optional`, all inside the transaction.
#[pyclass(name = "Transaction", module = "litehouse._litehouse", frozen)]
#[derive(Debug)]
pub(crate) struct Transaction {
    commands: Mutex<Option<SyncSender<Command>>>,
}

impl Transaction {
    fn sender(&self) -> PyResult<SyncSender<Command>> {
        self.commands
            .lock()
            .map_err(|_| to_py_err(Error::Closed))?
            .clone()
            .ok_or_else(|| {
                to_py_err(Error::Misuse {
                    message: "this transaction has ended; use the connection only inside the \
                              function it was passed to"
                        .into(),
                })
            })
    }

    fn ask<T: Send>(
        &self,
        py: Python<'_>,
        make: impl FnOnce(SyncSender<litehouse::Result<T>>) -> Command + Send,
    ) -> PyResult<T> {
        let sender = self.sender()?;
        py.detach(|| {
            let (reply, answer) = sync_channel(1);
            sender.send(make(reply)).map_err(|_| Error::Closed)?;
            answer.recv().map_err(|_| Error::Closed)?
        })
        .py_result()
    }

    fn finish(&self, commit: bool) {
        let sender = self
            .commands
            .lock()
            .ok()
            .and_then(|mut sender| sender.take());
        if let Some(sender) = sender {
            // The writer may be gone already (the transaction could not begin).
            let _ = sender.send(Command::Finish { commit });
        }
    }
}

#[pymethods]
impl Transaction {
    /// Runs one statement in the transaction; returns the rows it changed.
    #[pyo3(signature = (sql, params = None))]
    fn execute(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let params = Params::extract(params)?;
        self.ask(py, |reply| Command::Execute { sql, params, reply })
    }

    /// Runs one statement per parameter set in the transaction.
    fn execute_many(
        &self,
        py: Python<'_>,
        sql: String,
        seq_of_params: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let mut changed = 0;
        for params in seq_of_params.try_iter()? {
            let params = Params::extract(Some(&params?))?;
            let sql = sql.clone();
            changed += self.ask(py, |reply| Command::Execute { sql, params, reply })?;
        }
        Ok(changed)
    }

    /// Runs a query in the transaction (it sees the transaction's own writes).
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        tuples: bool,
    ) -> PyResult<Rows> {
        let params = Params::extract(params)?;
        self.ask(py, |reply| Command::Query {
            sql,
            params,
            tuples,
            reply,
        })
    }

    /// The first row of a query; raises `NoRowsError` when there is none.
    #[pyo3(signature = (sql, params = None, *, tuples = false))]
    fn query_row(
        &self,
        py: Python<'_>,
        sql: String,
        params: Option<&Bound<'_, PyAny>>,
        tuples: bool,
    ) -> PyResult<Py<PyAny>> {
        self.query_optional(py, sql, params, tuples)?
            .ok_or_else(|| to_py_err(Error::NoRows))
    }

    /// The first row of a query, or None.
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
}

/// Runs `function(conn)` with every statement of `conn` on the writer, in one transaction.
pub(crate) fn run(
    py: Python<'_>,
    db: &Database,
    function: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    // A rendezvous channel: the function waits for the writer to take each statement.
    let (commands, receiver) = sync_channel::<Command>(0);
    let runtime = pyo3_async_runtimes::tokio::get_runtime();
    let db = db.clone();
    let outcome =
        runtime.spawn(async move { db.transaction(move |conn| serve(conn, &receiver)).await });
    let conn = Bound::new(
        py,
        Transaction {
            commands: Mutex::new(Some(commands)),
        },
    )?;
    let result = function.call1((&conn,));
    conn.get().finish(result.is_ok());
    let outcome = py.detach(|| runtime.block_on(outcome));
    match (result, outcome) {
        (Ok(value), Ok(Ok(()))) => Ok(value.unbind()),
        // The engine failed the transaction (COMMIT failed, busy, closed): that is the cause,
        // even if the function raised because of it.
        (_, Ok(Err(err))) if !is_rolled_back(&err) => Err(to_py_err(err)),
        (Err(raised), _) => Err(raised),
        (Ok(_), Ok(Err(err))) => Err(to_py_err(err)),
        (Ok(_), Err(join)) => Err(to_py_err(Error::Panic {
            message: join.to_string(),
        })),
    }
}

fn is_rolled_back(err: &Error) -> bool {
    matches!(err, Error::User(inner) if inner.downcast_ref::<RolledBack>().is_some())
}
