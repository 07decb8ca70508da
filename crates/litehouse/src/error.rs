//! The one error type of the engine.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::ffi;

/// The underlying error an [`Error`] was made from.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias used throughout litehouse.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which constraint a write violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum ConstraintKind {
    /// A `UNIQUE` constraint or unique index.
    Unique,
    /// A `PRIMARY KEY` (including a rowid clash).
    PrimaryKey,
    /// A `FOREIGN KEY` constraint.
    ForeignKey,
    /// A `NOT NULL` constraint.
    NotNull,
    /// A `CHECK` constraint.
    Check,
    /// A trigger called `RAISE(ABORT, ...)` or similar.
    Trigger,
    /// Any other constraint (datatype on a STRICT table, rowid, ...).
    Other,
}

/// Everything that can go wrong in litehouse.
///
/// Match on the variant, or use the accessors ([`Error::extended_code`], [`Error::is_busy`],
/// [`Error::retry_after`], ...) which keep working when new variants appear.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database stayed locked by another process for longer than the configured busy
    /// budget. Nothing was written; try again after `retry_after`.
    #[error(
        "database is busy (locked by another process) after waiting {waited:?}; retry after {retry_after:?}"
    )]
    Busy {
        /// How long litehouse kept retrying before giving up.
        waited: Duration,
        /// A suggested delay before the caller tries again.
        retry_after: Duration,
    },
    /// The database was closed; no new work is accepted.
    #[error("database is closed: open it again to continue")]
    Closed,
    /// A `WriteBuffer` already holds its `max_buffer_size` rows, so a
    /// `try_` write of a new key was refused. Nothing was buffered.
    #[error(
        "write buffer is full ({capacity} rows); wait for room with the waiting methods or retry after a flush"
    )]
    BufferFull {
        /// The buffer's `max_buffer_size`.
        capacity: usize,
    },
    /// A [`WriteBuffer`](crate::WriteBuffer) wrote every row it could, but the database
    /// refused `rows` of them for good (a constraint, a value the column cannot take). They
    /// are kept, with their errors, in the `_litehouse_rejected` table of the same database:
    /// read them with [`WriteBuffer::rejected`](crate::WriteBuffer::rejected), fix and replay
    /// them with [`WriteBuffer::retry_rejected`](crate::WriteBuffer::retry_rejected).
    #[error(
        "the database rejected {rows} buffered rows, kept in _litehouse_rejected (last: {message}); read them with WriteBuffer::rejected"
    )]
    Rejected {
        /// Rows rejected during the buffer's life.
        rows: u64,
        /// The last rejection's error.
        message: String,
    },
    /// A [`LogDatabase`](crate::LogDatabase) shut down without writing `entries` log
    /// entries, because the write failed (for example another process held the file's lock
    /// for longer than the busy budget). They are counted in `LogStats::dropped` too.
    #[error("{entries} log entries could not be written at shutdown: {source}")]
    Unwritten {
        /// Entries lost.
        entries: u64,
        /// Why the last write failed.
        source: Box<Error>,
    },
    /// A constraint rejected the write. Nothing of that request was written.
    #[error("{kind:?} constraint failed: {message}")]
    Constraint {
        /// Which kind of constraint.
        kind: ConstraintKind,
        /// SQLite's extended result code (for example `SQLITE_CONSTRAINT_UNIQUE`, 2067).
        extended_code: i32,
        /// SQLite's message, naming the table and columns.
        message: String,
        /// The error this one was made from (the driver's or the operating system's), also
        /// returned by [`std::error::Error::source`].
        #[source]
        source: Option<Cause>,
    },
    /// The SQL text could not be prepared (syntax error, unknown table or column, ...).
    #[error("invalid SQL: {message}")]
    Sql {
        /// SQLite's extended result code.
        extended_code: i32,
        /// SQLite's message.
        message: String,
        /// The error this one was made from (the driver's or the operating system's), also
        /// returned by [`std::error::Error::source`].
        #[source]
        source: Option<Cause>,
    },
    /// The parameters do not fit the statement (wrong count, unknown name, unsupported type).
    #[error("bad parameters: {message}")]
    Parameter {
        /// What is wrong with them.
        message: String,
    },
    /// A statement that writes was sent to the read path; use `execute` or `transaction`.
    #[error(
        "read-only: {message}; send writes through execute, execute_many, script or transaction"
    )]
    ReadOnly {
        /// What was refused.
        message: String,
    },
    /// A query expected a row and got none.
    #[error("query returned no rows")]
    NoRows,
    /// The disk or file system failed (I/O error, disk full, cannot open, corrupt file).
    #[error("I/O error (code {extended_code}): {message}")]
    Io {
        /// SQLite's extended result code, or 0 for an operating-system error.
        extended_code: i32,
        /// What failed.
        message: String,
        /// The error this one was made from (the driver's or the operating system's), also
        /// returned by [`std::error::Error::source`].
        #[source]
        source: Option<Cause>,
    },
    /// A closure sent to the database panicked. The database keeps running; that request
    /// was rolled back.
    #[error("closure panicked: {message}")]
    Panic {
        /// The panic payload, when it was a string.
        message: String,
    },
    /// The API was used in a way that cannot work, such as a transaction closure calling a
    /// blocking method of its own database (it would wait for itself forever).
    #[error("misuse: {message}")]
    Misuse {
        /// What was wrong and what to do instead.
        message: String,
    },
    /// The configuration is invalid.
    #[error("invalid configuration: {message}")]
    Config {
        /// What is wrong with it.
        message: String,
    },
    /// Any other SQLite error.
    #[error("sqlite error (code {extended_code}): {message}")]
    Sqlite {
        /// SQLite's extended result code.
        extended_code: i32,
        /// SQLite's message.
        message: String,
        /// The error this one was made from (the driver's or the operating system's), also
        /// returned by [`std::error::Error::source`].
        #[source]
        source: Option<Cause>,
    },
    /// An error raised by user code inside a transaction closure, which rolls it back.
    #[error("{0}")]
    User(Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps an application error so a transaction closure can return it (and roll back).
    pub fn user(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::User(Arc::from(err.into()))
    }

    /// SQLite's extended result code, when the error came from SQLite.
    pub fn extended_code(&self) -> Option<i32> {
        match self {
            Error::Constraint { extended_code, .. }
            | Error::Sql { extended_code, .. }
            | Error::Io { extended_code, .. }
            | Error::Sqlite { extended_code, .. } => Some(*extended_code),
            Error::Busy { .. } => Some(ffi::SQLITE_BUSY),
            _ => None,
        }
    }

    /// True for [`Error::Busy`].
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Busy { .. })
    }

    /// True for [`Error::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Closed)
    }

    /// True for [`Error::BufferFull`].
    pub fn is_buffer_full(&self) -> bool {
        matches!(self, Error::BufferFull { .. })
    }

    /// The constraint kind, for [`Error::Constraint`].
    pub fn constraint_kind(&self) -> Option<ConstraintKind> {
        match self {
            Error::Constraint { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// When the caller should try again, for [`Error::Busy`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Busy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Keeps `cause` as this error's [`source`](std::error::Error::source), for the variants
    /// that carry one.
    pub(crate) fn with_source(mut self, cause: Cause) -> Error {
        if let Error::Constraint { source, .. }
        | Error::Sql { source, .. }
        | Error::Io { source, .. }
        | Error::Sqlite { source, .. } = &mut self
        {
            *source = Some(cause);
        }
        self
    }

    /// The error for a panic caught from user code. The payload is dropped here, and a
    /// payload whose own `Drop` panics is leaked instead, so building this never unwinds.
    pub(crate) fn panic(payload: Box<dyn std::any::Any + Send>) -> Error {
        let message = crate::worker::panic_message(payload.as_ref());
        crate::worker::contain_drop(payload);
        Error::Panic { message }
    }

    /// True when SQLite reported the lock as held (SQLITE_BUSY or SQLITE_LOCKED).
    pub(crate) fn is_lock_contention(&self) -> bool {
        matches!(self, Error::Sqlite { extended_code, .. }
            if extended_code & 0xff == ffi::SQLITE_BUSY || extended_code & 0xff == ffi::SQLITE_LOCKED)
    }
}

#[cfg(test)]
mod sql_error_tests {
    use super::*;

    #[test]
    fn generic_sqlite_error_is_a_sql_error() {
        let err = Error::from(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some("no such table: x".into()),
        ));
        assert!(matches!(err, Error::Sql { .. }), "{err:?}");
    }
}

fn constraint_kind(extended_code: i32) -> ConstraintKind {
    match extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE => ConstraintKind::Unique,
        ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_ROWID => {
            ConstraintKind::PrimaryKey
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ConstraintKind::ForeignKey,
        ffi::SQLITE_CONSTRAINT_NOTNULL => ConstraintKind::NotNull,
        ffi::SQLITE_CONSTRAINT_CHECK => ConstraintKind::Check,
        ffi::SQLITE_CONSTRAINT_TRIGGER => ConstraintKind::Trigger,
        _ => ConstraintKind::Other,
    }
}

fn from_sqlite_failure(failure: &ffi::Error, message: Option<String>) -> Error {
    let extended_code = failure.extended_code;
    let message = message.unwrap_or_else(|| failure.to_string());
    let source = None;
    match extended_code & 0xff {
        ffi::SQLITE_CONSTRAINT => Error::Constraint {
            kind: constraint_kind(extended_code),
            extended_code,
            message,
            source,
        },
        ffi::SQLITE_READONLY => Error::ReadOnly { message },
        ffi::SQLITE_IOERR
        | ffi::SQLITE_FULL
        | ffi::SQLITE_CANTOPEN
        | ffi::SQLITE_CORRUPT
        | ffi::SQLITE_NOTADB => Error::Io {
            extended_code,
            message,
            source,
        },
        ffi::SQLITE_RANGE | ffi::SQLITE_MISMATCH => Error::Parameter { message },
        // The generic code: unknown tables or columns, syntax, wrong value counts.
        ffi::SQLITE_ERROR => Error::Sql {
            extended_code,
            message,
            source,
        },
        _ => Error::Sqlite {
            extended_code,
            message,
            source,
        },
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Error {
        convert(&err).with_source(Arc::new(err))
    }
}

/// The variant for a driver error; [`Error::with_source`] then keeps the original.
fn convert(err: &rusqlite::Error) -> Error {
    use rusqlite::Error as E;
    match err {
        E::SqliteFailure(failure, message) => from_sqlite_failure(failure, message.clone()),
        E::SqlInputError {
            error, msg, sql, ..
        } => Error::Sql {
            extended_code: error.extended_code,
            message: format!("{msg} in `{sql}`"),
            source: None,
        },
        E::QueryReturnedNoRows => Error::NoRows,
        E::InvalidParameterCount(given, expected) => Error::Parameter {
            message: format!("the statement takes {expected} parameters but {given} were given"),
        },
        E::InvalidParameterName(name) => Error::Parameter {
            message: format!("the statement has no parameter named {name}"),
        },
        E::ToSqlConversionFailure(source) => Error::Parameter {
            message: source.to_string(),
        },
        E::MultipleStatement => Error::Sql {
            extended_code: ffi::SQLITE_ERROR,
            message: "several statements given where one was expected; use script".into(),
            source: None,
        },
        E::ExecuteReturnedResults => Error::Sql {
            extended_code: ffi::SQLITE_ERROR,
            message: "the statement returns rows; use a query method".into(),
            source: None,
        },
        E::InvalidPath(path) => Error::Io {
            extended_code: 0,
            message: format!("invalid path {}", path.display()),
            source: None,
        },
        other => Error::Sqlite {
            extended_code: ffi::SQLITE_ERROR,
            message: other.to_string(),
            source: None,
        },
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::Io {
            extended_code: 0,
            message: err.to_string(),
            source: Some(Arc::new(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_codes_map_to_kinds() {
        let check = |code, kind| {
            let err = Error::from(rusqlite::Error::SqliteFailure(
                ffi::Error::new(code),
                Some("x".into()),
            ));
            assert_eq!(err.constraint_kind(), Some(kind), "code {code}");
            assert_eq!(err.extended_code(), Some(code));
        };
        check(ffi::SQLITE_CONSTRAINT_UNIQUE, ConstraintKind::Unique);
        check(
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
            ConstraintKind::PrimaryKey,
        );
        check(
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
            ConstraintKind::ForeignKey,
        );
        check(ffi::SQLITE_CONSTRAINT_NOTNULL, ConstraintKind::NotNull);
        check(ffi::SQLITE_CONSTRAINT_CHECK, ConstraintKind::Check);
    }

    #[test]
    fn driver_errors_keep_their_cause() {
        use std::error::Error as _;
        let err = Error::from(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_CONSTRAINT_UNIQUE),
            Some("UNIQUE constraint failed: t.id".into()),
        ));
        let cause = err.source().expect("a source");
        assert!(cause.to_string().contains("UNIQUE"), "{cause}");
        let io = Error::from(std::io::Error::other("disk on fire"));
        assert!(
            io.source()
                .is_some_and(|cause| cause.to_string() == "disk on fire")
        );
        let unwritten = Error::Unwritten {
            entries: 3,
            source: Box::new(Error::Closed),
        };
        assert!(
            unwritten
                .source()
                .is_some_and(|cause| cause.to_string().contains("closed"))
        );
    }

    #[test]
    fn busy_and_locked_count_as_contention() {
        let busy = Error::from(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_BUSY),
            None,
        ));
        assert!(busy.is_lock_contention());
        assert!(!Error::Closed.is_lock_contention());
    }
}
