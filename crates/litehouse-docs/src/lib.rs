//! litehouse-docs: collections of JSON documents with the same behaviour on SQLite (the
//! litehouse engine) and PostgreSQL (JSONB).
//!
//! - [`Store`]: open a backend ([`Store::open_sqlite`], [`Store::from_database`],
//!   [`Store::open_postgres`]); manage collections; create, read, replace, patch and delete
//!   [`Document`]s with optimistic concurrency; query with [`Query`]; [`Store::explain`];
//!   [`Store::export`]/[`Store::import`] for migrations.
//! - [`CollectionSpec`]: typed indexes ([`IndexSpec`], [`FieldType`]), unique indexes, and
//!   references ([`ReferenceSpec`], [`OnDelete`]).
//! - [`Filter`] and [`Op`]: the filter AST; [`Sort`], [`Paging`], [`Page`]: order and pages.
//!   [`Filter::matches`] and [`SortOrder`] evaluate filters and sorts in memory with the
//!   engines' answers (for change feeds and subscriptions).
//! - [`Error`]: one error type; bad input is refused before any SQL is built.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use litehouse_docs::{CollectionSpec, FieldType, IndexSpec, OnDelete, Query, ReferenceSpec, Sort, Store};
//! use serde_json::json;
//!
//! let store = Store::from_database(litehouse::Database::open_memory("doc-crate", litehouse::Config::default())?).await?;
//! store.create_collection("users", CollectionSpec {
//!     indexes: vec![IndexSpec::unique("by_email", [("email", FieldType::String)])],
//!     ..CollectionSpec::default()
//! }).await?;
//! store.create_collection("posts", CollectionSpec {
//!     references: vec![ReferenceSpec::new("author", "users", OnDelete::Cascade)],
//!     ..CollectionSpec::default()
//! }).await?;
//! let ada = store.create("users", json!({"email": "ada@example.com"})).await?;
//! let clash = store.create("users", json!({"email": "ada@example.com"})).await.unwrap_err();
//! assert_eq!(clash.conflicting_id(), Some(ada.id.as_str()));
//! store.create("posts", json!({"author": ada.id, "title": "Notes"})).await?;
//! let report = store.delete("users", &ada.id, Some(1)).await?;
//! assert_eq!(report.deleted["posts"], 1);
//! let page = store.find("posts", &Query { sort: vec![Sort::asc("title")], ..Query::default() }).await?;
//! assert!(page.items.is_empty());
//! # Ok::<(), litehouse_docs::Error>(())
//! # }).unwrap();
//! ```
//!
#![doc = include_str!("../QUERY.md")]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

mod cascade;
mod catalog;
mod changes;
mod compile;
mod conn;
mod document;
mod error;
mod eval;
mod filter;
mod index;
mod limits;
mod names;
mod ops;
mod pg;
mod query;
mod spec;
mod sql;
mod store;
mod transfer;
mod tx;

pub use cascade::DeleteReport;
pub use changes::{
    Change, ChangeEvent, ChangeFilter, ChangeOp, ChangePage, ChangeStream, Cursor, DEFAULT_QUEUE,
    FeedStats, MAX_CHANGES_PAGE, POLL_INTERVAL,
};
pub use document::{Document, MAX_DOCUMENT_DEPTH};
pub use error::{Error, Result};
pub use eval::SortOrder;
pub use filter::{
    Filter, MAX_FILTER_DEPTH, MAX_FILTER_LEAVES, MAX_FILTER_STRING, MAX_IN_VALUES, Op,
};
pub use limits::{HARD_MAX_DEPTH, StoreConfig};
pub use names::{MAX_COLLECTION_LEN, MAX_INDEX_NAME_LEN, MAX_PATH_DEPTH, MAX_PATH_LEN};
pub use query::{MAX_PER_PAGE, MAX_SORT_KEYS, Page, Paging, Query, Sort};
pub use spec::{
    CollectionInfo, CollectionSpec, FieldType, IndexField, IndexSpec, MAX_INDEXES, OnDelete,
    ReferenceSpec,
};
pub use store::{MAX_BATCH, PostgresConfig, Store};
pub use transfer::Explain;
pub use tx::{MAX_META_SCAN, MAX_TX_BATCH, Tx};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
