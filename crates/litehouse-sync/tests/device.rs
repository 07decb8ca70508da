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

/// Three devices write offline (creates, replaces, patches, deletes, on shared and own
/// documents), reconnect through resets and delays, and converge: every change applied on
/// the server once, every outbox empty, every cursor at the head.
async fn offline_devices_converge_exactly_once(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let url = server.url();
    let names = ["a", "b", "c"];
    let mut devices = Vec::new();
    for (i, name) in names.iter().enumerate() {
        devices.push(
            Device::open(device_config(dir.path(), name, &url, i as u64))
                .await
                .unwrap(),
        );
    }
    // Shared documents, created by a and pulled by the others.
    for n in 0..4 {
        devices[0]
            .create_with_id(COLLECTION, &uuid(n), json!({"n": n, "by": "a"}))
            .await
            .unwrap();
    }
    quiesce_and_check(&server, &[&devices[0], &devices[1], &devices[2]]).await;

    let mut writes: HashMap<&str, u64> = HashMap::from([("a", 4), ("b", 0), ("c", 0)]);
    for device in &devices {
        device.pause().await.unwrap();
        assert_eq!(
            device.status().await.unwrap().sync.state,
            litehouse_sync::SyncState::Offline { paused: true }
        );
    }
    for round in 0..6u64 {
        for (i, device) in devices.iter().enumerate() {
            let shared = uuid((round + i as u64) % 4);
            let name = names[i];
            match (round + i as u64) % 3 {
                0 => device
                    .replace(COLLECTION, &shared, json!({"by": name, "round": round}))
                    .await
                    .map(drop),
                1 => device
                    .patch(
                        COLLECTION,
                        &shared,
                        json!({"patched": name, "round": round}),
                    )
                    .await
                    .map(drop),
                _ => device
                    .create(COLLECTION, json!({"own": name, "round": round}))
                    .await
                    .map(drop),
            }
            .unwrap();
            *writes.get_mut(name).unwrap() += 1;
        }
    }
    // One device deletes one of its own documents, offline.
    let own = devices[1]
        .create(COLLECTION, json!({"doomed": true}))
        .await
        .unwrap();
    devices[1].delete(COLLECTION, &own.id).await.unwrap();
    *writes.get_mut("b").unwrap() += 2;
    for (i, device) in devices.iter().enumerate() {
        let status = device.status().await.unwrap();
        assert_eq!(
            status.sync.pending as u64,
            writes[names[i]] - if i == 0 { 4 } else { 0 }
        );
        assert!(status.sync.oldest_pending_age.is_some());
    }
    assert_eq!(
        server.producer("b").await,
        None,
        "nothing leaves a paused device"
    );

    // Faults apply to new connections: cut the pooled keep-alive ones.
    server.proxy.set_mode(FaultMode::Reset);
    server.proxy.cut_all();
    for device in &devices {
        device.resume().await.unwrap();
    }
    wait_for(&devices[0], "a failure", Duration::from_secs(10), |s| {
        s.sync.consecutive_failures > 0
    })
    .await;
    server
        .proxy
        .set_mode(FaultMode::Delay(Duration::from_millis(5)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.proxy.set_mode(FaultMode::Pass);
    quiesce_and_check(&server, &[&devices[0], &devices[1], &devices[2]]).await;

    for (i, device) in devices.iter().enumerate() {
        let state = server.producer(names[i]).await.expect("producer state");
        assert_eq!(
            state.last_seq, writes[names[i]],
            "every entry of {} acknowledged",
            names[i]
        );
        assert_eq!(state.epoch, device.epoch());
    }
    let applied = server.applied_per_origin().await;
    assert!(
        applied.values().all(|n| *n == 1),
        "a change applied twice: {applied:?}"
    );
    assert!(applied.len() >= 10, "{applied:?}");
    let log = devices[0].sync_log(100).await.unwrap();
    assert!(log.iter().any(|r| r.kind == "push"), "{log:?}");
    assert!(log.iter().any(|r| r.kind == "push-failed"), "{log:?}");
    for device in devices {
        device.stop().await;
    }
    server.stop().await;
}
on_both_backends!(
    offline_devices_converge_exactly_once,
    litehouse_docs::StoreConfig::default()
);

/// A device dropped (not stopped) while the server applies its push but the response is
/// lost, reopened on the same file: the outbox is sent again, the server deduplicates it, the
/// sequence continues without a gap and nothing is applied twice.
async fn killed_device_resends_after_reopen(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let config = device_config(dir.path(), "k", &server.url(), 7);
    let mut config = config;
    config.start_paused = true;
    let device = Device::open(config.clone()).await.unwrap();
    let epoch = device.epoch();
    for n in 0..20u64 {
        device
            .create_with_id(COLLECTION, &uuid(100 + n), json!({"n": n}))
            .await
            .unwrap();
    }
    server.proxy.set_mode(FaultMode::BlackholeResponses);
    server.proxy.cut_all();
    device.resume().await.unwrap();
    let started = Instant::now();
    while server.producer("k").await.is_none_or(|p| p.last_seq < 8) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never applied a push"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        device.status().await.unwrap().sync.pending,
        20,
        "no acknowledgement arrived"
    );
    drop(device); // a kill: no stop, no goodbye
    server.proxy.cut_all();
    server.proxy.set_mode(FaultMode::Pass);

    config.start_paused = false;
    let device = Device::open(config).await.unwrap();
    assert_eq!(device.epoch(), epoch, "the same file keeps its epoch");
    let outbox = device.outbox(100).await.unwrap();
    assert_eq!(outbox.len(), 20, "the outbox survived");
    assert!(outbox.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let next = device
        .create_with_id(COLLECTION, &uuid(200), json!({"after": "reopen"}))
        .await
        .unwrap();
    quiesce_and_check(&server, &[&device]).await;
    assert_eq!(
        server.producer("k").await.unwrap().last_seq,
        21,
        "seq continued gaplessly"
    );
    let applied = server.applied_per_origin().await;
    assert_eq!(applied.len(), 21, "{applied:?}");
    assert!(
        applied.values().all(|n| *n == 1),
        "a change applied twice: {applied:?}"
    );
    assert_eq!(
        server.store.get(COLLECTION, &next.id).await.unwrap().body["after"],
        "reopen"
    );
    device.stop().await;
    server.stop().await;
}
on_both_backends!(
    killed_device_resends_after_reopen,
    litehouse_docs::StoreConfig::default()
);

/// A push that fails (connection reset, then a hung server) is retried by the timer alone,
/// within the maximum backoff (plus one request timeout), with no new local write.
async fn failed_push_is_retried_without_a_new_write(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let mut config = device_config(dir.path(), "r", &server.url(), 11);
    config.sync.request_timeout = 700;
    config.sync.max_backoff = 400;
    config.sync.poll_interval = 60_000;
    let (max_backoff, timeout) = (config.sync.max_backoff, config.sync.request_timeout);
    let device = Device::open(config).await.unwrap();
    for (n, mode) in [FaultMode::Reset, FaultMode::Hang].into_iter().enumerate() {
        server.proxy.set_mode(mode);
        server.proxy.cut_all();
        device
            .create_with_id(COLLECTION, &uuid(300 + n as u64), json!({"n": n}))
            .await
            .unwrap();
        wait_for(&device, "repeated failures", Duration::from_secs(10), |s| {
            s.sync.consecutive_failures >= 2 && s.sync.pending == 1
        })
        .await;
        server.proxy.set_mode(FaultMode::Pass);
        server.proxy.cut_all();
        let healed = Instant::now();
        let cap = Duration::from_millis(max_backoff + timeout + 1_000);
        wait_for(&device, "pending drained", cap, |s| s.sync.pending == 0).await;
        eprintln!(
            "{mode:?}: drained {:?} after healing (cap {cap:?})",
            healed.elapsed()
        );
    }
    let status = device.status().await.unwrap();
    assert!(status.sync.total_retries >= 4, "{status:?}");
    assert!(status.sync.last_push_ok.is_some());
    assert!(device.outbox(10).await.unwrap().is_empty());
    assert_eq!(server.producer("r").await.unwrap().last_seq, 2);
    device.stop().await;
    server.stop().await;
}
on_both_backends!(
    failed_push_is_retried_without_a_new_write,
    litehouse_docs::StoreConfig::default()
);

/// A device whose cursor fell behind the server's change-log retention gets 410, reads the
/// full state again and converges: documents deleted on the server meanwhile disappear,
/// new ones appear, a local write made meanwhile survives and is pushed.
async fn expired_cursor_ends_in_a_full_reread(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let url = server.url();
    let a = Device::open(device_config(dir.path(), "a", &url, 21))
        .await
        .unwrap();
    let b = Device::open(device_config(dir.path(), "b", &url, 22))
        .await
        .unwrap();
    for n in 0..3 {
        a.create_with_id(COLLECTION, &uuid(400 + n), json!({"n": n}))
            .await
            .unwrap();
    }
    quiesce_and_check(&server, &[&a, &b]).await;

    a.pause().await.unwrap();
    b.delete(COLLECTION, &uuid(400)).await.unwrap();
    b.replace(COLLECTION, &uuid(401), json!({"n": "replaced by b"}))
        .await
        .unwrap();
    for n in 0..12 {
        b.create(COLLECTION, json!({"filler": n})).await.unwrap();
    }
    let offline = a
        .create(COLLECTION, json!({"offline": true}))
        .await
        .unwrap();
    wait_for(&b, "b pushed", Duration::from_secs(20), |s| {
        s.sync.pending == 0
    })
    .await;
    // Retention keeps 3 changes: a's cursor is now far behind it.
    let mut pruned = 0;
    while server.store.prune_changes().await.unwrap() > 0 {
        pruned += 1;
        assert!(pruned < 100);
    }
    a.resume().await.unwrap();
    quiesce_and_check(&server, &[&a, &b]).await;
    let docs = documents(a.store()).await;
    assert!(!docs.contains_key(&uuid(400)), "deleted on the server");
    assert_eq!(docs[&uuid(401)]["n"], "replaced by b");
    assert!(docs.contains_key(&offline.id), "the offline write survived");
    assert_eq!(docs.len(), 2 + 12 + 1);
    let log = a.sync_log(100).await.unwrap();
    assert!(log.iter().any(|r| r.kind == "resync"), "{log:?}");
    a.stop().await;
    b.stop().await;
    server.stop().await;
}
on_both_backends!(
    expired_cursor_ends_in_a_full_reread,
    litehouse_docs::StoreConfig {
        change_retention_count: Some(3),
        ..litehouse_docs::StoreConfig::default()
    }
);

/// Local-only checks: synced collections, the sync log's retention, a reopened file keeps
/// its identity, another device id on the same file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_bookkeeping_is_local_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here: the device works offline, failing and logging its pushes.
    let mut config = device_config(dir.path(), "solo", "http://127.0.0.1:9", 5);
    config.log_retention = 5;
    config.sync.max_backoff = 50;
    let device = Device::open(config.clone()).await.unwrap();
    let err = device.create("elsewhere", json!({})).await.unwrap_err();
    assert!(
        matches!(err, litehouse_sync::DeviceError::NotSynced { .. }),
        "{err}"
    );
    let err = device.create(COLLECTION, json!([1])).await.unwrap_err();
    assert!(
        matches!(err, litehouse_sync::DeviceError::Store(_)),
        "{err}"
    );
    assert!(
        device.outbox(10).await.unwrap().is_empty(),
        "a refused write queues nothing"
    );
    let doc = device.create(COLLECTION, json!({"x": 1})).await.unwrap();
    wait_for(&device, "failures logged", Duration::from_secs(10), |s| {
        s.sync.consecutive_failures >= 12
    })
    .await;
    let log = device.sync_log(100).await.unwrap();
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(log[4].kind, "push-failed", "{log:?}");
    let status = device.status().await.unwrap();
    assert!(status.sync.last_error.is_some());
    assert!(matches!(
        status.sync.state,
        litehouse_sync::SyncState::BackingOff { .. } | litehouse_sync::SyncState::Syncing
    ));
    let epoch = device.epoch();
    device.stop().await;

    let reopened = Device::open(config.clone()).await.unwrap();
    assert_eq!((reopened.device_id(), reopened.epoch()), ("solo", epoch));
    let outbox = reopened.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        (outbox[0].seq, outbox[0].doc_id.as_str()),
        (1, doc.id.as_str())
    );
    reopened.stop().await;

    config.device_id = Some("other".into());
    let err = Device::open(config.clone()).await.unwrap_err();
    assert!(
        matches!(err, litehouse_sync::DeviceError::DeviceIdMismatch { .. }),
        "{err}"
    );

    // A recreated file is a new epoch (larger, so the server accepts it).
    config.path = dir.path().join("fresh.db");
    config.device_id = Some("solo".into());
    let fresh = Device::open(config).await.unwrap();
    assert!(fresh.epoch() > epoch);
    fresh.stop().await;
}

