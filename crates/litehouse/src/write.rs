//! Writes: single statements, one statement with many parameter sets, and closures.

use rusqlite::Connection;

use crate::Database;
use crate::error::Result;
use crate::params::{IntoParams, Params};
use crate::stats::OpKind;

fn execute_on(conn: &Connection, sql: &str, params: &Params) -> Result<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params.bind())?)
}

fn execute_many_on(conn: &Connection, sql: &str, rows: &[Params]) -> Result<usize> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut changes = 0;
    for params in rows {
        changes += statement.execute(params.bind())?;
    }
    Ok(changes)
}

fn collect_rows<P: IntoParams>(rows: impl IntoIterator<Item = P>) -> Result<Vec<Params>> {
    rows.into_iter().map(IntoParams::into_params).collect()
}

impl Database {
    /// Runs one statement on the writer and returns the number of rows it changed, once the
    /// group it joined has committed.
    ///
    /// # Errors
    /// [`Error::Sql`](crate::Error::Sql) for SQL that does not prepare,
    /// [`Error::Parameter`](crate::Error::Parameter) for parameters that do not fit,
    /// [`Error::Constraint`](crate::Error::Constraint), [`Error::Busy`](crate::Error::Busy),
    /// [`Error::Closed`](crate::Error::Closed).
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-execute", litehouse::Config::default())?;
    /// db.blocking_execute("CREATE TABLE t(x INTEGER)", ())?;
    /// let changed = db.blocking_execute("INSERT INTO t VALUES (?1), (?2)", (1, 2))?;
    /// assert_eq!(changed, 2);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_execute(&self, sql: &str, params: impl IntoParams) -> Result<usize> {
        let sql = sql.to_owned();
        let params = params.into_params()?;
        self.blocking_write(OpKind::Execute, move |conn| execute_on(conn, &sql, &params))
    }

    /// Async twin of [`blocking_execute`](Database::blocking_execute).
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// # let db = litehouse::Database::open_memory("doc-execute-async", litehouse::Config::default())?;
    /// db.execute("CREATE TABLE t(x INTEGER)", ()).await?;
    /// assert_eq!(db.execute("INSERT INTO t VALUES (?1)", (7,)).await?, 1);
    /// # Ok::<(), litehouse::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> Result<usize> {
        let sql = sql.to_owned();
        let params = params.into_params()?;
        self.write(OpKind::Execute, move |conn| execute_on(conn, &sql, &params))
            .await
    }

    /// Runs one statement once per parameter set, all in one request: either every row is
    /// written or none is. Returns the total number of changed rows.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-many", litehouse::Config::default())?;
    /// db.blocking_execute("CREATE TABLE t(x INTEGER)", ())?;
    /// let changed = db.blocking_execute_many("INSERT INTO t VALUES (?1)", (0..100).map(|i| (i,)))?;
    /// assert_eq!(changed, 100);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_execute_many<P: IntoParams>(
        &self,
        sql: &str,
        rows: impl IntoIterator<Item = P>,
    ) -> Result<usize> {
        let sql = sql.to_owned();
        let rows = collect_rows(rows)?;
        self.blocking_write(OpKind::ExecuteMany, move |conn| {
            execute_many_on(conn, &sql, &rows)
        })
    }

    /// Async twin of [`blocking_execute_many`](Database::blocking_execute_many).
    pub async fn execute_many<P: IntoParams>(
        &self,
        sql: &str,
        rows: impl IntoIterator<Item = P>,
    ) -> Result<usize> {
        let sql = sql.to_owned();
        let rows = collect_rows(rows)?;
        self.write(OpKind::ExecuteMany, move |conn| {
            execute_many_on(conn, &sql, &rows)
        })
        .await
    }

    /// Runs `work` on the writer thread as one request of the next group: it can read and
    /// write, sees its own writes, and returns a value once the group has committed. If it
    /// returns an error (or panics) everything it did is rolled back and its neighbours in
    /// the group are unaffected.
    ///
    /// Because it runs on the single writer, a read-modify-write here can never hit
    /// SQLITE_BUSY or lose an update. Keep it short: the group waits for it. It must not
    /// issue BEGIN, COMMIT, ROLLBACK, SAVEPOINT or RELEASE (they are refused).
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-txn", litehouse::Config::default())?;
    /// db.blocking_execute("CREATE TABLE counter(n INTEGER)", ())?;
    /// db.blocking_execute("INSERT INTO counter VALUES (0)", ())?;
    /// let n: i64 = db.blocking_transaction(|conn| {
    ///     let n: i64 = conn.query_row("SELECT n FROM counter", [], |row| row.get(0))?;
    ///     conn.execute("UPDATE counter SET n = ?1", [n + 1])?;
    ///     Ok(n + 1)
    /// })?;
    /// assert_eq!(n, 1);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.blocking_write(OpKind::Transaction, work)
    }

    /// Async twin of [`blocking_transaction`](Database::blocking_transaction).
    pub async fn transaction<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write(OpKind::Transaction, work).await
    }
}
