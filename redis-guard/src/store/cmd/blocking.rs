//! Blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP.
//!
//! A client that finds nothing registers a [`Waiter`] under the keyspace
//! lock, so a push cannot slip in between the check and the registration.
//! Writes mark keys with waiters as ready; after each command (still under
//! the lock) [`serve_ready`] hands data to waiters in arrival order and sends
//! each its encoded reply through a oneshot channel. The pop and the push
//! are therefore one atomic step from every other client's point of view,
//! whichever task runs them.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::lists::side;
use super::{BlockRequest, CmdError, CmdResult, Ctx, err, int_arg, is, name_of, parse_float};
use crate::store::frame::Out;
use crate::store::keyspace::{Keyspace, now_ms};
use crate::store::value::{Key, ListVal, ZSetVal};

/// What a blocked client wants to do once a key has data.
#[derive(Debug, Clone)]
pub enum BlockOp {
    /// BLPOP/BRPOP: reply `[key, value]`.
    Pop {
        /// Pop from the head.
        left: bool,
    },
    /// BLMOVE/BRPOPLPUSH: reply the moved value.
    Move {
        /// Pop from the head of the source.
        from_left: bool,
        /// Push at the head of the destination.
        to_left: bool,
        /// Destination list.
        dest: Key,
    },
    /// BLMPOP/LMPOP: reply `[key, [values]]`.
    MPop {
        /// Pop from the head.
        left: bool,
        /// Maximum elements.
        count: usize,
    },
    /// BZPOPMIN/BZPOPMAX: reply `[key, member, score]`.
    ZPop {
        /// Pop the highest scores.
        max: bool,
    },
    /// BZMPOP/ZMPOP: reply `[key, [[member, score], ...]]`.
    ZMPop {
        /// Pop the highest scores.
        max: bool,
        /// Maximum elements.
        count: usize,
    },
}

/// A blocked client.
pub struct Waiter {
    /// Database of the keys.
    pub db: usize,
    /// Keys waited on.
    pub keys: Vec<Key>,
    /// Operation to run.
    pub op: BlockOp,
    /// Encode the reply as RESP3.
    pub resp3: bool,
    /// The blocked client's id (`CLIENT UNBLOCK`).
    pub client: u64,
    /// Whether it waits with a timeout (`INFO`'s `clients_in_timeout_table`).
    pub timed: bool,
    /// Where the encoded reply goes.
    pub tx: oneshot::Sender<Vec<u8>>,
}

/// Runs `op` on `key` if it holds data: returns the encoded reply, `None` if empty.
pub fn try_op(
    ks: &mut Keyspace,
    db: usize,
    key: &[u8],
    op: &BlockOp,
    resp3: bool,
) -> Result<Option<Vec<u8>>, CmdError> {
    let now = now_ms();
    let clock = ks.clock();
    let mut buf = BytesMut::new();
    let mut out = Out::new(&mut buf, resp3);
    let mut popped = 1;
    match op {
        BlockOp::Pop { left } => {
            let v = ks.dbs[db].write::<ListVal, _>(key, now, clock, false, |l| l.pop(*left))?;
            let Some(Some(v)) = v else { return Ok(None) };
            out.array(2);
            out.bulk(key);
            out.bulk(&v);
        }
        BlockOp::MPop { left, count } => {
            let v = ks.dbs[db].write::<ListVal, _>(key, now, clock, false, |l| {
                let mut v = Vec::new();
                while v.len() < *count {
                    match l.pop(*left) {
                        Some(x) => v.push(x),
                        None => break,
                    }
                }
                v
            })?;
            let Some(v) = v.filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            popped = v.len();
            out.array(2);
            out.bulk(key);
            out.array(v.len());
            for x in v {
                out.bulk(&x);
            }
        }
        BlockOp::Move {
            from_left,
            to_left,
            dest,
        } => {
            if !ks.dbs[db].check::<ListVal>(key, now)? {
                return Ok(None);
            }
            ks.dbs[db].check::<ListVal>(dest, now)?;
            let v = if **dest == *key {
                // A rotation: the list never empties, so a one-element list
                // keeps its key and its TTL, as in Redis.
                ks.dbs[db].write::<ListVal, _>(key, now, clock, false, |l| {
                    let v = l.pop(*from_left);
                    if let Some(x) = &v {
                        l.push(x, *to_left);
                    }
                    v
                })?
            } else {
                let v = ks.dbs[db]
                    .write::<ListVal, _>(key, now, clock, false, |l| l.pop(*from_left))?;
                if let Some(Some(x)) = &v {
                    ks.dbs[db]
                        .write::<ListVal, _>(dest, now, clock, true, |l| l.push(x, *to_left))?;
                }
                v
            };
            let Some(Some(v)) = v else { return Ok(None) };
            out.bulk(&v);
        }
        BlockOp::ZPop { max } => {
            let v = ks.dbs[db].write::<ZSetVal, _>(key, now, clock, false, |z| zpop(z, *max, 1))?;
            let Some(mut v) = v.filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            let (m, s) = v.remove(0);
            out.array(3);
            out.bulk(key);
            out.bulk(&m);
            out.double(s);
        }
        BlockOp::ZMPop { max, count } => {
            let v = ks.dbs[db]
                .write::<ZSetVal, _>(key, now, clock, false, |z| zpop(z, *max, *count))?;
            let Some(v) = v.filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            popped = v.len();
            out.array(2);
            out.bulk(key);
            out.array(v.len());
            for (m, s) in v {
                out.array(2);
                out.bulk(&m);
                out.double(s);
            }
        }
    }
    ks.dirty += 1;
    if ks.oplog.enabled {
        ks.oplog.effects.push((db, effect_of(key, op, popped)));
    }
    Ok(Some(buf.to_vec()))
}

