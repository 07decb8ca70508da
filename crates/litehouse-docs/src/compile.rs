//! Checked filters to SQL. Negation is pushed down to the comparisons, and each negated
//! comparison is `NOT COALESCE(comparison, FALSE)`, so a missing value (NULL) never makes a
//! `not` disappear: `neq` and `nin` match documents where the path is missing.

use crate::filter::{Element, Leaf, Node, PatternToken};
use crate::names::FieldPath;
use crate::spec::FieldType;
use crate::sql::{Dialect, Engine, Extract, Param, Sql};

/// Appends the SQL of `node`.
pub(crate) fn push_filter(sql: &mut Sql, dialect: &Dialect, node: &Node) {
    push_node(sql, dialect, node, false);
}

fn push_node(sql: &mut Sql, dialect: &Dialect, node: &Node, negated: bool) {
    match node {
        Node::All(items) => push_list(
            sql,
            dialect,
            items,
            if negated { " OR " } else { " AND " },
            negated,
        ),
        Node::Any(items) => push_list(
            sql,
            dialect,
            items,
            if negated { " AND " } else { " OR " },
            negated,
        ),
        Node::Not(item) => push_node(sql, dialect, item, !negated),
        Node::AnyElement(segments, inner) => {
            if negated {
                sql.push("NOT COALESCE(");
            }
            push_any_element(sql, dialect, segments, inner);
            if negated {
                sql.push(", FALSE)");
            }
        }
        Node::Leaf(leaf) if negated => {
            sql.push("NOT COALESCE(");
            push_leaf(sql, dialect, leaf);
            sql.push(", FALSE)");
        }
        Node::Leaf(leaf) => push_leaf(sql, dialect, leaf),
    }
}

/// `EXISTS` over the elements of the array at `segments`, with the inner node's paths
/// relative to the element.
fn push_any_element(sql: &mut Sql, dialect: &Dialect, segments: &[String], inner: &Node) {
    sql.push("(")
        .push(&dialect.json_type(segments))
        .push(" = '")
        .push(dialect.array_type())
        .push("' AND EXISTS (SELECT 1 FROM ")
        .push(&dialect.elements(segments))
        .push(" WHERE ");
    push_node(sql, &dialect.in_element(), inner, false);
    sql.push("))");
}

fn push_list(sql: &mut Sql, dialect: &Dialect, items: &[Node], joiner: &str, negated: bool) {
    if items.is_empty() {
        // An empty AND holds and an empty OR does not; the joiner tells which one this is
        // after negation.
        sql.push(if joiner == " AND " { "TRUE" } else { "FALSE" });
        return;
    }
    sql.push("(");
    for (position, item) in items.iter().enumerate() {
        if position > 0 {
            sql.push(joiner);
        }
        push_node(sql, dialect, item, negated);
    }
    sql.push(")");
}

fn push_leaf(sql: &mut Sql, dialect: &Dialect, leaf: &Leaf) {
    match leaf {
        Leaf::Cmp {
            path,
            field_type,
            cmp,
            value,
        } => {
            sql.push(&dialect.extract(path, Extract::Typed(*field_type)))
                .push(" ")
                .push(cmp.sql())
                .push(" ")
                .bind(value.clone());
        }
        Leaf::IsNull(segments) => {
            sql.push(&dialect.json_type(segments)).push(" = 'null'");
        }
        Leaf::In { path, groups, null } => {
            let mut parts = 0;
            sql.push("(");
            for (field_type, values) in groups {
                if parts > 0 {
                    sql.push(" OR ");
                }
                parts += 1;
                sql.push(&dialect.extract(path, Extract::Typed(*field_type)))
                    .push(" IN ");
                sql.bind_list(values.iter().cloned());
            }
            if let (true, Some(segments)) = (*null, path.body()) {
                if parts > 0 {
                    sql.push(" OR ");
                }
                parts += 1;
                sql.push(&dialect.json_type(segments)).push(" = 'null'");
            }
            if parts == 0 {
                sql.push("FALSE");
            }
            sql.push(")");
        }
        Leaf::Like {
            path,
            pattern,
            fold_case,
        } => push_like(sql, dialect, path, pattern, *fold_case),
        Leaf::Exists(segments) => {
            sql.push(&dialect.json_type(segments)).push(" IS NOT NULL");
        }
        Leaf::Contains { segments, element } => push_contains(sql, dialect, segments, element),
        Leaf::Const(true) => {
            sql.push("TRUE");
        }
        Leaf::Const(false) => {
            sql.push("FALSE");
        }
    }
}

