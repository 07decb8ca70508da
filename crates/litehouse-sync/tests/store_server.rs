//! The store-backed sync routes (`litehouse_sync::router`) over a real SQLite store on
//! loopback: the push rules over HTTP, and devices converging through the fault proxy.

use std::time::{Duration, Instant};

use litehouse_docs::{ChangeFilter, CollectionSpec, Store, StoreConfig};
use litehouse_sync::{
    Event, FaultMode, FaultProxy, Hlc, HttpTransport, Op, OutboxEntry, PushFailure, PushRequest,
    RouterConfig, SyncConfig,
};

use crate::http::TestDevice;

fn uuid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

async fn start(
    dir: &tempfile::TempDir,
) -> (Store, std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let store = Store::open_sqlite(dir.path().join("server.db"))
        .await
        .unwrap();
    serve(store).await
}

async fn serve(store: Store) -> (Store, std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    store
        .create_collection("tx", CollectionSpec::default())
        .await
        .unwrap();
    let app = litehouse_sync::router(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (store, addr, task)
}

fn request(clock: &uhlc::HLC, epoch: u64, entries: &[(u64, &str, u64)]) -> PushRequest {
    PushRequest {
        device: "d1".into(),
        epoch,
        first_seq: entries[0].0,
        last_seq: entries[entries.len() - 1].0,
        entries: entries
            .iter()
            .map(|&(seq, collection, doc)| OutboxEntry {
                seq,
                op_id: format!("op-{seq}"),
                hlc: Hlc(clock.new_timestamp()),
                collection: collection.into(),
                doc_id: uuid(doc),
                op: Op::Put,
                body: serde_json::json!({ "seq": seq }),
            })
            .collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_rules_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("server.db"))
        .await
        .unwrap();
    push_rules(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_rules_on_postgres() {
    crate::device::on_postgres(StoreConfig::default(), |store, _dir| push_rules(store)).await;
}

/// Duplicates acknowledged without a new change, 409 on a gap, 403 on an older epoch, a bad
/// entry rejected and acknowledged without blocking the next ones, LWW, and pull.
async fn push_rules(store: Store) {
    let (store, addr, task) = serve(store).await;
    let t = HttpTransport::new(format!("http://{addr}"), Duration::from_secs(2)).unwrap();
    let timeout = Duration::from_secs(5);
    let clock = uhlc::HLC::default();

    let first = request(&clock, 5, &[(1, "tx", 1), (2, "tx", 2)]);
    assert_eq!(t.push(&first, timeout).await.unwrap().acked_seq, 2);
    let head = store.head().await.unwrap();
    // The same batch again (a lost acknowledgement): acknowledged, not applied again.
    let again = t.push(&first, timeout).await.unwrap();
    assert_eq!((again.acked_seq, again.rejected.len()), (2, 0));
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "a duplicate appends no change"
    );
    assert_eq!(store.get("tx", &uuid(1)).await.unwrap().version, 1);

    match t.push(&request(&clock, 5, &[(4, "tx", 4)]), timeout).await {
        Err(PushFailure::Gap(g)) => assert_eq!((g.expected_seq, g.received_seq), (3, 4)),
        other => panic!("expected 409: {other:?}"),
    }
    match t.push(&request(&clock, 4, &[(3, "tx", 3)]), timeout).await {
        Err(PushFailure::StaleEpoch(s)) => assert_eq!(s.current_epoch, 5),
        other => panic!("expected 403: {other:?}"),
    }
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "refused pushes change nothing"
    );

    // Seq 3 targets a missing collection: rejected and acknowledged; 4 and 5 apply.
    let mixed = request(&clock, 5, &[(3, "nope", 3), (4, "tx", 4), (5, "tx", 1)]);
    let resp = t.push(&mixed, timeout).await.unwrap();
    assert_eq!(resp.acked_seq, 5);
    assert_eq!(resp.rejected.len(), 1);
    assert_eq!(resp.rejected[0].seq, 3);
    assert_eq!(store.get("tx", &uuid(4)).await.unwrap().body["seq"], 4);
    assert_eq!(store.get("tx", &uuid(1)).await.unwrap().body["seq"], 5);
    assert_eq!(store.get("tx", &uuid(1)).await.unwrap().version, 2);
    // Sent again (the answer was lost): a duplicate, acknowledged with the same rejection.
    let again = t.push(&mixed, timeout).await.unwrap();
    assert_eq!((again.acked_seq, &again.rejected), (5, &resp.rejected));
    // Half of it again, as a device that halved its batch sends it: only its rejection.
    let half = request(&clock, 5, &[(3, "nope", 3), (4, "tx", 4)]);
    assert_eq!(
        t.push(&half, timeout).await.unwrap().rejected,
        resp.rejected
    );
    let later = request(&clock, 5, &[(4, "tx", 4), (5, "tx", 1)]);
    assert!(t.push(&later, timeout).await.unwrap().rejected.is_empty());

    // An older write (smaller HLC) to a document loses: acknowledged, no effect.
    let mut old = request(&clock, 5, &[(6, "tx", 1)]);
    old.entries[0].hlc = first.entries[0].hlc;
    assert_eq!(t.push(&old, timeout).await.unwrap().acked_seq, 6);
    assert_eq!(store.get("tx", &uuid(1)).await.unwrap().body["seq"], 5);

    // Pull sees the device's changes with its HLC, without system fields.
    let page = t.pull(None, false, timeout).await.unwrap();
    assert!(page.up_to_date);
    let d1: Vec<_> = page
        .changes
        .iter()
        .filter(|c| c.doc_id == uuid(1))
        .collect();
    assert_eq!(d1.len(), 2);
    assert_eq!(d1[1].device, "d1");
    assert_eq!(d1[1].hlc, mixed.entries[2].hlc);
    assert_eq!(d1[1].document, serde_json::json!({"seq": 5}));
    let again = t.pull(page.next.as_deref(), false, timeout).await.unwrap();
    assert!(again.changes.is_empty() && again.up_to_date);
    let bad = t.pull(Some("x"), false, timeout).await.unwrap_err();
    assert!(
        matches!(bad, litehouse_sync::PullFailure::Server { status: 400, .. }),
        "{bad:?}"
    );

    // A put guesses from the document's mark whether it exists and recovers when the guess
    // is wrong: a document written over REST (no mark) is replaced, one deleted over REST
    // (its mark stays) is created again, in one batch with a first put that is created.
    store
        .create_with_id("tx", &uuid(20), serde_json::json!({"seq": 0}))
        .await
        .unwrap();
    store.delete("tx", &uuid(4), None).await.unwrap();
    let guesses = request(&clock, 5, &[(7, "tx", 21), (8, "tx", 20), (9, "tx", 4)]);
    let resp = t.push(&guesses, timeout).await.unwrap();
    assert_eq!((resp.acked_seq, resp.rejected.len()), (9, 0));
    let rest = store.get("tx", &uuid(20)).await.unwrap();
    assert_eq!((rest.version, &rest.body["seq"]), (2, &8.into()));
    assert_eq!(store.get("tx", &uuid(4)).await.unwrap().body["seq"], 9);
    assert_eq!(store.get("tx", &uuid(21)).await.unwrap().body["seq"], 7);
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_converge_through_a_store_backed_server() {
    let dir = tempfile::tempdir().unwrap();
    let (store, addr, task) = start(&dir).await;
    let proxy = FaultProxy::start(addr).await.unwrap();
    let config = SyncConfig {
        max_batch: 4,
        base_backoff: 20,
        max_backoff: 300,
        poll_interval: 100,
        request_timeout: 2_000,
        jitter_seed: 3,
    };
    let base = format!("http://{}", proxy.addr());
    let mut a = TestDevice::start("a", 1, base.clone(), config.clone());
    let mut b = TestDevice::start("b", 2, base, config);
    a.driver.send(Event::Pause).await.unwrap();
    b.driver.send(Event::Pause).await.unwrap();
    for i in 0..10i64 {
        a.write(&uuid(i as u64 % 4), i).await;
        b.write(&uuid(i as u64 % 3), 100 + i).await;
    }
    proxy.set_mode(FaultMode::Reset);
    a.driver.send(Event::Resume).await.unwrap();
    b.driver.send(Event::Resume).await.unwrap();
    a.wait_for("a failure", Duration::from_secs(10), |s| {
        s.consecutive_failures > 0
    })
    .await;
    proxy.set_mode(FaultMode::Pass);
    let limit = Duration::from_secs(20);
    for d in [&a, &b] {
        d.wait_for("pending drained", limit, |s| s.pending == 0)
            .await;
    }
    let head = store.head().await.unwrap().to_string();
    for d in [&a, &b] {
        d.driver.send(Event::ForceSync).await.unwrap();
        d.wait_for("cursor at head", limit, |s| {
            s.cursor.as_deref() == Some(&head)
        })
        .await;
    }
    for d in [&a, &b] {
        let docs = d.replica.docs.lock().unwrap().clone();
        assert_eq!(docs.len(), 4);
        for (id, doc) in docs {
            let body = serde_json::Value::Object(server_body(&store, &id).await);
            assert_eq!(doc.body.as_ref(), Some(&body), "doc {id}");
        }
    }
    // Every change in the log came from a device, once per winning write.
    let page = store
        .changes_since(None, &ChangeFilter::default(), 1_000)
        .await
        .unwrap();
    let synced = page.changes.iter().filter(|c| c.origin.is_some()).count();
    assert!((4..=20).contains(&synced), "{synced}");
    a.driver.stop().await;
    b.driver.stop().await;
    proxy.shutdown().await;
    task.abort();
}

async fn server_body(store: &Store, id: &str) -> serde_json::Map<String, serde_json::Value> {
    store.get("tx", id).await.unwrap().body
}

/// A server store on a SQLite file whose engine the test holds, serving
/// `router_with(config)` on loopback.
async fn serve_held(
    dir: &tempfile::TempDir,
    config: RouterConfig,
) -> (
    litehouse::Database,
    Store,
    String,
    tokio::task::JoinHandle<()>,
) {
    let db = litehouse::Database::open(dir.path().join("server.db"), litehouse::Config::default())
        .unwrap();
    let store = Store::from_database(db.clone()).await.unwrap();
    store
        .create_collection("tx", CollectionSpec::default())
        .await
        .unwrap();
    let app = litehouse_sync::router_with(store.clone(), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (db, store, base, task)
}

/// Holds `db`'s writer (a transaction that waits) until the returned sender is used or
/// dropped: every push that reaches the store queues behind it.
async fn hold_writer(db: &litehouse::Database) -> std::sync::mpsc::Sender<()> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let db = db.clone();
    tokio::spawn(async move {
        db.transaction(move |_| {
            let _ = started.send(());
            let _ = held.recv();
            Ok(())
        })
        .await
    });
    running.await.unwrap();
    release
}

/// Waits until `n` requests wait in `db`'s write queue.
async fn wait_queued(db: &litehouse::Database, n: usize) {
    let started = Instant::now();
    while db.stats().queue_depth < n {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no push reached the writer"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// With every push place taken (one, through `RouterConfig`), one more push is answered 503
/// `overloaded` with `Retry-After` at once, which the transport hands to the machine; the
/// push holding the place still finishes, and then pushes are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_push_cap_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _store, base, task) = serve_held(&dir, RouterConfig { max_pushes: 1 }).await;
    let t = HttpTransport::new(base.clone(), Duration::from_secs(2)).unwrap();
    let clock = uhlc::HLC::default();
    let release = hold_writer(&db).await;
    let first = request(&clock, 1, &[(1, "tx", 1)]);
    let holder = {
        let t = t.clone();
        let first = first.clone();
        tokio::spawn(async move { t.push(&first, Duration::from_secs(20)).await })
    };
    wait_queued(&db, 1).await;

    let second = request(&clock, 1, &[(1, "tx", 1), (2, "tx", 2)]);
    match t.push(&second, Duration::from_secs(5)).await {
        Err(PushFailure::Server {
            status: 503,
            message,
            retry_after: Some(1_000),
        }) => {
            let body: serde_json::Value = serde_json::from_str(&message).unwrap();
            assert_eq!(body["code"], "overloaded", "{body}");
            assert_eq!(body["message"], "1 push is running; try again shortly");
        }
        other => panic!("expected 503 with Retry-After: {other:?}"),
    }
    let raw = reqwest::Client::new()
        .post(format!("{base}/api/sync/push"))
        .json(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 503);
    assert_eq!(raw.headers()["retry-after"], "1");

    release.send(()).unwrap();
    assert_eq!(holder.await.unwrap().unwrap().acked_seq, 1);
    let resp = t.push(&second, Duration::from_secs(5)).await.unwrap();
    assert_eq!(resp.acked_seq, 2);
    task.abort();
}

/// A push whose device stopped waiting (its request timed out while the server's writer was
/// busy) still commits, its rejected entry included; the device's retry of the same batch is a
/// duplicate, acknowledged with the same rejection, so the device learns of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_in_a_timed_out_push_is_answered_to_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let (db, store, base, task) = serve_held(&dir, RouterConfig::default()).await;
    let t = HttpTransport::new(base, Duration::from_secs(2)).unwrap();
    let clock = uhlc::HLC::default();
    let batch = request(&clock, 3, &[(1, "tx", 1), (2, "nope", 2), (3, "tx", 3)]);
    let release = hold_writer(&db).await;
    let gave_up = {
        let t = t.clone();
        let batch = batch.clone();
        tokio::spawn(async move { t.push(&batch, Duration::from_secs(1)).await })
    };
    // The push reached the store (it waits behind the writer) before its device gives up.
    wait_queued(&db, 1).await;
    assert_eq!(gave_up.await.unwrap(), Err(PushFailure::TimedOut));
    release.send(()).unwrap();

    // The push went on without its device: wait until it committed.
    let started = Instant::now();
    loop {
        let state = store
            .transaction(|tx| async move { tx.meta_get("sync.producer", "d1").await })
            .await
            .unwrap();
        if state.is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never committed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.get("tx", &uuid(3)).await.unwrap().body["seq"], 3);

    let retried = t.push(&batch, Duration::from_secs(5)).await.unwrap();
    assert_eq!(retried.acked_seq, 3);
    assert_eq!(retried.rejected.len(), 1, "{retried:?}");
    assert_eq!(
        (retried.rejected[0].seq, retried.rejected[0].op_id.as_str()),
        (2, "op-2")
    );
    assert!(
        retried.rejected[0].reason.contains("nope"),
        "{:?}",
        retried.rejected[0]
    );
    let head = store.head().await.unwrap();
    assert_eq!(
        t.push(&batch, Duration::from_secs(5)).await.unwrap(),
        retried,
        "the same answer every time"
    );
    assert_eq!(
        store.head().await.unwrap(),
        head,
        "and nothing applied again"
    );
    task.abort();
}
