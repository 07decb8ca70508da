//! Rows the database refused for good: kept in a table of the same database, with their error,
//! for the application to read, fix and replay.
//!
//! A flush that fails with a constraint error (or a value the column cannot take) is split
//! until the failing rows stand alone (see `flush.rs`); every good row is written and each
//! refused one lands here, in a transaction of its own. Nothing is dropped silently.

use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::row::{Columns, Prefix, Row};
use super::state::Entry;
use crate::error::{Error, Result};
use crate::query::value_to_json;

/// The table that keeps rejected rows, in the buffer's own database.
pub const REJECTED_TABLE: &str = "_litehouse_rejected";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS _litehouse_rejected(
    id INTEGER PRIMARY KEY,
    at_unix_ms INTEGER NOT NULL,
    table_name TEXT NOT NULL,
    write TEXT NOT NULL,
    error TEXT NOT NULL,
    extended_code INTEGER
)";

/// A buffered row the database refused, from [`WriteBuffer::rejected`](crate::WriteBuffer::rejected).
///
/// It holds everything the buffer had pending for one key when the flush ran: an optional
/// delete or update of the existing row, then an optional upsert, in that order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RejectedRow {
    /// Its id in the rejected-rows table.
    pub id: i64,
    /// When it was rejected, in milliseconds since the Unix epoch.
    pub at_unix_ms: i64,
    /// The table it was meant for.
    pub table: String,
    /// The key columns and their values (blobs as `{"$blob": "<hex>"}`).
    pub key: Map<String, Json>,
    /// The existing row was to be deleted first.
    pub delete: bool,
    /// Columns to update on the existing row first.
    pub update: Option<Map<String, Json>>,
    /// Columns to insert or update last.
    pub upsert: Option<Map<String, Json>>,
    /// The database's error.
    pub error: String,
    /// SQLite's extended result code, when the error came from SQLite.
    pub extended_code: Option<i32>,
}

/// True for an error that a row causes by itself and that no retry can cure.
pub(crate) fn rejects_rows(err: &Error) -> bool {
    matches!(err, Error::Constraint { .. } | Error::Parameter { .. })
}

/// True for an error that some rows may cause by themselves, so the batch is worth splitting:
/// those of [`rejects_rows`], and SQL errors other than lock contention (a malformed value
/// under an expression index, a trigger's error; but also a missing table, which splitting
/// tells apart because then no row can be written).
pub(crate) fn isolatable(err: &Error) -> bool {
    rejects_rows(err)
        || (matches!(err, Error::Sql { .. } | Error::Sqlite { .. }) && !err.is_lock_contention())
}

fn columns_json(columns: &Columns) -> Json {
    Json::Object(
        columns
            .iter()
            .map(|(name, value)| (name.clone(), value_to_json(ValueRef::from(value))))
            .collect(),
    )
}

/// Stores one refused row with its error, inside the caller's transaction.
pub(crate) fn record(conn: &Connection, table: &str, entry: &Entry, err: &Error) -> Result<()> {
    conn.execute_batch(SCHEMA)?;
    let write = serde_json::json!({
        "key": columns_json(&entry.key),
        "delete": matches!(entry.pending.prefix, Some(Prefix::Delete)),
        "update": match &entry.pending.prefix {
            Some(Prefix::Update(columns)) => columns_json(columns),
            _ => Json::Null,
        },
        "upsert": entry.pending.upsert.as_ref().map_or(Json::Null, columns_json),
    });
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
    conn.prepare_cached(
        "INSERT INTO _litehouse_rejected(at_unix_ms, table_name, write, error, extended_code)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute((
        at,
        table,
        write.to_string(),
        err.to_string(),
        err.extended_code(),
    ))?;
    Ok(())
}

