//! Queries: sort keys, paging, cursors, and the SELECT and COUNT statements they become.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::catalog::SpecGuard;
use crate::compile::push_filter;
use crate::document::Document;
use crate::error::{Error, Result};
use crate::filter::{self, Cmp, Filter, Leaf, Node};
use crate::limits::StoreConfig;
use crate::names::FieldPath;
use crate::ops::Row;
use crate::spec::FieldType;
use crate::sql::{Dialect, Engine, Extract, Param, Sql};

/// Largest page.
pub const MAX_PER_PAGE: u64 = 1000;
/// Most sort keys.
pub const MAX_SORT_KEYS: usize = 8;

/// One sort key.
///
/// ```
/// use litehouse_docs::Sort;
/// let newest_first = [Sort::desc("createdAt")];
/// # let _ = newest_first;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Sort {
    /// Dotted path or system field.
    pub path: String,
    /// Descending instead of ascending.
    #[serde(default)]
    pub descending: bool,
}

impl Sort {
    /// Ascending on `path`.
    pub fn asc(path: impl Into<String>) -> Sort {
        Sort {
            path: path.into(),
            descending: false,
        }
    }

    /// Descending on `path`.
    pub fn desc(path: impl Into<String>) -> Sort {
        Sort {
            path: path.into(),
            descending: true,
        }
    }
}

/// How to page through results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Paging {
    /// Numbered pages from 1 (`OFFSET`: cost grows with the page number).
    Page {
        /// Page number, from 1.
        page: u64,
        /// Items per page, 1 to [`MAX_PER_PAGE`].
        per_page: u64,
    },
    /// Keyset paging: the page after `after`, a [`Page::next_cursor`] of the same sort.
    /// Stable when documents are inserted or deleted between calls.
    Cursor {
        /// The cursor, or `None` for the first page.
        after: Option<String>,
        /// Items per page, 1 to [`MAX_PER_PAGE`].
        per_page: u64,
    },
}

/// A query: filter, sort, paging and whether to count.
///
/// ```
/// use litehouse_docs::{Filter, Paging, Query, Sort};
/// let query = Query {
///     filter: Some(Filter::gte("age", 18)),
///     sort: vec![Sort::desc("age")],
///     paging: Paging::Cursor { after: None, per_page: 50 },
///     count: false,
/// };
/// # let _ = query;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Which documents; `None` for all.
    pub filter: Option<Filter>,
    /// Sort keys; `id` ascending is always the final tie-breaker.
    pub sort: Vec<Sort>,
    /// Which page.
    pub paging: Paging,
    /// Whether to count every match (an extra scan); `false` leaves the totals `None`.
    pub count: bool,
}

impl Default for Query {
    fn default() -> Query {
        Query {
            filter: None,
            sort: Vec::new(),
            paging: Paging::Page {
                page: 1,
                per_page: 30,
            },
            count: true,
        }
    }
}

/// One page of results: of [`Document`]s from [`Store::find`](crate::Store::find), of JSON
/// text from [`Store::find_json`](crate::Store::find_json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Page<T = Document> {
    /// The documents, in sort order.
    pub items: Vec<T>,
    /// The page number, for [`Paging::Page`].
    pub page: Option<u64>,
    /// The page size asked for.
    pub per_page: u64,
    /// Every match, when counted.
    pub total_items: Option<u64>,
    /// `ceil(total_items / per_page)`, when counted.
    pub total_pages: Option<u64>,
    /// A cursor for the next page, or `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The same page with every item converted.
    pub(crate) fn try_map<U>(self, convert: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            items: self.items.into_iter().map(convert).collect::<Result<_>>()?,
            page: self.page,
            per_page: self.per_page,
            total_items: self.total_items,
            total_pages: self.total_pages,
            next_cursor: self.next_cursor,
        })
    }
}

/// One ORDER BY column. A sort key on a declared path is one column; on an undeclared path
/// it is four: the type rank, then the number, string and bool extractions.
#[derive(Debug, Clone)]
pub(crate) struct SortColumn {
    path: FieldPath,
    extract: Extract,
    descending: bool,
}

