//! The flusher thread: turns pending rows into one engine transaction at a time.
//!
//! Only this thread flushes, so at most one batch is ever in flight and writes to a key reach
//! the database in the order they were made, even across a failed flush.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use flume::RecvTimeoutError;
use rusqlite::{Connection, TransactionBehavior};

use super::Shared;
use super::rejected::{isolatable, record, rejects_rows};
use super::sql::write_batches;
use super::state::{Batch, Item, batch_of, batch_rows, items};
use crate::Database;
use crate::error::{Error, Result};
use crate::reply::Reply;
use crate::worker::Worker;

pub(crate) enum Command {
    /// Enough rows are pending, or a producer waits for room.
    Wake,
    /// Flush everything pending now and report how many rows were written.
    Flush(Reply<usize>),
    /// Flush everything (retrying until `stop_timeout`), then exit.
    Stop(Reply<usize>),
}

pub(crate) fn spawn(
    shared: Arc<Shared>,
    db: Database,
    commands: flume::Receiver<Command>,
) -> Result<Worker> {
    let backoff = new_backoff(&shared);
    let flusher = Flusher {
        shared,
        db,
        backoff,
        retry_at: None,
    };
    Worker::spawn(
        "lh-buffer",
        commands,
        move |commands| flusher.run(commands),
        refuse,
    )
}

fn new_backoff(shared: &Shared) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(shared.config.retry_min_delay)
        .with_max_delay(shared.config.retry_max_delay)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

struct Flusher {
    shared: Arc<Shared>,
    db: Database,
    backoff: ExponentialBackoff,
    /// After a failed flush: when to try again. Size triggers wait for it too, so a table
    /// that does not exist yet does not turn into a busy loop.
    retry_at: Option<Instant>,
}

impl Flusher {
    fn run(mut self, commands: &flume::Receiver<Command>) {
        let interval = self.shared.config.flush_interval;
        let mut next_tick = Instant::now() + interval;
        loop {
            let deadline = self.retry_at.unwrap_or(next_tick);
            match commands.recv_deadline(deadline) {
                Ok(Command::Wake) => {
                    if self.retry_at.is_none() && self.shared.wants_flush() {
                        let _ = self.flush_pending();
                    }
                }
                Ok(Command::Flush(reply)) => reply.send(self.flush_pending()),
                Ok(Command::Stop(reply)) => {
                    let result = self
                        .drain()
                        .and_then(|written| self.rejections().map(|()| written));
                    return reply.send(result);
                }
                Err(RecvTimeoutError::Timeout) => {
                    // A failure is recorded in the stats and retried after the backoff.
                    let _ = self.flush_pending();
                    next_tick = Instant::now() + interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.drain();
                    return;
                }
            }
        }
    }

    /// Flushes the rows pending now, one batch (one transaction) at a time. Rows written
    /// meanwhile wait for the next round, so a fast producer cannot keep this going forever.
    fn flush_pending(&mut self) -> Result<usize> {
        let mut budget = self.shared.state.lock().pending_rows;
        let mut written = 0;
        while budget > 0 {
            let batch = {
                let limit = self.shared.config.flush_batch_size.min(budget);
                let mut state = self.shared.state.lock();
                state.take(limit, &self.shared.config.table_priorities)
            };
            let rows = batch_rows(&batch);
            if rows == 0 {
                break;
            }
            written += self.write(&batch)?;
            budget = budget.saturating_sub(rows);
        }
        Ok(written)
    }

    fn commit(&self, batch: &Batch) -> Result<usize> {
        let for_writer = Arc::clone(batch);
        self.db
            .blocking_transaction(move |conn| write_batches(conn, &for_writer))
    }

    /// Writes `batch` in a transaction of its own on the writer, between groups: its outcome
    /// is its own, since no other request shares the transaction (in a group, another request's
    /// deferred constraint can fail the shared COMMIT). Used only while isolating rows.
    fn commit_alone(&self, batch: &Batch) -> Result<usize> {
        let for_writer = Arc::clone(batch);
        self.db.blocking_exclusive(move |conn: &mut Connection| {
            let transaction = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows = write_batches(&transaction, &for_writer)?;
            transaction.commit()?;
            Ok(rows)
        })
    }

    fn write(&mut self, batch: &Batch) -> Result<usize> {
        let started = Instant::now();
        let settled = match self.commit(batch) {
            Ok(rows) => Isolation {
                written: rows,
                ..Isolation::default()
            },
            Err(err) if isolatable(&err) => self.isolate(batch),
            Err(err) => Isolation {
                unsettled: items(batch),
                transient: Some(err),
                ..Isolation::default()
            },
        };
        let Isolation {
            written,
            rejected,
            last_rejection,
            unsettled,
            suspects: _,
            transient,
        } = settled;
        let mut state = self.shared.state.lock();
        state.complete_rows(written);
        state.reject_rows(rejected);
        if !unsettled.is_empty() {
            state.restore(&batch_of(&unsettled));
        }
        if last_rejection.is_some() {
            state.counters.last_rejection.clone_from(&last_rejection);
        }
        let outcome = match transient {
            None => {
                let counters = &mut state.counters;
                counters.flushes += 1;
                counters.last_flush_micros = Some(micros(started.elapsed()));
                counters.last_flush_unix_ms = Some(unix_ms(SystemTime::now()));
                // A rejection stays visible here until a later flush goes through cleanly.
                counters.last_error = last_rejection;
                self.backoff = new_backoff(&self.shared);
                self.retry_at = None;
                Ok(written)
            }
            Some(err) => {
                state.counters.failed_flushes += 1;
                state.counters.last_error = Some(err.to_string());
                let delay = self
                    .backoff
                    .next()
                    .unwrap_or(self.shared.config.retry_max_delay);
                self.retry_at = Some(Instant::now() + delay);
                Err(err)
            }
        };
        drop(state);
        self.shared.notify_room();
        outcome
    }

