//! litehouse-server: the document store ([`litehouse_docs::Store`]) over HTTP.
//!
//! - [`ServerConfig`]: bind address, admin token, token file, limits, CORS.
//! - [`app`]: the axum [`Router`](axum::Router) with every route over an [`AppState`];
//!   tests and embedders use it directly.
//! - [`Server`]: binds (refusing a non-loopback address without `require_token`), serves
//!   until [`shutdown_signal`] or any future, then closes the database.
//! - [`ApiError`]: the one error shape `{status, code, message, details}`.
//! - [`parse_list_query`]: the PostgREST-style list grammar.
//! - [`TokenFile`] and [`Scope`]: API tokens, stored hashed.
//! - [`Heartbeats`]: when each sync device was last seen, and what its pushes had rejected,
//!   written through the engine's write buffer; `/api/debug/sync/devices` lists them.
//! - [`debug_router`] over [`DebugHandles`]: engine stats, buffer flush, maintenance and
//!   logs as a router any axum application can nest.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use litehouse_server::{DbTarget, Server, ServerConfig, shutdown_signal};
//! let target: DbTarget = "sqlite:litehouse.db".parse()?;
//! let (store, database) = target.open().await?;
//! let config = ServerConfig { admin_token: "secret".into(), ..ServerConfig::default() };
//! let server = Server::bind(config, store, database).await?;
//! println!("http://{}/api", server.local_addr());
//! server.run(shutdown_signal()).await?;
//! # Ok(())
//! # }
//! ```
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
#![warn(missing_docs)]

mod api;
mod app;
mod auth;
mod config;
mod dashboard;
mod debug;
mod devices;
mod error;
mod extract;
mod metrics;
mod openapi;
mod query_params;
mod realtime;
mod serve;
mod state;

pub use app::app;
pub use auth::{
    Scope, TokenFile, TokenRecord, generate_token, load_or_create_admin_token, valid_device_id,
};
pub use config::ServerConfig;
pub use debug::{DebugHandles, debug_router};
pub use devices::{
    HEARTBEAT_TABLE, HeartbeatStats, Heartbeats, MAX_REJECTIONS_PER_DEVICE, ONLINE_WINDOW,
    REJECTION_TABLE, SyncRoute,
};
pub use error::ApiError;
pub use extract::{ApiJson, ApiPath, RawQuery};
pub use query_params::{ListLimits, PathTypes, parse_list_query, path_types};
pub use serve::{DbTarget, ServeError, Server, shutdown_signal};
pub use state::AppState;
