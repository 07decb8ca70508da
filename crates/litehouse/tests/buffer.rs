//! The write buffer against real database files: coalescing order, priorities, the memory
//! bound, failed flushes, and stop under load.

use std::time::{Duration, Instant};

use litehouse::{BufferConfig, Config, Database, Error, Profile, Row, WriteBuffer};
use rand::{Rng, SeedableRng};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn file_db(config: Config) -> Result<(tempfile::TempDir, Database), Error> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("buffer.db"), config)?;
    Ok((dir, db))
}

/// A config that never flushes on its own during a test: only force_flush and stop do.
fn manual() -> BufferConfig {
    BufferConfig {
        flush_interval: Duration::from_secs(3600),
        flush_batch_size: 1_000_000,
        max_buffer_size: 1_000_000,
        ..BufferConfig::default()
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

type JobRow = (i64, Option<String>, Option<i64>, Option<String>);

fn jobs(db: &Database, table: &str) -> Result<Vec<JobRow>, Error> {
    db.blocking_query_map(
        &format!("SELECT id, status, progress, note FROM {table} ORDER BY id"),
        (),
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
    )
}

#[test]
fn coalesced_writes_have_the_effect_of_running_in_order() -> TestResult {
    let (_dir, db) = file_db(Config::default())?;
    for table in ["buffered", "direct"] {
        db.blocking_execute(
            &format!("CREATE TABLE {table}(id INTEGER PRIMARY KEY, status TEXT, progress INTEGER, note TEXT)"),
            (),
        )?;
        db.blocking_execute(
            &format!("INSERT INTO {table}(id, note) VALUES (1, 'keep'), (2, 'keep')"),
            (),
        )?;
    }
    let buffer = WriteBuffer::start(db.clone(), manual())?;
    // The model: every write also runs directly, one statement at a time, on `direct`.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut writes = 0;
    for step in 0..3000 {
        let id = rng.random_range(1..=8_i64);
        let value = rng.random_range(0..1000_i64);
        match rng.random_range(0..10) {
            0..=3 => {
                buffer.blocking_upsert(
                    "buffered",
                    Row::new().set("id", id).set("progress", value),
                    &["id"],
                )?;
                db.blocking_execute(
                    "INSERT INTO direct(id, progress) VALUES (?1, ?2) ON CONFLICT(id) DO UPDATE SET progress = excluded.progress",
                    (id, value),
                )?;
            }
            4..=7 => {
                let status = format!("s{value}");
                buffer.blocking_update(
                    "buffered",
                    Row::new().set("id", id).set("status", &status),
                    &["id"],
                )?;
                db.blocking_execute("UPDATE direct SET status = ?2 WHERE id = ?1", (id, status))?;
            }
            _ => {
                buffer.blocking_delete("buffered", Row::new().set("id", id))?;
                db.blocking_execute("DELETE FROM direct WHERE id = ?1", (id,))?;
            }
        }
        writes += 1;
        // Flush now and then, so coalescing also meets rows that already exist.
        if step % 97 == 0 {
            buffer.blocking_force_flush()?;
            assert_eq!(
                jobs(&db, "buffered")?,
                jobs(&db, "direct")?,
                "after step {step}"
            );
        }
    }
    buffer.blocking_stop()?;
    assert_eq!(jobs(&db, "buffered")?, jobs(&db, "direct")?);
    let stats = buffer.stats();
    assert_eq!(stats.buffered, writes);
    assert!(
        stats.coalesced > 2000,
        "8 keys, 3000 writes: most coalesce ({stats:?})"
    );
    Ok(())
}

#[test]
fn upsert_then_update_keeps_both_and_update_then_upsert_too() -> TestResult {
    let (_dir, db) = file_db(Config::default())?;
    db.blocking_execute(
        "CREATE TABLE jobs(id INTEGER PRIMARY KEY, status TEXT, progress INTEGER, note TEXT)",
        (),
    )?;
    let buffer = WriteBuffer::start(db.clone(), manual())?;
    buffer.blocking_upsert("jobs", Row::new().set("id", 1).set("progress", 10), &["id"])?;
    buffer.blocking_update(
        "jobs",
        Row::new().set("id", 1).set("status", "running"),
        &["id"],
    )?;
    // An update of a row that does not exist yet does nothing; the upsert after it inserts.
    buffer.blocking_update(
        "jobs",
        Row::new().set("id", 2).set("status", "lost"),
        &["id"],
    )?;
    buffer.blocking_upsert("jobs", Row::new().set("id", 2).set("progress", 5), &["id"])?;
    assert_eq!(buffer.blocking_force_flush()?, 2);
    assert_eq!(
        jobs(&db, "jobs")?,
        vec![
            (1, Some("running".into()), Some(10), None),
            (2, None, Some(5), None)
        ]
    );
    Ok(())
}

#[test]
fn tables_flush_in_priority_order() -> TestResult {
    let (_dir, db) = file_db(Config::default())?;
    for table in ["low", "high", "mid"] {
        db.blocking_execute(
            &format!("CREATE TABLE {table}(id INTEGER PRIMARY KEY, n INTEGER)"),
            (),
        )?;
        db.blocking_execute(
            &format!("CREATE TRIGGER {table}_audit AFTER INSERT ON {table} BEGIN INSERT INTO audit(tbl) VALUES ('{table}'); END"),
            (),
        )?;
    }
    // Until the audit table exists every flush fails (its triggers cannot run), so all 30 rows
    // are pending before any flush can succeed; the long retry delay keeps retries quiet.
    let config = BufferConfig {
        table_priorities: vec!["high".into(), "mid".into()],
        flush_batch_size: 7,
        retry_min_delay: Duration::from_secs(3600),
        retry_max_delay: Duration::from_secs(3600),
        ..manual()
    };
    let buffer = WriteBuffer::start(db.clone(), config)?;
    // Written low first, so only the priorities can put high first.
    for table in ["low", "mid", "high"] {
        for id in 0..10 {
            buffer.blocking_upsert(table, Row::new().set("id", id).set("n", id), &["id"])?;
        }
    }
    // A batch taken before every row was buffered may still be on its way to the writer: let it
    // fail first, so the first flush that can succeed starts from all 30 rows.
    wait_until("every row is pending", || {
        let stats = buffer.stats();
        stats.pending == 30 && stats.in_flight == 0
    });
    db.blocking_execute(
        "CREATE TABLE audit(seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT)",
        (),
    )?;
    // A size-triggered flush may get there first; either way every row is written now.
    buffer.blocking_force_flush()?;
    assert_eq!(buffer.stats().flushed, 30);
    let order: Vec<String> =
        db.blocking_query_map("SELECT tbl FROM audit ORDER BY seq", (), |row| row.get(0))?;
    let expected: Vec<String> = ["high", "mid", "low"]
        .iter()
        .flat_map(|t| vec![(*t).to_owned(); 10])
        .collect();
    assert_eq!(order, expected);
    // 30 rows in batches of at most 7: five transactions.
    assert_eq!(buffer.stats().flushes, 5);
    Ok(())
}

#[test]
fn a_producer_far_faster_than_the_disk_never_holds_more_than_max_buffer_size() -> TestResult {
    let (_dir, db) = file_db(Config {
        profile: Profile::Durable,
        ..Config::default()
    })?;
    db.blocking_execute(
        "CREATE TABLE events(worker INTEGER, seq INTEGER, PRIMARY KEY(worker, seq))",
        (),
    )?;
    let config = BufferConfig {
        max_buffer_size: 64,
        flush_batch_size: 16,
        flush_interval: Duration::from_millis(20),
        ..BufferConfig::default()
    };
    let buffer = WriteBuffer::start(db.clone(), config)?;
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let buffer = buffer.clone();
            scope.spawn(move || {
                // Every write is a new key: nothing coalesces, so only waiting keeps memory flat.
                for seq in 0..500 {
                    let row = Row::new().set("worker", worker).set("seq", seq);
                    buffer
                        .blocking_upsert("events", row, &["worker", "seq"])
                        .unwrap();
                    let stats = buffer.stats();
                    assert!(stats.pending + stats.in_flight <= 64, "{stats:?}");
                }
            });
        }
    });
    buffer.blocking_stop()?;
    let stats = buffer.stats();
    assert!(stats.peak_rows <= 64, "{stats:?}");
    assert!(
        stats.producer_waits > 0,
        "the producers were never slowed down: {stats:?}"
    );
    let count: i64 = db.blocking_query_row("SELECT count(*) FROM events", (), |row| row.get(0))?;
    assert_eq!(count, 8 * 500);
    Ok(())
}

