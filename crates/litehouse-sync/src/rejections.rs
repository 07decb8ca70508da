//! The rejections a push answered, remembered per device in the store's bookkeeping
//! (namespace `sync.rejected`), so that a batch sent again after its answer was lost is
//! acknowledged with the rejections it had rather than none. Read and written inside the
//! push's transaction (on PostgreSQL under the device's producer lock).

use litehouse_docs::Error as DocError;

use crate::protocol::{OutboxEntry, Rejection};

const NS_REJECTED: &str = "sync.rejected";
/// Most rejections remembered per device (the newest of its epoch), to answer a batch sent
/// again with the rejections it had the first time.
pub const MAX_REMEMBERED_REJECTIONS: usize = 256;
/// Longest rejection reason, in characters; longer ones are cut (so a device's remembered
/// rejections stay well inside the store's value size limit).
pub(crate) const MAX_REASON_CHARS: usize = 1_000;

/// A device's remembered rejections (namespace `sync.rejected`, keyed by device): the
/// newest [`MAX_REMEMBERED_REJECTIONS`] of its epoch, oldest first.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Remembered {
    epoch: u64,
    rejections: Vec<Rejection>,
}

async fn load_remembered(
    tx: &litehouse_docs::Tx,
    device: &str,
    epoch: u64,
) -> litehouse_docs::Result<Remembered> {
    let stored = tx.meta_get(NS_REJECTED, device).await?;
    // An unreadable value (a bug, a hand edit) only costs the re-sent answers their
    // rejections: it is replaced by the next rejection rather than failing every push.
    Ok(stored
        .and_then(|value| serde_json::from_value::<Remembered>(value).ok())
        .filter(|remembered| remembered.epoch == epoch)
        .unwrap_or(Remembered {
            epoch,
            rejections: Vec::new(),
        }))
}

/// The remembered rejections of `duplicates`, entries of a batch sent again.
pub(crate) async fn remembered(
    tx: &litehouse_docs::Tx,
    device: &str,
    epoch: u64,
    duplicates: &[OutboxEntry],
) -> litehouse_docs::Result<Vec<Rejection>> {
    let (Some(first), Some(last)) = (duplicates.first(), duplicates.last()) else {
        return Ok(Vec::new());
    };
    let remembered = load_remembered(tx, device, epoch).await?;
    Ok(remembered
        .rejections
        .into_iter()
        .filter(|r| (first.seq..=last.seq).contains(&r.seq))
        .collect())
}

/// Adds `rejections` to the device's remembered ones, keeping the newest
/// [`MAX_REMEMBERED_REJECTIONS`] (fewer when the store's value size limit is lower).
pub(crate) async fn remember(
    tx: &litehouse_docs::Tx,
    device: &str,
    epoch: u64,
    rejections: &[Rejection],
) -> litehouse_docs::Result<()> {
    let mut remembered = load_remembered(tx, device, epoch).await?;
    remembered.rejections.extend_from_slice(rejections);
    let excess = remembered
        .rejections
        .len()
        .saturating_sub(MAX_REMEMBERED_REJECTIONS);
    remembered.rejections.drain(..excess);
    loop {
        let value = serde_json::to_value(&remembered).unwrap_or_default();
        // The size check runs before any statement, so a refusal leaves the transaction
        // usable (on PostgreSQL too): keep the newer half and try again.
        match tx.meta_put(NS_REJECTED, device, value).await {
            Err(DocError::LimitExceeded { .. }) if remembered.rejections.len() > 1 => {
                let half = remembered.rejections.len() / 2;
                remembered.rejections.drain(..half);
            }
            // Not even one fits under this store's limit: not remembered (only an answer to
            // a re-sent batch goes without it).
            Err(DocError::LimitExceeded { .. }) => return Ok(()),
            other => return other,
        }
    }
}
