//! Regressions found by an adversarial review of the engine hardening: replies lost to a
//! panicking user error, good buffered rows rejected for a neighbour's failure, poison rows that
//! fail with plain SQL errors, async programs that end before their buffers drain, and log
//! shutdowns that wait too long or give up too early.

use std::sync::Arc;
use std::time::Duration;

use litehouse::{BufferConfig, Config, Database, Error, LogConfig, LogDatabase, Row, WriteBuffer};

use crate::child;
use crate::locking::lock_in_child_as;
use crate::util::{
    TestResult, abandon_beside_a_neighbour, count, file_db, hold_writer, log_n,
    shut_down_logs_behind_a_foreign_lock, wait_for_queue,
};

/// A user error whose `Drop` panics.
#[derive(Debug)]
struct PanicOnDropError;

impl std::error::Error for PanicOnDropError {}

impl Drop for PanicOnDropError {
    fn drop(&mut self) {
        panic!("PanicOnDropError dropped");
    }
}

impl std::fmt::Display for PanicOnDropError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("user error")
    }
}

/// A request's user error whose `Drop` panics, dropped on the writer because its caller left:
/// the committed neighbour in the same group still gets `Ok`.
#[test]
fn a_user_error_whose_drop_panics_never_costs_a_committed_neighbour_its_answer() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let answer = abandon_beside_a_neighbour(&db, |_| -> litehouse::Result<()> {
        Err(Error::User(Arc::new(PanicOnDropError)))
    })?;
    assert_eq!(count(&db, "t"), 1, "the neighbour's row IS committed");
    assert!(
        matches!(answer, Ok(1)),
        "committed write reported as failed: {answer:?}"
    );
    Ok(())
}

/// Another request's deferred foreign key fails the group's COMMIT: the buffer's row is written
/// in a transaction of its own, not rejected.
#[test]
fn a_good_buffered_row_is_not_rejected_when_a_neighbour_fails_the_group_commit() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_script(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY,
                        p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);",
    )?;
    let buffer = WriteBuffer::start(
        db.clone(),
        BufferConfig {
            flush_interval: Duration::from_secs(3600),
            ..BufferConfig::default()
        },
    )?;
    buffer.blocking_upsert("t", Row::new().set("id", 1).set("v", "good"), &["id"])?;
    let (release, holder) = hold_writer(&db);
    let flush = std::thread::spawn({
        let buffer = buffer.clone();
        move || buffer.blocking_force_flush()
    });
    wait_for_queue(&db, 1);
    let bad = std::thread::spawn({
        let db = db.clone();
        move || db.blocking_execute("INSERT INTO c(id, p) VALUES (1, 42)", ())
    });
    wait_for_queue(&db, 2);
    release.send(())?;
    holder.join().expect("holder")?;
    assert!(bad.join().expect("bad").is_err());
    let flushed = flush.join().expect("flush");
    let stats = buffer.stats();
    let rejected = buffer.blocking_rejected(10)?;
    assert_eq!(
        count(&db, "t"),
        1,
        "good row not written: flush={flushed:?} stats.rejected={} rejected={rejected:?}",
        stats.rejected
    );
    Ok(())
}

/// The last `WriteBuffer` handle dropped at the end of an async `main` flushes before it returns.
#[test]
fn an_async_program_that_ends_keeps_its_buffered_rows() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("exit.db");
    let rows = 20_000;
    let mut child = child::spawn(
        "buffer-then-exit-async",
        &[path.to_str().expect("utf-8"), &rows.to_string()],
    )?;
    let status = child.wait()?;
    assert!(status.success(), "child failed: {status:?}");
    let db = Database::open(&path, Config::default())?;
    let written = count(&db, "t");
    assert_eq!(written, rows, "buffered rows lost at exit");
    Ok(())
}

/// A row that makes SQLite raise a plain SQL error (malformed JSON under an expression index)
/// is isolated like a constraint violation; the 99 good rows are written.
#[test]
fn a_row_that_fails_with_a_plain_sql_error_is_isolated_too() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_script(
        "CREATE TABLE docs(id INTEGER PRIMARY KEY, doc TEXT);
         CREATE INDEX docs_name ON docs(json_extract(doc, '$.name'));",
    )?;
    let buffer = WriteBuffer::start(
        db.clone(),
        BufferConfig {
            flush_interval: Duration::from_secs(3600),
            ..BufferConfig::default()
        },
    )?;
    for id in 0..100_i64 {
        let doc = if id == 50 {
            "not json".to_owned()
        } else {
            format!("{{\"name\": \"n{id}\"}}")
        };
        buffer.blocking_upsert("docs", Row::new().set("id", id).set("doc", doc), &["id"])?;
    }
    let flushed = buffer.blocking_force_flush();
    let stats = buffer.stats();
    assert_eq!(
        count(&db, "docs"),
        99,
        "good rows held hostage by one bad row: flush={flushed:?} pending={} rejected={}",
        stats.pending,
        stats.rejected
    );
    Ok(())
}

