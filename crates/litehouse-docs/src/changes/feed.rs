//! The in-process side of the change feed: one tailer per store reads the log and fans each
//! change out to the live subscribers; a new subscriber catches up alone, then joins.

use super::*;

/// Process-wide state of the feed, shared by clones of a [`Store`] and by its streams.
#[derive(Debug, Clone)]
pub(crate) struct Feed {
    shared: Arc<FeedShared>,
}

#[derive(Debug)]
struct FeedShared {
    /// Bumped after every committed write; the tailer watches it. Dropping it (the last
    /// store clone and stream gone) ends the tailer.
    wake: watch::Sender<u64>,
    /// Committed writes, to pace pruning.
    writes: AtomicU64,
    /// The live subscribers, the ring of recent changes and the counters.
    hub: Arc<Hub>,
    /// The tailer task (its supervisor), started by the first subscription; aborted on drop.
    tailer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for FeedShared {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.tailer).take() {
            task.abort();
        }
    }
}

impl Default for Feed {
    fn default() -> Feed {
        Feed {
            shared: Arc::new(FeedShared {
                wake: watch::Sender::new(0),
                writes: AtomicU64::new(0),
                hub: Arc::new(Hub::default()),
                tailer: Mutex::new(None),
            }),
        }
    }
}

impl Feed {
    /// Called after a write transaction's COMMIT returned.
    pub(crate) fn committed(&self) {
        self.shared
            .wake
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Called after a PostgreSQL write transaction's COMMIT returned, with the transaction's
    /// id (0 when it recorded no change).
    pub(crate) fn committed_xid(&self, xid: u64) {
        self.shared.hub.local_xid.fetch_max(xid, Ordering::Relaxed);
    }

    /// Notes the `xmin` a read of the log saw ([`Bounds::xmin`]).
    pub(super) fn saw_xmin(&self, xmin: u64) {
        self.shared.hub.saw_xmin(xmin);
    }

    /// The retention to enforce in this write's transaction, once per [`PRUNE_EVERY`] writes.
    pub(crate) fn prune_ticket(&self, config: &StoreConfig) -> Option<Retention> {
        let writes = self.shared.writes.fetch_add(1, Ordering::Relaxed);
        if writes % PRUNE_EVERY == PRUNE_EVERY - 1 {
            Some(Retention::of(config))
        } else {
            None
        }
    }

    /// Counts one read of the log table (any reader).
    pub(super) fn count_read(&self) {
        self.shared.hub.log_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// Starts the tailer unless it is running. The tailer reads with `store`'s backend but
    /// holds no [`Feed`] of its own, so it never keeps the feed alive.
    fn ensure_tailer(&self, store: &Store, handle: &tokio::runtime::Handle) {
        let mut slot = lock(&self.shared.tailer);
        if slot.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let reader = Store {
            backend: store.backend.clone(),
            config: store.config,
            specs: store.specs.clone(),
            feed: Feed {
                shared: Arc::new(FeedShared {
                    wake: watch::Sender::new(0),
                    writes: AtomicU64::new(0),
                    hub: Arc::new(Hub::default()),
                    tailer: Mutex::new(None),
                }),
            },
        };
        let hub = Arc::clone(&self.shared.hub);
        let wake = self.shared.wake.subscribe();
        *slot = Some(handle.spawn(supervise(reader, hub, wake)));
    }
}

/// Locks `mutex`, recovering from a panic in another holder (the state it guards stays
/// consistent at every unlock point, and a panicked tailer resets its subscribers).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    fn saw_xmin(&self, xmin: u64) {
        self.readable_below.fetch_max(xmin, Ordering::Relaxed);
    }

    /// Whether a change this process committed is not readable yet (PostgreSQL).
    fn waiting_on_local(&self) -> bool {
        self.local_xid.load(Ordering::Relaxed) >= self.readable_below.load(Ordering::Relaxed)
            && self.local_xid.load(Ordering::Relaxed) > 0
    }
}

/// Longest [`Store::settle_feed`] waits.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);

/// Changes the ring keeps for joining subscribers.
const RING: usize = 4096;

/// Changes the tailer reads per query.
const TAIL_BATCH: usize = 1000;

