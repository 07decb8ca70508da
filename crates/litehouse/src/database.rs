//! `Database`: opening, closing, and handing work to the writer and the readers.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rusqlite::{Connection, OpenFlags};

use crate::config::{Config, Role};
use crate::error::{Error, Result};
use crate::readers::{ReadJob, Readers, install_read_guard, refused_as_read_only};
use crate::reply::{self, Reply};
use crate::retry::BusyRetry;
use crate::stats::{OpKind, StatsCollector};
use crate::worker::{catch, wait_if_allowed};
use crate::writer::{ClosureJob, ExclusiveJob, Message, WriterContext, WriterHandle};

/// A SQLite database with one writer thread (group commit) and a pool of readers.
///
/// Cheap to clone: every clone is a handle to the same database. Every operation exists
/// twice with the same semantics: `name(..).await` for async callers and `blocking_name(..)`
/// for threads (like tokio's `send`/`blocking_send`).
///
/// ```
/// use litehouse::{Config, Database, params};
/// let db = Database::open_memory("doc-database", Config::default())?;
/// db.blocking_execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, status TEXT)", ())?;
/// db.blocking_execute("INSERT INTO jobs(status) VALUES (?1)", params!["queued"])?;
/// let status: String = db.blocking_query_row("SELECT status FROM jobs", (), |row| row.get(0))?;
/// assert_eq!(status, "queued");
/// # Ok::<(), litehouse::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Database {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) writer: WriterHandle,
    pub(crate) readers: Readers,
    pub(crate) stats: Arc<StatsCollector>,
    pub(crate) config: Config,
    pub(crate) location: Location,
    closed: AtomicBool,
}

/// Where a database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file on disk.
    File(PathBuf),
    /// A named in-memory database, shared by every connection of this process that opens
    /// the same name, and gone when the last one closes.
    Memory(String),
}

impl Location {
    fn open_connection(&self) -> Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let opened = match self {
            Location::File(path) => Connection::open_with_flags(path, flags),
            // The memdb VFS with a name starting in "/" is shared by every connection of the
            // process and has real locking, unlike shared-cache memory databases whose table
            // locks fail at once with SQLITE_LOCKED instead of waiting.
            Location::Memory(name) => Connection::open_with_flags(
                format!("file:/litehouse-{name}?vfs=memdb"),
                flags | OpenFlags::SQLITE_OPEN_URI,
            ),
        };
        opened.map_err(|err| Error::Io {
            extended_code: err
                .sqlite_error()
                .map_or(0, |failure| failure.extended_code),
            message: format!(
                "could not open {self}: {err}; check that the directory exists and is writable"
            ),
            source: Some(std::sync::Arc::new(err)),
        })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Memory(name) => write!(f, "memory:{name}"),
        }
    }
}

impl Database {
    /// Opens (creating if needed) the database file at `path`, switches it to WAL, and starts
    /// the writer thread and `config.readers` reader connections.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid config, [`Error::Io`] when the file cannot be opened.
    ///
    /// ```no_run
    /// use litehouse::{Config, Database, Profile};
    /// let db = Database::open("app.db", Config { profile: Profile::Durable, ..Config::default() })?;
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Database> {
        Database::open_at(Location::File(path.as_ref().to_path_buf()), config)
    }

