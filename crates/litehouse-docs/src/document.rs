//! Documents: the stored shape, body checks, timestamps and JSON merge patch.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::names::{FieldPath, SYSTEM_KEYS};

/// Deepest nesting accepted in a document body.
pub const MAX_DOCUMENT_DEPTH: usize = 32;

/// A stored document: server-assigned fields plus the JSON body.
///
/// [`Document::to_json`] gives the body with `id`, `createdAt`, `updatedAt` and `version`
/// added at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Document {
    /// UUIDv7, lowercase, hyphenated; sorts by creation time.
    pub id: String,
    /// Creation time, RFC 3339 UTC with microseconds.
    pub created_at: String,
    /// Time of the last write, same format.
    pub updated_at: String,
    /// 1 on create, +1 on every write.
    pub version: i64,
    /// The body, without the system fields.
    pub body: Map<String, Json>,
}

impl Document {
    /// The body with the system fields added, as clients see it.
    ///
    /// ```
    /// # use litehouse_docs::Document;
    /// # let doc = Document::from_parts("0190", "t", "t", 1, serde_json::json!({"a": 1}).as_object().unwrap().clone());
    /// let json = doc.to_json();
    /// assert_eq!(json["a"], 1);
    /// assert_eq!(json["version"], 1);
    /// ```
    pub fn to_json(&self) -> Json {
        let mut object = self.body.clone();
        object.insert("id".into(), Json::String(self.id.clone()));
        object.insert("createdAt".into(), Json::String(self.created_at.clone()));
        object.insert("updatedAt".into(), Json::String(self.updated_at.clone()));
        object.insert("version".into(), Json::from(self.version));
        Json::Object(object)
    }

    /// Builds a document from its parts (for [`Store::import`](crate::Store::import) and
    /// tests). The body is not checked here; `import` checks it.
    pub fn from_parts(
        id: impl Into<String>,
        created_at: impl Into<String>,
        updated_at: impl Into<String>,
        version: i64,
        body: Map<String, Json>,
    ) -> Document {
        Document {
            id: id.into(),
            created_at: created_at.into(),
            updated_at: updated_at.into(),
            version,
            body,
        }
    }

    /// The value at `path`, system fields included; `None` when missing.
    pub(crate) fn value_at(&self, path: &FieldPath) -> Option<Json> {
        match path {
            FieldPath::Id => Some(Json::String(self.id.clone())),
            FieldPath::CreatedAt => Some(Json::String(self.created_at.clone())),
            FieldPath::UpdatedAt => Some(Json::String(self.updated_at.clone())),
            FieldPath::Version => Some(Json::from(self.version)),
            FieldPath::Body(segments) => body_value(&self.body, segments).cloned(),
        }
    }

    /// Reads a stored row back.
    pub(crate) fn from_row(
        id: String,
        doc: &str,
        created_at: String,
        updated_at: String,
        version: i64,
    ) -> Result<Document> {
        let body = match serde_json::from_str(doc) {
            Ok(Json::Object(body)) => body,
            Ok(_) => return Err(Error::corrupt(format!("document {id} is not an object"))),
            Err(err) => return Err(Error::corrupt(format!("document {id}: {err}"))),
        };
        Ok(Document {
            id,
            created_at,
            updated_at,
            version,
            body: normalize_numbers(body),
        })
    }
}

/// Walks `segments` through nested objects.
pub(crate) fn body_value<'a>(body: &'a Map<String, Json>, segments: &[String]) -> Option<&'a Json> {
    let (first, rest) = segments.split_first()?;
    let mut value = body.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// Checks a body for input and drops the system keys, which the server owns.
///
/// Refused: non-objects, NUL characters (PostgreSQL's jsonb cannot store them), integers
/// outside the signed 64-bit range (SQLite would turn them into floats), and nesting deeper
/// than [`MAX_DOCUMENT_DEPTH`].
pub(crate) fn check_body(body: Json) -> Result<Map<String, Json>> {
    let Json::Object(mut object) = body else {
        return Err(Error::InvalidDocument {
            reason: "a document must be a JSON object".into(),
        });
    };
    for key in SYSTEM_KEYS {
        object.remove(key);
    }
    for (key, value) in &object {
        check_key(key)?;
        check_value(value, 1)?;
    }
    Ok(object)
}

