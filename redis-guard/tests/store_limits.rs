//! Network-facing limits under attack: output buffers of clients that do not
//! read, hostile protocol input, many idle or slow connections, connection
//! floods, and the audit trail they leave. Every attack test asserts that
//! the attack failed, the data is intact and a legitimate client is served.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Raw, TestServer, q, user};
use redis_guard::lab::ChildGuard;
use redis_guard::store::config::{ByteSize, OutputBufferLimit};

const PASS: &str = "correct horse";

/// A server whose `default` user needs [`PASS`], with `tweak` applied.
fn guarded(tweak: impl FnOnce(&mut redis_guard::store::StoreConfig)) -> TestServer {
    let mut s = TestServer::start(|c| {
        c.users = vec![user("default", PASS, "on ~* &* +@all")];
        tweak(c);
    });
    s.password = Some(("default".into(), PASS.into()));
    s
}

/// Stores the reference data the attacks must not touch.
fn seed(s: &TestServer) -> String {
    let value = "v".repeat(1024 * 1024);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "big", &value]);
    let _: () = q(&mut c, &["SET", "small", "intact"]);
    value
}

/// The data is intact and a new legitimate client is served.
fn assert_intact_and_served(s: &TestServer, value: &str) {
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["GET", "small"]), "intact");
    assert_eq!(q::<String>(&mut c, &["GET", "big"]), value);
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

fn audit_lines(path: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("audit line is JSON"))
        .filter(|v| v["event"] == kind)
        .collect()
}

