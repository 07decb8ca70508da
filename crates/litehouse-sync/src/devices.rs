//! Read-only: the devices (producers) a server has stored push state for, for dashboards and
//! the server's `/api/debug/sync/devices` route.

use litehouse_docs::{MAX_META_SCAN, Store};

use crate::producer::ProducerState;

/// The bookkeeping namespace the push route keeps each device's [`ProducerState`] in (the
/// same name as in `server.rs`).
const NS_PRODUCER: &str = "sync.producer";

/// One device the server has push state for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProducerEntry {
    /// The device (producer) id.
    pub device: String,
    /// Its stored epoch and last sequence; `None` when the stored value is unreadable.
    pub state: Option<ProducerState>,
    /// Why the stored value could not be read, when it could not.
    pub unreadable: Option<String>,
}

/// Up to `max` devices with stored push state, ordered by device id, read in pages of at most
/// [`MAX_META_SCAN`] with [`Store::meta_scan`]: on a read snapshot, never on the SQLite
/// writer, so a dashboard polling it neither waits behind pushes nor delays them (each page
/// is its own snapshot). A value that does not parse as a [`ProducerState`] is listed with
/// `state: None` and the reason, rather than failing the whole list.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = litehouse_docs::Store::open_sqlite(dir.path().join("server.db")).await?;
/// assert!(litehouse_sync::list_producers(&store, 100).await?.is_empty());
/// # Ok::<(), litehouse_docs::Error>(())
/// # }).unwrap();
/// ```
///
/// # Errors
/// The store's error when the bookkeeping cannot be read.
pub async fn list_producers(
    store: &Store,
    max: usize,
) -> litehouse_docs::Result<Vec<ProducerEntry>> {
    let mut entries = Vec::new();
    let mut after: Option<String> = None;
    while entries.len() < max {
        let limit = (max - entries.len()).min(MAX_META_SCAN);
        let page = store
            .meta_scan(NS_PRODUCER, after.as_deref(), limit)
            .await?;
        let full = page.len() == limit;
        after = page.last().map(|(key, _)| key.clone());
        for (device, value) in page {
            let entry = match serde_json::from_value::<ProducerState>(value) {
                Ok(state) => ProducerEntry {
                    device,
                    state: Some(state),
                    unreadable: None,
                },
                Err(err) => ProducerEntry {
                    device,
                    state: None,
                    unreadable: Some(err.to_string()),
                },
            };
            entries.push(entry);
        }
        if !full {
            break;
        }
    }
    Ok(entries)
}
