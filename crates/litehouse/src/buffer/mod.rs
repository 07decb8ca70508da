//! The write buffer: coalescing writes in memory for background workers, flushed in batches.
//!
//! Workers that rewrite the same rows over and over (progress, status, counters) hand their
//! writes to a [`WriteBuffer`] instead of the database. Writes to one (table, key) coalesce
//! with the effect of applying them in order, and a flusher thread writes the survivors in one
//! engine transaction of multi-row statements, every `flush_interval` or as soon as
//! `flush_batch_size` rows are pending.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

mod config;
mod flush;
mod rejected;
mod row;
mod sql;
mod state;

pub use config::{BufferConfig, BufferStats};
pub use rejected::{REJECTED_TABLE, RejectedRow};
pub use row::Row;

use crate::Database;
use crate::error::{Error, Result};
use crate::reply;
use crate::worker::{Worker, wait_if_allowed};
use flush::Command;
use row::{KeyId, Op, normalize_name, split_key};
use state::{Refused, State, Write};

/// What the producers and the flusher share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Signalled whenever a flush ends (rows left memory or came back merged) or the buffer
    /// stops; blocking producers wait here without holding the lock.
    room: Condvar,
    /// The same signal for async producers.
    room_async: tokio::sync::Notify,
    config: BufferConfig,
}

impl Shared {
    fn notify_room(&self) {
        self.room.notify_all();
        self.room_async.notify_waiters();
    }

    /// True when a wake-up should turn into a flush. Clears the wake-up flag, so the next
    /// producer that fills a batch sends a new one.
    fn wants_flush(&self) -> bool {
        let mut state = self.state.lock();
        state.wake_sent = false;
        state.pending_rows >= self.config.flush_batch_size || state.waiting_producers > 0
    }
}

/// Coalescing write buffer for background workers, flushed to a [`Database`] in batches.
///
/// Cheap to clone; every clone feeds the same buffer. Writes return as soon as they are in
/// memory: they are durable only after a flush ([`force_flush`](WriteBuffer::force_flush),
/// [`stop`](WriteBuffer::stop), or the flusher's own schedule). Use it for data that can be
/// recomputed or is fine to lose in a crash, such as progress and status.
///
/// Upserts need a `PRIMARY KEY` or `UNIQUE` index on exactly the key columns.
///
/// Dropping the last handle stops the buffer like [`blocking_stop`](WriteBuffer::blocking_stop)
/// (waiting up to `stop_timeout` if flushes keep failing); call `stop` yourself to see its
/// result, and from async code, so that no runtime thread blocks.
///
/// ```
/// use litehouse::{BufferConfig, Config, Database, Row, WriteBuffer};
/// let db = Database::open_memory("doc-buffer", Config::default())?;
/// db.blocking_execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, status TEXT, progress REAL)", ())?;
/// let buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
/// for progress in 0..=100 {
///     let row = Row::new().set("id", 1).set("progress", progress as f64 / 100.0);
///     buffer.blocking_upsert("jobs", row, &["id"])?;
/// }
/// buffer.blocking_update("jobs", Row::new().set("id", 1).set("status", "done"), &["id"])?;
/// buffer.blocking_stop()?; // flushes what is left
/// assert_eq!(buffer.stats().buffered, 102); // 102 writes, coalesced in memory
/// let (status, progress): (String, f64) =
///     db.blocking_query_row("SELECT status, progress FROM jobs", (), |r| Ok((r.get(0)?, r.get(1)?)))?;
/// assert_eq!((status.as_str(), progress), ("done", 1.0));
/// # Ok::<(), litehouse::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct WriteBuffer {
    inner: Arc<Handle>,
}

#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    /// The database written to: to read rejected rows, and to tell its writer thread, where
    /// a blocking call would wait for itself.
    db: Database,
    /// Taken only in `Drop`, so the flusher sees the channel close and exits.
    commands: Option<flume::Sender<Command>>,
    flusher: Mutex<Option<Worker>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Wake => "Wake",
            Command::Flush(_) => "Flush",
            Command::Stop(_) => "Stop",
        })
    }
}

/// Which write a public method makes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Upsert,
    Update,
    Delete,
}

