//! Sync workloads of `litehouse bench` (litehouse-sync): the real server stack
//! (`litehouse serve`'s app, with `/api/sync/push` and `/api/sync/pull`) on 127.0.0.1:0 over
//! a SQLite file and, with `--pg`, a PostgreSQL schema; the devices and pushers run in this
//! process on the same runtime (two worker threads), so client and server share the
//! machine's cores.
//!
//! - S1, push from devices: real [`litehouse_sync::Device`]s, each with its own local SQLite
//!   file, write their documents offline (not timed), then all resume at once; timed from the
//!   resume until every device reports `pending = 0` (the server acknowledged every entry).
//!   That includes the devices' own work per batch (reading the outbox, marking entries
//!   synced, the sync log).
//! - S2, push from raw pushers: the same protocol without a device store, prebuilt
//!   [`litehouse_sync::PushRequest`] batches POSTed back to back: what the server's push path
//!   alone sustains.
//! - S3, pull: [`litehouse_sync::pull_apply`] (the device's apply path alone, pages of 1,000
//!   in one transaction each) and a fresh device pulling everything a server holds over HTTP
//!   (server pull pages + transport + apply), timed until its local count is complete.
//!
//! Every run checks its result (the server's document count, the device's) and fails the
//! workload when it does not add up.

use std::time::{Duration, Instant};

use anyhow::Context;
use litehouse_bench::{BenchOptions, Measurement, Workload};
use litehouse_docs::{CollectionSpec, Store};
use litehouse_server::ServerConfig;
use litehouse_sync::{Device, DeviceConfig, PushRequest, PushResponse, SyncConfig};

use crate::bench_http::{BenchStore, backends};

const COLLECTION: &str = "bench";
/// Devices (or pushers) of the concurrent rows.
const MANY: usize = 16;
/// How long a run may take before the workload fails instead of waiting forever.
const LIMIT: Duration = Duration::from_secs(300);

/// The sync workloads.
pub(crate) fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            id: "S1",
            title: "sync push from devices: Devices (own SQLite file each) write offline, then resume; changes/s from resume until the server acknowledged all (pending = 0), 1 and 16 devices",
            reference: "none",
            run: |options, report| run(options, report, Kind::DevicePush),
        },
        Workload {
            id: "S2",
            title: "sync push, raw: prebuilt PushRequest batches of 256 POSTed back to back (no device store), changes/s the server applies, 1 and 16 pushers",
            reference: "none",
            run: |options, report| run(options, report, Kind::RawPush),
        },
        Workload {
            id: "S3",
            title: "sync pull: a device's apply path alone (pages of 1,000, one transaction each), and a fresh device pulling a server's changes over HTTP until complete",
            reference: "none",
            run: |options, report| run(options, report, Kind::Pull),
        },
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DevicePush,
    RawPush,
    Pull,
}

fn run(
    options: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    kind: Kind,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lh-bench-sync")
        .enable_all()
        .build()?;
    if kind == Kind::Pull {
        // The apply path alone: no server involved.
        let changes = options.pick(20_000, 100_000);
        let path = options.db_path("S3-apply");
        let cpu_before = process_cpu();
        let measured = runtime
            .block_on(litehouse_sync::pull_apply(&path, changes))
            .context("pull apply")?;
        let cpu = cpu_since(cpu_before);
        report(
            Measurement::new("S3", "device-apply", 1, measured.changes, 0, measured.elapsed)
                .with_note(format!(
                    "apply only, local SQLite: {} changes in pages of {} (one transaction each, cursor included); creates {:.0}/s, replaces {:.0}/s{} (generating the changes included)",
                    measured.changes,
                    measured.batch,
                    measured.creates_per_sec,
                    measured.replaces_per_sec,
                    cpu_note(cpu, measured.changes),
                )),
        );
    }
    for (name, pg) in backends(options) {
        match kind {
            Kind::DevicePush => {
                // PostgreSQL applies a push entry by entry, each statement a round trip: far
                // fewer changes keep its runs as long as SQLite's.
                let per_device = match pg {
                    None => [
                        (1, options.pick(4_096, 40_000)),
                        (MANY, options.pick(512, 4_096)),
                    ],
                    Some(_) => [
                        (1, options.pick(1_024, 8_192)),
                        (MANY, options.pick(64, 512)),
                    ],
                };
                for (devices, changes) in per_device {
                    let measured = runtime
                        .block_on(device_push(options, pg.as_deref(), devices, changes))
                        .with_context(|| format!("{name}, {devices} devices"))?;
                    report(measured.measurement("S1", name));
                }
            }
            Kind::RawPush => {
                let per_pusher = match pg {
                    None => [
                        (1, options.pick(8_192, 100_000)),
                        (MANY, options.pick(1_024, 8_192)),
                    ],
                    Some(_) => [
                        (1, options.pick(1_024, 8_192)),
                        (MANY, options.pick(128, 1_024)),
                    ],
                };
                for (pushers, changes) in per_pusher {
                    let measured = runtime
                        .block_on(raw_push(options, pg.as_deref(), pushers, changes))
                        .with_context(|| format!("{name}, {pushers} pushers"))?;
                    report(measured.measurement("S2", name));
                }
            }
            Kind::Pull => {
                let changes = match pg {
                    None => options.pick(10_000, 100_000),
                    Some(_) => options.pick(2_000, 10_000),
                };
                let measured = runtime
                    .block_on(device_pull(options, pg.as_deref(), changes))
                    .with_context(|| format!("{name}, pull"))?;
                report(measured.measurement("S3", &format!("{name}->device")));
            }
        }
    }
    Ok(())
}

