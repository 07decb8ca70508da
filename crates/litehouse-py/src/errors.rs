//! litehouse's errors as Python exceptions.
//!
//! The classes live in `litehouse/errors.py` (a PEP 249 style tree: `BusyError` is an
//! `OperationalError`, `ConstraintError` an `IntegrityError`, ...); each carries the SQLite
//! extended code and the fields of its Rust variant as attributes, and the Rust `source()` chain
//! as text in `cause`.

use std::error::Error as _;

use litehouse::Error;
use pyo3::prelude::*;

/// The exception class name for a litehouse error, and its extra attributes.
fn class_of(err: &Error) -> &'static str {
    match err {
        Error::Busy { .. } => "BusyError",
        Error::Closed => "ClosedError",
        Error::BufferFull { .. } => "BufferFullError",
        Error::Rejected { .. } => "RejectedError",
        Error::Unwritten { .. } => "UnwrittenError",
        Error::Constraint { .. } => "ConstraintError",
        Error::Sql { .. } => "SqlError",
        Error::Parameter { .. } => "ParameterError",
        Error::ReadOnly { .. } => "ReadOnlyError",
        Error::NoRows => "NoRowsError",
        Error::Io { .. } => "IoError",
        Error::Panic { .. } => "PanicError",
        Error::Misuse { .. } => "MisuseError",
        Error::Config { .. } => "ConfigError",
        _ => "DatabaseError",
    }
}

/// Builds the Python exception for `err`.
pub(crate) fn to_py_err(err: Error) -> PyErr {
    Python::attach(|py| match build(py, &err) {
        Ok(exception) => exception,
        Err(failed) => failed,
    })
}

fn build(py: Python<'_>, err: &Error) -> PyResult<PyErr> {
    let module = py.import("litehouse.errors")?;
    let class = module.getattr(class_of(err))?;
    let exception = class.call1((err.to_string(),))?;
    exception.setattr("extended_code", err.extended_code())?;
    exception.setattr("cause", err.source().map(ToString::to_string))?;
    match err {
        Error::Busy {
            waited,
            retry_after,
        } => {
            exception.setattr("retry_after", retry_after.as_secs_f64())?;
            exception.setattr("waited", waited.as_secs_f64())?;
        }
        Error::Constraint { kind, .. } => {
            let kind = format!("{kind:?}").to_ascii_lowercase();
            exception.setattr("kind", kind)?;
        }
        Error::BufferFull { capacity } => exception.setattr("capacity", capacity)?,
        Error::Rejected { rows, .. } => exception.setattr("rows", rows)?,
        Error::Unwritten { entries, .. } => exception.setattr("entries", entries)?,
        _ => {}
    }
    Ok(PyErr::from_value(exception))
}

/// `Result` with litehouse's error, turned into a Python exception.
pub(crate) trait IntoPyResult<T> {
    fn py_result(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for litehouse::Result<T> {
    fn py_result(self) -> PyResult<T> {
        self.map_err(to_py_err)
    }
}
