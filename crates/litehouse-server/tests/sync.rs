//! `/api/sync/push` and `/api/sync/pull` mounted in the server: statuses, bodies and the
//! device-token rules, on both backends.

use litehouse_server::{Scope, ServerConfig, TokenFile};
use litehouse_sync::{Hlc, Op, OutboxEntry, PullResponse, PushRequest, PushResponse};
use serde_json::{Value as Json, json};

use crate::util::{TestServer, create_collection, expect_error, expect_ok, on_each_backend};

fn doc_id(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn push(device: &str, epoch: u64, entries: Vec<(u64, Op, Json)>) -> Json {
    let clock = uhlc::HLC::default();
    let first_seq = entries.first().map_or(1, |entry| entry.0);
    let last_seq = entries.last().map_or(0, |entry| entry.0);
    let request = PushRequest {
        device: device.into(),
        epoch,
        first_seq,
        last_seq,
        entries: entries
            .into_iter()
            .map(|(seq, op, body)| OutboxEntry {
                seq,
                op_id: format!("{device}-{seq}"),
                hlc: Hlc(clock.new_timestamp()),
                collection: "notes".into(),
                doc_id: doc_id(1),
                op,
                body,
            })
            .collect(),
    };
    serde_json::to_value(request).expect("push json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_through_the_server() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "notes"})).await?;

        let batch = push(
            "till-1",
            1,
            vec![
                (1, Op::Put, json!({"text": "a"})),
                (2, Op::Patch, json!({"done": true})),
            ],
        );
        let sent = server.post("/api/sync/push", &batch).send().await?;
        let acked: PushResponse = serde_json::from_value(expect_ok(sent, 200).await)?;
        assert_eq!(acked.acked_seq, 2);
        assert!(acked.rejected.is_empty());
        let stored = server
            .get(&format!("/api/collections/notes/docs/{}", doc_id(1)))
            .send()
            .await?;
        let stored = expect_ok(stored, 200).await;
        assert_eq!(
            (stored["text"].clone(), stored["done"].clone()),
            (json!("a"), json!(true))
        );

        // The same batch again: acknowledged, not applied again.
        let again = server.post("/api/sync/push", &batch).send().await?;
        let again: PushResponse = serde_json::from_value(expect_ok(again, 200).await)?;
        assert_eq!(again.acked_seq, 2);
        let unchanged = server
            .get(&format!("/api/collections/notes/docs/{}", doc_id(1)))
            .send()
            .await?;
        assert_eq!(
            expect_ok(unchanged, 200).await["version"],
            stored["version"]
        );

        // A gap names the sequence expected; a stale epoch is refused.
        let gap = push("till-1", 1, vec![(5, Op::Patch, json!({"x": 1}))]);
        let gap = server.post("/api/sync/push", &gap).send().await?;
        assert_eq!(gap.status(), 409);
        assert_eq!(gap.json::<Json>().await?["expected_seq"], 3);
        let stale = push("till-1", 0, vec![(1, Op::Patch, json!({"x": 1}))]);
        let stale = server.post("/api/sync/push", &stale).send().await?;
        assert_eq!(stale.status(), 403);

        // Bad input gets the server's error shape and changes nothing.
        let malformed = server
            .request(reqwest::Method::POST, "/api/sync/push")
            .header("content-type", "application/json")
            .body("{\"device\": ")
            .send()
            .await?;
        expect_error(malformed, 400, "invalid_request").await;
        let cursor = server.get("/api/sync/pull?cursor=nope").send().await?;
        expect_error(cursor, 400, "invalid_request").await;

        // The pull sees the pushed document's changes.
        let pulled = server.get("/api/sync/pull").send().await?;
        let pulled: PullResponse = serde_json::from_value(expect_ok(pulled, 200).await)?;
        assert!(
            pulled
                .changes
                .iter()
                .any(|change| change.doc_id == doc_id(1)),
            "{pulled:?}"
        );
        assert!(pulled.up_to_date);
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_tokens_sync_only_as_their_device() {
    on_each_backend(|backend| async move {
        let config = ServerConfig {
            require_token: true,
            ..ServerConfig::default()
        };
        let server = TestServer::start(&backend, config).await;
        let file = TokenFile::new(server.dir.path().join("tokens.json"));
        let (_, admin) = file.create("a", Scope::Admin)?;
        let (_, reader) = file.create("r", Scope::Read)?;
        let (record, device) = file.create_device("till", "till-2")?;
        assert!(file.create_device("bad", "no spaces").is_err());
        let created = server
            .post("/api/collections", &json!({"name": "notes"}))
            .bearer_auth(&admin)
            .send()
            .await?;
        expect_ok(created, 201).await;

        let own = push("till-2", 1, vec![(1, Op::Put, json!({"text": "b"}))]);
        let none = server.post("/api/sync/push", &own).send().await?;
        expect_error(none, 401, "unauthorized").await;
        let read_only = server
            .post("/api/sync/push", &own)
            .bearer_auth(&reader)
            .send()
            .await?;
        expect_error(read_only, 403, "forbidden").await;
        let other = push("till-9", 1, vec![(1, Op::Put, json!({"text": "c"}))]);
        let other = server
            .post("/api/sync/push", &other)
            .bearer_auth(&device)
            .send()
            .await?;
        expect_error(other, 403, "forbidden").await;
        let ok = server
            .post("/api/sync/push", &own)
            .bearer_auth(&device)
            .send()
            .await?;
        expect_ok(ok, 200).await;
        let pulled = server
            .get("/api/sync/pull")
            .bearer_auth(&device)
            .send()
            .await?;
        expect_ok(pulled, 200).await;
        // A device token may do nothing but sync.
        let list = server
            .get("/api/collections/notes/docs")
            .bearer_auth(&device)
            .send()
            .await?;
        expect_error(list, 403, "forbidden").await;
        // Revoked: refused from the next request.
        assert!(file.revoke(&record.id)?);
        let revoked = server
            .post("/api/sync/push", &own)
            .bearer_auth(&device)
            .send()
            .await?;
        expect_error(revoked, 401, "unauthorized").await;
        server.stop().await;
        Ok(())
    })
    .await;
}

/// The admin's view of the sync devices, after flushing the heartbeat buffer.
async fn devices(server: &TestServer) -> Result<Json, Box<dyn std::error::Error + Send + Sync>> {
    let flushed = server
        .request(reqwest::Method::POST, "/api/debug/db/buffer/flush")
        .bearer_auth(crate::util::ADMIN)
        .send()
        .await?;
    expect_ok(flushed, 200).await;
    let listed = server
        .get("/api/debug/sync/devices")
        .bearer_auth(crate::util::ADMIN)
        .send()
        .await?;
    Ok(expect_ok(listed, 200).await)
}

fn device<'a>(list: &'a Json, id: &str) -> &'a Json {
    list["devices"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["device"] == id))
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_heartbeats_coalesce_into_one_row_write_per_device() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        let file = TokenFile::new(server.dir.path().join("tokens.json"));
        let (_, puller) = file.create_device("p", "hb-puller")?;
        let (_, pusher) = file.create_device("q", "hb-pusher")?;
        create_collection(&server, json!({"name": "notes"})).await?;
        let before = devices(&server).await?;
        assert_eq!(before["devices"], json!([]), "{before}");
        let flushed_before = before["buffer"]["flushed"].as_u64().expect("flushed");

        let started = now_ms();
        let requests = 40_u64;
        for _ in 0..requests {
            let pulled = server
                .get("/api/sync/pull")
                .bearer_auth(&puller)
                .header("user-agent", "till/1.0")
                .send()
                .await?;
            expect_ok(pulled, 200).await;
        }
        let one = push("hb-pusher", 1, vec![(1, Op::Put, json!({"text": "a"}))]);
        let pushed = server
            .post("/api/sync/push", &one)
            .bearer_auth(&pusher)
            .send()
            .await?;
        expect_ok(pushed, 200).await;
        // Requests without a device token leave no heartbeat.
        let anonymous = server.get("/api/sync/pull").send().await?;
        expect_ok(anonymous, 200).await;

        let list = devices(&server).await?;
        assert_eq!(list["devices"].as_array().map(Vec::len), Some(2), "{list}");
        let heartbeats = &list["heartbeats"];
        assert_eq!(heartbeats["recorded"], requests + 1, "{list}");
        assert_eq!(
            (heartbeats["dropped"].clone(), heartbeats["failed"].clone()),
            (json!(0), json!(0))
        );
        // 41 heartbeats became at most one row write per device per flush.
        let buffer = &list["buffer"];
        let rows = buffer["flushed"].as_u64().expect("flushed") - flushed_before;
        let flushes = buffer["flushes"].as_u64().expect("flushes");
        assert!(
            rows <= 2 * flushes,
            "{rows} rows in {flushes} flushes: {list}"
        );
        assert!(
            rows < requests / 2,
            "{rows} row writes for {requests} requests: {list}"
        );
        assert!(
            buffer["coalesced"].as_u64().expect("coalesced") >= requests + 1 - rows,
            "{list}"
        );

        let puller_row = device(&list, "hb-puller");
        let seen = puller_row["lastSeenMs"].as_i64().expect("last seen");
        assert!(seen >= started && seen <= now_ms(), "{puller_row}");
        assert_eq!(
            puller_row["lastPullMs"], puller_row["lastSeenMs"],
            "{puller_row}"
        );
        assert_eq!(puller_row["lastPushMs"], Json::Null, "{puller_row}");
        assert_eq!(puller_row["online"], true, "{puller_row}");
        assert_eq!(puller_row["userAgent"], "till/1.0", "{puller_row}");
        assert!(
            puller_row["remoteAddr"]
                .as_str()
                .is_some_and(|addr| addr.starts_with("127.0.0.1:")),
            "{puller_row}"
        );
        // Pulled only: no push state.
        assert_eq!(puller_row["lastSeq"], Json::Null, "{puller_row}");
        let pusher_row = device(&list, "hb-pusher");
        assert_eq!(
            (pusher_row["epoch"].clone(), pusher_row["lastSeq"].clone()),
            (json!(1), json!(1))
        );
        assert!(pusher_row["lastPushMs"].as_i64().is_some(), "{pusher_row}");

        // Seen again later: last seen moves forward.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let later = now_ms();
        let pulled = server
            .get("/api/sync/pull")
            .bearer_auth(&puller)
            .send()
            .await?;
        expect_ok(pulled, 200).await;
        let again = devices(&server).await?;
        let moved = device(&again, "hb-puller")["lastSeenMs"]
            .as_i64()
            .expect("last seen");
        assert!(moved >= later && moved > seen, "{moved} {seen}");

        let metrics = server.get("/metrics").send().await?.text().await?;
        assert!(
            metrics.contains(&format!(
                "litehouse_sync_heartbeats_total{{outcome=\"recorded\"}} {}",
                requests + 2
            )),
            "{metrics}"
        );
        assert!(
            metrics.contains("litehouse_sync_heartbeats_total{outcome=\"dropped\"} 0"),
            "{metrics}"
        );
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_route_lists_sequence_and_rejections_for_admins_only() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        let file = TokenFile::new(server.dir.path().join("tokens.json"));
        let (_, till) = file.create_device("till", "till-7")?;
        let (_, reader) = file.create("r", Scope::Read)?;
        create_collection(&server, json!({"name": "notes"})).await?;

        // Seq 2 targets a collection that does not exist: rejected, acknowledged.
        let mut batch = push(
            "till-7",
            5,
            vec![
                (1, Op::Put, json!({"text": "a"})),
                (2, Op::Put, json!({"text": "b"})),
                (3, Op::Patch, json!({"done": true})),
            ],
        );
        batch["entries"][1]["collection"] = json!("nope");
        for _ in 0..2 {
            // The second time every entry is a duplicate: acknowledged with the same
            // rejection, which the devices view keeps once.
            let sent = server
                .post("/api/sync/push", &batch)
                .bearer_auth(&till)
                .send()
                .await?;
            let acked: PushResponse = serde_json::from_value(expect_ok(sent, 200).await)?;
            assert_eq!(acked.acked_seq, 3);
            assert_eq!(acked.rejected.len(), 1, "{acked:?}");
        }
        // A push with a non-device token: the device is known by its push state, never seen.
        let other = push("till-8", 2, vec![(1, Op::Patch, json!({"x": 1}))]);
        let sent = server.post("/api/sync/push", &other).send().await?;
        expect_ok(sent, 200).await;

        let list = devices(&server).await?;
        let seven = device(&list, "till-7");
        assert_eq!(
            (seven["epoch"].clone(), seven["lastSeq"].clone()),
            (json!(5), json!(3)),
            "{seven}"
        );
        assert_eq!(seven["rejections"], 1, "{seven}");
        assert_eq!(seven["lastRejection"]["seq"], 2, "{seven}");
        assert_eq!(seven["lastRejection"]["opId"], "till-7-2", "{seven}");
        assert!(
            seven["lastRejection"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("nope")),
            "{seven}"
        );
        assert!(seven["lastPushMs"].as_i64().is_some(), "{seven}");
        assert_eq!(seven["lastPullMs"], Json::Null, "{seven}");
        let eight = device(&list, "till-8");
        assert_eq!(
            (eight["epoch"].clone(), eight["lastSeq"].clone()),
            (json!(2), json!(1)),
            "{eight}"
        );
        assert_eq!(
            (eight["lastSeenMs"].clone(), eight["online"].clone()),
            (Json::Null, json!(false))
        );
        assert_eq!(eight["rejections"], 0, "{eight}");
        assert_eq!(list["heartbeats"]["rejectionsRecorded"], 2, "{list}");

        // Only the admin may look.
        let anonymous = server.get("/api/debug/sync/devices").send().await?;
        expect_error(anonymous, 401, "unauthorized").await;
        let wrong = server
            .get("/api/debug/sync/devices")
            .bearer_auth("lh_not-a-token")
            .send()
            .await?;
        expect_error(wrong, 401, "unauthorized").await;
        let as_reader = server
            .get("/api/debug/sync/devices")
            .bearer_auth(&reader)
            .send()
            .await?;
        expect_error(as_reader, 403, "forbidden").await;
        let as_device = server
            .get("/api/debug/sync/devices")
            .bearer_auth(&till)
            .send()
            .await?;
        expect_error(as_device, 403, "forbidden").await;
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_heartbeat_buffer_drops_and_counts_but_sync_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = litehouse_docs::Store::open_sqlite(dir.path().join("app.db"))
        .await
        .expect("store");
    let db = litehouse::Database::open_memory("full-heartbeats", litehouse::Config::default())
        .expect("heartbeat database");
    // Room for one device, and no flush in this test's lifetime.
    let config = litehouse::BufferConfig {
        max_buffer_size: 1,
        flush_interval: std::time::Duration::from_secs(3600),
        ..litehouse::BufferConfig::default()
    };
    let heartbeats = litehouse_server::Heartbeats::start(db, config)
        .await
        .expect("heartbeats");
    let tokens = dir.path().join("tokens.json");
    let file = TokenFile::new(&tokens);
    let (_, first) = file.create_device("a", "full-a").expect("token");
    let (_, second) = file.create_device("b", "full-b").expect("token");
    let server = HeldServer::serve(store, heartbeats, tokens).await;
    let (base, client) = (server.base.clone(), server.client.clone());
    for token in [&first, &first, &second, &second] {
        let pulled = client
            .get(format!("{base}/api/sync/pull"))
            .bearer_auth(token)
            .send()
            .await
            .expect("pull");
        // A full buffer never fails or holds up the request.
        assert_eq!(pulled.status(), 200);
    }
    let stats = server.heartbeats.stats();
    assert_eq!(
        (stats.recorded, stats.dropped, stats.failed),
        (2, 2, 0),
        "{stats:?}"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("litehouse_sync_heartbeats_total{outcome=\"dropped\"} 2"),
        "{metrics}"
    );
    let listed: Json = client
        .get(format!("{base}/api/debug/sync/devices"))
        .bearer_auth(crate::util::ADMIN)
        .send()
        .await
        .expect("devices")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["heartbeats"]["dropped"], 2, "{listed}");
    assert_eq!(listed["buffer"]["fullRejections"], 2, "{listed}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_producers_pages_and_names_an_unreadable_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = litehouse_docs::Store::open_sqlite(dir.path().join("app.db"))
        .await
        .expect("store");
    store
        .transaction(|tx| async move {
            for n in 0..5 {
                let state = json!({"epoch": n, "last_seq": n * 10});
                tx.meta_put("sync.producer", &format!("dev-{n}"), state)
                    .await?;
            }
            tx.meta_put("sync.producer", "dev-bad", json!("not a state"))
                .await
        })
        .await
        .expect("seed");
    let all = litehouse_sync::list_producers(&store, 100)
        .await
        .expect("list");
    let devices: Vec<&str> = all.iter().map(|entry| entry.device.as_str()).collect();
    assert_eq!(
        devices,
        ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4", "dev-bad"]
    );
    assert_eq!(
        all[3].state,
        Some(litehouse_sync::ProducerState {
            epoch: 3,
            last_seq: 30
        })
    );
    assert_eq!(all[5].state, None);
    assert!(all[5].unreadable.is_some(), "{:?}", all[5]);
    // At most `max`, in device order.
    let first = litehouse_sync::list_producers(&store, 2)
        .await
        .expect("list");
    assert_eq!(first.len(), 2);
    assert_eq!(first[1].device, "dev-1");
}

