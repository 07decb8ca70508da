//! [`Device`]: a synced store over a local litehouse document store (one SQLite file).
//!
//! Every local write runs in one [`Store::transaction`] with its outbox entry (gapless
//! per-device sequence, device id, epoch, HLC, op id), so a write never waits for the
//! network and never exists without its entry. A [`SyncDriver`] pushes the outbox and pulls
//! the server's changes in the background; see [`StoreReplica`](crate::replica) for the
//! bookkeeping layout.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use litehouse_docs::{CollectionSpec, Document, Error as DocError, Store};
use serde_json::Value as Json;

use crate::driver::SyncDriver;
use crate::identity::{clock_id, init_bookkeeping, load_outbox};
use crate::machine::{Event, SyncConfig, SyncMachine, SyncStatus};
use crate::outbox::{Producer, adopt_pending, read_clock};
use crate::protocol::{Op, OutboxEntry};
use crate::replica::{NS_DEVICE, NS_LOG, NS_OUTBOX, StoreReplica, corrupt, seq_key, unix_ms};
use crate::transport::HttpTransport;

/// How to open a [`Device`]. Build it with [`DeviceConfig::new`] and adjust the fields.
///
/// ```
/// use litehouse_sync::DeviceConfig;
/// let mut config = DeviceConfig::new("/tmp/device.db", "http://127.0.0.1:8080", ["tx"]);
/// config.sync.poll_interval = 1_000;
/// assert_eq!(config.collections, vec!["tx".to_owned()]);
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DeviceConfig {
    /// The local SQLite file; created (with a new epoch) when missing.
    pub path: PathBuf,
    /// Base URL of the sync server, e.g. `http://127.0.0.1:8080`.
    pub server_url: String,
    /// Bearer token sent with every request. Never written to the file (the stored config
    /// leaves it out, and an older file's stored token is removed at open): supply it at
    /// each [`Device::open`].
    pub token: Option<String>,
    /// The device id of a new file (`None`: a random UUID). An existing file keeps its own;
    /// a different id here is [`DeviceError::DeviceIdMismatch`].
    pub device_id: Option<String>,
    /// The collections this device syncs; created locally when missing. Writes to other
    /// collections are refused and pulled changes to them are skipped.
    pub collections: Vec<String>,
    /// Batching, backoff, poll interval and request timeout.
    pub sync: SyncConfig,
    /// Bound on connection set-up, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Most records the sync log keeps (older ones are dropped as new ones arrive).
    pub log_retention: u64,
    /// Start in offline mode ([`Device::pause`]).
    pub start_paused: bool,
}

impl DeviceConfig {
    /// Defaults for everything but the file, the server and the synced collections.
    pub fn new<S: Into<String>>(
        path: impl Into<PathBuf>,
        server_url: impl Into<String>,
        collections: impl IntoIterator<Item = S>,
    ) -> DeviceConfig {
        DeviceConfig {
            path: path.into(),
            server_url: server_url.into(),
            token: None,
            device_id: None,
            collections: collections.into_iter().map(Into::into).collect(),
            sync: SyncConfig::default(),
            connect_timeout_ms: 3_000,
            log_retention: 1_000,
            start_paused: false,
        }
    }
}

/// Why a [`Device`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The local store refused the operation or failed (the write did not happen).
    #[error(transparent)]
    Store(#[from] DocError),
    /// The collection is not one of [`DeviceConfig::collections`].
    #[error("collection {collection:?} is not synced by this device")]
    NotSynced {
        /// The collection asked for.
        collection: String,
    },
    /// The file belongs to another device id than the one configured.
    #[error("the local file belongs to device {stored:?}, not {configured:?}")]
    DeviceIdMismatch {
        /// The id in the file.
        stored: String,
        /// The id in the configuration.
        configured: String,
    },
    /// The configuration is unusable (bad device id, HTTP client set-up failed, ...).
    #[error("invalid device configuration: {0}")]
    Config(String),
    /// The sync driver is gone (it panicked); local data is intact and is sent after reopening.
    #[error("the sync driver has stopped")]
    Stopped,
}

/// A device's status: the sync machine's view plus who the device is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceStatus {
    /// The device id.
    pub device_id: String,
    /// The epoch of the local file.
    pub epoch: u64,
    /// Unix milliseconds at which the driver started: the machine's times
    /// ([`SyncStatus::last_push_ok`], ...) are milliseconds after it.
    pub started_at_ms: u64,
    /// State, pending count, oldest pending age, last push and pull, last error, retries.
    #[serde(flatten)]
    pub sync: SyncStatus,
}

