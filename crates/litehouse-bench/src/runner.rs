//! Running N threads or tasks against a deadline and counting what succeeded.

use std::future::Future;
use std::time::{Duration, Instant};

/// What a timed run produced.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    pub(crate) ok: u64,
    pub(crate) failed: u64,
    pub(crate) elapsed: Duration,
}

/// Runs `op(state, iteration)` on `threads` threads until `duration` has passed; each thread
/// first builds its own state with `init(worker)` (a connection, say). `op` returns whether
/// the operation succeeded.
pub(crate) fn threads<S>(
    threads: usize,
    duration: Duration,
    init: impl Fn(usize) -> S + Sync,
    op: impl Fn(&mut S, u64) -> bool + Sync,
) -> Counted {
    let (init, op) = (&init, &op);
    // Two barriers: every worker has finished `init` (ready), then the clock starts (go).
    let (ready, go) = (
        std::sync::Barrier::new(threads + 1),
        std::sync::Barrier::new(threads + 1),
    );
    let (ready, go) = (&ready, &go);
    let deadline_cell = std::sync::OnceLock::<Instant>::new();
    let deadline_cell = &deadline_cell;
    let (counts, started): (Vec<(u64, u64)>, Instant) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|worker| {
                scope.spawn(move || {
                    let mut state = init(worker);
                    ready.wait();
                    go.wait();
                    let deadline = *deadline_cell
                        .get()
                        .expect("deadline set before the barrier opens");
                    let (mut ok, mut failed) = (0, 0);
                    let mut iteration = 0;
                    while Instant::now() < deadline {
                        if op(&mut state, iteration) {
                            ok += 1
                        } else {
                            failed += 1
                        }
                        iteration += 1;
                    }
                    (ok, failed)
                })
            })
            .collect();
        // Setup (opening connections) is not measured: start the clock when all are ready.
        ready.wait();
        let started = Instant::now();
        deadline_cell.set(started + duration).expect("set once");
        go.wait();
        let counts = workers
            .into_iter()
            .map(|w| w.join().expect("bench worker"))
            .collect();
        (counts, started)
    });
    total(counts, started)
}

/// Runs `op(worker, iteration)` in `tasks` tokio tasks on a 2-worker runtime until
/// `duration` has passed.
pub(crate) fn tasks<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    tasks: usize,
    duration: Duration,
    op: F,
) -> Counted
where
    F: Fn(usize, u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    runtime.block_on(async move {
        let started = Instant::now();
        let deadline = started + duration;
        let handles: Vec<_> = (0..tasks)
            .map(|worker| {
                let op = op.clone();
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0, 0);
                    let mut iteration = 0;
                    while Instant::now() < deadline {
                        if op(worker, iteration).await {
                            ok += 1
                        } else {
                            failed += 1
                        }
                        iteration += 1;
                    }
                    (ok, failed)
                })
            })
            .collect();
        let mut counts = Vec::new();
        for handle in handles {
            counts.push(handle.await.expect("bench task"));
        }
        total(counts, started)
    })
}

/// Adds several runs up into one.
pub(crate) fn sum(runs: &[Counted]) -> Counted {
    Counted {
        ok: runs.iter().map(|run| run.ok).sum(),
        failed: runs.iter().map(|run| run.failed).sum(),
        elapsed: runs.iter().map(|run| run.elapsed).sum(),
    }
}

fn total(counts: Vec<(u64, u64)>, started: Instant) -> Counted {
    Counted {
        ok: counts.iter().map(|c| c.0).sum(),
        failed: counts.iter().map(|c| c.1).sum(),
        elapsed: started.elapsed(),
    }
}

/// A tokio runtime the size of this machine's async peers: 2 worker threads.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
