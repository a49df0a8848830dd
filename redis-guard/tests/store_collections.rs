//! Hashes, lists, sets and sorted sets through redis-rs.

mod common;

use std::collections::{HashMap, HashSet};

use common::{TestServer, q, q_err};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn hashes() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", "a", "1", "b", "2"]), 2);
    assert_eq!(q::<i64>(&mut c, &["HSET", "h", "a", "3"]), 0);
    let _: () = q(&mut c, &["HMSET", "h", "c", "4"]);
    assert_eq!(
        q_err(&mut c, &["HSET", "h", "a"]),
        "ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(q::<String>(&mut c, &["HGET", "h", "a"]), "3");
    assert_eq!(q::<Option<String>>(&mut c, &["HGET", "h", "zz"]), None);
    assert_eq!(
        q::<Vec<Option<String>>>(&mut c, &["HMGET", "h", "a", "zz"]),
        vec![Some("3".into()), None]
    );
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "a", "9"]), 0);
    assert_eq!(q::<i64>(&mut c, &["HSETNX", "h", "d", "9"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 4);
    assert_eq!(q::<i64>(&mut c, &["HSTRLEN", "h", "d"]), 1);
    assert_eq!(q::<i64>(&mut c, &["HEXISTS", "h", "d"]), 1);
    let all: HashMap<String, String> = q(&mut c, &["HGETALL", "h"]);
    assert_eq!(all.len(), 4);
    let mut keys: Vec<String> = q(&mut c, &["HKEYS", "h"]);
    keys.sort();
    assert_eq!(keys, vec!["a", "b", "c", "d"]);
    let vals: Vec<String> = q(&mut c, &["HVALS", "h"]);
    assert_eq!(vals.len(), 4);
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "a", "10"]), 13);
    assert_eq!(q::<i64>(&mut c, &["HINCRBY", "h", "new", "-2"]), -2);
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "h", "a", "0.5"]),
        "13.5"
    );
    assert_eq!(
        q_err(&mut c, &["HINCRBY", "h", "a", "1"]),
        "ERR hash value is not an integer"
    );
    let _: i64 = q(&mut c, &["HSET", "h", "s", "x"]);
    assert_eq!(
        q_err(&mut c, &["HINCRBYFLOAT", "h", "s", "1"]),
        "ERR hash value is not a float"
    );
    let f: String = q(&mut c, &["HRANDFIELD", "h"]);
    assert!(all.contains_key(&f) || f == "new" || f == "s");
    let two: Vec<String> = q(&mut c, &["HRANDFIELD", "h", "2"]);
    assert_eq!(two.len(), 2);
    let rep: Vec<String> = q(&mut c, &["HRANDFIELD", "h", "-10", "WITHVALUES"]);
    assert_eq!(rep.len(), 20);
    let (cur, items): (String, Vec<String>) = q(&mut c, &["HSCAN", "h", "0", "MATCH", "a*"]);
    assert_eq!(cur, "0");
    assert_eq!(items, vec!["a", "13.5"]);
    assert_eq!(q::<i64>(&mut c, &["HDEL", "h", "a", "zz"]), 1);
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert_eq!(q_err(&mut c, &["HSET", "str", "a", "1"]), WRONGTYPE);
    // Deleting the last field deletes the key.
    let _: i64 = q(&mut c, &["HSET", "one", "f", "v"]);
    let _: i64 = q(&mut c, &["HDEL", "one", "f"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "one"]), 0);
    // Large hash scan iterates with cursors.
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("HSET")
            .arg("big")
            .arg(format!("f{i}"))
            .arg(i)
            .ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    let mut seen = HashSet::new();
    let mut cur = "0".to_string();
    loop {
        let (next, items): (String, Vec<String>) =
            q(&mut c, &["HSCAN", "big", &cur, "COUNT", "50"]);
        for pair in items.chunks(2) {
            seen.insert(pair[0].clone());
        }
        if next == "0" {
            break;
        }
        cur = next;
    }
    assert_eq!(seen.len(), 1000);
}