/// The tailer's first quick look while a local commit is not readable yet.
const SOON: Duration = Duration::from_millis(2);

/// Failed reads in a row after which the tailer resets its subscribers.
const TAIL_ATTEMPTS: u32 = 3;

/// The fan-out: what the tailer has read, and who receives it.
///
/// Invariant (whenever `position` is `Some(p)`): `ring` holds exactly the changes with
/// cursors in `(ring_base, p]`, in cursor order, and every live subscriber has been sent
/// (or deliberately filtered out) every change up to its own `seen`, with `seen <= p` or
/// the tailer skipping changes at or below `seen`.
#[derive(Debug, Default)]
struct Hub {
    state: Mutex<HubState>,
    /// Wakes the tailer when the first subscriber positions the hub.
    nudge: tokio::sync::Notify,
    /// Reads of the change log table by every reader of this store.
    log_reads: AtomicU64,
    /// Reads by the tailer alone.
    tailer_reads: AtomicU64,
    /// Open [`ChangeStream`]s.
    subscribers: AtomicUsize,
    /// Events handed to subscribers' queues.
    delivered: AtomicU64,
    /// Subscribers reset (queue overflow or a failed tailer read).
    resets: AtomicU64,
    /// The fullest live subscriber queue at the last fan-out.
    max_queue_depth: AtomicUsize,
    /// [`FeedStats::held_back`] at the tailer's last read.
    held_back: AtomicU64,
    /// PostgreSQL: the newest transaction id among this process's committed writes that
    /// recorded changes.
    local_xid: AtomicU64,
    /// PostgreSQL: the newest `xmin` a read of this process saw (every transaction below it
    /// had finished then, so their changes are readable).
    readable_below: AtomicU64,
    /// Test hook: the tailer's next fan-out panics.
    #[cfg(test)]
    panic_next: std::sync::atomic::AtomicBool,
    /// Test hook: this many of the tailer's next reads fail.
    #[cfg(test)]
    fail_reads: AtomicUsize,
}

#[derive(Debug, Default)]
struct HubState {
    /// The last cursor the tailer read up to (`None`: not following; nobody is live).
    position: Option<Cursor>,
    /// The cursor before the ring's first change.
    ring_base: Cursor,
    ring: VecDeque<Arc<Change>>,
    live: Vec<Arc<Live>>,
    /// The log's head when the tailer last read.
    head: Cursor,
}

/// One live subscriber.
#[derive(Debug)]
struct Live {
    filter: Arc<ChangeFilter>,
    state: Mutex<LiveState>,
}

#[derive(Debug)]
struct LiveState {
    /// `None` once ended.
    sender: Option<mpsc::Sender<Result<ChangeEvent>>>,
    /// Every change up to this cursor was considered (sent or filtered out).
    seen: Cursor,
    /// The last cursor actually delivered (a change or the up-to-date mark).
    delivered: Cursor,
    reset: Arc<Mutex<Option<Cursor>>>,
}

impl LiveState {
    /// Ends this subscriber with a reset at its last delivered cursor.
    fn reset(&mut self, hub: &Hub) {
        if self.sender.is_some() {
            // The slot first: the stream reads it once its queue is closed.
            *lock(&self.reset) = Some(self.delivered);
            hub.resets.fetch_add(1, Ordering::Relaxed);
            self.sender = None;
        }
    }
}

/// Counters of a store's change feed in this process ([`Store::feed_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedStats {
    /// Open subscriptions (catching up or live).
    pub subscribers: usize,
    /// Subscribers served by the shared tailer.
    pub live: usize,
    /// Queries that read the change log table, by every reader ([`Store::changes_since`],
    /// catch-up pages, the tailer).
    pub log_reads: u64,
    /// Of those, the shared tailer's reads: one per wake-up (and page), however many
    /// subscribers there are.
    pub tailer_reads: u64,
    /// Events (changes and up-to-date marks) put in subscribers' queues.
    pub delivered: u64,
    /// Subscribers ended with [`ChangeEvent::Reset`].
    pub resets: u64,
    /// The fullest live subscriber queue at the last fan-out.
    pub max_queue_depth: usize,
    /// Where the tailer has read up to (`None` when nobody is live).
    pub tailer_position: Option<Cursor>,
    /// The log's head when the tailer last read.
    pub tailer_head: Cursor,
    /// PostgreSQL: committed changes the tailer could not read yet at its last read, because
    /// a transaction that began writing before them was still running (0 on SQLite). Their
    /// subscribers get them once it ends; a value that stays up means a long write
    /// transaction somewhere on the server.
    pub held_back: u64,
}

