//! Security events as JSON lines.
//!
//! Machines read these (SIEMs, log shippers), so every event is one JSON
//! object on one line with a stable `event` field; human-oriented logs go
//! through `tracing` on stderr instead.

use std::{
    collections::HashMap,
    ffi::CStr,
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use aya::maps::{MapData, RingBuf};
use redis_guard_common::{FAMILY_V4, FlowEvent, FlowKey, MODE_AUDIT, REASON_HTTP};
use serde_json::{Value, json};
use tokio::io::unix::AsyncFd;

/// Where events go: stdout, shared by every task that reports.
#[derive(Clone)]
pub struct EventSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl Default for EventSink {
    fn default() -> Self {
        EventSink::new(Box::new(std::io::stdout()))
    }
}

impl EventSink {
    /// A sink writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> EventSink {
        EventSink {
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// Writes one event: `fields` plus `ts` and `event`, as one line.
    pub fn emit(&self, event: &str, fields: Value) {
        let line = event_line(event, fields);
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A closed stdout must not take the firewall down with it.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// One event as a JSON line: `ts` and `event`, then `fields` in the order
/// they were written (serde_json's `preserve_order`), newline included.
/// A reader scanning a log by eye finds the time and kind first.
pub fn event_line(event: &str, fields: Value) -> String {
    let mut map = serde_json::Map::new();
    map.insert(
        "ts".into(),
        humantime::format_rfc3339_millis(SystemTime::now())
            .to_string()
            .into(),
    );
    map.insert("event".into(), event.into());
    if let Value::Object(fields) = fields {
        for (k, v) in fields {
            if k != "ts" && k != "event" {
                map.insert(k, v);
            }
        }
    }
    let mut line = Value::Object(map).to_string();
    line.push('\n');
    line
}

/// At most [`RateLimiter::BURST`] events per (kind, source) per window.
#[derive(Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<(&'static str, IpAddr), (Instant, u32, u64)>,
}

impl RateLimiter {
    const BURST: u32 = 5;
    const WINDOW: Duration = Duration::from_secs(60);
    /// Sources tracked at once; beyond it expired windows are forgotten.
    const MAX_SOURCES: usize = 10_000;

    /// `Some(suppressed so far)` if this event may be written.
    pub(crate) fn admit(
        &mut self,
        kind: &'static str,
        source: IpAddr,
        now: Instant,
    ) -> Option<u64> {
        if self.windows.len() >= Self::MAX_SOURCES {
            self.windows
                .retain(|_, (start, _, _)| now.duration_since(*start) < Self::WINDOW);
            if self.windows.len() >= Self::MAX_SOURCES {
                // Still full of live sources: a spread-out flood. Drop the
                // detail, keep the process's memory bounded.
                self.windows.clear();
            }
        }
        let entry = self.windows.entry((kind, source)).or_insert((now, 0, 0));
        if now.duration_since(entry.0) >= Self::WINDOW {
            entry.0 = now;
            entry.1 = 0;
        }
        if entry.1 < Self::BURST {
            entry.1 += 1;
            Some(std::mem::take(&mut entry.2))
        } else {
            entry.2 += 1;
            None
        }
    }
}

/// The client and server addresses of a flow key.
pub fn flow_addrs(key: &FlowKey) -> (IpAddr, IpAddr) {
    if key.family == FAMILY_V4 {
        let v4 = |a: &[u8; 16]| IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
        (v4(&key.src), v4(&key.dst))
    } else {
        (
            IpAddr::V6(Ipv6Addr::from(key.src)),
            IpAddr::V6(Ipv6Addr::from(key.dst)),
        )
    }
}

/// Interface name for an index, or the index itself if it has gone away.
pub fn interface_name(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return ifindex.to_string();
    }
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Name of a mark reason.
pub fn reason_name(reason: u32) -> &'static str {
    if reason == REASON_HTTP {
        "http"
    } else {
        "not_resp"
    }
}

/// The JSON fields of a marked-flow event.
pub fn flow_event_fields(ev: &FlowEvent) -> Value {
    let (src, dst) = flow_addrs(&ev.key);
    json!({
        "reason": reason_name(ev.reason),
        "action": if ev.mode == MODE_AUDIT { "audited" } else { "dropped" },
        "src": src.to_string(),
        "sport": ev.key.sport,
        "dst": dst.to_string(),
        "dport": ev.key.dport,
        "interface": interface_name(ev.ifindex),
    })
}

/// Reads the kernel's marked-flow ring buffer until cancelled, emitting one
/// `flow_marked` event per record.
pub async fn pump_flow_events(ring: RingBuf<MapData>, sink: EventSink) -> anyhow::Result<()> {
    // SAFETY: the RingBuf owns its map fd and keeps it open, unchanged, for
    // as long as the AsyncFd owns the RingBuf.
    let mut fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("cannot poll the event ring buffer: {e}"))?;
    loop {
        let mut guard = fd.readable_mut().await?;
        let ring = guard.get_inner_mut();
        while let Some(item) = ring.next() {
            if item.len() < std::mem::size_of::<FlowEvent>() {
                tracing::warn!(len = item.len(), "short record in event ring buffer");
                continue;
            }
            // SAFETY: the kernel wrote a FlowEvent (repr(C), all fields plain
            // integers); read_unaligned because ring records are 8-aligned
            // only by convention.
            let ev: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            sink.emit("flow_marked", flow_event_fields(&ev));
        }
        guard.clear_ready();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_lead_with_time_and_kind_then_keep_the_written_order() {
        let line = event_line(
            "flow_marked",
            json!({"reason": "http", "action": "dropped", "src": "10.0.0.1", "event": "spoofed"}),
        );
        assert!(line.ends_with('\n'));
        let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&line)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["ts", "event", "reason", "action", "src"]);
        assert!(line.contains("\"event\":\"flow_marked\""), "{line}");
    }

    #[test]
    fn rate_limiter_bursts_then_counts_what_it_suppressed() {
        let mut l = RateLimiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..RateLimiter::BURST {
            assert_eq!(l.admit("k", a, t0), Some(0));
        }
        assert_eq!(l.admit("k", a, t0), None);
        assert_eq!(l.admit("k", a, t0), None);
        assert_eq!(
            l.admit("k", b, t0),
            Some(0),
            "other sources are not affected"
        );
        assert_eq!(l.admit("other", a, t0), Some(0), "nor other kinds");
        let later = t0 + RateLimiter::WINDOW;
        assert_eq!(
            l.admit("k", a, later),
            Some(2),
            "the next window reports the suppressed"
        );
    }
}
