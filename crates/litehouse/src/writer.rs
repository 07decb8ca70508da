//! The writer thread: one connection, a bounded queue, group commit.
//!
//! Protocol (DESIGN.md): take everything queued up to `max_group_size`, `BEGIN IMMEDIATE`, run
//! each request inside its own SAVEPOINT, `COMMIT` once, and only then reply to each caller.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::error::{Error, Result};
use crate::reply::Reply;
use crate::retry::BusyRetry;
use crate::stats::{OpKind, StatsCollector};
use crate::worker::{Worker, catch, contain, contain_drop};

/// A write request as the writer sees it: run it inside a savepoint, then tell it how the
/// group's COMMIT went.
pub(crate) trait WriteJob: Send {
    /// Runs the request; returns its error, if it failed (it is then rolled back alone).
    fn run(&mut self, conn: &Connection) -> Option<Error>;
    /// Replies to the caller: its own result, unless `outcome` says its work was not
    /// committed (the group failed, or the request's savepoint did).
    fn finish(self: Box<Self>, outcome: Result<(), &Error>);
}

/// A closure that runs on the writer connection outside any transaction (VACUUM, checkpoint,
/// restore). It gets `None` once the database is closed and must then reply with `Closed`.
pub(crate) type ExclusiveJob = Box<dyn FnOnce(Option<&mut Connection>) + Send>;

pub(crate) enum Message {
    Write {
        job: Box<dyn WriteJob>,
        kind: OpKind,
        enqueued: Instant,
    },
    Exclusive(ExclusiveJob),
    /// Finish everything queued before this, close the connection, then refuse the rest.
    Shutdown(Reply<()>),
}

/// A write request made of a user closure and its reply channel.
pub(crate) struct ClosureJob<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: Reply<T>,
}

impl<T, F> ClosureJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    pub(crate) fn boxed(work: F, reply: Reply<T>) -> Box<dyn WriteJob> {
        Box::new(ClosureJob {
            work: Some(work),
            result: None,
            reply,
        })
    }
}

impl<T, F> WriteJob for ClosureJob<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> Option<Error> {
        let work = self.work.take()?;
        // The closure's captures are dropped inside this call, so a panicking `Drop` of one
        // of them is this request's `Panic` too (and its savepoint is rolled back).
        let result = catch(|| work(conn));
        let failure = result.as_ref().err().cloned();
        self.result = Some(result);
        failure
    }

    fn finish(self: Box<Self>, outcome: Result<(), &Error>) {
        let ClosureJob {
            work,
            result,
            reply,
        } = *self;
        // A request that never ran (its group could not begin) still owns its closure, and
        // a value whose work was rolled back is dropped here: both are user code whose `Drop`
        // may panic, on the writer thread, before the reply is sent.
        contain_drop(work);
        let result = match (result, outcome) {
            // The closure failed on its own: that error, whatever the group did.
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(value)), Err(err)) => {
                contain_drop(value);
                Err(err.clone())
            }
            (None, Err(err)) => Err(err.clone()),
            // Unreachable by construction: a request that never ran always gets an error.
            (None, Ok(())) => Err(Error::Closed),
        };
        reply.send(result);
    }
}

/// The caller side of the writer: the queue's sender and the thread.
#[derive(Debug)]
pub(crate) struct WriterHandle {
    sender: Option<flume::Sender<Message>>,
    worker: Worker,
}

/// What the writer thread needs besides its connection.
pub(crate) struct WriterContext {
    pub(crate) max_group_size: usize,
    pub(crate) gather_window: Duration,
    pub(crate) retry: BusyRetry,
    pub(crate) stats: Arc<StatsCollector>,
}

const SAVEPOINT: &str = "SAVEPOINT litehouse_request";
const RELEASE: &str = "RELEASE litehouse_request";
const ROLLBACK_TO: &str = "ROLLBACK TO litehouse_request";

impl WriterHandle {
    pub(crate) fn spawn(
        mut conn: Connection,
        queue_capacity: usize,
        context: WriterContext,
    ) -> Result<WriterHandle> {
        let in_user_code = Arc::new(AtomicBool::new(false));
        install_guard(&mut conn, Arc::clone(&in_user_code))?;
        let (sender, receiver) = flume::bounded(queue_capacity);
        let worker = Worker::spawn(
            "lh-writer",
            receiver,
            move |receiver| writer_loop(conn, receiver, &context, &in_user_code),
            refuse,
        )?;
        Ok(WriterHandle {
            sender: Some(sender),
            worker,
        })
    }

    fn sender(&self) -> Result<&flume::Sender<Message>> {
        self.sender.as_ref().ok_or(Error::Closed)
    }

    /// Queues a message, waiting while the queue is full.
    pub(crate) fn send(&self, message: Message) -> Result<()> {
        self.sender()?.send(message).map_err(|_| Error::Closed)
    }