impl SortColumn {
    /// The Rust twin of the SQL extraction, for cursors.
    fn value_of(&self, document: &Document) -> Option<Param> {
        let value = document.value_at(&self.path)?;
        match (self.extract, value) {
            (Extract::Typed(FieldType::String | FieldType::Datetime), Json::String(text)) => {
                Some(Param::Text(text))
            }
            (Extract::Typed(FieldType::Number), Json::Number(number)) => Some(Param::Num(number)),
            (Extract::Typed(FieldType::Bool), Json::Bool(flag)) => Some(Param::Bool(flag)),
            (Extract::Rank, Json::Number(_)) => Some(Param::Int(1)),
            (Extract::Rank, Json::String(_)) => Some(Param::Int(2)),
            (Extract::Rank, Json::Bool(_)) => Some(Param::Int(3)),
            _ => None,
        }
    }

    /// Reads a cursor value back, checking it has this column's type.
    fn read_cursor_value(&self, value: &Json) -> Result<Option<Param>> {
        let param = match (self.extract, value) {
            (_, Json::Null) => return Ok(None),
            (Extract::Typed(FieldType::String | FieldType::Datetime), Json::String(text)) => {
                Param::Text(text.clone())
            }
            (Extract::Typed(FieldType::Number), Json::Number(number)) => Param::Num(number.clone()),
            (Extract::Typed(FieldType::Bool), Json::Bool(flag)) => Param::Bool(*flag),
            (Extract::Rank, Json::Number(number)) if matches!(number.as_i64(), Some(1..=3)) => {
                Param::Int(number.as_i64().unwrap_or(1))
            }
            _ => return Err(bad_cursor("a value has the wrong type")),
        };
        Ok(Some(param))
    }
}

fn bad_cursor(reason: &str) -> Error {
    Error::InvalidCursor {
        reason: reason.into(),
    }
}

/// A checked query, ready to become SQL.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    filter: Option<Node>,
    columns: Vec<SortColumn>,
    fingerprint: String,
    after: Option<Vec<Option<Param>>>,
    page: Option<u64>,
    per_page: u64,
    offset: u64,
    pub(crate) count: bool,
    /// A spec check for the page query (see [`SpecGuard`]).
    pub(crate) guard: Option<SpecGuard>,
}

/// Checks `query` against the declared types; no SQL is built before it passes.
pub(crate) fn plan(
    query: &Query,
    types: &BTreeMap<FieldPath, FieldType>,
    config: &StoreConfig,
) -> Result<Plan> {
    let Query {
        filter,
        sort,
        paging,
        count,
    } = query;
    let filter = filter
        .as_ref()
        .map(|filter| filter::check(filter, types))
        .transpose()?;
    if sort.len() > config.max_sort_keys {
        return Err(Error::limit_exceeded(
            "sort keys",
            sort.len(),
            config.max_sort_keys,
        ));
    }
    let mut columns = Vec::new();
    let mut fingerprint = Vec::new();
    for key in sort {
        let path = FieldPath::parse(&key.path)?;
        fingerprint.push(format!(
            "{}:{}",
            path,
            if key.descending { "d" } else { "a" }
        ));
        let column = |extract| SortColumn {
            path: path.clone(),
            extract,
            descending: key.descending,
        };
        match types.get(&path) {
            Some(field_type) => columns.push(column(Extract::Typed(*field_type))),
            None => columns.extend(
                [
                    Extract::Rank,
                    Extract::Typed(FieldType::Number),
                    Extract::Typed(FieldType::String),
                    Extract::Typed(FieldType::Bool),
                ]
                .map(column),
            ),
        }
    }
    // `id` is unique and never NULL, so appending it makes the order total. It follows the
    // direction of the last key so that one index scan, forward or backward, gives the order.
    let tie_descending = sort.last().is_some_and(|key| key.descending);
    columns.push(SortColumn {
        path: FieldPath::Id,
        extract: Extract::Typed(FieldType::String),
        descending: tie_descending,
    });
    let fingerprint = fingerprint.join(",");
    let check_per_page = |per_page: u64| {
        if per_page == 0 {
            Err(Error::InvalidQuery {
                reason: "perPage must be at least 1".into(),
            })
        } else if per_page > config.max_page_size {
            Err(Error::LimitExceeded {
                limit: "page size",
                value: usize::try_from(per_page).unwrap_or(usize::MAX),
                max: usize::try_from(config.max_page_size).unwrap_or(usize::MAX),
            })
        } else {
            Ok(per_page)
        }
    };
    let (page, per_page, offset, after) = match paging {
        Paging::Page { page, per_page } => {
            let per_page = check_per_page(*per_page)?;
            if *page == 0 || *page > 1_000_000 {
                return Err(Error::InvalidQuery {
                    reason: "page must be 1 to 1000000".into(),
                });
            }
            (Some(*page), per_page, (page - 1) * per_page, None)
        }
        Paging::Cursor { after, per_page } => {
            let per_page = check_per_page(*per_page)?;
            let after = after
                .as_deref()
                .map(|cursor| decode_cursor(cursor, &fingerprint, &columns))
                .transpose()?;
            (None, per_page, 0, after)
        }
    };
    Ok(Plan {
        filter,
        columns,
        fingerprint,
        after,
        page,
        per_page,
        offset,
        count: *count,
        guard: None,
    })
}

