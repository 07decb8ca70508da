//! Online backup to a file, and restore from one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};
use serde::Serialize;

use crate::Database;
use crate::error::Result;

/// Pages copied per backup step; between steps the progress callback runs.
const PAGES_PER_STEP: std::os::raw::c_int = 256;

/// How far a backup or restore has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BackupProgress {
    /// Pages copied so far.
    pub pages_done: u64,
    /// Pages in the source database.
    pub pages_total: u64,
}

/// Copies `source` into `destination` step by step, reporting progress.
fn copy(
    source: &Connection,
    destination: &mut Connection,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<BackupProgress> {
    let backup = Backup::new(source, destination)?;
    let report = |backup: &Backup<'_, '_>| {
        let raw = backup.progress();
        let total = u64::try_from(raw.pagecount).unwrap_or(0);
        let remaining = u64::try_from(raw.remaining).unwrap_or(0);
        BackupProgress {
            pages_done: total.saturating_sub(remaining),
            pages_total: total,
        }
    };
    loop {
        match backup.step(PAGES_PER_STEP)? {
            StepResult::Done => break,
            StepResult::More => progress(report(&backup)),
            // Another process holds a lock for a moment; try again shortly.
            StepResult::Busy | StepResult::Locked => std::thread::sleep(Duration::from_millis(2)),
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    let done = report(&backup);
    progress(done);
    Ok(done)
}

fn backup_from_reader(
    conn: &Connection,
    path: &Path,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<BackupProgress> {
    let mut destination = Connection::open(path)?;
    // One read transaction for the whole copy: the copy is a consistent snapshot, and writes
    // committed meanwhile by the writer (another connection) cannot make the backup restart,
    // so it finishes however busy the writer is. In WAL this does not block the writer.
    conn.execute_batch("BEGIN DEFERRED; SELECT count(*) FROM sqlite_schema;")?;
    let copied = copy(conn, &mut destination, progress);
    conn.execute_batch("COMMIT")?;
    copied
}

impl Database {
    /// Copies the database into the file at `path` (replacing it) while writes go on, and
    /// calls `progress` after every step. The copy is a consistent snapshot of the moment the
    /// backup started; it does not block writers.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = litehouse::Database::open(dir.path().join("live.db"), litehouse::Config::default())?;
    /// db.blocking_execute("CREATE TABLE t(x)", ())?;
    /// let copy = dir.path().join("copy.db");
    /// let done = db.blocking_backup(&copy, |p| eprintln!("{}/{}", p.pages_done, p.pages_total))?;
    /// assert_eq!(done.pages_done, done.pages_total);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_backup(
        &self,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(BackupProgress),
    ) -> Result<BackupProgress> {
        let path = path.as_ref();
        self.blocking_read(|conn| backup_from_reader(conn, path, &mut progress))
    }

    /// Async twin of [`blocking_backup`](Database::blocking_backup); the copy runs on a
    /// reader thread.
    pub async fn backup(
        &self,
        path: impl Into<PathBuf>,
        mut progress: impl FnMut(BackupProgress) + Send + 'static,
    ) -> Result<BackupProgress> {
        let path = path.into();
        self.read(move |conn| backup_from_reader(conn, &path, &mut progress))
            .await
    }

    /// Replaces the whole database with the contents of the database file at `path`.
    /// Runs on the writer between groups; writes queued meanwhile apply after the restore.
    pub fn blocking_restore(
        &self,
        path: impl Into<PathBuf>,
        mut progress: impl FnMut(BackupProgress) + Send + 'static,
    ) -> Result<BackupProgress> {
        let path = path.into();
        self.blocking_exclusive(move |conn| {
            let source =
                Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            copy(&source, conn, &mut progress)
        })
    }

    /// Async twin of [`blocking_restore`](Database::blocking_restore).
    pub async fn restore(
        &self,
        path: impl Into<PathBuf>,
        mut progress: impl FnMut(BackupProgress) + Send + 'static,
    ) -> Result<BackupProgress> {
        let path = path.into();
        self.exclusive(move |conn| {
            let source =
                Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            copy(&source, conn, &mut progress)
        })
        .await
    }
}
