//! The filter AST and its checking into a typed form, before any SQL is built.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::document::is_rfc3339_utc;
use crate::error::{Error, Result};
use crate::names::FieldPath;
use crate::spec::FieldType;
use crate::sql::Param;

/// Most comparisons in one filter.
pub const MAX_FILTER_LEAVES: usize = 200;
/// Deepest nesting of `and`/`or`/`not`.
pub const MAX_FILTER_DEPTH: usize = 16;
/// Most values in an `in`/`nin` list.
pub const MAX_IN_VALUES: usize = 1000;
/// Longest string value in a filter, in bytes.
pub const MAX_FILTER_STRING: usize = 4096;

/// A filter operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Op {
    /// Equal (same type and value; `null` matches JSON null only).
    Eq,
    /// Not [`Op::Eq`]: also matches missing values and values of other types.
    Neq,
    /// Greater than, within the value's type.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal to one of an array of values.
    In,
    /// Not [`Op::In`].
    Nin,
    /// String pattern: `%` any run, `_` one character, `\` escapes; case-sensitive.
    Like,
    /// As [`Op::Like`] but ASCII letters match either case.
    Ilike,
    /// `true`: the path is present (JSON null counts); `false`: absent.
    Exists,
    /// The value at the path is an array with this scalar as an element.
    Contains,
}

impl Op {
    /// Every operator, in declaration order.
    pub const ALL: [Op; 12] = [
        Op::Eq,
        Op::Neq,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::In,
        Op::Nin,
        Op::Like,
        Op::Ilike,
        Op::Exists,
        Op::Contains,
    ];

    /// The operator's name as used in queries (`eq`, `gte`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Neq => "neq",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::In => "in",
            Op::Nin => "nin",
            Op::Like => "like",
            Op::Ilike => "ilike",
            Op::Exists => "exists",
            Op::Contains => "contains",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = Error;

    /// Parses an operator name.
    ///
    /// ```
    /// use litehouse_docs::Op;
    /// assert_eq!("gte".parse::<Op>().unwrap(), Op::Gte);
    /// assert!("drop".parse::<Op>().unwrap_err().is_invalid_input());
    /// ```
    fn from_str(name: &str) -> Result<Op> {
        Op::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .ok_or_else(|| Error::InvalidFilter {
                reason: format!(
                    "unknown operator {:?}",
                    name.chars().take(40).collect::<String>()
                ),
            })
    }
}

/// A filter over document paths.
///
/// ```
/// use litehouse_docs::Filter;
/// let adults_named_a = Filter::all([Filter::gte("age", 18), Filter::like("name", "A%")]);
/// # let _ = adults_named_a;
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Filter {
    /// Every filter holds (an empty list holds).
    And(Vec<Filter>),
    /// At least one filter holds (an empty list does not).
    Or(Vec<Filter>),
    /// The filter does not hold.
    Not(Box<Filter>),
    /// A comparison on one path.
    Field {
        /// Dotted path, or a system field (`id`, `createdAt`, `updatedAt`, `version`).
        path: String,
        /// The operator.
        op: Op,
        /// The operand: a scalar, an array for `in`/`nin`, a bool for `exists`.
        value: Json,
    },
    /// The value at `path` is an array with at least one element matching `filter`, whose
    /// paths are relative to the element: `""` is the element itself (for arrays of
    /// scalars), `sku` a key of an element object, `0` the first item of an element array.
    /// Inside, system field names are ordinary keys and no path has a declared type; an
    /// `AnyElement` cannot nest inside another.
    AnyElement {
        /// Dotted path to the array (not a system field nor a declared path).
        path: String,
        /// The condition on one element.
        filter: Box<Filter>,
    },
}

macro_rules! constructors {
    ($($name:ident => $op:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            pub fn $name(path: impl Into<String>, value: impl Into<Json>) -> Filter {
                Filter::field(path, Op::$op, value)
            }
        )*
    };
}

impl Filter {
    /// A comparison with any operator.
    pub fn field(path: impl Into<String>, op: Op, value: impl Into<Json>) -> Filter {
        Filter::Field {
            path: path.into(),
            op,
            value: value.into(),
        }
    }

    constructors! {
        eq => Eq, "`path = value`.";
        neq => Neq, "`path != value` (missing and other types included).";
        gt => Gt, "`path > value`.";
        gte => Gte, "`path >= value`.";
        lt => Lt, "`path < value`.";
        lte => Lte, "`path <= value`.";
        like => Like, "Case-sensitive pattern match.";
        ilike => Ilike, "ASCII-case-insensitive pattern match.";
        contains => Contains, "The array at `path` has `value` as an element.";
    }

