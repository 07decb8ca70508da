//! SQL text for both engines: the statement builder, bound parameters, and the one function
//! per engine that turns a (path, type) into the typed extraction expression.
//!
//! Invariant: every expression over a document path is made by [`Dialect::extract`] (or the
//! JSON-type helpers beside it), and index DDL, filters, sorts and cursors all call it, so
//! the text in a query is always the exact text of the index (both planners match index
//! expressions textually or structurally, never algebraically).

use serde_json::{Number, Value as Json};

use crate::names::{self, FieldPath};
use crate::spec::FieldType;

/// Which database engine a statement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// What to extract from a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Extract {
    /// The value when it has this type, else NULL.
    Typed(FieldType),
    /// The type rank used to sort undeclared paths: number 1, string 2, bool 3, else NULL.
    Rank,
}

/// An engine plus, for PostgreSQL, the schema every table lives in.
#[derive(Debug, Clone)]
pub(crate) struct Dialect {
    pub(crate) engine: Engine,
    /// Already validated identifier; `None` for SQLite.
    schema: Option<String>,
    /// Whether body paths are relative to the array element of an `any element` filter
    /// (`e`, from `json_each` / `jsonb_array_elements`) instead of the document.
    element: bool,
}

impl Dialect {
    pub(crate) fn sqlite() -> Dialect {
        Dialect {
            engine: Engine::Sqlite,
            schema: None,
            element: false,
        }
    }

    /// `schema` must have passed [`litehouse::validate_identifier`].
    pub(crate) fn postgres(schema: String) -> Dialect {
        Dialect {
            engine: Engine::Postgres,
            schema: Some(schema),
            element: false,
        }
    }

    /// The same dialect with body paths relative to the current array element, the row `e`
    /// of [`Dialect::elements`].
    pub(crate) fn in_element(&self) -> Dialect {
        Dialect {
            element: true,
            ..self.clone()
        }
    }

    /// A `FROM` item yielding the elements of the array at `segments` as `e` (nothing when
    /// the value is not an array), for [`Dialect::in_element`] expressions.
    pub(crate) fn elements(&self, segments: &[String]) -> String {
        match self.engine {
            // json_each also walks objects and yields a scalar itself, so the caller checks
            // the type; SQLite's json_each never raises for a valid document.
            Engine::Sqlite => format!("json_each(doc, {}) AS e", self.sqlite_path(segments)),
            Engine::Postgres => {
                let value = self.pg_value(segments, false);
                format!(
                    "jsonb_array_elements(CASE WHEN jsonb_typeof({value}) = 'array' THEN {value} \
                     ELSE '[]'::jsonb END) AS e(v)"
                )
            }
        }
    }

    /// SQLite: the JSON path expression of a body path (see [`Dialect::sqlite_path`]).
    pub(crate) fn json_path(&self, segments: &[String]) -> String {
        self.sqlite_path(segments)
    }

    /// PostgreSQL: the `jsonb` value at a body path, NULL when missing.
    pub(crate) fn json_value(&self, segments: &[String]) -> String {
        self.pg_value(segments, false)
    }

    /// SQLite: the JSON path expression for `segments`: a literal `'$.a[0].b'`, or, inside
    /// an element, the element's full path with the rest appended.
    fn sqlite_path(&self, segments: &[String]) -> String {
        let mut suffix = String::new();
        for segment in segments {
            if names::is_index(segment) {
                suffix.push('[');
                suffix.push_str(segment);
                suffix.push(']');
            } else {
                suffix.push('.');
                suffix.push_str(segment);
            }
        }
        match (self.element, suffix.is_empty()) {
            (false, _) => format!("'${suffix}'"),
            (true, true) => "e.fullkey".into(),
            (true, false) => format!("(e.fullkey || '{suffix}')"),
        }
    }

    /// PostgreSQL: the value at `segments` (`jsonb`, or `text` with `as_text`), NULL when
    /// missing. `#>` also reads `"0"` as a key of an object; an index segment must select an
    /// array element only, so each one is guarded by a type check of its parent.
    fn pg_value(&self, segments: &[String], as_text: bool) -> String {
        let root = if self.element { "e.v" } else { "doc" };
        let operator = if as_text { "#>>" } else { "#>" };
        let value = format!("{root} {operator} '{}'", postgres_path(segments));
        let guards: Vec<String> = segments
            .iter()
            .enumerate()
            .filter(|(_, segment)| names::is_index(segment))
            .map(|(position, _)| {
                format!(
                    "jsonb_typeof({root} #> '{}') = 'array'",
                    postgres_path(&segments[..position])
                )
            })
            .collect();
        if guards.is_empty() {
            value
        } else {
            format!("(CASE WHEN {} THEN {value} END)", guards.join(" AND "))
        }
    }

