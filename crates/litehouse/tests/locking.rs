//! Another process holding SQLite's write lock: litehouse retries, then says `Busy`.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use litehouse::{Config, Error};

use crate::child;
use crate::util::{TestResult, count, file_db};

/// Starts a child that holds the write lock for `millis` (inserting into table `t`), and
/// returns once it has it.
fn lock_in_child(path: &std::path::Path, millis: u64) -> std::io::Result<std::process::Child> {
    lock_in_child_as("hold-lock", path, millis)
}

/// Like [`lock_in_child`], with the child `role` (`hold-write-lock` needs no table).
pub(crate) fn lock_in_child_as(
    role: &str,
    path: &std::path::Path,
    millis: u64,
) -> std::io::Result<std::process::Child> {
    let path = path.to_str().expect("utf-8 temp path");
    let mut lock_holder = child::spawn(role, &[path, &millis.to_string()])?;
    let stdout = lock_holder.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line == "LOCKED" => {
                // Keep reading, so the child can still print its test summary when it ends.
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(lock_holder);
            }
            Some(Ok(_)) => {}
            _ => panic!("the child exited before taking the lock"),
        }
    }
}

#[test]
fn a_short_foreign_lock_is_waited_out() -> TestResult {
    let (_dir, path, db) = file_db(Config {
        busy_budget: Duration::from_secs(10),
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let mut lock_holder = lock_in_child(&path, 400)?;
    db.blocking_execute("INSERT INTO t(v) VALUES ('from parent')", ())?;
    assert!(lock_holder.wait()?.success());
    assert_eq!(count(&db, "t"), 2, "both the child's and the parent's row");
    let locks = db.stats().locks;
    assert!(locks.busy_retries > 0, "the writer backed off: {locks:?}");
    assert_eq!(locks.busy_errors, 0);
    Ok(())
}

#[test]
fn a_long_foreign_lock_gives_busy_with_retry_after() -> TestResult {
    let (_dir, path, db) = file_db(Config {
        busy_budget: Duration::from_millis(150),
        ..Config::default()
    })?;
    db.blocking_execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())?;
    let mut lock_holder = lock_in_child(&path, 3_000)?;
    let err = db
        .blocking_execute("INSERT INTO t(v) VALUES ('refused')", ())
        .unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(
        err.retry_after()
            .is_some_and(|after| after > Duration::ZERO)
    );
    assert!(err.to_string().contains("retry after"), "{err}");
    assert_eq!(db.stats().locks.busy_errors, 1);
    assert!(lock_holder.wait()?.success());
    // Once the other process lets go, writing works again and the refused row is absent.
    db.blocking_execute("INSERT INTO t(v) VALUES ('later')", ())?;
    let values: Vec<String> =
        db.blocking_query_map("SELECT v FROM t ORDER BY id", (), |r| r.get(0))?;
    assert_eq!(values, ["from child", "later"]);
    Ok(())
}
