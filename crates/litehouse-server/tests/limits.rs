//! Server limits: concurrency (503, not a queue) and the request timeout.

use std::time::Duration;

use litehouse_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{Backend, TestServer, expect_error};

/// Opens a connection and sends a request whose body never completes, so its handler holds
/// a concurrency slot until the connection closes.
async fn stalled_request(server: &TestServer) -> TcpStream {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            b"POST /api/collections HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .expect("write");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server_answers_503() {
    let config = ServerConfig {
        max_concurrent_requests: 1,
        ..ServerConfig::default()
    };
    let server = TestServer::start(&Backend::Sqlite, config).await;
    let mut stalled = stalled_request(&server).await;
    // The stalled request reaches its handler soon; until then the probe may still pass. If
    // a probe held the slot when the stalled request arrived, the stalled one was refused
    // instead: it has a response waiting, so start another.
    let mut refused = None;
    for _ in 0..500 {
        let response = server.get("/api/collections").send().await.expect("send");
        if response.status() == 503 {
            refused = Some(response);
            break;
        }
        let mut buffer = [0u8; 64];
        if matches!(stalled.try_read(&mut buffer), Ok(read) if read > 0) {
            stalled = stalled_request(&server).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = refused.expect("a 503 while the only slot is taken");
    assert!(refused.headers().contains_key("retry-after"));
    expect_error(refused, 503, "overloaded").await;
    drop(stalled);
    let mut recovered = false;
    for _ in 0..200 {
        let response = server.get("/api/collections").send().await.expect("send");
        if response.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        recovered,
        "the slot is released when the stalled request ends"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_times_out_with_503() {
    let config = ServerConfig {
        request_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = TestServer::start(&Backend::Sqlite, config).await;
    let mut stalled = stalled_request(&server).await;
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    while !response.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stalled.read(&mut buffer).await.expect("read");
        assert!(read > 0, "connection closed before a response");
        response.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&response).to_lowercase();
    assert!(text.starts_with("http/1.1 503"), "{text}");
    assert!(text.contains("retry-after"), "{text}");
    drop(stalled);
    server.stop().await;
}

/// Another process holds SQLite's write lock past the busy budget: the write is answered
/// 503 with `Retry-After` and is not applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_answers_503_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("busy.db");
    let config = litehouse::Config {
        busy_budget: Duration::from_millis(200),
        ..litehouse::Config::default()
    };
    let database = litehouse::Database::open(&path, config).expect("open");
    let store = litehouse_docs::Store::from_database(database.clone())
        .await
        .expect("store");
    store
        .create_collection("c", litehouse_docs::CollectionSpec::default())
        .await
        .expect("collection");
    let server_config = ServerConfig {
        bind: "127.0.0.1:0".parse().expect("address"),
        admin_token: crate::util::ADMIN.into(),
        ..ServerConfig::default()
    };
    let server = litehouse_server::Server::bind(server_config, store, Some(database))
        .await
        .expect("bind");
    let base = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    // A foreign connection takes the write lock and keeps it.
    let foreign = litehouse::rusqlite::Connection::open(&path).expect("foreign connection");
    foreign.execute_batch("BEGIN IMMEDIATE").expect("lock");
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/api/collections/c/docs"))
        .json(&serde_json::json!({"n": 1}))
        .send()
        .await
        .expect("send");
    assert!(response.headers().contains_key("retry-after"));
    expect_error(response, 503, "busy").await;
    foreign.execute_batch("ROLLBACK").expect("unlock");
    drop(foreign);

    let page: serde_json::Value = client
        .get(format!("{base}/api/collections/c/docs"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(page["totalItems"], 0);
    let _ = stop.send(());
    task.await.expect("task").expect("clean shutdown");
}
