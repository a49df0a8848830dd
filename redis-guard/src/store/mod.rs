//! The bundled hardened Redis-compatible store.
//!
//! It speaks RESP2 and RESP3 and implements the Redis 7 command set that
//! applications use day to day (strings, hashes, lists, sets, sorted sets,
//! expiry, transactions, pub/sub, blocking pops), with authentication always
//! on and the dangerous administrative commands left out entirely. Data
//! survives restarts and crashes (command log plus snapshots), and is written
//! only inside `data_dir`, under fixed file names.
//!
//! # Layout
//!
//! - [`config`]: the `[store]` TOML table ([`config::StoreConfig`]) and its validation.
//! - [`server`]: [`Server`]: listeners (plaintext and TLS), accept loop,
//!   `maxclients`, the per-source connection rate, active expiry.
//! - [`tls`]: the rustls server configuration of `[store.tls]`.
//! - [`connection`]: one task per client: read, parse, execute, reply,
//!   pipelining, output-buffer limits, the authentication deadline.
//! - [`audit`]: security events to stderr and `audit_log`, with true totals per kind.
//! - [`protocol`]: streaming request parser (multibulk and inline) with Redis's limits.
//! - [`frame`]: RESP2/RESP3 reply encoding.
//! - [`client`]: per-client state and the handle other clients see.
//! - [`auth`]: users, password digests, Redis 7 ACL rules and selectors.
//! - [`acllog`]: `ACL LOG`, the recent refusals and failed logins.
//! - [`slowlog`]: `SLOWLOG`, the recent commands that ran long.
//! - [`cmdstats`]: `INFO commandstats`, counted per thread.
//! - [`authguard`]: failed-authentication counting per source address and bans.
//! - [`keyspace`]: databases, lazy expiry, memory accounting, eviction, `SCAN`.
//! - [`oplog`]: command log record format and the in-keyspace record buffer.
//! - [`persist`]: durability: log writer and fsync policies, manifest,
//!   loading and recovery, compaction, `--repair`.
//! - [`snapshot`]: the versioned, checksummed snapshot format.
//! - [`rdb`]: `DUMP`/`RESTORE` payloads in Redis's RDB object format.
//! - [`value`]: compact value representations.
//! - [`glob`]: Redis glob patterns.
//! - [`long_double`]: `INCRBYFLOAT`'s x87 `long double` arithmetic and text, emulated exactly.
//! - [`cmd`]: the command table and one module per command family.

pub mod acllog;
pub mod audit;
pub mod auth;
pub mod authguard;
pub mod client;
pub mod cmd;
pub mod cmdstats;
pub mod config;
pub mod connection;
pub mod frame;
pub mod glob;
pub mod keyspace;
pub mod long_double;
pub mod oplog;
pub mod persist;
pub mod protocol;
pub mod rdb;
pub mod server;
pub mod slowlog;
pub mod snapshot;
pub mod tls;
pub mod value;

pub use authguard::BanEvent;
pub use config::StoreConfig;
pub use server::Server;
