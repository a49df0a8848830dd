//! Replies compared byte for byte with redis-server 7.0.15's, for cases a
//! differential run against the reference found different: float text,
//! repeated options, set order, error texts, RESP3 shapes, COMMAND.

mod common;

use std::time::Duration;

use common::{TestServer, q, q_err, wait_blocked};

/// The value of `name:` in an INFO reply.
fn info_field<T: std::str::FromStr>(info: &str, name: &str) -> T {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing from INFO"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// `avg_ttl` of database `db` in `INFO keyspace` (0 when it holds no keys).
fn avg_ttl(c: &mut redis::Connection, db: usize) -> u64 {
    let ks: String = q(c, &["INFO", "keyspace"]);
    ks.lines()
        .find(|l| l.starts_with(&format!("db{db}:")))
        .and_then(|l| l.rsplit("avg_ttl=").next())
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[test]
fn incrbyfloat_prints_decimals_as_redis_does() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    for _ in 0..3 {
        let _: String = q(&mut c, &["INCRBYFLOAT", "f", "0.1"]);
    }
    assert_eq!(q::<String>(&mut c, &["GET", "f"]), "0.3");
    let _: () = q(&mut c, &["SET", "g", "1.1"]);
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "g", "2.2"]), "3.3");
    let _: () = q(&mut c, &["SET", "h", "100"]);
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "h", "-99.9"]), "0.1");
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "tiny", "1e-20"]), "0");
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "int", "123456789012345678"]),
        "123456789012345678"
    );
    let _: () = q(&mut c, &["SET", "doc", "10.50"]);
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "doc", "0.1"]), "10.6");
    // long double range: far beyond f64, as in Redis.
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "huge", "1e400"]).len(),
        401
    );
    assert_eq!(
        q_err(&mut c, &["INCRBYFLOAT", "x", "1e5000"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        q_err(&mut c, &["INCRBYFLOAT", "x", "inf"]),
        "ERR increment would produce NaN or Infinity"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "hh", "f", "0.1"]),
        "0.1"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "hh", "f", "0.2"]),
        "0.3"
    );
    // Larger magnitudes show long double's representation error, and
    // redis-server 7.0.15 prints it: these are its replies.
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "s", "1234.56"]),
        "1234.56000000000000005"
    );
    let _: () = q(&mut c, &["SET", "p", "1000.10"]);
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "p", "0.2"]),
        "1000.29999999999999999"
    );
    let _: () = q(&mut c, &["SET", "fl", "1.5"]);
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "fl", "123456789.123456789"]),
        "123456790.62345678899873747"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "h2", "f", "25000.75"]),
        "25000.75"
    );
    assert_eq!(
        q::<String>(&mut c, &["HINCRBYFLOAT", "h2", "f", "0.1"]),
        "25000.84999999999999964"
    );
    let _: () = q(&mut c, &["SET", "one", "1.5"]);
    assert_eq!(
        q::<String>(&mut c, &["INCRBYFLOAT", "one", "1e-400"]),
        "1.5"
    );
    assert!(
        q::<String>(&mut c, &["INCRBYFLOAT", "big", "1e309"])
            .starts_with("999999999999999999986349424581256454766")
    );
    assert_eq!(
        q_err(&mut c, &["HINCRBYFLOAT", "hh", "f", "-inf"]),
        "ERR value is NaN or Infinity"
    );
}

#[test]
fn repeated_options_follow_redis_parser() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "k", "v", "EX", "10", "EX", "2000"]);
    assert!(q::<i64>(&mut c, &["TTL", "k"]) > 1000);
    let _: () = q(&mut c, &["SET", "k", "v", "KEEPTTL", "KEEPTTL"]);
    assert_eq!(
        q_err(&mut c, &["SET", "k", "v", "EX", "10", "PX", "100"]),
        "ERR syntax error"
    );
    assert_eq!(
        q_err(&mut c, &["SET", "k", "v", "KEEPTTL", "EX", "10"]),
        "ERR syntax error"
    );
    let _: String = q(&mut c, &["GETEX", "k", "EX", "100", "EX", "200"]);
    assert!(q::<i64>(&mut c, &["TTL", "k"]) > 150);
    let _: String = q(&mut c, &["GETEX", "k", "PERSIST", "PERSIST"]);
    assert_eq!(q::<i64>(&mut c, &["TTL", "k"]), -1);
    let _: i64 = q(&mut c, &["SADD", "a", "1", "2", "3", "4"]);
    assert_eq!(
        q::<i64>(
            &mut c,
            &["SINTERCARD", "1", "a", "LIMIT", "2", "LIMIT", "3"]
        ),
        3
    );
    let _: i64 = q(&mut c, &["ZADD", "z", "1", "a", "2", "b"]);
    assert_eq!(
        q_err(&mut c, &["ZRANGE", "z", "0", "-1", "REV", "REV"]),
        "ERR syntax error"
    );
    assert_eq!(
        q_err(&mut c, &["ZRANGE", "z", "0", "1", "BYSCORE", "BYSCORE"]),
        "ERR syntax error"
    );
    assert_eq!(
        q_err(&mut c, &["ZRANGEBYLEX", "z", "-", "+", "WITHSCORES"]),
        "ERR syntax error, WITHSCORES not supported in combination with BYLEX"
    );
}

#[test]
fn integer_sets_list_in_ascending_order_like_an_intset() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["SADD", "s", "3", "1", "2", "-5", "100"]);
    let sorted = vec!["-5", "1", "2", "3", "100"];
    assert_eq!(q::<Vec<String>>(&mut c, &["SMEMBERS", "s"]), sorted);
    assert_eq!(q::<Vec<String>>(&mut c, &["SUNION", "s"]), sorted);
    assert_eq!(q::<Vec<String>>(&mut c, &["SINTER", "s", "s"]), sorted);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SRANDMEMBER", "s", "10"]),
        sorted
    );
    let (cursor, members): (String, Vec<String>) = q(&mut c, &["SSCAN", "s", "0"]);
    assert_eq!(cursor, "0");
    assert_eq!(members, sorted);
    assert_eq!(q::<String>(&mut c, &["OBJECT", "ENCODING", "s"]), "intset");
    // Redis never turns a hashtable set back into an intset.
    let _: i64 = q(&mut c, &["SADD", "t", "a", "1"]);
    let _: i64 = q(&mut c, &["SREM", "t", "a"]);
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "t"]),
        "hashtable"
    );
}

#[test]
fn hashes_stay_listpack_up_to_512_fields() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..512 {
        p.cmd("HSET").arg("h").arg(format!("f{i}")).arg(i).ignore();
    }
    let _: () = p.query(&mut c).unwrap();
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "h"]),
        "listpack"
    );
    let fields: Vec<String> = q(&mut c, &["HKEYS", "h"]);
    assert_eq!(
        fields[..3],
        ["f0", "f1", "f2"],
        "listpack keeps insertion order"
    );
    let _: i64 = q(&mut c, &["HSET", "h", "f512", "x"]);
    assert_eq!(
        q::<String>(&mut c, &["OBJECT", "ENCODING", "h"]),
        "hashtable"
    );
    assert_eq!(q::<i64>(&mut c, &["HLEN", "h"]), 513);
}

#[test]
fn error_texts_and_edge_replies_match_redis() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    // ZADD's flag parsing runs for ZINCRBY too in Redis: a flag word where
    // the increment goes leaves one argument short.
    assert_eq!(
        q_err(&mut c, &["ZINCRBY", "z", "XX", "a"]),
        "ERR syntax error"
    );
    assert_eq!(
        q_err(&mut c, &["ZINCRBY", "z", "nope", "a"]),
        "ERR value is not a valid float"
    );
    // A transaction cannot turn its client into a monitor feed.
    {
        let mut r = s.raw_authed();
        r.roundtrip(&["MULTI"], b"+OK\r\n");
        r.roundtrip(&["MONITOR"], b"+QUEUED\r\n");
        r.roundtrip(
            &["EXEC"],
            b"*1\r\n-ERR MONITOR isn't allowed for DENY BLOCKING client\r\n",
        );
        r.roundtrip(&["PING"], b"+PONG\r\n");
    }
    assert_eq!(
        q_err(&mut c, &["ZADD", "z", "1e1000", "a"]),
        "ERR value is not a valid float"
    );
    assert_eq!(
        q_err(&mut c, &["ZADD", "z", "1e-400", "a"]),
        "ERR value is not a valid float"
    );
    // strtod's hexadecimal floats.
    let _: i64 = q(&mut c, &["ZADD", "hex", "0x10", "a", "-0x1.8p1", "b"]);
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "hex", "a"]), "16");
    assert_eq!(q::<String>(&mut c, &["ZSCORE", "hex", "b"]), "-3");
    assert_eq!(q::<String>(&mut c, &["INCRBYFLOAT", "hexf", "0x10"]), "16");
    assert_eq!(
        q_err(&mut c, &["ZADD", "hex", "0x", "c"]),
        "ERR value is not a valid float"
    );
    let _: i64 = q(&mut c, &["ZADD", "z", "inf", "top", "0", "zero", "3", "c"]);
    // A bare "(" is "above 0", as strtod makes it in Redis.
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGE", "z", "(", "3", "BYSCORE"]),
        vec!["c"]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["ZRANGEBYSCORE", "z", "(1e1000", "+inf"]),
        Vec::<String>::new()
    );
    assert_eq!(
        q_err(&mut c, &["ZINTERCARD", "0", "a"]),
        "ERR at least 1 input key is needed for 'zintercard' command"
    );
    assert_eq!(
        q_err(&mut c, &["SINTERCARD", "0", "a"]),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        q_err(&mut c, &["SPOP", "s", "abc"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        q_err(&mut c, &["ZPOPMIN", "z", "abc"]),
        "ERR value is out of range, must be positive"
    );
    assert_eq!(
        q_err(&mut c, &["SRANDMEMBER", "s", "-9223372036854775808"]),
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "missing", "str", "a"]), 0);
    assert_eq!(
        q_err(&mut c, &["PUBSUB", "CHANNELS", "a", "b"]),
        "ERR unknown subcommand or wrong number of arguments for 'CHANNELS'. Try PUBSUB HELP."
    );
    assert_eq!(
        q_err(&mut c, &["BLPOP", "l", "inf"]),
        "ERR timeout is negative"
    );
    assert_eq!(
        q_err(&mut c, &["BLPOP", "l", "abc"]),
        "ERR timeout is not a float or out of range"
    );

    let mut r = s.raw_authed();
    r.roundtrip(
        &["EXEC", "x"],
        b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n",
    );
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["SET", "t", "1"], b"+QUEUED\r\n");
    r.roundtrip(
        &["EXEC", "x"],
        b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n",
    );
    r.roundtrip(&["EXEC"], b"-ERR EXEC without MULTI\r\n");
    r.roundtrip(&["EXISTS", "t"], b":0\r\n");
}

