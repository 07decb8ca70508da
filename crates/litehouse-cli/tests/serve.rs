//! `litehouse serve` as a child process: it prints its URLs, answers, and exits cleanly on
//! SIGTERM; `litehouse token` manages the token file the server reads.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{Value as Json, json};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

pub(crate) fn litehouse() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_litehouse"));
    command.env_remove("LITEHOUSE_ADMIN_TOKEN");
    command
}

/// A running `litehouse serve`; a thread keeps reading its stdout.
pub(crate) struct Running {
    child: Child,
    rest: std::thread::JoinHandle<Vec<String>>,
}

impl Running {
    /// Sends SIGTERM, waits, and returns whether it exited 0 and the rest of its stdout.
    pub(crate) fn terminate(self) -> Result<(bool, Vec<String>), Box<dyn std::error::Error>> {
        self.signal("TERM")
    }

    /// Sends the signal (`TERM`, `INT`), waits, and returns whether it exited 0 and the rest
    /// of its stdout.
    fn signal(mut self, signal: &str) -> Result<(bool, Vec<String>), Box<dyn std::error::Error>> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()?;
        assert!(status.success());
        let exit = self.child.wait()?;
        let rest = self.rest.join().map_err(|_| "stdout reader panicked")?;
        Ok((exit.success(), rest))
    }
}

/// Starts `litehouse serve ARGS` and reads stdout until the API line; returns the server,
/// its base URL and the lines read so far.
pub(crate) fn start(
    args: &[&str],
) -> Result<(Running, String, Vec<String>), Box<dyn std::error::Error>> {
    start_in(None, args)
}

/// [`start`] in the working directory `dir` (where a PostgreSQL server keeps its log
/// database and token files).
fn start_in(
    dir: Option<&std::path::Path>,
    args: &[&str],
) -> Result<(Running, String, Vec<String>), Box<dyn std::error::Error>> {
    let mut command = litehouse();
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command
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

/// SIGINT and SIGTERM while writes are in flight: the server stops accepting, lets the
/// requests it took finish, drains the write queue and exits 0; after a restart every write
/// it acknowledged with 201 is there.
#[test]
fn a_signal_drains_in_flight_writes() -> TestResult {
    for signal in ["INT", "TERM"] {
        let dir = tempfile::tempdir()?;
        let db = format!("sqlite:{}", dir.path().join("app.db").display());
        let args = ["--db", &db, "--bind", "127.0.0.1:0", "--admin-token", "t"];
        let (server, base, _) = start(&args)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let client = reqwest::Client::new();
        let created = runtime.block_on(
            client
                .post(format!("{base}/api/collections"))
                .json(&json!({"name": "w"}))
                .send(),
        )?;
        assert_eq!(created.status(), 201);
        // 16 writers keep posting; the signal arrives once some writes are acknowledged.
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let writers: Vec<_> = (0..16)
            .map(|writer| {
                let (client, base) = (client.clone(), base.clone());
                let acknowledged = std::sync::Arc::clone(&acknowledged);
                runtime.spawn(async move {
                    for n in 0.. {
                        let sent = client
                            .post(format!("{base}/api/collections/w/docs"))
                            .json(&json!({"writer": writer, "n": n}))
                            .send()
                            .await;
                        // Refused connections and 503s after the signal are not acknowledged.
                        let Ok(response) = sent else { break };
                        if response.status() != 201 {
                            continue;
                        }
                        let Ok(doc) = response.json::<Json>().await else {
                            break;
                        };
                        if let Some(id) = doc["id"].as_str() {
                            acknowledged
                                .lock()
                                .map_err(|_| "poisoned")?
                                .push(id.to_owned());
                        }
                    }
                    Ok::<(), &'static str>(())
                })
            })
            .collect();
        while acknowledged.lock().map_err(|_| "poisoned")?.len() < 200 {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let (success, rest) = server.signal(signal)?;
        assert!(success, "SIG{signal}: {rest:?}");
        assert_eq!(rest, ["litehouse stopped cleanly"], "SIG{signal}");
        for writer in writers {
            runtime.block_on(writer)??;
        }
        let acknowledged = acknowledged.lock().map_err(|_| "poisoned")?.clone();

        let (server, base, _) = start(&args)?;
        let page: Json = runtime.block_on(async {
            client
                .get(format!("{base}/api/collections/w/docs?perPage=1"))
                .send()
                .await?
                .json::<Json>()
                .await
        })?;
        let total = page["totalItems"].as_u64().ok_or("totalItems")?;
        assert!(
            total >= acknowledged.len() as u64,
            "SIG{signal}: {total} < {}",
            acknowledged.len()
        );
        for id in &acknowledged {
            let status = runtime.block_on(async {
                client
                    .get(format!("{base}/api/collections/w/docs/{id}"))
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
            })?;
            assert_eq!(status, 200, "SIG{signal}: acknowledged {id} is missing");
        }
        assert!(server.terminate()?.0);
    }
    Ok(())
}

/// Two `serve` processes on one PostgreSQL database serve the same collections and see
/// each other's writes.
#[test]
fn two_serve_processes_share_one_postgres_database() -> TestResult {
    let Some(url) = std::env::var("LITEHOUSE_TEST_PG")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        eprintln!("note: LITEHOUSE_TEST_PG is not set; the two-server PostgreSQL test was skipped");
        return Ok(());
    };
    let schema = format!("lh_two_serve_{}", std::process::id());
    let separator = if url.contains('?') { '&' } else { '?' };
    let db = format!("{url}{separator}schema={schema}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcome = two_servers(&runtime, &db);
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let task = tokio::spawn(connection);
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await?;
        drop(client);
        let _ = task.await;
        Ok::<(), tokio_postgres::Error>(())
    })?;
    outcome
}

