//! The timing relay: follows HTTP/1 requests and responses between the devices and the fault
//! proxy and times each one.

use super::*;

/// Which sync route a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    Push,
    Pull,
    Other,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RouteCounts {
    pub(crate) started: u64,
    pub(crate) completed: u64,
    /// Ended by the connection closing before the whole response arrived.
    pub(crate) aborted: u64,
    pub(crate) open: u64,
}

#[derive(Debug, Default)]
pub(crate) struct WireStats {
    pub(crate) routes: HashMap<Route, RouteCounts>,
    /// Longest request seen (completed or aborted), with its route.
    pub(crate) longest: (Duration, Option<Route>),
    /// Start of every request open now, per connection.
    pub(crate) open: HashMap<u64, (Instant, Route, usize)>,
}

impl WireStats {
    pub(crate) fn counts(&mut self, route: Route) -> &mut RouteCounts {
        self.routes.entry(route).or_default()
    }

    pub(crate) fn end(&mut self, conn: u64, completed: bool) {
        let Some((started, route, _)) = self.open.remove(&conn) else {
            return;
        };
        let took = started.elapsed();
        if took > self.longest.0 {
            self.longest = (took, Some(route));
        }
        let counts = self.counts(route);
        counts.open -= 1;
        if completed {
            counts.completed += 1;
        } else {
            counts.aborted += 1;
        }
    }
}

/// A TCP relay on loopback in front of the fault proxy that follows HTTP/1 requests and
/// responses (one at a time per connection, as HTTP/1 clients without pipelining send them)
/// and times each one.
pub(crate) struct Wire {
    pub(crate) addr: SocketAddr,
    pub(crate) stats: Arc<Mutex<WireStats>>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Wire {
    pub(crate) async fn start(upstream: SocketAddr) -> Wire {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stats = Arc::new(Mutex::new(WireStats::default()));
        let (stop, mut stop_rx) = watch::channel(false);
        let shared = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            let mut next_id = 0u64;
            loop {
                tokio::select! {
                    _ = stop_rx.wait_for(|s| *s) => break,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        next_id += 1;
                        conns.spawn(relay(client, upstream, Arc::clone(&shared), next_id));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        });
        Wire {
            addr,
            stats,
            stop,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut WireStats) -> T) -> T {
        f(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn counts(&self, route: Route) -> RouteCounts {
        self.with(|s| *s.counts(route))
    }

    /// The longest request so far, counting the ones still open as lasting until now.
    pub(crate) fn longest(&self) -> (Duration, Option<Route>) {
        self.with(|s| {
            s.open
                .values()
                .map(|(started, route, _)| (started.elapsed(), Some(*route)))
                .fold(s.longest, |a, b| if b.0 > a.0 { b } else { a })
        })
    }

    /// Waits until a request to `route` is open on the wire.
    pub(crate) async fn wait_open(&self, route: Route, what: &str) {
        let started = Instant::now();
        while self.counts(route).open == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: no {route:?} request opened in 20 s: {:?}",
                self.with(|s| s.routes.clone())
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits until no request to `route` is open (e.g. after [`FaultProxy::cut_all`], so a
    /// request cut there is not taken for a new one).
    pub(crate) async fn wait_closed(&self, route: Route) {
        let started = Instant::now();
        while self.counts(route).open > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{route:?} requests still open 10 s after a cut"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

/// HTTP/1 framing of one response as it streams past.
#[derive(Default)]
pub(crate) struct ResponseFraming {
    pub(crate) head: Vec<u8>,
    /// Body bytes still expected after the head (`None` while the head is incomplete).
    pub(crate) remaining: Option<usize>,
    /// Chunked body: the last bytes seen, to spot the final `0\r\n\r\n`.
    pub(crate) chunked_tail: Option<Vec<u8>>,
}

impl ResponseFraming {
    /// Feeds response bytes; true when the response is complete.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> bool {
        if self.remaining.is_none() && self.chunked_tail.is_none() {
            self.head.extend_from_slice(bytes);
            let Some(end) = find(&self.head, b"\r\n\r\n") else {
                return false;
            };
            let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
            let body = self.head[end + 4..].to_vec();
            let length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            if head
                .lines()
                .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"))
            {
                self.chunked_tail = Some(Vec::new());
            } else {
                self.remaining = Some(length.unwrap_or(0));
            }
            self.head.clear();
            return self.feed_body(&body);
        }
        self.feed_body(bytes)
    }

    pub(crate) fn feed_body(&mut self, bytes: &[u8]) -> bool {
        if let Some(tail) = &mut self.chunked_tail {
            tail.extend_from_slice(bytes);
            let keep = tail.len().saturating_sub(5);
            tail.drain(..keep);
            return tail.as_slice() == b"0\r\n\r\n";
        }
        let remaining = self.remaining.as_mut().expect("head parsed");
        *remaining = remaining.saturating_sub(bytes.len());
        *remaining == 0
    }
}

pub(crate) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(crate) fn lock(stats: &Mutex<WireStats>) -> std::sync::MutexGuard<'_, WireStats> {
    stats.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn route_of(request_start: &[u8]) -> Route {
    let line = String::from_utf8_lossy(request_start);
    if line.starts_with("POST /api/sync/push") {
        Route::Push
    } else if line.starts_with("GET /api/sync/pull") {
        Route::Pull
    } else {
        Route::Other
    }
}

pub(crate) async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    stats: Arc<Mutex<WireStats>>,
    id: u64,
) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return; // the client sees its connection close, as with no relay
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut cbuf = vec![0u8; 16 * 1024];
    let mut sbuf = vec![0u8; 16 * 1024];
    let mut framing: Option<ResponseFraming> = None;
    let mut reset = false;
    loop {
        tokio::select! {
            read = cr.read(&mut cbuf) => {
                let n = match read { Ok(0) | Err(_) => break, Ok(n) => n };
                if framing.is_none() {
                    let route = route_of(&cbuf[..n]);
                    let mut s = lock(&stats);
                    s.open.insert(id, (Instant::now(), route, 0));
                    let counts = s.counts(route);
                    counts.started += 1;
                    counts.open += 1;
                    framing = Some(ResponseFraming::default());
                }
                if sw.write_all(&cbuf[..n]).await.is_err() {
                    break;
                }
            }
            read = sr.read(&mut sbuf) => {
                let n = match read {
                    Ok(0) => break,
                    Err(_) => { reset = true; break }
                    Ok(n) => n,
                };
                if let Some(open) = lock(&stats).open.get_mut(&id) {
                    open.2 += n;
                }
                if cw.write_all(&sbuf[..n]).await.is_err() {
                    break;
                }
                if let Some(f) = framing.as_mut()
                    && f.feed(&sbuf[..n])
                {
                    framing = None;
                    lock(&stats).end(id, true);
                }
            }
        }
    }
    lock(&stats).end(id, false);
    if reset {
        // Pass a reset on as a reset.
        let _ = cw.as_ref().set_zero_linger();
    }
}
