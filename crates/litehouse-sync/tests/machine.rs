//! Unit tests of the sans-I/O sync machine.

use litehouse_sync::{
    Action, Event, GapResponse, Hlc, Op, OutboxEntry, PullFailure, PullResponse, PulledChange,
    PushFailure, PushResponse, Rejection, StaleEpochResponse, SyncConfig, SyncMachine, SyncState,
};

fn config() -> SyncConfig {
    SyncConfig {
        max_batch: 2,
        base_backoff: 100,
        max_backoff: 1_000,
        poll_interval: 5_000,
        request_timeout: 2_000,
        jitter_seed: 42,
    }
}

fn entry(clock: &uhlc::HLC, seq: u64) -> OutboxEntry {
    OutboxEntry {
        seq,
        op_id: format!("op-{seq}"),
        hlc: Hlc(clock.new_timestamp()),
        collection: "tx".into(),
        doc_id: format!("doc-{seq}"),
        op: Op::Put,
        body: serde_json::json!({ "n": seq }),
    }
}

fn push_of(actions: &[Action]) -> Option<(u64, u64, u64)> {
    actions.iter().find_map(|a| match a {
        Action::SendPush { req, request, .. } => Some((*req, request.first_seq, request.last_seq)),
        _ => None,
    })
}

fn pull_of(actions: &[Action]) -> Option<(u64, Option<String>)> {
    actions.iter().find_map(|a| match a {
        Action::FetchChangesSince { req, cursor, .. } => Some((*req, cursor.clone())),
        _ => None,
    })
}

fn sleep_of(actions: &[Action]) -> Option<u64> {
    actions.iter().find_map(|a| match a {
        Action::SleepUntil(t) => Some(*t),
        _ => None,
    })
}

fn up_to_date(next: &str) -> PullResponse {
    PullResponse {
        changes: vec![],
        next: Some(next.into()),
        up_to_date: true,
        resume: None,
    }
}

/// A machine that has done its first (empty) pull and is idle.
fn idle_machine() -> SyncMachine {
    let mut m = SyncMachine::new(config(), "dev-1", 1, None, 0);
    let a = m.handle(0, Event::Timer);
    let (req, cursor) = pull_of(&a).expect("first pull");
    assert_eq!(cursor, None);
    let a = m.handle(
        1,
        Event::PullResult {
            req,
            result: Ok(up_to_date("c0")),
        },
    );
    assert_eq!(sleep_of(&a), Some(5_001));
    assert_eq!(m.status(1).state, SyncState::Online);
    m
}

#[test]
fn push_is_batched_and_marked_synced_only_after_ack() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    let a = m.handle(10, Event::LocalWrite(entry(&clock, 1)));
    let (req, first, last) = push_of(&a).expect("a local write pushes at once");
    assert_eq!((first, last), (1, 1));
    // More writes while the push is in flight wait for it.
    assert_eq!(
        push_of(&m.handle(11, Event::LocalWrite(entry(&clock, 2)))),
        None
    );
    assert_eq!(
        push_of(&m.handle(12, Event::LocalWrite(entry(&clock, 3)))),
        None
    );
    let st = m.status(20);
    assert_eq!(st.pending, 3);
    assert_eq!(st.oldest_pending_age, Some(10));
    assert_eq!(st.state, SyncState::Syncing);
    assert!(!a.iter().any(|x| matches!(x, Action::MarkSynced { .. })));

    let a = m.handle(
        30,
        Event::PushResult {
            req,
            result: acked_up_to(1),
        },
    );
    assert!(a.contains(&Action::MarkSynced {
        up_to_seq: 1,
        rejected: vec![]
    }));
    let (req, first, last) = push_of(&a).expect("the rest is pushed next, max_batch = 2");
    assert_eq!((first, last), (2, 3));
    let a = m.handle(
        40,
        Event::PushResult {
            req,
            result: Ok(PushResponse {
                acked_seq: 3,
                rejected: vec![Rejection {
                    seq: 2,
                    op_id: "op-2".into(),
                    reason: "invalid".into(),
                }],
            }),
        },
    );
    assert!(matches!(
        &a[..],
        [.., Action::FetchChangesSince { .. }, Action::SleepUntil(_)]
    ));
    let st = m.status(40);
    assert_eq!(st.pending, 0);
    assert_eq!(st.rejected_total, 1);
    assert_eq!(st.last_push_ok, Some(40));
    assert!(st.last_error.unwrap().contains("seq 2 rejected"));
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Log(l) if l.kind == "rejected"))
    );
}

