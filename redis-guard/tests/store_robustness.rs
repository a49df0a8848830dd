//! Every command with awkward arguments: the server must answer (value or
//! error) and keep the connection usable; no input may panic or hang it.

mod common;

use common::{TestServer, q};

const POOL: &[&str] = &[
    "k",
    "h",
    "l",
    "s",
    "z",
    "str",
    "0",
    "1",
    "-1",
    "2",
    "-2",
    "100",
    "-100",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "1.5",
    "-inf",
    "+inf",
    "nan",
    "(1",
    "[a",
    "-",
    "+",
    "(",
    "[",
    "",
    "*",
    "a*",
    "[^a]",
    "\\",
    "LIMIT",
    "COUNT",
    "WITHSCORES",
    "BYSCORE",
    "BYLEX",
    "REV",
    "NX",
    "XX",
    "GT",
    "LT",
    "CH",
    "INCR",
    "EX",
    "PX",
    "KEEPTTL",
    "GET",
    "LEFT",
    "RIGHT",
    "BEFORE",
    "AFTER",
    "MATCH",
    "TYPE",
    "WEIGHTS",
    "AGGREGATE",
    "MIN",
    "MAX",
    "RANK",
    "MAXLEN",
    "IDX",
    "LEN",
    "MINMATCHLEN",
    "WITHMATCHLEN",
    "DB",
    "REPLACE",
    "PERSIST",
    "EXAT",
    "PXAT",
    "WITHVALUES",
    "ENCODING",
    "USAGE",
    "SAMPLES",
    "ASYNC",
];

fn seed(c: &mut redis::Connection) {
    let _: () = q(c, &["FLUSHALL"]);
    let _: () = q(c, &["SET", "str", "12"]);
    let _: i64 = q(c, &["HSET", "h", "a", "1", "b", "x"]);
    let _: i64 = q(c, &["RPUSH", "l", "a", "b", "1"]);
    let _: i64 = q(c, &["SADD", "s", "a", "1"]);
    let _: i64 = q(c, &["ZADD", "z", "1", "a", "2", "b", "-inf", "c"]);
}

#[test]
fn all_commands_with_awkward_arguments() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    let names: Vec<String> = q(&mut c, &["COMMAND", "LIST"]);
    let skip = [
        "quit",
        "reset",
        "hello",
        "multi",
        "exec",
        "discard",
        "watch",
        "subscribe",
        "psubscribe",
        "unsubscribe",
        "punsubscribe",
        "client",
        "select",
        "swapdb",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut total = 0;
    for name in names.iter().filter(|n| !skip.contains(&n.as_str())) {
        let blocking = name.starts_with('b');
        for nargs in 0..7 {
            for _ in 0..6 {
                seed(&mut c);
                let mut cmd = redis::cmd(name);
                let mut shown = vec![name.clone()];
                for i in 0..nargs {
                    let a = POOL[(next() % POOL.len() as u64) as usize];
                    // Blocking commands take a short timeout as their time argument.
                    let a = if blocking && (i + 1 == nargs || i == 0) && a.parse::<f64>().is_ok() {
                        "0.01"
                    } else {
                        a
                    };
                    cmd.arg(a);
                    shown.push(a.to_string());
                }
                let _ = cmd.query::<redis::Value>(&mut c);
                total += 1;
                match redis::cmd("PING").query::<String>(&mut c) {
                    Ok(p) => assert_eq!(p, "PONG", "after {shown:?}"),
                    Err(e) => panic!("connection broken after {shown:?}: {e}"),
                }
            }
        }
    }
    assert!(total > 1000);
}

#[test]
fn random_bytes_never_crash_the_server() {
    let s = TestServer::start(|_| {});
    let mut state: u64 = 88172645463325252;
    for round in 0..200 {
        let mut r = s.raw();
        let len = 1 + (round * 37) % 400;
        let mut data = Vec::with_capacity(len);
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let pick = (state % 18) as usize;
            data.push(b"*$\r\n0123456789\"'x \0\x0b"[pick]);
        }
        r.send(&data);
        let _ = r.drain();
    }
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}
