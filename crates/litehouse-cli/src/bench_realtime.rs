//! Realtime workload R1 of `litehouse bench`: the real `litehouse serve` stack on
//! 127.0.0.1:0, 1,000 Server-Sent Events subscribers in a separate process (the hidden
//! `litehouse bench-realtime-load`, this binary again), and writers in the server process
//! committing about 5,000 changes/s.
//!
//! Every document carries `room` (0..[`ROOMS`]), `seq` (its position in its room; one
//! writer task owns each room, so `seq` order is commit order) and `sent_us` (wall-clock
//! microseconds just before the create call). Subscriber `i` follows `room=eq.(i % ROOMS)`,
//! so the server's shared feed evaluates 1,000 compiled filters per change and each
//! subscriber receives about 5,000 / [`ROOMS`] events/s. The load process checks that each
//! subscriber gets `seq` 0, 1, 2, ... of its room with no gap and no duplicate (resuming with
//! `Last-Event-ID` after a reset), and measures latency from `sent_us` to receipt on the same
//! machine clock: create call, commit, fan-out and SSE together.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use litehouse_bench::{BenchOptions, Measurement, Workload};
use litehouse_docs::{CollectionSpec, Store};
use litehouse_server::ServerConfig;

use crate::bench_http::{BenchStore, backends};
use serde_json::json;

const COLLECTION: &str = "events";
/// Rooms documents are spread over; each subscriber follows one.
const ROOMS: u64 = 100;
/// Subscribers in the load process.
const SUBSCRIBERS: usize = 1000;
/// Committed changes per second the writers aim at.
const RATE: u64 = 5000;
/// Writer tasks (each owns the rooms `r` with `r % WRITERS == task`).
const WRITERS: u64 = 100;

/// The realtime workload.
pub(crate) fn workloads() -> Vec<Workload> {
    vec![Workload {
        id: "R1",
        title: "realtime: 1,000 SSE subscribers (separate process, one room filter each) while writers commit ~5,000 changes/s; delivered events/s, create-to-receipt latency, resets",
        reference: "none",
        run,
    }]
}

fn run(options: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let seconds = options.pick(5.0, 15.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lh-bench-rt")
        .enable_all()
        .build()?;
    for (name, pg) in backends(options) {
        let running = runtime
            .block_on(start(options, pg.as_deref()))
            .with_context(|| format!("starting {name}"))?;
        let outcome = measure(&runtime, &running, seconds);
        runtime.block_on(running.stop())?;
        let (written, write_secs, result) = outcome?;
        report(
            Measurement::new(
                "R1",
                name,
                SUBSCRIBERS,
                result.received,
                result.missing + result.out_of_order,
                Duration::from_secs_f64(write_secs),
            )
            .with_note(format!(
                "{} changes committed at {:.0}/s (create call p50 {:.1} ms, p99 {:.1} ms); {} of {} expected events delivered, {} out of order/duplicate; commit-to-receipt p50 {:.1} ms, p99 {:.1} ms; create-call-to-receipt p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} resets; {} subscribe retries after 503 {}",
                written.changes,
                written.changes as f64 / write_secs,
                written.p50_us as f64 / 1000.0,
                written.p99_us as f64 / 1000.0,
                result.received,
                result.expected,
                result.out_of_order,
                result.commit_p50_us as f64 / 1000.0,
                result.commit_p99_us as f64 / 1000.0,
                result.p50_us as f64 / 1000.0,
                result.p99_us as f64 / 1000.0,
                result.max_us as f64 / 1000.0,
                result.resets,
                result.retries,
                result.busy_codes
            )),
        );
    }
    Ok(())
}

/// The server under load, and the store the writers write through.
struct Running {
    served: crate::bench_http::Running,
    store: Store,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        drop(self.store);
        self.served.stop().await
    }
}

