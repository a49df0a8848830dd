//! Sorted set commands.

use std::collections::HashMap;

use bytes::Bytes;

use super::blocking::{BlockOp, minmax, mpop_now, parse_mpop, zpop as pop_n};
use super::index_range;
use super::sets::intercard_args;
use super::{
    CmdError, CmdResult, Ctx, cursor_arg, err, float_arg, int_arg, is, name_of, parse_float,
    scan_collection, scan_opts,
};
use crate::store::frame::{Out, fmt_g17};
use crate::store::keyspace::Db;
use crate::store::value::{Key, Value, ZIter, ZSetVal};

/// One end of a score range.
#[derive(Debug, Clone, Copy)]
struct ScoreBound {
    v: f64,
    excl: bool,
}

fn score_bound(a: &[u8]) -> Result<ScoreBound, CmdError> {
    let bad = || err("min or max is not a float");
    let (text, excl) = match a.strip_prefix(b"(") {
        Some(rest) => (rest, true),
        None => (a, false),
    };
    let v = strtod_bound(text).ok_or_else(bad)?;
    Ok(ScoreBound { v, excl })
}

/// Range bounds go through plain `strtod` in Redis, not its stricter
/// number parser: leading blanks (C's `isspace`) are skipped, an empty
/// text is 0 (so `(` alone is "above 0"), and out-of-range numbers become
/// ±inf. Blanks alone are no number: strtod converts nothing and Redis
/// sees the blank where the text should have ended.
fn strtod_bound(a: &[u8]) -> Option<f64> {
    // strtod reads a C string: a NUL ends it, and Redis's end check then
    // finds the NUL it expects, so `0\0x` is 0.
    let a = &a[..a.iter().position(|&c| c == 0).unwrap_or(a.len())];
    if a.is_empty() {
        return Some(0.0);
    }
    let s = std::str::from_utf8(a)
        .ok()?
        .trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    if s.is_empty() {
        return None;
    }
    super::strtod(s)
}

fn above_min(s: f64, min: ScoreBound) -> bool {
    if min.excl { s > min.v } else { s >= min.v }
}

fn below_max(s: f64, max: ScoreBound) -> bool {
    if max.excl { s < max.v } else { s <= max.v }
}

/// One end of a lex range.
#[derive(Debug, Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

fn lex_bound(a: &[u8]) -> Result<LexBound, CmdError> {
    match a.first() {
        Some(b'-') if a.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if a.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Incl(a[1..].to_vec())),
        Some(b'(') => Ok(LexBound::Excl(a[1..].to_vec())),
        _ => Err(err("min or max not valid string range item")),
    }
}

fn lex_gte_min(m: &[u8], min: &LexBound) -> bool {
    match min {
        LexBound::Min => true,
        LexBound::Max => false,
        LexBound::Incl(v) => m >= &v[..],
        LexBound::Excl(v) => m > &v[..],
    }
}

fn lex_lte_max(m: &[u8], max: &LexBound) -> bool {
    match max {
        LexBound::Min => false,
        LexBound::Max => true,
        LexBound::Incl(v) => m <= &v[..],
        LexBound::Excl(v) => m < &v[..],
    }
}

