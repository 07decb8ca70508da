//! Read-only connections: a pool that blocking callers borrow on their own thread, and reader
//! threads that serve async callers from the same pool.

use std::ops::Deref;
use std::sync::Arc;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::error::{Error, Result};
use crate::worker::{Worker, contain};

/// A read job for a reader thread. It gets `None` once the database is closed and must then
/// reply with `Closed`.
pub(crate) type ReadJob = Box<dyn FnOnce(Option<&PooledConnection<'_>>) + Send>;

/// A reader connection with the index of its statistics slot.
#[derive(Debug)]
pub(crate) struct ReaderConnection {
    pub(crate) conn: Connection,
    pub(crate) slot: usize,
}

/// Reader connections, each in its own slot while idle. A thread goes back to the slot it used
/// last, so a single reader keeps reusing one connection with warm caches (a FIFO queue would
/// rotate it through every connection), and concurrent readers do not share a lock: each slot
/// is only touched by whoever takes or returns its connection. The mutex and condvar are only
/// for waiting when every connection is busy.
#[derive(Debug)]
pub(crate) struct Pool {
    slots: Vec<CachePadded<Mutex<Option<ReaderConnection>>>>,
    closed: AtomicBool,
    waiters: AtomicUsize,
    wait_lock: Mutex<()>,
    available: Condvar,
}

/// Keeps a value on its own cache lines, so threads using neighbouring slots do not slow each
/// other down by writing to the same line (false sharing).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

thread_local! {
    /// The slot this thread used last (a hint; any pool, taken modulo its size).
    static PREFERRED_SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    /// The address of the pool this thread holds a connection from (0 for none): a read
    /// nested inside a read of the same database would wait for its own connection.
    static HELD_POOL: Cell<usize> = const { Cell::new(0) };
}

/// Spreads threads without a preference over different starting slots.
static NEXT_START: AtomicUsize = AtomicUsize::new(0);

/// A borrowed reader connection; returned to the pool on drop.
#[derive(Debug)]
pub(crate) struct PooledConnection<'a> {
    pool: &'a Pool,
    connection: Option<ReaderConnection>,
    /// What `HELD_POOL` was before this checkout, restored on drop.
    previously_held: usize,
}

impl PooledConnection<'_> {
    pub(crate) fn slot(&self) -> usize {
        self.connection
            .as_ref()
            .map_or(0, |connection| connection.slot)
    }
}

impl Deref for PooledConnection<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self
            .connection
            .as_ref()
            .expect("a pooled connection is only taken out in drop")
            .conn
    }
}

impl Drop for PooledConnection<'_> {
    fn drop(&mut self) {
        HELD_POOL.with(|held| held.set(self.previously_held));
        if let Some(connection) = self.connection.take() {
            self.pool.give_back(connection);
        }
    }
}

impl Pool {
    fn new(connections: Vec<Connection>) -> Pool {
        let slots = connections
            .into_iter()
            .enumerate()
            .map(|(slot, conn)| CachePadded(Mutex::new(Some(ReaderConnection { conn, slot }))))
            .collect();
        Pool {
            slots,
            closed: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            wait_lock: Mutex::new(()),
            available: Condvar::new(),
        }
    }

