//! Configuration: durability profiles, pool sizes, queue bounds, pragmas.

use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::ident::{validate_identifier, validate_pragma_value};

/// How durable an acknowledged write is.
///
/// Both profiles use WAL, so readers never block the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Profile {
    /// WAL with `synchronous=NORMAL`: an acknowledged write survives a crash of the process,
    /// but the last commits before a power loss or OS crash may be rolled back (the database
    /// itself is never corrupted). Commits do not wait for fsync.
    #[default]
    Balanced,
    /// WAL with `synchronous=FULL`: every acknowledged write has been fsynced and survives a
    /// power loss. Group commit shares one fsync among every write in a group.
    Durable,
}

impl Profile {
    fn synchronous(self) -> &'static str {
        match self {
            Profile::Balanced => "NORMAL",
            Profile::Durable => "FULL",
        }
    }
}

/// How a thread that called a `blocking_*` write waits for the writer's answer.
///
/// Sleeping on the reply costs a wake-up when it comes: on a virtual machine, where a CPU
/// with nothing to run halts and waking it is slow, that wake-up and the ones it sets off
/// (the next request, the writer) are most of a `Durable` write's wait besides its fsync.
/// Polling first, yielding the CPU between polls, keeps a CPU awake through the commit. At
/// most one thread of the process polls at a time; the others sleep at once.
///
/// Measured on a shared 2-core VM (`litehouse bench`, release build, same run): W1
/// (64 threads, `Durable`) 70–92k writes/s sleeping, 83–95k polling; but W2 (64 threads,
/// `Balanced`, CPU-bound) 147–152k sleeping, 129–132k polling, because the poller takes CPU
/// the writer and the other threads would use. Hence [`BlockingWait::Auto`].
///
/// ```
/// use std::time::Duration;
/// use litehouse::{BlockingWait, Config, Profile};
/// let config = Config {
///     profile: Profile::Balanced,
///     blocking_wait: BlockingWait::Poll(Duration::from_micros(300)),
///     ..Config::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BlockingWait {
    /// [`Poll`](BlockingWait::Poll) for [`DEFAULT_POLL`](BlockingWait::DEFAULT_POLL) (300 µs)
    /// under [`Profile::Durable`] (a commit is an fsync, during which the CPUs would
    /// otherwise idle), [`Sleep`](BlockingWait::Sleep) under [`Profile::Balanced`].
    #[default]
    Auto,
    /// Poll for the answer for up to this long (at most 100 ms), then sleep. Costs up to one
    /// CPU while writes are in flight (given up to any other thread that is ready to run).
    Poll(Duration),
    /// Sleep until the answer comes.
    Sleep,
}

impl BlockingWait {
    /// The polling budget of [`BlockingWait::Auto`] under `Durable`: about two fsyncs on a
    /// common SSD, so a write that waits for the commit in progress and then its own is
    /// still answered while polling.
    pub const DEFAULT_POLL: Duration = Duration::from_micros(300);

    /// How long a blocking caller polls before it sleeps, under `profile`.
    pub(crate) fn poll_budget(self, profile: Profile) -> Duration {
        match (self, profile) {
            (BlockingWait::Auto, Profile::Durable) => BlockingWait::DEFAULT_POLL,
            (BlockingWait::Auto, Profile::Balanced) | (BlockingWait::Sleep, _) => Duration::ZERO,
            (BlockingWait::Poll(budget), _) => budget,
        }
    }
}

/// Longest [`BlockingWait::Poll`] budget [`Config`] accepts.
const MAX_POLL: Duration = Duration::from_millis(100);

