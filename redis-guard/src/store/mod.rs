//! The bundled hardened Redis-compatible store.
pub mod config;