/// What one run measured.
struct Run {
    /// Devices or pushers.
    clients: usize,
    changes: u64,
    elapsed: Duration,
    /// Retries (failed requests) the clients made.
    retries: u64,
    /// CPU time this process (server and clients) spent in the timed window.
    cpu: Option<Duration>,
    note: String,
}

impl Run {
    fn measurement(&self, workload: &str, name: &str) -> Measurement {
        Measurement::new(
            workload,
            name,
            self.clients,
            self.changes,
            self.retries,
            self.elapsed,
        )
        .with_note(format!("{}{}", self.note, cpu_note(self.cpu, self.changes)))
    }
}

/// CPU time (user + system) this process has used, threads that have exited included, from
/// `/proc/self/stat` (Linux, 10 ms ticks; `None` elsewhere).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name (in parentheses, which may hold spaces): state is field 0,
    // utime and stime are fields 11 and 12.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time of this process since `before` (see [`process_cpu`]).
fn cpu_since(before: Option<Duration>) -> Option<Duration> {
    Some(process_cpu()?.saturating_sub(before?))
}

/// `, CPU <µs>/change (<n> changes per CPU-second)`: robust to a machine shared with other
/// work, unlike changes/s.
fn cpu_note(cpu: Option<Duration>, changes: u64) -> String {
    match cpu {
        Some(cpu) if changes > 0 && !cpu.is_zero() => format!(
            "; process CPU {:.1} µs/change, {:.0} changes per CPU-second",
            cpu.as_secs_f64() * 1e6 / changes as f64,
            changes as f64 / cpu.as_secs_f64()
        ),
        _ => String::new(),
    }
}

/// A served store for one run, with a handle on it to check the result.
struct Served {
    running: crate::bench_http::Running,
    store: Store,
}

impl Served {
    async fn start(options: &BenchOptions, pg: Option<&str>, run: &str) -> anyhow::Result<Served> {
        let pg = pg.map(|url| litehouse_docs::PostgresConfig {
            url: url.to_owned(),
            schema: format!("lh_bench_sync_{}", std::process::id()),
            pool_size: 32,
        });
        let name = format!("{run}-server");
        let bench = BenchStore::open(
            options,
            &name,
            litehouse::Config::default(),
            pg,
            COLLECTION,
            CollectionSpec::default(),
        )
        .await?;
        let store = bench.store.clone();
        let running = bench
            .serve(options, &name, ServerConfig::default(), Vec::new())
            .await?;
        Ok(Served { running, store })
    }

    fn url(&self) -> String {
        format!("http://{}", self.running.addr)
    }

    async fn stop(self) -> anyhow::Result<()> {
        drop(self.store);
        self.running.stop().await
    }

    /// Fails unless the server holds exactly `expected` documents.
    async fn expect_documents(&self, expected: u64) -> anyhow::Result<()> {
        let count = self.store.count(COLLECTION, None).await?;
        anyhow::ensure!(
            count == expected,
            "the server holds {count} documents, {expected} were pushed"
        );
        Ok(())
    }
}

/// Sync settings of a bench device: no idle pull while it has something to push (pushes go
/// first anyway), a long request timeout so a slow server shows as slow, not as retries.
fn device_config(options: &BenchOptions, file: &str, url: &str, seed: u64) -> DeviceConfig {
    let path = options.db_path(file);
    let mut config = DeviceConfig::new(path, url, [COLLECTION]);
    config.device_id = Some(file.to_owned());
    config.start_paused = true;
    config.sync = SyncConfig {
        request_timeout: 60_000,
        jitter_seed: seed,
        ..SyncConfig::default()
    };
    config
}

