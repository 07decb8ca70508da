//! HTTP workloads of `litehouse bench`: the real `litehouse serve` stack against what a user
//! would otherwise write (axum over one `Mutex<rusqlite::Connection>`), both in this process
//! on 127.0.0.1:0, loaded by a separate process (`litehouse bench-load`, this binary again)
//! over 64 keep-alive connections.
//!
//! The load process is generic: a method, a path template (`{id}` is replaced by a random id
//! from a file), an optional body, a connection count and a duration; it prints one JSON line
//! with counts and latency percentiles. Another workload (SSE subscribers, say) adds a `kind`
//! to [`LoadArgs`] and a loop in [`load`].

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use litehouse_bench::{BenchOptions, Measurement, Workload};
use litehouse_docs::{CollectionSpec, FieldType, IndexSpec, Store};
use litehouse_server::{Server, ServerConfig};
use serde_json::{Value, json};

/// Connections the load process keeps open.
const CONNECTIONS: usize = 64;
const COLLECTION: &str = "items";
/// Documents per `group` value: `group=eq.7` selects 1% of the collection.
const GROUPS: u64 = 100;

/// The HTTP workloads.
pub(crate) fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            id: "H1",
            title: "HTTP GET a document by id (random ids), 64 connections",
            reference: "axum+Mutex",
            run: |options, report| run(options, report, Shape::Get),
        },
        Workload {
            id: "H2",
            title: "HTTP POST create, Balanced, 64 connections",
            reference: "axum+Mutex",
            run: |options, report| run(options, report, Shape::Post(litehouse::Profile::Balanced)),
        },
        Workload {
            id: "H3",
            title: "HTTP POST create, Durable (fsync per commit), 64 connections",
            reference: "axum+Mutex",
            run: |options, report| run(options, report, Shape::Post(litehouse::Profile::Durable)),
        },
        Workload {
            id: "H4",
            title: "HTTP list, selective filter (1%), sorted, page of 50 with its total",
            reference: "axum+Mutex",
            run: |options, report| run(options, report, Shape::ListSelective),
        },
        Workload {
            id: "H5",
            title: "HTTP list, broad filter (99%), sorted, page of 50, skipTotal",
            reference: "axum+Mutex",
            run: |options, report| run(options, report, Shape::ListBroad { total: false }),
        },
        Workload {
            id: "H6",
            title: "HTTP list, broad filter (99%), sorted, page of 50, with its exact total (a count of 99% of the collection per request)",
            reference: "axum+Mutex",
            run: |options, report| run(options, report, Shape::ListBroad { total: true }),
        },
    ]
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Get,
    Post(litehouse::Profile),
    ListSelective,
    ListBroad { total: bool },
}

impl Shape {
    /// Whether this shape lists documents (its collection gets the index H4's query needs).
    fn lists(self) -> bool {
        matches!(self, Shape::ListSelective | Shape::ListBroad { .. })
    }

    fn profile(self) -> litehouse::Profile {
        match self {
            Shape::Post(profile) => profile,
            _ => litehouse::Profile::Balanced,
        }
    }

    /// (method, path template, body) of the requests this shape measures.
    fn requests(self) -> Vec<(&'static str, String, Option<String>)> {
        let docs = format!("/api/collections/{COLLECTION}/docs");
        match self {
            Shape::Get => vec![("GET", format!("{docs}/{{id}}"), None)],
            Shape::Post(_) => vec![(
                "POST",
                docs,
                Some(json!({"n": 5, "group": 7, "name": "posted", "tags": ["a", "b"]}).to_string()),
            )],
            Shape::ListSelective => vec![(
                "GET",
                format!("{docs}?group=eq.7&order=n.asc&perPage=50"),
                None,
            )],
            Shape::ListBroad { total } => vec![(
                "GET",
                format!(
                    "{docs}?group=gt.0&order=n.asc&perPage=50{}",
                    if total { "" } else { "&skipTotal=true" }
                ),
                None,
            )],
        }
    }
}

