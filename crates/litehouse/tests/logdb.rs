//! The log database against real files: what an entry holds, queries, a logging storm that
//! must never block, counted drops, shutdown, and retention.

use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use litehouse::{Database, Error, LogConfig, LogDatabase, LogLevel, LogOrder, LogQuery};
use tracing_subscriber::layer::SubscriberExt;

use crate::util::hold_writer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn open(config: LogConfig) -> Result<(tempfile::TempDir, LogDatabase), Error> {
    let dir = tempfile::tempdir()?;
    let logs = LogDatabase::open(dir.path().join("logs.db"), config)?;
    Ok((dir, logs))
}

fn dispatch(logs: &LogDatabase) -> tracing::Dispatch {
    tracing::Dispatch::new(tracing_subscriber::registry().with(logs.layer()))
}

#[test]
fn entries_keep_time_level_target_message_fields_and_spans() -> TestResult {
    let (_dir, logs) = open(LogConfig::default())?;
    let before = SystemTime::now();
    tracing::dispatcher::with_default(&dispatch(&logs), || {
        let outer = tracing::info_span!("request", path = "/jobs");
        let _outer = outer.enter();
        let inner = tracing::debug_span!("db");
        let _inner = inner.enter();
        tracing::warn!(target: "app::jobs", job = 42_u64, ratio = 0.5, ok = false, who = "bob", "job {} slow", 42);
    });
    logs.blocking_flush()?;
    let entries = logs.blocking_query(&LogQuery::default())?;
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry.level, LogLevel::Warn);
    assert_eq!(entry.target, "app::jobs");
    assert_eq!(entry.message, "job 42 slow");
    assert_eq!(
        serde_json::Value::Object(entry.fields.clone()),
        serde_json::json!({"job": 42, "ratio": 0.5, "ok": false, "who": "bob"})
    );
    assert_eq!(entry.spans, ["request", "db"]);
    let micros = |time: SystemTime| {
        time.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros() as i64
    };
    assert!(entry.unix_micros >= micros(before) && entry.unix_micros <= micros(SystemTime::now()));
    Ok(())
}

#[test]
fn queries_filter_by_level_target_time_and_text_newest_first() -> TestResult {
    let (_dir, logs) = open(LogConfig::default())?;
    tracing::dispatcher::with_default(&dispatch(&logs), || {
        tracing::error!(target: "app::db", "disk full");
        tracing::warn!(target: "app::jobs::retry", attempt = 3, "Timeout talking to payments");
        tracing::info!(target: "app::jobs", "job done");
        tracing::debug!(target: "other", "noise");
    });
    logs.blocking_flush()?;
    let messages = |query: LogQuery| -> Vec<String> {
        logs.blocking_query(&query)
            .unwrap()
            .into_iter()
            .map(|entry| entry.message)
            .collect()
    };
    assert_eq!(
        messages(LogQuery::default()),
        [
            "noise",
            "job done",
            "Timeout talking to payments",
            "disk full"
        ]
    );
    assert_eq!(
        messages(LogQuery {
            min_level: Some(LogLevel::Warn),
            ..LogQuery::default()
        }),
        ["Timeout talking to payments", "disk full"]
    );
    assert_eq!(
        messages(LogQuery {
            target_prefix: Some("app::jobs".into()),
            ..LogQuery::default()
        }),
        ["job done", "Timeout talking to payments"]
    );
    assert_eq!(
        messages(LogQuery {
            contains: Some("timeout".into()),
            ..LogQuery::default()
        }),
        ["Timeout talking to payments"]
    );
    // Text in the fields matches too.
    assert_eq!(
        messages(LogQuery {
            contains: Some("attempt".into()),
            ..LogQuery::default()
        })
        .len(),
        1
    );
    assert_eq!(
        messages(LogQuery {
            limit: 2,
            ..LogQuery::default()
        }),
        ["noise", "job done"]
    );
    assert_eq!(
        messages(LogQuery {
            order: LogOrder::OldestFirst,
            limit: 1,
            ..LogQuery::default()
        }),
        ["disk full"]
    );
    let future = SystemTime::now() + Duration::from_secs(60);
    assert!(
        messages(LogQuery {
            since: Some(future),
            ..LogQuery::default()
        })
        .is_empty()
    );
    assert_eq!(
        messages(LogQuery {
            until: Some(future),
            ..LogQuery::default()
        })
        .len(),
        4
    );
    let all = logs.blocking_query(&LogQuery::default())?;
    let after = LogQuery {
        after_id: Some(all[1].id),
        order: LogOrder::OldestFirst,
        ..LogQuery::default()
    };
    assert_eq!(messages(after), ["noise"]);
    Ok(())
}

