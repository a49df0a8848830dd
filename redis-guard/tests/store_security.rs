//! The store's own cross-protocol guard, the layer behind the XDP one:
//! `POST` or `Host:` as a command closes the connection at once, and nothing
//! after it in that connection's buffer runs. Then password guessing: the
//! per-reply failure delay and per-source bans.
//!
//! Every test client is on loopback, so attackers connect from 127.0.0.2
//! and legitimate clients from 127.0.0.1: a ban must hit only the former.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{TestServer, user};
use redis_guard::store::StoreConfig;

#[test]
fn post_closes_the_connection_before_anything_after_it_runs() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    r.send(b"POST / HTTP/1.1\r\nContent-Type: text/plain\r\n\r\nSET pwned 1\r\nFLUSHALL\r\n");
    r.expect_closed();
    let mut other = s.raw_authed();
    other.roundtrip(&["EXISTS", "pwned"], b":0\r\n");
}

#[test]
fn host_header_mid_stream_closes_too() {
    let s = TestServer::start(|_| {});
    let mut setup = s.raw_authed();
    setup.roundtrip(&["SET", "keep", "me"], b"+OK\r\n");
    let mut r = s.raw_authed();
    r.send(b"PING\r\nhOsT: victim\r\nDEL keep\r\n");
    r.expect(b"+PONG\r\n");
    r.expect_closed();
    setup.roundtrip(&["GET", "keep"], b"$2\r\nme\r\n");
}

#[test]
fn before_authentication_as_well() {
    let s = TestServer::with_password("s3cret");
    let mut r = s.raw();
    r.send(b"POST /x HTTP/1.1\r\n");
    r.expect_closed();
}

#[test]
fn keys_and_values_named_post_are_fine() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    r.roundtrip(&["SET", "post", "Host:"], b"+OK\r\n");
    r.roundtrip(&["GET", "post"], b"$5\r\nHost:\r\n");
}

const PASS: &str = "s3cret";
const ATTACKER: &str = "127.0.0.2";
const WRONGPASS: &[u8] = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const BANNED: &[u8] =
    b"-ERR too many authentication failures from this address; try again later\r\n";

/// A password-protected store with fast bans: `max` failures, `ban` seconds, no delay.
fn guarded(max: u32, ban: u64, delay_ms: u64) -> TestServer {
    let mut s = TestServer::start(|c| {
        c.users = vec![user("default", PASS, "on ~* &* +@all")];
        c.auth_max_failures = max;
        c.auth_failure_window_secs = 60;
        c.auth_ban_secs = ban;
        c.auth_failure_delay_ms = delay_ms;
    });
    s.password = Some(("default".into(), PASS.into()));
    s
}

/// The data written before the attack is still there and 127.0.0.1 still gets in.
fn assert_intact_and_served(s: &TestServer) {
    let mut legit = s.raw_authed();
    legit.roundtrip(&["GET", "precious"], b"$4\r\ndata\r\n");
    legit.roundtrip(&["DBSIZE"], b":1\r\n");
}

fn assert_refused(s: &TestServer) {
    let mut r = s.raw_from(ATTACKER);
    r.expect(BANNED);
    r.expect_closed();
}

#[test]
fn brute_force_gets_the_source_banned_while_others_are_served() {
    let s = guarded(3, 60, 0);
    s.raw_authed()
        .roundtrip(&["SET", "precious", "data"], b"+OK\r\n");
    let mut a = s.raw_from(ATTACKER);
    a.roundtrip(&["AUTH", "guess1"], WRONGPASS);
    a.roundtrip(&["AUTH", "default", "guess2"], WRONGPASS);
    a.roundtrip(
        &["GET", "precious"],
        b"-NOAUTH Authentication required.\r\n",
    );
    // The failure that reaches the limit is answered, then its connection closes.
    a.roundtrip(&["HELLO", "3", "AUTH", "default", "guess3"], WRONGPASS);
    a.expect_closed();
    // New connections from the source are refused, even with the right password.
    assert_refused(&s);
    let mut r = s.raw_from(ATTACKER);
    r.cmd(&["AUTH", PASS]);
    r.expect(BANNED);
    r.expect_closed();
    assert_intact_and_served(&s);
}

