//! The in-memory evaluator: filters and sort orders applied to documents in their JSON form
//! ([`Document::to_json`](crate::Document::to_json)), with the same answers as the SQL both
//! engines run (QUERY.md is the rule book; the conformance suite checks all three agree).
//!
//! Matching allocates nothing: paths are walked segment by segment straight from the
//! filter's strings, and `like` patterns are matched in place.

use std::cmp::Ordering;

use serde_json::Value as Json;

use crate::error::Result;
use crate::filter::Filter;
use crate::filter::Op;
use crate::limits::StoreConfig;
use crate::names::{FieldPath, json_step};
use crate::query::Sort;
use crate::spec::{CollectionSpec, FieldType};

impl Filter {
    /// Whether `document` matches this filter, evaluated in memory.
    ///
    /// `document` is a document in its JSON form, system fields included
    /// ([`Document::to_json`](crate::Document::to_json)). For every filter that
    /// [`Filter::check`] accepts on a collection, the answer is the one `Store::find` gives on
    /// that collection, on either engine. Check a filter once, when it arrives, then match
    /// it against as many documents as needed: matching allocates nothing. Only match
    /// checked filters: a refused filter has no defined answer, and the walk recurses once
    /// per level of `and`/`or`/`not`/`anyElement`, which `check` bounds (a filter built in
    /// code thousands of levels deep would overflow the stack).
    ///
    /// The declared types of the collection need not be passed: a checked filter's operands
    /// already have the declared type of their path, and a comparison never crosses types,
    /// so a stored value of another type is invisible exactly as in SQL.
    ///
    /// ```
    /// use litehouse_docs::{CollectionSpec, Filter, StoreConfig};
    /// use serde_json::json;
    ///
    /// let filter = Filter::all([Filter::gte("age", 18), Filter::like("name", "A%")]);
    /// filter.check(&CollectionSpec::default(), &StoreConfig::default())?;
    /// assert!(filter.matches(&json!({"id": "x", "age": 36, "name": "Ada"})));
    /// assert!(!filter.matches(&json!({"id": "y", "age": "36", "name": "Ada"})));
    /// # Ok::<(), litehouse_docs::Error>(())
    /// ```
    pub fn matches(&self, document: &Json) -> bool {
        match self {
            Filter::And(items) => items.iter().all(|item| item.matches(document)),
            Filter::Or(items) => items.iter().any(|item| item.matches(document)),
            Filter::Not(item) => !item.matches(document),
            Filter::Field { path, op, value } => {
                field_matches(value_at_path(document, path), *op, value)
            }
            Filter::AnyElement { path, filter } => match value_at_path(document, path) {
                Some(Json::Array(elements)) => {
                    elements.iter().any(|element| filter.matches(element))
                }
                _ => false,
            },
        }
    }

    /// Checks this filter as `Store::find` would on a collection with `spec` under
    /// `config`: limits, paths, operators and operand types. No SQL is involved.
    ///
    /// ```
    /// use litehouse_docs::{CollectionSpec, FieldType, Filter, IndexSpec, StoreConfig};
    /// let spec = CollectionSpec {
    ///     indexes: vec![IndexSpec::new("by_age", [("age", FieldType::Number)])],
    ///     ..CollectionSpec::default()
    /// };
    /// assert!(Filter::gte("age", 18).check(&spec, &StoreConfig::default()).is_ok());
    /// assert!(Filter::gte("age", "18").check(&spec, &StoreConfig::default()).is_err());
    /// ```
    pub fn check(&self, spec: &CollectionSpec, config: &StoreConfig) -> Result<()> {
        config.check_filter(self)?;
        crate::filter::check(self, &spec.path_types()?)?;
        Ok(())
    }
}

/// A sort checked against a collection spec, for ordering documents in memory exactly as
/// `Store::find` orders them: the keys in turn (a declared path by its type, an undeclared
/// one by type rank then value, missing and mistyped values first ascending), then `id` in
/// the direction of the last key.
///
/// ```
/// use litehouse_docs::{CollectionSpec, Sort, SortOrder, StoreConfig};
/// use serde_json::json;
///
/// let order = SortOrder::new(&[Sort::desc("age")], &CollectionSpec::default(), &StoreConfig::default())?;
/// let mut docs = vec![json!({"id": "a", "age": 3}), json!({"id": "b"}), json!({"id": "c", "age": 7})];
/// docs.sort_by(|x, y| order.compare(x, y));
/// let ids: Vec<&str> = docs.iter().map(|doc| doc["id"].as_str().unwrap()).collect();
/// assert_eq!(ids, ["c", "a", "b"]);
/// # Ok::<(), litehouse_docs::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SortOrder {
    keys: Vec<SortKey>,
    tie_descending: bool,
}