    /// Takes an idle connection, trying this thread's last slot first.
    fn take(&self) -> Result<Option<PooledConnection<'_>>> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        let count = self.slots.len();
        let start = PREFERRED_SLOT.with(|preferred| {
            preferred.get().unwrap_or_else(|| {
                // Relaxed: only a spreading hint, no data is published through it.
                NEXT_START.fetch_add(1, Ordering::Relaxed)
            })
        });
        for offset in 0..count {
            let index = (start + offset) % count;
            let Some(mut slot) = self.slots[index].0.try_lock() else {
                continue;
            };
            if let Some(connection) = slot.take() {
                PREFERRED_SLOT.with(|preferred| preferred.set(Some(index)));
                let previously_held = HELD_POOL.with(|held| held.replace(self.address()));
                return Ok(Some(PooledConnection {
                    pool: self,
                    connection: Some(connection),
                    previously_held,
                }));
            }
        }
        Ok(None)
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Borrows a connection, waiting until one is free.
    pub(crate) fn checkout(&self) -> Result<PooledConnection<'_>> {
        if HELD_POOL.with(Cell::get) == self.address() {
            return Err(Error::Misuse {
                message: "a read closure called a read method of its own database, which can \
                          wait forever for a connection it holds itself; use the connection \
                          passed to the closure instead"
                    .into(),
            });
        }
        if let Some(conn) = self.take()? {
            return Ok(conn);
        }
        // Register as a waiter before the last look, and fence, so a connection returned
        // concurrently is either seen by that look or its returner sees us and wakes us.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let mut guard = self.wait_lock.lock();
        let result = loop {
            match self.take() {
                Ok(Some(conn)) => break Ok(conn),
                // The timeout is a backstop only; wake-ups come from `give_back`.
                Ok(None) => drop(self.available.wait_for(&mut guard, WAIT_BACKSTOP)),
                Err(err) => break Err(err),
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn give_back(&self, connection: ReaderConnection) {
        if !connection.conn.is_autocommit() {
            // A closure began a transaction and did not end it (an error, a panic): end it
            // here, or the next reader would see that old snapshot and pin the WAL.
            if let Err(err) = connection.conn.execute_batch("ROLLBACK") {
                tracing::warn!(%err, "could not roll back a reader's open transaction");
            }
        }
        if self.closed.load(Ordering::SeqCst) {
            // Closing drops connections as they come back.
            return;
        }
        let index = connection.slot;
        *self.slots[index].0.lock() = Some(connection);
        if self.closed.load(Ordering::SeqCst) {
            // Closed while we were putting it back: close() may have emptied the slots already.
            drop(self.slots[index].0.lock().take());
        }
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            // Under the lock, so the wake-up cannot fall between a waiter's look and its wait.
            let _guard = self.wait_lock.lock();
            self.available.notify_one();
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for slot in &self.slots {
            drop(slot.0.lock().take());
        }
        let _guard = self.wait_lock.lock();
        self.available.notify_all();
    }
}

/// Makes a reader connection refuse every statement that could write, whatever the closure
/// running on it tries: `query_only` alone is a pragma that user code can turn off again.
///
/// Denied while compiling a statement (the caller gets [`Error::ReadOnly`]): INSERT, UPDATE,
/// DELETE and every CREATE, DROP and ALTER, temporary tables, views and triggers included
/// (they live on this connection only, but a reader is for reading); ATTACH and DETACH;
/// REINDEX and ANALYZE; and every PRAGMA that sets something or acts (`query_only = OFF`,
/// `journal_mode = ...`, `optimize`, `wal_checkpoint`, `incremental_vacuum`). Pragmas that
/// only report (`table_info(t)`, `integrity_check`, `user_version`, ...) and BEGIN, COMMIT,
/// ROLLBACK and SAVEPOINT (for a consistent snapshot over several statements) are allowed.
pub(crate) fn install_read_guard(conn: &mut Connection) -> Result<()> {
    conn.authorizer(Some(|context: AuthContext<'_>| {
        if reader_may(&context.action) {
            Authorization::Allow
        } else {
            Authorization::Deny
        }
    }))?;
    Ok(())
}

/// Pragmas that take an argument and still only read.
const READING_PRAGMAS_WITH_ARGUMENT: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// Pragmas that act when run without an argument.
const ACTING_PRAGMAS: &[&str] = &[
    "incremental_vacuum",
    "optimize",
    "shrink_memory",
    "wal_checkpoint",
];

fn reader_may(action: &AuthAction<'_>) -> bool {
    match action {
        AuthAction::Select
        | AuthAction::Read { .. }
        | AuthAction::Function { .. }
        | AuthAction::Recursive
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. } => true,
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => {
            let name = pragma_name.to_ascii_lowercase();
            match pragma_value {
                None => !ACTING_PRAGMAS.contains(&name.as_str()),
                Some(_) => READING_PRAGMAS_WITH_ARGUMENT.contains(&name.as_str()),
            }
        }
        _ => false,
    }
}

/// The read guard's refusals are SQLITE_AUTH errors; the caller gets them as
/// [`Error::ReadOnly`], like a write refused by `query_only`.
pub(crate) fn refused_as_read_only<T>(result: Result<T>) -> Result<T> {
    result.map_err(|err| match err.extended_code() {
        Some(code) if code & 0xff == rusqlite::ffi::SQLITE_AUTH => Error::ReadOnly {
            message: format!(
                "a reader connection refused a statement that writes or changes settings ({err})"
            ),
        },
        _ => err,
    })
}

const WAIT_BACKSTOP: std::time::Duration = std::time::Duration::from_millis(50);

/// The pool plus the async reader threads.
#[derive(Debug)]
pub(crate) struct Readers {
    pub(crate) pool: Arc<Pool>,
    sender: Option<flume::Sender<ReadJob>>,
    threads: Vec<Worker>,
}

impl Readers {
    pub(crate) fn spawn(connections: Vec<Connection>, queue_capacity: usize) -> Result<Readers> {
        let threads_wanted = connections.len();
        let pool = Arc::new(Pool::new(connections));
        let (sender, receiver) = flume::bounded::<ReadJob>(queue_capacity);
        let mut threads = Vec::with_capacity(threads_wanted);
        for index in 0..threads_wanted {
            let pool = Arc::clone(&pool);
            let thread = Worker::spawn(
                &format!("lh-reader-{index}"),
                receiver.clone(),
                move |receiver| reader_loop(&pool, receiver),
                |job: ReadJob| job(None),
            )?;
            threads.push(thread);
        }
        Ok(Readers {
            pool,
            sender: Some(sender),
            threads,
        })
    }

    pub(crate) async fn send_async(&self, job: ReadJob) -> Result<()> {
        let sender = self.sender.as_ref().ok_or(Error::Closed)?;
        sender.send_async(job).await.map_err(|_| Error::Closed)
    }

    /// Closes every connection; later reads get `Closed`.
    pub(crate) fn close(&self) {
        self.pool.close();
    }

    /// Disconnects the async queue and joins the reader threads.
    pub(crate) fn join(&mut self) {
        self.sender = None;
        for mut thread in self.threads.drain(..) {
            thread.join();
        }
    }

    /// Disconnects the async queue and lets the reader threads end on their own.
    pub(crate) fn detach(&mut self) {
        self.sender = None;
        for mut thread in self.threads.drain(..) {
            thread.detach();
        }
    }
}

fn reader_loop(pool: &Pool, receiver: &flume::Receiver<ReadJob>) {
    while let Ok(job) = receiver.recv() {
        // A job contains its user closure's panics and replies itself; this only keeps a
        // reader thread alive whatever happens, so async reads never wait for a dead one.
        contain(|| match pool.checkout() {
            Ok(conn) => job(Some(&conn)),
            Err(_) => job(None),
        });
    }
}