/// Opening a file while another connection holds its exclusive lock (as a process closing the
/// same file does while it checkpoints) waits for the lock instead of failing with "database
/// is locked": found as a flaky `Store::open_sqlite` right after the previous store dropped.
#[test]
fn open_waits_for_another_connections_exclusive_lock() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("locked.db");
    let holder = litehouse::rusqlite::Connection::open(&path)?;
    holder.execute_batch("BEGIN EXCLUSIVE; CREATE TABLE t(x);")?;
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let opener = std::thread::Builder::new()
        .name("test-opener".into())
        .spawn(move || {
            let opened = Database::open(&path, Config::default()).map(|db| db.blocking_close());
            let _ = opened_tx.send(opened.map(|_| ()));
        })?;
    // Longer than the writer's 20 ms busy slice.
    std::thread::sleep(Duration::from_millis(300));
    holder.execute_batch("COMMIT")?;
    let opened = opened_rx.recv_timeout(Duration::from_secs(10))?;
    opener.join().map_err(|_| "the opener thread panicked")?;
    opened?;
    Ok(())
}

/// `stop` returns the rows it wrote, not the buffer's lifetime total.
#[test]
fn stop_returns_the_rows_it_wrote() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let buffer = WriteBuffer::start(
        db.clone(),
        BufferConfig {
            flush_interval: Duration::from_secs(3600),
            ..BufferConfig::default()
        },
    )?;
    for id in 0..10 {
        buffer.blocking_upsert("t", Row::new().set("id", id).set("v", "a"), &["id"])?;
    }
    assert_eq!(buffer.blocking_force_flush()?, 10);
    for id in 10..15 {
        buffer.blocking_upsert("t", Row::new().set("id", id).set("v", "b"), &["id"])?;
    }
    assert_eq!(buffer.blocking_stop()?, 5, "stop wrote 5 rows");
    Ok(())
}

/// The last `LogDatabase` handle dropped at the end of an async `main` writes what is queued.
#[test]
fn an_async_program_that_ends_keeps_its_queued_log_entries() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("logs.db");
    let mut child = child::spawn(
        "log-then-exit-async",
        &[path.to_str().expect("utf-8"), "5000"],
    )?;
    assert!(child.wait()?.success());
    let db = Database::open(&path, Config::default())?;
    let written: i64 = db.blocking_query_row("SELECT count(*) FROM logs", (), |r| r.get(0))?;
    assert_eq!(written, 5_000, "queued log entries lost at exit");
    Ok(())
}

/// Child role: an async program that buffers rows and ends.
pub(crate) fn buffer_then_exit_async(path: &str, rows: i64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let db = Database::open(path, Config::default()).expect("open");
        db.execute(
            "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)",
            (),
        )
        .await
        .expect("create");
        let buffer = WriteBuffer::start(
            db.clone(),
            BufferConfig {
                max_buffer_size: 1_000_000,
                flush_batch_size: 1_000_000,
                flush_interval: Duration::from_secs(3600),
                ..BufferConfig::default()
            },
        )
        .expect("buffer");
        for id in 0..rows {
            buffer
                .upsert("t", Row::new().set("id", id).set("v", "x"), &["id"])
                .await
                .expect("upsert");
        }
        println!("BUFFERED {rows}");
        // End of main: the last handles go out of scope on the runtime.
        drop(buffer);
        drop(db);
    });
    drop(runtime);
    println!("EXITING");
}

/// Child role: an async program that logs through a `LogDatabase` and ends.
pub(crate) fn log_then_exit_async(path: &str, rows: usize) {
    use tracing_subscriber::layer::SubscriberExt;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let logs = litehouse::LogDatabase::open(
            path,
            litehouse::LogConfig {
                batch_size: 100_000,
                flush_interval: Duration::from_secs(3600),
                ..litehouse::LogConfig::default()
            },
        )
        .expect("open");
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(logs.layer()));
        tracing::dispatcher::with_default(&dispatch, || {
            for i in 0..rows {
                tracing::info!(i, "entry");
            }
        });
        drop(dispatch);
        drop(logs);
    });
    drop(runtime);
}

/// Many batches queued behind a foreign lock: shutdown still ends within about one busy budget.
#[test]
fn log_shutdown_with_many_batches_under_a_foreign_lock_is_bounded() -> TestResult {
    let budget = Duration::from_millis(500);
    let (result, took, _) = shut_down_logs_behind_a_foreign_lock(budget, 10, 95)?;
    eprintln!("shutdown: {result:?} took {took:?}");
    assert!(result.is_err());
    assert!(took < budget * 2 + Duration::from_secs(2), "took {took:?}");
    Ok(())
}

/// A Busy long gone does not stop the shutdown from writing what is queued.
#[test]
fn log_shutdown_tries_again_once_an_old_busy_has_passed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("logs.db");
    let db = Database::open(
        &path,
        Config {
            busy_budget: Duration::from_millis(200),
            ..Config::default()
        },
    )?;
    let logs = LogDatabase::with_database(
        db,
        LogConfig {
            batch_size: 1_000,
            flush_interval: Duration::from_secs(3600),
            ..LogConfig::default()
        },
    )?;
    let mut lock_holder = lock_in_child_as("hold-write-lock", &path, 1_000)?;
    log_n(&logs, 1);
    let first = logs.blocking_flush();
    assert!(
        first.is_err(),
        "the write under the foreign lock fails: {first:?}"
    );
    assert!(lock_holder.wait()?.success(), "lock released");
    // Much later, with nobody holding the lock:
    std::thread::sleep(Duration::from_millis(200));
    log_n(&logs, 5);
    let result = logs.blocking_shutdown();
    let stats = logs.blocking_stats()?;
    assert!(
        result.is_ok() && stats.logged == 5,
        "shutdown={result:?} logged={} dropped={}",
        stats.logged,
        stats.dropped
    );
    Ok(())
}
