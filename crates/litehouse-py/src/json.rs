//! Rust values that serialize to JSON, handed to Python as dicts and lists via `json.loads`.

use pyo3::prelude::*;

/// `value` as the Python object `json.loads` makes of its JSON text.
pub(crate) fn to_python(py: Python<'_>, value: &impl serde::Serialize) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A Python value (None gives `None`) deserialized through its JSON text (`json.dumps`);
/// `what` names it in the error.
pub(crate) fn from_python<T: serde::de::DeserializeOwned>(
    value: Option<&Bound<'_, PyAny>>,
    what: &str,
) -> PyResult<Option<T>> {
    let Some(value) = value.filter(|value| !value.is_none()) else {
        return Ok(None);
    };
    let text: String = value
        .py()
        .import("json")?
        .call_method1("dumps", (value,))?
        .extract()?;
    serde_json::from_str(&text).map(Some).map_err(|err| {
        crate::errors::to_py_err(litehouse::Error::Parameter {
            message: format!("invalid {what}: {err}"),
        })
    })
}

/// A Python dict (or None, an empty object) as a JSON object.
pub(crate) fn object_from_python(
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    match from_python::<serde_json::Value>(value, "fields")? {
        None => Ok(serde_json::Map::new()),
        Some(serde_json::Value::Object(object)) => Ok(object),
        Some(_) => Err(pyo3::exceptions::PyTypeError::new_err(
            "fields must be a dict",
        )),
    }
}