#[test]
fn lists() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["RPUSH", "l", "a", "b", "c"]), 3);
    assert_eq!(q::<i64>(&mut c, &["LPUSH", "l", "z"]), 4);
    assert_eq!(q::<i64>(&mut c, &["LPUSHX", "nolist", "z"]), 0);
    assert_eq!(q::<i64>(&mut c, &["RPUSHX", "l", "d"]), 5);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
        vec!["z", "a", "b", "c", "d"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "-2", "100"]),
        vec!["c", "d"]
    );
    assert_eq!(q::<i64>(&mut c, &["LLEN", "l"]), 5);
    assert_eq!(q::<String>(&mut c, &["LPOP", "l"]), "z");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["RPOP", "l", "2"]),
        vec!["d", "c"]
    );
    assert_eq!(
        q::<Option<Vec<String>>>(&mut c, &["LPOP", "nolist", "2"]),
        None
    );
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "-1"]), "b");
    assert_eq!(q::<Option<String>>(&mut c, &["LINDEX", "l", "10"]), None);
    let _: () = q(&mut c, &["LSET", "l", "0", "A"]);
    assert_eq!(
        q_err(&mut c, &["LSET", "l", "10", "x"]),
        "ERR index out of range"
    );
    assert_eq!(
        q_err(&mut c, &["LSET", "nolist", "0", "x"]),
        "ERR no such key"
    );
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "l", "BEFORE", "b", "x"]), 3);
    assert_eq!(q::<i64>(&mut c, &["LINSERT", "l", "AFTER", "zz", "x"]), -1);
    assert_eq!(
        q::<i64>(&mut c, &["LINSERT", "nolist", "AFTER", "zz", "x"]),
        0
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
        vec!["A", "x", "b"]
    );
    let _: i64 = q(&mut c, &["RPUSH", "r", "a", "b", "a", "c", "a"]);
    assert_eq!(q::<i64>(&mut c, &["LREM", "r", "-2", "a"]), 2);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "r", "0", "-1"]),
        vec!["a", "b", "c"]
    );
    let _: () = q(&mut c, &["LTRIM", "r", "1", "-1"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "r", "0", "-1"]),
        vec!["b", "c"]
    );
    let _: i64 = q(&mut c, &["RPUSH", "p", "a", "b", "c", "1", "c", "c"]);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "p", "c"]), 2);
    assert_eq!(q::<i64>(&mut c, &["LPOS", "p", "c", "RANK", "-1"]), 5);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["LPOS", "p", "c", "COUNT", "0"]),
        vec![2, 4, 5]
    );
    assert_eq!(q::<Option<i64>>(&mut c, &["LPOS", "p", "zz"]), None);
    assert_eq!(
        q::<String>(&mut c, &["LMOVE", "p", "dst", "LEFT", "RIGHT"]),
        "a"
    );
    assert_eq!(q::<String>(&mut c, &["RPOPLPUSH", "p", "dst"]), "c");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "dst", "0", "-1"]),
        vec!["c", "a"]
    );
    let v: (String, Vec<String>) = q(&mut c, &["LMPOP", "2", "nolist", "p", "LEFT", "COUNT", "2"]);
    assert_eq!(v, ("p".to_string(), vec!["b".to_string(), "c".to_string()]));
    assert_eq!(
        q::<Option<Vec<String>>>(&mut c, &["LMPOP", "1", "nolist", "LEFT"]),
        None
    );
    assert_eq!(
        q_err(&mut c, &["LMPOP", "0", "p", "LEFT"]),
        "ERR numkeys should be greater than 0"
    );
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert_eq!(q_err(&mut c, &["LPUSH", "str", "a"]), WRONGTYPE);
    // Popping the last element deletes the key.
    let _: i64 = q(&mut c, &["RPUSH", "one", "x"]);
    let _: String = q(&mut c, &["RPOP", "one"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "one"]), 0);
}

