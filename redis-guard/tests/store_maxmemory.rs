//! maxmemory: OOM under noeviction, eviction under the other policies.

mod common;

use common::{TestServer, q, q_err};
use redis_guard::store::config::{ByteSize, EvictionPolicy};

fn used_memory(c: &mut redis::Connection) -> u64 {
    let info: String = q(c, &["INFO", "memory"]);
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn fill(
    c: &mut redis::Connection,
    prefix: &str,
    n: usize,
    ttl: bool,
) -> Vec<redis::RedisResult<()>> {
    let mut out = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        for i in chunk {
            let mut cmd = redis::cmd("SET");
            cmd.arg(format!("{prefix}:{i}")).arg("v".repeat(64));
            if ttl {
                cmd.arg("EX").arg(1000 + i);
            }
            out.push(cmd.query::<()>(c));
        }
    }
    out
}

/// The request's own bytes count, as Redis counts query buffers and queued
/// transactions in `used_memory`: one write larger than the room left is
/// refused whole instead of taking the store far past the limit.
#[test]
fn a_request_larger_than_the_room_left_is_refused() {
    let s = TestServer::start(|c| {
        c.maxmemory = ByteSize(1024 * 1024);
        c.maxmemory_policy = EvictionPolicy::NoEviction;
    });
    let mut c = s.conn();
    let value = "x".repeat(1024);
    let mut mset = redis::cmd("MSET");
    for i in 0..1500 {
        mset.arg(format!("m:{i}")).arg(&value);
    }
    let e = mset.query::<()>(&mut c).unwrap_err();
    assert_eq!(
        common::error_text(&e),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    // The same in a transaction: the queue itself fills the room.
    let mut r = s.raw();
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    let mut refused = 0;
    for i in 0..1500 {
        r.cmd(&["SET", &format!("t:{i}"), &value]);
        if r.line().starts_with("-OOM") {
            refused += 1;
        }
    }
    assert!(refused > 0, "the queue never counted");
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    assert!(used_memory(&mut c) <= 1024 * 1024);
}

#[test]
fn noeviction_refuses_writes_with_oom() {
    let s = TestServer::start(|c| {
        c.maxmemory = ByteSize(256 * 1024);
        c.maxmemory_policy = EvictionPolicy::NoEviction;
    });
    let mut c = s.conn();
    let results = fill(&mut c, "k", 5000, false);
    let first_err = results
        .iter()
        .position(|r| r.is_err())
        .expect("writes must eventually fail");
    assert!(first_err > 100);
    let e = results[first_err].as_ref().unwrap_err();
    assert_eq!(
        common::error_text(e),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    // Reads and deletes still work; non-growing writes are allowed.
    assert_eq!(q::<String>(&mut c, &["GET", "k:0"]), "v".repeat(64));
    assert_eq!(
        q_err(&mut c, &["LPUSH", "l", "x"]),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert_eq!(q::<i64>(&mut c, &["DEL", "k:0", "k:1", "k:2"]), 3);
    // Fill up again, then inside MULTI the denied command flags the transaction.
    let _ = fill(&mut c, "again", 100, false);
    let mut r = s.raw();
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    // As large as the writes `fill` could no longer fit.
    r.roundtrip(
        &["SET", "x", &"y".repeat(200)],
        b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    );
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    let _: () = q(&mut c, &["FLUSHALL"]);
    let _: () = q(&mut c, &["SET", "after", "flush"]);
}

#[test]
fn a_transaction_is_checked_for_memory_once_and_runs_whole_or_not_at_all() {
    let s = TestServer::start(|c| {
        c.maxmemory = ByteSize(256 * 1024);
        c.maxmemory_policy = EvictionPolicy::NoEviction;
    });
    let mut c = s.conn();
    const OOM: &[u8] = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n";
    // Under the limit at EXEC: every command runs, even the ones that take
    // memory past the limit halfway through (Redis checks once, at EXEC).
    // SETRANGE grows the data by 300 KB from a request of a few bytes (a
    // 300 KB request would itself count against the limit, as in Redis).
    let _: () = q(&mut c, &["SET", "f", "x"]);
    let mut r = s.raw();
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    let grow = ["SETRANGE", "big", "307200", "v"];
    r.roundtrip(&grow, b"+QUEUED\r\n");
    r.roundtrip(&["SET", "small", "1"], b"+QUEUED\r\n");
    r.roundtrip(&["DEL", "f"], b"+QUEUED\r\n");
    r.roundtrip(&["EXEC"], b"*3\r\n:307201\r\n+OK\r\n:1\r\n");
    assert_eq!(q::<String>(&mut c, &["GET", "small"]), "1");
    assert!(used_memory(&mut c) > 256 * 1024);
    // Queued under the limit, over it at EXEC: nothing runs.
    let _: i64 = q(&mut c, &["DEL", "big"]);
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["SET", "a", "1"], b"+QUEUED\r\n");
    r.roundtrip(&["INCR", "small"], b"+QUEUED\r\n");
    let _: i64 = q(&mut c, &grow);
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of: OOM command not allowed when used memory > 'maxmemory'.\r\n",
    );
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), None);
    assert_eq!(q::<String>(&mut c, &["GET", "small"]), "1");
    // Over the limit nothing is queued, reads included, and EXEC aborts.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["GET", "small"], OOM);
    r.roundtrip(&["DEL", "big"], OOM);
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    // Outside a transaction reads and deletes still work.
    assert_eq!(q::<String>(&mut c, &["GET", "small"]), "1");
    assert_eq!(q::<i64>(&mut c, &["DEL", "big"]), 1);
}

