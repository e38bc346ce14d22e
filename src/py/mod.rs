//! The Python binding (`flightdeck_rs._native`): every pyo3 type lives under here.

pub mod client;
pub mod convert;
pub mod datetime;
pub mod emitter;
pub mod errors;
pub mod export;
pub mod fields;
pub mod http_args;
pub mod models;
pub mod retry;
pub mod runtime;
pub mod validation_error;

use pyo3::prelude::*;

/// The native module.
#[pymodule]
#[pyo3(name = "_native")]
pub fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<models::PyRunEvent>()?;
    models::install_fast_constructor(m.py());
    m.add_class::<models::PyRequest>()?;
    m.add_class::<models::PyMetrics>()?;
    m.add_class::<models::PyUsage>()?;
    m.add_class::<models::PyModelUsage>()?;
    m.add_class::<models::PyToolUsage>()?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<client::NativeRequest>()?;
    m.add_class::<client::NativeResponse>()?;
    m.add_class::<export::NativeExportStream>()?;
    m.add_class::<emitter::NativeEmitter>()?;
    // Before the interpreter starts finalizing, our I/O threads stop taking the GIL.
    let prepare_exit = wrap_pyfunction!(runtime::prepare_exit, m)?;
    m.py()
        .import("atexit")?
        .call_method1("register", (&prepare_exit,))?;
    m.add_function(prepare_exit)?;
    m.add_function(wrap_pyfunction!(client::health, m)?)?;
    m.add_function(wrap_pyfunction!(client::get_workspace, m)?)?;
    m.add_function(wrap_pyfunction!(client::get_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(client::list_releases, m)?)?;
    m.add_function(wrap_pyfunction!(client::list_promoted, m)?)?;
    m.add_function(wrap_pyfunction!(client::list_actions, m)?)?;
    m.add_function(wrap_pyfunction!(client::list_promotion_requests, m)?)?;
    m.add_function(wrap_pyfunction!(client::list_runs, m)?)?;
    m.add_function(wrap_pyfunction!(client::post_diff, m)?)?;
    m.add_function(wrap_pyfunction!(client::promote_like, m)?)?;
    m.add_function(wrap_pyfunction!(client::promote_confirm, m)?)?;
    m.add_function(wrap_pyfunction!(client::ingest, m)?)?;
    m.add_class::<client::NativeBatch>()?;
    m.add_function(wrap_pyfunction!(client::collect, m)?)?;
    m.add_function(wrap_pyfunction!(retry::client_retry_delay, m)?)?;
    m.add_function(wrap_pyfunction!(retry::delivery_decision, m)?)?;
    m.add(
        "EXPORT_HEADER_KEYS",
        pyo3::types::PyTuple::new(m.py(), crate::core::api::EXPORT_HEADER_KEYS)?,
    )?;
    Ok(())
}
