//! A TCP fault proxy for tests: sits between a client and a server on loopback and, per
//! connection, passes, delays, drops, resets or hangs it.
//!
//! The mode is read when a connection is accepted, so a test switches faults with
//! [`FaultProxy::set_mode`] and the next connection sees the new behaviour;
//! [`FaultProxy::cut_all`] closes every open connection (e.g. to end hung ones when healing).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What the proxy does with a newly accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Forward both directions unchanged.
    Pass,
    /// Forward both directions, sleeping this long before each chunk.
    Delay(Duration),
    /// Close the client connection at once (an orderly FIN), never contacting the server.
    Drop,
    /// Abort the client connection with a TCP RST, never contacting the server.
    Reset,
    /// Accept and read the client's bytes but never answer nor close (a hung upstream).
    Hang,
    /// Forward the request to the server but swallow its response and keep the connection
    /// open: the server acts, the client never learns of it (the lost-acknowledgement case).
    BlackholeResponses,
}

#[derive(Debug)]
struct Shared {
    mode: Mutex<FaultMode>,
    accepted: std::sync::atomic::AtomicU64,
}

/// A running fault proxy. See the module docs.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cut: watch::Sender<u64>,
    stop: watch::Sender<bool>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on `127.0.0.1:0` and forward to `upstream`, starting in [`FaultMode::Pass`].
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(FaultMode::Pass),
            accepted: 0.into(),
        });
        let (cut, cut_rx) = watch::channel(0u64);
        let (stop, stop_rx) = watch::channel(false);
        let accept_task = tokio::spawn(accept_loop(
            listener,
            upstream,
            Arc::clone(&shared),
            cut_rx,
            stop_rx,
        ));
        Ok(FaultProxy {
            addr,
            shared,
            cut,
            stop,
            accept_task: Some(accept_task),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The mode for connections accepted from now on.
    pub fn set_mode(&self, mode: FaultMode) {
        *self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// The current mode.
    pub fn mode(&self) -> FaultMode {
        *self
            .shared
            .mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Close every connection open now (new ones are unaffected).
    pub fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stop accepting, close every connection and wait for all proxy tasks to end.
    pub async fn shutdown(mut self) {
        self.stop_and_join().await;
    }

    async fn stop_and_join(&mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.accept_task.take()
            && let Err(e) = task.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Without `shutdown`, the tasks still end: the accept loop sees `stop` and aborts its
        // connections when its JoinSet drops.
        let _ = self.stop.send(true);
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    cut: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                shared.accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Read the cut generation before the mode: a connection that got the mode in
                // force before `set_mode` + `cut_all` then always sees that cut.
                let generation = *cut.borrow();
                let mode = *shared.mode.lock().unwrap_or_else(PoisonError::into_inner);
                let mut cut = cut.clone();
                conns.spawn(async move {
                    tokio::select! {
                        _ = serve(client, upstream, mode) => {}
                        _ = cut.wait_for(|g| *g != generation) => {}
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

async fn serve(client: TcpStream, upstream: SocketAddr, mode: FaultMode) {
    match mode {
        FaultMode::Drop => drop(client),
        FaultMode::Reset => {
            // SO_LINGER 0: closing sends RST instead of FIN.
            let _ = client.set_zero_linger();
            drop(client);
        }
        FaultMode::Hang => {
            let mut client = client;
            let mut buf = vec![0u8; 8192];
            // Swallow input; after the client closes, keep its socket open anyway.
            while matches!(client.read(&mut buf).await, Ok(n) if n > 0) {}
            std::future::pending::<()>().await;
        }
        FaultMode::Pass | FaultMode::Delay(_) | FaultMode::BlackholeResponses => {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return; // upstream down: the client sees the connection close
            };
            let delay = match mode {
                FaultMode::Delay(d) => Some(d),
                _ => None,
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = pump(cr, Some(sw), delay);
            let down_target = if mode == FaultMode::BlackholeResponses {
                None
            } else {
                Some(cw)
            };
            let down = pump(sr, down_target, delay);
            tokio::join!(up, down);
            if mode == FaultMode::BlackholeResponses {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Copy `from` to `to` (or discard when `to` is None) until EOF or an error, then shut `to`
/// down for writing.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: Option<tokio::net::tcp::OwnedWriteHalf>,
    delay: Option<Duration>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(w) = to.as_mut()
            && w.write_all(&buf[..n]).await.is_err()
        {
            break;
        }
    }
    if let Some(mut w) = to {
        let _ = w.shutdown().await;
    }
}
