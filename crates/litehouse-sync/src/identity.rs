//! A device file's identity and sync bookkeeping at open: device id and epoch (written once
//! per file), the outbox sequence clock, the stored cursor, the config, the pending outbox.

use litehouse_docs::Store;
use serde_json::json;

use crate::device::{DeviceConfig, DeviceError};
use crate::outbox::{ADOPT_KEY, Adoption, read_clock, to_json};
use crate::protocol::{Hlc, OutboxEntry};
use crate::replica::{NS_CONFIG, NS_DEVICE, NS_OUTBOX, corrupt, unix_ms};

#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Identity {
    pub(crate) device_id: String,
    pub(crate) epoch: u64,
    pub(crate) created_at_ms: u64,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Clock {
    pub(crate) next_seq: u64,
    pub(crate) last_hlc: Option<Hlc>,
}

pub(crate) struct Opened {
    pub(crate) identity: Identity,
    pub(crate) clock: Clock,
    pub(crate) cursor: Option<String>,
}

/// Writes the identity (first open only), the config and the clock; returns what is stored.
pub(crate) async fn init_bookkeeping(
    store: &Store,
    config: &DeviceConfig,
) -> Result<Opened, DeviceError> {
    if config
        .device_id
        .as_deref()
        .is_some_and(|d| d.is_empty() || d.len() > 128)
    {
        return Err(DeviceError::Config(
            "device id must be 1 to 128 bytes".into(),
        ));
    }
    let fresh = Identity {
        device_id: config
            .device_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
        epoch: new_epoch(),
        created_at_ms: unix_ms(),
    };
    let config_json = stored_config(config)?;
    let collections = config.collections.clone();
    let opened = store
        .transaction(move |tx| async move {
            let identity = match tx.meta_get(NS_DEVICE, "identity").await? {
                Some(v) => {
                    serde_json::from_value::<Identity>(v).map_err(|e| corrupt("identity", e))?
                }
                None => {
                    let v = serde_json::to_value(&fresh).map_err(|e| corrupt("identity", e))?;
                    tx.meta_put(NS_DEVICE, "identity", v).await?;
                    let clock = json!({ "next_seq": 1, "last_hlc": null });
                    tx.meta_put(NS_DEVICE, "clock", clock).await?;
                    // Documents the file already holds get outbox entries too (`outbox`).
                    tx.meta_put(NS_DEVICE, ADOPT_KEY, to_json(&Adoption::of(collections))?)
                        .await?;
                    fresh
                }
            };
            let clock = read_clock(&tx).await?;
            let cursor = tx
                .meta_get(NS_DEVICE, "cursor")
                .await?
                .and_then(|v| v.as_str().map(str::to_owned));
            tx.meta_put(NS_CONFIG, "config", config_json).await?;
            Ok(Opened {
                identity,
                clock,
                cursor,
            })
        })
        .await?;
    if let Some(configured) = &config.device_id
        && *configured != opened.identity.device_id
    {
        return Err(DeviceError::DeviceIdMismatch {
            stored: opened.identity.device_id,
            configured: configured.clone(),
        });
    }
    Ok(opened)
}

/// The config as the file keeps it: everything but the bearer token, which is a secret the
/// caller supplies at each open and which must not sit in a file that is copied, backed up
/// and attached to bug reports. Writing it replaces whatever an older version stored, token
/// included.
fn stored_config(config: &DeviceConfig) -> Result<serde_json::Value, DeviceError> {
    let mut value = serde_json::to_value(config).map_err(|e| DeviceError::Config(e.to_string()))?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("token");
    }
    Ok(value)
}

/// Every entry still in the outbox, in sequence order.
pub(crate) async fn load_outbox(store: &Store) -> Result<Vec<OutboxEntry>, DeviceError> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let from = after.clone();
        let page = store
            .transaction(move |tx| async move {
                tx.meta_scan(NS_OUTBOX, from.as_deref(), litehouse_docs::MAX_META_SCAN)
                    .await
            })
            .await?;
        let done = page.len() < litehouse_docs::MAX_META_SCAN;
        for (key, value) in page {
            let entry: OutboxEntry =
                serde_json::from_value(value).map_err(|e| corrupt("outbox", e))?;
            out.push(entry);
            after = Some(key);
        }
        if done {
            return Ok(out);
        }
    }
}

/// A new epoch: milliseconds since 1970 in the high bits (so a recreated file normally gets
/// a larger epoch than the one it replaces, which the server requires) and 16 random bits.
fn new_epoch() -> u64 {
    // The low bits of a UUIDv7 are random.
    let random = (uuid::Uuid::now_v7().as_u128() & 0xffff) as u64;
    (unix_ms() << 16) | random
}

/// A stable HLC id for a device id (FNV-1a over its bytes, twice with different offsets).
pub(crate) fn clock_id(device_id: &str) -> uhlc::ID {
    let fnv = |offset: u64| {
        device_id.bytes().fold(offset, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let value =
        (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x8422_2325_cbf2_9ce4));
    uhlc::ID::try_from(value.max(1)).unwrap_or_else(|_| uhlc::ID::rand())
}
