//! Collection specs: typed indexes, unique indexes and references.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::{self, FieldPath};

/// Most indexes (declared plus reference indexes) per collection.
pub const MAX_INDEXES: usize = 32;

/// The declared type of an indexed path.
///
/// A value of another type (or a missing value) is invisible to the index: its typed
/// extraction is NULL. See the crate's query docs for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum FieldType {
    /// A JSON string, compared by Unicode code point.
    String,
    /// A JSON number, compared numerically.
    Number,
    /// A JSON boolean, `false < true`.
    Bool,
    /// A JSON string holding an RFC 3339 UTC timestamp (`2026-01-02T03:04:05Z`, optional
    /// fraction); compared as text, so store one fixed precision.
    Datetime,
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Datetime => "datetime",
        })
    }
}

/// One field of an index: a dotted path and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexField {
    /// Dotted path into the document, e.g. `address.city`.
    pub path: String,
    /// The declared type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
}

impl IndexField {
    /// A field of the given path and type.
    pub fn new(path: impl Into<String>, field_type: FieldType) -> IndexField {
        IndexField {
            path: path.into(),
            field_type,
        }
    }
}

/// A declared index over one or more typed fields.
///
/// ```
/// use litehouse_docs::{FieldType, IndexSpec};
/// let by_email = IndexSpec::unique("by_email", [("email", FieldType::String)]);
/// assert!(by_email.unique);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IndexSpec {
    /// The index name, unique in its collection; unique violations name it.
    pub name: String,
    /// The indexed fields, in order.
    pub fields: Vec<IndexField>,
    /// Whether two documents may share a value. Documents where any field is missing or of
    /// another type are never in conflict.
    #[serde(default)]
    pub unique: bool,
}

impl IndexSpec {
    /// A non-unique index.
    pub fn new<P: Into<String>>(
        name: impl Into<String>,
        fields: impl IntoIterator<Item = (P, FieldType)>,
    ) -> IndexSpec {
        IndexSpec {
            name: name.into(),
            fields: fields
                .into_iter()
                .map(|(path, field_type)| IndexField::new(path, field_type))
                .collect(),
            unique: false,
        }
    }

    /// A unique index.
    pub fn unique<P: Into<String>>(
        name: impl Into<String>,
        fields: impl IntoIterator<Item = (P, FieldType)>,
    ) -> IndexSpec {
        IndexSpec {
            unique: true,
            ..IndexSpec::new(name, fields)
        }
    }
}

/// What happens to referencing documents when the referenced document is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum OnDelete {
    /// Delete the referencing documents too (and theirs, transitively).
    Cascade,
    /// Refuse the delete with [`Error::Restricted`] naming a referencing document.
    Restrict,
    /// Set the referencing field to JSON `null`.
    SetNull,
}

/// A reference: the string at `path` is the id of a document in `collection`.
///
/// The path gets a string index automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReferenceSpec {
    /// The referencing path in this collection.
    pub path: String,
    /// The referenced collection (may be this one).
    pub collection: String,
    /// The delete rule.
    pub on_delete: OnDelete,
}

impl ReferenceSpec {
    /// A reference from `path` to documents of `collection`.
    pub fn new(
        path: impl Into<String>,
        collection: impl Into<String>,
        on_delete: OnDelete,
    ) -> ReferenceSpec {
        ReferenceSpec {
            path: path.into(),
            collection: collection.into(),
            on_delete,
        }
    }
}

/// The spec of a collection: its indexes and references. Stored with the collection.
///
/// ```
/// use litehouse_docs::{CollectionSpec, FieldType, IndexSpec, OnDelete, ReferenceSpec};
/// let spec = CollectionSpec {
///     indexes: vec![IndexSpec::new("by_age", [("age", FieldType::Number)])],
///     references: vec![ReferenceSpec::new("authorId", "users", OnDelete::Cascade)],
/// };
/// # let _ = spec;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSpec {
    /// Declared indexes.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
    /// References to other collections.
    #[serde(default)]
    pub references: Vec<ReferenceSpec>,
}

impl CollectionSpec {
    /// Checks names, paths, types and counts.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::InvalidSpec { reason };
        if self.indexes.len() + self.references.len() > MAX_INDEXES {
            return Err(bad(format!("at most {MAX_INDEXES} indexes and references")));
        }
        let mut names = std::collections::BTreeSet::new();
        for index in &self.indexes {
            names::index_name(&index.name)?;
            if !names.insert(index.name.as_str()) {
                return Err(bad(format!("index {:?} is declared twice", index.name)));
            }
            if index.fields.is_empty() || index.fields.len() > 8 {
                return Err(bad(format!("index {:?} needs 1 to 8 fields", index.name)));
            }
        }
        for reference in &self.references {
            names::collection_name(&reference.collection)?;
            let Some(segments) = FieldPath::parse(&reference.path)?
                .body()
                .map(<[String]>::to_vec)
            else {
                return Err(bad(format!(
                    "reference path {:?} is a system field",
                    reference.path
                )));
            };
            if segments.iter().any(|segment| names::is_index(segment)) {
                return Err(bad(format!(
                    "reference path {:?} addresses an array element",
                    reference.path
                )));
            }
        }
        // Every path has one type per collection, or filters and sorts could not pick one
        // extraction expression.
        self.path_types()?;
        Ok(())
    }

    /// The declared type of every path: index fields, references (string) and system fields.
    pub(crate) fn path_types(&self) -> Result<BTreeMap<FieldPath, FieldType>> {
        let mut types = BTreeMap::from([
            (FieldPath::Id, FieldType::String),
            (FieldPath::CreatedAt, FieldType::Datetime),
            (FieldPath::UpdatedAt, FieldType::Datetime),
            (FieldPath::Version, FieldType::Number),
        ]);
        let declared = self
            .indexes
            .iter()
            .flat_map(|index| {
                index
                    .fields
                    .iter()
                    .map(|field| (&field.path, field.field_type))
            })
            .chain(
                self.references
                    .iter()
                    .map(|reference| (&reference.path, FieldType::String)),
            );
        for (path, field_type) in declared {
            let parsed = FieldPath::parse(path)?;
            match types.insert(parsed, field_type) {
                Some(previous) if previous != field_type => {
                    return Err(Error::InvalidSpec {
                        reason: format!(
                            "path {path:?} is declared as both {previous} and {field_type}"
                        ),
                    });
                }
                _ => {}
            }
        }
        Ok(types)
    }
}

/// A collection and its spec, as listed by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CollectionInfo {
    /// The collection name.
    pub name: String,
    /// Its spec.
    pub spec: CollectionSpec,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_types_are_refused() {
        let spec = CollectionSpec {
            indexes: vec![
                IndexSpec::new("a", [("x", FieldType::String)]),
                IndexSpec::new("b", [("x", FieldType::Number)]),
            ],
            references: vec![],
        };
        assert!(matches!(spec.validate(), Err(Error::InvalidSpec { .. })));
    }

    #[test]
    fn spec_round_trips_as_json() {
        let spec = CollectionSpec {
            indexes: vec![IndexSpec::unique("u", [("a.b", FieldType::Datetime)])],
            references: vec![ReferenceSpec::new("owner", "users", OnDelete::SetNull)],
        };
        let text = serde_json::to_string(&spec).unwrap();
        assert!(text.contains("\"onDelete\":\"setNull\""), "{text}");
        assert_eq!(serde_json::from_str::<CollectionSpec>(&text).unwrap(), spec);
    }
}
