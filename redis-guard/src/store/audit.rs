//! The store's audit trail: security events as JSON lines on stderr and,
//! when `audit_log` is set, appended to that file.
//!
//! Lines are rate-limited per (kind, source) so that one scanner cannot
//! flood the log or the disk, but the per-kind counters (shown by `INFO
//! security`) count every event, so the totals stay true.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use parking_lot::Mutex;
use serde_json::Value;

use crate::events::{RateLimiter, event_line};

/// Event kinds the store emits; `INFO security` lists each, zeros included,
/// so a monitoring query never depends on an event having happened.
pub const KINDS: &[&str] = &[
    "auth_success",
    "auth_failure",
    "auth_ban",
    "auth_timeout",
    "connection_refused_banned",
    "connection_refused_maxclients",
    "connection_rate_limited",
    "cross_protocol_kill",
    "dangerous_command_refused",
    "acl_change",
    "noperm",
    "client_output_buffer_limit",
    "client_query_buffer_limit",
    "tls_handshake_failed",
];

/// Destination and counters of one store's security events.
pub struct Audit {
    file: Option<Mutex<File>>,
    limiter: Mutex<RateLimiter>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
}

impl Audit {
    /// Opens `path` for appending (created with mode 0600) when given.
    pub fn open(path: Option<&Path>) -> anyhow::Result<Audit> {
        let file = match path {
            Some(p) => {
                use std::os::unix::fs::OpenOptionsExt;
                let f = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    // Events name users and addresses: not for other local users.
                    .mode(0o600)
                    .open(p)
                    .with_context(|| format!("store.audit_log: cannot open {}", p.display()))?;
                Some(Mutex::new(f))
            }
            None => None,
        };
        Ok(Audit {
            file,
            limiter: Mutex::new(RateLimiter::default()),
            counts: Mutex::new(KINDS.iter().map(|k| (*k, 0)).collect()),
        })
    }

    /// Records one event from `source`: always counted; written (with the
    /// peer and the number of lines suppressed since the last one) unless
    /// this (kind, source) pair is over its rate.
    pub fn event(&self, kind: &'static str, source: IpAddr, mut fields: Value) {
        *self.counts.lock().entry(kind).or_insert(0) += 1;
        let Some(suppressed) = self.limiter.lock().admit(kind, source, Instant::now()) else {
            return;
        };
        if let Value::Object(map) = &mut fields {
            map.insert("peer".into(), source.to_string().into());
            if suppressed > 0 {
                map.insert("suppressed_since_last".into(), suppressed.into());
            }
        }
        let line = event_line(kind, fields);
        // Losing the log must not take the store down: errors are reported
        // through tracing and the event is still counted.
        if let Err(e) = std::io::stderr().lock().write_all(line.as_bytes()) {
            tracing::debug!(error = %e, "cannot write a security event to stderr");
        }
        if let Some(f) = &self.file
            && let Err(e) = f.lock().write_all(line.as_bytes())
        {
            tracing::warn!(error = %e, "cannot append to store.audit_log");
        }
    }

    /// Total events per kind since start.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        self.counts.lock().iter().map(|(k, v)| (*k, *v)).collect()
    }
}
