//! The statement runner shared by both engines, and its SQLite implementation.
//!
//! The store's logic (writes, cascades, queries) is written once as `async fn`s over
//! [`Conn`]. On PostgreSQL they await the network. On SQLite they run inside a litehouse
//! transaction closure on the writer thread (or a reader), where every [`Conn`] call finishes
//! at once, so [`run_ready`] polls the future a single time.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use litehouse::rusqlite::{self, Connection};

use crate::document::{Document, DocumentText};
use crate::error::{Error, Result};
use crate::sql::{Dialect, Sql};

/// Runs statements inside one transaction.
pub(crate) trait Conn {
    /// The dialect statements must be written in.
    fn dialect(&self) -> &Dialect;
    /// Rows of [`Dialect::document_columns`].
    async fn documents(&self, sql: &Sql) -> Result<Vec<Document>>;
    /// Rows of [`Dialect::document_columns`], the bodies left as text.
    async fn document_texts(&self, sql: &Sql) -> Result<Vec<DocumentText>>;
    /// Rows whose columns are all text (or NULL).
    async fn texts(&self, sql: &Sql) -> Result<Vec<Vec<Option<String>>>>;
    /// The first column of the first row as text; `None` when there is no row or it is NULL.
    async fn text(&self, sql: &Sql) -> Result<Option<String>> {
        let rows = self.texts(sql).await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next())
            .flatten())
    }
    /// The single integer of a `count(*)`.
    async fn count(&self, sql: &Sql) -> Result<i64>;
    /// A statement without rows; returns the changed row count.
    async fn execute(&self, sql: &Sql) -> Result<u64>;
    /// The engine's query plan, one line per row.
    async fn plan(&self, sql: &Sql) -> Result<Vec<String>>;
    /// The origin recorded on this transaction's changes ([`crate::Tx::set_origin`]).
    fn origin(&self) -> Option<&str> {
        None
    }
    /// Whether changes are appended to the log ([`crate::StoreConfig::record_changes`]).
    fn record_changes(&self) -> bool {
        true
    }
    /// PostgreSQL: notes the id of this transaction, which appended changes to the log.
    fn note_xid(&self, _xid: u64) {}
    /// PostgreSQL: the id [`Conn::note_xid`] noted (0: this transaction recorded no change).
    fn noted_xid(&self) -> u64 {
        0
    }
}

/// Polls a future that never waits (the SQLite [`Conn`]) to completion.
pub(crate) fn run_ready<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => result,
        // Unreachable unless a `Conn` for SQLite starts awaiting something real.
        Poll::Pending => Err(Error::corrupt("a SQLite operation tried to wait")),
    }
}

/// A SQLite connection inside a litehouse transaction or read.
#[derive(Debug)]
pub(crate) struct SqliteConn<'c> {
    conn: &'c Connection,
    dialect: Dialect,
    record_changes: bool,
}

impl<'c> SqliteConn<'c> {
    pub(crate) fn new(conn: &'c Connection, dialect: Dialect) -> SqliteConn<'c> {
        SqliteConn {
            conn,
            dialect,
            record_changes: true,
        }
    }

    /// This connection with [`crate::StoreConfig::record_changes`] applied.
    pub(crate) fn recording(mut self, record_changes: bool) -> SqliteConn<'c> {
        self.record_changes = record_changes;
        self
    }

    fn query<T>(
        &self,
        sql: &Sql,
        map: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let statement = self.conn.prepare_cached(&sql.text)?;
        Self::rows(statement, sql, map)
    }

    fn rows<T>(
        mut statement: impl std::ops::DerefMut<Target = rusqlite::Statement<'c>>,
        sql: &Sql,
        mut map: impl FnMut(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut rows = statement.query(rusqlite::params_from_iter(&sql.params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    }
}

impl Conn for SqliteConn<'_> {
    fn record_changes(&self) -> bool {
        self.record_changes
    }
    fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    async fn documents(&self, sql: &Sql) -> Result<Vec<Document>> {
        self.query(sql, |row| {
            let doc: String = row.get(1)?;
            Document::from_row(row.get(0)?, &doc, row.get(2)?, row.get(3)?, row.get(4)?)
        })
    }

    async fn document_texts(&self, sql: &Sql) -> Result<Vec<DocumentText>> {
        self.query(sql, |row| {
            Ok(DocumentText {
                id: row.get(0)?,
                doc: row.get(1)?,
                created_at: row.get(2)?,
                updated_at: row.get(3)?,
                version: row.get(4)?,
                as_written: true,
            })
        })
    }

    async fn texts(&self, sql: &Sql) -> Result<Vec<Vec<Option<String>>>> {
        self.query(sql, |row| {
            let width = row.as_ref().column_count();
            (0..width)
                .map(|index| Ok(row.get::<_, Option<String>>(index)?))
                .collect()
        })
    }

    async fn count(&self, sql: &Sql) -> Result<i64> {
        let counts = self.query(sql, |row| Ok(row.get::<_, i64>(0)?))?;
        counts
            .first()
            .copied()
            .ok_or_else(|| Error::corrupt("count returned no row"))
    }

    async fn execute(&self, sql: &Sql) -> Result<u64> {
        let mut statement = self.conn.prepare_cached(&sql.text)?;
        Ok(statement.execute(rusqlite::params_from_iter(&sql.params))? as u64)
    }

    async fn plan(&self, sql: &Sql) -> Result<Vec<String>> {
        // Never from the statement cache: an `EXPLAIN` has no schema check of its own, so a
        // cached one would describe the plan of an index dropped since.
        let explain = sql.prefixed("EXPLAIN QUERY PLAN ");
        let statement = Box::new(self.conn.prepare(&explain.text)?);
        Self::rows(statement, &explain, |row| Ok(row.get::<_, String>(3)?))
    }
}
