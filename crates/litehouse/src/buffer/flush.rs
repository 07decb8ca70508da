//! The flusher thread: turns pending rows into one engine transaction at a time.
//!
//! Only this thread flushes, so at most one batch is ever in flight and writes to a key reach
//! the database in the order they were made, even across a failed flush.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use flume::RecvTimeoutError;

use super::Shared;
use super::sql::write_batches;
use super::state::{Batch, batch_rows};
use crate::Database;
use crate::error::{Error, Result};
use crate::reply::Reply;

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
) -> Result<JoinHandle<()>> {
    let backoff = new_backoff(&shared);
    let flusher = Flusher {
        shared,
        db,
        backoff,
        retry_at: None,
    };
    let handle = std::thread::Builder::new()
        .name("litehouse-buffer".into())
        .spawn(move || {
            flusher.run(&commands);
            serve_stopped(&commands);
        })?;
    Ok(handle)
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
                Ok(Command::Stop(reply)) => return reply.send(self.drain()),
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

    fn write(&mut self, batch: &Batch) -> Result<usize> {
        let started = Instant::now();
        let for_writer = Arc::clone(batch);
        let result = self
            .db
            .blocking_transaction(move |conn| write_batches(conn, &for_writer));
        let mut state = self.shared.state.lock();
        let outcome = match result {
            Ok(_) => {
                let rows = state.complete(batch);
                let counters = &mut state.counters;
                counters.flushes += 1;
                counters.last_flush_micros = Some(micros(started.elapsed()));
                counters.last_flush_unix_ms = Some(unix_ms(SystemTime::now()));
                counters.last_error = None;
                self.backoff = new_backoff(&self.shared);
                self.retry_at = None;
                Ok(rows)
            }
            Err(err) => {
                state.restore(batch);
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
fn serve_stopped(commands: &flume::Receiver<Command>) {
    for command in commands.iter() {
        match command {
            Command::Wake => {}
            Command::Flush(reply) => reply.send(Err(Error::Closed)),
            Command::Stop(reply) => reply.send(Ok(0)),
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}