/// Writes `(member, score)` pairs: flat in RESP2, as pairs in RESP3 when `pairs`.
fn reply_scored(out: &mut Out<'_>, items: &[(Key, f64)], withscores: bool) {
    if !withscores {
        out.array(items.len());
        for (m, _) in items {
            out.bulk(m);
        }
    } else if out.resp3 {
        out.array(items.len());
        for (m, s) in items {
            out.array(2);
            out.bulk(m);
            out.double(*s);
        }
    } else {
        out.array(items.len() * 2);
        for (m, s) in items {
            out.bulk(m);
            out.double(*s);
        }
    }
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
pub fn zadd(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if is(a, "nx") {
            nx = true;
        } else if is(a, "xx") {
            xx = true;
        } else if is(a, "gt") {
            gt = true;
        } else if is(a, "lt") {
            lt = true;
        } else if is(a, "ch") {
            ch = true;
        } else if is(a, "incr") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::Syntax);
    }
    if nx && xx {
        return Err(err("XX and NX options at the same time are not compatible"));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(err(
            "GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(err("INCR option supports a single increment-element pair"));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        pairs.push((float_arg(&p[0])?, &p[1]));
    }
    let (db, clock, now) = ctx.db_clock();
    let create = !xx;
    let r = db.write_changed::<ZSetVal, _>(&args[1], now, clock, create, |z| {
        let mut added = 0;
        let mut changed = 0;
        let mut last: Option<f64> = None;
        for (score, m) in &pairs {
            let cur = z.score(m);
            match cur {
                Some(old) => {
                    if nx {
                        continue;
                    }
                    let new = if incr { old + score } else { *score };
                    if new.is_nan() {
                        return (Err(err("resulting score is not a number (NaN)")), false);
                    }
                    if (gt && new <= old) || (lt && new >= old) {
                        continue;
                    }
                    last = Some(new);
                    if new != old {
                        z.insert(m, new);
                        changed += 1;
                    }
                }
                None => {
                    if xx {
                        continue;
                    }
                    z.insert(m, *score);
                    added += 1;
                    last = Some(*score);
                }
            }
        }
        let modified = added + changed > 0;
        (Ok((added, changed, last)), modified)
    })?;
    let (added, changed, last) = match r {
        Some(r) => r?,
        None => (0, 0, None),
    };
    if incr {
        match last {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    } else {
        ctx.out.int(if ch { added + changed } else { added });
    }
    Ok(())
}

/// ZINCRBY key increment member
pub fn zincrby(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    // Redis parses ZINCRBY with ZADD's code, which takes a flag word where
    // the increment goes and then finds one argument missing.
    if ["nx", "xx", "gt", "lt", "ch", "incr"]
        .iter()
        .any(|f| is(&args[2], f))
    {
        return Err(CmdError::Syntax);
    }
    let delta = float_arg(&args[2])?;
    let (db, clock, now) = ctx.db_clock();
    let r = db
        .write_changed::<ZSetVal, _>(&args[1], now, clock, true, |z| {
            // A new member takes the increment itself, as in Redis: `-0`
            // stays `-0` instead of becoming `0 + -0`.
            let old = z.score(&args[3]);
            let new = old.map_or(delta, |old| old + delta);
            if new.is_nan() {
                return (Err(err("resulting score is not a number (NaN)")), false);
            }
            // An unchanged score is left alone and breaks no WATCH.
            let changed = old.is_none_or(|old| old != new);
            if changed {
                z.insert(&args[3], new);
            }
            (Ok(new), changed)
        })?
        .unwrap_or(Ok(0.0))?;
    ctx.out.double(r);
    Ok(())
}

/// ZCOUNT key min max / ZLEXCOUNT key min max
pub fn zcount(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let lex = name_of(args) == "zlexcount";
    let spec = if lex {
        RangeSpec::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?)
    } else {
        RangeSpec::Score(score_bound(&args[2])?, score_bound(&args[3])?)
    };
    let (db, clock, now) = ctx.db_clock();
    let n = db
        .read::<ZSetVal, _>(&args[1], now, clock, |z| {
            select(z, &spec, false, 0, -1).len()
        })?
        .unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// ZSCORE key member / ZMSCORE key member [member ...]
pub fn zscore(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let multi = name_of(args) == "zmscore";
    let (db, clock, now) = ctx.db_clock();
    let scores: Vec<Option<f64>> = db
        .read::<ZSetVal, _>(&args[1], now, clock, |z| {
            args[2..].iter().map(|m| z.score(m)).collect()
        })?
        .unwrap_or_else(|| vec![None; args.len() - 2]);
    if multi {
        ctx.out.array(scores.len());
    }
    for s in scores {
        match s {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    }
    Ok(())
}

/// ZRANK / ZREVRANK key member [WITHSCORE]
pub fn zrank(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let rev = name_of(args) == "zrevrank";
    let withscore = match args.get(3) {
        Some(a) if is(a, "withscore") && args.len() == 4 => true,
        Some(_) => return Err(CmdError::Syntax),
        None => false,
    };
    let (db, clock, now) = ctx.db_clock();
    let r = db
        .read::<ZSetVal, _>(&args[1], now, clock, |z| {
            let rank = z.rank(&args[2])?;
            let rank = if rev { z.len() - 1 - rank } else { rank };
            Some((rank, z.score(&args[2]).unwrap_or(0.0)))
        })?
        .flatten();
    match r {
        Some((rank, s)) if withscore => {
            ctx.out.array(2);
            ctx.out.int(rank as i64);
            ctx.out.double(s);
        }
        Some((rank, _)) => ctx.out.int(rank as i64),
        None if withscore => ctx.out.null_array(),
        None => ctx.out.null(),
    }
    Ok(())
}

/// What a range selects.
enum RangeSpec {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// Selects members per `spec` (for REV, the bounds are given as min/max
/// already swapped back), applying `LIMIT offset count` (count < 0 = all).
fn select(z: &ZSetVal, spec: &RangeSpec, rev: bool, offset: i64, count: i64) -> Vec<(Key, f64)> {
    let take = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    let skip = offset.max(0) as usize;
    if offset < 0 {
        return Vec::new();
    }
    let it: ZIter<'_> = if rev {
        Box::new(z.ordered().rev())
    } else {
        z.ordered()
    };
    let own = |(s, m): (f64, &[u8])| (Key::from(m), s);
    match spec {
        RangeSpec::Rank(start, stop) => match index_range(*start, *stop, z.len()) {
            // Walk from whichever end is closer (ranks near the tail are common).
            Some((s, e)) if s > z.len() - 1 - e => {
                let back: ZIter<'_> = if rev {
                    z.ordered()
                } else {
                    Box::new(z.ordered().rev())
                };
                let mut v: Vec<(Key, f64)> = back
                    .skip(z.len() - 1 - e)
                    .take(e - s + 1)
                    .map(own)
                    .collect();
                v.reverse();
                v
            }
            Some((s, e)) => it.skip(s).take(e - s + 1).map(own).collect(),
            None => Vec::new(),
        },
        RangeSpec::Score(min, max) => {
            if !rev {
                z.ordered_from(min.v)
                    .skip_while(|(s, _)| !above_min(*s, *min))
                    .take_while(|(s, _)| below_max(*s, *max))
                    .skip(skip)
                    .take(take)
                    .map(own)
                    .collect()
            } else {
                it.skip_while(|(s, _)| !below_max(*s, *max))
                    .take_while(|(s, _)| above_min(*s, *min))
                    .skip(skip)
                    .take(take)
                    .map(own)
                    .collect()
            }
        }
        RangeSpec::Lex(min, max) => {
            if !rev {
                it.skip_while(|(_, m)| !lex_gte_min(m, min))
                    .take_while(|(_, m)| lex_lte_max(m, max))
                    .skip(skip)
                    .take(take)
                    .map(own)
                    .collect()
            } else {
                it.skip_while(|(_, m)| !lex_lte_max(m, max))
                    .take_while(|(_, m)| lex_gte_min(m, min))
                    .skip(skip)
                    .take(take)
                    .map(own)
                    .collect()
            }
        }
    }
}

/// ZRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE, ZRANGEBYLEX, ZREVRANGEBYLEX, ZREVRANGE, ZRANGESTORE.
pub fn zrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let store = name == "zrangestore";
    let (dst, src, a_min, a_max, opts) = if store {
        (Some(&args[1]), &args[2], &args[3], &args[4], &args[5..])
    } else {
        (None, &args[1], &args[2], &args[3], &args[4..])
    };
    let (mut byscore, mut bylex, mut rev, mut withscores) = (false, false, false, false);
    match name {
        "zrangebyscore" => byscore = true,
        "zrevrangebyscore" => {
            byscore = true;
            rev = true;
        }
        "zrangebylex" => bylex = true,
        "zrevrangebylex" => {
            bylex = true;
            rev = true;
        }
        "zrevrange" => rev = true,
        _ => {}
    }
    let legacy = name != "zrange" && name != "zrangestore";
    let mut limit: Option<(i64, i64)> = None;
    let mut i = 0;
    while i < opts.len() {
        let a = &opts[i];
        // As in Redis, REV and BYSCORE/BYLEX may each be given once, and
        // only to ZRANGE/ZRANGESTORE (the legacy commands fix them).
        let by_free = !legacy && !byscore && !bylex;
        if is(a, "withscores") && !store {
            withscores = true;
        } else if is(a, "limit") && i + 2 < opts.len() {
            limit = Some((int_arg(&opts[i + 1])?, int_arg(&opts[i + 2])?));
            i += 2;
        } else if by_free && is(a, "byscore") {
            byscore = true;
        } else if by_free && is(a, "bylex") {
            bylex = true;
        } else if !legacy && !rev && is(a, "rev") {
            rev = true;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if byscore && bylex {
        return Err(CmdError::Syntax);
    }
    // Redis refuses only a LIMIT count other than -1 on a rank range, and
    // ignores the offset there: `LIMIT 0 -1` (or `5 -1`) passes unnoticed.
    if limit.is_some_and(|(_, count)| count != -1) && !byscore && !bylex {
        return Err(err(
            "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && bylex {
        return Err(err(
            "syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    // With REV (and the legacy REV commands), the first bound is the maximum.
    let (lo, hi) = if rev && (byscore || bylex) {
        (a_max, a_min)
    } else {
        (a_min, a_max)
    };
    let spec = if byscore {
        RangeSpec::Score(score_bound(lo)?, score_bound(hi)?)
    } else if bylex {
        RangeSpec::Lex(lex_bound(lo)?, lex_bound(hi)?)
    } else {
        RangeSpec::Rank(int_arg(lo)?, int_arg(hi)?)
    };
    let (offset, count) = match spec {
        RangeSpec::Rank(..) => (0, -1),
        _ => limit.unwrap_or((0, -1)),
    };
    let (db, clock, now) = ctx.db_clock();
    let items = db
        .read::<ZSetVal, _>(src, now, clock, |z| select(z, &spec, rev, offset, count))?
        .unwrap_or_default();
    if let Some(dst) = dst {
        store_zset(db, dst, &items, now, clock);
        ctx.out.int(items.len() as i64);
    } else {
        reply_scored(&mut ctx.out, &items, withscores);
    }
    Ok(())
}

fn store_zset(db: &mut Db, dst: &[u8], items: &[(Key, f64)], now: u64, clock: u32) {
    if items.is_empty() {
        db.remove(dst, now);
        return;
    }
    let longest = items.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
    let mut z = ZSetVal::sized_for(items.len(), longest);
    for (m, s) in items {
        z.insert(m, *s);
    }
    db.set(dst, Value::ZSet(Box::new(z)), 0, clock);
}

/// ZREMRANGEBYSCORE / ZREMRANGEBYRANK / ZREMRANGEBYLEX key min max
pub fn zremrange(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let spec = match name_of(args) {
        "zremrangebyscore" => RangeSpec::Score(score_bound(&args[2])?, score_bound(&args[3])?),
        "zremrangebylex" => RangeSpec::Lex(lex_bound(&args[2])?, lex_bound(&args[3])?),
        _ => RangeSpec::Rank(int_arg(&args[2])?, int_arg(&args[3])?),
    };
    let (db, clock, now) = ctx.db_clock();
    let n = db
        .write_changed::<ZSetVal, _>(&args[1], now, clock, false, |z| {
            let doomed = select(z, &spec, false, 0, -1);
            for (m, _) in &doomed {
                z.remove(m);
            }
            (doomed.len(), !doomed.is_empty())
        })?
        .unwrap_or(0);
    ctx.out.int(n as i64);
    Ok(())
}

/// ZPOPMIN / ZPOPMAX key [count]
pub fn zpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let max = name_of(args) == "zpopmax";
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
    let items = db
        .write_changed::<ZSetVal, _>(&args[1], now, clock, false, |z| {
            let items = pop_n(z, max, count.unwrap_or(1));
            let changed = !items.is_empty();
            (items, changed)
        })?
        .unwrap_or_default();
    if count.is_none() || !ctx.out.resp3 {
        ctx.out.array(items.len() * 2);
        for (m, s) in &items {
            ctx.out.bulk(m);
            ctx.out.double(*s);
        }
    } else {
        reply_scored(&mut ctx.out, &items, true);
    }
    Ok(())
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
pub fn zmpop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (keys, word, count) = parse_mpop(args, 1)?;
    let max = minmax(&args[word])?;
    mpop_now(ctx, keys, BlockOp::ZMPop { max, count })
}

#[derive(Clone, Copy)]
enum Agg {
    Sum,
    Min,
    Max,
}

/// Folds `y` into the running score `x` as Redis does: a sum of +inf and
/// -inf is 0, and MIN/MAX keep `x` when `y` is NaN (a weight of 0 on an
/// infinite score).
fn agg(a: Agg, x: f64, y: f64) -> f64 {
    match a {
        Agg::Sum => {
            let r = x + y;
            if r.is_nan() { 0.0 } else { r }
        }
        Agg::Min => {
            if y < x {
                y
            } else {
                x
            }
        }
        Agg::Max => {
            if y > x {
                y
            } else {
                x
            }
        }
    }
}

/// Loads a sorted set or a plain set (members scored 1) as a member→score map.
fn load_scores(
    db: &mut Db,
    key: &[u8],
    now: u64,
    clock: u32,
) -> Result<Option<Vec<(Key, f64)>>, CmdError> {
    match db.get(key, now, clock) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z.ordered().map(|(s, m)| (Key::from(m), s)).collect())),
            Value::Set(s) => Ok(Some(s.iter().map(|m| (Key::from(m), 1.0)).collect())),
            _ => Err(CmdError::WrongType),
        },
    }
}

/// Fails with WRONGTYPE when an input is neither a sorted set nor a set.
/// Redis checks the inputs before it parses the options after them, so a
/// wrong type wins over a bad option. This is Redis's one read lookup per
/// input, so it is the one counted in `keyspace_hits`/`keyspace_misses`.
fn check_inputs(db: &mut Db, keys: &[Bytes], now: u64, clock: u32) -> CmdResult {
    for k in keys {
        if let Some(e) = db.get_read(k, now, clock)
            && !matches!(e.value, Value::ZSet(_) | Value::Set(_))
        {
            return Err(CmdError::WrongType);
        }
    }
    Ok(())
}

/// ZUNION/ZINTER/ZDIFF numkeys key... [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES], and STORE variants.
pub fn zsetop(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let name = name_of(args);
    let store = name.ends_with("store");
    let op = &name[1..if store { name.len() - 5 } else { name.len() }];
    let nk_at = if store { 2 } else { 1 };
    let n = int_arg(&args[nk_at])?;
    if n < 1 {
        return Err(err(format!(
            "at least 1 input key is needed for '{name}' command"
        )));
    }
    let n = n as usize;
    if args.len() < nk_at + 1 + n {
        return Err(CmdError::Syntax);
    }
    let keys = &args[nk_at + 1..nk_at + 1 + n];
    {
        let (db, clock, now) = ctx.db_clock();
        check_inputs(db, keys, now, clock)?;
    }
    let mut weights = vec![1.0; n];
    let mut aggregate = Agg::Sum;
    let mut withscores = false;
    let mut i = nk_at + 1 + n;
    while i < args.len() {
        let a = &args[i];
        if op != "diff" && is(a, "weights") && i + n < args.len() {
            for (j, w) in weights.iter_mut().enumerate() {
                *w = parse_float(&args[i + 1 + j])
                    .ok_or_else(|| err("weight value is not a float"))?;
            }
            i += n + 1;
        } else if op != "diff" && is(a, "aggregate") && i + 1 < args.len() {
            let v = &args[i + 1];
            aggregate = if is(v, "sum") {
                Agg::Sum
            } else if is(v, "min") {
                Agg::Min
            } else if is(v, "max") {
                Agg::Max
            } else {
                return Err(CmdError::Syntax);
            };
            i += 2;
        } else if !store && is(a, "withscores") {
            withscores = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let (db, clock, now) = ctx.db_clock();
    let mut inputs = Vec::with_capacity(n);
    for k in keys {
        inputs.push(load_scores(db, k, now, clock)?);
    }
    let mut inputs: Vec<_> = inputs.into_iter().zip(weights).collect();
    // Redis folds the inputs from the smallest to the largest (a stable
    // sort), which decides the result where +inf and -inf meet.
    if op != "diff" {
        inputs.sort_by_key(|(input, _)| input.as_ref().map_or(0, Vec::len));
    }
    let mut acc: HashMap<Key, f64> = HashMap::new();
    for (idx, (input, w)) in inputs.into_iter().enumerate() {
        let weighted = |s: f64| {
            let r = s * w;
            if r.is_nan() { 0.0 } else { r }
        };
        match op {
            "union" => {
                for (m, s) in input.unwrap_or_default() {
                    let s = weighted(s);
                    acc.entry(m)
                        .and_modify(|cur| *cur = agg(aggregate, *cur, s))
                        .or_insert(s);
                }
            }
            "inter" => {
                let input = input.unwrap_or_default();
                if idx == 0 {
                    acc = input.into_iter().map(|(m, s)| (m, weighted(s))).collect();
                } else {
                    let other: HashMap<Key, f64> = input.into_iter().collect();
                    acc.retain(|m, _| other.contains_key(m));
                    // Only the first input's products are cleaned of NaN.
                    for (m, cur) in acc.iter_mut() {
                        *cur = agg(aggregate, *cur, other[m] * w);
                    }
                }
            }
            _ => {
                let input = input.unwrap_or_default();
                if idx == 0 {
                    acc = input.into_iter().collect();
                } else {
                    for (m, _) in input {
                        acc.remove(&m);
                    }
                }
            }
        }
    }
    let mut items: Vec<(Key, f64)> = acc.into_iter().collect();
    items.sort_by(|a, b| {
        a.1.partial_cmp(&b.1)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.0.cmp(&b.0))
    });
    if store {
        store_zset(db, &args[1], &items, now, clock);
        ctx.out.int(items.len() as i64);
    } else {
        reply_scored(&mut ctx.out, &items, withscores);
    }
    Ok(())
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
pub fn zintercard(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    // The keys' types are checked before LIMIT is parsed, as in Redis.
    if let Ok(n) = usize::try_from(int_arg(&args[1])?)
        && n >= 1
        && args.len() >= 2 + n
    {
        let (db, clock, now) = ctx.db_clock();
        check_inputs(db, &args[2..2 + n], now, clock)?;
    }
    let (keys, limit) = intercard_args(args)?;
    let (db, clock, now) = ctx.db_clock();
    let mut sets: Vec<Option<Vec<(Key, f64)>>> = Vec::new();
    for k in keys {
        sets.push(load_scores(db, k, now, clock)?);
    }
    let mut iter = sets.into_iter();
    let mut acc: hashbrown::HashSet<Key> = iter
        .next()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    for s in iter {
        let other: hashbrown::HashSet<Key> =
            s.unwrap_or_default().into_iter().map(|(m, _)| m).collect();
        acc.retain(|m| other.contains(m));
    }
    let n = acc.len();
    ctx.out.int(if limit > 0 { n.min(limit) } else { n } as i64);
    Ok(())
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let (count, withscores) = super::random_count_with(args, "withscores")?;
    let (db, clock, now) = ctx.db_clock();
    let picked = db
        .read::<ZSetVal, _>(&args[1], now, clock, |z| {
            super::check_repeats(count)?;
            Ok::<_, CmdError>(
                super::pick_random(z.ordered(), z.len(), count)
                    .into_iter()
                    .map(|(s, m)| (Key::from(m), s))
                    .collect::<Vec<_>>(),
            )
        })?
        .transpose()?;
    match count {
        None => match picked.and_then(|v| v.into_iter().next()) {
            Some((m, _)) => ctx.out.bulk(&m),
            None => ctx.out.null(),
        },
        Some(_) => reply_scored(&mut ctx.out, &picked.unwrap_or_default(), withscores),
    }
    Ok(())
}

/// The integer a compact (listpack) sorted set stores for `score` in Redis:
/// integral scores within ±2^62 are written as integers, which `ZSCAN`
/// then shows without an exponent.
fn packed_score(score: f64) -> Option<i64> {
    const LIMIT: f64 = (i64::MAX / 2) as f64;
    if !(-LIMIT..=LIMIT).contains(&score) || score.fract() != 0.0 {
        return None;
    }
    Some(score as i64)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub fn zscan(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) -> CmdResult {
    let cursor = cursor_arg(&args[2])?;
    if !super::scan_target::<ZSetVal>(ctx, &args[1])? {
        return Ok(());
    }
    let (pat, count, _) = scan_opts(&args[3..], false)?;
    let (db, out, clock, now) = ctx.db_out();
    let found = db.read::<ZSetVal, _>(&args[1], now, clock, |z| {
        let packed = z.is_packed();
        let (next, items) = scan_collection(
            z.ordered().map(|(s, m)| (m, s)),
            cursor,
            count,
            pat.as_deref(),
            packed,
        );
        out.array(2);
        out.bulk(next.to_string().as_bytes());
        out.array(items.len() * 2);
        for (m, s) in items {
            out.bulk(m);
            // A compact set's scan hands out the stored text, and Redis
            // stores integral scores up to 2^62 as integers.
            match packed.then(|| packed_score(s)).flatten() {
                Some(i) => out.bulk(i.to_string().as_bytes()),
                None => out.bulk(fmt_g17(s).as_bytes()),
            }
        }
    })?;
    if found.is_none() {
        ctx.out.array(2);
        ctx.out.bulk(b"0");
        ctx.out.array(0);
    }
    Ok(())
}