#[test]
fn failed_push_is_retried_by_the_timer_without_a_new_write() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    let (mut req, ..) = push_of(&m.handle(100, Event::LocalWrite(entry(&clock, 1)))).unwrap();
    let mut now = 100;
    let mut ceilings = vec![];
    for attempt in 1..=8u32 {
        let a = m.handle(
            now,
            Event::PushResult {
                req,
                result: Err(PushFailure::Transport("connection refused".into())),
            },
        );
        let wake = sleep_of(&a).expect("a failure always re-arms the timer");
        let delay = wake - now;
        let ceiling = (100u64 << (attempt - 1)).min(1_000);
        assert!(
            delay >= ceiling / 2 && delay <= ceiling,
            "attempt {attempt}: delay {delay} outside [{}, {ceiling}]",
            ceiling / 2
        );
        ceilings.push(ceiling);
        let st = m.status(now);
        assert_eq!(st.state, SyncState::BackingOff { until: wake });
        assert_eq!(st.consecutive_failures, attempt);
        assert_eq!(st.last_error.as_deref(), Some("connection refused"));
        // An early timer does nothing.
        assert_eq!(push_of(&m.handle(wake - 1, Event::Timer)), None);
        now = wake;
        req = push_of(&m.handle(now, Event::Timer))
            .expect("retried when the backoff expires")
            .0;
    }
    assert_eq!(*ceilings.last().unwrap(), 1_000, "backoff capped");
    assert_eq!(m.status(now).total_retries, 8);
    m.handle(
        now,
        Event::PushResult {
            req,
            result: acked_up_to(1),
        },
    );
    assert_eq!(m.status(now).consecutive_failures, 0);
    assert_eq!(m.status(now).pending, 0);
}

#[test]
fn unanswered_request_times_out_and_is_retried() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    let a = m.handle(100, Event::LocalWrite(entry(&clock, 1)));
    let (req, ..) = push_of(&a).unwrap();
    assert_eq!(sleep_of(&a), Some(2_100), "timer armed at the deadline");
    let a = m.handle(2_100, Event::Timer);
    assert_eq!(push_of(&a), None);
    let wake = sleep_of(&a).unwrap();
    assert!(wake > 2_100 && wake <= 2_200);
    assert_eq!(
        m.status(2_100).last_error.as_deref(),
        Some("request timed out")
    );
    // The late answer to the abandoned request is ignored: the entry stays pending.
    m.handle(
        2_150,
        Event::PushResult {
            req,
            result: acked_up_to(1),
        },
    );
    assert_eq!(m.status(2_150).pending, 1);
    assert!(push_of(&m.handle(wake, Event::Timer)).is_some());
}

#[test]
fn local_write_and_network_up_cut_backoff_short() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    let (req, ..) = push_of(&m.handle(100, Event::LocalWrite(entry(&clock, 1)))).unwrap();
    let a = m.handle(
        100,
        Event::PushResult {
            req,
            result: Err(PushFailure::Server {
                status: 503,
                message: "busy".into(),
                retry_after: None,
            }),
        },
    );
    assert!(sleep_of(&a).unwrap() > 100);
    let (req, first, last) = push_of(&m.handle(101, Event::LocalWrite(entry(&clock, 2)))).unwrap();
    assert_eq!((first, last), (1, 2));

    // Network down: the request is abandoned, nothing is sent, state is offline.
    assert_eq!(
        m.handle(102, Event::NetworkDown)
            .iter()
            .find(|a| matches!(a, Action::SendPush { .. })),
        None
    );
    assert_eq!(m.status(102).state, SyncState::Offline { paused: false });
    m.handle(
        103,
        Event::PushResult {
            req,
            result: acked_up_to(2),
        },
    );
    assert_eq!(
        m.status(103).pending,
        2,
        "result of an abandoned request ignored"
    );
    assert_eq!(
        push_of(&m.handle(104, Event::LocalWrite(entry(&clock, 3)))),
        None
    );
    assert_eq!(push_of(&m.handle(5_000, Event::Timer)), None);
    let (_, first, last) = push_of(&m.handle(5_001, Event::NetworkUp)).unwrap();
    assert_eq!((first, last), (1, 2));
}

