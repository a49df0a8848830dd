//! ACL: WHOAMI, USERS, LIST, CAT, GETUSER, DRYRUN, LOG, GENPASS and, when
//! `acl_runtime_changes = true`, SETUSER and DELUSER.
//!
//! Runtime changes live in memory only. The policy file stays the source of
//! truth: nothing here ever writes it, and a restart returns to it. That is
//! why `ACL SAVE`/`ACL LOAD` do not exist.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{COMMANDS, CmdResult, Ctx, acl_request, arity_ok, err, is, lookup};
use crate::store::auth::{CATEGORIES, Denied, RuleSource, Rules, Selector, User, known_command};
use crate::store::cmd::connection::client_line;
use crate::store::frame::Out;

/// Looks the client's user up again after the user table changed. A user
/// that was deleted meanwhile takes its connections with it.
pub fn refresh_user(ctx: &mut Ctx<'_, '_>) -> CmdResult {
    ctx.client.acl_epoch = ctx.shared.acl_epoch.load(Ordering::Acquire);
    let Some(name) = ctx.client.user.as_ref().map(|u| u.name.clone()) else {
        return Ok(());
    };
    match ctx.shared.users.read().get(&name) {
        Some(u) => {
            ctx.client.user = Some(u);
            Ok(())
        }
        None => {
            ctx.client.close = true;
            Err(err(format!("user '{name}' was deleted")))
        }
    }
}

/// Records a refusal in `ACL LOG` and as a `noperm` security event.
pub fn log_denied(ctx: &mut Ctx<'_, '_>, user: &str, denied: &Denied) {
    let context = if ctx.client.multi.is_some() || ctx.in_exec {
        "multi"
    } else {
        "toplevel"
    };
    let object = denied.object();
    let info = client_line(&ctx.client.handle);
    ctx.shared.acl_log.lock().record(
        denied.reason(),
        context,
        object.clone(),
        user.to_string(),
        info,
        ctx.now,
    );
    let (command, key, channel) = match denied {
        Denied::Command(_) => (Some(object.as_str()), None, None),
        Denied::Key(_) => (None, Some(object.as_str()), None),
        Denied::Channel(_) => (None, None, Some(object.as_str())),
    };
    ctx.shared.audit.event(
        "noperm",
        ctx.client.handle.addr.ip(),
        serde_json::json!({
            "user": user,
            "reason": denied.reason(),
            "command": command.unwrap_or_else(|| ctx_command(ctx)),
            "key": key.map(|k| truncate(k, 128)),
            "channel": channel.map(|c| truncate(c, 128)),
        }),
    );
}