    /// Opens the in-memory database called `name` (ASCII letters, digits, `-`, `_`).
    /// Every `Database` of this process opened with the same name shares its data.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid name or config.
    pub fn open_memory(name: &str, config: Config) -> Result<Database> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(Error::Config {
                message: format!(
                    "invalid memory database name {name:?}: use letters, digits, - and _"
                ),
            });
        }
        Database::open_at(Location::Memory(name.to_owned()), config)
    }

    fn open_at(location: Location, config: Config) -> Result<Database> {
        config.validate()?;
        let in_memory = matches!(location, Location::Memory(_));
        let writer_conn = location.open_connection()?;
        config.apply(&writer_conn, Role::Writer, in_memory)?;
        // Readers open only after the writer has switched the file to WAL.
        let reader_conns = (0..config.readers)
            .map(|_| {
                let mut conn = location.open_connection()?;
                config.apply(&conn, Role::Reader, in_memory)?;
                install_read_guard(&mut conn)?;
                Ok(conn)
            })
            .collect::<Result<Vec<_>>>()?;
        let stats = Arc::new(StatsCollector::new(config.readers));
        let context = WriterContext {
            max_group_size: config.max_group_size,
            gather_window: config.gather_window,
            retry: BusyRetry {
                budget: config.busy_budget,
            },
            stats: Arc::clone(&stats),
        };
        let writer = WriterHandle::spawn(writer_conn, config.queue_capacity, context)?;
        let readers = Readers::spawn(reader_conns, config.queue_capacity)?;
        Ok(Database {
            inner: Arc::new(Inner {
                writer,
                readers,
                stats,
                config,
                location,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// Where this database lives.
    pub fn location(&self) -> &Location {
        &self.inner.location
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// True once [`close`](Database::close) has run.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Finishes every write queued so far, closes all connections, and makes every later
    /// call return [`Error::Closed`]. Closing twice is fine. Dropping the last handle closes
    /// too.
    pub fn blocking_close(&self) -> Result<()> {
        self.check_not_on_writer()?;
        self.inner.mark_closed();
        // Every closer queues its own Shutdown and waits for it: the queue is FIFO, so even a
        // second, concurrent close returns only once everything queued before has finished.
        let (reply, wait) = reply::blocking();
        self.inner.writer.send(Message::Shutdown(reply))?;
        let result = wait();
        self.inner.readers.close();
        result
    }

    /// Async twin of [`blocking_close`](Database::blocking_close). If the future is dropped
    /// before it finishes, the database still refuses new work, and the last handle's drop
    /// completes the shutdown.
    pub async fn close(&self) -> Result<()> {
        self.inner.mark_closed();
        let (reply, receiver) = reply::asynchronous();
        self.inner
            .writer
            .send_async(Message::Shutdown(reply))
            .await?;
        let result = reply::wait(receiver).await;
        self.inner.readers.close();
        result
    }

    fn check_open(&self) -> Result<()> {
        if self.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// True when called from this database's writer thread (inside a transaction closure).
    pub(crate) fn is_writer_thread(&self) -> bool {
        self.inner.writer.is_current_thread()
    }

    /// A blocking write from the writer thread itself would wait for itself forever.
    fn check_not_on_writer(&self) -> Result<()> {
        if self.inner.writer.is_current_thread() {
            return Err(Error::Misuse {
                message: "a transaction closure called a blocking method of its own database, \
                          which would wait for the writer it runs on; use the connection passed \
                          to the closure instead"
                    .into(),
            });
        }
        Ok(())
    }

    /// Runs `work` on the writer inside the next group, waiting for the group to commit.
    pub(crate) fn blocking_write<T, F>(&self, kind: OpKind, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        self.check_not_on_writer()?;
        let config = &self.inner.config;
        let (reply, wait) =
            reply::blocking_polling(config.blocking_wait.poll_budget(config.profile));
        let job = ClosureJob::boxed(work, reply);
        self.inner.writer.send(Message::Write {
            job,
            kind,
            enqueued: Instant::now(),
        })?;
        wait()
    }

    /// Async twin of [`Database::blocking_write`].
    pub(crate) async fn write<T, F>(&self, kind: OpKind, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        let (reply, receiver) = reply::asynchronous();
        let job = ClosureJob::boxed(work, reply);
        self.inner
            .writer
            .send_async(Message::Write {
                job,
                kind,
                enqueued: Instant::now(),
            })
            .await?;
        reply::wait(receiver).await
    }

    fn exclusive_job<T, F>(&self, work: F, reply: Reply<T>) -> ExclusiveJob
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let stats = Arc::clone(&self.inner.stats);
        Box::new(move |conn| match conn {
            None => reply.send(Err(Error::Closed)),
            Some(conn) => {
                // A restore's progress callback is user code: its panic is that caller's error.
                let result = catch(|| work(conn));
                stats.op(OpKind::Maintenance, result.is_ok());
                stats.count_busy(&result);
                reply.send(result);
            }
        })
    }

    /// Runs `work` on the writer connection between groups, outside any transaction.
    pub(crate) fn blocking_exclusive<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        self.check_not_on_writer()?;
        let (reply, wait) = reply::blocking();
        self.inner
            .writer
            .send(Message::Exclusive(self.exclusive_job(work, reply)))?;
        wait()
    }

    /// Async twin of [`Database::blocking_exclusive`].
    pub(crate) async fn exclusive<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        let (reply, receiver) = reply::asynchronous();
        let job = self.exclusive_job(work, reply);
        self.inner
            .writer
            .send_async(Message::Exclusive(job))
            .await?;
        reply::wait(receiver).await
    }

    /// Runs a read-only closure on a pooled reader connection, on the calling thread.
    ///
    /// The connection is `query_only`: a statement that writes fails with
    /// [`Error::ReadOnly`]. Wrap several statements in `BEGIN`/`COMMIT` for one snapshot.
    ///
    /// ```
    /// # let db = litehouse::Database::open_memory("doc-read", litehouse::Config::default())?;
    /// let version: String = db.blocking_read(|conn| Ok(conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))?))?;
    /// assert!(version.starts_with('3'));
    /// # Ok::<(), litehouse::Error>(())
    /// ```
    pub fn blocking_read<T>(&self, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.check_open()?;
        // On the writer, a read could wait for a reader whose holder waits for this writer.
        self.check_not_on_writer()?;
        let conn = self.inner.readers.pool.checkout()?;
        let started = self.inner.stats.start_read(conn.slot());
        let result = refused_as_read_only(catch(|| work(&conn)));
        self.inner.stats.read(conn.slot(), started, result.is_ok());
        self.inner.stats.count_busy(&result);
        result
    }

    /// Async twin of [`blocking_read`](Database::blocking_read): the closure runs on a reader
    /// thread.
    pub async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.check_open()?;
        let (reply, receiver) = reply::asynchronous();
        let stats = Arc::clone(&self.inner.stats);
        let job: ReadJob = Box::new(move |conn| {
            let Some(conn) = conn else {
                return reply.send(Err(Error::Closed));
            };
            let started = stats.start_read(conn.slot());
            let result = refused_as_read_only(catch(|| work(conn)));
            stats.read(conn.slot(), started, result.is_ok());
            stats.count_busy(&result);
            reply.send(result);
        });
        self.inner.readers.send_async(job).await?;
        reply::wait(receiver).await
    }
}

impl Inner {
    /// Refuses new work from now on.
    fn mark_closed(&self) {
        // Release: a caller that sees the flag also sees everything before the close began.
        self.closed.store(true, Ordering::Release);
    }
}

impl Drop for Inner {
    /// The last handle closes the database: everything queued is finished first.
    ///
    /// It waits for that where a thread may wait: a plain thread, or a multi-threaded tokio
    /// runtime (inside `block_in_place`, so the runtime's other tasks move to another worker).
    /// Where waiting is impossible (on the writer itself, when a closure dropped the last
    /// handle; on a current-thread runtime; in a `LocalSet`) the shutdown is queued instead and
    /// the writer and readers finish the drain, close their connections and end on their own.
    /// Call [`Database::close`] from async code to wait for the close and see its result.
    fn drop(&mut self) {
        self.mark_closed();
        if !self.writer.is_current_thread() && wait_if_allowed(|| self.close_and_join()) {
            return;
        }
        let queued = self.writer.queue_depth();
        if queued > 0 {
            tracing::warn!(
                queued,
                "the last Database handle was dropped where it cannot wait; the writer finishes \
                 the queued writes on its own (call close().await to wait for them)"
            );
        }
        let (reply, _) = reply::blocking();
        // `try_send` never waits; if the queue is full, the disconnect below still ends the
        // writer after it has answered every queued request.
        let _ = self.writer.try_send(Message::Shutdown(reply));
        self.readers.close();
        self.writer.detach();
        self.readers.detach();
    }
}

impl Inner {
    fn close_and_join(&mut self) {
        let (reply, wait) = reply::blocking();
        if self.writer.send(Message::Shutdown(reply)).is_ok() {
            let _ = wait();
        }
        self.readers.close();
        self.writer.join();
        self.readers.join();
    }
}
