//! A device on its own: its bookkeeping, what its file keeps, the pull-apply path and the
//! batched transaction calls it uses.

use super::*;

/// Local-only checks: synced collections, the sync log's retention, a reopened file keeps
/// its identity, another device id on the same file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_bookkeeping_is_local_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens here: the device works offline, failing and logging its pushes.
    let mut config = device_config(dir.path(), "solo", "http://127.0.0.1:9", 5);
    config.log_retention = 5;
    config.sync.max_backoff = 50;
    let device = Device::open(config.clone()).await.unwrap();
    let err = device.create("elsewhere", json!({})).await.unwrap_err();
    assert!(
        matches!(err, litehouse_sync::DeviceError::NotSynced { .. }),
        "{err}"
    );
    let err = device.create(COLLECTION, json!([1])).await.unwrap_err();
    assert!(
        matches!(err, litehouse_sync::DeviceError::Store(_)),
        "{err}"
    );
    assert!(
        device.outbox(10).await.unwrap().is_empty(),
        "a refused write queues nothing"
    );
    let doc = device.create(COLLECTION, json!({"x": 1})).await.unwrap();
    wait_for(&device, "failures logged", Duration::from_secs(10), |s| {
        s.sync.consecutive_failures >= 12
    })
    .await;
    let log = device.sync_log(100).await.unwrap();
    assert_eq!(log.len(), 5, "{log:?}");
    assert_eq!(log[4].kind, "push-failed", "{log:?}");
    let status = device.status().await.unwrap();
    assert!(status.sync.last_error.is_some());
    assert!(matches!(
        status.sync.state,
        litehouse_sync::SyncState::BackingOff { .. } | litehouse_sync::SyncState::Syncing
    ));
    let epoch = device.epoch();
    device.stop().await;

    let reopened = Device::open(config.clone()).await.unwrap();
    assert_eq!((reopened.device_id(), reopened.epoch()), ("solo", epoch));
    let outbox = reopened.outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(
        (outbox[0].seq, outbox[0].doc_id.as_str()),
        (1, doc.id.as_str())
    );
    reopened.stop().await;

    config.device_id = Some("other".into());
    let err = Device::open(config.clone()).await.unwrap_err();
    assert!(
        matches!(err, litehouse_sync::DeviceError::DeviceIdMismatch { .. }),
        "{err}"
    );

    // A recreated file is a new epoch (larger, so the server accepts it).
    config.path = dir.path().join("fresh.db");
    config.device_id = Some("solo".into());
    let fresh = Device::open(config).await.unwrap();
    assert!(fresh.epoch() > epoch);
    fresh.stop().await;
}

/// The bearer token is a secret the caller supplies at each open: the file keeps the rest of
/// the config but never the token, and a token an older version stored is removed at open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_never_stored_in_the_file() {
    const OLD: &str = "lh_old-secret-9f3a";
    const NEW: &str = "lh_new-secret-27c4";
    let dir = tempfile::tempdir().unwrap();
    let mut config = device_config(dir.path(), "keeper", "http://127.0.0.1:9", 7);
    config.start_paused = true;
    // A file as an older version left it: its config row holds the token.
    let old = Store::open_sqlite(&config.path).await.unwrap();
    let mut stored = serde_json::to_value(&config).unwrap();
    stored["token"] = json!(OLD);
    old.transaction(move |tx| async move { tx.meta_put("sync.config", "config", stored).await })
        .await
        .unwrap();
    drop(old);

    config.token = Some(NEW.into());
    let device = Device::open(config.clone()).await.unwrap();
    device.create(COLLECTION, json!({"x": 1})).await.unwrap();
    device.stop().await;

    let file = rusqlite::Connection::open(&config.path).unwrap();
    let rows: Vec<(String, String, String)> = file
        .prepare("SELECT ns, key, value FROM _litehouse_meta WHERE ns = 'sync.config'")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let kept: Json = serde_json::from_str(&rows[0].2).unwrap();
    assert_eq!(kept["server_url"], "http://127.0.0.1:9", "{kept}");
    assert_eq!(kept["device_id"], "keeper", "{kept}");
    assert!(kept.get("token").is_none(), "{kept}");
    for secret in [OLD, NEW] {
        let found: i64 = file
            .query_row(
                "SELECT count(*) FROM _litehouse_meta WHERE instr(ns || key || value, ?1) > 0",
                [secret],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(found, 0, "{secret} is in the file's bookkeeping");
    }
}