#[test]
fn async_producers_wait_for_room_too() -> TestResult {
    let (_dir, db) = file_db(Config::default())?;
    db.blocking_execute(
        "CREATE TABLE events(worker INTEGER, seq INTEGER, PRIMARY KEY(worker, seq))",
        (),
    )?;
    let config = BufferConfig {
        max_buffer_size: 32,
        flush_batch_size: 8,
        ..BufferConfig::default()
    };
    let buffer = WriteBuffer::start(db.clone(), config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for worker in 0..64 {
            let buffer = buffer.clone();
            tasks.push(tokio::spawn(async move {
                for seq in 0..50 {
                    let row = Row::new().set("worker", worker).set("seq", seq);
                    buffer.upsert("events", row, &["worker", "seq"]).await?;
                }
                Ok::<(), Error>(())
            }));
        }
        for task in tasks {
            task.await.expect("task finished")?;
        }
        buffer.stop().await.map(drop)
    })?;
    let stats = buffer.stats();
    assert!(stats.peak_rows <= 32, "{stats:?}");
    assert!(stats.producer_waits > 0, "{stats:?}");
    assert_eq!(stats.waiting_producers, 0);
    let count: i64 = db.blocking_query_row("SELECT count(*) FROM events", (), |row| row.get(0))?;
    assert_eq!(count, 64 * 50);
    Ok(())
}