/// The bearer token is a secret the caller supplies at each open: the file keeps the rest of
/// the config but never the token, and a token an older version stored is removed at open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_never_stored_in_the_file() {
    const OLD: &str = "lh_old-secret-9f3a";
    const NEW: &str = "lh_new-secret-27c4";
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), "keeper", "http://127.0.0.1:9", 7);
    config.start_paused = true;
    // A file as an older version left it: its config row holds the token.
    let old = Store::open_sqlite(&config.path).await.unwrap();
    let mut stored = serde_json::to_value(&config).unwrap();
    stored["token"] = json!(OLD);
    old.transaction(move |tx| async move { tx.meta_put("sync.config", "config", stored).await })
        .await
        .unwrap();
    drop(old);

    config.token = Some(NEW.into());
    let device = Device::open(config.clone()).await.unwrap();
    device.create(COLLECTION, json!({"x": 1})).await.unwrap();
    device.stop().await;

    let file = rusqlite::Connection::open(&config.path).unwrap();
    let rows: Vec<(String, String, String)> = file
        .prepare("SELECT ns, key, value FROM _litehouse_meta WHERE ns = 'sync.config'")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let kept: Json = serde_json::from_str(&rows[0].2).unwrap();
    assert_eq!(kept["server_url"], "http://127.0.0.1:9", "{kept}");
    assert_eq!(kept["device_id"], "keeper", "{kept}");
    assert!(kept.get("token").is_none(), "{kept}");
    for secret in [OLD, NEW] {
        let found: i64 = file
            .query_row(
                "SELECT count(*) FROM _litehouse_meta WHERE instr(ns || key || value, ?1) > 0",
                [secret],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(found, 0, "{secret} is in the file's bookkeeping");
    }
}