    /// `path` equals one of `values`.
    pub fn is_in<V: Into<Json>>(
        path: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Filter::field(
            path,
            Op::In,
            Json::Array(values.into_iter().map(Into::into).collect()),
        )
    }

    /// `path` equals none of `values`.
    pub fn not_in<V: Into<Json>>(
        path: impl Into<String>,
        values: impl IntoIterator<Item = V>,
    ) -> Filter {
        Filter::field(
            path,
            Op::Nin,
            Json::Array(values.into_iter().map(Into::into).collect()),
        )
    }

    /// `path` is present (`true`) or absent (`false`).
    pub fn exists(path: impl Into<String>, present: bool) -> Filter {
        Filter::field(path, Op::Exists, present)
    }

    /// Some element of the array at `path` matches `filter`, whose paths are relative to
    /// the element (`""` is the element itself).
    ///
    /// ```
    /// use litehouse_docs::Filter;
    /// let cheap_widget = Filter::any_element(
    ///     "items",
    ///     Filter::all([Filter::eq("sku", "w-1"), Filter::lt("price", 10)]),
    /// );
    /// let urgent = Filter::any_element("tags", Filter::like("", "urgent%"));
    /// # let _ = (cheap_widget, urgent);
    /// ```
    pub fn any_element(path: impl Into<String>, filter: Filter) -> Filter {
        Filter::AnyElement {
            path: path.into(),
            filter: Box::new(filter),
        }
    }

    /// Every filter holds.
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::And(filters.into_iter().collect())
    }

    /// At least one filter holds.
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Or(filters.into_iter().collect())
    }

    /// The filter does not hold.
    pub fn negate(filter: Filter) -> Filter {
        Filter::Not(Box::new(filter))
    }
}

/// A checked filter: paths parsed, operands typed.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    /// Some element of the array at the body path matches the node, whose paths are
    /// relative to the element.
    AnyElement(Vec<String>, Box<Node>),
    Leaf(Leaf),
}

/// Ordered comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
}

/// One piece of a `like` pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatternToken {
    AnyRun,
    OneChar,
    Literal(char),
}

/// A scalar element for `contains`; `None` is JSON null.
pub(crate) type Element = Option<(FieldType, Param)>;

#[derive(Debug, Clone)]
pub(crate) enum Leaf {
    Cmp {
        path: FieldPath,
        field_type: FieldType,
        cmp: Cmp,
        value: Param,
    },
    IsNull(Vec<String>),
    In {
        path: FieldPath,
        groups: BTreeMap<FieldType, Vec<Param>>,
        null: bool,
    },
    Like {
        path: FieldPath,
        pattern: Vec<PatternToken>,
        fold_case: bool,
    },
    Exists(Vec<String>),
    Contains {
        segments: Vec<String>,
        element: Element,
    },
    Const(bool),
}

struct Checker<'a> {
    types: &'a BTreeMap<FieldPath, FieldType>,
    leaves: usize,
    /// Inside an `AnyElement`: paths are relative to the element.
    in_element: bool,
}

/// Checks `filter` against the declared path types and returns its typed form.
pub(crate) fn check(filter: &Filter, types: &BTreeMap<FieldPath, FieldType>) -> Result<Node> {
    Checker {
        types,
        leaves: 0,
        in_element: false,
    }
    .node(filter, 0)
}

/// No declared types inside an element.
static NO_TYPES: BTreeMap<FieldPath, FieldType> = BTreeMap::new();

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidFilter {
        reason: reason.into(),
    }
}

/// The type and bound form of a scalar; `None` for null, arrays and objects.
pub(crate) fn scalar(value: &Json) -> Option<(FieldType, Param)> {
    match value {
        Json::String(text) => Some((FieldType::String, Param::Text(text.clone()))),
        Json::Number(number) => Some((FieldType::Number, Param::Num(number.clone()))),
        Json::Bool(flag) => Some((FieldType::Bool, Param::Bool(*flag))),
        _ => None,
    }
}

