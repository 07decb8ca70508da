//! Device processes killed with SIGKILL: the test binary re-runs itself with
//! `LITEHOUSE_SYNC_CHILD` set and only `child::entry` selected; the child runs a store-backed
//! device against the parent's server and prints each committed write.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use litehouse_docs::{CollectionSpec, Store};
use litehouse_sync::{Device, FaultMode};
use serde_json::json;

use crate::device::{COLLECTION, Server, device_config, documents, quiesce_and_check, uuid};

const VAR: &str = "LITEHOUSE_SYNC_CHILD";

fn spawn(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child::entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(VAR, args.join("|"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
#[ignore = "entry point for child processes started by other tests"]
fn entry() {
    let Ok(spec) = std::env::var(VAR) else {
        return;
    };
    let parts: Vec<String> = spec.split('|').map(str::to_owned).collect();
    let [dir, url, first, count] = parts.as_slice() else {
        panic!("bad child spec {spec:?}");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = device_config(std::path::Path::new(dir), "killed", url, 99);
        let device = Device::open(config).await.unwrap();
        println!("open");
        let (first, count): (u64, u64) = (first.parse().unwrap(), count.parse().unwrap());
        for n in first..first + count {
            device
                .create_with_id(COLLECTION, &uuid(n), json!({ "n": n }))
                .await
                .unwrap();
            println!("wrote {n}");
        }
        println!("idle");
        // Keep syncing until killed.
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

/// Reads the child's lines until `until` matches one; returns the `wrote` numbers seen.
fn read_until(child: &mut Child, until: impl Fn(&str, usize) -> bool) -> Vec<u64> {
    let stdout = child.stdout.as_mut().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut wrote = Vec::new();
    let started = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("wrote ") {
            wrote.push(n.parse().unwrap());
        }
        if until(&line, wrote.len()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "child too slow"
        );
    }
    wrote
}

/// A device process is killed with SIGKILL while it writes and pushes (through a slow
/// network), and then several times while it pulls and applies a large backlog. Reopened in
/// this process on the same file: every write the child reported is there, the outbox is
/// gapless and re-sent, the server applied each entry once, and the device converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_process_killed_mid_push_and_mid_pull_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("server.db"))
        .await
        .unwrap();
    let server = Server::start(store).await;
    let url = server.url();
    let dir_text = dir.path().to_str().unwrap().to_owned();

    // Mid-push: a slow network keeps pushes in flight while the child writes.
    server
        .proxy
        .set_mode(FaultMode::Delay(Duration::from_millis(3)));
    let mut child = spawn(&[&dir_text, &url, "0", "400"]);
    let reported = read_until(&mut child, |_, n| n >= 150);
    child.kill().unwrap();
    child.wait().unwrap();
    server.proxy.cut_all();
    server.proxy.set_mode(FaultMode::Pass);
    assert!(
        server.producer("killed").await.is_some(),
        "the child pushed something"
    );

    // Mid-apply: a backlog of server-side documents, and the child killed while pulling it.
    server
        .store
        .create_collection("other", CollectionSpec::default())
        .await
        .unwrap();
    for _ in 0..3 {
        let bodies = (0..1_000).map(|n| json!({ "backlog": n })).collect();
        server.store.create_many(COLLECTION, bodies).await.unwrap();
    }
    for delay_ms in [30, 120, 250] {
        let mut child = spawn(&[&dir_text, &url, "0", "0"]);
        read_until(&mut child, |line, _| line == "open");
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        // What the killed process left: its pulled documents and cursor commit together.
        let local = Store::open_sqlite(dir.path().join("killed.db"))
            .await
            .unwrap();
        let count = local.count(COLLECTION, None).await.unwrap();
        let cursor = local
            .transaction(|tx| async move { tx.meta_get("sync.device", "cursor").await })
            .await
            .unwrap();
        eprintln!("killed after {delay_ms} ms: {count} documents, cursor {cursor:?}");
    }

    let device = Device::open(device_config(dir.path(), "killed", &url, 99))
        .await
        .unwrap();
    let local = documents(device.store()).await;
    for n in &reported {
        assert!(
            local.contains_key(&uuid(*n)),
            "reported write {n} is missing"
        );
    }
    let outbox = device.outbox(10_000).await.unwrap();
    assert!(
        outbox.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "outbox not gapless"
    );
    let written = (0..400u64)
        .filter(|n| local.contains_key(&uuid(*n)))
        .count() as u64;
    quiesce_and_check(&server, &[&device]).await;
    let state = server.producer("killed").await.unwrap();
    assert_eq!(
        state.last_seq, written,
        "every committed write acknowledged once"
    );
    let applied = server.applied_per_origin().await;
    assert_eq!(applied.len() as u64, written);
    assert!(applied.values().all(|n| *n == 1), "a change applied twice");
    let ids: HashSet<String> = documents(&server.store).await.into_keys().collect();
    assert_eq!(ids.len() as u64, 3_000 + written);
    device.stop().await;
    server.stop().await;
}
