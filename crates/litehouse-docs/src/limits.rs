//! The store's size limits, and the walks over user JSON that enforce them.
//!
//! Documents, patches and filters arrive as values built in memory, which can be nested
//! arbitrarily deep (serde_json's parser stops at 128 levels, but a `Value` built in code
//! does not). Every walk here is iterative, and a refused value is taken apart iteratively
//! ([`dispose`]), because both a recursive walk and the recursive `Drop` of a value 10,000
//! levels deep overflow a thread's stack and abort the process. Only values that passed
//! these checks reach the recursive code elsewhere (merge patch, serialisation, the filter
//! compiler), so its depth is bounded by [`StoreConfig::max_depth`].

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::filter::Filter;

/// The ceiling on [`StoreConfig::max_depth`] and [`StoreConfig::max_filter_depth`]: deeper
/// settings are treated as this, so that the recursive code after the checks stays shallow.
pub const HARD_MAX_DEPTH: usize = 128;

/// Limits on what a [`Store`](crate::Store) accepts. Every limit is checked before any SQL
/// runs, and exceeding one gives [`Error::LimitExceeded`] naming the limit and the value.
///
/// Set it with [`Store::with_config`](crate::Store::with_config); every constructor starts
/// from [`StoreConfig::default`].
///
/// ```
/// use litehouse_docs::StoreConfig;
/// let config = StoreConfig { max_document_bytes: 64 * 1024, ..StoreConfig::default() };
/// assert_eq!(config.max_depth, 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Largest document body, in bytes of compact JSON. Default 1 MiB (1,048,576).
    pub max_document_bytes: usize,
    /// Deepest nesting of objects and arrays in a document or patch, the body counting as 1.
    /// Default 32 ([`MAX_DOCUMENT_DEPTH`](crate::MAX_DOCUMENT_DEPTH)); at most
    /// [`HARD_MAX_DEPTH`].
    pub max_depth: usize,
    /// Most keys in one object. Default 1,000.
    pub max_object_keys: usize,
    /// Most elements in one array. Default 10,000.
    pub max_array_len: usize,
    /// Most nodes (`and`, `or`, `not` and comparisons) in a filter. Default 256.
    pub max_filter_nodes: usize,
    /// Deepest nesting of `and`/`or`/`not` in a filter. Default 16
    /// ([`MAX_FILTER_DEPTH`](crate::MAX_FILTER_DEPTH)); at most [`HARD_MAX_DEPTH`].
    pub max_filter_depth: usize,
    /// Most sort keys in a query. Default 8 ([`MAX_SORT_KEYS`](crate::MAX_SORT_KEYS)).
    pub max_sort_keys: usize,
    /// Largest `perPage`. Default 1,000 ([`MAX_PER_PAGE`](crate::MAX_PER_PAGE)).
    pub max_page_size: u64,
    /// Most changes the change log keeps; older ones are pruned in bounded steps, and a
    /// cursor before them gets [`Error::CursorExpired`]. `None`: no count limit. Default
    /// 1,000,000.
    pub change_retention_count: Option<u64>,
    /// Oldest change the change log keeps, in milliseconds of age. `None`: no age limit.
    /// Default 7 days.
    pub change_retention_ms: Option<u64>,
    /// Whether writes append to the change log. Default `true`. **Only for measuring the
    /// log's write cost** (`litehouse bench`, workload D4): with `false` nothing is recorded,
    /// so [`Store::changes_since`](crate::Store::changes_since) and subscribers miss those
    /// writes for good. Never turn it off on a store anything follows.
    ///
    /// ```
    /// use litehouse_docs::StoreConfig;
    /// assert!(StoreConfig::default().record_changes);
    /// ```
    pub record_changes: bool,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig {
            max_document_bytes: 1 << 20,
            max_depth: crate::document::MAX_DOCUMENT_DEPTH,
            max_object_keys: 1000,
            max_array_len: 10_000,
            max_filter_nodes: 256,
            max_filter_depth: crate::filter::MAX_FILTER_DEPTH,
            max_sort_keys: crate::query::MAX_SORT_KEYS,
            max_page_size: crate::query::MAX_PER_PAGE,
            change_retention_count: Some(1_000_000),
            change_retention_ms: Some(7 * 24 * 3600 * 1000),
            record_changes: true,
        }
    }
}

impl StoreConfig {
    fn depth(&self) -> usize {
        self.max_depth.min(HARD_MAX_DEPTH)
    }

    fn filter_depth(&self) -> usize {
        self.max_filter_depth.min(HARD_MAX_DEPTH)
    }