/// The non-blocking command that does what `op` just did to `key`, for the
/// log: replay must neither block nor depend on who was waiting.
fn effect_of(key: &[u8], op: &BlockOp, popped: usize) -> Vec<Bytes> {
    let side = |left: bool| Bytes::from_static(if left { b"LEFT" } else { b"RIGHT" });
    let key = Bytes::copy_from_slice(key);
    let n = Bytes::from(popped.to_string());
    let name = |s: &'static str| Bytes::from_static(s.as_bytes());
    match op {
        BlockOp::Pop { left } => vec![name(if *left { "LPOP" } else { "RPOP" }), key],
        BlockOp::MPop { left, .. } => vec![name(if *left { "LPOP" } else { "RPOP" }), key, n],
        BlockOp::Move {
            from_left,
            to_left,
            dest,
        } => vec![
            name("LMOVE"),
            key,
            Bytes::copy_from_slice(dest),
            side(*from_left),
            side(*to_left),
        ],
        BlockOp::ZPop { max } => vec![name(if *max { "ZPOPMAX" } else { "ZPOPMIN" }), key],
        BlockOp::ZMPop { max, .. } => {
            vec![name(if *max { "ZPOPMAX" } else { "ZPOPMIN" }), key, n]
        }
    }
}

/// Pops up to `count` lowest (or highest) members.
pub fn zpop(z: &mut ZSetVal, max: bool, count: usize) -> Vec<(Key, f64)> {
    let mut v = Vec::new();
    while v.len() < count {
        let Some(x) = z.pop(max) else { break };
        v.push(x);
    }
    v
}

/// Removes a waiter from the registry and from every key queue it sits in.
pub fn remove_waiter(ks: &mut Keyspace, id: u64) -> Option<Waiter> {
    let w = ks.waiters.remove(&id)?;
    if let Some(db) = ks.dbs.get_mut(w.db) {
        for k in &w.keys {
            if let Some(q) = db.blocked.get_mut(k) {
                q.retain(|x| *x != id);
                if q.is_empty() {
                    db.blocked.remove(k);
                }
            }
        }
    }
    Some(w)
}

/// Serves waiters of keys written since the last pass, in FIFO order.
pub fn serve_ready(ks: &mut Keyspace) {
    // Keys only become ready while someone is blocked; skip the scan otherwise.
    if ks.waiters.is_empty() {
        return;
    }
    loop {
        let mut ready: Vec<(usize, Key)> = Vec::new();
        for (i, db) in ks.dbs.iter_mut().enumerate() {
            ready.extend(db.ready.drain(..).map(|k| (i, k)));
        }
        if ready.is_empty() {
            return;
        }
        for (dbi, key) in ready {
            // Every waiter in arrival order, skipping the ones this key cannot
            // serve: a `BLPOP` ahead of a `BZPOPMIN` on a key that turns out
            // to be a sorted set stays blocked, and the `BZPOPMIN` is served,
            // as Redis serves each waiter whose type matches.
            let queue: Vec<u64> = match ks.dbs[dbi].blocked.get(&key) {
                Some(q) => q.iter().copied().collect(),
                None => continue,
            };
            for wid in queue {
                let Some(w) = ks.waiters.get(&wid) else {
                    continue;
                };
                let (op, resp3) = (w.op.clone(), w.resp3);
                // A key holding nothing poppable, or another type, leaves this
                // waiter blocked (like Redis, which only serves matching types).
                let reply = match try_op(ks, dbi, &key, &op, resp3) {
                    Ok(Some(reply)) => reply,
                    // The source is a list but a move's destination is not:
                    // Redis wakes the waiter with the error rather than leave
                    // it blocked on a move that can never happen.
                    Err(e)
                        if matches!(op, BlockOp::Move { .. })
                            && ks.dbs[dbi].check::<ListVal>(&key, now_ms()).is_ok() =>
                    {
                        let mut buf = BytesMut::new();
                        Out::new(&mut buf, resp3).error(&e.to_string());
                        buf.to_vec()
                    }
                    _ => continue,
                };
                if let Some(w) = remove_waiter(ks, wid) {
                    let _ = w.tx.send(reply);
                }
                // Emptied: nobody behind can be served from it.
                if ks.dbs[dbi].peek(&key, now_ms()).is_none() {
                    break;
                }
            }
            // Entries whose waiter already left (timed out, disconnected).
            let waiters = &ks.waiters;
            if let Some(q) = ks.dbs[dbi].blocked.get_mut(&key) {
                q.retain(|w| waiters.contains_key(w));
                if q.is_empty() {
                    ks.dbs[dbi].blocked.remove(&key);
                }
            }
        }
    }
}