#[test]
fn pipelined_guesses_each_count_and_the_rest_never_run() {
    let s = guarded(3, 60, 0);
    s.raw_authed()
        .roundtrip(&["SET", "precious", "data"], b"+OK\r\n");
    let mut a = s.raw_from(ATTACKER);
    let mut batch = Vec::new();
    for i in 0..20 {
        let guess = format!("guess{i}");
        batch.extend_from_slice(
            format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{guess}\r\n", guess.len()).as_bytes(),
        );
    }
    // Were the password among later guesses, it would never be tried.
    batch.extend_from_slice(format!("AUTH {PASS}\r\nFLUSHALL\r\n").as_bytes());
    a.send(&batch);
    a.expect(&WRONGPASS.repeat(3));
    a.expect_closed();
    assert_refused(&s);
    assert_intact_and_served(&s);
}

#[test]
fn an_open_connection_of_a_banned_source_is_closed_on_its_next_failure() {
    let s = guarded(2, 60, 0);
    s.raw_authed()
        .roundtrip(&["SET", "precious", "data"], b"+OK\r\n");
    let mut early = s.raw_from(ATTACKER);
    let mut a = s.raw_from(ATTACKER);
    a.roundtrip(&["AUTH", "x"], WRONGPASS);
    a.roundtrip(&["AUTH", "y"], WRONGPASS);
    a.expect_closed();
    early.roundtrip(&["AUTH", "z"], WRONGPASS);
    early.expect_closed();
    assert_intact_and_served(&s);
}