#[test]
fn resp3_pubsub_numsub_is_a_flat_array() {
    let s = TestServer::start(|_| {});
    let mut sub = s.conn();
    let _: () = q(&mut sub, &["SUBSCRIBE", "news"]);
    let mut r = s.raw_authed();
    r.cmd(&["HELLO", "3"]);
    r.drain();
    r.roundtrip(
        &["PUBSUB", "NUMSUB", "news", "zz"],
        b"*4\r\n$4\r\nnews\r\n:1\r\n$2\r\nzz\r\n:0\r\n",
    );
}

#[test]
fn blmove_to_a_wrong_type_destination_wakes_with_wrongtype() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "dst", "str"]);
    let mut waiter = s.raw_authed();
    waiter.cmd(&["BLMOVE", "q", "dst", "LEFT", "LEFT", "5"]);
    // Let the waiter block before the push.
    wait_blocked(&mut c);
    let _: i64 = q(&mut c, &["RPUSH", "q", "a"]);
    let started = std::time::Instant::now();
    waiter.expect(b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "woke only at the timeout"
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "q", "0", "-1"]),
        vec!["a"]
    );
}

#[test]
fn command_introspection_matches_redis_shapes() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    r.roundtrip(&["COMMAND", "INFO", "nosuchcommand"], b"*1\r\n$-1\r\n");
    // Containers as Redis 7.0 describes them: nothing of their own, and one
    // entry per subcommand, each with its own keys and categories.
    r.roundtrip(
        &["COMMAND", "INFO", "memory|usage"],
        b"*1\r\n*10\r\n$12\r\nmemory|usage\r\n:-3\r\n*1\r\n+readonly\r\n:2\r\n:2\r\n:1\r\n\
          *2\r\n+@read\r\n+@slow\r\n*0\r\n*0\r\n*0\r\n",
    );
    r.cmd(&["COMMAND", "INFO", "memory"]);
    let memory = String::from_utf8(r.drain()).unwrap();
    assert!(
        memory.starts_with(
            "*1\r\n*10\r\n$6\r\nmemory\r\n:-2\r\n*0\r\n:0\r\n:0\r\n:0\r\n*1\r\n+@slow\r\n"
        ),
        "{memory}"
    );
    assert!(
        memory.contains("$12\r\nmemory|stats\r\n:2\r\n*0\r\n"),
        "{memory}"
    );
    assert!(memory.contains("$12\r\nmemory|usage\r\n"), "{memory}");
    let mut c = s.conn();
    let mut zr: Vec<String> = q(
        &mut c,
        &["COMMAND", "LIST", "FILTERBY", "PATTERN", "zrange*"],
    );
    zr.sort();
    assert_eq!(
        zr,
        vec!["zrange", "zrangebylex", "zrangebyscore", "zrangestore"]
    );
    let lists: Vec<String> = q(&mut c, &["COMMAND", "LIST", "FILTERBY", "ACLCAT", "list"]);
    assert!(lists.contains(&"lpush".to_string()) && !lists.contains(&"sadd".to_string()));
    let none: Vec<String> = q(&mut c, &["COMMAND", "LIST", "FILTERBY", "MODULE", "x"]);
    assert!(none.is_empty());
    assert_eq!(
        q_err(&mut c, &["COMMAND", "LIST", "FILTERBY", "COLOR", "x"]),
        "ERR syntax error"
    );
    let keys: Vec<String> = q(
        &mut c,
        &["COMMAND", "GETKEYS", "ZUNIONSTORE", "d", "2", "a", "b"],
    );
    assert_eq!(keys, vec!["d", "a", "b"]);
}

#[test]
fn moving_a_single_element_onto_its_own_key_keeps_the_ttl() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let cases: [&[&str]; 4] = [
        &["LMOVE", "l", "l", "LEFT", "RIGHT"],
        &["RPOPLPUSH", "l", "l"],
        &["BLMOVE", "l", "l", "RIGHT", "LEFT", "1"],
        &["BRPOPLPUSH", "l", "l", "1"],
    ];
    for cmd in cases {
        let _: i64 = q(&mut c, &["DEL", "l"]);
        let _: i64 = q(&mut c, &["RPUSH", "l", "a"]);
        let _: i64 = q(&mut c, &["EXPIRE", "l", "100"]);
        assert_eq!(q::<String>(&mut c, cmd), "a", "{cmd:?}");
        assert!(
            q::<i64>(&mut c, &["TTL", "l"]) > 90,
            "{cmd:?} dropped the TTL"
        );
        assert_eq!(
            q::<Vec<String>>(&mut c, &["LRANGE", "l", "0", "-1"]),
            vec!["a"]
        );
    }
    let _: i64 = q(&mut c, &["SADD", "s", "a"]);
    let _: i64 = q(&mut c, &["EXPIRE", "s", "100"]);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "s", "s", "a"]), 1);
    assert_eq!(q::<i64>(&mut c, &["SMOVE", "s", "s", "zz"]), 0);
    assert!(q::<i64>(&mut c, &["TTL", "s"]) > 90);
}

#[test]
fn watch_is_only_broken_by_real_changes() {
    let s = TestServer::start(|_| {});
    let mut other = s.conn();
    let mut r = s.raw_authed();
    let tx = |r: &mut common::Raw, expect: &[u8]| {
        r.roundtrip(&["MULTI"], b"+OK\r\n");
        r.roundtrip(&["PING"], b"+QUEUED\r\n");
        r.roundtrip(&["EXEC"], expect);
    };
    // Flushing or swapping databases that never held the key.
    for change in [&["FLUSHDB"][..], &["FLUSHALL"], &["SWAPDB", "0", "1"]] {
        r.roundtrip(&["WATCH", "absent"], b"+OK\r\n");
        let _: () = q(&mut other, change);
        tx(&mut r, b"*1\r\n+PONG\r\n");
    }
    // PERSIST on a key without a TTL, SMOVE onto itself.
    let _: () = q(&mut other, &["SET", "k", "1"]);
    r.roundtrip(&["WATCH", "k"], b"+OK\r\n");
    let _: String = q(&mut other, &["GETEX", "k", "PERSIST"]);
    tx(&mut r, b"*1\r\n+PONG\r\n");
    let _: i64 = q(&mut other, &["SADD", "s", "a"]);
    r.roundtrip(&["WATCH", "s"], b"+OK\r\n");
    let _: i64 = q(&mut other, &["SMOVE", "s", "s", "a"]);
    tx(&mut r, b"*1\r\n+PONG\r\n");
    // A flush that deletes the watched key does break it.
    r.roundtrip(&["WATCH", "k"], b"+OK\r\n");
    let _: () = q(&mut other, &["FLUSHDB"]);
    tx(&mut r, b"*-1\r\n");
}

#[test]
fn client_kill_filters_are_validated() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(
        q_err(&mut c, &["CLIENT", "KILL", "ID", "0"]),
        "ERR client-id should be greater than 0"
    );
    assert_eq!(
        q_err(&mut c, &["CLIENT", "KILL", "TYPE", "foo"]),
        "ERR Unknown client type 'foo'"
    );
    assert_eq!(
        q_err(&mut c, &["CLIENT", "KILL", "USER", "nosuch"]),
        "ERR No such user 'nosuch'"
    );
    assert_eq!(
        q_err(&mut c, &["CLIENT", "KILL", "MAXAGE", "100"]),
        "ERR syntax error"
    );
    let mut sub = s.conn();
    let _: () = q(&mut sub, &["SUBSCRIBE", "ch"]);
    let mut plain = s.conn();
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "KILL", "TYPE", "pubsub"]), 1);
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "KILL", "TYPE", "master"]), 0);
    assert_eq!(q::<String>(&mut plain, &["PING"]), "PONG");
}

#[test]
fn memory_stats_answers_with_redis_field_names() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: () = q(&mut c, &["SET", "b", "2", "EX", "100"]);
    let _: () = q(&mut c, &["SELECT", "3"]);
    let _: () = q(&mut c, &["SET", "c", "3"]);
    let v: redis::Value = q(&mut c, &["MEMORY", "STATS"]);
    let redis::Value::Array(items) = v else {
        panic!("MEMORY STATS is not a flat map in RESP2: {v:?}")
    };
    assert_eq!(items.len() % 2, 0);
    let field = |name: &str| {
        items
            .chunks(2)
            .find(|kv| kv[0] == redis::Value::BulkString(name.as_bytes().to_vec()))
            .map(|kv| kv[1].clone())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(field("keys.count"), redis::Value::Int(3));
    assert!(matches!(field("total.allocated"), redis::Value::Int(n) if n > 0));
    assert!(matches!(field("peak.allocated"), redis::Value::Int(n) if n > 0));
    assert_eq!(field("dataset.bytes"), field("total.allocated"));
    assert!(q::<i64>(&mut c, &["MEMORY", "USAGE", "c", "SAMPLES", "0"]) > 0);
    assert_eq!(
        q_err(&mut c, &["MEMORY", "USAGE", "c", "SAMPLES", "-1"]),
        "ERR syntax error"
    );
    let info: String = q(&mut c, &["INFO", "memory"]);
    for name in [
        "used_memory_peak_perc:",
        "used_memory_overhead:",
        "used_memory_startup:",
        "used_memory_dataset_perc:",
    ] {
        assert!(info.contains(name), "{name} missing from {info}");
    }
}

#[test]
fn small_edge_replies() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    // A move that cannot block inside MULTI answers a null bulk.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["BRPOPLPUSH", "q", "r", "1"], b"+QUEUED\r\n");
    r.roundtrip(&["BLPOP", "q", "1"], b"+QUEUED\r\n");
    r.roundtrip(&["EXEC"], b"*2\r\n$-1\r\n*-1\r\n");
    r.roundtrip(&["SCAN", ""], b"*2\r\n$1\r\n0\r\n*0\r\n");
    r.roundtrip(
        &["SELECT", "4294967296"],
        b"-ERR value is out of range, value must between -2147483648 and 2147483647\r\n",
    );
    r.roundtrip(&["SELECT", "99"], b"-ERR DB index is out of range\r\n");
    // The key is looked up before the options or the index are read.
    r.roundtrip(
        &["HSCAN", "missing", "0", "COUNT", "0"],
        b"*2\r\n$1\r\n0\r\n*0\r\n",
    );
    r.roundtrip(&["SET", "str", "v"], b"+OK\r\n");
    r.roundtrip(
        &["ZSCAN", "str", "0", "COUNT", "0"],
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    r.roundtrip(&["LSET", "missing", "abc", "v"], b"-ERR no such key\r\n");
    r.roundtrip(
        &["LSET", "str", "abc", "v"],
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    r.roundtrip(
        &["SSCAN", "str", "0", "BOGUS"],
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    r.roundtrip(&["SADD", "s", "a"], b":1\r\n");
    r.roundtrip(&["SSCAN", "s", "0", "BOGUS"], b"-ERR syntax error\r\n");
}

#[test]
fn client_unblock_wakes_a_blocked_client() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let mut w = s.raw_authed();
    w.cmd(&["CLIENT", "ID"]);
    let id = w.line().trim_start_matches(':').trim().to_string();
    w.cmd(&["BLPOP", "q", "0"]);
    wait_blocked(&mut c);
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id]), 1);
    w.expect(b"*-1\r\n");
    w.cmd(&["BRPOPLPUSH", "q", "r", "0"]);
    wait_blocked(&mut c);
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id, "ERROR"]), 1);
    w.expect(b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "UNBLOCK", &id]), 0);
    assert_eq!(
        q_err(&mut c, &["CLIENT", "UNBLOCK", &id, "LATER"]),
        "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"
    );
    // The woken client is usable, and nothing was popped or pushed.
    w.roundtrip(&["PING"], b"+PONG\r\n");
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "q", "r"]), 0);
}

