//! The async driver: one tokio task that owns a [`SyncMachine`], feeds it events and runs its
//! actions over an [`HttpTransport`] and a local [`Replica`].

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::machine::{Action, Event, LogRecord, Millis, SyncMachine, SyncStatus};
use crate::protocol::{PulledChange, Rejection};
use crate::transport::HttpTransport;

/// The device's local side, as the driver needs it. A store-backed implementation applies
/// pulled changes with last-writer-wins and stores the cursor in the same transaction.
pub trait Replica: Send + Sync + 'static {
    /// Apply pulled changes and store `cursor`, atomically (see [`Action::ApplyBatch`]).
    fn apply(
        &self,
        changes: Vec<PulledChange>,
        cursor: Option<String>,
        full: bool,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Mark outbox entries up to `up_to_seq` synced and record the rejected ones.
    fn mark_synced(
        &self,
        up_to_seq: u64,
        rejected: Vec<Rejection>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// Append to the sync log.
    fn log(&self, record: LogRecord) -> impl Future<Output = Result<(), String>> + Send;
}

/// The driver task is gone (stopped, or it panicked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sync driver has stopped")]
pub struct DriverStopped;

enum Command {
    Event(Event),
    Status(oneshot::Sender<SyncStatus>),
}

/// Handle to a running sync driver.
#[derive(Debug)]
pub struct SyncDriver {
    tx: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Event(e) => f.debug_tuple("Event").field(e).finish(),
            Command::Status(_) => f.write_str("Status"),
        }
    }
}

impl SyncDriver {
    /// Start driving `machine`. `stored_cursor` is the cursor the replica has now (the
    /// machine's starting cursor). Must be called inside a tokio runtime.
    pub fn spawn<R: Replica>(
        machine: SyncMachine,
        transport: HttpTransport,
        replica: Arc<R>,
        stored_cursor: Option<String>,
    ) -> SyncDriver {
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(run(machine, transport, replica, stored_cursor, rx));
        SyncDriver { tx, task }
    }

    /// Feed an event (a local write's outbox entry, pause, resume, force sync, network up/down).
    pub async fn send(&self, event: Event) -> Result<(), DriverStopped> {
        self.tx
            .send(Command::Event(event))
            .await
            .map_err(|_| DriverStopped)
    }

    /// The machine's current status.
    pub async fn status(&self) -> Result<SyncStatus, DriverStopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Status(tx))
            .await
            .map_err(|_| DriverStopped)?;
        rx.await.map_err(|_| DriverStopped)
    }

    /// Stop the machine, abandon requests in flight and wait for the task to end (a panic in
    /// the task is propagated).
    pub async fn stop(self) {
        let _ = self.tx.send(Command::Event(Event::Stop)).await;
        drop(self.tx);
        if let Err(e) = self.task.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

async fn run<R: Replica>(
    mut machine: SyncMachine,
    transport: HttpTransport,
    replica: Arc<R>,
    mut stored_cursor: Option<String>,
    mut rx: mpsc::Receiver<Command>,
) {
    let origin = Instant::now();
    let now = || -> Millis { origin.elapsed().as_millis() as Millis };
    let mut timer: Option<Instant> = Some(origin);
    let mut requests: JoinSet<Event> = JoinSet::new();
    let mut queue: VecDeque<Event> = VecDeque::new();
    let mut stopped = false;
    while !stopped {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None => queue.push_back(Event::Stop),
                Some(Command::Event(e)) => queue.push_back(e),
                Some(Command::Status(reply)) => {
                    let _ = reply.send(machine.status(now()));
                }
            },
            () = sleep_until(timer), if timer.is_some() => {
                timer = None;
                queue.push_back(Event::Timer);
            }
            Some(done) = requests.join_next(), if !requests.is_empty() => match done {
                Ok(event) => queue.push_back(event),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            },
        }
        while let Some(event) = queue.pop_front() {
            stopped |= matches!(event, Event::Stop);
            let at = now();
            for action in machine.handle(at, event) {
                match action {
                    Action::SendPush {
                        req,
                        request,
                        deadline,
                    } => {
                        let t = transport.clone();
                        let budget = Duration::from_millis(deadline.saturating_sub(at).max(1));
                        requests.spawn(async move {
                            let result = match tokio::time::timeout(
                                budget,
                                t.push(&request, budget),
                            )
                            .await
                            {
                                Ok(r) => r,
                                Err(_) => Err(crate::PushFailure::TimedOut),
                            };
                            Event::PushResult { req, result }
                        });
                    }
                    Action::FetchChangesSince {
                        req,
                        cursor,
                        deadline,
                    } => spawn_pull(&mut requests, &transport, req, cursor, false, deadline, at),
                    Action::ReadAll { req, deadline } => {
                        spawn_pull(&mut requests, &transport, req, None, true, deadline, at)
                    }
                    Action::ApplyBatch {
                        changes,
                        cursor,
                        full,
                    } => match replica.apply(changes, cursor.clone(), full).await {
                        Ok(()) => stored_cursor = cursor,
                        Err(error) => queue.push_back(Event::ApplyFailed {
                            cursor: stored_cursor.clone(),
                            error,
                        }),
                    },
                    Action::MarkSynced {
                        up_to_seq,
                        rejected,
                    } => {
                        if let Err(e) = replica.mark_synced(up_to_seq, rejected).await {
                            queue.push_back(Event::LocalError(format!(
                                "marking entries up to seq {up_to_seq} synced failed: {e}"
                            )));
                        }
                    }
                    Action::SleepUntil(t) => {
                        timer = Some(origin + Duration::from_millis(t));
                    }
                    Action::Log(record) => {
                        if let Err(e) = replica.log(record.clone()).await {
                            tracing::warn!(error = %e, ?record, "writing the sync log failed");
                        }
                    }
                }
            }
        }
    }
    requests.abort_all();
    while requests.join_next().await.is_some() {}
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn spawn_pull(
    requests: &mut JoinSet<Event>,
    transport: &HttpTransport,
    req: u64,
    cursor: Option<String>,
    full: bool,
    deadline: Millis,
    at: Millis,
) {
    let t = transport.clone();
    let budget = Duration::from_millis(deadline.saturating_sub(at).max(1));
    requests.spawn(async move {
        let result =
            match tokio::time::timeout(budget, t.pull(cursor.as_deref(), full, budget)).await {
                Ok(r) => r,
                Err(_) => Err(crate::PullFailure::Transport("request timed out".into())),
            };
        Event::PullResult { req, result }
    });
}
