//! Rows handed to the write buffer, and how writes to one key combine.

use std::collections::BTreeMap;

use rusqlite::ToSql;
use rusqlite::types::Value;

use crate::error::{Error, Result};
use crate::ident::validate_identifier;
use crate::params::to_value;

/// Column values for one row of a [`WriteBuffer`](crate::WriteBuffer) write.
///
/// Column names are checked with [`validate_identifier`](crate::validate_identifier) when the
/// row reaches the buffer; values are always bound as parameters.
///
/// ```
/// let row = litehouse::Row::new().set("id", 7).set("status", "done").set("progress", 1.0);
/// assert_eq!(row.len(), 3);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Row {
    columns: Vec<(String, Value)>,
    /// The first value that could not be converted; reported by the buffer call.
    error: Option<Error>,
}

impl Row {
    /// An empty row.
    pub fn new() -> Row {
        Row::default()
    }

    /// Sets `column` to `value` (a later `set` of the same column wins).
    pub fn set(mut self, column: &str, value: impl ToSql) -> Row {
        match to_value(&value) {
            Ok(value) => self.columns.push((column.to_owned(), value)),
            Err(err) => {
                self.error.get_or_insert(err);
            }
        }
        self
    }

    /// Number of columns set.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True when no column is set.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Row {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Row {
        Row {
            columns: iter
                .into_iter()
                .map(|(name, value)| (name.into(), value))
                .collect(),
            error: None,
        }
    }
}

/// Column name to value, sorted so rows with the same columns share one statement.
pub(crate) type Columns = BTreeMap<String, Value>;

/// Validates every name and lower-cases it: SQLite compares ASCII identifiers without regard to
/// case, so `Status` and `status` must coalesce into one column.
pub(crate) fn normalize_name(name: &str) -> Result<String> {
    Ok(validate_identifier(name)?.to_ascii_lowercase())
}

impl Row {
    pub(crate) fn into_columns(self) -> Result<Columns> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let mut columns = Columns::new();
        for (name, value) in self.columns {
            columns.insert(normalize_name(&name)?, value);
        }
        Ok(columns)
    }
}

/// The identity of a buffered row: its table, key column names and key values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct KeyId {
    /// Key column names, sorted.
    pub(crate) names: Vec<String>,
    /// Key values encoded as bytes, in the order of `names` (`Value` is not `Hash`).
    encoded: Vec<u8>,
}

impl KeyId {
    pub(crate) fn new(key: &Columns) -> KeyId {
        let mut encoded = Vec::new();
        for value in key.values() {
            // A tag byte, then a length-prefixed payload: distinct values never share bytes.
            let (tag, payload): (u8, Vec<u8>) = match value {
                Value::Null => (0, Vec::new()),
                Value::Integer(integer) => (1, integer.to_le_bytes().to_vec()),
                Value::Real(real) => (2, real.to_bits().to_le_bytes().to_vec()),
                Value::Text(text) => (3, text.as_bytes().to_vec()),
                Value::Blob(blob) => (4, blob.clone()),
            };
            encoded.push(tag);
            encoded.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            encoded.extend_from_slice(&payload);
        }
        KeyId {
            names: key.keys().cloned().collect(),
            encoded,
        }
    }
}

/// Splits `columns` into the key part (named in `key_columns`) and the rest.
pub(crate) fn split_key(mut columns: Columns, key_columns: &[&str]) -> Result<(Columns, Columns)> {
    if key_columns.is_empty() {
        return Err(Error::Parameter {
            message: "at least one key column is needed".into(),
        });
    }
    let mut key = Columns::new();
    for name in key_columns {
        let name = normalize_name(name)?;
        let Some(value) = columns.remove(&name) else {
            return Err(Error::Parameter {
                message: format!("the row has no value for key column {name:?}"),
            });
        };
        if value == Value::Null {
            // NULL never equals anything in SQL, so a NULL key could never be updated,
            // deleted or coalesced.
            return Err(Error::Parameter {
                message: format!("key column {name:?} is NULL"),
            });
        }
        key.insert(name, value);
    }
    Ok((key, columns))
}

/// What must happen before the final upsert of a key: it only matters if the row exists.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Prefix {
    /// Update these columns of the existing row.
    Update(Columns),
    /// Delete the existing row.
    Delete,
}

/// One write, as the caller made it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Upsert(Columns),
    Update(Columns),
    Delete,
}

