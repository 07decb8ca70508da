//! `/api/realtime`: a real server on 127.0.0.1:0, read as a Server-Sent Events stream.

use std::time::Duration;

use litehouse_docs::StoreConfig;
use litehouse_server::{DbTarget, Server, ServerConfig};
use serde_json::{Value as Json, json};

use crate::util::{Backend, TestServer, create_collection, expect_error, on_each_backend};

/// One parsed SSE event.
#[derive(Debug, Clone)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: Json,
}

/// Reads events from a streaming response.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> SseReader {
        SseReader {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (skipping keep-alive comments); `None` when the stream ended.
    async fn next(&mut self) -> Result<Option<SseEvent>, Box<dyn std::error::Error + Send + Sync>> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".into(),
                    id: None,
                    data: Json::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event.event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("id:") {
                        event.id = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                event.data = serde_json::from_str(&data)?;
                return Ok(Some(event));
            }
            match tokio::time::timeout(Duration::from_secs(10), self.response.chunk()).await?? {
                Some(chunk) => self.buffer.push_str(std::str::from_utf8(&chunk)?),
                None => return Ok(None),
            }
        }
    }
}

async fn open(server: &TestServer, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = server.get(&format!("/api/realtime?{query}"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    request.send().await.expect("realtime request")
}

async fn post(server: &TestServer, collection: &str, body: Json) -> Json {
    let response = server
        .post(&format!("/api/collections/{collection}/docs"), &body)
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stream_catches_up_goes_live_and_resumes_with_last_event_id() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "notes"})).await?;
        create_collection(&server, json!({"name": "other"})).await?;
        // Without a cursor: only what comes next, after upToDate.
        let response = open(&server, "collections=notes&n=gte.2", None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str()?,
            "text/event-stream"
        );
        let mut live = SseReader::new(response);
        let first = live.next().await?.expect("upToDate");
        assert_eq!(first.event, "upToDate");
        post(&server, "notes", json!({"n": 1})).await;
        post(&server, "other", json!({"n": 5})).await;
        let b = post(&server, "notes", json!({"n": 2})).await;
        let c = post(&server, "notes", json!({"n": 3})).await;
        let event_b = live.next().await?.expect("b");
        assert_eq!(event_b.event, "change");
        assert_eq!(event_b.data["id"], b["id"]);
        assert_eq!(event_b.data["op"], "create");
        assert_eq!(event_b.data["document"]["n"], 2);
        assert_eq!(event_b.id.as_deref(), event_b.data["cursor"].as_str());
        let event_c = live.next().await?.expect("c");
        assert_eq!(event_c.data["id"], c["id"]);
        drop(live);
        // Changes while disconnected arrive on resume, exactly once, then upToDate.
        let d = post(&server, "notes", json!({"n": 4})).await;
        let patched = server
            .request(
                reqwest::Method::PATCH,
                &format!(
                    "/api/collections/notes/docs/{}",
                    b["id"].as_str().unwrap_or_default()
                ),
            )
            .json(&json!({"n": 9}))
            .send()
            .await?;
        assert_eq!(patched.status(), 200);
        let response = open(&server, "collections=notes&n=gte.2", event_c.id.as_deref()).await;
        assert_eq!(response.status(), 200);
        let mut resumed = SseReader::new(response);
        let event_d = resumed.next().await?.expect("d");
        assert_eq!(event_d.data["id"], d["id"]);
        let event_patch = resumed.next().await?.expect("patch");
        assert_eq!(event_patch.data["op"], "patch");
        assert_eq!(event_patch.data["version"], 2);
        let up = resumed.next().await?.expect("upToDate");
        assert_eq!(up.event, "upToDate");
        assert_eq!(up.id, event_patch.id);
        // The cursor query parameter resumes the same way.
        let response = open(
            &server,
            &format!(
                "collections=notes,other&cursor={}",
                event_c.id.as_deref().unwrap_or_default()
            ),
            None,
        )
        .await;
        let mut by_query = SseReader::new(response);
        assert_eq!(by_query.next().await?.expect("d").data["id"], d["id"]);
        drop((resumed, by_query));
        server.stop().await;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_caps_and_expired_cursors() {
    on_each_backend(|backend| async move {
        let config = ServerConfig {
            max_realtime_subscribers: 1,
            ..ServerConfig::default()
        };
        let server = TestServer::start(&backend, config).await;
        create_collection(&server, json!({"name": "notes"})).await?;
        expect_error(open(&server, "n=eq.1", None).await, 400, "invalid_query").await;
        expect_error(
            open(&server, "collections=notes&order=n", None).await,
            400,
            "invalid_query",
        )
        .await;
        expect_error(
            open(&server, "collections=nope", None).await,
            404,
            "collection_not_found",
        )
        .await;
        expect_error(
            open(&server, "collections=notes&cursor=x1", None).await,
            400,
            "invalid_cursor",
        )
        .await;
        expect_error(
            // Past the end on both engines (u128::MAX; on PostgreSQL a small number is a
            // position before every change a current server records).
            open(
                &server,
                "collections=notes&cursor=340282366920938463463374607431768211455",
                None,
            )
            .await,
            400,
            "invalid_cursor",
        )
        .await;
        expect_error(
            open(&server, "collections=notes&n=zz.1", None).await,
            400,
            "invalid_filter",
        )
        .await;
        let many = (0..17)
            .map(|n| format!("c{n}"))
            .collect::<Vec<_>>()
            .join(",");
        expect_error(
            open(&server, &format!("collections={many}"), None).await,
            400,
            "invalid_query",
        )
        .await;
        let held = open(&server, "collections=notes", None).await;
        assert_eq!(held.status(), 200);
        expect_error(
            open(&server, "collections=notes", None).await,
            503,
            "too_many_subscribers",
        )
        .await;
        drop(held);
        // The slot is given back when the client goes away.
        let mut admitted = false;
        for _ in 0..50 {
            let again = open(&server, "collections=notes", None).await;
            if again.status() == 200 {
                admitted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(admitted);
        server.stop().await;

        // A server whose store keeps 5 changes: an old cursor is 410 with what to do.
        let dir = tempfile::tempdir()?;
        let target = match &backend {
            Backend::Sqlite => DbTarget::Sqlite(dir.path().join("app.db")),
            Backend::Postgres { url, schema } => DbTarget::Postgres {
                url: url.clone(),
                schema: format!("{schema}_r"),
            },
        };
        let (store, database) = target.open().await?;
        let store = store.with_config(StoreConfig {
            change_retention_count: Some(5),
            ..StoreConfig::default()
        });
        store
            .create_collection("notes", litehouse_docs::CollectionSpec::default())
            .await?;
        let start = store.head().await?;
        store
            .create_many("notes", (0..20).map(|n| json!({"n": n})).collect())
            .await?;
        store.prune_changes().await?;
        let server = Server::bind(
            ServerConfig {
                bind: "127.0.0.1:0".parse()?,
                admin_token: crate::util::ADMIN.into(),
                token_file: Some(dir.path().join("tokens.json")),
                ..ServerConfig::default()
            },
            store,
            database,
        )
        .await?;
        let base = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let response = reqwest::get(format!(
            "{base}/api/realtime?collections=notes&cursor={start}"
        ))
        .await?;
        let body = expect_error(response, 410, "cursor_expired").await;
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("read the collections again")
        );
        let _ = stop.send(());
        task.await??;
        if let Backend::Postgres { url, schema } = &backend {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            let conn = tokio::spawn(connection);
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}_r\" CASCADE"))
                .await?;
            drop(client);
            let _ = conn.await;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_needs_the_read_scope() {
    let config = ServerConfig {
        require_token: true,
        ..ServerConfig::default()
    };
    let server = TestServer::start(&Backend::Sqlite, config).await;
    let collection = server
        .post("/api/collections", &json!({"name": "notes"}))
        .bearer_auth(crate::util::ADMIN)
        .send()
        .await
        .expect("create collection");
    assert_eq!(collection.status(), 201);
    expect_error(
        open(&server, "collections=notes", None).await,
        401,
        "unauthorized",
    )
    .await;
    let allowed = server
        .get("/api/realtime?collections=notes")
        .bearer_auth(crate::util::ADMIN)
        .send()
        .await
        .expect("realtime");
    assert_eq!(allowed.status(), 200);
    let mut events = SseReader::new(allowed);
    let first = events.next().await.expect("read").expect("event");
    assert_eq!(first.event, "upToDate");
    drop(events);
    server.stop().await;
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_report_subscribers_events_and_feed_reads() {
    on_each_backend(|backend| async move {
        let server = TestServer::start(&backend, ServerConfig::default()).await;
        create_collection(&server, json!({"name": "notes"})).await?;
        let mut streams = Vec::new();
        for _ in 0..3 {
            let mut stream = SseReader::new(open(&server, "collections=notes", None).await);
            assert_eq!(stream.next().await?.expect("upToDate").event, "upToDate");
            streams.push(stream);
        }
        for n in 0..4 {
            post(&server, "notes", json!({"n": n})).await;
        }
        for stream in &mut streams {
            for _ in 0..4 {
                assert_eq!(stream.next().await?.expect("change").event, "change");
            }
        }
        let text = server.get("/metrics").send().await?.text().await?;
        assert_eq!(metric(&text, "litehouse_realtime_subscribers"), Some(3.0));
        assert_eq!(metric(&text, "litehouse_feed_live_subscribers"), Some(3.0));
        // 3 up-to-date marks and 3 x 4 changes went through the feed and out as SSE.
        assert_eq!(
            metric(&text, "litehouse_feed_events_delivered_total"),
            Some(15.0)
        );
        assert_eq!(
            metric(&text, "litehouse_realtime_events_sent_total"),
            Some(15.0)
        );
        assert_eq!(metric(&text, "litehouse_realtime_resets_total"), Some(0.0));
        assert_eq!(metric(&text, "litehouse_feed_lag_changes"), Some(0.0));
        assert_eq!(metric(&text, "litehouse_feed_held_back_changes"), Some(0.0));
        assert!(metric(&text, "litehouse_feed_tailer_reads_total").is_some_and(|n| n >= 1.0));
        assert!(text.contains("litehouse_realtime_queue_depth"));
        drop(streams);
        server.stop().await;
        Ok(())
    })
    .await;
}
