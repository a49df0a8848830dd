//! MULTI / EXEC / DISCARD / WATCH / UNWATCH.
//!
//! `EXEC` runs all queued commands while holding the keyspace lock, so no
//! other client observes an intermediate state. `WATCH` registers a flag in
//! the database's watch table; every write path sets it (see
//! [`crate::store::keyspace::Db::signal`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{COMMANDS, CmdResult, Ctx, err, lookup, run_handler};
use crate::store::client::ClientState;
use crate::store::keyspace::Keyspace;

/// Removes all of a client's watches.
pub fn unwatch_all(ks: &mut Keyspace, client: &mut ClientState) {
    for (db, key) in client.watched.drain(..) {
        let Some(d) = ks.dbs.get_mut(db) else {
            continue;
        };
        if let Some(v) = d.watched.get_mut(&key) {
            v.retain(|f| !Arc::ptr_eq(f, &client.watch_dirty));
            if v.is_empty() {
                d.watched.remove(&key);
            }
        }
    }
    client.watch_dirty.store(false, Ordering::Release);
}

fn end_multi(ctx: &mut Ctx<'_, '_>) {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.client.handle.multi.store(usize::MAX, Ordering::Relaxed);
    ctx.client.handle.multi_mem.store(0, Ordering::Relaxed);
    if !ctx.client.watched.is_empty() {
        let mut g = ctx.guard.take().unwrap_or_else(|| ctx.shared.ks.lock());
        unwatch_all(&mut g, ctx.client);
        ctx.guard = Some(g);
    }
}

/// Ends the transaction because `EXEC` itself was rejected (wrong
/// arity): Redis then discards it and replies `EXECABORT` with the reason.
/// The watches go too, even outside `MULTI`, as Redis's discard drops them.
pub fn abort_exec(ctx: &mut Ctx<'_, '_>, reason: &str) {
    if ctx.client.multi.is_some() || !ctx.client.watched.is_empty() {
        end_multi(ctx);
    }
    ctx.out.error(&format!(
        "EXECABORT Transaction discarded because of: {}",
        reason.strip_prefix("ERR ").unwrap_or(reason)
    ));
}

/// MULTI
pub fn multi(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(err("MULTI calls can not be nested"));
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    ctx.client.handle.multi.store(0, Ordering::Relaxed);
    ctx.out.ok();
    Ok(())
}

/// DISCARD
pub fn discard(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_none() {
        return Err(err("DISCARD without MULTI"));
    }
    end_multi(ctx);
    ctx.out.ok();
    Ok(())
}

/// EXEC
pub fn exec(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    let Some(queued) = ctx.client.multi.take() else {
        return Err(err("EXEC without MULTI"));
    };
    // Memory is checked once, before anything runs, as Redis does: a
    // transaction that may need memory is refused whole over `maxmemory`,
    // and one that starts under it runs whole even if it ends above.
    let needs_memory = queued
        .iter()
        .any(|a| lookup(&a[0]).is_some_and(|i| COMMANDS[i].deny_oom));
    let queued_bytes: usize = queued
        .iter()
        .flat_map(|a| a.iter().map(|x| x.len() + 16))
        .sum();
    if needs_memory && ctx.shared.config.maxmemory.0 > 0 && !ctx.ks().make_room_for(queued_bytes) {
        end_multi(ctx);
        return Err(super::CmdError::Msg(format!(
            "EXECABORT Transaction discarded because of: {}",
            super::CmdError::Oom
        )));
    }
    if ctx.client.multi_error {
        end_multi(ctx);
        return Err(super::CmdError::Msg(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    // Lock first: from here on nobody else can touch the data until we finish.
    let now = ctx.now;
    let watched = ctx.client.watched.clone();
    {
        let ks = ctx.ks();
        // Logically expired watched keys count as modified: the lookup expires
        // them, which sets the watch flag.
        for (db, key) in &watched {
            if let Some(d) = ks.dbs.get_mut(*db) {
                d.exists(key, now);
            }
        }
    }
    let dirty = ctx.client.watch_dirty.load(Ordering::Acquire);
    end_multi(ctx);
    if dirty {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.in_exec = true;
    // One record for the whole transaction: recovery keeps all or none of it.
    let now = ctx.now;
    ctx.ks().oplog.begin_tx(now);
    ctx.out.array(queued.len());
    for args in &queued {
        let start = ctx.out.buf.len();
        let Some(i) = lookup(&args[0]) else {
            ctx.out.error(&super::unknown_command(args));
            continue;
        };
        // Rules may have changed since the command was queued (ACL SETUSER
        // from another connection): it runs only if it is still allowed.
        if let Some(user) = ctx
            .client
            .user
            .as_ref()
            .filter(|u| !u.unrestricted() && !COMMANDS[i].no_auth)
            .cloned()
        {
            let mut name_buf = String::new();
            let req = super::acl_request(&COMMANDS[i], args, &mut name_buf);
            if let Err(denied) = user.check(&req) {
                super::acl::log_denied(ctx, &user.name, &denied);
                ctx.out.error(&format!(
                    "NOPERM ACLs rules changed between the moment the transaction was accumulated \
                     and the EXEC call. This command is no longer allowed for the following \
                     reason: {}",
                    denied.exec_reason()
                ));
                continue;
            }
        }
        if let Err(e) = run_handler(ctx, &COMMANDS[i], args) {
            ctx.out.buf.truncate(start);
            ctx.out.error(&e.to_string());
        }
    }
    ctx.in_exec = false;
    ctx.ks().oplog.end_tx();
    Ok(())
}

/// WATCH key [key ...]
pub fn watch(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if ctx.client.multi.is_some() {
        return Err(err("WATCH inside MULTI is not allowed"));
    }
    let db = ctx.client.db;
    let flag = ctx.client.watch_dirty.clone();
    let mut added = Vec::new();
    {
        let now = ctx.now;
        let ks = ctx.ks();
        for k in &args[1..] {
            // Reclaim a logically expired key now, before the watch exists:
            // like Redis, its later removal must not count as a change.
            ks.dbs[db].exists(k, now);
            let key: Box<[u8]> = Box::from(&k[..]);
            let list = ks.dbs[db].watched.entry(key.clone()).or_default();
            if !list.iter().any(|f| Arc::ptr_eq(f, &flag)) {
                list.push(flag.clone());
                added.push((db, key));
            }
        }
    }
    ctx.client.watched.extend(added);
    ctx.out.ok();
    Ok(())
}

/// UNWATCH
pub fn unwatch(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    if !ctx.client.watched.is_empty() {
        let mut g = ctx.guard.take().unwrap_or_else(|| ctx.shared.ks.lock());
        unwatch_all(&mut g, ctx.client);
        ctx.guard = Some(g);
    }
    ctx.client.watch_dirty.store(false, Ordering::Release);
    ctx.out.ok();
    Ok(())
}
