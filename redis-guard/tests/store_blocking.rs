//! Blocking pops: timeouts, wake-ups, FIFO order, disconnects.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, q, q_err, wait_blocked};
use redis::Value;

/// `CLIENT REPLY SKIP`/`OFF` cover a blocking command's eventual reply,
/// served or timed out, as in Redis: a fire-and-forget client must not get
/// an answer that puts its replies out of step.
#[test]
fn client_reply_skip_and_off_silence_a_blocked_commands_reply() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    r.cmd(&["CLIENT", "REPLY", "SKIP"]);
    r.cmd(&["BLPOP", "q", "0.2"]);
    r.roundtrip(&["PING"], b"+PONG\r\n");

    let mut c = s.conn();
    r.cmd(&["CLIENT", "REPLY", "SKIP"]);
    r.cmd(&["BLPOP", "q", "5"]);
    wait_blocked(&mut c);
    let _: i64 = q(&mut c, &["RPUSH", "q", "v"]);
    r.roundtrip(&["PING"], b"+PONG\r\n");
    assert_eq!(q::<i64>(&mut c, &["LLEN", "q"]), 0, "the pop was served");

    r.cmd(&["CLIENT", "REPLY", "OFF"]);
    r.cmd(&["BZPOPMIN", "z", "0.1"]);
    r.cmd(&["BLMOVE", "q", "d", "LEFT", "LEFT", "0.1"]);
    r.roundtrip(&["CLIENT", "REPLY", "ON"], b"+OK\r\n");
    r.roundtrip(&["BLPOP", "q", "0.05"], b"*-1\r\n");
}

#[test]
fn timeouts_are_fractional_and_validated() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let t = Instant::now();
    let v: Value = q(&mut c, &["BLPOP", "none", "0.2"]);
    let el = t.elapsed();
    assert_eq!(v, Value::Nil);
    assert!(
        el >= Duration::from_millis(180) && el < Duration::from_secs(2),
        "{el:?}"
    );
    let v: Value = q(&mut c, &["BZPOPMIN", "none", "0.05"]);
    assert_eq!(v, Value::Nil);
    let v: Value = q(&mut c, &["BLMOVE", "none", "d", "LEFT", "LEFT", "0.05"]);
    assert_eq!(v, Value::Nil);
    assert_eq!(
        q_err(&mut c, &["BLPOP", "k", "abc"]),
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(
        q_err(&mut c, &["BLPOP", "k", "-1"]),
        "ERR timeout is negative"
    );
    // Redis blocks for ceil(timeout * 1000) ms: -1 ms is negative, but
    // -0.1 ms rounds to 0, which means forever.
    assert_eq!(
        q_err(&mut c, &["BLPOP", "k", "-0.001"]),
        "ERR timeout is negative"
    );
    {
        let mut r = s.raw_authed();
        r.cmd(&["BLPOP", "tiny", "-0.0001"]);
        std::thread::sleep(Duration::from_millis(300));
        assert!(r.drain().is_empty(), "a -0.1 ms timeout must block");
        let _: i64 = q(&mut c, &["RPUSH", "tiny", "x"]);
        r.expect(b"*2\r\n$4\r\ntiny\r\n$1\r\nx\r\n");
    }
    {
        // Just under i64::MAX ms: Redis blocks; the f64 product rounding up
        // to 2^63 must not make it "negative".
        let mut r = s.raw_authed();
        r.cmd(&["BLPOP", "huge", "9223372036854775"]);
        std::thread::sleep(Duration::from_millis(200));
        assert!(r.drain().is_empty(), "a huge timeout must block");
        let _: i64 = q(&mut c, &["RPUSH", "huge", "x"]);
        r.expect(b"*2\r\n$4\r\nhuge\r\n$1\r\nx\r\n");
    }
    assert_eq!(
        q_err(&mut c, &["BLPOP", "k", "9223372036854776000"]),
        "ERR timeout is negative"
    );
    let _: () = q(&mut c, &["SET", "str", "v"]);
    assert_eq!(
        q_err(&mut c, &["BLPOP", "str", "0.1"]),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    // Immediate data does not block.
    let _: i64 = q(&mut c, &["RPUSH", "l", "a", "b"]);
    assert_eq!(
        q::<(String, String)>(&mut c, &["BRPOP", "none", "l", "0"]),
        ("l".into(), "b".into())
    );
}

#[test]
fn push_wakes_blocked_client() {
    let s = TestServer::start(|_| {});
    let addr = s.addr;
    let h = std::thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let v: (String, String) = redis::cmd("BLPOP")
            .arg("q1")
            .arg("q2")
            .arg(5)
            .query(&mut c)
            .unwrap();
        v
    });
    std::thread::sleep(Duration::from_millis(150));
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["RPUSH", "q2", "job"]), 1);
    assert_eq!(h.join().unwrap(), ("q2".to_string(), "job".to_string()));
    // The pushed element went to the waiter, not to the list.
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "q2"]), 0);
}

