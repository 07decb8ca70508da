//! Document store workloads D1-D3: litehouse-docs on SQLite and, with `--pg`, PostgreSQL.
//!
//! D1 loads one data set per backend and measures everything that reads it, so the (slow)
//! load of a million documents happens once per backend and not once per query kind. Each
//! PostgreSQL run uses a schema of its own, dropped at the end.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use litehouse_docs::{
    CollectionSpec, FieldType, Filter, IndexSpec, OnDelete, Paging, PostgresConfig, Query,
    ReferenceSpec, Sort, Store,
};
use serde_json::{Value as Json, json};

use crate::{BenchOptions, Measurement, Workload};

pub(crate) fn workloads() -> Vec<Workload> {
    vec![
        Workload {
            id: "D1",
            title: "documents: create_many, then filter + sort + first page of 50 (equality and 1% range; indexed, then not), counts, single creates (one task, then 64), gets",
            // Rows are different operations; a ratio between them would mean nothing.
            reference: "none",
            run: load_and_query,
        },
        Workload {
            id: "D3",
            title: "documents: create_many (batches of 1000, 2 indexes) vs a raw rusqlite insert of the same rows into the same table and indexes",
            reference: "raw rusqlite",
            run: create_many_vs_raw,
        },
        Workload {
            id: "D4",
            title: "documents: write-path cost of the change log: create (1 task, 64 tasks) and create_many (batches of 1000), with the log vs without it (StoreConfig::record_changes), alternated",
            // The note of each `log` row gives its ratio to the `no-log` row beside it.
            reference: "none",
            run: change_log_cost,
        },
        Workload {
            id: "D2",
            title: "documents: delete one parent, cascading to 10k children",
            reference: "sqlite",
            run: cascade_delete,
        },
    ]
}

/// Documents per `create_many`.
const BATCH: u64 = 1000;
/// Distinct values of `category` (indexed) and `group` (not indexed).
const KEYS: u64 = 100;
/// `price` (indexed) and `weight` (not indexed) are spread over `0..SPREAD`; a range query
/// asks for 1% of it.
const SPREAD: u64 = 100_000;
const PAGE: u64 = 50;

/// A store on one backend, and how to remove it afterwards.
struct Backend {
    name: &'static str,
    store: Store,
    /// PostgreSQL: the URL and the schema to drop.
    schema: Option<(String, String)>,
}

impl Backend {
    /// The SQLite backend, then PostgreSQL when `--pg` is given.
    async fn each(opts: &BenchOptions, tag: &str) -> anyhow::Result<Vec<Backend>> {
        let path = opts.db_path(&format!("{tag}-sqlite"));
        let mut backends = vec![Backend {
            name: "sqlite",
            store: Store::open_sqlite(&path).await?,
            schema: None,
        }];
        if let Some(url) = &opts.pg {
            let schema = format!("lh_bench_{}_{}", tag.to_lowercase(), std::process::id());
            drop_schema(url, &schema).await?;
            let store = Store::open_postgres_with(PostgresConfig {
                url: url.clone(),
                schema: schema.clone(),
                pool_size: 4,
            })
            .await
            .context("could not open the PostgreSQL store given by --pg")?;
            backends.push(Backend {
                name: "pg",
                store,
                schema: Some((url.clone(), schema)),
            });
        }
        Ok(backends)
    }

    fn label(&self, what: &str) -> String {
        format!("{} {what}", self.name)
    }

    async fn finish(self) -> anyhow::Result<()> {
        let Backend { store, schema, .. } = self;
        drop(store);
        if let Some((url, schema)) = schema {
            drop_schema(&url, &schema).await?;
        }
        Ok(())
    }
}

async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("could not connect to the PostgreSQL server given by --pg")?;
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .with_context(|| format!("could not drop schema {schema}"))?;
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Added to the first note of a workload when PostgreSQL is not measured.
fn skipped(opts: &BenchOptions) -> &'static str {
    match opts.pg {
        Some(_) => "",
        None => "; PostgreSQL skipped: pass --pg URL (or set LITEHOUSE_BENCH_PG)",
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("could not start a tokio runtime")
}