/// One record of a device's sync log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncLogEntry {
    /// Unix milliseconds.
    pub at_ms: u64,
    /// `push`, `pull`, `push-failed`, `pull-failed`, `rejected`, `resync`, `state`, ...
    pub kind: String,
    /// Detail.
    pub message: String,
}

enum LocalOp {
    Create { id: Option<String>, body: Json },
    Replace { id: String, body: Json },
    Patch { id: String, patch: Json },
    Delete { id: String },
}

/// A local document store that syncs with a server. Local writes commit at once (with their
/// outbox entry); a background driver pushes and pulls. Drop it (or [`Device::stop`]) to stop
/// syncing; pending entries stay in the file and are sent after the next [`Device::open`].
///
/// ```no_run
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use litehouse_sync::{Device, DeviceConfig};
/// let device = Device::open(DeviceConfig::new("device.db", "http://127.0.0.1:8080", ["tx"])).await?;
/// let doc = device.create("tx", serde_json::json!({"amount": 3})).await?;
/// device.force_sync().await?;
/// println!("{} pending", device.status().await?.sync.pending);
/// # let _ = doc;
/// device.stop().await;
/// # Ok::<(), litehouse_sync::DeviceError>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct Device {
    replica: Arc<StoreReplica>,
    device_id: String,
    epoch: u64,
    started_at_ms: u64,
    /// Serialises local writes from commit to hand-over, so the driver learns of the entries
    /// in sequence order (it ignores an entry older than one it has).
    write_lock: tokio::sync::Mutex<()>,
    driver: SyncDriver,
}

impl Device {
    /// Opens (or creates) the device's file, creates the synced collections, loads the
    /// pending outbox and starts syncing. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`DeviceError::Store`] when the file cannot be opened; [`DeviceError::DeviceIdMismatch`];
    /// [`DeviceError::Config`] for an empty device id or an HTTP client that cannot be built.
    pub async fn open(config: DeviceConfig) -> Result<Device, DeviceError> {
        let store = Store::open_sqlite(&config.path).await?;
        let existing: HashSet<String> = store
            .list_collections()
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect();
        for collection in &config.collections {
            if !existing.contains(collection) {
                store
                    .create_collection(collection, CollectionSpec::default())
                    .await?;
            }
        }
        let opened = init_bookkeeping(&store, &config).await?;
        let hlc = Arc::new(
            uhlc::HLCBuilder::new()
                .with_id(clock_id(&opened.identity.device_id))
                .with_max_delta(Duration::from_secs(60))
                .build(),
        );
        if let Some(last) = opened.clock.last_hlc {
            let _ = hlc.update_with_timestamp(&last.0);
        }
        let producer = Producer {
            device: opened.identity.device_id.clone(),
            epoch: opened.identity.epoch,
            hlc: Arc::clone(&hlc),
        };
        let adopted = adopt_pending(&store, &producer).await?;
        if adopted > 0 {
            tracing::info!(
                device = %producer.device,
                adopted,
                "documents the file held before it was a device's are queued for the server"
            );
        }
        let pending = load_outbox(&store).await?;
        let mut transport = HttpTransport::new(
            config.server_url.clone(),
            Duration::from_millis(config.connect_timeout_ms),
        )
        .map_err(|e| DeviceError::Config(e.to_string()))?;
        if let Some(token) = &config.token {
            transport = transport.with_token(token.clone());
        }
        // Everything before the first pending entry (or the whole sequence) was acknowledged.
        let acked = pending
            .first()
            .map_or(opened.clock.next_seq.saturating_sub(1), |e| e.seq - 1);
        let mut machine = SyncMachine::new(
            config.sync.clone(),
            opened.identity.device_id.clone(),
            opened.identity.epoch,
            opened.cursor.clone(),
            acked,
        );
        let replica = Arc::new(StoreReplica {
            store,
            collections: Arc::new(config.collections.iter().cloned().collect()),
            hlc,
            log_retention: config.log_retention,
        });
        if config.start_paused {
            // Before the driver starts, so not even its first pull goes out. The only action
            // is the log record of the pause, which is not worth keeping.
            let _ = machine.handle(0, Event::Pause);
        }
        let started_at_ms = unix_ms();
        let driver = SyncDriver::spawn(machine, transport, Arc::clone(&replica), opened.cursor);
        for entry in pending {
            driver
                .send(Event::LocalWrite(entry))
                .await
                .map_err(|_| DeviceError::Stopped)?;
        }
        Ok(Device {
            replica,
            device_id: opened.identity.device_id,
            epoch: opened.identity.epoch,
            started_at_ms,
            write_lock: tokio::sync::Mutex::new(()),
            driver,
        })
    }

