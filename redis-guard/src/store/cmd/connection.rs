//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::{CmdError, CmdResult, Ctx, err, int_arg, is, wrong_args};
use crate::store::authguard::Verdict;
use crate::store::client::ReplyMode;

/// Version reported to clients; clients gate features on it.
pub const REDIS_VERSION: &str = "7.0.15";

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// PING [message]
pub fn ping(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(wrong_args("ping"));
    }
    if ctx.client.in_subscribed_mode() {
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(args.get(1).map(|a| &a[..]).unwrap_or(b""));
    } else if let Some(m) = args.get(1) {
        ctx.out.bulk(m);
    } else {
        ctx.out.simple("PONG");
    }
    Ok(())
}

/// ECHO message
pub fn echo(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    ctx.out.bulk(&args[1]);
    Ok(())
}

fn set_user(ctx: &mut Ctx<'_, '_>, user: std::sync::Arc<crate::store::auth::User>) {
    *ctx.client.handle.user.lock() = user.name.clone();
    ctx.client.user = Some(user);
}

/// Checks a password; `via` is the command as the client spelled it
/// (`AUTH` or `HELLO`), which Redis's ACL LOG shows as the object.
fn try_auth(ctx: &mut Ctx<'_, '_>, via: &[u8], user: &[u8], pass: &[u8]) -> CmdResult {
    let peer = ctx.client.handle.addr.ip();
    // Bounded: the name goes into logs and events, and it is attacker input.
    let shown = String::from_utf8_lossy(&user[..user.len().min(64)]).into_owned();
    let found = ctx.shared.users.read().authenticate(user, pass);
    match found {
        Some(u) => {
            ctx.shared
                .audit
                .event("auth_success", peer, serde_json::json!({ "user": shown }));
            set_user(ctx, u);
            Ok(())
        }
        None => {
            tracing::info!(client = ctx.client.handle.id, addr = %ctx.client.handle.addr, "AUTH failed");
            ctx.shared
                .audit
                .event("auth_failure", peer, serde_json::json!({ "user": shown }));
            let info = client_line(&ctx.client.handle);
            ctx.shared.acl_log.lock().record(
                "auth",
                if ctx.client.multi.is_some() {
                    "multi"
                } else {
                    "toplevel"
                },
                String::from_utf8_lossy(&via[..via.len().min(64)]).into_owned(),
                shown,
                info,
                ctx.now,
            );
            let delay = Duration::from_millis(ctx.shared.config.auth_failure_delay_ms);
            ctx.client.reply_delay = ctx.client.reply_delay.saturating_add(delay);
            match ctx.shared.auth_guard.record_failure(peer, user, pass) {
                Verdict::Counted => {}
                Verdict::BannedNow(ev) => {
                    let ban_secs = ctx.shared.config.auth_ban_secs;
                    tracing::warn!(addr = %peer, failures = ev.failures, ban_secs, "too many authentication failures; source banned");
                    ctx.shared.audit.event(
                        "auth_ban",
                        peer,
                        serde_json::json!({ "failures": ev.failures, "ban_secs": ban_secs }),
                    );
                    ctx.client.close = true;
                }
                // Another connection of this source got it banned; this one
                // was open before and must not go on guessing.
                Verdict::AlreadyBanned => ctx.client.close = true,
            }
            Err(CmdError::Msg(WRONGPASS.into()))
        }
    }
}

