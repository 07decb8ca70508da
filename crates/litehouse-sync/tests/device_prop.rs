//! A property test over store-backed devices: 2–3 [`Device`]s (real SQLite files) against the
//! real routes over a real store, through the fault proxy, under random writes (puts,
//! patches, deletes on shared documents), network faults, pauses and kills (a device dropped
//! without stopping and reopened on its file). After healing and quiescing: every entry
//! acknowledged, each applied by the server at most once and none twice, every device holds
//! the server's documents, nothing is pending, every cursor is at the head.

use std::time::Duration;

use litehouse_docs::Store;
use litehouse_sync::{Device, FaultMode};
use proptest::prelude::*;
use serde_json::json;

use crate::device::{COLLECTION, Server, device_config, quiesce_and_check, uuid};

#[derive(Debug, Clone)]
enum Step {
    Write {
        device: usize,
        doc: u64,
        kind: u8,
        value: u8,
    },
    Fault(u8),
    Pause(usize),
    Resume(usize),
    Reopen(usize),
    Wait(u8),
}

fn step(devices: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..devices, 0..5u64, 0..3u8, any::<u8>())
            .prop_map(|(device, doc, kind, value)| Step::Write { device, doc, kind, value }),
        2 => (0..6u8).prop_map(Step::Fault),
        1 => (0..devices).prop_map(Step::Pause),
        1 => (0..devices).prop_map(Step::Resume),
        1 => (0..devices).prop_map(Step::Reopen),
        2 => (0..40u8).prop_map(Step::Wait),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (2..=3usize).prop_flat_map(|n| (Just(n), proptest::collection::vec(step(n), 5..40)))
}

fn mode(n: u8) -> FaultMode {
    match n {
        0 => FaultMode::Pass,
        1 => FaultMode::Reset,
        2 => FaultMode::Drop,
        3 => FaultMode::Hang,
        4 => FaultMode::BlackholeResponses,
        _ => FaultMode::Delay(Duration::from_millis(5)),
    }
}

/// One local write; false when a pull changed the document between the existence check and
/// the write and the store refused it (nothing is queued then).
async fn write(device: &Device, doc: u64, kind: u8, value: u8) -> bool {
    let id = uuid(doc);
    let exists = device.store().get(COLLECTION, &id).await.is_ok();
    let body = json!({ "v": value, "by": device.device_id() });
    let result = match (kind, exists) {
        (_, false) => device.create_with_id(COLLECTION, &id, body).await.map(drop),
        (0, true) => device.replace(COLLECTION, &id, body).await.map(drop),
        (1, true) => device
            .patch(COLLECTION, &id, json!({ "p": value }))
            .await
            .map(drop),
        (_, true) => device.delete(COLLECTION, &id).await,
    };
    match result {
        Ok(()) => true,
        Err(litehouse_sync::DeviceError::Store(e)) if e.is_conflict() || e.is_not_found() => false,
        Err(e) => panic!("local write failed: {e}"),
    }
}

async fn run(devices_n: usize, steps: Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path().join("server.db"))
        .await
        .unwrap();
    run_on(store, dir, devices_n, steps).await;
}

async fn run_on(store: Store, dir: tempfile::TempDir, devices_n: usize, steps: Vec<Step>) {
    let server = Server::start(store).await;
    let url = server.url();
    let configs: Vec<_> = (0..devices_n)
        .map(|i| {
            let mut config = device_config(dir.path(), &format!("p{i}"), &url, i as u64);
            config.sync.request_timeout = 400;
            config.sync.max_backoff = 200;
            config
        })
        .collect();
    let mut devices = Vec::new();
    for config in &configs {
        devices.push(Device::open(config.clone()).await.unwrap());
    }
    let mut writes = vec![0u64; devices_n];
    for step in steps {
        match step {
            Step::Write {
                device,
                doc,
                kind,
                value,
            } => {
                if write(&devices[device], doc, kind, value).await {
                    writes[device] += 1;
                }
            }
            Step::Fault(n) => {
                server.proxy.set_mode(mode(n));
                server.proxy.cut_all();
            }
            Step::Pause(i) => devices[i].pause().await.unwrap(),
            Step::Resume(i) => devices[i].resume().await.unwrap(),
            Step::Reopen(i) => {
                let config = configs[i].clone();
                // A kill: the old device is dropped without stopping.
                let old = std::mem::replace(&mut devices[i], Device::open(config).await.unwrap());
                drop(old);
            }
            Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(u64::from(ms))).await,
        }
    }
    server.proxy.set_mode(FaultMode::Pass);
    server.proxy.cut_all();
    for device in &devices {
        device.resume().await.unwrap();
    }
    let refs: Vec<&Device> = devices.iter().collect();
    quiesce_and_check(&server, &refs).await;
    for (i, device) in devices.iter().enumerate() {
        let acked = server
            .producer(device.device_id())
            .await
            .map_or(0, |p| p.last_seq);
        assert_eq!(
            acked,
            writes[i],
            "{}: every entry acknowledged",
            device.device_id()
        );
    }
    let applied = server.applied_per_origin().await;
    assert!(
        applied.values().all(|n| *n == 1),
        "a change applied twice: {applied:?}"
    );
    let total: u64 = writes.iter().sum();
    assert!(applied.len() as u64 <= total);
    for device in devices {
        device.stop().await;
    }
    server.stop().await;
}

fn check(devices: usize, steps: Vec<Step>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(devices, steps));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, max_shrink_iters: 16, ..ProptestConfig::default() })]
    #[test]
    fn store_backed_devices_converge_exactly_once((devices, steps) in scenario()) {
        check(devices, steps);
    }
}

#[test]
#[ignore = "long property run; `cargo test -p litehouse-sync -- --ignored store_backed`"]
fn store_backed_devices_converge_exactly_once_long() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    });
    runner
        .run(&scenario(), |(devices, steps)| {
            check(devices, steps);
            Ok(())
        })
        .unwrap();
}

#[test]
#[ignore = "long property run against a PostgreSQL server store (needs LITEHOUSE_TEST_PG)"]
fn store_backed_devices_converge_exactly_once_long_postgres() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        max_shrink_iters: 16,
        ..ProptestConfig::default()
    });
    runner
        .run(&scenario(), |(devices, steps)| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(crate::device::on_postgres(
                    litehouse_docs::StoreConfig::default(),
                    move |store, dir| run_on(store, dir, devices, steps),
                ));
            Ok(())
        })
        .unwrap();
}
