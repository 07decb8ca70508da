//! The driver and HTTP transport over real loopback TCP, through the fault proxy, against a
//! small axum server that applies the protocol's rules to in-memory state (the same rules as
//! the simulation's server). The store-backed server replaces it once the document store's
//! change feed lands.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use litehouse_sync::{
    Event, FaultMode, FaultProxy, Hlc, HttpTransport, LogRecord, Op, OutboxEntry, PullFailure,
    PulledChange, PushFailure, PushRequest, Rejection, Replica, SyncConfig, SyncDriver,
    SyncMachine, SyncStatus, lww_wins,
};

use crate::sim::{Doc, Server};

type Shared = Arc<Mutex<Server>>;

async fn push(State(s): State<Shared>, Json(req): Json<PushRequest>) -> Response {
    let result = s.lock().unwrap().push(&req);
    match result {
        Ok(r) => Json(r).into_response(),
        Err(PushFailure::Gap(g)) => (StatusCode::CONFLICT, Json(g)).into_response(),
        Err(PushFailure::StaleEpoch(e)) => (StatusCode::FORBIDDEN, Json(e)).into_response(),
        Err(other) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{other:?}")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct PullQuery {
    cursor: Option<String>,
    #[serde(default)]
    full: bool,
}

async fn pull(State(s): State<Shared>, Query(q): Query<PullQuery>) -> Response {
    let server = s.lock().unwrap();
    let result = if q.full {
        Ok(server.read_all())
    } else {
        server.pull(q.cursor.as_deref())
    };
    match result {
        Ok(r) => Json(r).into_response(),
        Err(PullFailure::Expired) => StatusCode::GONE.into_response(),
        Err(other) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{other:?}")).into_response(),
    }
}

async fn start_server() -> (SocketAddr, Shared, tokio::task::JoinHandle<()>) {
    let shared: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/api/sync/push", post(push))
        .route("/api/sync/pull", get(pull))
        .with_state(Arc::clone(&shared));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, shared, task)
}

#[derive(Default)]
pub(crate) struct MemReplica {
    pub(crate) docs: Mutex<BTreeMap<String, Doc>>,
    acked: Mutex<u64>,
    rejected: Mutex<Vec<Rejection>>,
    log: Mutex<Vec<LogRecord>>,
}

impl Replica for MemReplica {
    async fn apply(
        &self,
        changes: Vec<PulledChange>,
        _cursor: Option<String>,
        _full: bool,
    ) -> Result<(), String> {
        let mut docs = self.docs.lock().unwrap();
        for c in changes {
            let wins = docs
                .get(&c.doc_id)
                .is_none_or(|l| lww_wins((&c.hlc, &c.device), (&l.hlc, &l.device)));
            if wins {
                let body = (c.op == Op::Put).then_some(c.document);
                docs.insert(
                    c.doc_id,
                    Doc {
                        hlc: c.hlc,
                        device: c.device,
                        body,
                    },
                );
            }
        }
        Ok(())
    }

    async fn mark_synced(&self, up_to_seq: u64, rejected: Vec<Rejection>) -> Result<(), String> {
        *self.acked.lock().unwrap() = up_to_seq;
        self.rejected.lock().unwrap().extend(rejected);
        Ok(())
    }

    async fn log(&self, record: LogRecord) -> Result<(), String> {
        self.log.lock().unwrap().push(record);
        Ok(())
    }
}

pub(crate) struct TestDevice {
    name: String,
    clock: uhlc::HLC,
    seq: u64,
    pub(crate) replica: Arc<MemReplica>,
    pub(crate) driver: SyncDriver,
}

impl TestDevice {
    pub(crate) fn start(name: &str, id: u64, base: String, config: SyncConfig) -> TestDevice {
        let replica = Arc::new(MemReplica::default());
        let transport = HttpTransport::without_pooling(base, Duration::from_millis(500)).unwrap();
        let machine = SyncMachine::new(config, name, 1, None, 0);
        TestDevice {
            name: name.into(),
            clock: uhlc::HLCBuilder::new()
                .with_id(uhlc::ID::try_from(id).unwrap())
                .build(),
            seq: 0,
            driver: SyncDriver::spawn(machine, transport, Arc::clone(&replica), None),
            replica,
        }
    }

    pub(crate) async fn write(&mut self, doc: &str, value: i64) {
        self.seq += 1;
        let entry = OutboxEntry {
            seq: self.seq,
            op_id: format!("{}-{}", self.name, self.seq),
            hlc: Hlc(self.clock.new_timestamp()),
            collection: "tx".into(),
            doc_id: doc.into(),
            op: Op::Put,
            body: serde_json::json!({ "amount": value }),
        };
        self.replica.docs.lock().unwrap().insert(
            doc.into(),
            Doc {
                hlc: entry.hlc,
                device: self.name.clone(),
                body: Some(entry.body.clone()),
            },
        );
        self.driver.send(Event::LocalWrite(entry)).await.unwrap();
    }

