//! Subscribing: [`Store::subscribe`], a new subscriber's catch-up on its own task, joining
//! the tailer's live set at an exact cursor, and the [`ChangeStream`] the caller reads.

use super::*;

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
