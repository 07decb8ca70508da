//! The PostgREST-style list grammar: a raw query string becomes a [`Query`].
//!
//! ```text
//! age=gte.18                      a comparison: PATH=OP.VALUE (every operator of Op)
//! age=not.gte.18                  negation
//! tags=in.(a,b,"c,d")             in / nin take a parenthesised list; "..." quotes a string
//! deleted=exists.false            exists takes true or false
//! or=(age.lt.18,and(a.eq.1,b.eq.2),not.or(c.eq.1,d.eq.2))   groups nest; not.or / not.and
//! items.0.sku=eq.A1               a numeric path segment is an array index
//! tags=any.eq.red                 an element of the array at tags is "red"
//! items=any(sku.eq.A1,qty.gt.2)   one element of items matches every item (element paths)
//! or=(tags.any.eq.red,items.any(qty.gt.2))   the same inside groups
//! order=age.desc,name.asc         sort keys (NULLs always sort last; nullslast is accepted)
//! page=2&perPage=50               numbered pages, or cursor=NEXT_CURSOR (empty for the first)
//! skipTotal=true                  skip counting every match
//! ```
//!
//! Repeated keys all apply (joined with AND). Values are typed by the path's declared type
//! (an index field, a reference, a system field) where there is one, else read as a JSON
//! literal (`18`, `true`, `null`, `"text"`), else taken as a string. A double-quoted value is
//! always a string.

use std::collections::BTreeMap;

use litehouse_docs::{FieldType, Filter, Op, Paging, Query, Sort};
use serde_json::{Value as Json, json};

use crate::error::ApiError;

/// Limits applied while parsing a list query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListLimits {
    /// Most comparisons in one filter.
    pub max_clauses: usize,
    /// Deepest nesting of `or`/`and`/`not` groups.
    pub max_depth: usize,
    /// Largest `perPage`.
    pub max_per_page: u64,
    /// `perPage` when the query does not say.
    pub default_per_page: u64,
}

impl Default for ListLimits {
    fn default() -> ListLimits {
        ListLimits {
            max_clauses: 50,
            max_depth: 8,
            max_per_page: litehouse_docs::MAX_PER_PAGE,
            default_per_page: 30,
        }
    }
}

/// Declared types by path, as used to type filter values.
pub type PathTypes = BTreeMap<String, FieldType>;

/// The declared types of a collection: system fields, index fields and references.
pub fn path_types(spec: &litehouse_docs::CollectionSpec) -> PathTypes {
    let mut types = PathTypes::from([
        ("id".to_owned(), FieldType::String),
        ("createdAt".to_owned(), FieldType::Datetime),
        ("updatedAt".to_owned(), FieldType::Datetime),
        ("version".to_owned(), FieldType::Number),
    ]);
    for index in &spec.indexes {
        for field in &index.fields {
            types.insert(field.path.clone(), field.field_type);
        }
    }
    for reference in &spec.references {
        types.insert(reference.path.clone(), FieldType::String);
    }
    types
}

