//! The `[store]` table of the redis-guard TOML file.
//!
//! Every field has a default so that an empty `[store]` table (or none at all)
//! yields a usable local store. Sizes accept either an integer number of bytes
//! or a Redis-style string such as `"512mb"`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// Ceiling on the number of elements in one multibulk request: Redis 6's
/// limit. Redis 7 lets an authenticated client go up to 2^31, but every
/// element costs the parser a 32-byte handle on top of its bytes, so a
/// request of empty elements within the query-buffer limit could pin
/// gigabytes; a bigger SADD or DEL is split by the client instead.
pub const MAX_MULTIBULK_LEN: usize = 1024 * 1024;

/// Upper bound of `auth_failure_delay_ms`: a longer wait only ties up the
/// attacker's connection slot on our side too.
pub const MAX_AUTH_DELAY_MS: u64 = 60_000;

/// Upper bound of `auth_failure_window_secs` and `auth_ban_secs` (one year),
/// so that deadlines computed from them can never overflow a clock.
pub const MAX_AUTH_SECS: u64 = 365 * 24 * 3600;
/// Largest `slowlog_max_len`: about 50 MB of entries at most.
pub const MAX_SLOWLOG_LEN: usize = 10_000;
/// Upper bound for `threads`.
pub const MAX_THREADS: usize = 1024;
/// Upper bound for `tcp_keepalive`: Linux refuses a longer TCP_KEEPIDLE.
pub const MAX_TCP_KEEPALIVE: u64 = 32_767;

/// Configuration of the bundled store, deserialized from `[store]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Whether the daemon should start the store at all.
    pub enabled: bool,
    /// Addresses to listen on; IPv4 and IPv6 are both accepted, port 0 picks a free port.
    pub listen: Vec<SocketAddr>,
    /// The only directory the store may write to; fixed at start.
    pub data_dir: PathBuf,
    /// Number of logical databases (`SELECT 0..databases-1`).
    pub databases: usize,
    /// Maximum number of simultaneously connected clients.
    pub maxclients: usize,
    /// Threads serving connections; 0 picks one per CPU (see
    /// [`StoreConfig::worker_threads`]).
    pub threads: usize,
    /// Memory limit for the dataset in bytes; 0 disables the limit.
    pub maxmemory: ByteSize,
    /// What to do when `maxmemory` is reached.
    pub maxmemory_policy: EvictionPolicy,
    /// Log every write to `data_dir` and replay it at start (see [`crate::store::persist`]).
    pub appendonly: bool,
    /// When log records are fsynced: `always`, `everysec` or `no`.
    pub appendfsync: crate::store::persist::FsyncPolicy,
    /// Compact automatically once the log tail has grown by this percentage
    /// of the last snapshot's size; 0 disables automatic compaction.
    pub auto_compact_percentage: u64,
    /// ... and only once the log tail is at least this large.
    pub auto_compact_min_size: ByteSize,
    /// Largest accepted bulk string in a request.
    pub proto_max_bulk_len: ByteSize,
    /// Largest per-client query buffer before the connection is closed.
    pub client_query_buffer_limit: ByteSize,
    /// Idle seconds before a client is disconnected; 0 means never.
    pub timeout: u64,
    /// Seconds of silence before the kernel probes a client's connection
    /// (TCP keepalive, three probes a third of this apart); 0 turns it off.
    /// As Redis's `tcp-keepalive`, so a client that vanished without a FIN
    /// frees its connection slot even when `timeout` is 0.
    pub tcp_keepalive: u64,
    /// Milliseconds a failed `AUTH` (or `HELLO ... AUTH`) waits before its
    /// reply, so that guessing passwords over one connection is slow.
    pub auth_failure_delay_ms: u64,
    /// Failed authentications from one source address, within
    /// `auth_failure_window_secs`, that get the address banned.
    pub auth_max_failures: u32,
    /// Length of the window in which `auth_max_failures` are counted.
    pub auth_failure_window_secs: u64,
    /// How long a banned address has its new connections refused.
    pub auth_ban_secs: u64,
    /// Whether `ACL SETUSER`/`ACL DELUSER` may change users at runtime (in
    /// memory only; the policy file is never written). Off by default: the
    /// policy file is the one place that says who may do what.
    pub acl_runtime_changes: bool,
    /// ACL users. When empty, a `default` user with `nopass` and all permissions exists.
    pub users: Vec<UserConfig>,
    /// Limits on the replies a normal client has pending (produced by the
    /// store, not yet taken by the peer); beyond them the client is
    /// disconnected. Unlike Redis's (unlimited by default) the hard limit is
    /// finite, so a client that never reads cannot make the store buffer
    /// without bound. It also caps the largest single reply.
    #[serde(alias = "client_output_buffer_limit_normal")]
    pub output_buffer_limit_normal: OutputBufferLimit,
    /// The same for clients with subscriptions, counting queued pub/sub
    /// messages too (Redis's pub/sub defaults).
    #[serde(alias = "client_output_buffer_limit_pubsub")]
    pub output_buffer_limit_pubsub: OutputBufferLimit,
    /// New connections one source address may open per second; the excess
    /// is refused at once. 0 disables the limit.
    pub max_connections_per_source_per_sec: u32,
    /// Seconds a connection may stay unauthenticated (and a TLS handshake
    /// may take) before it is closed, so that connections which only
    /// trickle bytes cannot be held open; 0 disables it.
    pub auth_timeout_secs: u64,
    /// File that security events are appended to (JSON lines), besides
    /// stderr. Opened once at start with mode 0600.
    pub audit_log: Option<PathBuf>,
    /// Commands running at least this many microseconds are recorded in
    /// the slow log (`SLOWLOG GET`); negative disables it, 0 records every
    /// command. Commands Redis flags `fast` are timed only at 0.
    pub slowlog_log_slower_than: i64,
    /// Entries the slow log keeps (the oldest go first).
    pub slowlog_max_len: usize,
    /// TLS listeners (`[store.tls]`); absent means no TLS.
    pub tls: Option<TlsConfig>,
}

