//! Reading a log database: filters, newest first, a limit.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{Connection, Row};
use serde::{Deserialize, Serialize};

use crate::Database;
use crate::error::{Error, Result};

/// Severity of a log entry, most severe first (so `Warn < Info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// `tracing::Level::ERROR`.
    Error = 1,
    /// `tracing::Level::WARN`.
    Warn = 2,
    /// `tracing::Level::INFO`.
    Info = 3,
    /// `tracing::Level::DEBUG`.
    Debug = 4,
    /// `tracing::Level::TRACE`.
    Trace = 5,
}

impl LogLevel {
    /// The level's name in capitals, as `tracing` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }

    pub(crate) fn from_code(code: i64) -> LogLevel {
        match code {
            ..=1 => LogLevel::Error,
            2 => LogLevel::Warn,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

impl From<&tracing::Level> for LogLevel {
    fn from(level: &tracing::Level) -> LogLevel {
        match *level {
            tracing::Level::ERROR => LogLevel::Error,
            tracing::Level::WARN => LogLevel::Warn,
            tracing::Level::INFO => LogLevel::Info,
            tracing::Level::DEBUG => LogLevel::Debug,
            tracing::Level::TRACE => LogLevel::Trace,
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LogLevel {
    type Err = Error;

    /// Parses `error`, `warn` (or `warning`), `info`, `debug`, `trace`, in any case.
    fn from_str(text: &str) -> Result<LogLevel> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(Error::Parameter {
                message: format!(
                    "unknown log level {text:?}: use error, warn, info, debug or trace"
                ),
            }),
        }
    }
}

/// Which entries come first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogOrder {
    /// Most recent first (for "what just happened").
    #[default]
    NewestFirst,
    /// Oldest first (for following a log as it grows).
    OldestFirst,
}

/// Filters for [`Database::blocking_query_logs`]. Every filter set must match.
///
/// ```
/// use litehouse::{LogLevel, LogQuery};
/// let query = LogQuery { min_level: Some(LogLevel::Warn), contains: Some("timeout".into()), ..LogQuery::default() };
/// # let _ = query;
/// ```
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// At least this severe (`Some(Warn)` gives warnings and errors).
    pub min_level: Option<LogLevel>,
    /// Targets starting with this text (`myapp::jobs` also matches `myapp::jobs::retry`).
    pub target_prefix: Option<String>,
    /// At or after this time.
    pub since: Option<SystemTime>,
    /// Before this time.
    pub until: Option<SystemTime>,
    /// The message or the fields contain this text (ASCII case ignored).
    pub contains: Option<String>,
    /// Only entries with a larger id: for following a log, pass the last id seen.
    pub after_id: Option<i64>,
    /// Newest or oldest first.
    pub order: LogOrder,
    /// Most entries returned.
    pub limit: usize,
}

impl Default for LogQuery {
    fn default() -> LogQuery {
        LogQuery {
            min_level: None,
            target_prefix: None,
            since: None,
            until: None,
            contains: None,
            after_id: None,
            order: LogOrder::NewestFirst,
            limit: 100,
        }
    }
}

/// One stored log event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// Row id; grows with every entry written.
    pub id: i64,
    /// When the event happened, in microseconds since the Unix epoch.
    pub unix_micros: i64,
    /// Severity.
    pub level: LogLevel,
    /// The event's target (by default its module path).
    pub target: String,
    /// The `message` field.
    pub message: String,
    /// Every other field, by name.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Names of the spans the event happened in, outermost first.
    pub spans: Vec<String>,
}

pub(crate) fn unix_micros(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

fn build_sql(query: &LogQuery) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if let Some(level) = query.min_level {
        conditions.push("level <= ?");
        params.push(Value::Integer(level as i64));
    }
    if let Some(prefix) = &query.target_prefix {
        conditions.push("substr(target, 1, length(?)) = ?");
        params.push(Value::Text(prefix.clone()));
        params.push(Value::Text(prefix.clone()));
    }
    if let Some(since) = query.since {
        conditions.push("ts >= ?");
        params.push(Value::Integer(unix_micros(since)));
    }
    if let Some(until) = query.until {
        conditions.push("ts < ?");
        params.push(Value::Integer(unix_micros(until)));
    }
    if let Some(text) = &query.contains {
        conditions
            .push("(instr(lower(message), lower(?)) > 0 OR instr(lower(fields), lower(?)) > 0)");
        params.push(Value::Text(text.clone()));
        params.push(Value::Text(text.clone()));
    }
    if let Some(after) = query.after_id {
        conditions.push("id > ?");
        params.push(Value::Integer(after));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let order = match query.order {
        LogOrder::NewestFirst => "ts DESC, id DESC",
        LogOrder::OldestFirst => "ts, id",
    };
    params.push(Value::Integer(
        i64::try_from(query.limit).unwrap_or(i64::MAX),
    ));
    let sql = format!(
        "SELECT id, ts, level, target, message, fields, spans FROM logs {filter} ORDER BY {order} LIMIT ?"
    );
    (sql, params)
}

fn entry(row: &Row<'_>) -> rusqlite::Result<LogEntry> {
    let fields: Option<String> = row.get(5)?;
    let spans: Option<String> = row.get(6)?;
    Ok(LogEntry {
        id: row.get(0)?,
        unix_micros: row.get(1)?,
        level: LogLevel::from_code(row.get(2)?),
        target: row.get(3)?,
        message: row.get(4)?,
        // Written by this module as JSON; anything unreadable shows as empty.
        fields: fields
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
        spans: spans
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
    })
}

fn run_query(conn: &Connection, query: &LogQuery) -> Result<Vec<LogEntry>> {
    let (sql, params) = build_sql(query);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(params), entry)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

impl Database {
    /// Reads entries of a log database (one written by
    /// [`LogDatabase`](crate::LogDatabase)) on a reader connection.
    ///
    /// # Errors
    /// [`Error::Sql`] when this database has no `logs` table.
    ///
    /// ```
    /// use litehouse::{LogDatabase, LogConfig, LogLevel, LogQuery};
    /// use tracing_subscriber::layer::SubscriberExt;
    /// let logs = LogDatabase::open_memory("doc-query-logs", LogConfig::default())?;
    /// let subscriber = tracing_subscriber::registry().with(logs.layer());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     tracing::warn!(job = 7, "payment provider timed out");
    ///     tracing::info!("all good");
    /// });
    /// logs.blocking_flush()?;
    /// let query = LogQuery { min_level: Some(LogLevel::Warn), ..LogQuery::default() };
    /// let entries = logs.database().blocking_query_logs(&query)?;
    /// assert_eq!(entries.len(), 1);
    /// assert_eq!(entries[0].fields["job"], 7);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_query_logs(&self, query: &LogQuery) -> Result<Vec<LogEntry>> {
        self.blocking_read(|conn| run_query(conn, query))
    }

    /// Async twin of [`blocking_query_logs`](Database::blocking_query_logs).
    pub async fn query_logs(&self, query: &LogQuery) -> Result<Vec<LogEntry>> {
        let query = query.clone();
        self.read(move |conn| run_query(conn, &query)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!("WARNING".parse::<LogLevel>().unwrap(), LogLevel::Warn);
        assert!("loud".parse::<LogLevel>().is_err());
        assert!(LogLevel::Error < LogLevel::Trace);
        assert_eq!(LogLevel::from_code(LogLevel::Debug as i64), LogLevel::Debug);
    }

    #[test]
    fn filters_are_bound_not_formatted() {
        let query = LogQuery {
            target_prefix: Some("x' OR 1=1 --".into()),
            contains: Some("%_".into()),
            ..LogQuery::default()
        };
        let (sql, params) = build_sql(&query);
        assert!(!sql.contains("OR 1=1"));
        assert_eq!(params.len(), 5);
    }
}
