//! Child processes for the multi-process tests: the test binary re-runs itself with
//! `LITEHOUSE_CHILD` set and only the `child::entry` test selected.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use litehouse::{Config, Database, Profile};

const VAR: &str = "LITEHOUSE_CHILD";

/// Starts this test binary as a child running `role` with `args`, stdout piped.
pub(crate) fn spawn(role: &str, args: &[&str]) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([
            "child::entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(VAR, format!("{role}|{}", args.join("|")))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

#[test]
#[ignore = "entry point for child processes started by other tests"]
fn entry() {
    let Ok(spec) = std::env::var(VAR) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    match parts.as_slice() {
        ["hold-lock", path, millis] => hold_lock(path, millis.parse().expect("millis")),
        ["hold-write-lock", path, millis] => hold_write_lock(path, millis.parse().expect("millis")),
        ["log-then-exit-async", path, rows] => {
            crate::regressions::log_then_exit_async(path, rows.parse().expect("rows"))
        }
        ["buffer-then-exit-async", path, rows] => {
            crate::regressions::buffer_then_exit_async(path, rows.parse().expect("rows"))
        }
        ["durable-writer", path, threads] => {
            durable_writer(path, threads.parse().expect("threads"))
        }
        other => panic!("unknown child role {other:?}"),
    }
}

/// Takes SQLite's write lock with a plain connection, says so, holds it, then commits.
fn hold_lock(path: &str, millis: u64) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t(v) VALUES ('from child');")
        .expect("lock");
    println!("LOCKED");
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_millis(millis));
    conn.execute_batch("COMMIT").expect("commit");
}

/// Takes SQLite's write lock on any database (no table needed), says so, holds it, then
/// rolls back.
fn hold_write_lock(path: &str, millis: u64) {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("BEGIN IMMEDIATE").expect("lock");
    println!("LOCKED");
    std::io::stdout().flush().expect("flush");
    std::thread::sleep(Duration::from_millis(millis));
    conn.execute_batch("ROLLBACK").expect("rollback");
}

/// Writes rows from several threads with the Durable profile forever, printing `ACK <id>`
/// after each write was acknowledged, until it is killed.
fn durable_writer(path: &str, threads: u64) {
    let config = Config {
        profile: Profile::Durable,
        ..Config::default()
    };
    let db = Database::open(path, config).expect("open");
    db.blocking_execute(
        "CREATE TABLE IF NOT EXISTS acked(id INTEGER PRIMARY KEY, payload TEXT)",
        (),
    )
    .expect("create");
    let start: i64 = db
        .blocking_query_row("SELECT coalesce(max(id), 0) + 1 FROM acked", (), |row| {
            row.get(0)
        })
        .expect("max id");
    println!("READY");
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let db = db.clone();
            scope.spawn(move || {
                let stdout = std::io::stdout();
                for i in 0.. {
                    let id = start + i * threads as i64 + thread as i64;
                    let payload = "x".repeat(100 + (id % 400) as usize);
                    db.blocking_execute(
                        "INSERT INTO acked(id, payload) VALUES (?1, ?2)",
                        (id, payload),
                    )
                    .expect("write");
                    let mut out = stdout.lock();
                    writeln!(out, "ACK {id}").expect("print");
                    out.flush().expect("flush");
                }
            });
        }
    });
}
