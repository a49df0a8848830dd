//! List commands.

use bytes::Bytes;

use super::blocking::{BlockOp, mpop_now, parse_mpop, try_op};
use super::index_range;
use super::{CmdError, CmdResult, Ctx, err, int_arg, is, name_of};
use crate::store::value::ListVal;

/// LPUSH / RPUSH / LPUSHX / RPUSHX key element [element ...]
pub fn push(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let left = name.starts_with('l');
    let create = !name.ends_with('x');
    let (db, clock, now) = ctx.db_clock();
    let n = db.write::<ListVal, _>(&args[1], now, clock, create, |l| {
        for v in &args[2..] {
            l.push(v, left);
        }
        l.len()
    })?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

/// LPOP / RPOP key [count]
pub fn pop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let left = name_of(args) == "lpop";
    if args.len() > 3 {
        return Err(super::wrong_args(name_of(args)));
    }
    let count = match args.get(2) {
        Some(c) => {
            let n = int_arg(c).map_err(|_| err("value is out of range, must be positive"))?;
            if n < 0 {
                return Err(err("value is out of range, must be positive"));
            }
            Some(n as usize)
        }
        None => None,
    };
    let (db, clock, now) = ctx.db_clock();
    let vals = db.write_changed::<ListVal, _>(&args[1], now, clock, false, |l| {
        let mut v = Vec::new();
        for _ in 0..count.unwrap_or(1) {
            match l.pop(left) {
                Some(x) => v.push(x),
                None => break,
            }
        }
        let changed = !v.is_empty();
        (v, changed)
    })?;
    match (vals, count) {
        (None, None) => ctx.out.null(),
        (None, Some(_)) => ctx.out.null_array(),
        (Some(v), None) => match v.first() {
            Some(x) => ctx.out.bulk(x),
            None => ctx.out.null(),
        },
        (Some(v), Some(_)) => {
            ctx.out.array(v.len());
            for x in v {
                ctx.out.bulk(&x);
            }
        }
    }
    Ok(())
}

/// LLEN key
pub fn llen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let n = db.read::<ListVal, _>(&args[1], now, clock, |l| l.len())?;
    ctx.out.int(n.unwrap_or(0) as i64);
    Ok(())
}

/// LRANGE key start stop
pub fn lrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let stop = int_arg(&args[3])?;
    let (db, out, clock, now) = ctx.db_out();
    let found = db.read::<ListVal, _>(&args[1], now, clock, |l| {
        match index_range(start, stop, l.len()) {
            Some((s, e)) => {
                out.array(e - s + 1);
                for v in l.range(s, e) {
                    out.bulk(v);
                }
            }
            None => out.array(0),
        }
    })?;
    if found.is_none() {
        ctx.out.array(0);
    }
    Ok(())
}

fn index_of(i: i64, len: usize) -> Option<usize> {
    let idx = if i < 0 { len as i64 + i } else { i };
    (idx >= 0 && (idx as usize) < len).then_some(idx as usize)
}

/// LINDEX key index
pub fn lindex(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    // Redis looks the key up before it reads the index: a missing key is
    // null and a wrong type WRONGTYPE whatever the index says.
    if !db.check::<ListVal>(&args[1], now)? {
        ctx.out.null();
        return Ok(());
    }
    let i = int_arg(&args[2])?;
    let v = db
        .read::<ListVal, _>(&args[1], now, clock, |l| {
            index_of(i, l.len()).and_then(|x| l.get(x).map(Box::<[u8]>::from))
        })?
        .flatten();
    match v {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

/// LSET key index element
pub fn lset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    // Redis looks the key up before it reads the index.
    if !db.check::<ListVal>(&args[1], now)? {
        return Err(CmdError::NoSuchKey);
    }
    let i = int_arg(&args[2])?;
    // An index out of range changes nothing, so it breaks no WATCH.
    let r = db.write_changed::<ListVal, _>(&args[1], now, clock, false, |l| {
        let done = match index_of(i, l.len()) {
            Some(x) => l.set(x, &args[3]),
            None => false,
        };
        (done, done)
    })?;
    match r {
        None => Err(CmdError::NoSuchKey),
        Some(false) => Err(err("index out of range")),
        Some(true) => {
            ctx.out.ok();
            Ok(())
        }
    }
}

/// LINSERT key BEFORE|AFTER pivot element
pub fn linsert(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let after = if is(&args[2], "after") {
        true
    } else if is(&args[2], "before") {
        false
    } else {
        return Err(CmdError::Syntax);
    };
    let (db, clock, now) = ctx.db_clock();
    let r = db.write_changed::<ListVal, _>(&args[1], now, clock, false, |l| {
        let pos = l.iter().position(|v| v == &args[3][..]);
        match pos {
            Some(p) => {
                l.edit(|items| {
                    items.insert(if after { p + 1 } else { p }, Box::from(&args[4][..]))
                });
                (l.len() as i64, true)
            }
            None => (-1, false),
        }
    })?;
    ctx.out.int(r.unwrap_or(0));
    Ok(())
}

/// LREM key count element
pub fn lrem(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let count = int_arg(&args[2])?;
    let (db, clock, now) = ctx.db_clock();
    let target = &args[3][..];
    let r = db.write_changed::<ListVal, _>(&args[1], now, clock, false, |l| {
        let limit = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs() as usize
        };
        if !l.iter().any(|v| v == target) {
            return (0, false);
        }
        let removed = l.edit(|items| {
            let mut removed = 0;
            if count >= 0 {
                items.retain(|v| {
                    let hit = removed < limit && **v == *target;
                    removed += hit as usize;
                    !hit
                });
            } else {
                // From the tail: mark first, then drop in one pass.
                let mut keep = vec![true; items.len()];
                for i in (0..items.len()).rev() {
                    if removed < limit && *items[i] == *target {
                        keep[i] = false;
                        removed += 1;
                    }
                }
                let mut idx = 0;
                items.retain(|_| {
                    idx += 1;
                    keep[idx - 1]
                });
            }
            removed
        });
        (removed, removed > 0)
    })?;
    ctx.out.int(r.unwrap_or(0) as i64);
    Ok(())
}

