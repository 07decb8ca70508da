//! What a hostile or careless caller can do to the engine, and what must hold anyway: user
//! panics on the writer, reads that try to write, blocking buffer calls from the writer,
//! rows the database will never take, shutdown under a foreign lock, drops on an executor
//! thread, and counters that count what they say.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use litehouse::{BufferConfig, Config, Database, Error, Row, WriteBuffer};

use crate::locking::lock_in_child_as;
use crate::util::{
    TestResult, abandon_beside_a_neighbour, count, file_db, run_as_one_group,
    shut_down_logs_behind_a_foreign_lock,
};

/// A value whose `Drop` panics, like a guard that asserts on drop.
struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("PanicOnDrop dropped");
    }
}

/// The writer is alive and well: a new write commits and the database says it is open.
fn assert_writer_alive(db: &Database) -> TestResult {
    assert!(!db.is_closed());
    db.blocking_execute("INSERT INTO t(v) VALUES ('after')", ())?;
    assert_eq!(
        db.blocking_query_row("SELECT count(*) FROM t WHERE v = 'after'", (), |r| r
            .get::<_, i64>(0))?,
        1
    );
    Ok(())
}

#[test]
fn a_capture_whose_drop_panics_fails_only_its_own_request() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    type Request<'a> = Box<dyn FnOnce(Database) -> litehouse::Result<()> + Send + 'a>;
    let insert = |v: &'static str| -> Request<'_> {
        Box::new(move |db: Database| {
            db.blocking_execute("INSERT INTO t(v) VALUES (?1)", (v,))
                .map(drop)
        })
    };
    let panicking: Request<'_> = Box::new(|db: Database| {
        let guard = PanicOnDrop;
        db.blocking_transaction(move |conn| {
            let _keep = &guard;
            conn.execute("INSERT INTO t(v) VALUES ('rolled back')", [])?;
            Ok(())
        })
    });
    let results = run_as_one_group(&db, vec![insert("a"), panicking, insert("b")]);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(Error::Panic { .. })),
        "{:?}",
        results[1]
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);
    assert_eq!(
        count(&db, "t"),
        2,
        "a and b committed, the panicking one rolled back"
    );
    assert_writer_alive(&db)
}

#[test]
fn a_result_dropped_on_the_writer_after_a_failed_commit_cannot_kill_it() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_script(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY,
                        p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED);",
    )?;
    type Request<'a> = Box<dyn FnOnce(Database) -> litehouse::Result<bool> + Send + 'a>;
    let returns_panicking_value: Request<'_> = Box::new(|db: Database| {
        // The value comes back only if the group commits; the group fails, so the writer
        // drops it, and its Drop panics there.
        db.blocking_transaction(|conn| {
            conn.execute("INSERT INTO t(v) VALUES ('lost with the group')", [])?;
            Ok(PanicOnDrop)
        })
        .map(|value| {
            std::mem::forget(value);
            true
        })
    });
    let fails_the_commit: Request<'_> = Box::new(|db: Database| {
        db.blocking_execute("INSERT INTO c(id, p) VALUES (1, 42)", ())
            .map(|_| true)
    });
    let results = run_as_one_group(&db, vec![returns_panicking_value, fails_the_commit]);
    for result in &results {
        assert!(
            matches!(result, Err(Error::Constraint { .. })),
            "the group's COMMIT failed for both: {result:?}"
        );
    }
    assert_eq!(count(&db, "t"), 0);
    assert_writer_alive(&db)
}

#[test]
fn a_result_that_can_no_longer_be_delivered_is_dropped_safely() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    // An async transaction whose caller gives up while it waits in the queue: its value is
    // dropped on the writer, and that Drop panics.
    let neighbour = abandon_beside_a_neighbour(&db, |conn| {
        conn.execute("INSERT INTO t(v) VALUES ('committed, nobody asked')", [])?;
        Ok(PanicOnDrop)
    })?;
    assert_eq!(neighbour?, 1);
    assert_eq!(count(&db, "t"), 2, "both committed");
    assert_writer_alive(&db)
}