#[test]
fn failure_delay_holds_back_a_wrong_password_reply_only() {
    let delay = Duration::from_millis(300);
    let s = guarded(100, 60, delay.as_millis() as u64);
    s.raw_authed()
        .roundtrip(&["SET", "precious", "data"], b"+OK\r\n");
    let mut a = s.raw_from(ATTACKER);
    let t = Instant::now();
    a.roundtrip(&["AUTH", "wrong"], WRONGPASS);
    assert!(
        t.elapsed() >= delay,
        "wrong AUTH answered after {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    a.roundtrip(&["HELLO", "2", "AUTH", "default", "wrong"], WRONGPASS);
    assert!(
        t.elapsed() >= delay,
        "wrong HELLO AUTH answered after {:?}",
        t.elapsed()
    );

    // Pipelined guesses each wait: no sharing one delay.
    let t = Instant::now();
    a.send(b"AUTH w1\r\nAUTH w2\r\nAUTH w3\r\n");
    a.expect(&WRONGPASS.repeat(3));
    assert!(
        t.elapsed() >= delay * 3,
        "3 guesses answered after {:?}",
        t.elapsed()
    );

    // While a guess waits, other clients are served at once.
    let mut legit = s.raw_authed();
    a.cmd(&["AUTH", "wrong"]);
    let t = Instant::now();
    legit.roundtrip(&["GET", "precious"], b"$4\r\ndata\r\n");
    assert!(t.elapsed() < delay, "other client waited {:?}", t.elapsed());
    a.expect(WRONGPASS);

    let mut ok = s.raw();
    let t = Instant::now();
    ok.roundtrip(&["AUTH", PASS], b"+OK\r\n");
    assert!(
        t.elapsed() < delay,
        "right AUTH answered after {:?}",
        t.elapsed()
    );
    assert_intact_and_served(&s);
}

#[test]
fn the_ban_ends_after_auth_ban_secs() {
    let s = guarded(2, 1, 0);
    s.raw_authed()
        .roundtrip(&["SET", "precious", "data"], b"+OK\r\n");
    let mut a = s.raw_from(ATTACKER);
    a.roundtrip(&["AUTH", "x"], WRONGPASS);
    a.roundtrip(&["AUTH", "y"], WRONGPASS);
    a.expect_closed();
    assert_refused(&s);
    std::thread::sleep(Duration::from_millis(1200));
    let mut back = s.raw_from(ATTACKER);
    back.roundtrip(&["AUTH", PASS], b"+OK\r\n");
    back.roundtrip(&["GET", "precious"], b"$4\r\ndata\r\n");
    assert_intact_and_served(&s);
}

#[test]
fn ban_events_reach_a_subscriber() {
    let mut s = guarded(2, 60, 0);
    s.raw_authed()
        .roundtrip(&["SET", "precious", "data"], b"+OK\r\n");
    assert!(s.bans.try_recv().is_err(), "no ban yet");
    let mut a = s.raw_from(ATTACKER);
    a.roundtrip(&["AUTH", "x"], WRONGPASS);
    a.roundtrip(&["AUTH", "y"], WRONGPASS);
    a.expect_closed();
    let ev = s.bans.try_recv().expect("a ban event");
    assert_eq!(ev.addr, ATTACKER.parse::<std::net::IpAddr>().unwrap());
    assert_eq!(ev.failures, 2);
    let left = ev
        .until
        .duration_since(SystemTime::now())
        .expect("ban in the future");
    assert!(
        left > Duration::from_secs(50) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    assert!(s.bans.try_recv().is_err(), "one ban, one event");
    assert_refused(&s);
    assert_intact_and_served(&s);
}

#[test]
fn auth_limit_settings_are_validated_by_key() {
    let c = StoreConfig::default();
    assert_eq!(
        (
            c.auth_failure_delay_ms,
            c.auth_max_failures,
            c.auth_failure_window_secs,
            c.auth_ban_secs
        ),
        (200, 10, 60, 300)
    );
    let parsed: StoreConfig = toml::from_str(
        "auth_failure_delay_ms = 50\nauth_max_failures = 4\nauth_failure_window_secs = 30\nauth_ban_secs = 600\n",
    )
    .unwrap();
    assert_eq!(
        (
            parsed.auth_failure_delay_ms,
            parsed.auth_max_failures,
            parsed.auth_failure_window_secs,
            parsed.auth_ban_secs
        ),
        (50, 4, 30, 600)
    );
    parsed.validate().unwrap();
    type Breaker = fn(&mut StoreConfig);
    let cases: [(&str, Breaker); 5] = [
        ("auth_max_failures", |c| c.auth_max_failures = 0),
        ("auth_failure_window_secs", |c| {
            c.auth_failure_window_secs = 0
        }),
        ("auth_ban_secs", |c| c.auth_ban_secs = 0),
        ("auth_ban_secs", |c| c.auth_ban_secs = u64::MAX),
        ("auth_failure_delay_ms", |c| {
            c.auth_failure_delay_ms = u64::MAX
        }),
    ];
    for (key, break_it) in cases {
        let mut c = StoreConfig::default();
        break_it(&mut c);
        let e = c.validate().expect_err(key);
        assert_eq!(e.key, key);
        assert!(e.to_string().starts_with(&format!("store.{key}: ")), "{e}");
    }
}

/// The reference documents' file-write and code-load chain, and its
/// relatives: each is refused with a clear error for every user, the
/// connection stays usable and the data stays intact.
#[test]
fn dangerous_commands_are_refused_clearly() {
    let s = TestServer::start(|_| {});
    let mut r = s.raw_authed();
    r.roundtrip(&["SET", "precious", "data"], b"+OK\r\n");
    for cmd in [
        &["CONFIG", "SET", "dir", "/tmp"][..],
        &["config", "set", "dbfilename", "shell.so"],
        &["CONFIG", "REWRITE"],
        &["MODULE", "LOAD", "/tmp/shell.so"],
        &["DEBUG", "SLEEP", "0"],
        &["EVAL", "return 1", "0"],
        &["SCRIPT", "LOAD", "return 1"],
        &["FUNCTION", "LIST"],
        &["SHUTDOWN", "NOSAVE"],
        &["SLAVEOF", "192.0.2.1", "6379"],
        &["REPLICAOF", "192.0.2.1", "6379"],
        &["MIGRATE", "192.0.2.1", "6379", "precious", "0", "1000"],
        &["SYNC"],
        &["PSYNC", "?", "-1"],
    ] {
        r.cmd(cmd);
        let line = r.line();
        assert!(
            line.starts_with("-ERR ") && line.contains("is not available in redis-guard"),
            "{cmd:?} -> {line}"
        );
    }
    r.roundtrip(&["GET", "precious"], b"$4\r\ndata\r\n");
    // Read-only CONFIG GET stays (redis-benchmark and clients ask for it).
    r.roundtrip(
        &["CONFIG", "GET", "maxmemory"],
        b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n",
    );
    // Inside MULTI a refused command aborts the transaction like an unknown one.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.cmd(&["CONFIG", "SET", "dir", "/tmp"]);
    assert!(r.line().starts_with("-ERR "));
    r.roundtrip(&["SET", "precious", "gone"], b"+QUEUED\r\n");
    r.cmd(&["EXEC"]);
    assert!(r.line().starts_with("-EXECABORT"));
    r.roundtrip(&["GET", "precious"], b"$4\r\ndata\r\n");
}