/// AUTH [username] password
pub fn auth(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => {
            if ctx
                .shared
                .users
                .read()
                .get("default")
                .is_some_and(|u| u.nopass() && u.enabled())
            {
                return Err(err(
                    "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                ));
            }
            try_auth(ctx, &args[0], b"default", &args[1])?;
        }
        3 => try_auth(ctx, &args[0], &args[1], &args[2])?,
        _ => return Err(CmdError::Syntax),
    }
    ctx.out.ok();
    Ok(())
}

fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let mut proto = if ctx.client.resp3 { 3 } else { 2 };
    if args.len() >= 2 {
        let v = int_arg(&args[1])
            .map_err(|_| err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&v) {
            return Err(CmdError::Msg("NOPROTO unsupported protocol version".into()));
        }
        proto = v;
    }
    let mut i = 2;
    let mut auth: Option<(Bytes, Bytes)> = None;
    let mut name: Option<Bytes> = None;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "auth") && more >= 2 {
            auth = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if is(&args[i], "setname") && more >= 1 {
            // Checked here, as Redis does: a bad name fails the command
            // before it authenticates anyone.
            if !valid_name(&args[i + 1]) {
                return Err(err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if let Some((u, p)) = &auth {
        try_auth(ctx, &args[0], u, p)?;
    }
    if ctx.client.user.is_none() {
        return Err(CmdError::Msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    if let Some(n) = name {
        *ctx.client.handle.name.lock() = if n.is_empty() {
            None
        } else {
            Some(Bytes::copy_from_slice(&n))
        };
    }
    ctx.client.resp3 = proto == 3;
    ctx.out.resp3 = proto == 3;
    ctx.client
        .handle
        .resp
        .store(proto as usize, Ordering::Relaxed);
    let id = ctx.client.handle.id as i64;
    let out = &mut ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(proto);
    out.bulk(b"id");
    out.int(id);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

/// SELECT index
pub fn select(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let db = super::db_index_arg(&args[1], ctx.shared.config.databases)?;
    ctx.client.db = db;
    ctx.client.handle.db.store(db, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// QUIT
pub fn quit(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    ctx.out.ok();
    ctx.client.close = true;
    Ok(())
}

/// RESET: back to the state of a fresh connection.
pub fn reset(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.client.handle.multi.store(usize::MAX, Ordering::Relaxed);
    ctx.client.handle.multi_mem.store(0, Ordering::Relaxed);
    if !ctx.client.watched.is_empty() {
        let mut g = ctx.guard.take().unwrap_or_else(|| ctx.shared.ks.lock());
        super::transactions::unwatch_all(&mut g, ctx.client);
        ctx.guard = Some(g);
    }
    let id = ctx.client.handle.id;
    if ctx.client.monitor {
        ctx.client.monitor = false;
        super::monitor::remove(ctx.shared, id);
    }
    if !ctx.client.subs.is_empty() || !ctx.client.psubs.is_empty() {
        ctx.shared
            .pubsub
            .lock()
            .remove_client(id, &ctx.client.subs, &ctx.client.psubs);
        ctx.client.subs.clear();
        ctx.client.psubs.clear();
        ctx.client.handle.subs.store(0, Ordering::Relaxed);
        ctx.client.handle.psubs.store(0, Ordering::Relaxed);
    }
    ctx.client.db = 0;
    ctx.client.handle.db.store(0, Ordering::Relaxed);
    ctx.client.resp3 = false;
    ctx.out.resp3 = false;
    ctx.client.handle.resp.store(2, Ordering::Relaxed);
    ctx.client.reply = ReplyMode::On;
    *ctx.client.handle.name.lock() = None;
    ctx.client.handle.no_evict.store(false, Ordering::Relaxed);
    let user = ctx.shared.users.read().autologin();
    *ctx.client.handle.user.lock() = user
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_else(|| "default".into());
    ctx.client.user = user;
    ctx.out.simple("RESET");
    Ok(())
}

/// One `CLIENT LIST` line for a client.
pub fn client_line(h: &crate::store::client::ClientHandle) -> String {
    let age = h.created.elapsed().as_secs();
    let last = h.last_active.load(Ordering::Relaxed);
    let idle = crate::store::keyspace::now_ms().saturating_sub(last) / 1000;
    let name = h
        .name
        .lock()
        .as_ref()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_default();
    let cmd = match (
        h.last_cmd.load(Ordering::Relaxed),
        h.last_sub.load(Ordering::Relaxed),
    ) {
        (0, _) => "NULL".to_string(),
        (_, s) if s > 0 => super::SUBCOMMANDS[s - 1].0.to_string(),
        (i, _) => super::COMMANDS[i - 1].name.to_string(),
    };
    let subs = h.subs.load(Ordering::Relaxed);
    let psubs = h.psubs.load(Ordering::Relaxed);
    let multi = match h.multi.load(Ordering::Relaxed) {
        usize::MAX => -1,
        n => n as i64,
    };
    let omem = h.out_pending.load(Ordering::Relaxed) + h.push_bytes.load(Ordering::Relaxed);
    let qbuf = h.qbuf.load(Ordering::Relaxed);
    let qbuf_cap = h.qbuf_cap.load(Ordering::Relaxed).max(qbuf);
    let multi_mem = h.multi_mem.load(Ordering::Relaxed);
    // In Redis's order: O (monitor), P, x, b, e.
    let mut flags = String::new();
    if h.monitor.load(Ordering::Relaxed) {
        flags.push('O');
    }
    if subs + psubs > 0 {
        flags.push('P');
    }
    if multi >= 0 {
        flags.push('x');
    }
    if h.blocked.load(Ordering::Relaxed) || h.paused.load(Ordering::Relaxed) {
        flags.push('b');
    }
    if h.no_evict.load(Ordering::Relaxed) {
        flags.push('e');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    format!(
        "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf={qbuf} qbuf-free={} argv-mem=0 multi-mem={multi_mem} rbs={qbuf_cap} rbp={qbuf_cap} obl=0 oll={} omem={omem} tot-mem={} events={} cmd={} user={} redir=-1 resp={}",
        h.id,
        h.addr,
        h.laddr,
        h.fd.load(Ordering::Relaxed),
        name,
        age,
        idle,
        flags,
        h.db.load(Ordering::Relaxed),
        subs - psubs.min(subs),
        psubs,
        multi,
        qbuf_cap - qbuf,
        // Redis's reply list holds 16 KB blocks.
        omem.div_ceil(16 * 1024),
        qbuf_cap + omem + multi_mem,
        if omem > 0 { "rw" } else { "r" },
        cmd,
        h.user.lock(),
        h.resp.load(Ordering::Relaxed),
    )
}

/// CLIENT subcommands.
pub fn client(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let n = args.len();
    let wrong = || {
        err(format!(
            "wrong number of arguments for 'client|{sub}' command"
        ))
    };
    match sub.as_str() {
        "id" if n == 2 => ctx.out.int(ctx.client.handle.id as i64),
        "getname" if n == 2 => match ctx.client.handle.name.lock().clone() {
            Some(nm) => ctx.out.bulk(&nm),
            None => ctx.out.null(),
        },
        "setname" if n == 3 => {
            if !valid_name(&args[2]) {
                return Err(err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            *ctx.client.handle.name.lock() = if args[2].is_empty() {
                None
            } else {
                Some(Bytes::copy_from_slice(&args[2]))
            };
            ctx.out.ok();
        }
        "setinfo" if n == 4 => ctx.out.ok(),
        "info" if n == 2 => {
            let mut line = client_line(&ctx.client.handle);
            line.push('\n');
            ctx.out.verbatim(line.as_bytes());
        }
        "list" => {
            let mut ids: Option<Vec<u64>> = None;
            let mut ty: Option<String> = None;
            let mut i = 2;
            while i < n {
                if is(&args[i], "type") && i + 1 < n {
                    let t = String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase();
                    if !matches!(
                        t.as_str(),
                        "normal" | "pubsub" | "master" | "replica" | "slave"
                    ) {
                        return Err(err(format!("Unknown client type '{t}'")));
                    }
                    ty = Some(t);
                    i += 2;
                } else if is(&args[i], "id") && i + 1 < n {
                    let mut v = Vec::new();
                    for a in &args[i + 1..] {
                        let id = int_arg(a).map_err(|_| err("Invalid client ID"))?;
                        v.push(id as u64);
                    }
                    ids = Some(v);
                    i = n;
                } else {
                    return Err(CmdError::Syntax);
                }
            }
            let clients: Vec<_> = {
                let map = ctx.shared.clients.lock();
                let mut v: Vec<_> = map.values().cloned().collect();
                v.sort_by_key(|h| h.id);
                v
            };
            let mut s = String::new();
            for h in clients {
                if ids.as_ref().is_some_and(|ids| !ids.contains(&h.id)) {
                    continue;
                }
                let pubsub = h.subs.load(Ordering::Relaxed) > 0;
                match ty.as_deref() {
                    Some("normal") if pubsub => continue,
                    Some("pubsub") if !pubsub => continue,
                    Some("master" | "replica" | "slave") => continue,
                    _ => {}
                }
                s.push_str(&client_line(&h));
                s.push('\n');
            }
            ctx.out.verbatim(s.as_bytes());
        }
        "kill" if n >= 3 => client_kill(ctx, args)?,
        "unblock" if n == 3 || n == 4 => {
            let id = int_arg(&args[2])?;
            let error = match args.get(3) {
                None => false,
                Some(r) if is(r, "timeout") => false,
                Some(r) if is(r, "error") => true,
                Some(_) => {
                    return Err(err("CLIENT UNBLOCK reason should be TIMEOUT or ERROR"));
                }
            };
            let done = id > 0 && super::blocking::unblock_client(ctx.ks(), id as u64, error);
            ctx.out.int(i64::from(done));
        }
        "pause" if n == 3 || n == 4 => {
            let ms =
                int_arg(&args[2]).map_err(|_| err("timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(err("timeout is negative"));
            }
            let all = match args.get(3) {
                None => true,
                Some(m) if is(m, "all") => true,
                Some(m) if is(m, "write") => false,
                Some(_) => return Err(err("CLIENT PAUSE mode must be WRITE or ALL")),
            };
            let now = crate::store::keyspace::now_ms();
            ctx.shared.pause(now.saturating_add(ms as u64), all, now);
            ctx.out.ok();
        }
        "pause" if n > 4 => {
            return Err(err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&args[1])
            )));
        }
        "unpause" if n == 2 => {
            ctx.shared.unpause();
            ctx.out.ok();
        }
        "no-evict" if n == 3 => {
            let on = if is(&args[2], "on") {
                true
            } else if is(&args[2], "off") {
                false
            } else {
                return Err(CmdError::Syntax);
            };
            ctx.client.handle.no_evict.store(on, Ordering::Relaxed);
            ctx.out.ok();
        }
        "reply" if n == 3 => {
            if is(&args[2], "on") {
                ctx.client.reply = ReplyMode::On;
                ctx.out.ok();
            } else if is(&args[2], "off") {
                ctx.client.reply = ReplyMode::Off;
            } else if is(&args[2], "skip") {
                if ctx.client.reply != ReplyMode::Off {
                    ctx.client.reply = ReplyMode::Skip;
                }
            } else {
                return Err(CmdError::Syntax);
            }
        }
        "help" => {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ID",
                "GETNAME",
                "SETNAME <name>",
                "INFO",
                "LIST [TYPE <type>] [ID <id> ...]",
                "KILL <ip:port> | KILL <option> <value> [...]",
                "NO-EVICT (ON|OFF)",
                "PAUSE <timeout> [WRITE|ALL]",
                "UNPAUSE",
                "REPLY (ON|OFF|SKIP)",
                "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            ];
            ctx.out.simple_lines(&lines);
        }
        "id" | "getname" | "setname" | "info" | "no-evict" | "reply" | "kill" | "setinfo"
        | "unblock" | "pause" | "unpause" => {
            return Err(wrong());
        }
        _ => {
            return Err(super::unknown_subcommand(&args[1], "client"));
        }
    }
    Ok(())
}

fn client_kill(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let clients: Vec<_> = ctx.shared.clients.lock().values().cloned().collect();
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(&args[2]);
        let Some(h) = clients.iter().find(|h| h.addr.to_string() == addr) else {
            return Err(err("No such client"));
        };
        h.kill();
        ctx.out.ok();
        return Ok(());
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut user = None;
    let mut pubsub = None;
    let mut skipme = true;
    let mut i = 2;
    while i + 1 < args.len() {
        let v = String::from_utf8_lossy(&args[i + 1]).into_owned();
        if is(&args[i], "id") {
            let n = int_arg(&args[i + 1])
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| err("client-id should be greater than 0"))?;
            id = Some(n);
        } else if is(&args[i], "addr") {
            addr = Some(v);
        } else if is(&args[i], "laddr") {
            laddr = Some(v);
        } else if is(&args[i], "user") {
            if ctx.shared.users.read().get(&v).is_none() {
                return Err(err(format!("No such user '{v}'")));
            }
            user = Some(v);
        } else if is(&args[i], "type") {
            // No replication here: replica and master clients never exist.
            pubsub = Some(match v.to_ascii_lowercase().as_str() {
                "normal" => Some(false),
                "pubsub" => Some(true),
                "replica" | "slave" | "master" => None,
                _ => return Err(err(format!("Unknown client type '{v}'"))),
            });
        } else if is(&args[i], "skipme") {
            skipme = match v.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return Err(CmdError::Syntax),
            };
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    if i != args.len() {
        return Err(CmdError::Syntax);
    }
    let me = ctx.client.handle.id;
    let mut killed = 0;
    for h in clients {
        if id.is_some_and(|id| h.id as i64 != id)
            || addr.as_ref().is_some_and(|a| h.addr.to_string() != *a)
            || laddr.as_ref().is_some_and(|a| h.laddr.to_string() != *a)
            || user.as_ref().is_some_and(|u| *h.user.lock() != *u)
            || pubsub.is_some_and(|want| {
                let subscribed =
                    h.subs.load(Ordering::Relaxed) + h.psubs.load(Ordering::Relaxed) > 0;
                want != Some(subscribed)
            })
            || (skipme && h.id == me)
        {
            continue;
        }
        h.kill();
        killed += 1;
    }
    ctx.out.int(killed);
    Ok(())
}
