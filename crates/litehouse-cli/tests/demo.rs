//! `litehouse demo`: the scripted scenario on the demo's own server and on a running
//! `litehouse serve` with two devices, and the interactive menu driven through a real terminal
//! (tmux send-keys / capture-pane).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

use crate::serve::{TestResult, litehouse, start};

fn demo(args: &[&str]) -> Result<Output, std::io::Error> {
    litehouse().arg("demo").args(args).output()
}

fn json_report(output: &Output) -> Result<Json, Box<dyn std::error::Error>> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().ok_or("the script printed nothing")?;
    Ok(serde_json::from_str(line).map_err(|e| {
        format!(
            "{e}: {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?)
}

#[test]
fn the_script_syncs_offline_writes_on_its_own_server() -> TestResult {
    let dir = tempfile::tempdir()?;
    let dir_arg = dir.path().to_str().ok_or("path")?;
    let output = demo(&[
        "--script",
        "--transactions",
        "4",
        "--json",
        "--dir",
        dir_arg,
    ])?;
    assert!(output.status.success(), "{output:?}");
    let report = json_report(&output)?;
    assert_eq!(report["synced"], true, "{report}");
    assert_eq!(report["transactions"], 4);
    assert_eq!(report["status"]["pending"], 0);
    assert_eq!(report["status"]["rejected_total"], 0);
    assert_eq!(report["status"]["device_id"], "demo-device");
    // The server's own file holds them too, and a second run on the same directory resumes
    // the same device and server (same sequence space, no gap, nothing sent twice).
    let again = demo(&[
        "--script",
        "--transactions",
        "2",
        "--json",
        "--dir",
        dir_arg,
    ])?;
    let report = json_report(&again)?;
    assert!(again.status.success(), "{again:?}");
    assert_eq!(report["transactions"], 6, "{report}");
    // The human-readable form ends with the verdict.
    let human = demo(&["--script", "--transactions", "1", "--dir", dir_arg])?;
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(human.status.success(), "{text}");
    assert!(text.contains("while offline: 1 pending"), "{text}");
    assert!(
        text.contains("synced: every transaction acknowledged and pulled"),
        "{text}"
    );
    Ok(())
}

#[test]
fn two_demo_devices_converge_through_a_running_server() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = format!("sqlite:{}", dir.path().join("server.db").display());
    let (server, url, _) = start(&["--db", &db, "--bind", "127.0.0.1:0"])?;
    let token = |device: &str| -> Result<String, Box<dyn std::error::Error>> {
        let out = litehouse()
            .args(["token", "--db", &db, "create", "--device", device])
            .output()?;
        assert!(out.status.success(), "{out:?}");
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let (kitchen, hall) = (token("kitchen")?, token("hall")?);
    let file = |name: &str| dir.path().join(name).display().to_string();
    let run_for = |device: &str, token: &str, file: &str, n: &str, timeout: &str| {
        demo(&[
            "--timeout",
            timeout,
            "--script",
            "--json",
            "--transactions",
            n,
            "--server",
            &url,
            "--token",
            token,
            "--device",
            device,
            "--file",
            file,
        ])
    };
    let run =
        |device: &str, token: &str, file: &str, n: &str| run_for(device, token, file, n, "30");
    // The first device finds no collection: it creates it (the server needs no token on
    // loopback for that), records 3 offline and syncs.
    let first = run("kitchen", &kitchen, &file("kitchen.db"), "3")?;
    assert!(first.status.success(), "{first:?}");
    assert_eq!(json_report(&first)?["transactions"], 3);
    let second = run("hall", &hall, &file("hall.db"), "2")?;
    assert!(second.status.success(), "{second:?}");
    let report = json_report(&second)?;
    assert_eq!(report["transactions"], 5, "hall pulled kitchen's: {report}");
    let again = run("kitchen", &kitchen, &file("kitchen.db"), "0")?;
    assert_eq!(
        json_report(&again)?["transactions"],
        5,
        "kitchen pulled hall's"
    );
    // The server holds each transaction once.
    let runtime = tokio::runtime::Runtime::new()?;
    let body: Json = runtime.block_on(async {
        reqwest::get(format!(
            "{url}/api/collections/transactions/docs?perPage=100"
        ))
        .await?
        .json()
        .await
    })?;
    assert_eq!(body["totalItems"], 5, "{body}");
    // A device token for another device is refused: the script says so and exits 1.
    let wrong = run_for("kitchen", &hall, &file("kitchen.db"), "1", "3")?;
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    let report = json_report(&wrong)?;
    assert_eq!(report["synced"], false);
    assert_eq!(report["status"]["pending"], 1);
    assert!(
        report["status"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("403")),
        "{report}"
    );
    let (clean, _) = server.terminate()?;
    assert!(clean);
    Ok(())
}

#[test]
fn the_script_explains_an_unreachable_server() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("d.db").display().to_string();
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let output = demo(&[
        "--script",
        "--server",
        &format!("http://127.0.0.1:{port}"),
        "--file",
        &file,
    ])?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("start one with `litehouse serve`"),
        "{stderr}"
    );
    Ok(())
}

/// A tmux server on its own socket, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    fn send(&self, keys: &[&str]) -> TestResult {
        for key in keys {
            let status = self
                .command()
                .args(["send-keys", "-t", "demo", key])
                .status()?;
            assert!(status.success(), "tmux send-keys {key}");
        }
        Ok(())
    }

    /// Types `line` and presses Enter.
    fn line(&self, line: &str) -> TestResult {
        self.send(&["-l", line])?;
        self.send(&["Enter"])
    }

    fn screen(&self) -> Result<String, Box<dyn std::error::Error>> {
        let out = self
            .command()
            .args(["capture-pane", "-p", "-J", "-t", "demo", "-S", "-2000"])
            .output()?;
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Waits until the screen has `text` `count` times; returns the screen.
    fn wait_for(&self, text: &str, count: usize) -> Result<String, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen()?;
            if screen.matches(text).count() >= count {
                return Ok(screen);
            }
            if Instant::now() > deadline {
                return Err(
                    format!("waited 30 s for {count}x {text:?}; the screen:\n{screen}").into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").status();
    }
}

#[test]
fn the_menu_works_in_a_terminal() -> TestResult {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: tmux is not installed (apt-get install tmux)");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let tmux = Tmux {
        socket: format!("litehouse-demo-test-{}", std::process::id()),
    };
    let program = format!(
        "{} demo --dir {}; echo demo-exited-$?; sleep 60",
        env!("CARGO_BIN_EXE_litehouse"),
        dir.path().display()
    );
    let status = tmux
        .command()
        .args([
            "new-session",
            "-d",
            "-s",
            "demo",
            "-x",
            "140",
            "-y",
            "50",
            &program,
        ])
        .env_remove("TMUX")
        .status()?;
    assert!(status.success());
    let prompt = "choose>";
    tmux.wait_for(prompt, 1)?;
    tmux.wait_for("dashboard    http://127.0.0.1:", 1)?;

    // Record one; a bad amount is asked again.
    tmux.line("1")?;
    tmux.line("twelve")?;
    tmux.wait_for("not an amount", 1)?;
    tmux.line("12.5")?;
    tmux.line("coffee")?;
    tmux.wait_for("saved locally:", 1)?;
    tmux.wait_for(prompt, 2)?;
    tmux.line("3")?;
    tmux.wait_for("synced: nothing pending", 1)?;
    tmux.wait_for(prompt, 3)?;

    // Offline: the next one waits in the outbox.
    tmux.line("2")?;
    tmux.wait_for("offline: transactions are kept locally", 1)?;
    tmux.wait_for(prompt, 4)?;
    tmux.line("1")?;
    tmux.line("7")?;
    tmux.line("bus ticket")?;
    tmux.wait_for("(1 pending)", 1)?;
    tmux.wait_for(prompt, 5)?;
    tmux.line("4")?;
    let screen = tmux.wait_for("pull cursor", 1)?;
    assert!(screen.contains("offline (by you)"), "{screen}");
    tmux.wait_for(prompt, 6)?;
    tmux.line("3")?;
    tmux.wait_for("choose 2 to go online first", 1)?;
    tmux.wait_for(prompt, 7)?;

    // Online again, and the other device's transaction arrives by pull.
    tmux.line("2")?;
    tmux.wait_for("online: syncing in the background", 1)?;
    tmux.wait_for(prompt, 8)?;
    tmux.line("7")?;
    tmux.wait_for("the server has it", 1)?;
    tmux.wait_for(prompt, 9)?;
    tmux.line("3")?;
    tmux.wait_for("synced: nothing pending", 2)?;
    tmux.wait_for(prompt, 10)?;
    tmux.line("6")?;
    let screen = tmux.wait_for("3 transactions on this device", 1)?;
    let rows: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.contains("3 transactions on this device"))
        .skip(2)
        .take(3)
        .collect();
    assert!(rows.iter().all(|r| r.contains("synced")), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("other-device")), "{rows:?}");
    assert!(rows.iter().any(|r| r.contains("bus ticket")), "{rows:?}");
    tmux.wait_for(prompt, 11)?;
    tmux.line("5")?;
    let screen = tmux.wait_for("acknowledged up to seq", 2)?;
    assert!(screen.contains("paused (offline mode)"), "{screen}");
    tmux.wait_for(prompt, 12)?;
    tmux.line("q")?;
    tmux.wait_for("demo-exited-0", 1)?;
    Ok(())
}
