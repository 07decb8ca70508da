//! The conformance suite's expectations come from the library's in-memory evaluator
//! ([`Filter::matches`], [`SortOrder`]); these helpers adapt it to the tests' types table.

use std::collections::BTreeMap;

use litehouse_docs::{CollectionSpec, FieldType, Filter, IndexSpec, Sort, SortOrder, StoreConfig};
use serde_json::Value as Json;

/// Declared types by path, as in a collection spec.
pub(crate) type Types = BTreeMap<String, FieldType>;

/// Whether `doc` (with system fields) matches `filter`.
pub(crate) fn matches(doc: &Json, filter: &Filter) -> bool {
    filter.matches(doc)
}

/// A spec declaring `types`, one single-field index per path.
fn spec_of(types: &Types) -> CollectionSpec {
    CollectionSpec {
        indexes: types
            .iter()
            .enumerate()
            .map(|(position, (path, field_type))| {
                IndexSpec::new(format!("t{position}"), [(path.as_str(), *field_type)])
            })
            .collect(),
        ..CollectionSpec::default()
    }
}

/// Orders documents by `sort` plus the `id` tie-breaker, per QUERY.md.
pub(crate) fn sort_docs(docs: &mut [Json], sort: &[Sort], types: &Types) {
    let order = SortOrder::new(sort, &spec_of(types), &StoreConfig::default()).expect("valid sort");
    docs.sort_by(|a, b| order.compare(a, b));
}
