//! `litehouse.Store`: the JSON document store (SQLite through the engine, or PostgreSQL) for
//! Python. Specs, documents, filters and queries cross as Python dicts in the store's JSON forms.

use std::future::Future;
use std::path::PathBuf;

use litehouse_docs::{CollectionSpec, Error, Filter, PostgresConfig, Query, Store};
use pyo3::prelude::*;

use crate::errors::to_py_err;
use crate::json;

/// A document store.
#[pyclass(name = "Store", module = "litehouse._litehouse", frozen)]
#[derive(Debug)]
pub(crate) struct PyStore {
    store: Store,
}

/// The Python exception for a store error: engine errors keep their own classes; the store's
/// own go by what they mean (not found, conflict, invalid input).
fn store_err(err: Error) -> PyErr {
    if let Error::Sqlite(engine) = err {
        return to_py_err(engine);
    }
    Python::attach(|py| {
        let class = if err.is_not_found() {
            "NotFoundError"
        } else if err.is_conflict() {
            "ConflictError"
        } else if err.is_invalid_input() {
            "InvalidInputError"
        } else if err.is_busy() {
            "BusyError"
        } else {
            "DatabaseError"
        };
        let build = || -> PyResult<PyErr> {
            let exception = py
                .import("litehouse.errors")?
                .getattr(class)?
                .call1((err.to_string(),))?;
            exception.setattr("conflicting_id", err.conflicting_id())?;
            exception.setattr("index", err.index())?;
            Ok(PyErr::from_value(exception))
        };
        build().unwrap_or_else(|failed| failed)
    })
}

fn body(value: &Bound<'_, PyAny>) -> PyResult<serde_json::Value> {
    Ok(json::from_python::<serde_json::Value>(Some(value), "document")?.unwrap_or_default())
}

/// Runs a store future to completion on the binding's runtime, without the GIL.
fn run<T: Send>(
    py: Python<'_>,
    work: impl Future<Output = Result<T, Error>> + Send,
) -> PyResult<T> {
    let runtime = pyo3_async_runtimes::tokio::get_runtime();
    py.detach(|| runtime.block_on(work)).map_err(store_err)
}

#[pymethods]
impl PyStore {
    /// Opens a store on the SQLite file at `path` (through a litehouse engine).
    #[staticmethod]
    fn open_sqlite(py: Python<'_>, path: PathBuf) -> PyResult<PyStore> {
        let store = run(py, Store::open_sqlite(path))?;
        Ok(PyStore { store })
    }

    /// Opens a store in schema `schema` of the PostgreSQL database at `url`.
    #[staticmethod]
    #[pyo3(signature = (url, *, schema = None, pool_size = None))]
    fn open_postgres(
        py: Python<'_>,
        url: String,
        schema: Option<String>,
        pool_size: Option<usize>,
    ) -> PyResult<PyStore> {
        let defaults = PostgresConfig::default();
        let config = PostgresConfig {
            url,
            schema: schema.unwrap_or(defaults.schema),
            pool_size: pool_size.unwrap_or(defaults.pool_size),
        };
        let store = run(py, Store::open_postgres_with(config))?;
        Ok(PyStore { store })
    }

    /// "sqlite" or "postgres".
    #[getter]
    fn engine(&self) -> &'static str {
        self.store.engine()
    }

    /// Creates a collection; `spec` is a dict like
    /// `{"indexes": [{"name": "by_age", "fields": [{"path": "age", "type": "number"}]}]}`.
    #[pyo3(signature = (collection, spec = None))]
    fn create_collection(
        &self,
        py: Python<'_>,
        collection: &str,
        spec: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let spec: CollectionSpec = json::from_python(spec, "collection spec")?.unwrap_or_default();
        run(py, self.store.create_collection(collection, spec))
    }

    /// Every collection with its spec.
    fn list_collections(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let collections = run(py, self.store.list_collections())?;
        json::to_python(py, &collections)
    }

    /// One collection with its spec.
    fn get_collection(&self, py: Python<'_>, collection: &str) -> PyResult<Py<PyAny>> {
        let info = run(py, self.store.get_collection(collection))?;
        json::to_python(py, &info)
    }

    /// Drops a collection and its documents.
    fn drop_collection(&self, py: Python<'_>, collection: &str) -> PyResult<()> {
        run(py, self.store.drop_collection(collection))
    }

    /// Creates a document; returns it with `id`, `createdAt`, `updatedAt` and `version`.
    fn create(
        &self,
        py: Python<'_>,
        collection: &str,
        document: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let document = body(document)?;
        let created = run(py, self.store.create(collection, document))?;
        json::to_python(py, &created)
    }

    /// Creates several documents, all or none.
    fn create_many(
        &self,
        py: Python<'_>,
        collection: &str,
        documents: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let documents = documents
            .try_iter()?
            .map(|document| body(&document?))
            .collect::<PyResult<Vec<_>>>()?;
        let created = run(py, self.store.create_many(collection, documents))?;
        json::to_python(py, &created)
    }

    /// The document `id`; raises `NotFoundError` when there is none.
    fn get(&self, py: Python<'_>, collection: &str, id: &str) -> PyResult<Py<PyAny>> {
        let document = run(py, self.store.get(collection, id))?;
        json::to_python(py, &document)
    }

    /// Replaces the body of document `id` (optionally only at `expected_version`).
    #[pyo3(signature = (collection, id, document, expected_version = None))]
    fn replace(
        &self,
        py: Python<'_>,
        collection: &str,
        id: &str,
        document: &Bound<'_, PyAny>,
        expected_version: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let document = body(document)?;
        let replaced = run(
            py,
            self.store
                .replace(collection, id, document, expected_version),
        )?;
        json::to_python(py, &replaced)
    }

    /// Applies an RFC 7386 merge patch to document `id`.
    #[pyo3(signature = (collection, id, patch, expected_version = None))]
    fn patch(
        &self,
        py: Python<'_>,
        collection: &str,
        id: &str,
        patch: &Bound<'_, PyAny>,
        expected_version: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let patch = body(patch)?;
        let patched = run(
            py,
            self.store.patch(collection, id, patch, expected_version),
        )?;
        json::to_python(py, &patched)
    }

    /// Deletes document `id` (and what its references cascade to); returns what was deleted.
    #[pyo3(signature = (collection, id, expected_version = None))]
    fn delete(
        &self,
        py: Python<'_>,
        collection: &str,
        id: &str,
        expected_version: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let report = run(py, self.store.delete(collection, id, expected_version))?;
        json::to_python(py, &report)
    }

    /// One page of documents; `query` is the store's query as a dict
    /// (`{"filter": ..., "sort": [...], "paging": ..., "count": true}`), None for the first page.
    #[pyo3(signature = (collection, query = None))]
    fn find(
        &self,
        py: Python<'_>,
        collection: &str,
        query: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let query: Query = json::from_python(query, "query")?.unwrap_or_default();
        let page = run(py, self.store.find(collection, &query))?;
        json::to_python(py, &page)
    }

    /// How many documents match `filter` (all when None).
    #[pyo3(signature = (collection, filter = None))]
    fn count(
        &self,
        py: Python<'_>,
        collection: &str,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<u64> {
        let filter: Option<Filter> = json::from_python(filter, "filter")?;
        run(py, self.store.count(collection, filter))
    }
}