#[test]
fn fifo_order_among_waiters() {
    let s = TestServer::start(|_| {});
    let mut handles = Vec::new();
    for i in 0..3 {
        let addr = s.addr;
        handles.push(std::thread::spawn(move || {
            let mut c = redis::Client::open(format!("redis://{addr}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            let v: (String, String) = redis::cmd("BRPOP")
                .arg("fifo")
                .arg(5)
                .query(&mut c)
                .unwrap();
            (i, v.1)
        }));
        // Make the arrival order deterministic.
        std::thread::sleep(Duration::from_millis(150));
    }
    let mut c = s.conn();
    for item in ["first", "second", "third"] {
        let _: i64 = q(&mut c, &["LPUSH", "fifo", item]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut got: Vec<(i32, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (0, "first".to_string()),
            (1, "second".to_string()),
            (2, "third".to_string())
        ]
    );
}

#[test]
fn one_push_of_many_serves_several_waiters_in_order() {
    let s = TestServer::start(|_| {});
    let mut raws = Vec::new();
    for _ in 0..3 {
        let mut r = s.raw();
        r.cmd(&["BLPOP", "multi", "5"]);
        raws.push(r);
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "multi", "a", "b", "c", "d"]);
    for (r, v) in raws.iter_mut().zip(["a", "b", "c"]) {
        r.expect(format!("*2\r\n$5\r\nmulti\r\n$1\r\n{v}\r\n").as_bytes());
    }
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "multi", "0", "-1"]),
        vec!["d"]
    );
}

#[test]
fn a_waiter_for_another_type_does_not_hold_back_the_ones_behind_it() {
    let s = TestServer::start(|_| {});
    // A list pop waits first, a sorted-set pop second, on the same key.
    let mut list_waiter = s.raw();
    list_waiter.cmd(&["BLPOP", "k", "0"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut zset_waiter = s.raw();
    zset_waiter.cmd(&["BZPOPMIN", "k", "0"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["ZADD", "k", "1", "a"]);
    zset_waiter.expect(b"*3\r\n$1\r\nk\r\n$1\r\na\r\n$1\r\n1\r\n");
    assert!(list_waiter.drain().is_empty(), "BLPOP must stay blocked");
    // The list pop is still queued and is served once the key is a list.
    let _: i64 = q(&mut c, &["DEL", "k"]);
    let _: i64 = q(&mut c, &["RPUSH", "k", "x"]);
    list_waiter.expect(b"*2\r\n$1\r\nk\r\n$1\r\nx\r\n");
    // The other way round, across several keys with BLMPOP and BZMPOP.
    let mut zmpop = s.raw();
    zmpop.cmd(&["BZMPOP", "0", "1", "m", "MIN"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut lmpop = s.raw();
    lmpop.cmd(&["BLMPOP", "0", "2", "other", "m", "LEFT"]);
    std::thread::sleep(Duration::from_millis(100));
    let _: i64 = q(&mut c, &["RPUSH", "m", "y"]);
    lmpop.expect(b"*2\r\n$1\r\nm\r\n*1\r\n$1\r\ny\r\n");
    assert!(zmpop.drain().is_empty(), "BZMPOP must stay blocked");
}

#[test]
fn move_and_mpop_and_zset_variants() {
    let s = TestServer::start(|_| {});
    let addr = s.addr;
    let spawn = |args: Vec<&'static str>| {
        std::thread::spawn(move || {
            let mut c = redis::Client::open(format!("redis://{addr}/"))
                .unwrap()
                .get_connection()
                .unwrap();
            let mut cmd = redis::cmd(args[0]);
            for a in &args[1..] {
                cmd.arg(*a);
            }
            cmd.query::<Value>(&mut c).unwrap()
        })
    };
    let h1 = spawn(vec!["BLMOVE", "src", "dst", "RIGHT", "LEFT", "5"]);
    let h2 = spawn(vec!["BRPOPLPUSH", "src2", "dst", "5"]);
    let h3 = spawn(vec!["BLMPOP", "5", "2", "m1", "m2", "LEFT", "COUNT", "2"]);
    let h4 = spawn(vec!["BZPOPMAX", "z1", "5"]);
    let h5 = spawn(vec!["BZMPOP", "5", "1", "z2", "MIN", "COUNT", "5"]);
    std::thread::sleep(Duration::from_millis(200));
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "src", "x"]);
    let _: i64 = q(&mut c, &["RPUSH", "src2", "y"]);
    let _: i64 = q(&mut c, &["RPUSH", "m2", "1", "2", "3"]);
    let _: i64 = q(&mut c, &["ZADD", "z1", "1", "a", "2", "b"]);
    let _: i64 = q(&mut c, &["ZADD", "z2", "1", "a", "2", "b"]);
    assert_eq!(h1.join().unwrap(), Value::BulkString(b"x".to_vec()));
    assert_eq!(h2.join().unwrap(), Value::BulkString(b"y".to_vec()));
    let v3 = format!("{:?}", h3.join().unwrap());
    assert!(
        v3.contains("m2") && v3.contains("\"1\"") && v3.contains("\"2\""),
        "{v3}"
    );
    let v4 = format!("{:?}", h4.join().unwrap());
    assert!(v4.contains("z1") && v4.contains("\"b\""), "{v4}");
    let v5 = format!("{:?}", h5.join().unwrap());
    assert!(
        v5.contains("z2") && v5.contains("\"a\"") && v5.contains("\"b\""),
        "{v5}"
    );
    let mut dst: Vec<String> = q(&mut c, &["LRANGE", "dst", "0", "-1"]);
    dst.sort();
    assert_eq!(dst, vec!["x", "y"]);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "m2", "0", "-1"]),
        vec!["3"]
    );
}

