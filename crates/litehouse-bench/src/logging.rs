//! Logging workload L1: what the log database layer costs the threads that log.

use std::time::Duration;

use litehouse::{LogConfig, LogDatabase};
use tracing_subscriber::layer::SubscriberExt;

use crate::runner;
use crate::{BenchOptions, Measurement, Workload};

pub(crate) fn workloads() -> Vec<Workload> {
    vec![Workload {
        id: "L1",
        title: "tracing events/s from 1 and 4 threads: no layer, the log database layer flat out (drops when full), and paced so nothing drops",
        reference: "bare",
        run: events,
    }]
}

/// Emits as many events as fit in `duration` from `threads` threads through `dispatch`. With
/// `pace`, each thread waits for the log database to write everything queued after every
/// `pace.1` events, so the channel never overflows: that measures what can be stored.
fn storm(
    dispatch: &tracing::Dispatch,
    threads: usize,
    duration: Duration,
    pace: Option<(&LogDatabase, u64)>,
) -> runner::Counted {
    runner::threads(
        threads,
        duration,
        // Each worker thread logs through its own default dispatcher (the guard stays alive
        // for the whole run on that thread).
        |worker| (tracing::dispatcher::set_default(dispatch), worker),
        |(_, worker), iteration| {
            tracing::info!(
                worker = *worker,
                iteration,
                job = "resize",
                "processed item {iteration}"
            );
            match pace {
                Some((logs, every)) if (iteration + 1).is_multiple_of(every) => {
                    logs.blocking_flush().is_ok()
                }
                _ => true,
            }
        },
    )
}

/// Runs the layer once, checks that every event was stored or counted as dropped, and
/// reports it.
fn layered_run(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    threads: usize,
    duration: Duration,
    paced: bool,
) -> anyhow::Result<()> {
    let name = if paced { "logdb-paced" } else { "logdb" };
    let config = LogConfig::default();
    // Half the channel per burst, shared by the threads: a paced run never drops.
    let burst = (config.channel_capacity / (2 * threads)).max(1) as u64;
    let logs = LogDatabase::open(opts.db_path(&format!("L1-{name}-{threads}")), config)?;
    let layered = tracing::Dispatch::new(tracing_subscriber::registry().with(logs.layer()));
    let counted = storm(&layered, threads, duration, paced.then_some((&logs, burst)));
    logs.blocking_shutdown()?;
    let stats = logs.blocking_stats()?;
    anyhow::ensure!(
        stats.logged + stats.dropped == counted.ok + counted.failed,
        "{} events emitted but {} logged + {} dropped",
        counted.ok + counted.failed,
        stats.logged,
        stats.dropped
    );
    report(
        Measurement::new(
            "L1",
            name,
            threads,
            counted.ok,
            counted.failed,
            counted.elapsed,
        )
        .with_note(format!(
            "{} stored ({:.0}/s), {} dropped (channel full), {} batches",
            stats.logged,
            crate::per_second(stats.logged, counted.elapsed),
            stats.dropped,
            stats.batches
        )),
    );
    Ok(())
}

fn events(opts: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let duration = opts.pick(Duration::from_millis(1000), Duration::from_secs(4));
    for threads in [1, 4] {
        let bare = tracing::Dispatch::new(tracing_subscriber::registry());
        let counted = storm(&bare, threads, duration, None);
        report(
            Measurement::new(
                "L1",
                "bare",
                threads,
                counted.ok,
                counted.failed,
                counted.elapsed,
            )
            .with_note("tracing_subscriber::registry() with no layer"),
        );

        layered_run(opts, report, threads, duration, false)?;
        layered_run(opts, report, threads, duration, true)?;
    }
    Ok(())
}