/// Settings for [`Database::open`](crate::Database::open).
///
/// ```
/// use litehouse::{Config, Profile};
/// let config = Config { profile: Profile::Durable, readers: 2, ..Config::default() };
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Durability profile.
    pub profile: Profile,
    /// Number of read-only connections (and async reader threads). At least 1.
    pub readers: usize,
    /// Capacity of the write queue. A full queue makes callers wait (backpressure).
    pub queue_capacity: usize,
    /// Most requests committed together in one transaction.
    pub max_group_size: usize,
    /// Longest the writer waits for more requests before committing a group that is smaller
    /// than the one before it (PostgreSQL's `commit_delay`, self-tuning): the wait is at most a
    /// quarter of the last COMMIT's duration, so it only matters where commits are expensive
    /// (`Durable`, where every COMMIT is an fsync). Callers that wait for their write and then
    /// send the next one (threads, tasks) come back a few microseconds apart; without the wait
    /// the first of them would start a group of one and the rest would wait a whole fsync for
    /// the next. A lone writer never waits (its groups never shrink). `Duration::ZERO` turns
    /// it off.
    pub gather_window: Duration,
    /// How long to keep retrying when another process holds the write lock, before
    /// returning [`Error::Busy`].
    pub busy_budget: Duration,
    /// How a thread waits for its write in the `blocking_*` methods (async callers are not
    /// affected). See [`BlockingWait`].
    pub blocking_wait: BlockingWait,
    /// Prepared statements cached per connection.
    pub statement_cache_capacity: usize,
    /// Extra pragmas as `(name, value)`, applied after the profile's, on every connection.
    /// Names must be identifiers and values numbers or bare words.
    pub pragmas: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Config {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Config {
            profile: Profile::Balanced,
            readers: cores.clamp(2, 8),
            queue_capacity: 4096,
            max_group_size: 512,
            gather_window: Duration::from_millis(1),
            busy_budget: Duration::from_secs(5),
            blocking_wait: BlockingWait::Auto,
            statement_cache_capacity: 128,
            pragmas: Vec::new(),
        }
    }
}

/// Role of a connection, which decides its pragmas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
}

/// How long SQLite's own busy handler waits on the writer before litehouse's backoff takes over.
/// Short, so that litehouse (not SQLite) decides how long to wait and can count the retries.
pub(crate) const WRITER_BUSY_SLICE: Duration = Duration::from_millis(20);

impl Config {
    pub(crate) fn validate(&self) -> Result<()> {
        let Config {
            profile: _,
            readers,
            queue_capacity,
            max_group_size,
            gather_window: _,
            busy_budget: _,
            blocking_wait,
            statement_cache_capacity: _,
            pragmas,
        } = self;
        let bad = |message: &str| {
            Err(Error::Config {
                message: message.into(),
            })
        };
        if *readers == 0 {
            return bad("readers must be at least 1");
        }
        if *queue_capacity == 0 {
            return bad("queue_capacity must be at least 1");
        }
        if *max_group_size == 0 {
            return bad("max_group_size must be at least 1");
        }
        if let BlockingWait::Poll(budget) = blocking_wait
            && *budget > MAX_POLL
        {
            return bad(
                "blocking_wait polls for at most 100 ms: a longer wait should sleep \
                 (BlockingWait::Sleep) instead of spending a CPU",
            );
        }
        for (name, value) in pragmas {
            validate_identifier(name).map_err(|err| Error::Config {
                message: format!("pragma name: {err}"),
            })?;
            validate_pragma_value(value)?;
        }
        Ok(())
    }

