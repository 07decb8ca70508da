//! Integration tests: each runs the real `litehouse` binary.

mod demo;
mod migrate;
mod serve;
mod sync_faults;