fn ctx_command<'x>(ctx: &Ctx<'_, '_>) -> &'x str {
    let i = ctx.client.handle.last_cmd.load(Ordering::Relaxed);
    if i == 0 {
        "unknown"
    } else {
        COMMANDS[i - 1].name
    }
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// ACL subcommand
pub fn acl(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let n = args.len();
    let wrong = || err(format!("wrong number of arguments for 'acl|{sub}' command"));
    match sub.as_str() {
        "whoami" if n == 2 => {
            let name = ctx.client.user.as_ref().map(|u| u.name.clone());
            ctx.out.bulk(name.unwrap_or_default().as_bytes());
        }
        "users" if n == 2 => {
            let names = ctx.shared.users.read().names();
            ctx.out.array(names.len());
            for u in names {
                ctx.out.bulk(u.as_bytes());
            }
        }
        "list" if n == 2 => {
            let users = ctx.shared.users.read();
            let names = users.names();
            ctx.out.array(names.len());
            for name in names {
                if let Some(u) = users.get(&name) {
                    ctx.out
                        .bulk(format!("user {} {}", u.name, u.rules.describe()).as_bytes());
                }
            }
        }
        "cat" if n <= 3 => cat(ctx, args.get(2))?,
        "getuser" if n == 3 => getuser(ctx, &args[2]),
        "dryrun" if n >= 4 => dryrun(ctx, &args[2..])?,
        "log" if n <= 3 => log(ctx, args.get(2))?,
        "genpass" if n <= 3 => genpass(ctx, args.get(2))?,
        "setuser" if n >= 3 => setuser(ctx, &args[2..])?,
        "deluser" if n >= 3 => deluser(ctx, &args[2..])?,
        "save" | "load" if n == 2 => {
            return Err(err(
                "ACL SAVE/LOAD are not available: users come from the redis-guard policy file, which the store never writes",
            ));
        }
        "help" if n == 2 => ctx.out.simple_lines(&[
            "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CAT [<category>]",
            "    List all commands that belong to <category>, or all command categories.",
            "DELUSER <username> [<username> ...]",
            "    Delete a list of users (needs store.acl_runtime_changes = true).",
            "DRYRUN <username> <command> [<arg> ...]",
            "    Returns whether the user can execute the given command without executing it.",
            "GETUSER <username>",
            "    Get the user's details.",
            "GENPASS [<bits>]",
            "    Generate a secure 256-bit user password. The optional `bits` argument can",
            "    be used to specify a different size.",
            "LIST",
            "    Show users details in config file format.",
            "LOG [<count> | RESET]",
            "    Show the ACL log entries.",
            "SETUSER <username> <attribute> [<attribute> ...]",
            "    Create or modify a user (needs store.acl_runtime_changes = true).",
            "USERS",
            "    List all the registered usernames.",
            "WHOAMI",
            "    Return the current connection username.",
            "HELP",
            "    Print this help.",
        ]),
        "whoami" | "users" | "list" | "cat" | "getuser" | "dryrun" | "log" | "genpass"
        | "setuser" | "deluser" | "save" | "load" | "help" => return Err(wrong()),
        _ => {
            return Err(super::unknown_subcommand(&args[1], "acl"));
        }
    }
    Ok(())
}

fn cat(ctx: &mut Ctx<'_, '_>, which: Option<&Bytes>) -> CmdResult {
    let Some(which) = which else {
        ctx.out.array(CATEGORIES.len());
        for c in CATEGORIES {
            ctx.out.bulk(c.as_bytes());
        }
        return Ok(());
    };
    // Redis takes the bare name: `ACL CAT @read` is an unknown category.
    let want = String::from_utf8_lossy(which).to_ascii_lowercase();
    if !CATEGORIES.contains(&want.as_str()) {
        return Err(err(format!(
            "Unknown category '{}'",
            String::from_utf8_lossy(which)
        )));
    }
    // A container is listed by its own categories, then each subcommand by
    // its own, as Redis 7.0 lists them (`client`, `client|kill`, ...).
    let mut names: Vec<String> = Vec::new();
    for c in COMMANDS.iter() {
        if !c.container {
            if c.categories.contains(&want.as_str()) {
                names.push(c.name.to_string());
            }
            continue;
        }
        if super::container_categories(c.name).contains(&want.as_str()) {
            names.push(c.name.to_string());
        }
        for (full, _) in super::SUBCOMMANDS {
            let Some(sub) = full.strip_prefix(c.name).and_then(|r| r.strip_prefix('|')) else {
                continue;
            };
            let cats = super::sub_categories(c.name, sub).unwrap_or(&c.categories);
            if cats.contains(&want.as_str()) {
                names.push(full.to_string());
            }
        }
    }
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
    Ok(())
}

fn selector_map(out: &mut Out<'_>, s: &Selector) {
    out.map(3);
    out.bulk(b"commands");
    out.bulk(s.commands_text().as_bytes());
    out.bulk(b"keys");
    out.bulk(s.keys_text().as_bytes());
    out.bulk(b"channels");
    out.bulk(s.channels_text().as_bytes());
}

fn getuser(ctx: &mut Ctx<'_, '_>, name: &[u8]) {
    let user = std::str::from_utf8(name)
        .ok()
        .and_then(|n| ctx.shared.users.read().get(n));
    let Some(u) = user else {
        ctx.out.null();
        return;
    };
    let r = &u.rules;
    let out = &mut ctx.out;
    out.map(6);
    out.bulk(b"flags");
    let flags = r.flags();
    // A set in RESP3, as Redis replies it.
    out.set(flags.len());
    for f in flags {
        out.bulk(f.as_bytes());
    }
    out.bulk(b"passwords");
    let hashes = r.password_hashes();
    out.array(hashes.len());
    for h in hashes {
        out.bulk(h.as_bytes());
    }
    out.bulk(b"commands");
    out.bulk(r.root().commands_text().as_bytes());
    out.bulk(b"keys");
    out.bulk(r.root().keys_text().as_bytes());
    out.bulk(b"channels");
    out.bulk(r.root().channels_text().as_bytes());
    out.bulk(b"selectors");
    out.array(r.selectors().len());
    for s in r.selectors() {
        selector_map(out, s);
    }
}

fn dryrun(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[0]).into_owned();
    let user = ctx
        .shared
        .users
        .read()
        .get(&name)
        .ok_or_else(|| err(format!("User '{name}' not found")))?;
    let cmd_args = &args[1..];
    let Some(idx) = lookup(&cmd_args[0]) else {
        return Err(err(format!(
            "Command '{}' not found",
            String::from_utf8_lossy(&cmd_args[0])
        )));
    };
    let cmd = &COMMANDS[idx];
    if !arity_ok(cmd, cmd_args.len()) {
        return Err(err(format!(
            "wrong number of arguments for '{}' command",
            cmd.name
        )));
    }
    let mut buf = String::new();
    let req = acl_request(cmd, cmd_args, &mut buf);
    match user
        .check(&req)
        .or_else(|d| if cmd.no_auth { Ok(()) } else { Err(d) })
    {
        Ok(()) => ctx.out.ok(),
        Err(d) => ctx.out.bulk(d.dryrun().as_bytes()),
    }
    Ok(())
}

