//! A plain in-memory evaluator of filters and sorts, written from QUERY.md, that both
//! engines are checked against.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use litehouse_docs::{FieldType, Filter, Op, Sort};
use serde_json::Value as Json;

/// Declared types by path, as in a collection spec.
pub(crate) type Types = BTreeMap<String, FieldType>;

pub(crate) fn value_at<'a>(doc: &'a Json, path: &str) -> Option<&'a Json> {
    let mut value = doc;
    for segment in path.split('.') {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

fn same_type(a: &Json, b: &Json) -> bool {
    matches!(
        (a, b),
        (Json::String(_), Json::String(_))
            | (Json::Number(_), Json::Number(_))
            | (Json::Bool(_), Json::Bool(_))
    )
}

/// Order within one scalar type; `None` across types.
pub(crate) fn compare(a: &Json, b: &Json) -> Option<Ordering> {
    match (a, b) {
        (Json::String(x), Json::String(y)) => Some(x.cmp(y)),
        (Json::Number(x), Json::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Json::Bool(x), Json::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(found: Option<&Json>, wanted: &Json) -> bool {
    match (found, wanted) {
        (Some(Json::Null), Json::Null) => true,
        (_, Json::Null) => false,
        (Some(found), wanted) => {
            same_type(found, wanted) && compare(found, wanted) == Some(Ordering::Equal)
        }
        (None, _) => false,
    }
}

fn like(text: &[char], pattern: &[Token], fold: bool) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((Token::Any, rest)) => (0..=text.len()).any(|skip| like(&text[skip..], rest, fold)),
        Some((Token::One, rest)) => !text.is_empty() && like(&text[1..], rest, fold),
        Some((Token::Lit(c), rest)) => match text.split_first() {
            Some((t, text_rest)) => {
                let same = if fold {
                    t.eq_ignore_ascii_case(c)
                } else {
                    t == c
                };
                same && like(text_rest, rest, fold)
            }
            None => false,
        },
    }
}

#[derive(Clone, Copy)]
enum Token {
    Any,
    One,
    Lit(char),
}

fn tokens(pattern: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => Token::Any,
            '_' => Token::One,
            '\\' => Token::Lit(chars.next().expect("checked pattern")),
            c => Token::Lit(c),
        });
    }
    out
}

/// Whether `doc` (with system fields) matches `filter`.
pub(crate) fn matches(doc: &Json, filter: &Filter) -> bool {
    match filter {
        Filter::And(items) => items.iter().all(|item| matches(doc, item)),
        Filter::Or(items) => items.iter().any(|item| matches(doc, item)),
        Filter::Not(item) => !matches(doc, item),
        Filter::Field { path, op, value } => {
            let found = value_at(doc, path);
            let ordered = |accept: fn(Ordering) -> bool| {
                found.is_some_and(|found| {
                    same_type(found, value) && compare(found, value).is_some_and(accept)
                })
            };
            match op {
                Op::Eq => equal(found, value),
                Op::Neq => !equal(found, value),
                Op::Gt => ordered(|o| o == Ordering::Greater),
                Op::Gte => ordered(|o| o != Ordering::Less),
                Op::Lt => ordered(|o| o == Ordering::Less),
                Op::Lte => ordered(|o| o != Ordering::Greater),
                Op::In => value
                    .as_array()
                    .expect("array")
                    .iter()
                    .any(|v| equal(found, v)),
                Op::Nin => !value
                    .as_array()
                    .expect("array")
                    .iter()
                    .any(|v| equal(found, v)),
                Op::Like | Op::Ilike => match (found, value) {
                    (Some(Json::String(text)), Json::String(pattern)) => {
                        let text: Vec<char> = text.chars().collect();
                        like(&text, &tokens(pattern), *op == Op::Ilike)
                    }
                    _ => false,
                },
                Op::Exists => found.is_some() == value.as_bool().expect("bool"),
                Op::Contains => match found {
                    Some(Json::Array(items)) => items.iter().any(|item| equal(Some(item), value)),
                    _ => false,
                },
                _ => unreachable!("new operator"),
            }
        }
        _ => unreachable!("new filter"),
    }
}

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
        _ => false,
    };
    fits.then_some(value)
}

/// NULL is the smallest value: first ascending, last descending.
fn column<T>(
    a: Option<T>,
    b: Option<T>,
    descending: bool,
    order: impl Fn(&T, &T) -> Ordering,
) -> Ordering {
    let ascending = match (&a, &b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => order(a, b),
    };
    if descending {
        ascending.reverse()
    } else {
        ascending
    }
}

fn system_type(path: &str) -> Option<FieldType> {
    match path {
        "id" => Some(FieldType::String),
        "createdAt" | "updatedAt" => Some(FieldType::Datetime),
        "version" => Some(FieldType::Number),
        _ => None,
    }
}

/// Orders documents by `sort` plus the `id` tie-breaker, per QUERY.md.
pub(crate) fn sort_docs(docs: &mut [Json], sort: &[Sort], types: &Types) {
    let by_value = |a: &&Json, b: &&Json| compare(a, b).unwrap_or(Ordering::Equal);
    docs.sort_by(|a, b| {
        for key in sort {
            let (x, y) = (value_at(a, &key.path), value_at(b, &key.path));
            let declared = types
                .get(&key.path)
                .copied()
                .or_else(|| system_type(&key.path));
            let ordering = match declared {
                Some(field_type) => column(
                    typed(x, field_type),
                    typed(y, field_type),
                    key.descending,
                    by_value,
                ),
                None => column(rank(x), rank(y), key.descending, |p, q| p.cmp(q)).then_with(|| {
                    // Same rank: compare within the type (both None when neither is a scalar).
                    let (x, y) = (rank(x).and(x), rank(y).and(y));
                    column(x, y, key.descending, by_value)
                }),
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        // The id tie-breaker follows the direction of the last key.
        let by_id = a["id"].as_str().cmp(&b["id"].as_str());
        if sort.last().is_some_and(|key| key.descending) {
            by_id.reverse()
        } else {
            by_id
        }
    });
}
