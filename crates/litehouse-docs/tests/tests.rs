//! The integration binary: one conformance suite, run against SQLite always and against
//! PostgreSQL when `LITEHOUSE_TEST_PG` is set.

mod changes;
mod conformance;
mod crud;
mod defects;
mod eval;
mod fanout;
mod hostile;
mod indexes;
mod limits;
mod property;
mod util;
