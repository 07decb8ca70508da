//! Integration tests: a real server on 127.0.0.1:0 over a real SQLite file, and over
//! PostgreSQL when `LITEHOUSE_TEST_PG` is set.

mod auth;
mod collections;
mod debug;
mod docs;
mod limits;
mod list;
mod openapi;
mod realtime;
mod sync;
mod util;