#[test]
fn a_closure_that_never_ran_is_dropped_safely_when_begin_fails() -> TestResult {
    let (_dir, path, db) = file_db(Config {
        busy_budget: Duration::from_millis(100),
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let mut lock_holder = lock_in_child_as("hold-write-lock", &path, 1_500)?;
    let guard = PanicOnDrop;
    let err = db
        .blocking_transaction(move |_| {
            let _keep = &guard;
            Ok(())
        })
        .unwrap_err();
    assert!(err.is_busy(), "{err:?}");
    assert!(lock_holder.wait()?.success());
    assert_writer_alive(&db)
}

/// Runs `statement` in a read closure (blocking and async) and expects the read guard to
/// refuse it.
fn assert_refused_on_readers(db: &Database, statement: &str) {
    let sql = statement.to_owned();
    let blocking = db.blocking_read(|conn| Ok(conn.execute_batch(&sql)?));
    assert!(
        matches!(blocking, Err(Error::ReadOnly { .. })),
        "{statement}: {blocking:?}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let sql = statement.to_owned();
    let asynchronous = runtime.block_on(db.read(move |conn| Ok(conn.execute_batch(&sql)?)));
    assert!(
        matches!(asynchronous, Err(Error::ReadOnly { .. })),
        "{statement} (async): {asynchronous:?}"
    );
}

#[test]
fn reader_connections_refuse_every_statement_that_writes() -> TestResult {
    let (dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    db.blocking_execute("INSERT INTO t(v) VALUES ('only row')", ())?;
    db.blocking_execute("CREATE INDEX t_v ON t(v)", ())?;
    let other = dir.path().join("other.db").display().to_string();
    for statement in [
        "PRAGMA query_only = OFF",
        "PRAGMA query_only = 0; INSERT INTO t(v) VALUES ('sneaked')",
        "INSERT INTO t(v) VALUES ('sneaked')",
        "UPDATE t SET v = 'changed'",
        "DELETE FROM t",
        "CREATE TABLE u(x)",
        "CREATE TEMP TABLE scratch(x)",
        "CREATE TEMP VIEW scratch AS SELECT 1",
        "DROP TABLE t",
        "ALTER TABLE t ADD COLUMN w",
        "CREATE INDEX t_v2 ON t(v)",
        &format!("ATTACH DATABASE '{other}' AS other"),
        "PRAGMA journal_mode = DELETE",
        "PRAGMA user_version = 7",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA optimize",
        "ANALYZE",
        "REINDEX",
        "REINDEX t_v",
    ] {
        assert_refused_on_readers(&db, statement);
    }
    // Reading still works, pragmas that only report included, and a snapshot transaction.
    let columns = db.blocking_read(|conn| {
        conn.execute_batch("BEGIN")?;
        let columns: i64 =
            conn.query_row("SELECT count(*) FROM pragma_table_info('t')", [], |r| {
                r.get(0)
            })?;
        let mut statement = conn.prepare("PRAGMA table_info(t)")?;
        let named = statement.query_map([], |r| r.get::<_, String>(1))?.count();
        let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let _: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        conn.execute_batch("COMMIT")?;
        Ok((columns, named))
    })?;
    assert_eq!(columns, (2, 2));
    assert_eq!(count(&db, "t"), 1, "nothing was written through a reader");
    let query_only: i64 = db.blocking_query_row("PRAGMA query_only", (), |r| r.get(0))?;
    assert_eq!(query_only, 1);
    assert!(!other_exists(&other));
    Ok(())
}

fn other_exists(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

/// Runs `work` on a thread and fails the test (instead of hanging it) if it does not end
/// within a minute.
fn within_a_minute<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    result
        .recv_timeout(Duration::from_secs(60))
        .expect("the call hung")
}

#[test]
fn blocking_buffer_calls_from_the_writer_are_misuse_not_a_deadlock() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
    buffer.blocking_upsert("t", Row::new().set("id", 1).set("v", "x"), &["id"])?;
    let errors = within_a_minute({
        let (db, buffer) = (db.clone(), buffer.clone());
        move || {
            db.blocking_transaction(move |_| {
                let row = || Row::new().set("id", 2).set("v", "y");
                Ok([
                    buffer.blocking_force_flush().map(drop),
                    buffer.blocking_upsert("t", row(), &["id"]),
                    buffer.blocking_update("t", row(), &["id"]),
                    buffer.blocking_delete("t", Row::new().set("id", 2)),
                    buffer.blocking_stop().map(drop),
                    // The non-blocking form works there.
                    buffer.try_upsert("t", row(), &["id"]),
                ])
            })
        }
    })?;
    for result in &errors[..5] {
        assert!(matches!(result, Err(Error::Misuse { .. })), "{result:?}");
    }
    assert!(errors[5].is_ok(), "{:?}", errors[5]);
    assert_eq!(buffer.blocking_force_flush()?, 2);
    assert_eq!(count(&db, "t"), 2);
    Ok(())
}

#[test]
fn dropping_the_last_buffer_handle_on_the_writer_does_not_hang() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
    buffer.blocking_upsert("t", Row::new().set("id", 1).set("v", "x"), &["id"])?;
    within_a_minute({
        let db = db.clone();
        move || {
            db.blocking_transaction(move |_| {
                drop(buffer);
                Ok(())
            })
        }
    })?;
    // The flusher drains on its own once the writer is free again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while count(&db, "t") < 1 {
        assert!(
            Instant::now() < deadline,
            "the dropped buffer never flushed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
fn poison_rows_are_isolated_kept_and_reported_and_every_good_row_is_written() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_script(
        "CREATE TABLE owners(id INTEGER PRIMARY KEY);
         INSERT INTO owners VALUES (1);
         CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                            qty INTEGER CHECK (qty >= 0), owner INTEGER REFERENCES owners(id));",
    )?;
    // Small enough that producers must wait for flushes: a wedged buffer would block them.
    let config = BufferConfig {
        max_buffer_size: 1_000,
        flush_batch_size: 500,
        flush_interval: Duration::from_millis(20),
        retry_min_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(20),
        ..BufferConfig::default()
    };
    let buffer = WriteBuffer::start(db.clone(), config)?;
    let poison = [
        (1_000, "not null"),
        (2_500, "check"),
        (4_000, "foreign key"),
    ];
    let produced = within_a_minute({
        let buffer = buffer.clone();
        move || -> litehouse::Result<()> {
            for id in 0..5_003_i64 {
                let mut row = Row::new().set("id", id).set("qty", 1).set("owner", 1);
                row = match poison.iter().find(|(at, _)| *at == id) {
                    Some((_, "not null")) => row.set("name", None::<String>),
                    Some((_, "check")) => row.set("name", "bad").set("qty", -1),
                    Some(_) => row.set("name", "orphan").set("owner", 99),
                    None => row.set("name", format!("item {id}")),
                };
                buffer.blocking_upsert("items", row, &["id"])?;
            }
            Ok(())
        }
    });
    produced?;
    let stopped = within_a_minute({
        let buffer = buffer.clone();
        move || buffer.blocking_stop()
    });
    assert!(
        matches!(stopped, Err(Error::Rejected { rows: 3, .. })),
        "stop reports the rejections: {stopped:?}"
    );
    assert_eq!(count(&db, "items"), 5_000, "every good row is written");
    let stats = buffer.stats();
    assert_eq!((stats.flushed, stats.rejected), (5_000, 3), "{stats:?}");
    let rejected = buffer.blocking_rejected(10)?;
    let mut ids: Vec<i64> = rejected
        .iter()
        .map(|row| row.key["id"].as_i64().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [1_000, 2_500, 4_000]);
    for row in &rejected {
        assert_eq!(row.table, "items");
        assert!(row.upsert.is_some());
        assert!(row.error.contains("constraint failed"), "{}", row.error);
    }
    assert!(rejected.iter().any(|row| row.error.contains("NOT NULL")));
    assert!(rejected.iter().any(|row| row.error.contains("CHECK")));
    assert!(rejected.iter().any(|row| row.error.contains("FOREIGN KEY")));
    Ok(())
}

#[test]
fn rejected_rows_can_be_fixed_and_replayed() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_script(
        "CREATE TABLE parents(id INTEGER PRIMARY KEY);
         CREATE TABLE children(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parents(id), n INTEGER);",
    )?;
    let buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
    for id in 0..50 {
        let row = Row::new().set("id", id).set("parent", 1).set("n", id);
        buffer.blocking_upsert("children", row, &["id"])?;
    }
    // The parent is missing: every row is refused and kept, none is lost or retried forever.
    assert_eq!(buffer.blocking_force_flush()?, 0);
    let stats = buffer.stats();
    assert_eq!((stats.pending, stats.rejected), (0, 50), "{stats:?}");
    assert!(stats.last_error.unwrap_or_default().contains("FOREIGN KEY"));
    // The application fixes the cause and replays them.
    db.blocking_execute("INSERT INTO parents VALUES (1)", ())?;
    let ids: Vec<i64> = buffer
        .blocking_rejected(100)?
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(buffer.blocking_retry_rejected(&ids)?, 50);
    assert_eq!(buffer.blocking_force_flush()?, 50);
    assert_eq!(count(&db, "children"), 50);
    assert!(buffer.blocking_rejected(100)?.is_empty());
    Ok(())
}

#[test]
fn log_shutdown_under_a_foreign_lock_ends_within_one_busy_budget_and_counts_the_loss() -> TestResult
{
    let budget = Duration::from_millis(500);
    let (result, took, stats) = shut_down_logs_behind_a_foreign_lock(budget, 1_000, 95)?;
    match result {
        Err(Error::Unwritten { entries, source }) => {
            assert_eq!(entries, 95, "every queued entry is accounted for");
            assert!(source.is_busy(), "{source:?}");
        }
        other => panic!("expected Unwritten, got {other:?}"),
    }
    // One budget for the one write tried, plus the one a batch may have been in already.
    assert!(took < budget * 2 + Duration::from_secs(2), "took {took:?}");
    assert_eq!((stats.logged, stats.dropped), (0, 95), "{stats:?}");
    Ok(())
}

/// Queues a write that holds the writer until the returned sender is used (or 20 s pass), and
/// stops waiting for it, so only a drain waits for it. The flag says whether it was released
/// in time.
async fn abandon_a_slow_write(db: &Database) -> (mpsc::Sender<()>, Arc<AtomicBool>) {
    let released_in_time = Arc::new(AtomicBool::new(false));
    let (release, wait_for_release) = mpsc::channel::<()>();
    let (started, wait_for_start) = mpsc::channel::<()>();
    let flag = Arc::clone(&released_in_time);
    let write = db.transaction(move |conn| {
        let _ = started.send(());
        let released = wait_for_release
            .recv_timeout(Duration::from_secs(20))
            .is_ok();
        flag.store(released, Ordering::SeqCst);
        conn.execute("INSERT INTO t(v) VALUES ('x')", [])?;
        Ok(())
    });
    let _ = tokio::time::timeout(Duration::from_millis(1), write).await;
    wait_for_start.recv().expect("the write started");
    (release, released_in_time)
}

#[test]
fn dropping_the_last_handle_on_a_current_thread_runtime_does_not_block_it() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let released_in_time = runtime.block_on(async {
        let (release, released_in_time) = abandon_a_slow_write(&db).await;
        // Dropped on the executor thread: must return at once, not after the drain.
        drop(db);
        release.send(()).expect("release");
        released_in_time
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !released_in_time.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the drop blocked the executor until the write timed out"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
fn dropping_the_last_handle_in_a_task_of_a_one_worker_runtime_lets_other_tasks_run() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let released_in_time = runtime.block_on(async move {
        let (handover, release) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let (release, released_in_time) = abandon_a_slow_write(&db).await;
            handover.send(release).expect("handover");
            // The close waits here, on the only worker; the releaser must still run.
            drop(db);
            released_in_time
        });
        let releaser = tokio::spawn(async move {
            let release = release.await.expect("release sender");
            tokio::time::sleep(Duration::from_millis(50)).await;
            release.send(()).expect("release");
        });
        let released_in_time = task.await.expect("task");
        releaser.await.expect("releaser");
        released_in_time
    });
    assert!(
        released_in_time.load(Ordering::SeqCst),
        "the drop starved the runtime's only worker"
    );
    Ok(())
}

