//! Write buffer workload B1: background workers rewriting the status of their own rows, through
//! the write buffer against straight to the database.

use std::time::{Duration, Instant};

use litehouse::{BufferConfig, Config, Database, Row, WriteBuffer};

use crate::runner;
use crate::{BenchOptions, Measurement, Workload};

pub(crate) fn workloads() -> Vec<Workload> {
    vec![Workload {
        id: "B1",
        title: "64 workers updating the status of their own 100 rows, buffered vs direct, Balanced",
        reference: "direct",
        run: status_updates,
    }]
}

const WORKERS: usize = 64;
const ROWS_PER_WORKER: u64 = 100;
const JOBS: &str =
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY, status TEXT NOT NULL, progress INTEGER NOT NULL)";
const UPDATE: &str = "UPDATE jobs SET status = ?2, progress = ?3 WHERE id = ?1";

fn job_id(worker: usize, iteration: u64) -> i64 {
    (worker as u64 * ROWS_PER_WORKER + iteration % ROWS_PER_WORKER) as i64
}

fn status(iteration: u64) -> &'static str {
    ["queued", "running", "uploading", "done"][(iteration % 4) as usize]
}

fn open_jobs(opts: &BenchOptions, name: &str) -> anyhow::Result<Database> {
    let db = Database::open(opts.db_path(name), Config::default())?;
    db.blocking_execute(JOBS, ())?;
    db.blocking_execute_many(
        "INSERT INTO jobs(id, status, progress) VALUES (?1, 'new', 0)",
        (0..WORKERS as i64 * ROWS_PER_WORKER as i64).map(|id| (id,)),
    )?;
    Ok(db)
}

/// Checks that every update landed: worker `w`'s iteration `i` sets progress `i` on row
/// `i % 100`, so after `n` iterations its highest progress is `n - 1` and its rows hold the
/// last 100 iterations. The sum of `n` over workers must equal the updates reported.
fn check_final(db: &Database, updates: u64) -> anyhow::Result<()> {
    let workers: Vec<(i64, i64, i64)> = db.blocking_query_map(
        "SELECT id / 100, min(progress), max(progress) FROM jobs GROUP BY id / 100",
        (),
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    let mut total = 0;
    for (worker, lowest, highest) in workers {
        total += highest as u64 + 1;
        anyhow::ensure!(
            highest < 99 || highest - lowest == 99,
            "worker {worker}: rows span progress {lowest}..={highest}, an update was lost"
        );
    }
    anyhow::ensure!(
        total == updates,
        "{updates} updates reported but the table shows {total}"
    );
    Ok(())
}

fn status_updates(opts: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let duration = opts.pick(Duration::from_millis(1500), Duration::from_secs(5));

    let db = open_jobs(opts, "B1-direct")?;
    let counted = runner::threads(
        WORKERS,
        duration,
        |worker| worker,
        |worker, iteration| {
            let id = job_id(*worker, iteration);
            db.blocking_execute(UPDATE, (id, status(iteration), iteration as i64))
                .is_ok()
        },
    );
    check_final(&db, counted.ok)?;
    report(
        Measurement::new(
            "B1",
            "direct",
            WORKERS,
            counted.ok,
            counted.failed,
            counted.elapsed,
        )
        .with_note(format!("{} rows written", counted.ok)),
    );
    drop(db);

    let db = open_jobs(opts, "B1-buffered")?;
    let buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
    let counted = runner::threads(
        WORKERS,
        duration,
        |worker| worker,
        |worker, iteration| {
            let row = Row::new()
                .set("id", job_id(*worker, iteration))
                .set("status", status(iteration))
                .set("progress", iteration as i64);
            buffer.blocking_update("jobs", row, &["id"]).is_ok()
        },
    );
    // The final flush is part of the work: measured time includes it.
    let stopping = Instant::now();
    buffer.blocking_stop()?;
    let final_flush = stopping.elapsed();
    let stats = buffer.stats();
    check_final(&db, counted.ok)?;
    report(
        Measurement::new(
            "B1",
            "buffered",
            WORKERS,
            counted.ok,
            counted.failed,
            counted.elapsed + final_flush,
        )
        .with_note(format!(
            "{} rows written in {} flushes ({} writes coalesced), final flush {} ms",
            stats.flushed,
            stats.flushes,
            stats.coalesced,
            final_flush.as_millis()
        )),
    );
    Ok(())
}
