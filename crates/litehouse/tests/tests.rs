//! Integration tests of the engine: one binary, one module per area (see STYLE.md).

mod child;
mod concurrency;
mod crash;
mod errors;
mod lifecycle;
mod locking;
mod maintenance;
mod util;