/// Every write buffered for one key, reduced to at most two statements with the same effect
/// as running the writes one by one, in order: an optional [`Prefix`] that acts on the row as
/// it is in the database, then an optional upsert.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Pending {
    pub(crate) prefix: Option<Prefix>,
    pub(crate) upsert: Option<Columns>,
}

impl Pending {
    /// Adds `op` after everything already pending.
    pub(crate) fn apply(&mut self, op: Op) {
        match (op, self.upsert.as_mut()) {
            // After an upsert the row exists, so an update or another upsert merges into it.
            (Op::Upsert(columns) | Op::Update(columns), Some(upsert)) => upsert.extend(columns),
            (Op::Upsert(columns), None) => self.upsert = Some(columns),
            (Op::Update(columns), None) => match &mut self.prefix {
                Some(Prefix::Update(update)) => update.extend(columns),
                // The row is gone (or never existed): updating it does nothing.
                Some(Prefix::Delete) => {}
                None => self.prefix = Some(Prefix::Update(columns)),
            },
            // Whatever came before, the row ends up deleted.
            (Op::Delete, _) => {
                self.prefix = Some(Prefix::Delete);
                self.upsert = None;
            }
        }
    }

    /// Adds everything `later` holds after what is already pending.
    pub(crate) fn append(&mut self, later: Pending) {
        match later.prefix {
            Some(Prefix::Update(columns)) => self.apply(Op::Update(columns)),
            Some(Prefix::Delete) => self.apply(Op::Delete),
            None => {}
        }
        if let Some(columns) = later.upsert {
            self.apply(Op::Upsert(columns));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(pairs: &[(&str, i64)]) -> Columns {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Value::Integer(*value)))
            .collect()
    }

    fn reduce(ops: Vec<Op>) -> Pending {
        let mut pending = Pending::default();
        for op in ops {
            pending.apply(op);
        }
        pending
    }

    #[test]
    fn writes_combine_in_order() {
        let check = |ops: Vec<Op>, prefix: Option<Prefix>, upsert: Option<Columns>| {
            assert_eq!(reduce(ops.clone()), Pending { prefix, upsert }, "{ops:?}");
        };
        let a = || cols(&[("a", 1)]);
        let b = || cols(&[("b", 2)]);
        let ab = || cols(&[("a", 1), ("b", 2)]);
        check(vec![Op::Upsert(a()), Op::Update(b())], None, Some(ab()));
        check(vec![Op::Upsert(a()), Op::Upsert(b())], None, Some(ab()));
        check(
            vec![Op::Update(a()), Op::Update(b())],
            Some(Prefix::Update(ab())),
            None,
        );
        check(
            vec![Op::Update(a()), Op::Upsert(b())],
            Some(Prefix::Update(a())),
            Some(b()),
        );
        check(
            vec![Op::Upsert(a()), Op::Delete],
            Some(Prefix::Delete),
            None,
        );
        check(
            vec![Op::Delete, Op::Update(a())],
            Some(Prefix::Delete),
            None,
        );
        check(
            vec![Op::Delete, Op::Upsert(a()), Op::Update(b())],
            Some(Prefix::Delete),
            Some(ab()),
        );
        check(
            vec![Op::Upsert(cols(&[("a", 1)])), Op::Update(cols(&[("a", 5)]))],
            None,
            Some(cols(&[("a", 5)])),
        );
    }

    #[test]
    fn append_equals_applying_one_by_one() {
        let ops = [
            Op::Update(cols(&[("a", 1)])),
            Op::Delete,
            Op::Upsert(cols(&[("b", 2)])),
            Op::Update(cols(&[("c", 3)])),
        ];
        for split in 0..=ops.len() {
            let mut first = reduce(ops[..split].to_vec());
            first.append(reduce(ops[split..].to_vec()));
            assert_eq!(first, reduce(ops.to_vec()), "split at {split}");
        }
    }

    #[test]
    fn keys_are_validated_and_not_null() {
        let row = Row::new().set("ID", 1).set("x", 2).into_columns().unwrap();
        let (key, rest) = split_key(row.clone(), &["id"]).unwrap();
        assert_eq!(key, cols(&[("id", 1)]));
        assert_eq!(rest, cols(&[("x", 2)]));
        assert!(split_key(row.clone(), &["missing"]).is_err());
        assert!(split_key(row, &[]).is_err());
        let null = Row::new().set("id", None::<i64>).into_columns().unwrap();
        assert!(split_key(null, &["id"]).is_err());
        assert!(Row::new().set("bad name", 1).into_columns().is_err());
    }
}
