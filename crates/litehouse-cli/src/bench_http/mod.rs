//! HTTP workloads of `litehouse bench`: the real `litehouse serve` stack against what a user
//! would otherwise write (axum over one `Mutex<rusqlite::Connection>`), both in this process
//! on 127.0.0.1:0, loaded by a separate process (`litehouse bench-load`, this binary again)
//! over 64 keep-alive connections.
//!
//! The load process is generic: a method, a path template (`{id}` is replaced by a random id
//! from a file), an optional body, a connection count and a duration; it prints one JSON line
//! with counts and latency percentiles. Another workload (SSE subscribers, say) adds a `kind`
//! to [`LoadArgs`] and a loop in [`load`].

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use litehouse_bench::{BenchOptions, Measurement, Workload};
use litehouse_docs::{CollectionSpec, FieldType, IndexSpec, Store};
use litehouse_server::{Server, ServerConfig};
use serde_json::{Value, json};

mod load;
mod reference;

use load::load_process;
pub(crate) use load::{LoadArgs, load};

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
                reference::start(
                    options,
                    id,
                    profile,
                    shape.lists(),
                    bodies,
                    (shutdown, stopped),
                )
                .await
            }
        }
    }
}
