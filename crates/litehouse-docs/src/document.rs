//! Documents: the stored shape, body checks, timestamps and JSON merge patch.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::error::{Error, Result};
use crate::limits::{StoreConfig, dispose};
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

    /// [`Document::to_json`] without copying the body.
    ///
    /// ```
    /// # use litehouse_docs::Document;
    /// let document = Document::from_parts("id1", "t0", "t0", 2, serde_json::Map::new());
    /// assert_eq!(document.into_json()["version"], 2);
    /// ```
    pub fn into_json(self) -> Json {
        let mut object = self.body;
        object.insert("id".into(), Json::String(self.id));
        object.insert("createdAt".into(), Json::String(self.created_at));
        object.insert("updatedAt".into(), Json::String(self.updated_at));
        object.insert("version".into(), Json::from(self.version));
        Json::Object(object)
    }

    /// [`Document::to_json`]'s text, written straight from the parts (the change log stores
    /// every written document this way, so the body is not copied into a new map first).
    pub(crate) fn json_text(&self) -> Result<String> {
        serde_json::to_string(&AsJson(self)).map_err(|err| Error::corrupt(err.to_string()))
    }

    /// [`Document::json_text`] from `body_text`, the body's text as [`check_body_text`]
    /// wrote it (the same map, serialised the same way): the system fields are appended to
    /// it instead of the whole body being serialised again. Any other text, or a body holding
    /// a system key, is serialised from the parts.
    pub(crate) fn json_text_over(&self, body_text: &str) -> Result<String> {
        let open = body_text
            .strip_suffix('}')
            .filter(|open| open.starts_with('{'));
        let Some(open) =
            open.filter(|_| !SYSTEM_KEYS.iter().any(|key| self.body.contains_key(*key)))
        else {
            return self.json_text();
        };
        let string =
            |text: &str| serde_json::to_string(text).map_err(|err| Error::corrupt(err.to_string()));
        let mut text = String::with_capacity(body_text.len() + 112 + self.id.len());
        text.push_str(open);
        if !self.body.is_empty() {
            text.push(',');
        }
        text.push_str("\"id\":");
        text.push_str(&string(&self.id)?);
        text.push_str(",\"createdAt\":");
        text.push_str(&string(&self.created_at)?);
        text.push_str(",\"updatedAt\":");
        text.push_str(&string(&self.updated_at)?);
        text.push_str(",\"version\":");
        text.push_str(&self.version.to_string());
        text.push('}');
        Ok(text)
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
    rest.iter().try_fold(body.get(first)?, |value, segment| {
        crate::names::json_step(value, segment)
    })
}

/// Checks a body for input and drops the system keys, which the server owns.
///
/// Refused: non-objects, NUL characters (PostgreSQL's jsonb cannot store them), integers
/// outside the signed 64-bit range (SQLite would turn them into floats), and anything over
/// the limits of `config` (depth, keys, array length, size). A refused body is disposed of
/// without recursion, however deep it is.
pub(crate) fn check_body(body: Json, config: &StoreConfig) -> Result<Map<String, Json>> {
    check_body_text(body, config).map(|(body, _)| body)
}

/// [`check_body`], also returning the body's compact JSON text, which is what gets stored:
/// a new document is serialised once.
pub(crate) fn check_body_text(
    body: Json,
    config: &StoreConfig,
) -> Result<(Map<String, Json>, String)> {
    let Json::Object(mut object) = body else {
        dispose(body);
        return Err(Error::InvalidDocument {
            reason: "a document must be a JSON object".into(),
        });
    };
    for key in SYSTEM_KEYS {
        object.remove(key);
    }
    let body = Json::Object(object);
    if let Err(err) = config.check_shape(&body) {
        dispose(body);
        return Err(err);
    }
    let Json::Object(object) = body else {
        return Err(Error::corrupt("a checked body is not an object"));
    };
    // The depth is checked, so the recursive normalisation and serialisation are safe.
    let object = normalize_numbers(object);
    let text = serde_json::to_string(&object).map_err(|err| Error::corrupt(err.to_string()))?;
    config.check_size(text.len())?;
    Ok((object, text))
}

/// Checks every body of a batch; on the first refusal, disposes of all of them.
pub(crate) fn check_bodies(
    bodies: Vec<Json>,
    config: &StoreConfig,
) -> Result<Vec<(Map<String, Json>, String)>> {
    let mut checked = Vec::with_capacity(bodies.len());
    let mut bodies = bodies.into_iter();
    for body in bodies.by_ref() {
        match check_body_text(body, config) {
            Ok(object) => checked.push(object),
            Err(err) => {
                bodies.for_each(dispose);
                return Err(err);
            }
        }
    }
    Ok(checked)
}

/// PostgreSQL renders numbers in its own way (`1e2` comes back as `100`); parsing every
/// number back through f64 when it is not an integer gives one in-memory form on both engines.
fn normalize_numbers(mut body: Map<String, Json>) -> Map<String, Json> {
    body.values_mut().for_each(normalize_value);
    body
}

/// Rewrites non-integers through f64, and -0.0 as 0.0: PostgreSQL's numeric has no negative
/// zero, so SQLite stores and returns 0.0 too. Recursive: only for values whose depth is
/// bounded (checked input, or text that serde_json parsed with its recursion limit).
fn normalize_value(value: &mut Json) {
    match value {
        Json::Number(number) if !number.is_i64() => {
            let normalized = number
                .as_f64()
                .map(|float| if float == 0.0 { 0.0 } else { float })
                .and_then(serde_json::Number::from_f64)
                .map_or(Json::Null, Json::Number);
            *value = normalized;
        }
        Json::Array(items) => items.iter_mut().for_each(normalize_value),
        Json::Object(object) => object.values_mut().for_each(normalize_value),
        _ => {}
    }
}