/// splitmix64: a cheap, well-spread, deterministic value per document number.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Document `i`: indexed `category` (string) + `score` (number) and `price` (number), and
/// their unindexed twins `group` + `rank` and `weight`, with the same distributions.
fn document(i: u64) -> Json {
    let (a, b) = (mix(i), mix(i ^ 0x5555_5555));
    json!({
        "category": format!("c{}", a % KEYS),
        "score": (a >> 8) % 1_000_000,
        "price": (a >> 32) % SPREAD,
        "group": format!("g{}", b % KEYS),
        "rank": (b >> 8) % 1_000_000,
        "weight": (b >> 32) % SPREAD,
        "title": format!("item {i}"),
        "tags": ["bench", format!("t{}", i % 7)],
        "n": i,
    })
}

fn items_spec() -> CollectionSpec {
    CollectionSpec {
        indexes: vec![
            IndexSpec::new(
                "by_category_score",
                [
                    ("category", FieldType::String),
                    ("score", FieldType::Number),
                ],
            ),
            IndexSpec::new("by_price", [("price", FieldType::Number)]),
        ],
        references: vec![],
    }
}

/// What a timed loop measured.
struct Timed {
    ops: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// What the last operation returned (a count, say).
    last: u64,
}

impl Timed {
    fn measurement(&self, id: &str, implementation: &str) -> Measurement {
        Measurement::new(id, implementation, 1, self.ops, 0, self.elapsed)
    }

    /// `p50 0.12 ms, p95 0.20 ms`.
    fn percentiles(&mut self) -> String {
        self.latencies.sort_unstable();
        let at = |fraction: f64| {
            crate::quantile(&self.latencies, fraction)
                .map_or(0.0, |latency| latency.as_secs_f64() * 1000.0)
        };
        format!("p50 {:.2} ms, p95 {:.2} ms", at(0.50), at(0.95))
    }
}

/// Runs `op(iteration)` one after another until `window` has passed and at least `min_ops`
/// ran, timing each.
async fn timed<F, Fut>(window: Duration, min_ops: u64, mut op: F) -> anyhow::Result<Timed>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<u64>>,
{
    let started = Instant::now();
    let mut latencies = Vec::new();
    let (mut iteration, mut last) = (0, 0);
    while started.elapsed() < window || iteration < min_ops {
        let one = Instant::now();
        last = op(iteration).await?;
        latencies.push(one.elapsed());
        iteration += 1;
    }
    Ok(Timed {
        ops: iteration,
        elapsed: started.elapsed(),
        latencies,
        last,
    })
}

fn load_and_query(opts: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let runtime = runtime()?;
    runtime.block_on(async {
        // After a failure, the remaining backends are still finished (their schemas dropped).
        let mut outcome = Ok(());
        for backend in Backend::each(opts, "D1").await? {
            if outcome.is_ok() {
                outcome = load_and_query_on(opts, report, &backend).await;
            }
            backend.finish().await?;
        }
        outcome
    })
}

async fn load_and_query_on(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
) -> anyhow::Result<()> {
    load(opts, report, backend).await?;
    backend.store.analyze().await?;
    query_pages(opts, report, backend).await?;
    count(opts, report, backend).await?;
    create_singles(opts, report, backend).await
}

/// Loads the data set into `items` with `create_many`, timing it.
async fn load(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
) -> anyhow::Result<()> {
    let documents = opts.pick(100_000, 1_000_000);
    let store = &backend.store;
    store.create_collection("items", items_spec()).await?;
    let started = Instant::now();
    for start in (0..documents).step_by(BATCH as usize) {
        let bodies = (start..(start + BATCH).min(documents)).map(document);
        store.create_many("items", bodies.collect()).await?;
    }
    let elapsed = started.elapsed();
    let label = backend.label("create_many");
    report(
        Measurement::new("D1", &label, 1, documents, 0, elapsed).with_note(format!(
            "{documents} documents in batches of {BATCH}, 2 indexes{}",
            skipped(opts)
        )),
    );
    Ok(())
}

