//! [`ServerConfig`]: everything `serve` needs to know, with safe defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Server settings. Defaults bind loopback and keep every limit finite.
///
/// ```
/// use litehouse_server::ServerConfig;
/// let config = ServerConfig { require_token: true, ..ServerConfig::default() };
/// assert!(config.bind.ip().is_loopback());
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The admin token (already resolved from the flag, the environment or the token file).
    pub admin_token: String,
    /// Where API tokens are kept (see [`TokenFile`](crate::TokenFile)); `None` accepts only
    /// the admin token.
    pub token_file: Option<PathBuf>,
    /// Data routes need a token even on loopback. Required to bind a non-loopback address.
    pub require_token: bool,
    /// Largest request body in bytes (413 above).
    pub body_limit: usize,
    /// Most documents in one batch POST (413 above).
    pub max_batch: usize,
    /// Most comparisons in one list filter.
    pub max_filter_clauses: usize,
    /// Deepest nesting of filter groups.
    pub max_filter_depth: usize,
    /// Largest `perPage`.
    pub max_per_page: u64,
    /// A read running longer, or a request body arriving slower, is answered 503. A write
    /// already handed to the store is not cut off (it might still commit); the engine's busy
    /// budget bounds it instead.
    pub request_timeout: Duration,
    /// Requests served at once; more are answered 503 at once rather than queued.
    pub max_concurrent_requests: usize,
    /// Origins allowed by CORS; empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Where `POST /api/debug/db/backup` writes copies; `None` refuses backups.
    pub backup_dir: Option<PathBuf>,
    /// Most open `/api/realtime` subscriptions; more are answered 503.
    pub max_realtime_subscribers: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: String::new(),
            token_file: None,
            require_token: false,
            body_limit: 1024 * 1024,
            max_batch: 1000,
            max_filter_clauses: 50,
            max_filter_depth: 8,
            max_per_page: litehouse_docs::MAX_PER_PAGE,
            request_timeout: Duration::from_secs(30),
            max_concurrent_requests: 512,
            cors_origins: Vec::new(),
            backup_dir: None,
            max_realtime_subscribers: 1000,
        }
    }
}
