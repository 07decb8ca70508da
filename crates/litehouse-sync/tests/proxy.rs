//! The TCP fault proxy against a trivial echo server.

use std::time::{Duration, Instant};

use litehouse_sync::{FaultMode, FaultProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                Ok((mut s, _)) = listener.accept() => {
                    conns.spawn(async move {
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
    });
    (addr, task)
}

async fn round_trip(addr: std::net::SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(msg).await?;
    let mut got = vec![0u8; msg.len()];
    s.read_exact(&mut got).await?;
    Ok(got)
}

#[tokio::test]
async fn proxy_passes_delays_drops_resets_and_hangs() {
    let (echo, echo_task) = echo_server().await;
    let proxy = FaultProxy::start(echo).await.unwrap();
    let addr = proxy.addr();

    assert_eq!(round_trip(addr, b"hello").await.unwrap(), b"hello");

    proxy.set_mode(FaultMode::Delay(Duration::from_millis(150)));
    let t = Instant::now();
    assert_eq!(round_trip(addr, b"slow").await.unwrap(), b"slow");
    // Delayed once up and once down.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    proxy.set_mode(FaultMode::Drop);
    let err = round_trip(addr, b"x").await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );

    proxy.set_mode(FaultMode::Reset);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 4];
    // Give the proxy time to reset before we read.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = s.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);

    proxy.set_mode(FaultMode::Hang);
    let hung = tokio::time::timeout(Duration::from_millis(300), round_trip(addr, b"hang")).await;
    assert!(hung.is_err(), "a hung connection never answers: {hung:?}");

    proxy.set_mode(FaultMode::BlackholeResponses);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"lost").await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
    assert!(r.is_err(), "the response is swallowed: {r:?}");
    // cut_all closes the hung connection.
    proxy.cut_all();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("cut_all ends hung connections");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");

    // Healing: new connections pass again.
    proxy.set_mode(FaultMode::Pass);
    assert_eq!(proxy.mode(), FaultMode::Pass);
    assert_eq!(round_trip(addr, b"back").await.unwrap(), b"back");
    assert_eq!(proxy.accepted(), 7);

    proxy.shutdown().await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "closed after shutdown"
    );
    echo_task.abort();
    let _ = echo_task.await;
}
