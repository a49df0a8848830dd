//! Generic key commands: DEL, EXISTS, TYPE, EXPIRE*, TTL*, PERSIST, RENAME*,
//! COPY, MOVE, SCAN, KEYS, RANDOMKEY, TOUCH, OBJECT.

use bytes::Bytes;

use super::{CmdError, CmdResult, Ctx, cursor_arg, err, int_arg, is, name_of, scan_opts};
use crate::store::config::EvictionPolicy;
use crate::store::glob;
use crate::store::keyspace::{Entry, StrForm, free_later};
use crate::store::value::Value;

/// DEL / UNLINK key [key ...]
pub fn del(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, _, now) = ctx.db_clock();
    let mut n = 0;
    for k in &args[1..] {
        if let Some(e) = db.remove(k, now) {
            n += 1;
            free_later(e.value);
        }
    }
    ctx.out.int(n as i64);
    Ok(())
}

/// EXISTS key [key ...]
pub fn exists(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, _, now) = ctx.db_clock();
    let n = args[1..]
        .iter()
        .filter(|k| db.peek_read(k, now).is_some())
        .count();
    ctx.out.int(n as i64);
    Ok(())
}

/// TOUCH key [key ...]
pub fn touch(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let n = args[1..]
        .iter()
        // Redis's read lookup: counted in keyspace_hits/misses.
        .filter(|k| db.get_read(k, now, clock).is_some())
        .count();
    ctx.out.int(n as i64);
    Ok(())
}