fn run(
    options: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    shape: Shape,
) -> anyhow::Result<()> {
    let id = match shape {
        Shape::Get => "H1",
        Shape::Post(litehouse::Profile::Balanced) => "H2",
        Shape::Post(_) => "H3",
        Shape::ListSelective => "H4",
        Shape::ListBroad { total: false } => "H5",
        Shape::ListBroad { total: true } => "H6",
    };
    let preload = options.pick(10_000, 100_000);
    let seconds = options.pick(2.0, 8.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lh-bench-http")
        .enable_all()
        .build()?;
    let mut targets = vec![Target::Litehouse { pg: None }, Target::Reference];
    if let Some(url) = &options.pg {
        targets.insert(
            1,
            Target::Litehouse {
                pg: Some(url.clone()),
            },
        );
    }
    for target in targets {
        let name = target.name();
        let running = runtime
            .block_on(target.start(options, id, shape, preload))
            .with_context(|| format!("starting {name}"))?;
        let ids_file = options.dir.join(format!("{id}-{name}-ids.txt"));
        std::fs::write(&ids_file, running.ids.join("\n"))?;
        for (method, path, body) in shape.requests() {
            let cpu_before = process_cpu();
            let result = load_process(
                &running.addr,
                method,
                &path,
                body.as_deref(),
                &ids_file,
                seconds,
            )
            .with_context(|| format!("the load process against {name}"))?;
            // CPU the server side (this process: the server's runtime and the engine's
            // threads) spent per answered request: robust to a noisy machine, unlike req/s.
            let cpu = match (cpu_before, process_cpu()) {
                (Some(before), Some(after)) if result.ok > 0 => format!(
                    ", server CPU {:.1} µs/req",
                    after.saturating_sub(before).as_secs_f64() * 1e6 / result.ok as f64
                ),
                _ => String::new(),
            };
            report(
                Measurement::new(
                    id,
                    name,
                    CONNECTIONS,
                    result.ok,
                    result.failed,
                    Duration::from_secs_f64(result.elapsed),
                )
                .with_note(format!(
                    "p50 {:.2} ms, p99 {:.2} ms{cpu}{}",
                    result.p50_us as f64 / 1000.0,
                    result.p99_us as f64 / 1000.0,
                    if result.statuses.is_empty() {
                        String::new()
                    } else {
                        format!(", failures: {}", result.statuses)
                    }
                )),
            );
        }
        runtime.block_on(running.stop())?;
    }
    Ok(())
}

/// CPU time this process's threads have run, from `/proc/self/task/*/schedstat` (Linux;
/// `None` elsewhere). Threads that exit in between are not counted.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(text) = std::fs::read_to_string(task.ok()?.path().join("schedstat")) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

enum Target {
    Litehouse { pg: Option<String> },
    Reference,
}

/// A server under load: stopped (and its PostgreSQL schema dropped) by [`Running::stop`].
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    /// The preloaded document ids.
    pub(crate) ids: Vec<String>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// A PostgreSQL schema to drop afterwards.
    cleanup: Option<(String, String)>,
}

impl Running {
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.task.await??;
        if let Some((url, schema)) = self.cleanup {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            let connection = tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await?;
            drop(client);
            let _ = connection.await;
        }
        Ok(())
    }
}

/// The backends a litehouse workload runs on, with their report names: SQLite, and
/// PostgreSQL when the bench was given a URL.
pub(crate) fn backends(options: &BenchOptions) -> Vec<(&'static str, Option<String>)> {
    let mut backends = vec![("litehouse", None)];
    if let Some(url) = &options.pg {
        backends.push(("litehouse-pg", Some(url.clone())));
    }
    backends
}

/// The document store a benchmark serves: a SQLite file of its own (`name` in the bench
/// directory) or a fresh PostgreSQL schema, with `collection` created empty by `spec`.
pub(crate) struct BenchStore {
    pub(crate) store: Store,
    database: Option<litehouse::Database>,
    cleanup: Option<(String, String)>,
}

impl BenchStore {
    pub(crate) async fn open(
        options: &BenchOptions,
        name: &str,
        config: litehouse::Config,
        pg: Option<litehouse_docs::PostgresConfig>,
        collection: &str,
        spec: CollectionSpec,
    ) -> anyhow::Result<BenchStore> {
        let (store, database, cleanup) = match pg {
            None => {
                let database = litehouse::Database::open(options.db_path(name), config)?;
                (
                    Store::from_database(database.clone()).await?,
                    Some(database),
                    None,
                )
            }
            Some(pg) => {
                let cleanup = Some((pg.url.clone(), pg.schema.clone()));
                (Store::open_postgres_with(pg).await?, None, cleanup)
            }
        };
        if store
            .list_collections()
            .await?
            .iter()
            .any(|c| c.name == collection)
        {
            store.drop_collection(collection).await?;
        }
        store.create_collection(collection, spec).await?;
        Ok(BenchStore {
            store,
            database,
            cleanup,
        })
    }