#[test]
fn a_waiting_producer_does_not_block_the_others() -> TestResult {
    let (_dir, db) = file_db(Config::default())?;
    let config = BufferConfig {
        max_buffer_size: 2,
        retry_min_delay: Duration::from_secs(3600),
        retry_max_delay: Duration::from_secs(3600),
        ..manual()
    };
    let buffer = WriteBuffer::start(db.clone(), config)?;
    // The table does not exist yet, so no flush can make room, and after the first failure the
    // long retry delay keeps the flusher quiet (no batch in flight) until the forced flush.
    buffer.blocking_upsert("jobs", Row::new().set("id", 1).set("n", 1), &["id"])?;
    buffer.blocking_upsert("jobs", Row::new().set("id", 2).set("n", 1), &["id"])?;
    let waiter = {
        let buffer = buffer.clone();
        std::thread::spawn(move || {
            buffer.blocking_upsert("jobs", Row::new().set("id", 3).set("n", 1), &["id"])
        })
    };
    wait_until(
        "the third producer waits and the flush it asked for failed",
        || {
            let stats = buffer.stats();
            stats.waiting_producers == 1 && stats.failed_flushes == 1 && stats.in_flight == 0
        },
    );
    // Meanwhile: a write to a pending key coalesces at once, and a new key gets a clear "full".
    buffer.try_upsert("jobs", Row::new().set("id", 1).set("n", 2), &["id"])?;
    buffer.blocking_update("jobs", Row::new().set("id", 2).set("n", 5), &["id"])?;
    let full = buffer
        .try_upsert("jobs", Row::new().set("id", 4).set("n", 1), &["id"])
        .unwrap_err();
    assert!(matches!(full, Error::BufferFull { capacity: 2 }), "{full}");
    assert!(
        buffer.blocking_force_flush().is_err(),
        "the table is still missing"
    );
    db.blocking_execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, n INTEGER)", ())?;
    // The flush makes room, which lets the waiting producer in.
    assert_eq!(buffer.blocking_force_flush()?, 2);
    waiter.join().expect("waiter thread")?;
    buffer.blocking_stop()?;
    let rows: Vec<(i64, i64)> =
        db.blocking_query_map("SELECT id, n FROM jobs ORDER BY id", (), |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    assert_eq!(rows, vec![(1, 2), (2, 5), (3, 1)]);
    assert_eq!(buffer.stats().full_rejections, 1);
    Ok(())
}

#[test]
fn a_flush_into_a_missing_table_keeps_every_row_and_succeeds_later() -> TestResult {
    let (_dir, db) = file_db(Config::default())?;
    // Only the forced flushes below try: automatic retries wait an hour.
    let config = BufferConfig {
        retry_min_delay: Duration::from_secs(3600),
        retry_max_delay: Duration::from_secs(3600),
        ..manual()
    };
    let buffer = WriteBuffer::start(db.clone(), config)?;
    for id in 0..100 {
        buffer.blocking_upsert("late", Row::new().set("id", id).set("n", id), &["id"])?;
    }
    let err = buffer.blocking_force_flush().unwrap_err();
    assert!(matches!(err, Error::Sql { .. }), "{err}");
    let stats = buffer.stats();
    assert_eq!(
        (stats.pending, stats.failed_flushes, stats.flushed),
        (100, 1, 0)
    );
    assert!(stats.last_error.is_some());
    // A write made after the failure applies after the kept rows.
    buffer.blocking_update("late", Row::new().set("id", 0).set("n", -1), &["id"])?;
    db.blocking_execute("CREATE TABLE late(id INTEGER PRIMARY KEY, n INTEGER)", ())?;
    assert_eq!(buffer.blocking_force_flush()?, 100);
    let sum: i64 = db.blocking_query_row("SELECT sum(n) FROM late", (), |row| row.get(0))?;
    assert_eq!(sum, (1..100).sum::<i64>() - 1);
    assert_eq!(buffer.stats().last_error, None);
    Ok(())
}