/// The `[store.tls]` table: TLS listeners served by rustls.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Addresses of the TLS listeners, separate from `store.listen`.
    pub listen: Vec<SocketAddr>,
    /// PEM file with the server certificate chain, leaf first. Redis's
    /// `tls-cert-file` name is accepted too.
    #[serde(alias = "cert_file")]
    pub cert: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(alias = "key_file")]
    pub key: PathBuf,
    /// PEM file of CA certificates: when set, clients must present a
    /// certificate signed by one of them (mutual TLS). `ca` and Redis's
    /// `ca_cert_file` are accepted as names too.
    #[serde(default, alias = "ca", alias = "ca_cert_file")]
    pub client_ca: Option<PathBuf>,
    /// Lowest protocol version accepted.
    #[serde(default, alias = "min_protocol_version")]
    pub min_version: TlsVersion,
    /// Whether the plaintext `store.listen` listeners are opened as well.
    #[serde(default = "yes")]
    pub plaintext: bool,
}

fn yes() -> bool {
    true
}

/// `min_version` choices (`"1.2"`, `"1.3"`; `"TLSv1.3"` spellings work
/// too); nothing older than TLS 1.2 exists in rustls.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    #[serde(rename = "1.2", alias = "TLSv1.2", alias = "tlsv1.2", alias = "TLS1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3", alias = "TLSv1.3", alias = "tlsv1.3", alias = "TLS1.3")]
    V1_3,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            enabled: true,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 6379))],
            data_dir: PathBuf::from("/var/lib/redis-guard"),
            databases: 16,
            maxclients: 10000,
            threads: 0,
            maxmemory: ByteSize(0),
            maxmemory_policy: EvictionPolicy::NoEviction,
            appendonly: true,
            appendfsync: Default::default(),
            auto_compact_percentage: 100,
            auto_compact_min_size: ByteSize(64 * 1024 * 1024),
            proto_max_bulk_len: ByteSize(512 * 1024 * 1024),
            client_query_buffer_limit: ByteSize(1024 * 1024 * 1024),
            timeout: 0,
            tcp_keepalive: 300,
            auth_failure_delay_ms: 200,
            auth_max_failures: 10,
            auth_failure_window_secs: 60,
            auth_ban_secs: 300,
            acl_runtime_changes: false,
            users: Vec::new(),
            output_buffer_limit_normal: OutputBufferLimit::hard(ByteSize(256 * 1024 * 1024)),
            output_buffer_limit_pubsub: OutputBufferLimit {
                hard: ByteSize(32 * 1024 * 1024),
                soft: ByteSize(8 * 1024 * 1024),
                soft_seconds: 60,
            },
            max_connections_per_source_per_sec: 2000,
            auth_timeout_secs: 10,
            audit_log: None,
            slowlog_log_slower_than: 10_000,
            slowlog_max_len: 128,
            tls: None,
        }
    }
}