fn check_key(key: &str) -> Result<()> {
    if key.contains('\0') {
        return Err(Error::InvalidDocument {
            reason: "keys must not contain NUL".into(),
        });
    }
    Ok(())
}

fn check_value(value: &Json, depth: usize) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidDocument {
            reason: reason.into(),
        })
    };
    if depth > MAX_DOCUMENT_DEPTH {
        return bad("the document is nested too deeply");
    }
    match value {
        Json::String(text) if text.contains('\0') => bad("strings must not contain NUL"),
        Json::Number(number) if number.is_u64() && number.as_i64().is_none() => {
            bad("integers must fit in a signed 64-bit integer")
        }
        Json::Array(items) => items
            .iter()
            .try_for_each(|item| check_value(item, depth + 1)),
        Json::Object(object) => object.iter().try_for_each(|(key, item)| {
            check_key(key)?;
            check_value(item, depth + 1)
        }),
        _ => Ok(()),
    }
}

/// PostgreSQL renders numbers in its own way (`1e2` comes back as `100`); parsing every
/// number back through f64 when it is not an integer gives one in-memory form on both engines.
fn normalize_numbers(body: Map<String, Json>) -> Map<String, Json> {
    body.into_iter()
        .map(|(key, value)| (key, normalize_value(value)))
        .collect()
}

fn normalize_value(value: Json) -> Json {
    match value {
        Json::Number(number) if !number.is_i64() => number
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number),
        Json::Array(items) => Json::Array(items.into_iter().map(normalize_value).collect()),
        Json::Object(object) => Json::Object(normalize_numbers(object)),
        other => other,
    }
}

/// Applies an RFC 7386 JSON merge patch to `target`.
pub(crate) fn merge_patch(target: &mut Json, patch: &Json) {
    let Json::Object(patch_object) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Json::Object(Map::new());
    }
    if let Json::Object(target_object) = target {
        for (key, value) in patch_object {
            if value.is_null() {
                target_object.remove(key);
            } else {
                merge_patch(
                    target_object.entry(key.clone()).or_insert(Json::Null),
                    value,
                );
            }
        }
    }
}

/// The current time as RFC 3339 UTC with microseconds, e.g. `2026-11-22T18:30:00.123456Z`.
pub(crate) fn now_timestamp() -> String {
    format_timestamp(jiff::Timestamp::now())
}

/// Always six fractional digits, so timestamps sort as text in time order on both engines.
fn format_timestamp(time: jiff::Timestamp) -> String {
    time.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// True for `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`.
pub(crate) fn is_rfc3339_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let fixed = bytes.len() >= 20
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && bytes[10] == b'T'
        && digits(11..13)
        && bytes[13] == b':'
        && digits(14..16)
        && bytes[16] == b':'
        && digits(17..19);
    if !fixed || bytes.last() != Some(&b'Z') {
        return false;
    }
    match &bytes[19..bytes.len() - 1] {
        [] => true,
        [b'.', fraction @ ..] => {
            (1..=9).contains(&fraction.len()) && fraction.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps() {
        let at = |seconds, micros| jiff::Timestamp::new(seconds, micros * 1000).unwrap();
        assert_eq!(format_timestamp(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_timestamp(at(1_709_210_096, 7)),
            "2024-02-29T12:34:56.000007Z"
        );
        assert!(is_rfc3339_utc(&now_timestamp()));
        assert!(is_rfc3339_utc("2026-01-02T03:04:05Z"));
        assert!(!is_rfc3339_utc("2026-01-02 03:04:05Z"));
        assert!(!is_rfc3339_utc("2026-01-02T03:04:05+01:00"));
        assert!(!is_rfc3339_utc("2026-01-02T03:04:05.Z"));
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let check = |target: Json, patch: Json, expected: Json| {
            let mut target = target;
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected);
        };
        check(json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"}));
        check(
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        );
        check(json!({"a": "b"}), json!({"a": null}), json!({}));
        check(
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        );
        check(
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        );
        check(
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        );
        check(
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        );
        check(
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        );
    }

    #[test]
    fn bodies_are_checked() {
        assert!(check_body(json!([1])).is_err());
        assert!(check_body(json!({"a": "x\u{0}"})).is_err());
        assert!(check_body(json!({"a": u64::MAX})).is_err());
        let body = check_body(json!({"id": "x", "version": 9, "a": 1})).unwrap();
        assert_eq!(Json::Object(body), json!({"a": 1}));
    }
}