/// LTRIM key start stop
pub fn ltrim(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let start = int_arg(&args[2])?;
    let stop = int_arg(&args[3])?;
    let (db, clock, now) = ctx.db_clock();
    db.write::<ListVal, _>(&args[1], now, clock, false, |l| {
        match index_range(start, stop, l.len()) {
            Some((s, e)) => l.trim(s, e),
            None => *l = ListVal::default(),
        }
    })?;
    ctx.out.ok();
    Ok(())
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
pub fn lpos(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let mut rank = 1i64;
    let mut count: Option<usize> = None;
    let mut maxlen = 0usize;
    let mut i = 3;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(CmdError::Syntax);
        }
        // As in Redis, COUNT and MAXLEN answer their own message for any
        // bad value (not a non-negative integer), RANK the generic one.
        let non_negative = |what: &str| match int_arg(&args[i + 1]) {
            Ok(v) if v >= 0 => Ok(v),
            _ => Err(err(format!("{what} can't be negative"))),
        };
        if is(&args[i], "rank") {
            let v = int_arg(&args[i + 1])?;
            if v == 0 || v == i64::MIN {
                return Err(err(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                ));
            }
            rank = v;
        } else if is(&args[i], "count") {
            count = Some(non_negative("COUNT")? as usize);
        } else if is(&args[i], "maxlen") {
            maxlen = non_negative("MAXLEN")? as usize;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let (db, clock, now) = ctx.db_clock();
    let target = &args[2][..];
    let found = db
        .read::<ListVal, _>(&args[1], now, clock, |l| {
            let want = match count {
                Some(0) => usize::MAX,
                Some(c) => c,
                None => 1,
            };
            let items: Vec<&[u8]> = l.iter().collect();
            let n = items.len();
            let limit = if maxlen == 0 { n } else { maxlen.min(n) };
            let mut skip = rank.unsigned_abs() as usize - 1;
            let mut hits = Vec::new();
            for step in 0..limit {
                let idx = if rank > 0 { step } else { n - 1 - step };
                if items[idx] == target {
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    hits.push(idx as i64);
                    if hits.len() >= want {
                        break;
                    }
                }
            }
            hits
        })?
        .unwrap_or_default();
    if count.is_some() {
        ctx.out.array(found.len());
        for x in found {
            ctx.out.int(x);
        }
    } else {
        match found.first() {
            Some(x) => ctx.out.int(*x),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// `LEFT` (true) or `RIGHT` (false), as LMOVE, BLMOVE and LMPOP spell it.
pub(super) fn side(a: &[u8]) -> Result<bool, CmdError> {
    if is(a, "left") {
        Ok(true)
    } else if is(a, "right") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT / RPOPLPUSH source destination
pub fn lmove(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (from_left, to_left) = if name_of(args) == "lmove" {
        (side(&args[3])?, side(&args[4])?)
    } else {
        (false, true)
    };
    let op = BlockOp::Move {
        from_left,
        to_left,
        dest: Box::from(&args[2][..]),
    };
    let db = ctx.client.db;
    let resp3 = ctx.client.resp3;
    let r = try_op(ctx.ks(), db, &args[1], &op, resp3)?;
    match r {
        Some(r) => ctx.out.raw(&r),
        None => ctx.out.null(),
    }
    Ok(())
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
pub fn lmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (keys, word, count) = parse_mpop(args, 1)?;
    let left = side(&args[word])?;
    mpop_now(ctx, keys, BlockOp::MPop { left, count })
}