/// Parses a raw query string into a [`Query`].
///
/// # Errors
/// A 400 [`ApiError`] (`invalid_filter` or `invalid_query`) naming the parameter and the
/// reason; nothing is sent to the store.
pub fn parse_list_query(
    raw: &str,
    types: &PathTypes,
    limits: &ListLimits,
) -> Result<Query, ApiError> {
    let mut parser = Parser {
        types,
        limits,
        clauses: 0,
        in_element: false,
    };
    let mut filters = Vec::new();
    let mut sort = Vec::new();
    let (mut page, mut per_page, mut cursor, mut skip_total) = (None, None, None, false);
    for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(raw_key).map_err(|reason| filter_error(raw_key, &reason))?;
        let value = decode(raw_value).map_err(|reason| filter_error(&key, &reason))?;
        let query_error = |reason: String| query_error(&key, &reason);
        match key.as_str() {
            "order" => sort.extend(parse_order(&value).map_err(query_error)?),
            "page" => page = Some(parse_number(&value, 1, u64::MAX).map_err(query_error)?),
            "perPage" => {
                let max = limits.max_per_page;
                per_page = Some(parse_number(&value, 1, max).map_err(query_error)?);
            }
            "cursor" => cursor = Some(value),
            "skipTotal" => skip_total = parse_bool(&value).map_err(query_error)?,
            "or" | "and" | "not.or" | "not.and" => filters.push(
                parser
                    .group(&key, &value, 1)
                    .map_err(|reason| filter_error(&key, &reason))?,
            ),
            _ => filters.push(
                parser
                    .leaf(&key, &value)
                    .map_err(|reason| filter_error(&key, &reason))?,
            ),
        }
    }
    let per_page = per_page.unwrap_or(limits.default_per_page.min(limits.max_per_page));
    let paging = match (cursor, page) {
        (Some(_), Some(_)) => {
            return Err(query_error("cursor", "use either page or cursor, not both"));
        }
        (Some(cursor), None) => Paging::Cursor {
            after: Some(cursor).filter(|cursor| !cursor.is_empty()),
            per_page,
        },
        (None, page) => Paging::Page {
            page: page.unwrap_or(1),
            per_page,
        },
    };
    let filter = match filters.len() {
        0 => None,
        1 => filters.pop(),
        _ => Some(Filter::all(filters)),
    };
    Ok(Query {
        filter,
        sort,
        paging,
        count: !skip_total,
    })
}

fn filter_error(param: &str, reason: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_filter",
        format!("invalid filter {param:?}: {reason}"),
    )
    .with_details(json!({ "param": param, "reason": reason }))
}

fn query_error(param: &str, reason: &str) -> ApiError {
    ApiError::bad_request("invalid_query", format!("invalid {param:?}: {reason}"))
        .with_details(json!({ "param": param, "reason": reason }))
}

struct Parser<'a> {
    types: &'a PathTypes,
    limits: &'a ListLimits,
    clauses: usize,
    /// Inside `any(...)`: paths are relative to an array element, and `""` (the element
    /// itself) is a path.
    in_element: bool,
}

