//! The one public error type of the document store.

use crate::spec::FieldType;

/// Result alias used throughout litehouse-docs.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the document store.
///
/// The `Invalid*` variants are raised before any SQL is built, so hostile input never reaches
/// the database. Use the accessors ([`Error::is_invalid_input`], [`Error::conflicting_id`], ...)
/// rather than matching on every variant: new variants may appear.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A collection or index name is not acceptable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A field path is not acceptable (empty segment, `$`, quotes, too long, too deep, ...).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A filter is malformed: unknown operator, wrong value shape, too large.
    #[error("invalid filter: {reason}")]
    InvalidFilter {
        /// Why it was refused.
        reason: String,
    },
    /// A value has the wrong type for a path whose type is declared by an index or reference.
    #[error("invalid value for {path:?}: expected {expected}, found {found}")]
    InvalidValue {
        /// The path whose type is declared.
        path: String,
        /// The declared type.
        expected: FieldType,
        /// What was given instead.
        found: String,
    },
    /// A document is not acceptable (not an object, contains NUL, number out of range, ...).
    #[error("invalid document: {reason}")]
    InvalidDocument {
        /// Why it was refused.
        reason: String,
    },
    /// A collection spec is not acceptable.
    #[error("invalid collection spec: {reason}")]
    InvalidSpec {
        /// Why it was refused.
        reason: String,
    },
    /// A query is not acceptable (page numbers, page size, sort keys).
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// Why it was refused.
        reason: String,
    },
    /// A cursor was not produced by this store for this sort order.
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// Why it was refused.
        reason: String,
    },
    /// A configured limit ([`StoreConfig`](crate::StoreConfig)) was exceeded; raised before any
    /// SQL runs.
    #[error("{limit} is {value}, above the limit of {max}")]
    LimitExceeded {
        /// Which limit: `document size`, `depth`, `object keys`, `array length`,
        /// `filter nodes`, `filter depth`, `sort keys` or `page size`.
        limit: &'static str,
        /// The value found (for `depth` and `filter depth`, at least this).
        value: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The collection does not exist.
    #[error("collection {collection:?} does not exist")]
    CollectionNotFound {
        /// The collection.
        collection: String,
    },
    /// The collection already exists.
    #[error("collection {collection:?} already exists")]
    CollectionExists {
        /// The collection.
        collection: String,
    },
    /// The collection cannot be dropped because another collection references it.
    #[error("collection {collection:?} is referenced by collection {referenced_by:?}")]
    CollectionInUse {
        /// The collection.
        collection: String,
        /// A collection whose spec references it.
        referenced_by: String,
    },
    /// The document does not exist.
    #[error("document {id:?} not found in collection {collection:?}")]
    NotFound {
        /// The collection.
        collection: String,
        /// The document id.
        id: String,
    },
    /// Optimistic concurrency: the document's version is not the expected one.
    #[error("document {id:?} in {collection:?} is at version {actual}, not {expected}")]
    VersionConflict {
        /// The collection.
        collection: String,
        /// The document id.
        id: String,
        /// The version the caller expected.
        expected: i64,
        /// The version the document has.
        actual: i64,
    },
    /// A unique index rejected the write.
    #[error(
        "unique index {index:?} of {collection:?} already holds this value (document {conflicting_id:?})"
    )]
    Unique {
        /// The collection.
        collection: String,
        /// The unique index, by its spec name.
        index: String,
        /// The document that already holds the value, when known.
        conflicting_id: Option<String>,
    },
    /// A unique index could not be added because documents already share a value.
    #[error(
        "unique index {index:?} cannot be added to {collection:?}: documents {conflicting_ids:?} share a value"
    )]
    IndexConflict {
        /// The collection.
        collection: String,
        /// The unique index that was refused.
        index: String,
        /// Documents holding the same values (one group, at most 100 ids, in id order).
        conflicting_ids: Vec<String>,
    },
    /// The collection has no index of this name.
    #[error("collection {collection:?} has no index {index:?}")]
    IndexNotFound {
        /// The collection.
        collection: String,
        /// The index name.
        index: String,
    },
    /// A delete was refused because a `restrict` reference points at the document.
    #[error(
        "document {id:?} in {collection:?} is referenced by {referencing_id:?} in {referencing_collection:?}"
    )]
    Restricted {
        /// The collection of the document being deleted.
        collection: String,
        /// The document being deleted.
        id: String,
        /// The collection of the referencing document.
        referencing_collection: String,
        /// A document that references it.
        referencing_id: String,
    },
    /// A reference field names a document that does not exist.
    #[error("{path:?} names document {target_id:?}, which does not exist in {target_collection:?}")]
    ReferenceNotFound {
        /// The referencing path.
        path: String,
        /// The referenced collection.
        target_collection: String,
        /// The missing document id.
        target_id: String,
    },
    /// The collection's spec changed while the call ran (another store dropped, recreated or
    /// re-indexed it) and nothing was done. The store retries such calls itself; this is
    /// only seen when the spec keeps changing. Safe to retry.
    #[error("the spec of collection {collection:?} changed during the call; nothing was done")]
    SpecChanged {
        /// The collection.
        collection: String,
    },
    /// The SQLite engine failed (busy, closed, I/O, ...).
    #[error("sqlite: {0}")]
    Sqlite(litehouse::Error),
    /// PostgreSQL or its connection pool failed.
    #[error("postgres: {message}")]
    Postgres {
        /// The SQLSTATE code, when the server sent one.
        code: Option<String>,
        /// What failed.
        message: String,
    },
    /// A change-feed cursor is older than what the change log keeps (see
    /// [`StoreConfig::change_retention_count`](crate::StoreConfig::change_retention_count)):
    /// re-read the collections, then follow the feed from [`Store::head`](crate::Store::head).
    #[error(
        "cursor {cursor} is older than the change log's oldest kept position {oldest}: re-read the collection and resume from the current head"
    )]
    CursorExpired {
        /// The cursor as given.
        cursor: String,
        /// The oldest cursor still accepted.
        oldest: String,
    },
    /// An API used in a way it cannot work (for example awaiting something other than the
    /// transaction's own methods inside [`Store::transaction`](crate::Store::transaction) on
    /// SQLite).
    #[error("misuse: {reason}")]
    Misuse {
        /// What was wrong and what to do instead.
        reason: String,
    },
    /// Stored data could not be read back (a bug or a foreign write).
    #[error("corrupt data: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
}

