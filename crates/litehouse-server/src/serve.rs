//! Opening the database, binding, serving until a signal, and closing cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use litehouse_docs::{PostgresConfig, Store};
use tokio::net::TcpListener;

use crate::app::app;
use crate::config::ServerConfig;
use crate::debug::DebugHandles;
use crate::devices::Heartbeats;
use crate::state::AppState;

/// Where the served database lives: `sqlite:FILE` or `postgres://...[?schema=NAME]`.
///
/// ```
/// use litehouse_server::DbTarget;
/// let target: DbTarget = "sqlite:app.db".parse().unwrap();
/// assert_eq!(target.admin_token_path(), std::path::Path::new("app.admin-token"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbTarget {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database and schema.
    Postgres {
        /// The URL without the `schema` parameter.
        url: String,
        /// The schema holding the collections.
        schema: String,
    },
}

impl FromStr for DbTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<DbTarget, String> {
        if let Some(path) = text.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("sqlite: needs a file name, e.g. sqlite:app.db".into());
            }
            return Ok(DbTarget::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return Ok(split_schema(text));
        }
        Err(format!(
            "{text:?} is not a database: write sqlite:FILE or postgres://USER@HOST:PORT/DB[?schema=NAME]"
        ))
    }
}

/// Takes `schema=NAME` out of the URL's query, which the PostgreSQL driver would refuse.
fn split_schema(text: &str) -> DbTarget {
    let (base, query) = text.split_once('?').unwrap_or((text, ""));
    let mut schema = "public".to_owned();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.strip_prefix("schema=") {
            Some(name) => schema = name.to_owned(),
            None => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    DbTarget::Postgres { url, schema }
}

impl DbTarget {
    /// The admin token file: beside a SQLite file (`app.db` → `app.admin-token`), or
    /// `litehouse.admin-token` in the working directory for PostgreSQL.
    pub fn admin_token_path(&self) -> PathBuf {
        self.beside("admin-token")
    }

    /// The API token file: `app.tokens.json` beside a SQLite file, or
    /// `litehouse.tokens.json` in the working directory for PostgreSQL.
    pub fn token_file_path(&self) -> PathBuf {
        self.beside("tokens.json")
    }

    /// The log database: `app-logs.db` beside a SQLite file, `litehouse-logs.db` otherwise.
    pub fn log_path(&self) -> PathBuf {
        match self {
            DbTarget::Sqlite(path) => {
                let stem = path.file_stem().map_or_else(
                    || "litehouse".to_owned(),
                    |stem| stem.to_string_lossy().into_owned(),
                );
                path.with_file_name(format!("{stem}-logs.db"))
            }
            DbTarget::Postgres { .. } => PathBuf::from("litehouse-logs.db"),
        }
    }

    fn beside(&self, extension: &str) -> PathBuf {
        match self {
            DbTarget::Sqlite(path) => path.with_extension(extension),
            DbTarget::Postgres { .. } => PathBuf::from("litehouse").with_extension(extension),
        }
    }

    /// Opens the store; for SQLite also returns the engine handle, to close it at shutdown.
    ///
    /// # Errors
    /// [`ServeError::Open`] when the file or server cannot be opened.
    pub async fn open(&self) -> Result<(Store, Option<litehouse::Database>), ServeError> {
        let opened = match self {
            DbTarget::Sqlite(path) => {
                let database = litehouse::Database::open(path, litehouse::Config::default())
                    .map_err(litehouse_docs::Error::from);
                match database {
                    Ok(database) => Store::from_database(database.clone())
                        .await
                        .map(|store| (store, Some(database))),
                    Err(err) => Err(err),
                }
            }
            DbTarget::Postgres { url, schema } => Store::open_postgres_with(PostgresConfig {
                url: url.clone(),
                schema: schema.clone(),
                ..PostgresConfig::default()
            })
            .await
            .map(|store| (store, None)),
        };
        opened.map_err(|source| ServeError::Open {
            target: self.to_string(),
            source,
        })
    }
}

impl std::fmt::Display for DbTarget {
    /// The target without a password, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbTarget::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            DbTarget::Postgres { url, schema } => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let rest = match rest.split_once('@') {
                    Some((user, host)) => match user.split_once(':') {
                        Some((name, _password)) => format!("{name}:***@{host}"),
                        None => rest.to_owned(),
                    },
                    None => rest.to_owned(),
                };
                write!(f, "{scheme}://{rest} (schema {schema})")
            }
        }
    }
}

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address without `require_token` would expose open data routes.
    #[error(
        "refusing to bind {addr}: it is not a loopback address, and data routes are open \
         without --require-token; pass --require-token (and create tokens with \
         `litehouse token create`) or bind 127.0.0.1"
    )]
    InsecureBind {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address could not be bound.
    #[error("could not bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error("could not open {target}: {source}")]
    Open {
        /// The database, without its password.
        target: String,
        /// The cause.
        source: litehouse_docs::Error,
    },
    /// The admin token is empty.
    #[error("the admin token is empty")]
    EmptyAdminToken,
    /// Serving failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    /// The database did not close cleanly.
    #[error("closing the database: {0}")]
    Close(litehouse::Error),
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
    store: Store,
    database: Option<litehouse::Database>,
    logs: Option<litehouse::LogDatabase>,
    local_addr: SocketAddr,
}

