//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations by
//! `utoipa-axum`'s router, so a route cannot exist without its documentation.
//!
//! The schema types here describe the JSON the handlers produce; they exist only for the
//! document, which is why they are never constructed.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

/// The document's fixed parts: title, security scheme and shared schemas.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "litehouse",
        description = "JSON document collections over SQLite or PostgreSQL. Every error has the shape {status, code, message, details}. Data routes are open on loopback unless the server runs with --require-token; /api/debug routes need the admin token.",
    ),
    modifiers(&BearerAuth),
    paths(
        crate::debug::stats,
        crate::debug::flush,
        crate::debug::maintenance,
        crate::debug::logs,
        crate::debug::explain,
    ),
    components(schemas(ErrorBody, DocumentSchema, ListEnvelope, CollectionSchema))
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error: `{status, code, message, details}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// The HTTP status, repeated.
    status: u16,
    /// Machine-readable code, e.g. `invalid_filter`, `unique_violation`.
    code: String,
    /// Human-readable message.
    message: String,
    /// Per-field detail, e.g. `{param, reason}` or `{conflictingId}`.
    #[schema(value_type = Object)]
    details: Json,
}

/// A document: its body's fields plus the system fields.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DocumentSchema {
    /// UUIDv7.
    id: String,
    /// RFC 3339 UTC.
    created_at: String,
    /// RFC 3339 UTC.
    updated_at: String,
    /// 1 on create, +1 per write; the ETag.
    version: i64,
}

/// One page of documents (PocketBase envelope).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListEnvelope {
    items: Vec<DocumentSchema>,
    /// The page number, or null with cursor paging.
    page: Option<u64>,
    per_page: u64,
    /// Null with skipTotal=true.
    total_items: Option<u64>,
    /// Null with skipTotal=true.
    total_pages: Option<u64>,
    /// Pass as `cursor` for the next page; null on the last page.
    next_cursor: Option<String>,
}

/// Documents created by a batch POST.
#[derive(Serialize, ToSchema)]
pub(crate) struct BatchCreated {
    items: Vec<DocumentSchema>,
}

/// What a delete removed or set to null through reference rules, by collection.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeleteReportSchema {
    deleted: BTreeMap<String, u64>,
    nulled: BTreeMap<String, u64>,
}

/// The declared type of an indexed field.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum FieldTypeSchema {
    String,
    Number,
    Bool,
    Datetime,
}

/// One field of an index.
#[derive(Serialize, ToSchema)]
pub(crate) struct IndexFieldSchema {
    /// Dotted path, e.g. `address.city`: 1 to 8 segments of ASCII letters, digits and `_`.
    #[schema(
        pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$",
        max_length = 256
    )]
    path: String,
    #[serde(rename = "type")]
    field_type: FieldTypeSchema,
}

/// An index: 1 to 8 typed fields, optionally unique.
#[derive(Serialize, ToSchema)]
pub(crate) struct IndexSchema {
    /// Like a collection name, at most 24 bytes.
    #[schema(pattern = "^[a-z][a-z0-9_]*$", max_length = 24)]
    name: String,
    #[schema(min_items = 1, max_items = 8)]
    fields: Vec<IndexFieldSchema>,
    #[serde(default)]
    unique: bool,
}

/// What happens to referencing documents on delete.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) enum OnDeleteSchema {
    Cascade,
    Restrict,
    SetNull,
}

/// A reference: the string at `path` is the id of a document in `collection`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReferenceSchema {
    /// Dotted path of the referencing field.
    #[schema(
        pattern = "^[A-Za-z_][A-Za-z0-9_]{0,63}(\\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}$",
        max_length = 256
    )]
    path: String,
    /// The referenced collection (this one, or one that exists).
    #[schema(pattern = "^[a-z][a-z0-9_]*$", max_length = 32)]
    collection: String,
    on_delete: OnDeleteSchema,
}

/// A collection.
#[derive(Serialize, ToSchema)]
pub(crate) struct CollectionSchema {
    name: String,
    indexes: Vec<IndexSchema>,
    references: Vec<ReferenceSchema>,
}

/// The body of `POST /api/collections`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCollectionSchema {
    /// A lowercase ASCII letter, then lowercase letters, digits or `_` (at most 32 bytes;
    /// `sqlite_...` is reserved).
    #[schema(pattern = "^[a-z][a-z0-9_]*$", max_length = 32)]
    name: String,
    #[serde(default)]
    indexes: Vec<IndexSchema>,
    #[serde(default)]
    references: Vec<ReferenceSchema>,
}

/// Every collection.
#[derive(Serialize, ToSchema)]
pub(crate) struct CollectionList {
    items: Vec<CollectionSchema>,
}

/// Health and readiness answers.
#[derive(Serialize, ToSchema)]
pub(crate) struct StatusSchema {
    status: String,
    /// `sqlite` or `postgres` (readiness only).
    engine: Option<String>,
}

/// `{collection}` in a route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct CollectionPath {
    /// Collection name: a lowercase ASCII letter, then lowercase letters, digits or `_`
    /// (at most 32 bytes; `sqlite_...` is reserved).
    #[param(pattern = "^[a-z][a-z0-9_]*$", max_length = 32)]
    collection: String,
}

/// `{collection}` and `{id}` in a route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct DocumentPath {
    /// Collection name: a lowercase ASCII letter, then lowercase letters, digits or `_`
    /// (at most 32 bytes; `sqlite_...` is reserved).
    #[param(pattern = "^[a-z][a-z0-9_]*$", max_length = 32)]
    collection: String,
    /// Document id (any other id is 404).
    id: String,
}

/// `{collection}` and `{name}` in an index route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct IndexPath {
    /// Collection name: a lowercase ASCII letter, then lowercase letters, digits or `_`
    /// (at most 32 bytes; `sqlite_...` is reserved).
    #[param(pattern = "^[a-z][a-z0-9_]*$", max_length = 32)]
    collection: String,
    /// Index name, like a collection name but at most 24 bytes.
    #[param(pattern = "^[a-z][a-z0-9_]*$", max_length = 24)]
    name: String,
}

/// The `If-Match` header of a write.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub(crate) struct IfMatchHeader {
    /// An ETag from a previous answer, e.g. `"3"` (or `W/"3"`; `*` or empty for any
    /// version); 412 when the document moved on.
    #[param(rename = "If-Match", pattern = "^(|\\*|(W/)?\"[0-9]{1,18}\")$")]
    if_match: Option<String>,
}

/// The `If-None-Match` header of a read.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub(crate) struct IfNoneMatchHeader {
    /// ETags the client holds, e.g. `"3"` or `"2", "3"` (or `*`); 304 when the document
    /// is at one of them.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

/// The error answers every data route may give: 401/403 (tokens) and 503 (overload).
#[derive(IntoResponses)]
pub(crate) enum DataErrors {
    /// No token, or a token that is not valid (data routes: only with --require-token).
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token's scope does not allow this.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Busy database, concurrency limit or request timeout.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
}

/// The error answers every `/api/debug` route may give.
#[derive(IntoResponses)]
pub(crate) enum AdminErrors {
    /// No admin token, or a token that is not valid.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The token is not an admin token.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Busy database, concurrency limit or request timeout.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
}

/// The error answer of open routes: the server is at its concurrency limit.
#[derive(IntoResponses)]
pub(crate) enum OpenErrors {
    /// Concurrency limit, request timeout or (readiness) a database that does not answer.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(ErrorBody),
}

/// The answer to `POST /docs`: the document, or `{items}` for a batch.
pub(crate) struct Created;

impl utoipa::PartialSchema for Created {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::AnyOfBuilder;
        AnyOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("DocumentSchema"))
            .item(utoipa::openapi::Ref::from_schema_name("BatchCreated"))
            .description(Some(
                "The document (one object sent) or {items} (an array sent)",
            ))
            .into()
    }
}

impl ToSchema for Created {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            "DocumentSchema".into(),
            <DocumentSchema as utoipa::PartialSchema>::schema(),
        ));
        schemas.push((
            "BatchCreated".into(),
            <BatchCreated as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// The body of `POST /docs`: a JSON object, or an array of them created all or none.
pub(crate) struct CreateBody;

impl utoipa::PartialSchema for CreateBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder};
        AnyOfBuilder::new()
            .item(ObjectBuilder::new())
            .item(ArrayBuilder::new().items(ObjectBuilder::new()).max_items(Some(1000)))
            .description(Some("One document body, or an array of bodies (a batch, all or none; at most --max-batch)"))
            .into()
    }
}

impl ToSchema for CreateBody {}

/// Final touches to the generated document: parameters are never `null` (an absent
/// optional parameter is simply not sent), and links from what a POST creates to the
/// operations on it.
pub(crate) fn finish(document: &mut Json, config: &crate::config::ServerConfig) {
    not_null_parameters(document);
    add_links(document);
    let limits = format!(
        " Limits of this server: request bodies up to {} bytes and batches up to {} documents \
         (413 above); list filters up to {} comparisons nested {} deep and perPage up to {} \
         (400 above); reads and request bodies answered 503 after {} s; {} requests at once, \
         503 with Retry-After beyond.",
        config.body_limit,
        config.max_batch,
        config.max_filter_clauses,
        config.max_filter_depth,
        config.max_per_page,
        config.request_timeout.as_secs_f64(),
        config.max_concurrent_requests.max(1),
    );
    if let Some(Json::String(description)) = document.pointer_mut("/info/description") {
        description.push_str(&limits);
    }
}

/// `Option<T>` parameters come out as `type: [T, "null"]`; HTTP has no null parameter.
fn not_null_parameters(document: &mut Json) {
    let Some(paths) = document.get_mut("paths").and_then(Json::as_object_mut) else {
        return;
    };
    for operation in paths.values_mut().filter_map(Json::as_object_mut) {
        for parameters in operation
            .values_mut()
            .filter_map(|operation| operation.get_mut("parameters"))
            .filter_map(Json::as_array_mut)
        {
            for schema in parameters.iter_mut().filter_map(|p| p.get_mut("schema")) {
                if let Some(types) = schema.get_mut("type").and_then(Json::as_array_mut) {
                    types.retain(|kind| kind != "null");
                    if types.len() == 1 {
                        let kind = types.remove(0);
                        schema["type"] = kind;
                    }
                }
            }
        }
    }
}

/// Adds OpenAPI links, so clients and stateful fuzzers can follow a created collection,
/// document or index to the operations on it.
fn add_links(document: &mut Json) {
    let link = |operation: &str, parameters: Json| serde_json::json!({ "operationId": operation, "parameters": parameters });
    let collection = serde_json::json!({ "collection": "$response.body#/name" });
    let doc = serde_json::json!({
        "collection": "$request.path.collection",
        "id": "$response.body#/id",
    });
    let index = serde_json::json!({
        "collection": "$request.path.collection",
        "name": "$request.body#/name",
    });
    let links = [
        (
            "/api/collections",
            "post",
            serde_json::json!({
                "GetCollection": link("getCollection", collection.clone()),
                "DropCollection": link("dropCollection", collection.clone()),
                "ListDocuments": link("listDocuments", collection.clone()),
                "CreateDocuments": link("createDocuments", collection.clone()),
                "AddIndex": link("addIndex", collection),
            }),
        ),
        (
            "/api/collections/{collection}/docs",
            "post",
            serde_json::json!({
                "GetDocument": link("getDocument", doc.clone()),
                "ReplaceDocument": link("replaceDocument", doc.clone()),
                "PatchDocument": link("patchDocument", doc.clone()),
                "DeleteDocument": link("deleteDocument", doc),
            }),
        ),
        (
            "/api/collections/{collection}/indexes",
            "post",
            serde_json::json!({ "DropIndex": link("dropIndex", index) }),
        ),
    ];
    for (path, method, links) in links {
        if let Some(created) = document
            .pointer_mut(&format!(
                "/paths/{}/{method}/responses/201",
                path.replace('/', "~1")
            ))
            .and_then(Json::as_object_mut)
        {
            created.insert("links".into(), links);
        }
    }
}
