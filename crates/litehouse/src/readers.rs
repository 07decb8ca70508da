//! Read-only connections: a pool that blocking callers borrow on their own thread, and reader
//! threads that serve async callers from the same pool.

use std::ops::Deref;
use std::sync::Arc;
use std::thread::JoinHandle;

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

#[derive(Debug)]
struct PoolState {
    idle: Vec<ReaderConnection>,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct Pool {
    state: Mutex<PoolState>,
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
        self.connection.as_ref().map_or(0, |connection| connection.slot)
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
        let idle = connections
            .into_iter()
            .enumerate()
            .map(|(slot, conn)| ReaderConnection { conn, slot })
            .collect();
        Pool {
            state: Mutex::new(PoolState { idle, closed: false }),
            available: Condvar::new(),
        }
    }

    /// Borrows a connection, waiting until one is free.
    pub(crate) fn checkout(&self) -> Result<PooledConnection<'_>> {
        let mut state = self.state.lock();
        loop {
            if state.closed {
                return Err(Error::Closed);
            }
            if let Some(connection) = state.idle.pop() {
                return Ok(PooledConnection {
                    pool: self,
                    connection: Some(connection),
                });
            }
            self.available.wait(&mut state);
        }
    }

    fn give_back(&self, connection: ReaderConnection) {
        let mut state = self.state.lock();
        if state.closed {
            // Closing drops connections as they come back.
            return;
        }
        state.idle.push(connection);
        drop(state);
        self.available.notify_one();
    }

    fn close(&self) {
        let idle = {
            let mut state = self.state.lock();
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        drop(idle);
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
