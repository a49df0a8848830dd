//! The slow log: recent commands whose execution took longer than
//! `slowlog_log_slower_than` microseconds, read with `SLOWLOG GET` (by
//! RedisInsight's slow-log view and redis_exporter, for example).
//!
//! Entries are bounded the way Redis bounds them (at most
//! `slowlog_max_len` entries, 32 arguments each, 128 bytes per argument),
//! so a flood of slow commands costs a fixed amount of memory. Commands
//! that carry secrets (`AUTH`, `HELLO`, `ACL`) are never recorded.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// Arguments kept per entry; the last slot says how many were left out.
const MAX_ARGS: usize = 32;
/// Bytes kept per argument; the rest is summarised.
const MAX_ARG_LEN: usize = 128;

/// One recorded command.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Unique, increasing id (not reset by `SLOWLOG RESET`).
    pub id: u64,
    /// Unix time (seconds) the command was recorded.
    pub time: u64,
    /// Execution time in microseconds.
    pub micros: u64,
    /// The command and its arguments, shortened as Redis shortens them.
    pub args: Vec<Bytes>,
    /// `ip:port` of the client.
    pub peer: String,
    /// The client's name (`CLIENT SETNAME`), or empty.
    pub name: Bytes,
}

/// The bounded log itself.
#[derive(Debug, Default)]
pub struct SlowLog {
    entries: VecDeque<Entry>,
    next_id: u64,
}

impl SlowLog {
    /// Records one command, dropping the oldest entry beyond `max_len`.
    pub fn push(&mut self, args: &[Bytes], micros: u64, peer: String, name: Bytes, max_len: usize) {
        if max_len == 0 {
            return;
        }
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let entry = Entry {
            id: self.next_id,
            time,
            micros,
            args: shorten(args),
            peer,
            name,
        };
        self.next_id += 1;
        self.entries.push_front(entry);
        self.entries.truncate(max_len);
    }

    /// The newest `count` entries, newest first.
    pub fn newest(&self, count: usize) -> impl Iterator<Item = &Entry> {
        self.entries.iter().take(count)
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every entry (ids keep increasing).
    pub fn reset(&mut self) {
        self.entries.clear();
    }
}

/// Whether a command may be recorded at all: never one whose arguments
/// can hold a password, and never `EXEC` (its commands ran inside it).
pub fn recordable(name: &str) -> bool {
    !matches!(name, "auth" | "hello" | "acl" | "exec")
}

fn shorten(args: &[Bytes]) -> Vec<Bytes> {
    let kept = if args.len() > MAX_ARGS {
        MAX_ARGS - 1
    } else {
        args.len()
    };
    let mut out: Vec<Bytes> = args[..kept]
        .iter()
        .map(|a| {
            if a.len() > MAX_ARG_LEN {
                let mut s = a[..MAX_ARG_LEN].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                );
                Bytes::from(s)
            } else {
                // A copy: a slice would pin the whole request buffer.
                Bytes::copy_from_slice(a)
            }
        })
        .collect();
    if args.len() > MAX_ARGS {
        out.push(Bytes::from(format!(
            "... ({} more arguments)",
            args.len() - kept
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_like_redis() {
        let mut log = SlowLog::default();
        let many: Vec<Bytes> = (0..40).map(|i| Bytes::from(i.to_string())).collect();
        log.push(&many, 5, "1.2.3.4:5".into(), Bytes::new(), 2);
        let e = log.newest(1).next().unwrap();
        assert_eq!(e.args.len(), 32);
        assert_eq!(&e.args[31][..], b"... (9 more arguments)");
        let long = vec![Bytes::from("set"), Bytes::from(vec![b'x'; 200])];
        log.push(&long, 6, "p".into(), Bytes::new(), 2);
        log.push(&long, 7, "p".into(), Bytes::new(), 2);
        assert_eq!(log.len(), 2);
        let ids: Vec<u64> = log.newest(10).map(|e| e.id).collect();
        assert_eq!(ids, [2, 1], "newest first, oldest dropped");
        let arg = &log.newest(1).next().unwrap().args[1];
        assert!(arg.ends_with(b"x... (72 more bytes)"));
        assert_eq!(arg.len(), 128 + "... (72 more bytes)".len());
        log.reset();
        assert!(log.is_empty());
        log.push(&long, 8, "p".into(), Bytes::new(), 2);
        assert_eq!(log.newest(1).next().unwrap().id, 3);
    }
}