#[test]
fn patterns_never_match_an_empty_name_but_a_lone_star_lists_it() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "", "empty"]);
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let mut all: Vec<String> = q(&mut c, &["KEYS", "*"]);
    all.sort();
    assert_eq!(all, ["", "k"]);
    assert_eq!(q::<Vec<String>>(&mut c, &["KEYS", "**"]), ["k"]);
    let (_, mut scanned): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "MATCH", "*"]);
    scanned.sort();
    assert_eq!(scanned, ["", "k"]);
    let (_, scanned): (String, Vec<String>) = q(&mut c, &["SCAN", "0", "MATCH", "**"]);
    assert_eq!(scanned, ["k"]);
    // A pattern subscription to `*` hears every channel but the empty one.
    let mut sub = s.conn();
    let _: () = redis::cmd("PSUBSCRIBE").arg("*").exec(&mut sub).unwrap();
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "", "m"]), 0);
    assert_eq!(q::<i64>(&mut c, &["PUBLISH", "x", "m"]), 1);
}

#[test]
fn key_types_are_checked_before_later_arguments() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "str", "v"]);
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    for cmd in [
        &["ZUNION", "1", "str", "AGGREGATE", "FOO"][..],
        &["ZINTER", "1", "str", "WEIGHTS", "a"],
        &["ZDIFF", "1", "str", "FOO"],
        &["ZINTERSTORE", "d", "1", "str", "AGGREGATE"],
        &["ZINTERCARD", "1", "str", "LIMIT", "-1"],
        &["LINDEX", "str", "a"],
    ] {
        assert_eq!(q_err(&mut c, cmd), wrongtype, "{cmd:?}");
    }
    // A missing list is null before its index is read.
    assert_eq!(
        q::<Option<String>>(&mut c, &["LINDEX", "missing", "a"]),
        None
    );
    let _: i64 = q(&mut c, &["RPUSH", "l", "x"]);
    assert_eq!(
        q_err(&mut c, &["LINDEX", "l", "a"]),
        "ERR value is not an integer or out of range"
    );
    let _: i64 = q(&mut c, &["ZADD", "z", "1", "m"]);
    assert_eq!(
        q_err(&mut c, &["ZUNION", "1", "z", "AGGREGATE", "FOO"]),
        "ERR syntax error"
    );
}

#[test]
fn small_texts_match_redis() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    // Range bounds: strtod skips leading blanks, but blanks alone are no number.
    let _: i64 = q(&mut c, &["ZADD", "y", "1", "a"]);
    assert_eq!(
        q_err(&mut c, &["ZCOUNT", "y", "(  ", "+inf"]),
        "ERR min or max is not a float"
    );
    assert_eq!(q::<i64>(&mut c, &["ZCOUNT", "y", " 1", "+inf"]), 1);
    assert_eq!(q::<i64>(&mut c, &["ZCOUNT", "y", "", "+inf"]), 1);
    // A name without glob characters comes back as it was asked for.
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "MAXMEMORY"]);
    assert_eq!(got, ["MAXMEMORY", "0"]);
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "hash-max-listpack-entries"]);
    assert_eq!(got, ["hash-max-listpack-entries", "512"]);
    assert!(q::<Vec<String>>(&mut c, &["CONFIG", "HELP"]).len() > 2);
    for (cmd, name) in [
        ("OBJECT", "object"),
        ("CLIENT", "client"),
        ("CONFIG", "config"),
    ] {
        assert_eq!(
            q_err(&mut c, &[cmd, "HELP", "x"]),
            format!("ERR wrong number of arguments for '{name}|help' command")
        );
    }
    // Unknown names are cut the way C's "%.128s" cuts them.
    let long = "x".repeat(300);
    assert_eq!(
        q_err(&mut c, &["OBJECT", &long]),
        format!(
            "ERR unknown subcommand '{}'. Try OBJECT HELP.",
            &long[..128]
        )
    );
    let (a, b) = ("a".repeat(100), "b".repeat(100));
    assert_eq!(
        q_err(&mut c, &["FOO", &a, &b, "c"]),
        format!(
            "ERR unknown command 'FOO', with args beginning with: '{a}' '{}' ",
            &b[..25]
        )
    );
    assert_eq!(
        q_err(&mut c, &["FOO\0bar", "a\0b", "c\r\nd"]),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'c  d' "
    );
    // A refused EXEC aborts the transaction in Redis's words.
    let mut sub = s.raw_authed();
    sub.roundtrip(&["MULTI"], b"+OK\r\n");
    sub.roundtrip(&["SUBSCRIBE", "c"], b"+QUEUED\r\n");
    sub.cmd(&["EXEC"]);
    let _ = sub.drain();
    sub.cmd(&["EXEC"]);
    let reply = String::from_utf8_lossy(&sub.drain()).into_owned();
    assert!(
        reply.starts_with("-EXECABORT Transaction discarded because of: Can't execute 'exec'"),
        "{reply}"
    );
}

#[test]
fn slowlog_records_slow_commands_without_secrets() {
    let s = TestServer::start(|c| {
        c.slowlog_log_slower_than = 0;
        c.slowlog_max_len = 3;
    });
    let mut c = s.conn();
    let _: () = q(&mut c, &["SLOWLOG", "RESET"]);
    let _: () = q(&mut c, &["CLIENT", "SETNAME", "worker"]);
    let _: () = q(&mut c, &["SET", "k", &"v".repeat(200)]);
    let _: Option<String> = q(&mut c, &["GET", "k"]);
    // Passwords never reach the log.
    let _ = redis::cmd("AUTH")
        .arg("default")
        .arg("guess")
        .query::<redis::Value>(&mut c);
    assert_eq!(q::<i64>(&mut c, &["SLOWLOG", "LEN"]), 3);
    type Row = (i64, i64, i64, Vec<String>, String, String);
    let rows: Vec<Row> = q(&mut c, &["SLOWLOG", "GET", "-1"]);
    assert_eq!(rows.len(), 3, "bounded by slowlog_max_len");
    let (id_get, _, _, get, peer, name) = &rows[1];
    assert_eq!(get, &["GET", "k"]);
    assert_eq!(name, "worker");
    assert!(peer.starts_with("127.0.0.1:"), "{peer}");
    let (id_set, ts, _, set, _, _) = &rows[2];
    assert!(id_set < id_get, "newest first");
    assert!(*ts > 1_700_000_000);
    assert_eq!(set[2], format!("{}... (72 more bytes)", "v".repeat(128)));
    let all = format!("{rows:?}");
    assert!(
        !all.contains("guess") && !all.to_lowercase().contains("auth"),
        "{all}"
    );
    assert_eq!(q::<Vec<Row>>(&mut c, &["SLOWLOG", "GET", "1"]).len(), 1);
    assert_eq!(
        q_err(&mut c, &["SLOWLOG", "GET", "-2"]),
        "ERR count should be greater than or equal to -1"
    );
    let _: () = q(&mut c, &["SLOWLOG", "RESET"]);
    assert!(q::<i64>(&mut c, &["SLOWLOG", "LEN"]) <= 1);
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "slowlog-max-len"]);
    assert_eq!(got, ["slowlog-max-len", "3"]);
    // The latency monitor is off, as by default in Redis: nothing sampled.
    assert!(q::<Vec<String>>(&mut c, &["LATENCY", "LATEST"]).is_empty());
    assert_eq!(q::<i64>(&mut c, &["LATENCY", "RESET"]), 0);
}

#[test]
fn slowlog_times_only_non_fast_commands_above_zero() {
    let s = TestServer::start(|c| c.slowlog_log_slower_than = 1);
    let mut c = s.conn();
    for i in 0..2000 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    let _: () = q(&mut c, &["SLOWLOG", "RESET"]);
    let _: Option<String> = q(&mut c, &["GET", "k1"]);
    let _: Vec<String> = q(&mut c, &["KEYS", "*"]);
    type Row = (i64, i64, i64, Vec<String>, String, String);
    let rows: Vec<Row> = q(&mut c, &["SLOWLOG", "GET"]);
    let names: Vec<&str> = rows.iter().map(|r| r.3[0].as_str()).collect();
    assert!(names.contains(&"KEYS"), "{names:?}");
    assert!(!names.contains(&"GET"), "GET is flagged fast: {names:?}");
    let disabled = TestServer::start(|c| c.slowlog_log_slower_than = -1);
    let mut d = disabled.conn();
    let _: Vec<String> = q(&mut d, &["KEYS", "*"]);
    assert_eq!(q::<i64>(&mut d, &["SLOWLOG", "LEN"]), 0);
}

#[test]
fn small_integers_report_redis_shared_refcount() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "small", "42"]);
    let _: () = q(&mut c, &["SET", "big", "10000"]);
    let _: () = q(&mut c, &["SET", "text", "abc"]);
    assert_eq!(
        q::<i64>(&mut c, &["OBJECT", "REFCOUNT", "small"]),
        2147483647
    );
    assert_eq!(q::<i64>(&mut c, &["OBJECT", "REFCOUNT", "big"]), 1);
    assert_eq!(q::<i64>(&mut c, &["OBJECT", "REFCOUNT", "text"]), 1);
    // An LRU policy needs an object per key, so Redis stops sharing.
    let lru = TestServer::start(|c| {
        c.maxmemory = redis_guard::store::config::ByteSize(100 << 20);
        c.maxmemory_policy = redis_guard::store::config::EvictionPolicy::AllkeysLru;
    });
    let mut l = lru.conn();
    let _: () = q(&mut l, &["SET", "small", "42"]);
    assert_eq!(q::<i64>(&mut l, &["OBJECT", "REFCOUNT", "small"]), 1);
}

