//! `ACL LOG`: the recent refusals (NOPERM) and failed authentications.
//!
//! Like Redis, repeated identical refusals (same reason, context, object and
//! user within a minute) fold into one entry with a count, so a client
//! hammering a forbidden key cannot push everything else out of the log.
//! The log is bounded; the security event stream keeps the full record.

use std::collections::VecDeque;

/// Entries kept, Redis's `acllog-max-len` default.
pub const MAX_ENTRIES: usize = 128;

/// Identical refusals closer together than this fold into one entry.
const GROUP_MS: u64 = 60_000;

/// One `ACL LOG` entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// How many refusals this entry stands for.
    pub count: u64,
    /// `auth`, `command`, `key` or `channel`.
    pub reason: &'static str,
    /// `toplevel` or `multi`.
    pub context: &'static str,
    /// The command, key or channel refused (`AUTH` for failed logins).
    pub object: String,
    /// The user the client was (or tried to be) logged in as.
    pub username: String,
    /// `CLIENT LIST` line of the most recent client.
    pub client_info: String,
    /// Serial number, unique over the server's life.
    pub entry_id: u64,
    /// Unix ms of the first refusal.
    pub created_ms: u64,
    /// Unix ms of the latest refusal.
    pub updated_ms: u64,
}

/// The log itself, newest first.
#[derive(Debug, Default)]
pub struct AclLog {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl AclLog {
    /// Records a refusal, folding it into a recent identical entry if there is one.
    pub fn record(
        &mut self,
        reason: &'static str,
        context: &'static str,
        object: String,
        username: String,
        client_info: String,
        now_ms: u64,
    ) {
        let same = self.entries.iter().position(|e| {
            e.reason == reason
                && e.context == context
                && e.object == object
                && e.username == username
                && now_ms.saturating_sub(e.updated_ms) < GROUP_MS
        });
        if let Some(i) = same
            && let Some(mut e) = self.entries.remove(i)
        {
            e.count += 1;
            e.updated_ms = now_ms;
            e.client_info = client_info;
            self.entries.push_front(e);
            return;
        }
        let entry_id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(Entry {
            count: 1,
            reason,
            context,
            object,
            username,
            client_info,
            entry_id,
            created_ms: now_ms,
            updated_ms: now_ms,
        });
        self.entries.truncate(MAX_ENTRIES);
    }

    /// Forgets every entry (`ACL LOG RESET`).
    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// Up to `n` entries, newest first.
    pub fn recent(&self, n: usize) -> Vec<Entry> {
        self.entries.iter().take(n).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_repeats_and_stays_bounded() {
        let mut log = AclLog::default();
        for i in 0..3 {
            log.record(
                "key",
                "toplevel",
                "k".into(),
                "u".into(),
                format!("c{i}"),
                1000 + i,
            );
        }
        log.record(
            "command",
            "toplevel",
            "get".into(),
            "u".into(),
            "c".into(),
            2000,
        );
        let r = log.recent(10);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].reason, r[0].count), ("command", 1));
        assert_eq!(
            (r[1].reason, r[1].count, r[1].client_info.as_str()),
            ("key", 3, "c2")
        );
        // A minute later the same refusal starts a new entry.
        log.record(
            "key",
            "toplevel",
            "k".into(),
            "u".into(),
            "c".into(),
            1002 + GROUP_MS,
        );
        assert_eq!(log.recent(10).len(), 3);
        for i in 0..(2 * MAX_ENTRIES as u64) {
            log.record(
                "key",
                "toplevel",
                format!("k{i}"),
                "u".into(),
                "c".into(),
                5000,
            );
        }
        assert_eq!(log.recent(1000).len(), MAX_ENTRIES);
        log.reset();
        assert!(log.recent(10).is_empty());
    }
}