impl Plan {
    /// The filter, and for the page query (`page`) the cursor and the spec guard.
    fn push_where(&self, sql: &mut Sql, dialect: &Dialect, page: bool) {
        sql.push(" WHERE ");
        let guard = self.guard.as_ref().filter(|_| page);
        if let Some(guard) = guard {
            guard.push(sql, dialect);
            sql.push(" AND (");
        }
        match &self.filter {
            Some(node) => push_filter(sql, dialect, node),
            None => {
                sql.push("TRUE");
            }
        }
        if let (true, Some(after)) = (page, &self.after) {
            sql.push(" AND ");
            self.push_after(sql, dialect, after);
        }
        if guard.is_some() {
            sql.push(")");
        }
    }

    /// Rows strictly after the cursor in the sort order, NULL being the smallest value:
    /// `OR_i (c_0 = v_0 AND .. AND c_{i-1} = v_{i-1} AND c_i after v_i)`, behind a leading
    /// range on the first column so that the planner can seek the index instead of scanning.
    fn push_after(&self, sql: &mut Sql, dialect: &Dialect, after: &[Option<Param>]) {
        sql.push("(");
        if let (Some(first), Some(Some(value))) = (self.columns.first(), after.first()) {
            let expr = dialect.extract(&first.path, first.extract);
            if first.descending {
                sql.push("(").push(&expr).push(" <= ").bind(value.clone());
                sql.push(" OR ").push(&expr).push(" IS NULL) AND ");
            } else {
                sql.push(&expr)
                    .push(" >= ")
                    .bind(value.clone())
                    .push(" AND ");
            }
        }
        sql.push("(");
        let mut disjuncts = 0;
        for (position, (column, value)) in self.columns.iter().zip(after).enumerate() {
            let expr = dialect.extract(&column.path, column.extract);
            // Nothing sorts after NULL descending, where it is last.
            if value.is_none() && column.descending {
                continue;
            }
            if disjuncts > 0 {
                sql.push(" OR ");
            }
            disjuncts += 1;
            sql.push("(");
            for (earlier, earlier_value) in self.columns.iter().zip(after).take(position) {
                let earlier_expr = dialect.extract(&earlier.path, earlier.extract);
                match earlier_value {
                    Some(earlier_value) => sql
                        .push(&earlier_expr)
                        .push(" = ")
                        .bind(earlier_value.clone()),
                    None => sql.push(&earlier_expr).push(" IS NULL"),
                };
                sql.push(" AND ");
            }
            match (value, column.descending) {
                (None, _) => sql.push(&expr).push(" IS NOT NULL"),
                (Some(value), false) => sql.push(&expr).push(" > ").bind(value.clone()),
                (Some(value), true) => {
                    sql.push("(").push(&expr).push(" < ").bind(value.clone());
                    sql.push(" OR ").push(&expr).push(" IS NULL)")
                }
            };
            sql.push(")");
        }
        if disjuncts == 0 {
            sql.push("FALSE");
        }
        sql.push("))");
    }

