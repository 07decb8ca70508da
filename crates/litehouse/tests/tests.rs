//! Integration tests of the engine: one binary, one module per area (see STYLE.md).

mod buffer;
mod child;
mod concurrency;
mod crash;
mod errors;
mod hostile;
mod lifecycle;
mod locking;
mod logdb;
mod maintenance;
mod regressions;
mod util;
