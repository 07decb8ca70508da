//! Integration tests of litehouse-sync (one test binary).

mod child;
mod device;
mod device_prop;
mod http;
mod machine;
mod proxy;
mod sim;
mod store_server;