fn log(ctx: &mut Ctx<'_, '_>, arg: Option<&Bytes>) -> CmdResult {
    let count = match arg {
        None => 10,
        Some(a) if is(a, "reset") => {
            ctx.shared.acl_log.lock().reset();
            ctx.out.ok();
            return Ok(());
        }
        // A negative count lists nothing, as on redis-server 7.0.15.
        Some(a) => usize::try_from(super::int_arg(a)?).unwrap_or(0),
    };
    let entries = ctx.shared.acl_log.lock().recent(count);
    let now = ctx.now;
    let out = &mut ctx.out;
    out.array(entries.len());
    for e in entries {
        out.map(10);
        out.bulk(b"count");
        out.int(e.count as i64);
        out.bulk(b"reason");
        out.bulk(e.reason.as_bytes());
        out.bulk(b"context");
        out.bulk(e.context.as_bytes());
        out.bulk(b"object");
        out.bulk(e.object.as_bytes());
        out.bulk(b"username");
        out.bulk(e.username.as_bytes());
        // Redis ages an entry from its latest occurrence, not its first.
        out.bulk(b"age-seconds");
        out.double(now.saturating_sub(e.updated_ms) as f64 / 1000.0);
        out.bulk(b"client-info");
        out.bulk(e.client_info.as_bytes());
        out.bulk(b"entry-id");
        out.int(e.entry_id as i64);
        out.bulk(b"timestamp-created");
        out.int(e.created_ms as i64);
        out.bulk(b"timestamp-last-updated");
        out.int(e.updated_ms as i64);
    }
    Ok(())
}

fn genpass(ctx: &mut Ctx<'_, '_>, bits: Option<&Bytes>) -> CmdResult {
    let bits = match bits {
        None => 256,
        Some(b) => {
            let n = super::int_arg(b)?;
            if !(1..=4096).contains(&n) {
                return Err(err(
                    "ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096",
                ));
            }
            n as usize
        }
    };
    let chars = bits.div_ceil(4);
    let mut bytes = vec![0u8; chars.div_ceil(2)];
    rand::fill(&mut bytes[..]);
    let mut hex = hex::encode(bytes);
    hex.truncate(chars);
    ctx.out.bulk(hex.as_bytes());
    Ok(())
}

fn runtime_changes_allowed(ctx: &Ctx<'_, '_>, what: &str) -> CmdResult {
    if ctx.shared.config.acl_runtime_changes {
        Ok(())
    } else {
        Err(err(format!(
            "ACL {what} is disabled: users come from the policy file; set store.acl_runtime_changes = true to allow runtime changes"
        )))
    }
}

fn valid_user_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| b.is_ascii_graphic())
}