fn table_exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [REJECTED_TABLE],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Reads up to `limit` rejected rows, oldest first.
pub(crate) fn list(conn: &Connection, limit: usize) -> Result<Vec<RejectedRow>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    select(
        conn,
        "SELECT id, at_unix_ms, table_name, write, error, extended_code
         FROM _litehouse_rejected ORDER BY id LIMIT ?1",
        limit,
    )
}

/// Reads the rejected rows `ids` (those still there), oldest first.
pub(crate) fn by_ids(conn: &Connection, ids: &[i64]) -> Result<Vec<RejectedRow>> {
    let ids = serde_json::to_string(ids).map_err(|err| Error::Parameter {
        message: err.to_string(),
    })?;
    select(
        conn,
        "SELECT id, at_unix_ms, table_name, write, error, extended_code
         FROM _litehouse_rejected WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id",
        ids,
    )
}

fn select(conn: &Connection, sql: &str, param: impl rusqlite::ToSql) -> Result<Vec<RejectedRow>> {
    if !table_exists(conn)? {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare_cached(sql)?;
    let rows = statement.query_map([param], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, Option<i32>>(5)?,
        ))
    })?;
    let mut rejected = Vec::new();
    for row in rows {
        let (id, at_unix_ms, table, write, error, extended_code) = row?;
        let write: Json = serde_json::from_str(&write).map_err(|err| Error::Parameter {
            message: format!("rejected row {id} is not valid JSON: {err}"),
        })?;
        let object = |name: &str| write.get(name).and_then(Json::as_object).cloned();
        rejected.push(RejectedRow {
            id,
            at_unix_ms,
            table,
            key: object("key").unwrap_or_default(),
            delete: write.get("delete").and_then(Json::as_bool).unwrap_or(false),
            update: object("update"),
            upsert: object("upsert"),
            error,
            extended_code,
        });
    }
    Ok(rejected)
}

/// Removes rejected rows by id; returns how many were removed.
pub(crate) fn remove(conn: &Connection, ids: &[i64]) -> Result<usize> {
    if !table_exists(conn)? {
        return Ok(0);
    }
    let mut statement = conn.prepare_cached("DELETE FROM _litehouse_rejected WHERE id = ?1")?;
    let mut removed = 0;
    for id in ids {
        removed += statement.execute([id])?;
    }
    Ok(removed)
}

fn json_to_value(json: &Json) -> Result<Value> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(flag) => Value::Integer(i64::from(*flag)),
        Json::Number(number) => match number.as_i64() {
            Some(integer) => Value::Integer(integer),
            None => Value::Real(number.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(text) => Value::Text(text.clone()),
        Json::Object(object) => match object.get("$blob").and_then(Json::as_str) {
            Some(hex) if object.len() == 1 => Value::Blob(decode_hex(hex)?),
            _ => return Err(not_a_value(json)),
        },
        Json::Array(_) => return Err(not_a_value(json)),
    })
}

fn not_a_value(json: &Json) -> Error {
    Error::Parameter {
        message: format!("{json} is not a column value"),
    }
}

fn decode_hex(hex: &str) -> Result<Vec<u8>> {
    let bad = || Error::Parameter {
        message: format!("{hex:?} is not a hex blob"),
    };
    if !hex.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|at| {
            hex.get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

/// A JSON object of column values as a [`Row`], with `extra` columns (the key) added.
pub(crate) fn to_row(columns: &Map<String, Json>, extra: &Map<String, Json>) -> Result<Row> {
    columns
        .iter()
        .chain(extra)
        .map(|(name, value)| Ok((name.clone(), json_to_value(value)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json() {
        for value in [
            Value::Null,
            Value::Integer(-7),
            Value::Real(2.5),
            Value::Text("x".into()),
            Value::Blob(vec![0, 255, 16]),
        ] {
            let json = value_to_json(ValueRef::from(&value));
            assert_eq!(json_to_value(&json).unwrap(), value, "{json}");
        }
        assert!(json_to_value(&serde_json::json!([1])).is_err());
        assert!(decode_hex("0g").is_err());
    }
}