    /// The batch failed, perhaps because of some of its rows: writes it again in a transaction
    /// of its own, then in halves, and halves of those, until every failing row stands alone.
    /// Every good row is written, in order (halves keep it). A row that fails alone with a
    /// constraint error (or a value its column refuses) is moved to the rejected-rows table
    /// with its error. A row that fails alone with another SQL error is rejected only if other
    /// rows of the batch were written, which shows the error is the row's own (a malformed
    /// value under an expression index); when nothing could be written (a missing table), the
    /// error is taken as transient and the rows go back. So do all rows not settled yet when a
    /// transient error (busy, I/O) stops the isolation.
    fn isolate(&self, batch: &Batch) -> Isolation {
        let mut isolation = Isolation::default();
        self.settle(&items(batch), &mut isolation);
        for (item, err) in std::mem::take(&mut isolation.suspects) {
            if isolation.transient.is_some() {
                isolation.unsettled.push(item);
            } else if rejects_rows(&err) || isolation.written > 0 {
                self.reject(&item, err, &mut isolation);
            } else {
                isolation.unsettled.push(item);
                isolation.transient = Some(err);
            }
        }
        isolation
    }

    fn settle(&self, items: &[Item], isolation: &mut Isolation) {
        if isolation.transient.is_some() {
            return isolation.unsettled.extend_from_slice(items);
        }
        match self.commit_alone(&batch_of(items)) {
            Ok(rows) => isolation.written += rows,
            Err(err) if isolatable(&err) => {
                if let [only] = items {
                    isolation.suspects.push((only.clone(), err));
                } else {
                    let (left, right) = items.split_at(items.len() / 2);
                    self.settle(left, isolation);
                    self.settle(right, isolation);
                }
            }
            Err(err) => {
                isolation.transient = Some(err);
                isolation.unsettled.extend_from_slice(items);
            }
        }
    }

    fn reject(&self, item: &Item, err: Error, isolation: &mut Isolation) {
        let (table, _, entry) = item.clone();
        let message =
            format!("a row of table {table} was rejected and kept in _litehouse_rejected: {err}");
        tracing::warn!(%table, %err, "write buffer: row rejected, kept in _litehouse_rejected");
        match self
            .db
            .blocking_transaction(move |conn| record(conn, &table, &entry, &err))
        {
            Ok(()) => {
                isolation.rejected += 1;
                isolation.last_rejection = Some(message);
            }
            Err(store_err) => {
                isolation.transient = Some(store_err);
                isolation.unsettled.push(item.clone());
            }
        }
    }

    /// After `stop`'s drain: [`Error::Rejected`] if rows the database refused during the
    /// buffer's life are still in the rejected-rows table (not replayed or discarded through
    /// this buffer), so the caller cannot miss them.
    fn rejections(&self) -> Result<()> {
        let state = self.shared.state.lock();
        let counters = &state.counters;
        match counters.outstanding_rejections {
            0 => Ok(()),
            rows => Err(Error::Rejected {
                rows,
                message: counters.last_rejection.clone().unwrap_or_default(),
            }),
        }
    }

    /// Flushes until nothing is left, retrying failures until `stop_timeout` has passed.
    /// The buffer is already stopped, so no new rows arrive meanwhile.
    fn drain(&mut self) -> Result<usize> {
        let give_up = Instant::now() + self.shared.config.stop_timeout;
        let mut written = 0;
        loop {
            match self.flush_pending() {
                Ok(rows) => {
                    written += rows;
                    if self.shared.state.lock().rows() == 0 {
                        return Ok(written);
                    }
                }
                Err(err) => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Err(err);
                    }
                    let retry_at = self.retry_at.unwrap_or(now).min(give_up);
                    std::thread::sleep(retry_at.saturating_duration_since(now));
                }
            }
        }
    }
}

/// After a stop: answers whatever still arrives until the last handle is dropped. The thread
/// keeps its receiver until then, because a command queued on a channel whose receiver is gone
/// would never be answered (flume keeps it while a sender lives) and its caller would wait
/// forever.
fn refuse(command: Command) {
    match command {
        Command::Wake => {}
        Command::Flush(reply) => reply.send(Err(Error::Closed)),
        Command::Stop(reply) => reply.send(Ok(0)),
    }
}

/// How the rows of one flush ended up.
#[derive(Default)]
struct Isolation {
    written: usize,
    rejected: usize,
    last_rejection: Option<String>,
    /// Rows neither written nor rejected, because of `transient`; they go back to the buffer.
    unsettled: Vec<Item>,
    /// Rows that failed alone, with their errors, decided once the whole batch was tried.
    suspects: Vec<(Item, Error)>,
    transient: Option<Error>,
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}