fn connected_clients(s: &TestServer) -> usize {
    let mut c = s.conn();
    let info: String = q(&mut c, &["INFO", "clients"]);
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Waits up to 30 s for `connected_clients` to reach `n`.
fn wait_clients_at_least(s: &TestServer, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = connected_clients(s);
        if now >= n || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits up to 30 s for `connected_clients` to fall to `n` or below.
fn wait_clients_at_most(s: &TestServer, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = connected_clients(s);
        if now <= n || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_client_that_pipelines_gets_and_never_reads_is_cut_at_its_output_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log: PathBuf = dir.path().join("audit.log");
    let limit = 8 * 1024 * 1024;
    let s = TestServer::start(|c| {
        c.output_buffer_limit_normal = OutputBufferLimit::hard(ByteSize(limit));
        c.audit_log = Some(log.clone());
    });
    let value = seed(&s);
    let mut attacker = s.raw();
    let mut pipeline = Vec::new();
    for _ in 0..500 {
        pipeline.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    // 500 MB of replies asked for; the attacker never reads one byte.
    attacker.send(&pipeline);
    assert_eq!(s.wait_security_count("client_output_buffer_limit", 1), 1);
    // The attack failed: the connection is gone and it never had much more
    // than its limit pending.
    assert!(wait_clients_at_most(&s, 1) <= 1);
    let ev = &audit_lines(&log, "client_output_buffer_limit")[0];
    assert_eq!(ev["peer"], "127.0.0.1");
    assert_eq!(ev["class"], "normal");
    let pending = ev["pending"].as_u64().unwrap();
    assert!(pending > limit && pending < limit + 2 * 1024 * 1024, "{ev}");
    attacker.expect_closed();
    assert_intact_and_served(&s, &value);
}

#[test]
fn a_transaction_cannot_queue_past_the_query_buffer_limit() {
    let s = TestServer::start(|c| c.client_query_buffer_limit = ByteSize(1024 * 1024));
    let mut r = s.raw_authed();
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    // 100 KB at a time: the eleventh crosses 1 MB and is refused, which
    // dooms the transaction; nothing of it runs.
    let value = "v".repeat(100 * 1024);
    for i in 0..10 {
        r.roundtrip(&["SET", &format!("k{i}"), &value], b"+QUEUED\r\n");
    }
    r.cmd(&["SET", "k10", &value]);
    let line = r.line();
    assert!(line.starts_with("-ERR transaction too large"), "{line}");
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    // The connection is still good, and a transaction within the limit runs.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["SET", "k", &value], b"+QUEUED\r\n");
    r.roundtrip(&["EXEC"], b"*1\r\n+OK\r\n");
}

#[test]
fn a_legitimate_pipeline_that_reads_late_gets_every_reply() {
    let s = TestServer::start(|_| {});
    let value = seed(&s);
    let mut c = s.raw();
    let mut pipeline = Vec::new();
    for _ in 0..40 {
        pipeline.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    }
    c.send(&pipeline);
    // Replies pile up on the server while this client is busy elsewhere:
    // 40 MB is well within the default limit.
    std::thread::sleep(Duration::from_millis(500));
    let one = format!("${}\r\n{}\r\n", value.len(), value);
    let got = c.read_n(one.len() * 40);
    assert_eq!(got.len(), one.len() * 40);
    assert!(got.starts_with(one.as_bytes()) && got.ends_with(one.as_bytes()));
    assert_eq!(s.security_count("client_output_buffer_limit"), 0);
}

#[test]
fn a_subscriber_that_never_reads_is_cut_at_the_pubsub_limit() {
    let s = TestServer::start(|c| {
        c.output_buffer_limit_pubsub = OutputBufferLimit::hard(ByteSize(1024 * 1024))
    });
    let value = seed(&s);
    let mut sub = s.raw();
    sub.cmd(&["SUBSCRIBE", "news"]);
    sub.expect(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    let mut publisher = s.conn();
    let msg = "m".repeat(64 * 1024);
    let mut receivers = 1;
    for _ in 0..2000 {
        receivers = q::<i64>(&mut publisher, &["PUBLISH", "news", &msg]);
        if receivers == 0 {
            break;
        }
    }
    assert_eq!(receivers, 0, "the subscriber was never disconnected");
    assert!(s.security_count("client_output_buffer_limit") >= 1);
    sub.expect_closed();
    assert_intact_and_served(&s, &value);
    // A subscriber that reads keeps getting messages.
    let mut good = s.raw();
    good.cmd(&["SUBSCRIBE", "news"]);
    good.expect(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    assert_eq!(q::<i64>(&mut publisher, &["PUBLISH", "news", "hello"]), 1);
    good.expect(b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
}

#[test]
fn a_subscriber_that_stays_over_the_soft_limit_is_cut_after_soft_seconds() {
    let soft = 256 * 1024;
    let s = TestServer::start(|c| {
        c.output_buffer_limit_pubsub = OutputBufferLimit {
            hard: ByteSize(256 << 20),
            soft: ByteSize(soft),
            soft_seconds: 1,
        }
    });
    let value = seed(&s);
    let mut sub = s.raw();
    sub.cmd(&["SUBSCRIBE", "news"]);
    sub.expect(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    let mut publisher = s.conn();
    let msg = "m".repeat(64 * 1024);
    let started = Instant::now();
    // A steady trickle, far below the hard limit's pace: only the soft
    // limit (over 256 kB for a second in a row) can end it.
    while q::<i64>(&mut publisher, &["PUBLISH", "news", &msg]) == 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "never cut");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(s.security_count("client_output_buffer_limit"), 1);
    sub.expect_closed();
    assert_intact_and_served(&s, &value);
}

/// One hostile input: it gets `reply` (when given) and the connection closes.
fn hostile_input(s: &TestServer, input: &[u8], reply: Option<&[u8]>) {
    let mut r = s.raw_authed();
    r.send(input);
    if let Some(reply) = reply {
        r.expect(reply);
    }
    r.expect_closed();
}

#[test]
fn huge_and_negative_bulk_lengths_and_an_endless_inline_line_fail() {
    let s = guarded(|c| c.proto_max_bulk_len = ByteSize(64 * 1024 * 1024));
    let value = seed(&s);
    let invalid_bulk: &[u8] = b"-ERR Protocol error: invalid bulk length\r\n";
    // Authenticated: beyond proto_max_bulk_len, far beyond, negative, garbage.
    for header in [
        "$67108865",
        "$9223372036854775807",
        "$99999999999999999999999",
        "$-5",
        "$-1",
        "$abc",
    ] {
        hostile_input(
            &s,
            format!("*2\r\n$3\r\nGET\r\n{header}\r\n").as_bytes(),
            Some(invalid_bulk),
        );
    }
    hostile_input(
        &s,
        b"*99999999999\r\n",
        Some(b"-ERR Protocol error: invalid multibulk length\r\n"),
    );
    // Unauthenticated: even a modest bulk is refused before AUTH.
    let mut r = s.raw();
    r.send(b"*2\r\n$4\r\nAUTH\r\n$100000\r\n");
    r.expect(b"-ERR Protocol error: unauthenticated bulk length\r\n");
    r.expect_closed();
    // A line that never ends: cut at the inline limit, not buffered forever.
    let mut r = s.raw_authed();
    let chunk = vec![b'A'; 16 * 1024];
    let mut sent = 0;
    let mut closed = false;
    while sent < 4 * 1024 * 1024 {
        if r.s.write_all(&chunk).is_err() {
            closed = true;
            break;
        }
        sent += chunk.len();
    }
    if !closed {
        r.expect(b"-ERR Protocol error: too big inline request\r\n");
        r.expect_closed();
    }
    assert!(sent <= 4 * 1024 * 1024);
    assert_intact_and_served(&s, &value);
}

/// A negative count to SRANDMEMBER, HRANDFIELD or ZRANDMEMBER repeats
/// members, so one small set and one short command could ask for a reply
/// of any size (Redis builds it). Beyond 2^24 picks it is refused, the
/// server stays up, and counts up to the bound still work.
#[test]
fn random_picks_with_repeats_are_bounded() {
    let s = guarded(|_| {});
    let value = seed(&s);
    let mut c = s.conn();
    let _: i64 = q(&mut c, &["SADD", "s", "a", "b"]);
    let _: i64 = q(&mut c, &["HSET", "h", "f", "v"]);
    let _: i64 = q(&mut c, &["ZADD", "z", "1", "m"]);
    for args in [
        &["SRANDMEMBER", "s", "-16777217"][..],
        &["SRANDMEMBER", "s", "-9223372036854775807"],
        &["HRANDFIELD", "h", "-16777217"],
        &["HRANDFIELD", "h", "-16777217", "WITHVALUES"],
        &["ZRANDMEMBER", "z", "-4611686018427387903", "WITHSCORES"],
    ] {
        let e = redis::cmd(args[0])
            .arg(&args[1..])
            .query::<redis::Value>(&mut c)
            .unwrap_err();
        assert!(
            e.to_string().contains("value is out of range"),
            "{args:?}: {e}"
        );
    }
    let picks: Vec<String> = q(&mut c, &["SRANDMEMBER", "s", "-1000"]);
    assert_eq!(picks.len(), 1000);
    assert!(picks.iter().all(|m| m == "a" || m == "b"));
    // A missing key answers an empty array whatever the count, as in Redis.
    let none: Vec<String> = q(&mut c, &["ZRANDMEMBER", "nokey", "-16777217"]);
    assert!(none.is_empty());
    assert_intact_and_served(&s, &value);
}

/// Opens 1,500 connections. Accepting is asynchronous (connect() returns
/// once the kernel queued it) and a loaded machine may need some seconds.
fn open_many(s: &TestServer) -> Vec<Raw> {
    (0..1500).map(|_| s.raw()).collect()
}

#[test]
fn fifteen_hundred_idle_unauthenticated_connections_are_shed() {
    let s = guarded(|c| c.auth_timeout_secs = 3);
    let value = seed(&s);
    let idle = open_many(&s);
    // Served while they are (or were just) connected.
    let started = Instant::now();
    assert_intact_and_served(&s, &value);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The deadline for authentication closes every one of them.
    assert_eq!(s.wait_security_count("auth_timeout", 1500), 1500);
    assert!(wait_clients_at_most(&s, 1) <= 1);
    for mut r in idle.into_iter().rev().take(20) {
        r.expect_closed();
    }
    assert_intact_and_served(&s, &value);
}

#[test]
fn fifteen_hundred_idle_authenticated_connections_do_not_starve_others() {
    let s = TestServer::start(|c| c.timeout = 120);
    let value = seed(&s);
    let idle = open_many(&s);
    let n = wait_clients_at_least(&s, 1501);
    assert!(n >= 1501, "{n} connected");
    // All held at once, none refused, and a legitimate client is served promptly.
    let started = Instant::now();
    assert_intact_and_served(&s, &value);
    assert!(started.elapsed() < Duration::from_secs(2));
    let info: String = q(&mut s.conn(), &["INFO", "stats"]);
    assert!(info.contains("rejected_connections:0\r\n"), "{info}");
    drop(idle);
    assert!(wait_clients_at_most(&s, 1) <= 1);
    assert_intact_and_served(&s, &value);
}

#[test]
fn slowloris_half_commands_are_cut_by_the_authentication_deadline() {
    let s = guarded(|c| c.auth_timeout_secs = 2);
    let value = seed(&s);
    let mut slow: Vec<Raw> = (0..200).map(|_| s.raw()).collect();
    let half = b"*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$13\r\ncorrect ";
    let started = Instant::now();
    let mut i = 0;
    // One byte per connection at a time, never completing the command.
    while started.elapsed() < Duration::from_secs(6) && i < half.len() {
        for r in slow.iter_mut() {
            let _ = r.s.write_all(&half[i..i + 1]);
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(wait_clients_at_most(&s, 1) <= 1);
    assert!(s.security_count("auth_timeout") >= 200);
    for r in slow.iter_mut().take(10) {
        r.expect_closed();
    }
    assert_intact_and_served(&s, &value);
}

#[test]
fn connection_floods_from_one_source_are_refused_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let s = TestServer::start(|c| {
        c.max_connections_per_source_per_sec = 20;
        c.audit_log = Some(log.clone());
    });
    let value = seed(&s);
    let started = Instant::now();
    let flood: Vec<Raw> = (0..100).map(|_| s.raw_from("127.0.0.9")).collect();
    let mut refused = 0;
    for mut r in flood {
        r.cmd(&["PING"]);
        let line = r.line();
        if line.starts_with("-ERR too many new connections") {
            refused += 1;
        } else {
            assert_eq!(line, "+PONG\r\n");
        }
    }
    if started.elapsed() < Duration::from_millis(900) {
        assert!(refused >= 80, "{refused} refused");
    } else {
        assert!(refused >= 1, "{refused} refused");
    }
    // Counted in full, logged at a bounded rate.
    assert_eq!(s.security_count("connection_rate_limited"), refused);
    let lines = audit_lines(&log, "connection_rate_limited");
    assert!(!lines.is_empty() && lines.len() <= 5, "{}", lines.len());
    assert_eq!(lines[0]["peer"], "127.0.0.9");
    // Other sources are not affected, and the source may come back later.
    assert_intact_and_served(&s, &value);
    std::thread::sleep(Duration::from_millis(1100));
    let mut back = s.raw_from("127.0.0.9");
    back.roundtrip(&["PING"], b"+PONG\r\n");
}

#[test]
fn the_audit_log_keeps_auth_events_and_counters_keep_true_totals() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let s = guarded(|c| {
        c.audit_log = Some(log.clone());
        c.auth_failure_delay_ms = 0;
        c.auth_max_failures = 1000;
    });
    let mut r = s.raw_from("127.0.0.3");
    for _ in 0..30 {
        r.cmd(&["AUTH", "mallory", "guess"]);
        assert!(r.line().starts_with("-WRONGPASS"));
    }
    let mut ok = s.raw_authed();
    ok.roundtrip(&["SET", "k", "v"], b"+OK\r\n");
    ok.cmd(&["DEBUG", "SLEEP", "0"]);
    let refused = ok.line();
    assert!(
        refused.starts_with("-ERR DEBUG is not available"),
        "{refused}"
    );
    ok.send(b"POST / HTTP/1.1\r\n");
    ok.expect_closed();
    let counts = s.security_counts();
    assert_eq!(counts["auth_failure"], 30);
    assert!(counts["auth_success"] >= 1);
    assert_eq!(counts["dangerous_command_refused"], 1);
    assert_eq!(counts["cross_protocol_kill"], 1);
    assert_eq!(counts["client_output_buffer_limit"], 0);
    let failures = audit_lines(&log, "auth_failure");
    assert_eq!(
        failures.len(),
        5,
        "lines are rate-limited per source and kind"
    );
    assert_eq!(failures[0]["user"], "mallory");
    assert_eq!(failures[0]["peer"], "127.0.0.3");
    assert!(failures[0]["ts"].is_string());
    let success = &audit_lines(&log, "auth_success")[0];
    assert_eq!(success["user"], "default");
    assert_eq!(success["peer"], "127.0.0.1");
    assert_eq!(
        audit_lines(&log, "dangerous_command_refused")[0]["command"],
        "DEBUG"
    );
    assert_eq!(audit_lines(&log, "cross_protocol_kill").len(), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn new_limit_keys_parse_and_are_validated() {
    let cfg: redis_guard::store::StoreConfig = toml::from_str(
        r#"
        output_buffer_limit_normal = "64mb"
        output_buffer_limit_pubsub = { hard = "16mb", soft = "4mb", soft_seconds = 30 }
        max_connections_per_source_per_sec = 50
        auth_timeout_secs = 5
        audit_log = "/var/log/redis-guard/audit.log"
        "#,
    )
    .unwrap();
    assert_eq!(
        cfg.output_buffer_limit_normal,
        OutputBufferLimit::hard(ByteSize(64 << 20))
    );
    let pubsub = OutputBufferLimit {
        hard: ByteSize(16 << 20),
        soft: ByteSize(4 << 20),
        soft_seconds: 30,
    };
    assert_eq!(cfg.output_buffer_limit_pubsub, pubsub);
    cfg.validate().unwrap();
    // Redis's spelling and triple are understood too.
    let redis_style: redis_guard::store::StoreConfig = toml::from_str(
        "client_output_buffer_limit_pubsub = \"16mb 4mb 30\"\nclient_output_buffer_limit_normal = \"0 0 0\"\n",
    )
    .unwrap();
    assert_eq!(redis_style.output_buffer_limit_pubsub, pubsub);
    assert_eq!(
        redis_style.output_buffer_limit_normal,
        OutputBufferLimit::default()
    );
    redis_style.validate().unwrap();
    // Secure defaults: a finite limit for normal clients too.
    let d = redis_guard::store::StoreConfig::default();
    assert_eq!(
        d.output_buffer_limit_normal,
        OutputBufferLimit::hard(ByteSize(256 << 20))
    );
    assert_eq!(
        d.output_buffer_limit_pubsub,
        OutputBufferLimit {
            hard: ByteSize(32 << 20),
            soft: ByteSize(8 << 20),
            soft_seconds: 60
        }
    );
    let bad = |f: &dyn Fn(&mut redis_guard::store::StoreConfig)| {
        let mut c = redis_guard::store::StoreConfig::default();
        f(&mut c);
        c.validate().unwrap_err().key
    };
    assert_eq!(
        bad(&|c| c.output_buffer_limit_normal = OutputBufferLimit::hard(ByteSize(1000))),
        "output_buffer_limit_normal"
    );
    assert_eq!(
        bad(&|c| c.output_buffer_limit_pubsub.soft = ByteSize(10)),
        "output_buffer_limit_pubsub"
    );
    assert_eq!(
        bad(&|c| c.audit_log = Some("audit.log".into())),
        "audit_log"
    );
    assert_eq!(
        bad(&|c| c.auth_timeout_secs = u64::MAX),
        "auth_timeout_secs"
    );
}

#[test]
fn noperm_refusals_are_audited_with_command_key_user_and_peer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let s = TestServer::start(|c| {
        c.users = vec![
            user("default", PASS, "on ~* &* +@all"),
            user("reader", "r", "on ~public:* &news +get +publish"),
        ];
        c.audit_log = Some(log.clone());
    });
    let mut r = s.raw_from("127.0.0.4");
    r.roundtrip(&["AUTH", "reader", "r"], b"+OK\r\n");
    r.cmd(&["GET", "secret"]);
    assert!(r.line().starts_with("-NOPERM"));
    r.cmd(&["SET", "public:x", "1"]);
    assert!(r.line().starts_with("-NOPERM"));
    r.cmd(&["PUBLISH", "internal", "1"]);
    assert!(r.line().starts_with("-NOPERM"));
    r.roundtrip(&["GET", "public:x"], b"$-1\r\n");
    let mut admin = s.raw();
    admin.roundtrip(&["AUTH", PASS], b"+OK\r\n");
    let counts_info = {
        admin.cmd(&["INFO", "security"]);
        String::from_utf8_lossy(&admin.read_n(1)).into_owned()
            + &String::from_utf8_lossy(&admin.drain())
    };
    assert!(
        counts_info.contains("security_events_noperm:3\r\n"),
        "{counts_info}"
    );
    let ev = audit_lines(&log, "noperm");
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[0]["command"], "get");
    assert_eq!(ev[0]["key"], "secret");
    assert_eq!(ev[0]["user"], "reader");
    assert_eq!(ev[0]["peer"], "127.0.0.4");
    assert_eq!(ev[1]["command"], "set");
    assert_eq!(ev[2]["command"], "publish");
    assert_eq!(ev[2]["channel"], "internal");
}

#[test]
fn maxclients_refusals_are_counted_and_others_are_served_after() {
    let s = TestServer::start(|c| c.maxclients = 4);
    let value = seed(&s);
    // Open connections until one is refused. The seeding connection may
    // still hold its slot for a moment after the client closed it (the
    // server notices closes asynchronously), so the refusal may come one
    // connection early, never late.
    let mut held: Vec<Raw> = Vec::new();
    loop {
        let mut r = s.raw();
        r.cmd(&["PING"]);
        let line = r.line();
        if line == "-ERR max number of clients reached\r\n" {
            break;
        }
        assert!(!line.is_empty(), "no reply from an accepted connection");
        held.push(r);
        assert!(
            held.len() <= 4,
            "more than maxclients connections were accepted"
        );
    }
    assert!(
        held.len() >= 3,
        "refused with only {} connections",
        held.len()
    );
    drop(held);
    // The slots come back as the server notices the closes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut r = s.raw();
        r.cmd(&["PING"]);
        if r.line() == "+PONG\r\n" {
            break;
        }
        assert!(Instant::now() < deadline, "slots never came back");
        std::thread::sleep(Duration::from_millis(100));
    }
    let refused = s.security_count("connection_refused_maxclients");
    assert!(refused >= 1, "{refused}");
    assert_intact_and_served(&s, &value);
}

#[test]
fn the_daemon_writes_store_events_to_stderr_and_the_audit_log_not_stdout() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[store]\nlisten = [\"127.0.0.1:{port}\"]\ndata_dir = \"{}\"\naudit_log = \"{}\"\nauth_failure_delay_ms = 0\n\
             [[store.users]]\nname = \"default\"\npassword_sha256 = \"{}\"\nrules = \"on ~* &* +@all\"\n",
            dir.path().join("data").display(),
            log.display(),
            redis_guard::store::auth::sha256_hex(PASS.as_bytes()),
        ),
    )
    .unwrap();
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_redis-guard"))
        .args(["store", "--config"])
        .arg(&policy)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut r = loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            break Raw { s };
        }
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(100));
    };
    r.cmd(&["AUTH", "eve", "guess"]);
    assert!(r.line().starts_with("-WRONGPASS"));
    r.roundtrip(&["AUTH", PASS], b"+OK\r\n");
    drop(r);
    // Let the lines land, then stop the daemon and collect its output.
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let mut out = String::new();
    let mut err = String::new();
    daemon
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = daemon.wait();
    let json: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        json.iter()
            .any(|v| v["event"] == "auth_failure" && v["user"] == "eve"),
        "{err}"
    );
    assert!(
        json.iter()
            .any(|v| v["event"] == "auth_success" && v["user"] == "default")
    );
    assert!(
        !out.contains("auth_failure"),
        "store events are not on stdout: {out}"
    );
    assert_eq!(audit_lines(&log, "auth_failure")[0]["peer"], "127.0.0.1");
    assert_eq!(audit_lines(&log, "auth_success").len(), 1);
}