impl FeedStats {
    /// How many changes the tailer had not read yet when it last read
    /// (`tailer_head - tailer_position`); compare with [`Store::head`] for the lag now. On
    /// PostgreSQL this counts numbers taken from the log's sequence in between, which
    /// (rolled-back writes aside) is the number of changes.
    pub fn lag(&self) -> u64 {
        self.lag_behind(self.tailer_head)
    }

    /// How many changes the tailer has not read yet of a log whose head is `head` (from
    /// [`Store::head`]); 0 while it follows nothing.
    ///
    /// ```
    /// use litehouse_docs::{Cursor, FeedStats};
    /// let stats = FeedStats { tailer_position: Some("40".parse()?), ..FeedStats::default() };
    /// assert_eq!(stats.lag_behind("42".parse()?), 2);
    /// assert_eq!(FeedStats::default().lag_behind("42".parse()?), 0);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// ```
    pub fn lag_behind(&self, head: Cursor) -> u64 {
        self.tailer_position
            .map_or(0, |position| head.seq().saturating_sub(position.seq()))
    }
}

/// Runs the tailer, restarting it after a panic; a panic ends every live subscriber with a
/// reset at its last delivered cursor (nothing is lost: they resume from there).
async fn supervise(reader: Store, hub: Arc<Hub>, wake: watch::Receiver<u64>) {
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
            soon = (soon * 2).min(POLL_INTERVAL);
            soon / 2
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

/// What a catching-up subscriber's attempt to join the live set came to.
enum Join {
    Joined,
    NotYet,
    Ended,
}

impl Hub {
    /// Joins the live set at `position` if the ring covers it (or, when nobody is live and
    /// `current` says `position` is the log's end, positions the tailer there). Runs under
    /// the hub's lock, so the tailer publishes nothing in between: the subscriber gets the
    /// ring's changes after `position` now and the tailer's changes after the ring's end.
    fn join(
        &self,
        position: Cursor,
        current: bool,
        filter: &Arc<ChangeFilter>,
        sender: &mpsc::Sender<Result<ChangeEvent>>,
        delivered: &mut Cursor,
        reset: &Arc<Mutex<Option<Cursor>>>,
    ) -> Join {
        let mut state = lock(&self.state);
        let mut sent = 0;
        let seen = match state.position {
            None if current => {
                state.position = Some(position);
                state.ring_base = position;
                state.ring.clear();
                state.head = position;
                self.nudge.notify_one();
                position
            }
            None => return Join::NotYet,
            Some(_) if position < state.ring_base => return Join::NotYet,
            Some(end) => {
                for change in state.ring.iter().filter(|change| change.cursor > position) {
                    if !filter.matches(change) {
                        continue;
                    }
                    match sender.try_send(Ok(ChangeEvent::Change(Change::clone(change)))) {
                        Ok(()) => {
                            *delivered = change.cursor;
                            sent += 1;
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            self.delivered.fetch_add(sent, Ordering::Relaxed);
                            return overflow(self, reset, *delivered);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return Join::Ended,
                    }
                }
                end.max(position)
            }
        };
        self.delivered.fetch_add(sent, Ordering::Relaxed);
        match sender.try_send(Ok(ChangeEvent::UpToDate(seen))) {
            Ok(()) => *delivered = seen,
            Err(mpsc::error::TrySendError::Full(_)) => return overflow(self, reset, *delivered),
            Err(mpsc::error::TrySendError::Closed(_)) => return Join::Ended,
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
        // Share an equal live filter, so the tailer evaluates it once for all of them.
        let filter = state
            .live
            .iter()
            .find(|live| *live.filter == **filter)
            .map_or_else(|| Arc::clone(filter), |live| Arc::clone(&live.filter));
        state.live.push(Arc::new(Live {
            filter,
            state: Mutex::new(LiveState {
                sender: Some(sender.clone()),
                seen,
                delivered: seen,
                reset: Arc::clone(reset),
            }),
        }));
        Join::Joined
    }
}

/// Records a reset at `delivered` for a subscriber that is not live yet.
fn overflow(hub: &Hub, reset: &Arc<Mutex<Option<Cursor>>>, delivered: Cursor) -> Join {
    *lock(reset) = Some(delivered);
    hub.resets.fetch_add(1, Ordering::Relaxed);
    Join::Ended
}

impl Store {
    /// PostgreSQL: waits until every change this process's returned writes recorded is
    /// readable, that is until every transaction that began writing before the newest of
    /// them has finished (usually at once, or within the time concurrent writes take to
    /// commit), for at most [`SETTLE_LIMIT`]. Readers call it first so that a change whose
    /// write returned is in what they read next. A write transaction that stays open longer
    /// holds the change back ([`FeedStats::held_back`]); the read then returns without it, and
    /// a later read has it. Errors are left to the read that follows.
    pub(super) async fn settle_feed(&self) {
        let Backend::Postgres { pool, .. } = &self.backend else {
            return;
        };
        let hub = &self.feed.shared.hub;
        let started = tokio::time::Instant::now();
        let mut pause = SOON;
        while hub.waiting_on_local() && started.elapsed() < SETTLE_LIMIT {
            let Ok(client) = pool.get().await else {
                return;
            };
            let Ok(row) = client
                .query_one(
                    "SELECT CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT)",
                    &[],
                )
                .await
            else {
                return;
            };
            drop(client);
            let Ok(xmin) = row.get::<_, String>(0).parse::<u64>() else {
                return;
            };
            hub.saw_xmin(xmin);
            if hub.waiting_on_local() {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(POLL_INTERVAL);
            }
        }
    }

    /// Follows the change log: first every change after `after` (or, when `None`, only
    /// changes committed from now on), then [`ChangeEvent::UpToDate`], then live changes,
    /// with no gap and no duplicate at the switch. Catch-up reads the table in bounded pages;
    /// live changes come from the store's shared tailer, which reads the log once per
    /// wake-up for all subscribers and evaluates `filter` in memory. The subscriber joins it
    /// under its lock: the ring of recent changes supplies everything after the subscriber's
    /// position up to the tailer's, the tailer everything after. The queue holds
    /// [`DEFAULT_QUEUE`] events; a subscriber that lets it fill gets [`ChangeEvent::Reset`]
    /// with the last cursor it received and the stream ends (also when the tailer's read
    /// fails or it panics: resuming from that cursor loses nothing). An error (such as [`Error::CursorExpired`]) is yielded once, then the
    /// stream ends. Must be called on a tokio runtime; dropping the stream stops its task.
    pub fn subscribe(&self, after: Option<Cursor>, filter: ChangeFilter) -> Result<ChangeStream> {
        self.subscribe_with_queue(after, filter, DEFAULT_QUEUE)
    }

    /// [`Store::subscribe`] with a queue of `queue` events instead of [`DEFAULT_QUEUE`].
    pub fn subscribe_with_queue(
        &self,
        after: Option<Cursor>,
        filter: ChangeFilter,
        queue: usize,
    ) -> Result<ChangeStream> {
        if let Some(check) = &filter.filter {
            self.config.check_filter(check)?;
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|_| Error::Misuse {
            reason: "Store::subscribe must be called on a tokio runtime".into(),
        })?;
        self.feed.ensure_tailer(self, &handle);
        let (sender, receiver) = mpsc::channel(queue.max(1));
        let reset = Arc::new(Mutex::new(None));
        let task = handle.spawn(catch_up(
            self.clone(),
            after,
            Arc::new(filter),
            sender,
            Arc::clone(&reset),
        ));
        self.feed
            .shared
            .hub
            .subscribers
            .fetch_add(1, Ordering::Relaxed);
        Ok(ChangeStream {
            receiver,
            reset,
            task,
            feed: self.feed.clone(),
            finished: false,
        })
    }

    /// This process's counters of the change feed: subscribers, reads of the log, events
    /// delivered, resets, queue depth and how far the shared tailer has read.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use litehouse_docs::{ChangeFilter, Store};
    ///
    /// let store = Store::from_database(litehouse::Database::open_memory("doc-feed-stats", litehouse::Config::default())?).await?;
    /// let stream = store.subscribe(None, ChangeFilter::default())?;
    /// assert_eq!(store.feed_stats().subscribers, 1);
    /// drop(stream);
    /// assert_eq!(store.feed_stats().subscribers, 0);
    /// # Ok::<(), litehouse_docs::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn feed_stats(&self) -> FeedStats {
        let hub = &self.feed.shared.hub;
        let (live, tailer_position, tailer_head) = {
            let state = lock(&hub.state);
            (state.live.len(), state.position, state.head)
        };
        FeedStats {
            subscribers: hub.subscribers.load(Ordering::Relaxed),
            live,
            log_reads: hub.log_reads.load(Ordering::Relaxed),
            tailer_reads: hub.tailer_reads.load(Ordering::Relaxed),
            delivered: hub.delivered.load(Ordering::Relaxed),
            resets: hub.resets.load(Ordering::Relaxed),
            max_queue_depth: hub.max_queue_depth.load(Ordering::Relaxed),
            tailer_position,
            tailer_head,
            held_back: hub.held_back.load(Ordering::Relaxed),
        }
    }
}

/// A new subscriber's own catch-up: reads the log in bounded pages from its cursor until the
/// shared tailer's ring covers its position, then joins the live set (see [`Hub::join`]) and
/// ends. From then on the tailer alone sends to it.
async fn catch_up(
    store: Store,
    after: Option<Cursor>,
    filter: Arc<ChangeFilter>,
    sender: mpsc::Sender<Result<ChangeEvent>>,
    reset: Arc<Mutex<Option<Cursor>>>,
) {
    let hub = Arc::clone(&store.feed.shared.hub);
    // `current`: `position` was the end of the log when read. A cursor from the caller is
    // validated by one page read (expired or past the end) before the subscriber may join.
    let (mut position, mut current, mut validated) = match after {
        Some(cursor) => (cursor, false, false),
        None => match store.head().await {
            Ok(head) => (head, true, true),
            Err(err) => {
                let _ = sender.send(Err(err)).await;
                return;
            }
        },
    };
    let mut delivered = position;
    loop {
        if validated {
            match hub.join(position, current, &filter, &sender, &mut delivered, &reset) {
                Join::Joined | Join::Ended => return,
                Join::NotYet => {}
            }
        }
        let page = match store
            .changes_since(Some(&position), &filter, SUBSCRIBE_BATCH)
            .await
        {
            Ok(page) => page,
            Err(err) => {
                let _ = sender.send(Err(err)).await;
                return;
            }
        };
        validated = true;
        let mut sent = 0;
        for change in page.changes {
            let cursor = change.cursor;
            match sender.try_send(Ok(ChangeEvent::Change(change))) {
                Ok(()) => {
                    delivered = cursor;
                    sent += 1;
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    hub.delivered.fetch_add(sent, Ordering::Relaxed);
                    overflow(&hub, &reset, delivered);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        hub.delivered.fetch_add(sent, Ordering::Relaxed);
        position = page.next;
        current = page.up_to_date;
    }
}

/// The stream of [`Store::subscribe`]: yields `Result<ChangeEvent>` (a
/// [`futures_core::Stream`]); also [`ChangeStream::next`] without a stream library.
#[derive(Debug)]
pub struct ChangeStream {
    receiver: mpsc::Receiver<Result<ChangeEvent>>,
    reset: Arc<Mutex<Option<Cursor>>>,
    /// The catch-up task (finished once live).
    task: tokio::task::JoinHandle<()>,
    /// Keeps the feed (and so its tailer) alive while the stream is.
    feed: Feed,
    finished: bool,
}

impl ChangeStream {
    /// The next event; `None` once the stream ended.
    pub async fn next(&mut self) -> Option<Result<ChangeEvent>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Events waiting in the queue.
    pub fn queued(&self) -> usize {
        self.receiver.len()
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<ChangeEvent>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(event)),
            Poll::Ready(None) => {
                self.finished = true;
                let reset = self.reset.lock().ok().and_then(|mut slot| slot.take());
                Poll::Ready(reset.map(|cursor| Ok(ChangeEvent::Reset(cursor))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures_core::Stream for ChangeStream {
    type Item = Result<ChangeEvent>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

impl Drop for ChangeStream {
    fn drop(&mut self) {
        self.task.abort();
        // The tailer drops a live entry whose queue is closed at its next step.
        self.feed
            .shared
            .hub
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> Store {
        // A name of its own per test: named memory databases are shared in a process.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("feed-unit-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let db = litehouse::Database::open_memory(&name, litehouse::Config::default())
            .expect("memory database");
        Store::from_database(db).await.expect("store")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_tailer_stops_when_the_last_store_and_stream_go() {
        let store = store().await;
        let mut stream = store
            .subscribe(None, ChangeFilter::default())
            .expect("subscribe");
        assert!(matches!(
            stream.next().await,
            Some(Ok(ChangeEvent::UpToDate(_)))
        ));
        let hub = Arc::downgrade(&store.feed.shared.hub);
        drop(store);
        // The stream alone keeps the tailer (and the hub it holds) alive.
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        assert!(hub.upgrade().is_some());
        drop(stream);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while hub.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "the tailer outlived its feed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_tailer_resets_its_subscribers_and_restarts() {
        let store = store().await;
        store
            .create_collection("a", crate::CollectionSpec::default())
            .await
            .expect("collection");
        let mut stream = store
            .subscribe(None, ChangeFilter::default())
            .expect("subscribe");
        let Some(Ok(ChangeEvent::UpToDate(at))) = stream.next().await else {
            panic!("no up-to-date mark");
        };
        store
            .feed
            .shared
            .hub
            .panic_next
            .store(true, Ordering::SeqCst);
        store
            .create("a", serde_json::json!({"n": 1}))
            .await
            .expect("create");
        // Reset at the last delivered cursor: the change the panic swallowed is not lost.
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(ChangeEvent::Reset(cursor)))) if cursor == at),
            "{next:?} at {at}"
        );
        let mut resumed = store
            .subscribe(Some(at), ChangeFilter::default())
            .expect("subscribe");
        let first = tokio::time::timeout(Duration::from_secs(5), resumed.next()).await;
        assert!(
            matches!(first, Ok(Some(Ok(ChangeEvent::Change(ref change)))) if change.cursor > at)
        );
        // The restarted tailer serves live changes again.
        let _ = resumed.next().await;
        let doc = store
            .create("a", serde_json::json!({"n": 2}))
            .await
            .expect("create");
        let live = tokio::time::timeout(Duration::from_secs(5), resumed.next()).await;
        assert!(
            matches!(live, Ok(Some(Ok(ChangeEvent::Change(ref change)))) if change.id == doc.id)
        );
        assert_eq!(store.feed_stats().resets, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_tailer_reads_are_retried_then_reset_subscribers() {
        let store = store().await;
        store
            .create_collection("a", crate::CollectionSpec::default())
            .await
            .expect("collection");
        let mut stream = store
            .subscribe(None, ChangeFilter::default())
            .expect("subscribe");
        let Some(Ok(ChangeEvent::UpToDate(at))) = stream.next().await else {
            panic!("no up-to-date mark");
        };
        let hub = &store.feed.shared.hub;
        // Two failures in a row: retried, the change still arrives, nobody is reset.
        hub.fail_reads
            .store(TAIL_ATTEMPTS as usize - 1, Ordering::SeqCst);
        let first = store
            .create("a", serde_json::json!({"n": 1}))
            .await
            .expect("create");
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(ChangeEvent::Change(ref change)))) if change.id == first.id),
            "{next:?}"
        );
        assert_eq!(store.feed_stats().resets, 0);
        let delivered = match next {
            Ok(Some(Ok(ChangeEvent::Change(change)))) => change.cursor,
            _ => at,
        };
        // Three: the subscriber is reset at its last delivered cursor.
        hub.fail_reads
            .store(TAIL_ATTEMPTS as usize, Ordering::SeqCst);
        store
            .create("a", serde_json::json!({"n": 2}))
            .await
            .expect("create");
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(ChangeEvent::Reset(cursor)))) if cursor == delivered),
            "{next:?}"
        );
        assert_eq!(store.feed_stats().resets, 1);
    }
}