    /// Queues a message, waiting asynchronously while the queue is full.
    pub(crate) async fn send_async(&self, message: Message) -> Result<()> {
        self.sender()?
            .send_async(message)
            .await
            .map_err(|_| Error::Closed)
    }

    /// Queues a message only if there is room.
    pub(crate) fn try_send(&self, message: Message) -> Result<()> {
        self.sender()?.try_send(message).map_err(|_| Error::Closed)
    }

    pub(crate) fn is_current_thread(&self) -> bool {
        self.worker.is_current()
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.sender.as_ref().map_or(0, flume::Sender::len)
    }

    /// Disconnects the queue and joins the thread (it has already closed its connection if
    /// `Shutdown` was sent). Never joins from the writer thread itself, which happens when a
    /// closure drops the last handle to its own database.
    pub(crate) fn join(&mut self) {
        self.sender = None;
        self.worker.join();
    }

    /// Disconnects the queue and lets the thread finish on its own.
    pub(crate) fn detach(&mut self) {
        self.sender = None;
        self.worker.detach();
    }
}

/// Refuses transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) from user code, so
/// a closure cannot end the group's transaction under its neighbours.
///
/// The authorizer only sees statements as they are compiled, and the writer's own COMMIT sits
/// compiled in the statement cache where user code could reach it with `prepare_cached`; and
/// after SQLite rolled a group back on its own, a closure's further statements would each
/// autocommit. So a commit hook also vetoes every commit while user code runs: SQLite then
/// rolls back instead, and the group fails as a whole (nothing is committed behind the
/// writer's back).
fn install_guard(conn: &mut Connection, in_user_code: Arc<AtomicBool>) -> Result<()> {
    let in_user_code_at_commit = Arc::clone(&in_user_code);
    // Relaxed: the flag is written and read by the writer thread only.
    conn.commit_hook(Some(move || in_user_code_at_commit.load(Ordering::Relaxed)))?;
    conn.authorizer(Some(move |context: AuthContext<'_>| {
        // Relaxed: the flag is written and read by the writer thread only.
        let guarded = in_user_code.load(Ordering::Relaxed);
        match context.action {
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } if guarded => {
                Authorization::Deny
            }
            _ => Authorization::Allow,
        }
    }))?;
    Ok(())
}

fn writer_loop(
    mut conn: Connection,
    receiver: &flume::Receiver<Message>,
    context: &WriterContext,
    in_user_code: &AtomicBool,
) {
    let mut held_back: Option<Message> = None;
    // The size of the last group and how long its COMMIT took, for the gather window.
    let mut last_group = 0;
    let mut last_commit = Duration::ZERO;
    loop {
        let Some(message) = held_back.take().or_else(|| receiver.recv().ok()) else {
            return;
        };
        match message {
            Message::Exclusive(job) => run_exclusive(&mut conn, job, context),
            Message::Shutdown(reply) => {
                drop(conn);
                // The worker answers everything queued after this with `refuse`.
                return reply.send(Ok(()));
            }
            Message::Write {
                job,
                kind,
                enqueued,
            } => {
                let mut group = vec![Queued {
                    job,
                    kind,
                    enqueued,
                }];
                // Everything already queued; then, if that is fewer than the last group, a
                // short wait for the rest of those callers (see `Config::gather_window`).
                let window = context.gather_window.min(last_commit / 4);
                let wanted = last_group.max(1).min(context.max_group_size);
                let mut deadline = None;
                while group.len() < context.max_group_size {
                    let next = match receiver.try_recv() {
                        Ok(message) => Ok(message),
                        Err(_) if group.len() >= wanted || window.is_zero() => break,
                        Err(_) => receiver.recv_deadline(
                            *deadline.get_or_insert_with(|| Instant::now() + window),
                        ),
                    };
                    match next {
                        Ok(Message::Write {
                            job,
                            kind,
                            enqueued,
                        }) => {
                            group.push(Queued {
                                job,
                                kind,
                                enqueued,
                            });
                        }
                        Ok(other) => {
                            held_back = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                last_group = group.len();
                // Backstop: user code's panics are contained where they surface; a panic
                // here is litehouse's own bug, and must not end the thread either.
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    run_group(&conn, group, context, in_user_code)
                }));
                if let Ok(commit) = outcome {
                    last_commit = commit;
                } else {
                    in_user_code.store(false, Ordering::Relaxed);
                    if conn.is_autocommit() {
                        tracing::error!(
                            "litehouse bug: a write group panicked after its transaction ended; \
                             requests not answered yet get Closed"
                        );
                    } else {
                        let _ = conn.execute_batch("ROLLBACK");
                        tracing::error!(
                            "litehouse bug: a write group panicked; its transaction was rolled \
                             back and requests not answered yet get Closed"
                        );
                    }
                }
            }
        }
    }
}

fn run_exclusive(conn: &mut Connection, job: ExclusiveJob, context: &WriterContext) {
    if catch_unwind(AssertUnwindSafe(|| job(Some(conn)))).is_err() {
        // Exclusive jobs are litehouse's own code; a panic drops the reply (the caller sees
        // `Closed`). Make sure no transaction is left open for the next group.
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        context.stats.op(OpKind::Maintenance, false);
    }
}