/// Case-sensitive `like` is GLOB on SQLite (its LIKE ignores ASCII case) and LIKE on
/// PostgreSQL; case-insensitive `like` is SQLite's LIKE and, on PostgreSQL, LIKE over an
/// ASCII-only lowercasing, so non-ASCII letters compare exactly on both engines.
fn push_like(
    sql: &mut Sql,
    dialect: &Dialect,
    path: &FieldPath,
    pattern: &[PatternToken],
    fold_case: bool,
) {
    let value = dialect.extract(path, Extract::Typed(FieldType::String));
    match (dialect.engine, fold_case) {
        (Engine::Sqlite, false) => {
            sql.push(&value)
                .push(" GLOB ")
                .bind(Param::Text(glob_pattern(pattern)));
        }
        (Engine::Sqlite, true) => {
            sql.push(&value)
                .push(" LIKE ")
                .bind(Param::Text(like_pattern(pattern, true)));
            sql.push(" ESCAPE '\\'");
        }
        (Engine::Postgres, false) => {
            sql.push(&value)
                .push(" LIKE ")
                .bind(Param::Text(like_pattern(pattern, false)));
        }
        (Engine::Postgres, true) => {
            sql.push("translate(")
                .push(&value)
                .push(", 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') LIKE ")
                .bind(Param::Text(like_pattern(pattern, true)));
        }
    }
}

fn glob_pattern(pattern: &[PatternToken]) -> String {
    let mut glob = String::new();
    for token in pattern {
        match token {
            PatternToken::AnyRun => glob.push('*'),
            PatternToken::OneChar => glob.push('?'),
            PatternToken::Literal(c @ ('*' | '?' | '[')) => {
                glob.push('[');
                glob.push(*c);
                glob.push(']');
            }
            PatternToken::Literal(c) => glob.push(*c),
        }
    }
    glob
}

fn like_pattern(pattern: &[PatternToken], lowercase: bool) -> String {
    let mut like = String::new();
    for token in pattern {
        match token {
            PatternToken::AnyRun => like.push('%'),
            PatternToken::OneChar => like.push('_'),
            PatternToken::Literal(c @ ('%' | '_' | '\\')) => {
                like.push('\\');
                like.push(*c);
            }
            PatternToken::Literal(c) if lowercase => like.push(c.to_ascii_lowercase()),
            PatternToken::Literal(c) => like.push(*c),
        }
    }
    like
}

fn push_contains(sql: &mut Sql, dialect: &Dialect, segments: &[String], element: &Element) {
    sql.push("(")
        .push(&dialect.json_type(segments))
        .push(" = '")
        .push(dialect.array_type())
        .push("' AND ");
    match dialect.engine {
        Engine::Sqlite => {
            // Alias `c`: `e` is the element of an enclosing `anyElement`.
            sql.push("EXISTS (SELECT 1 FROM json_each(doc, ")
                .push(&dialect.json_path(segments))
                .push(") AS c WHERE ");
            match element {
                None => {
                    sql.push("c.type = 'null'");
                }
                Some((FieldType::Bool, Param::Bool(flag))) => {
                    sql.push(if *flag {
                        "c.type = 'true'"
                    } else {
                        "c.type = 'false'"
                    });
                }
                Some((FieldType::Number, value)) => {
                    sql.push("c.type IN ('integer', 'real') AND c.atom = ")
                        .bind(value.clone());
                }
                Some((_, value)) => {
                    sql.push("c.type = 'text' AND c.atom = ")
                        .bind(value.clone());
                }
            }
            sql.push("))");
        }
        Engine::Postgres => {
            let element_json = match element {
                None => serde_json::Value::Null,
                Some((_, value)) => value.to_json(),
            };
            let array = serde_json::Value::Array(vec![element_json]).to_string();
            sql.push("(")
                .push(&dialect.json_value(segments))
                .push(") @> ")
                .bind(Param::Json(array))
                .push(")");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Filter, check, parse_pattern};
    use std::collections::BTreeMap;

    #[test]
    fn not_is_pushed_to_leaves() {
        let filter = Filter::negate(Filter::all([Filter::eq("a", 1), Filter::eq("b", "x")]));
        let node = check(&filter, &BTreeMap::new()).unwrap();
        let mut sql = Sql::new(&Dialect::sqlite());
        push_filter(&mut sql, &Dialect::sqlite(), &node);
        assert!(sql.text.starts_with("(NOT COALESCE("), "{}", sql.text);
        assert!(sql.text.contains(" OR NOT COALESCE("), "{}", sql.text);
        assert_eq!(sql.params.len(), 2);
    }

    #[test]
    fn patterns_translate() {
        let pattern = parse_pattern("a*%_\\%B").unwrap();
        assert_eq!(glob_pattern(&pattern), "a[*]*?%B");
        assert_eq!(like_pattern(&pattern, false), "a*%_\\%B");
        assert_eq!(like_pattern(&pattern, true), "a*%_\\%b");
    }
}