#[test]
fn pause_resume_force_sync_and_stop() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    m.handle(10, Event::Pause);
    assert_eq!(m.status(10).state, SyncState::Offline { paused: true });
    assert_eq!(
        push_of(&m.handle(11, Event::LocalWrite(entry(&clock, 1)))),
        None
    );
    assert_eq!(m.status(11).pending, 1);
    let (req, ..) = push_of(&m.handle(12, Event::Resume)).unwrap();
    // The pull follows the acknowledged push at once.
    let a = m.handle(
        13,
        Event::PushResult {
            req,
            result: acked_up_to(1),
        },
    );
    let (req, cursor) = pull_of(&a).unwrap_or_else(|| panic!("{a:?}"));
    assert_eq!(cursor.as_deref(), Some("c0"));
    let a = m.handle(
        15,
        Event::PullResult {
            req,
            result: Ok(up_to_date("c1")),
        },
    );
    assert_eq!(sleep_of(&a), Some(5_015));
    assert!(m.is_quiescent());
    // ForceSync pulls before the poll interval.
    assert!(pull_of(&m.handle(16, Event::ForceSync)).is_some());
    assert!(
        m.handle(17, Event::Stop)
            .iter()
            .all(|a| matches!(a, Action::Log(_)))
    );
    assert!(m.handle(18, Event::LocalWrite(entry(&clock, 2))).is_empty());
    assert_eq!(m.status(18).state, SyncState::Stopped);
}

#[test]
fn pull_pages_until_up_to_date_and_expired_cursor_triggers_full_read() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    let (req, _) = pull_of(&m.handle(6_000, Event::Timer)).unwrap();
    let change = PulledChange {
        collection: "tx".into(),
        doc_id: "a".into(),
        op: Op::Put,
        document: serde_json::json!({"x": 1}),
        hlc: Hlc(clock.new_timestamp()),
        device: "dev-2".into(),
    };
    let a = m.handle(
        6_001,
        Event::PullResult {
            req,
            result: Ok(PullResponse {
                changes: vec![change.clone()],
                next: Some("c5".into()),
                up_to_date: false,
                resume: None,
            }),
        },
    );
    assert!(a.contains(&Action::ApplyBatch {
        changes: vec![change.clone()],
        cursor: Some("c5".into()),
        full: false
    }));
    let (req, cursor) = pull_of(&a).expect("not up to date: next page at once");
    assert_eq!(cursor.as_deref(), Some("c5"));
    let a = m.handle(
        6_002,
        Event::PullResult {
            req,
            result: Err(PullFailure::Expired),
        },
    );
    let req = a
        .iter()
        .find_map(|a| match a {
            Action::ReadAll { req, .. } => Some(*req),
            _ => None,
        })
        .expect("an expired cursor asks for a full re-read");
    // A failure of the full read is retried as a full read.
    let a = m.handle(
        6_003,
        Event::PullResult {
            req,
            result: Err(PullFailure::Transport("reset".into())),
        },
    );
    let wake = sleep_of(&a).unwrap();
    let a = m.handle(wake, Event::Timer);
    let req = a
        .iter()
        .find_map(|a| match a {
            Action::ReadAll { req, .. } => Some(*req),
            _ => None,
        })
        .expect("full re-read retried");
    let a = m.handle(
        wake + 1,
        Event::PullResult {
            req,
            result: Ok(PullResponse {
                changes: vec![change.clone()],
                next: Some("c9".into()),
                up_to_date: true,
                resume: None,
            }),
        },
    );
    assert!(a.contains(&Action::ApplyBatch {
        changes: vec![change],
        cursor: Some("c9".into()),
        full: true
    }));
    assert!(m.is_quiescent());
    assert_eq!(m.status(wake + 1).cursor.as_deref(), Some("c9"));
}