async fn query_pages(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
) -> anyhow::Result<()> {
    let store = &backend.store;
    for (what, query) in page_queries() {
        let explain = store.explain("items", &query(0)).await?;
        let plan = if explain.uses_index {
            "index"
        } else {
            "full scan"
        };
        let window = opts.pick(Duration::from_millis(300), Duration::from_secs(3));
        let min_ops = if explain.uses_index { 1 } else { 3 };
        // Each iteration asks for another key or range, so no two in a row are the same.
        let mut result = timed(window, min_ops, |i| {
            let query = query(i);
            async move {
                let page = store.find("items", &query).await?;
                let items = page.items.len() as u64;
                anyhow::ensure!(items == PAGE, "a short page: {items}");
                Ok(items)
            }
        })
        .await?;
        let note = format!("{}, {plan}", result.percentiles());
        report(
            result
                .measurement("D1", &backend.label(what))
                .with_note(note),
        );
    }
    Ok(())
}

async fn count(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
) -> anyhow::Result<()> {
    let store = &backend.store;
    let counts: [(&str, Option<Filter>); 3] = [
        ("count", None),
        ("count idx", Some(Filter::eq("category", "c7"))),
        ("count scan", Some(Filter::eq("group", "g7"))),
    ];
    for (what, filter) in counts {
        let window = opts.pick(Duration::from_millis(300), Duration::from_secs(3));
        let mut result = timed(window, 3, |_| {
            let filter = filter.clone();
            async move { Ok(store.count("items", filter).await?) }
        })
        .await?;
        let note = format!("{}, {} counted", result.percentiles(), result.last);
        report(
            result
                .measurement("D1", &backend.label(what))
                .with_note(note),
        );
    }
    Ok(())
}

/// Single creates, one after another. They go to a collection of their own, so `items`
/// keeps exactly the loaded documents (a migrate test can reuse the file).
async fn create_singles(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
) -> anyhow::Result<()> {
    let store = &backend.store;
    store.create_collection("singles", items_spec()).await?;
    let window = opts.pick(Duration::from_millis(500), Duration::from_secs(5));
    let mut result = timed(window, 1, |i| async move {
        store.create("singles", document(i)).await?;
        Ok(1)
    })
    .await?;
    let note = format!("{}, one transaction each, one task", result.percentiles());
    report(
        result
            .measurement("D1", &backend.label("create"))
            .with_note(note),
    );
    let ids: Vec<String> = store
        .find("singles", &Query::default())
        .await?
        .items
        .into_iter()
        .map(|doc| doc.id)
        .collect();
    anyhow::ensure!(!ids.is_empty(), "no documents to read back");
    let ids = &ids;
    let mut result = timed(window, 1, |i| async move {
        let id = &ids[(i as usize) % ids.len()];
        store.get("singles", id).await?;
        Ok(1)
    })
    .await?;
    let note = format!("{}, one task", result.percentiles());
    report(
        result
            .measurement("D1", &backend.label("get"))
            .with_note(note),
    );
    concurrent_creates(report, backend, window).await
}

/// Tasks that create documents one at a time, all at once.
const CREATE_TASKS: usize = 64;

async fn concurrent_creates(
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
    window: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(CREATE_TASKS);
    for task in 0..CREATE_TASKS {
        let store = backend.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut created = 0u64;
            while started.elapsed() < window {
                let i = 1_000_000_000 + (task as u64) * 1_000_000 + created;
                store.create("singles", document(i)).await?;
                created += 1;
            }
            anyhow::Ok(created)
        }));
    }
    let mut ops = 0;
    for task in tasks {
        ops += task.await.context("create task")??;
    }
    let elapsed = started.elapsed();
    report(
        Measurement::new(
            "D1",
            &backend.label("create"),
            CREATE_TASKS,
            ops,
            0,
            elapsed,
        )
        .with_note(format!("{CREATE_TASKS} tasks, one create at a time each")),
    );
    Ok(())
}

type QueryFor = fn(u64) -> Query;

