//! Hash commands.

use bytes::Bytes;

use super::{
    CmdResult, Ctx, cursor_arg, err, int_arg, name_of, scan_collection, scan_opts, wrong_args,
};
use crate::store::protocol::parse_int;
use crate::store::value::HashVal;

type FieldValue = (Box<[u8]>, Box<[u8]>);

/// HSET / HMSET key field value [field value ...]
pub fn hset(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    if !args.len().is_multiple_of(2) {
        return Err(wrong_args(name));
    }
    let (db, clock, now) = ctx.db_clock();
    let n = db
        .write::<HashVal, _>(&args[1], now, clock, true, |h| {
            args[2..]
                .chunks(2)
                .filter(|fv| h.insert(&fv[0], &fv[1]))
                .count()
        })?
        .unwrap_or(0);
    if name == "hmset" {
        ctx.out.ok();
    } else {
        ctx.out.int(n as i64);
    }
    Ok(())
}

/// HSETNX key field value
pub fn hsetnx(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let exists = db
        .read_for_write::<HashVal, _>(&args[1], now, clock, |h| h.contains(&args[2]))?
        .unwrap_or(false);
    if !exists {
        db.write::<HashVal, _>(&args[1], now, clock, true, |h| h.insert(&args[2], &args[3]))?;
    }
    ctx.out.int(!exists as i64);
    Ok(())
}

/// HGET key field
pub fn hget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, out, clock, now) = ctx.db_out();
    let found = db.read::<HashVal, _>(&args[1], now, clock, |h| match h.get(&args[2]) {
        Some(v) => out.bulk(v),
        None => out.null(),
    })?;
    if found.is_none() {
        ctx.out.null();
    }
    Ok(())
}

/// HMGET key field [field ...]
pub fn hmget(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, out, clock, now) = ctx.db_out();
    let fields = &args[2..];
    let found = db.read::<HashVal, _>(&args[1], now, clock, |h| {
        out.array(fields.len());
        for f in fields {
            match h.get(f) {
                Some(v) => out.bulk(v),
                None => out.null(),
            }
        }
    })?;
    if found.is_none() {
        ctx.out.array(fields.len());
        for _ in fields {
            ctx.out.null();
        }
    }
    Ok(())
}

/// HSTRLEN key field
pub fn hstrlen(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let n = db
        .read::<HashVal, _>(&args[1], now, clock, |h| {
            h.get(&args[2]).map(|v| v.len()).unwrap_or(0)
        })?
        .unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// HEXISTS key field
pub fn hexists(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (db, clock, now) = ctx.db_clock();
    let b = db
        .read::<HashVal, _>(&args[1], now, clock, |h| h.contains(&args[2]))?
        .unwrap_or(false);
    ctx.out.int(b as i64);
    Ok(())
}

/// HKEYS / HVALS / HGETALL key
pub fn hgetall(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let (db, out, clock, now) = ctx.db_out();
    let found = db.read::<HashVal, _>(&args[1], now, clock, |h| match name {
        "hkeys" => {
            out.array(h.len());
            h.iter().for_each(|(k, _)| out.bulk(k));
        }
        "hvals" => {
            out.array(h.len());
            h.iter().for_each(|(_, v)| out.bulk(v));
        }
        _ => {
            out.map(h.len());
            for (k, v) in h.iter() {
                out.bulk(k);
                out.bulk(v);
            }
        }
    })?;
    if found.is_none() {
        if name == "hgetall" {
            ctx.out.map(0);
        } else {
            ctx.out.array(0);
        }
    }
    Ok(())
}

/// HINCRBY key field increment
pub fn hincrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let delta = int_arg(&args[3])?;
    let (db, clock, now) = ctx.db_clock();
    let cur = db
        .read_for_write::<HashVal, _>(&args[1], now, clock, |h| {
            h.get(&args[2]).map(Box::<[u8]>::from)
        })?
        .flatten();
    let cur = match cur {
        Some(v) => parse_int(&v).ok_or_else(|| err("hash value is not an integer"))?,
        None => 0,
    };
    let new = cur
        .checked_add(delta)
        .ok_or_else(|| err("increment or decrement would overflow"))?;
    db.write::<HashVal, _>(&args[1], now, clock, true, |h| {
        h.insert(&args[2], new.to_string().as_bytes())
    })?;
    ctx.out.int(new);
    Ok(())
}

/// HINCRBYFLOAT key field increment
pub fn hincrbyfloat(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if !crate::store::long_double::valid(&args[3]) {
        return Err(super::CmdError::NotFloat);
    }
    if crate::store::long_double::is_infinite(&args[3]) {
        return Err(err("value is NaN or Infinity"));
    }
    let (db, clock, now) = ctx.db_clock();
    let cur = db
        .read_for_write::<HashVal, _>(&args[1], now, clock, |h| {
            h.get(&args[2]).map(Box::<[u8]>::from)
        })?
        .flatten();
    let cur: &[u8] = match &cur {
        Some(v) if crate::store::long_double::valid(v) => v,
        Some(_) => return Err(err("hash value is not a float")),
        None => b"0",
    };
    let s = crate::store::long_double::add(cur, &args[3])
        .map_err(|_| err("increment would produce NaN or Infinity"))?;
    db.write::<HashVal, _>(&args[1], now, clock, true, |h| {
        h.insert(&args[2], s.as_bytes())
    })?;
    ctx.out.bulk(s.as_bytes());
    Ok(())
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (count, withvalues) = super::random_count_with(args, "withvalues")?;
    let (db, clock, now) = ctx.db_clock();
    let picked: Option<Vec<FieldValue>> = db
        .read::<HashVal, _>(&args[1], now, clock, |h| {
            super::check_repeats(count)?;
            Ok::<_, super::CmdError>(
                super::pick_random(h.iter(), h.len(), count)
                    .into_iter()
                    .map(|(k, v)| (Box::from(k), Box::from(v)))
                    .collect(),
            )
        })?
        .transpose()?;
    let resp3 = ctx.out.resp3;
    match (count, picked) {
        (None, None) => ctx.out.null(),
        (None, Some(v)) => match v.first() {
            Some((k, _)) => ctx.out.bulk(k),
            None => ctx.out.null(),
        },
        (Some(_), v) => {
            let v = v.unwrap_or_default();
            if withvalues && resp3 {
                ctx.out.array(v.len());
                for (k, val) in v {
                    ctx.out.array(2);
                    ctx.out.bulk(&k);
                    ctx.out.bulk(&val);
                }
            } else if withvalues {
                ctx.out.array(v.len() * 2);
                for (k, val) in v {
                    ctx.out.bulk(&k);
                    ctx.out.bulk(&val);
                }
            } else {
                ctx.out.array(v.len());
                for (k, _) in v {
                    ctx.out.bulk(&k);
                }
            }
        }
    }
    Ok(())
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
pub fn hscan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let cursor = cursor_arg(&args[2])?;
    if !super::scan_target::<HashVal>(ctx, &args[1])? {
        return Ok(());
    }
    let (pat, count, _) = scan_opts(&args[3..], false)?;
    let (db, out, clock, now) = ctx.db_out();
    let found = db.read::<HashVal, _>(&args[1], now, clock, |h| {
        let (next, items) = scan_collection(h.iter(), cursor, count, pat.as_deref(), h.is_packed());
        out.array(2);
        out.bulk(next.to_string().as_bytes());
        out.array(items.len() * 2);
        for (k, v) in items {
            out.bulk(k);
            out.bulk(v);
        }
    })?;
    if found.is_none() {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
    }
    Ok(())
}
