//! The demo's own server (`litehouse serve`'s, in-process on loopback), and the checks on a
//! server given with `--server`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use litehouse_docs::{CollectionSpec, Store};
use litehouse_server::{DbTarget, ServeError, Server, ServerConfig, TokenFile};
use serde_json::json;

use super::COLLECTION;

/// Checks that `url` is a litehouse server with the transactions collection, creating it
/// when it is missing and allowed. A device token may only sync, so the collection routes are
/// tried with the token and then without one (a loopback server without --require-token
/// answers those).
pub(super) async fn check_server(url: &str, token: Option<&str>) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let health = client
        .get(format!("{url}/api/health"))
        .send()
        .await
        .with_context(|| {
            format!("no litehouse server answers at {url}: start one with `litehouse serve`")
        })?;
    anyhow::ensure!(
        health.status().is_success(),
        "{url}/api/health answered {}: is this a litehouse server?",
        health.status()
    );
    let mut missing = false;
    for auth in token.map(Some).into_iter().chain([None]) {
        let with_auth = |request: reqwest::RequestBuilder| match auth {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let found = with_auth(client.get(format!("{url}/api/collections/{COLLECTION}")))
            .send()
            .await?
            .status();
        if found.is_success() {
            return Ok(());
        }
        if found == reqwest::StatusCode::NOT_FOUND {
            missing = true;
            let created = with_auth(client.post(format!("{url}/api/collections")))
                .json(&json!({ "name": COLLECTION }))
                .send()
                .await?
                .status();
            if created.is_success() || created == reqwest::StatusCode::CONFLICT {
                return Ok(());
            }
        }
    }
    anyhow::ensure!(
        !missing,
        "the server has no {COLLECTION:?} collection and the demo may not create it; create \
         it with: curl -X POST {url}/api/collections -H 'content-type: application/json' \
         -H 'authorization: Bearer WRITE_TOKEN' -d '{{\"name\":\"{COLLECTION}\"}}'"
    );
    // Neither readable nor known missing (a device token on a server that requires tokens):
    // the pushes tell, as rejections in the status and the sync log.
    Ok(())
}

/// `litehouse serve`'s server, in-process on 127.0.0.1:0, over a SQLite file in `dir`, with
/// tokens required and one device token per device.
pub(super) struct LocalServer {
    pub(super) dir: PathBuf,
    pub(super) url: String,
    pub(super) dashboard: String,
    tokens: TokenFile,
    /// Token ids to revoke when the demo ends.
    issued: Vec<String>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl LocalServer {
    pub(super) async fn start(dir: &Path) -> anyhow::Result<LocalServer> {
        let target = DbTarget::Sqlite(dir.join("server.db"));
        let (store, database) = target.open().await?;
        ensure_collection(&store).await?;
        let admin_token = litehouse_server::load_or_create_admin_token(&target.admin_token_path())
            .context("could not create the demo server's admin token")?;
        let config = ServerConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: admin_token.clone(),
            token_file: Some(target.token_file_path()),
            require_token: true,
            ..ServerConfig::default()
        };
        let server = Server::bind(config, store, database).await?;
        let addr = server.local_addr();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(LocalServer {
            dir: dir.to_owned(),
            url: format!("http://{addr}"),
            dashboard: format!("http://{addr}/#token={admin_token}"),
            tokens: TokenFile::new(target.token_file_path()),
            issued: Vec::new(),
            shutdown,
            task,
        })
    }

    /// A new device token for `device`, revoked when the demo ends.
    pub(super) fn device_token(&mut self, device: &str) -> anyhow::Result<String> {
        let (record, token) = self
            .tokens
            .create_device("litehouse demo", device)
            .context("could not create a device token")?;
        self.issued.push(record.id);
        Ok(token)
    }

    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.task
            .await
            .context("the demo server panicked")?
            .context("the demo server did not stop cleanly")?;
        for id in &self.issued {
            self.tokens
                .revoke(id)
                .context("could not revoke a demo token")?;
        }
        Ok(())
    }
}

async fn ensure_collection(store: &Store) -> anyhow::Result<()> {
    let exists = store
        .list_collections()
        .await?
        .iter()
        .any(|c| c.name == COLLECTION);
    if !exists {
        store
            .create_collection(COLLECTION, CollectionSpec::default())
            .await?;
    }
    Ok(())
}