/// The page queries: a filter, a sort, the first page of 50, no count.
fn page_queries() -> [(&'static str, QueryFor); 4] {
    fn page(filter: Filter, sort: &str) -> Query {
        Query {
            filter: Some(filter),
            sort: vec![Sort::asc(sort)],
            paging: Paging::Page {
                page: 1,
                per_page: PAGE,
            },
            count: false,
        }
    }
    fn range(path: &str, i: u64) -> Filter {
        // 1% of the spread, starting anywhere that leaves a full page.
        let low = mix(i) % (SPREAD - SPREAD / 50);
        Filter::all([Filter::gte(path, low), Filter::lt(path, low + SPREAD / 100)])
    }
    [
        ("eq idx", |i| {
            page(Filter::eq("category", format!("c{}", i % KEYS)), "score")
        }),
        ("range idx", |i| page(range("price", i), "price")),
        ("eq scan", |i| {
            page(Filter::eq("group", format!("g{}", i % KEYS)), "rank")
        }),
        ("range scan", |i| page(range("weight", i), "weight")),
    ]
}

fn cascade_delete(opts: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut outcome = Ok(());
        for backend in Backend::each(opts, "D2").await? {
            if outcome.is_ok() {
                outcome = cascade_delete_on(opts, report, &backend).await;
            }
            backend.finish().await?;
        }
        outcome
    })
}

async fn cascade_delete_on(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
) -> anyhow::Result<()> {
    let children: u64 = 10_000;
    let store = &backend.store;
    store
        .create_collection("parents", CollectionSpec::default())
        .await?;
    let spec = CollectionSpec {
        indexes: vec![],
        references: vec![ReferenceSpec::new("parent", "parents", OnDelete::Cascade)],
    };
    store.create_collection("children", spec).await?;
    let parent = store.create("parents", json!({"name": "root"})).await?;
    let loaded = Instant::now();
    for start in (0..children).step_by(BATCH as usize) {
        let bodies = (start..(start + BATCH).min(children))
            .map(|i| json!({"parent": parent.id, "n": i, "title": format!("child {i}")}));
        store.create_many("children", bodies.collect()).await?;
    }
    let loaded = loaded.elapsed();
    let started = Instant::now();
    let deleted = store.delete("parents", &parent.id, None).await?;
    let elapsed = started.elapsed();
    let removed: u64 = deleted.deleted.values().sum();
    anyhow::ensure!(
        removed == children + 1,
        "the cascade deleted {removed} documents, expected {}",
        children + 1
    );
    report(
        Measurement::new("D2", backend.name, 1, removed, 0, elapsed).with_note(format!(
            "one delete of {removed} documents in {:.0} ms (loading the children took {:.0} ms){}",
            elapsed.as_secs_f64() * 1000.0,
            loaded.as_secs_f64() * 1000.0,
            skipped(opts)
        )),
    );
    Ok(())
}

/// D3: the store's `create_many` against the ceiling of the same work in plain rusqlite.
fn create_many_vs_raw(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
) -> anyhow::Result<()> {
    let documents = opts.pick(100_000, 1_000_000);
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut outcome = Ok(());
        for backend in Backend::each(opts, "D3").await? {
            if outcome.is_ok() {
                outcome = create_many_on(opts, report, &backend, documents).await;
            }
            if outcome.is_ok() && backend.schema.is_none() {
                // The raw table is made by the store, so its schema and indexes are the same.
                backend.store.create_collection("raw", items_spec()).await?;
                let path = opts.dir.join("D3-sqlite.db");
                let raw = tokio::task::spawn_blocking(move || raw_insert(&path, documents))
                    .await
                    .context("raw insert thread")?;
                match raw {
                    Ok(elapsed) => report(
                        Measurement::new("D3", "raw rusqlite", 1, documents, 0, elapsed).with_note(
                            "one connection, WAL + synchronous=NORMAL, one transaction and one \
                             reused prepared INSERT per 1000 rows, JSON serialised per row"
                                .to_owned(),
                        ),
                    ),
                    Err(err) => outcome = Err(err),
                }
            }
            backend.finish().await?;
        }
        outcome
    })
}

async fn create_many_on(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    backend: &Backend,
    documents: u64,
) -> anyhow::Result<()> {
    let store = &backend.store;
    store.create_collection("items", items_spec()).await?;
    let started = Instant::now();
    for start in (0..documents).step_by(BATCH as usize) {
        let bodies = (start..(start + BATCH).min(documents)).map(document);
        store.create_many("items", bodies.collect()).await?;
    }
    let elapsed = started.elapsed();
    report(
        Measurement::new(
            "D3",
            &backend.label("create_many"),
            1,
            documents,
            0,
            elapsed,
        )
        .with_note(format!("{documents} documents{}", skipped(opts))),
    );
    Ok(())
}

