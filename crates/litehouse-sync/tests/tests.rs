//! Integration tests of litehouse-sync (one test binary).

mod machine;
mod proxy;
mod sim;
