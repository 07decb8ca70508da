//! Offline-first sync between edge devices and a litehouse server.
//!
//! - [`protocol`](crate::PushRequest): the JSON wire types (push with producer id, epoch and
//!   gapless sequence; pull over an opaque cursor) and the last-writer-wins order
//!   ([`lww_wins`]).
//! - [`admit`]: the server's push decision (duplicate / apply / gap / stale epoch) without I/O.
//! - [`SyncMachine`]: the device's sync logic without I/O: events in, actions out.
//! - [`SyncDriver`]: runs the machine on tokio over an [`HttpTransport`] and a local [`Replica`].
//! - [`Device`]: a synced store over a local litehouse document store (one SQLite file): local
//!   writes commit with their outbox entry and never wait for the network; a [`SyncDriver`]
//!   pushes and pulls in the background; [`pull_apply`] measures the pull-apply path.
//! - [`router`]: the server's push and pull routes over a [`litehouse_docs::Store`].
//! - [`FaultProxy`]: a TCP proxy for tests that drops, hangs, resets or delays connections.

mod bench;
mod device;
mod devices;
mod driver;
mod fault_proxy;
mod identity;
mod machine;
mod outbox;
mod producer;
mod protocol;
mod rejections;
mod replica;
mod server;
mod transport;

pub use bench::{PullApplyReport, pull_apply, push_requests};
pub use device::{Device, DeviceConfig, DeviceError, DeviceStatus, SyncLogEntry};
pub use devices::{ProducerEntry, list_producers};
pub use driver::{DriverStopped, Replica, SyncDriver};
pub use fault_proxy::{FaultMode, FaultProxy};
pub use machine::{
    Action, Event, GROW_AFTER, LogRecord, Millis, PullFailure, PushFailure, SyncConfig,
    SyncMachine, SyncState, SyncStatus,
};
pub use producer::{Admission, AdmitError, ProducerState, admit};
pub use protocol::{
    GapResponse, Hlc, Op, OutboxEntry, PullResponse, PulledChange, PushRequest, PushResponse,
    Rejection, StaleEpochResponse, lww_wins,
};
pub use rejections::MAX_REMEMBERED_REJECTIONS;
pub use server::{
    DeviceIdentity, MAX_PULL_PAGE, MAX_PUSHES, PushAcknowledged, RouterConfig, router, router_with,
    sync_origin,
};
pub use transport::HttpTransport;
