//! Maintenance, backup and restore.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use litehouse::{Config, Database};

use crate::util::{TestResult, count, file_db};

#[test]
fn backup_completes_under_concurrent_writes_and_the_copy_is_sound() -> TestResult {
    let (dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB)", ())?;
    db.blocking_execute_many(
        "INSERT INTO t(payload) VALUES (randomblob(1000))",
        (0..5_000).map(|_| ()),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let db = db.clone();
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || -> litehouse::Result<u64> {
                let mut written = 0;
                // Relaxed: a plain stop flag, no data is published through it.
                while !stop.load(Ordering::Relaxed) {
                    db.blocking_execute("INSERT INTO t(payload) VALUES (randomblob(1000))", ())?;
                    written += 1;
                }
                Ok(written)
            })
        })
        .collect();
    let before = count(&db, "t");
    let copy = dir.path().join("copy.db");
    let mut steps = 0;
    let done = db.blocking_backup(&copy, |_| steps += 1)?;
    stop.store(true, Ordering::Relaxed);
    let written: u64 = writers
        .into_iter()
        .map(|w| w.join().expect("writer"))
        .sum::<litehouse::Result<u64>>()?;
    assert!(written > 0, "writers ran during the backup");
    assert!(steps > 1, "progress was reported step by step");
    assert_eq!(done.pages_done, done.pages_total);
    let copy = Database::open(&copy, Config::default())?;
    assert!(copy.blocking_integrity_check()?.is_empty());
    assert!(
        count(&copy, "t") >= before,
        "the copy holds at least what was there when it began"
    );
    Ok(())
}

#[tokio::test]
async fn restore_replaces_the_contents() -> TestResult {
    let dir = tempfile::tempdir()?;
    let source = Database::open(dir.path().join("source.db"), Config::default())?;
    source.execute("CREATE TABLE t(x)", ()).await?;
    source
        .execute_many("INSERT INTO t VALUES (?1)", (0..100).map(|i| (i,)))
        .await?;
    source
        .backup(dir.path().join("snapshot.db"), |_| {})
        .await?;
    let target = Database::open(dir.path().join("target.db"), Config::default())?;
    target.execute("CREATE TABLE other(y)", ()).await?;
    target
        .restore(dir.path().join("snapshot.db"), |_| {})
        .await?;
    let n: i64 = target
        .query_row("SELECT count(*) FROM t", (), |r| r.get(0))
        .await?;
    assert_eq!(n, 100);
    assert!(
        target.query_json("SELECT * FROM other", ()).await.is_err(),
        "the old table is gone"
    );
    target.execute("INSERT INTO t VALUES (100)", ()).await?;
    Ok(())
}

#[test]
fn maintenance_operations_run_between_groups() -> TestResult {
    let (_dir, path, db) = file_db(Config {
        pragmas: vec![("auto_vacuum".into(), "INCREMENTAL".into())],
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB)", ())?;
    db.blocking_execute_many(
        "INSERT INTO t(payload) VALUES (randomblob(4000))",
        (0..500).map(|_| ()),
    )?;
    db.blocking_execute("DELETE FROM t", ())?;
    db.blocking_checkpoint()?;
    let free_before: i64 = db.blocking_query_row("PRAGMA freelist_count", (), |r| r.get(0))?;
    assert!(free_before > 0);
    db.blocking_incremental_vacuum(None)?;
    let free_after: i64 = db.blocking_query_row("PRAGMA freelist_count", (), |r| r.get(0))?;
    assert_eq!(
        free_after, 0,
        "every free page was released (from {free_before})"
    );
    db.blocking_analyze()?;
    db.blocking_optimize()?;
    db.blocking_vacuum()?;
    assert!(db.blocking_quick_check()?.is_empty());
    assert!(db.blocking_integrity_check()?.is_empty());
    let checkpoint = db.blocking_checkpoint()?;
    assert!(!checkpoint.busy);
    let wal = std::fs::metadata(format!("{}-wal", path.display()))?.len();
    assert_eq!(wal, 0, "TRUNCATE empties the WAL");
    assert_eq!(
        db.stats().maintenance.count,
        6,
        "vacuums, analyze, optimize, two checkpoints"
    );
    Ok(())
}

#[test]
fn a_panicking_backup_callback_leaves_no_stale_snapshot_behind() -> TestResult {
    let (dir, _path, db) = file_db(Config {
        readers: 1,
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(x BLOB)", ())?;
    db.blocking_execute_many(
        "INSERT INTO t VALUES (randomblob(2000))",
        (0..2_000).map(|_| ()),
    )?;
    let err = db
        .blocking_backup(dir.path().join("copy.db"), |_| {
            panic!("progress callback failed")
        })
        .unwrap_err();
    assert!(matches!(err, litehouse::Error::Panic { .. }), "{err:?}");
    db.blocking_execute("INSERT INTO t VALUES (1)", ())?;
    assert_eq!(count(&db, "t"), 2_001, "the acknowledged insert is visible");
    // And the reader can run another backup (no transaction was left open on it).
    db.blocking_backup(dir.path().join("copy2.db"), |_| {})?;
    Ok(())
}

#[test]
fn restore_from_a_locked_source_gives_busy_and_the_writer_goes_on() -> TestResult {
    let (dir, _path, db) = file_db(Config {
        busy_budget: std::time::Duration::from_millis(200),
        ..Config::default()
    })?;
    let source = dir.path().join("locked.db");
    let locker = rusqlite::Connection::open(&source)?;
    locker.execute_batch(
        "CREATE TABLE s(x); INSERT INTO s VALUES (1); BEGIN EXCLUSIVE; INSERT INTO s VALUES (2);",
    )?;
    let err = db.blocking_restore(source, |_| {}).unwrap_err();
    assert!(err.is_busy(), "{err:?}");
    db.blocking_execute("CREATE TABLE still_writing(x)", ())?;
    drop(locker);
    Ok(())
}
