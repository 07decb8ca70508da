//! Online backup to a file, and restore from one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::Database;
use crate::error::{Error, Result};
use crate::retry::BusyRetry;

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

/// Copies `source` into `destination` step by step, reporting progress. A lock held by
/// another process is waited out for at most `busy_budget`, then reported as [`Error::Busy`].
fn copy(
    source: &Connection,
    destination: &mut Connection,
    busy_budget: Duration,
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
    let mut busy_since: Option<Instant> = None;
    loop {
        match backup.step(PAGES_PER_STEP)? {
            StepResult::Done => break,
            StepResult::More => {
                busy_since = None;
                progress(report(&backup));
            }
            // Another process holds a lock for a moment; try again shortly, within the budget.
            StepResult::Busy | StepResult::Locked => {
                let since = *busy_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= busy_budget {
                    return Err(Error::Busy {
                        waited: since.elapsed(),
                        retry_after: BusyRetry {
                            budget: busy_budget,
                        }
                        .retry_after(),
                    });
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            other => {
                return Err(Error::Sqlite {
                    extended_code: rusqlite::ffi::SQLITE_ERROR,
                    message: format!("unexpected backup step result {other:?}"),
                    source: None,
                });
            }
        }
    }
    let done = report(&backup);
    progress(done);
    Ok(done)
}

/// Opens the other side of a backup or restore with the same busy timeout as litehouse's own
/// connections, so a short lock held by another process is waited out.
fn open_other(path: &Path, flags: OpenFlags, busy_budget: Duration) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(crate::config::clamp_busy_timeout(busy_budget))?;
    Ok(conn)
}

fn backup_from_reader(
    conn: &Connection,
    path: &Path,
    busy_budget: Duration,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<BackupProgress> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
    let mut destination = open_other(path, flags, busy_budget)?;
    // One read transaction for the whole copy: the copy is a consistent snapshot, and writes
    // committed meanwhile by the writer (another connection) cannot make the backup restart,
    // so it finishes however busy the writer is. In WAL this does not block the writer. If
    // the copy fails or the progress callback panics, the pool rolls the transaction back
    // when the connection is returned.
    conn.execute_batch("BEGIN DEFERRED; SELECT count(*) FROM sqlite_schema;")?;
    let copied = copy(conn, &mut destination, busy_budget, progress)?;
    conn.execute_batch("COMMIT")?;
    Ok(copied)
}

fn restore_on_writer(
    conn: &mut Connection,
    path: &Path,
    busy_budget: Duration,
    progress: &mut dyn FnMut(BackupProgress),
) -> Result<BackupProgress> {
    let source = open_other(path, OpenFlags::SQLITE_OPEN_READ_ONLY, busy_budget)?;
    copy(&source, conn, busy_budget, progress)
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
        let budget = self.inner.config.busy_budget;
        self.blocking_read(|conn| backup_from_reader(conn, path, budget, &mut progress))
    }

    /// Async twin of [`blocking_backup`](Database::blocking_backup); the copy runs on a
    /// reader thread.
    pub async fn backup(
        &self,
        path: impl Into<PathBuf>,
        mut progress: impl FnMut(BackupProgress) + Send + 'static,
    ) -> Result<BackupProgress> {
        let path = path.into();
        let budget = self.inner.config.busy_budget;
        self.read(move |conn| backup_from_reader(conn, &path, budget, &mut progress))
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
        let budget = self.inner.config.busy_budget;
        self.blocking_exclusive(move |conn| restore_on_writer(conn, &path, budget, &mut progress))
    }

    /// Async twin of [`blocking_restore`](Database::blocking_restore).
    pub async fn restore(
        &self,
        path: impl Into<PathBuf>,
        mut progress: impl FnMut(BackupProgress) + Send + 'static,
    ) -> Result<BackupProgress> {
        let path = path.into();
        let budget = self.inner.config.busy_budget;
        self.exclusive(move |conn| restore_on_writer(conn, &path, budget, &mut progress))
            .await
    }
}