    /// A quoted, schema-qualified table name. `ident` comes from [`names`].
    pub(crate) fn qualify(&self, ident: &str) -> String {
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{ident}\""),
            None => format!("\"{ident}\""),
        }
    }

    /// The quoted table of a collection.
    pub(crate) fn table(&self, collection: &str) -> String {
        self.qualify(&names::table_ident(collection))
    }

    /// The catalog table.
    pub(crate) fn catalog(&self) -> String {
        self.qualify(names::CATALOG_TABLE)
    }

    /// The columns every document query selects, in [`Document::from_row`] order.
    ///
    /// [`Document::from_row`]: crate::document::Document::from_row
    pub(crate) fn document_columns(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "id, doc, created_at, updated_at, version",
            Engine::Postgres => "id, doc::text, created_at, updated_at, version",
        }
    }

    /// `CREATE TABLE` for a collection.
    pub(crate) fn create_table(&self, collection: &str) -> String {
        let table = self.table(collection);
        match self.engine {
            Engine::Sqlite => format!(
                "CREATE TABLE {table} (id TEXT NOT NULL PRIMARY KEY, doc TEXT NOT NULL, \
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL) STRICT"
            ),
            // COLLATE "C" gives code-point order, the order of SQLite's BINARY collation.
            Engine::Postgres => format!(
                "CREATE TABLE {table} (id text COLLATE \"C\" NOT NULL PRIMARY KEY, doc jsonb NOT NULL, \
                 created_at text COLLATE \"C\" NOT NULL, updated_at text COLLATE \"C\" NOT NULL, \
                 version bigint NOT NULL)"
            ),
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for the catalog.
    pub(crate) fn create_catalog(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (name TEXT NOT NULL PRIMARY KEY, spec TEXT NOT NULL)",
            self.catalog()
        )
    }

    /// `CREATE [UNIQUE] INDEX` over typed extractions, with `id` appended to non-unique
    /// indexes so that sorting on the index plus the `id` tie-breaker can use it.
    pub(crate) fn create_index(
        &self,
        collection: &str,
        ident: &str,
        fields: &[(FieldPath, FieldType)],
        unique: bool,
    ) -> String {
        // NULLS FIRST on PostgreSQL matches the sort rule (NULL is the smallest value) and
        // SQLite's only index order.
        let nulls = match self.engine {
            Engine::Sqlite => "",
            Engine::Postgres => " NULLS FIRST",
        };
        let mut columns: Vec<String> = fields
            .iter()
            .map(|(path, field_type)| {
                let expr = self.extract(path, Extract::Typed(*field_type));
                format!("({expr}){nulls}")
            })
            .collect();
        if !unique {
            columns.push("id".into());
        }
        format!(
            "CREATE {}INDEX \"{ident}\" ON {} ({})",
            if unique { "UNIQUE " } else { "" },
            self.table(collection),
            columns.join(", ")
        )
    }

    /// The typed extraction expression: the value at `path` when it has the wanted type,
    /// NULL when it is missing or of another type. One function per engine.
    pub(crate) fn extract(&self, path: &FieldPath, extract: Extract) -> String {
        let segments = match path {
            FieldPath::Id => return "id".into(),
            FieldPath::CreatedAt => return "created_at".into(),
            FieldPath::UpdatedAt => return "updated_at".into(),
            FieldPath::Version => return "version".into(),
            FieldPath::Body(segments) => segments,
        };
        match self.engine {
            Engine::Sqlite => sqlite_extract(&self.sqlite_path(segments), extract),
            Engine::Postgres => postgres_extract(
                &self.pg_value(segments, false),
                &self.pg_value(segments, true),
                extract,
            ),
        }
    }

    /// An expression giving the JSON type name at a body path, NULL when missing. JSON null
    /// is `'null'` on both engines.
    pub(crate) fn json_type(&self, segments: &[String]) -> String {
        match self.engine {
            Engine::Sqlite => format!("json_type(doc, {})", self.sqlite_path(segments)),
            Engine::Postgres => format!("jsonb_typeof({})", self.pg_value(segments, false)),
        }
    }

    /// The JSON type name of arrays.
    pub(crate) fn array_type(&self) -> &'static str {
        "array"
    }

    /// The document with the value at `segments` replaced by JSON null.
    pub(crate) fn set_null(&self, segments: &[String]) -> String {
        match self.engine {
            Engine::Sqlite => format!("json_set(doc, {}, NULL)", self.sqlite_path(segments)),
            Engine::Postgres => format!(
                "jsonb_set(doc, '{}', 'null'::jsonb)",
                postgres_path(segments)
            ),
        }
    }

    /// The clause that keeps a referenced row from being deleted until commit (PostgreSQL),
    /// so that a reference checked here cannot dangle after a concurrent delete.
    pub(crate) fn for_key_share(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR KEY SHARE",
        }
    }

    /// The clause that locks selected rows until commit (PostgreSQL); SQLite's single writer
    /// already serialises writes.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite => "",
            Engine::Postgres => " FOR UPDATE",
        }
    }
}