/// The pull-apply measurement runs and applies every change (the number is printed; the
/// target, ≥ 50k changes/s on SQLite, is checked in a release build by the ignored test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_apply_measures_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let report = litehouse_sync::pull_apply(&dir.path().join("bench.db"), 4_000)
        .await
        .unwrap();
    assert_eq!(report.changes, 4_000);
    assert!(report.changes_per_sec > 0.0);
    eprintln!("pull apply (debug build): {report:?}");
    let store = Store::open_sqlite(dir.path().join("bench.db"))
        .await
        .unwrap();
    assert_eq!(store.count("bench", None).await.unwrap(), 2_000);
}

/// `cargo test --release -p litehouse-sync --test tests pull_apply_target -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a release-build measurement"]
async fn pull_apply_target() {
    let dir = tempfile::tempdir().unwrap();
    let cpu_before = process_cpu_seconds();
    let report = litehouse_sync::pull_apply(&dir.path().join("bench.db"), 200_000)
        .await
        .unwrap();
    let cpu = process_cpu_seconds() - cpu_before;
    // On a shared machine the wall-clock rate depends on the other load; the CPU time of
    // this process (change generation included) bounds what an idle core would do.
    eprintln!(
        "pull apply: {report:?}; {cpu:.2} s CPU for the whole run: {:.0} changes per CPU second; load {}",
        report.changes as f64 / cpu,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    assert!(report.changes_per_sec >= 50_000.0, "{report:?}");
}

/// User + system CPU time of this process, from `/proc/self/stat` (clock ticks of 1/100 s).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

/// The batch transaction calls the device's apply uses (`create_many_with_ids`,
/// `replace_many`, `meta_put_many`, `meta_get_many`), on both engines.
async fn tx_batch_calls(store: Store, _dir: tempfile::TempDir) {
    store
        .create_collection(COLLECTION, CollectionSpec::default())
        .await
        .unwrap();
    let ids: Vec<String> = (0..700).map(|n| uuid(900 + n)).collect();
    let docs: Vec<(String, Json)> = ids.iter().map(|id| (id.clone(), json!({"v": 1}))).collect();
    let created = store
        .transaction(move |tx| async move { tx.create_many_with_ids(COLLECTION, docs).await })
        .await
        .unwrap();
    assert_eq!(created, 700);
    let again = vec![(ids[0].clone(), json!({}))];
    let err = store
        .transaction(move |tx| async move { tx.create_many_with_ids(COLLECTION, again).await })
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let bodies: Vec<(String, Json)> = ids.iter().map(|id| (id.clone(), json!({"v": 2}))).collect();
    let marks: Vec<(String, Json)> = ids
        .iter()
        .map(|id| (id.clone(), json!({"m": id})))
        .chain([(ids[1].clone(), json!("last wins"))])
        .collect();
    let keys = ids.clone();
    let (replaced, found) = store
        .transaction(move |tx| async move {
            let replaced = tx.replace_many(COLLECTION, bodies).await?;
            tx.meta_put_many("test.batch", marks).await?;
            let found = tx.meta_get_many("test.batch", keys).await?;
            Ok((replaced, found))
        })
        .await
        .unwrap();
    assert_eq!(replaced, 700);
    assert_eq!(found.len(), 700);
    assert_eq!(found[&ids[1]], json!("last wins"));
    assert_eq!(found[&ids[2]], json!({"m": ids[2]}));
    let doc = store.get(COLLECTION, &ids[699]).await.unwrap();
    assert_eq!((doc.version, &doc.body["v"]), (2, &json!(2)));
    let missing = vec![(uuid(1), json!({}))];
    let err = store
        .transaction(move |tx| async move { tx.replace_many(COLLECTION, missing).await })
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
on_both_backends!(tx_batch_calls, litehouse_docs::StoreConfig::default());