#[test]
fn gap_and_stale_epoch_responses() {
    let clock = uhlc::HLC::default();
    let mut m = SyncMachine::new(config(), "dev-1", 3, Some("c0".into()), 4);
    // Entries already acknowledged (seq <= 4) are not pending again.
    let a = m.handle(0, Event::LocalWrite(entry(&clock, 4)));
    assert_eq!(m.status(0).pending, 0);
    let (req, cursor) = pull_of(&a).expect("first pull from the stored cursor");
    assert_eq!(cursor.as_deref(), Some("c0"));
    m.handle(
        0,
        Event::PullResult {
            req,
            result: Ok(up_to_date("c0")),
        },
    );
    let a = m.handle(1, Event::LocalWrite(entry(&clock, 5)));
    let (req, first, _) = push_of(&a).unwrap();
    assert_eq!(first, 5);
    m.handle(2, Event::LocalWrite(entry(&clock, 6)));
    // The server already has 5 (the ack was lost): it expects 6. That counts as an ack.
    let a = m.handle(
        3,
        Event::PushResult {
            req,
            result: Err(PushFailure::Gap(GapResponse {
                expected_seq: 6,
                received_seq: 5,
            })),
        },
    );
    assert!(a.contains(&Action::MarkSynced {
        up_to_seq: 5,
        rejected: vec![]
    }));
    let (req, first, _) = push_of(&a).unwrap();
    assert_eq!(first, 6);
    // The server lost data: it expects 2. Reported, retried with backoff.
    let a = m.handle(
        4,
        Event::PushResult {
            req,
            result: Err(PushFailure::Gap(GapResponse {
                expected_seq: 2,
                received_seq: 6,
            })),
        },
    );
    assert!(sleep_of(&a).unwrap() > 4);
    assert!(m.status(4).last_error.unwrap().contains("expects seq 2"));
    let wake = sleep_of(&a).unwrap();
    let (req, ..) = push_of(&m.handle(wake, Event::Timer)).unwrap();
    m.handle(
        wake,
        Event::PushResult {
            req,
            result: Err(PushFailure::StaleEpoch(StaleEpochResponse {
                current_epoch: 9,
            })),
        },
    );
    let st = m.status(wake);
    assert!(st.last_error.unwrap().contains("epoch 3 is older"));
    assert_eq!(st.pending, 1);
    assert!(matches!(st.state, SyncState::BackingOff { .. }));
}

#[test]
fn outbox_gap_is_reported_at_once() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    let a = m.handle(10, Event::LocalWrite(entry(&clock, 2)));
    assert!(
        a.iter()
            .any(|x| matches!(x, Action::Log(l) if l.kind == "local-error"))
    );
    assert!(m.status(10).last_error.unwrap().contains("outbox gap"));
    assert_eq!(m.status(10).pending, 1);
}

