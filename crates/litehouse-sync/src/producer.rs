//! The server's side of the push protocol, without I/O: given what the server stored for a
//! device and a push request, decide what to apply. A store-backed handler calls [`admit`]
//! inside the transaction that applies the entries and stores the new [`ProducerState`], so
//! the decision and its effects commit together.

use crate::protocol::{GapResponse, PushRequest, StaleEpochResponse};

/// What the server keeps per device (producer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ProducerState {
    /// The device's current epoch.
    pub epoch: u64,
    /// The last sequence applied (or rejected and acknowledged) in that epoch; 0 = none.
    pub last_seq: u64,
}

/// The verdict on a push request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// How many leading entries were already applied: acknowledge them, do not apply again.
    pub skip: usize,
    /// The state to store after applying `entries[skip..]` (their seqs run from
    /// `state.last_seq + 1`).
    pub next: ProducerState,
}

/// Why a push request is refused; nothing is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// 409: the batch starts after the next expected sequence.
    #[error("sequence gap: expected {}, received {}", .0.expected_seq, .0.received_seq)]
    Gap(GapResponse),
    /// 403: the request's epoch is older than the stored one.
    #[error("stale epoch: current epoch is {}", .0.current_epoch)]
    StaleEpoch(StaleEpochResponse),
    /// 400: the request is malformed (empty, not gapless, inconsistent range, bad device id).
    #[error("invalid push request: {0}")]
    Invalid(String),
}

impl AdmitError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            AdmitError::Gap(_) => 409,
            AdmitError::StaleEpoch(_) => 403,
            AdmitError::Invalid(_) => 400,
        }
    }
}

/// Decide what to do with `req` given the stored `state` (None: a device never seen).
///
/// A newer epoch starts a fresh sequence space at 1. Entries with `seq <= last_seq` are
/// duplicates; the first new entry must be `last_seq + 1`.
///
/// ```
/// use litehouse_sync::{admit, AdmitError, ProducerState};
/// # use litehouse_sync::{PushRequest};
/// let req = |first: u64, n: u64| PushRequest {
///     device: "d1".into(), epoch: 1, first_seq: first, last_seq: first + n - 1,
///     entries: (first..first + n).map(|seq| litehouse_sync::OutboxEntry {
///         seq, op_id: format!("op{seq}"), hlc: litehouse_sync::Hlc(uhlc::HLC::default().new_timestamp()),
///         collection: "c".into(), doc_id: "x".into(), op: litehouse_sync::Op::Delete,
///         body: serde_json::Value::Null,
///     }).collect(),
/// };
/// let st = ProducerState { epoch: 1, last_seq: 3 };
/// let a = admit(Some(st), &req(2, 4)).unwrap(); // seqs 2..=5: 2 and 3 are duplicates
/// assert_eq!((a.skip, a.next.last_seq), (2, 5));
/// assert!(matches!(admit(Some(st), &req(5, 1)), Err(AdmitError::Gap(g)) if g.expected_seq == 4));
/// ```
pub fn admit(state: Option<ProducerState>, req: &PushRequest) -> Result<Admission, AdmitError> {
    validate(req)?;
    let stored = state.unwrap_or_default();
    let last = if state.is_none() || req.epoch > stored.epoch {
        0
    } else if req.epoch < stored.epoch {
        return Err(AdmitError::StaleEpoch(StaleEpochResponse {
            current_epoch: stored.epoch,
        }));
    } else {
        stored.last_seq
    };
    if req.first_seq > last + 1 {
        return Err(AdmitError::Gap(GapResponse {
            expected_seq: last + 1,
            received_seq: req.first_seq,
        }));
    }
    let skip = usize::try_from((last + 1 - req.first_seq).min(req.entries.len() as u64))
        .unwrap_or(req.entries.len());
    Ok(Admission {
        skip,
        next: ProducerState {
            epoch: req.epoch,
            last_seq: last.max(req.last_seq),
        },
    })
}

