//! Set commands.

use bytes::Bytes;
use hashbrown::HashSet;
use rand::seq::IteratorRandom;

use super::{
    CmdError, CmdResult, Ctx, cursor_arg, err, int_arg, is, name_of, scan_collection, scan_opts,
};
use crate::store::keyspace::Db;
use crate::store::value::{Key, SetVal, Value, intset_order};

/// SADD key member [member ...]
pub fn sadd(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let n = db
        .write_changed::<SetVal, _>(&args[1], now, clock, true, |s| {
            let n = args[2..].iter().filter(|m| s.insert(m)).count();
            (n, n > 0)
        })?
        .unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// SISMEMBER key member / SMISMEMBER key member [member ...]
pub fn sismember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let multi = name_of(args) == "smismember";
    let (db, clock, now) = ctx.db_clock();
    let hits: Vec<bool> = db
        .read::<SetVal, _>(&args[1], now, clock, |s| {
            args[2..].iter().map(|m| s.contains(m)).collect()
        })?
        .unwrap_or_else(|| vec![false; args.len() - 2]);
    if multi {
        ctx.out.array(hits.len());
        for h in hits {
            ctx.out.int(h as i64);
        }
    } else {
        ctx.out.int(hits[0] as i64);
    }
    Ok(())
}

/// SMEMBERS key
pub fn smembers(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, out, clock, now) = ctx.db_out();
    let found = db.read::<SetVal, _>(&args[1], now, clock, |s| {
        out.set(s.len());
        s.ordered().for_each(|m| out.bulk(m));
    })?;
    if found.is_none() {
        ctx.out.set(0);
    }
    Ok(())
}

fn count_arg(a: Option<&Bytes>) -> Result<Option<i64>, CmdError> {
    a.map(|c| int_arg(c)).transpose()
}

/// SPOP key [count]
pub fn spop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    // Redis gives this one text for a negative and a non-integer count.
    let count =
        count_arg(args.get(2)).map_err(|_| err("value is out of range, must be positive"))?;
    if count.is_some_and(|c| c < 0) {
        return Err(err("value is out of range, must be positive"));
    }
    let (db, clock, now) = ctx.db_clock();
    let popped = db.write_changed::<SetVal, _>(&args[1], now, clock, false, |s| {
        let mut rng = rand::rng();
        let picks: Vec<Key> = s
            .iter()
            .choose_multiple(&mut rng, (count.unwrap_or(1) as usize).min(s.len()))
            .into_iter()
            .map(Key::from)
            .collect();
        for p in &picks {
            s.remove(p);
        }
        // `SPOP key 0` takes nothing and so breaks no WATCH.
        let changed = !picks.is_empty();
        (picks, changed)
    })?;
    // The members were chosen at random: replay must remove these very ones.
    if let Some(v) = popped.as_ref().filter(|v| !v.is_empty()) {
        let dbi = ctx.client.db;
        let ks = ctx.ks();
        if ks.oplog.enabled {
            let mut a = vec![Bytes::from_static(b"SREM"), args[1].clone()];
            a.extend(v.iter().map(|m| Bytes::copy_from_slice(m)));
            ks.oplog.effects.push((dbi, a));
        }
    }
    match count {
        None => match popped.and_then(|v| v.into_iter().next()) {
            Some(m) => ctx.out.bulk(&m),
            None => ctx.out.null(),
        },
        Some(_) => {
            let mut v = popped.unwrap_or_default();
            intset_order(&mut v);
            ctx.out.set(v.len());
            v.iter().for_each(|m| ctx.out.bulk(m));
        }
    }
    Ok(())
}

/// SRANDMEMBER key [count]
pub fn srandmember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = count_arg(args.get(2))?
        .map(super::random_count)
        .transpose()?;
    let (db, clock, now) = ctx.db_clock();
    let picks = db.read::<SetVal, _>(&args[1], now, clock, |s| {
        super::check_repeats(count)?;
        let mut v = super::pick_random(s.iter(), s.len(), count)
            .into_iter()
            .map(Key::from)
            .collect::<Vec<Key>>();
        // The whole set: Redis lists it as SMEMBERS does.
        if s.is_intset() && count.is_some_and(|c| c > 0 && c as u64 >= s.len() as u64) {
            intset_order(&mut v);
        }
        Ok::<_, CmdError>(v)
    })?;
    let picks = picks.transpose()?;
    match count {
        None => match picks.and_then(|v| v.into_iter().next()) {
            Some(m) => ctx.out.bulk(&m),
            None => ctx.out.null(),
        },
        Some(_) => {
            let v = picks.unwrap_or_default();
            ctx.out.array(v.len());
            v.iter().for_each(|m| ctx.out.bulk(m));
        }
    }
    Ok(())
}