/// One `[[store.users]]` entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// User name as given to `AUTH user pass`; `default` is the user of `AUTH pass`.
    pub name: String,
    /// Hex-encoded SHA-256 of the password.
    pub password_sha256: Option<String>,
    /// File whose content (trailing newline stripped) is the clear-text password, read at startup.
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the clear-text password, read at startup.
    pub password_env: Option<String>,
    /// The user needs no password (and `default` is then logged in automatically).
    pub nopass: bool,
    /// Redis ACL rules, e.g. `"on ~* &* +@all"`.
    pub rules: String,
}

/// The `maxmemory_policy` choices.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionPolicy {
    /// Refuse writes with `-OOM` once over the limit.
    #[default]
    #[serde(rename = "noeviction")]
    NoEviction,
    /// Evict approximately least recently used keys among all keys.
    AllkeysLru,
    /// Evict approximately least recently used keys among keys with a TTL.
    VolatileLru,
    /// Evict random keys.
    AllkeysRandom,
    /// Evict the keys with the nearest expiry time.
    VolatileTtl,
}

impl EvictionPolicy {
    /// The name Redis uses in `CONFIG GET` and `INFO`.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionPolicy::NoEviction => "noeviction",
            EvictionPolicy::AllkeysLru => "allkeys-lru",
            EvictionPolicy::VolatileLru => "volatile-lru",
            EvictionPolicy::AllkeysRandom => "allkeys-random",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
        }
    }
}

/// An output-buffer limit: pending bytes over `hard` disconnect at once,
/// over `soft` for `soft_seconds` in a row too. 0 disables a limit.
///
/// In TOML it is a size (`"64mb"`, the hard limit alone), Redis's
/// `"hard soft soft_seconds"` triple (`"32mb 8mb 60"`), or a table
/// `{ hard = "32mb", soft = "8mb", soft_seconds = 60 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputBufferLimit {
    /// Disconnect as soon as this much is pending; 0 = no hard limit.
    pub hard: ByteSize,
    /// Disconnect when this much stays pending for `soft_seconds`; 0 = none.
    pub soft: ByteSize,
    /// How long the soft limit may be exceeded.
    pub soft_seconds: u64,
}

impl OutputBufferLimit {
    /// Only a hard limit.
    pub fn hard(hard: ByteSize) -> OutputBufferLimit {
        OutputBufferLimit {
            hard,
            ..Default::default()
        }
    }