/// Inserts the same documents into the store's `raw` collection table with plain rusqlite.
fn raw_insert(path: &std::path::Path, documents: u64) -> anyhow::Result<Duration> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON",
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let now = "2026-01-01T00:00:00.000000Z";
    let started = Instant::now();
    for start in (0..documents).step_by(BATCH as usize) {
        let transaction =
            conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO \"c_raw\" (id, doc, created_at, updated_at, version) VALUES (?1, ?2, ?3, ?4, 1)",
            )?;
            for i in start..(start + BATCH).min(documents) {
                let doc = serde_json::to_string(&document(i))?;
                insert.execute((format!("{i:032x}"), doc, now, now))?;
            }
        }
        transaction.commit()?;
    }
    Ok(started.elapsed())
}

/// D4: the same writes into a store that records the change log and one that does not
/// (`StoreConfig::record_changes = false`, which exists only for this measurement), in
/// alternating windows so that the machine's load hits both alike.
fn change_log_cost(opts: &BenchOptions, report: &mut dyn FnMut(Measurement)) -> anyhow::Result<()> {
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut outcome = Ok(());
        let logged = Backend::each(opts, "D4log").await?;
        let unlogged = Backend::each(opts, "D4nolog").await?;
        for (with, without) in logged.iter().zip(&unlogged) {
            if outcome.is_ok() {
                outcome = change_log_cost_on(opts, report, with, without).await;
            }
        }
        for backend in logged.into_iter().chain(unlogged) {
            backend.finish().await?;
        }
        outcome
    })
}

/// Ops and time summed over rounds, per variant, and each round's ratio (logged rate over
/// unlogged rate).
#[derive(Default, Clone)]
struct Tally {
    ops: [u64; 2],
    elapsed: [Duration; 2],
    ratios: Vec<f64>,
}

/// A write D4 times.
#[derive(Clone, Copy)]
enum D4Write {
    /// `create`, one transaction each, from one task.
    Create,
    /// `create`, one transaction each, from [`CREATE_TASKS`] tasks.
    CreateFromTasks,
    /// `create_many` in batches of [`BATCH`].
    CreateMany,
}

impl D4Write {
    const ALL: [D4Write; 3] = [
        D4Write::Create,
        D4Write::CreateFromTasks,
        D4Write::CreateMany,
    ];

    /// The store method it calls, for the report.
    fn method(self) -> &'static str {
        match self {
            D4Write::Create | D4Write::CreateFromTasks => "create",
            D4Write::CreateMany => "create_many",
        }
    }

    /// Concurrent tasks.
    fn tasks(self) -> usize {
        match self {
            D4Write::CreateFromTasks => CREATE_TASKS,
            D4Write::Create | D4Write::CreateMany => 1,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            D4Write::Create => "one transaction each, one task",
            D4Write::CreateFromTasks => "one transaction each, 64 tasks",
            D4Write::CreateMany => "batches of 1000, docs/s",
        }
    }
}