/// `CLIENT UNBLOCK`: wakes client `id` if it is blocked, as if its timeout
/// had passed or with an `-UNBLOCKED` error. Returns whether it was.
pub fn unblock_client(ks: &mut Keyspace, id: u64, error: bool) -> bool {
    let Some(wid) = ks
        .waiters
        .iter()
        .find(|(_, w)| w.client == id)
        .map(|(wid, _)| *wid)
    else {
        return false;
    };
    let Some(w) = remove_waiter(ks, wid) else {
        return false;
    };
    let reply: &[u8] = if error {
        b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    } else if w.resp3 {
        b"_\r\n"
    } else {
        b"*-1\r\n"
    };
    let _ = w.tx.send(reply.to_vec());
    true
}

/// Parses a blocking timeout in (fractional) seconds; 0 = forever.
fn timeout_arg(a: &[u8]) -> Result<Option<Duration>, CmdError> {
    // Redis reads the timeout as a long double, so its range is wider
    // than f64's; what overflows its milliseconds counter it calls
    // negative (Redis 7.0's own wording).
    if !crate::store::long_double::valid(a) {
        return Err(err("timeout is not a float or out of range"));
    }
    let t = std::str::from_utf8(a)
        .ok()
        .and_then(super::strtod)
        .ok_or_else(|| err("timeout is not a float or out of range"))?;
    if t.is_nan() {
        return Err(err("timeout is not a float or out of range"));
    }
    // Redis blocks for ceil(t * 1000) ms: only a value at or below -1 ms is
    // negative; a smaller negative one rounds to 0, which means forever.
    // Past i64::MAX ms Redis's conversion turns negative; up to it Redis
    // blocks (as good as forever), and an f64 product that rounds up to
    // exactly 2^63 is still a value Redis's long double holds below it.
    if t * 1000.0 <= -1.0 || t * 1000.0 > i64::MAX as f64 {
        return Err(err("timeout is negative"));
    }
    if t < 0.0 {
        return Ok(None);
    }
    // A positive value too small for f64 still waits the least Redis can
    // (its ceil() makes it 1 ms), not forever.
    if t == 0.0 && parse_float(a) != Some(0.0) {
        return Ok(Some(Duration::from_millis(1)));
    }
    // Beyond ~317 years a deadline is "never"; it also keeps Instant
    // arithmetic far from overflow.
    if t == 0.0 || t > 1e10 {
        return Ok(None);
    }
    Ok(Some(Duration::from_secs_f64(t)))
}

/// Tries the keys in order, otherwise blocks (or replies null inside MULTI).
fn block_or_serve(
    ctx: &mut Ctx<'_, '_>,
    keys: Vec<Key>,
    op: BlockOp,
    timeout: Option<Duration>,
) -> CmdResult {
    let db = ctx.client.db;
    let resp3 = ctx.client.resp3;
    let client = ctx.client.handle.id;
    let in_exec = ctx.in_exec;
    let ks = ctx.ks();
    for k in &keys {
        if let Some(r) = try_op(ks, db, k, &op, resp3)? {
            ctx.out.raw(&r);
            return Ok(());
        }
    }
    if in_exec {
        // Redis's "cannot block here" reply: a null bulk for the moves
        // (their value is a bulk), a null array for the pops.
        if matches!(op, BlockOp::Move { .. }) {
            ctx.out.null();
        } else {
            ctx.out.null_array();
        }
        return Ok(());
    }
    let id = ks.next_waiter;
    ks.next_waiter += 1;
    let (tx, rx) = oneshot::channel();
    for k in &keys {
        let q = ks.dbs[db].blocked.entry(k.clone()).or_default();
        if !q.contains(&id) {
            q.push_back(id);
        }
    }
    ks.waiters.insert(
        id,
        Waiter {
            db,
            keys,
            op,
            resp3,
            client,
            timed: timeout.is_some(),
            tx,
        },
    );
    ctx.block = Some(BlockRequest {
        rx,
        waiter: id,
        timeout,
        // Set by `finish`, which knows the reply mode.
        silent: false,
    });
    Ok(())
}