    /// The hard limit in bytes for queueing checks; 0 (no limit) is `usize::MAX`.
    pub fn hard_bytes(&self) -> usize {
        match self.hard.0 {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    fn parse_triple(s: &str) -> Option<OutputBufferLimit> {
        let mut it = s.split_whitespace();
        let (hard, soft, secs) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        Some(OutputBufferLimit {
            hard: ByteSize::parse(hard)?,
            soft: ByteSize::parse(soft)?,
            soft_seconds: secs.parse().ok()?,
        })
    }
}

impl<'de> Deserialize<'de> for OutputBufferLimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            hard: ByteSize,
            #[serde(default)]
            soft: ByteSize,
            #[serde(default)]
            soft_seconds: u64,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Bytes(u64),
            Text(String),
            Table(Table),
        }
        let expected =
            "a size (\"64mb\"), \"hard soft soft_seconds\" or { hard, soft, soft_seconds }";
        match Shape::deserialize(d)
            .map_err(|_| de::Error::custom(format!("expected {expected}")))?
        {
            Shape::Bytes(n) => Ok(OutputBufferLimit::hard(ByteSize(n))),
            Shape::Text(t) if t.trim().contains(char::is_whitespace) => {
                OutputBufferLimit::parse_triple(&t).ok_or_else(|| {
                    de::Error::custom(format!("invalid limit {t:?}: expected {expected}"))
                })
            }
            Shape::Text(t) => ByteSize::parse(&t)
                .map(OutputBufferLimit::hard)
                .ok_or_else(|| de::Error::custom(format!("invalid byte count {t:?}"))),
            Shape::Table(t) => Ok(OutputBufferLimit {
                hard: t.hard,
                soft: t.soft,
                soft_seconds: t.soft_seconds,
            }),
        }
    }
}

/// A byte count that deserializes from an integer or a string like `"100kb"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses Redis's memory notation: `b`, `k`, `kb`, `m`, `mb`, `g`, `gb` (case-insensitive).
    /// Like Redis, `k`/`m`/`g` are powers of 1000 and `kb`/`mb`/`gb` powers of 1024.
    pub fn parse(s: &str) -> Option<ByteSize> {
        let t = s.trim().to_ascii_lowercase();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return None;
        }
        let n: u64 = num.parse().ok()?;
        let mul: u64 = match unit {
            "" | "b" => 1,
            "k" => 1000,
            "kb" => 1024,
            "m" => 1000 * 1000,
            "mb" => 1024 * 1024,
            "g" => 1000 * 1000 * 1000,
            "gb" => 1024 * 1024 * 1024,
            _ => return None,
        };
        n.checked_mul(mul).map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a byte count such as 1048576, \"100kb\", \"512mb\" or \"1gb\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("byte count must not be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).ok_or_else(|| E::custom(format!("invalid byte count {v:?}")))
            }
        }
        d.deserialize_any(V)
    }
}

/// A configuration value that cannot work, with the offending key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("store.{key}: {reason}")]
pub struct ConfigError {
    /// Dotted key below `[store]`, e.g. `users[1].password_sha256`.
    pub key: String,
    /// Why the value was refused.
    pub reason: String,
}

