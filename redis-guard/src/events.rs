//! Security events as JSON lines.
//!
//! Machines read these (SIEMs, log shippers), so every event is one JSON
//! object on one line with a stable `event` field; human-oriented logs go
//! through `tracing` on stderr instead.

use std::{
    ffi::CStr,
    io::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::{Arc, Mutex},
    time::SystemTime,
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
    pub fn emit(&self, event: &str, mut fields: Value) {
        if let Value::Object(map) = &mut fields {
            map.insert(
                "ts".into(),
                humantime::format_rfc3339_millis(SystemTime::now())
                    .to_string()
                    .into(),
            );
            map.insert("event".into(), event.into());
        }
        let mut line = fields.to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A closed stdout must not take the firewall down with it.
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
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
