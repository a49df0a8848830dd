//! MULTI/EXEC/WATCH and Pub/Sub.

mod common;

use std::time::Duration;

use common::{TestServer, q, q_err};
use redis::Value;

#[test]
fn multi_exec_basics() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw();
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["SET", "a", "1"], b"+QUEUED\r\n");
    r.roundtrip(&["INCR", "a"], b"+QUEUED\r\n");
    r.roundtrip(&["LPUSH", "a", "x"], b"+QUEUED\r\n");
    r.roundtrip(
        &["EXEC"],
        b"*3\r\n+OK\r\n:2\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
    );
    r.roundtrip(&["EXEC"], b"-ERR EXEC without MULTI\r\n");
    r.roundtrip(&["DISCARD"], b"-ERR DISCARD without MULTI\r\n");
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["MULTI"], b"-ERR MULTI calls can not be nested\r\n");
    r.roundtrip(
        &["WATCH", "a"],
        b"-ERR WATCH inside MULTI is not allowed\r\n",
    );
    r.roundtrip(&["SET", "b", "1"], b"+QUEUED\r\n");
    r.roundtrip(&["DISCARD"], b"+OK\r\n");
    r.roundtrip(&["EXISTS", "b"], b":0\r\n");
    // Queue-time errors abort the whole transaction.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["SET", "b", "1"], b"+QUEUED\r\n");
    r.roundtrip(
        &["NOSUCH", "x"],
        b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n",
    );
    r.roundtrip(
        &["GET"],
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    r.roundtrip(&["EXISTS", "b"], b":0\r\n");
    // SAVE carries Redis's `no-multi` flag: refused while queuing, and the
    // transaction is discarded.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(
        &["SAVE"],
        b"-ERR Command not allowed inside a transaction\r\n",
    );
    r.roundtrip(&["SET", "b", "1"], b"+QUEUED\r\n");
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    r.roundtrip(&["EXISTS", "b"], b":0\r\n");
    // Blocking commands do not block inside MULTI.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["BLPOP", "nolist", "0"], b"+QUEUED\r\n");
    r.roundtrip(&["EXEC"], b"*1\r\n*-1\r\n");
}

