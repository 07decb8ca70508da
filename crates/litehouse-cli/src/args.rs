//! Command-line arguments. Doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// litehouse: a SQLite data layer for programs that write from many threads at once.
#[derive(Debug, Parser)]
#[command(name = "litehouse", version, about)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Measure litehouse against its peers (naive connections, a mutex, async-sqlite, bulk
    /// ceilings) in one run and print ops/s with ratios.
    Bench(BenchArgs),
    /// Inspect and maintain a database file.
    Db(DbArgs),
    /// Copy a document store to another backend (SQLite <-> PostgreSQL) and verify it.
    ///
    /// Copies every collection with its spec, then its documents in batches, then compares
    /// the document count and a checksum per collection. A store is `sqlite:FILE` or
    /// `postgres://USER@HOST:PORT/DB[?schema=NAME]`. Exit code 0: verified; 1: a count or
    /// checksum differs; 2: an error stopped the migrate.
    Migrate(crate::migrate::MigrateArgs),
    /// Print the entries of a log database (written by litehouse's LogDatabase), newest last;
    /// filter by level, age, target and text, or follow new entries.
    Logs(crate::logs::LogsArgs),
    /// Serve the document store over HTTP (REST + health), on 127.0.0.1:8080 by default.
    ///
    /// With no arguments it serves ./litehouse.db. Stop it with Ctrl-C or SIGTERM: in-flight
    /// requests finish, the write queue drains and the database closes cleanly.
    Serve(crate::serve::ServeArgs),
    /// Create, list and revoke API tokens (stored hashed in a file beside the database).
    Token(crate::serve::TokenArgs),
    /// The offline-first sync demo: record transactions on a device, go offline and online,
    /// force a sync, watch the status and the sync log.
    ///
    /// Without --server it starts its own server on loopback (with a device token) and a
    /// second device to sync with. --script runs offline writes, reconnect and sync, and
    /// prints the final status (exit code 0 when everything was acknowledged and pulled).
    Demo(crate::demo::DemoArgs),
    /// The load process of the HTTP benchmark workloads (run by `litehouse bench`).
    #[command(hide = true)]
    BenchLoad(crate::bench_http::LoadArgs),
    /// The SSE subscriber process of the realtime benchmark workload (run by `litehouse bench`).
    #[command(hide = true)]
    BenchRealtimeLoad(crate::bench_realtime::LoadArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Short run: the whole suite in under a minute.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Run only these workloads (comma-separated ids, e.g. W1,W3); `sync` selects the sync
    /// workloads (S1-S3).
    #[arg(long, value_delimiter = ',')]
    pub(crate) workload: Vec<String>,
    /// Directory for the benchmark's database files (default: a temporary directory). Use
    /// one on the disk you care about; a tmpfs makes durable commits look free.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// List the workloads and exit.
    #[arg(long)]
    pub(crate) list: bool,
    /// PostgreSQL URL for the workloads that also measure the PostgreSQL backend.
    #[arg(long, env = "LITEHOUSE_BENCH_PG")]
    pub(crate) pg: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DbArgs {
    /// The database file.
    pub(crate) file: PathBuf,
    #[command(subcommand)]
    pub(crate) action: DbAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbAction {
    /// Run PRAGMA integrity_check and print the problems found (exit code 1 if any).
    Check,
    /// Copy the WAL into the database file and truncate it.
    Checkpoint,
    /// Rebuild the file to reclaim free pages.
    Vacuum,
    /// Update the query planner's statistics (PRAGMA optimize).
    Optimize,
    /// Copy the database, consistently, to another file while it may be in use.
    Backup {
        /// Where to write the copy.
        to: PathBuf,
    },
}
