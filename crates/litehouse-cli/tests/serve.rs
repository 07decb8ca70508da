//! `litehouse serve` as a child process: it prints its URLs, answers, and exits cleanly on
//! SIGTERM; `litehouse token` manages the token file the server reads.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value as Json, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn litehouse() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_litehouse"));
    command.env_remove("LITEHOUSE_ADMIN_TOKEN");
    command
}

/// A running `litehouse serve`; a thread keeps reading its stdout.
struct Running {
    child: Child,
    rest: std::thread::JoinHandle<Vec<String>>,
}

impl Running {
    /// Sends SIGTERM, waits, and returns whether it exited 0 and the rest of its stdout.
    fn terminate(mut self) -> Result<(bool, Vec<String>), Box<dyn std::error::Error>> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        assert!(status.success());
        let exit = self.child.wait()?;
        let rest = self.rest.join().map_err(|_| "stdout reader panicked")?;
        Ok((exit.success(), rest))
    }
}

/// Starts `litehouse serve ARGS` and reads stdout until the API line; returns the server,
/// its base URL and the lines read so far.
fn start(args: &[&str]) -> Result<(Running, String, Vec<String>), Box<dyn std::error::Error>> {
    let mut child = litehouse()
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout).lines();
    while let Some(line) = reader.next() {
        let line = line?;
        lines.push(line.clone());
        if let Some(url) = line.strip_prefix("API:") {
            let base = url
                .trim()
                .strip_suffix("/api/collections")
                .ok_or("API line")?
                .to_owned();
            let rest = std::thread::spawn(move || reader.map_while(Result::ok).collect());
            return Ok((Running { child, rest }, base, lines));
        }
    }
    let output = child.wait_with_output()?;
    Err(format!(
        "serve exited early: {lines:?} {}",
        String::from_utf8_lossy(&output.stderr)
    )
    .into())
}

#[test]
fn serve_answers_and_stops_cleanly_on_sigterm() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite:{}", dir.path().join("app.db").display());
    let (server, base, lines) = start(&["--db", &db, "--bind", "127.0.0.1:0"])?;
    let admin_file = dir.path().join("app.admin-token");
    assert!(
        lines.iter().any(|line| line.contains("app.admin-token")),
        "{lines:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&admin_file)?.permissions().mode() & 0o777,
            0o600
        );
    }
    let admin_token = std::fs::read_to_string(&admin_file)?.trim().to_owned();
    let dashboard = format!("/#token={admin_token}");
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("dashboard:") && line.ends_with(&dashboard)),
        "{lines:?}"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let health: Json = client
            .get(format!("{base}/api/health"))
            .send()
            .await?
            .json()
            .await?;
        assert_eq!(health["status"], "ok");
        let created = client
            .post(format!("{base}/api/collections"))
            .json(&json!({"name": "notes"}))
            .send()
            .await?;
        assert_eq!(created.status(), 201);
        let doc = client
            .post(format!("{base}/api/collections/notes/docs"))
            .json(&json!({"text": "kept"}))
            .send()
            .await?;
        assert_eq!(doc.status(), 201);
        let debug = client
            .get(format!("{base}/api/debug/db/stats"))
            .send()
            .await?;
        assert_eq!(debug.status(), 401);
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    let (success, rest) = server.terminate()?;
    assert!(success, "{rest:?}");
    assert_eq!(rest, ["litehouse stopped cleanly"]);
    // The server's own events went to the log database beside the data.
    let log_file = dir.path().join("app-logs.db");
    let logged = litehouse().args(["logs", "--db"]).arg(&log_file).output()?;
    let logged = String::from_utf8_lossy(&logged.stdout);
    assert!(logged.contains("serving"), "{logged}");

    // A restart reuses the admin token and still has the document.
    let (server, base, _) = start(&["--db", &db, "--bind", "127.0.0.1:0"])?;
    assert_eq!(
        std::fs::read_to_string(&admin_file)?.trim(),
        admin_token.as_str()
    );
    let page: Json = runtime.block_on(async {
        reqwest::get(format!("{base}/api/collections/notes/docs"))
            .await?
            .json::<Json>()
            .await
    })?;
    assert_eq!(page["items"][0]["text"], "kept");
    assert!(server.terminate()?.0);
    Ok(())
}

#[test]
fn serve_refuses_a_public_address_without_require_token() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite:{}", dir.path().join("app.db").display());
    let output = litehouse()
        .args(["serve", "--db", &db, "--bind", "0.0.0.0:0"])
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--require-token"), "{stderr}");
    Ok(())
}

#[test]
fn tokens_are_created_listed_and_revoked() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite:{}", dir.path().join("app.db").display());
    let created = litehouse()
        .args([
            "token", "create", "--db", &db, "--scope", "read", "--name", "ci",
        ])
        .output()?;
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8(created.stdout)?.trim().to_owned();
    assert!(token.starts_with("lh_"), "{token}");
    let stored = std::fs::read_to_string(dir.path().join("app.tokens.json"))?;
    assert!(!stored.contains(&token), "the token itself is never stored");

    let listed = litehouse().args(["token", "list", "--db", &db]).output()?;
    let listed = String::from_utf8(listed.stdout)?;
    let id = listed.split('\t').next().ok_or("an id")?.to_owned();
    assert!(listed.contains("\tread\tci"), "{listed}");
    let bad_scope = litehouse()
        .args(["token", "create", "--db", &db, "--scope", "root"])
        .output()?;
    assert_eq!(bad_scope.status.code(), Some(2));

    // The server reads the file: the read token passes --require-token until revoked.
    let (server, base, _) = start(&["--db", &db, "--bind", "127.0.0.1:0", "--require-token"])?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = |token: &str| {
        runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{base}/api/collections"))
                .bearer_auth(token)
                .send()
                .await
                .map(|response| response.status().as_u16())
        })
    };
    assert_eq!(status(&token)?, 200);
    let revoked = litehouse()
        .args(["token", "revoke", "--db", &db, &id])
        .output()?;
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(status(&token)?, 401);
    let again = litehouse()
        .args(["token", "revoke", "--db", &db, &id])
        .output()?;
    assert_eq!(again.status.code(), Some(2));
    assert!(server.terminate()?.0);
    Ok(())
}
