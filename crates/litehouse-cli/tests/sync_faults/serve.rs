//! The server process: `litehouse serve` started, killed and restarted on one port, device
//! tokens, and the per-backend harness (a SQLite file, or a PostgreSQL schema dropped after).

use super::*;

/// Where and how `litehouse serve` runs; restarts reuse it (same database, port and tokens).
pub(crate) struct ServeSpec {
    pub(crate) dir: PathBuf,
    pub(crate) db: String,
    pub(crate) port: u16,
    pub(crate) token_file: PathBuf,
}

/// A running `litehouse serve`.
pub(crate) struct ServeProc {
    pub(crate) child: tokio::process::Child,
    pub(crate) stdout: tokio::task::JoinHandle<()>,
}

impl ServeSpec {
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Starts `litehouse serve` on the spec's port and waits for its API line. Retries while
    /// the port is still held by the previous (killed) process.
    pub(crate) async fn start(&self, nth: u32) -> ServeProc {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let stderr_path = self.dir.join(format!("serve-{nth}-{attempt}.stderr"));
            match self.try_start(&stderr_path).await {
                Ok(proc) => return proc,
                Err(why) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(15),
                        "litehouse serve did not start: {why}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    pub(crate) async fn try_start(&self, stderr_path: &Path) -> Result<ServeProc, String> {
        let stderr = std::fs::File::create(stderr_path).map_err(|e| e.to_string())?;
        let bind = self.addr().to_string();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_litehouse"))
            .env_remove("LITEHOUSE_ADMIN_TOKEN")
            .current_dir(&self.dir)
            .arg("serve")
            .args(["--db", &self.db, "--bind", &bind, "--admin-token", ADMIN])
            .arg("--require-token")
            .arg("--token-file")
            .arg(&self.token_file)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(15), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("API:") {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
            return Err(format!("no API line ({ready:?}); stderr: {stderr}"));
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        let stdout =
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ServeProc { child, stdout })
    }
}

impl ServeProc {
    /// SIGKILL, and wait until the process is gone.
    pub(crate) async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL litehouse serve");
        let status = self.child.wait().await.expect("wait for litehouse serve");
        assert!(!status.success(), "a killed server exits unsuccessfully");
        self.stdout.await.expect("stdout reader");
    }
}

/// `litehouse token create --device ID`: the token (printed once).
pub(crate) async fn device_token(spec: &ServeSpec, device: &str) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_litehouse"))
        .current_dir(&spec.dir)
        .args(["token", "create", "--db", &spec.db, "--device", device])
        .arg("--token-file")
        .arg(&spec.token_file)
        .output()
        .await
        .expect("run litehouse token create");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("lh_"), "{token}");
    token
}

pub(crate) async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(PathBuf, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    scenario(dir.path().to_owned(), db).await;
}

/// Runs `scenario` against a fresh PostgreSQL schema (dropped after, whatever happened), or
/// says it skipped when `LITEHOUSE_TEST_PG` is not set.
pub(crate) async fn on_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(PathBuf, String) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let Some(url) = std::env::var("LITEHOUSE_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: LITEHOUSE_TEST_PG not set");
        return;
    };
    let schema = format!(
        "lh_syncfault_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let separator = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{separator}schema={schema}");
    let dir = tempfile::tempdir().unwrap();
    // In a task, so the schema is dropped (after the server process is killed with the
    // scenario's state) even when the scenario panics.
    let outcome = tokio::spawn(scenario(dir.path().to_owned(), db)).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .unwrap();
    drop(client);
    let _ = conn_task.await;
    drop(dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
