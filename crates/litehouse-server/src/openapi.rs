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
use utoipa::{Modify, OpenApi, ToSchema};

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
    /// Dotted path, e.g. `address.city`.
    path: String,
    #[serde(rename = "type")]
    field_type: FieldTypeSchema,
}

/// An index: 1 to 8 typed fields, optionally unique.
#[derive(Serialize, ToSchema)]
pub(crate) struct IndexSchema {
    name: String,
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
    path: String,
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
pub(crate) struct CreateCollectionSchema {
    /// Letters, digits and `_`, starting with a letter.
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
