//! MONITOR: a live feed of the commands other clients run.
//!
//! MONITOR shows every key and value that passes through the server, so it
//! is @admin @dangerous like in Redis and only users whose rules grant it can
//! start one. Passwords never reach the feed: `AUTH` and `HELLO … AUTH`
//! arguments are redacted, and administrative commands (`ACL SETUSER` with
//! its `>password` rules, `CONFIG`) are not fed at all, as Redis does.
//! A monitor that does not read its feed is disconnected once its backlog
//! passes the pub/sub limit, so watching cannot be turned into a memory leak.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{CmdResult, Command, Ctx, err, is};
use crate::store::client::{ClientHandle, PushMsg, Pushed};
use crate::store::server::Shared;

/// MONITOR
pub fn monitor(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    // Inside EXEC the client expects one reply per queued command, so it
    // cannot turn into a feed (Redis: a "deny blocking" client).
    if ctx.in_exec {
        return Err(err("MONITOR isn't allowed for DENY BLOCKING client"));
    }
    if !ctx.client.monitor {
        ctx.client.monitor = true;
        ctx.client.handle.monitor.store(true, Ordering::Relaxed);
        let mut m = ctx.shared.monitors.lock();
        m.push(ctx.client.handle.clone());
        ctx.shared.monitor_count.store(m.len(), Ordering::Release);
    }
    ctx.out.ok();
    Ok(())
}

/// Stops feeding a client (disconnect or `RESET`).
pub fn remove(shared: &Shared, id: u64) {
    let mut m = shared.monitors.lock();
    m.retain(|h| h.id != id);
    shared.monitor_count.store(m.len(), Ordering::Release);
}

/// Feeds one executed command to every monitor. Callers check
/// `monitor_count` first, so the common case costs one atomic load.
pub fn feed(shared: &Shared, from: &ClientHandle, db: usize, cmd: &Command, args: &[Bytes]) {
    if is_admin(cmd, args) {
        return;
    }
    let line = Bytes::from(format_line(from, db, cmd, args));
    // Redis counts a monitor as a normal client for its output limit.
    let limit = shared.config.output_buffer_limit_normal.hard_bytes();
    let mut slow = Vec::new();
    {
        let monitors = shared.monitors.lock();
        for h in monitors.iter().filter(|h| h.id != from.id) {
            if h.try_push(PushMsg::Monitor(line.clone()), limit) == Pushed::Overflow {
                slow.push(h.clone());
            }
        }
    }
    for h in slow {
        disconnect_slow(shared, &h);
    }
}

/// Whether Redis would keep this call out of the feed as administrative.
/// The flag belongs to the subcommand: `ACL LIST` and `CLIENT KILL` are
/// hidden, `ACL WHOAMI` and `CLIENT SETNAME` are shown.
fn is_admin(cmd: &Command, args: &[Bytes]) -> bool {
    if super::CONTAINERS.contains(&cmd.name)
        && let Some(sub) = args.get(1)
        && let Some(cats) =
            super::sub_categories(cmd.name, &String::from_utf8_lossy(sub).to_ascii_lowercase())
    {
        return cats.contains(&"admin");
    }
    cmd.has_flag("admin")
}

fn disconnect_slow(shared: &Shared, h: &Arc<ClientHandle>) {
    tracing::warn!(client = h.id, addr = %h.addr, "monitor is not reading its feed; disconnecting");
    shared.audit.event(
        "client_output_buffer_limit",
        h.addr.ip(),
        serde_json::json!({ "client": h.id, "class": "monitor" }),
    );
    remove(shared, h.id);
    h.kill();
}

/// `+<unix secs>.<micros> [<db> <addr>] "arg" …`, with Redis's quoting.
fn format_line(from: &ClientHandle, db: usize, cmd: &Command, args: &[Bytes]) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut s = format!(
        "{}.{:06} [{} {}]",
        now.as_secs(),
        now.subsec_micros(),
        db,
        from.addr
    );
    let redact_from = match cmd.name {
        "auth" => Some(1),
        "hello" => args.iter().position(|a| is(a, "auth")).map(|i| i + 1),
        _ => None,
    };
    for (i, a) in args.iter().enumerate() {
        s.push(' ');
        if redact_from.is_some_and(|r| i >= r) {
            s.push_str("\"(redacted)\"");
        } else {
            quote(&mut s, a);
        }
    }
    s
}

fn quote(s: &mut String, a: &[u8]) {
    s.push('"');
    for &b in a {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
}