impl Error {
    /// True for the errors raised on bad input before any SQL is built.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidName { .. }
                | Error::InvalidPath { .. }
                | Error::InvalidFilter { .. }
                | Error::InvalidValue { .. }
                | Error::InvalidDocument { .. }
                | Error::InvalidSpec { .. }
                | Error::InvalidQuery { .. }
                | Error::InvalidCursor { .. }
                | Error::LimitExceeded { .. }
        )
    }

    /// The name of the limit that [`Error::LimitExceeded`] names.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            Error::LimitExceeded { limit, .. } => Some(limit),
            _ => None,
        }
    }

    /// True for [`Error::NotFound`], [`Error::CollectionNotFound`] and [`Error::IndexNotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. } | Error::CollectionNotFound { .. } | Error::IndexNotFound { .. }
        )
    }

    /// True for conflicts a client can resolve: unique, version, restrict, existing collection.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::Unique { .. }
                | Error::IndexConflict { .. }
                | Error::VersionConflict { .. }
                | Error::Restricted { .. }
                | Error::CollectionExists { .. }
                | Error::CollectionInUse { .. }
        )
    }

    /// The id of the document that caused a conflict ([`Error::Unique`], [`Error::IndexConflict`] or
    /// [`Error::Restricted`]).
    pub fn conflicting_id(&self) -> Option<&str> {
        match self {
            Error::Unique { conflicting_id, .. } => conflicting_id.as_deref(),
            Error::Restricted { referencing_id, .. } => Some(referencing_id),
            Error::IndexConflict {
                conflicting_ids, ..
            } => conflicting_ids.first().map(String::as_str),
            _ => None,
        }
    }

    /// The index named by [`Error::Unique`], [`Error::IndexConflict`] or [`Error::IndexNotFound`].
    pub fn index(&self) -> Option<&str> {
        match self {
            Error::Unique { index, .. }
            | Error::IndexConflict { index, .. }
            | Error::IndexNotFound { index, .. } => Some(index),
            _ => None,
        }
    }

    /// True when the database was busy, or a collection's spec kept changing
    /// ([`Error::SpecChanged`]), and the call may be retried.
    pub fn is_busy(&self) -> bool {
        match self {
            Error::SpecChanged { .. } => true,
            Error::Sqlite(inner) => inner.is_busy(),
            Error::Postgres { code, .. } => {
                matches!(code.as_deref(), Some("40001" | "40P01" | "55P03"))
            }
            _ => false,
        }
    }

    pub(crate) fn limit_exceeded(limit: &'static str, value: usize, max: usize) -> Error {
        Error::LimitExceeded { limit, value, max }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Error {
        Error::Corrupt {
            reason: reason.into(),
        }
    }
}

impl From<litehouse::Error> for Error {
    fn from(err: litehouse::Error) -> Error {
        // Store errors travel through the engine's transaction closure as `User` errors so
        // that the engine rolls the request back; unwrap them here.
        if let litehouse::Error::User(inner) = &err
            && let Some(ours) = inner.downcast_ref::<Error>()
        {
            return ours.clone();
        }
        Error::Sqlite(err)
    }
}

impl From<litehouse::rusqlite::Error> for Error {
    fn from(err: litehouse::rusqlite::Error) -> Error {
        Error::Sqlite(litehouse::Error::from(err))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Error {
        let code = err.code().map(|code| code.code().to_owned());
        let message = match err.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => err.to_string(),
        };
        Error::Postgres { code, message }
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(err: deadpool_postgres::PoolError) -> Error {
        match err {
            deadpool_postgres::PoolError::Backend(inner) => Error::from(inner),
            other => Error::Postgres {
                code: None,
                message: format!("connection pool: {other}"),
            },
        }
    }
}