    pub(crate) async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        f: impl Fn(&SyncStatus) -> bool,
    ) {
        let t = Instant::now();
        loop {
            let st = self.driver.status().await.unwrap();
            if f(&st) {
                return;
            }
            assert!(
                t.elapsed() < limit,
                "{}: {what} not reached: {st:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_push_is_retried_within_max_backoff_without_new_write() {
    let (server_addr, server, server_task) = start_server().await;
    let proxy = FaultProxy::start(server_addr).await.unwrap();
    let config = SyncConfig {
        max_batch: 100,
        base_backoff: 50,
        max_backoff: 400,
        poll_interval: 60_000,
        request_timeout: 700,
        jitter_seed: 1,
    };
    let (max_backoff, timeout) = (config.max_backoff, config.request_timeout);
    let mut dev = TestDevice::start("d1", 1, format!("http://{}", proxy.addr()), config);

    for (mode, failures) in [
        (FaultMode::Reset, 4),
        (FaultMode::Hang, 1),
        (FaultMode::Drop, 3),
    ] {
        // Faults apply to new connections; cut the pooled keep-alive ones.
        proxy.set_mode(mode);
        proxy.cut_all();
        dev.write(&format!("doc-{mode:?}"), 1).await;
        dev.wait_for("repeated failures", Duration::from_secs(20), |s| {
            s.consecutive_failures >= failures
                && s.pending == 1
                // A hung connection is ended by the request's timeout.
                && (mode != FaultMode::Hang || s.last_error.as_deref() == Some("request timed out"))
        })
        .await;
        // Heal, with no new local write: the timer alone must retry within the cap (plus at
        // most one request that was already hanging when we healed).
        proxy.set_mode(FaultMode::Pass);
        proxy.cut_all();
        let healed = Instant::now();
        dev.wait_for(
            "pending drained",
            Duration::from_millis(max_backoff + timeout + 1_000),
            |s| s.pending == 0,
        )
        .await;
        let took = healed.elapsed();
        eprintln!(
            "{mode:?}: drained {took:?} after healing (cap {max_backoff} ms + timeout {timeout} ms)"
        );
        assert!(
            took <= Duration::from_millis(max_backoff + timeout + 1_000),
            "{mode:?}: retry took {took:?}"
        );
    }
    {
        let s = server.lock().unwrap();
        assert_eq!(s.processed.len(), 3);
        assert!(s.processed.values().all(|n| *n == 1), "{:?}", s.processed);
    }
    assert_eq!(*dev.replica.acked.lock().unwrap(), 3);
    let log = dev.replica.log.lock().unwrap().clone();
    assert!(log.iter().any(|r| r.kind == "push-failed"), "{log:?}");
    assert!(log.iter().any(|r| r.kind == "push"), "{log:?}");
    dev.driver.stop().await;
    proxy.shutdown().await;
    server_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_write_offline_reconnect_and_converge() {
    let (server_addr, server, server_task) = start_server().await;
    let proxy = FaultProxy::start(server_addr).await.unwrap();
    let config = SyncConfig {
        max_batch: 4,
        base_backoff: 20,
        max_backoff: 300,
        poll_interval: 100,
        request_timeout: 1_000,
        jitter_seed: 2,
    };
    let base = format!("http://{}", proxy.addr());
    let mut a = TestDevice::start("a", 1, base.clone(), config.clone());
    let mut b = TestDevice::start("b", 2, base, config);
    a.driver.send(Event::Pause).await.unwrap();
    b.driver.send(Event::Pause).await.unwrap();
    for i in 0..10 {
        a.write(&format!("doc-{}", i % 4), i).await;
        b.write(&format!("doc-{}", i % 3), 100 + i).await;
    }
    let st = a.driver.status().await.unwrap();
    assert_eq!(st.pending, 10);
    assert_eq!(
        st.state,
        litehouse_sync::SyncState::Offline { paused: true }
    );
    assert!(
        server.lock().unwrap().processed.is_empty(),
        "nothing leaves a paused device"
    );

    // Reconnect through a flaky network, then heal.
    proxy.set_mode(FaultMode::Delay(Duration::from_millis(30)));
    a.driver.send(Event::Resume).await.unwrap();
    b.driver.send(Event::Resume).await.unwrap();
    let limit = Duration::from_secs(20);
    for d in [&a, &b] {
        d.wait_for("pending drained", limit, |s| s.pending == 0)
            .await;
    }
    proxy.set_mode(FaultMode::Pass);
    let head = server.lock().unwrap().log.len().to_string();
    for d in [&a, &b] {
        d.driver.send(Event::ForceSync).await.unwrap();
        d.wait_for("cursor at head", limit, |s| {
            s.cursor.as_deref() == Some(&head)
        })
        .await;
    }
    let server_docs = server.lock().unwrap().docs.clone();
    assert_eq!(server_docs.len(), 4);
    assert_eq!(*a.replica.docs.lock().unwrap(), server_docs);
    assert_eq!(*b.replica.docs.lock().unwrap(), server_docs);
    {
        let s = server.lock().unwrap();
        assert_eq!(s.processed.len(), 20);
        assert!(s.processed.values().all(|n| *n == 1));
    }
    a.driver.stop().await;
    b.driver.stop().await;
    proxy.shutdown().await;
    server_task.abort();
}
