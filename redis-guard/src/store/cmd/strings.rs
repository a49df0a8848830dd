//! String commands.

use bytes::Bytes;

use super::{CmdError, CmdResult, Ctx, err, int_arg, is, name_of};
use crate::store::frame::fmt_i64;
use crate::store::keyspace::{Db, StrForm};
use crate::store::protocol::parse_int;
use crate::store::value::Value;

type Str = Box<[u8]>;

fn str_value(v: &[u8]) -> Value {
    Value::Str(Box::from(v))
}

/// Reads a string value, `Ok(None)` when missing.
fn get_str(db: &mut Db, key: &[u8], now: u64, clock: u32) -> Result<Option<Str>, CmdError> {
    Ok(db.read::<Str, _>(key, now, clock, |s| s.clone())?)
}

/// GET key
pub fn get(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let i = ctx.client.db;
    let now = ctx.now;
    let shared = ctx.shared;
    let ks = ctx.guard.get_or_insert_with(|| shared.ks.lock());
    let clock = ks.clock_at(now);
    let hit = match ks.dbs[i].get(&args[1], now, clock) {
        None => {
            ctx.out.null();
            false
        }
        Some(e) => match &e.value {
            Value::Str(s) => {
                ctx.out.bulk(s);
                true
            }
            _ => return Err(CmdError::WrongType),
        },
    };
    if hit {
        ks.stats.hits += 1;
    } else {
        ks.stats.misses += 1;
    }
    Ok(())
}

/// Parsed expiry option of SET/GETEX.
enum Ttl {
    None,
    At(u64),
    Keep,
    Persist,
}