/// A server over a store on `db` (a SQLite engine the test holds) and heartbeats in their own
/// in-memory engine, as `litehouse serve` keeps them in the log database.
struct HeldServer {
    base: String,
    client: reqwest::Client,
    heartbeats: litehouse_server::Heartbeats,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HeldServer {
    async fn start(db: &litehouse::Database, tokens: std::path::PathBuf) -> HeldServer {
        let store = litehouse_docs::Store::from_database(db.clone())
            .await
            .expect("store");
        store
            .create_collection("notes", litehouse_docs::CollectionSpec::default())
            .await
            .expect("collection");
        let name = crate::util::unique("held-heartbeats");
        let log_db = litehouse::Database::open_memory(&name, litehouse::Config::default())
            .expect("heartbeat database");
        let heartbeats =
            litehouse_server::Heartbeats::start(log_db, litehouse::BufferConfig::default())
                .await
                .expect("heartbeats");
        HeldServer::serve(store, heartbeats, tokens).await
    }

    /// Serves `store` with `heartbeats` (and the tokens in `tokens`) on 127.0.0.1:0.
    async fn serve(
        store: litehouse_docs::Store,
        heartbeats: litehouse_server::Heartbeats,
        tokens: std::path::PathBuf,
    ) -> HeldServer {
        let config = ServerConfig {
            admin_token: crate::util::ADMIN.into(),
            token_file: Some(tokens),
            ..ServerConfig::default()
        };
        let debug = litehouse_server::DebugHandles {
            buffer: Some(heartbeats.buffer().clone()),
            ..litehouse_server::DebugHandles::default()
        };
        let state = litehouse_server::AppState::with_heartbeats(
            store,
            debug,
            config,
            Some(heartbeats.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, litehouse_server::app(state))
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        HeldServer {
            base,
            client: reqwest::Client::new(),
            heartbeats,
            stop,
            task,
        }
    }

    async fn devices(&self) -> Result<Json, Box<dyn std::error::Error + Send + Sync>> {
        let listed = self
            .client
            .get(format!("{}/api/debug/sync/devices", self.base))
            .bearer_auth(crate::util::ADMIN)
            .timeout(std::time::Duration::from_secs(5))
            .send()
            .await?;
        Ok(expect_ok(listed, 200).await)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("task").expect("serve");
        self.heartbeats.stop().await.expect("stop heartbeats");
    }
}

/// Holds `db`'s writer (a transaction that waits) until the returned sender is used or
/// dropped.
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
    running.await.expect("the writer runs the holder");
    release
}

/// The dashboard polls the devices route every 2 s: it reads on readers, so it answers while
/// the store's writer is busy (here held by a long transaction) instead of queueing behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devices_route_reads_while_the_writer_is_busy() -> crate::util::TestResult {
    let dir = tempfile::tempdir()?;
    let db = litehouse::Database::open(dir.path().join("app.db"), litehouse::Config::default())?;
    let tokens = dir.path().join("tokens.json");
    let (_, till) = TokenFile::new(&tokens).create_device("till", "busy-till")?;
    let server = HeldServer::start(&db, tokens).await;
    let one = push("busy-till", 4, vec![(1, Op::Put, json!({"text": "a"}))]);
    let pushed = server
        .client
        .post(format!("{}/api/sync/push", server.base))
        .bearer_auth(&till)
        .json(&one)
        .send()
        .await?;
    expect_ok(pushed, 200).await;

