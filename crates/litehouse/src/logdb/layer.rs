//! The `tracing` layer: turns events into records and hands them to the log writer thread
//! without ever waiting.

use std::cell::Cell;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value as Json};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::Counters;
use super::query::{LogLevel, unix_micros};

/// One event on its way to the log database.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) unix_micros: i64,
    pub(crate) level: LogLevel,
    pub(crate) target: String,
    pub(crate) message: String,
    pub(crate) fields: Map<String, Json>,
    pub(crate) spans: Vec<String>,
}

thread_local! {
    /// Set on the log writer thread: events it causes (for example from the engine it writes
    /// through) are not logged again, so logging can never feed itself.
    pub(crate) static IS_LOG_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// A [`tracing_subscriber::Layer`] that ships every event to a
/// [`LogDatabase`](crate::LogDatabase), from [`LogDatabase::layer`](crate::LogDatabase::layer).
///
/// `on_event` never waits: it does a non-blocking send into a bounded channel, and when the
/// channel is full (the log database is slower than the program) the event is dropped and
/// counted in [`LogStats::dropped`](crate::LogStats::dropped).
#[derive(Debug, Clone)]
pub struct LogLayer {
    pub(crate) sender: flume::Sender<Record>,
    pub(crate) counters: Arc<Counters>,
}

impl<S> tracing_subscriber::Layer<S> for LogLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if IS_LOG_WRITER.with(Cell::get) {
            return;
        }
        // Acquire: pairs with the writer's Release store at shutdown. A full channel is
        // checked before the record is built, so an overloaded program pays little per drop.
        let closed = self
            .counters
            .closed
            .load(std::sync::atomic::Ordering::Acquire);
        if closed || self.sender.is_full() {
            self.counters.dropped.fetch_add(1, super::RELAXED);
            return;
        }
        let metadata = event.metadata();
        let mut visitor = FieldVisitor::default();
        event.record(&mut visitor);
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| span.name().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let record = Record {
            unix_micros: unix_micros(SystemTime::now()),
            level: LogLevel::from(metadata.level()),
            target: metadata.target().to_owned(),
            message: visitor.message,
            fields: visitor.fields,
            spans,
        };
        self.try_send(record);
    }
}

impl LogLayer {
    /// Queues `record` without waiting; a full channel or a shut-down database drops it and
    /// counts it. Returns whether it was queued.
    pub(crate) fn try_send(&self, record: Record) -> bool {
        // Acquire: pairs with the writer's Release store at shutdown.
        let closed = self
            .counters
            .closed
            .load(std::sync::atomic::Ordering::Acquire);
        if closed || self.sender.try_send(record).is_err() {
            self.counters.dropped.fetch_add(1, super::RELAXED);
            return false;
        }
        true
    }
}

#[derive(Default)]
struct FieldVisitor {
    message: String,
    fields: Map<String, Json>,
}

impl FieldVisitor {
    fn put(&mut self, field: &Field, value: Json) {
        if field.name() == "message" {
            self.message = match value {
                Json::String(text) => text,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

impl Visit for FieldVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Json::Null, Json::Number);
        self.put(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Json::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Json::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Json::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Json::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Json::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.put(field, Json::from(format!("{value:?}")));
    }
}