    /// Checks the shape of a document body or patch without recursion: depth, keys per
    /// object, array lengths, NUL characters, integer range; then its size. `value` itself is
    /// at depth 1.
    pub(crate) fn check_json(&self, value: &Json) -> Result<()> {
        self.check_shape(value)?;
        // The depth is bounded now, so serde_json's recursive writer is safe.
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, value)
            .map_err(|err| Error::corrupt(err.to_string()))?;
        self.check_size(counter.0)
    }

    /// The size limit, for a value already serialised.
    pub(crate) fn check_size(&self, bytes: usize) -> Result<()> {
        if bytes > self.max_document_bytes {
            return Err(Error::limit_exceeded(
                "document size",
                bytes,
                self.max_document_bytes,
            ));
        }
        Ok(())
    }

    /// [`StoreConfig::check_json`] without the size, for a caller that serialises anyway.
    pub(crate) fn check_shape(&self, value: &Json) -> Result<()> {
        let max_depth = self.depth();
        let mut deepest = 0;
        let mut too_deep = false;
        let mut pending: Vec<(&Json, usize)> = vec![(value, 1)];
        while let Some((value, depth)) = pending.pop() {
            match value {
                Json::Array(items) => {
                    deepest = deepest.max(depth);
                    too_deep |= depth > max_depth;
                    if items.len() > self.max_array_len {
                        return Err(Error::limit_exceeded(
                            "array length",
                            items.len(),
                            self.max_array_len,
                        ));
                    }
                    pending.extend(items.iter().map(|item| (item, depth + 1)));
                }
                Json::Object(object) => {
                    deepest = deepest.max(depth);
                    too_deep |= depth > max_depth;
                    if object.len() > self.max_object_keys {
                        return Err(Error::limit_exceeded(
                            "object keys",
                            object.len(),
                            self.max_object_keys,
                        ));
                    }
                    for (key, item) in object {
                        if key.contains('\0') {
                            return Err(invalid_document("keys must not contain NUL"));
                        }
                        pending.push((item, depth + 1));
                    }
                }
                Json::String(text) if text.contains('\0') => {
                    return Err(invalid_document("strings must not contain NUL"));
                }
                Json::Number(number) if number.is_u64() && number.as_i64().is_none() => {
                    return Err(invalid_document(
                        "integers must fit in a signed 64-bit integer",
                    ));
                }
                _ => {}
            }
        }
        if too_deep {
            return Err(Error::limit_exceeded("depth", deepest, max_depth));
        }
        Ok(())
    }

    /// Checks a filter's node count and depth, and the depth of its operands, without
    /// recursion, so that it can be cloned and compiled afterwards.
    pub(crate) fn check_filter(&self, filter: &Filter) -> Result<()> {
        let max_depth = self.filter_depth();
        let mut nodes = 0usize;
        let mut deepest = 0;
        let mut pending: Vec<(&Filter, usize)> = vec![(filter, 0)];
        while let Some((filter, depth)) = pending.pop() {
            nodes += 1;
            deepest = deepest.max(depth);
            match filter {
                Filter::And(items) | Filter::Or(items) => {
                    pending.extend(items.iter().map(|item| (item, depth + 1)));
                }
                Filter::Not(item) | Filter::AnyElement { filter: item, .. } => {
                    pending.push((item, depth + 1));
                }
                Filter::Field { value, .. } => {
                    // Operands are scalars or arrays of scalars; anything deeper is refused
                    // by the compiler, but must not be walked or cloned recursively first.
                    if json_depth(value) > 2 {
                        return Err(Error::InvalidFilter {
                            reason: "operands are scalars or arrays of scalars".into(),
                        });
                    }
                }
            }
        }
        if deepest > max_depth {
            return Err(Error::limit_exceeded("filter depth", deepest, max_depth));
        }
        if nodes > self.max_filter_nodes {
            return Err(Error::limit_exceeded(
                "filter nodes",
                nodes,
                self.max_filter_nodes,
            ));
        }
        Ok(())
    }
}

fn invalid_document(reason: &str) -> Error {
    Error::InvalidDocument {
        reason: reason.into(),
    }
}

/// The nesting depth of a value (a scalar is 0), without recursion.
fn json_depth(value: &Json) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0)];
    while let Some((value, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        match value {
            Json::Array(items) => pending.extend(items.iter().map(|item| (item, depth + 1))),
            Json::Object(object) => pending.extend(object.values().map(|item| (item, depth + 1))),
            _ => {}
        }
    }
    deepest
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Drops a value of any depth without recursion: children are moved onto a heap stack
/// before their parent is dropped, so every drop is shallow.
pub(crate) fn dispose(value: Json) {
    let mut pending = vec![value];
    while let Some(mut value) = pending.pop() {
        match &mut value {
            Json::Array(items) => pending.append(items),
            Json::Object(object) => {
                pending.extend(std::mem::take(object).into_iter().map(|(_, item)| item));
            }
            _ => {}
        }
    }
}

/// Drops a filter of any depth without recursion (operands are disposed of too).
pub(crate) fn dispose_filter(filter: Filter) {
    let mut pending = vec![filter];
    while let Some(filter) = pending.pop() {
        match filter {
            Filter::And(items) | Filter::Or(items) => pending.extend(items),
            Filter::Not(item) | Filter::AnyElement { filter: item, .. } => pending.push(*item),
            Filter::Field { value, .. } => dispose(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn nested(depth: usize) -> Json {
        let mut value = json!(1);
        for _ in 0..depth {
            // Not `json!([value])`: the macro serialises an interpolated value (recursively).
            value = Json::Array(vec![value]);
        }
        value
    }

    #[test]
    fn limits_are_checked() {
        let config = StoreConfig::default();
        let limit = |value: &Json| config.check_json(value).err().and_then(|err| err.limit());
        assert_eq!(limit(&nested(32)), None);
        assert_eq!(limit(&nested(33)), Some("depth"));
        assert_eq!(limit(&json!({"a": vec![0; 10_001]})), Some("array length"));
        let keys: serde_json::Map<String, Json> =
            (0..1001).map(|key| (key.to_string(), json!(0))).collect();
        assert_eq!(limit(&Json::Object(keys)), Some("object keys"));
        assert_eq!(
            limit(&json!({"a": "x".repeat(1 << 20)})),
            Some("document size")
        );
        let deep = nested(100_000);
        assert_eq!(limit(&deep), Some("depth"));
        dispose(deep);
    }
}
