//! The TOML policy: parsing, validation and secure defaults.
//!
//! Every error names the file, the key and the reason, because an operator
//! who typed `10.0.0.0/33` wants to be pointed at that entry, not at a serde
//! backtrace. Parsing is two-step: serde reads a raw shape (so unknown keys
//! and wrong types are caught with their position), then `validate` turns raw
//! strings into typed values and checks the semantic rules.

use std::{
    collections::BTreeSet,
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use redis_guard_common::TRIE_ENTRIES;
use serde::Deserialize;

use crate::store::config::StoreConfig;

/// Default location of pinned maps, read by `redis-guard stats`.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/redis-guard";

/// A policy file that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read at all.
    #[error("{file}: cannot read policy: {error}")]
    Io {
        /// The policy file.
        file: PathBuf,
        /// The underlying I/O error; part of the message, so deliberately
        /// not a chained `source` (an error chain printer would say it twice).
        error: std::io::Error,
    },
    /// A key is unknown, has the wrong type, or holds a refused value.
    #[error("{file}: key `{key}`: {reason}")]
    Invalid {
        /// The policy file.
        file: PathBuf,
        /// Dotted path of the offending key, e.g. `firewall.allow[2]`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How the XDP program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) mode, falling back to generic with a log line.
    Auto,
    /// Native mode only; failure is an error.
    Native,
    /// Generic (skb) mode only.
    Generic,
}

/// Whether refused packets are dropped or only reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Drop what the policy refuses.
    Enforce,
    /// Count and report every verdict; drop nothing.
    Audit,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        })
    }
}

/// The validated `[firewall]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallPolicy {
    /// Interfaces to attach to.
    pub interfaces: Vec<String>,
    /// Attach mode.
    pub xdp_mode: XdpMode,
    /// Protected TCP destination ports.
    pub ports: BTreeSet<u16>,
    /// Enforce or audit.
    pub mode: Mode,
    /// Sources allowed to reach protected ports (host bits cleared).
    pub allow: BTreeSet<IpNet>,
    /// Sources always refused; wins over `allow`.
    pub deny: BTreeSet<IpNet>,
    /// Mark flows whose stream starts like HTTP.
    pub http_guard: bool,
    /// Also mark flows whose first byte is not `*`.
    pub resp_only: bool,
    /// Directory on bpffs where the maps are pinned for `stats`.
    pub pin_path: PathBuf,
    /// Turn the bundled store's authentication bans into kernel drops for
    /// the ban's duration (loopback sources excepted: every local client
    /// shares them, so the store's own refusal is the right tool there).
    pub kernel_bans: bool,
}

impl FirewallPolicy {
    /// The protected ports as an operator writes them: `6379, 6380`.
    pub fn ports_text(&self) -> String {
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        ports.join(", ")
    }
}