    /// Serves the store with `config` on 127.0.0.1:0 until [`Running::stop`].
    pub(crate) async fn serve(
        self,
        options: &BenchOptions,
        name: &str,
        config: ServerConfig,
        ids: Vec<String>,
    ) -> anyhow::Result<Running> {
        let config = ServerConfig {
            bind: "127.0.0.1:0".parse()?,
            admin_token: "bench-admin-token".into(),
            token_file: Some(options.dir.join(format!("{name}-tokens.json"))),
            ..config
        };
        let server = Server::bind(config, self.store, self.database).await?;
        let addr = server.local_addr();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .map_err(anyhow::Error::from)
        });
        Ok(Running {
            addr,
            ids,
            shutdown,
            task,
            cleanup: self.cleanup,
        })
    }
}

impl Target {
    fn name(&self) -> &'static str {
        match self {
            Target::Litehouse { pg: None } => "litehouse",
            Target::Litehouse { pg: Some(_) } => "litehouse-pg",
            Target::Reference => "axum+Mutex",
        }
    }

    async fn start(
        &self,
        options: &BenchOptions,
        id: &str,
        shape: Shape,
        preload: u64,
    ) -> anyhow::Result<Running> {
        let profile = shape.profile();
        let bodies = (0..preload).map(|n| {
            json!({"n": n, "group": n % GROUPS, "name": format!("item {n}"), "tags": ["a", "b"]})
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        match self {
            Target::Litehouse { pg } => {
                let config = litehouse::Config {
                    profile,
                    ..litehouse::Config::default()
                };
                let pg = pg.as_ref().map(|url| litehouse_docs::PostgresConfig {
                    url: url.clone(),
                    schema: format!("lh_bench_http_{}", std::process::id()),
                    ..litehouse_docs::PostgresConfig::default()
                });
                let mut indexes = vec![
                    IndexSpec::new("by_group", [("group", FieldType::Number)]),
                    IndexSpec::new("by_n", [("n", FieldType::Number)]),
                ];
                if shape.lists() {
                    // The index a user makes for "one group, sorted by n" (H4): the page is
                    // read in index order instead of sorting every match.
                    indexes.push(IndexSpec::new(
                        "by_group_n",
                        [("group", FieldType::Number), ("n", FieldType::Number)],
                    ));
                }
                let spec = CollectionSpec {
                    indexes,
                    ..CollectionSpec::default()
                };
                let name = format!("{id}-litehouse");
                let bench = BenchStore::open(options, &name, config, pg, COLLECTION, spec).await?;
                let mut ids = Vec::with_capacity(preload as usize);
                let bodies: Vec<Value> = bodies.collect();
                for chunk in bodies.chunks(litehouse_docs::MAX_BATCH) {
                    for doc in bench.store.create_many(COLLECTION, chunk.to_vec()).await? {
                        ids.push(doc.id);
                    }
                }
                bench.serve(options, id, ServerConfig::default(), ids).await
            }
            Target::Reference => {
                let path = options.db_path(&format!("{id}-reference"));
                let synchronous = match profile {
                    litehouse::Profile::Durable => "FULL",
                    _ => "NORMAL",
                };
                let conn = rusqlite::Connection::open(&path)?;
                conn.execute_batch(&format!(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA busy_timeout=5000;
                     CREATE TABLE docs(id TEXT PRIMARY KEY, version INTEGER NOT NULL,
                        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, body TEXT NOT NULL);
                     CREATE INDEX docs_group ON docs(json_extract(body, '$.group'));
                     CREATE INDEX docs_n ON docs(json_extract(body, '$.n'));"
                ))?;
                if shape.lists() {
                    conn.execute_batch(
                        "CREATE INDEX docs_group_n ON docs(json_extract(body, '$.group'), json_extract(body, '$.n'))",
                    )?;
                }
                let mut ids = Vec::with_capacity(preload as usize);
                {
                    let tx = conn.unchecked_transaction()?;
                    let mut insert = tx.prepare(
                        "INSERT INTO docs(id, version, created_at, updated_at, body) VALUES (?1, 1, ?2, ?2, ?3)",
                    )?;
                    let now = now_text();
                    for body in bodies {
                        let id = uuid::Uuid::now_v7().to_string();
                        insert.execute(rusqlite::params![id, now, body.to_string()])?;
                        ids.push(id);
                    }
                    drop(insert);
                    tx.commit()?;
                }
                let app = reference_app(Arc::new(Mutex::new(conn)));
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let task = tokio::spawn(async move {
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await
                        .map_err(anyhow::Error::from)
                });
                Ok(Running {
                    addr,
                    ids,
                    shutdown,
                    task,
                    cleanup: None,
                })
            }
        }
    }
}

fn now_text() -> String {
    jiff::Timestamp::now().to_string()
}

// ---------------------------------------------------------------------------------------------
// The reference server: what a user writes without litehouse.

type Shared = Arc<Mutex<rusqlite::Connection>>;

fn reference_app(conn: Shared) -> Router {
    Router::new()
        .route(
            "/api/collections/{collection}/docs",
            get(reference_list).post(reference_create),
        )
        .route(
            "/api/collections/{collection}/docs/{id}",
            get(reference_get),
        )
        .with_state(conn)
}

fn internal(err: impl std::fmt::Display) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response()
}