impl Server {
    /// Binds `config.bind` for `store`. Pass the engine handle of a SQLite store as
    /// `database` so that shutdown drains its write queue and closes it.
    ///
    /// # Errors
    /// [`ServeError::InsecureBind`] for a non-loopback address without `require_token`,
    /// [`ServeError::EmptyAdminToken`], [`ServeError::Bind`].
    pub async fn bind(
        config: ServerConfig,
        store: Store,
        database: Option<litehouse::Database>,
    ) -> Result<Server, ServeError> {
        let addr = config.bind;
        if !addr.ip().is_loopback() && !config.require_token {
            return Err(ServeError::InsecureBind { addr });
        }
        if config.admin_token.trim().is_empty() {
            return Err(ServeError::EmptyAdminToken);
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener.local_addr()?;
        Ok(Server {
            listener,
            config,
            store,
            database,
            logs: None,
            local_addr,
        })
    }

    /// Serves `/api/debug/logs` from `logs` and shuts it down (flushing it) after the
    /// database closes. Feed it the server's own events with its
    /// [`layer`](litehouse::LogDatabase::layer).
    pub fn with_logs(mut self, logs: litehouse::LogDatabase) -> Server {
        self.logs = Some(logs);
        self
    }

    /// The bound address (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, then closes the
    /// SQLite database (draining its write queue).
    ///
    /// # Errors
    /// [`ServeError::Io`] when accepting fails, [`ServeError::Close`] when the database
    /// does not close cleanly.
    pub async fn run<F>(self, shutdown: F) -> Result<(), ServeError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Server {
            listener,
            config,
            store,
            database,
            logs,
            local_addr,
        } = self;
        // Heartbeats are bookkeeping: a server that cannot keep them (say another process
        // holds the SQLite file's write lock past the busy budget) serves without them, and
        // says so in its log and in /api/debug/sync/devices (`heartbeats: null`).
        let heartbeats = match start_heartbeats(database.as_ref(), logs.as_ref()).await {
            Ok(heartbeats) => Some(heartbeats),
            Err(err) => {
                tracing::warn!(error = %err, "sync heartbeats are off: their tables could not be set up");
                None
            }
        };
        let debug = DebugHandles {
            database: database.clone(),
            buffer: heartbeats
                .as_ref()
                .map(|heartbeats| heartbeats.buffer().clone()),
            logs: logs.clone(),
            backup_dir: config.backup_dir.clone(),
        };
        let state = AppState::with_heartbeats(store, debug, config, heartbeats.clone());
        tracing::info!(%local_addr, "serving");
        // Realtime streams never finish on their own: end them when shutdown starts.
        let realtime = state.realtime().clone();
        let shutdown = async move {
            shutdown.await;
            realtime.close();
        };
        let served = app(state).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, served)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("stopped accepting; closing the database");
        // Before the database closes: the buffer's last flush writes into it.
        if let Some(heartbeats) = heartbeats
            && let Err(err) = heartbeats.stop().await
        {
            tracing::warn!(error = %err, "the last sync heartbeats were not written");
        }
        if let Some(database) = database {
            database.close().await.map_err(ServeError::Close)?;
        }
        if let Some(logs) = logs {
            logs.shutdown().await.map_err(ServeError::Close)?;
        }
        Ok(())
    }
}

/// The database sync heartbeats go to: the log database when there is one (server-local, on
/// both backends, and its own file, so heartbeat flushes never queue behind data writes),
/// else the SQLite store's engine, else (PostgreSQL without a log database) an in-memory
/// database that lives as long as the server.
async fn start_heartbeats(
    database: Option<&litehouse::Database>,
    logs: Option<&litehouse::LogDatabase>,
) -> Result<Heartbeats, litehouse::Error> {
    static MEMORY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let db = match (logs, database) {
        (Some(logs), _) => logs.database().clone(),
        (None, Some(database)) => database.clone(),
        (None, None) => {
            let name = format!(
                "litehouse-heartbeats-{}-{}",
                std::process::id(),
                MEMORY.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            tokio::task::spawn_blocking(move || {
                litehouse::Database::open_memory(&name, litehouse::Config::default())
            })
            .await
            .map_err(|err| litehouse::Error::Panic {
                message: format!("opening the heartbeat database: {err}"),
            })??
        }
    };
    Heartbeats::start(db, litehouse::BufferConfig::default()).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        let check = |text: &str, expected: Result<DbTarget, ()>| {
            assert_eq!(text.parse::<DbTarget>().map_err(|_| ()), expected, "{text}");
        };
        check("sqlite:a.db", Ok(DbTarget::Sqlite("a.db".into())));
        check("sqlite://a.db", Ok(DbTarget::Sqlite("a.db".into())));
        check("sqlite:", Err(()));
        check("mysql://x", Err(()));
        check(
            "postgres://u@h/db?schema=s&sslmode=disable",
            Ok(DbTarget::Postgres {
                url: "postgres://u@h/db?sslmode=disable".into(),
                schema: "s".into(),
            }),
        );
    }

    #[test]
    fn files_sit_beside_the_database() {
        let target = DbTarget::Sqlite("dir/app.db".into());
        assert_eq!(
            target.admin_token_path(),
            PathBuf::from("dir/app.admin-token")
        );
        assert_eq!(
            target.token_file_path(),
            PathBuf::from("dir/app.tokens.json")
        );
        assert_eq!(target.log_path(), PathBuf::from("dir/app-logs.db"));
    }
}