/// A whole validated policy file.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The file it came from, for messages.
    pub file: PathBuf,
    /// `[firewall]`, if the file has one.
    pub firewall: Option<FirewallPolicy>,
    /// `[store]` (defaults apply when the table is absent).
    pub store: StoreConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    firewall: Option<RawFirewall>,
    store: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFirewall {
    interfaces: Option<Vec<String>>,
    xdp_mode: Option<String>,
    ports: Option<Vec<i64>>,
    mode: Option<String>,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    http_guard: Option<bool>,
    resp_only: Option<bool>,
    pin_path: Option<PathBuf>,
    kernel_bans: Option<bool>,
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(file: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(file).map_err(|e| PolicyError::Io {
            file: file.to_path_buf(),
            error: e,
        })?;
        Policy::parse(file, &text)
    }

    /// Validates policy text; `file` is only used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Policy, PolicyError> {
        let invalid = |key: &str, reason: String| PolicyError::Invalid {
            file: file.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let raw: RawPolicy = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| {
                let (key, reason) = describe_toml_error(text, e);
                invalid(&key, reason)
            })?;
        let firewall = raw
            .firewall
            .map(|fw| validate_firewall(fw).map_err(|(key, reason)| invalid(&key, reason)))
            .transpose()?;
        let mut store_table = raw.store.unwrap_or_default();
        // The store is opt-in inside `run`: a firewall-only policy must not
        // start a server on 6379 next to the Redis it protects.
        store_table
            .entry("enabled")
            .or_insert(toml::Value::Boolean(false));
        let store_value = toml::Value::Table(store_table);
        let store: StoreConfig =
            serde_path_to_error::deserialize(store_value.clone()).map_err(|e| {
                let (key, reason) = describe_store_error(&store_value, e);
                invalid(&key, reason)
            })?;
        store
            .validate()
            .map_err(|e| invalid(&format!("store.{}", e.key), e.reason))?;
        // Like Redis's protected mode: a password-less user is only tolerable
        // when nothing but this host can connect.
        // TLS listeners count too: encryption says nothing about who connects.
        let opened = || store.plaintext_listen().iter().chain(store.tls_listen());
        if let Some(exposed) = opened().find(|a| !a.ip().is_loopback()) {
            for (i, user) in store.users.iter().enumerate() {
                if user.nopass {
                    return Err(invalid(
                        &format!("store.users[{i}].nopass"),
                        format!(
                            "user `{}` has no password but the store listens on {exposed}, which is not loopback; \
                             give it password_sha256, password_file or password_env",
                            user.name
                        ),
                    ));
                }
            }
        }
        // `validate` only checks listen addresses when enabled; `redis-guard
        // store` runs the store regardless, so check them here too.
        if opened().next().is_none() {
            return Err(invalid(
                "store.listen",
                "is empty: list at least one address".into(),
            ));
        }
        Ok(Policy {
            file: file.to_path_buf(),
            firewall,
            store,
        })
    }
}

fn validate_firewall(raw: RawFirewall) -> Result<FirewallPolicy, (String, String)> {
    let err = |key: &str, reason: String| (format!("firewall.{key}"), reason);

    let interfaces = raw.interfaces.ok_or_else(|| {
        err(
            "interfaces",
            "missing: list at least one interface to attach to".into(),
        )
    })?;
    if interfaces.is_empty() {
        return Err(err(
            "interfaces",
            "is empty: list at least one interface to attach to".into(),
        ));
    }
    for (i, name) in interfaces.iter().enumerate() {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ']) {
            return Err(err(
                &format!("interfaces[{i}]"),
                format!("'{name}' is not a valid interface name"),
            ));
        }
        if interfaces[..i].contains(name) {
            return Err(err(
                &format!("interfaces[{i}]"),
                format!("'{name}' is listed twice (an interface takes one XDP program)"),
            ));
        }
    }

    let xdp_mode = match raw.xdp_mode.as_deref().unwrap_or("auto") {
        "auto" => XdpMode::Auto,
        "native" => XdpMode::Native,
        "generic" => XdpMode::Generic,
        other => {
            return Err(err(
                "xdp_mode",
                format!("'{other}' is not one of auto, native, generic"),
            ));
        }
    };
    let mode = match raw.mode.as_deref().unwrap_or("enforce") {
        "enforce" => Mode::Enforce,
        "audit" => Mode::Audit,
        other => {
            return Err(err(
                "mode",
                format!("'{other}' is not one of enforce, audit"),
            ));
        }
    };

    let raw_ports = raw.ports.unwrap_or_else(|| vec![6379]);
    if raw_ports.is_empty() {
        return Err(err(
            "ports",
            "is empty: list at least one port to protect".into(),
        ));
    }
    let mut ports = BTreeSet::new();
    for (i, p) in raw_ports.iter().enumerate() {
        match u16::try_from(*p) {
            Ok(0) => return Err(err(&format!("ports[{i}]"), "port 0 is not a port".into())),
            Ok(p) => {
                ports.insert(p);
            }
            Err(_) => {
                return Err(err(
                    &format!("ports[{i}]"),
                    format!("{p} is outside 1..=65535"),
                ));
            }
        }
    }

    let allow = parse_nets("allow", raw.allow.unwrap_or_default())?;
    let deny = parse_nets("deny", raw.deny.unwrap_or_default())?;
    for (key, nets) in [("allow", &allow), ("deny", &deny)] {
        let v4 = nets.iter().filter(|n| matches!(n, IpNet::V4(_))).count();
        for (family, count) in [("IPv4", v4), ("IPv6", nets.len() - v4)] {
            if count > TRIE_ENTRIES as usize {
                return Err(err(
                    key,
                    format!(
                        "{count} {family} entries; the kernel's table holds at most {TRIE_ENTRIES} per \
                         address family: merge neighbouring addresses into wider prefixes"
                    ),
                ));
            }
        }
    }

    let pin_path = raw
        .pin_path
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_PATH));
    if !pin_path.is_absolute() {
        return Err(err(
            "pin_path",
            format!("'{}' must be an absolute path", pin_path.display()),
        ));
    }

    Ok(FirewallPolicy {
        interfaces,
        xdp_mode,
        ports,
        mode,
        allow,
        deny,
        http_guard: raw.http_guard.unwrap_or(true),
        resp_only: raw.resp_only.unwrap_or(false),
        pin_path,
        kernel_bans: raw.kernel_bans.unwrap_or(true),
    })
}