#[test]
fn busy_errors_count_requests_not_groups() -> TestResult {
    let (_dir, path, db) = file_db(Config {
        busy_budget: Duration::from_millis(300),
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let mut lock_holder = lock_in_child_as("hold-write-lock", &path, 5_000)?;
    let results: Vec<litehouse::Result<usize>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let db = db.clone();
                scope.spawn(move || db.blocking_execute("INSERT INTO t(v) VALUES (?1)", (i,)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    lock_holder.kill()?;
    lock_holder.wait()?;
    assert!(
        results.iter().all(|r| matches!(r, Err(Error::Busy { .. }))),
        "{results:?}"
    );
    let locks = db.stats().locks;
    assert_eq!(locks.busy_errors, 8, "one per request: {locks:?}");
    Ok(())
}

#[test]
fn threads_have_names_the_operating_system_keeps() -> TestResult {
    let (_dir, _path, db) = file_db(Config {
        readers: 2,
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let _buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
    let thread_names = || -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_dir("/proc/self/task")?
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect())
    };
    // A new thread names itself as it starts: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    for expected in ["lh-writer", "lh-reader-0", "lh-reader-1", "lh-buffer"] {
        while !thread_names()?.iter().any(|name| name == expected) {
            assert!(
                Instant::now() < deadline,
                "{expected} in {:?}",
                thread_names()?
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}