impl Parser<'_> {
    /// `key` is `or`, `and`, `not.or` or `not.and`; `value` is `(item,item,...)`.
    fn group(&mut self, key: &str, value: &str, depth: usize) -> Result<Filter, String> {
        if depth > self.limits.max_depth {
            return Err(format!(
                "groups nest at most {} deep",
                self.limits.max_depth
            ));
        }
        let (negated, kind) = match key.strip_prefix("not.") {
            Some(kind) => (true, kind),
            None => (false, key),
        };
        let inner = value
            .strip_prefix('(')
            .and_then(|rest| rest.strip_suffix(')'))
            .ok_or_else(|| {
                format!("{kind} takes a parenthesised list, e.g. {kind}=(a.eq.1,b.eq.2)")
            })?;
        let mut filters = Vec::new();
        for item in split_top_level(inner)? {
            filters.push(self.item(item, depth)?);
        }
        let group = if kind == "or" {
            Filter::any(filters)
        } else {
            Filter::all(filters)
        };
        Ok(if negated {
            Filter::negate(group)
        } else {
            group
        })
    }

    /// One item of a group: a nested group or `path.op.value`.
    fn item(&mut self, item: &str, depth: usize) -> Result<Filter, String> {
        for kind in ["and", "or", "not.and", "not.or"] {
            if let Some(rest) = item.strip_prefix(kind)
                && rest.starts_with('(')
            {
                return self.group(kind, rest, depth + 1);
            }
        }
        let segments: Vec<&str> = item.split('.').collect();
        let split = (1..segments.len()).find(|&at| {
            is_op(segments[at])
                || is_any(segments[at], segments.get(at + 1).copied())
                || (segments[at] == "not"
                    && segments
                        .get(at + 1)
                        .is_some_and(|s| is_op(s) || is_any(s, segments.get(at + 2).copied())))
        });
        let Some(split) = split else {
            return Err(format!("{item:?} is not PATH.OPERATOR.VALUE"));
        };
        let path = segments[..split].join(".");
        let rest = segments[split..].join(".");
        self.leaf(&path, &rest)
    }

    /// `path` with `op.value` or `not.op.value`.
    fn leaf(&mut self, path: &str, value: &str) -> Result<Filter, String> {
        self.clauses += 1;
        if self.clauses > self.limits.max_clauses {
            return Err(format!(
                "at most {} comparisons per filter",
                self.limits.max_clauses
            ));
        }
        if path.is_empty() && !self.in_element {
            return Err("the path is empty".into());
        }
        let mut negations = 0;
        let mut rest = value;
        while let Some(after) = rest.strip_prefix("not.") {
            negations += 1;
            rest = after;
        }
        if let Some(element) = rest.strip_prefix("any")
            && (element.starts_with('.') || element.starts_with('('))
        {
            // `any.OP.VALUE` and `any(ITEM,...)` are conditions, not comparisons.
            self.clauses -= 1;
            let mut filter = self.any_element(path, element)?;
            for _ in 0..negations {
                filter = Filter::negate(filter);
            }
            return Ok(filter);
        }
        let (op_name, operand) = rest
            .split_once('.')
            .ok_or_else(|| format!("{value:?} is not OPERATOR.VALUE (e.g. eq.42)"))?;
        let op: Op = op_name.parse().map_err(|err| match err {
            litehouse_docs::Error::InvalidFilter { reason } => reason,
            other => other.to_string(),
        })?;
        let declared = self.types.get(path).copied();
        let operand = match op {
            Op::In | Op::Nin => {
                let inner = operand
                    .strip_prefix('(')
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| format!("{op} takes a parenthesised list, e.g. {op}.(1,2)"))?;
                let items = if inner.is_empty() {
                    Vec::new()
                } else {
                    split_top_level(inner)?
                };
                Json::Array(
                    items
                        .into_iter()
                        .map(|item| typed(item, declared))
                        .collect::<Result<_, _>>()?,
                )
            }
            Op::Exists => Json::Bool(parse_bool(operand)?),
            _ => typed(operand, declared)?,
        };
        let mut filter = Filter::field(path, op, operand);
        for _ in 0..negations {
            filter = Filter::negate(filter);
        }
        Ok(filter)
    }
}

impl Parser<'_> {
    /// `path=any.OP.VALUE` (an element of the array at `path` is OP VALUE) or
    /// `path=any(ITEM,ITEM)` (one element matches every item; item paths are relative to the
    /// element). `element` is what follows `any`.
    fn any_element(&mut self, path: &str, element: &str) -> Result<Filter, String> {
        if self.in_element {
            return Err("any(...) cannot nest inside another any".into());
        }
        let no_types = PathTypes::new();
        let mut inner = Parser {
            types: &no_types,
            limits: self.limits,
            clauses: self.clauses,
            in_element: true,
        };
        let condition = if let Some(comparison) = element.strip_prefix('.') {
            inner.leaf("", comparison)
        } else {
            inner.group("and", element, 1)
        };
        self.clauses = inner.clauses;
        Ok(Filter::any_element(path, condition?))
    }
}

/// `any` followed by `.OP...` or `(`: the any-element condition inside a group item.
fn is_any(segment: &str, next: Option<&str>) -> bool {
    segment.starts_with("any(") || (segment == "any" && next.is_some_and(is_op))
}

fn is_op(segment: &str) -> bool {
    Op::ALL.iter().any(|op| op.name() == segment)
}