    /// The device id (the producer id the server deduplicates by).
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The epoch of the local file (new whenever the file is created).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The local store, for reads ([`Store::get`], [`Store::find`], [`Store::changes_since`]).
    /// Write through the device's own methods: a write made directly on the store has no
    /// outbox entry and is never sent.
    pub fn store(&self) -> &Store {
        &self.replica.store
    }

    /// Creates a document (new id) and queues it for the server.
    ///
    /// # Errors
    /// [`DeviceError::NotSynced`]; [`DeviceError::Store`] as [`Store::create`].
    pub async fn create(&self, collection: &str, body: Json) -> Result<Document, DeviceError> {
        self.write(collection, LocalOp::Create { id: None, body })
            .await?
            .ok_or_else(|| DeviceError::Store(corrupt("create", "no document")))
    }

    /// Creates a document with a caller-chosen id (a lowercase hyphenated UUID).
    ///
    /// # Errors
    /// As [`Device::create`]; [`DocError::Unique`] when it exists.
    pub async fn create_with_id(
        &self,
        collection: &str,
        id: &str,
        body: Json,
    ) -> Result<Document, DeviceError> {
        let op = LocalOp::Create {
            id: Some(id.to_owned()),
            body,
        };
        self.write(collection, op)
            .await?
            .ok_or_else(|| DeviceError::Store(corrupt("create", "no document")))
    }

    /// Replaces a document's body and queues the new body for the server.
    ///
    /// # Errors
    /// [`DeviceError::NotSynced`]; [`DeviceError::Store`] as [`Store::replace`].
    pub async fn replace(
        &self,
        collection: &str,
        id: &str,
        body: Json,
    ) -> Result<Document, DeviceError> {
        let op = LocalOp::Replace {
            id: id.to_owned(),
            body,
        };
        self.write(collection, op)
            .await?
            .ok_or_else(|| DeviceError::Store(corrupt("replace", "no document")))
    }

    /// Merges a JSON merge patch into a document and queues the patch for the server (which
    /// merges it into its own version when the write wins there).
    ///
    /// # Errors
    /// [`DeviceError::NotSynced`]; [`DeviceError::Store`] as [`Store::patch`].
    pub async fn patch(
        &self,
        collection: &str,
        id: &str,
        patch: Json,
    ) -> Result<Document, DeviceError> {
        let op = LocalOp::Patch {
            id: id.to_owned(),
            patch,
        };
        self.write(collection, op)
            .await?
            .ok_or_else(|| DeviceError::Store(corrupt("patch", "no document")))
    }

    /// Deletes a document and queues the delete for the server.
    ///
    /// # Errors
    /// [`DeviceError::NotSynced`]; [`DeviceError::Store`] as [`Store::delete`].
    pub async fn delete(&self, collection: &str, id: &str) -> Result<(), DeviceError> {
        self.write(collection, LocalOp::Delete { id: id.to_owned() })
            .await
            .map(drop)
    }

    async fn write(&self, collection: &str, op: LocalOp) -> Result<Option<Document>, DeviceError> {
        if !self.replica.collections.contains(collection) {
            return Err(DeviceError::NotSynced {
                collection: collection.to_owned(),
            });
        }
        let _order = self.write_lock.lock().await;
        let producer = Producer {
            device: self.device_id.clone(),
            epoch: self.epoch,
            hlc: Arc::clone(&self.replica.hlc),
        };
        let collection = collection.to_owned();
        let (document, entry) = self
            .replica
            .store
            .transaction(move |tx| async move {
                let mut clock = read_clock(&tx).await?;
                let (document, doc_id, op, body) = match op {
                    LocalOp::Create { id, body } => {
                        let doc = match id {
                            Some(id) => tx.create_with_id(&collection, &id, body).await?,
                            None => tx.create(&collection, body).await?,
                        };
                        let body = Json::Object(doc.body.clone());
                        (Some(doc.clone()), doc.id, Op::Put, body)
                    }
                    LocalOp::Replace { id, body } => {
                        let doc = tx.replace(&collection, &id, body, None).await?;
                        let body = Json::Object(doc.body.clone());
                        (Some(doc), id, Op::Put, body)
                    }
                    LocalOp::Patch { id, patch } => {
                        let doc = tx.patch(&collection, &id, patch.clone(), None).await?;
                        (Some(doc), id, Op::Patch, patch)
                    }
                    LocalOp::Delete { id } => {
                        tx.delete(&collection, &id, None).await?;
                        (None, id, Op::Delete, Json::Null)
                    }
                };
                let entry = producer
                    .queue(&tx, &mut clock, &collection, &doc_id, op, body)
                    .await?;
                Ok((document, entry))
            })
            .await?;
        // The entry is durable: if the driver is gone it is sent after the next open.
        if self.driver.send(Event::LocalWrite(entry)).await.is_err() {
            tracing::warn!(device = %self.device_id, "sync driver stopped; entry stays queued");
        }
        Ok(document)
    }

