//! Devices syncing with the server: convergence through faults, resends after a kill, retries
//! without new writes, full re-reads, late patches and deletes, adoption of a file's documents.

use super::*;

/// Three devices write offline (creates, replaces, patches, deletes, on shared and own
/// documents), reconnect through resets and delays, and converge: every change applied on
/// the server once, every outbox empty, every cursor at the head.
async fn offline_devices_converge_exactly_once(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let url = server.url();
    let names = ["a", "b", "c"];
    let mut devices = Vec::new();
    for (i, name) in names.iter().enumerate() {
        devices.push(
            Device::open(device_config(dir.path(), name, &url, i as u64))
                .await
                .unwrap(),
        );
    }
    // Shared documents, created by a and pulled by the others.
    for n in 0..4 {
        devices[0]
            .create_with_id(COLLECTION, &uuid(n), json!({"n": n, "by": "a"}))
            .await
            .unwrap();
    }
    quiesce_and_check(&server, &[&devices[0], &devices[1], &devices[2]]).await;

    let mut writes: HashMap<&str, u64> = HashMap::from([("a", 4), ("b", 0), ("c", 0)]);
    for device in &devices {
        device.pause().await.unwrap();
        assert_eq!(
            device.status().await.unwrap().sync.state,
            litehouse_sync::SyncState::Offline { paused: true }
        );
    }
    for round in 0..6u64 {
        for (i, device) in devices.iter().enumerate() {
            let shared = uuid((round + i as u64) % 4);
            let name = names[i];
            match (round + i as u64) % 3 {
                0 => device
                    .replace(COLLECTION, &shared, json!({"by": name, "round": round}))
                    .await
                    .map(drop),
                1 => device
                    .patch(
                        COLLECTION,
                        &shared,
                        json!({"patched": name, "round": round}),
                    )
                    .await
                    .map(drop),
                _ => device
                    .create(COLLECTION, json!({"own": name, "round": round}))
                    .await
                    .map(drop),
            }
            .unwrap();
            *writes.get_mut(name).unwrap() += 1;
        }
    }
    // One device deletes one of its own documents, offline.
    let own = devices[1]
        .create(COLLECTION, json!({"doomed": true}))
        .await
        .unwrap();
    devices[1].delete(COLLECTION, &own.id).await.unwrap();
    *writes.get_mut("b").unwrap() += 2;
    for (i, device) in devices.iter().enumerate() {
        let status = device.status().await.unwrap();
        assert_eq!(
            status.sync.pending as u64,
            writes[names[i]] - if i == 0 { 4 } else { 0 }
        );
        assert!(status.sync.oldest_pending_age.is_some());
    }
    assert_eq!(
        server.producer("b").await,
        None,
        "nothing leaves a paused device"
    );

    // Faults apply to new connections: cut the pooled keep-alive ones.
    server.proxy.set_mode(FaultMode::Reset);
    server.proxy.cut_all();
    for device in &devices {
        device.resume().await.unwrap();
    }
    wait_for(&devices[0], "a failure", Duration::from_secs(10), |s| {
        s.sync.consecutive_failures > 0
    })
    .await;
    server
        .proxy
        .set_mode(FaultMode::Delay(Duration::from_millis(5)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.proxy.set_mode(FaultMode::Pass);
    quiesce_and_check(&server, &[&devices[0], &devices[1], &devices[2]]).await;

    for (i, device) in devices.iter().enumerate() {
        let state = server.producer(names[i]).await.expect("producer state");
        assert_eq!(
            state.last_seq, writes[names[i]],
            "every entry of {} acknowledged",
            names[i]
        );
        assert_eq!(state.epoch, device.epoch());
    }
    let applied = server.applied_per_origin().await;
    assert!(
        applied.values().all(|n| *n == 1),
        "a change applied twice: {applied:?}"
    );
    assert!(applied.len() >= 10, "{applied:?}");
    let log = devices[0].sync_log(100).await.unwrap();
    assert!(log.iter().any(|r| r.kind == "push"), "{log:?}");
    assert!(log.iter().any(|r| r.kind == "push-failed"), "{log:?}");
    for device in devices {
        device.stop().await;
    }
    server.stop().await;
}
on_both_backends!(
    offline_devices_converge_exactly_once,
    litehouse_docs::StoreConfig::default()
);

/// A device dropped (not stopped) while the server applies its push but the response is
/// lost, reopened on the same file: the outbox is sent again, the server deduplicates it, the
/// sequence continues without a gap and nothing is applied twice.
async fn killed_device_resends_after_reopen(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let config = device_config(dir.path(), "k", &server.url(), 7);
    let mut config = config;
    config.start_paused = true;
    let device = Device::open(config.clone()).await.unwrap();
    let epoch = device.epoch();
    for n in 0..20u64 {
        device
            .create_with_id(COLLECTION, &uuid(100 + n), json!({"n": n}))
            .await
            .unwrap();
    }
    server.proxy.set_mode(FaultMode::BlackholeResponses);
    server.proxy.cut_all();
    device.resume().await.unwrap();
    let started = Instant::now();
    while server.producer("k").await.is_none_or(|p| p.last_seq < 8) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server never applied a push"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        device.status().await.unwrap().sync.pending,
        20,
        "no acknowledgement arrived"
    );
    drop(device); // a kill: no stop, no goodbye
    server.proxy.cut_all();
    server.proxy.set_mode(FaultMode::Pass);

    config.start_paused = false;
    let device = Device::open(config).await.unwrap();
    assert_eq!(device.epoch(), epoch, "the same file keeps its epoch");
    let outbox = device.outbox(100).await.unwrap();
    assert_eq!(outbox.len(), 20, "the outbox survived");
    assert!(outbox.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let next = device
        .create_with_id(COLLECTION, &uuid(200), json!({"after": "reopen"}))
        .await
        .unwrap();
    quiesce_and_check(&server, &[&device]).await;
    assert_eq!(
        server.producer("k").await.unwrap().last_seq,
        21,
        "seq continued gaplessly"
    );
    let applied = server.applied_per_origin().await;
    assert_eq!(applied.len(), 21, "{applied:?}");
    assert!(
        applied.values().all(|n| *n == 1),
        "a change applied twice: {applied:?}"
    );
    assert_eq!(
        server.store.get(COLLECTION, &next.id).await.unwrap().body["after"],
        "reopen"
    );
    device.stop().await;
    server.stop().await;
}
on_both_backends!(
    killed_device_resends_after_reopen,
    litehouse_docs::StoreConfig::default()
);

/// A push that fails (connection reset, then a hung server) is retried by the timer alone,
/// within the maximum backoff (plus one request timeout), with no new local write.
async fn failed_push_is_retried_without_a_new_write(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let mut config = device_config(dir.path(), "r", &server.url(), 11);
    config.sync.request_timeout = 700;
    config.sync.max_backoff = 400;
    config.sync.poll_interval = 60_000;
    let (max_backoff, timeout) = (config.sync.max_backoff, config.sync.request_timeout);
    let device = Device::open(config).await.unwrap();
    for (n, mode) in [FaultMode::Reset, FaultMode::Hang].into_iter().enumerate() {
        server.proxy.set_mode(mode);
        server.proxy.cut_all();
        device
            .create_with_id(COLLECTION, &uuid(300 + n as u64), json!({"n": n}))
            .await
            .unwrap();
        wait_for(&device, "repeated failures", Duration::from_secs(10), |s| {
            s.sync.consecutive_failures >= 2 && s.sync.pending == 1
        })
        .await;
        server.proxy.set_mode(FaultMode::Pass);
        server.proxy.cut_all();
        let healed = Instant::now();
        let cap = Duration::from_millis(max_backoff + timeout + 1_000);
        wait_for(&device, "pending drained", cap, |s| s.sync.pending == 0).await;
        eprintln!(
            "{mode:?}: drained {:?} after healing (cap {cap:?})",
            healed.elapsed()
        );
    }
    let status = device.status().await.unwrap();
    assert!(status.sync.total_retries >= 4, "{status:?}");
    assert!(status.sync.last_push_ok.is_some());
    assert!(device.outbox(10).await.unwrap().is_empty());
    assert_eq!(server.producer("r").await.unwrap().last_seq, 2);
    device.stop().await;
    server.stop().await;
}
on_both_backends!(
    failed_push_is_retried_without_a_new_write,
    litehouse_docs::StoreConfig::default()
);

/// A device whose cursor fell behind the server's change-log retention gets 410, reads the
/// full state again and converges: documents deleted on the server meanwhile disappear,
/// new ones appear, a local write made meanwhile survives and is pushed.
async fn expired_cursor_ends_in_a_full_reread(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let url = server.url();
    let a = Device::open(device_config(dir.path(), "a", &url, 21))
        .await
        .unwrap();
    let b = Device::open(device_config(dir.path(), "b", &url, 22))
        .await
        .unwrap();
    for n in 0..3 {
        a.create_with_id(COLLECTION, &uuid(400 + n), json!({"n": n}))
            .await
            .unwrap();
    }
    quiesce_and_check(&server, &[&a, &b]).await;

    a.pause().await.unwrap();
    b.delete(COLLECTION, &uuid(400)).await.unwrap();
    b.replace(COLLECTION, &uuid(401), json!({"n": "replaced by b"}))
        .await
        .unwrap();
    for n in 0..12 {
        b.create(COLLECTION, json!({"filler": n})).await.unwrap();
    }
    let offline = a
        .create(COLLECTION, json!({"offline": true}))
        .await
        .unwrap();
    wait_for(&b, "b pushed", Duration::from_secs(20), |s| {
        s.sync.pending == 0
    })
    .await;
    // Retention keeps 3 changes: a's cursor is now far behind it.
    let mut pruned = 0;
    while server.store.prune_changes().await.unwrap() > 0 {
        pruned += 1;
        assert!(pruned < 100);
    }
    a.resume().await.unwrap();
    quiesce_and_check(&server, &[&a, &b]).await;
    let docs = documents(a.store()).await;
    assert!(!docs.contains_key(&uuid(400)), "deleted on the server");
    assert_eq!(docs[&uuid(401)]["n"], "replaced by b");
    assert!(docs.contains_key(&offline.id), "the offline write survived");
    assert_eq!(docs.len(), 2 + 12 + 1);
    let log = a.sync_log(100).await.unwrap();
    assert!(log.iter().any(|r| r.kind == "resync"), "{log:?}");
    a.stop().await;
    b.stop().await;
    server.stop().await;
}
on_both_backends!(
    expired_cursor_ends_in_a_full_reread,
    litehouse_docs::StoreConfig {
        change_retention_count: Some(3),
        ..litehouse_docs::StoreConfig::default()
    }
);

/// `GET /api/sync/pull?full=true` walks every collection in pages chained by `resume`
/// tokens; the transport chains them into one response whose `next` is the head taken
/// before the first page. A bad token is a 400.
async fn full_reread_is_paged(store: Store, _dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    server
        .store
        .create_collection("zz", CollectionSpec::default())
        .await
        .unwrap();
    let bodies: Vec<Json> = (0..1_005).map(|n| json!({ "n": n })).collect();
    server.store.create_many(COLLECTION, bodies).await.unwrap();
    for n in 0..3 {
        server.store.create("zz", json!({ "z": n })).await.unwrap();
    }
    let head = server.head().await;
    let transport =
        litehouse_sync::HttpTransport::new(server.url(), Duration::from_secs(2)).unwrap();
    let all = transport
        .pull(None, true, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(all.next.as_deref(), Some(head.as_str()));
    assert!(all.resume.is_none() && !all.up_to_date);
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for change in &all.changes {
        assert_eq!(change.op, litehouse_sync::Op::Put);
        assert_eq!(change.device, "server");
        *seen
            .entry((change.collection.clone(), change.doc_id.clone()))
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 1_008);
    assert!(seen.values().all(|n| *n == 1));

    // Small pages by hand: the same documents, each once, across the collection boundary.
    let client = reqwest::Client::new();
    let mut token: Option<String> = None;
    let mut count = 0;
    let mut pages = 0;
    loop {
        let mut query = vec![("full", "true".to_owned()), ("limit", "400".to_owned())];
        if let Some(t) = &token {
            query.push(("after", t.clone()));
        }
        let page: litehouse_sync::PullResponse = client
            .get(format!("{}/api/sync/pull", server.url()))
            .query(&query)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page.next.as_deref(), Some(head.as_str()));
        count += page.changes.len();
        pages += 1;
        match page.resume {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!((count, pages), (1_008, 4));
    let bad = client
        .get(format!(
            "{}/api/sync/pull?full=true&after=nonsense",
            server.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    server.stop().await;
}
on_both_backends!(full_reread_is_paged, litehouse_docs::StoreConfig::default());

/// Found by the property test: a patch from a device that had not seen a delete yet, newer
/// than the delete, must not fail the push forever (it recreates the document from the
/// patch); and a delete that arrives when the document is already gone must still reach the
/// feed, or a device whose older write lost to it keeps that write forever.
async fn late_patch_and_late_delete_converge(store: Store, dir: tempfile::TempDir) {
    let server = Server::start(store).await;
    let url = server.url();
    let a = Device::open(device_config(dir.path(), "a", &url, 31))
        .await
        .unwrap();
    let b = Device::open(device_config(dir.path(), "b", &url, 32))
        .await
        .unwrap();
    let d = Device::open(device_config(dir.path(), "d", &url, 33))
        .await
        .unwrap();
    let (x, y) = (uuid(500), uuid(501));
    a.create_with_id(COLLECTION, &x, json!({"v": 0}))
        .await
        .unwrap();
    a.create_with_id(COLLECTION, &y, json!({"v": 0}))
        .await
        .unwrap();
    quiesce_and_check(&server, &[&a, &b, &d]).await;

    b.pause().await.unwrap();
    d.pause().await.unwrap();
    a.delete(COLLECTION, &x).await.unwrap();
    a.delete(COLLECTION, &y).await.unwrap();
    wait_for(&a, "a pushed", Duration::from_secs(20), |s| {
        s.sync.pending == 0
    })
    .await;
    // b, offline, patches y and replaces x after a's deletes; d, offline, deletes x after
    // b's replace.
    b.patch(COLLECTION, &y, json!({"p": 1})).await.unwrap();
    b.replace(COLLECTION, &x, json!({"v": "b"})).await.unwrap();
    d.delete(COLLECTION, &x).await.unwrap();
    // d's delete reaches the server first (x is already gone there), then b's writes.
    d.resume().await.unwrap();
    wait_for(&d, "d pushed", Duration::from_secs(20), |s| {
        s.sync.pending == 0
    })
    .await;
    b.resume().await.unwrap();
    quiesce_and_check(&server, &[&a, &b, &d]).await;
    let docs = documents(&server.store).await;
    assert!(
        !docs.contains_key(&x),
        "the newest write to x is d's delete"
    );
    assert_eq!(docs[&y], json!({"p": 1}), "the late patch recreated y");
    for device in [a, b, d] {
        device.stop().await;
    }
    server.stop().await;
}
on_both_backends!(
    late_patch_and_late_delete_converge,
    litehouse_docs::StoreConfig::default()
);

/// A file that already holds documents when it first becomes a device's (written by another
/// program, or before the app used sync) pushes them like local writes: each reaches the
/// server exactly once, and reopening queues nothing again.
async fn documents_in_the_file_before_its_first_open_are_pushed(
    store: Store,
    dir: tempfile::TempDir,
) {
    let server = Server::start(store).await;
    let mut config = device_config(dir.path(), "pre", &server.url(), 11);
    {
        let local = Store::open_sqlite(&config.path).await.unwrap();
        local
            .create_collection(COLLECTION, CollectionSpec::default())
            .await
            .unwrap();
        let bodies = (0..600u64).map(|n| json!({"n": n, "before": "device"}));
        local
            .create_many(COLLECTION, bodies.collect())
            .await
            .unwrap();
    }
    let before = documents(&Store::open_sqlite(&config.path).await.unwrap()).await;
    assert_eq!(before.len(), 600);

    config.start_paused = true;
    let device = Device::open(config.clone()).await.unwrap();
    assert_eq!(device.status().await.unwrap().sync.pending, 600);
    let outbox = device.outbox(1_000).await.unwrap();
    assert_eq!(outbox.first().map(|e| e.seq), Some(1));
    assert!(outbox.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    drop(device);
    // A second open finds the adoption finished: nothing queued twice.
    let device = Device::open(config).await.unwrap();
    assert_eq!(device.outbox(1_000).await.unwrap().len(), 600);
    device.resume().await.unwrap();
    quiesce_and_check(&server, &[&device]).await;
    assert_eq!(documents(&server.store).await, before);
    let applied = server.applied_per_origin().await;
    assert_eq!(applied.len(), 600, "{applied:?}");
    assert!(applied.values().all(|n| *n == 1), "{applied:?}");
    device.stop().await;
    server.stop().await;
}
on_both_backends!(
    documents_in_the_file_before_its_first_open_are_pushed,
    litehouse_docs::StoreConfig::default()
);