#[test]
fn info_reports_live_rates_and_cpu_time() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let field = |info: &str, name: &str| -> f64 { info_field(info, name) };
    // Keep commands flowing for more than one 100 ms sample.
    let until = std::time::Instant::now() + std::time::Duration::from_millis(600);
    while std::time::Instant::now() < until {
        let mut p = redis::pipe();
        for _ in 0..50 {
            p.cmd("INCR").arg("n").ignore();
        }
        let _: () = p.query(&mut c).unwrap();
    }
    let info: String = q(&mut c, &["INFO", "stats"]);
    assert!(field(&info, "instantaneous_ops_per_sec") > 0.0, "{info}");
    assert!(field(&info, "instantaneous_input_kbps") > 0.0, "{info}");
    // Error replies are counted by code, as INFO errorstats shows them.
    let _: () = q(&mut c, &["SET", "s", "x"]);
    q_err(&mut c, &["LPUSH", "s", "x"]);
    q_err(&mut c, &["NOSUCHCOMMAND"]);
    q_err(&mut c, &["INCR", "s"]);
    let errors: String = q(&mut c, &["INFO", "errorstats"]);
    assert!(errors.contains("errorstat_ERR:count=2"), "{errors}");
    assert!(errors.contains("errorstat_WRONGTYPE:count=1"), "{errors}");
    let stats: String = q(&mut c, &["INFO", "stats"]);
    assert_eq!(field(&stats, "total_error_replies"), 3.0);
    // avg_ttl is estimated by active expiry's sampling, as in Redis.
    for i in 0..20 {
        let _: () = q(&mut c, &["SET", &format!("t{i}"), "v", "EX", "1000"]);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let avg_ttl = loop {
        let avg = avg_ttl(&mut c, 0);
        if avg > 0 || std::time::Instant::now() > deadline {
            break avg;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(avg_ttl > 900_000 && avg_ttl <= 1_000_000, "{avg_ttl}");
    let all: String = q(&mut c, &["INFO"]);
    for needle in [
        "# Modules",
        "cluster_enabled:0",
        "master_repl_offset:0",
        "used_memory_peak:",
        "total_system_memory:",
        "lru_clock:",
    ] {
        assert!(all.contains(needle), "{needle} missing from INFO");
    }
    let cpu: String = q(&mut c, &["INFO", "cpu"]);
    assert!(
        field(&cpu, "used_cpu_user") + field(&cpu, "used_cpu_sys") > 0.0,
        "{cpu}"
    );
}

#[test]
fn read_lookups_count_as_keyspace_hits_and_misses() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let stat = |c: &mut redis::Connection, name: &str| -> i64 {
        let info: String = q(c, &["INFO", "stats"]);
        info_field(&info, name)
    };
    let _: () = q(&mut c, &["SET", "s", "v"]);
    let _: i64 = q(&mut c, &["HSET", "h", "f", "v"]);
    let (h0, m0) = (
        stat(&mut c, "keyspace_hits"),
        stat(&mut c, "keyspace_misses"),
    );
    // As in Redis: MGET s nope s is two hits and a miss; HGET, EXISTS,
    // TYPE and TTL count too, and a key of another type is a hit.
    let _: Vec<Option<String>> = q(&mut c, &["MGET", "s", "nope", "s"]);
    let _: Option<String> = q(&mut c, &["HGET", "h", "f"]);
    let _: Option<String> = q(&mut c, &["HGET", "missing", "f"]);
    let _: i64 = q(&mut c, &["EXISTS", "s", "nope"]);
    let _: String = q(&mut c, &["TYPE", "h"]);
    let _: i64 = q(&mut c, &["TTL", "s"]);
    q_err(&mut c, &["LRANGE", "s", "0", "-1"]);
    assert_eq!(stat(&mut c, "keyspace_hits") - h0, 7);
    assert_eq!(stat(&mut c, "keyspace_misses") - m0, 3);
}

/// LCS on strings of a few kilobytes, side by side with redis-server: the
/// same answers in every mode, and the same refusal once the table would
/// exceed proto_max_bulk_len (lowered to 1 MB on both).
#[test]
fn lcs_of_kilobyte_strings_as_in_redis() {
    let reference = Reference::start();
    let s =
        TestServer::start(|c| c.proto_max_bulk_len = redis_guard::store::config::ByteSize(1 << 20));
    let mut r = reference.conn_maybe().unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("proto-max-bulk-len")
        .arg("1mb")
        .query(&mut r)
        .unwrap();
    let mut conns = [r, s.conn()];
    // A deterministic pseudo-random text over a small alphabet, so that
    // the common subsequence is long and has many matches.
    let text = |seed: u64, len: usize| -> String {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (b'a' + ((x >> 33) % 4) as u8) as char
            })
            .collect()
    };
    let (a, b) = (text(1, 400), text(2, 450));
    let (y, z) = ("y".repeat(500), "y".repeat(600));
    let big = "q".repeat(600);
    let cases: &[&[&[&str]]] = &[
        &[
            &["SET", "a", &a],
            &["SET", "b", &b],
            &["LCS", "a", "b", "LEN"],
        ],
        &[&["SET", "a", &a], &["SET", "b", &b], &["LCS", "a", "b"]],
        &[
            &["SET", "a", &a],
            &["SET", "b", &b],
            &["LCS", "a", "b", "IDX", "MINMATCHLEN", "3", "WITHMATCHLEN"],
        ],
        &[
            &["SET", "a", &y],
            &["SET", "b", &z],
            &["LCS", "a", "b", "LEN"],
        ],
        &[&["SET", "a", &y], &["LCS", "a", "nokey", "IDX"]],
        &[
            &["SET", "a", &big],
            &["SET", "b", &big],
            &["LCS", "a", "b", "LEN"],
        ],
    ];
    let seen = side_by_side(&mut conns, cases);
    assert_eq!(seen[1], seen[0], "ours (left) against redis-server (right)");
    assert!(
        seen[1][5][2].contains("Insufficient memory"),
        "{:?}",
        seen[1][5]
    );
}

/// Which errors inside MULTI doom the transaction, side by side with
/// redis-server: a command refused before it runs (wrong arity, WATCH,
/// MULTI and DISCARD included) does; an error a transaction command itself
/// returns (WATCH inside MULTI, nested MULTI) does not.
#[test]
fn refusals_inside_multi_doom_the_transaction_as_in_redis() {
    let reference = Reference::start();
    let s = TestServer::start(|c| c.acl_runtime_changes = true);
    let mut conns = [reference.conn_maybe().unwrap(), s.conn()];
    // MULTI, then the command in question, then a queued SET and EXEC.
    let middles: &[&[&str]] = &[
        &["WATCH"],
        &["DISCARD", "x"],
        &["MULTI", "x"],
        &["UNWATCH", "x"],
        &["WATCH", "a"],
        &["MULTI"],
    ];
    let cases: Vec<Vec<&[&str]>> = middles
        .iter()
        .map(|m| {
            vec![
                &["MULTI"][..],
                m,
                &["SET", "a", "1"],
                &["EXEC"],
                &["GET", "a"],
            ]
        })
        .collect();
    // Last, as its AUTH changes the connection's user: WATCH refused by
    // the ACLs inside MULTI.
    let acl: &[&[&str]] = &[
        &[
            "ACL", "SETUSER", "u", "on", ">pw", "~*", "&*", "+@all", "-watch",
        ],
        &["AUTH", "u", "pw"],
        &["MULTI"],
        &["WATCH", "a"],
        &["SET", "a", "1"],
        &["EXEC"],
        &["GET", "a"],
    ];
    let mut all: Vec<&[&[&str]]> = cases.iter().map(Vec::as_slice).collect();
    all.push(acl);
    let seen = side_by_side(&mut conns, &all);
    assert_eq!(seen[1], seen[0], "ours (left) against redis-server (right)");
}

