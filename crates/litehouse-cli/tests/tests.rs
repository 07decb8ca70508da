//! Integration tests: each runs the real `litehouse` binary.

mod migrate;
mod serve;
mod sync_faults;
