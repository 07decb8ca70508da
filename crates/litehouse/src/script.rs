//! Multi-statement scripts, like a SQL file, with a result per statement.

use fallible_iterator::FallibleIterator;
use rusqlite::{Batch, Connection};
use serde::Serialize;

use crate::Database;
use crate::error::{Error, Result};
use crate::query::{JsonRow, row_to_json};
use crate::stats::OpKind;

/// What one statement of a script did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StatementResult {
    /// The statement's SQL text, as written in the script.
    pub sql: String,
    /// Rows changed (0 for statements that return rows).
    pub changes: usize,
    /// Rows returned, for statements that return any (a `SELECT`, `RETURNING`, a pragma).
    pub rows: Vec<JsonRow>,
}

/// Says which statement of the script failed.
fn locate(err: rusqlite::Error, index: usize, sql: Option<&str>) -> Error {
    match Error::from(err) {
        Error::Sql {
            extended_code,
            message,
            source,
        } => Error::Sql {
            extended_code,
            message: match sql {
                Some(sql) => format!("statement {index} (`{sql}`): {message}"),
                None => format!("statement {index}: {message}"),
            },
            source,
        },
        other => other,
    }
}

fn run_script(conn: &Connection, script: &str) -> Result<Vec<StatementResult>> {
    let mut batch = Batch::new(conn, script);
    let mut results = Vec::new();
    loop {
        let index = results.len() + 1;
        let prepared = batch.next().map_err(|err| locate(err, index, None))?;
        let Some(mut statement) = prepared else {
            break;
        };
        let sql = statement
            .expanded_sql()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let at = |err: rusqlite::Error| locate(err, index, Some(&sql));
        let result = if statement.column_count() > 0 {
            let rows = statement
                .query_map([], row_to_json)
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(at)?;
            StatementResult {
                sql: sql.clone(),
                changes: 0,
                rows,
            }
        } else {
            // sqlite3_changes() keeps the previous DML's count across DDL, so only trust it
            // when this statement changed something.
            let before = conn.total_changes();
            statement.raw_execute().map_err(at)?;
            let changed_any = conn.total_changes() != before;
            let changes = if changed_any {
                usize::try_from(conn.changes()).unwrap_or(usize::MAX)
            } else {
                0
            };
            StatementResult {
                sql: sql.clone(),
                changes,
                rows: Vec::new(),
            }
        };
        results.push(result);
    }
    Ok(results)
}

impl Database {
    /// Runs several `;`-separated statements as one request on the writer: all of them
    /// commit together, or (on the first error) none does. Returns what each statement did.
    ///
    /// # Errors
    /// The first failing statement's error; [`Error::Sql`] names the statement.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-script", litehouse::Config::default())?;
    /// let results = db.blocking_script(
    ///     "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2); SELECT count(*) AS n FROM t;",
    /// )?;
    /// assert_eq!(results.len(), 3);
    /// assert_eq!(results[1].changes, 2);
    /// assert_eq!(results[2].rows[0]["n"], 2);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_script(&self, script: &str) -> Result<Vec<StatementResult>> {
        let script = script.to_owned();
        self.blocking_write(OpKind::Script, move |conn| run_script(conn, &script))
    }

    /// Async twin of [`blocking_script`](Database::blocking_script).
    pub async fn script(&self, script: &str) -> Result<Vec<StatementResult>> {
        let script = script.to_owned();
        self.write(OpKind::Script, move |conn| run_script(conn, &script))
            .await
    }
}