/// Applies an RFC 7386 JSON merge patch to `target`. Recursive: `patch` must have passed
/// [`StoreConfig::check_json`], which bounds its depth.
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

/// A stored row as read, its body still JSON text: lists answer with it without parsing
/// every body into a map and serialising it again.
#[derive(Debug)]
pub(crate) struct DocumentText {
    pub(crate) id: String,
    pub(crate) doc: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) version: i64,
    /// Whether `doc` is the text the store wrote (SQLite keeps it as written). PostgreSQL
    /// renders jsonb its own way, and its numbers go through [`Document::from_row`].
    pub(crate) as_written: bool,
}

impl DocumentText {
    /// The parsed document.
    pub(crate) fn to_document(&self) -> Result<Document> {
        Document::from_row(
            self.id.clone(),
            &self.doc,
            self.created_at.clone(),
            self.updated_at.clone(),
            self.version,
        )
    }

    /// [`Document::to_json`]'s value as text: the stored body with the system fields
    /// appended, without parsing it into a map. A stored body never holds a system key
    /// (input drops them), so no key repeats.
    pub(crate) fn into_json(self) -> Result<Box<serde_json::value::RawValue>> {
        let text = if self.as_written {
            let body = self.doc.trim();
            let inner = body
                .strip_prefix('{')
                .and_then(|body| body.strip_suffix('}'))
                .ok_or_else(|| Error::corrupt(format!("document {} is not an object", self.id)))?;
            let mut text = String::with_capacity(body.len() + self.id.len() + 120);
            text.push('{');
            text.push_str(inner);
            if !inner.trim().is_empty() {
                text.push(',');
            }
            let system = serde_json::to_string(&SystemFields {
                id: &self.id,
                created_at: &self.created_at,
                updated_at: &self.updated_at,
                version: self.version,
            })
            .map_err(|err| Error::corrupt(err.to_string()))?;
            // `system` is an object's text: its fields follow the body's.
            text.push_str(&system[1..]);
            text
        } else {
            self.to_document()?.json_text()?
        };
        // Checks the result is one JSON value: a corrupt stored body fails here.
        serde_json::value::RawValue::from_string(text)
            .map_err(|err| Error::corrupt(format!("document {}: {err}", self.id)))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SystemFields<'a> {
    id: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
    version: i64,
}

/// Serialises a [`Document`] as [`Document::to_json`] shapes it: the body's fields (a system
/// key in the body gives way to the real one) and the four system fields.
struct AsJson<'a>(&'a Document);

impl Serialize for AsJson<'_> {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let document = self.0;
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in &document.body {
            if !SYSTEM_KEYS.contains(&key.as_str()) {
                map.serialize_entry(key, value)?;
            }
        }
        map.serialize_entry("id", &document.id)?;
        map.serialize_entry("createdAt", &document.created_at)?;
        map.serialize_entry("updatedAt", &document.updated_at)?;
        map.serialize_entry("version", &document.version)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_text_is_to_json() {
        let body = json!({"b": [1, {"c": null}], "a": "x", "id": "spoofed"});
        let document = Document::from_parts(
            "0190",
            "2026-01-01T00:00:00.000000Z",
            "2026-01-02T00:00:00.000000Z",
            3,
            body.as_object().unwrap().clone(),
        );
        let text = document.json_text().unwrap();
        let parsed: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, document.to_json());
        assert_eq!(parsed["id"], "0190");
        assert_eq!(text.matches("\"id\"").count(), 1, "{text}");
    }

    #[test]
    fn json_text_over_the_body_text_is_json_text() {
        let config = StoreConfig::default();
        for body in [
            json!({}),
            json!({"b": [1, {"c": null}], "a": "x\"y", "n": 1.5e300, "z": {"id": 1}}),
            json!({"id": "spoofed", "version": 9, "t": "\u{2028}"}),
        ] {
            let (object, text) = check_body_text(body, &config).unwrap();
            let document = Document::from_parts(
                "01\"90",
                "2026-01-01T00:00:00.000000Z",
                "2026-01-02T00:00:00.000000Z",
                3,
                object,
            );
            assert_eq!(
                document.json_text_over(&text).unwrap(),
                document.json_text().unwrap()
            );
        }
        // A body that still holds a system key, or a text that is not its object, is
        // serialised from the parts.
        let spoofed = json!({"id": "spoofed", "a": 1});
        let document =
            Document::from_parts("x", "t0", "t0", 1, spoofed.as_object().unwrap().clone());
        let expected = document.json_text().unwrap();
        assert_eq!(
            document.json_text_over(&spoofed.to_string()).unwrap(),
            expected
        );
        assert_eq!(document.json_text_over("[]").unwrap(), expected);
    }

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
        let config = StoreConfig::default();
        assert!(check_body(json!([1]), &config).is_err());
        assert!(check_body(json!({"a": "x\u{0}"}), &config).is_err());
        assert!(check_body(json!({"k\u{0}": 1}), &config).is_err());
        assert!(check_body(json!({"a": u64::MAX}), &config).is_err());
        let body = check_body(json!({"id": "x", "version": 9, "a": 1}), &config).unwrap();
        assert_eq!(Json::Object(body), json!({"a": 1}));
    }
}
