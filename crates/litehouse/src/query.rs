//! Reads: rows mapped by a closure, rows as JSON objects, one row, an optional row.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use serde_json::{Map, Value as Json};

use crate::Database;
use crate::error::{Error, Result};
use crate::params::IntoParams;

/// A row as a JSON object keyed by column name.
pub type JsonRow = Map<String, Json>;

fn prepare_read<'c>(conn: &'c Connection, sql: &str) -> Result<rusqlite::CachedStatement<'c>> {
    let statement = conn.prepare_cached(sql)?;
    if !statement.readonly() {
        return Err(Error::ReadOnly {
            message: format!("`{sql}` writes to the database"),
        });
    }
    Ok(statement)
}

fn map_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl IntoParams,
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut statement = prepare_read(conn, sql)?;
    params.bind_to(&mut statement)?;
    let mut rows = statement.raw_query();
    let mut mapped = Vec::new();
    while let Some(row) = rows.next()? {
        mapped.push(map(row)?);
    }
    Ok(mapped)
}

fn first_row<T>(
    conn: &Connection,
    sql: &str,
    params: impl IntoParams,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Option<T>> {
    let mut statement = prepare_read(conn, sql)?;
    params.bind_to(&mut statement)?;
    let mut rows = statement.raw_query();
    match rows.next()? {
        Some(row) => Ok(Some(map(row)?)),
        None => Ok(None),
    }
}

/// Converts a SQLite value to JSON: integers and reals become numbers (non-finite reals
/// become null), text a string, and a blob `{"$blob": "<hex>"}`.
pub fn value_to_json(value: ValueRef<'_>) -> Json {
    match value {
        ValueRef::Null => Json::Null,
        ValueRef::Integer(integer) => Json::from(integer),
        ValueRef::Real(real) => serde_json::Number::from_f64(real).map_or(Json::Null, Json::Number),
        ValueRef::Text(text) => Json::String(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(blob) => {
            let hex: String = blob.iter().map(|byte| format!("{byte:02x}")).collect();
            serde_json::json!({ "$blob": hex })
        }
    }
}

/// Converts a row to a JSON object keyed by column name.
pub fn row_to_json(row: &Row<'_>) -> rusqlite::Result<JsonRow> {
    let statement = row.as_ref();
    let mut object = Map::with_capacity(statement.column_count());
    for index in 0..statement.column_count() {
        let name = statement.column_name(index)?.to_owned();
        object.insert(name, value_to_json(row.get_ref(index)?));
    }
    Ok(object)
}

fn no_rows<T>(found: Option<T>) -> Result<T> {
    found.ok_or(Error::NoRows)
}

impl Database {
    /// Runs a query on a reader and maps every row with `map`.
    ///
    /// # Errors
    /// [`Error::ReadOnly`] if the statement writes, [`Error::Sql`], [`Error::Parameter`].
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-query-map", litehouse::Config::default())?;
    /// let squares: Vec<i64> = db.blocking_query_map(
    ///     "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4) SELECT i * i FROM n",
    ///     (),
    ///     |row| row.get(0),
    /// )?;
    /// assert_eq!(squares, [1, 4, 9, 16]);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_query_map<T>(
        &self,
        sql: &str,
        params: impl IntoParams,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        self.blocking_read(|conn| map_rows(conn, sql, params, map))
    }

    /// Async twin of [`blocking_query_map`](Database::blocking_query_map).
    pub async fn query_map<T, F>(
        &self,
        sql: &str,
        params: impl IntoParams,
        map: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: FnMut(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let sql = sql.to_owned();
        let params = params.into_params()?;
        self.read(move |conn| map_rows(conn, &sql, params, map))
            .await
    }

    /// Runs a query on a reader and returns every row as a JSON object.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-query-json", litehouse::Config::default())?;
    /// let rows = db.blocking_query_json("SELECT 1 AS id, 'a' AS name", ())?;
    /// assert_eq!(serde_json::Value::Object(rows[0].clone()), serde_json::json!({"id": 1, "name": "a"}));
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_query_json(&self, sql: &str, params: impl IntoParams) -> Result<Vec<JsonRow>> {
        self.blocking_query_map(sql, params, row_to_json)
    }

    /// Async twin of [`blocking_query_json`](Database::blocking_query_json).
    pub async fn query_json(&self, sql: &str, params: impl IntoParams) -> Result<Vec<JsonRow>> {
        self.query_map(sql, params, row_to_json).await
    }

    /// Runs a query on a reader and maps its first row.
    ///
    /// # Errors
    /// [`Error::NoRows`] when there is none; see [`blocking_query_map`](Database::blocking_query_map).
    pub fn blocking_query_row<T>(
        &self,
        sql: &str,
        params: impl IntoParams,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        no_rows(self.blocking_query_optional(sql, params, map)?)
    }

    /// Async twin of [`blocking_query_row`](Database::blocking_query_row).
    pub async fn query_row<T, F>(&self, sql: &str, params: impl IntoParams, map: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        no_rows(self.query_optional(sql, params, map).await?)
    }

    /// Runs a query on a reader and maps its first row, if there is one.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-optional", litehouse::Config::default())?;
    /// let none: Option<i64> = db.blocking_query_optional("SELECT 1 WHERE 0", (), |row| row.get(0))?;
    /// assert_eq!(none, None);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_query_optional<T>(
        &self,
        sql: &str,
        params: impl IntoParams,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        self.blocking_read(|conn| first_row(conn, sql, params, map))
    }

    /// Async twin of [`blocking_query_optional`](Database::blocking_query_optional).
    pub async fn query_optional<T, F>(
        &self,
        sql: &str,
        params: impl IntoParams,
        map: F,
    ) -> Result<Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let sql = sql.to_owned();
        let params = params.into_params()?;
        self.read(move |conn| first_row(conn, &sql, params, map))
            .await
    }
}
