//! Engine workloads W1-W5: litehouse against the usual ways of sharing SQLite.

use std::time::{Duration, Instant};

use anyhow::Context;
use litehouse::{Config, Database, Profile};
use rusqlite::Connection;

use crate::peers::{self, MutexPeer};
use crate::runner::{self, Counted};
use crate::{BenchOptions, Measurement, Workload};

pub(crate) fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            id: "W1",
            title: "acked single-row inserts, 64 concurrent writers, Durable (synchronous=FULL)",
            reference: "naive",
            run: |opts, report| inserts(opts, report, "W1", Profile::Durable),
        },
        Workload {
            id: "W2",
            title: "acked single-row inserts, 64 concurrent writers, Balanced (synchronous=NORMAL)",
            reference: "naive",
            run: |opts, report| inserts(opts, report, "W2", Profile::Balanced),
        },
        Workload {
            id: "W3",
            title: "read-modify-write counter increments, Balanced; failures and final counter",
            reference: "naive",
            run: read_modify_write,
        },
        Workload {
            id: "W4",
            title: "point reads by primary key, 100k rows",
            reference: "rusqlite",
            run: point_reads,
        },
        Workload {
            id: "W5",
            title: "bulk insert of 1M rows",
            reference: "rusqlite-1-txn",
            run: bulk_insert,
        },
    ]
}

const ITEMS: &str = "CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, worker INTEGER NOT NULL, payload TEXT NOT NULL)";
const INSERT: &str = "INSERT INTO items(worker, payload) VALUES (?1, ?2)";
const PAYLOAD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn synchronous(profile: Profile) -> &'static str {
    if profile == Profile::Durable {
        "FULL"
    } else {
        "NORMAL"
    }
}

fn measured(workload: &str, implementation: &str, threads: usize, counted: Counted) -> Measurement {
    Measurement::new(
        workload,
        implementation,
        threads,
        counted.ok,
        counted.failed,
        counted.elapsed,
    )
}

/// Checks that what a run reported as written is what the table holds.
fn check_rows(conn: &Connection, expected: u64) -> anyhow::Result<()> {
    let stored: i64 = conn.query_row("SELECT count(*) FROM items", [], |row| row.get(0))?;
    anyhow::ensure!(
        stored as u64 == expected,
        "{stored} rows stored but {expected} acknowledged"
    );
    Ok(())
}

fn group_note(db: &Database) -> String {
    let stats = db.stats();
    format!(
        "mean group {:.1}, p99 ack {} µs",
        stats.group_size.mean, stats.write_latency_micros.p99
    )
}

fn inserts(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    id: &str,
    profile: Profile,
) -> anyhow::Result<()> {
    let writers = 64;
    let duration = opts.pick(Duration::from_millis(1200), Duration::from_secs(5));
    let sync = synchronous(profile);
    let config = Config {
        profile,
        ..Config::default()
    };

    let path = opts.db_path(&format!("{id}-litehouse-threads"));
    let db = Database::open(&path, config.clone())?;
    db.blocking_execute(ITEMS, ())?;
    let counted = runner::threads(
        writers,
        duration,
        |worker| worker as i64,
        |worker, _| db.blocking_execute(INSERT, (*worker, PAYLOAD)).is_ok(),
    );
    check_rows(&Connection::open(&path)?, counted.ok)?;
    report(measured(id, "litehouse", writers, counted).with_note(group_note(&db)));
    drop(db);

    let runtime = runner::runtime();
    let path = opts.db_path(&format!("{id}-litehouse-tasks"));
    let db = Database::open(&path, config)?;
    db.blocking_execute(ITEMS, ())?;
    let tasks_db = db.clone();
    let counted = runner::tasks(&runtime, writers, duration, move |worker, _| {
        let db = tasks_db.clone();
        async move { db.execute(INSERT, (worker as i64, PAYLOAD)).await.is_ok() }
    });
    check_rows(&Connection::open(&path)?, counted.ok)?;
    report(measured(id, "litehouse-async", writers, counted).with_note(group_note(&db)));
    drop(db);

    let path = opts.db_path(&format!("{id}-naive"));
    peers::open_peer(&path, sync)?.execute_batch(ITEMS)?;
    let counted = runner::threads(
        writers,
        duration,
        |worker| {
            (
                worker as i64,
                peers::open_peer(&path, sync).expect("peer connection"),
            )
        },
        |(worker, conn), _| {
            conn.prepare_cached(INSERT)
                .and_then(|mut s| s.execute((*worker, PAYLOAD)))
                .is_ok()
        },
    );
    check_rows(&Connection::open(&path)?, counted.ok)?;
    report(
        measured(id, "naive", writers, counted)
            .with_note("connection per thread, busy_timeout 5 s"),
    );

    let path = opts.db_path(&format!("{id}-mutex"));
    let shared = MutexPeer::open(&path, sync)?;
    shared.0.lock().execute_batch(ITEMS)?;
    let counted = runner::threads(
        writers,
        duration,
        |worker| worker as i64,
        |worker, _| {
            let conn = shared.0.lock();
            conn.prepare_cached(INSERT)
                .and_then(|mut s| s.execute((*worker, PAYLOAD)))
                .is_ok()
        },
    );
    check_rows(&shared.0.lock(), counted.ok)?;
    report(measured(id, "mutex", writers, counted).with_note("one Mutex<Connection>"));

    let path = opts.db_path(&format!("{id}-async-sqlite"));
    let pool = runtime.block_on(peers::async_sqlite_pool(&path, sync))?;
    runtime.block_on(pool.conn(|conn| conn.execute_batch(ITEMS)))?;
    let task_pool = pool.clone();
    let counted = runner::tasks(&runtime, writers, duration, move |worker, _| {
        let pool = task_pool.clone();
        async move {
            pool.conn(move |conn| {
                conn.prepare_cached(INSERT)?
                    .execute((worker as i64, PAYLOAD))
            })
            .await
            .is_ok()
        }
    });
    runtime.block_on(pool.close())?;
    check_rows(&Connection::open(&path)?, counted.ok)?;
    report(
        measured(id, "async-sqlite", writers, counted)
            .with_note("async-sqlite 0.7 pool, round-robin"),
    );

    // The ceiling: one thread, one transaction, no acknowledgement per row.
    let path = opts.db_path(&format!("{id}-ceiling"));
    let mut conn = peers::open_peer(&path, sync)?;
    conn.execute_batch(ITEMS)?;
    let started = Instant::now();
    let transaction = conn.transaction()?;
    let mut rows = 0_u64;
    {
        let mut statement = transaction.prepare_cached(INSERT)?;
        while started.elapsed() < duration {
            statement.execute((0_i64, PAYLOAD))?;
            rows += 1;
        }
    }
    transaction.commit()?;
    report(
        Measurement::new(id, "bulk-1-txn", 1, rows, 0, started.elapsed())
            .with_note("ceiling: one transaction, nothing acked per row"),
    );
    Ok(())
}