fn document(id: String, version: i64, created: String, updated: String, body: &str) -> Value {
    let mut doc = serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut doc {
        fields.insert("id".into(), Value::String(id));
        fields.insert("version".into(), version.into());
        fields.insert("createdAt".into(), Value::String(created));
        fields.insert("updatedAt".into(), Value::String(updated));
    }
    doc
}

async fn reference_create(State(conn): State<Shared>, Json(body): Json<Value>) -> Response {
    if !body.is_object() {
        return (StatusCode::BAD_REQUEST, "a document is a JSON object").into_response();
    }
    let id = uuid::Uuid::now_v7().to_string();
    let now = now_text();
    let text = body.to_string();
    let inserted = conn
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .prepare_cached(
            "INSERT INTO docs(id, version, created_at, updated_at, body) VALUES (?1, 1, ?2, ?2, ?3)",
        )
        .and_then(|mut insert| insert.execute(rusqlite::params![id, now, text]));
    match inserted {
        Ok(_) => (
            StatusCode::CREATED,
            Json(document(id, 1, now.clone(), now, &text)),
        )
            .into_response(),
        Err(err) => internal(err),
    }
}

async fn reference_get(
    State(conn): State<Shared>,
    UrlPath((_collection, id)): UrlPath<(String, String)>,
) -> Response {
    let found = conn
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .prepare_cached("SELECT version, created_at, updated_at, body FROM docs WHERE id = ?1")
        .and_then(|mut select| {
            select.query_row([&id], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
        });
    match found {
        Ok((version, created, updated, body)) => {
            Json(document(id, version, created, updated, &body)).into_response()
        }
        Err(rusqlite::Error::QueryReturnedNoRows) => StatusCode::NOT_FOUND.into_response(),
        Err(err) => internal(err),
    }
}

/// Only the list shapes the workloads send: `group=eq.N` or `group=gt.N`, ordered by `n`,
/// 50 per page, with or without the total.
async fn reference_list(State(conn): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let mut filter = None;
    let mut skip_total = false;
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("group", value)) => {
                filter = value
                    .split_once('.')
                    .and_then(|(op, n)| Some((op.to_owned(), n.parse::<i64>().ok()?)));
            }
            Some(("skipTotal", "true")) => skip_total = true,
            _ => {}
        }
    }
    let Some((op, value)) = filter else {
        return (StatusCode::BAD_REQUEST, "group=eq.N or group=gt.N").into_response();
    };
    let comparison = match op.as_str() {
        "eq" => "=",
        "gt" => ">",
        _ => return (StatusCode::BAD_REQUEST, "eq or gt").into_response(),
    };
    let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
    let page = conn
        .prepare_cached(&format!(
            "SELECT id, version, created_at, updated_at, body FROM docs
             WHERE json_extract(body, '$.group') {comparison} ?1
             ORDER BY json_extract(body, '$.n') LIMIT 50"
        ))
        .and_then(|mut select| {
            select
                .query_map([value], |row| {
                    Ok(document(
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        &row.get::<_, String>(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<Value>>>()
        });
    let total = if skip_total {
        Ok(None)
    } else {
        conn.prepare_cached(&format!(
            "SELECT count(*) FROM docs WHERE json_extract(body, '$.group') {comparison} ?1"
        ))
        .and_then(|mut count| count.query_row([value], |row| row.get::<_, i64>(0)))
        .map(Some)
    };
    drop(conn);
    match (page, total) {
        (Ok(items), Ok(total)) => Json(json!({
            "items": items,
            "page": 1,
            "perPage": 50,
            "totalItems": total,
            "totalPages": total.map(|total| (total + 49) / 50),
        }))
        .into_response(),
        (Err(err), _) | (_, Err(err)) => internal(err),
    }
}

// ---------------------------------------------------------------------------------------------
// The load process.

/// What one run of the load process measured.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LoadResult {
    ok: u64,
    failed: u64,
    elapsed: f64,
    p50_us: u64,
    p99_us: u64,
    /// Failure statuses and counts, e.g. `503 x12`.
    statuses: String,
}

fn load_process(
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
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
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