#[test]
fn a_flush_blocked_by_another_connections_lock_is_retried_until_the_lock_goes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("locked.db");
    let config = Config {
        busy_budget: Duration::from_millis(50),
        ..Config::default()
    };
    let db = Database::open(&path, config)?;
    db.blocking_execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, n INTEGER)", ())?;
    // A second connection to the file holds the write lock, as another process would.
    let other = litehouse::rusqlite::Connection::open(&path)?;
    other.execute_batch("BEGIN IMMEDIATE")?;
    let buffer_config = BufferConfig {
        retry_min_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(20),
        ..manual()
    };
    let buffer = WriteBuffer::start(db.clone(), buffer_config)?;
    for id in 0..20 {
        buffer.blocking_upsert("jobs", Row::new().set("id", id).set("n", id), &["id"])?;
    }
    let err = buffer.blocking_force_flush().unwrap_err();
    assert!(err.is_busy(), "{err}");
    // Kept: pending, or in flight again in an automatic retry.
    let stats = buffer.stats();
    assert_eq!(stats.pending + stats.in_flight, 20, "{stats:?}");
    other.execute_batch("COMMIT")?;
    drop(other);
    // The flusher retries on its own after the backoff.
    wait_until("the retry succeeds", || buffer.stats().flushed == 20);
    let count: i64 = db.blocking_query_row("SELECT count(*) FROM jobs", (), |row| row.get(0))?;
    assert_eq!(count, 20);
    Ok(())
}

#[test]
fn stop_under_load_writes_every_accepted_write_and_refuses_the_rest() -> TestResult {
    let (_dir, db) = file_db(Config::default())?;
    db.blocking_execute(
        "CREATE TABLE progress(worker INTEGER PRIMARY KEY, n INTEGER)",
        (),
    )?;
    db.blocking_execute(
        "CREATE TABLE events(worker INTEGER, seq INTEGER, PRIMARY KEY(worker, seq))",
        (),
    )?;
    let config = BufferConfig {
        max_buffer_size: 500,
        flush_batch_size: 100,
        flush_interval: Duration::from_millis(10),
        ..BufferConfig::default()
    };
    let buffer = WriteBuffer::start(db.clone(), config)?;
    let workers: Vec<_> = (0..16_i64)
        .map(|worker| {
            let buffer = buffer.clone();
            std::thread::spawn(move || {
                // The last value each write accepted: stop must have written exactly these.
                let mut accepted = 0_i64;
                loop {
                    let next = accepted + 1;
                    let progress = Row::new().set("worker", worker).set("n", next);
                    match buffer.blocking_upsert("progress", progress, &["worker"]) {
                        Ok(()) => {}
                        Err(err) if err.is_closed() => return Ok(accepted),
                        Err(err) => return Err(err),
                    }
                    let event = Row::new().set("worker", worker).set("seq", next);
                    match buffer.blocking_upsert("events", event, &["worker", "seq"]) {
                        Ok(()) => accepted = next,
                        // The progress write went in but its event was refused.
                        Err(err) if err.is_closed() => return Ok(-next),
                        Err(err) => return Err(err),
                    }
                }
            })
        })
        .collect();
    wait_until("the workers run", || buffer.stats().flushed > 1000);
    buffer.blocking_stop()?;
    let stats = buffer.stats();
    assert_eq!((stats.pending, stats.in_flight), (0, 0), "{stats:?}");
    for (worker, handle) in workers.into_iter().enumerate() {
        let outcome = handle.join().expect("worker thread")?;
        let (progress, events) = if outcome < 0 {
            (-outcome, -outcome - 1)
        } else {
            (outcome, outcome)
        };
        // A worker refused at its very first write has no row at all.
        let stored: Option<i64> = db.blocking_query_optional(
            "SELECT n FROM progress WHERE worker = ?1",
            (worker as i64,),
            |row| row.get(0),
        )?;
        assert_eq!(stored.unwrap_or(0), progress, "worker {worker}");
        let count: i64 = db.blocking_query_row(
            "SELECT count(*) FROM events WHERE worker = ?1",
            (worker as i64,),
            |row| row.get(0),
        )?;
        assert_eq!(count, events, "worker {worker}");
    }
    assert!(
        buffer
            .try_upsert(
                "progress",
                Row::new().set("worker", 1).set("n", 0),
                &["worker"]
            )
            .unwrap_err()
            .is_closed()
    );
    Ok(())
}

#[test]
fn stats_serialize() -> TestResult {
    let db = Database::open_memory("buffer-stats-serialize", Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY)", ())?;
    let buffer = WriteBuffer::start(db, manual())?;
    buffer.blocking_upsert("t", Row::new().set("id", 1), &["id"])?;
    let json = serde_json::to_value(buffer.stats())?;
    assert_eq!(json["pending"], 1);
    assert_eq!(json["pending_by_table"]["t"], 1);
    Ok(())
}