/// SMOVE source destination member
pub fn smove(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    // As in Redis, a missing source answers 0 before the destination's
    // type is looked at.
    if !db.check::<SetVal>(&args[1], now)? {
        ctx.out.int(0);
        return Ok(());
    }
    db.check::<SetVal>(&args[2], now)?;
    if args[1] == args[2] {
        // Moving onto itself changes nothing: no write, no WATCH touched,
        // and the key (and its TTL) stays, as in Redis.
        let member = db.read::<SetVal, _>(&args[1], now, clock, |s| s.contains(&args[3]))?;
        ctx.out.int(i64::from(member.unwrap_or(false)));
        return Ok(());
    }
    let removed = db
        .write_changed::<SetVal, _>(&args[1], now, clock, false, |s| {
            let r = s.remove(&args[3]);
            (r, r)
        })?
        .unwrap_or(false);
    if removed {
        db.write::<SetVal, _>(&args[2], now, clock, true, |s| s.insert(&args[3]))?;
    }
    ctx.out.int(removed as i64);
    Ok(())
}

/// Loads a set for an algebra command (missing = empty).
fn load(db: &mut Db, key: &[u8], now: u64, clock: u32) -> Result<Option<SetVal>, CmdError> {
    Ok(db.read::<SetVal, _>(key, now, clock, |s| s.clone())?)
}

fn compute(
    db: &mut Db,
    keys: &[Bytes],
    op: &str,
    now: u64,
    clock: u32,
) -> Result<HashSet<Key>, CmdError> {
    let mut sets = Vec::with_capacity(keys.len());
    for k in keys {
        sets.push(load(db, k, now, clock)?);
    }
    let mut iter = sets.into_iter();
    let mut acc: HashSet<Key> = iter
        .next()
        .flatten()
        .map(|s| s.iter().map(Key::from).collect())
        .unwrap_or_default();
    for s in iter {
        match op {
            "inter" => match s {
                Some(s) => acc.retain(|m| s.contains(m)),
                None => acc.clear(),
            },
            "union" => {
                if let Some(s) = s {
                    acc.extend(s.iter().map(Key::from));
                }
            }
            _ => {
                if let Some(s) = s {
                    acc.retain(|m| !s.contains(m));
                }
            }
        }
    }
    Ok(acc)
}

/// SINTER / SUNION / SDIFF key... and their STORE variants.
pub fn setop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let store = name.ends_with("store");
    let op = &name[1..name.len() - if store { 5 } else { 0 }];
    let keys = if store { &args[2..] } else { &args[1..] };
    let (db, clock, now) = ctx.db_clock();
    let result = compute(db, keys, op, now, clock)?;
    if store {
        let n = result.len();
        if n == 0 {
            db.remove(&args[1], now);
        } else {
            let mut s = SetVal::default();
            for m in &result {
                s.insert(m);
            }
            db.set(&args[1], Value::Set(Box::new(s)), 0, clock);
        }
        ctx.out.int(n as i64);
    } else {
        let mut result: Vec<Key> = result.into_iter().collect();
        intset_order(&mut result);
        ctx.out.set(result.len());
        for m in &result {
            ctx.out.bulk(m);
        }
    }
    Ok(())
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn sintercard(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (keys, limit) = intercard_args(args)?;
    let (db, clock, now) = ctx.db_clock();
    let n = compute(db, keys, "inter", now, clock)?.len();
    ctx.out.int(if limit > 0 { n.min(limit) } else { n } as i64);
    Ok(())
}

/// Parses `numkeys key... [LIMIT n]` of SINTERCARD/ZINTERCARD.
pub fn intercard_args(args: &[Bytes]) -> Result<(&[Bytes], usize), CmdError> {
    let zset = args[0].eq_ignore_ascii_case(b"zintercard");
    let n = match int_arg(&args[1]) {
        Ok(n) => n,
        Err(e) if zset => return Err(e),
        Err(_) => return Err(err("numkeys should be greater than 0")),
    };
    if n <= 0 && zset {
        return Err(err(
            "at least 1 input key is needed for 'zintercard' command",
        ));
    }
    if n <= 0 {
        return Err(err("numkeys should be greater than 0"));
    }
    let n = n as usize;
    if args.len() < 2 + n {
        return Err(if zset {
            CmdError::Syntax
        } else {
            err("Number of keys can't be greater than number of args")
        });
    }
    let keys = &args[2..2 + n];
    let mut rest = &args[2 + n..];
    // LIMIT may repeat; the last one counts, as in Redis.
    let mut limit = 0;
    while let Some(a) = rest.first() {
        if !is(a, "limit") || rest.len() < 2 {
            return Err(CmdError::Syntax);
        }
        let l = int_arg(&rest[1]).map_err(|_| err("LIMIT can't be negative"))?;
        if l < 0 {
            return Err(err("LIMIT can't be negative"));
        }
        limit = l as usize;
        rest = &rest[2..];
    }
    Ok((keys, limit))
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
pub fn sscan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let cursor = cursor_arg(&args[2])?;
    if !super::scan_target::<SetVal>(ctx, &args[1])? {
        return Ok(());
    }
    let (pat, count, _) = scan_opts(&args[3..], false)?;
    let (db, out, clock, now) = ctx.db_out();
    let found = db.read::<SetVal, _>(&args[1], now, clock, |s| {
        let (next, items) = scan_collection(
            s.ordered().map(|m| (m, ())),
            cursor,
            count,
            pat.as_deref(),
            s.is_intset(),
        );
        out.array(2);
        out.bulk(next.to_string().as_bytes());
        out.array(items.len());
        for (m, _) in items {
            out.bulk(m);
        }
    })?;
    if found.is_none() {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
    }
    Ok(())
}
