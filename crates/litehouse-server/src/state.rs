//! [`AppState`]: what every handler shares.

use std::sync::Arc;

use litehouse_docs::Store;

use crate::auth::{Auth, TokenFile};
use crate::config::ServerConfig;
use crate::debug::DebugHandles;
use crate::devices::Heartbeats;
use crate::metrics::Metrics;
use crate::query_params::ListLimits;

/// The state behind the router: the store, the token check and the limits. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    debug: DebugHandles,
    metrics: Metrics,
    auth: Auth,
    list_limits: ListLimits,
    realtime: crate::realtime::Hub,
    heartbeats: Option<Heartbeats>,
    config: ServerConfig,
}

impl AppState {
    /// State for serving `store` with `config`. `debug` holds the engine under a SQLite
    /// store (for `/metrics` and `/api/debug`), and optionally a write buffer and the log
    /// database; leave `debug.database` `None` for PostgreSQL. Sync heartbeats are not
    /// recorded; see [`with_heartbeats`](AppState::with_heartbeats).
    pub fn new(store: Store, debug: DebugHandles, config: ServerConfig) -> AppState {
        AppState::with_heartbeats(store, debug, config, None)
    }

    /// Like [`new`](AppState::new), recording the heartbeats and push rejections of
    /// device-token sync requests in `heartbeats` (shown by `/api/debug/sync/devices`).
    pub fn with_heartbeats(
        store: Store,
        debug: DebugHandles,
        config: ServerConfig,
        heartbeats: Option<Heartbeats>,
    ) -> AppState {
        let ServerConfig {
            bind: _,
            admin_token,
            token_file,
            require_token,
            body_limit: _,
            max_batch: _,
            max_filter_clauses,
            max_filter_depth,
            max_per_page,
            request_timeout: _,
            max_concurrent_requests: _,
            cors_origins: _,
            backup_dir: _,
            max_realtime_subscribers,
        } = &config;
        let auth = Auth::new(
            admin_token,
            token_file.clone().map(TokenFile::new),
            *require_token,
        );
        let list_limits = ListLimits {
            max_clauses: *max_filter_clauses,
            max_depth: *max_filter_depth,
            max_per_page: *max_per_page,
            ..ListLimits::default()
        };
        AppState {
            inner: Arc::new(Inner {
                store,
                debug,
                metrics: Metrics::new(),
                auth,
                list_limits,
                realtime: crate::realtime::Hub::new(*max_realtime_subscribers),
                heartbeats,
                config,
            }),
        }
    }

    /// The document store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration the state was built with.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The SQLite engine, when the store is on SQLite.
    pub fn database(&self) -> Option<&litehouse::Database> {
        self.inner.debug.database.as_ref()
    }

    /// The handles behind the `/api/debug` routes.
    pub fn debug_handles(&self) -> &DebugHandles {
        &self.inner.debug
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Where sync heartbeats go, when they are recorded.
    pub fn heartbeats(&self) -> Option<&Heartbeats> {
        self.inner.heartbeats.as_ref()
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    pub(crate) fn realtime(&self) -> &crate::realtime::Hub {
        &self.inner.realtime
    }

    pub(crate) fn list_limits(&self) -> &ListLimits {
        &self.inner.list_limits
    }
}