fn type_name(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

impl Checker<'_> {
    fn node(&mut self, filter: &Filter, depth: usize) -> Result<Node> {
        if depth > MAX_FILTER_DEPTH {
            return Err(invalid(format!(
                "filters nest at most {MAX_FILTER_DEPTH} deep"
            )));
        }
        Ok(match filter {
            Filter::And(items) => Node::All(self.nodes(items, depth)?),
            Filter::Or(items) => Node::Any(self.nodes(items, depth)?),
            Filter::Not(item) => Node::Not(Box::new(self.node(item, depth + 1)?)),
            Filter::Field { path, op, value } => {
                self.leaves += 1;
                if self.leaves > MAX_FILTER_LEAVES {
                    return Err(invalid(format!("at most {MAX_FILTER_LEAVES} comparisons")));
                }
                let path = if self.in_element {
                    FieldPath::parse_relative(path)?
                } else {
                    FieldPath::parse(path)?
                };
                self.field(&path, *op, value)?
            }
            Filter::AnyElement { path, filter } => self.any_element(path, filter, depth)?,
        })
    }

    fn any_element(&mut self, path: &str, filter: &Filter, depth: usize) -> Result<Node> {
        if self.in_element {
            return Err(invalid("anyElement cannot nest inside anyElement"));
        }
        let path = FieldPath::parse(path)?;
        let Some(segments) = path.body() else {
            return Err(invalid(format!(
                "anyElement needs an array path, not {path}"
            )));
        };
        if self.types.contains_key(&path) {
            return Err(invalid(format!(
                "anyElement needs an array path; {path} has a declared scalar type"
            )));
        }
        let mut inner = Checker {
            types: &NO_TYPES,
            leaves: self.leaves,
            in_element: true,
        };
        let node = inner.node(filter, depth + 1)?;
        self.leaves = inner.leaves;
        Ok(Node::AnyElement(segments.to_vec(), Box::new(node)))
    }

    fn nodes(&mut self, items: &[Filter], depth: usize) -> Result<Vec<Node>> {
        items
            .iter()
            .map(|item| self.node(item, depth + 1))
            .collect()
    }

    /// The type a scalar operand is compared as: the declared type of the path if any (the
    /// operand must fit it), else the operand's own JSON type.
    fn operand(&self, path: &FieldPath, value: &Json) -> Result<(FieldType, Param)> {
        if let Json::String(text) = value
            && text.len() > MAX_FILTER_STRING
        {
            return Err(invalid(format!(
                "strings are at most {MAX_FILTER_STRING} bytes"
            )));
        }
        let Some((own_type, param)) = scalar(value) else {
            return Err(invalid(format!(
                "{path}: expected a string, number or bool, found {}",
                type_name(value)
            )));
        };
        let Some(declared) = self.types.get(path).copied() else {
            return Ok((own_type, param));
        };
        let fits = match declared {
            FieldType::Datetime => matches!(value, Json::String(text) if is_rfc3339_utc(text)),
            other => other == own_type,
        };
        if !fits {
            let found = match value {
                Json::String(text) if declared == FieldType::Datetime => format!("string {text:?}"),
                other => type_name(other).to_owned(),
            };
            return Err(Error::InvalidValue {
                path: path.to_string(),
                expected: declared,
                found,
            });
        }
        Ok((declared, param))
    }

    fn field(&self, path: &FieldPath, op: Op, value: &Json) -> Result<Node> {
        let leaf = |leaf| Ok(Node::Leaf(leaf));
        match op {
            Op::Eq | Op::Neq => {
                let positive = if value.is_null() {
                    Node::Leaf(match path.body() {
                        Some(segments) => Leaf::IsNull(segments.to_vec()),
                        None => Leaf::Const(false),
                    })
                } else {
                    self.compare(path, Cmp::Eq, value)?
                };
                Ok(if op == Op::Neq {
                    Node::Not(Box::new(positive))
                } else {
                    positive
                })
            }
            Op::Gt => self.compare(path, Cmp::Gt, value),
            Op::Gte => self.compare(path, Cmp::Gte, value),
            Op::Lt => self.compare(path, Cmp::Lt, value),
            Op::Lte => self.compare(path, Cmp::Lte, value),
            Op::In | Op::Nin => {
                let positive = self.is_in(path, value)?;
                Ok(if op == Op::Nin {
                    Node::Not(Box::new(positive))
                } else {
                    positive
                })
            }
            Op::Like | Op::Ilike => {
                let Json::String(pattern) = value else {
                    return Err(invalid(format!("{op} takes a string pattern")));
                };
                // A pattern is no datetime, so only the declared type is checked here.
                if let Some(declared) = self.types.get(path).copied()
                    && !matches!(declared, FieldType::String | FieldType::Datetime)
                {
                    return Err(Error::InvalidValue {
                        path: path.to_string(),
                        expected: declared,
                        found: format!("{op} pattern"),
                    });
                }
                leaf(Leaf::Like {
                    path: path.clone(),
                    pattern: parse_pattern(pattern)?,
                    fold_case: op == Op::Ilike,
                })
            }
            Op::Exists => {
                let Json::Bool(present) = value else {
                    return Err(invalid("exists takes true or false"));
                };
                let positive = Node::Leaf(match path.body() {
                    Some(segments) => Leaf::Exists(segments.to_vec()),
                    None => Leaf::Const(true),
                });
                Ok(if *present {
                    positive
                } else {
                    Node::Not(Box::new(positive))
                })
            }
            Op::Contains => {
                let Some(segments) = path.body() else {
                    return Err(invalid(format!("contains needs an array path, not {path}")));
                };
                if self.types.contains_key(path) {
                    return Err(invalid(format!(
                        "contains needs an array path; {path} has a declared scalar type"
                    )));
                }
                let element = if value.is_null() {
                    None
                } else {
                    Some(self.operand(&FieldPath::Body(Vec::new()), value)?)
                };
                leaf(Leaf::Contains {
                    segments: segments.to_vec(),
                    element,
                })
            }
        }
    }

    fn compare(&self, path: &FieldPath, cmp: Cmp, value: &Json) -> Result<Node> {
        if value.is_null() && cmp != Cmp::Eq {
            return Err(invalid(format!(
                "{path}: null can only be compared with eq, neq, in and nin"
            )));
        }
        let (field_type, value) = self.operand(path, value)?;
        Ok(Node::Leaf(Leaf::Cmp {
            path: path.clone(),
            field_type,
            cmp,
            value,
        }))
    }

    fn is_in(&self, path: &FieldPath, value: &Json) -> Result<Node> {
        let Json::Array(values) = value else {
            return Err(invalid("in and nin take an array"));
        };
        if values.len() > MAX_IN_VALUES {
            return Err(invalid(format!(
                "in and nin take at most {MAX_IN_VALUES} values"
            )));
        }
        let mut groups: BTreeMap<FieldType, Vec<Param>> = BTreeMap::new();
        let mut null = false;
        for item in values {
            if item.is_null() {
                null = true;
            } else {
                let (field_type, param) = self.operand(path, item)?;
                groups.entry(field_type).or_default().push(param);
            }
        }
        if null && path.body().is_none() {
            null = false;
        }
        Ok(Node::Leaf(Leaf::In {
            path: path.clone(),
            groups,
            null,
        }))
    }
}