/// The lookups Redis counts in `keyspace_hits`/`keyspace_misses` and the
/// ones that set a key's access clock, side by side with redis-server:
/// COPY's source, TOUCH and OBJECT count; EXPIRE and PERSIST are write
/// lookups (uncounted, but IDLETIME restarts); a SET whose absolute time
/// has passed stores the key until a lookup expires it.
#[test]
fn lookups_count_and_touch_keys_as_redis_does() {
    let reference = Reference::start();
    let s = TestServer::start(|_| {});
    let mut conns = [reference.conn_maybe().unwrap(), s.conn()];
    let stat = |c: &mut redis::Connection, name: &str| -> i64 {
        let info: String = q(c, &["INFO", "stats"]);
        info_field(&info, name)
    };
    // Setting up on both servers before either is read keeps the idle
    // times comparable.
    for c in conns.iter_mut() {
        run_from_empty(
            c,
            &[&["SET", "a", "v"], &["SET", "b", "v"], &["SET", "c", "v"]],
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let mut seen = Vec::new();
    for c in conns.iter_mut() {
        let (h0, m0, e0) = (
            stat(c, "keyspace_hits"),
            stat(c, "keyspace_misses"),
            stat(c, "expired_keys"),
        );
        let mut got = Vec::new();
        for args in [
            &["COPY", "a", "a2"][..],
            &["COPY", "nope", "n2"],
            &["TOUCH", "a", "nope"],
            &["OBJECT", "ENCODING", "a"],
            &["OBJECT", "ENCODING", "nope"],
            &["APPEND", "a", "x"],
            &["SETRANGE", "a", "1", "y"],
            &["INCRBYFLOAT", "n", "1.5"],
            &["INCRBYFLOAT", "n", "1.5"],
            &["GETRANGE", "a", "0", "-1"],
            &["GETSET", "a", "w"],
            &["EXPIRE", "b", "100"],
            &["OBJECT", "IDLETIME", "b"],
            &["PERSIST", "c"],
            &["OBJECT", "IDLETIME", "c"],
            &["SET", "gone", "v", "PXAT", "1"],
            &["DBSIZE"],
            &["EXISTS", "gone"],
            &["DBSIZE"],
            &["ZADD", "z", "1", "m"],
            &["ZUNION", "2", "z", "nope"],
            &["ZINTERSTORE", "d", "2", "z", "nope"],
            &["ZDIFF", "2", "z", "nope", "BOGUS"],
            &["ZINTERCARD", "2", "z", "nope"],
            &["HSET", "h", "f", "1"],
            &["HINCRBY", "h", "f", "1"],
            &["HINCRBYFLOAT", "h", "f", "1.5"],
            &["HINCRBY", "h2", "f", "1"],
            &["HSETNX", "h", "f", "9"],
            &["HSETNX", "h3", "f", "9"],
        ] {
            let before = (stat(c, "keyspace_hits"), stat(c, "keyspace_misses"));
            let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            let reply = reply_text(c, &argv);
            got.push(format!(
                "{args:?}: {reply} (hits +{} misses +{})",
                stat(c, "keyspace_hits") - before.0,
                stat(c, "keyspace_misses") - before.1
            ));
        }
        got.push(format!(
            "hits +{} misses +{} expired +{}",
            stat(c, "keyspace_hits") - h0,
            stat(c, "keyspace_misses") - m0,
            stat(c, "expired_keys") - e0
        ));
        seen.push(got);
    }
    assert_eq!(seen[1], seen[0], "ours (left) against redis-server (right)");
}

#[test]
fn background_save_and_rewrite_refuse_each_other_as_redis_does() {
    let s = TestServer::start(|c| c.appendonly = true);
    let mut c = s.conn();
    // Enough data that writing the snapshot outlasts the commands below.
    let value = "v".repeat(200);
    for chunk in 0..20 {
        let mut p = redis::pipe();
        for i in 0..5000 {
            p.cmd("SET")
                .arg(format!("k{chunk}:{i}"))
                .arg(&value)
                .ignore();
        }
        let _: () = p.query(&mut c).unwrap();
    }
    let mut raw = s.raw_authed();
    raw.cmd(&["BGREWRITEAOF"]);
    raw.cmd(&["BGREWRITEAOF"]);
    raw.cmd(&["BGSAVE"]);
    raw.cmd(&["BGSAVE", "SCHEDULE"]);
    let replies: Vec<String> = (0..4).map(|_| raw.line().trim_end().to_string()).collect();
    assert_eq!(
        replies,
        [
            "+Background append only file rewriting started",
            "-ERR Background append only file rewriting already in progress",
            "-ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.",
            "+Background saving scheduled",
        ]
    );
    // Once idle, INFO persistence tells how long the rewrite took.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let info = loop {
        let info: String = q(&mut c, &["INFO", "persistence"]);
        let idle = info.contains("aof_rewrite_in_progress:0")
            && info.contains("aof_rewrite_scheduled:0")
            && info.contains("rdb_bgsave_in_progress:0");
        if idle && !info.contains("aof_rewrites:0") {
            break info;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(info.contains("aof_current_rewrite_time_sec:-1"), "{info}");
    assert!(info.contains("rdb_current_bgsave_time_sec:-1"), "{info}");
    assert!(!info.contains("aof_last_rewrite_time_sec:-1"), "{info}");
}

/// A MONITOR client that keeps reading stays connected through a long burst
/// of commands: its pending-bytes count must never read below zero (it did,
/// for an instant, when the feed counted a line only after sending it, and
/// the wrapped count closed the client as over its output limit).
#[test]
fn a_reading_monitor_survives_a_burst() {
    use std::io::Read as _;
    let s = TestServer::start(|_| {});
    let mut mon = s.raw_authed();
    mon.roundtrip(&["MONITOR"], b"+OK\r\n");
    let mut stream = mon.s.try_clone().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 65536];
        while !seen.ends_with(b"\"the-end\"\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return false,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
            // Only the tail matters; keep memory flat.
            if seen.len() > 1 << 20 {
                seen.drain(..seen.len() - 64);
            }
        }
        true
    });
    let mut c = s.conn();
    for _ in 0..5 {
        let mut p = redis::pipe();
        for _ in 0..20_000 {
            p.cmd("INCR").arg("n").ignore();
        }
        let _: () = p.query(&mut c).unwrap();
    }
    let _: String = q(&mut c, &["ECHO", "the-end"]);
    assert!(reader.join().unwrap(), "the monitor was cut off mid-burst");
    assert_eq!(q::<i64>(&mut c, &["GET", "n"]), 100_000);
    let security = s.security_counts();
    assert_eq!(
        security
            .get("client_output_buffer_limit")
            .copied()
            .unwrap_or(0),
        0,
        "{security:?}"
    );
}