/// Parses CIDRs or bare addresses. Host bits are refused rather than silently
/// cleared: `10.0.0.1/8` is almost always a typo for `/32` or `10.0.0.0/8`,
/// and guessing wrong on a firewall opens or closes the wrong range.
fn parse_nets(key: &str, entries: Vec<String>) -> Result<BTreeSet<IpNet>, (String, String)> {
    let mut out = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("firewall.{key}[{i}]");
        let text = entry.trim();
        let net = if text.contains('/') {
            let net: IpNet = text.parse().map_err(|_| {
                (
                    at.clone(),
                    format!("'{entry}' is not an IPv4/IPv6 CIDR (bad address or prefix length)"),
                )
            })?;
            if net.trunc() != net {
                return Err((
                    at,
                    format!(
                        "'{entry}' has host bits set; did you mean '{}' or '{}'?",
                        net.trunc(),
                        IpNet::from(net.addr())
                    ),
                ));
            }
            net
        } else {
            let addr: IpAddr = text.parse().map_err(|_| {
                (
                    at.clone(),
                    format!("'{entry}' is not an IPv4/IPv6 address or CIDR"),
                )
            })?;
            IpNet::from(addr)
        };
        if let IpNet::V6(v6) = net
            && let Some(v4) = v6.addr().to_ipv4_mapped()
        {
            // The kernel sees an IPv4 client as IPv4 packets, never in this
            // form, so such an entry would silently match nothing.
            return Err((
                at,
                format!(
                    "'{entry}' is an IPv4-mapped IPv6 address, which never matches: IPv4 clients \
                     arrive as IPv4 packets; write '{v4}' instead"
                ),
            ));
        }
        out.insert(net);
    }
    Ok(out)
}

/// Turns a toml/serde error into (dotted key, reason). serde_path_to_error
/// tracks the key being read (`firewall.allow[1]`, `store.users[0].bogus`);
/// a syntax error has no key, so it gets a line and column instead.
fn describe_toml_error(
    text: &str,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> (String, String) {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let reason = plain_reason(inner.message());
    if path == "." || path.is_empty() {
        let Some(span) = inner.span() else {
            return ("(document)".into(), reason);
        };
        let start = span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        let key = open_statement_at(text, start)
            .or_else(|| key_at(text, start))
            .unwrap_or_else(|| "(document)".into());
        return (key, format!("{reason} (line {line}, column {column})"));
    }
    (path, reason)
}

/// The dotted key written on the line holding byte `offset`, for errors the
/// TOML parser raises before any key is read (a duplicate key or table, an
/// integer too large for TOML): `firewall.ports` for `ports = [1e30]` under
/// `[firewall]`, `firewall` for a second `[firewall]` header. `None` when
/// the line is not a plain `key = value` or a well-formed header.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let header = |line: &str| -> Option<String> {
        let line = line.trim();
        let inner = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]"));
        let inner = inner.or_else(|| line.strip_prefix('[').and_then(|l| l.strip_suffix(']')));
        inner
            .map(|name| name.trim().to_string())
            .filter(|name| plain_key(name))
    };
    let line = text[line_start..line_end].trim();
    if line.starts_with('[') {
        return header(line);
    }
    // Without `=` (a forgotten one), the key is the first word.
    let key = match line.split_once('=') {
        Some((key, _)) => key.trim(),
        None => line.split([' ', '\t', '[', '"']).next()?,
    };
    if !plain_key(key) {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .and_then(header);
    Some(match table {
        Some(table) => format!("{table}.{key}"),
        None => key.to_string(),
    })
}