/// The store binary started under `wrapper` (prlimit, setpriv), its stderr
/// collected; returns the child, the address it listens on and its log up
/// to that point.
fn spawn_store_under(wrapper: &[&str], dir: &Path) -> (ChildGuard, std::net::SocketAddr, String) {
    use std::io::BufRead;
    let cfg = dir.join("store.toml");
    std::fs::write(
        &cfg,
        format!(
            "[store]\nlisten = [\"127.0.0.1:0\"]\ndata_dir = \"{}\"\nappendonly = false\n\
             [[store.users]]\nname = \"default\"\nnopass = true\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(wrapper[0])
        .args(&wrapper[1..])
        .arg(env!("CARGO_BIN_EXE_redis-guard"))
        .args(["store", "--config"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("prlimit and setpriv (util-linux)");
    let stderr = child.stderr.take().unwrap();
    // Killed on drop, so a failing assertion leaves no server behind.
    let child = ChildGuard::new(child, "redis-guard store");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut log = String::new();
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            panic!("the store did not start:\n{log}");
        };
        log.push_str(&line);
        log.push('\n');
        if let Some(a) = line.split("store listening addr=").nth(1) {
            let addr = a.split_whitespace().next().unwrap().parse().unwrap();
            return (child, addr, log);
        }
    }
}

/// `Max open files` of a running process: (soft, hard).
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let n = |i| line.split_whitespace().nth(i).unwrap().parse().unwrap();
    (n(3), n(4))
}

/// A service manager's soft limit of 1024 descriptors would stall accept()
/// far below the default maxclients of 10000: the store raises it at start,
/// as Redis does, and when even the hard limit is too low it serves as many
/// clients as fit, refusing the rest with Redis's error instead of leaving
/// them hanging on EMFILE.
#[test]
fn the_open_files_limit_is_raised_for_maxclients_or_maxclients_is_fitted() {
    // Soft 1024 under this process's own hard limit (raising a hard limit
    // takes CAP_SYS_RESOURCE, which a container may not grant).
    let hard = nofile(std::process::id()).1;
    assert!(
        hard >= 10_032,
        "this test needs a hard limit of 10032, have {hard}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (child, _, _) = spawn_store_under(
        &["prlimit", &format!("--nofile=1024:{hard}"), "--"],
        dir.path(),
    );
    let soft = nofile(child.pid()).0;
    drop(child);
    assert!(
        soft >= 10_032,
        "soft open-files limit {soft}, want >= 10032"
    );

    // A hard limit of 200 that cannot be raised (no CAP_SYS_RESOURCE).
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, log) = spawn_store_under(
        &[
            "prlimit",
            "--nofile=200:200",
            "--",
            "setpriv",
            "--bounding-set=-sys_resource",
            "--",
        ],
        dir.path(),
    );
    assert!(log.contains("serving at most 168 clients"), "{log}");
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..190 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"PING\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
        match &buf[..n] {
            b"+PONG\r\n" => held.push(s),
            b"-ERR max number of clients reached\r\n" => refused += 1,
            other => panic!("unexpected reply {:?}", String::from_utf8_lossy(other)),
        }
    }
    drop(child);
    assert_eq!(
        held.len(),
        168,
        "clients served under a 200-descriptor limit"
    );
    assert_eq!(refused, 190 - 168);
}