#[test]
fn sets() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["SADD", "s1", "a", "b", "c", "a"]), 3);
    assert_eq!(q::<i64>(&mut c, &["SADD", "s2", "b", "c", "d"]), 3);
    assert_eq!(q::<i64>(&mut c, &["SREM", "s1", "zz"]), 0);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s1"]), 3);
    assert_eq!(q::<i64>(&mut c, &["SISMEMBER", "s1", "a"]), 1);
    assert_eq!(
        q::<Vec<i64>>(&mut c, &["SMISMEMBER", "s1", "a", "zz"]),
        vec![1, 0]
    );
    let m: HashSet<String> = q(&mut c, &["SMEMBERS", "s1"]);
    assert_eq!(m.len(), 3);
    let inter: HashSet<String> = q(&mut c, &["SINTER", "s1", "s2"]);
    assert_eq!(inter, ["b", "c"].iter().map(|s| s.to_string()).collect());
    let uni: HashSet<String> = q(&mut c, &["SUNION", "s1", "s2"]);
    assert_eq!(uni.len(), 4);
    let diff: HashSet<String> = q(&mut c, &["SDIFF", "s1", "s2"]);
    assert_eq!(diff, ["a"].iter().map(|s| s.to_string()).collect());
    assert_eq!(q::<i64>(&mut c, &["SINTERSTORE", "d1", "s1", "s2"]), 2);
    assert_eq!(q::<i64>(&mut c, &["SUNIONSTORE", "d2", "s1", "s2"]), 4);
    assert_eq!(q::<i64>(&mut c, &["SDIFFSTORE", "d3", "s1", "s2"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SINTERSTORE", "d3", "s1", "nokey"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "d3"]), 0);
    assert_eq!(q::<i64>(&mut c, &["SINTERCARD", "2", "s1", "s2"]), 2);
    assert_eq!(
        q::<i64>(&mut c, &["SINTERCARD", "2", "s1", "s2", "LIMIT", "1"]),
        1
    );
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "s1", "s2", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "s1", "s2", "zz"]), 0);
    let r: String = q(&mut c, &["SRANDMEMBER", "s2"]);
    assert!(["a", "b", "c", "d"].contains(&r.as_str()));
    let r: Vec<String> = q(&mut c, &["SRANDMEMBER", "s2", "-7"]);
    assert_eq!(r.len(), 7);
    let r: Vec<String> = q(&mut c, &["SRANDMEMBER", "s2", "10"]);
    assert_eq!(r.len(), 4);
    let p: Vec<String> = q(&mut c, &["SPOP", "s2", "2"]);
    assert_eq!(p.len(), 2);
    assert_eq!(q::<i64>(&mut c, &["SCARD", "s2"]), 2);
    let _: String = q(&mut c, &["SPOP", "s1"]);
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert_eq!(q_err(&mut c, &["SINTER", "s2", "str"]), WRONGTYPE);
    let (cur, items): (String, Vec<String>) = q(&mut c, &["SSCAN", "s2", "0"]);
    assert_eq!(cur, "0");
    assert_eq!(items.len(), 2);

    // An intset (up to 512 integers) comes back whole from one SSCAN, in
    // numeric order, as from Redis; a hashtable set of that size in pieces.
    let mut sadd = vec!["SADD".to_string(), "ints".to_string()];
    sadd.extend((0..400).rev().map(|i| i.to_string()));
    let refs: Vec<&str> = sadd.iter().map(String::as_str).collect();
    assert_eq!(q::<i64>(&mut c, &refs), 400);
    let (cur, items): (String, Vec<i64>) = q(&mut c, &["SSCAN", "ints", "0", "COUNT", "10"]);
    assert_eq!(cur, "0");
    assert_eq!(items, (0..400).collect::<Vec<_>>());
    let _: i64 = q(&mut c, &["SADD", "ints", "x"]);
    let (cur, items): (String, Vec<String>) = q(&mut c, &["SSCAN", "ints", "0", "COUNT", "10"]);
    assert_ne!(cur, "0");
    assert!(items.len() < 401, "{}", items.len());
}

