//! The Python extension module `litehouse._litehouse`: the litehouse engine for Python threads
//! and asyncio. The Python package `litehouse` (in `python/`) re-exports it with the exception
//! classes, the asyncio face and the compatibility layers.
#![deny(clippy::unwrap_used)]

mod buffer;
mod database;
mod errors;
mod json;
mod logs;
mod port;
mod store;
mod transaction;
mod values;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
fn _litehouse(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<database::PyDatabase>()?;
    module.add_class::<transaction::Transaction>()?;
    module.add_class::<buffer::PyWriteBuffer>()?;
    module.add_class::<logs::PyLogDatabase>()?;
    module.add_class::<store::PyStore>()?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