#[derive(Debug, Clone)]
struct SortKey {
    path: FieldPath,
    declared: Option<FieldType>,
    descending: bool,
}

impl SortOrder {
    /// Checks `sort` (paths and the sort-key limit) against `spec` and `config`.
    pub fn new(sort: &[Sort], spec: &CollectionSpec, config: &StoreConfig) -> Result<SortOrder> {
        if sort.len() > config.max_sort_keys {
            return Err(crate::Error::limit_exceeded(
                "sort keys",
                sort.len(),
                config.max_sort_keys,
            ));
        }
        let types = spec.path_types()?;
        let keys = sort
            .iter()
            .map(|key| {
                let path = FieldPath::parse(&key.path)?;
                Ok(SortKey {
                    declared: types.get(&path).copied(),
                    path,
                    descending: key.descending,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SortOrder {
            keys,
            tie_descending: sort.last().is_some_and(|key| key.descending),
        })
    }

    /// Compares two documents in their JSON form, as [`Filter::matches`] takes them.
    pub fn compare(&self, a: &Json, b: &Json) -> Ordering {
        for key in &self.keys {
            let (x, y) = (value_at(a, &key.path), value_at(b, &key.path));
            let ascending = match key.declared {
                Some(field_type) => {
                    nulls_first(typed(x, field_type), typed(y, field_type), by_value)
                }
                None => nulls_first(rank(x), rank(y), |p, q| p.cmp(&q)).then_with(|| {
                    // Same rank: compare within the type.
                    nulls_first(rank(x).and(x), rank(y).and(y), by_value)
                }),
            };
            let ordering = if key.descending {
                ascending.reverse()
            } else {
                ascending
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        let by_id = a
            .get("id")
            .and_then(Json::as_str)
            .cmp(&b.get("id").and_then(Json::as_str));
        if self.tie_descending {
            by_id.reverse()
        } else {
            by_id
        }
    }
}

/// NULL (`None`) is the smallest value; scalars of one type compare within it.
fn nulls_first<T>(a: Option<T>, b: Option<T>, order: impl Fn(T, T) -> Ordering) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => order(a, b),
    }
}

fn by_value(a: &Json, b: &Json) -> Ordering {
    compare_scalars(a, b).unwrap_or(Ordering::Equal)
}

/// The sort rank of an undeclared path's value: numbers, strings, booleans; everything
/// else is NULL.
fn rank(value: Option<&Json>) -> Option<u8> {
    match value? {
        Json::Number(_) => Some(1),
        Json::String(_) => Some(2),
        Json::Bool(_) => Some(3),
        _ => None,
    }
}

fn typed(value: Option<&Json>, field_type: FieldType) -> Option<&Json> {
    let value = value?;
    let fits = match field_type {
        FieldType::String | FieldType::Datetime => value.is_string(),
        FieldType::Number => value.is_number(),
        FieldType::Bool => value.is_boolean(),
    };
    fits.then_some(value)
}

/// The value at a checked path of a document in JSON form.
fn value_at<'a>(document: &'a Json, path: &FieldPath) -> Option<&'a Json> {
    match path {
        FieldPath::Id => document.get("id"),
        FieldPath::CreatedAt => document.get("createdAt"),
        FieldPath::UpdatedAt => document.get("updatedAt"),
        FieldPath::Version => document.get("version"),
        FieldPath::Body(segments) => segments
            .iter()
            .try_fold(document, |value, segment| json_step(value, segment)),
    }
}

/// The value at a dotted path as written in a filter (system fields are top-level keys of
/// the JSON form, so they need no special case; `""`, inside an element, is the element).
fn value_at_path<'a>(document: &'a Json, path: &str) -> Option<&'a Json> {
    if path.is_empty() {
        return Some(document);
    }
    path.split('.').try_fold(document, json_step)
}

