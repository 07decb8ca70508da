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