fn two_servers(runtime: &tokio::runtime::Runtime, db: &str) -> TestResult {
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let args = ["--db", db, "--bind", "127.0.0.1:0", "--admin-token", "t"];
    let (a, base_a, _) = start_in(Some(dir_a.path()), &args)?;
    let (b, base_b, _) = start_in(Some(dir_b.path()), &args)?;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, url: String, body: Option<Json>| {
        let request = client.request(method, url);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        runtime.block_on(async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let text = response.text().await?;
            let body = if text.is_empty() {
                Json::Null
            } else {
                serde_json::from_str(&text)?
            };
            Ok::<_, Box<dyn std::error::Error>>((status, body))
        })
    };
    use reqwest::Method;
    // A creates the collection; B serves it.
    let spec = json!({"name": "shared", "indexes": [{"name": "by_n", "fields": [{"path": "n", "type": "number"}]}]});
    assert_eq!(
        call(
            Method::POST,
            format!("{base_a}/api/collections"),
            Some(spec)
        )?
        .0,
        201
    );
    let (status, info) = call(
        Method::GET,
        format!("{base_b}/api/collections/shared"),
        None,
    )?;
    assert_eq!(
        (status, &info["indexes"][0]["name"]),
        (200, &json!("by_n")),
        "{info}"
    );
    // A realtime subscriber on A: B's writes reach it (through the shared change log).
    let mut stream = runtime.block_on(
        client
            .get(format!("{base_a}/api/realtime?collections=shared"))
            .send(),
    )?;
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();
    let (event, _) = next_sse(runtime, &mut stream, &mut buffer)?;
    assert_eq!(event, "upToDate");
    // Writes through one are read through the other, both ways.
    let (status, doc) = call(
        Method::POST,
        format!("{base_b}/api/collections/shared/docs"),
        Some(json!({"n": 1})),
    )?;
    assert_eq!(status, 201, "{doc}");
    let id = doc["id"].as_str().ok_or("id")?.to_owned();
    let (event, change) = next_sse(runtime, &mut stream, &mut buffer)?;
    assert_eq!(
        (
            event.as_str(),
            &change["op"],
            &change["id"],
            &change["document"]["n"]
        ),
        ("change", &json!("create"), &json!(id), &json!(1)),
        "{change}"
    );
    let (status, read) = call(
        Method::GET,
        format!("{base_a}/api/collections/shared/docs/{id}"),
        None,
    )?;
    assert_eq!((status, &read["n"]), (200, &json!(1)), "{read}");
    let (status, patched) = call(
        Method::PATCH,
        format!("{base_a}/api/collections/shared/docs/{id}"),
        Some(json!({"n": 2})),
    )?;
    assert_eq!((status, &patched["version"]), (200, &json!(2)), "{patched}");
    let (_, read) = call(
        Method::GET,
        format!("{base_b}/api/collections/shared/docs/{id}"),
        None,
    )?;
    assert_eq!(
        (&read["n"], &read["version"]),
        (&json!(2), &json!(2)),
        "{read}"
    );
    // Interleaved batches through both land in one collection, and both list all of them.
    for round in 0..5 {
        for base in [&base_a, &base_b] {
            let batch = json!([{"n": 10 + round}, {"n": 100 + round}]);
            let (status, body) = call(
                Method::POST,
                format!("{base}/api/collections/shared/docs"),
                Some(batch),
            )?;
            assert_eq!(status, 201, "{body}");
        }
    }
    for base in [&base_a, &base_b] {
        let (_, page) = call(
            Method::GET,
            format!("{base}/api/collections/shared/docs?n=gte.100"),
            None,
        )?;
        assert_eq!(page["totalItems"], 10, "{page}");
        let (_, page) = call(
            Method::GET,
            format!("{base}/api/collections/shared/docs?perPage=1"),
            None,
        )?;
        assert_eq!(page["totalItems"], 21, "{page}");
    }
    // A delete through B is a 404 through A.
    assert_eq!(
        call(
            Method::DELETE,
            format!("{base_b}/api/collections/shared/docs/{id}"),
            None
        )?
        .0,
        200
    );
    assert_eq!(
        call(
            Method::GET,
            format!("{base_a}/api/collections/shared/docs/{id}"),
            None
        )?
        .0,
        404
    );
    drop(stream);
    assert!(a.terminate()?.0);
    assert!(b.terminate()?.0);
    Ok(())
}