/// The statement whose value is still open at byte `offset`: for an array or
/// inline table that is never closed (`allow = ["10.0.0.1"` with no `]`) the
/// parser only notices at the next line's key, but the mistake is in `allow`.
/// `None` when no value is open there.
fn open_statement_at(text: &str, offset: usize) -> Option<String> {
    let bytes = &text.as_bytes()[..offset.min(text.len())];
    let (mut depth, mut in_value) = (0usize, false);
    let (mut line_start, mut statement_start) = (0, 0);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                line_start = i + 1;
                if depth == 0 {
                    in_value = false;
                }
            }
            b'#' => {
                while i + 1 < bytes.len() && bytes[i + 1] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                let triple = bytes[i..].starts_with(&[q, q, q]);
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    if q == b'"' && bytes[i] == b'\\' {
                        i += 2;
                        continue;
                    }
                    if (triple && bytes[i..].starts_with(&[q, q, q]))
                        || (!triple && (bytes[i] == q || bytes[i] == b'\n'))
                    {
                        break;
                    }
                    i += 1;
                }
                if triple {
                    i += 2;
                }
            }
            b'=' if depth == 0 => {
                in_value = true;
                statement_start = line_start;
            }
            b'[' | b'{' if in_value => depth += 1,
            b']' | b'}' if depth > 0 => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        key_at(text, statement_start)
    } else {
        None
    }
}

/// A bare or dotted TOML key (`ports`, `store.tls`): nothing quoted, so it
/// reads back the way the user wrote it.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('.').all(|part| {
            let part = part.trim();
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// The same for the `[store]` table, read from a `toml::Table` (no spans).
fn describe_store_error(
    table: &toml::Value,
    e: serde_path_to_error::Error<toml::de::Error>,
) -> (String, String) {
    let key = format!("store.{}", e.path());
    let value = value_at(table, e.path());
    let inner = e.into_inner();
    let reason = plain_reason(inner.message());
    if reason == "invalid socket address syntax" {
        let shown = value.map_or(String::new(), |v| format!("{v} "));
        return (
            key,
            format!(
                "{shown}is not an address and port: write \"127.0.0.1:6379\" or \"[::1]:6379\" \
                 (an IP address, not a host name; port 0-65535)"
            ),
        );
    }
    if reason.starts_with("unknown field `password`") {
        return (
            key,
            "plaintext passwords are refused in the policy file; use password_sha256 \
             (hex SHA-256, like ACL #...), password_file or password_env"
                .into(),
        );
    }
    (key, reason)
}

/// The value a deserialisation error points at, for quoting it back.
fn value_at<'v>(
    root: &'v toml::Value,
    path: &serde_path_to_error::Path,
) -> Option<&'v toml::Value> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(root, |v, segment| match segment {
        Segment::Seq { index } => v.as_array()?.get(*index),
        Segment::Map { key } => v.as_table()?.get(key),
        _ => None,
    })
}

