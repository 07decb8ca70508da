//! `litehouse serve` and `litehouse token`: thin wrappers over litehouse-server.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use litehouse_server::{DbTarget, Scope, Server, ServerConfig, TokenFile};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The database: sqlite:FILE or postgres://USER@HOST:PORT/DB[?schema=NAME].
    #[arg(long, default_value = "sqlite:litehouse.db")]
    db: DbTarget,
    /// Address to listen on. A non-loopback address needs --require-token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// The admin token for /api/debug routes. Without it (or LITEHOUSE_ADMIN_TOKEN), one is
    /// generated on first start and kept in a 0600 file beside the database.
    #[arg(long, env = "LITEHOUSE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The API token file (default: beside the database, e.g. litehouse.tokens.json).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Data routes need a token even on loopback.
    #[arg(long)]
    require_token: bool,
    /// Allow cross-origin requests from this origin (repeatable); CORS is off without it.
    #[arg(long = "cors", value_name = "ORIGIN")]
    cors: Vec<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = ServerConfig::default().body_limit)]
    body_limit: usize,
    /// Most documents in one batch POST.
    #[arg(long, default_value_t = ServerConfig::default().max_batch)]
    max_batch: usize,
    /// Most comparisons in one list filter.
    #[arg(long, default_value_t = ServerConfig::default().max_filter_clauses)]
    max_filter_clauses: usize,
    /// Deepest nesting of or/and/not groups in a list filter.
    #[arg(long, default_value_t = ServerConfig::default().max_filter_depth)]
    max_filter_depth: usize,
    /// Seconds a read may run, or a request body may take to arrive, before it is answered 503.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Requests served at once; more are answered 503 rather than queued.
    #[arg(long, default_value_t = ServerConfig::default().max_concurrent_requests)]
    max_concurrent_requests: usize,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    /// The database whose server the tokens are for (tokens live in a file beside it).
    #[arg(long, default_value = "sqlite:litehouse.db", global = true)]
    db: DbTarget,
    /// The token file, instead of the one beside the database.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    action: TokenAction,
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Create a token and print it (shown only this once).
    Create {
        /// What the token may do: read, write (includes read) or admin (includes write).
        /// Not with --device.
        #[arg(long, required_unless_present = "device", conflicts_with = "device")]
        scope: Option<Scope>,
        /// A device token instead: it may only sync (push and pull) as this device id.
        #[arg(long)]
        device: Option<String>,
        /// A label to recognise the token by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (id, scope, name; never the token).
    List,
    /// Revoke a token by id; the running server refuses it from the next request.
    Revoke {
        /// The token's id, as printed by create and list.
        id: String,
    },
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    let ServeArgs {
        db,
        bind,
        admin_token,
        token_file,
        require_token,
        cors,
        body_limit,
        max_batch,
        max_filter_clauses,
        max_filter_depth,
        request_timeout,
        max_concurrent_requests,
    } = args;
    let admin_token_path = db.admin_token_path();
    let (admin_token, generated) = match admin_token.filter(|token| !token.trim().is_empty()) {
        Some(token) => (token, false),
        None => {
            let token = litehouse_server::load_or_create_admin_token(&admin_token_path)
                .with_context(|| {
                    format!("could not read or create {}", admin_token_path.display())
                })?;
            (token, true)
        }
    };
    let config = ServerConfig {
        bind,
        admin_token,
        token_file: Some(token_file.unwrap_or_else(|| db.token_file_path())),
        require_token,
        body_limit,
        max_batch,
        max_filter_clauses,
        max_filter_depth,
        request_timeout: Duration::from_secs(request_timeout.max(1)),
        max_concurrent_requests,
        cors_origins: cors,
        backup_dir: match &db {
            DbTarget::Sqlite(path) => Some(
                path.parent()
                    .filter(|parent| !parent.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), PathBuf::from),
            ),
            DbTarget::Postgres { .. } => None,
        },
        ..ServerConfig::default()
    };
    // The server's own events go to the log database beside the data, where
    // /api/debug/logs and `litehouse logs` read them.
    let log_path = db.log_path();
    let logs = litehouse::LogDatabase::open(&log_path, litehouse::LogConfig::default())
        .with_context(|| format!("could not open the log database {}", log_path.display()))?;
    {
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(logs.layer());
        // Only fails when a subscriber is already set (e.g. by an embedding test harness).
        let _ = tracing::subscriber::set_global_default(subscriber);
    }
    let admin_token_for_url = config.admin_token.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async {
        let (store, database) = db.open().await?;
        let server = Server::bind(config, store, database).await?.with_logs(logs);
        let addr = server.local_addr();
        println!("litehouse serving {db}");
        if generated {
            // The token rides in the fragment, which browsers never send to the server.
            println!("dashboard: http://{addr}/#token={admin_token_for_url}");
            println!("admin token: in {}", admin_token_path.display());
        } else {
            println!("dashboard: http://{addr}/ (asks for the admin token)");
        }
        println!("health: http://{addr}/api/health");
        println!("logs:   {}", log_path.display());
        println!("API:    http://{addr}/api/collections");
        server.run(litehouse_server::shutdown_signal()).await?;
        // Whoever started us may have closed our stdout by now; that is not a failure.
        let _ = writeln!(std::io::stdout(), "litehouse stopped cleanly");
        anyhow::Ok(())
    })
}

pub(crate) fn token(args: TokenArgs) -> anyhow::Result<()> {
    let TokenArgs {
        db,
        token_file,
        action,
    } = args;
    let file = TokenFile::new(token_file.unwrap_or_else(|| db.token_file_path()));
    let context = || format!("token file {}", file.path().display());
    match action {
        TokenAction::Create {
            scope,
            device,
            name,
        } => {
            let (record, token) = match (device, scope) {
                (Some(device), _) => file.create_device(&name, &device),
                (None, Some(scope)) => file.create(&name, scope),
                (None, None) => anyhow::bail!("give --scope or --device"),
            }
            .with_context(context)?;
            println!("{token}");
            eprintln!(
                "created token {} ({}) in {}; it is shown only now",
                record.id,
                record.scope,
                file.path().display()
            );
        }
        TokenAction::List => {
            for record in file.list().with_context(context)? {
                let scope = match &record.device {
                    Some(device) => format!("device:{device}"),
                    None => record.scope.to_string(),
                };
                println!("{}\t{scope}\t{}", record.id, record.name);
            }
        }
        TokenAction::Revoke { id } => {
            anyhow::ensure!(
                file.revoke(&id).with_context(context)?,
                "no token with id {id:?} in {}",
                file.path().display()
            );
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}