async fn start(options: &BenchOptions, pg: Option<&str>) -> anyhow::Result<Running> {
    let pg = pg.map(|url| litehouse_docs::PostgresConfig {
        url: url.to_owned(),
        schema: format!("lh_bench_rt_{}", std::process::id()),
        pool_size: 32,
    });
    let bench = BenchStore::open(
        options,
        "R1-litehouse",
        litehouse::Config::default(),
        pg,
        COLLECTION,
        CollectionSpec::default(),
    )
    .await?;
    let store = bench.store.clone();
    let config = ServerConfig {
        max_realtime_subscribers: SUBSCRIBERS + 16,
        ..ServerConfig::default()
    };
    let served = bench.serve(options, "R1", config, Vec::new()).await?;
    Ok(Running { served, store })
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Starts the subscribers, writes for `seconds`, tells the load process what each room
/// should have received and reads its result. Returns (changes written, seconds, result).
fn measure(
    runtime: &tokio::runtime::Runtime,
    running: &Running,
    seconds: f64,
) -> anyhow::Result<(Written, f64, LoadResult)> {
    let exe = std::env::current_exe().context("where is this binary?")?;
    let mut child = Command::new(exe)
        .arg("bench-realtime-load")
        .arg("--url")
        .arg(format!(
            "http://{}/api/realtime?collections={COLLECTION}",
            running.served.addr
        ))
        .arg("--subscribers")
        .arg(SUBSCRIBERS.to_string())
        .arg("--rooms")
        .arg(ROOMS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start the load process")?;
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    anyhow::ensure!(
        line.trim() == "ready",
        "the load process did not get its subscribers up: {line:?}"
    );
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..ROOMS).map(|_| AtomicU64::new(0)).collect());
    let started = Instant::now();
    let written = runtime.block_on(write(&running.store, seconds, Arc::clone(&counts)))?;
    let write_secs = started.elapsed().as_secs_f64();
    {
        // Per room, when each `seq`'s create returned (its COMMIT): the load process
        // counts what each subscriber must receive and measures commit-to-receipt from it.
        let mut stdin = child.stdin.take().context("no stdin")?;
        writeln!(stdin, "{}", serde_json::to_string(&written.commits)?)?;
    }
    line.clear();
    stdout.read_line(&mut line)?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "the load process failed ({status})");
    Ok((written, write_secs, serde_json::from_str(&line)?))
}

/// What the writers did.
struct Written {
    changes: u64,
    /// Per room, per `seq`: wall-clock microseconds when its create call returned.
    commits: Vec<Vec<u64>>,
    /// Latency of the create call (to COMMIT returned), microseconds.
    p50_us: u64,
    p99_us: u64,
}

/// Writer tasks paced to [`RATE`] changes/s in total for `seconds`.
async fn write(
    store: &Store,
    seconds: f64,
    counts: Arc<Vec<AtomicU64>>,
) -> anyhow::Result<Written> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..WRITERS {
        let store = store.clone();
        let counts = Arc::clone(&counts);
        tasks.spawn(async move {
            let rooms: Vec<u64> = (0..ROOMS).filter(|room| room % WRITERS == task).collect();
            let per_task = RATE / WRITERS;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_task as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut written = 0u64;
            let mut latencies = Vec::new();
            let mut commits = Vec::new();
            while Instant::now() < deadline {
                tick.tick().await;
                let room = rooms[(written % rooms.len() as u64) as usize];
                let seq = counts[room as usize].load(Ordering::Relaxed);
                let call = Instant::now();
                store
                    .create(
                        COLLECTION,
                        json!({"room": room, "seq": seq, "sent_us": now_us(), "text": "a realtime event"}),
                    )
                    .await?;
                commits.push((room, seq, now_us()));
                latencies.push(call.elapsed().as_micros() as u64);
                counts[room as usize].store(seq + 1, Ordering::Relaxed);
                written += 1;
            }
            anyhow::Ok((written, latencies, commits))
        });
    }
    let mut total = 0;
    let mut latencies = Vec::new();
    let mut commits: Vec<Vec<u64>> = vec![Vec::new(); ROOMS as usize];
    while let Some(joined) = tasks.join_next().await {
        let (written, mut own, committed) = joined??;
        total += written;
        latencies.append(&mut own);
        // A room's writes come from one task, in `seq` order.
        for (room, seq, at) in committed {
            debug_assert_eq!(commits[room as usize].len() as u64, seq);
            commits[room as usize].push(at);
        }
    }
    latencies.sort_unstable();
    let at = |q: f64| litehouse_bench::quantile(&latencies, q).unwrap_or(0);
    Ok(Written {
        changes: total,
        commits,
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}

/// What the load process reports.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LoadResult {
    /// Events received in order (each a new `seq` of the subscriber's room).
    received: u64,
    /// Events the subscribers should have received in all.
    expected: u64,
    /// Expected events that never arrived before the deadline.
    missing: u64,
    /// Events whose `seq` was not the next one (a gap, a duplicate or a reordering).
    out_of_order: u64,
    resets: u64,
    /// Subscribe requests answered 503 (server busy) and retried.
    retries: u64,
    /// Their error codes (`overloaded`, `busy`, `timeout`, ...).
    busy_codes: String,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// From the create call returning (COMMIT) to receipt.
    commit_p50_us: u64,
    commit_p99_us: u64,
}