#[test]
fn client_reply_off_or_skip_does_not_silence_subscribe_confirmations() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    // Redis 7.0.15, byte for byte: the confirmation and the message come
    // through REPLY OFF; the PING reply does not.
    let mut off = s.raw_authed();
    off.cmd(&["CLIENT", "REPLY", "OFF"]);
    off.cmd(&["SUBSCRIBE", "a"]);
    off.cmd(&["PING"]);
    off.expect(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
    // SKIP is used up by the SUBSCRIBE, so the PING after it is answered.
    let mut skip = s.raw_authed();
    skip.cmd(&["CLIENT", "REPLY", "SKIP"]);
    skip.cmd(&["SUBSCRIBE", "a"]);
    skip.cmd(&["PING"]);
    skip.expect(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    let _: i64 = q(&mut c, &["PUBLISH", "a", "hi"]);
    let msg = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n";
    off.expect(msg);
    skip.expect(msg);
    std::thread::sleep(Duration::from_millis(100));
    assert!(off.drain().is_empty(), "REPLY OFF must not answer the PING");
}

#[test]
fn watch_invalidation() {
    let s = TestServer::start(|_| {});
    let mut a = s.conn();
    let mut b = s.conn();
    let _: () = q(&mut a, &["SET", "k", "1"]);
    // Untouched watch: EXEC runs.
    let _: () = q(&mut a, &["WATCH", "k"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["SET", "k", "2"]);
    let r: Value = q(&mut a, &["EXEC"]);
    assert_eq!(r, Value::Array(vec![Value::Okay]));
    // Another client writes: EXEC fails with a null reply.
    let _: () = q(&mut a, &["WATCH", "k"]);
    let _: () = q(&mut b, &["SET", "k", "3"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["SET", "k", "4"]);
    let r: Value = q(&mut a, &["EXEC"]);
    assert_eq!(r, Value::Nil);
    assert_eq!(q::<String>(&mut a, &["GET", "k"]), "3");
    // UNWATCH clears it.
    let _: () = q(&mut a, &["WATCH", "k"]);
    let _: () = q(&mut b, &["SET", "k", "5"]);
    let _: () = q(&mut a, &["UNWATCH"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["SET", "k", "6"]);
    let r: Value = q(&mut a, &["EXEC"]);
    assert_eq!(r, Value::Array(vec![Value::Okay]));
    // FLUSHALL invalidates.
    let _: () = q(&mut a, &["WATCH", "k"]);
    let _: () = q(&mut b, &["FLUSHALL"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["SET", "k", "7"]);
    assert_eq!(q::<Value>(&mut a, &["EXEC"]), Value::Nil);
    // Expiry invalidates.
    let _: () = q(&mut a, &["SET", "e", "1", "PX", "50"]);
    let _: () = q(&mut a, &["WATCH", "e"]);
    std::thread::sleep(Duration::from_millis(120));
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["SET", "x", "1"]);
    assert_eq!(q::<Value>(&mut a, &["EXEC"]), Value::Nil);
    // Watching a missing key that another client creates.
    let _: () = q(&mut a, &["WATCH", "fresh"]);
    let _: i64 = q(&mut b, &["LPUSH", "fresh", "x"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["GET", "x"]);
    assert_eq!(q::<Value>(&mut a, &["EXEC"]), Value::Nil);
}

#[test]
fn watch_under_concurrent_writers_is_atomic() {
    let s = TestServer::start(|_| {});
    let addr = s.addr;
    let threads = 4;
    let per = 50;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = redis::Client::open(format!("redis://{addr}/"))
                    .unwrap()
                    .get_connection()
                    .unwrap();
                let mut done = 0;
                let mut retries = 0;
                while done < per {
                    let _: () = redis::cmd("WATCH").arg("ctr").query(&mut c).unwrap();
                    let v: Option<i64> = redis::cmd("GET").arg("ctr").query(&mut c).unwrap();
                    let next = v.unwrap_or(0) + 1;
                    let r: Value = redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg("ctr")
                        .arg(next)
                        .query(&mut c)
                        .unwrap();
                    if r != Value::Nil {
                        done += 1;
                    } else {
                        retries += 1;
                    }
                }
                retries
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "ctr"]), (threads * per) as i64);
}

#[test]
fn exec_is_atomic_against_readers() {
    let s = TestServer::start(|_| {});
    let addr = s.addr;
    let writer = std::thread::spawn(move || {
        let mut c = redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        for i in 0..300 {
            let _: () = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg("x")
                .arg(i)
                .ignore()
                .cmd("SET")
                .arg("y")
                .arg(i)
                .ignore()
                .query(&mut c)
                .unwrap();
        }
    });
    let mut c = s.conn();
    for _ in 0..300 {
        let (x, y): (Option<i64>, Option<i64>) = redis::pipe()
            .atomic()
            .cmd("GET")
            .arg("x")
            .cmd("GET")
            .arg("y")
            .query(&mut c)
            .unwrap();
        assert_eq!(x, y);
    }
    writer.join().unwrap();
}

#[test]
fn pubsub_channels_and_patterns() {
    let s = TestServer::start(|_| {});
    let mut sub_con = s.conn();
    let mut pubsub = sub_con.as_pubsub();
    pubsub.subscribe("news").unwrap();
    pubsub.psubscribe("ev.*").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut p = s.conn();
    assert_eq!(q::<i64>(&mut p, &["PUBLISH", "news", "hello"]), 1);
    assert_eq!(q::<i64>(&mut p, &["PUBLISH", "ev.1", "x"]), 1);
    assert_eq!(q::<i64>(&mut p, &["PUBLISH", "other", "x"]), 0);
    let m = pubsub.get_message().unwrap();
    assert_eq!(m.get_channel_name(), "news");
    assert_eq!(m.get_payload::<String>().unwrap(), "hello");
    let m = pubsub.get_message().unwrap();
    assert_eq!(m.get_channel_name(), "ev.1");
    assert_eq!(m.get_pattern::<String>().unwrap(), "ev.*");
    assert_eq!(
        q::<Vec<String>>(&mut p, &["PUBSUB", "CHANNELS"]),
        vec!["news"]
    );
    assert_eq!(
        q::<Vec<(String, i64)>>(&mut p, &["PUBSUB", "NUMSUB", "news", "zz"]),
        vec![("news".to_string(), 1), ("zz".to_string(), 0)]
    );
    assert_eq!(q::<i64>(&mut p, &["PUBSUB", "NUMPAT"]), 1);
    pubsub.unsubscribe("news").unwrap();
    drop(pubsub);
}

#[test]
fn resp2_subscribed_mode_restrictions() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw();
    r.roundtrip(
        &["SUBSCRIBE", "a", "b"],
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    );
    r.roundtrip(
        &["GET", "x"],
        b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    r.roundtrip(&["PING"], b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    // A known subcommand is named in full, as Redis does.
    r.roundtrip(
        &["CLIENT", "ID"],
        b"-ERR Can't execute 'client|id': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n",
    );
    r.roundtrip(
        &["UNSUBSCRIBE", "a"],
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:1\r\n",
    );
    r.roundtrip(
        &["UNSUBSCRIBE"],
        b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:0\r\n",
    );
    r.roundtrip(&["GET", "x"], b"$-1\r\n");
    r.roundtrip(
        &["PUNSUBSCRIBE"],
        b"*3\r\n$12\r\npunsubscribe\r\n$-1\r\n:0\r\n",
    );
    let mut c = s.conn();
    assert!(q_err(&mut c, &["PUBSUB", "NOPE"]).starts_with("ERR unknown subcommand"));
}

#[test]
fn slow_subscriber_is_disconnected_publisher_unaffected() {
    let s = TestServer::start(|_| {});
    let mut sub = s.raw();
    sub.roundtrip(
        &["SUBSCRIBE", "firehose"],
        b"*3\r\n$9\r\nsubscribe\r\n$8\r\nfirehose\r\n:1\r\n",
    );
    // Never read from `sub` again: its backlog must hit the 32 MB limit.
    let mut p = s.conn();
    let payload = "x".repeat(1024 * 1024);
    let mut receivers = Vec::new();
    for _ in 0..80 {
        receivers.push(q::<i64>(&mut p, &["PUBLISH", "firehose", &payload]));
    }
    assert_eq!(receivers[0], 1);
    assert_eq!(
        *receivers.last().unwrap(),
        0,
        "slow subscriber still attached"
    );
    assert_eq!(q::<String>(&mut p, &["PING"]), "PONG");
    let n: Vec<(String, i64)> = q(&mut p, &["PUBSUB", "NUMSUB", "firehose"]);
    assert_eq!(n[0].1, 0);
}

#[test]
fn client_kill_interrupts_a_stuck_writer() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let big = "y".repeat(4 * 1024 * 1024);
    let _: () = q(&mut c, &["SET", "big", &big]);
    // A client that asks for a lot and never reads its replies.
    let mut stuck = s.raw();
    let mut req = Vec::new();
    for _ in 0..20 {
        req.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    stuck.send(&req);
    std::thread::sleep(Duration::from_millis(300));
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    let id = list
        .lines()
        .find(|l| l.contains("cmd=get"))
        .and_then(|l| l.split(' ').next())
        .and_then(|f| f.strip_prefix("id="))
        .expect("stuck client listed")
        .to_string();
    assert_eq!(q::<i64>(&mut c, &["CLIENT", "KILL", "ID", &id]), 1);
    std::thread::sleep(Duration::from_millis(200));
    let list: String = q(&mut c, &["CLIENT", "LIST"]);
    assert_eq!(list.lines().count(), 1, "{list}");
}

#[test]
fn watching_an_already_expired_key_is_not_a_change() {
    let s = TestServer::start(|_| {});
    let mut a = s.conn();
    let _: () = q(&mut a, &["SET", "gone", "1", "PX", "30"]);
    std::thread::sleep(Duration::from_millis(80));
    let _: () = q(&mut a, &["WATCH", "gone"]);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["SET", "x", "1"]);
    assert_eq!(
        q::<Value>(&mut a, &["EXEC"]),
        Value::Array(vec![Value::Okay])
    );
}

#[test]
fn noop_writes_do_not_invalidate_watch() {
    let s = TestServer::start(|_| {});
    let mut a = s.conn();
    let mut b = s.conn();
    let _: i64 = q(&mut a, &["SADD", "s", "m"]);
    let _: () = q(&mut a, &["WATCH", "s"]);
    assert_eq!(q::<i64>(&mut b, &["SADD", "s", "m"]), 0);
    assert_eq!(q::<i64>(&mut b, &["SREM", "s", "zz"]), 0);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["PING"]);
    assert_eq!(
        q::<Value>(&mut a, &["EXEC"]),
        Value::Array(vec![Value::SimpleString("PONG".into())])
    );
    let _: () = q(&mut a, &["WATCH", "s"]);
    assert_eq!(q::<i64>(&mut b, &["SADD", "s", "n"]), 1);
    let _: () = q(&mut a, &["MULTI"]);
    let _: () = q(&mut a, &["PING"]);
    assert_eq!(q::<Value>(&mut a, &["EXEC"]), Value::Nil);
}

/// A raw RESP3 connection subscribed to `channel`.
fn resp3_subscriber(s: &TestServer, channel: &str) -> common::Raw {
    let mut r = s.raw();
    r.send(b"HELLO 3\r\n");
    let _ = r.drain();
    r.cmd(&["SUBSCRIBE", channel]);
    r.expect(
        format!(
            ">3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:1\r\n",
            channel.len()
        )
        .as_bytes(),
    );
    r
}

#[test]
fn resp3_publisher_subscribed_to_its_channel_gets_the_push_before_the_count() {
    let s = TestServer::start(|_| {});
    let mut r = resp3_subscriber(&s, "ch");
    // As Redis: the message to itself, then PUBLISH's reply.
    r.send(b"PUBLISH ch hi\r\n");
    r.expect(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n:1\r\n");
    // Inside EXEC too, the push lands where Redis puts it: in the array,
    // ahead of the count.
    r.send(b"MULTI\r\nPUBLISH ch again\r\nEXEC\r\n");
    r.expect(b"+OK\r\n+QUEUED\r\n*1\r\n>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nagain\r\n:1\r\n");
}

#[test]
fn resp3_client_blocked_while_subscribed_gets_its_messages_at_once() {
    let s = TestServer::start(|_| {});
    let mut r = resp3_subscriber(&s, "ch");
    // Blocked with no timeout: the message must arrive while it waits, as
    // Redis delivers it, not when (if ever) the pop is served.
    r.send(b"BLPOP nolist 0\r\n");
    std::thread::sleep(Duration::from_millis(100));
    let mut c = s.conn();
    let n: i64 = q(&mut c, &["PUBLISH", "ch", "m1"]);
    assert_eq!(n, 1);
    r.expect(b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nm1\r\n");
    // Still blocked, and served by a push afterwards.
    let _: i64 = q(&mut c, &["RPUSH", "nolist", "v"]);
    r.expect(b"*2\r\n$6\r\nnolist\r\n$1\r\nv\r\n");
}
