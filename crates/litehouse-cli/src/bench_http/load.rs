//! The load process of the HTTP workloads (`litehouse bench-load`, this binary again):
//! keep-alive connections to a loopback server, one JSON line of counts and latencies.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::CONNECTIONS;

/// What one run of the load process measured.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct LoadResult {
    pub(super) ok: u64,
    pub(super) failed: u64,
    pub(super) elapsed: f64,
    pub(super) p50_us: u64,
    pub(super) p99_us: u64,
    /// Failure statuses and counts, e.g. `503 x12`.
    pub(super) statuses: String,
}

pub(super) fn load_process(
    addr: &SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    ids: &Path,
    seconds: f64,
) -> anyhow::Result<LoadResult> {
    let exe = std::env::current_exe().context("where is this binary?")?;
    let mut command = Command::new(exe);
    command
        .arg("bench-load")
        .arg("--url")
        .arg(format!("http://{addr}{path}"))
        .arg("--method")
        .arg(method)
        .arg("--ids")
        .arg(ids)
        .arg("--seconds")
        .arg(seconds.to_string())
        .arg("--connections")
        .arg(CONNECTIONS.to_string());
    if let Some(body) = body {
        command.arg("--body").arg(body);
    }
    let output = command
        .output()
        .context("could not start the load process")?;
    anyhow::ensure!(
        output.status.success(),
        "the load process failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout)?;
    let line = stdout
        .lines()
        .last()
        .context("the load process printed nothing")?;
    Ok(serde_json::from_str(line)?)
}

/// The loopback address of a load URL (`localhost` is 127.0.0.1).
fn loopback_addr(url: &reqwest::Url) -> anyhow::Result<SocketAddr> {
    let port = url.port_or_known_default().context("the URL has no port")?;
    let ip: std::net::IpAddr = match url.host_str().unwrap_or_default() {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        host => host.trim_start_matches('[').trim_end_matches(']').parse()?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// One keep-alive HTTP/1.1 connection of the load process (hyper's client connection: no
/// pool, no URL parsing per request), reconnecting after an error.
struct LoadConnection {
    addr: SocketAddr,
    host: String,
    method: hyper::Method,
    target: String,
    body: bytes::Bytes,
    ids: Arc<Vec<String>>,
}

type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

impl LoadConnection {
    async fn connect(&self) -> Option<(Sender, tokio::task::JoinHandle<()>)> {
        let stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (sender, connection) = hyper::client::conn::http1::handshake(io).await.ok()?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Some((sender, driver))
    }

    /// Sends requests until `deadline`: the latencies of the 2xx ones (µs) and the statuses
    /// of the others (0: no connection or no response).
    async fn run(self, seed: u64, deadline: Instant) -> (Vec<u64>, Vec<u16>) {
        let mut latencies = Vec::new();
        let mut failures: Vec<u16> = Vec::new();
        let mut state = seed * 0x9E37_79B9_7F4A_7C15 + 1;
        let mut connection = None;
        while Instant::now() < deadline {
            let (sender, _) = match &mut connection {
                Some(open) => open,
                None => match self.connect().await {
                    Some(open) => connection.insert(open),
                    None => {
                        failures.push(0);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let target = if self.ids.is_empty() {
                self.target.clone()
            } else {
                // xorshift: a cheap random index per request.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let id = &self.ids[(state % self.ids.len() as u64) as usize];
                self.target.replace("{id}", id)
            };
            let mut request = hyper::Request::builder()
                .method(self.method.clone())
                .uri(target)
                .header(hyper::header::HOST, &self.host);
            if !self.body.is_empty() {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
            }
            let Ok(request) = request.body(http_body_util::Full::new(self.body.clone())) else {
                failures.push(0);
                continue;
            };
            let sent = Instant::now();
            let status = match sender.ready().await {
                Ok(()) => match sender.send_request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // Read the whole body, as a client would.
                        match http_body_util::BodyExt::collect(response.into_body()).await {
                            Ok(_) => status,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                },
                Err(_) => 0,
            };
            if (200..300).contains(&status) {
                latencies.push(sent.elapsed().as_micros() as u64);
            } else {
                failures.push(status);
                if status == 0
                    && let Some((_, driver)) = connection.take()
                {
                    driver.abort();
                }
            }
        }
        if let Some((_, driver)) = connection {
            driver.abort();
        }
        (latencies, failures)
    }
}

/// Arguments of the hidden `litehouse bench-load` subcommand.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// Full URL; `{id}` is replaced by a random id from `--ids` for each request.
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "GET")]
    method: String,
    /// A file with one id per line.
    #[arg(long)]
    ids: Option<PathBuf>,
    /// JSON body for POST.
    #[arg(long)]
    body: Option<String>,
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    #[arg(long, default_value_t = CONNECTIONS)]
    connections: usize,
    /// Worker threads of the load process.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Runs the load and prints one JSON line of [`LoadResult`]. Traffic goes only to loopback.
pub(crate) fn load(args: LoadArgs) -> anyhow::Result<()> {
    let LoadArgs {
        url,
        method,
        ids,
        body,
        seconds,
        connections,
        threads,
    } = args;
    let parsed = reqwest::Url::parse(&url.replace("{id}", "x"))?;
    let loopback = loopback_addr(&parsed).is_ok_and(|addr| addr.ip().is_loopback());
    anyhow::ensure!(
        loopback,
        "the load process only sends traffic to loopback, not {url}"
    );
    anyhow::ensure!(
        seconds > 0.0 && seconds <= 600.0,
        "--seconds must be in (0, 600]"
    );
    let ids: Arc<Vec<String>> = Arc::new(match ids {
        Some(path) => std::fs::read_to_string(path)?
            .lines()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    });
    anyhow::ensure!(
        !url.contains("{id}") || !ids.is_empty(),
        "the URL has {{id}} but no ids were given"
    );
    let method: hyper::Method = method.parse()?;
    let addr = loopback_addr(&parsed)?;
    // The request target: everything after `http://host:port`, `{id}` still in it.
    let target = url
        .splitn(4, '/')
        .nth(3)
        .map_or_else(|| "/".to_owned(), |rest| format!("/{rest}"));
    let host = format!("{addr}");
    let body = bytes::Bytes::from(body.unwrap_or_default());
    // One worker thread: the load process takes at most one of the machine's cores and
    // leaves the rest to the servers it compares.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .thread_name("lh-bench-load")
        .enable_all()
        .build()?;
    let result = runtime.block_on(async move {
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(seconds);
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..connections {
            let connection = LoadConnection {
                addr,
                host: host.clone(),
                method: method.clone(),
                target: target.clone(),
                body: body.clone(),
                ids: Arc::clone(&ids),
            };
            tasks.spawn(connection.run(worker as u64, deadline));
        }
        let mut latencies = Vec::new();
        let mut failures = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (mut ok, mut failed) = joined?;
            latencies.append(&mut ok);
            failures.append(&mut failed);
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let at = |q: f64| litehouse_bench::quantile(&latencies, q).unwrap_or(0);
        failures.sort_unstable();
        let mut statuses = Vec::new();
        for status in failures.chunk_by(|a, b| a == b) {
            let label = if status[0] == 0 {
                "connection error".to_owned()
            } else {
                status[0].to_string()
            };
            statuses.push(format!("{label} x{}", status.len()));
        }
        anyhow::Ok(LoadResult {
            ok: latencies.len() as u64,
            failed: failures.len() as u64,
            elapsed,
            p50_us: at(0.50),
            p99_us: at(0.99),
            statuses: statuses.join(", "),
        })
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&result)?)?;
    Ok(())
}
