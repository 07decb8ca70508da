//! The one place where collection names, index names and field paths are checked, and where
//! the SQL names derived from them are made.
//!
//! Every name is first checked by [`litehouse::validate_identifier`] and then by the stricter
//! rules here, so the quoted forms built below can never carry a quote, a dot or a `$`.

use std::fmt;

use serde_json::Value as Json;

use crate::error::{Error, Result};

/// Longest collection name.
pub const MAX_COLLECTION_LEN: usize = 32;
/// Longest index name inside a collection spec.
pub const MAX_INDEX_NAME_LEN: usize = 24;
/// Longest dotted field path, in bytes.
pub const MAX_PATH_LEN: usize = 256;
/// Most segments in a dotted field path.
pub const MAX_PATH_DEPTH: usize = 8;

fn identifier<'a>(name: &'a str, max_len: usize, what: &str) -> Result<&'a str> {
    let bad = |reason: String| Error::InvalidName {
        name: name.chars().take(80).collect(),
        reason,
    };
    litehouse::validate_identifier(name).map_err(|err| bad(err.to_string()))?;
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(bad(format!(
            "a {what} name must start with an ASCII letter"
        )));
    }
    // SQLite folds the case of table and index names and PostgreSQL (quoted) does not, so
    // `Posts` and `posts` would be one table on one engine and two on the other.
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad(format!("a {what} name must be lowercase")));
    }
    if name.len() > max_len {
        return Err(bad(format!("a {what} name is at most {max_len} bytes")));
    }
    Ok(name)
}

/// Checks a collection name: a lowercase ASCII letter, then lowercase letters, digits or
/// `_`, at most [`MAX_COLLECTION_LEN`] bytes.
pub(crate) fn collection_name(name: &str) -> Result<&str> {
    identifier(name, MAX_COLLECTION_LEN, "collection")
}

/// Checks an index name of a spec, like a collection name but at most [`MAX_INDEX_NAME_LEN`].
pub(crate) fn index_name(name: &str) -> Result<&str> {
    identifier(name, MAX_INDEX_NAME_LEN, "index")
}

/// The SQL identifier (unquoted) of a collection's table.
pub(crate) fn table_ident(collection: &str) -> String {
    format!("c_{collection}")
}

/// The SQL identifier of a declared index. The length prefix keeps `(a, b_c)` and `(a_b, c)`
/// apart, since index names share one namespace per schema.
pub(crate) fn index_ident(collection: &str, index: &str) -> String {
    format!("ix{}_{collection}_{index}", collection.len())
}

/// The SQL identifier of the index made automatically for the `position`-th reference.
pub(crate) fn reference_index_ident(collection: &str, position: usize) -> String {
    format!("rx{}_{collection}_{position}", collection.len())
}

/// The name of the catalog table that stores every collection's spec.
pub(crate) const CATALOG_TABLE: &str = "_litehouse_collections";

/// A field path: one of the system fields, or a dotted path into the document body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FieldPath {
    /// `id`: the document id (a string).
    Id,
    /// `createdAt`: creation time (an RFC 3339 string).
    CreatedAt,
    /// `updatedAt`: last write time (an RFC 3339 string).
    UpdatedAt,
    /// `version`: the write counter (a number).
    Version,
    /// A path into the body: each segment is an identifier.
    Body(Vec<String>),
}

/// Splits and checks a dotted path: identifiers, or array indexes (digits, no leading zero,
/// at most [`MAX_INDEX_DIGITS`]); the first segment of a document path is a key, since a
/// body is an object.
fn parse_segments(path: &str, relative: bool) -> Result<Vec<String>> {
    let shown: String = path.chars().take(80).collect();
    let bad = |reason: String| Error::InvalidPath {
        path: shown.clone(),
        reason,
    };
    if path.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(bad(format!("it is longer than {MAX_PATH_LEN} bytes")));
    }
    let segments: Vec<&str> = path.split('.').collect();
    if segments.len() > MAX_PATH_DEPTH {
        return Err(bad(format!("it has more than {MAX_PATH_DEPTH} segments")));
    }
    for (position, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return Err(bad("it has an empty segment".into()));
        }
        if is_index(segment) {
            if position == 0 && !relative {
                return Err(bad(
                    "it starts with an array index; a document is an object".into(),
                ));
            }
            if segment.len() > MAX_INDEX_DIGITS || (segment.len() > 1 && segment.starts_with('0')) {
                return Err(bad(format!(
                    "array index {segment:?} must have no leading zero and at most {MAX_INDEX_DIGITS} digits"
                )));
            }
            continue;
        }
        litehouse::validate_identifier(segment).map_err(|err| {
            bad(format!(
                "segment {segment:?}: {err}; segments are ASCII letters, digits and _, or array indexes"
            ))
        })?;
    }
    Ok(segments.iter().map(|s| (*s).to_owned()).collect())
}