#[test]
fn allkeys_lru_evicts_and_keeps_hot_keys() {
    let limit = 512 * 1024;
    let s = TestServer::start(|c| {
        c.maxmemory = ByteSize(limit);
        c.maxmemory_policy = EvictionPolicy::AllkeysLru;
    });
    let mut c = s.conn();
    for i in 0..20 {
        let _: () = q(&mut c, &["SET", &format!("hot:{i}"), "h"]);
    }
    for round in 0..40 {
        let r = fill(&mut c, &format!("cold{round}"), 250, false);
        assert!(r.iter().all(|x| x.is_ok()), "allkeys-lru must never OOM");
        for i in 0..20 {
            let _: Option<String> = q(&mut c, &["GET", &format!("hot:{i}")]);
        }
    }
    // Eviction runs before each write, so at most one entry overshoots.
    assert!(used_memory(&mut c) <= limit + 1024);
    let n: i64 = q(&mut c, &["DBSIZE"]);
    assert!(n < 10_000, "{n}");
    let info: String = q(&mut c, &["INFO", "stats"]);
    let evicted: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(evicted > 1000, "{evicted}");
    let hot_alive: i64 = (0..20)
        .map(|i| q::<i64>(&mut c, &["EXISTS", &format!("hot:{i}")]))
        .sum();
    assert!(hot_alive >= 15, "only {hot_alive} hot keys survived");
}

#[test]
fn volatile_policies_only_touch_keys_with_ttl() {
    for policy in [EvictionPolicy::VolatileLru, EvictionPolicy::VolatileTtl] {
        let s = TestServer::start(|c| {
            c.maxmemory = ByteSize(256 * 1024);
            c.maxmemory_policy = policy;
        });
        let mut c = s.conn();
        let persistent = fill(&mut c, "keep", 300, false);
        assert!(persistent.iter().all(|r| r.is_ok()));
        let volatile = fill(&mut c, "tmp", 3000, true);
        assert!(volatile.iter().all(|r| r.is_ok()), "{policy:?}");
        for i in 0..300 {
            assert_eq!(q::<i64>(&mut c, &["EXISTS", &format!("keep:{i}")]), 1);
        }
        // Once only persistent keys are left, writes get OOM.
        let more = fill(&mut c, "more", 5000, false);
        assert!(more.iter().any(|r| r.is_err()), "{policy:?}");
    }
}

#[test]
fn allkeys_random_evicts() {
    let s = TestServer::start(|c| {
        c.maxmemory = ByteSize(256 * 1024);
        c.maxmemory_policy = EvictionPolicy::AllkeysRandom;
    });
    let mut c = s.conn();
    let r = fill(&mut c, "k", 5000, false);
    assert!(r.iter().all(|x| x.is_ok()));
    assert!(used_memory(&mut c) <= 256 * 1024 + 1024);
    assert!(q::<i64>(&mut c, &["DBSIZE"]) < 5000);
}

/// volatile-ttl evicts the keys nearest their expiry first: the sampled
/// candidates go through a pool of the best seen so far, as in Redis, rather
/// than the best of one small sample (the same pool serves the LRU policies,
/// whose hot keys `allkeys_lru_evicts_and_keeps_hot_keys` checks).
#[test]
fn eviction_picks_the_best_candidates() {
    let limit = 512 * 1024;
    let s = TestServer::start(|c| {
        c.maxmemory = ByteSize(limit);
        c.maxmemory_policy = EvictionPolicy::VolatileTtl;
    });
    let mut c = s.conn();
    let value = "v".repeat(64);
    let ttls = [100, 10_000, 100_000];
    for i in 0..9000 {
        let class = i % 3;
        let _: () = q(
            &mut c,
            &[
                "SET",
                &format!("t{class}:{i}"),
                &value,
                "EX",
                &ttls[class].to_string(),
            ],
        );
    }
    let alive = |c: &mut redis::Connection, class: usize| -> usize {
        (0..9000)
            .filter(|i| i % 3 == class)
            .filter(|i| q::<i64>(c, &["EXISTS", &format!("t{class}:{i}")]) == 1)
            .count()
    };
    let (short, long) = (alive(&mut c, 0), alive(&mut c, 2));
    assert!(short < 3000 && long > short, "short {short}, long {long}");
    // Nearly every eviction took a short-TTL key; a long one only rarely.
    assert!(
        3000 - long <= (3000 - short) / 20,
        "short {short}, long {long}"
    );
}
