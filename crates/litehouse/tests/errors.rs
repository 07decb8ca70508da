//! Bad input gets a typed error and changes nothing.

use litehouse::{Config, Database, Error};

use crate::util::{TestResult, count};

fn db(name: &str) -> Result<Database, Error> {
    let db = Database::open_memory(name, Config::default())?;
    db.blocking_execute(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        (),
    )?;
    Ok(db)
}

#[test]
fn invalid_sql_is_a_sql_error() -> TestResult {
    let db = db("errors-sql")?;
    assert!(matches!(
        db.blocking_execute("INSERT INTO nowhere VALUES (1)", ()),
        Err(Error::Sql { .. })
    ));
    assert!(matches!(
        db.blocking_execute("SELEC 1", ()),
        Err(Error::Sql { .. })
    ));
    assert!(matches!(
        db.blocking_query_json("SELECT nope FROM t", ()),
        Err(Error::Sql { .. })
    ));
    assert!(
        matches!(db.blocking_execute("SELECT 1", ()), Err(Error::Sql { .. })),
        "execute of a query"
    );
    assert!(matches!(
        db.blocking_execute(
            "INSERT INTO t(v) VALUES ('a'); INSERT INTO t(v) VALUES ('b')",
            ()
        ),
        Err(Error::Sql { .. })
    ));
    assert_eq!(count(&db, "t"), 0);
    Ok(())
}

#[test]
fn wrong_parameters_are_a_parameter_error() -> TestResult {
    let db = db("errors-params")?;
    let err = db
        .blocking_execute("INSERT INTO t(v) VALUES (?1)", ("a", "b"))
        .unwrap_err();
    assert!(matches!(err, Error::Parameter { .. }), "{err:?}");
    let err = db
        .blocking_execute("INSERT INTO t(v) VALUES (?1, ?2)", ("a",))
        .unwrap_err();
    assert!(
        matches!(err, Error::Parameter { .. } | Error::Sql { .. }),
        "{err:?}"
    );
    let err = db
        .blocking_query_json("SELECT * FROM t WHERE id = ?1", ())
        .unwrap_err();
    assert!(matches!(err, Error::Parameter { .. }), "{err:?}");
    assert_eq!(count(&db, "t"), 0);
    Ok(())
}

#[test]
fn writes_on_the_read_path_are_refused() -> TestResult {
    let db = db("errors-readonly")?;
    let err = db
        .blocking_query_json("INSERT INTO t(v) VALUES ('x') RETURNING id", ())
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    let err = db
        .blocking_read(|conn| Ok(conn.execute("INSERT INTO t(v) VALUES ('x')", [])?))
        .unwrap_err();
    assert!(matches!(err, Error::ReadOnly { .. }), "{err:?}");
    assert_eq!(count(&db, "t"), 0);
    Ok(())
}

#[test]
fn constraint_errors_carry_kind_and_code() -> TestResult {
    let db = db("errors-constraint")?;
    let err = db
        .blocking_execute("INSERT INTO t(v) VALUES (NULL)", ())
        .unwrap_err();
    assert_eq!(
        err.constraint_kind(),
        Some(litehouse::ConstraintKind::NotNull)
    );
    assert_eq!(err.extended_code(), Some(1299));
    Ok(())
}

#[test]
fn closures_cannot_end_the_group_transaction() -> TestResult {
    let db = db("errors-txn-control")?;
    for sql in [
        "COMMIT",
        "ROLLBACK",
        "BEGIN",
        "SAVEPOINT x",
        "RELEASE litehouse_request",
    ] {
        let result = db.blocking_transaction(move |conn| {
            conn.execute("INSERT INTO t(v) VALUES ('inside')", [])?;
            conn.execute_batch(sql)?;
            Ok(())
        });
        assert!(result.is_err(), "{sql} was allowed");
    }
    assert_eq!(count(&db, "t"), 0, "each refused closure was rolled back");
    db.blocking_execute("INSERT INTO t(v) VALUES ('ok')", ())?;
    assert_eq!(count(&db, "t"), 1);
    Ok(())
}

