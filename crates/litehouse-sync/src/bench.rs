//! Throughput measurements of the device side, for `litehouse bench` and for tuning.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::device::{Device, DeviceConfig, DeviceError};
use crate::protocol::{Hlc, Op, OutboxEntry, PulledChange, PushRequest};
use crate::server::MAX_PULL_PAGE;

/// What [`pull_apply`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PullApplyReport {
    /// Changes applied.
    pub changes: u64,
    /// Changes per apply (one transaction each, as one pull page).
    pub batch: usize,
    /// Time spent applying (generating the changes is not counted).
    pub elapsed: Duration,
    /// `changes / elapsed`.
    pub changes_per_sec: f64,
    /// Throughput of the first half (changes that create documents).
    pub creates_per_sec: f64,
    /// Throughput of the second half (changes that replace documents).
    pub replaces_per_sec: f64,
}

/// Measures pull-apply throughput on a device: opens a fresh device store at `path` (an
/// SQLite file that must not exist yet; the device stays offline), then applies `changes`
/// pulled changes in pages of [`MAX_PULL_PAGE`], each page in one transaction with its
/// cursor, exactly as a pull does. The first half creates documents, the second half
/// replaces them (a newer write from another device), so both apply paths are measured
/// (with 2 × [`MAX_PULL_PAGE`] × k changes no page mixes the two).
///
/// # Errors
/// [`DeviceError`] when the store cannot be opened or an apply fails.
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let report = litehouse_sync::pull_apply(&dir.path().join("bench.db"), 20_000).await?;
/// println!("{:.0} changes/s", report.changes_per_sec);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn pull_apply(path: &Path, changes: u64) -> Result<PullApplyReport, DeviceError> {
    let mut config = DeviceConfig::new(path, "http://127.0.0.1:9", ["bench"]);
    config.device_id = Some("bench-device".into());
    config.start_paused = true;
    let device = Device::open(config).await?;
    let clock = uhlc::HLCBuilder::new()
        .with_id(uhlc::ID::try_from(7u8).map_err(|e| DeviceError::Config(e.to_string()))?)
        .build();
    let creates = changes.div_ceil(2);
    let pages: Vec<Vec<PulledChange>> = (0..changes)
        .map(|i| {
            let n = i % creates.max(1);
            PulledChange {
                collection: "bench".into(),
                doc_id: format!("00000000-0000-4000-8000-{n:012x}"),
                op: Op::Put,
                document: json!({
                    "amount": i * 3,
                    "currency": "EUR",
                    "note": format!("transaction {i}"),
                    "round": i / creates.max(1),
                }),
                hlc: Hlc(clock.new_timestamp()),
                device: "remote".into(),
            }
        })
        .collect::<Vec<_>>()
        .chunks(MAX_PULL_PAGE)
        .map(<[PulledChange]>::to_vec)
        .collect();
    let mut applied = 0;
    let (mut first_half, mut second_half) = ((0u64, Duration::ZERO), (0u64, Duration::ZERO));
    let mut offset = 0;
    for (i, page) in pages.into_iter().enumerate() {
        let (len, creating) = (page.len() as u64, offset < creates);
        offset += len;
        let started = Instant::now();
        applied += device
            .apply_pulled(page, Some(format!("{}", i + 1)), false)
            .await?;
        let half = if creating {
            &mut first_half
        } else {
            &mut second_half
        };
        half.0 += len;
        half.1 += started.elapsed();
    }
    let elapsed = first_half.1 + second_half.1;
    let rate = |(n, t): (u64, Duration)| n as f64 / t.as_secs_f64().max(1e-9);
    device.stop().await;
    if applied != changes {
        return Err(DeviceError::Config(format!(
            "applied {applied} of {changes} changes"
        )));
    }
    Ok(PullApplyReport {
        changes,
        batch: MAX_PULL_PAGE,
        elapsed,
        changes_per_sec: changes as f64 / elapsed.as_secs_f64().max(1e-9),
        creates_per_sec: rate(first_half),
        replaces_per_sec: rate(second_half),
    })
}

/// The push requests a device with id `device` would send for `changes` new documents in
/// collection `collection` (epoch 1, sequences 1..=changes, `batch` entries per request, one
/// `Put` of a small transaction-like body per new document id), for measuring the server's
/// push path without a device store in front of it. Document ids are UUID-shaped and
/// distinct per `(device_index, n)`.
///
/// ```
/// let requests = litehouse_sync::push_requests("d1", 3, "tx", 5, 2);
/// assert_eq!(requests.len(), 3);
/// assert_eq!((requests[0].first_seq, requests[2].last_seq), (1, 5));
/// assert_eq!(requests[2].entries.len(), 1);
/// ```
pub fn push_requests(
    device: &str,
    device_index: u32,
    collection: &str,
    changes: u64,
    batch: usize,
) -> Vec<PushRequest> {
    // A clock id per device (never 0, which uhlc refuses).
    let id = uhlc::ID::from(
        std::num::NonZeroU128::new(u128::from(device_index) + 1)
            .unwrap_or(std::num::NonZeroU128::MIN),
    );
    let clock = uhlc::HLCBuilder::new().with_id(id).build();
    let entries: Vec<OutboxEntry> = (1..=changes)
        .map(|seq| OutboxEntry {
            seq,
            op_id: format!("{device}:1:{seq}"),
            hlc: Hlc(clock.new_timestamp()),
            collection: collection.to_owned(),
            doc_id: format!("{device_index:08x}-0000-4000-8000-{seq:012x}"),
            op: Op::Put,
            body: json!({
                "amount": seq * 3,
                "currency": "EUR",
                "note": format!("transaction {seq}"),
            }),
        })
        .collect();
    entries
        .chunks(batch.max(1))
        .map(|chunk| PushRequest {
            device: device.to_owned(),
            epoch: 1,
            first_seq: chunk[0].seq,
            last_seq: chunk[chunk.len() - 1].seq,
            entries: chunk.to_vec(),
        })
        .collect()
}