    /// The page query; it fetches one extra row to learn whether a next page exists.
    pub(crate) fn select_sql(&self, dialect: &Dialect, collection: &str) -> Sql {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT ")
            .push(dialect.document_columns())
            .push(" FROM ")
            .push(&dialect.table(collection));
        self.push_where(&mut sql, dialect, true);
        let pinned = self.pinned_paths();
        let order: Vec<String> = self
            .columns
            .iter()
            // A key that the filter pins to one value orders nothing; leaving it out lets
            // SQLite's planner, which does not see that an `=` makes an expression constant,
            // read the rows in index order instead of sorting them.
            .filter(|column| !pinned.contains(&column.path))
            .map(|column| {
                // NULL is the smallest value: SQLite's native order, and the order of the
                // PostgreSQL indexes, which are built `NULLS FIRST`.
                // SQLite already puts NULL first ascending and last descending, and its
                // planner only matches an index to an ORDER BY without NULLS clauses. System
                // columns are never NULL and keep PostgreSQL's default to match its
                // primary-key index.
                let nulls = match (dialect.engine, column.path.body(), column.descending) {
                    (Engine::Sqlite, _, _) | (_, None, _) => "",
                    (Engine::Postgres, Some(_), false) => " NULLS FIRST",
                    (Engine::Postgres, Some(_), true) => " NULLS LAST",
                };
                format!(
                    "{} {}{nulls}",
                    dialect.extract(&column.path, column.extract),
                    if column.descending { "DESC" } else { "ASC" }
                )
            })
            .collect();
        if !order.is_empty() {
            sql.push(" ORDER BY ").push(&order.join(", "));
        }
        // One more than a page, to tell whether a next page exists. Bound, like every value.
        sql.push(" LIMIT ")
            .bind_count(to_i64(self.per_page.saturating_add(1)))
            .push(" OFFSET ")
            .bind_count(to_i64(self.offset));
        sql
    }

    /// Paths that a top-level `eq` of the filter fixes to one value in every matching row.
    fn pinned_paths(&self) -> Vec<FieldPath> {
        let leaves: Vec<&Node> = match &self.filter {
            Some(Node::All(items)) => items.iter().collect(),
            Some(node) => vec![node],
            None => Vec::new(),
        };
        leaves
            .into_iter()
            .filter_map(|node| match node {
                Node::Leaf(Leaf::Cmp {
                    path, cmp: Cmp::Eq, ..
                }) => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    /// The count query, over the filter only.
    pub(crate) fn count_sql(&self, dialect: &Dialect, collection: &str) -> Sql {
        let mut sql = Sql::new(dialect);
        sql.push("SELECT count(*) FROM ")
            .push(&dialect.table(collection));
        self.push_where(&mut sql, dialect, false);
        sql
    }

    /// Turns fetched rows (one more than a page, when there is more) into a [`Page`].
    pub(crate) fn page<T: Row>(&self, mut items: Vec<T>, total: Option<i64>) -> Result<Page<T>> {
        let more = items.len() as u64 > self.per_page;
        items.truncate(self.per_page as usize);
        let next_cursor = match (more, items.last()) {
            (true, Some(last)) => Some(self.encode_cursor(&*last.document()?)?),
            _ => None,
        };
        let total_items = total.map(|total| total.max(0) as u64);
        Ok(Page {
            items,
            page: self.page,
            per_page: self.per_page,
            total_items,
            total_pages: total_items.map(|total| total.div_ceil(self.per_page)),
            next_cursor,
        })
    }

    fn encode_cursor(&self, last: &Document) -> Result<String> {
        let values: Vec<Json> = self
            .columns
            .iter()
            .map(|column| {
                column
                    .value_of(last)
                    .map_or(Json::Null, |param| param.to_json())
            })
            .collect();
        let text = json!({ "k": self.fingerprint, "v": values }).to_string();
        Ok(text.bytes().map(|byte| format!("{byte:02x}")).collect())
    }
}

/// Page sizes and offsets are checked against limits far below `i64::MAX`; saturate anyway.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn decode_cursor(
    cursor: &str,
    fingerprint: &str,
    columns: &[SortColumn],
) -> Result<Vec<Option<Param>>> {
    if cursor.len() > 64 * 1024 || !cursor.len().is_multiple_of(2) {
        return Err(bad_cursor("it is not a cursor"));
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|at| {
            cursor
                .get(at..at + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| bad_cursor("it is not a cursor"))?;
    let decoded: Json =
        serde_json::from_slice(&bytes).map_err(|_| bad_cursor("it is not a cursor"))?;
    if decoded["k"].as_str() != Some(fingerprint) {
        return Err(bad_cursor("it was made for another sort order"));
    }
    let values = decoded["v"]
        .as_array()
        .ok_or_else(|| bad_cursor("it is not a cursor"))?;
    if values.len() != columns.len() {
        return Err(bad_cursor("it was made for another sort order"));
    }
    let after = columns
        .iter()
        .zip(values)
        .map(|(column, value)| column.read_cursor_value(value))
        .collect::<Result<Vec<_>>>()?;
    if after.last().is_none_or(Option::is_none) {
        return Err(bad_cursor("it has no id"));
    }
    Ok(after)
}