/// Under systemd's `Type=notify` the store says READY=1 once it listens and
/// STOPPING=1 when it begins to stop, through `$NOTIFY_SOCKET` (a path, or
/// `@name` for the abstract namespace).
#[test]
fn the_service_manager_is_told_when_the_store_is_ready_and_stopping() {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let dir = tempfile::tempdir().unwrap();
    let name = format!("redis-guard-notify-test-{}", std::process::id());
    for (var, sock) in [
        (
            dir.path().join("notify").display().to_string(),
            UnixDatagram::bind(dir.path().join("notify")).unwrap(),
        ),
        (
            format!("@{name}"),
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap(),
        ),
    ] {
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let data = tempfile::tempdir().unwrap();
        let (mut child, addr, _) =
            spawn_store_under(&["env", &format!("NOTIFY_SOCKET={var}")], data.path());
        let mut buf = [0u8; 64];
        let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
        assert_eq!(&buf[..n], b"READY=1", "{var}");
        // Ready means serving.
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.write_all(b"PING\r\n").unwrap();
        let mut pong = [0u8; 7];
        std::io::Read::read_exact(&mut c, &mut pong).unwrap();
        assert_eq!(&pong, b"+PONG\r\n");
        unsafe { libc::kill(child.pid() as i32, libc::SIGTERM) };
        let n = sock.recv(&mut buf).expect("STOPPING=1 within 10 s");
        assert_eq!(&buf[..n], b"STOPPING=1", "{var}");
        assert!(child.terminate(Duration::from_secs(10)).unwrap().success());
    }
}