/// The next Server-Sent Event with data on `stream`: its name and JSON data (10 s at most).
fn next_sse(
    runtime: &tokio::runtime::Runtime,
    stream: &mut reqwest::Response,
    buffer: &mut String,
) -> Result<(String, Json), Box<dyn std::error::Error>> {
    loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut event = "message".to_owned();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    event = value.trim().to_owned();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            if !data.is_empty() {
                return Ok((event, serde_json::from_str(&data)?));
            }
            continue;
        }
        let chunk = runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk()).await
        })??;
        buffer.push_str(std::str::from_utf8(&chunk.ok_or("the stream ended")?)?);
    }
}

/// The README's walkthrough, run as written (curl against `litehouse serve` with its
/// defaults in an empty directory): every command succeeds and the lists answer what the
/// text says.
#[test]
fn the_readme_walkthrough_works() -> TestResult {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))?;
    let section = readme
        .split("## From `serve` to a filtered list, with curl")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .ok_or("the README has its curl walkthrough")?;
    // Each ```sh block; a trailing backslash continues a command.
    let commands: Vec<String> = section
        .split("```sh\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .flat_map(|block| {
            block
                .replace("\\\n", " ")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|line| line.starts_with("curl "))
        .collect();
    assert!(commands.len() >= 8, "{commands:?}");

    let dir = tempfile::tempdir()?;
    // The walkthrough's server: `serve` with its default database, in an empty directory.
    let (server, base, _) = start_in(Some(dir.path()), &["--bind", "127.0.0.1:0"])?;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut first_id = None::<String>;
    let mut outputs = Vec::new();
    for command in &commands {
        let mut command = command.replace("localhost:8080", &addr);
        if let Some(id) = &first_id {
            command = command.replace("/docs/ID", &format!("/docs/{id}"));
        }
        let output = Command::new("sh")
            .args(["-c", &format!("{command} --fail-with-body")])
            .current_dir(dir.path())
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{command}: {text}");
        if first_id.is_none()
            && let Some(location) = text.lines().find_map(|line| {
                line.to_ascii_lowercase()
                    .strip_prefix("location: ")
                    .map(str::to_owned)
            })
        {
            first_id = location.trim().rsplit('/').next().map(str::to_owned);
        }
        outputs.push(text);
    }
    assert!(first_id.is_some(), "the first create answers a Location");
    let json = |at: usize| serde_json::from_str::<Json>(outputs[at].trim());
    let names = |page: &Json| -> Vec<String> {
        page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|doc| doc["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // 0 collection, 1-2 documents, 3 adults by age, 4 minors or Parisians, 5 names with an a.
    let adults = json(3)?;
    assert_eq!(names(&adults), ["Cy", "Ada"], "{adults}");
    assert_eq!(adults["totalItems"], 2);
    let mut either = names(&json(4)?);
    either.sort();
    assert_eq!(either, ["Bob", "Cy"]);
    let with_a = json(5)?;
    assert_eq!(names(&with_a), ["Ada"], "{with_a}");
    assert!(with_a["totalItems"].is_null(), "skipTotal: {with_a}");
    let patched = json(6)?;
    assert_eq!(
        (patched["age"].as_i64(), patched.get("city")),
        (Some(37), None),
        "{patched}"
    );
    let stats = json(7)?;
    assert!(
        stats["engine"]["groups"]
            .as_u64()
            .is_some_and(|groups| groups > 0),
        "{stats}"
    );
    assert!(server.terminate()?.0);
    Ok(())
}

/// `--cors ORIGIN` answers that origin's preflight (and no other), and the server's own
/// log lines are readable at `/api/debug/logs` with the admin token.
#[test]
fn serve_flags_cors_and_its_logs_are_served() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite:{}", dir.path().join("app.db").display());
    let args = [
        "--db",
        &db,
        "--bind",
        "127.0.0.1:0",
        "--admin-token",
        "adm",
        "--cors",
        "https://app.example",
    ];
    let (server, base, _) = start(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        runtime.block_on(
            client
                .request(reqwest::Method::OPTIONS, format!("{base}/api/collections"))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .send(),
        )
    };
    let allowed = preflight("https://app.example")?;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = preflight("https://evil.example")?;
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    // The "serving" line reaches the log database shortly after start.
    let mut found = Json::Null;
    for _ in 0..100 {
        found = runtime.block_on(async {
            client
                .get(format!("{base}/api/debug/logs?text=serving&level=info"))
                .bearer_auth("adm")
                .send()
                .await?
                .json::<Json>()
                .await
        })?;
        if found["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(found["items"][0]["message"], "serving", "{found}");
    assert_eq!(found["items"][0]["level"], "INFO", "{found}");
    assert!(server.terminate()?.0);
    Ok(())
}