/// TYPE key
pub fn type_(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let t = ctx
        .db()
        .peek_read(&args[1], now)
        .map(|e| e.value.type_name())
        .unwrap_or("none");
    ctx.out.simple(t);
    Ok(())
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX|XX|GT|LT]
pub fn expire(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    // Redis reads the options before the time.
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if is(a, "nx") {
            nx = true;
        } else if is(a, "xx") {
            xx = true;
        } else if is(a, "gt") {
            gt = true;
        } else if is(a, "lt") {
            lt = true;
        } else {
            return Err(err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(err("GT and LT options at the same time are not compatible"));
    }
    let t = int_arg(&args[2])?;
    let now = ctx.now;
    let invalid = || err(format!("invalid expire time in '{name}' command"));
    let ms: i64 = match name {
        "expire" => t
            .checked_mul(1000)
            .and_then(|v| v.checked_add(now as i64))
            .ok_or_else(invalid)?,
        "pexpire" => t.checked_add(now as i64).ok_or_else(invalid)?,
        "expireat" => t.checked_mul(1000).ok_or_else(invalid)?,
        _ => t,
    };
    let (db, clock, now) = ctx.db_clock();
    // A write lookup in Redis: it sets the key's access clock (IDLETIME).
    let Some(cur) = db.get(&args[1], now, clock).map(|e| e.expire) else {
        ctx.out.int(0);
        return Ok(());
    };
    let new = ms.max(0) as u64;
    let ok = if nx {
        cur == 0
    } else if xx && cur == 0 {
        false
    } else if gt {
        cur != 0 && new > cur
    } else if lt {
        cur == 0 || new < cur
    } else {
        true
    };
    if !ok {
        ctx.out.int(0);
        return Ok(());
    }
    if ms <= now as i64 {
        db.remove(&args[1], now);
    } else {
        db.set_expire(&args[1], new, now);
    }
    ctx.out.int(1);
    Ok(())
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key
pub fn ttl(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let now = ctx.now;
    let r = match ctx.db().peek_read(&args[1], now).map(|e| e.expire) {
        None => -2,
        Some(0) => -1,
        Some(exp) => match name {
            "ttl" => ((exp - now + 500) / 1000) as i64,
            "pttl" => (exp - now) as i64,
            "expiretime" => ((exp + 500) / 1000) as i64,
            _ => exp as i64,
        },
    };
    ctx.out.int(r);
    Ok(())
}

/// PERSIST key
pub fn persist(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let had = db.get(&args[1], now, clock).map(|e| e.expire != 0) == Some(true);
    if had {
        db.set_expire(&args[1], 0, now);
    }
    ctx.out.int(had as i64);
    Ok(())
}

/// RENAME / RENAMENX key newkey
pub fn rename(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let nx = name_of(args) == "renamenx";
    let (db, _, now) = ctx.db_clock();
    if !db.exists(&args[1], now) {
        return Err(CmdError::NoSuchKey);
    }
    if args[1] == args[2] {
        if nx {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return Ok(());
    }
    if nx && db.exists(&args[2], now) {
        ctx.out.int(0);
        return Ok(());
    }
    if let Some(e) = db.remove(&args[1], now) {
        db.put_entry(&args[2], e);
    }
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
    Ok(())
}

/// COPY source destination [DB destination-db] [REPLACE]
pub fn copy(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let mut dst_db = ctx.client.db;
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
            i += 1;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            dst_db = super::db_index_arg(&args[i + 1], ctx.shared.config.databases)?;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let src_db = ctx.client.db;
    if src_db == dst_db && args[1] == args[2] {
        return Err(err("source and destination objects are the same"));
    }
    let now = ctx.now;
    let ks = ctx.ks();
    let clock = ks.clock();
    // The source is a read lookup in Redis (counted, access clock set).
    let Some(e) = ks.dbs[src_db]
        .get_read(&args[1], now, clock)
        .map(|e| e.clone())
    else {
        ctx.out.int(0);
        return Ok(());
    };
    if !replace && ks.dbs[dst_db].exists(&args[2], now) {
        ctx.out.int(0);
        return Ok(());
    }
    ks.dbs[dst_db].put_entry(&args[2], Entry { lru: clock, ..e });
    ctx.out.int(1);
    Ok(())
}

/// MOVE key db
pub fn move_(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let d = super::db_index_arg(&args[2], ctx.shared.config.databases)?;
    let (src, dst) = (ctx.client.db, d);
    if src == dst {
        return Err(err("source and destination objects are the same"));
    }
    let now = ctx.now;
    let ks = ctx.ks();
    if !ks.dbs[src].exists(&args[1], now) || ks.dbs[dst].exists(&args[1], now) {
        ctx.out.int(0);
        return Ok(());
    }
    if let Some(e) = ks.dbs[src].remove(&args[1], now) {
        ks.dbs[dst].put_entry(&args[1], e);
    }
    ctx.out.int(1);
    Ok(())
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]
pub fn scan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let cursor = cursor_arg(&args[1])?;
    let (pat, count, ty) = scan_opts(&args[2..], true)?;
    let now = ctx.now;
    let (next, keys) = ctx.db().scan(cursor, count, now, |k, e: &Entry| {
        pat.as_ref().is_none_or(|p| glob::matches(p, k))
            && ty
                .as_ref()
                .is_none_or(|t| t.eq_ignore_ascii_case(e.value.type_name().as_bytes()))
    });
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(keys.len());
    for k in keys {
        ctx.out.bulk(&k);
    }
    Ok(())
}

/// KEYS pattern
pub fn keys(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let pat = &args[1];
    let all = &pat[..] == b"*";
    let found: Vec<Box<[u8]>> = ctx
        .db()
        .keys(now)
        .filter(|k| all || glob::matches(pat, k))
        .cloned()
        .collect();
    ctx.out.array(found.len());
    for k in found {
        ctx.out.bulk(&k);
    }
    Ok(())
}

/// RANDOMKEY
pub fn randomkey(ctx: &mut Ctx<'_, '_>, _args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    match ctx.db().random_key(now) {
        Some(k) => ctx.out.bulk(&k),
        None => ctx.out.null(),
    }
    Ok(())
}

/// OBJECT ENCODING|FREQ|IDLETIME|REFCOUNT key | OBJECT HELP
pub fn object(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if sub == "help" && args.len() == 2 {
        let lines = [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the internal representation of the value stored at <key>.",
            "FREQ <key>",
            "    Return the logarithmic access-frequency counter of <key> (LFU policies only).",
            "IDLETIME <key>",
            "    Return the seconds since <key> was last read or written.",
            "REFCOUNT <key>",
            "    Return how many references share the value stored at <key>.",
            "HELP",
            "    Prints this help.",
        ];
        ctx.out.simple_lines(&lines);
        return Ok(());
    }
    if !matches!(sub.as_str(), "encoding" | "freq" | "idletime" | "refcount") {
        return Err(super::unknown_subcommand(&args[1], "object"));
    }
    let now = ctx.now;
    let ks = ctx.ks();
    let clock = ks.clock_at(now);
    // Redis shares one object per small integer (refcount INT_MAX) unless
    // an LRU policy needs per-key access times.
    let shares_integers = ks.maxmemory == 0
        || !matches!(
            ks.policy,
            EvictionPolicy::AllkeysLru | EvictionPolicy::VolatileLru
        );
    let db = ctx.client.db;
    // Counted like Redis's lookup for OBJECT, which leaves the access
    // clock alone so that IDLETIME can be read.
    let Some(e) = ctx.ks().dbs[db].peek_read(&args[2], now) else {
        ctx.out.null();
        return Ok(());
    };
    match sub.as_str() {
        "encoding" => {
            let enc = e.encoding();
            ctx.out.bulk(enc.as_bytes());
        }
        "refcount" => {
            let shared = match &e.value {
                Value::Str(s) if e.form == StrForm::Content => {
                    shares_integers
                        && crate::store::protocol::parse_int(s)
                            .is_some_and(|n| (0..10_000).contains(&n))
                }
                _ => false,
            };
            ctx.out.int(if shared { i64::from(i32::MAX) } else { 1 });
        }
        "idletime" => {
            let idle = clock.wrapping_sub(e.lru) / 1000;
            ctx.out.int(idle as i64);
        }
        _ => {
            return Err(err(
                "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
            ));
        }
    }
    Ok(())
}

/// DUMP key
pub fn dump(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let payload = db
        .get_read(&args[1], now, clock)
        .map(|e| crate::store::rdb::dump(&e.value));
    match payload {
        Some(p) => ctx.out.bulk(&p),
        None => ctx.out.null(),
    }
    Ok(())
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub fn restore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    use crate::store::rdb::{self, PayloadError};
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (None, None);
    let mut j = 4;
    while j < args.len() {
        let more = args.len() - j - 1;
        if is(&args[j], "replace") {
            replace = true;
        } else if is(&args[j], "absttl") {
            absttl = true;
        } else if is(&args[j], "idletime") && more >= 1 && freq.is_none() {
            let v = int_arg(&args[j + 1])?;
            if v < 0 {
                return Err(err("Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(v as u64);
            j += 1;
        } else if is(&args[j], "freq") && more >= 1 && idle.is_none() {
            let v = int_arg(&args[j + 1])?;
            if !(0..=255).contains(&v) {
                return Err(err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            // Accepted and ignored, as Redis does without an LFU policy
            // (this store has none).
            freq = Some(v);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    let (db, clock, now) = ctx.db_clock();
    if !replace && db.exists(&args[1], now) {
        return Err(CmdError::Msg(
            "BUSYKEY Target key name already exists.".into(),
        ));
    }
    let ttl = int_arg(&args[2])?;
    if ttl < 0 {
        return Err(err("Invalid TTL value, must be >= 0"));
    }
    let value = rdb::restore(&args[3]).map_err(|e| match e {
        PayloadError::VersionOrChecksum => err("DUMP payload version or checksum are wrong"),
        PayloadError::BadFormat => err("Bad data format"),
    })?;
    let expire = match ttl as u64 {
        0 => 0,
        t if absttl => t,
        t => now.saturating_add(t),
    };
    if replace {
        db.remove(&args[1], now);
    }
    // Already expired: nothing is created, but the reply is still OK.
    if expire == 0 || expire > now {
        db.set(&args[1], value, expire, clock);
        if let (Some(idle), Some(e)) = (idle, db.get(&args[1], now, clock)) {
            e.lru = clock.wrapping_sub(idle.saturating_mul(1000).min(u64::from(u32::MAX)) as u32);
        }
    }
    ctx.out.ok();
    Ok(())
}
