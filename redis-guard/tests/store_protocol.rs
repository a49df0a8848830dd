//! Protocol handling: malformed input (each path closes only its own
//! connection), inline commands, pipelining, split frames, RESP3 shapes.

mod common;

use std::io::Write;
use std::time::Duration;

use common::{Raw, TestServer};

/// Sends `input`, expects exactly `reply`, then the close; another client is still served.
fn malformed(s: &TestServer, input: &[u8], reply: &[u8]) {
    let mut other = s.raw_authed();
    other.roundtrip(&["PING"], b"+PONG\r\n");
    let mut r = s.raw();
    r.send(input);
    r.expect(reply);
    r.expect_closed();
    other.roundtrip(&["SET", "still", "ok"], b"+OK\r\n");
    let mut fresh = s.raw_authed();
    fresh.roundtrip(&["GET", "still"], b"$2\r\nok\r\n");
}

#[test]
fn bulk_longer_than_proto_max_bulk_len() {
    let s =
        TestServer::start(|c| c.proto_max_bulk_len = redis_guard::store::config::ByteSize(1024));
    malformed(
        &s,
        b"*2\r\n$3\r\nGET\r\n$1025\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    // Exactly at the limit is fine.
    let mut r = s.raw();
    let v = "x".repeat(1024);
    r.roundtrip(&["SET", "k", &v], b"+OK\r\n");
}

#[test]
fn negative_or_garbage_bulk_length() {
    let s = TestServer::start(|_| {});
    malformed(
        &s,
        b"*1\r\n$-3\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    malformed(
        &s,
        b"*1\r\n$abc\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
}

#[test]
fn multibulk_count_too_large() {
    let s = TestServer::start(|_| {});
    malformed(
        &s,
        b"*1048577\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    malformed(
        &s,
        b"*x\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
}

#[test]
fn expected_dollar() {
    let s = TestServer::start(|_| {});
    malformed(
        &s,
        b"*2\r\n$3\r\nGET\r\nx\r\n",
        b"-ERR Protocol error: expected '$', got 'x'\r\n",
    );
}

#[test]
fn inline_too_big() {
    let s = TestServer::start(|_| {});
    let big = vec![b'a'; 70 * 1024];
    malformed(&s, &big, b"-ERR Protocol error: too big inline request\r\n");
}

#[test]
fn mbulk_and_bulk_count_lines_too_big() {
    let s = TestServer::start(|_| {});
    let mut m = b"*".to_vec();
    m.extend(vec![b'1'; 70 * 1024]);
    malformed(
        &s,
        &m,
        b"-ERR Protocol error: too big mbulk count string\r\n",
    );
    let mut b = b"*1\r\n$".to_vec();
    b.extend(vec![b'1'; 70 * 1024]);
    malformed(
        &s,
        &b,
        b"-ERR Protocol error: too big bulk count string\r\n",
    );
}

#[test]
fn unbalanced_quotes() {
    let s = TestServer::start(|_| {});
    malformed(
        &s,
        b"SET a \"unterminated\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
    malformed(
        &s,
        b"SET a 'x'y\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
}

#[test]
fn query_buffer_limit_closes() {
    let s = TestServer::start(|c| {
        c.client_query_buffer_limit = redis_guard::store::config::ByteSize(1024 * 1024)
    });
    let mut other = s.raw();
    let mut r = s.raw();
    // A legal but huge bulk that never completes: the buffer passes the limit.
    r.send(b"*2\r\n$3\r\nGET\r\n$100000000\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    let mut closed = false;
    for _ in 0..64 {
        if r.s.write_all(&chunk).is_err() {
            closed = true;
            break;
        }
    }
    if !closed {
        r.expect_closed();
    }
    other.roundtrip(&["PING"], b"+PONG\r\n");
}

#[test]
fn unauthenticated_clients_get_tighter_limits() {
    let s = TestServer::with_password("pw");
    malformed(
        &s,
        b"*11\r\n",
        b"-ERR Protocol error: unauthenticated multibulk length\r\n",
    );
    malformed(
        &s,
        b"*2\r\n$4\r\nAUTH\r\n$20000\r\n",
        b"-ERR Protocol error: unauthenticated bulk length\r\n",
    );
}

#[test]
fn inline_commands_and_quoting() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw();
    r.send(b"SET k \"a\\x41\\n b\"\r\n");
    r.expect(b"+OK\r\n");
    r.send(b"GET k\n");
    r.expect(b"$5\r\naA\n b\r\n");
    r.send(b"\r\n\r\nPING\r\n");
    r.expect(b"+PONG\r\n");
    r.send(b"*0\r\nPING\r\n");
    r.expect(b"+PONG\r\n");
    r.send(b"SET 'a b' 'it\\'s'\r\nGET \"a b\"\r\n");
    r.expect(b"+OK\r\n$4\r\nit's\r\n");
    // A NUL ends an inline line (as in C); it must not loop or hang.
    r.send(b"\0\r\nPING\0 ignored\r\n");
    r.expect(b"+PONG\r\n");
}

#[test]
fn pipelining_many_commands_one_write() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw();
    let mut req = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500 {
        req.extend_from_slice(
            format!("*3\r\n$3\r\nSET\r\n$4\r\nk{i:03}\r\n$1\r\nv\r\n").as_bytes(),
        );
        expected.extend_from_slice(b"+OK\r\n");
    }
    for _ in 0..500 {
        req.extend_from_slice(b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n");
    }
    for i in 1..=500 {
        expected.extend_from_slice(format!(":{i}\r\n").as_bytes());
    }
    r.send(&req);
    r.expect(&expected);

    // redis-rs pipeline.
    let mut c = s.conn();
    let mut p = redis::pipe();
    for i in 0..100 {
        p.cmd("RPUSH").arg("pl").arg(i);
    }
    p.cmd("LLEN").arg("pl");
    let out: Vec<i64> = p.query(&mut c).unwrap();
    assert_eq!(out.len(), 101);
    assert_eq!(out[100], 100);
}

#[test]
fn frames_split_at_every_byte() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw();
    let req = b"*3\r\n$3\r\nSET\r\n$5\r\nsplit\r\n$11\r\nhello world\r\n*2\r\n$3\r\nGET\r\n$5\r\nsplit\r\n";
    for b in req.iter() {
        r.send(&[*b]);
        std::thread::sleep(Duration::from_micros(200));
    }
    r.expect(b"+OK\r\n$11\r\nhello world\r\n");
    let big = "z".repeat(300_000);
    let mut req = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", big.len()).into_bytes();
    req.extend_from_slice(big.as_bytes());
    req.extend_from_slice(b"\r\n");
    for part in req.chunks(7001) {
        r.send(part);
    }
    r.expect(b"+OK\r\n");
    r.roundtrip(&["STRLEN", "big"], b":300000\r\n");
}

#[test]
fn resp3_shapes_raw() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw();
    r.cmd(&["HELLO", "3"]);
    let _ = r.drain();
    r.roundtrip(&["HSET", "h", "f", "v"], b":1\r\n");
    r.roundtrip(&["HGETALL", "h"], b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
    r.roundtrip(&["SADD", "s", "m"], b":1\r\n");
    r.roundtrip(&["SMEMBERS", "s"], b"~1\r\n$1\r\nm\r\n");
    r.roundtrip(&["ZADD", "z", "1.5", "a"], b":1\r\n");
    r.roundtrip(&["ZSCORE", "z", "a"], b",1.5\r\n");
    r.roundtrip(
        &["ZRANGE", "z", "0", "-1", "WITHSCORES"],
        b"*1\r\n*2\r\n$1\r\na\r\n,1.5\r\n",
    );
    r.roundtrip(&["GET", "nope"], b"_\r\n");
    r.roundtrip(&["BLPOP", "nope", "0.05"], b"_\r\n");
    r.roundtrip(
        &["SUBSCRIBE", "ch"],
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    // RESP3 clients may run normal commands while subscribed.
    r.roundtrip(&["GET", "nope"], b"_\r\n");
    let mut p = s.raw();
    p.roundtrip(&["PUBLISH", "ch", "hi"], b":1\r\n");
    r.expect(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
    let mut c3 = s.conn3();
    let v: redis::Value = redis::cmd("HGETALL").arg("h").query(&mut c3).unwrap();
    assert!(matches!(v, redis::Value::Map(_)), "{v:?}");
    let v: redis::Value = redis::cmd("ZSCORE")
        .arg("z")
        .arg("a")
        .query(&mut c3)
        .unwrap();
    assert_eq!(v, redis::Value::Double(1.5));
}

#[test]
fn many_clients_in_parallel() {
    let s = TestServer::start(|_| {});
    let addr = s.addr;
    let handles: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut r = Raw::connect(addr);
                for i in 0..200 {
                    r.cmd(&["INCR", "shared"]);
                    assert!(r.line().starts_with(':'));
                    r.cmd(&["SET", &format!("t{t}:{i}"), "v"]);
                    r.expect(b"+OK\r\n");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(common::q::<i64>(&mut c, &["GET", "shared"]), 1600);
    assert_eq!(common::q::<i64>(&mut c, &["DBSIZE"]), 1601);
}

/// Regression for a fuzz finding: an inline line holding a NUL made the
/// argument splitter loop, allocating without bound. Like Redis, NUL ends
/// the line; the connection and everyone else keep working.
#[test]
fn nul_bytes_in_inline_requests() {
    let s = TestServer::start(|_| {});
    let mut other = s.raw();
    let mut r = s.raw();
    r.send(b"\0\r\nPING\r\n");
    r.expect(b"+PONG\r\n");
    r.send(b"SET nul\0ignored 1\r\nEXISTS nul\r\n");
    r.expect(b"-ERR wrong number of arguments for 'set' command\r\n:0\r\n");
    other.roundtrip(&["PING"], b"+PONG\r\n");
}
