//! The PostgreSQL implementation of [`Conn`], over a deadpool-postgres transaction.

use tokio_postgres::types::{ToSql, Type};

use crate::conn::Conn;
use crate::document::{Document, DocumentText};
use crate::error::{Error, Result};
use crate::sql::{Dialect, Param, Sql};

/// A PostgreSQL transaction.
pub(crate) struct PgConn<'a, 't> {
    transaction: &'a deadpool_postgres::Transaction<'t>,
    dialect: Dialect,
    record_changes: bool,
    /// See [`Conn::note_xid`].
    xid: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for PgConn<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

/// Owned forms of the parameters, matching the casts [`Sql::bind`] writes.
enum Bound {
    Text(String),
    Int(i64),
    Bool(bool),
}

fn bound(params: &[Param]) -> Vec<Bound> {
    params
        .iter()
        .map(|param| match param {
            Param::Text(text) | Param::Json(text) => Bound::Text(text.clone()),
            Param::Num(number) => Bound::Text(number.to_string()),
            Param::Int(int) => Bound::Int(*int),
            Param::Bool(flag) => Bound::Bool(*flag),
        })
        .collect()
}

/// Parameters with their types declared, so that a statement is parsed, bound and run in
/// one round trip (`query_typed`) instead of a prepare round trip first. The types match the
/// casts every placeholder carries.
fn typed(bound: &[Bound]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    bound
        .iter()
        .map(|value| -> (&(dyn ToSql + Sync), Type) {
            match value {
                Bound::Text(text) => (text, Type::TEXT),
                Bound::Int(int) => (int, Type::INT8),
                Bound::Bool(flag) => (flag, Type::BOOL),
            }
        })
        .collect()
}

impl<'a, 't> PgConn<'a, 't> {
    pub(crate) fn new(
        transaction: &'a deadpool_postgres::Transaction<'t>,
        dialect: Dialect,
    ) -> PgConn<'a, 't> {
        PgConn {
            transaction,
            dialect,
            record_changes: true,
            xid: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn rows(&self, sql: &Sql) -> Result<Vec<tokio_postgres::Row>> {
        let values = bound(&sql.params);
        let typed = typed(&values);
        if sql.kept {
            let (statement, params) = self.kept(sql, &typed).await?;
            return Ok(self.transaction.query(&statement, &params).await?);
        }
        Ok(self
            .transaction
            .query_typed(sql.text.as_str(), &typed)
            .await?)
    }

    /// The connection's prepared statement for `sql` (see [`Sql::keep_prepared`]) with the
    /// values to run it with: a round trip the first time this connection runs the text,
    /// none after.
    async fn kept<'v>(
        &self,
        sql: &Sql,
        typed: &[(&'v (dyn ToSql + Sync), Type)],
    ) -> Result<(tokio_postgres::Statement, Vec<&'v (dyn ToSql + Sync)>)> {
        let types: Vec<Type> = typed.iter().map(|(_, ty)| ty.clone()).collect();
        let statement = self
            .transaction
            .prepare_typed_cached(&sql.text, &types)
            .await?;
        Ok((statement, typed.iter().map(|(value, _)| *value).collect()))
    }
}

impl<'a, 't> PgConn<'a, 't> {
    /// This connection with [`crate::StoreConfig::record_changes`] applied.
    pub(crate) fn recording(mut self, record_changes: bool) -> PgConn<'a, 't> {
        self.record_changes = record_changes;
        self
    }
}

impl Conn for PgConn<'_, '_> {
    fn dialect(&self) -> &Dialect {
        &self.dialect
    }

    fn record_changes(&self) -> bool {
        self.record_changes
    }

    fn note_xid(&self, xid: u64) {
        self.xid.store(xid, std::sync::atomic::Ordering::Relaxed);
    }

    fn noted_xid(&self) -> u64 {
        self.xid.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn documents(&self, sql: &Sql) -> Result<Vec<Document>> {
        self.rows(sql)
            .await?
            .iter()
            .map(|row| {
                let doc: String = row.try_get(1)?;
                Document::from_row(
                    row.try_get(0)?,
                    &doc,
                    row.try_get(2)?,
                    row.try_get(3)?,
                    row.try_get(4)?,
                )
            })
            .collect()
    }

    async fn document_texts(&self, sql: &Sql) -> Result<Vec<DocumentText>> {
        self.rows(sql)
            .await?
            .iter()
            .map(|row| {
                Ok(DocumentText {
                    id: row.try_get(0)?,
                    doc: row.try_get(1)?,
                    created_at: row.try_get(2)?,
                    updated_at: row.try_get(3)?,
                    version: row.try_get(4)?,
                    as_written: false,
                })
            })
            .collect()
    }

    async fn texts(&self, sql: &Sql) -> Result<Vec<Vec<Option<String>>>> {
        self.rows(sql)
            .await?
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|index| Ok(row.try_get::<_, Option<String>>(index)?))
                    .collect()
            })
            .collect()
    }

    async fn count(&self, sql: &Sql) -> Result<i64> {
        let rows = self.rows(sql).await?;
        let row = rows
            .first()
            .ok_or_else(|| Error::corrupt("count returned no row"))?;
        Ok(row.try_get(0)?)
    }

    async fn execute(&self, sql: &Sql) -> Result<u64> {
        let values = bound(&sql.params);
        let typed = typed(&values);
        if sql.kept {
            let (statement, params) = self.kept(sql, &typed).await?;
            return Ok(self.transaction.execute(&statement, &params).await?);
        }
        Ok(self
            .transaction
            .execute_typed(sql.text.as_str(), &typed)
            .await?)
    }

    async fn plan(&self, sql: &Sql) -> Result<Vec<String>> {
        let explain = sql.prefixed("EXPLAIN ");
        self.rows(&explain)
            .await?
            .iter()
            .map(|row| Ok(row.try_get::<_, String>(0)?))
            .collect()
    }
}
