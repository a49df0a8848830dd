//! redis-guard: a kernel-level (XDP) firewall for Redis, with a bundled
//! hardened Redis-compatible store.
//!
//! # Layout
//!
//! - [`policy`]: the TOML policy file, validated with errors that name the
//!   file, the key and the reason.
//! - [`firewall`]: loads the XDP program (`redis-guard-ebpf`), attaches it,
//!   and keeps its maps in step with the policy.
//! - [`events`]: security events as JSON lines (marked flows, store events).
//! - [`metrics`]: the per-CPU verdict counters behind `redis-guard stats`.
//! - [`store`]: the bundled Redis-compatible server.
//! - [`cli`]: the `redis-guard` command line (run, check, stats, store).
pub mod cli;
pub mod events;
pub mod firewall;
pub mod frames;
pub mod lab;
pub mod metrics;
pub mod policy;
pub mod store;
