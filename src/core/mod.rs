//! Pure-Rust core of flightdeck-rs: events, request definitions, transport and retry.
//!
//! Nothing in this module depends on pyo3; the Python binding lives in `crate::py`.

pub mod api;
pub mod emitter;
pub mod error;
pub mod event;
pub mod export;
pub mod json;
pub mod pid;
pub mod retry;
pub mod runtime;
pub mod transport;