/// `{a,b}`: a text[] literal of identifiers.
fn postgres_path(segments: &[String]) -> String {
    format!("{{{}}}", segments.join(","))
}

/// `path` is a JSON path expression from [`Dialect::sqlite_path`].
fn sqlite_extract(path: &str, extract: Extract) -> String {
    match extract {
        Extract::Typed(FieldType::String | FieldType::Datetime) => {
            format!(
                "(CASE WHEN json_type(doc, {path}) = 'text' THEN json_extract(doc, {path}) END)"
            )
        }
        Extract::Typed(FieldType::Number) => format!(
            "(CASE WHEN json_type(doc, {path}) IN ('integer', 'real') THEN json_extract(doc, {path}) END)"
        ),
        Extract::Typed(FieldType::Bool) => {
            format!("(CASE json_type(doc, {path}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)")
        }
        Extract::Rank => format!(
            "(CASE json_type(doc, {path}) WHEN 'integer' THEN 1 WHEN 'real' THEN 1 WHEN 'text' THEN 2 \
             WHEN 'true' THEN 3 WHEN 'false' THEN 3 END)"
        ),
    }
}

/// `value` and `text` are the jsonb and text forms from [`Dialect::pg_value`].
fn postgres_extract(value: &str, text: &str, extract: Extract) -> String {
    match extract {
        // Collation C: code-point order, as SQLite's BINARY.
        Extract::Typed(FieldType::String | FieldType::Datetime) => {
            format!("((CASE WHEN jsonb_typeof({value}) = 'string' THEN {text} END) COLLATE \"C\")")
        }
        Extract::Typed(FieldType::Number) => {
            format!("(CASE WHEN jsonb_typeof({value}) = 'number' THEN ({text})::numeric END)")
        }
        Extract::Typed(FieldType::Bool) => {
            format!("(CASE WHEN jsonb_typeof({value}) = 'boolean' THEN ({text})::boolean END)")
        }
        Extract::Rank => format!(
            "(CASE jsonb_typeof({value}) WHEN 'number' THEN 1 WHEN 'string' THEN 2 \
             WHEN 'boolean' THEN 3 END)"
        ),
    }
}

/// A bound value. Values never reach SQL text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Num(Number),
    Bool(bool),
    /// JSON text stored in the document column.
    Json(String),
}

impl Param {
    /// The value as JSON, for explain output and cursors.
    pub(crate) fn to_json(&self) -> Json {
        match self {
            Param::Text(text) | Param::Json(text) => Json::String(text.clone()),
            Param::Int(int) => Json::from(*int),
            Param::Num(number) => Json::Number(number.clone()),
            Param::Bool(flag) => Json::Bool(*flag),
        }
    }
}

/// Bound as a SQLite value, borrowed (a document's text is not copied to bind it): booleans
/// are integers, as `json_type`'s true/false map to.
impl litehouse::rusqlite::ToSql for Param {
    fn to_sql(&self) -> litehouse::rusqlite::Result<litehouse::rusqlite::types::ToSqlOutput<'_>> {
        use litehouse::rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Text(text) | Param::Json(text) => ValueRef::Text(text.as_bytes()),
            Param::Int(int) => ValueRef::Integer(*int),
            Param::Num(number) => match number.as_i64() {
                Some(int) => ValueRef::Integer(int),
                None => ValueRef::Real(number.as_f64().unwrap_or(f64::NAN)),
            },
            Param::Bool(flag) => ValueRef::Integer(i64::from(*flag)),
        }))
    }
}

/// A statement under construction: SQL text plus its parameters, numbered per engine.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) params: Vec<Param>,
    engine: Engine,
    /// See [`Sql::keep_prepared`].
    pub(crate) kept: bool,
}