/// The top-level keys reserved for system fields; they are never stored in the body.
pub(crate) const SYSTEM_KEYS: [&str; 4] = ["id", "createdAt", "updatedAt", "version"];

/// Most digits in an array-index segment (indexes below 10^9).
const MAX_INDEX_DIGITS: usize = 9;

/// Whether a checked path segment is an array index (`0`, `12`; no sign, no leading zero).
pub(crate) fn is_index(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

/// One step down a JSON value along a checked path segment: an array index selects an
/// element of an array (and nothing in an object, even under a key `"0"`), any other segment
/// a key of an object. Both engines' path expressions follow the same rule.
pub(crate) fn json_step<'a>(value: &'a Json, segment: &str) -> Option<&'a Json> {
    if is_index(segment) {
        value.as_array()?.get(segment.parse::<usize>().ok()?)
    } else {
        value.as_object()?.get(segment)
    }
}

impl FieldPath {
    /// Parses a dotted path such as `address.city` or `items.0.sku`.
    pub(crate) fn parse(path: &str) -> Result<FieldPath> {
        let segments = parse_segments(path, false)?;
        Ok(match segments.as_slice() {
            [only] if only == "id" => FieldPath::Id,
            [only] if only == "createdAt" => FieldPath::CreatedAt,
            [only] if only == "updatedAt" => FieldPath::UpdatedAt,
            [only] if only == "version" => FieldPath::Version,
            _ => FieldPath::Body(segments),
        })
    }

    /// Parses a path relative to an array element (inside [`Filter::AnyElement`]): always a
    /// body path, `""` being the element itself, and it may start with an index.
    ///
    /// [`Filter::AnyElement`]: crate::Filter::AnyElement
    pub(crate) fn parse_relative(path: &str) -> Result<FieldPath> {
        if path.is_empty() {
            return Ok(FieldPath::Body(Vec::new()));
        }
        Ok(FieldPath::Body(parse_segments(path, true)?))
    }

    /// The body segments, or `None` for a system field.
    pub(crate) fn body(&self) -> Option<&[String]> {
        match self {
            FieldPath::Body(segments) => Some(segments),
            _ => None,
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldPath::Id => f.write_str("id"),
            FieldPath::CreatedAt => f.write_str("createdAt"),
            FieldPath::UpdatedAt => f.write_str("updatedAt"),
            FieldPath::Version => f.write_str("version"),
            FieldPath::Body(segments) => f.write_str(&segments.join(".")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_names() {
        let check =
            |name: &str, ok: bool| assert_eq!(collection_name(name).is_ok(), ok, "{name:?}");
        check("posts", true);
        check("posts_2", true);
        check("Posts", false);
        check("_posts", false);
        check("9posts", false);
        check("po\"sts", false);
        check("po.sts", false);
        check("sqlite_x", false);
        check(&"a".repeat(33), false);
        check(&"a".repeat(32), true);
    }

    #[test]
    fn paths() {
        let check =
            |path: &str, ok: bool| assert_eq!(FieldPath::parse(path).is_ok(), ok, "{path:?}");
        check("a", true);
        check("a.b.c", true);
        check("", false);
        check(".", false);
        check("a.", false);
        check(".a", false);
        check("a..b", false);
        check("$.a", false);
        check("a'b", false);
        check("a\"b", false);
        check("a[0]", false);
        check("a.0", true);
        check("a.0.b.12", true);
        check("0.a", false);
        check("a.01", false);
        check("a.-1", false);
        check("a.1234567890", false);
        check("a.0x", false);
        assert!(FieldPath::parse_relative("0.a").is_ok());
        assert_eq!(
            FieldPath::parse_relative("").unwrap(),
            FieldPath::Body(Vec::new())
        );
        assert_eq!(
            FieldPath::parse_relative("id").unwrap(),
            FieldPath::Body(vec!["id".into()])
        );
        check(&["a"; 9].join("."), false);
        check(&"a".repeat(300), false);
        assert_eq!(FieldPath::parse("id").unwrap(), FieldPath::Id);
        assert_eq!(FieldPath::parse("a.id").unwrap().to_string(), "a.id");
    }

    #[test]
    fn index_names_do_not_collide() {
        assert_ne!(index_ident("a", "b_c"), index_ident("a_b", "c"));
    }
}