    /// Applies the connection settings for `role`. WAL is set by the writer alone, before any
    /// reader opens, because switching journal mode concurrently fails with "locked".
    pub(crate) fn apply(&self, conn: &Connection, role: Role, in_memory: bool) -> Result<()> {
        conn.set_prepared_statement_cache_capacity(self.statement_cache_capacity);
        // While opening, every connection waits out another connection's lock for the whole
        // busy budget: a process closing the same file checkpoints under an exclusive lock,
        // and that must not make this open fail with "database is locked". The writer then
        // switches to a short slice, so that litehouse's own retry decides (and counts).
        conn.busy_timeout(clamp_busy_timeout(self.busy_budget))?;
        // Pragmas that shape the file format only work before the file has content, and
        // switching to WAL writes the header: apply those overrides first.
        for (name, value) in self.pragmas.iter().filter(|(name, _)| is_file_format(name)) {
            apply_pragma(conn, name, value)?;
        }
        if role == Role::Writer && !in_memory {
            let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::Config {
                    message: format!("could not switch the database to WAL (it stays in {mode})"),
                });
            }
            conn.execute_batch("PRAGMA journal_size_limit=67108864")?;
        }
        let synchronous = self.profile.synchronous();
        conn.execute_batch(&format!(
            "PRAGMA synchronous={synchronous};
             PRAGMA foreign_keys=ON;
             PRAGMA temp_store=MEMORY;
             PRAGMA cache_size=-32000;
             PRAGMA trusted_schema=OFF;"
        ))?;
        if !in_memory {
            conn.execute_batch("PRAGMA mmap_size=134217728")?;
        }
        for (name, value) in self
            .pragmas
            .iter()
            .filter(|(name, _)| !is_file_format(name))
        {
            apply_pragma(conn, name, value)?;
        }
        match role {
            Role::Reader => conn.execute_batch("PRAGMA query_only=ON")?,
            Role::Writer => conn.busy_timeout(WRITER_BUSY_SLICE)?,
        }
        Ok(())
    }
}

/// SQLite takes its busy timeout in milliseconds as an `i32` (about 24.8 days); a longer
/// budget (`Duration::MAX` for "wait forever") is clamped to that rather than rejected.
pub(crate) fn clamp_busy_timeout(budget: Duration) -> Duration {
    budget.min(Duration::from_millis(i32::MAX as u64))
}

fn is_file_format(name: &str) -> bool {
    name.eq_ignore_ascii_case("auto_vacuum") || name.eq_ignore_ascii_case("page_size")
}

fn apply_pragma(conn: &Connection, name: &str, value: &str) -> Result<()> {
    // Both were validated in `Config::validate`; check again so this function is safe alone.
    let name = validate_identifier(name)?;
    let value = validate_pragma_value(value)?;
    conn.execute_batch(&format!("PRAGMA {name}={value}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_writes_poll_by_default_only_where_commits_are_fsyncs() {
        let poll = Duration::from_micros(50);
        for (wait, durable, balanced) in [
            (
                BlockingWait::Auto,
                BlockingWait::DEFAULT_POLL,
                Duration::ZERO,
            ),
            (BlockingWait::Sleep, Duration::ZERO, Duration::ZERO),
            (BlockingWait::Poll(poll), poll, poll),
        ] {
            assert_eq!(wait.poll_budget(Profile::Durable), durable, "{wait:?}");
            assert_eq!(wait.poll_budget(Profile::Balanced), balanced, "{wait:?}");
        }
        assert_eq!(Config::default().blocking_wait, BlockingWait::Auto);
    }

    #[test]
    fn rejects_bad_configs() {
        let check =
            |config: Config| assert!(matches!(config.validate(), Err(Error::Config { .. })));
        check(Config {
            readers: 0,
            ..Config::default()
        });
        check(Config {
            queue_capacity: 0,
            ..Config::default()
        });
        check(Config {
            max_group_size: 0,
            ..Config::default()
        });
        check(Config {
            pragmas: vec![("cache_size; DROP TABLE t".into(), "1".into())],
            ..Config::default()
        });
        check(Config {
            pragmas: vec![("cache_size".into(), "1; DROP TABLE t".into())],
            ..Config::default()
        });
        check(Config {
            blocking_wait: BlockingWait::Poll(Duration::MAX),
            ..Config::default()
        });
        assert!(Config::default().validate().is_ok());
        let polling = Config {
            blocking_wait: BlockingWait::Poll(MAX_POLL),
            ..Config::default()
        };
        assert!(polling.validate().is_ok());
    }
}