fn keys_of(args: &[Bytes]) -> Vec<Key> {
    args.iter().map(|a| Box::from(&a[..])).collect()
}

/// BLPOP / BRPOP key [key ...] timeout
pub fn bpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let left = name_of(args) == "blpop";
    let timeout = timeout_arg(&args[args.len() - 1])?;
    let keys = keys_of(&args[1..args.len() - 1]);
    block_or_serve(ctx, keys, BlockOp::Pop { left }, timeout)
}

/// BLMOVE src dst LEFT|RIGHT LEFT|RIGHT timeout / BRPOPLPUSH src dst timeout
pub fn bmove(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (from_left, to_left, t) = if name_of(args) == "blmove" {
        (side(&args[3])?, side(&args[4])?, &args[5])
    } else {
        (false, true, &args[3])
    };
    let timeout = timeout_arg(t)?;
    let op = BlockOp::Move {
        from_left,
        to_left,
        dest: Box::from(&args[2][..]),
    };
    block_or_serve(ctx, keys_of(&args[1..2]), op, timeout)
}

/// Parses `numkeys key... <word> [COUNT n]` shared by (B)LMPOP and (B)ZMPOP.
/// Returns (keys, word index, count).
pub fn parse_mpop(args: &[Bytes], at: usize) -> Result<(Vec<Key>, usize, usize), CmdError> {
    let n = int_arg(&args[at]).map_err(|_| err("numkeys should be greater than 0"))?;
    if n <= 0 {
        return Err(err("numkeys should be greater than 0"));
    }
    let n = n as usize;
    if args.len() < at + 1 + n + 1 {
        return Err(CmdError::Syntax);
    }
    let keys = keys_of(&args[at + 1..at + 1 + n]);
    let word = at + 1 + n;
    // The direction word is checked by the caller, but before COUNT, as in
    // Redis: for a word that is neither, COUNT's value does not matter.
    if !(is(&args[word], "left")
        || is(&args[word], "right")
        || is(&args[word], "min")
        || is(&args[word], "max"))
    {
        return Err(CmdError::Syntax);
    }
    // Words are read in order, as Redis does: a bad COUNT value is
    // reported before a second COUNT or a stray word.
    let mut count = None;
    let mut j = word + 1;
    while j < args.len() {
        if count.is_none() && is(&args[j], "count") && j + 1 < args.len() {
            let c = int_arg(&args[j + 1]).map_err(|_| err("count should be greater than 0"))?;
            if c <= 0 {
                return Err(err("count should be greater than 0"));
            }
            count = Some(c as usize);
            j += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let count = count.unwrap_or(1);
    Ok((keys, word, count))
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn bmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    // Redis reads the timeout last, after numkeys, the direction and COUNT.
    let (keys, word, count) = parse_mpop(args, 2)?;
    let left = side(&args[word])?;
    let timeout = timeout_arg(&args[1])?;
    block_or_serve(ctx, keys, BlockOp::MPop { left, count }, timeout)
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout
pub fn bzpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let max = name_of(args) == "bzpopmax";
    let timeout = timeout_arg(&args[args.len() - 1])?;
    let keys = keys_of(&args[1..args.len() - 1]);
    block_or_serve(ctx, keys, BlockOp::ZPop { max }, timeout)
}

/// Parses MIN|MAX.
pub fn minmax(a: &[u8]) -> Result<bool, CmdError> {
    if is(a, "min") {
        Ok(false)
    } else if is(a, "max") {
        Ok(true)
    } else {
        Err(CmdError::Syntax)
    }
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
pub fn bzmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (keys, word, count) = parse_mpop(args, 2)?;
    let max = minmax(&args[word])?;
    let timeout = timeout_arg(&args[1])?;
    block_or_serve(ctx, keys, BlockOp::ZMPop { max, count }, timeout)
}

/// Non-blocking (L|Z)MPOP: first non-empty key, or a null array.
pub fn mpop_now(ctx: &mut Ctx<'_, '_>, keys: Vec<Key>, op: BlockOp) -> CmdResult {
    let db = ctx.client.db;
    let resp3 = ctx.client.resp3;
    let ks = ctx.ks();
    for k in &keys {
        if let Some(r) = try_op(ks, db, k, &op, resp3)? {
            ctx.out.raw(&r);
            return Ok(());
        }
    }
    ctx.out.null_array();
    Ok(())
}
