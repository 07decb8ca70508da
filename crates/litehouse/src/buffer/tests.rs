use std::time::Duration;

use super::*;

fn memory_db(name: &str) -> Database {
    Database::open_memory(name, crate::Config::default()).unwrap()
}

#[test]
fn rejects_bad_configs() {
    let check = |config: BufferConfig| assert!(config.validated().is_err());
    check(BufferConfig {
        max_buffer_size: 0,
        ..BufferConfig::default()
    });
    check(BufferConfig {
        flush_batch_size: 0,
        ..BufferConfig::default()
    });
    check(BufferConfig {
        flush_interval: Duration::ZERO,
        ..BufferConfig::default()
    });
    check(BufferConfig {
        retry_min_delay: Duration::from_secs(2),
        retry_max_delay: Duration::from_secs(1),
        ..BufferConfig::default()
    });
    check(BufferConfig {
        table_priorities: vec!["a b".into()],
        ..BufferConfig::default()
    });
    assert!(BufferConfig::default().validated().is_ok());
}

#[test]
fn bad_writes_are_refused_before_buffering() {
    let buffer = WriteBuffer::start(memory_db("buffer-unit-bad"), BufferConfig::default()).unwrap();
    let row = || Row::new().set("id", 1).set("n", 1);
    assert!(buffer.try_upsert("no such; table", row(), &["id"]).is_err());
    assert!(buffer.try_upsert("t", row(), &["missing"]).is_err());
    assert!(
        buffer
            .try_update("t", Row::new().set("id", 1), &["id"])
            .is_err()
    );
    assert!(buffer.try_delete("t", Row::new()).is_err());
    assert_eq!(buffer.stats().buffered, 0);
    assert_eq!(buffer.blocking_stop().unwrap(), 0);
    assert!(
        buffer
            .try_upsert("t", row(), &["id"])
            .unwrap_err()
            .is_closed()
    );
    assert_eq!(buffer.blocking_stop().unwrap(), 0, "stopping twice is fine");
}

#[test]
fn update_and_delete_reach_the_database() -> Result<()> {
    let db = memory_db("buffer-unit-ops");
    db.blocking_execute(
        "CREATE TABLE t(a INTEGER, b INTEGER, n INTEGER, PRIMARY KEY(a, b))",
        (),
    )?;
    db.blocking_execute("INSERT INTO t VALUES (1, 1, 0), (1, 2, 0), (2, 1, 0)", ())?;
    let buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
    buffer.blocking_update(
        "t",
        Row::new().set("a", 1).set("b", 1).set("n", 5),
        &["a", "b"],
    )?;
    buffer.blocking_delete("t", Row::new().set("a", 1).set("b", 2))?;
    buffer.blocking_update(
        "t",
        Row::new().set("a", 9).set("b", 9).set("n", 5),
        &["a", "b"],
    )?;
    assert_eq!(buffer.blocking_force_flush()?, 3);
    let rows = db.blocking_query_map("SELECT a, b, n FROM t ORDER BY a, b", (), |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    assert_eq!(rows, vec![(1, 1, 5), (2, 1, 0)]);
    Ok(())
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<WriteBuffer>();
    check::<BufferStats>();
}