fn bad(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl StoreConfig {
    /// How many threads serve connections: `threads`, or for 0 one per CPU.
    ///
    /// One per CPU lets connections proceed in parallel on every core.
    /// On a 2-CPU host that also runs the client and the kernel's network
    /// processing, `threads = 1` measured the same as 2 at
    /// `redis-benchmark -P 1` within noise (BENCHMARKS.md), so this stays a
    /// knob for operators who want to leave CPUs to other work.
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            return self.threads;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The plaintext addresses actually opened: none when TLS says `plaintext = false`.
    pub fn plaintext_listen(&self) -> &[SocketAddr] {
        match &self.tls {
            Some(t) if !t.plaintext => &[],
            _ => &self.listen,
        }
    }

    /// The TLS addresses, if TLS is configured.
    pub fn tls_listen(&self) -> &[SocketAddr] {
        self.tls.as_ref().map_or(&[], |t| &t.listen)
    }

    /// Checks the values serde cannot check, naming the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.enabled && self.plaintext_listen().is_empty() && self.tls_listen().is_empty() {
            return Err(bad("listen", "at least one address is required"));
        }
        if let Some(t) = &self.tls {
            if t.listen.is_empty() {
                return Err(bad("tls.listen", "at least one address is required"));
            }
            for (key, p) in [
                ("tls.cert", Some(&t.cert)),
                ("tls.key", Some(&t.key)),
                ("tls.client_ca", t.client_ca.as_ref()),
            ] {
                if p.is_some_and(|p| p.as_os_str().is_empty()) {
                    return Err(bad(key, "must not be empty"));
                }
            }
        }
        for (key, v) in [
            (
                "output_buffer_limit_normal",
                self.output_buffer_limit_normal,
            ),
            (
                "output_buffer_limit_pubsub",
                self.output_buffer_limit_pubsub,
            ),
        ] {
            // Tiny limits would cut off ordinary replies; 0 is an explicit "none".
            for (part, size) in [("hard", v.hard), ("soft", v.soft)] {
                if size.0 != 0 && size.0 < 64 * 1024 {
                    return Err(bad(key, format!("{part} limit must be 0 or at least 64kb")));
                }
            }
            if v.soft.0 != 0 && v.soft_seconds > MAX_AUTH_SECS {
                return Err(bad(
                    key,
                    format!("soft_seconds must be at most {MAX_AUTH_SECS}"),
                ));
            }
        }
        if self.slowlog_max_len > MAX_SLOWLOG_LEN {
            return Err(bad(
                "slowlog_max_len",
                format!("must be at most {MAX_SLOWLOG_LEN} (each entry holds up to ~5 KB)"),
            ));
        }
        if self.auth_timeout_secs > MAX_AUTH_SECS {
            return Err(bad(
                "auth_timeout_secs",
                format!("must be at most {MAX_AUTH_SECS}"),
            ));
        }
        if let Some(p) = &self.audit_log
            && !p.is_absolute()
        {
            return Err(bad("audit_log", "must be an absolute path"));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        if !self.data_dir.is_absolute() {
            return Err(bad("data_dir", "must be an absolute path"));
        }
        if self.databases == 0 || self.databases > 1 << 16 {
            return Err(bad("databases", "must be between 1 and 65536"));
        }
        if self.timeout > i32::MAX as u64 {
            return Err(bad("timeout", "must be at most 2147483647 seconds"));
        }
        if self.tcp_keepalive > MAX_TCP_KEEPALIVE {
            return Err(bad(
                "tcp_keepalive",
                "must be at most 32767 seconds (Linux's limit for TCP_KEEPIDLE)",
            ));
        }
        if self.maxclients == 0 || self.maxclients > 10_000_000 {
            return Err(bad("maxclients", "must be between 1 and 10000000"));
        }
        if self.threads > MAX_THREADS {
            return Err(bad(
                "threads",
                format!("must be between 0 (automatic) and {MAX_THREADS}"),
            ));
        }
        if self.proto_max_bulk_len.0 < 1024 {
            return Err(bad("proto_max_bulk_len", "must be at least 1kb"));
        }
        if self.client_query_buffer_limit.0 < 1024 * 1024 {
            return Err(bad("client_query_buffer_limit", "must be at least 1mb"));
        }
        if self.auth_failure_delay_ms > MAX_AUTH_DELAY_MS {
            return Err(bad(
                "auth_failure_delay_ms",
                format!("must be at most {MAX_AUTH_DELAY_MS}"),
            ));
        }
        if self.auto_compact_percentage > 1_000_000 {
            return Err(bad(
                "auto_compact_percentage",
                "must be between 0 (off) and 1000000",
            ));
        }
        if self.auth_max_failures == 0 {
            return Err(bad("auth_max_failures", "must be greater than 0"));
        }
        for (key, v) in [
            ("auth_failure_window_secs", self.auth_failure_window_secs),
            ("auth_ban_secs", self.auth_ban_secs),
        ] {
            if v == 0 || v > MAX_AUTH_SECS {
                return Err(bad(key, format!("must be between 1 and {MAX_AUTH_SECS}")));
            }
        }
        // Protected mode: nobody reaches the store without a password unless
        // it listens on loopback only. TLS listeners count: encryption says
        // nothing about who connects.
        if let Some(exposed) = self
            .plaintext_listen()
            .iter()
            .chain(self.tls_listen())
            .find(|a| !a.ip().is_loopback())
        {
            if self.users.is_empty() {
                return Err(bad(
                    "users",
                    format!(
                        "the store listens on {exposed}, which is not loopback, so a user with a password is required"
                    ),
                ));
            }
            if let Some((i, u)) = self.users.iter().enumerate().find(|(_, u)| u.nopass) {
                return Err(bad(
                    format!("users[{i}].nopass"),
                    format!(
                        "user `{}` has no password but the store listens on {exposed}, which is not loopback",
                        u.name
                    ),
                ));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            let k = |f: &str| format!("users[{i}].{f}");
            if u.name.is_empty() || u.name.bytes().any(|b| b.is_ascii_whitespace()) {
                return Err(bad(k("name"), "must be non-empty and without spaces"));
            }
            if !seen.insert(u.name.as_str()) {
                return Err(bad(k("name"), format!("duplicate user {:?}", u.name)));
            }
            let sources = [
                u.password_sha256.is_some(),
                u.password_file.is_some(),
                u.password_env.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if sources > 1 {
                return Err(bad(
                    k("password_sha256"),
                    "give only one of password_sha256, password_file, password_env",
                ));
            }
            if u.nopass && sources > 0 {
                return Err(bad(k("nopass"), "nopass = true excludes a password"));
            }
            if !u.nopass && sources == 0 {
                return Err(bad(
                    k("password_sha256"),
                    "a password (password_sha256, password_file or password_env) or nopass = true is required",
                ));
            }
            if let Some(h) = &u.password_sha256
                && (h.len() != 64 || hex::decode(h).is_err())
            {
                return Err(bad(k("password_sha256"), "must be 64 hex digits"));
            }
            if let Some(e) = &u.password_env
                && e.is_empty()
            {
                return Err(bad(k("password_env"), "must name a variable"));
            }
            if let Err(e) = crate::store::auth::parse_rules(&u.rules) {
                return Err(bad(k("rules"), e));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("0"), Some(ByteSize(0)));
        assert_eq!(ByteSize::parse("100kb"), Some(ByteSize(102400)));
        assert_eq!(ByteSize::parse("512MB"), Some(ByteSize(512 << 20)));
        assert_eq!(ByteSize::parse("1gb"), Some(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("1k"), Some(ByteSize(1000)));
        assert_eq!(ByteSize::parse("x"), None);
        assert_eq!(ByteSize::parse("1xb"), None);
    }

    #[test]
    fn output_buffer_limit_shapes() {
        #[derive(Deserialize)]
        struct T {
            l: OutputBufferLimit,
        }
        let parse = |v: &str| toml::from_str::<T>(&format!("l = {v}")).map(|t| t.l);
        let mb = |n: u64| ByteSize(n << 20);
        assert_eq!(parse("\"64mb\"").unwrap(), OutputBufferLimit::hard(mb(64)));
        assert_eq!(parse("1048576").unwrap(), OutputBufferLimit::hard(mb(1)));
        let full = OutputBufferLimit {
            hard: mb(32),
            soft: mb(8),
            soft_seconds: 60,
        };
        assert_eq!(parse("\"32mb 8mb 60\"").unwrap(), full);
        assert_eq!(
            parse("{ hard = \"32mb\", soft = \"8mb\", soft_seconds = 60 }").unwrap(),
            full
        );
        assert_eq!(parse("\"0 0 0\"").unwrap(), OutputBufferLimit::default());
        for bad in [
            "\"lots\"",
            "\"1mb 2mb\"",
            "{ soft = \"1mb\" }",
            "{ hard = 1, x = 2 }",
            "-1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_validate() {
        StoreConfig::default().validate().unwrap();
    }

    #[test]
    fn worker_threads_one_per_cpu_unless_told() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let auto = StoreConfig::default();
        assert_eq!(auto.worker_threads(), cpus);
        let three = StoreConfig {
            threads: 3,
            ..StoreConfig::default()
        };
        assert_eq!(three.worker_threads(), 3);
    }
}