#[test]
fn client_list_shows_blocked_monitor_and_pending_output() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let mut blocked = s.raw_authed();
    blocked.cmd(&["CLIENT", "SETNAME", "waiter"]);
    let _ = blocked.line();
    blocked.cmd(&["BLPOP", "nothing", "0"]);
    wait_blocked(&mut c);
    let mut mon = s.raw_authed();
    mon.cmd(&["CLIENT", "SETNAME", "watcher"]);
    let _ = mon.line();
    mon.roundtrip(&["MONITOR"], b"+OK\r\n");
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.contains(&format!(" name={name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {list}"))
            .to_string()
    };
    assert!(line("waiter").contains(" flags=b "), "{list}");
    assert!(line("watcher").contains(" flags=O "), "{list}");
    let info: String = q(&mut c, &["INFO", "clients"]);
    assert!(info.contains("clients_in_timeout_table:0"), "{info}");
    // A client that does not read its reply shows it pending in omem.
    let value = "x".repeat(100);
    for _ in 0..10 {
        let mut p = redis::pipe();
        for _ in 0..10_000 {
            p.cmd("RPUSH").arg("big").arg(&value).ignore();
        }
        let _: () = p.query(&mut c).unwrap();
    }
    let mut slow = s.raw_authed();
    slow.cmd(&["CLIENT", "SETNAME", "slow"]);
    slow.cmd(&["LRANGE", "big", "0", "-1"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let list: String = q(&mut c, &["CLIENT", "LIST"]);
        let mine = list
            .lines()
            .find(|l| l.contains(" name=slow "))
            .map(str::to_string);
        if let Some(l) = mine.filter(|l| !l.contains(" omem=0 ")) {
            assert!(l.contains(" events=rw "), "{l}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "omem stayed 0: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A field of a `CLIENT LIST` line.
fn client_field(line: &str, name: &str) -> String {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("{name} missing: {line}"))
        .to_string()
}

/// What an operator hunting a client that holds memory reads in `CLIENT
/// LIST`: a half-sent request in `qbuf`, queued transaction commands in
/// `multi-mem`, both in `tot-mem`, and the real socket descriptor.
#[test]
fn client_list_shows_query_buffer_and_queued_transaction_memory() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let mut partial = s.raw_authed();
    partial.cmd(&["CLIENT", "SETNAME", "partial"]);
    let _ = partial.line();
    // A bulk of 5000 bytes announced, 3000 of them sent.
    let mut half = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5000\r\n".to_vec();
    half.extend(std::iter::repeat_n(b'v', 3000));
    partial.send(&half);
    let mut tx = s.raw_authed();
    tx.cmd(&["CLIENT", "SETNAME", "tx"]);
    let _ = tx.line();
    tx.roundtrip(&["MULTI"], b"+OK\r\n");
    let big = "w".repeat(2000);
    tx.roundtrip(&["SET", "k2", &big], b"+QUEUED\r\n");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (p, t) = loop {
        let list: String = q(&mut c, &["CLIENT", "LIST"]);
        let find = |n: &str| {
            list.lines()
                .find(|l| l.contains(&format!(" name={n} ")))
                .map(str::to_string)
        };
        let (p, t) = (find("partial").unwrap(), find("tx").unwrap());
        if client_field(&p, "qbuf").parse::<usize>().unwrap() >= half.len() {
            break (p, t);
        }
        assert!(std::time::Instant::now() < deadline, "qbuf stayed low: {p}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let num = |l: &str, f: &str| client_field(l, f).parse::<usize>().unwrap();
    assert!(num(&p, "tot-mem") >= num(&p, "qbuf"), "{p}");
    assert!(num(&t, "multi-mem") >= 2000, "{t}");
    assert!(num(&t, "tot-mem") >= 2000, "{t}");
    assert_eq!(client_field(&t, "multi"), "1");
    // Distinct open sockets have distinct descriptors, none of them fake.
    let (fp, ft) = (num(&p, "fd"), num(&t, "fd"));
    assert!(fp > 2 && ft > 2 && fp != ft, "{p}\n{t}");
    // EXEC releases the queued commands.
    tx.cmd(&["EXEC"]);
    let _ = tx.read_n(5);
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    let t = list.lines().find(|l| l.contains(" name=tx ")).unwrap();
    assert_eq!(client_field(t, "multi-mem"), "0", "{t}");
}

#[test]
fn memory_subcommands_operators_run() {
    let s = TestServer::start(|c| c.maxmemory = redis_guard::store::config::ByteSize(64 << 20));
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let doctor: String = q(&mut c, &["MEMORY", "DOCTOR"]);
    assert!(
        doctor.contains("Dataset:") && doctor.contains("maxmemory is 64.00M"),
        "{doctor}"
    );
    let _: () = q(&mut c, &["MEMORY", "PURGE"]);
    let stats: String = q(&mut c, &["MEMORY", "MALLOC-STATS"]);
    assert!(!stats.is_empty());
    assert_eq!(
        q_err(&mut c, &["MEMORY", "PURGE", "x"]),
        "ERR wrong number of arguments for 'memory|purge' command"
    );
    assert!(q::<i64>(&mut c, &["MEMORY", "USAGE", "k"]) > 0);
}

#[test]
fn avg_ttl_follows_its_keys_through_swapdb() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    for i in 0..10 {
        let _: () = q(&mut c, &["SET", &format!("long{i}"), "v", "EX", "100000"]);
    }
    let _: () = q(&mut c, &["SELECT", "1"]);
    for i in 0..10 {
        let _: () = q(&mut c, &["SET", &format!("short{i}"), "v", "EX", "100"]);
    }
    let avg = avg_ttl;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while avg(&mut c, 0) == 0 || avg(&mut c, 1) == 0 {
        assert!(std::time::Instant::now() < deadline, "no estimate");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _: () = q(&mut c, &["SWAPDB", "0", "1"]);
    assert!(avg(&mut c, 0) <= 100_000, "db0 now holds the short TTLs");
    assert!(avg(&mut c, 1) > 1_000_000, "db1 now holds the long TTLs");
}

#[test]
fn client_pause_holds_commands_until_it_ends() {
    use std::time::{Duration, Instant};
    let s = TestServer::start(|_| {});
    let mut admin = s.conn();
    let mut other = s.conn();
    let _: () = q(&mut admin, &["SET", "k", "1"]);
    // WRITE: reads go on, writes wait until the pause ends, then run.
    let start = Instant::now();
    let _: () = q(&mut admin, &["CLIENT", "PAUSE", "1500", "WRITE"]);
    assert_eq!(q::<String>(&mut other, &["GET", "k"]), "1");
    assert!(start.elapsed() < Duration::from_millis(1000));
    assert_eq!(q::<i64>(&mut other, &["INCR", "k"]), 2);
    assert!(start.elapsed() >= Duration::from_millis(1400));
    // UNPAUSE (not a write) releases a waiting writer at once.
    let _: () = q(&mut admin, &["CLIENT", "PAUSE", "60000", "WRITE"]);
    let mut c = s.conn();
    let writer = std::thread::spawn(move || {
        let start = Instant::now();
        let n: i64 = q(&mut c, &["INCR", "k"]);
        (n, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // The held writer shows as blocked, as Redis shows a paused client.
    let info: String = q(&mut admin, &["INFO", "clients"]);
    assert!(info.contains("blocked_clients:1"), "{info}");
    let list: String = q(&mut admin, &["CLIENT", "LIST"]);
    assert!(list.contains(" flags=b "), "{list}");
    let _: () = q(&mut admin, &["CLIENT", "UNPAUSE"]);
    let (n, waited) = writer.join().unwrap();
    assert_eq!(n, 3);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // A client that leaves while its write waits takes the write with it.
    let _: () = q(&mut admin, &["CLIENT", "PAUSE", "600", "WRITE"]);
    let mut gone = s.raw_authed();
    gone.cmd(&["SET", "gone", "1"]);
    std::thread::sleep(Duration::from_millis(100));
    drop(gone);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(q::<Option<String>>(&mut other, &["GET", "gone"]), None);
    // An EXEC whose transaction writes is a write: it waits, and nothing
    // of it is visible during the pause; a read-only EXEC runs at once.
    let mut tx = s.raw_authed();
    tx.roundtrip(&["MULTI"], b"+OK\r\n");
    tx.roundtrip(&["SET", "pw", "1"], b"+QUEUED\r\n");
    let start = Instant::now();
    let _: () = q(&mut admin, &["CLIENT", "PAUSE", "700", "WRITE"]);
    tx.cmd(&["EXEC"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(q::<Option<String>>(&mut other, &["GET", "pw"]), None);
    tx.expect(b"*1\r\n+OK\r\n");
    assert!(start.elapsed() >= Duration::from_millis(600));
    tx.roundtrip(&["MULTI"], b"+OK\r\n");
    tx.roundtrip(&["GET", "pw"], b"+QUEUED\r\n");
    let start = Instant::now();
    let _: () = q(&mut admin, &["CLIENT", "PAUSE", "700", "WRITE"]);
    tx.roundtrip(&["EXEC"], b"*1\r\n$1\r\n1\r\n");
    assert!(start.elapsed() < Duration::from_millis(500));
    let _: () = q(&mut admin, &["CLIENT", "UNPAUSE"]);
    // ALL holds reads too.
    let start = Instant::now();
    let _: () = q(&mut admin, &["CLIENT", "PAUSE", "500", "ALL"]);
    assert_eq!(q::<String>(&mut other, &["GET", "k"]), "3");
    assert!(start.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        q_err(&mut admin, &["CLIENT", "PAUSE", "10", "SOME"]),
        "ERR CLIENT PAUSE mode must be WRITE or ALL"
    );
    assert_eq!(
        q_err(&mut admin, &["CLIENT", "PAUSE", "-1"]),
        "ERR timeout is negative"
    );
}

/// A redis-server 7.0 of its own, killed on drop.
struct Reference(std::process::Child, u16);

impl Reference {
    fn start() -> Reference {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (cargo xtask setup installs it)");
        let r = Reference(child, port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while r.conn_maybe().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        r
    }

    fn conn_maybe(&self) -> Option<redis::Connection> {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}/", self.1))
            .ok()?
            .get_connection()
            .ok()?;
        redis::cmd("PING").query::<String>(&mut c).ok()?;
        Some(c)
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dump_and_restore_move_keys_to_and_from_redis() {
    let reference = Reference::start();
    let mut redis = reference.conn_maybe().unwrap();
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    // Every encoding redis-server 7.0 dumps: int, embstr and LZF strings,
    // quicklist, intset and hashtable sets, listpack hash and zset.
    let setup: &[&[&str]] = &[
        &["SET", "int", "12345"],
        &["SET", "str", "hello"],
        &["SET", "long", &"abc".repeat(50)],
        &["RPUSH", "list", "a", "-300", "70000", &"x".repeat(70)],
        &["SADD", "ints", "3", "1", "-5"],
        &["SADD", "words", "a", "b"],
        &["HSET", "hash", "f1", "v1", "f2", "12"],
        &["ZADD", "zset", "1.5", "m1", "-2", "m2"],
    ];
    for cmd in setup {
        let _: redis::Value = q(&mut redis, cmd);
    }
    let _: () = q(&mut redis, &["PEXPIRE", "str", "100000"]);
    let keys = [
        "int", "str", "long", "list", "ints", "words", "hash", "zset",
    ];
    for k in keys {
        let payload: Vec<u8> = q(&mut redis, &["DUMP", k]);
        let ttl: i64 = q(&mut redis, &["PTTL", k]);
        let _: () = redis::cmd("RESTORE")
            .arg(k)
            .arg(ttl.max(0))
            .arg(&payload)
            .query(&mut c)
            .unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    assert_eq!(q::<String>(&mut c, &["GET", "long"]), "abc".repeat(50));
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "list", "0", "-1"]),
        ["a", "-300", "70000", &"x".repeat(70)]
    );
    assert_eq!(
        q::<Vec<String>>(&mut c, &["SMEMBERS", "ints"]),
        ["-5", "1", "3"]
    );
    assert_eq!(q::<String>(&mut c, &["HGET", "hash", "f2"]), "12");
    assert_eq!(q::<f64>(&mut c, &["ZSCORE", "zset", "m1"]), 1.5);
    assert!(q::<i64>(&mut c, &["PTTL", "str"]) > 90_000);
    // And back: what the store dumps, redis-server restores.
    let _: () = q(&mut redis, &["FLUSHALL"]);
    for k in keys {
        let payload: Vec<u8> = q(&mut c, &["DUMP", k]);
        let _: () = redis::cmd("RESTORE")
            .arg(k)
            .arg(0)
            .arg(&payload)
            .query(&mut redis)
            .unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    assert_eq!(q::<String>(&mut redis, &["GET", "int"]), "12345");
    assert_eq!(q::<i64>(&mut redis, &["LLEN", "list"]), 4);
    assert_eq!(q::<i64>(&mut redis, &["SCARD", "words"]), 2);
    assert_eq!(q::<f64>(&mut redis, &["ZSCORE", "zset", "m2"]), -2.0);
    // Redis's refusals.
    let payload: Vec<u8> = q(&mut c, &["DUMP", "str"]);
    let e = redis::cmd("RESTORE")
        .arg("str")
        .arg(0)
        .arg(&payload)
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(e.code(), Some("BUSYKEY"), "{e}");
    let mut bad = payload.clone();
    bad[1] ^= 0x20;
    let e = redis::cmd("RESTORE")
        .arg("other")
        .arg(0)
        .arg(&bad)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("DUMP payload version or checksum are wrong"),
        "{e}"
    );
    assert_eq!(
        q_err(&mut c, &["RESTORE", "x", "-1", "junk"]),
        "ERR Invalid TTL value, must be >= 0"
    );
    assert_eq!(q::<Option<Vec<u8>>>(&mut c, &["DUMP", "missing"]), None);
    // REPLACE and an already-passed ABSTTL (OK, and no key).
    let _: () = redis::cmd("RESTORE")
        .arg("str")
        .arg(1)
        .arg(&payload)
        .arg("REPLACE")
        .arg("ABSTTL")
        .query(&mut c)
        .unwrap();
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "str"]), 0);
}

/// One command's reply (or error text) in a form two servers' answers can
/// be compared in.
fn reply_text(c: &mut redis::Connection, args: &[&[u8]]) -> String {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        cmd.arg(*a);
    }
    match cmd.query::<redis::Value>(c) {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("error {}", common::error_text(&e)),
    }
}

/// Numbers with a NUL byte: Redis's float parsers differ. INCRBYFLOAT and
/// HINCRBYFLOAT need strtold to consume the whole value; score bounds go
/// through plain strtod, for which the NUL ends the text.
#[test]
fn numbers_with_nul_bytes_answer_as_redis_does() {
    let reference = Reference::start();
    let mut redis = reference.conn_maybe().unwrap();
    let s = TestServer::start(|_| {});
    let mut ours = s.conn();
    let cases: &[&[&[u8]]] = &[
        &[b"SET", b"k", b"\x00abc"],
        &[b"INCRBYFLOAT", b"k", b"1"],
        &[b"SET", b"k", b"1\x00junk"],
        &[b"INCRBYFLOAT", b"k", b"1"],
        &[b"SET", b"k", b"1.5"],
        &[b"INCRBYFLOAT", b"k", b"2\x00junk"],
        &[b"GET", b"k"],
        &[b"HSET", b"h", b"f", b"1\x00x"],
        &[b"HINCRBYFLOAT", b"h", b"f", b"1"],
        &[b"ZADD", b"z", b"1", b"a"],
        &[b"ZRANGEBYSCORE", b"z", b"0\x00x", b"5"],
        &[b"ZCOUNT", b"z", b"(\x00", b"+inf"],
    ];
    for args in cases {
        assert_eq!(
            reply_text(&mut ours, args),
            reply_text(&mut redis, args),
            "{args:?}"
        );
    }
}

/// Empties the server, runs `case` on one connection and returns each
/// command's reply as text, for side-by-side comparisons.
/// Each case run from an empty database on every connection (redis-server
/// first, the store second): the replies per connection, per case.
fn side_by_side(conns: &mut [redis::Connection], cases: &[&[&[&str]]]) -> Vec<Vec<Vec<String>>> {
    conns
        .iter_mut()
        .map(|c| cases.iter().map(|case| run_from_empty(c, case)).collect())
        .collect()
}

fn run_from_empty(c: &mut redis::Connection, case: &[&[&str]]) -> Vec<String> {
    let _: () = redis::cmd("FLUSHALL").query(c).unwrap();
    case.iter()
        .map(|args| {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            reply_text(c, &args)
        })
        .collect()
}

/// Which error wins when a command has several problems: Redis's order
/// (option words, then the key and its type, then values), side by side.
#[test]
fn error_precedence_matches_redis() {
    let reference = Reference::start();
    let mut redis = reference.conn_maybe().unwrap();
    let s = TestServer::start(|_| {});
    let mut ours = s.conn();
    let cases: &[&[&[&str]]] = &[
        &[&["GETEX", "missing", "EX", "0"]],
        &[&["GETEX", "missing", "EX", "x"]],
        &[&["GETEX", "missing", "EX", "1", "PX", "1"]],
        &[&["RPUSH", "l", "a"], &["GETEX", "l", "EX", "x"]],
        &[&["SET", "s", "1"], &["GETEX", "s", "EX", "x"]],
        &[&["RPUSH", "l", "a"], &["INCRBYFLOAT", "l", "x"]],
        &[&["SET", "s", "x"], &["INCRBYFLOAT", "s", "y"]],
        &[&["RPUSH", "l", "a"], &["LPOS", "l", "v", "COUNT", "x"]],
        &[&["RPUSH", "l", "a"], &["LPOS", "l", "v", "MAXLEN", "-1"]],
        &[&["RPUSH", "l", "a"], &["LPOS", "l", "v", "RANK", "x"]],
        &[&["RPUSH", "l", "a"], &["LPOS", "l", "v", "BOGUS", "x"]],
        &[&["RPUSH", "l", "a"], &["LCS", "l", "l", "MINMATCHLEN", "x"]],
        &[&["LMPOP", "1", "LEFT", "l", "COUNT", "0"]],
        &[&["LMPOP", "1", "l", "LEFT", "COUNT", "0"]],
        &[&["LMPOP", "1", "l", "LEFT", "COUNT", "0", "COUNT", "1"]],
        &[&["LMPOP", "1", "l", "LEFT", "COUNT", "1", "COUNT", "1"]],
        &[&["ZMPOP", "1", "z", "MIN", "COUNT", "-1", "COUNT", "1"]],
        &[&["LMPOP", "1", "l", "LEFT", "BOGUS", "COUNT", "0"]],
        // The blocking ones read their timeout last.
        &[&["BLMPOP", "abc", "0", "l", "LEFT"]],
        &[&["BLMPOP", "-1", "1", "l", "UP"]],
        &[&["BZMPOP", "-1", "1", "z", "MIN", "COUNT", "0"]],
        &[&["BZMPOP", "x", "1", "z", "MIN", "COUNT", "1"]],
        &[&["EXPIRE", "k", "1.5", "BOGUS"]],
        &[&["EXPIRE", "k", "abc", "GT", "LT"]],
        &[&["PEXPIREAT", "k", "abc", "NX", "XX"]],
        &[&["SET", "k", "v"], &["EXPIRE", "k", "abc", "NX"]],
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
            &["ZRANGE", "z", "0", "-1", "LIMIT", "0", "-1"],
        ],
        &[
            &["ZADD", "z", "1", "a", "2", "b", "3", "c"],
            &["ZRANGE", "z", "0", "-1", "LIMIT", "2", "-1"],
        ],
        &[
            &["ZADD", "z", "1", "a"],
            &["ZRANGE", "z", "0", "-1", "LIMIT", "0", "1"],
        ],
        &[
            &["SET", "s", "v"],
            &["ZRANGE", "s", "0", "1", "LIMIT", "0", "-1"],
        ],
        &[&[
            "ZRANGESTORE",
            "d",
            "z",
            "0",
            "-1",
            "REV",
            "LIMIT",
            "1",
            "-1",
        ]],
        &[&["ZINCRBY", "z", "-0", "m"], &["ZSCORE", "z", "m"]],
        // Unknown subcommands and wrong subcommand arities are refused
        // before queueing, so the transaction aborts.
        &[
            &["MULTI"],
            &["OBJECT", "FOO", "k"],
            &["SET", "a", "1"],
            &["EXEC"],
        ],
        &[&["MULTI"], &["OBJECT", "ENCODING"], &["EXEC"]],
        &[&["MULTI"], &["CLIENT", "NOPE"], &["EXEC"]],
        &[&["MULTI"], &["CLIENT", "ID", "x"], &["EXEC"]],
        &[&["MULTI"], &["MEMORY", "USAGE"], &["EXEC"]],
        &[&["MULTI"], &["SLOWLOG", "LEN", "x"], &["EXEC"]],
        &[&["MULTI"], &["COMMAND", "GETKEYS", "get"], &["EXEC"]],
        &[&["MULTI"], &["CLIENT", "GETNAME"], &["EXEC"]],
        &[&["OBJECT", "ENCODING", "a", "b"]],
        &[&["ACL", "HELP", "x"]],
        &[&["LATENCY", "GRAPH"]],
        &[&["PUBSUB", "NUMPAT", "x"]],
        &[&["CONFIG", "GET"]],
        &[
            &["HSET", "h", "a", "1"],
            &["HRANDFIELD", "h", "x", "WITHVALUES", "extra"],
        ],
        &[
            &["HSET", "h", "a", "1"],
            &["HRANDFIELD", "h", "1", "WITHVALUES", "extra"],
        ],
        &[&["HRANDFIELD", "h", "4611686018427387904", "WITHVALUES"]],
        &[&["HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES"]],
        &[&["HRANDFIELD", "h", "-9223372036854775808", "BOGUS"]],
        &[
            &["ZADD", "z", "1", "a"],
            &["ZRANDMEMBER", "z", "x", "WITHSCORES", "extra"],
        ],
        &[&["ZRANDMEMBER", "z", "4611686018427387904", "WITHSCORES"]],
        &[
            &["ZADD", "z", "1", "a"],
            &["ZRANDMEMBER", "z", "1", "BOGUS"],
        ],
        // Database indexes are C ints in Redis: outside that range the
        // error is the integer's, inside it the database's.
        &[&["SET", "s", "x"], &["MOVE", "s", "2147483648"]],
        &[&["SET", "s", "x"], &["MOVE", "s", "-1"]],
        &[&["SET", "s", "x"], &["MOVE", "s", "x"]],
        &[&["SET", "s", "x"], &["COPY", "s", "t", "DB", "2147483648"]],
        &[&["SET", "s", "x"], &["COPY", "s", "t", "DB", "99"]],
        &[&["SWAPDB", "2147483648", "0"]],
        &[&["SWAPDB", "0", "x"]],
        &[&["SWAPDB", "0", "99"]],
        &[&["SELECT", "2147483648"]],
        &[&["SELECT", "-2147483649"]],
        &[&["SELECT", "16"]],
        // A missing key (or one of another type) answers before the bound
        // on repeated picks is looked at.
        &[&["SRANDMEMBER", "nokey", "-100000000"]],
        &[&["HRANDFIELD", "nokey", "-100000000", "WITHVALUES"]],
        &[&["ZRANDMEMBER", "nokey", "-100000000"]],
        &[&["SET", "s", "x"], &["SRANDMEMBER", "s", "-100000000"]],
        &[&["SET", "s", "x"], &["ZRANDMEMBER", "s", "-100000000"]],
        &[&["SCAN", "-"]],
        &[&["SCAN", "--1"]],
        &[&["SCAN", "-18446744073709551616"]],
        &[
            &["HSET", "h", "a", "1"],
            &["HSCAN", "h", "-18446744073709551615"],
        ],
        &[&["HSET", "h", "a", "1"], &["HSCAN", "h", "+0"]],
    ];
    let run = |c: &mut redis::Connection, case: &[&[&str]]| {
        run_from_empty(c, case).pop().unwrap_or_default()
    };
    for case in cases {
        assert_eq!(run(&mut ours, case), run(&mut redis, case), "{case:?}");
    }
    // Inputs fold from the smallest set up; +inf meeting -inf sums to 0.
    let weights = [
        ["inf", "-inf", "5"],
        ["5", "inf", "-inf"],
        ["-inf", "5", "inf"],
        ["1", "0", "1"],
        ["0", "1", "-inf"],
    ];
    for op in ["ZINTER", "ZUNION"] {
        for w in &weights {
            for aggregate in ["SUM", "MIN", "MAX"] {
                let query = [
                    op,
                    "3",
                    "c",
                    "b",
                    "a",
                    "WEIGHTS",
                    w[0],
                    w[1],
                    w[2],
                    "AGGREGATE",
                    aggregate,
                    "WITHSCORES",
                ];
                let case: &[&[&str]] = &[
                    &["ZADD", "a", "1", "x"],
                    &["ZADD", "b", "1", "x", "2", "y"],
                    &["ZADD", "c", "inf", "x", "2", "y", "3", "z"],
                    &query,
                ];
                assert_eq!(run(&mut ours, case), run(&mut redis, case), "{case:?}");
            }
        }
    }
}

/// A sorted set's scores as Redis shows them in each encoding: the compact
/// form stores text (-0 turns into 0, ZSCAN shows integral scores up to 2^62
/// without an exponent), the table form keeps the double's sign.
#[test]
fn zset_scores_read_back_as_redis_shows_them() {
    let reference = Reference::start();
    let mut redis = reference.conn_maybe().unwrap();
    let s = TestServer::start(|_| {});
    let mut ours = s.conn();
    let mut big = vec!["ZADD".to_string(), "big".to_string()];
    for i in 0..200 {
        big.push(i.to_string());
        big.push(format!("m{i}"));
    }
    let cases: Vec<Vec<String>> = [
        vec!["ZADD", "small", "-0", "a"],
        vec!["ZSCORE", "small", "a"],
        vec![
            "ZADD",
            "small",
            "1e17",
            "y",
            "0.1",
            "b",
            "-5e18",
            "e",
            "1e19",
            "f",
            "4611686018427387904",
            "g",
            "4611686018427387905",
            "h",
            "-1e3",
            "i",
        ],
        vec!["ZSCAN", "small", "0"],
        vec!["ZRANGE", "small", "0", "-1", "WITHSCORES"],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(String::from).collect())
    .chain([big])
    .chain(
        [
            vec!["ZADD", "big", "-0", "x"],
            vec!["ZSCORE", "big", "x"],
            vec!["ZINCRBY", "big", "0", "x"],
            vec!["ZSCORE", "big", "x"],
            vec!["ZRANGEBYSCORE", "big", "-0", "0", "WITHSCORES"],
            vec!["ZSCAN", "big", "0", "MATCH", "x", "COUNT", "1000"],
            vec!["ZADD", "big", "1e17", "y"],
            vec!["ZSCAN", "big", "0", "MATCH", "y", "COUNT", "1000"],
            // A stored result that is born in the table form keeps -0 for
            // every member, the first ones too; a small one gets 0.
            vec!["ZUNIONSTORE", "u", "1", "big", "WEIGHTS", "-0"],
            vec!["ZSCORE", "u", "m1"],
            vec!["ZSCORE", "u", "m199"],
            vec!["ZUNIONSTORE", "u2", "1", "small", "WEIGHTS", "-0"],
            vec!["ZSCORE", "u2", "a"],
        ]
        .into_iter()
        .map(|c| c.into_iter().map(String::from).collect()),
    )
    .collect();
    for c in &cases {
        let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(
            reply_text(&mut ours, &args),
            reply_text(&mut redis, &args),
            "{c:?}"
        );
    }
}

/// OBJECT ENCODING and REFCOUNT of a string follow how it was written, as
/// in Redis: APPEND to an existing key and SETRANGE leave `raw`, INCRBYFLOAT
/// `embstr`, and any write that stores the value afresh (SET, INCR) encodes
/// it by its content again; RENAME, COPY, EXPIRE and GETEX keep the form.
#[test]
fn string_encodings_follow_how_the_value_was_written() {
    let reference = Reference::start();
    let mut redis = reference.conn_maybe().unwrap();
    let s = TestServer::start(|_| {});
    let mut ours = s.conn();
    let cases: &[&[&[&str]]] = &[
        &[&["SET", "k", "1"], &["APPEND", "k", "2"]],
        &[&["APPEND", "k", "12"]],
        &[&["APPEND", "k", "hello"]],
        &[&["SET", "k", "25"], &["APPEND", "k", ""]],
        &[&["SET", "k", "hello"], &["SETRANGE", "k", "0", "x"]],
        &[&["SETRANGE", "k", "0", "12"]],
        &[&["INCRBYFLOAT", "k", "2"]],
        &[&["SET", "k", "5"], &["INCRBYFLOAT", "k", "2"]],
        &[&["SET", "k", "1"], &["APPEND", "k", "2"], &["INCR", "k"]],
        &[&["SET", "k", "abc"], &["APPEND", "k", "x"], &["INCR", "k"]],
        &[
            &["SET", "k", "1"],
            &["APPEND", "k", "2"],
            &["SET", "k", "3"],
        ],
        &[
            &["SET", "k", "1"],
            &["APPEND", "k", "2"],
            &["EXPIRE", "k", "100"],
        ],
        &[
            &["SET", "k", "1"],
            &["APPEND", "k", "2"],
            &["RENAME", "k", "k2"],
            &["RENAME", "k2", "k"],
        ],
        &[
            &["SET", "k", "1"],
            &["APPEND", "k", "2"],
            &["COPY", "k", "k2"],
            &["DEL", "k"],
            &["RENAME", "k2", "k"],
        ],
        &[
            &["SET", "k", "abc"],
            &["APPEND", "k", "x"],
            &["GETEX", "k", "PERSIST"],
        ],
        &[
            &["SET", "k", "1"],
            &["APPEND", "k", "2"],
            &["INCRBYFLOAT", "k", "1"],
        ],
        &[&["INCRBYFLOAT", "k", "1e40"]],
    ];
    let run = |c: &mut redis::Connection, case: &[&[&str]]| {
        run_from_empty(c, case);
        (
            reply_text(c, &[b"OBJECT", b"ENCODING", b"k"]),
            reply_text(c, &[b"OBJECT", b"REFCOUNT", b"k"]),
        )
    };
    for case in cases {
        assert_eq!(run(&mut ours, case), run(&mut redis, case), "{case:?}");
    }
}

/// WATCH is broken by what Redis counts as a modification and by nothing
/// else: a write that changes nothing (a failed LSET, `SPOP k 0`, a ZINCRBY
/// by 0) leaves the transaction free to run, a SET that expires at once does
/// not. Each case: set up, WATCH `k`, another client runs the change, then
/// `MULTI`/`PING`/`EXEC` reports whether the watch held.
#[test]
fn watch_breaks_where_redis_does() {
    let reference = Reference::start();
    let s = TestServer::start(|_| {});
    let pairs = [
        (
            reference.conn_maybe().unwrap(),
            reference.conn_maybe().unwrap(),
        ),
        (s.conn(), s.conn()),
    ];
    type Case<'a> = (&'a [&'a [&'a str]], &'a [&'a [&'a str]]);
    let cases: &[Case] = &[
        (&[], &[&["SET", "k", "v", "PXAT", "1"]]),
        (&[&["SET", "k", "1"]], &[&["SET", "k", "v", "PXAT", "1"]]),
        (&[&["RPUSH", "k", "a"]], &[&["LSET", "k", "5", "x"]]),
        (&[&["RPUSH", "k", "a"]], &[&["LSET", "k", "0", "x"]]),
        (&[&["ZADD", "k", "1", "a"]], &[&["ZINCRBY", "k", "0", "a"]]),
        (&[&["ZADD", "k", "1", "a"]], &[&["ZINCRBY", "k", "1", "a"]]),
        (&[&["ZADD", "k", "1", "a"]], &[&["ZINCRBY", "k", "0", "b"]]),
        (
            &[&["ZADD", "k", "inf", "a"]],
            &[&["ZINCRBY", "k", "-inf", "a"]],
        ),
        (&[&["SADD", "k", "a"]], &[&["SPOP", "k", "0"]]),
        (&[&["SADD", "k", "a"]], &[&["SPOP", "k", "1"]]),
        (&[&["ZADD", "k", "1", "a"]], &[&["ZPOPMIN", "k", "0"]]),
        (&[&["ZADD", "k", "1", "a"]], &[&["ZPOPMAX", "k", "1"]]),
    ];
    let mut results: Vec<Vec<String>> = Vec::new();
    for (mut watcher, mut other) in pairs {
        let mut got = Vec::new();
        for (setup, change) in cases {
            run_from_empty(&mut other, setup);
            let _: () = redis::cmd("WATCH").arg("k").query(&mut watcher).unwrap();
            let mut replies: Vec<String> = change
                .iter()
                .map(|a| {
                    let a: Vec<&[u8]> = a.iter().map(|x| x.as_bytes()).collect();
                    reply_text(&mut other, &a)
                })
                .collect();
            let _: () = redis::cmd("MULTI").query(&mut watcher).unwrap();
            let _: () = redis::cmd("PING").query(&mut watcher).unwrap();
            replies.push(reply_text(&mut watcher, &[b"EXEC"]));
            got.push(format!("{setup:?} {change:?} -> {replies:?}"));
        }
        // `EXEC` refused for its arity outside MULTI drops the watches.
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("1")
            .query(&mut other)
            .unwrap();
        let _: () = redis::cmd("WATCH").arg("k").query(&mut watcher).unwrap();
        got.push(reply_text(&mut watcher, &[b"EXEC", b"x"]));
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg("2")
            .query(&mut other)
            .unwrap();
        let _: () = redis::cmd("MULTI").query(&mut watcher).unwrap();
        got.push(reply_text(&mut watcher, &[b"EXEC"]));
        results.push(got);
    }
    for (redis, ours) in results[0].iter().zip(&results[1]) {
        assert_eq!(ours, redis);
    }
}

/// redis-cli builds its hints and `HELP` from COMMAND DOCS: for every
/// command and subcommand the store has, `help` must print the same syntax,
/// version and group as against redis-server (summaries are the store's own).
#[test]
fn redis_cli_help_shows_the_same_syntax_as_against_redis() {
    let reference = Reference::start();
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let docs: redis::Value = redis::cmd("COMMAND").arg("DOCS").query(&mut c).unwrap();
    let redis::Value::Array(items) = docs else {
        panic!("COMMAND DOCS is not a RESP2 array: {docs:?}")
    };
    let mut asks = String::new();
    for pair in items.chunks(2) {
        let (redis::Value::BulkString(name), redis::Value::Array(fields)) = (&pair[0], &pair[1])
        else {
            panic!("bad entry {pair:?}")
        };
        let name = String::from_utf8_lossy(name).into_owned();
        // `help client` lists every subcommand the server documents, and
        // the store documents only those it has: ask for each one instead.
        let has_subs = fields
            .chunks(2)
            .any(|f| f[0] == redis::Value::BulkString(b"subcommands".to_vec()));
        if !has_subs {
            asks.push_str(&format!("help {name}\n"));
        }
        for f in fields.chunks(2) {
            if f[0] == redis::Value::BulkString(b"subcommands".to_vec())
                && let redis::Value::Array(subs) = &f[1]
            {
                for sub in subs.chunks(2) {
                    if let redis::Value::BulkString(n) = &sub[0] {
                        asks.push_str(&format!(
                            "help {}\n",
                            String::from_utf8_lossy(n).replace('|', " ")
                        ));
                    }
                }
            }
        }
    }
    assert!(asks.lines().count() > 200, "{asks}");
    let help = |port: u16| {
        let mut child = std::process::Command::new(common::redis_cli())
            .args(["-p", &port.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(asks.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains("summary:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (ours, theirs) = (help(s.port()), help(reference.1));
    assert!(ours.len() > 600, "{ours:?}");
    for (a, b) in ours.iter().zip(&theirs) {
        assert_eq!(a, b);
    }
    assert_eq!(ours.len(), theirs.len());
}

/// `calls`, `rejected_calls` and `failed_calls` of `INFO commandstats`, by
/// command name.
fn command_stats(c: &mut redis::Connection) -> std::collections::BTreeMap<String, [u64; 3]> {
    let info: String = q(c, &["INFO", "commandstats"]);
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, fields) = l.split_once(':')?;
            let field = |f: &str| -> u64 {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{f}=")))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or_else(|| panic!("{f} missing in {l}"))
            };
            Some((
                name.to_string(),
                [
                    field("calls"),
                    field("rejected_calls"),
                    field("failed_calls"),
                ],
            ))
        })
        .collect()
}

/// `INFO commandstats` counts what redis-server counts: executions
/// (queued commands when EXEC runs them), refusals before a command runs
/// (arity, refused while queueing) and executions that failed, with
/// subcommands under `container|sub`.
#[test]
fn commandstats_count_calls_refusals_and_failures_as_redis_does() {
    let reference = Reference::start();
    let mut redis = reference.conn_maybe().unwrap();
    let s = TestServer::start(|_| {});
    let mut ours = s.conn();
    let script: &[&[&str]] = &[
        &["SET", "a", "1"],
        &["GET", "a"],
        &["GET"],
        &["INCR", "a"],
        &["SET", "s", "x"],
        &["INCR", "s"],
        &["LPUSH", "s", "x"],
        &["MULTI"],
        &["INCR", "a"],
        &["GET"],
        &["EXEC"],
        &["MULTI"],
        &["INCR", "a"],
        &["INCR", "s"],
        &["EXEC"],
        &["OBJECT", "ENCODING", "a"],
        &["CONFIG", "GET", "maxmemory"],
        &["HSET", "h", "f", "v"],
        &["HGET", "h", "f"],
        &["HGET", "h"],
    ];
    for args in script {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(
            reply_text(&mut ours, &args),
            reply_text(&mut redis, &args),
            "{args:?}"
        );
    }
    let (mine, theirs) = (command_stats(&mut ours), command_stats(&mut redis));
    for name in [
        "set",
        "get",
        "incr",
        "lpush",
        "multi",
        "exec",
        "object|encoding",
        "config|get",
        "hset",
        "hget",
    ] {
        assert!(
            theirs.contains_key(name),
            "redis-server has no cmdstat_{name}"
        );
        assert_eq!(mine.get(name), theirs.get(name), "cmdstat_{name}");
    }
    // Plain INFO leaves the section out, as Redis's default set does.
    let all: String = q(&mut ours, &["INFO"]);
    assert!(!all.contains("# Commandstats"));
    let all: String = q(&mut ours, &["INFO", "all"]);
    assert!(all.contains("cmdstat_hset:calls=1,usec="));
    // An unknown subcommand cannot add rows.
    let _ = q_err(&mut ours, &["OBJECT", "NOSUCHTHING", "a"]);
    assert!(
        !command_stats(&mut ours)
            .keys()
            .any(|k| k.contains("nosuch"))
    );
}
