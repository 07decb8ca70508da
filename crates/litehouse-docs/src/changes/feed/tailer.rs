//! The shared tailer: after each wake-up it reads the log once from its position and hands
//! each change to every live subscriber whose filter passes it, in memory.

use super::*;

/// Runs the tailer, restarting it after a panic; a panic ends every live subscriber with a
/// reset at its last delivered cursor (nothing is lost: they resume from there).
pub(super) async fn supervise(reader: Store, hub: Arc<Hub>, wake: watch::Receiver<u64>) {
    loop {
        let task = tokio::spawn(tail(reader.clone(), Arc::clone(&hub), wake.clone()));
        // Abort the inner task when this one is aborted.
        let guard = AbortOnDrop(task.abort_handle());
        let outcome = task.await;
        drop(guard);
        match outcome {
            Err(join) if join.is_panic() => {
                reset_all(&hub);
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            // Finished (the feed is gone) or cancelled.
            _ => return,
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Ends every live subscriber with a reset and stops following.
fn reset_all(hub: &Hub) {
    let live = {
        let mut state = lock(&hub.state);
        state.position = None;
        state.ring.clear();
        std::mem::take(&mut state.live)
    };
    for subscriber in live {
        lock(&subscriber.state).reset(hub);
    }
}

/// The tailer: after each wake-up (a local commit, a new first subscriber, or every
/// [`POLL_INTERVAL`] for other processes' commits) reads the log once from its position
/// and fans the changes out in memory. Ends when the feed's wake sender is dropped.
async fn tail(reader: Store, hub: Arc<Hub>, mut wake: watch::Receiver<u64>) {
    let mut failures = 0;
    // While a local commit is not readable yet (PostgreSQL: an older transaction is still
    // running), the tailer looks again soon, backing off towards POLL_INTERVAL.
    let mut soon = SOON;
    loop {
        wake.borrow_and_update();
        let from = {
            let mut state = lock(&hub.state);
            state.live.retain(|live| {
                lock(&live.state)
                    .sender
                    .as_ref()
                    .is_some_and(|sender| !sender.is_closed())
            });
            if state.live.is_empty() {
                state.position = None;
                state.ring.clear();
            }
            state.position
        };
        let mut more = false;
        if let Some(from) = from {
            hub.log_reads.fetch_add(1, Ordering::Relaxed);
            hub.tailer_reads.fetch_add(1, Ordering::Relaxed);
            #[cfg(test)]
            let failing = hub
                .fail_reads
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            #[cfg(not(test))]
            let failing = false;
            let read = if failing {
                Err(Error::corrupt("test hook: the tailer's read fails"))
            } else {
                tail_read(&reader, from).await
            };
            match read {
                Ok(page) => {
                    failures = 0;
                    hub.held_back
                        .store(page.bounds.held_back, Ordering::Relaxed);
                    hub.saw_xmin(page.bounds.xmin);
                    more = publish(&hub, from, page.changes, page.bounds.head);
                }
                Err(_) if failures + 1 < TAIL_ATTEMPTS => {
                    // Perhaps passing (a busy pool): the position is kept, so retrying after
                    // a pause loses nothing.
                    failures += 1;
                    tokio::time::sleep(POLL_INTERVAL).await;
                    continue;
                }
                Err(_) => {
                    // Nothing is lost: each live subscriber resumes from its last cursor
                    // and meets the error (e.g. an expired cursor) on its own catch-up.
                    failures = 0;
                    reset_all(&hub);
                }
            }
        }
        if more {
            continue;
        }
        let pause = if from.is_some() && hub.waiting_on_local() {
            let pause = soon;
            soon = (soon * 2).min(POLL_INTERVAL);
            pause
        } else {
            soon = SOON;
            POLL_INTERVAL
        };
        tokio::select! {
            changed = wake.changed() => if changed.is_err() { return },
            () = hub.nudge.notified() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One read of the log by the tailer.
async fn tail_read(reader: &Store, from: Cursor) -> Result<LogPage> {
    in_transaction!(reader, read, |c| read_log(c, Some(from), TAIL_BATCH))
}

/// Appends a page read from `from` to the ring and sends it to every live subscriber.
/// Returns whether the log holds more after the page.
fn publish(hub: &Hub, from: Cursor, changes: Vec<Change>, head: Cursor) -> bool {
    #[cfg(test)]
    if hub.panic_next.swap(false, Ordering::SeqCst) {
        panic!("test hook: the tailer panics");
    }
    let changes: Vec<Arc<Change>> = changes.into_iter().map(Arc::new).collect();
    let (live, next) = {
        let mut state = lock(&hub.state);
        if state.position != Some(from) {
            // Reset while reading: start over from the new position.
            return true;
        }
        let next = changes.last().map_or(from, |change| change.cursor);
        for change in &changes {
            state.ring.push_back(Arc::clone(change));
        }
        while state.ring.len() > RING {
            if let Some(oldest) = state.ring.pop_front() {
                state.ring_base = oldest.cursor;
            }
        }
        state.position = Some(next);
        state.head = head;
        // Subscribers joining after this lock is released see this page in the ring (their
        // `seen` is at least `next`); those in the snapshot get it below.
        (state.live.clone(), next)
    };
    // Each distinct filter (subscribers with equal filters share one, see `Hub::join`) is
    // evaluated once per change, not once per subscriber.
    let mut verdicts: std::collections::HashMap<*const ChangeFilter, Vec<bool>> =
        std::collections::HashMap::new();
    for subscriber in &live {
        verdicts
            .entry(Arc::as_ptr(&subscriber.filter))
            .or_insert_with(|| {
                changes
                    .iter()
                    .map(|change| subscriber.filter.matches(change))
                    .collect()
            });
    }
    let mut delivered = 0;
    let mut deepest = 0;
    for subscriber in &live {
        let mut state = lock(&subscriber.state);
        let Some(sender) = state.sender.clone() else {
            continue;
        };
        let passes = &verdicts[&Arc::as_ptr(&subscriber.filter)];
        for (change, passes) in changes.iter().zip(passes) {
            if change.cursor <= state.seen || !passes {
                continue;
            }
            match sender.try_send(Ok(ChangeEvent::Change(Change::clone(change)))) {
                Ok(()) => {
                    state.delivered = change.cursor;
                    delivered += 1;
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    state.reset(hub);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    state.sender = None;
                    break;
                }
            }
        }
        if state.sender.is_some() {
            state.seen = state.seen.max(next);
            deepest = deepest.max(sender.max_capacity() - sender.capacity());
        }
    }
    hub.delivered.fetch_add(delivered, Ordering::Relaxed);
    hub.max_queue_depth.store(deepest, Ordering::Relaxed);
    next < head
}
