//! Maintenance: vacuum, analyze, optimize, integrity checks, WAL checkpoints.

use rusqlite::Connection;
use serde::Serialize;

use crate::Database;
use crate::error::Result;

/// The outcome of a WAL checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// True if a reader kept the checkpoint from finishing (frames stay in the WAL).
    pub busy: bool,
    /// Frames in the WAL before the checkpoint (-1 when not in WAL mode).
    pub log_frames: i64,
    /// Frames copied into the database file.
    pub checkpointed_frames: i64,
}

fn problems(conn: &Connection, pragma: &str) -> Result<Vec<String>> {
    let mut statement = conn.prepare(pragma)?;
    let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
    let found = rows.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(if found == ["ok"] { Vec::new() } else { found })
}

fn checkpoint_truncate(conn: &mut Connection) -> Result<Checkpoint> {
    let (busy, log_frames, checkpointed_frames): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    Ok(Checkpoint {
        busy: busy != 0,
        log_frames,
        checkpointed_frames,
    })
}

/// Generates the blocking/async pair for a maintenance step that runs on the writer
/// connection between groups.
macro_rules! on_writer {
    ($(#[$doc:meta])* $blocking:ident, $async_name:ident, $ret:ty, |$conn:ident $(, $arg:ident: $arg_ty:ty)*| $body:expr) => {
        impl Database {
            $(#[$doc])*
            pub fn $blocking(&self $(, $arg: $arg_ty)*) -> Result<$ret> {
                self.blocking_exclusive(move |$conn: &mut Connection| $body)
            }

            #[doc = concat!("Async twin of [`", stringify!($blocking), "`](Database::", stringify!($blocking), ").")]
            pub async fn $async_name(&self $(, $arg: $arg_ty)*) -> Result<$ret> {
                self.exclusive(move |$conn: &mut Connection| $body).await
            }
        }
    };
}

on_writer!(
    /// Rebuilds the database file to reclaim free pages. Takes an exclusive lock for its
    /// whole run: writes wait in the queue meanwhile.
    blocking_vacuum, vacuum, (), |conn| Ok(conn.execute_batch("VACUUM")?)
);

on_writer!(
    /// Frees up to `pages` free pages (all of them for `None`). Only does something on a
    /// database created with `auto_vacuum=INCREMENTAL` (set it with a pragma override when the
    /// file is created).
    blocking_incremental_vacuum, incremental_vacuum, (), |conn, pages: Option<u32>| {
        let sql = match pages {
            Some(pages) => format!("PRAGMA incremental_vacuum({pages})"),
            None => "PRAGMA incremental_vacuum".to_owned(),
        };
        // The pragma frees one page per step, so it must be stepped until it is done;
        // `execute_batch` would step it only once.
        let mut statement = conn.prepare(&sql)?;
        let mut rows = statement.query([])?;
        while rows.next()?.is_some() {}
        Ok(())
    }
);

on_writer!(
    /// Gathers statistics about every table and index for the query planner.
    blocking_analyze, analyze, (), |conn| Ok(conn.execute_batch("ANALYZE")?)
);

on_writer!(
    /// Runs `PRAGMA optimize`, which analyzes only what needs it. Cheap; run it periodically.
    blocking_optimize, optimize, (), |conn| Ok(conn.execute_batch("PRAGMA optimize")?)
);

on_writer!(
    /// Copies the whole WAL into the database file and truncates the WAL to zero bytes.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = litehouse::Database::open(dir.path().join("c.db"), litehouse::Config::default())?;
    /// db.blocking_execute("CREATE TABLE t(x)", ())?;
    /// let checkpoint = db.blocking_checkpoint()?;
    /// assert!(!checkpoint.busy);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    blocking_checkpoint, checkpoint, Checkpoint, |conn| checkpoint_truncate(conn)
);

impl Database {
    /// Sets pragma `name` to `value` on the writer connection, between groups (outside any
    /// transaction, so pragmas such as `synchronous` that refuse to change inside one work),
    /// and returns what the pragma reports afterwards, if anything. `name` must be an
    /// identifier; `value` is quoted as a SQL literal. Reader connections keep their settings.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-pragma", litehouse::Config::default())?;
    /// db.blocking_pragma_update("synchronous", "FULL")?;
    /// assert!(db.blocking_pragma_update("synchronous; DROP TABLE x", "1").is_err());
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Parameter`](crate::Error::Parameter) for a name that is not an identifier;
    /// SQLite's error for a value the pragma refuses.
    pub fn blocking_pragma_update(&self, name: &str, value: &str) -> Result<Option<String>> {
        let (name, value) = (
            crate::validate_identifier(name)?.to_owned(),
            value.to_owned(),
        );
        self.blocking_exclusive(move |conn: &mut Connection| pragma_update(conn, &name, &value))
    }

    /// Async twin of [`blocking_pragma_update`](Database::blocking_pragma_update).
    pub async fn pragma_update(&self, name: &str, value: &str) -> Result<Option<String>> {
        let (name, value) = (
            crate::validate_identifier(name)?.to_owned(),
            value.to_owned(),
        );
        self.exclusive(move |conn: &mut Connection| pragma_update(conn, &name, &value))
            .await
    }

    /// Runs `PRAGMA integrity_check` on a reader (it does not block writers) and returns the
    /// problems found: empty when the database is sound.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-integrity", litehouse::Config::default())?;
    /// assert!(db.blocking_integrity_check()?.is_empty());
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_integrity_check(&self) -> Result<Vec<String>> {
        self.blocking_read(|conn| problems(conn, "PRAGMA integrity_check"))
    }

    /// Async twin of [`blocking_integrity_check`](Database::blocking_integrity_check).
    pub async fn integrity_check(&self) -> Result<Vec<String>> {
        self.read(|conn| problems(conn, "PRAGMA integrity_check"))
            .await
    }

    /// Like [`blocking_integrity_check`](Database::blocking_integrity_check) but faster: skips
    /// checking that indexes match their tables.
    pub fn blocking_quick_check(&self) -> Result<Vec<String>> {
        self.blocking_read(|conn| problems(conn, "PRAGMA quick_check"))
    }

    /// Async twin of [`blocking_quick_check`](Database::blocking_quick_check).
    pub async fn quick_check(&self) -> Result<Vec<String>> {
        self.read(|conn| problems(conn, "PRAGMA quick_check")).await
    }
}

fn pragma_update(conn: &Connection, name: &str, value: &str) -> Result<Option<String>> {
    let mut reported = None;
    conn.pragma_update_and_check(None, name, value, |row| {
        reported = row
            .get::<_, rusqlite::types::Value>(0)
            .ok()
            .map(|value| match value {
                rusqlite::types::Value::Integer(integer) => integer.to_string(),
                rusqlite::types::Value::Real(real) => real.to_string(),
                rusqlite::types::Value::Text(text) => text,
                _ => String::new(),
            });
        Ok(())
    })
    .or_else(|err| match err {
        // Pragmas that report nothing after being set.
        rusqlite::Error::QueryReturnedNoRows => Ok(()),
        other => Err(other),
    })?;
    Ok(reported)
}
