//! flightdeck-rs: a fast drop-in replacement for `flightdeck.sdk`.
//!
//! `core` is pure Rust (no pyo3); `py` is the Python binding built on it.

pub mod core;
pub mod py;