#[test]
fn sorted_sets() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
        3
    );
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "NX", "10", "a", "4", "d"]),
        1
    );
    assert_eq!(
        q::<i64>(&mut c, &["ZADD", "z", "XX", "CH", "5", "d", "9", "zz"]),
        1
    );
    assert_eq!(q::<i64>(&mut c, &["ZADD", "z", "GT", "CH", "1", "d"]), 0);
    assert_eq!(q::<i64>(&mut c, &["ZADD", "z", "LT", "CH", "4", "d"]), 1);
    assert_eq!(q::<f64>(&mut c, &["ZADD", "z", "INCR", "1", "d"]), 5.0);
    assert_eq!(
        q::<Option<f64>>(&mut c, &["ZADD", "z", "NX", "INCR", "1", "d"]),
        None
    );
    assert_eq!(
        q_err(&mut c, &["ZADD", "z", "NX", "XX", "1", "a"]),
        "ERR XX and NX options at the same time are not compatible"
    );
    assert_eq!(
        q_err(&mut c, &["ZADD", "z", "GT", "LT", "1", "a"]),
        "ERR GT, LT, and/or NX options at the same time are not compatible"
    );
    assert_eq!(
        q_err(&mut c, &["ZADD", "z", "x", "a"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        q_err(&mut c, &["ZADD", "z", "1", "a", "2"]),
        "ERR syntax error"
    );
    assert_eq!(q::<f64>(&mut c, &["ZINCRBY", "z", "1.5", "a"]), 2.5);
    assert_eq!(q::<f64>(&mut c, &["ZSCORE", "z", "a"]), 2.5);
    assert_eq!(
        q::<Vec<Option<f64>>>(&mut c, &["ZMSCORE", "z", "a", "zz"]),
        vec![Some(2.5), None]
    );
    assert_eq!(q::<i64>(&mut c, &["ZCARD", "z"]), 4);
    assert_eq!(q::<i64>(&mut c, &["ZRANK", "z", "b"]), 0);
    assert_eq!(q::<i64>(&mut c, &["ZREVRANK", "z", "b"]), 3);
    assert_eq!(q::<Option<i64>>(&mut c, &["ZRANK", "z", "zz"]), None);
    assert_eq!(q::<i64>(&mut c, &["ZCOUNT", "z", "(2", "+inf"]), 3);
    assert_eq!(q::<i64>(&mut c, &["ZCOUNT", "z", "-inf", "(3"]), 2);
    assert_eq!(
        q_err(&mut c, &["ZCOUNT", "z", "x", "1"]),
        "ERR min or max is not a float"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "-1"]),
        vec!["b", "a", "c", "d"]
    );
    assert_eq!(
        q::<Vec<(String, f64)>>(&mut c, &["ZRANGE", "z", "0", "1", "WITHSCORES"]),
        vec![("b".to_string(), 2.0), ("a".to_string(), 2.5)]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["ZRANGE", "z", "(2", "5", "BYSCORE", "LIMIT", "1", "2"]
        ),
        vec!["c", "d"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "5", "(2", "BYSCORE", "REV"]),
        vec!["d", "c", "a"]
    );
    assert_eq!(
        q_err(&mut c, &["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "1"]
        ),
        vec!["a"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZREVRANGEBYSCORE", "z", "+inf", "3"]),
        vec!["d", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZREVRANGE", "z", "0", "0"]),
        vec!["d"]
    );
    let _: i64 = q(
        &mut c,
        &["ZADD", "lex", "0", "a", "0", "b", "0", "c", "0", "d"],
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGEBYLEX", "lex", "[b", "(d"]),
        vec!["b", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(
            &mut c,
            &["ZREVRANGEBYLEX", "lex", "+", "-", "LIMIT", "0", "2"]
        ),
        vec!["d", "c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "lex", "-", "[b", "BYLEX"]),
        vec!["a", "b"]
    );
    assert_eq!(q::<i64>(&mut c, &["ZLEXCOUNT", "lex", "(a", "+"]), 3);
    assert_eq!(
        q_err(&mut c, &["ZRANGEBYLEX", "lex", "b", "d"]),
        "ERR min or max not valid string range item"
    );
    assert_eq!(q::<i64>(&mut c, &["ZRANGESTORE", "zs", "z", "0", "1"]), 2);
    assert_eq!(q::<i64>(&mut c, &["ZREMRANGEBYRANK", "zs", "0", "0"]), 1);
    assert_eq!(
        q::<i64>(&mut c, &["ZREMRANGEBYSCORE", "lex", "-inf", "+inf"]),
        4
    );
    let _: i64 = q(&mut c, &["ZADD", "lex", "0", "a", "0", "b", "0", "c"]);
    assert_eq!(q::<i64>(&mut c, &["ZREMRANGEBYLEX", "lex", "-", "(c"]), 2);
    assert_eq!(
        q::<(String, f64)>(&mut c, &["ZPOPMIN", "z"]),
        ("b".to_string(), 2.0)
    );
    assert_eq!(
        q::<Vec<(String, f64)>>(&mut c, &["ZPOPMAX", "z", "2"]),
        vec![("d".to_string(), 5.0), ("c".to_string(), 3.0)]
    );
    let _: i64 = q(&mut c, &["ZADD", "z1", "1", "a", "2", "b"]);
    let _: i64 = q(&mut c, &["ZADD", "z2", "3", "b", "4", "c"]);
    let _: i64 = q(&mut c, &["SADD", "plain", "a", "c"]);
    assert_eq!(
        q::<Vec<(String, f64)>>(&mut c, &["ZUNION", "2", "z1", "z2", "WITHSCORES"]),
        vec![
            ("a".to_string(), 1.0),
            ("c".to_string(), 4.0),
            ("b".to_string(), 5.0)
        ]
    );
    assert_eq!(
        q::<Vec<(String, f64)>>(
            &mut c,
            &[
                "ZINTER",
                "2",
                "z1",
                "z2",
                "WEIGHTS",
                "2",
                "3",
                "AGGREGATE",
                "MAX",
                "WITHSCORES"
            ]
        ),
        vec![("b".to_string(), 9.0)]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZDIFF", "2", "z1", "z2"]),
        vec!["a"]
    );
    assert_eq!(
        q::<i64>(&mut c, &["ZUNIONSTORE", "u", "3", "z1", "z2", "plain"]),
        3
    );
    assert_eq!(q::<f64>(&mut c, &["ZSCORE", "u", "a"]), 2.0);
    assert_eq!(q::<i64>(&mut c, &["ZINTERSTORE", "i", "2", "z1", "z2"]), 1);
    assert_eq!(q::<i64>(&mut c, &["ZDIFFSTORE", "d", "2", "z1", "z2"]), 1);
    assert_eq!(q::<i64>(&mut c, &["ZINTERCARD", "2", "z1", "z2"]), 1);
    assert_eq!(
        q_err(&mut c, &["ZUNIONSTORE", "u", "0", "z1"]),
        "ERR at least 1 input key is needed for 'zunionstore' command"
    );
    let v: (String, Vec<(String, f64)>) = q(&mut c, &["ZMPOP", "1", "z1", "MAX", "COUNT", "5"]);
    assert_eq!(v.0, "z1");
    assert_eq!(v.1, vec![("b".to_string(), 2.0), ("a".to_string(), 1.0)]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "z1"]), 0);
    let r: Vec<String> = q(&mut c, &["ZRANDMEMBER", "z2", "-5"]);
    assert_eq!(r.len(), 5);
    let (cur, items): (String, Vec<String>) = q(&mut c, &["ZSCAN", "z2", "0"]);
    assert_eq!(cur, "0");
    assert_eq!(items.len(), 4);
    let _: i64 = q(&mut c, &["ZADD", "inf", "-inf", "a", "+inf", "b"]);
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "inf", "a"]), "-inf");
    assert_eq!(
        q_err(&mut c, &["ZINCRBY", "inf", "-inf", "b"]),
        "ERR resulting score is not a number (NaN)"
    );
    let _: i64 = q(&mut c, &["ZADD", "prec", "1.1", "a"]);
    assert_eq!(
        q::<String>(&mut c, &["ZSCORE", "prec", "a"]),
        "1.1000000000000001"
    );
}

#[test]
fn compact_encodings_convert_like_redis() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..512 {
        p.cmd("HSET").arg("h").arg(format!("f{i}")).arg(i).ignore();
    }
    for i in 0..128 {
        p.cmd("ZADD").arg("z").arg(i).arg(format!("m{i}")).ignore();
        p.cmd("RPUSH").arg("l").arg(i).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "h"]),
        "listpack"
    );
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "z"]),
        "listpack"
    );
    let _: i64 = q(&mut c, &["HSET", "h", "f513", "x"]);
    let _: i64 = q(&mut c, &["ZADD", "z", "0.5", "m129"]);
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "h"]),
        "hashtable"
    );
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "z"]),
        "skiplist"
    );
    // Content and order survive the conversion.
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 513);
    assert_eq!(q::<String>(&mut c, &["HGET", "h", "f7"]), "7");
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "2"]),
        vec!["m0", "m129", "m1"]
    );
    let _: i64 = q(&mut c, &["RPUSH", "l", "x"]);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "l"]), 129);
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "-1"]), "x");
    assert_eq!(q::<String>(&mut c, &["LINDEX", "l", "100"]), "100");
    // A long value converts at once.
    let long = "v".repeat(65);
    let _: i64 = q(&mut c, &["HSET", "h2", "f", &long]);
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "h2"]),
        "hashtable"
    );
    let _: i64 = q(&mut c, &["ZADD", "z2", "1", &long]);
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "z2"]),
        "skiplist"
    );
    // Deleting a big collection answers at once (freed in the background).
    let mut p = redis::pipe();
    for i in 0..200_000 {
        p.cmd("SADD").arg("bigset").arg(i).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    assert_eq!(q::<i64>(&mut c, &["DEL", "bigset"]), 1);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "bigset"]), 0);
}

