//! `litehouse demo`: the edge seed's offline-first demo, on a real device and a real server.
//!
//! The device is a [`litehouse_sync::Device`] over a local SQLite file: recording a
//! transaction commits locally with its outbox entry and never waits for the network, and a
//! background driver pushes and pulls. A menu records transactions, toggles offline mode,
//! forces a sync and shows the status, the sync log and the transactions. Without `--server`
//! the demo starts its own server on loopback (the `litehouse serve` server, in-process, with a
//! per-device token) in `--dir` or a temporary directory; a second device on that server can
//! record transactions too, to show changes arriving by pull. `--script` runs a fixed scenario
//! (offline writes, reconnect, sync) and prints the final status.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use console::style;
use litehouse_docs::{CollectionSpec, Paging, Query, Sort, Store};
use litehouse_server::{DbTarget, ServeError, Server, ServerConfig, TokenFile};
use litehouse_sync::{Device, DeviceConfig, DeviceStatus, SyncConfig, SyncState};
use serde_json::json;
use tokio::runtime::Runtime;

/// The collection the demo's transactions live in (the seed's `transactions` table).
const COLLECTION: &str = "transactions";
/// The device id the demo gives its device on its own server (unless `--device`).
const DEMO_DEVICE: &str = "demo-device";
/// The second device on the demo's own server.
const OTHER_DEVICE: &str = "other-device";

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Sync with this server (e.g. http://127.0.0.1:8080) instead of starting one on loopback.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The token sent to --server: a device token (`litehouse token create --device ID`) or
    /// any write token.
    #[arg(long, env = "LITEHOUSE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The device's local SQLite file [default: litehouse-device.db with --server, else
    /// device.db in --dir].
    #[arg(long)]
    file: Option<PathBuf>,
    /// The device id of a new device file [default: demo-device on the demo's own server, a
    /// random id with --server]. It must match the device of a device token.
    #[arg(long)]
    device: Option<String>,
    /// Directory for the demo's own server and device files, kept after the demo ends
    /// [default: a temporary directory, removed at the end].
    #[arg(long, conflicts_with = "server")]
    dir: Option<PathBuf>,
    /// Run the scripted scenario instead of the menu: record transactions offline, go online,
    /// sync, print the final status. Exit code 0 when everything was acknowledged and pulled.
    #[arg(long)]
    script: bool,
    /// How many transactions the script records while offline.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    transactions: u32,
    /// Seconds to wait for a sync to finish (the script's sync and the menu's "force sync").
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Print the script's final status as one JSON object.
    #[arg(long, requires = "script")]
    json: bool,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("litehouse-demo")
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let mut demo = runtime.block_on(Demo::start(&args))?;
    let code = if args.script {
        runtime.block_on(script(&mut demo, &args))
    } else {
        menu(&runtime, &mut demo, Duration::from_secs(args.timeout))
    };
    runtime.block_on(demo.stop())?;
    code
}

/// The demo's device, its server, and (on its own server) a second device.
struct Demo {
    device: Device,
    file: PathBuf,
    server_url: String,
    local: Option<LocalServer>,
    other: Option<Device>,
    /// The temporary directory the demo's files live in (without `--dir`), removed at the end.
    temp: Option<tempfile::TempDir>,
}