    let release = hold_writer(&db).await;
    let list = server.devices().await?;
    release.send(())?;
    let till_row = device(&list, "busy-till");
    assert_eq!(
        (till_row["epoch"].clone(), till_row["lastSeq"].clone()),
        (json!(4), json!(1)),
        "{till_row}"
    );
    server.stop().await;
    Ok(())
}

fn rejections(first: u64, last: u64) -> PushResponse {
    PushResponse {
        acked_seq: last,
        rejected: (first..=last)
            .map(|seq| litehouse_sync::Rejection {
                seq,
                op_id: format!("noisy-{seq}"),
                reason: "collection \"nope\" not found".into(),
            })
            .collect(),
    }
}

/// Each device keeps its newest `MAX_REJECTIONS_PER_DEVICE` rejections: the pruner deletes
/// the older ones after they are recorded and counts them, and the devices route and
/// `/metrics` show the count. Reads of a device's newest rejection use the index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_are_bounded_per_device_and_the_pruned_are_counted() -> crate::util::TestResult {
    let bound = litehouse_server::MAX_REJECTIONS_PER_DEVICE as u64;
    assert_eq!(bound, 1_000);
    let dir = tempfile::tempdir()?;
    let db = litehouse::Database::open(dir.path().join("app.db"), litehouse::Config::default())?;
    let server = HeldServer::start(&db, dir.path().join("tokens.json")).await;
    let heartbeats = &server.heartbeats;
    // Two pushes' worth for one device (the second newer), a few for another.
    heartbeats.record_rejections("noisy", &rejections(1, 600));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    heartbeats.record_rejections("noisy", &rejections(601, bound + 50));
    heartbeats.record_rejections("quiet", &rejections(1, 3));
    // The pruner runs on its own after rejections are recorded.
    let started = std::time::Instant::now();
    while heartbeats.stats().rejections_pruned < 50 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            heartbeats.stats()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(heartbeats.stats().rejections_pruned, 50);
    assert_eq!(heartbeats.stats().rejections_recorded, bound + 53);
    let log_db = heartbeats.database();
    let kept: (i64, i64, i64) = log_db
        .query_row(
            "SELECT count(*), min(seq), max(seq) FROM _litehouse_sync_rejections \
             WHERE device = 'noisy'",
            (),
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .await?;
    assert_eq!(kept, (1_000, 51, 1_050), "only the newest remain");
    let plan = log_db
        .query_json(
            "EXPLAIN QUERY PLAN SELECT seq FROM _litehouse_sync_rejections \
             WHERE device = 'noisy' ORDER BY at_ms DESC, seq DESC LIMIT 1",
            (),
        )
        .await?;
    let plan = serde_json::to_string(&plan)?;
    assert!(
        plan.contains("_litehouse_sync_rejections_newest") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );

    let list = server.devices().await?;
    let noisy = device(&list, "noisy");
    assert_eq!(noisy["rejections"], 1_000, "{noisy}");
    assert_eq!(noisy["lastRejection"]["seq"], 1_050, "{noisy}");
    assert_eq!(device(&list, "quiet")["rejections"], 3, "{list}");
    assert_eq!(list["heartbeats"]["rejectionsPruned"], 50, "{list}");
    let metrics = server
        .client
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("litehouse_sync_rejections_total{outcome=\"pruned\"} 50"),
        "{metrics}"
    );
    server.stop().await;
    Ok(())
}