#[test]
fn a_logging_storm_never_blocks_and_every_event_is_logged_or_counted_as_dropped() -> TestResult {
    let config = LogConfig {
        channel_capacity: 64,
        batch_size: 16,
        ..LogConfig::default()
    };
    let (_dir, logs) = open(config)?;
    // The log database cannot write at all while the storm runs: if sending an event ever
    // waited for the database, the storm threads would never finish.
    // Keep the log database's engine writer busy, so the log writer thread cannot write and
    // the channel fills up.
    let (release, holder) = hold_writer(logs.database());
    let (done, storm_finished) = mpsc::channel();
    const THREADS: u64 = 8;
    const EVENTS: u64 = 2000;
    for thread in 0..THREADS {
        let dispatch = dispatch(&logs);
        let done = done.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                for n in 0..EVENTS {
                    tracing::info!(thread, n, "storm");
                }
            });
            let _ = done.send(());
        });
    }
    for _ in 0..THREADS {
        storm_finished
            .recv_timeout(Duration::from_secs(120))
            .expect("a storm thread was blocked by the log database");
    }
    let stats = logs.blocking_stats()?;
    assert!(
        stats.dropped > 0,
        "the channel of 64 must have overflowed: {stats:?}"
    );
    release.send(())?;
    holder.join().expect("holder thread")?;
    logs.blocking_shutdown()?;
    let stats = logs.blocking_stats()?;
    assert_eq!(stats.logged + stats.dropped, THREADS * EVENTS, "{stats:?}");
    assert_eq!(stats.entries, stats.logged);
    assert_eq!(stats.pending, 0);
    Ok(())
}

#[test]
fn shutdown_writes_what_is_queued_and_later_events_are_counted_as_dropped() -> TestResult {
    // Neither the interval nor the batch size would write these events on their own.
    let config = LogConfig {
        flush_interval: Duration::from_secs(3600),
        batch_size: 100_000,
        ..LogConfig::default()
    };
    let (_dir, logs) = open(config)?;
    let dispatch = dispatch(&logs);
    tracing::dispatcher::with_default(&dispatch, || {
        for n in 0..500 {
            tracing::info!(n, "queued");
        }
    });
    logs.blocking_shutdown()?;
    assert_eq!(logs.blocking_stats()?.entries, 500);
    tracing::dispatcher::with_default(&dispatch, || tracing::info!("too late"));
    let stats = logs.blocking_stats()?;
    assert_eq!((stats.logged, stats.dropped, stats.entries), (500, 1, 500));
    logs.blocking_shutdown()?;
    Ok(())
}

fn insert_aged(db: &Database, count: i64, age: Duration, message: &str) -> Result<(), Error> {
    let ts = (SystemTime::now() - age)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(Error::user)?
        .as_micros() as i64;
    db.blocking_execute_many(
        "INSERT INTO logs(ts, level, target, message) VALUES (?1, 3, 'test', ?2)",
        (0..count).map(|n| (ts + n, format!("{message} {n} {}", "x".repeat(200)))),
    )?;
    Ok(())
}

#[test]
fn retention_deletes_old_entries_in_batches_and_gives_the_space_back() -> TestResult {
    let config = LogConfig {
        retention: Some(Duration::from_secs(3600)),
        delete_batch_size: 100,
        ..LogConfig::default()
    };
    let (_dir, logs) = open(config)?;
    // The purge that runs at start is over once this one answers.
    assert_eq!(logs.blocking_purge()?, 0);
    let db = logs.database();
    insert_aged(db, 5000, Duration::from_secs(7200), "old")?;
    insert_aged(db, 50, Duration::from_secs(60), "recent")?;
    assert_eq!(logs.blocking_purge()?, 5000);
    let stats = logs.blocking_stats()?;
    assert_eq!((stats.entries, stats.purged), (50, 5000));
    let old: i64 = db.blocking_query_row(
        "SELECT count(*) FROM logs WHERE message LIKE 'old%'",
        (),
        |row| row.get(0),
    )?;
    assert_eq!(old, 0);
    // Incremental auto-vacuum is on, and the purge released every free page.
    let auto_vacuum: i64 = db.blocking_query_row("PRAGMA auto_vacuum", (), |row| row.get(0))?;
    assert_eq!(auto_vacuum, 2);
    let free_pages: i64 = db.blocking_query_row("PRAGMA freelist_count", (), |row| row.get(0))?;
    assert_eq!(free_pages, 0);
    assert_eq!(logs.blocking_purge()?, 0);
    Ok(())
}

#[test]
fn retention_runs_on_its_schedule() -> TestResult {
    let config = LogConfig {
        retention: Some(Duration::from_secs(3600)),
        purge_interval: Duration::from_millis(20),
        ..LogConfig::default()
    };
    let (_dir, logs) = open(config)?;
    insert_aged(logs.database(), 300, Duration::from_secs(7200), "old")?;
    insert_aged(logs.database(), 3, Duration::from_secs(10), "recent")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while logs.blocking_stats()?.purged < 300 {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = logs.blocking_stats()?;
    assert_eq!((stats.purged, stats.entries), (300, 3));
    Ok(())
}

#[test]
fn async_queries_and_stats() -> TestResult {
    let logs = LogDatabase::open_memory("logdb-async", LogConfig::default())?;
    tracing::dispatcher::with_default(&dispatch(&logs), || tracing::error!("boom"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        logs.flush().await?;
        let entries = logs.query(&LogQuery::default()).await?;
        assert_eq!(entries[0].message, "boom");
        let stats = logs.stats().await?;
        assert_eq!((stats.logged, stats.entries), (1, 1));
        assert!(
            stats.oldest_unix_micros.is_some()
                && stats.oldest_unix_micros == stats.newest_unix_micros
        );
        logs.shutdown().await
    })?;
    Ok(())
}
