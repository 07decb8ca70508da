//! Helpers shared by the integration tests.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use litehouse::{Config, Database};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A database file in a fresh temporary directory (kept alive by the returned guard).
pub(crate) fn file_db(
    config: Config,
) -> Result<(tempfile::TempDir, PathBuf, Database), litehouse::Error> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("test.db");
    let db = Database::open(&path, config)?;
    Ok((dir, path, db))
}

/// Blocks the writer: queues a transaction that waits until the returned sender is used (or
/// dropped). Returns once the writer is inside that transaction, so requests sent afterwards
/// queue up and form the next group together.
pub(crate) fn hold_writer(
    db: &Database,
) -> (
    mpsc::Sender<()>,
    std::thread::JoinHandle<litehouse::Result<()>>,
) {
    let (release, wait_for_release) = mpsc::channel::<()>();
    let (entered, wait_for_entry) = mpsc::channel::<()>();
    let holder = db.clone();
    let thread = std::thread::spawn(move || {
        holder.blocking_transaction(move |_| {
            let _ = entered.send(());
            let _ = wait_for_release.recv();
            Ok(())
        })
    });
    wait_for_entry
        .recv()
        .expect("the holding transaction starts");
    (release, thread)
}

/// Waits until `count` requests are queued behind the writer.
pub(crate) fn wait_for_queue(db: &Database, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.stats().queue_depth < count {
        assert!(Instant::now() < deadline, "requests never queued up");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(crate) fn count(db: &Database, table: &str) -> i64 {
    db.blocking_query_row(&format!("SELECT count(*) FROM {table}"), (), |row| {
        row.get(0)
    })
    .expect("count query")
}

/// Runs each request on its own thread while the writer is held, queued in the given order,
/// then releases the writer so they all commit (or fail) as one group. Returns their results
/// in order.
pub(crate) fn run_as_one_group<T: Send>(
    db: &Database,
    requests: Vec<Box<dyn FnOnce(Database) -> litehouse::Result<T> + Send + '_>>,
) -> Vec<litehouse::Result<T>> {
    let (release, holder) = hold_writer(db);
    let count = requests.len();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .into_iter()
            .enumerate()
            .map(|(index, request)| {
                let writer = db.clone();
                let handle = scope.spawn(move || request(writer));
                wait_for_queue(db, index + 1);
                handle
            })
            .collect();
        wait_for_queue(db, count);
        release.send(()).expect("release");
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    holder
        .join()
        .expect("holder")
        .expect("the holding transaction commits");
    results
}

/// Emits `n` events into `logs` through its tracing layer.
pub(crate) fn log_n(logs: &litehouse::LogDatabase, n: usize) {
    use tracing_subscriber::layer::SubscriberExt;
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(logs.layer()));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..n {
            tracing::info!(i, "entry");
        }
    });
}

/// Queues `entries` log entries (in batches of `batch_size`) while another process holds the
/// log file's write lock, then shuts the log database down; returns the shutdown's result,
/// how long it took and the stats after it.
pub(crate) fn shut_down_logs_behind_a_foreign_lock(
    busy_budget: Duration,
    batch_size: usize,
    entries: usize,
) -> Result<(litehouse::Result<()>, Duration, litehouse::LogStats), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("logs.db");
    let db = Database::open(
        &path,
        Config {
            busy_budget,
            ..Config::default()
        },
    )?;
    let logs = litehouse::LogDatabase::with_database(
        db,
        litehouse::LogConfig {
            batch_size,
            flush_interval: Duration::from_secs(3600),
            ..litehouse::LogConfig::default()
        },
    )?;
    let mut lock_holder = crate::locking::lock_in_child_as("hold-write-lock", &path, 20_000)?;
    log_n(&logs, entries);
    let started = Instant::now();
    let result = logs.blocking_shutdown();
    let took = started.elapsed();
    lock_holder.kill()?;
    lock_holder.wait()?;
    let stats = logs.blocking_stats()?;
    Ok((result, took, stats))
}

/// Queues, in one group, an async transaction running `work` whose caller gives up before the
/// group runs (so its result, or its error, is dropped on the writer) and a neighbour's insert
/// into `t`; returns the neighbour's answer.
pub(crate) fn abandon_beside_a_neighbour<T: Send + 'static>(
    db: &Database,
    work: impl FnOnce(&rusqlite::Connection) -> litehouse::Result<T> + Send + 'static,
) -> Result<litehouse::Result<usize>, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (release, holder) = hold_writer(db);
    let abandoned = runtime.spawn({
        let db = db.clone();
        // Never delivered: the task is aborted while the request waits in the queue.
        async move { std::mem::forget(db.transaction(work).await) }
    });
    wait_for_queue(db, 1);
    let neighbour = std::thread::spawn({
        let db = db.clone();
        move || db.blocking_execute("INSERT INTO t(v) VALUES ('neighbour')", ())
    });
    wait_for_queue(db, 2);
    abandoned.abort();
    let _ = runtime.block_on(abandoned);
    release.send(())?;
    holder.join().expect("holder")?;
    Ok(neighbour.join().expect("neighbour"))
}