impl Demo {
    async fn start(args: &DemoArgs) -> anyhow::Result<Demo> {
        let (dir, temp) = match (&args.server, &args.dir) {
            (Some(_), _) => (None, None),
            (None, Some(dir)) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("could not create {}", dir.display()))?;
                (Some(dir.clone()), None)
            }
            (None, None) => {
                let temp = tempfile::tempdir().context("could not create a temporary directory")?;
                (Some(temp.path().to_owned()), Some(temp))
            }
        };
        let (server_url, token, local, file) = match (&args.server, dir) {
            (Some(url), _) => {
                let url = url.trim_end_matches('/').to_owned();
                check_server(&url, args.token.as_deref()).await?;
                let file = args
                    .file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("litehouse-device.db"));
                (url, args.token.clone(), None, file)
            }
            (None, Some(dir)) => {
                let mut local = LocalServer::start(&dir).await?;
                let device = args.device.as_deref().unwrap_or(DEMO_DEVICE);
                let token = local.device_token(device)?;
                let file = args.file.clone().unwrap_or_else(|| dir.join("device.db"));
                (local.url.clone(), Some(token), Some(local), file)
            }
            (None, None) => unreachable!("a directory is chosen when there is no --server"),
        };
        let device_id = match (&args.device, &local) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(_)) => Some(DEMO_DEVICE.to_owned()),
            (None, None) => None,
        };
        let device = open_device(&file, &server_url, token, device_id).await?;
        Ok(Demo {
            device,
            file,
            server_url,
            local,
            other: None,
            temp,
        })
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        self.device.stop().await;
        if let Some(other) = self.other.take() {
            other.stop().await;
        }
        if let Some(local) = self.local.take() {
            local.stop().await?;
        }
        Ok(())
    }

    /// The second device on the demo's own server, opened on first use.
    async fn other(&mut self) -> anyhow::Result<&Device> {
        let Some(local) = &mut self.local else {
            anyhow::bail!("only on the demo's own server (without --server)");
        };
        if self.other.is_none() {
            let token = local.device_token(OTHER_DEVICE)?;
            let file = local.dir.join("other-device.db");
            let device =
                open_device(&file, &local.url, Some(token), Some(OTHER_DEVICE.into())).await?;
            self.other = Some(device);
        }
        Ok(self.other.as_ref().expect("opened above"))
    }
}

async fn open_device(
    file: &Path,
    server_url: &str,
    token: Option<String>,
    device_id: Option<String>,
) -> anyhow::Result<Device> {
    let mut config = DeviceConfig::new(file, server_url, [COLLECTION]);
    config.token = token;
    config.device_id = device_id;
    // Snappier than the library's defaults, so a person sees changes arrive.
    config.sync = SyncConfig {
        poll_interval: 2_000,
        max_backoff: 10_000,
        ..SyncConfig::default()
    };
    Device::open(config)
        .await
        .with_context(|| format!("could not open the device file {}", file.display()))
}

