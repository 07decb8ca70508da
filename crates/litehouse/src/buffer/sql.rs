//! Multi-row statements for one flush. Names are quoted with [`quote_identifier`]; every value
//! is a bound parameter.

use std::collections::BTreeMap;

use rusqlite::Connection;
use rusqlite::types::Value;

use super::row::{Columns, Prefix};
use super::state::TableBatch;
use crate::error::Result;
use crate::ident::quote_identifier;

/// Rows per statement. SQLite binds at most 32766 parameters per statement, and fewer,
/// larger statements each cost one prepare (cached by text, so two sizes per shape at most).
const MAX_ROWS_PER_STATEMENT: usize = 500;
const MAX_PARAMS_PER_STATEMENT: usize = 32_000;

/// Rows of one shape: the same key columns and the same value columns.
type Shape = (Vec<String>, Vec<String>);
type Group<'b> = BTreeMap<Shape, Vec<(&'b Columns, &'b Columns)>>;

/// Writes every row of `batches`, in order, inside the caller's transaction. Returns the rows
/// written (one per buffered key).
pub(crate) fn write_batches(conn: &Connection, batches: &[TableBatch]) -> Result<usize> {
    let mut rows = 0;
    for batch in batches {
        write_table(conn, batch)?;
        rows += batch.entries.len();
    }
    Ok(rows)
}

fn shape(key: &Columns, values: &Columns) -> Shape {
    (
        key.keys().cloned().collect(),
        values.keys().cloned().collect(),
    )
}

fn write_table(conn: &Connection, batch: &TableBatch) -> Result<()> {
    let table = quote_identifier(&batch.table)?;
    let empty = Columns::new();
    let mut deletes: Group<'_> = BTreeMap::new();
    let mut updates: Group<'_> = BTreeMap::new();
    let mut upserts: Group<'_> = BTreeMap::new();
    for (_, entry) in &batch.entries {
        let key = &entry.key;
        match &entry.pending.prefix {
            Some(Prefix::Delete) => deletes
                .entry(shape(key, &empty))
                .or_default()
                .push((key, &empty)),
            Some(Prefix::Update(values)) => {
                updates
                    .entry(shape(key, values))
                    .or_default()
                    .push((key, values));
            }
            None => {}
        }
        if let Some(values) = &entry.pending.upsert {
            upserts
                .entry(shape(key, values))
                .or_default()
                .push((key, values));
        }
    }
    // Each key's prefix (delete or update) must run before its upsert; different keys are
    // different rows, so all prefixes first, then all upserts, keeps every key in order.
    for (shape, rows) in &deletes {
        run_chunked(conn, shape, rows, |count| delete_sql(&table, shape, count))?;
    }
    for (shape, rows) in &updates {
        run_chunked(conn, shape, rows, |count| update_sql(&table, shape, count))?;
    }
    for (shape, rows) in &upserts {
        run_chunked(conn, shape, rows, |count| upsert_sql(&table, shape, count))?;
    }
    Ok(())
}

fn run_chunked(
    conn: &Connection,
    shape: &Shape,
    rows: &[(&Columns, &Columns)],
    sql_for: impl Fn(usize) -> Result<String>,
) -> Result<()> {
    let per_row = (shape.0.len() + shape.1.len()).max(1);
    let chunk = (MAX_PARAMS_PER_STATEMENT / per_row).clamp(1, MAX_ROWS_PER_STATEMENT);
    for part in rows.chunks(chunk) {
        let sql = sql_for(part.len())?;
        let params: Vec<&Value> = part
            .iter()
            .flat_map(|(key, values)| key.values().chain(values.values()))
            .collect();
        conn.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(params))?;
    }
    Ok(())
}

fn quoted_list(names: &[String]) -> Result<String> {
    let quoted = names
        .iter()
        .map(|name| quote_identifier(name))
        .collect::<Result<Vec<_>>>()?;
    Ok(quoted.join(", "))
}

/// `VALUES (?, ?), (?, ?)` for `count` rows of `width` parameters.
fn values_clause(width: usize, count: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    format!("VALUES {}", vec![row; count].join(", "))
}

fn upsert_sql(table: &str, (key, values): &Shape, count: usize) -> Result<String> {
    let all: Vec<String> = key.iter().chain(values).cloned().collect();
    let on_conflict = if values.is_empty() {
        "DO NOTHING".to_owned()
    } else {
        let sets = values
            .iter()
            .map(|name| quote_identifier(name).map(|name| format!("{name} = excluded.{name}")))
            .collect::<Result<Vec<_>>>()?;
        format!("DO UPDATE SET {}", sets.join(", "))
    };
    Ok(format!(
        "INSERT INTO {table} ({}) {} ON CONFLICT ({}) {on_conflict}",
        quoted_list(&all)?,
        values_clause(all.len(), count),
        quoted_list(key)?,
    ))
}

fn update_sql(table: &str, (key, values): &Shape, count: usize) -> Result<String> {
    // The VALUES rows name their columns column1, column2, ...: keys first, then values.
    let sets = values
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let column = key.len() + index + 1;
            quote_identifier(name).map(|name| format!("{name} = lh_values.column{column}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let matches = key
        .iter()
        .enumerate()
        .map(|(index, name)| {
            quote_identifier(name)
                .map(|name| format!("lh_target.{name} = lh_values.column{}", index + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(format!(
        "UPDATE {table} AS lh_target SET {} FROM ({}) AS lh_values WHERE {}",
        sets.join(", "),
        values_clause(key.len() + values.len(), count),
        matches.join(" AND "),
    ))
}

fn delete_sql(table: &str, (key, _): &Shape, count: usize) -> Result<String> {
    Ok(format!(
        "DELETE FROM {table} WHERE ({}) IN ({})",
        quoted_list(key)?,
        values_clause(key.len(), count),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(key: &[&str], values: &[&str]) -> Shape {
        (
            key.iter().map(|s| (*s).to_owned()).collect(),
            values.iter().map(|s| (*s).to_owned()).collect(),
        )
    }

    #[test]
    fn statements_quote_names_and_bind_values() {
        assert_eq!(
            upsert_sql("\"t\"", &shape(&["id"], &["a"]), 2).unwrap(),
            "INSERT INTO \"t\" (\"id\", \"a\") VALUES (?, ?), (?, ?) ON CONFLICT (\"id\") DO UPDATE SET \"a\" = excluded.\"a\""
        );
        assert_eq!(
            upsert_sql("\"t\"", &shape(&["id"], &[]), 1).unwrap(),
            "INSERT INTO \"t\" (\"id\") VALUES (?) ON CONFLICT (\"id\") DO NOTHING"
        );
        assert_eq!(
            update_sql("\"t\"", &shape(&["id"], &["a"]), 1).unwrap(),
            "UPDATE \"t\" AS lh_target SET \"a\" = lh_values.column2 FROM (VALUES (?, ?)) AS lh_values WHERE lh_target.\"id\" = lh_values.column1"
        );
        assert_eq!(
            delete_sql("\"t\"", &shape(&["a", "b"], &[]), 2).unwrap(),
            "DELETE FROM \"t\" WHERE (\"a\", \"b\") IN (VALUES (?, ?), (?, ?))"
        );
        assert!(upsert_sql("\"t\"", &shape(&["id"], &["a;b"]), 1).is_err());
    }
}
