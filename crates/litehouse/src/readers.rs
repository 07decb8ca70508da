//! Read-only connections: a pool that blocking callers borrow on their own thread, and reader
//! threads that serve async callers from the same pool.

use std::ops::Deref;
use std::sync::Arc;
use std::thread::JoinHandle;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;
use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;

use crate::error::{Error, Result};

/// A read job for a reader thread. It gets `None` once the database is closed and must then
/// reply with `Closed`.
pub(crate) type ReadJob = Box<dyn FnOnce(Option<&PooledConnection<'_>>) + Send>;

/// A reader connection with the index of its statistics slot.
#[derive(Debug)]
pub(crate) struct ReaderConnection {
    pub(crate) conn: Connection,
    pub(crate) slot: usize,
}

/// Idle connections in a lock-free queue, so concurrent readers do not serialize on a mutex
/// to borrow and return them; the mutex and condvar are only for waiting when none is idle.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: ArrayQueue<ReaderConnection>,
    closed: AtomicBool,
    waiters: AtomicUsize,
    wait_lock: Mutex<()>,
    available: Condvar,
}

/// A borrowed reader connection; returned to the pool on drop.
#[derive(Debug)]
pub(crate) struct PooledConnection<'a> {
    pool: &'a Pool,
    connection: Option<ReaderConnection>,
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
        if let Some(connection) = self.connection.take() {
            self.pool.give_back(connection);
        }
    }
}

impl Pool {
    fn new(connections: Vec<Connection>) -> Pool {
        let idle = ArrayQueue::new(connections.len().max(1));
        for (slot, conn) in connections.into_iter().enumerate() {
            // The queue was sized for exactly these connections.
            let _ = idle.push(ReaderConnection { conn, slot });
        }
        Pool {
            idle,
            closed: AtomicBool::new(false),
            waiters: AtomicUsize::new(0),
            wait_lock: Mutex::new(()),
            available: Condvar::new(),
        }
    }

    fn take(&self) -> Result<Option<PooledConnection<'_>>> {
        // SeqCst on `closed`, `waiters` and the queue: a returner that sees no waiter must be
        // seen by the waiter's next pop (see `give_back`).
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed);
        }
        Ok(self.idle.pop().map(|connection| PooledConnection {
            pool: self,
            connection: Some(connection),
        }))
    }

    /// Borrows a connection, waiting until one is free.
    pub(crate) fn checkout(&self) -> Result<PooledConnection<'_>> {
        if let Some(conn) = self.take()? {
            return Ok(conn);
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let mut guard = self.wait_lock.lock();
        let result = loop {
            match self.take() {
                Ok(Some(conn)) => break Ok(conn),
                Ok(None) => self.available.wait(&mut guard),
                Err(err) => break Err(err),
            }
        };
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn give_back(&self, connection: ReaderConnection) {
        if self.closed.load(Ordering::SeqCst) {
            // Closing drops connections as they come back.
            return;
        }
        // Never full: only connections taken from this queue come back to it.
        let _ = self.idle.push(connection);
        // A waiter registers before its last look at the queue, so either it sees this
        // connection or we see it waiting and wake it (under the lock, so the wake-up cannot
        // fall between its look and its wait).
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.wait_lock.lock();
            self.available.notify_one();
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        while self.idle.pop().is_some() {}
        let _guard = self.wait_lock.lock();
        self.available.notify_all();
    }
}

/// The pool plus the async reader threads.
#[derive(Debug)]
pub(crate) struct Readers {
    pub(crate) pool: Arc<Pool>,
    sender: Option<flume::Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl Readers {
    pub(crate) fn spawn(connections: Vec<Connection>, queue_capacity: usize) -> Result<Readers> {
        let threads_wanted = connections.len();
        let pool = Arc::new(Pool::new(connections));
        let (sender, receiver) = flume::bounded::<ReadJob>(queue_capacity);
        let mut threads = Vec::with_capacity(threads_wanted);
        for index in 0..threads_wanted {
            let pool = Arc::clone(&pool);
            let receiver = receiver.clone();
            let thread = std::thread::Builder::new()
                .name(format!("litehouse-reader-{index}"))
                .spawn(move || reader_loop(&pool, &receiver))?;
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
        let current = std::thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
    }
}

fn reader_loop(pool: &Pool, receiver: &flume::Receiver<ReadJob>) {
    while let Ok(job) = receiver.recv() {
        match pool.checkout() {
            Ok(conn) => job(Some(&conn)),
            Err(_) => job(None),
        }
    }
}