/// Order within one scalar type; `None` across types or for non-scalars.
fn compare_scalars(a: &Json, b: &Json) -> Option<Ordering> {
    match (a, b) {
        (Json::String(x), Json::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Json::Bool(x), Json::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// `eq`: JSON null matches JSON null only; scalars match within their type.
fn equal(found: Option<&Json>, wanted: &Json) -> bool {
    match (found, wanted) {
        (Some(Json::Null), Json::Null) => true,
        (Some(found), wanted) => compare_scalars(found, wanted) == Some(Ordering::Equal),
        (None, _) => false,
    }
}

fn field_matches(found: Option<&Json>, op: Op, value: &Json) -> bool {
    let ordered = |accept: fn(Ordering) -> bool| {
        found
            .and_then(|found| compare_scalars(found, value))
            .is_some_and(accept)
    };
    let listed = || {
        value
            .as_array()
            .is_some_and(|values| values.iter().any(|wanted| equal(found, wanted)))
    };
    match op {
        Op::Eq => equal(found, value),
        Op::Neq => !equal(found, value),
        Op::Gt => ordered(Ordering::is_gt),
        Op::Gte => ordered(Ordering::is_ge),
        Op::Lt => ordered(Ordering::is_lt),
        Op::Lte => ordered(Ordering::is_le),
        Op::In => listed(),
        Op::Nin => !listed(),
        Op::Like | Op::Ilike => match (found, value) {
            (Some(Json::String(text)), Json::String(pattern)) => {
                like(text, pattern, op == Op::Ilike)
            }
            _ => false,
        },
        Op::Exists => value.as_bool() == Some(found.is_some()),
        Op::Contains => match found {
            Some(Json::Array(items)) => items.iter().any(|item| equal(Some(item), value)),
            _ => false,
        },
    }
}

/// One token of a `like` pattern read in place: `None` for `%`, `Some(None)` for `_`,
/// `Some(Some(c))` for a literal; with the byte length it took.
fn pattern_token(pattern: &str) -> Option<(Option<Option<char>>, usize)> {
    let mut chars = pattern.chars();
    let first = chars.next()?;
    Some(match first {
        '%' => (None, 1),
        '_' => (Some(None), 1),
        '\\' => match chars.next() {
            Some(escaped) => (Some(Some(escaped)), 1 + escaped.len_utf8()),
            // A checked pattern never ends in a lone backslash; match it literally.
            None => (Some(Some('\\')), 1),
        },
        other => (Some(Some(other)), other.len_utf8()),
    })
}

/// `like`/`ilike` without allocating or recursing: the classic wildcard match that keeps
/// one restart point at the last `%`.
fn like(text: &str, pattern: &str, fold_case: bool) -> bool {
    let (mut t, mut p) = (0, 0);
    let mut restart: Option<(usize, usize)> = None;
    loop {
        match pattern_token(&pattern[p..]) {
            Some((None, len)) => {
                p += len;
                restart = Some((p, t));
                continue;
            }
            Some((Some(wanted), len)) => {
                if let Some(c) = text[t..].chars().next() {
                    let same = match wanted {
                        None => true,
                        Some(w) if fold_case => c.eq_ignore_ascii_case(&w),
                        Some(w) => c == w,
                    };
                    if same {
                        t += c.len_utf8();
                        p += len;
                        continue;
                    }
                }
            }
            None if t == text.len() => return true,
            None => {}
        }
        // Mismatch: let the last `%` swallow one more character, or fail.
        match restart {
            Some((restart_p, restart_t)) if restart_t < text.len() => {
                let skipped = text[restart_t..].chars().next().map_or(1, char::len_utf8);
                restart = Some((restart_p, restart_t + skipped));
                t = restart_t + skipped;
                p = restart_p;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_in_place() {
        let cases = [
            ("abc", "a%", false, true),
            ("abc", "%c", false, true),
            ("abc", "a_c", false, true),
            ("abc", "a_", false, false),
            ("abc", "%", false, true),
            ("", "%", false, true),
            ("", "_", false, false),
            ("aXbXc", "a%b%c", false, true),
            ("ab", "a%b%c", false, false),
            ("ABC", "abc", true, true),
            ("ABC", "abc", false, false),
            ("a%c", "a\\%c", false, true),
            ("abc", "a\\%c", false, false),
            ("ÉtÉ", "_t_", false, true),
            ("été", "ÉTÉ", true, false),
            ("mississippi", "%iss%ppi", false, true),
        ];
        for (text, pattern, fold, want) in cases {
            assert_eq!(like(text, pattern, fold), want, "{text:?} like {pattern:?}");
        }
    }
}
