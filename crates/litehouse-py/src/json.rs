//! Rust values that serialize to JSON, handed to Python as dicts and lists via `json.loads`.

use pyo3::prelude::*;

/// `value` as the Python object `json.loads` makes of its JSON text.
pub(crate) fn to_python(py: Python<'_>, value: &impl serde::Serialize) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|err| pyo3::exceptions::PyValueError::new_err(err.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// A Python dict (or None) as a JSON object, via `json.dumps`.
pub(crate) fn object_from_python(
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    let Some(value) = value.filter(|value| !value.is_none()) else {
        return Ok(serde_json::Map::new());
    };
    let py = value.py();
    let text: String = py
        .import("json")?
        .call_method1("dumps", (value,))?
        .extract()?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        _ => Err(pyo3::exceptions::PyTypeError::new_err(
            "fields must be a dict",
        )),
    }
}
