//! The peers litehouse is measured against, each set up the way its users typically do.

use std::path::Path;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::Connection;

/// Pragmas every peer connection gets: WAL plus the given synchronous level, a 5 s busy
/// timeout (the usual advice), foreign keys.
pub(crate) fn open_peer(path: &Path, synchronous: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA foreign_keys=ON;"
    ))?;
    Ok(conn)
}

/// One connection shared behind a mutex: no lock errors, but every write waits for the
/// previous commit.
pub(crate) struct MutexPeer(pub(crate) Mutex<Connection>);

impl MutexPeer {
    pub(crate) fn open(path: &Path, synchronous: &str) -> rusqlite::Result<MutexPeer> {
        Ok(MutexPeer(Mutex::new(open_peer(path, synchronous)?)))
    }
}

/// An async-sqlite pool (round-robin over connections that each have their own thread).
pub(crate) async fn async_sqlite_pool(
    path: &Path,
    synchronous: &'static str,
) -> anyhow::Result<async_sqlite::Pool> {
    let pool = async_sqlite::PoolBuilder::new()
        .path(path)
        .journal_mode(async_sqlite::JournalMode::Wal)
        .open()
        .await?;
    pool.conn_for_each(move |conn| {
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(&format!("PRAGMA synchronous={synchronous}"))
    })
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    Ok(pool)
}
