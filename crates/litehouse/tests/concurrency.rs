//! Many writers at once: exact counts, no lock errors, grouping, and isolation of failures.

use std::sync::Arc;
use std::time::Duration;

use litehouse::{BlockingWait, Config, ConstraintKind, Database, Error, Profile};

use crate::util::{TestResult, count, file_db, hold_writer, run_as_one_group, wait_for_queue};

/// Starts `threads` threads in `scope` that each insert `per_thread` rows into `items`, one
/// `blocking_execute` each, running `after_each` after every insert.
fn spawn_writers<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    db: &Database,
    threads: i64,
    per_thread: i64,
    after_each: fn(&Database),
) {
    for thread in 0..threads {
        let db = db.clone();
        scope.spawn(move || {
            for _ in 0..per_thread {
                db.blocking_execute("INSERT INTO items(thread) VALUES (?1)", (thread,))
                    .expect("insert");
                after_each(&db);
            }
        });
    }
}

#[test]
fn threads_insert_and_increment_with_exact_counts() -> TestResult {
    let (_dir, _path, db) = file_db(Config {
        profile: Profile::Durable,
        ..Config::default()
    })?;
    db.blocking_script(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, thread INTEGER);
         CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
         INSERT INTO counter VALUES (1, 0);",
    )?;
    let threads = 32;
    let per_thread = 100;
    std::thread::scope(|scope| {
        spawn_writers(scope, &db, threads, per_thread, |db| {
            db.blocking_transaction(|conn| {
                let n: i64 =
                    conn.query_row("SELECT n FROM counter WHERE id = 1", [], |r| r.get(0))?;
                conn.execute("UPDATE counter SET n = ?1 WHERE id = 1", [n + 1])?;
                Ok(())
            })
            .expect("increment");
        });
    });
    assert_eq!(count(&db, "items"), threads * per_thread);
    let n: i64 = db.blocking_query_row("SELECT n FROM counter", (), |r| r.get(0))?;
    assert_eq!(n, threads * per_thread);
    let stats = db.stats();
    assert_eq!(stats.execute.errors + stats.transaction.errors, 0);
    assert_eq!(stats.locks.busy_errors, 0);
    assert!(
        stats.groups < (threads * per_thread * 2) as u64,
        "writes were grouped: {stats:?}"
    );
    Ok(())
}

/// Blocking callers that poll for their answer (one at a time; the rest sleep) get every
/// answer: quick ones while polling, and ones that wait far past the polling budget (the
/// writer held) after they gave up polling and slept.
#[test]
fn threads_polling_for_their_answers_get_every_one() -> TestResult {
    let (_dir, _path, db) = file_db(Config {
        blocking_wait: BlockingWait::Poll(Duration::from_millis(1)),
        ..Config::default()
    })?;
    db.blocking_execute(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, thread INTEGER)",
        (),
    )?;
    let threads = 8;
    let per_thread = 200;
    let (release, holder) = hold_writer(&db);
    std::thread::scope(|scope| {
        spawn_writers(scope, &db, threads, per_thread, |_| {});
        // The first write of every thread waits behind the held writer, long past the
        // budget, before any commits.
        wait_for_queue(&db, threads as usize);
        std::thread::sleep(Duration::from_millis(20));
        release.send(()).expect("release the writer");
    });
    holder.join().expect("holder thread")?;
    assert_eq!(count(&db, "items"), threads * per_thread);
    assert_eq!(db.stats().execute.errors, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tasks_insert_with_exact_counts() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.execute(
        "CREATE TABLE items(id INTEGER PRIMARY KEY, task INTEGER)",
        (),
    )
    .await?;
    let mut tasks = Vec::new();
    for task in 0..64 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                db.execute("INSERT INTO items(task) VALUES (?1)", (task,))
                    .await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let total: i64 = db
        .query_row("SELECT count(*) FROM items", (), |r| r.get(0))
        .await?;
    assert_eq!(total, 64 * 50);
    let rows = db
        .query_json("SELECT task, count(*) AS n FROM items GROUP BY task", ())
        .await?;
    assert!(rows.iter().all(|row| row["n"] == 50));
    Ok(())
}