/// Arguments of the hidden `litehouse bench-realtime-load` subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// The `/api/realtime` URL without a filter; `&room=eq.N` is added per subscriber.
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = SUBSCRIBERS)]
    subscribers: usize,
    #[arg(long, default_value_t = ROOMS)]
    rooms: u64,
}

/// One subscriber's tally.
#[derive(Default)]
struct Tally {
    next_seq: u64,
    received: u64,
    out_of_order: u64,
    resets: u64,
    /// Subscribe attempts answered 503 and retried.
    retries: u64,
    /// The error code of the first 503.
    busy_code: String,
    /// Create-call-to-receipt latency per event received in order, microseconds.
    latencies: Vec<u32>,
    /// Receipt time per `seq` received in order, wall-clock microseconds.
    receipts: Vec<u64>,
}

/// Runs the subscribers: prints `ready` once all are live, reads the expected counts per
/// room from stdin (a JSON array, after the writers stopped), waits up to 10 s for them and
/// prints one JSON line of [`LoadResult`]. Traffic goes only to loopback.
pub(crate) fn load(args: LoadArgs) -> anyhow::Result<()> {
    let LoadArgs {
        url,
        subscribers,
        rooms,
    } = args;
    let parsed = reqwest::Url::parse(&url)?;
    let loopback = parsed
        .host_str()
        .unwrap_or_default()
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        loopback,
        "the load process only connects to loopback, not {url}"
    );
    anyhow::ensure!(
        rooms > 0 && subscribers > 0,
        "--rooms and --subscribers > 0"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lh-bench-rt-load")
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(subscribers)
            .build()?;
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(subscribers);
        // The expected count per room, once the writers stopped.
        let (done_tx, done_rx) = tokio::sync::watch::channel::<Option<Arc<Vec<u64>>>>(None);
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..subscribers {
            let room = index as u64 % rooms;
            let (client, url, ready, mut done) = (
                client.clone(),
                format!("{url}&room=eq.{room}"),
                ready_tx.clone(),
                done_rx.clone(),
            );
            tasks.spawn(async move {
                let mut tally = Tally::default();
                let mut last_id: Option<String> = None;
                let mut ready = Some(ready);
                'connect: loop {
                    let mut request = client.get(&url);
                    if let Some(id) = &last_id {
                        request = request.header("Last-Event-ID", id.clone());
                    }
                    let mut response = request.send().await?;
                    if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
                        && tally.retries < 100
                    {
                        // Busy (as a browser would, retry after a pause).
                        tally.retries += 1;
                        if tally.busy_code.is_empty() {
                            let body: serde_json::Value = response.json().await.unwrap_or_default();
                            tally.busy_code = body["code"].as_str().unwrap_or("?").to_owned();
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue 'connect;
                    }
                    anyhow::ensure!(
                        response.status().is_success(),
                        "subscribe: {}: {}",
                        response.status(),
                        response.text().await.unwrap_or_default()
                    );
                    let mut buffer = String::new();
                    loop {
                        // Done once the writers stopped and this room's count arrived.
                        let finished = done
                            .borrow()
                            .as_ref()
                            .is_some_and(|counts| tally.next_seq >= counts[room as usize]);
                        if finished {
                            break 'connect;
                        }
                        let chunk = tokio::select! {
                            chunk = response.chunk() => chunk?,
                            _ = done.changed() => continue,
                        };
                        let Some(chunk) = chunk else {
                            continue 'connect;
                        };
                        buffer.push_str(std::str::from_utf8(&chunk)?);
                        while let Some(end) = buffer.find("\n\n") {
                            let block: String = buffer.drain(..end + 2).collect();
                            let (mut event, mut id, mut data) = ("message", None, "");
                            for line in block.lines() {
                                if let Some(value) = line.strip_prefix("event:") {
                                    event = value.trim();
                                } else if let Some(value) = line.strip_prefix("id:") {
                                    id = Some(value.trim().to_owned());
                                } else if let Some(value) = line.strip_prefix("data:") {
                                    data = value.trim_start();
                                }
                            }
                            match event {
                                "upToDate" => {
                                    if let Some(ready) = ready.take() {
                                        let _ = ready.send(()).await;
                                    }
                                }
                                "change" => {
                                    let value: serde_json::Value = serde_json::from_str(data)?;
                                    let document = &value["document"];
                                    let sent = document["sent_us"].as_u64().unwrap_or(0);
                                    let seq = document["seq"].as_u64().unwrap_or(u64::MAX);
                                    let latency = now_us().saturating_sub(sent);
                                    if seq == tally.next_seq {
                                        tally.next_seq += 1;
                                        tally.received += 1;
                                        tally
                                            .latencies
                                            .push(u32::try_from(latency).unwrap_or(u32::MAX));
                                        tally.receipts.push(now_us());
                                    } else {
                                        tally.out_of_order += 1;
                                    }
                                }
                                "reset" => {
                                    tally.resets += 1;
                                    last_id = id.clone();
                                    continue 'connect;
                                }
                                "error" => anyhow::bail!("stream error: {data}"),
                                _ => {}
                            }
                            if id.is_some() {
                                last_id = id;
                            }
                        }
                    }
                }
                anyhow::Ok((room, tally))
            });
        }
        drop(ready_tx);
        for _ in 0..subscribers {
            if ready_rx.recv().await.is_none() {
                // Every sender is gone: some subscriber failed; say why.
                while let Some(joined) = tasks.join_next().await {
                    joined??;
                }
                anyhow::bail!("a subscriber ended before it was live");
            }
        }
        println!("ready");
        // Per room, each `seq`'s commit time, once the writers stopped.
        let mut commits: Vec<Vec<u64>> =
            tokio::task::spawn_blocking(|| -> anyhow::Result<Vec<Vec<u64>>> {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Ok(serde_json::from_str(&line)?)
            })
            .await??;
        commits.resize(rooms as usize, Vec::new());
        let per_room: Vec<u64> = commits.iter().map(|room| room.len() as u64).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut tallies = Vec::new();
        let _ = done_tx.send(Some(Arc::new(per_room.clone())));
        drop(done_rx);
        while let Some(joined) = tokio::time::timeout_at(deadline.into(), tasks.join_next())
            .await
            .ok()
            .flatten()
        {
            tallies.push(joined??);
        }
        tasks.abort_all();
        let mut latencies: Vec<u32> = Vec::new();
        let mut after_commit: Vec<u64> = Vec::new();
        let mut busy_codes: Vec<String> = Vec::new();
        let (mut received, mut out_of_order, mut resets, mut missing, mut retries) =
            (0, 0, 0, 0, 0);
        for (room, tally) in &tallies {
            received += tally.received;
            out_of_order += tally.out_of_order;
            resets += tally.resets;
            retries += tally.retries;
            if !tally.busy_code.is_empty() && !busy_codes.contains(&tally.busy_code) {
                busy_codes.push(tally.busy_code.clone());
            }
            missing += per_room[*room as usize].saturating_sub(tally.received);
            latencies.extend_from_slice(&tally.latencies);
            // A change can reach a subscriber before its writer task sees its create
            // return: that counts as 0.
            after_commit.extend(
                tally
                    .receipts
                    .iter()
                    .zip(&commits[*room as usize])
                    .map(|(receipt, commit)| receipt.saturating_sub(*commit)),
            );
        }
        after_commit.sort_unstable();
        let commit_at = |q: f64| litehouse_bench::quantile(&after_commit, q).unwrap_or(0);
        let expected_total: u64 = (0..subscribers)
            .map(|index| per_room[index % rooms as usize])
            .sum();
        // Subscribers that did not finish in time received less than their room's count.
        missing += expected_total
            - tallies
                .iter()
                .map(|(room, _)| per_room[*room as usize])
                .sum::<u64>();
        latencies.sort_unstable();
        let at = |q: f64| litehouse_bench::quantile(&latencies, q).map_or(0, u64::from);
        anyhow::Ok(LoadResult {
            received,
            expected: expected_total,
            missing,
            out_of_order,
            resets,
            retries,
            busy_codes: busy_codes.join(","),
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: latencies.last().map_or(0, |&us| u64::from(us)),
            commit_p50_us: commit_at(0.50),
            commit_p99_us: commit_at(0.99),
        })
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&result)?)?;
    Ok(())
}