#[test]
fn config_and_status_serialize() {
    let c: SyncConfig = serde_json::from_str(r#"{"max_backoff": 5000}"#).unwrap();
    assert_eq!(c.max_backoff, 5_000);
    assert_eq!(c.base_backoff, SyncConfig::default().base_backoff);
    let err = serde_json::from_str::<SyncConfig>(r#"{"max_backof": 1}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let m = idle_machine();
    let v = serde_json::to_value(m.status(1)).unwrap();
    assert_eq!(v["state"], serde_json::json!({"state": "online"}));
    assert_eq!(v["pending"], 0);
    assert_eq!(v["cursor"], "c0");
}

/// A batch the server cannot apply within the request timeout shrinks by half after each
/// timeout until one gets through, then doubles back after every `GROW_AFTER` acknowledged
/// pushes in a row.
#[test]
fn a_push_that_times_out_is_retried_with_half_the_batch() {
    let clock = uhlc::HLC::default();
    let mut m = SyncMachine::new(
        SyncConfig {
            max_batch: 8,
            ..config()
        },
        "dev-1",
        1,
        Some("c0".into()),
        0,
    );
    m.handle(0, Event::Pause);
    for seq in 1..=20 {
        m.handle(1, Event::LocalWrite(entry(&clock, seq)));
    }
    let mut now = 10;
    let mut a = m.handle(now, Event::Resume);
    let mut sizes = Vec::new();
    // Three timeouts: 8, 4, 2 entries; then 1.
    for _ in 0..3 {
        let (_, first, last) = push_of(&a).expect("a push");
        sizes.push(last - first + 1);
        now += 2_000;
        let timed_out = m.handle(now, Event::Timer);
        assert!(push_of(&timed_out).is_none());
        now = sleep_of(&timed_out).expect("backoff");
        a = m.handle(now, Event::Timer);
    }
    let (req, first, last) = push_of(&a).expect("a push");
    sizes.push(last - first + 1);
    assert_eq!(sizes, [8, 4, 2, 1]);
    assert!(
        m.status(now)
            .last_error
            .is_some_and(|e| e.contains("at most 1")),
        "{:?}",
        m.status(now).last_error
    );
    // Acknowledged: the batch doubles after every four acknowledgements in a row.
    let mut acked = last;
    let mut result = acked_up_to(acked);
    let mut grown = Vec::new();
    let mut req = req;
    while acked < 20 {
        let a = m.handle(now + 1, Event::PushResult { req, result });
        let Some((next, first, last)) = push_of(&a) else {
            break;
        };
        assert_eq!(first, acked + 1);
        grown.push(last - first + 1);
        acked = last;
        req = next;
        result = acked_up_to(acked);
        now += 1;
    }
    assert_eq!(litehouse_sync::GROW_AFTER, 4);
    assert_eq!(grown, [1, 1, 1, 2, 2, 2, 2, 4, 4]);
}

/// A machine paused while `count` entries were written, with `max_batch` 8; resumed at 10,
/// it has sent its first push (returned with the actions).
fn paused_writer(count: u64) -> (SyncMachine, Vec<Action>) {
    let clock = uhlc::HLC::default();
    let config = SyncConfig {
        max_batch: 8,
        ..config()
    };
    let mut m = SyncMachine::new(config, "dev-1", 1, Some("c0".into()), 0);
    m.handle(0, Event::Pause);
    for seq in 1..=count {
        m.handle(1, Event::LocalWrite(entry(&clock, seq)));
    }
    let a = m.handle(10, Event::Resume);
    (m, a)
}

fn server_error(status: u16, retry_after: Option<u64>) -> Result<PushResponse, PushFailure> {
    Err(PushFailure::Server {
        status,
        message: "overloaded".into(),
        retry_after,
    })
}

fn size(push: (u64, u64, u64)) -> u64 {
    push.2 - push.1 + 1
}

/// A 503 (or any 5xx) halves the next push like a timeout does, down to one entry, and its
/// `Retry-After` is the least the machine waits (capped at `max_backoff`); a 4xx halves
/// nothing.
#[test]
fn a_5xx_push_halves_the_batch_and_waits_at_least_retry_after() {
    let (mut m, a) = paused_writer(40);
    let mut push = push_of(&a).expect("a push");
    let mut now = 10;
    let mut sizes = vec![size(push)];
    // base_backoff is 100: without Retry-After the first retry would come within 100 ms.
    let answers = [
        (503, Some(700)),
        (500, None),
        (502, Some(60_000)),
        (503, None),
    ];
    for (status, retry_after) in answers {
        let a = m.handle(
            now,
            Event::PushResult {
                req: push.0,
                result: server_error(status, retry_after),
            },
        );
        assert!(push_of(&a).is_none());
        let wake = sleep_of(&a).expect("backoff");
        if let Some(wait) = retry_after {
            assert!(wake >= now + wait.min(1_000), "{wake} {now} {wait}");
        }
        assert!(wake <= now + 1_000, "within max_backoff: {wake} {now}");
        now = wake;
        push = push_of(&m.handle(now, Event::Timer)).expect("retried");
        sizes.push(size(push));
    }
    assert_eq!(sizes, [8, 4, 2, 1, 1]);
    assert!(
        m.status(now)
            .last_error
            .is_some_and(|e| e.starts_with("HTTP 503")),
        "{:?}",
        m.status(now).last_error
    );

    // A 400 is the request's fault, not the load's: the batch stays as it is.
    let (mut m, a) = paused_writer(40);
    let push = push_of(&a).expect("a push");
    let a = m.handle(
        10,
        Event::PushResult {
            req: push.0,
            result: server_error(400, None),
        },
    );
    let wake = sleep_of(&a).expect("backoff");
    assert!(
        wake <= 10 + 100,
        "no Retry-After: the machine's own backoff"
    );
    let retried = push_of(&m.handle(wake, Event::Timer)).expect("retried");
    assert_eq!(size(retried), 8);
}

/// After a shrink the batch grows back only after `GROW_AFTER` acknowledgements in a row: a
/// failure in between starts the count again, so a server at its limit sees no oscillation.
#[test]
fn a_shrunk_batch_grows_back_only_after_consecutive_acks() {
    let (mut m, a) = paused_writer(60);
    let push = push_of(&a).expect("a push");
    // The transport's own timeout is typed: it shrinks the batch too.
    let a = m.handle(
        10,
        Event::PushResult {
            req: push.0,
            result: Err(PushFailure::TimedOut),
        },
    );
    let mut now = sleep_of(&a).expect("backoff");
    let mut push = push_of(&m.handle(now, Event::Timer)).expect("retried");
    assert_eq!(size(push), 4);
    assert!(
        m.status(now)
            .last_error
            .is_some_and(|e| e.contains("at most 4")),
        "{:?}",
        m.status(now).last_error
    );
    let mut sizes = Vec::new();
    // Three acks, one 503, then acks until the batch is back at 8.
    for step in 0..12 {
        now += 1;
        let result = if step == 3 {
            server_error(503, None)
        } else {
            acked_up_to(push.2)
        };
        let failed = result.is_err();
        let mut a = m.handle(
            now,
            Event::PushResult {
                req: push.0,
                result,
            },
        );
        if failed {
            now = sleep_of(&a).expect("backoff");
            a = m.handle(now, Event::Timer);
        }
        push = push_of(&a).expect("next push");
        sizes.push(size(push));
    }
    // 4 4 4 (three acks, no growth), the 503 halves to 2; four acks grow it to 4, four more
    // to 8.
    assert_eq!(sizes, [4, 4, 4, 2, 2, 2, 2, 4, 4, 4, 4, 8]);
}

/// The answer to a push the server acknowledged up to `seq`, with no rejections.
fn acked_up_to(seq: u64) -> Result<PushResponse, PushFailure> {
    Ok(PushResponse {
        acked_seq: seq,
        rejected: vec![],
    })
}

fn log_messages(actions: &[Action], kind: &str) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Log(l) if l.kind == kind => Some(l.message.clone()),
            _ => None,
        })
        .collect()
}

