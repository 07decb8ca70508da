//! litehouse: a SQLite data layer for programs that write from many threads or tasks at once.
//!
//! A [`Database`] owns one writer thread and a pool of read-only connections. Writes from any
//! number of threads or async tasks are queued (a bounded queue: a full queue makes callers
//! wait), grouped, and committed together in one `BEGIN IMMEDIATE` transaction, each request
//! inside its own savepoint. A caller hears back only after the group has committed, so an
//! acknowledged write is as durable as the [`Profile`] promises, and no caller ever sees
//! "database is locked". Reads run on the pool beside the writer (WAL).
//!
//! - [`Database`]: open, write ([`execute`](Database::execute),
//!   [`execute_many`](Database::execute_many), [`script`](Database::script),
//!   [`transaction`](Database::transaction)), read ([`query_map`](Database::query_map),
//!   [`query_json`](Database::query_json), [`query_row`](Database::query_row),
//!   [`query_optional`](Database::query_optional), [`read`](Database::read)), maintain, back up.
//!   Every method has a `blocking_` twin for threads.
//! - [`Config`] and [`Profile`]: durability, pool and queue sizes, pragmas.
//! - [`Error`]: one error type that tells constraints, busy, closed, bad SQL and parameters,
//!   read-only violations and I/O apart, with SQLite's extended code.
//! - [`Stats`]: counters and latency histograms, serializable.
//!
//! ```
//! use litehouse::{Config, Database, Profile};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("app.db"), Config { profile: Profile::Durable, ..Config::default() })?;
//! db.blocking_execute("CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT NOT NULL)", ())?;
//!
//! // Many threads write at once; the writer groups their inserts into shared commits.
//! std::thread::scope(|scope| {
//!     for thread in 0..8 {
//!         let db = db.clone();
//!         scope.spawn(move || {
//!             for i in 0..50 {
//!                 db.blocking_execute("INSERT INTO events(kind) VALUES (?1)", (format!("{thread}-{i}"),)).unwrap();
//!             }
//!         });
//!     }
//! });
//! let count: i64 = db.blocking_query_row("SELECT count(*) FROM events", (), |row| row.get(0))?;
//! assert_eq!(count, 400);
//! # Ok::<(), litehouse::Error>(())
//! ```
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

mod backup;
mod buffer;
mod config;
mod database;
mod error;
mod ident;
mod logdb;
mod maintenance;
mod params;
mod query;
mod readers;
mod reply;
mod retry;
mod script;
mod stats;
mod worker;
mod write;
mod writer;

pub use backup::BackupProgress;
pub use buffer::{BufferConfig, BufferStats, REJECTED_TABLE, RejectedRow, Row, WriteBuffer};
pub use config::{BlockingWait, Config, Profile};
pub use database::{Database, Location};
pub use error::{Cause, ConstraintKind, Error, Result};
pub use ident::{MAX_IDENTIFIER_LEN, quote_identifier, validate_identifier};
pub use logdb::{
    LogConfig, LogDatabase, LogEntry, LogLayer, LogLevel, LogOrder, LogQuery, LogStats,
};
pub use maintenance::Checkpoint;
pub use params::{IntoParams, Params, to_value};
pub use query::{JsonRow, row_to_json, value_to_json};
pub use rusqlite;
pub use rusqlite::types::Value;
pub use script::StatementResult;
pub use stats::{LockStats, OpStats, Stats, Summary};

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