/// A rejections table an older server filled past the bound is pruned when heartbeats start,
/// and gets its index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_rejections_table_is_pruned_at_start() -> crate::util::TestResult {
    let name = crate::util::unique("old-rejections");
    let db = litehouse::Database::open_memory(&name, litehouse::Config::default())?;
    db.script(
        "CREATE TABLE _litehouse_sync_rejections (device TEXT NOT NULL, op_id TEXT NOT NULL, \
         seq INTEGER NOT NULL, reason TEXT NOT NULL, at_ms INTEGER NOT NULL, \
         PRIMARY KEY (device, op_id));
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1007)
         INSERT INTO _litehouse_sync_rejections SELECT 'old', 'op-' || i, i, 'bad', i FROM n;",
    )
    .await?;
    let heartbeats =
        litehouse_server::Heartbeats::start(db.clone(), litehouse::BufferConfig::default()).await?;
    assert_eq!(heartbeats.stats().rejections_pruned, 7);
    let oldest: i64 = db
        .query_row(
            "SELECT min(seq) FROM _litehouse_sync_rejections",
            (),
            |row| row.get(0),
        )
        .await?;
    assert_eq!(oldest, 8);
    heartbeats.stop().await?;
    Ok(())
}

/// A push whose device stopped waiting (its request timed out while the store's writer was
/// busy) still commits and its rejection is still recorded for the devices view; the device's
/// retry of the same batch is acknowledged with the same rejection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_in_a_timed_out_push_is_recorded_and_answered_to_the_retry()
-> crate::util::TestResult {
    let dir = tempfile::tempdir()?;
    let db = litehouse::Database::open(dir.path().join("app.db"), litehouse::Config::default())?;
    let tokens = dir.path().join("tokens.json");
    let (_, till) = TokenFile::new(&tokens).create_device("till", "late-till")?;
    let server = HeldServer::start(&db, tokens).await;
    let mut batch = push(
        "late-till",
        2,
        vec![
            (1, Op::Put, json!({"text": "a"})),
            (2, Op::Put, json!({"text": "b"})),
        ],
    );
    batch["entries"][1]["collection"] = json!("nope");
    let send = |timeout: std::time::Duration| {
        server
            .client
            .post(format!("{}/api/sync/push", server.base))
            .bearer_auth(&till)
            .json(&batch)
            .timeout(timeout)
            .send()
    };

    let release = hold_writer(&db).await;
    let gave_up = send(std::time::Duration::from_secs(1));
    let queued = async {
        // The push reached the store (it waits behind the writer) before its device gives up.
        let started = std::time::Instant::now();
        while db.stats().queue_depth == 0 {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    let (gave_up, ()) = tokio::join!(gave_up, queued);
    assert!(gave_up.is_err_and(|err| err.is_timeout()));
    release.send(())?;

    // The server finishes the push and records its rejection without the device.
    let started = std::time::Instant::now();
    let late = loop {
        server.heartbeats.buffer().force_flush().await?;
        let list = server.devices().await?;
        if device(&list, "late-till")["rejections"] == 1 {
            break list;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{list}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let row = device(&late, "late-till");
    assert_eq!(row["lastSeq"], 2, "{row}");
    assert_eq!(row["lastRejection"]["opId"], "late-till-2", "{row}");

    let retried = send(std::time::Duration::from_secs(5)).await?;
    let retried: PushResponse = serde_json::from_value(expect_ok(retried, 200).await)?;
    assert_eq!(retried.acked_seq, 2);
    assert_eq!(retried.rejected.len(), 1, "{retried:?}");
    assert_eq!(
        (retried.rejected[0].seq, retried.rejected[0].op_id.as_str()),
        (2, "late-till-2")
    );
    assert_eq!(retried.rejected[0].reason, row["lastRejection"]["reason"]);
    server.stop().await;
    Ok(())
}