impl Sql {
    pub(crate) fn new(dialect: &Dialect) -> Sql {
        Sql {
            text: String::new(),
            params: Vec::new(),
            engine: dialect.engine,
            kept: false,
        }
    }

    /// Marks a statement run often whose text is one of a few fixed shapes: PostgreSQL
    /// parses and plans it once per pooled connection and keeps it (`prepare_typed_cached`),
    /// instead of parsing and planning it at every run. A connection keeps every distinct
    /// text marked for its lifetime, so only texts from a small fixed set may be marked.
    /// SQLite keeps every statement in its bounded statement cache already.
    pub(crate) fn keep_prepared(&mut self) -> &mut Sql {
        self.kept = true;
        self
    }

    /// A statement with no parameters.
    pub(crate) fn plain(dialect: &Dialect, text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            ..Sql::new(dialect)
        }
    }

    /// The same statement with `prefix` in front (for `EXPLAIN`).
    pub(crate) fn prefixed(&self, prefix: &str) -> Sql {
        Sql {
            text: format!("{prefix}{}", self.text),
            kept: false,
            ..self.clone()
        }
    }

    /// Appends SQL text (never user data).
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `param`. PostgreSQL placeholders carry a cast so that
    /// every parameter is sent as text, bigint or boolean.
    ///
    /// SQLite placeholders are `+?N`: the unary plus changes no value, but it keeps SQLite's
    /// planner from reading the bound value (as it does for `expr = ?N`), which marks the
    /// statement to be compiled again every time the statement cache hands it out.
    pub(crate) fn bind(&mut self, param: Param) -> &mut Sql {
        let n = self.params.len() + 1;
        let placeholder = match (self.engine, &param) {
            (Engine::Sqlite, _) => format!("+?{n}"),
            (Engine::Postgres, Param::Text(_)) => format!("${n}::text"),
            (Engine::Postgres, Param::Int(_)) => format!("${n}::int8"),
            (Engine::Postgres, Param::Num(_)) => format!("${n}::text::numeric"),
            (Engine::Postgres, Param::Bool(_)) => format!("${n}::bool"),
            (Engine::Postgres, Param::Json(_)) => format!("${n}::text::jsonb"),
        };
        self.params.push(param);
        self.text.push_str(&placeholder);
        self
    }

    /// Appends a bound `LIMIT` or `OFFSET` count. On SQLite it is `+?N + 0`: SQLite reads a
    /// bare bound count while planning, and a statement planned from a bound value is
    /// compiled again at every reuse; an expression it does not fold keeps the statement
    /// cached (the count still limits the rows at run time).
    pub(crate) fn bind_count(&mut self, count: i64) -> &mut Sql {
        self.bind(Param::Int(count));
        if self.engine == Engine::Sqlite {
            self.push(" + 0");
        }
        self
    }

    /// Appends `(p1, p2, ...)`.
    pub(crate) fn bind_list(&mut self, params: impl IntoIterator<Item = Param>) -> &mut Sql {
        self.push("(");
        for (position, param) in params.into_iter().enumerate() {
            if position > 0 {
                self.push(", ");
            }
            self.bind(param);
        }
        self.push(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_engine() {
        let mut sqlite = Sql::new(&Dialect::sqlite());
        sqlite
            .push("x = ")
            .bind(Param::Text("a".into()))
            .push(" AND y = ")
            .bind(Param::Bool(true));
        assert_eq!(sqlite.text, "x = +?1 AND y = +?2");
        let mut postgres = Sql::new(&Dialect::postgres("s".into()));
        postgres
            .push("x = ")
            .bind(Param::Num(Number::from(3)))
            .push(" AND y = ")
            .bind(Param::Bool(true));
        assert_eq!(postgres.text, "x = $1::text::numeric AND y = $2::bool");
    }

    #[test]
    fn extraction_is_one_expression_per_type() {
        let path = FieldPath::parse("a.b").unwrap();
        let sqlite = Dialect::sqlite().extract(&path, Extract::Typed(FieldType::Number));
        assert!(sqlite.contains("json_extract(doc, '$.a.b')"), "{sqlite}");
        let postgres =
            Dialect::postgres("s".into()).extract(&path, Extract::Typed(FieldType::String));
        assert!(
            postgres.contains("doc #>> '{a,b}'") && postgres.contains("COLLATE \"C\""),
            "{postgres}"
        );
    }
}
