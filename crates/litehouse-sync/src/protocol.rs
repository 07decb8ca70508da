//! Wire types of the sync protocol (JSON over HTTP).
//!
//! A device is an idempotent producer in the Durable-Streams sense: it has a stable `device`
//! id, an `epoch` that changes when its local database is recreated, and a gapless per-entry
//! sequence `seq` (starting at 1 in every epoch). The server applies `seq == last + 1`,
//! acknowledges `seq <= last` without applying again, rejects a gap with 409 and a stale epoch
//! with 403.

use serde::{Deserialize, Serialize};

/// A hybrid-logical-clock timestamp ([`uhlc::Timestamp`]), serialized as its `time/id` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc(pub uhlc::Timestamp);

impl Serialize for Hlc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Hlc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse::<uhlc::Timestamp>()
            .map(Hlc)
            .map_err(|e| serde::de::Error::custom(format!("invalid HLC timestamp {text:?}: {e}")))
    }
}

/// The operation an outbox entry or a change carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Create the document, or replace it if it exists (an upsert with the full body).
    Put,
    /// Merge the body into the existing document (JSON merge patch).
    Patch,
    /// Delete the document.
    Delete,
}

/// One local mutation waiting in a device's outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Gapless per-device, per-epoch sequence number, starting at 1.
    pub seq: u64,
    /// Globally unique id of this operation (for logs and end-to-end exactly-once checks).
    pub op_id: String,
    /// When the device made the change.
    pub hlc: Hlc,
    /// Target collection.
    pub collection: String,
    /// Target document id.
    pub doc_id: String,
    /// What to do.
    pub op: Op,
    /// The document body (for `Put`) or the patch (for `Patch`); `null` for `Delete`.
    pub body: serde_json::Value,
}

/// `POST /api/sync/push` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRequest {
    /// The producer: the device id.
    pub device: String,
    /// The device's epoch; a larger epoch starts a fresh sequence space.
    pub epoch: u64,
    /// Sequence of the first entry.
    pub first_seq: u64,
    /// Sequence of the last entry.
    pub last_seq: u64,
    /// The entries, in sequence order, without gaps.
    pub entries: Vec<OutboxEntry>,
}

/// One entry the server acknowledged but did not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Sequence of the rejected entry.
    pub seq: u64,
    /// Its operation id.
    pub op_id: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Successful push response (200): everything up to `acked_seq` is durable on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    /// The server's last sequence for this device and epoch.
    pub acked_seq: u64,
    /// Entries acknowledged but not applied (validation failed); they never block the queue.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
}

/// Body of a 409 push response: the batch did not start where the server expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapResponse {
    /// The sequence the server expects next.
    pub expected_seq: u64,
    /// The first sequence of the rejected batch.
    pub received_seq: u64,
}

/// Body of a 403 push response: the request's epoch is older than the server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleEpochResponse {
    /// The epoch the server has for this device.
    pub current_epoch: u64,
}

/// One change from the server's change feed, as a device applies it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PulledChange {
    /// Collection of the document.
    pub collection: String,
    /// Document id.
    pub doc_id: String,
    /// `Put` (full document in `document`) or `Delete`.
    pub op: Op,
    /// The full document after the change, `null` for a delete.
    pub document: serde_json::Value,
    /// The HLC of the write that produced this state.
    pub hlc: Hlc,
    /// The device that made the write.
    pub device: String,
}

/// `GET /api/sync/pull?cursor=...` response (200). A 410 means the cursor is past retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullResponse {
    /// Changes after the request's cursor, in commit order.
    pub changes: Vec<PulledChange>,
    /// The cursor to send next time (opaque).
    pub next: Option<String>,
    /// Whether `next` is the head of the feed.
    pub up_to_date: bool,
    /// During a full re-read (`full=true`) that has more pages: the token to pass as `after`
    /// for the next page. `None` on the last page and on ordinary pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<String>,
}

/// Last-writer-wins order on `(HLC, device id)`: true when `a` should win over `b`.
///
/// The HLC already embeds a unique clock id; the device id breaks the (theoretical) tie when two
/// devices share a clock id, so the order is total and every replica picks the same winner.
///
/// ```
/// use litehouse_sync::{lww_wins, Hlc};
/// let clock = uhlc::HLC::default();
/// let (a, b) = (Hlc(clock.new_timestamp()), Hlc(clock.new_timestamp()));
/// assert!(lww_wins((&b, "d1"), (&a, "d2")));
/// assert!(!lww_wins((&a, "d1"), (&b, "d2")));
/// assert!(lww_wins((&a, "d2"), (&a, "d1")));
/// ```
pub fn lww_wins(a: (&Hlc, &str), b: (&Hlc, &str)) -> bool {
    a > b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlc_round_trips_as_text() {
        let clock = uhlc::HLC::default();
        let h = Hlc(clock.new_timestamp());
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.starts_with('"'), "{json}");
        let back: Hlc = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        let err = serde_json::from_str::<Hlc>("\"nonsense\"").unwrap_err();
        assert!(err.to_string().contains("invalid HLC"), "{err}");
    }

    #[test]
    fn push_request_round_trips() {
        let clock = uhlc::HLC::default();
        let req = PushRequest {
            device: "d1".into(),
            epoch: 7,
            first_seq: 1,
            last_seq: 1,
            entries: vec![OutboxEntry {
                seq: 1,
                op_id: "op-1".into(),
                hlc: Hlc(clock.new_timestamp()),
                collection: "tx".into(),
                doc_id: "a".into(),
                op: Op::Put,
                body: serde_json::json!({"amount": 3}),
            }],
        };
        let text = serde_json::to_string(&req).unwrap();
        assert!(text.contains("\"op\":\"put\""), "{text}");
        assert_eq!(serde_json::from_str::<PushRequest>(&text).unwrap(), req);
    }
}
