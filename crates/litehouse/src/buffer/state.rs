//! The buffer's memory: pending writes per table, the batch being flushed, and counters.
//!
//! Everything here runs under one mutex, held only for map operations (never across a flush
//! or a wait), so producers block each other for microseconds at most.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::row::{Columns, KeyId, Op, Pending};

/// One write on its way into the buffer.
#[derive(Debug)]
pub(crate) struct Write {
    pub(crate) table: String,
    pub(crate) key_id: KeyId,
    pub(crate) key: Columns,
    pub(crate) op: Op,
}

/// Why a write was not taken.
#[derive(Debug)]
pub(crate) enum Refused {
    /// No room: the write comes back so the caller can wait and offer it again (boxed: this
    /// path is rare and the write is large).
    Full(Box<Write>),
    /// The buffer was stopped.
    Stopped,
}

/// A buffered row: its key values and what is pending for it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) key_id: KeyId,
    pub(crate) key: Columns,
    pub(crate) pending: Pending,
}

/// Rows of one table taken for a flush, oldest first, with their queue positions so a failed
/// flush can put them back where they were.
#[derive(Debug, Clone)]
pub(crate) struct TableBatch {
    pub(crate) table: String,
    pub(crate) entries: Vec<(u64, Entry)>,
}

/// A flush in progress, shared with the closure that runs on the writer thread.
pub(crate) type Batch = Arc<Vec<TableBatch>>;

#[derive(Debug, Default)]
struct TableQueue {
    /// Queue position of each pending key.
    positions: HashMap<KeyId, u64>,
    /// Pending rows by queue position: the oldest are flushed first, and a row keeps its
    /// position when later writes coalesce into it, so a busy key cannot starve the others.
    entries: BTreeMap<u64, Entry>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) buffered: u64,
    pub(crate) coalesced: u64,
    pub(crate) flushed: u64,
    pub(crate) flushes: u64,
    pub(crate) failed_flushes: u64,
    pub(crate) full_rejections: u64,
    pub(crate) producer_waits: u64,
    pub(crate) rejected: u64,
    /// Rejected rows not yet replayed or discarded through this buffer.
    pub(crate) outstanding_rejections: u64,
    pub(crate) peak_rows: usize,
    pub(crate) last_flush_unix_ms: Option<u64>,
    pub(crate) last_flush_micros: Option<u64>,
    pub(crate) last_error: Option<String>,
    pub(crate) last_rejection: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    tables: BTreeMap<String, TableQueue>,
    next_position: u64,
    pub(crate) pending_rows: usize,
    pub(crate) in_flight_rows: usize,
    pub(crate) waiting_producers: usize,
    pub(crate) stopped: bool,
    /// A wake-up is already on its way to the flusher; set again only after it took a batch.
    pub(crate) wake_sent: bool,
    pub(crate) counters: Counters,
}

impl State {
    /// Rows held in memory: pending plus the batch being flushed.
    pub(crate) fn rows(&self) -> usize {
        self.pending_rows + self.in_flight_rows
    }

    /// Takes `write` if its key is already pending (coalescing costs no memory) or if there
    /// is room for one more row.
    pub(crate) fn offer(&mut self, write: Write, capacity: usize) -> Result<(), Refused> {
        if self.stopped {
            return Err(Refused::Stopped);
        }
        let queue = self.tables.get(&write.table);
        let position = queue.and_then(|queue| queue.positions.get(&write.key_id).copied());
        if let (Some(queue), Some(position)) = (self.tables.get_mut(&write.table), position) {
            let entry = queue
                .entries
                .get_mut(&position)
                .expect("positions and entries agree");
            entry.pending.apply(write.op);
            self.counters.buffered += 1;
            self.counters.coalesced += 1;
            return Ok(());
        }
        if self.rows() >= capacity {
            return Err(Refused::Full(Box::new(write)));
        }
        let position = self.next_position;
        self.next_position += 1;
        let mut pending = Pending::default();
        pending.apply(write.op);
        let entry = Entry {
            key_id: write.key_id,
            key: write.key,
            pending,
        };
        self.insert(write.table, position, entry);
        self.counters.buffered += 1;
        self.counters.peak_rows = self.counters.peak_rows.max(self.rows());
        Ok(())
    }

    fn insert(&mut self, table: String, position: u64, entry: Entry) {
        let queue = self.tables.entry(table).or_default();
        queue.positions.insert(entry.key_id.clone(), position);
        queue.entries.insert(position, entry);
        self.pending_rows += 1;
    }

    /// Takes up to `limit` of the oldest rows, tables in `priorities` order first (then the
    /// others by name), and marks them in flight.
    pub(crate) fn take(&mut self, limit: usize, priorities: &[String]) -> Batch {
        let mut order: Vec<String> = priorities
            .iter()
            .filter(|table| self.tables.contains_key(*table))
            .cloned()
            .collect();
        order.extend(
            self.tables
                .keys()
                .filter(|table| !priorities.contains(table))
                .cloned(),
        );
        let mut batch = Vec::new();
        let mut left = limit;
        for table in order {
            if left == 0 {
                break;
            }
            let Some(queue) = self.tables.get_mut(&table) else {
                continue;
            };
            let mut entries = Vec::new();
            while left > 0 {
                let Some((position, entry)) = queue.entries.pop_first() else {
                    break;
                };
                queue.positions.remove(&entry.key_id);
                entries.push((position, entry));
                left -= 1;
            }
            if queue.entries.is_empty() {
                self.tables.remove(&table);
            }
            self.pending_rows -= entries.len();
            self.in_flight_rows += entries.len();
            batch.push(TableBatch { table, entries });
        }
        self.wake_sent = false;
        Arc::new(batch)
    }