fn validate(req: &PushRequest) -> Result<(), AdmitError> {
    let invalid = |m: String| Err(AdmitError::Invalid(m));
    if req.device.is_empty() || req.device.len() > 128 {
        return invalid("device id must be 1 to 128 bytes".into());
    }
    let Some(first) = req.entries.first() else {
        return invalid("no entries".into());
    };
    if first.seq == 0 {
        return invalid("sequences start at 1".into());
    }
    if first.seq != req.first_seq || req.entries.last().map(|e| e.seq) != Some(req.last_seq) {
        return invalid(format!(
            "first_seq/last_seq ({}..={}) do not match the entries",
            req.first_seq, req.last_seq
        ));
    }
    for w in req.entries.windows(2) {
        if w[1].seq != w[0].seq + 1 {
            return invalid(format!(
                "entries not gapless: {} then {}",
                w[0].seq, w[1].seq
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Hlc, Op, OutboxEntry};

    fn req(epoch: u64, seqs: &[u64]) -> PushRequest {
        let clock = uhlc::HLC::default();
        PushRequest {
            device: "d".into(),
            epoch,
            first_seq: seqs.first().copied().unwrap_or(0),
            last_seq: seqs.last().copied().unwrap_or(0),
            entries: seqs
                .iter()
                .map(|&seq| OutboxEntry {
                    seq,
                    op_id: format!("o{seq}"),
                    hlc: Hlc(clock.new_timestamp()),
                    collection: "c".into(),
                    doc_id: "x".into(),
                    op: Op::Put,
                    body: serde_json::json!({}),
                })
                .collect(),
        }
    }

    #[test]
    fn new_device_duplicates_gaps_and_epochs() {
        let a = admit(None, &req(5, &[1, 2])).unwrap();
        assert_eq!(a.skip, 0);
        assert_eq!(
            a.next,
            ProducerState {
                epoch: 5,
                last_seq: 2
            }
        );
        assert!(
            matches!(admit(None, &req(5, &[2])), Err(AdmitError::Gap(g)) if g.expected_seq == 1)
        );

        let st = Some(ProducerState {
            epoch: 5,
            last_seq: 2,
        });
        // Entire batch is a duplicate: acknowledged, nothing applied, state unchanged.
        let a = admit(st, &req(5, &[1, 2])).unwrap();
        assert_eq!((a.skip, a.next.last_seq), (2, 2));
        let a = admit(st, &req(5, &[3])).unwrap();
        assert_eq!((a.skip, a.next.last_seq), (0, 3));
        let e = admit(st, &req(5, &[4])).unwrap_err();
        assert_eq!(e.status(), 409);
        let e = admit(st, &req(4, &[3])).unwrap_err();
        assert_eq!(
            e,
            AdmitError::StaleEpoch(StaleEpochResponse { current_epoch: 5 })
        );
        assert_eq!(e.status(), 403);
        // A newer epoch starts over at 1.
        let a = admit(st, &req(6, &[1])).unwrap();
        assert_eq!(
            a.next,
            ProducerState {
                epoch: 6,
                last_seq: 1
            }
        );
        assert!(matches!(admit(st, &req(6, &[3])), Err(AdmitError::Gap(g)) if g.expected_seq == 1));
    }

    #[test]
    fn malformed_requests_are_invalid() {
        for bad in [req(1, &[]), req(1, &[0]), req(1, &[1, 3])] {
            assert_eq!(admit(None, &bad).unwrap_err().status(), 400, "{bad:?}");
        }
        let mut r = req(1, &[1, 2]);
        r.last_seq = 5;
        assert!(matches!(admit(None, &r), Err(AdmitError::Invalid(_))));
        r = req(1, &[1]);
        r.device.clear();
        assert!(matches!(admit(None, &r), Err(AdmitError::Invalid(_))));
    }
}