#[test]
fn disconnected_waiter_does_not_steal_data() {
    let s = TestServer::start(|_| {});
    {
        let mut r = s.raw();
        r.cmd(&["BLPOP", "steal", "0"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "steal", "v"]);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "steal"]), 1);
    let info: String = q(&mut c, &["INFO", "clients"]);
    assert!(info.contains("blocked_clients:0"), "{info}");
}

#[test]
fn waiter_in_other_db_is_not_served() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw();
    r.roundtrip(&["SELECT", "1"], b"+OK\r\n");
    r.cmd(&["BLPOP", "k", "0.5"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["RPUSH", "k", "db0"]);
    r.expect(b"*-1\r\n");
    assert_eq!(q::<i64>(&mut c, &["LLEN", "k"]), 1);
}

#[test]
fn concurrent_producers_and_blocking_consumers_lose_nothing() {
    let s = TestServer::start(|_| {});
    let addr = s.addr;
    let per_producer = 300;
    let producers = 3;
    let total = per_producer * producers;
    let connect = move || {
        redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_connection()
            .unwrap()
    };
    let consumed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::new();
    for c in 0..4 {
        let consumed = consumed.clone();
        handles.push(std::thread::spawn(move || {
            let mut con = connect();
            loop {
                // Consumers alternate between plain pops and moves through a second list.
                let v: Option<(String, String)> = if c % 2 == 0 {
                    redis::cmd("BLPOP")
                        .arg("jobs")
                        .arg("moved")
                        .arg(1)
                        .query(&mut con)
                        .unwrap()
                } else {
                    let m: Option<String> = redis::cmd("BLMOVE")
                        .arg("jobs")
                        .arg("moved")
                        .arg("LEFT")
                        .arg("RIGHT")
                        .arg(1)
                        .query(&mut con)
                        .unwrap();
                    if m.is_some() {
                        continue;
                    }
                    redis::cmd("BLPOP")
                        .arg("moved")
                        .arg(0.2)
                        .query(&mut con)
                        .unwrap()
                };
                match v {
                    Some((_, item)) if item == "stop" => break,
                    Some((_, item)) => consumed.lock().unwrap().push(item),
                    None => {}
                }
            }
        }));
    }
    let mut prods = Vec::new();
    for p in 0..producers {
        prods.push(std::thread::spawn(move || {
            let mut con = connect();
            for i in 0..per_producer {
                let _: i64 = redis::cmd("RPUSH")
                    .arg("jobs")
                    .arg(format!("p{p}-{i}"))
                    .query(&mut con)
                    .unwrap();
            }
        }));
    }
    for p in prods {
        p.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumed.lock().unwrap().len() < total {
        assert!(
            Instant::now() < deadline,
            "only {} consumed",
            consumed.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = s.conn();
    for _ in 0..4 {
        let _: i64 = q(&mut c, &["RPUSH", "moved", "stop"]);
    }
    for h in handles {
        h.join().unwrap();
    }
    let mut got = consumed.lock().unwrap().clone();
    got.sort();
    let before = got.len();
    got.dedup();
    assert_eq!(before, got.len(), "duplicates delivered");
    assert_eq!(got.len(), total);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "jobs"]), 0);
}