    /// Part of a batch was committed (the rest is being isolated or goes back).
    pub(crate) fn complete_rows(&mut self, rows: usize) {
        self.in_flight_rows -= rows;
        self.counters.flushed += rows as u64;
    }

    /// Rows the database refused were moved to the rejected-rows table.
    pub(crate) fn reject_rows(&mut self, rows: usize) {
        self.in_flight_rows -= rows;
        self.counters.rejected += rows as u64;
        self.counters.outstanding_rejections += rows as u64;
    }

    /// The batch failed: every row goes back to its old place, ahead of any write made to
    /// the same key since, so the next flush applies both in the order they were made.
    pub(crate) fn restore(&mut self, batch: &Batch) {
        for table_batch in batch.iter() {
            for (position, entry) in &table_batch.entries {
                self.in_flight_rows -= 1;
                let mut entry = entry.clone();
                let queue = self.tables.entry(table_batch.table.clone()).or_default();
                if let Some(newer) = queue.positions.remove(&entry.key_id) {
                    let later = queue
                        .entries
                        .remove(&newer)
                        .expect("positions and entries agree");
                    entry.pending.append(later.pending);
                    self.pending_rows -= 1;
                }
                self.insert(table_batch.table.clone(), *position, entry);
            }
        }
    }

    /// Pending rows per table.
    pub(crate) fn pending_by_table(&self) -> BTreeMap<String, usize> {
        self.tables
            .iter()
            .map(|(table, queue)| (table.clone(), queue.entries.len()))
            .collect()
    }
}

/// One row of a batch with its table and queue position, for splitting a batch.
pub(crate) type Item = (String, u64, Entry);

/// The rows of `batch`, in the order they are written.
pub(crate) fn items(batch: &Batch) -> Vec<Item> {
    batch
        .iter()
        .flat_map(|table_batch| {
            table_batch
                .entries
                .iter()
                .map(|(position, entry)| (table_batch.table.clone(), *position, entry.clone()))
        })
        .collect()
}

/// A batch of `items`, keeping their order.
pub(crate) fn batch_of(items: &[Item]) -> Batch {
    let mut batch: Vec<TableBatch> = Vec::new();
    for (table, position, entry) in items {
        match batch.last_mut() {
            Some(last) if last.table == *table => last.entries.push((*position, entry.clone())),
            _ => batch.push(TableBatch {
                table: table.clone(),
                entries: vec![(*position, entry.clone())],
            }),
        }
    }
    Arc::new(batch)
}

pub(crate) fn batch_rows(batch: &Batch) -> usize {
    batch.iter().map(|table| table.entries.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::row::{Row, split_key};

    fn write(table: &str, id: i64, op: Op) -> Write {
        let (key, _) =
            split_key(Row::new().set("id", id).into_columns().unwrap(), &["id"]).unwrap();
        Write {
            table: table.to_owned(),
            key_id: KeyId::new(&key),
            key,
            op,
        }
    }

    fn upsert(n: i64) -> Op {
        Op::Upsert(Row::new().set("n", n).into_columns().unwrap())
    }

    #[test]
    fn capacity_counts_in_flight_rows_and_coalescing_is_free() {
        let mut state = State::default();
        state.offer(write("t", 1, upsert(1)), 2).unwrap();
        state.offer(write("t", 2, upsert(1)), 2).unwrap();
        assert!(matches!(
            state.offer(write("t", 3, upsert(1)), 2),
            Err(Refused::Full(_))
        ));
        // Same key: coalesces even though the buffer is full.
        state.offer(write("t", 1, upsert(2)), 2).unwrap();
        let batch = state.take(10, &[]);
        assert_eq!(batch_rows(&batch), 2);
        // Rows in flight still count.
        assert!(matches!(
            state.offer(write("t", 3, upsert(1)), 2),
            Err(Refused::Full(_))
        ));
        state.complete_rows(batch_rows(&batch));
        state.offer(write("t", 3, upsert(1)), 2).unwrap();
        assert_eq!(state.counters.coalesced, 1);
        assert_eq!(state.counters.peak_rows, 2);
    }

    #[test]
    fn restore_puts_rows_back_before_newer_writes() {
        let mut state = State::default();
        state.offer(write("t", 1, upsert(1)), 10).unwrap();
        let batch = state.take(10, &[]);
        state.offer(write("t", 1, Op::Delete), 10).unwrap();
        state.restore(&batch);
        assert_eq!(state.rows(), 1);
        let again = state.take(10, &[]);
        let pending = &again[0].entries[0].1.pending;
        assert_eq!(pending.upsert, None, "the delete came after the upsert");
        assert_eq!(pending.prefix, Some(crate::buffer::row::Prefix::Delete));
    }

    #[test]
    fn priorities_then_names() {
        let mut state = State::default();
        for table in ["b", "a", "z"] {
            state.offer(write(table, 1, upsert(1)), 10).unwrap();
        }
        let batch = state.take(2, &["z".to_owned()]);
        let tables: Vec<&str> = batch.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(tables, ["z", "a"]);
        assert_eq!(
            state.pending_by_table(),
            BTreeMap::from([("b".to_owned(), 1)])
        );
    }
}