fn setuser(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    runtime_changes_allowed(ctx, "SETUSER")?;
    let name = std::str::from_utf8(&args[0])
        .ok()
        .filter(|n| valid_user_name(n))
        .ok_or_else(|| err("Usernames can't contain spaces or null characters"))?
        .to_string();
    let exposed = ctx
        .shared
        .addrs
        .iter()
        .find(|a| !a.ip().is_loopback())
        .copied();
    let mut users = ctx.shared.users.write();
    let mut rules = users
        .get(&name)
        .map(|u| u.rules.clone())
        .unwrap_or_else(Rules::empty);
    // All rules are checked before any takes effect, like Redis: a typo in
    // the fifth rule must not leave the first four applied.
    for tok in merge_selectors(&args[1..])? {
        if let Some(addr) = exposed
            && tok.eq_ignore_ascii_case("nopass")
        {
            return Err(err(format!(
                "Error in ACL SETUSER modifier 'nopass': the store listens on {addr}, which is not loopback, so every user needs a password"
            )));
        }
        rules
            .apply(&tok, RuleSource::Runtime, &known_command)
            .map_err(|e| err(format!("Error in ACL SETUSER modifier {e}")))?;
    }
    let disabled = !rules.enabled();
    let user = User::new(name.clone(), rules.clone());
    users.insert(User::new(name.clone(), rules));
    drop(users);
    ctx.shared.acl_epoch.fetch_add(1, Ordering::AcqRel);
    if disabled {
        // A user switched off loses its live sessions too: disabling is
        // what an operator does to a leaked credential.
        kill_clients_of(ctx, &name);
    } else {
        // As in Redis, a subscriber whose channels were taken away is
        // unsubscribed and disconnected at once: it must not keep receiving
        // what it may no longer subscribe to.
        let lost = ctx
            .shared
            .pubsub
            .lock()
            .revoke(&name, |c, pattern| user.allows_channel(c, !pattern));
        for h in lost {
            if h.id == ctx.client.handle.id {
                ctx.client.close = true;
            } else {
                h.kill();
            }
        }
    }
    acl_change_event(ctx, "setuser", &name);
    ctx.out.ok();
    Ok(())
}

/// Joins a selector a client sent as several arguments (`"(~x*" "+get)"`,
/// or unquoted from redis-cli) back into one rule, as Redis does.
fn merge_selectors(args: &[Bytes]) -> Result<Vec<String>, super::CmdError> {
    let mut out = Vec::with_capacity(args.len());
    let mut open: Option<String> = None;
    for a in args {
        let tok = String::from_utf8_lossy(a).into_owned();
        match open.as_mut() {
            Some(sel) => {
                sel.push(' ');
                sel.push_str(&tok);
                if tok.ends_with(')') {
                    out.extend(open.take());
                }
            }
            None if tok.starts_with('(') && !tok.ends_with(')') => open = Some(tok),
            None => out.push(tok),
        }
    }
    match open {
        Some(sel) => Err(err(format!(
            "Unmatched parenthesis in acl selector starting at '{sel}'."
        ))),
        None => Ok(out),
    }
}

fn deluser(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    runtime_changes_allowed(ctx, "DELUSER")?;
    let names: Vec<String> = args
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if names.iter().any(|n| n == "default") {
        return Err(err("The 'default' user cannot be removed"));
    }
    let mut removed = Vec::new();
    {
        let mut users = ctx.shared.users.write();
        for n in &names {
            if users.remove(n) {
                removed.push(n.clone());
            }
        }
    }
    if !removed.is_empty() {
        ctx.shared.acl_epoch.fetch_add(1, Ordering::AcqRel);
    }
    for n in &removed {
        kill_clients_of(ctx, n);
        acl_change_event(ctx, "deluser", n);
    }
    ctx.out.int(removed.len() as i64);
    Ok(())
}

fn kill_clients_of(ctx: &mut Ctx<'_, '_>, name: &str) {
    let me = ctx.client.handle.id;
    let victims: Vec<_> = ctx
        .shared
        .clients
        .lock()
        .values()
        .filter(|h| h.id != me && *h.user.lock() == name)
        .cloned()
        .collect();
    for h in victims {
        h.kill();
    }
    if ctx.client.user.as_ref().is_some_and(|u| u.name == name) {
        ctx.client.close = true;
    }
}

fn acl_change_event(ctx: &Ctx<'_, '_>, action: &str, target: &str) {
    tracing::warn!(by = ?ctx.client.user.as_ref().map(|u| &u.name), action, target, "ACL changed at runtime");
    ctx.shared.audit.event(
        "acl_change",
        ctx.client.handle.addr.ip(),
        serde_json::json!({
            "action": action,
            "target": target,
            "user": ctx.client.user.as_ref().map(|u| u.name.clone()),
        }),
    );
}