    /// The current status (state, pending count, oldest pending age, last push and pull, last
    /// error, retry counts).
    ///
    /// # Errors
    /// [`DeviceError::Stopped`] when the driver is gone.
    pub async fn status(&self) -> Result<DeviceStatus, DeviceError> {
        let sync = self
            .driver
            .status()
            .await
            .map_err(|_| DeviceError::Stopped)?;
        Ok(DeviceStatus {
            device_id: self.device_id.clone(),
            epoch: self.epoch,
            started_at_ms: self.started_at_ms,
            sync,
        })
    }

    /// Offline mode: stop talking to the server (local writes go on and queue up).
    ///
    /// # Errors
    /// [`DeviceError::Stopped`].
    pub async fn pause(&self) -> Result<(), DeviceError> {
        self.event(Event::Pause).await
    }

    /// Leaves offline mode and syncs at once.
    ///
    /// # Errors
    /// [`DeviceError::Stopped`].
    pub async fn resume(&self) -> Result<(), DeviceError> {
        self.event(Event::Resume).await
    }

    /// Pushes and pulls now, cutting a backoff wait or the poll interval short.
    ///
    /// # Errors
    /// [`DeviceError::Stopped`].
    pub async fn force_sync(&self) -> Result<(), DeviceError> {
        self.event(Event::ForceSync).await
    }

    async fn event(&self, event: Event) -> Result<(), DeviceError> {
        self.driver
            .send(event)
            .await
            .map_err(|_| DeviceError::Stopped)
    }

    /// The last `limit` records of the sync log, oldest first.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub async fn sync_log(&self, limit: usize) -> Result<Vec<SyncLogEntry>, DeviceError> {
        let limit = limit.clamp(1, litehouse_docs::MAX_META_SCAN);
        let entries = self
            .replica
            .store
            .transaction(move |tx| async move {
                let next = tx
                    .meta_get(NS_DEVICE, "log_next")
                    .await?
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0);
                let from = next.saturating_sub(limit as u64);
                let after = from.checked_sub(1).map(seq_key);
                tx.meta_scan(NS_LOG, after.as_deref(), limit).await
            })
            .await?;
        entries
            .into_iter()
            .map(|(_, v)| {
                serde_json::from_value(v).map_err(|e| DeviceError::Store(corrupt("sync log", e)))
            })
            .collect()
    }

    /// Up to `limit` outbox entries not yet acknowledged by the server, in sequence order.
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub async fn outbox(&self, limit: usize) -> Result<Vec<OutboxEntry>, DeviceError> {
        let limit = limit.clamp(1, litehouse_docs::MAX_META_SCAN);
        let entries = self
            .replica
            .store
            .transaction(move |tx| async move { tx.meta_scan(NS_OUTBOX, None, limit).await })
            .await?;
        entries
            .into_iter()
            .map(|(_, v)| {
                serde_json::from_value(v).map_err(|e| DeviceError::Store(corrupt("outbox", e)))
            })
            .collect()
    }

    /// The pull cursor stored in the file (the server position the local state reflects).
    ///
    /// # Errors
    /// [`DeviceError::Store`].
    pub async fn stored_cursor(&self) -> Result<Option<String>, DeviceError> {
        let cursor = self
            .replica
            .store
            .transaction(|tx| async move { tx.meta_get(NS_DEVICE, "cursor").await })
            .await?;
        Ok(cursor.and_then(|v| v.as_str().map(str::to_owned)))
    }

    /// Applies pulled changes as a pull does (last-writer-wins, `cursor` stored in the same
    /// transaction; `full`: a full re-read); returns how many changed a document. For
    /// benchmarks and tools: the driver does this itself.
    pub(crate) async fn apply_pulled(
        &self,
        changes: Vec<crate::protocol::PulledChange>,
        cursor: Option<String>,
        full: bool,
    ) -> Result<u64, DeviceError> {
        Ok(self
            .replica
            .apply_changes(changes, cursor, full)
            .await?
            .applied)
    }

    /// Stops syncing and waits for the driver to end (requests in flight are abandoned; the
    /// outbox keeps what was not acknowledged).
    pub async fn stop(self) {
        self.driver.stop().await;
    }
}
