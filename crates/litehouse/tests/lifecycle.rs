//! Opening, sharing, closing.

use litehouse::{Config, Database, Error, Profile};

use crate::util::{TestResult, count, file_db, hold_writer, wait_for_queue};

#[test]
fn close_drains_queued_writes_then_refuses_new_work() -> TestResult {
    let (_dir, path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(x INTEGER)", ())?;
    let (release, holder) = hold_writer(&db);
    let queued = 40;
    std::thread::scope(|scope| -> TestResult {
        let writers: Vec<_> = (0..queued as i64)
            .map(|i| {
                let db = db.clone();
                scope.spawn(move || db.blocking_execute("INSERT INTO t VALUES (?1)", (i,)))
            })
            .collect();
        wait_for_queue(&db, queued);
        // Two concurrent closes: each must return only once the queue has drained, so each
        // reads the row count from its own connection the moment it returns.
        let closers: Vec<_> = (0..2)
            .map(|_| {
                let db = db.clone();
                let path = path.clone();
                scope.spawn(
                    move || -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
                        db.blocking_close()?;
                        let conn = rusqlite::Connection::open(&path)?;
                        Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
                    },
                )
            })
            .collect();
        wait_for_queue(&db, queued + 2);
        // New work is refused as soon as close has begun, while the queue still drains.
        assert!(db.is_closed());
        assert!(matches!(
            db.blocking_execute("INSERT INTO t VALUES (-1)", ()),
            Err(Error::Closed)
        ));
        release.send(())?;
        for closer in closers {
            let seen = closer
                .join()
                .expect("closer")
                .map_err(|err| err.to_string())?;
            assert_eq!(
                seen, queued as i64,
                "a close returned before the queue had drained"
            );
        }
        for writer in writers {
            writer.join().expect("writer")?;
        }
        Ok(())
    })?;
    holder.join().expect("holder")?;
    assert!(matches!(
        db.blocking_query_json("SELECT 1", ()),
        Err(Error::Closed)
    ));
    assert!(db.blocking_close().is_ok(), "closing again is fine");
    drop(db);
    let reopened = Database::open(&path, Config::default())?;
    assert_eq!(count(&reopened, "t"), queued as i64);
    Ok(())
}

#[tokio::test]
async fn async_close_and_closed_errors() -> TestResult {
    let db = Database::open_memory("lifecycle-async-close", Config::default())?;
    db.execute("CREATE TABLE t(x)", ()).await?;
    db.close().await?;
    assert!(matches!(
        db.execute("INSERT INTO t VALUES (1)", ()).await,
        Err(Error::Closed)
    ));
    assert!(matches!(
        db.query_json("SELECT 1", ()).await,
        Err(Error::Closed)
    ));
    assert!(matches!(db.checkpoint().await, Err(Error::Closed)));
    Ok(())
}

#[test]
fn dropping_the_last_handle_closes_cleanly() -> TestResult {
    let (_dir, path, db) = file_db(Config {
        profile: Profile::Durable,
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(x)", ())?;
    let clone = db.clone();
    std::thread::spawn(move || clone.blocking_execute("INSERT INTO t VALUES (1)", ()))
        .join()
        .expect("thread")?;
    drop(db);
    let reopened = Database::open(&path, Config::default())?;
    assert_eq!(count(&reopened, "t"), 1);
    Ok(())
}

#[test]
fn a_closure_may_drop_the_last_handle_of_its_own_database() -> TestResult {
    let db = Database::open_memory("lifecycle-self-drop", Config::default())?;
    let inner = db.clone();
    let (sender, receiver) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || receiver.recv());
    db.blocking_transaction(move |_| {
        // Keep the handle alive until after the closure returns to the writer.
        let _ = sender.send(inner);
        Ok(())
    })?;
    drop(db);
    // The waiter thread now drops the last handle; this must not deadlock.
    drop(waiter.join().expect("waiter"));
    Ok(())
}

#[test]
fn named_memory_databases_are_shared_by_writer_readers_and_handles() -> TestResult {
    let first = Database::open_memory("lifecycle-shared", Config::default())?;
    first.blocking_execute("CREATE TABLE t(x)", ())?;
    first.blocking_execute("INSERT INTO t VALUES (42)", ())?;
    let second = Database::open_memory("lifecycle-shared", Config::default())?;
    let x: i64 = second.blocking_query_row("SELECT x FROM t", (), |r| r.get(0))?;
    assert_eq!(x, 42);
    let other = Database::open_memory("lifecycle-other", Config::default())?;
    assert!(
        other.blocking_query_json("SELECT x FROM t", ()).is_err(),
        "different names are different databases"
    );
    Ok(())
}

#[test]
fn stats_count_operations_and_serialize() -> TestResult {
    let db = Database::open_memory("lifecycle-stats", Config::default())?;
    db.blocking_execute("CREATE TABLE t(x)", ())?;
    db.blocking_execute_many("INSERT INTO t VALUES (?1)", (0..10).map(|i| (i,)))?;
    db.blocking_script("SELECT 1; SELECT 2;")?;
    db.blocking_transaction(|_| Ok(()))?;
    let _ = db.blocking_execute("bogus", ());
    let _ = db.blocking_query_json("SELECT * FROM t", ())?;
    let stats = db.stats();
    assert_eq!(stats.execute.count, 2);
    assert_eq!(stats.execute.errors, 1);
    assert_eq!(stats.execute_many.count, 1);
    assert_eq!(stats.script.count, 1);
    assert_eq!(stats.transaction.count, 1);
    assert_eq!(stats.read.count, 1);
    assert!(stats.write_latency_micros.count >= 5, "{stats:#?}");
    let json = serde_json::to_value(&stats)?;
    assert!(json["group_size"]["p99"].is_number());
    assert!(json["locks"]["busy_retries"].is_number());
    Ok(())
}