/// Splits a `like` pattern: `%`, `_`, and `\` escaping the next character.
pub(crate) fn parse_pattern(pattern: &str) -> Result<Vec<PatternToken>> {
    if pattern.len() > MAX_FILTER_STRING {
        return Err(invalid(format!(
            "patterns are at most {MAX_FILTER_STRING} bytes"
        )));
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => PatternToken::AnyRun,
            '_' => PatternToken::OneChar,
            '\\' => match chars.next() {
                Some(escaped) => PatternToken::Literal(escaped),
                None => return Err(invalid("a like pattern must not end with a lone backslash")),
            },
            other => PatternToken::Literal(other),
        });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types() -> BTreeMap<FieldPath, FieldType> {
        BTreeMap::from([
            (FieldPath::parse("age").unwrap(), FieldType::Number),
            (FieldPath::parse("at").unwrap(), FieldType::Datetime),
        ])
    }

    #[test]
    fn hostile_filters_are_refused_before_sql() {
        let refuse = |filter: Filter| {
            let err = check(&filter, &types()).unwrap_err();
            assert!(err.is_invalid_input(), "{filter:?} gave {err}");
        };
        refuse(Filter::eq("a'; DROP TABLE x; --", 1));
        refuse(Filter::eq("$.a", 1));
        refuse(Filter::eq("age", "10"));
        refuse(Filter::eq("at", "yesterday"));
        refuse(Filter::gt("a", json!(null)));
        refuse(Filter::eq("a", json!({"x": 1})));
        refuse(Filter::field("a", Op::In, 3));
        refuse(Filter::like("a", 3));
        refuse(Filter::like("a", "ab\\"));
        refuse(Filter::field("a", Op::Exists, "yes"));
        refuse(Filter::contains("age", 1));
        refuse(Filter::is_in("a", (0..1001).collect::<Vec<_>>()));
        let mut deep = Filter::eq("a", 1);
        for _ in 0..20 {
            deep = Filter::negate(deep);
        }
        refuse(deep);
    }

    #[test]
    fn any_element_reads_as_json() {
        let filter = Filter::any_element("items", Filter::eq("sku", "a1"));
        let text = json!({"anyElement": {"path": "items", "filter": {"field": {"path": "sku", "op": "eq", "value": "a1"}}}});
        assert_eq!(serde_json::to_value(&filter).unwrap(), text);
        assert_eq!(serde_json::from_value::<Filter>(text).unwrap(), filter);
    }

    #[test]
    fn operators_parse_by_name() {
        for op in Op::ALL {
            assert_eq!(op.name().parse::<Op>().unwrap(), op);
        }
        assert!("EQ".parse::<Op>().is_err());
    }

    #[test]
    fn patterns() {
        use PatternToken::*;
        assert_eq!(
            parse_pattern("a%_\\%").unwrap(),
            vec![Literal('a'), AnyRun, OneChar, Literal('%')]
        );
    }
}