/// Options of SET (`set = true`) or GETEX, following Redis's own parser:
/// an option may repeat (the last value wins) but never combine with a
/// conflicting one, and only the surviving expiry value is parsed.
fn parse_string_opts(
    args: &[Bytes],
    from: usize,
    set: bool,
    now: u64,
) -> Result<(bool, bool, bool, Ttl), CmdError> {
    let (mut nx, mut xx, mut get, mut keep, mut persist) = (false, false, false, false, false);
    let mut expiry: Option<(&'static str, &Bytes)> = None;
    let mut i = from;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        let other_expiry = |kind: &str| expiry.is_some_and(|(k, _)| k != kind);
        if set && is(a, "nx") && !xx {
            nx = true;
        } else if set && is(a, "xx") && !nx {
            xx = true;
        } else if set && is(a, "get") {
            get = true;
        } else if set && is(a, "keepttl") && !persist && expiry.is_none() {
            keep = true;
        } else if !set && is(a, "persist") && !keep && expiry.is_none() {
            persist = true;
        } else if let (Some(kind), Some(v)) = (
            ["ex", "px", "exat", "pxat"].into_iter().find(|k| is(a, k)),
            next,
        ) && !keep
            && !persist
            && !other_expiry(kind)
        {
            expiry = Some((kind, v));
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let ttl = match expiry {
        Some((kind, v)) => Ttl::At(parse_ttl_value(
            kind,
            v,
            now,
            if set { "set" } else { "getex" },
        )?),
        None if keep => Ttl::Keep,
        None if persist => Ttl::Persist,
        None => Ttl::None,
    };
    Ok((nx, xx, get, ttl))
}

fn parse_ttl_value(kind: &str, v: &[u8], now: u64, cmd: &str) -> Result<u64, CmdError> {
    let n = int_arg(v)?;
    let invalid = || err(format!("invalid expire time in '{cmd}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let ms = match kind {
        "ex" => n.checked_mul(1000).and_then(|m| m.checked_add(now as i64)),
        "px" => n.checked_add(now as i64),
        "exat" => n.checked_mul(1000),
        _ => Some(n),
    }
    .ok_or_else(invalid)?;
    Ok(ms as u64)
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms|KEEPTTL]
pub fn set(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (nx, xx, get, ttl) = parse_string_opts(args, 3, true, ctx.now)?;
    let (db, clock, now) = ctx.db_clock();
    let old = if get {
        get_str(db, &args[1], now, clock)?
    } else {
        None
    };
    let exists_entry = db.peek(&args[1], now).map(|e| e.expire);
    let ok = !(nx && exists_entry.is_some() || xx && exists_entry.is_none());
    if ok {
        let expire = match ttl {
            Ttl::At(ms) => ms,
            Ttl::Keep => exists_entry.unwrap_or(0),
            _ => 0,
        };
        // A time already past is stored as given, as Redis 7.0 stores it:
        // the key counts in DBSIZE until a lookup or the expiry cycle finds
        // it, and then in `expired_keys`.
        db.set(&args[1], str_value(&args[2]), expire, clock);
    }
    if get {
        match old {
            Some(v) => ctx.out.bulk(&v),
            None => ctx.out.null(),
        }
    } else if ok {
        ctx.out.ok();
    } else {
        ctx.out.null();
    }
    Ok(())
}

/// SETNX key value
pub fn setnx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    if db.exists(&args[1], now) {
        ctx.out.int(0);
    } else {
        db.set(&args[1], str_value(&args[2]), 0, clock);
        ctx.out.int(1);
    }
    Ok(())
}

/// SETEX / PSETEX key time value
pub fn setex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let kind = if name == "setex" { "ex" } else { "px" };
    let now = ctx.now;
    let at = parse_ttl_value(kind, &args[2], now, name)?;
    let (db, clock, _) = ctx.db_clock();
    db.set(&args[1], str_value(&args[3]), at, clock);
    ctx.out.ok();
    Ok(())
}

/// MGET key [key ...]
pub fn mget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let vals: Vec<Option<Str>> = args[1..]
        .iter()
        .map(|k| match db.get_read(k, now, clock) {
            Some(e) => match &e.value {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            },
            None => None,
        })
        .collect();
    ctx.out.array(vals.len());
    for v in vals {
        match v {
            Some(v) => ctx.out.bulk(&v),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// MSET / MSETNX key value [key value ...]
pub fn mset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    if args.len().is_multiple_of(2) {
        return Err(super::wrong_args(name));
    }
    let (db, clock, now) = ctx.db_clock();
    if name == "msetnx" && args[1..].chunks(2).any(|kv| db.exists(&kv[0], now)) {
        ctx.out.int(0);
        return Ok(());
    }
    for kv in args[1..].chunks(2) {
        db.set(&kv[0], str_value(&kv[1]), 0, clock);
    }
    if name == "msetnx" {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

/// GETSET key value
pub fn getset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let old = get_str(db, &args[1], now, clock)?;
    db.set(&args[1], str_value(&args[2]), 0, clock);
    match old {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

/// GETDEL key
pub fn getdel(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let old = get_str(db, &args[1], now, clock)?;
    if old.is_some() {
        db.remove(&args[1], now);
    }
    match old {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

/// GETEX key [EX s|PX ms|EXAT ts|PXAT ms|PERSIST]
pub fn getex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    // Redis checks the option words, then the key (nil if missing, then
    // its type), and only then the expire value.
    let opts = parse_string_opts(args, 2, false, ctx.now);
    if let Err(CmdError::Syntax) = opts {
        return Err(CmdError::Syntax);
    }
    let (db, clock, now) = ctx.db_clock();
    let v = get_str(db, &args[1], now, clock)?;
    if v.is_none() {
        ctx.out.null();
        return Ok(());
    }
    let (_, _, _, ttl) = opts?;
    if v.is_some() {
        match ttl {
            Ttl::At(ms) if ms <= now => {
                db.remove(&args[1], now);
            }
            Ttl::At(ms) => {
                db.set_expire(&args[1], ms, now);
            }
            // Only a TTL actually removed is a change (WATCH, the log).
            Ttl::Persist if db.peek(&args[1], now).is_some_and(|e| e.expire != 0) => {
                db.set_expire(&args[1], 0, now);
            }
            _ => {}
        }
    }
    match v {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

/// Replaces a string's content keeping its TTL, or creates it.
fn store_keep_ttl(db: &mut Db, key: &[u8], v: &[u8], now: u64, clock: u32) {
    let expire = db.peek(key, now).map(|e| e.expire).unwrap_or(0);
    db.set(key, str_value(v), expire, clock);
}

/// INCR / DECR / INCRBY / DECRBY
pub fn incr(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let delta: i64 = match name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => int_arg(&args[2])?,
        _ => {
            let d = int_arg(&args[2])?;
            if d == i64::MIN {
                return Err(err("decrement would overflow"));
            }
            -d
        }
    };
    let (db, clock, now) = ctx.db_clock();
    let mut buf = [0u8; 24];
    // Counters are the hot case: update the stored digits in place (a new
    // allocation only when the number of digits changes), with one lookup
    // and without touching the TTL. A failed parse changes nothing, so it
    // does not disturb WATCH either.
    let updated = db.write_changed::<Str, _>(&args[1], now, clock, false, |v| {
        let r = parse_int(v).ok_or(CmdError::NotInteger).and_then(|cur| {
            cur.checked_add(delta)
                .ok_or_else(|| err("increment or decrement would overflow"))
        });
        if let Ok(new) = r {
            let text = fmt_i64(new, &mut buf);
            if text.len() == v.len() {
                v.copy_from_slice(text);
            } else {
                *v = Box::from(text);
            }
        }
        let changed = r.is_ok();
        (r, changed)
    })?;
    let new = match updated {
        Some(r) => r?,
        None => {
            db.set(&args[1], str_value(fmt_i64(delta, &mut buf)), 0, clock);
            delta
        }
    };
    ctx.out.int(new);
    Ok(())
}

/// INCRBYFLOAT key increment
pub fn incrbyfloat(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    // Redis's order: the key's type, its value, then the increment.
    let (db, clock, now) = ctx.db_clock();
    let cur = db.read_for_write::<Str, _>(&args[1], now, clock, |s| s.clone())?;
    let cur: &[u8] = match &cur {
        Some(v) if crate::store::long_double::valid(v) => v,
        Some(_) => return Err(CmdError::NotFloat),
        None => b"0",
    };
    if !crate::store::long_double::valid(&args[2]) {
        return Err(CmdError::NotFloat);
    }
    let s = crate::store::long_double::add(cur, &args[2])
        .map_err(|_| err("increment would produce NaN or Infinity"))?;
    store_keep_ttl(db, &args[1], s.as_bytes(), now, clock);
    db.set_form(&args[1], now, StrForm::Embstr);
    ctx.out.bulk(s.as_bytes());
    Ok(())
}

fn max_len(ctx: &Ctx<'_, '_>) -> usize {
    ctx.shared.config.proto_max_bulk_len.0 as usize
}

/// APPEND key value
pub fn append(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let max = max_len(ctx);
    let (db, clock, now) = ctx.db_clock();
    let cur_len = db.read_for_write::<Str, _>(&args[1], now, clock, |s| s.len())?;
    if cur_len.unwrap_or(0) + args[2].len() > max {
        return Err(err(
            "string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let len = db
        .write::<Str, _>(&args[1], now, clock, true, |s| {
            let mut v = std::mem::take(s).into_vec();
            v.extend_from_slice(&args[2]);
            let n = v.len();
            *s = v.into_boxed_slice();
            n
        })?
        .unwrap_or(0);
    // A new key holds the value as given; an existing one is edited.
    if cur_len.is_some() {
        db.set_form(&args[1], now, StrForm::Raw);
    }
    ctx.out.int(len as i64);
    Ok(())
}

/// STRLEN key
pub fn strlen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let n = db.read::<Str, _>(&args[1], now, clock, |s| s.len())?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

/// Resolves GETRANGE's inclusive `start..=end` byte offsets (negative from
/// the end). Unlike list and sorted-set ranks ([`super::index_range`]), an
/// `end` before the start of the string is clamped to 0, as Redis 7.0 does.
pub fn range_of(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if e < 0 {
        e = 0;
    }
    if e >= len {
        e = len - 1;
    }
    if s > e || len == 0 || s >= len {
        return None;
    }
    Some((s as usize, e as usize))
}

/// GETRANGE key start end
pub fn getrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let end = int_arg(&args[3])?;
    let (db, clock, now) = ctx.db_clock();
    let v = get_str(db, &args[1], now, clock)?.unwrap_or_default();
    if start < 0 && end < 0 && start > end {
        ctx.out.bulk(b"");
        return Ok(());
    }
    match range_of(start, end, v.len()) {
        Some((s, e)) => ctx.out.bulk(&v[s..=e]),
        None => ctx.out.bulk(b""),
    }
    Ok(())
}

/// SETRANGE key offset value
pub fn setrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let off = int_arg(&args[2])?;
    if off < 0 {
        return Err(err("offset is out of range"));
    }
    let off = off as usize;
    let max = max_len(ctx);
    let val = &args[3];
    let (db, clock, now) = ctx.db_clock();
    let cur = db.read_for_write::<Str, _>(&args[1], now, clock, |s| s.len())?;
    if val.is_empty() {
        ctx.out.int(cur.unwrap_or(0) as i64);
        return Ok(());
    }
    if off + val.len() > max {
        return Err(err(
            "string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let n = db
        .write::<Str, _>(&args[1], now, clock, true, |s| {
            let mut v = std::mem::take(s).into_vec();
            if v.len() < off + val.len() {
                v.resize(off + val.len(), 0);
            }
            v[off..off + val.len()].copy_from_slice(val);
            let n = v.len();
            *s = v.into_boxed_slice();
            n
        })?
        .unwrap_or(0);
    db.set_form(&args[1], now, StrForm::Raw);
    ctx.out.int(n as i64);
    Ok(())
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
pub fn lcs(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    // Redis checks the keys' types before the options.
    let (db, clock, now) = ctx.db_clock();
    let a = db
        .read::<Str, _>(&args[1], now, clock, |s| s.clone())
        .map_err(|_| err("The specified keys must contain string values"))?
        .unwrap_or_default();
    let b = db
        .read::<Str, _>(&args[2], now, clock, |s| s.clone())
        .map_err(|_| err("The specified keys must contain string values"))?
        .unwrap_or_default();
    let (mut len_only, mut idx, mut withlen) = (false, false, false);
    let mut minlen = 0i64;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "len") {
            len_only = true;
        } else if is(&args[i], "idx") {
            idx = true;
        } else if is(&args[i], "withmatchlen") {
            withlen = true;
        } else if is(&args[i], "minmatchlen") && i + 1 < args.len() {
            minlen = int_arg(&args[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if len_only && idx {
        return Err(err(
            "If you want both the length and indexes, please just use IDX.",
        ));
    }
    let (n, m) = (a.len(), b.len());
    // Redis's bound on the table of 4-byte cells: proto_max_bulk_len
    // (512 MB by default, lower it to bound LCS too).
    if (n + 1).saturating_mul(m + 1) > max_len(ctx) / 4 {
        return Err(err(
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    if len_only {
        // The length needs two rows of the table, not all of it.
        let mut prev = vec![0u32; m + 1];
        let mut row = vec![0u32; m + 1];
        for &x in a.iter() {
            for j in 1..=m {
                row[j] = if x == b[j - 1] {
                    prev[j - 1] + 1
                } else {
                    prev[j].max(row[j - 1])
                };
            }
            std::mem::swap(&mut prev, &mut row);
        }
        ctx.out.int(i64::from(prev[m]));
        return Ok(());
    }
    let w = m + 1;
    let mut dp = vec![0u32; (n + 1) * w];
    for i in 1..=n {
        for j in 1..=m {
            dp[i * w + j] = if a[i - 1] == b[j - 1] {
                dp[(i - 1) * w + j - 1] + 1
            } else {
                dp[(i - 1) * w + j].max(dp[i * w + j - 1])
            };
        }
    }
    let total = dp[n * w + m] as usize;
    // Walk back to collect the LCS and match ranges (Redis reports them from the end).
    let mut out = vec![0u8; total];
    let mut k = total;
    let (mut i, mut j) = (n, m);
    let mut matches: Vec<((usize, usize), (usize, usize))> = Vec::new();
    let mut cur: Option<((usize, usize), (usize, usize))> = None;
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            k -= 1;
            out[k] = a[i - 1];
            let (ai, bj) = (i - 1, j - 1);
            cur = match cur {
                Some(((as_, ae), (bs, be))) if as_ == ai + 1 && bs == bj + 1 => {
                    Some(((ai, ae), (bj, be)))
                }
                Some(r) => {
                    matches.push(r);
                    Some(((ai, ai), (bj, bj)))
                }
                None => Some(((ai, ai), (bj, bj))),
            };
            i -= 1;
            j -= 1;
        } else if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    if let Some(r) = cur {
        matches.push(r);
    }
    if idx {
        let kept: Vec<_> = matches
            .into_iter()
            .filter(|((s, e), _)| (e - s + 1) as i64 >= minlen)
            .collect();
        ctx.out.map(2);
        ctx.out.bulk(b"matches");
        ctx.out.array(kept.len());
        for ((as_, ae), (bs, be)) in kept {
            ctx.out.array(if withlen { 3 } else { 2 });
            ctx.out.array(2);
            ctx.out.int(as_ as i64);
            ctx.out.int(ae as i64);
            ctx.out.array(2);
            ctx.out.int(bs as i64);
            ctx.out.int(be as i64);
            if withlen {
                ctx.out.int((ae - as_ + 1) as i64);
            }
        }
        ctx.out.bulk(b"len");
        ctx.out.int(total as i64);
    } else {
        ctx.out.bulk(&out);
    }
    Ok(())
}