#[test]
fn a_failing_request_does_not_fail_its_neighbours() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)", ())?;
    db.blocking_execute("INSERT INTO t(v) VALUES ('taken')", ())?;
    let values = ["a", "taken", "b", "PANIC", "c"];
    let results = run_as_one_group(
        &db,
        values
            .iter()
            .map(|value| {
                let value = value.to_string();
                Box::new(move |db: Database| {
                    db.blocking_transaction(move |conn| {
                        conn.execute("INSERT INTO t(v) VALUES (?1)", [&value])?;
                        assert!(value != "PANIC", "closure panicked on purpose");
                        Ok(())
                    })
                }) as Box<dyn FnOnce(Database) -> litehouse::Result<()> + Send>
            })
            .collect(),
    );
    assert!(
        results[0].is_ok() && results[2].is_ok() && results[4].is_ok(),
        "{results:?}"
    );
    assert_eq!(
        results[1].as_ref().unwrap_err().constraint_kind(),
        Some(ConstraintKind::Unique)
    );
    assert!(
        matches!(results[3], Err(Error::Panic { .. })),
        "{:?}",
        results[3]
    );
    let mut stored: Vec<String> =
        db.blocking_query_map("SELECT v FROM t ORDER BY v", (), |r| r.get(0))?;
    stored.sort();
    assert_eq!(stored, ["a", "b", "c", "taken"]);
    let stats = db.stats();
    assert!(
        stats.group_size.max >= 5,
        "the five requests shared one group: {stats:?}"
    );
    // The writer survived the panic and keeps working.
    db.blocking_execute("INSERT INTO t(v) VALUES ('after')", ())?;
    Ok(())
}

#[test]
fn a_failed_commit_fails_the_whole_group_and_writes_nothing() -> TestResult {
    let (_dir, _path, db) = file_db(Config::default())?;
    db.blocking_script(
        "CREATE TABLE parent(id INTEGER PRIMARY KEY);
         CREATE TABLE child(id INTEGER PRIMARY KEY,
             parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED);",
    )?;
    // The orphan passes its own statement (the check is deferred) and fails at COMMIT.
    let sqls = [
        "INSERT INTO child(id, parent) VALUES (1, NULL)",
        "INSERT INTO child(id, parent) VALUES (2, 999)",
        "INSERT INTO child(id, parent) VALUES (3, NULL)",
    ];
    let results = run_as_one_group(
        &db,
        sqls.iter()
            .map(|sql| {
                Box::new(move |db: Database| db.blocking_execute(sql, ()))
                    as Box<dyn FnOnce(Database) -> litehouse::Result<usize> + Send>
            })
            .collect(),
    );
    for result in &results {
        assert_eq!(
            result.as_ref().unwrap_err().constraint_kind(),
            Some(ConstraintKind::ForeignKey),
            "{results:?}"
        );
    }
    assert_eq!(count(&db, "child"), 0);
    assert_eq!(db.stats().commit_failures, 1);
    Ok(())
}

#[test]
fn reads_run_beside_a_busy_writer() -> TestResult {
    let (_dir, _path, db) = file_db(Config {
        readers: 2,
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(x INTEGER)", ())?;
    db.blocking_execute("INSERT INTO t VALUES (1)", ())?;
    let (release, holder) = hold_writer(&db);
    // The writer is stuck inside a transaction; WAL readers still see the last commit.
    assert_eq!(count(&db, "t"), 1);
    release.send(())?;
    holder.join().expect("holder")?;
    Ok(())
}

#[test]
fn handles_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<litehouse::Database>();
    assert_send_sync::<litehouse::Error>();
    assert_send_sync::<Arc<litehouse::Stats>>();
}