/// After shutdown: every request that still arrives gets `Closed`, until the last handle is
/// dropped and the queue disconnects.
fn refuse(message: Message) {
    match message {
        Message::Write { job, .. } => job.finish(Err(&Error::Closed)),
        Message::Exclusive(job) => job(None),
        Message::Shutdown(reply) => reply.send(Ok(())),
    }
}

struct Queued {
    job: Box<dyn WriteJob>,
    kind: OpKind,
    enqueued: Instant,
}

/// Runs one group in one transaction and replies to every request in it.
fn run_group(
    conn: &Connection,
    group: Vec<Queued>,
    context: &WriterContext,
    in_user_code: &AtomicBool,
) -> Duration {
    let group_size = group.len();
    // Each finished request with the error that is its own (if any): the closure's error, or
    // the savepoint statement's when that failed before the closure ran.
    let mut done: Vec<(Queued, Option<Error>)> = Vec::with_capacity(group_size);
    let mut pending = group.into_iter();
    if let Err(err) = begin(conn, context) {
        finish_all(pending.map(|queued| (queued, None)), Err(&err), context);
        return Duration::ZERO;
    }
    while let Some(mut queued) = pending.next() {
        let outcome = run_one(conn, &mut queued, in_user_code);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (disk full, I/O error): the requests
            // already run lost their effect too, so none of them may be acknowledged.
            let cause = outcome.clone().err().unwrap_or_else(|| Error::Sqlite {
                extended_code: rusqlite::ffi::SQLITE_ABORT,
                message: "the transaction was rolled back by SQLite".into(),
                source: None,
            });
            done.push((queued, outcome.err()));
            finish_all(done.drain(..), Err(&cause), context);
            // A clone of a request's error, possibly user data whose `Drop` panics.
            contain_drop(cause);
            if let Err(err) = begin(conn, context) {
                finish_all(pending.map(|queued| (queued, None)), Err(&err), context);
                return Duration::ZERO;
            }
            continue;
        }
        done.push((queued, outcome.err()));
    }
    let commit_started = Instant::now();
    let committed = context.retry.run(&context.stats, || {
        Ok(conn.prepare_cached("COMMIT")?.execute([])?)
    });
    let commit_took = commit_started.elapsed();
    context
        .stats
        .group(group_size, commit_took, committed.is_ok());
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    finish_all(done.into_iter(), committed.as_ref().map(|_| ()), context);
    commit_took
}

fn begin(conn: &Connection, context: &WriterContext) -> Result<()> {
    context
        .retry
        .run(&context.stats, || {
            Ok(conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?)
        })
        .map(|_| ())
}

/// Runs one request inside its savepoint; rolls back to it when the request failed. If the
/// savepoint statements themselves fail, the whole transaction is rolled back, so the caller
/// sees the autocommit state and fails the group: a request's work is never left half undone.
fn run_one(conn: &Connection, queued: &mut Queued, in_user_code: &AtomicBool) -> Result<(), Error> {
    let statement = |sql: &str| -> Result<()> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    statement(SAVEPOINT)?;
    in_user_code.store(true, Ordering::Relaxed);
    let failure = queued.job.run(conn);
    in_user_code.store(false, Ordering::Relaxed);
    let undo = match &failure {
        None => statement(RELEASE),
        Some(_) if conn.is_autocommit() => Ok(()),
        Some(_) => statement(ROLLBACK_TO).and_then(|()| statement(RELEASE)),
    };
    if let Err(err) = undo {
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        return Err(failure.unwrap_or(err));
    }
    failure.map_or(Ok(()), Err)
}

fn finish_all(
    finished: impl Iterator<Item = (Queued, Option<Error>)>,
    group: Result<(), &Error>,
    context: &WriterContext,
) {
    let now = Instant::now();
    let finished: Vec<_> = finished.collect();
    // Statistics first: a caller that reads them right after its reply must see its request.
    context.stats.write_latencies(
        finished
            .iter()
            .map(|(queued, _)| now.duration_since(queued.enqueued)),
    );
    for (queued, own_error) in finished {
        let failed = own_error.is_some() || group.is_err();
        let busy = own_error
            .as_ref()
            .map_or(group.is_err_and(Error::is_busy), Error::is_busy);
        context.stats.op(queued.kind, !failed);
        if busy {
            context.stats.busy_error();
        }
        // Each reply on its own: a panic from one request's values can never cost the other
        // requests of the group their answer. `own_error` is a clone of the request's own
        // error, which may hold user data (`Error::User`); once the caller's copy is gone
        // (the caller stopped waiting) this clone is the last one, and its `Drop` is user
        // code too, so it is dropped inside the containment as well.
        contain(move || {
            let outcome = match &own_error {
                Some(own) => Err(own),
                None => group,
            };
            queued.job.finish(outcome);
            drop(own_error);
        });
    }
}