/// The pull-apply measurement runs and applies every change (the number is printed; the
/// target, ≥ 50k changes/s on SQLite, is checked in a release build by the ignored test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_apply_measures_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let report = litehouse_sync::pull_apply(&dir.path().join("bench.db"), 4_000)
        .await
        .unwrap();
    assert_eq!(report.changes, 4_000);
    assert!(report.changes_per_sec > 0.0);
    eprintln!("pull apply (debug build): {report:?}");
    let store = Store::open_sqlite(dir.path().join("bench.db"))
        .await
        .unwrap();
    assert_eq!(store.count("bench", None).await.unwrap(), 2_000);
}

/// `cargo test --release -p litehouse-sync --test tests pull_apply_target -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a release-build measurement"]
async fn pull_apply_target() {
    let dir = tempfile::tempdir().unwrap();
    let cpu_before = process_cpu_seconds();
    let report = litehouse_sync::pull_apply(&dir.path().join("bench.db"), 200_000)
        .await
        .unwrap();
    let cpu = process_cpu_seconds() - cpu_before;
    // On a shared machine the wall-clock rate depends on the other load; the CPU time of
    // this process (change generation included) bounds what an idle core would do.
    eprintln!(
        "pull apply: {report:?}; {cpu:.2} s CPU for the whole run: {:.0} changes per CPU second; load {}",
        report.changes as f64 / cpu,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    assert!(report.changes_per_sec >= 50_000.0, "{report:?}");
}

/// `GET /api/sync/pull?full=true` walks every collection in pages chained by `resume`
/// tokens; the transport chains them into one response whose `next` is the head taken
/// before the first page. A bad token is a 400.
async fn full_reread_is_paged(store: Store, _dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    server
        .store
        .create_collection("zz", CollectionSpec::default())
        .await
        .unwrap();
    let bodies: Vec<Json> = (0..1_005).map(|n| json!({ "n": n })).collect();
    server.store.create_many(COLLECTION, bodies).await.unwrap();
    for n in 0..3 {
        server.store.create("zz", json!({ "z": n })).await.unwrap();
    }
    let head = server.head().await;
    let transport =
        litehouse_sync::HttpTransport::new(server.url(), Duration::from_secs(2)).unwrap();
    let all = transport
        .pull(None, true, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(all.next.as_deref(), Some(head.as_str()));
    assert!(all.resume.is_none() && !all.up_to_date);
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for change in &all.changes {
        assert_eq!(change.op, litehouse_sync::Op::Put);
        assert_eq!(change.device, "server");
        *seen
            .entry((change.collection.clone(), change.doc_id.clone()))
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 1_008);
    assert!(seen.values().all(|n| *n == 1));

    // Small pages by hand: the same documents, each once, across the collection boundary.
    let client = reqwest::Client::new();
    let mut token: Option<String> = None;
    let mut count = 0;
    let mut pages = 0;
    loop {
        let mut query = vec![("full", "true".to_owned()), ("limit", "400".to_owned())];
        if let Some(t) = &token {
            query.push(("after", t.clone()));
        }
        let page: litehouse_sync::PullResponse = client
            .get(format!("{}/api/sync/pull", server.url()))
            .query(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page.next.as_deref(), Some(head.as_str()));
        count += page.changes.len();
        pages += 1;
        match page.resume {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!((count, pages), (1_008, 4));
    let bad = client
        .get(format!(
            "{}/api/sync/pull?full=true&after=nonsense",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    server.stop().await;
}
on_both_backends!(full_reread_is_paged, litehouse_docs::StoreConfig::default());

/// Found by the property test: a patch from a device that had not seen a delete yet, newer
/// than the delete, must not fail the push forever (it recreates the document from the
/// patch); and a delete that arrives when the document is already gone must still reach the
/// feed, or a device whose older write lost to it keeps that write forever.
async fn late_patch_and_late_delete_converge(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let url = server.url();
    let a = Device::open(device_config(dir.path(), "a", &url, 31))
        .await
        .unwrap();
    let b = Device::open(device_config(dir.path(), "b", &url, 32))
        .await
        .unwrap();
    let d = Device::open(device_config(dir.path(), "d", &url, 33))
        .await
        .unwrap();
    let (x, y) = (uuid(500), uuid(501));
    a.create_with_id(COLLECTION, &x, json!({"v": 0}))
        .await
        .unwrap();
    a.create_with_id(COLLECTION, &y, json!({"v": 0}))
        .await
        .unwrap();
    quiesce_and_check(&server, &[&a, &b, &d]).await;

    b.pause().await.unwrap();
    d.pause().await.unwrap();
    a.delete(COLLECTION, &x).await.unwrap();
    a.delete(COLLECTION, &y).await.unwrap();
    wait_for(&a, "a pushed", Duration::from_secs(20), |s| {
        s.sync.pending == 0
    })
    .await;
    // b, offline, patches y and replaces x after a's deletes; d, offline, deletes x after
    // b's replace.
    b.patch(COLLECTION, &y, json!({"p": 1})).await.unwrap();
    b.replace(COLLECTION, &x, json!({"v": "b"})).await.unwrap();
    d.delete(COLLECTION, &x).await.unwrap();
    // d's delete reaches the server first (x is already gone there), then b's writes.
    d.resume().await.unwrap();
    wait_for(&d, "d pushed", Duration::from_secs(20), |s| {
        s.sync.pending == 0
    })
    .await;
    b.resume().await.unwrap();
    quiesce_and_check(&server, &[&a, &b, &d]).await;
    let docs = documents(&server.store).await;
    assert!(
        !docs.contains_key(&x),
        "the newest write to x is d's delete"
    );
    assert_eq!(docs[&y], json!({"p": 1}), "the late patch recreated y");
    for device in [a, b, d] {
        device.stop().await;
    }
    server.stop().await;
}
on_both_backends!(
    late_patch_and_late_delete_converge,
    litehouse_docs::StoreConfig::default()
);

/// User + system CPU time of this process, from `/proc/self/stat` (clock ticks of 1/100 s).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

/// The batch transaction calls the device's apply uses (`create_many_with_ids`,
/// `replace_many`, `meta_put_many`, `meta_get_many`), on both engines.
async fn tx_batch_calls(store: Store, _dir: tempfile::TempDir) {
    store
        .create_collection(COLLECTION, CollectionSpec::default())
        .await
        .unwrap();
    let ids: Vec<String> = (0..700).map(|n| uuid(900 + n)).collect();
    let docs: Vec<(String, Json)> = ids.iter().map(|id| (id.clone(), json!({"v": 1}))).collect();
    let created = store
        .transaction(move |tx| async move { tx.create_many_with_ids(COLLECTION, docs).await })
        .await
        .unwrap();
    assert_eq!(created, 700);
    let again = vec![(ids[0].clone(), json!({}))];
    let err = store
        .transaction(move |tx| async move { tx.create_many_with_ids(COLLECTION, again).await })
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let bodies: Vec<(String, Json)> = ids.iter().map(|id| (id.clone(), json!({"v": 2}))).collect();
    let marks: Vec<(String, Json)> = ids
        .iter()
        .map(|id| (id.clone(), json!({"m": id})))
        .chain([(ids[1].clone(), json!("last wins"))])
        .collect();
    let keys = ids.clone();
    let (replaced, found) = store
        .transaction(move |tx| async move {
            let replaced = tx.replace_many(COLLECTION, bodies).await?;
            tx.meta_put_many("test.batch", marks).await?;
            let found = tx.meta_get_many("test.batch", keys).await?;
            Ok((replaced, found))
        })
        .await
        .unwrap();
    assert_eq!(replaced, 700);
    assert_eq!(found.len(), 700);
    assert_eq!(found[&ids[1]], json!("last wins"));
    assert_eq!(found[&ids[2]], json!({"m": ids[2]}));
    let doc = store.get(COLLECTION, &ids[699]).await.unwrap();
    assert_eq!((doc.version, &doc.body["v"]), (2, &json!(2)));
    let missing = vec![(uuid(1), json!({}))];
    let err = store
        .transaction(move |tx| async move { tx.replace_many(COLLECTION, missing).await })
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
on_both_backends!(tx_batch_calls, litehouse_docs::StoreConfig::default());

/// A file that already holds documents when it first becomes a device's (written by another
/// program, or before the app used sync) pushes them like local writes: each reaches the
/// server exactly once, and reopening queues nothing again.
async fn documents_in_the_file_before_its_first_open_are_pushed(
    store: Store,
    dir: tempfile::TempDir,
) {
    let server = Server::start(store).await;
    let mut config = device_config(dir.path(), "pre", &server.url(), 11);
    {
        let local = Store::open_sqlite(&config.path).await.unwrap();
        local
            .create_collection(COLLECTION, CollectionSpec::default())
            .await
            .unwrap();
        let bodies = (0..600u64).map(|n| json!({"n": n, "before": "device"}));
        local
            .create_many(COLLECTION, bodies.collect())
            .await
            .unwrap();
    }
    let before = documents(&Store::open_sqlite(&config.path).await.unwrap()).await;
    assert_eq!(before.len(), 600);

    config.start_paused = true;
    let device = Device::open(config.clone()).await.unwrap();
    assert_eq!(device.status().await.unwrap().sync.pending, 600);
    let outbox = device.outbox(1_000).await.unwrap();
    assert_eq!(outbox.first().map(|e| e.seq), Some(1));
    assert!(outbox.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    drop(device);
    // A second open finds the adoption finished: nothing queued twice.
    let device = Device::open(config).await.unwrap();
    assert_eq!(device.outbox(1_000).await.unwrap().len(), 600);
    device.resume().await.unwrap();
    quiesce_and_check(&server, &[&device]).await;
    assert_eq!(documents(&server.store).await, before);
    let applied = server.applied_per_origin().await;
    assert_eq!(applied.len(), 600, "{applied:?}");
    assert!(applied.values().all(|n| *n == 1), "{applied:?}");
    device.stop().await;
    server.stop().await;
}
on_both_backends!(
    documents_in_the_file_before_its_first_open_are_pushed,
    litehouse_docs::StoreConfig::default()
);