/// Types one value: quoted → string; declared type → that type if it parses; else a JSON
/// scalar literal; else the text itself.
fn typed(raw: &str, declared: Option<FieldType>) -> Result<Json, String> {
    if raw.starts_with('"') {
        return unquote(raw).map(Json::String);
    }
    let literal = || serde_json::from_str::<Json>(raw).ok().filter(is_scalar);
    Ok(match declared {
        Some(FieldType::String | FieldType::Datetime) => Json::String(raw.to_owned()),
        Some(FieldType::Number) => literal()
            .filter(|value| value.is_number() || value.is_null())
            .unwrap_or_else(|| Json::String(raw.to_owned())),
        Some(FieldType::Bool) => literal()
            .filter(|value| value.is_boolean() || value.is_null())
            .unwrap_or_else(|| Json::String(raw.to_owned())),
        _ => literal().unwrap_or_else(|| Json::String(raw.to_owned())),
    })
}

fn is_scalar(value: &Json) -> bool {
    !(value.is_array() || value.is_object())
}

/// `"a \"b\" \\ c"` → `a "b" \ c`.
fn unquote(raw: &str) -> Result<String, String> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .filter(|_| raw.len() >= 2)
        .ok_or_else(|| format!("unterminated quote in {raw:?}"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or("a quoted value ends in a backslash")?),
            '"' => return Err(format!("unescaped quote inside {raw:?}")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Splits on commas outside parentheses and double quotes.
fn split_top_level(input: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0usize, false, false, 0);
    for (at, c) in input.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("unbalanced ')' in {input:?}"))?;
            }
            ',' if !quoted && depth == 0 => {
                items.push(&input[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if quoted || depth != 0 {
        return Err(format!("unbalanced quotes or parentheses in {input:?}"));
    }
    items.push(&input[start..]);
    if items.iter().any(|item| item.is_empty()) {
        return Err(format!("empty item in {input:?}"));
    }
    Ok(items)
}

fn parse_order(value: &str) -> Result<Vec<Sort>, String> {
    let mut keys = Vec::new();
    for key in value.split(',') {
        let mut segments: Vec<&str> = key.split('.').collect();
        let mut descending = false;
        while let Some(&last) = segments.last() {
            match last {
                "asc" => descending = false,
                "desc" => descending = true,
                "nullslast" => {}
                "nullsfirst" => {
                    return Err("NULLs always sort last; nullsfirst is not supported".into());
                }
                _ => break,
            }
            segments.pop();
        }
        if segments.is_empty() || segments.iter().any(|s| s.is_empty()) {
            return Err(format!("{key:?} is not PATH[.asc|.desc]"));
        }
        let path = segments.join(".");
        keys.push(if descending {
            Sort::desc(path)
        } else {
            Sort::asc(path)
        });
    }
    Ok(keys)
}

fn parse_number(value: &str, min: u64, max: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("expected a whole number from {min} to {max}, got {value:?}"))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

/// Percent-decoding as in `application/x-www-form-urlencoded` (`+` is a space).
fn decode(raw: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(at + 1..at + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or("a '%' is not followed by two hex digits")?;
                out.push(hex);
                at += 2;
            }
            byte => out.push(byte),
        }
        at += 1;
    }
    String::from_utf8(out).map_err(|_| "the parameter is not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use litehouse_docs::FieldType;

    fn types() -> PathTypes {
        let mut types = path_types(&litehouse_docs::CollectionSpec::default());
        types.insert("age".into(), FieldType::Number);
        types.insert("zip".into(), FieldType::String);
        types.insert("active".into(), FieldType::Bool);
        types
    }

    fn parse(raw: &str) -> Result<Query, ApiError> {
        parse_list_query(raw, &types(), &ListLimits::default())
    }

    /// Checks the filter a query string becomes.
    fn check(raw: &str, expected: Filter) {
        let query = parse(raw).unwrap_or_else(|err| panic!("{raw}: {err}"));
        assert_eq!(query.filter, Some(expected), "{raw}");
    }

    /// Checks that a query string is refused with `code` and a reason containing `needle`.
    fn check_err(raw: &str, code: &str, needle: &str) {
        let err = parse(raw).expect_err(raw);
        assert_eq!(err.status().as_u16(), 400, "{raw}");
        assert_eq!(err.code(), code, "{raw}: {err}");
        assert!(err.message().contains(needle), "{raw}: {err}");
    }

    #[test]
    fn comparisons() {
        check("age=gte.18", Filter::gte("age", 18));
        check("age=eq.1.5", Filter::eq("age", 1.5));
        check("name=eq.Ada", Filter::eq("name", "Ada"));
        check("name=neq.Ada", Filter::neq("name", "Ada"));
        check("score=gt.3", Filter::gt("score", 3));
        check("score=lt.-3", Filter::lt("score", -3));
        check("score=lte.3e2", Filter::lte("score", 300.0));
        check("name=like.A%25", Filter::like("name", "A%"));
        check("name=ilike.a_a", Filter::ilike("name", "a_a"));
        check("tags=contains.red", Filter::contains("tags", "red"));
        check("gone=exists.false", Filter::exists("gone", false));
        check("a.b.c=eq.x.y", Filter::eq("a.b.c", "x.y"));
        check("name=eq.", Filter::eq("name", ""));
        check("name=eq.hello+world", Filter::eq("name", "hello world"));
    }

    #[test]
    fn typing_follows_declared_types() {
        check("zip=eq.01234", Filter::eq("zip", "01234"));
        check("zip=eq.7", Filter::eq("zip", "7"));
        check("code=eq.7", Filter::eq("code", 7));
        check("code=eq.\"7\"", Filter::eq("code", "7"));
        check("age=eq.abc", Filter::eq("age", "abc"));
        check("flag=eq.true", Filter::eq("flag", true));
        check("active=eq.true", Filter::eq("active", true));
        check("note=eq.null", Filter::eq("note", Json::Null));
        check("version=gt.2", Filter::gt("version", 2));
        check("id=eq.123", Filter::eq("id", "123"));
        check("note=eq.[1]", Filter::eq("note", "[1]"));
    }

    #[test]
    fn array_elements() {
        check("items.0.sku=eq.A1", Filter::eq("items.0.sku", "A1"));
        check(
            "tags=any.eq.red",
            Filter::any_element("tags", Filter::eq("", "red")),
        );
        // Inside `any`, paths are the element's and carry no declared type.
        check(
            "items=any(zip.eq.7,sku.in.(a,b))",
            Filter::any_element(
                "items",
                Filter::all([Filter::eq("zip", 7), Filter::is_in("sku", ["a", "b"])]),
            ),
        );
        check(
            "tags=not.any.eq.red",
            Filter::negate(Filter::any_element("tags", Filter::eq("", "red"))),
        );
        check(
            "or=(tags.any.eq.red,items.any(qty.gt.2),age.eq.3)",
            Filter::any([
                Filter::any_element("tags", Filter::eq("", "red")),
                Filter::any_element("items", Filter::all([Filter::gt("qty", 2)])),
                Filter::eq("age", 3),
            ]),
        );
        check_err("tags=any(x.any.eq.1)", "invalid_filter", "cannot nest");
        check_err("tags=any.zz.1", "invalid_filter", "");
    }

    #[test]
    fn lists_and_quotes() {
        check("age=in.(1,2,3)", Filter::is_in("age", [1, 2, 3]));
        check("zip=nin.(1,2)", Filter::not_in("zip", ["1", "2"]));
        check("name=in.(\"a,b\",c)", Filter::is_in("name", ["a,b", "c"]));
        check("name=in.()", Filter::is_in("name", Vec::<Json>::new()));
        check("name=eq.\"a\\\"b\"", Filter::eq("name", "a\"b"));
    }

    #[test]
    fn negation_and_groups() {
        check("age=not.gt.3", Filter::negate(Filter::gt("age", 3)));
        check(
            "or=(age.lt.18,age.gt.65)",
            Filter::any([Filter::lt("age", 18), Filter::gt("age", 65)]),
        );
        check(
            "and=(a.eq.1,or(b.eq.2,not.and(c.eq.3,d.not.eq.4)))",
            Filter::all([
                Filter::eq("a", 1),
                Filter::any([
                    Filter::eq("b", 2),
                    Filter::negate(Filter::all([
                        Filter::eq("c", 3),
                        Filter::negate(Filter::eq("d", 4)),
                    ])),
                ]),
            ]),
        );
        check(
            "not.or=(a.eq.1,b.eq.2)",
            Filter::negate(Filter::any([Filter::eq("a", 1), Filter::eq("b", 2)])),
        );
        check(
            "or=(addr.city.eq.Paris,name.in.(a,b))",
            Filter::any([
                Filter::eq("addr.city", "Paris"),
                Filter::is_in("name", ["a", "b"]),
            ]),
        );
        check(
            "age=gte.18&age=lt.65",
            Filter::all([Filter::gte("age", 18), Filter::lt("age", 65)]),
        );
    }

    #[test]
    fn paging_sorting_and_counting() -> Result<(), ApiError> {
        let query = parse("order=age.desc,name,addr.city.asc.nullslast&page=2&perPage=10")?;
        assert_eq!(
            query.sort,
            vec![Sort::desc("age"), Sort::asc("name"), Sort::asc("addr.city")]
        );
        assert_eq!(
            query.paging,
            Paging::Page {
                page: 2,
                per_page: 10
            }
        );
        assert!(query.count);
        let query = parse("cursor=&skipTotal=true")?;
        assert_eq!(
            query.paging,
            Paging::Cursor {
                after: None,
                per_page: 30
            }
        );
        assert!(!query.count);
        let query = parse("cursor=abc&perPage=1000")?;
        assert_eq!(
            query.paging,
            Paging::Cursor {
                after: Some("abc".into()),
                per_page: 1000
            }
        );
        assert_eq!(parse("")?, Query::default());
        Ok(())
    }

    #[test]
    fn bad_input_is_refused() {
        check_err("age=gte", "invalid_filter", "OPERATOR.VALUE");
        check_err("age=drop.1", "invalid_filter", "unknown operator");
        check_err("age=in.1,2", "invalid_filter", "parenthesised");
        check_err("x=exists.maybe", "invalid_filter", "true or false");
        check_err("or=a.eq.1", "invalid_filter", "parenthesised");
        check_err("or=(a.eq.1,)", "invalid_filter", "empty item");
        check_err("or=(a.eq.1", "invalid_filter", "parenthesised");
        check_err("or=(a.eq.(1)", "invalid_filter", "unbalanced");
        check_err("or=(nonsense)", "invalid_filter", "PATH.OPERATOR.VALUE");
        check_err("name=eq.\"open", "invalid_filter", "unterminated");
        check_err("name=eq.%zz", "invalid_filter", "hex");
        check_err("name=eq.%ff", "invalid_filter", "UTF-8");
        check_err("=eq.1", "invalid_filter", "path is empty");
        check_err("page=0", "invalid_query", "whole number");
        check_err("page=x", "invalid_query", "whole number");
        check_err("perPage=1001", "invalid_query", "1 to 1000");
        check_err("page=2&cursor=x", "invalid_query", "not both");
        check_err("order=a.nullsfirst", "invalid_query", "nullsfirst");
        check_err("order=a,,b", "invalid_query", "PATH");
        check_err("skipTotal=yes", "invalid_query", "true or false");
    }

    #[test]
    fn limits_are_enforced() {
        let many = (0..51)
            .map(|n| format!("a{n}=eq.1"))
            .collect::<Vec<_>>()
            .join("&");
        check_err(&many, "invalid_filter", "at most 50 comparisons");
        let deep = format!("or=({}a.eq.1{})", "and(".repeat(8), ")".repeat(8));
        check_err(&deep, "invalid_filter", "nest at most 8");
        let ok = format!("or=({}a.eq.1{})", "and(".repeat(7), ")".repeat(7));
        assert!(parse(&ok).is_ok());
    }
}