/// Ranks whose end falls before the first element select nothing (Redis
/// clamps the start to 0, never the end): the "keep the top N" idioms must
/// not trim or remove what Redis keeps.
#[test]
fn rank_ranges_ending_before_the_start_are_empty() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "l", "a", "b", "c", "d", "e"]);
    for (start, stop) in [("0", "-6"), ("-100", "-50"), ("0", "-100"), ("3", "1")] {
        assert!(
            q::<Vec<String>>(&mut c, &["LRANGE", "l", start, stop]).is_empty(),
            "LRANGE l {start} {stop}"
        );
    }
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "-100", "0"]),
        vec!["a"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "l", "-2", "100"]),
        vec!["d", "e"]
    );
    let _: () = q(&mut c, &["LTRIM", "l", "0", "-100"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "l"]), 0);

    let _: i64 = q(
        &mut c,
        &[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ],
    );
    assert!(q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "-100"]).is_empty());
    assert!(q::<Vec<String>>(&mut c, &["ZREVRANGE", "z", "0", "-6"]).is_empty());
    assert_eq!(q::<i64>(&mut c, &["ZRANGESTORE", "d", "z", "0", "-6"]), 0);
    for (start, stop) in [("0", "-6"), ("-100", "-6"), ("-6", "-100")] {
        assert_eq!(
            q::<i64>(&mut c, &["ZREMRANGEBYRANK", "z", start, stop]),
            0,
            "ZREMRANGEBYRANK z {start} {stop}"
        );
    }
    assert_eq!(q::<i64>(&mut c, &["ZCARD", "z"]), 5);
    // Keep the top 3 by score.
    assert_eq!(q::<i64>(&mut c, &["ZREMRANGEBYRANK", "z", "0", "-4"]), 2);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "0", "-1"]),
        vec!["c", "d", "e"]
    );
    // GETRANGE keeps Redis 7.0's own rule: its end is clamped to 0.
    let _: () = q(&mut c, &["SET", "s", "hello"]);
    assert_eq!(q::<String>(&mut c, &["GETRANGE", "s", "0", "-100"]), "h");
}
