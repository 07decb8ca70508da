//! The HTTP handlers, one file per route group.

pub(crate) mod collections;
pub(crate) mod docs;
pub(crate) mod health;
