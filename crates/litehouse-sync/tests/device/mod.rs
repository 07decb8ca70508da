//! Store-backed devices ([`litehouse_sync::Device`], real SQLite files) against the
//! store-backed server routes (`litehouse_sync::router` over a real store, SQLite or
//! PostgreSQL) on loopback, through the fault proxy.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use litehouse_docs::{ChangeFilter, CollectionSpec, Store, StoreConfig};
use litehouse_sync::{
    Device, DeviceConfig, DeviceStatus, FaultMode, FaultProxy, ProducerState, SyncConfig,
};
use serde_json::{Value as Json, json};

pub(crate) const COLLECTION: &str = "tx";

pub(crate) fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

/// Runs `scenario` against a server store on SQLite.
async fn on_sqlite<F, Fut>(config: StoreConfig, scenario: F)
where
    F: FnOnce(Store, tempfile::TempDir) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("server.db"))
        .await
        .unwrap()
        .with_config(config);
    scenario(store, dir).await;
}

/// Runs `scenario` against a server store in a fresh PostgreSQL schema (dropped after), or
/// says it skipped when `LITEHOUSE_TEST_PG` is not set.
pub(crate) async fn on_postgres<F, Fut>(config: StoreConfig, scenario: F)
where
    F: FnOnce(Store, tempfile::TempDir) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = std::env::var("LITEHOUSE_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: LITEHOUSE_TEST_PG not set");
        return;
    };
    let schema = format!(
        "lh_syncdev_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let store = Store::open_postgres_with(litehouse_docs::PostgresConfig {
        url: url.clone(),
        schema: schema.clone(),
        pool_size: 4,
    })
    .await
    .expect("postgres store")
    .with_config(config);
    let dir = tempfile::tempdir().unwrap();
    let outcome = tokio::spawn(scenario(store, dir)).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
    drop(client);
    let _ = conn_task.await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! on_both_backends {
    ($scenario:ident, $config:expr) => {
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::on_sqlite($config, super::$scenario).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::on_postgres($config, super::$scenario).await;
            }
        }
    };
}

pub(crate) struct Server {
    pub(crate) store: Store,
    pub(crate) proxy: FaultProxy,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(store: Store) -> Server {
        store
            .create_collection(COLLECTION, CollectionSpec::default())
            .await
            .unwrap();
        let app = litehouse_sync::router(store.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let proxy = FaultProxy::start(addr).await.unwrap();
        Server { store, proxy, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.proxy.addr())
    }

    pub(crate) async fn head(&self) -> String {
        self.store.head().await.unwrap().to_string()
    }

    pub(crate) async fn producer(&self, device: &str) -> Option<ProducerState> {
        let device = device.to_owned();
        let state = self
            .store
            .transaction(move |tx| async move { tx.meta_get("sync.producer", &device).await })
            .await
            .unwrap();
        state.map(|v| serde_json::from_value(v).unwrap())
    }

    /// Every change the server applied from a device, counted per origin `(device, HLC)`.
    /// Each outbox entry has its own HLC, so a count above 1 is an entry applied twice.
    pub(crate) async fn applied_per_origin(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        let mut cursor = None;
        let mut last: Option<(String, String)> = None;
        loop {
            let page = self
                .store
                .changes_since(cursor.as_ref(), &ChangeFilter::default(), 1_000)
                .await
                .unwrap();
            for change in &page.changes {
                let Some(origin) = &change.origin else {
                    continue;
                };
                // A delete of a document already gone is recorded as a create and a delete
                // with the same origin (a tombstone in the feed): one application.
                let tombstone = change.op == litehouse_docs::ChangeOp::Delete
                    && last.as_ref() == Some(&(origin.clone(), change.id.clone()));
                last = (change.op == litehouse_docs::ChangeOp::Create)
                    .then(|| (origin.clone(), change.id.clone()));
                if !tombstone {
                    *counts.entry(origin.clone()).or_default() += 1;
                }
            }
            cursor = Some(page.next);
            if page.up_to_date {
                return counts;
            }
        }
    }

    pub(crate) async fn stop(self) {
        self.proxy.shutdown().await;
        self.task.abort();
    }
}

fn fast_sync(seed: u64) -> SyncConfig {
    SyncConfig {
        max_batch: 8,
        base_backoff: 20,
        max_backoff: 300,
        poll_interval: 100,
        request_timeout: 1_500,
        jitter_seed: seed,
    }
}

pub(crate) fn device_config(dir: &Path, name: &str, url: &str, seed: u64) -> DeviceConfig {
    let mut config = DeviceConfig::new(dir.join(format!("{name}.db")), url, [COLLECTION]);
    config.device_id = Some(name.to_owned());
    config.sync = fast_sync(seed);
    config.connect_timeout_ms = 500;
    config.log_retention = 50;
    config
}

async fn wait_for(device: &Device, what: &str, limit: Duration, f: impl Fn(&DeviceStatus) -> bool) {
    let started = Instant::now();
    loop {
        let status = device.status().await.unwrap();
        if f(&status) {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "{}: {what} not reached in {limit:?}: {status:?}",
            device.device_id()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every document of `store`'s synced collection, id → body.
pub(crate) async fn documents(store: &Store) -> BTreeMap<String, Json> {
    let mut docs = BTreeMap::new();
    loop {
        // Pages in id order: the next starts after the greatest id so far.
        let after = docs.keys().next_back().cloned();
        let page = store
            .export(COLLECTION, after.as_deref(), 1_000)
            .await
            .unwrap();
        if page.is_empty() {
            return docs;
        }
        docs.extend(page.into_iter().map(|doc| (doc.id, Json::Object(doc.body))));
    }
}

/// Waits until every device has nothing pending and its stored cursor is the server head,
/// then checks that every device has the server's documents.
pub(crate) async fn quiesce_and_check(server: &Server, devices: &[&Device]) {
    let limit = Duration::from_secs(20);
    for device in devices {
        wait_for(device, "pending drained", limit, |s| s.sync.pending == 0).await;
    }
    let head = server.head().await;
    for device in devices {
        device.force_sync().await.unwrap();
        wait_for(device, "cursor at the server head", limit, |s| {
            s.sync.cursor.as_deref() == Some(head.as_str()) && s.sync.pending == 0
        })
        .await;
        assert_eq!(
            device.stored_cursor().await.unwrap().as_deref(),
            Some(head.as_str())
        );
        assert!(device.outbox(10).await.unwrap().is_empty());
    }
    let expected = documents(&server.store).await;
    for device in devices {
        assert_eq!(
            documents(device.store()).await,
            expected,
            "{} differs from the server",
            device.device_id()
        );
    }
}

mod local;
mod sync;