/// serde's wording with Rust type names replaced by TOML ones.
fn plain_reason(message: &str) -> String {
    let mut reason = message.trim().replace('\n', ": ");
    for (rust, toml) in [
        ("expected i64", "expected an integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected a boolean", "expected true or false"),
        (
            "expected a sequence",
            "expected a list, e.g. [\"a\", \"b\"]",
        ),
        // toml's wording when an enum (appendfsync, ...) gets a bool or number.
        (
            "invalid type: unit variant, expected string only",
            "invalid type: expected a quoted string",
        ),
    ] {
        reason = reason.replace(rust, toml);
    }
    if let Some(at) = reason.find("expected struct ") {
        reason.truncate(at);
        reason.push_str("expected a table");
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(Path::new("test.toml"), text)
    }

    fn key_of(text: &str) -> String {
        match parse(text) {
            Err(PolicyError::Invalid { key, file, reason }) => {
                assert_eq!(file, Path::new("test.toml"));
                assert!(!reason.is_empty());
                key
            }
            other => panic!("expected an invalid-policy error, got {other:?}"),
        }
    }

    const GOOD: &str = r#"
[firewall]
interfaces = ["eth0", "eth1"]
xdp_mode = "native"
ports = [6379, 6380]
mode = "audit"
allow = ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]
deny = ["10.9.0.0/16"]
http_guard = true
resp_only = true
"#;

    #[test]
    fn full_example_parses() {
        let p = parse(GOOD).unwrap();
        let fw = p.firewall.unwrap();
        assert_eq!(fw.interfaces, ["eth0", "eth1"]);
        assert_eq!(fw.xdp_mode, XdpMode::Native);
        assert_eq!(fw.mode, Mode::Audit);
        assert_eq!(fw.ports.iter().copied().collect::<Vec<_>>(), [6379, 6380]);
        assert!(fw.allow.contains(&"192.0.2.7/32".parse().unwrap()));
        assert!(fw.allow.contains(&"fd00::/8".parse().unwrap()));
        assert!(fw.resp_only);
        assert_eq!(fw.pin_path, Path::new(DEFAULT_PIN_PATH));
    }

    #[test]
    fn defaults_are_secure() {
        let p = parse("[firewall]\ninterfaces = [\"lo\"]\n").unwrap();
        let fw = p.firewall.unwrap();
        assert!(fw.allow.is_empty(), "empty allow means nobody gets in");
        assert_eq!(fw.mode, Mode::Enforce);
        assert!(fw.http_guard);
        assert_eq!(fw.ports.iter().copied().collect::<Vec<_>>(), [6379]);
        assert_eq!(fw.xdp_mode, XdpMode::Auto);
    }

    #[test]
    fn every_error_names_its_key() {
        let fw = |body: &str| format!("[firewall]\ninterfaces = [\"lo\"]\n{body}\n");
        assert_eq!(key_of("[firewall]\nports=[1]\n"), "firewall.interfaces");
        assert_eq!(
            key_of("[firewall]\ninterfaces = []\n"),
            "firewall.interfaces"
        );
        assert_eq!(key_of(&fw("ports = [6379, 0]")), "firewall.ports[1]");
        assert_eq!(key_of(&fw("ports = [70000]")), "firewall.ports[0]");
        assert_eq!(key_of(&fw("ports = []")), "firewall.ports");
        assert_eq!(key_of(&fw("ports = \"6379\"")), "firewall.ports");
        assert_eq!(
            key_of(&fw("allow = [\"10.0.0.0/8\", \"10.0.0.0/33\"]")),
            "firewall.allow[1]"
        );
        assert_eq!(key_of(&fw("allow = [\"10.0.0.1/8\"]")), "firewall.allow[0]");
        assert_eq!(key_of(&fw("deny = [\"not-an-ip\"]")), "firewall.deny[0]");
        assert_eq!(key_of(&fw("mode = \"block\"")), "firewall.mode");
        assert_eq!(key_of(&fw("xdp_mode = \"offload\"")), "firewall.xdp_mode");
        assert_eq!(key_of(&fw("http_gaurd = true")), "firewall.http_gaurd");
        assert_eq!(key_of(&fw("pin_path = \"relative\"")), "firewall.pin_path");
        assert_eq!(key_of(&fw("resp_only = 1")), "firewall.resp_only");
        assert_eq!(key_of("[firewal]\ninterfaces=[\"lo\"]\n"), "firewal");
        assert_eq!(key_of("[store]\nbogus = 1\n"), "store.bogus");
        assert_eq!(
            key_of("[firewall]\ninterfaces = [\"lo\", \"eth0\", \"lo\"]\n"),
            "firewall.interfaces[2]"
        );
        assert_eq!(
            key_of(&fw("allow = [\"::ffff:10.0.0.1\"]")),
            "firewall.allow[0]"
        );
        // Nested tables and array elements are named exactly.
        assert_eq!(key_of("[store.tls]\nbogus = 1\n"), "store.tls.bogus");
        assert_eq!(
            key_of("[[store.users]]\nname = \"a\"\nnopass = true\nbogus = 1\n"),
            "store.users[0].bogus"
        );
        assert_eq!(key_of("[firewall.sub]\nx = 1\n"), "firewall.sub");
        assert_eq!(
            key_of(&fw("allow = [\"10.0.0.0/8\", 5]")),
            "firewall.allow[1]"
        );
        assert_eq!(key_of(&fw("ports = [\"6379\"]")), "firewall.ports[0]");
        assert_eq!(key_of("firewall = 1\n"), "firewall");
        assert_eq!(key_of("[firewall\n"), "(document)");
        // Errors the TOML parser raises before any key is read still name the
        // key written on the offending line.
        assert_eq!(
            key_of(&fw("ports = [99999999999999999999]")),
            "firewall.ports"
        );
        assert_eq!(
            key_of("[firewall]\ninterfaces = [\"a\"]\ninterfaces = [\"b\"]\n"),
            "firewall.interfaces"
        );
        assert_eq!(
            key_of("[firewall]\ninterfaces = [\"a\"]\n[firewall]\nports = [1]\n"),
            "firewall"
        );
        assert_eq!(key_of("mode = \"audit\"\nmode = 1\n"), "mode");
        // A syntax error is charged to the statement it is in, not to the
        // line where the parser noticed it.
        assert_eq!(
            key_of(&fw(
                "allow = [\"10.0.0.1\",\n  \"10.0.0.2\" # [x\ndeny = []"
            )),
            "firewall.allow"
        );
        assert_eq!(
            key_of(&fw("allow = [\"10.0.0.1\"\nports = [1]")),
            "firewall.allow"
        );
        assert_eq!(
            key_of("[firewall]\ninterfaces [\"lo\"]\n"),
            "firewall.interfaces"
        );
        assert_eq!(
            key_of(&fw("allow = [\"a]\"]\nports = [1, 2,, 3]")),
            "firewall.ports"
        );
    }

    #[test]
    fn lists_that_overflow_the_kernel_tables_are_refused() {
        // 65537 distinct /24s.
        let many: Vec<String> = (0..=TRIE_ENTRIES as usize)
            .map(|i| format!("\"{}.{}.{}.0/24\"", 1 + (i >> 16), i >> 8 & 0xff, i & 0xff))
            .collect();
        let text = format!(
            "[firewall]\ninterfaces = [\"lo\"]\ndeny = [{}]\n",
            many.join(", ")
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("test.toml: key `firewall.deny`:"), "{e}");
        assert!(e.contains("65537 IPv4 entries"), "{e}");
        let text = format!(
            "[firewall]\ninterfaces = [\"lo\"]\nallow = [{}]\n",
            many[..TRIE_ENTRIES as usize].join(", ")
        );
        assert_eq!(parse(&text).unwrap().firewall.unwrap().allow.len(), 65536);
    }

    #[test]
    fn reasons_speak_toml_and_syntax_errors_have_a_position() {
        let reason = |text: &str| match parse(text) {
            Err(PolicyError::Invalid { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        let r = reason("firewall = 1\n");
        assert!(r.ends_with("expected a table"), "{r}");
        let r = reason("[firewall]\ninterfaces = [\"lo\"]\nports = [6379.0]\n");
        assert!(r.contains("expected an integer"), "{r}");
        let r = reason("# policy\n[firewall\n");
        assert!(r.contains("(line 2, column"), "{r}");
        let r = reason("[firewall]\ninterfaces = \"eth0\"\n");
        assert!(r.contains("expected a list"), "{r}");
        let r = reason("[store]\nlisten = [\"10.0.0.1:99999\"]\n");
        assert!(
            r.contains("\"10.0.0.1:99999\" is not an address and port"),
            "{r}"
        );
        let e = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chain.matches("No such file").count(), 1, "{chain}");
    }

    #[test]
    fn messages_name_file_key_and_reason() {
        let e = parse("[firewall]\ninterfaces = [\"lo\"]\nallow = [\"10.0.0.0/33\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test.toml: key `firewall.allow[0]`:"), "{e}");
        assert!(e.contains("10.0.0.0/33"), "{e}");
    }

    #[test]
    fn store_table_contract() {
        let p = parse(
            "[store]\nenabled = true\nlisten = [\"127.0.0.1:6379\", \"[::1]:6379\"]\n\
             maxmemory = \"512mb\"\nmaxmemory_policy = \"noeviction\"\nappendonly = false\n",
        )
        .unwrap();
        assert!(p.store.enabled);
        assert_eq!(p.store.listen.len(), 2);
        for policy in [
            "noeviction",
            "allkeys-lru",
            "volatile-lru",
            "allkeys-random",
            "volatile-ttl",
        ] {
            parse(&format!("[store]\nmaxmemory_policy = \"{policy}\"\n")).unwrap();
        }
        assert_eq!(
            key_of("[store]\nmaxmemory_policy = \"lru\"\n"),
            "store.maxmemory_policy"
        );
        // Without an explicit `enabled`, `run` does not start a store.
        assert!(
            !parse("[store]\nlisten = [\"127.0.0.1:7000\"]\n")
                .unwrap()
                .store
                .enabled
        );
        assert!(!parse("").unwrap().store.enabled);
    }

    #[test]
    fn nopass_only_on_loopback_and_no_plaintext_passwords() {
        let nopass = |listen: &str| {
            format!(
                "[store]\nlisten = [{listen}]\n[[store.users]]\nname = \"app\"\nnopass = true\n"
            )
        };
        parse(&nopass("\"127.0.0.1:6379\", \"[::1]:6379\"")).unwrap();
        let e = parse(&nopass("\"127.0.0.1:6379\", \"0.0.0.0:6379\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("store.users[0].nopass") && e.contains("`app`"),
            "{e}"
        );
        // A TLS listener on a public address exposes the store just the same.
        let tls = |addr: &str| {
            format!(
                "{}[store.tls]\nlisten = [\"{addr}\"]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n",
                nopass("\"127.0.0.1:6379\"")
            )
        };
        parse(&tls("127.0.0.1:6380")).unwrap();
        let e = parse(&tls("0.0.0.0:6380")).unwrap_err().to_string();
        assert!(
            e.contains("store.users[0].nopass") && e.contains("0.0.0.0:6380"),
            "{e}"
        );
        // Without users the store would generate a password for `default`
        // and serve it on the public TLS port: refused, as for plaintext.
        let no_users = |addr: &str| {
            format!(
                "[store]\nlisten = [\"127.0.0.1:6379\"]\n[store.tls]\nlisten = [\"{addr}\"]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n"
            )
        };
        parse(&no_users("127.0.0.1:6380")).unwrap();
        let e = parse(&no_users("10.77.0.1:6380")).unwrap_err().to_string();
        assert!(
            e.contains("store.users") && e.contains("10.77.0.1:6380"),
            "{e}"
        );
        let e = parse("[store]\n[[store.users]]\nname = \"a\"\npassword = \"hunter2\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("store.users[0].password"), "{e}");
        assert!(e.contains("plaintext passwords are refused"), "{e}");
        assert!(
            !e.contains("hunter2"),
            "the message must not echo the secret: {e}"
        );
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = Policy::load(Path::new("/nonexistent/policy.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/policy.toml"), "{e}");
    }
}