#[test]
fn user_errors_roll_back_the_closure() -> TestResult {
    let db = db("errors-user")?;
    let err = db
        .blocking_transaction(|conn| -> litehouse::Result<()> {
            conn.execute("INSERT INTO t(v) VALUES ('x')", [])?;
            Err(Error::user("insufficient funds"))
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "insufficient funds");
    assert_eq!(count(&db, "t"), 0);
    Ok(())
}

#[test]
fn a_script_is_all_or_nothing_and_names_the_failing_statement() -> TestResult {
    let db = db("errors-script")?;
    let err = db
        .blocking_script("INSERT INTO t(v) VALUES ('a'); INSERT INTO t(v) VALUES ('b'); INSERT INTO missing VALUES (1);")
        .unwrap_err();
    assert!(err.to_string().contains("statement 3"), "{err}");
    assert_eq!(count(&db, "t"), 0);
    Ok(())
}

#[test]
fn bad_configs_and_names_are_refused() {
    let err = Database::open_memory("bad name; DROP", Config::default()).unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
    let err = Database::open_memory(
        "x",
        Config {
            readers: 0,
            ..Config::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::Config { .. }));
    let err = Database::open("/nonexistent-dir/for/sure/x.db", Config::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("directory exists"), "{err}");
}

#[test]
fn a_closure_calling_its_own_database_gets_misuse_not_a_deadlock() -> TestResult {
    let db = db("errors-reentrant")?;
    let inner = db.clone();
    let err = db
        .blocking_transaction(move |_| inner.blocking_execute("INSERT INTO t(v) VALUES ('x')", ()))
        .unwrap_err();
    assert!(matches!(err, Error::Misuse { .. }), "{err:?}");
    assert_eq!(count(&db, "t"), 0);
    Ok(())
}

#[test]
fn a_cached_commit_in_a_closure_commits_nothing_behind_the_writers_back() -> TestResult {
    let db = db("errors-cached-commit")?;
    // The writer's own COMMIT sits compiled in the statement cache, so the authorizer never
    // sees this one; the commit hook must veto it.
    let result = db.blocking_transaction(|conn| {
        conn.execute("INSERT INTO t(v) VALUES ('before')", [])?;
        conn.prepare_cached("COMMIT")?.execute([])?;
        conn.execute("INSERT INTO t(v) VALUES ('after')", [])?;
        Ok(())
    });
    assert!(result.is_err(), "{result:?}");
    assert_eq!(
        count(&db, "t"),
        0,
        "nothing of the refused closure was committed"
    );
    db.blocking_execute("INSERT INTO t(v) VALUES ('ok')", ())?;
    assert_eq!(count(&db, "t"), 1);
    Ok(())
}

#[test]
fn statements_after_sqlite_rolled_back_the_group_are_not_committed() -> TestResult {
    let db = db("errors-or-rollback")?;
    db.blocking_execute("INSERT INTO t(id, v) VALUES (1, 'one')", ())?;
    let result = db.blocking_transaction(|conn| {
        // OR ROLLBACK ends the whole transaction; the closure ignores that and goes on.
        let _ = conn.execute("INSERT OR ROLLBACK INTO t(id, v) VALUES (1, 'dup')", []);
        conn.execute("INSERT INTO t(id, v) VALUES (99, 'stray')", [])?;
        Ok(())
    });
    assert!(result.is_err(), "{result:?}");
    let stray: i64 =
        db.blocking_query_row("SELECT count(*) FROM t WHERE id = 99", (), |r| r.get(0))?;
    assert_eq!(stray, 0, "a write reported as failed must not be committed");
    Ok(())
}

#[test]
fn maintenance_from_a_transaction_closure_is_misuse_not_a_deadlock() -> TestResult {
    let db = db("errors-exclusive-reentrant")?;
    let inner = db.clone();
    let err = db
        .blocking_transaction(move |_| inner.blocking_optimize())
        .unwrap_err();
    assert!(matches!(err, Error::Misuse { .. }), "{err:?}");
    db.blocking_execute("INSERT INTO t(v) VALUES ('still writing')", ())?;
    Ok(())
}

#[test]
fn a_read_nested_in_a_read_of_the_same_database_is_misuse_not_a_deadlock() -> TestResult {
    let db = Database::open_memory(
        "errors-nested-read",
        Config {
            readers: 1,
            ..Config::default()
        },
    )?;
    let inner = db.clone();
    let err = db
        .blocking_read(|_| inner.blocking_query_row("SELECT 1", (), |r| r.get::<_, i64>(0)))
        .unwrap_err();
    assert!(matches!(err, Error::Misuse { .. }), "{err:?}");
    // Reads of another database inside a read are fine.
    let other = Database::open_memory(
        "errors-nested-other",
        Config {
            readers: 1,
            ..Config::default()
        },
    )?;
    let n: i64 = db.blocking_read(|_| other.blocking_query_row("SELECT 2", (), |r| r.get(0)))?;
    assert_eq!(n, 2);
    Ok(())
}

#[test]
fn a_read_closure_that_leaves_a_transaction_open_does_not_stale_later_reads() -> TestResult {
    let db = Database::open_memory(
        "errors-open-read-txn",
        Config {
            readers: 1,
            ..Config::default()
        },
    )?;
    db.blocking_execute("CREATE TABLE t(x)", ())?;
    let result: litehouse::Result<()> = db.blocking_read(|conn| {
        conn.execute_batch("BEGIN; SELECT count(*) FROM t;")?;
        Err(Error::NoRows)
    });
    assert!(result.is_err());
    db.blocking_execute("INSERT INTO t VALUES (1)", ())?;
    assert_eq!(count(&db, "t"), 1, "the acknowledged insert is visible");
    Ok(())
}

#[test]
fn a_huge_busy_budget_means_wait_long_not_panic() -> TestResult {
    let db = Database::open_memory(
        "errors-huge-budget",
        Config {
            busy_budget: std::time::Duration::MAX,
            ..Config::default()
        },
    )?;
    db.blocking_execute("CREATE TABLE t(x)", ())?;
    Ok(())
}