fn prepare(table: &str, row: Row, key_columns: &[&str], kind: Kind) -> Result<Write> {
    let table = normalize_name(table)?;
    let columns = row.into_columns()?;
    let names: Vec<String>;
    let key_columns: Vec<&str> = match kind {
        // A delete's row is nothing but its key.
        Kind::Delete => {
            names = columns.keys().cloned().collect();
            names.iter().map(String::as_str).collect()
        }
        Kind::Upsert | Kind::Update => key_columns.to_vec(),
    };
    let (key, values) = split_key(columns, &key_columns)?;
    let op = match kind {
        Kind::Upsert => Op::Upsert(values),
        Kind::Update if values.is_empty() => {
            return Err(Error::Parameter {
                message: "an update needs at least one column besides the key".into(),
            });
        }
        Kind::Update => Op::Update(values),
        Kind::Delete => Op::Delete,
    };
    Ok(Write {
        table,
        key_id: KeyId::new(&key),
        key,
        op,
    })
}

/// Keeps the count of waiting producers right when an async write is cancelled mid-wait.
struct WaitGuard<'a>(&'a Shared);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.state.lock().waiting_producers -= 1;
    }
}

impl WriteBuffer {
    /// Starts a buffer (and its flusher thread, `litehouse-buffer`) that writes to `db`.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config, [`Error::Parameter`] for a table name in
    /// `table_priorities` that is not an identifier, [`Error::Io`] if the thread cannot start.
    pub fn start(db: Database, config: BufferConfig) -> Result<WriteBuffer> {
        let config = config.validated()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            room_async: tokio::sync::Notify::new(),
            config,
        });
        // Bounded: producers only `try_send` wake-ups (one is enough), and flush and stop
        // callers wait for their reply anyway, so a few slots suffice.
        let (commands, receiver) = flume::bounded(64);
        let flusher = flush::spawn(Arc::clone(&shared), db.clone(), receiver)?;
        Ok(WriteBuffer {
            inner: Arc::new(Handle {
                shared,
                db,
                commands: Some(commands),
                flusher: Mutex::new(Some(flusher)),
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn commands(&self) -> &flume::Sender<Command> {
        self.inner.commands()
    }

    /// Tells the flusher to look at the buffer, unless a wake-up is already queued.
    fn wake_flusher(&self, state: &mut State) {
        if !state.wake_sent {
            state.wake_sent = true;
            // Full means the flusher is busy with earlier commands; they wake it as well.
            let _ = self.commands().try_send(Command::Wake);
        }
    }

    fn accepted(&self, state: &mut State) {
        if state.pending_rows >= self.shared().config.flush_batch_size {
            self.wake_flusher(state);
        }
    }

    fn try_write(&self, write: Write) -> Result<()> {
        let capacity = self.shared().config.max_buffer_size;
        let mut state = self.shared().state.lock();
        match state.offer(write, capacity) {
            Ok(()) => {
                self.accepted(&mut state);
                Ok(())
            }
            Err(Refused::Full(_)) => {
                state.counters.full_rejections += 1;
                self.wake_flusher(&mut state);
                Err(Error::BufferFull { capacity })
            }
            Err(Refused::Stopped) => Err(Error::Closed),
        }
    }

    fn blocking_write(&self, mut write: Write) -> Result<()> {
        self.inner.check_not_on_writer()?;
        let shared = self.shared();
        let capacity = shared.config.max_buffer_size;
        let mut state = shared.state.lock();
        let mut waiting = false;
        let result = loop {
            match state.offer(write, capacity) {
                Ok(()) => break Ok(()),
                Err(Refused::Stopped) => break Err(Error::Closed),
                Err(Refused::Full(back)) => {
                    write = *back;
                    if !waiting {
                        waiting = true;
                        state.waiting_producers += 1;
                        state.counters.producer_waits += 1;
                    }
                    self.wake_flusher(&mut state);
                    // Releases the lock while waiting: other producers coalesce, the
                    // flusher takes and returns batches, `try_` callers get their answer.
                    shared.room.wait(&mut state);
                }
            }
        };
        if waiting {
            state.waiting_producers -= 1;
        }
        if result.is_ok() {
            self.accepted(&mut state);
        }
        result
    }

    async fn write(&self, mut write: Write) -> Result<()> {
        let shared = self.shared();
        let capacity = shared.config.max_buffer_size;
        let mut guard = None;
        loop {
            // Registered before looking at the state, so a flush that ends in between still
            // wakes this producer.
            let notified = shared.room_async.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = shared.state.lock();
                match state.offer(write, capacity) {
                    Ok(()) => {
                        self.accepted(&mut state);
                        return Ok(());
                    }
                    Err(Refused::Stopped) => return Err(Error::Closed),
                    Err(Refused::Full(back)) => {
                        write = *back;
                        if guard.is_none() {
                            state.waiting_producers += 1;
                            state.counters.producer_waits += 1;
                        }
                        self.wake_flusher(&mut state);
                    }
                }
            }
            if guard.is_none() {
                guard = Some(WaitGuard(shared));
            }
            notified.await;
        }
    }

    /// Buffers an insert-or-update of `row`, identified by its `key_columns`; waits (without
    /// blocking other producers) while the buffer is full.
    ///
    /// Coalesces with earlier writes to the same key: later values win, columns not named keep
    /// what earlier writes set. Needs a `PRIMARY KEY` or `UNIQUE` index on `key_columns`.
    ///
    /// # Errors
    /// [`Error::Parameter`] for a name that is not an identifier, a missing or NULL key, or a
    /// value that cannot be bound; [`Error::Closed`] after [`stop`](WriteBuffer::stop).
    pub async fn upsert(&self, table: &str, row: Row, key_columns: &[&str]) -> Result<()> {
        self.write(prepare(table, row, key_columns, Kind::Upsert)?)
            .await
    }

    /// Blocking twin of [`upsert`](WriteBuffer::upsert). Do not call it on an async runtime's
    /// worker thread: it may wait for a flush.
    pub fn blocking_upsert(&self, table: &str, row: Row, key_columns: &[&str]) -> Result<()> {
        self.blocking_write(prepare(table, row, key_columns, Kind::Upsert)?)
    }

    /// Like [`upsert`](WriteBuffer::upsert) but never waits.
    ///
    /// # Errors
    /// [`Error::BufferFull`] when the buffer holds `max_buffer_size` rows and `row` does not
    /// coalesce into one of them; otherwise as [`upsert`](WriteBuffer::upsert).
    ///
    /// ```
    /// # use litehouse::{BufferConfig, Database, Row, WriteBuffer};
    /// # let db = Database::open_memory("doc-try-upsert", litehouse::Config::default())?;
    /// # db.blocking_execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, n INTEGER)", ())?;
    /// let config = BufferConfig { max_buffer_size: 1, ..BufferConfig::default() };
    /// let buffer = WriteBuffer::start(db, config)?;
    /// buffer.try_upsert("jobs", Row::new().set("id", 1).set("n", 1), &["id"])?;
    /// buffer.try_upsert("jobs", Row::new().set("id", 1).set("n", 2), &["id"])?; // coalesces
    /// let err = buffer.try_upsert("jobs", Row::new().set("id", 2), &["id"]).unwrap_err();
    /// assert!(err.is_buffer_full());
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn try_upsert(&self, table: &str, row: Row, key_columns: &[&str]) -> Result<()> {
        self.try_write(prepare(table, row, key_columns, Kind::Upsert)?)
    }

    /// Buffers an update of the columns of `row` besides `key_columns`, for the row with that
    /// key; it does nothing if no such row exists when it is applied. Waits while full.
    ///
    /// # Errors
    /// As [`upsert`](WriteBuffer::upsert); also [`Error::Parameter`] when `row` holds only
    /// the key.
    pub async fn update(&self, table: &str, row: Row, key_columns: &[&str]) -> Result<()> {
        self.write(prepare(table, row, key_columns, Kind::Update)?)
            .await
    }

    /// Blocking twin of [`update`](WriteBuffer::update).
    pub fn blocking_update(&self, table: &str, row: Row, key_columns: &[&str]) -> Result<()> {
        self.blocking_write(prepare(table, row, key_columns, Kind::Update)?)
    }

    /// Like [`update`](WriteBuffer::update) but returns [`Error::BufferFull`] instead of
    /// waiting.
    pub fn try_update(&self, table: &str, row: Row, key_columns: &[&str]) -> Result<()> {
        self.try_write(prepare(table, row, key_columns, Kind::Update)?)
    }

    /// Buffers a delete of the row whose key is `key` (every column of `key` is a key
    /// column). Earlier pending writes to that key are dropped; later ones apply after it.
    ///
    /// # Errors
    /// As [`upsert`](WriteBuffer::upsert).
    pub async fn delete(&self, table: &str, key: Row) -> Result<()> {
        self.write(prepare(table, key, &[], Kind::Delete)?).await
    }

    /// Blocking twin of [`delete`](WriteBuffer::delete).
    pub fn blocking_delete(&self, table: &str, key: Row) -> Result<()> {
        self.blocking_write(prepare(table, key, &[], Kind::Delete)?)
    }

    /// Like [`delete`](WriteBuffer::delete) but returns [`Error::BufferFull`] instead of
    /// waiting.
    pub fn try_delete(&self, table: &str, key: Row) -> Result<()> {
        self.try_write(prepare(table, key, &[], Kind::Delete)?)
    }

    /// Flushes every row pending now (one transaction per `flush_batch_size` rows) and
    /// returns how many rows were written.
    ///
    /// # Errors
    /// The error of the failed flush; its rows stay buffered and are retried.
    /// [`Error::Closed`] after [`stop`](WriteBuffer::stop).
    pub async fn force_flush(&self) -> Result<usize> {
        let (reply, receiver) = reply::asynchronous();
        let command = Command::Flush(reply);
        self.commands()
            .send_async(command)
            .await
            .map_err(|_| Error::Closed)?;
        reply::wait(receiver).await
    }

    /// Blocking twin of [`force_flush`](WriteBuffer::force_flush).
    pub fn blocking_force_flush(&self) -> Result<usize> {
        self.inner.check_not_on_writer()?;
        let (reply, wait) = reply::blocking();
        let command = Command::Flush(reply);
        self.commands().send(command).map_err(|_| Error::Closed)?;
        wait()
    }

    /// Refuses new writes (they get [`Error::Closed`], waiting producers too), flushes every
    /// buffered row, stops the flusher, and returns how many rows it wrote. Stopping twice is
    /// fine.
    ///
    /// # Errors
    /// When flushes keep failing for `stop_timeout`, the last error; the rows not written are
    /// still counted in [`stats`](WriteBuffer::stats) and are lost with the buffer.
    /// [`Error::Rejected`] when every row was flushed but rows the database refused are still
    /// in the rejected-rows table (see [`rejected`](WriteBuffer::rejected)).
    pub async fn stop(&self) -> Result<usize> {
        self.begin_stop();
        let (reply, receiver) = reply::asynchronous();
        if self
            .commands()
            .send_async(Command::Stop(reply))
            .await
            .is_err()
        {
            return Ok(0);
        }
        self.stop_outcome(reply::wait(receiver).await)
    }

    /// Blocking twin of [`stop`](WriteBuffer::stop).
    pub fn blocking_stop(&self) -> Result<usize> {
        self.inner.check_not_on_writer()?;
        self.inner.stop_and_wait()
    }

    /// Rows the database refused for good (at most `limit`, oldest first), kept in the
    /// [`REJECTED_TABLE`] of the buffer's database with their errors.
    ///
    /// A flush that fails with a constraint error is split until the failing rows stand
    /// alone: every good row is written, and each refused one is moved there (counted in
    /// [`BufferStats::rejected`], shown in [`BufferStats::last_error`], and reported by
    /// [`stop`](WriteBuffer::stop) as [`Error::Rejected`] while any of them has not been
    /// replayed or discarded through this buffer).
    ///
    /// ```
    /// use litehouse::{BufferConfig, Config, Database, Row, WriteBuffer};
    /// let db = Database::open_memory("doc-rejected", Config::default())?;
    /// db.blocking_execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, owner TEXT NOT NULL)", ())?;
    /// let buffer = WriteBuffer::start(db.clone(), BufferConfig::default())?;
    /// buffer.blocking_upsert("jobs", Row::new().set("id", 1).set("owner", "ann"), &["id"])?;
    /// buffer.blocking_upsert("jobs", Row::new().set("id", 2).set("owner", None::<String>), &["id"])?;
    /// assert_eq!(buffer.blocking_force_flush()?, 1); // the good row
    /// let rejected = buffer.blocking_rejected(10)?;
    /// assert_eq!(rejected[0].key["id"], 2);
    /// assert!(rejected[0].error.contains("NOT NULL"));
    /// // Fix the row and put it back into the buffer:
    /// db.blocking_execute("UPDATE _litehouse_rejected SET write = json_set(write, '$.upsert.owner', 'bob')", ())?;
    /// assert_eq!(buffer.blocking_retry_rejected(&[rejected[0].id])?, 1);
    /// assert_eq!(buffer.blocking_stop()?, 1); // the replayed row; nothing left unresolved
    /// let owners: i64 = db.blocking_query_row("SELECT count(*) FROM jobs", (), |r| r.get(0))?;
    /// assert_eq!(owners, 2);
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    ///
    /// # Errors
    /// The database's error reading the table.
    pub async fn rejected(&self, limit: usize) -> Result<Vec<RejectedRow>> {
        self.inner
            .db
            .read(move |conn| rejected::list(conn, limit))
            .await
    }

    /// Blocking twin of [`rejected`](WriteBuffer::rejected).
    pub fn blocking_rejected(&self, limit: usize) -> Result<Vec<RejectedRow>> {
        self.inner
            .db
            .blocking_read(|conn| rejected::list(conn, limit))
    }

    /// Puts the rejected rows `ids` back into the buffer (as they are in the table now, so
    /// fix them there first, or replay them after fixing the schema) and removes them from the
    /// table. Returns how many were put back; ids that are not there are skipped.
    ///
    /// # Errors
    /// The database's error; [`Error::Parameter`] for a stored row that no longer holds
    /// column values; [`Error::Closed`] after [`stop`](WriteBuffer::stop).
    pub async fn retry_rejected(&self, ids: &[i64]) -> Result<usize> {
        let wanted = ids.to_vec();
        let rows = self
            .inner
            .db
            .read(move |conn| rejected::by_ids(conn, &wanted))
            .await?;
        let mut replayed = Vec::new();
        for row in &rows {
            for write in replay(row)? {
                self.write(write).await?;
            }
            replayed.push(row.id);
        }
        self.discard_rejected(&replayed).await
    }

    /// Blocking twin of [`retry_rejected`](WriteBuffer::retry_rejected).
    pub fn blocking_retry_rejected(&self, ids: &[i64]) -> Result<usize> {
        self.inner.check_not_on_writer()?;
        let rows = self
            .inner
            .db
            .blocking_read(|conn| rejected::by_ids(conn, ids))?;
        let mut replayed = Vec::new();
        for row in &rows {
            for write in replay(row)? {
                self.blocking_write(write)?;
            }
            replayed.push(row.id);
        }
        self.blocking_discard_rejected(&replayed)
    }

    /// Deletes the rejected rows `ids` from the table; returns how many were there.
    ///
    /// # Errors
    /// The database's error.
    pub async fn discard_rejected(&self, ids: &[i64]) -> Result<usize> {
        let ids = ids.to_vec();
        let removed = self
            .inner
            .db
            .transaction(move |conn| rejected::remove(conn, &ids))
            .await?;
        Ok(self.settled_rejections(removed))
    }

    /// Blocking twin of [`discard_rejected`](WriteBuffer::discard_rejected).
    pub fn blocking_discard_rejected(&self, ids: &[i64]) -> Result<usize> {
        let ids = ids.to_vec();
        let removed = self
            .inner
            .db
            .blocking_transaction(move |conn| rejected::remove(conn, &ids))?;
        Ok(self.settled_rejections(removed))
    }

    /// Rows removed from the rejected-rows table no longer need reporting by `stop`.
    fn settled_rejections(&self, removed: usize) -> usize {
        let mut state = self.shared().state.lock();
        let outstanding = &mut state.counters.outstanding_rejections;
        *outstanding = outstanding.saturating_sub(removed as u64);
        removed
    }

    fn begin_stop(&self) {
        self.inner.begin_stop();
    }

    fn stop_outcome(&self, result: Result<usize>) -> Result<usize> {
        match result {
            // The flusher had already exited for an earlier stop.
            Err(Error::Closed) if self.shared().state.lock().rows() == 0 => Ok(0),
            other => other,
        }
    }

    /// A snapshot of the buffer's counters.
    pub fn stats(&self) -> BufferStats {
        let shared = self.shared();
        let state = shared.state.lock();
        let counters = &state.counters;
        BufferStats {
            pending: state.pending_rows,
            pending_by_table: state.pending_by_table(),
            in_flight: state.in_flight_rows,
            peak_rows: counters.peak_rows,
            max_buffer_size: shared.config.max_buffer_size,
            waiting_producers: state.waiting_producers,
            buffered: counters.buffered,
            coalesced: counters.coalesced,
            flushed: counters.flushed,
            flushes: counters.flushes,
            failed_flushes: counters.failed_flushes,
            producer_waits: counters.producer_waits,
            full_rejections: counters.full_rejections,
            rejected: counters.rejected,
            last_flush_unix_ms: counters.last_flush_unix_ms,
            last_flush_micros: counters.last_flush_micros,
            last_error: counters.last_error.clone(),
            stopped: state.stopped,
        }
    }
}

/// The writes that replay a rejected row, in the order they were made.
fn replay(row: &RejectedRow) -> Result<Vec<Write>> {
    let key_columns: Vec<&str> = row.key.keys().map(String::as_str).collect();
    let empty = serde_json::Map::new();
    let mut writes = Vec::new();
    if row.delete {
        writes.push(prepare(
            &row.table,
            rejected::to_row(&empty, &row.key)?,
            &[],
            Kind::Delete,
        )?);
    }
    if let Some(update) = &row.update {
        let update = rejected::to_row(update, &row.key)?;
        writes.push(prepare(&row.table, update, &key_columns, Kind::Update)?);
    }
    if let Some(upsert) = &row.upsert {
        let upsert = rejected::to_row(upsert, &row.key)?;
        writes.push(prepare(&row.table, upsert, &key_columns, Kind::Upsert)?);
    }
    Ok(writes)
}

impl Handle {
    /// A blocking buffer call from the database's writer thread (inside a transaction
    /// closure) could wait for a flush, which needs that same thread: it would never return.
    fn check_not_on_writer(&self) -> Result<()> {
        if self.db.is_writer_thread() {
            return Err(Error::Misuse {
                message: "a transaction closure called a blocking method of a write buffer on \
                          its own database, which would wait for the writer it runs on; use the \
                          try_ methods there, or call it outside the closure"
                    .into(),
            });
        }
        Ok(())
    }

    fn commands(&self) -> &flume::Sender<Command> {
        self.commands
            .as_ref()
            .expect("the sender is only taken in drop")
    }

    fn begin_stop(&self) {
        self.shared.state.lock().stopped = true;
        self.shared.notify_room();
    }

    fn stop_and_wait(&self) -> Result<usize> {
        self.begin_stop();
        let (reply, wait) = reply::blocking();
        if self.commands().send(Command::Stop(reply)).is_err() {
            return Ok(0);
        }
        match wait() {
            Err(Error::Closed) if self.shared.state.lock().rows() == 0 => Ok(0),
            other => other,
        }
    }

    fn join(&self) {
        if let Some(mut flusher) = self.flusher.lock().take() {
            flusher.join();
        }
    }
}

impl Drop for Handle {
    /// The last handle flushes what is left, like [`WriteBuffer::blocking_stop`]; call
    /// `stop` yourself to see its result.
    ///
    /// It waits where a thread may wait (a plain thread; a multi-threaded tokio runtime, inside
    /// `block_in_place`). On the database's writer thread, a current-thread runtime or in a
    /// `LocalSet` the stop is queued without waiting and the flusher drains the buffer on its
    /// own: a process that exits right then loses what was not flushed, so call `stop().await`.
    fn drop(&mut self) {
        if !self.db.is_writer_thread() && wait_if_allowed(|| self.stop_and_join()) {
            return;
        }
        self.begin_stop();
        let pending = self.shared.state.lock().rows();
        if pending > 0 {
            tracing::warn!(
                pending,
                "the last WriteBuffer handle was dropped where it cannot wait; the flusher \
                 writes the pending rows on its own (call stop().await to wait for them)"
            );
        }
        let (reply, _) = reply::blocking();
        let _ = self.commands().try_send(Command::Stop(reply));
        self.commands = None;
        if let Some(mut flusher) = self.flusher.lock().take() {
            flusher.detach();
        }
    }
}

impl Handle {
    fn stop_and_join(&mut self) {
        if !self.shared.state.lock().stopped {
            let _ = self.stop_and_wait();
        }
        // Closing the channel ends the flusher's wait for late commands.
        self.commands = None;
        self.join();
    }
}

#[cfg(test)]
mod tests;
