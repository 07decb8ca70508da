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

//!
//! - `server.rs`: the demo's own server, and the checks on one given with `--server`.
//! - `menu.rs`: the interactive menu.
//! - `show.rs`: what the demo prints (status, sync log, transactions).
//! - `script.rs`: the scripted scenario.

mod menu;
mod script;
mod server;
mod show;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use litehouse_sync::{Device, DeviceConfig, DeviceStatus, SyncConfig, SyncState};
use serde_json::json;

use server::{LocalServer, check_server};
use show::machine_now;

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
        runtime.block_on(script::script(&mut demo, &args))
    } else {
        menu::menu(&runtime, &mut demo, Duration::from_secs(args.timeout))
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