async fn device_push(
    options: &BenchOptions,
    pg: Option<&str>,
    devices: usize,
    per_device: u64,
) -> anyhow::Result<Run> {
    let run = format!(
        "S1-{}-x{devices}",
        if pg.is_some() { "pg" } else { "sqlite" }
    );
    let served = Served::start(options, pg, &run).await?;
    let url = served.url();
    let outcome = async {
        let mut opened = Vec::with_capacity(devices);
        for d in 0..devices {
            let config = device_config(options, &format!("{run}-device-{d}"), &url, d as u64);
            opened.push(Device::open(config).await?);
        }
        // Offline writes, devices in parallel (not timed).
        let written = Instant::now();
        let mut writers = tokio::task::JoinSet::new();
        for (d, device) in opened.into_iter().enumerate() {
            writers.spawn(async move {
                for n in 0..per_device {
                    device
                        .create(
                            COLLECTION,
                            serde_json::json!({
                                "amount": n * 3,
                                "currency": "EUR",
                                "note": format!("transaction {n} of device {d}"),
                            }),
                        )
                        .await?;
                }
                anyhow::Ok((d, device))
            });
        }
        let mut devices_ready: Vec<(usize, Device)> = Vec::with_capacity(devices);
        while let Some(joined) = writers.join_next().await {
            devices_ready.push(joined??);
        }
        devices_ready.sort_by_key(|(d, _)| *d);
        let devices_ready: Vec<Device> = devices_ready.into_iter().map(|(_, d)| d).collect();
        let total = per_device * devices as u64;
        let write_rate = total as f64 / written.elapsed().as_secs_f64();
        for device in &devices_ready {
            let pending = device.status().await?.sync.pending as u64;
            anyhow::ensure!(pending == per_device, "a device has {pending} pending entries, not {per_device}");
        }
        let cpu_before = process_cpu();
        let started = Instant::now();
        for device in &devices_ready {
            device.resume().await?;
        }
        let mut done = vec![false; devices_ready.len()];
        let retries = loop {
            let mut pending = 0;
            let mut retries = 0;
            for (device, done) in devices_ready.iter().zip(&mut done) {
                let status = device.status().await?.sync;
                pending += status.pending;
                retries += status.total_retries;
                if status.pending == 0 && !*done {
                    // Offline again once its outbox is empty: the devices still pushing
                    // are measured, not the pulls of the ones that finished.
                    device.pause().await?;
                    *done = true;
                }
                anyhow::ensure!(
                    status.rejected_total == 0,
                    "the server rejected entries: {:?}",
                    status.last_error
                );
            }
            if pending == 0 {
                break retries;
            }
            anyhow::ensure!(
                started.elapsed() < LIMIT,
                "{pending} entries still pending after {LIMIT:?} (last error: {:?})",
                devices_ready[0].status().await?.sync.last_error
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let elapsed = started.elapsed();
        let cpu = cpu_since(cpu_before);
        for device in devices_ready {
            device.stop().await;
        }
        served.expect_documents(total).await?;
        anyhow::Ok(Run {
            clients: devices,
            changes: total,
            elapsed,
            retries,
            cpu,
            note: format!(
                "{total} changes ({per_device} per device) written offline at {write_rate:.0}/s (not timed), pushed in batches of {}; timed from resume to pending = 0 on every device, device work included (a device whose outbox is empty starts a pull at once, as devices do; the bench takes it offline within ms, but the server may read that first pull page meanwhile)",
                SyncConfig::default().max_batch
            ),
        })
    }
    .await;
    served.stop().await?;
    outcome
}

/// POSTs `requests` in order; each must be acknowledged up to its last sequence. Returns the
/// failed attempts (retried).
async fn push_all(
    client: reqwest::Client,
    url: String,
    requests: Vec<bytes::Bytes>,
    last: Vec<u64>,
) -> anyhow::Result<u64> {
    let mut retries = 0;
    for (body, last_seq) in requests.into_iter().zip(last) {
        loop {
            let response = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            let response = match response {
                Ok(response) if response.status().is_success() => response,
                Ok(response) => {
                    anyhow::ensure!(retries < 100, "push failed: {}", response.status());
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                Err(err) => {
                    anyhow::ensure!(retries < 100, "push failed: {err}");
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let acked: PushResponse = response.json().await?;
            anyhow::ensure!(
                acked.acked_seq == last_seq && acked.rejected.is_empty(),
                "push acknowledged {} (expected {last_seq}), {} rejected",
                acked.acked_seq,
                acked.rejected.len()
            );
            break;
        }
    }
    Ok(retries)
}

/// Pushes `per_pusher` changes from each of `pushers` raw producers; `None` server: start
/// one for the run and stop it after.
async fn raw_push(
    options: &BenchOptions,
    pg: Option<&str>,
    pushers: usize,
    per_pusher: u64,
) -> anyhow::Result<Run> {
    let run = format!(
        "S2-{}-x{pushers}",
        if pg.is_some() { "pg" } else { "sqlite" }
    );
    let served = Served::start(options, pg, &run).await?;
    let outcome = push_raw_into(&served, pushers, per_pusher).await;
    let outcome = match outcome {
        Ok(pushed) => served
            .expect_documents(per_pusher * pushers as u64)
            .await
            .map(|()| pushed),
        Err(err) => Err(err),
    };
    served.stop().await?;
    let (elapsed, retries, cpu) = outcome?;
    let batch = SyncConfig::default().max_batch;
    Ok(Run {
        clients: pushers,
        changes: per_pusher * pushers as u64,
        elapsed,
        retries,
        cpu,
        note: format!(
            "{} changes ({per_pusher} per pusher) in PushRequests of {batch}, bodies prebuilt; each pusher waits for its ack before the next batch",
            per_pusher * pushers as u64
        ),
    })
}

/// Pushes into a running server; (time from the first request to the last ack, retries,
/// process CPU in that time).
async fn push_raw_into(
    served: &Served,
    pushers: usize,
    per_pusher: u64,
) -> anyhow::Result<(Duration, u64, Option<Duration>)> {
    let url = format!("{}/api/sync/push", served.url());
    let batch = SyncConfig::default().max_batch;
    let mut prepared = Vec::with_capacity(pushers);
    for p in 0..pushers {
        let requests: Vec<PushRequest> = litehouse_sync::push_requests(
            &format!("raw-{p}"),
            p as u32,
            COLLECTION,
            per_pusher,
            batch,
        );
        let last: Vec<u64> = requests.iter().map(|r| r.last_seq).collect();
        let bodies = requests
            .iter()
            .map(|r| serde_json::to_vec(r).map(bytes::Bytes::from))
            .collect::<Result<Vec<_>, _>>()?;
        prepared.push((bodies, last));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (bodies, last) in prepared {
        tasks.spawn(push_all(client.clone(), url.clone(), bodies, last));
    }
    let mut retries = 0;
    while let Some(joined) = tasks.join_next().await {
        retries += joined??;
    }
    Ok((started.elapsed(), retries, cpu_since(cpu_before)))
}

/// A server holding `changes` documents (pushed by raw pushers, not timed); a fresh device
/// resumes and pulls until its local collection holds them all.
async fn device_pull(
    options: &BenchOptions,
    pg: Option<&str>,
    changes: u64,
) -> anyhow::Result<Run> {
    let run = format!("S3-{}", if pg.is_some() { "pg" } else { "sqlite" });
    let served = Served::start(options, pg, &run).await?;
    let outcome = async {
        push_raw_into(&served, 1, changes).await?;
        served.expect_documents(changes).await?;
        let config = device_config(options, &format!("{run}-device"), &served.url(), 99);
        let device = Device::open(config).await?;
        let cpu_before = process_cpu();
        let started = Instant::now();
        device.resume().await?;
        loop {
            let local = device.store().count(COLLECTION, None).await?;
            if local == changes {
                break;
            }
            anyhow::ensure!(
                local < changes && started.elapsed() < LIMIT,
                "the device holds {local} of {changes} documents after {:?} (last error: {:?})",
                started.elapsed(),
                device.status().await?.sync.last_error
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        let cpu = cpu_since(cpu_before);
        let retries = device.status().await?.sync.total_retries;
        device.stop().await;
        anyhow::Ok(Run {
            clients: 1,
            changes,
            elapsed,
            retries,
            cpu,
            note: format!(
                "{changes} changes pulled over HTTP in pages of {} and applied by a fresh device (server read + transport + apply); timed from resume until the local count is complete",
                litehouse_sync::MAX_PULL_PAGE
            ),
        })
    }
    .await;
    served.stop().await?;
    outcome
}