async fn change_log_cost_on(
    opts: &BenchOptions,
    report: &mut dyn FnMut(Measurement),
    with: &Backend,
    without: &Backend,
) -> anyhow::Result<()> {
    let without_store = without
        .store
        .clone()
        .with_config(litehouse_docs::StoreConfig {
            record_changes: false,
            ..litehouse_docs::StoreConfig::default()
        });
    let stores = [&with.store, &without_store];
    for store in stores {
        store.create_collection("items", items_spec()).await?;
    }
    // Each write's two windows (logged and not) run back to back, so a change in the
    // machine's load between rounds hits both alike; many short rounds (about a minute per
    // engine in all) average what still lands on one window, and the per-round ratios show
    // the spread.
    let window = opts.pick(Duration::from_millis(400), Duration::from_millis(1000));
    let rounds = opts.pick(2, 10);
    let mut tallies = vec![Tally::default(); D4Write::ALL.len()];
    let mut next = 0u64;
    // One unmeasured short window of each write on each store first: otherwise the first
    // measured window (the logged store's) alone pays for a cold file, its first statements'
    // preparation and the runtime's first tasks.
    for write in D4Write::ALL {
        for store in stores {
            d4_window(store, write, window / 4, &mut next).await?;
        }
    }
    for round in 0..rounds {
        for (write, tally) in D4Write::ALL.into_iter().zip(&mut tallies) {
            // Each round swaps which variant goes first, so neither always runs right after
            // the other's writes (its checkpoints, its dirty pages).
            let mut order = [0, 1];
            if round % 2 == 1 {
                order.reverse();
            }
            let mut rates = [0.0; 2];
            for variant in order {
                let (ops, elapsed) = d4_window(stores[variant], write, window, &mut next).await?;
                tally.ops[variant] += ops;
                tally.elapsed[variant] += elapsed;
                rates[variant] = crate::per_second(ops, elapsed);
            }
            tally.ratios.push(rates[0] / rates[1].max(1e-9));
        }
    }
    for (write, mut tally) in D4Write::ALL.into_iter().zip(tallies) {
        let measured = |variant: usize, label: &str| {
            Measurement::new(
                "D4",
                &with.label(&format!("{} {label}", write.method())),
                write.tasks(),
                tally.ops[variant],
                0,
                tally.elapsed[variant],
            )
        };
        let (logged, unlogged) = (measured(0, "log"), measured(1, "no-log"));
        let ratio = logged.ops_per_sec / unlogged.ops_per_sec.max(1e-9);
        tally.ratios.sort_by(f64::total_cmp);
        let spread = match (
            median(&tally.ratios),
            tally.ratios.first(),
            tally.ratios.last(),
        ) {
            (Some(median), Some(low), Some(high)) => {
                format!("per-round median {median:.2}x, range {low:.2}x-{high:.2}x")
            }
            _ => String::new(),
        };
        let what = write.describe();
        report(logged.with_note(format!(
            "{what}; {ratio:.2}x of no-log ({:+.0}%), {rounds} alternated rounds, {spread}",
            (ratio - 1.0) * 100.0
        )));
        report(unlogged.with_note(format!("{what}; StoreConfig::record_changes = false")));
    }
    Ok(())
}

/// The median of `sorted` (sorted ascending): the middle value, or the mean of the two
/// middle ones; `None` when it is empty.
fn median(sorted: &[f64]) -> Option<f64> {
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// One D4 window of `write` on `store`: ops done and the time taken. `next` numbers the
/// documents, so no two windows write the same ones.
async fn d4_window(
    store: &Store,
    write: D4Write,
    window: Duration,
    next: &mut u64,
) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let mut ops = 0;
    match write {
        D4Write::Create => {
            while started.elapsed() < window {
                store.create("items", document(*next)).await?;
                *next += 1;
                ops += 1;
            }
        }
        D4Write::CreateFromTasks => {
            let mut tasks = Vec::with_capacity(CREATE_TASKS);
            for task in 0..CREATE_TASKS {
                let store = store.clone();
                let base = *next + task as u64 * 1_000_000;
                tasks.push(tokio::spawn(async move {
                    let mut created = 0u64;
                    while started.elapsed() < window {
                        store.create("items", document(base + created)).await?;
                        created += 1;
                    }
                    anyhow::Ok(created)
                }));
            }
            for task in tasks {
                ops += task.await.context("create task")??;
            }
            *next += CREATE_TASKS as u64 * 1_000_000;
        }
        D4Write::CreateMany => {
            while started.elapsed() < window {
                let batch: Vec<Json> = (*next..*next + BATCH).map(document).collect();
                *next += BATCH;
                store.create_many("items", batch).await?;
                ops += BATCH;
            }
        }
    }
    Ok((ops, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_takes_the_middle_or_the_mean_of_the_two_middles() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[0.9]), Some(0.9));
        assert_eq!(median(&[0.8, 0.9, 1.2]), Some(0.9));
        assert_eq!(median(&[0.5, 0.75, 1.25, 2.0]), Some(1.0));
    }
}