/// The sync log counts in the right number: "1 entry", "1 change", "2 entries".
#[test]
fn sync_log_counts_in_the_right_number() {
    let clock = uhlc::HLC::default();
    let mut m = idle_machine();
    let (req, ..) = push_of(&m.handle(10, Event::LocalWrite(entry(&clock, 1)))).unwrap();
    let acked = acked_up_to(1);
    let a = m.handle(11, Event::PushResult { req, result: acked });
    assert_eq!(
        log_messages(&a, "push"),
        ["1 entry acknowledged up to seq 1"]
    );
    let (req, _) = pull_of(&a).expect("a pull after the push");
    let change = PulledChange {
        collection: "tx".into(),
        doc_id: "a".into(),
        op: Op::Put,
        document: serde_json::json!({"x": 1}),
        hlc: Hlc(clock.new_timestamp()),
        device: "dev-2".into(),
    };
    let pulled = Ok(PullResponse {
        changes: vec![change],
        next: Some("c1".into()),
        up_to_date: true,
        resume: None,
    });
    let a = m.handle(
        12,
        Event::PullResult {
            req,
            result: pulled,
        },
    );
    assert_eq!(log_messages(&a, "pull"), ["pull: 1 change applied"]);

    m.handle(20, Event::Pause);
    for seq in 2..=3 {
        m.handle(20, Event::LocalWrite(entry(&clock, seq)));
    }
    let (req, ..) = push_of(&m.handle(21, Event::Resume)).unwrap();
    let acked = acked_up_to(3);
    let a = m.handle(22, Event::PushResult { req, result: acked });
    assert_eq!(
        log_messages(&a, "push"),
        ["2 entries acknowledged up to seq 3"]
    );
}