const COUNTER: &str = "CREATE TABLE IF NOT EXISTS counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT OR IGNORE INTO counter VALUES (1, 0);";

fn increment(conn: &Connection, begin: &str) -> rusqlite::Result<()> {
    conn.execute_batch(begin)?;
    let result = (|| {
        let n: i64 = conn.query_row("SELECT n FROM counter WHERE id = 1", [], |row| row.get(0))?;
        conn.execute("UPDATE counter SET n = ?1 WHERE id = 1", [n + 1])?;
        conn.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn counter_note(conn: &Connection, counted: Counted) -> anyhow::Result<String> {
    let n: i64 = conn.query_row("SELECT n FROM counter WHERE id = 1", [], |row| row.get(0))?;
    let verdict = if n as u64 == counted.ok {
        "exact"
    } else {
        "LOST UPDATES"
    };
    Ok(format!(
        "final counter {n} for {} successes: {verdict}",
        counted.ok
    ))
}

fn read_modify_write(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
) -> anyhow::Result<()> {
    let duration = opts.pick(Duration::from_millis(1000), Duration::from_secs(4));
    for writers in [8, 64] {
        let path = opts.db_path(&format!("W3-litehouse-{writers}"));
        let db = Database::open(&path, Config::default())?;
        db.blocking_script(COUNTER)?;
        let counted = runner::threads(
            writers,
            duration,
            |_| (),
            |_, _| {
                db.blocking_transaction(|conn| {
                    let n: i64 =
                        conn.query_row("SELECT n FROM counter WHERE id = 1", [], |row| row.get(0))?;
                    conn.execute("UPDATE counter SET n = ?1 WHERE id = 1", [n + 1])?;
                    Ok(())
                })
                .is_ok()
            },
        );
        let note = counter_note(&Connection::open(&path)?, counted)?;
        report(measured("W3", "litehouse", writers, counted).with_note(note));
        drop(db);

        let path = opts.db_path(&format!("W3-naive-{writers}"));
        peers::open_peer(&path, "NORMAL")?.execute_batch(COUNTER)?;
        let counted = runner::threads(
            writers,
            duration,
            |_| peers::open_peer(&path, "NORMAL").expect("peer connection"),
            |conn, _| increment(conn, "BEGIN").is_ok(),
        );
        let note = counter_note(&Connection::open(&path)?, counted)?;
        report(
            measured("W3", "naive", writers, counted)
                .with_note(format!("deferred BEGIN, busy_timeout 5 s; {note}")),
        );

        let path = opts.db_path(&format!("W3-mutex-{writers}"));
        let shared = MutexPeer::open(&path, "NORMAL")?;
        shared.0.lock().execute_batch(COUNTER)?;
        let counted = runner::threads(
            writers,
            duration,
            |_| (),
            |_, _| increment(&shared.0.lock(), "BEGIN").is_ok(),
        );
        let note = counter_note(&shared.0.lock(), counted)?;
        report(measured("W3", "mutex", writers, counted).with_note(note));
    }
    Ok(())
}

const READ_ROWS: u64 = 100_000;
const POINT_READ: &str = "SELECT worker, payload FROM items WHERE id = ?1";

/// A cheap deterministic spread of ids over the table, identical for every implementation.
fn id_for(worker: usize, iteration: u64) -> i64 {
    ((iteration
        .wrapping_mul(2_654_435_761)
        .wrapping_add(worker as u64 * 7_919))
        % READ_ROWS
        + 1) as i64
}

fn point_reads(opts: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let duration = opts.pick(Duration::from_millis(1000), Duration::from_secs(4));
    let path = opts.db_path("W4");
    let db = Database::open(
        &path,
        Config {
            readers: 4,
            ..Config::default()
        },
    )?;
    db.blocking_execute(ITEMS, ())?;
    db.blocking_execute_many(INSERT, (0..READ_ROWS).map(|i| (i as i64, PAYLOAD)))?;
    let read_row = |row: &rusqlite::Row<'_>| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?));
    for readers in [1, 2, 4] {
        // Alternate the two implementations in short rounds and add the rounds up, so drift
        // in the machine's load (it is shared and noisy) does not favour whichever ran first.
        let rounds = 4;
        let slice = duration / rounds;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(runner::threads(
                readers,
                slice,
                |worker| worker,
                |worker, iteration| {
                    db.blocking_query_row(POINT_READ, (id_for(*worker, iteration),), read_row)
                        .is_ok()
                },
            ));
            theirs.push(runner::threads(
                readers,
                slice,
                |worker| {
                    // The same cache and mmap settings litehouse's readers use, so the ratio
                    // measures the layer, not the pragmas.
                    let conn = Connection::open(&path).expect("reader connection");
                    conn.execute_batch("PRAGMA cache_size=-32000; PRAGMA mmap_size=134217728;")
                        .expect("pragmas");
                    (worker, conn)
                },
                |(worker, conn), iteration| {
                    conn.prepare_cached(POINT_READ)
                        .and_then(|mut statement| {
                            statement.query_row([id_for(*worker, iteration)], read_row)
                        })
                        .is_ok()
                },
            ));
        }
        report(measured("W4", "litehouse", readers, runner::sum(&ours)));
        report(
            measured("W4", "rusqlite", readers, runner::sum(&theirs))
                .with_note("own connection per thread, same pragmas"),
        );
    }
    Ok(())
}

fn bulk_insert(opts: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let rows: u64 = 1_000_000;
    let path = opts.db_path("W5-rusqlite");
    let mut conn = peers::open_peer(&path, "NORMAL")?;
    conn.execute_batch(ITEMS)?;
    let started = Instant::now();
    let transaction = conn.transaction()?;
    {
        let mut statement = transaction.prepare_cached(INSERT)?;
        for i in 0..rows {
            statement.execute((i as i64, PAYLOAD))?;
        }
    }
    transaction.commit()?;
    report(
        Measurement::new("W5", "rusqlite-1-txn", 1, rows, 0, started.elapsed())
            .with_note("ceiling"),
    );
    drop(conn);

    let path = opts.db_path("W5-litehouse");
    let db = Database::open(&path, Config::default())?;
    db.blocking_execute(ITEMS, ())?;
    let started = Instant::now();
    let written = db.blocking_execute_many(INSERT, (0..rows).map(|i| (i as i64, PAYLOAD)))?;
    report(
        Measurement::new("W5", "litehouse", 1, written as u64, 0, started.elapsed())
            .with_note("one execute_many"),
    );
    drop(db);

    let path = opts.db_path("W5-litehouse-chunks");
    let db = Database::open(&path, Config::default())?;
    db.blocking_execute(ITEMS, ())?;
    let started = Instant::now();
    let chunk = 10_000;
    let written: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4_u64)
            .map(|thread| {
                let db = db.clone();
                scope.spawn(move || -> litehouse::Result<usize> {
                    let mut written = 0;
                    for start in (thread * chunk..rows).step_by((4 * chunk) as usize) {
                        let end = (start + chunk).min(rows);
                        written += db.blocking_execute_many(
                            INSERT,
                            (start..end).map(|i| (i as i64, PAYLOAD)),
                        )?;
                    }
                    Ok(written)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bulk writer"))
            .sum::<litehouse::Result<usize>>()
    })
    .context("chunked bulk insert")?;
    report(
        Measurement::new(
            "W5",
            "litehouse-chunks",
            4,
            written as u64,
            0,
            started.elapsed(),
        )
        .with_note("execute_many of 10k rows from 4 threads"),
    );
    Ok(())
}
