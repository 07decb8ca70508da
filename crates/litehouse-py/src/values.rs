//! Python values to SQLite values and back, parameters, and rows.
//!
//! Conversions happen on the Python thread that made the call, with the GIL held; what crosses
//! to the writer and reader threads is plain Rust data.

use litehouse::Value;
use litehouse::rusqlite::Statement;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// Statement parameters: positional (`?`, `?1`) or named (`:name`, `@name`, `$name`).
#[derive(Debug, Clone)]
pub(crate) enum Params {
    Positional(Vec<Value>),
    Named(Vec<(String, Value)>),
}

impl Params {
    /// Reads `None`, a tuple or list (positional) or a dict (named) from Python.
    pub(crate) fn extract(params: Option<&Bound<'_, PyAny>>) -> PyResult<Params> {
        let Some(params) = params.filter(|params| !params.is_none()) else {
            return Ok(Params::Positional(Vec::new()));
        };
        if let Ok(dict) = params.cast::<PyDict>() {
            let mut named = Vec::with_capacity(dict.len());
            for (key, value) in dict.iter() {
                let key: String = key.extract().map_err(|_| {
                    PyTypeError::new_err("named parameters need string keys, like {'id': 1}")
                })?;
                let key = if key.starts_with([':', '@', '$']) {
                    key
                } else {
                    format!(":{key}")
                };
                named.push((key, to_value(&value)?));
            }
            return Ok(Params::Named(named));
        }
        if params.is_instance_of::<PyString>() || params.is_instance_of::<PyBytes>() {
            return Err(PyTypeError::new_err(
                "parameters must be a tuple, a list or a dict, not a string: write (value,)",
            ));
        }
        let values = params
            .try_iter()
            .map_err(|_| PyTypeError::new_err("parameters must be a tuple, a list or a dict"))?
            .map(|value| to_value(&value?))
            .collect::<PyResult<Vec<Value>>>()?;
        Ok(Params::Positional(values))
    }

    /// Binds the values onto `statement`, checking that they fit it.
    pub(crate) fn bind(&self, statement: &mut Statement<'_>) -> litehouse::Result<()> {
        let expected = statement.parameter_count();
        match self {
            Params::Positional(values) => {
                if values.len() != expected {
                    return Err(litehouse::Error::Parameter {
                        message: format!(
                            "the statement takes {expected} parameters but {} were given",
                            values.len()
                        ),
                    });
                }
                for (index, value) in values.iter().enumerate() {
                    statement.raw_bind_parameter(index + 1, value)?;
                }
            }
            Params::Named(values) => {
                if values.len() != expected {
                    return Err(litehouse::Error::Parameter {
                        message: format!(
                            "the statement takes {expected} parameters but {} were given",
                            values.len()
                        ),
                    });
                }
                for (name, value) in values {
                    let Some(index) = statement.parameter_index(name)? else {
                        return Err(litehouse::Error::Parameter {
                            message: format!("the statement has no parameter named {name}"),
                        });
                    };
                    statement.raw_bind_parameter(index, value)?;
                }
            }
        }
        Ok(())
    }
}

/// One Python value as a SQLite value: None, bool (as 0/1), int (64-bit), float, str, bytes.
pub(crate) fn to_value(value: &Bound<'_, PyAny>) -> PyResult<Value> {
    if value.is_none() {
        Ok(Value::Null)
    } else if let Ok(flag) = value.cast::<PyBool>() {
        Ok(Value::Integer(i64::from(flag.is_true())))
    } else if value.is_instance_of::<PyInt>() {
        let integer: i64 = value.extract().map_err(|_| {
            pyo3::exceptions::PyOverflowError::new_err(
                "integer does not fit SQLite's 64-bit INTEGER; store it as text",
            )
        })?;
        Ok(Value::Integer(integer))
    } else if let Ok(float) = value.cast::<PyFloat>() {
        Ok(Value::Real(float.value()))
    } else if let Ok(text) = value.cast::<PyString>() {
        Ok(Value::Text(text.to_str()?.to_owned()))
    } else if let Ok(bytes) = value.cast::<PyBytes>() {
        Ok(Value::Blob(bytes.as_bytes().to_vec()))
    } else {
        Err(PyTypeError::new_err(format!(
            "cannot store a {} in SQLite: use None, bool, int, float, str or bytes",
            value.get_type().name()?
        )))
    }
}

/// A SQLite value as a Python object.
pub(crate) fn to_python<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Integer(integer) => integer.into_pyobject(py)?.into_any(),
        Value::Real(real) => real.into_pyobject(py)?.into_any(),
        Value::Text(text) => text.into_pyobject(py)?.into_any(),
        Value::Blob(blob) => PyBytes::new(py, blob).into_any(),
    })
}

/// Rows read by a statement, with their column names, ready to become Python objects.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Value>>,
    /// Rows as tuples instead of dicts.
    pub(crate) as_tuples: bool,
}

impl Rows {
    /// Runs the bound `statement` and collects every row.
    pub(crate) fn collect(
        statement: &mut Statement<'_>,
        as_tuples: bool,
    ) -> litehouse::Result<Rows> {
        let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
        let count = columns.len();
        let mut rows = Vec::new();
        let mut raw = statement.raw_query();
        while let Some(row) = raw.next()? {
            let mut values = Vec::with_capacity(count);
            for index in 0..count {
                values.push(row.get::<_, Value>(index)?);
            }
            rows.push(values);
        }
        Ok(Rows {
            columns,
            rows,
            as_tuples,
        })
    }

    /// One row as a dict (or a tuple).
    pub(crate) fn row_to_python<'py>(
        &self,
        py: Python<'py>,
        values: &[Value],
    ) -> PyResult<Bound<'py, PyAny>> {
        if self.as_tuples {
            let items = values
                .iter()
                .map(|value| to_python(py, value))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyTuple::new(py, items)?.into_any());
        }
        let dict = PyDict::new(py);
        for (name, value) in self.columns.iter().zip(values) {
            dict.set_item(name, to_python(py, value)?)?;
        }
        Ok(dict.into_any())
    }
}

impl<'py> IntoPyObject<'py> for Rows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for values in &self.rows {
            list.append(self.row_to_python(py, values)?)?;
        }
        Ok(list)
    }
}

/// A positive number of seconds from Python as a `Duration` (capped at about 30 years);
/// `what` names the setting in the `ConfigError`.
pub(crate) fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value.min(1e9)))
    } else {
        Err(crate::errors::to_py_err(litehouse::Error::Config {
            message: format!("{what} must be a positive number of seconds, not {value}"),
        }))
    }
}