/// Checks that `url` is a litehouse server with the transactions collection, creating it
/// when it is missing and allowed. A device token may only sync, so the collection routes are
/// tried with the token and then without one (a loopback server without --require-token
/// answers those).
async fn check_server(url: &str, token: Option<&str>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let health = client
        .get(format!("{url}/api/health"))
        .send()
        .await
        .with_context(|| {
            format!("no litehouse server answers at {url}: start one with `litehouse serve`")
        })?;
    anyhow::ensure!(
        health.status().is_success(),
        "{url}/api/health answered {}: is this a litehouse server?",
        health.status()
    );
    let mut missing = false;
    for auth in token.map(Some).into_iter().chain([None]) {
        let with_auth = |request: reqwest::RequestBuilder| match auth {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let found = with_auth(client.get(format!("{url}/api/collections/{COLLECTION}")))
            .send()
            .await?
            .status();
        if found.is_success() {
            return Ok(());
        }
        if found == reqwest::StatusCode::NOT_FOUND {
            missing = true;
            let created = with_auth(client.post(format!("{url}/api/collections")))
                .json(&json!({ "name": COLLECTION }))
                .send()
                .await?
                .status();
            if created.is_success() || created == reqwest::StatusCode::CONFLICT {
                return Ok(());
            }
        }
    }
    anyhow::ensure!(
        !missing,
        "the server has no {COLLECTION:?} collection and the demo may not create it; create \
         it with: curl -X POST {url}/api/collections -H 'content-type: application/json' \
         -H 'authorization: Bearer WRITE_TOKEN' -d '{{\"name\":\"{COLLECTION}\"}}'"
    );
    // Neither readable nor known missing (a device token on a server that requires tokens):
    // the pushes tell, as rejections in the status and the sync log.
    Ok(())
}

/// `litehouse serve`'s server, in-process on 127.0.0.1:0, over a SQLite file in `dir`, with
/// tokens required and one device token per device.
struct LocalServer {
    dir: PathBuf,
    url: String,
    dashboard: String,
    tokens: TokenFile,
    /// Token ids to revoke when the demo ends.
    issued: Vec<String>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl LocalServer {
    async fn start(dir: &Path) -> anyhow::Result<LocalServer> {
        let target = DbTarget::Sqlite(dir.join("server.db"));
        let (store, database) = target.open().await?;
        ensure_collection(&store).await?;
        let admin_token = litehouse_server::load_or_create_admin_token(&target.admin_token_path())
            .context("could not create the demo server's admin token")?;
        let config = ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: admin_token.clone(),
            token_file: Some(target.token_file_path()),
            require_token: true,
            ..ServerConfig::default()
        };
        let server = Server::bind(config, store, database).await?;
        let addr = server.local_addr();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(LocalServer {
            dir: dir.to_owned(),
            url: format!("http://{addr}"),
            dashboard: format!("http://{addr}/#token={admin_token}"),
            tokens: TokenFile::new(target.token_file_path()),
            issued: Vec::new(),
            shutdown,
            task,
        })
    }

    /// A new device token for `device`, revoked when the demo ends.
    fn device_token(&mut self, device: &str) -> anyhow::Result<String> {
        let (record, token) = self
            .tokens
            .create_device("litehouse demo", device)
            .context("could not create a device token")?;
        self.issued.push(record.id);
        Ok(token)
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.task
            .await
            .context("the demo server panicked")?
            .context("the demo server did not stop cleanly")?;
        for id in &self.issued {
            self.tokens
                .revoke(id)
                .context("could not revoke a demo token")?;
        }
        Ok(())
    }
}

async fn ensure_collection(store: &Store) -> anyhow::Result<()> {
    let exists = store
        .list_collections()
        .await?
        .iter()
        .any(|c| c.name == COLLECTION);
    if !exists {
        store
            .create_collection(COLLECTION, CollectionSpec::default())
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The interactive menu.

fn menu(runtime: &Runtime, demo: &mut Demo, timeout: Duration) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock().lines();
    println!(
        "{} — offline-first sync on a local SQLite file",
        style("litehouse demo").bold()
    );
    println!("  device file  {}", demo.file.display());
    println!("  server       {}", demo.server_url);
    if let Some(local) = &demo.local {
        println!("  dashboard    {}", local.dashboard);
        println!("  files in     {}", local.dir.display());
    }
    loop {
        let status = runtime.block_on(demo.device.status())?;
        println!();
        println!("{}", status_line(&status));
        let paused = matches!(status.sync.state, SyncState::Offline { paused: true });
        let mut choices = vec![
            ("1", "record"),
            ("2", if paused { "go online" } else { "go offline" }),
            ("3", "force sync"),
            ("4", "status"),
            ("5", "sync log"),
            ("6", "transactions"),
        ];
        if demo.local.is_some() {
            choices.push(("7", "other device records"));
        }
        choices.push(("q", "quit"));
        let line: Vec<String> = choices
            .iter()
            .map(|(key, what)| format!("{} {what}", style(format!("[{key}]")).bold()))
            .collect();
        println!("{}", line.join("  "));
        let Some(choice) = ask(&mut input, "choose")? else {
            break;
        };
        let result = match choice.as_str() {
            "1" => record(runtime, demo, &mut input),
            "2" if paused => runtime
                .block_on(demo.device.resume())
                .map(|()| println!("{} syncing in the background", style("online:").green()))
                .map_err(Into::into),
            "2" => runtime
                .block_on(demo.device.pause())
                .map(|()| {
                    println!(
                        "{} transactions are kept locally and sent when you go online",
                        style("offline:").yellow()
                    );
                })
                .map_err(Into::into),
            "3" => force_sync(runtime, &demo.device, timeout),
            "4" => runtime
                .block_on(demo.device.status())
                .map(|status| print_status(&status, &demo.server_url))
                .map_err(Into::into),
            "5" => runtime.block_on(print_log(&demo.device)),
            "6" => runtime.block_on(print_transactions(&demo.device)),
            "7" if demo.local.is_some() => other_records(runtime, demo, timeout),
            "q" | "Q" | "quit" | "exit" => break,
            "" => Ok(()),
            other => {
                println!("{} is not a choice", style(format!("{other:?}")).red());
                Ok(())
            }
        };
        if let Err(err) = result {
            println!("{} {err:#}", style("error:").red().bold());
        }
    }
    let pending = runtime.block_on(demo.device.status())?.sync.pending;
    if pending > 0 && demo.temp.is_some() {
        println!(
            "stopping: {pending} pending transactions go with the temporary directory \
             (--dir DIR keeps the device and its server between runs)"
        );
    } else if pending > 0 {
        println!(
            "stopping: {pending} pending transactions stay in {} and go out on the next run",
            demo.file.display()
        );
    } else {
        println!("stopping: nothing pending");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `question`, reads one line; `None` at the end of input.
fn ask(
    input: &mut impl Iterator<Item = std::io::Result<String>>,
    question: &str,
) -> anyhow::Result<Option<String>> {
    print!("{} ", style(format!("{question}>")).cyan().bold());
    std::io::stdout().flush()?;
    match input.next() {
        Some(line) => Ok(Some(line?.trim().to_owned())),
        None => Ok(None),
    }
}

fn record(
    runtime: &Runtime,
    demo: &Demo,
    input: &mut impl Iterator<Item = std::io::Result<String>>,
) -> anyhow::Result<()> {
    let amount = loop {
        let Some(line) = ask(input, "amount")? else {
            return Ok(());
        };
        match parse_amount(&line) {
            Ok(amount) => break amount,
            Err(why) => println!("{} {why}", style("not an amount:").red()),
        }
    };
    let description = ask(input, "description")?.unwrap_or_default();
    let doc = runtime.block_on(record_transaction(&demo.device, amount, &description))?;
    let status = runtime.block_on(demo.device.status())?;
    println!(
        "{} {} ({} pending)",
        style("saved locally:").green(),
        doc,
        status.sync.pending
    );
    Ok(())
}

/// An amount in the seed's `DECIMAL(10,2)`: a finite number below 10^8, rounded to cents.
fn parse_amount(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: type a number such as 12.50"))?;
    if !value.is_finite() || value.abs() >= 1e8 {
        return Err(format!("{text:?}: keep it below 100000000"));
    }
    Ok((value * 100.0).round() / 100.0)
}

/// Records one transaction on `device`; returns its id.
async fn record_transaction(
    device: &Device,
    amount: f64,
    description: &str,
) -> anyhow::Result<String> {
    let description: String = description.chars().take(200).collect();
    let doc = device
        .create(
            COLLECTION,
            json!({
                "amount": amount,
                "description": description,
                "recordedAt": jiff::Timestamp::now().to_string(),
                "device": device.device_id(),
            }),
        )
        .await?;
    Ok(doc.id)
}

fn force_sync(runtime: &Runtime, device: &Device, timeout: Duration) -> anyhow::Result<()> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(100));
    let outcome = runtime.block_on(sync_now(device, timeout, |status| {
        bar.set_message(format!("syncing: {} pending", status.sync.pending));
    }));
    bar.finish_and_clear();
    match outcome? {
        Synced::Yes(status) => println!(
            "{} nothing pending; last pull {}",
            style("synced:").green(),
            ago(status.sync.last_pull_ok, &status)
        ),
        Synced::Paused => println!(
            "{} choose 2 to go online first",
            style("the device is offline:").yellow()
        ),
        Synced::No(status) => println!(
            "{} {} pending after {} s; {}",
            style("not synced yet:").red(),
            status.sync.pending,
            timeout.as_secs(),
            status.sync.last_error.as_deref().map_or_else(
                || "it keeps retrying in the background".to_owned(),
                |e| format!("last error: {}", printable(e))
            )
        ),
    }
    Ok(())
}

fn other_records(runtime: &Runtime, demo: &mut Demo, timeout: Duration) -> anyhow::Result<()> {
    runtime.block_on(async {
        let n = rand_cents();
        let other = demo.other().await?;
        let id = record_transaction(other, n, "recorded on the other device").await?;
        println!(
            "{} recorded {id} ({n:.2}) and pushes it",
            style(OTHER_DEVICE).magenta()
        );
        match sync_now(other, timeout, |_| {}).await? {
            Synced::Yes(_) => println!(
                "{} the server has it; {DEMO_DEVICE} pulls it on its next sync (choose 3, or wait)",
                style(OTHER_DEVICE).magenta()
            ),
            _ => println!(
                "{} could not reach the server yet",
                style(OTHER_DEVICE).magenta()
            ),
        }
        anyhow::Ok(())
    })
}

/// A pseudo-random amount between 1.00 and 99.99 (the clock's nanoseconds suffice here).
fn rand_cents() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(100 + nanos % 9_900) / 100.0
}

enum Synced {
    /// Nothing pending and a pull finished after the last push was acknowledged.
    Yes(DeviceStatus),
    /// In offline mode: nothing is sent.
    Paused,
    /// The timeout passed first.
    No(DeviceStatus),
}

/// Forces a sync and waits until nothing is pending and a pull that started after that has
/// finished, or `timeout` passes.
async fn sync_now(
    device: &Device,
    timeout: Duration,
    progress: impl Fn(&DeviceStatus),
) -> anyhow::Result<Synced> {
    let deadline = Instant::now() + timeout;
    device.force_sync().await?;
    let mut pulled_after: Option<u64> = None;
    loop {
        let status = device.status().await?;
        progress(&status);
        if matches!(status.sync.state, SyncState::Offline { paused: true }) {
            return Ok(Synced::Paused);
        }
        if status.sync.pending == 0 {
            match pulled_after {
                None => {
                    pulled_after = Some(machine_now(&status));
                    device.force_sync().await?;
                }
                Some(after) => {
                    let pulled = status.sync.last_pull_ok.is_some_and(|t| t >= after);
                    if pulled && !matches!(status.sync.state, SyncState::Syncing) {
                        return Ok(Synced::Yes(status));
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            return Ok(Synced::No(status));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------------------
// What the demo prints.

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The sync machine's clock: milliseconds since its driver started.
fn machine_now(status: &DeviceStatus) -> u64 {
    unix_ms().saturating_sub(status.started_at_ms)
}

/// `at` (machine time) as "3 s ago", or "never".
fn ago(at: Option<u64>, status: &DeviceStatus) -> String {
    match at {
        None => "never".to_owned(),
        Some(at) => format!("{} ago", span(machine_now(status).saturating_sub(at))),
    }
}

fn span(ms: u64) -> String {
    match ms / 1000 {
        0 => format!("{ms} ms"),
        s @ 1..=119 => format!("{s} s"),
        s @ 120..=7_199 => format!("{} min", s / 60),
        s => format!("{} h", s / 3_600),
    }
}

fn state_label(status: &DeviceStatus) -> String {
    match status.sync.state {
        SyncState::Online => style("● online").green().to_string(),
        SyncState::Offline { paused: true } => style("○ offline (by you)").yellow().to_string(),
        SyncState::Offline { paused: false } => {
            style("○ offline (no network)").yellow().to_string()
        }
        SyncState::Syncing => style("◐ syncing").cyan().to_string(),
        SyncState::BackingOff { until } => style(format!(
            "↻ backing off, retry in {}",
            span(until.saturating_sub(machine_now(status)))
        ))
        .red()
        .to_string(),
        SyncState::Stopped => style("■ stopped").red().to_string(),
    }
}

fn status_line(status: &DeviceStatus) -> String {
    let mut line = format!(
        "{} · {} pending · last push {} · last pull {}",
        state_label(status),
        status.sync.pending,
        ago(status.sync.last_push_ok, status),
        ago(status.sync.last_pull_ok, status),
    );
    if status.sync.rejected_total > 0 {
        let rejected = format!(" · {} rejected", status.sync.rejected_total);
        line.push_str(&style(rejected).red().to_string());
    }
    line
}

fn print_status(status: &DeviceStatus, server: &str) {
    let sync = &status.sync;
    let row = |name: &str, value: String| println!("  {:<16} {value}", style(name).dim());
    row("state", state_label(status));
    row(
        "device",
        format!("{} (epoch {})", status.device_id, status.epoch),
    );
    row("server", server.to_owned());
    row("pending", sync.pending.to_string());
    row(
        "oldest pending",
        sync.oldest_pending_age.map_or_else(|| "–".to_owned(), span),
    );
    row("last push", ago(sync.last_push_ok, status));
    row("last pull", ago(sync.last_pull_ok, status));
    row(
        "last error",
        sync.last_error
            .as_deref()
            .map_or_else(|| "–".to_owned(), printable),
    );
    row(
        "retries",
        format!(
            "{} failures in a row, {} retries since start",
            sync.consecutive_failures, sync.total_retries
        ),
    );
    row("rejected", sync.rejected_total.to_string());
    row(
        "pull cursor",
        sync.cursor
            .clone()
            .unwrap_or_else(|| "– (nothing pulled yet)".to_owned()),
    );
}

async fn print_log(device: &Device) -> anyhow::Result<()> {
    let entries = device.sync_log(20).await?;
    if entries.is_empty() {
        println!("  the sync log is empty");
    }
    for entry in entries {
        let kind = match entry.kind.as_str() {
            k if k.ends_with("failed") || k == "rejected" => style(k).red(),
            "push" | "pull" => style(entry.kind.as_str()).green(),
            k => style(k).cyan(),
        };
        println!(
            "  {}  {:<12} {}",
            clock(entry.at_ms),
            kind,
            printable(&entry.message)
        );
    }
    Ok(())
}

/// Unix milliseconds as local `HH:MM:SS`.
fn clock(at_ms: u64) -> String {
    i64::try_from(at_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || "--:--:--".to_owned(),
            |t| {
                t.to_zoned(jiff::tz::TimeZone::system())
                    .strftime("%H:%M:%S")
                    .to_string()
            },
        )
}

async fn print_transactions(device: &Device) -> anyhow::Result<()> {
    let query = Query {
        filter: None,
        sort: vec![Sort::desc("createdAt")],
        paging: Paging::Page {
            page: 1,
            per_page: 20,
        },
        count: true,
    };
    let page = device.store().find(COLLECTION, &query).await?;
    let pending: HashSet<String> = device
        .outbox(litehouse_docs::MAX_META_SCAN)
        .await?
        .into_iter()
        .map(|entry| entry.doc_id)
        .collect();
    let total = page.total_items.unwrap_or(page.items.len() as u64);
    println!(
        "  {total} transactions on this device{}",
        if total > 20 { " (newest 20)" } else { "" }
    );
    if !page.items.is_empty() {
        println!(
            "{}",
            style(format!(
                "  {:<8} {:>12}  {:<30} {:<14} {}",
                "sync", "amount", "description", "device", "id"
            ))
            .dim()
        );
    }
    for doc in &page.items {
        let amount = doc
            .body
            .get("amount")
            .and_then(|a| a.as_f64())
            .unwrap_or(0.0);
        let text = |key: &str| {
            doc.body
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let sync = if pending.contains(&doc.id) {
            style("pending").yellow()
        } else {
            style("synced").green()
        };
        println!(
            "  {:<8} {:>12.2}  {:<30} {:<14} {}",
            sync,
            amount,
            truncate(&text("description"), 30),
            truncate(&text("device"), 14),
            // The random tail: a UUIDv7's head is its creation time, alike for a burst.
            style(&doc.id[doc.id.len().saturating_sub(8)..]).dim()
        );
    }
    Ok(())
}

/// `text` cut to `width` characters, control characters (a terminal escape sequence another
/// device wrote, say) shown as `�` rather than sent to the terminal.
fn truncate(text: &str, width: usize) -> String {
    let shown = printable(text);
    if shown.chars().count() <= width {
        shown
    } else {
        let cut: String = shown.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

/// `text` with control characters replaced by `�`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The scripted scenario.

async fn script(demo: &mut Demo, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let device = &demo.device;
    let say = |text: String| {
        if !args.json {
            println!("{text}");
        }
    };
    say(format!(
        "device {} (epoch {}) syncing with {}",
        device.device_id(),
        device.epoch(),
        demo.server_url
    ));
    device.pause().await?;
    say("offline: recording transactions locally".to_owned());
    for n in 1..=args.transactions {
        let amount = f64::from(n) * 1.25;
        let id = record_transaction(device, amount, &format!("scripted #{n}")).await?;
        say(format!("  recorded {id} ({amount:.2})"));
    }
    let status = device.status().await?;
    say(format!("while offline: {}", status.sync.pending) + " pending");
    say("online: syncing".to_owned());
    device.resume().await?;
    let timeout = Duration::from_secs(args.timeout);
    let outcome = sync_now(device, timeout, |_| {}).await?;
    let (status, synced) = match outcome {
        Synced::Yes(status) => (status, true),
        Synced::No(status) => (status, false),
        Synced::Paused => unreachable!("the script resumed the device"),
    };
    let local = device.store().count(COLLECTION, None).await?;
    let ok = synced && status.sync.pending == 0 && status.sync.rejected_total == 0;
    if args.json {
        let report = json!({
            "synced": ok,
            "transactions": local,
            "server": demo.server_url,
            "status": status,
        });
        println!("{report}");
    } else {
        println!();
        println!("final status:");
        print_status(&status, &demo.server_url);
        println!("  {:<16} {local}", style("transactions").dim());
        if ok {
            println!(
                "{}",
                style("synced: every transaction acknowledged and pulled").green()
            );
        } else {
            println!(
                "{}",
                style(format!("NOT synced within {} s", args.timeout))
                    .red()
                    .bold()
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_numbers_rounded_to_cents() {
        assert_eq!(parse_amount(" 12.5 "), Ok(12.5));
        assert_eq!(parse_amount("3.456"), Ok(3.46));
        assert_eq!(parse_amount("-2"), Ok(-2.0));
        assert!(parse_amount("twelve").is_err());
        assert!(parse_amount("NaN").is_err());
        assert!(parse_amount("inf").is_err());
        assert!(parse_amount("1e9").is_err());
        assert!(parse_amount("").is_err());
    }

    #[test]
    fn spans_read_as_a_person_would_say_them() {
        assert_eq!(span(250), "250 ms");
        assert_eq!(span(3_400), "3 s");
        assert_eq!(span(180_000), "3 min");
        assert_eq!(span(3 * 3_600_000), "3 h");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(truncate("a\u{1b}]0;x\u{7}b", 10), "a\u{fffd}]0;x\u{fffd}b");
    }
}
