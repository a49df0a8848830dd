//! ACL: categories as Redis 7 defines them, key and channel patterns,
//! `%R~`/`%W~`, selectors, the ACL introspection commands and runtime changes.
//! Every refusal is checked for Redis's exact `NOPERM` text, for the data
//! being untouched, and for an allowed client still being served.

mod common;

use std::time::Duration;

use common::*;

fn server(runtime_changes: bool) -> TestServer {
    TestServer::start(|c| {
        c.acl_runtime_changes = runtime_changes;
        c.users = vec![
            user("admin", "adminpw", "on ~* &* +@all"),
            user("reader", "readpw", "on ~* &* +@read"),
            user("app", "apppw", "on ~app:* &* +@all -@dangerous"),
            user(
                "split",
                "splitpw",
                "on %R~ro:* %W~wo:* ~rw:* +@all -@dangerous",
            ),
            user(
                "logger",
                "logpw",
                "on ~app:* +@read (~log:* +rpush +lrange)",
            ),
            user("news", "newspw", "on resetkeys &news.* +@pubsub"),
        ];
    })
}

fn conn_as(s: &TestServer, name: &str, pass: &str) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{name}:{pass}@{}/", s.addr)).expect("client");
    client.get_connection().expect("connect")
}

const NOPERM_CMD: &str = "NOPERM this user has no permissions to run the";
const NOPERM_KEY: &str =
    "NOPERM this user has no permissions to access one of the keys used as arguments";

/// AUTH, HELLO, QUIT and RESET carry Redis's `no-auth` flag: every user may
/// run them whatever its command rules, so a read-only user can still switch
/// user, renegotiate the protocol, reset or leave.
#[test]
fn no_auth_commands_are_open_to_every_user() {
    let s = server(false);
    let mut r = s.raw();
    r.roundtrip(&["AUTH", "reader", "readpw"], b"+OK\r\n");
    r.roundtrip(&["RESET"], b"+RESET\r\n");
    r.roundtrip(&["AUTH", "reader", "readpw"], b"+OK\r\n");
    r.cmd(&["HELLO", "3"]);
    let hello = r.drain();
    assert!(
        hello.starts_with(b"%"),
        "{}",
        String::from_utf8_lossy(&hello)
    );
    r.roundtrip(&["AUTH", "admin", "adminpw"], b"+OK\r\n");
    r.roundtrip(&["AUTH", "reader", "readpw"], b"+OK\r\n");
    r.roundtrip(&["QUIT"], b"+OK\r\n");
    r.expect_closed();
    let mut admin = conn_as(&s, "admin", "adminpw");
    for c in [&["hello"][..], &["auth", "x"], &["quit"], &["reset"]] {
        let mut args = vec!["ACL", "DRYRUN", "reader"];
        args.extend_from_slice(c);
        assert_eq!(q::<String>(&mut admin, &args), "OK");
    }
    // Still refused: everything else outside the rules.
    let mut reader = conn_as(&s, "reader", "readpw");
    assert!(q_err(&mut reader, &["SET", "k", "v"]).starts_with(NOPERM_CMD));
}

#[test]
fn categories_follow_redis() {
    let s = server(false);
    let mut admin = conn_as(&s, "admin", "adminpw");
    q::<()>(&mut admin, &["SET", "k", "v"]);
    let mut reader = conn_as(&s, "reader", "readpw");
    assert_eq!(q::<String>(&mut reader, &["GET", "k"]), "v");
    assert_eq!(
        q_err(&mut reader, &["SET", "k", "evil"]),
        format!("{NOPERM_CMD} 'set' command")
    );
    assert!(q_err(&mut reader, &["FLUSHALL"]).starts_with(NOPERM_CMD));

    // @dangerous holds KEYS, FLUSHALL, FLUSHDB and CLIENT KILL, as in Redis.
    let dangerous: Vec<String> = q(&mut admin, &["ACL", "CAT", "dangerous"]);
    for c in ["keys", "flushall", "flushdb", "client|kill", "config|get"] {
        assert!(dangerous.contains(&c.to_string()), "{c} in {dangerous:?}");
    }
    // Containers are filed by their subcommands, as `ACL CAT` on Redis 7.0.
    for c in ["client", "client|id", "config|help", "memory|stats"] {
        assert!(!dangerous.contains(&c.to_string()), "{c} in {dangerous:?}");
    }
    let read: Vec<String> = q(&mut admin, &["ACL", "CAT", "read"]);
    for c in ["memory|usage", "object|encoding"] {
        assert!(read.contains(&c.to_string()), "{c} in {read:?}");
    }
    for c in ["memory", "memory|stats", "object|help", "object"] {
        assert!(!read.contains(&c.to_string()), "{c} in {read:?}");
    }
    let slow: Vec<String> = q(&mut admin, &["ACL", "CAT", "slow"]);
    for c in ["acl", "memory", "client", "command|info", "pubsub|help"] {
        assert!(slow.contains(&c.to_string()), "{c} in {slow:?}");
    }
    // And rules judge each subcommand by its own categories.
    let mut reader = conn_as(&s, "reader", "readpw");
    assert!(q_err(&mut reader, &["MEMORY", "STATS"]).contains("'memory|stats'"));
    assert!(q_err(&mut reader, &["OBJECT", "HELP"]).contains("'object|help'"));
    let _: Option<i64> = q(&mut reader, &["MEMORY", "USAGE", "nokey"]);
    let _: Option<String> = q(&mut reader, &["OBJECT", "ENCODING", "nokey"]);
    let mut app = conn_as(&s, "app", "apppw");
    q::<()>(&mut app, &["SET", "app:1", "x"]);
    assert_eq!(
        q_err(&mut app, &["KEYS", "*"]),
        format!("{NOPERM_CMD} 'keys' command")
    );
    assert!(q_err(&mut app, &["FLUSHALL"]).starts_with(NOPERM_CMD));
    assert!(q_err(&mut app, &["CLIENT", "KILL", "ID", "1"]).contains("'client|kill'"));
    // The category list and COMMAND INFO agree.
    let cats: Vec<String> = q(&mut admin, &["ACL", "CAT"]);
    assert!(cats.len() == 21 && cats.contains(&"keyspace".into()));
    let read: Vec<String> = q(&mut admin, &["ACL", "CAT", "read"]);
    assert!(read.contains(&"get".into()) && !read.contains(&"set".into()));
    let info = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("get")
        .query::<redis::Value>(&mut admin)
        .unwrap();
    assert!(format!("{info:?}").contains("@read"), "{info:?}");
    assert!(q_err(&mut admin, &["ACL", "CAT", "nosuch"]).contains("Unknown category"));

    // Nothing refused changed the data, and the admin still has everything.
    assert_eq!(q::<String>(&mut admin, &["GET", "k"]), "v");
    assert_eq!(q::<i64>(&mut admin, &["DBSIZE"]), 2);
    let mut keys: Vec<String> = q(&mut admin, &["KEYS", "*"]);
    keys.sort();
    assert_eq!(keys, ["app:1", "k"]);
}

#[test]
fn key_patterns_and_read_write_permissions() {
    let s = server(false);
    let mut admin = conn_as(&s, "admin", "adminpw");
    for k in ["other", "ro:1", "wo:1", "rw:1"] {
        q::<()>(&mut admin, &["SET", k, "orig"]);
    }
    let mut app = conn_as(&s, "app", "apppw");
    q::<()>(&mut app, &["SET", "app:1", "a"]);
    assert_eq!(q_err(&mut app, &["GET", "other"]), NOPERM_KEY);
    assert_eq!(q_err(&mut app, &["DEL", "other"]), NOPERM_KEY);
    // One key outside the patterns refuses the whole command.
    assert_eq!(
        q_err(&mut app, &["MSET", "app:2", "x", "other", "y"]),
        NOPERM_KEY
    );
    assert_eq!(q::<i64>(&mut app, &["EXISTS", "app:2"]), 0);

    let mut split = conn_as(&s, "split", "splitpw");
    assert_eq!(q::<String>(&mut split, &["GET", "ro:1"]), "orig");
    assert_eq!(q_err(&mut split, &["SET", "ro:1", "x"]), NOPERM_KEY);
    q::<()>(&mut split, &["SET", "wo:1", "new"]);
    assert_eq!(q_err(&mut split, &["GET", "wo:1"]), NOPERM_KEY);
    // INCR reads and writes: a write-only pattern is not enough.
    assert_eq!(q_err(&mut split, &["INCR", "wo:1"]), NOPERM_KEY);
    q::<()>(&mut split, &["LPUSH", "wo:list", "a"]);
    // What returns nothing of the value needs neither %R nor %W, as in
    // Redis's key specs: a write-only pattern admits lengths and WATCH.
    assert_eq!(q::<i64>(&mut split, &["LLEN", "wo:list"]), 1);
    assert_eq!(q::<i64>(&mut split, &["STRLEN", "wo:1"]), 3);
    q::<()>(&mut split, &["WATCH", "wo:1"]);
    assert_eq!(
        q_err(&mut split, &["LRANGE", "wo:list", "0", "-1"]),
        NOPERM_KEY
    );
    assert_eq!(q::<i64>(&mut split, &["INCR", "rw:n"]), 1);
    // Copy from a readable key into a writable one; not the other way.
    assert_eq!(q::<i64>(&mut split, &["COPY", "ro:1", "wo:copy"]), 1);
    assert_eq!(q_err(&mut split, &["COPY", "wo:1", "ro:copy"]), NOPERM_KEY);

    assert_eq!(q::<String>(&mut admin, &["GET", "other"]), "orig");
    assert_eq!(q::<String>(&mut admin, &["GET", "ro:1"]), "orig");
    assert_eq!(q::<String>(&mut admin, &["GET", "wo:1"]), "new");
    assert_eq!(q::<String>(&mut admin, &["GET", "wo:copy"]), "orig");
}

#[test]
fn selectors_grant_their_own_commands_on_their_own_keys() {
    let s = server(false);
    let mut admin = conn_as(&s, "admin", "adminpw");
    q::<()>(&mut admin, &["SET", "app:1", "v"]);
    let mut logger = conn_as(&s, "logger", "logpw");
    assert_eq!(q::<String>(&mut logger, &["GET", "app:1"]), "v");
    assert_eq!(q::<i64>(&mut logger, &["RPUSH", "log:1", "line"]), 1);
    assert_eq!(
        q::<Vec<String>>(&mut logger, &["LRANGE", "log:1", "0", "-1"]),
        ["line"]
    );
    // The selector's command on the root's keys, and the root's on the selector's.
    assert_eq!(q_err(&mut logger, &["RPUSH", "app:1", "x"]), NOPERM_KEY);
    assert_eq!(q_err(&mut logger, &["GET", "log:1"]), NOPERM_KEY);
    assert!(q_err(&mut logger, &["SET", "log:2", "x"]).starts_with(NOPERM_CMD));
    let list: Vec<String> = q(&mut admin, &["ACL", "LIST"]);
    let line = list.iter().find(|l| l.starts_with("user logger ")).unwrap();
    assert!(
        line.contains("(~log:* resetchannels -@all +rpush +lrange)"),
        "{line}"
    );
}

#[test]
fn channel_patterns() {
    let s = server(false);
    let mut news = conn_as(&s, "news", "newspw");
    assert_eq!(q::<i64>(&mut news, &["PUBLISH", "news.sport", "goal"]), 0);
    assert_eq!(
        q_err(&mut news, &["PUBLISH", "secrets", "x"]),
        "NOPERM this user has no permissions to access one of the channels used as arguments"
    );
    assert!(q_err(&mut news, &["GET", "k"]).starts_with(NOPERM_CMD));
    // A pattern subscription must be granted literally, not matched.
    let mut raw = s.raw();
    raw.cmd(&["AUTH", "news", "newspw"]);
    raw.expect(b"+OK\r\n");
    raw.cmd(&["PSUBSCRIBE", "n*"]);
    let reply = raw.line();
    assert!(reply.starts_with("-NOPERM"), "{reply}");
    raw.cmd(&["PSUBSCRIBE", "news.*"]);
    raw.expect(b"*3\r\n$10\r\npsubscribe\r\n$6\r\nnews.*\r\n:1\r\n");
}

#[test]
fn introspection_commands() {
    let s = server(false);
    let mut admin = conn_as(&s, "admin", "adminpw");
    assert_eq!(q::<String>(&mut admin, &["ACL", "WHOAMI"]), "admin");
    let users: Vec<String> = q(&mut admin, &["ACL", "USERS"]);
    assert_eq!(users, ["admin", "app", "logger", "news", "reader", "split"]);
    let list: Vec<String> = q(&mut admin, &["ACL", "LIST"]);
    let split = list.iter().find(|l| l.starts_with("user split ")).unwrap();
    assert!(
        split.contains("%R~ro:* %W~wo:* ~rw:*") && split.contains("+@all -@dangerous"),
        "{split}"
    );
    // Passwords appear only as digests.
    assert!(split.contains(&format!(
        "#{}",
        redis_guard::store::auth::sha256_hex(b"splitpw")
    )));
    assert!(!list.iter().any(|l| l.contains("splitpw")));

    let info: redis::Value = q(&mut admin, &["ACL", "GETUSER", "app"]);
    let text = format!("{info:?}");
    for part in [
        "flags",
        "passwords",
        "commands",
        "+@all -@dangerous",
        "keys",
        "~app:*",
        "selectors",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert_eq!(
        q::<redis::Value>(&mut admin, &["ACL", "GETUSER", "ghost"]),
        redis::Value::Nil
    );
    // In RESP3 the flags are a set, as Redis sends them.
    let mut r3 = s.raw();
    r3.cmd(&["HELLO", "3", "AUTH", "admin", "adminpw"]);
    let _ = r3.drain();
    r3.cmd(&["ACL", "GETUSER", "reader"]);
    let reply = String::from_utf8(r3.drain()).unwrap();
    assert!(
        reply.starts_with("%") && reply.contains("$5\r\nflags\r\n~1\r\n$2\r\non\r\n"),
        "{reply}"
    );

    assert_eq!(
        q::<String>(&mut admin, &["ACL", "DRYRUN", "reader", "GET", "x"]),
        "OK"
    );
    assert_eq!(
        q::<String>(&mut admin, &["ACL", "DRYRUN", "reader", "SET", "x", "y"]),
        "This user has no permissions to run the 'set' command"
    );
    assert_eq!(
        q::<String>(&mut admin, &["ACL", "DRYRUN", "app", "GET", "other"]),
        "This user has no permissions to access the 'other' key"
    );
    assert!(q_err(&mut admin, &["ACL", "DRYRUN", "ghost", "GET", "x"]).contains("not found"));
    assert_eq!(
        q::<i64>(&mut admin, &["DBSIZE"]),
        0,
        "DRYRUN must not run anything"
    );

    // Non-admins may ask who they are, not read the user table.
    let mut reader = conn_as(&s, "reader", "readpw");
    assert!(q_err(&mut reader, &["ACL", "WHOAMI"]).starts_with(NOPERM_CMD));
    let mut app = conn_as(&s, "app", "apppw");
    assert_eq!(q::<String>(&mut app, &["ACL", "WHOAMI"]), "app");
    assert_eq!(
        q_err(&mut app, &["ACL", "LIST"]),
        format!("{NOPERM_CMD} 'acl|list' command")
    );
    let pass: String = q(&mut app, &["ACL", "GENPASS"]);
    assert_eq!(pass.len(), 64);
    assert!(q_err(&mut admin, &["ACL", "SAVE"]).contains("policy file"));
}

#[test]
fn acl_log_records_refusals_and_failed_logins() {
    let s = server(false);
    let mut admin = conn_as(&s, "admin", "adminpw");
    let mut app = conn_as(&s, "app", "apppw");
    for _ in 0..3 {
        q_err(&mut app, &["GET", "other"]);
    }
    q_err(&mut app, &["KEYS", "*"]);
    let mut raw = s.raw();
    raw.cmd(&["AUTH", "admin", "wrong"]);
    assert!(raw.line().starts_with("-WRONGPASS"));

    let log: Vec<Vec<redis::Value>> = q(&mut admin, &["ACL", "LOG"]);
    let entry = |i: usize| -> std::collections::HashMap<String, String> {
        let v = &log[i];
        v.chunks(2)
            .map(|kv| {
                let k: String = redis::from_redis_value(&kv[0]).unwrap();
                let val = match &kv[1] {
                    redis::Value::Int(n) => n.to_string(),
                    other => redis::from_redis_value::<String>(other).unwrap_or_default(),
                };
                (k, val)
            })
            .collect()
    };
    assert_eq!(log.len(), 3, "{log:?}");
    let newest = entry(0);
    assert_eq!(newest["reason"], "auth");
    assert_eq!(newest["username"], "admin");
    assert_eq!(
        newest["object"], "AUTH",
        "the command as the client spelled it"
    );
    let keys_refusal = entry(1);
    assert_eq!(
        (
            keys_refusal["reason"].as_str(),
            keys_refusal["object"].as_str()
        ),
        ("command", "keys")
    );
    let key = entry(2);
    assert_eq!(
        (
            key["reason"].as_str(),
            key["object"].as_str(),
            key["count"].as_str()
        ),
        ("key", "other", "3")
    );
    assert_eq!(key["username"], "app");
    assert!(key["client-info"].contains("user=app"));
    assert_eq!(
        q::<Vec<redis::Value>>(&mut admin, &["ACL", "LOG", "1"]).len(),
        1
    );
    // A negative count lists nothing, as on redis-server 7.0.15.
    assert_eq!(
        q::<Vec<redis::Value>>(&mut admin, &["ACL", "LOG", "-1"]).len(),
        0
    );
    assert_eq!(
        q_err(&mut admin, &["ACL", "LOG", "abc"]),
        "ERR value is not an integer or out of range"
    );
    q::<()>(&mut admin, &["ACL", "LOG", "RESET"]);
    assert!(q::<Vec<redis::Value>>(&mut admin, &["ACL", "LOG"]).is_empty());

    // An entry is aged from its latest occurrence, as in Redis.
    q_err(&mut app, &["GET", "other"]);
    std::thread::sleep(Duration::from_millis(1100));
    q_err(&mut app, &["GET", "other"]);
    let log: Vec<Vec<redis::Value>> = q(&mut admin, &["ACL", "LOG"]);
    let field = |name: &str| -> String {
        let kv = log[0]
            .chunks(2)
            .find(|kv| redis::from_redis_value::<String>(&kv[0]).is_ok_and(|k| k == name));
        match &kv.unwrap()[1] {
            redis::Value::Int(n) => n.to_string(),
            other => redis::from_redis_value::<String>(other).unwrap(),
        }
    };
    assert_eq!(field("count"), "2");
    let age: f64 = field("age-seconds").parse().unwrap();
    assert!(age < 1.0, "age-seconds {age}");
}

/// Rules changed between MULTI and EXEC: each queued command runs only if
/// it is still allowed, and the refusal carries Redis's text and an ACL LOG
/// entry in the `multi` context.
#[test]
fn exec_checks_the_rules_again() {
    let s = server(true);
    let mut admin = conn_as(&s, "admin", "adminpw");
    q::<()>(
        &mut admin,
        &["ACL", "SETUSER", "m", "on", ">mpw", "~k*", "&c*", "+@all"],
    );
    let mut m = s.raw();
    m.roundtrip(&["AUTH", "m", "mpw"], b"+OK\r\n");
    m.roundtrip(&["MULTI"], b"+OK\r\n");
    for cmd in [
        &["SET", "k1", "a"][..],
        &["GET", "k1"],
        &["SET", "k2", "b"],
        &["PUBLISH", "c1", "x"],
    ] {
        m.roundtrip(cmd, b"+QUEUED\r\n");
    }
    q::<()>(
        &mut admin,
        &[
            "ACL",
            "SETUSER",
            "m",
            "-get",
            "resetkeys",
            "~k1",
            "resetchannels",
        ],
    );
    m.cmd(&["EXEC"]);
    let prefix = "-NOPERM ACLs rules changed between the moment the transaction was accumulated \
                  and the EXEC call. This command is no longer allowed for the following reason: ";
    let expected = format!(
        "*4\r\n+OK\r\n{prefix}no permission to execute the command or subcommand\r\n\
         {prefix}no permission to touch the specified keys\r\n\
         {prefix}no permission to access one of the channels used as arguments\r\n"
    );
    m.expect(expected.as_bytes());
    assert_eq!(q::<Option<String>>(&mut admin, &["GET", "k2"]), None);
    let log: Vec<Vec<redis::Value>> = q(&mut admin, &["ACL", "LOG", "1"]);
    assert!(format!("{log:?}").contains("multi"), "{log:?}");
}

/// A subscriber whose channel rights are taken away is unsubscribed and
/// disconnected at once, as Redis does: PUBLISH no longer reaches it.
#[test]
fn subscribers_lose_channels_taken_away() {
    let s = server(true);
    let mut admin = conn_as(&s, "admin", "adminpw");
    q::<()>(
        &mut admin,
        &[
            "ACL", "SETUSER", "v", "on", ">vpw", "&ch*", "&keep", "+@all",
        ],
    );
    let mut pat = s.raw();
    pat.roundtrip(&["AUTH", "v", "vpw"], b"+OK\r\n");
    pat.cmd(&["PSUBSCRIBE", "ch*"]);
    let _ = pat.read_n(b"*3\r\n$10\r\npsubscribe\r\n$3\r\nch*\r\n:1\r\n".len());
    let mut chan = s.raw();
    chan.roundtrip(&["AUTH", "v", "vpw"], b"+OK\r\n");
    chan.cmd(&["SUBSCRIBE", "ch1"]);
    let _ = chan.read_n(b"*3\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n:1\r\n".len());
    let mut keep = s.raw();
    keep.roundtrip(&["AUTH", "v", "vpw"], b"+OK\r\n");
    keep.cmd(&["SUBSCRIBE", "keep"]);
    let _ = keep.read_n(b"*3\r\n$9\r\nsubscribe\r\n$4\r\nkeep\r\n:1\r\n".len());
    assert_eq!(q::<i64>(&mut admin, &["PUBLISH", "ch1", "before"]), 2);

    q::<()>(
        &mut admin,
        &["ACL", "SETUSER", "v", "resetchannels", "&keep"],
    );
    assert_eq!(q::<i64>(&mut admin, &["PUBLISH", "ch1", "secret"]), 0);
    pat.expect_closed();
    chan.expect_closed();
    assert_eq!(q::<i64>(&mut admin, &["PUBLISH", "keep", "still"]), 1);
}

/// AUTH is asked for only while `default` needs a password: once an admin
/// makes it `nopass`, a connection that never authenticated is `default`,
/// as on redis-server.
#[test]
fn an_open_default_user_admits_waiting_connections() {
    let s = server(true);
    let mut waiting = s.raw();
    waiting.roundtrip(&["PING"], b"-NOAUTH Authentication required.\r\n");
    let mut admin = conn_as(&s, "admin", "adminpw");
    q::<()>(
        &mut admin,
        &["ACL", "SETUSER", "default", "on", "nopass", "~*", "+@all"],
    );
    waiting.roundtrip(&["PING"], b"+PONG\r\n");
    waiting.roundtrip(&["ACL", "WHOAMI"], b"$7\r\ndefault\r\n");
    q::<()>(
        &mut admin,
        &["ACL", "SETUSER", "default", ">now-a-password"],
    );
    let mut late = s.raw();
    late.roundtrip(&["PING"], b"-NOAUTH Authentication required.\r\n");
}

/// Rules a Redis 7.0 policy may carry: commands this store lacks (they
/// match nothing here), first-argument rules, selectors split over several
/// arguments; and the rules Redis refuses are refused with its texts.
#[test]
fn rules_are_read_as_redis_7_reads_them() {
    let s = server(true);
    let mut admin = conn_as(&s, "admin", "adminpw");
    let setuser = |admin: &mut redis::Connection, rules: &[&str]| {
        let mut args = vec!["ACL", "SETUSER", "r"];
        args.extend_from_slice(rules);
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query::<()>(admin).map_err(|e| error_text(&e))
    };
    setuser(
        &mut admin,
        &[
            "on", ">rpw", "~*", "+@all", "-sort", "-xadd", "-pfadd", "-setbit",
        ],
    )
    .unwrap();
    setuser(
        &mut admin,
        &["reset", "on", ">rpw", "~*", "-@all", "+select|1", "+GET"],
    )
    .unwrap();
    let mut r = conn_as(&s, "r", "rpw");
    q::<()>(&mut r, &["SELECT", "1"]);
    assert!(q_err(&mut r, &["SELECT", "2"]).starts_with(NOPERM_CMD));
    assert_eq!(q::<Option<String>>(&mut r, &["GET", "k"]), None);
    // A selector sent as several arguments is one rule.
    setuser(&mut admin, &["(~sel:*", "+set)"]).unwrap();
    q::<()>(&mut r, &["SET", "sel:1", "v"]);
    assert_eq!(
        setuser(&mut admin, &["(~x"]).unwrap_err(),
        "ERR Unmatched parenthesis in acl selector starting at '(~x'."
    );
    // ACL LIST writes rules the way Redis 7.0 does.
    setuser(&mut admin, &["reset", "on", "~a*", "&c*", "+get"]).unwrap();
    setuser(&mut admin, &["(~x*", "&y*", "+get)"]).unwrap();
    let list: Vec<String> = q(&mut admin, &["ACL", "LIST"]);
    let line = list.iter().find(|l| l.starts_with("user r ")).unwrap();
    assert_eq!(
        line,
        "user r on sanitize-payload ~a* resetchannels &c* -@all +get (~x* resetchannels &y* -@all +get)"
    );
    setuser(&mut admin, &["reset"]).unwrap();
    let list: Vec<String> = q(&mut admin, &["ACL", "LIST"]);
    assert!(
        list.contains(&"user r off sanitize-payload resetchannels -@all".to_string()),
        "{list:?}"
    );
    assert_eq!(
        setuser(&mut admin, &["allkeys", "~a"]).unwrap_err(),
        "ERR Error in ACL SETUSER modifier '~a': Adding a pattern after the * pattern (or the \
         'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start \
         with an empty list of patterns"
    );
    assert_eq!(
        q_err(&mut admin, &["ACL", "CAT", "@read"]),
        "ERR Unknown category '@read'"
    );
    for (rule, why) in [
        ("%RWR~x", "Syntax error"),
        ("~a b", "Syntax error"),
        ("+config|nosuch", "Unknown command or category name in ACL"),
        ("-select|0", "Unknown command or category name in ACL"),
        ("+get|x|y", "Unknown command or category name in ACL"),
        (
            "+client|id|x",
            "Allowing first-arg of a subcommand is not supported",
        ),
    ] {
        assert_eq!(
            setuser(&mut admin, &[rule]).unwrap_err(),
            format!("ERR Error in ACL SETUSER modifier '{rule}': {why}")
        );
    }
}

#[test]
fn runtime_changes_are_off_by_default() {
    let s = server(false);
    let mut admin = conn_as(&s, "admin", "adminpw");
    let e = q_err(
        &mut admin,
        &["ACL", "SETUSER", "eve", "on", ">pw", "+@all", "~*"],
    );
    assert!(e.contains("acl_runtime_changes"), "{e}");
    assert!(q_err(&mut admin, &["ACL", "DELUSER", "reader"]).contains("acl_runtime_changes"));
    let users: Vec<String> = q(&mut admin, &["ACL", "USERS"]);
    assert!(!users.contains(&"eve".into()) && users.contains(&"reader".into()));
    // The reader still works.
    let mut reader = conn_as(&s, "reader", "readpw");
    assert_eq!(q::<Option<String>>(&mut reader, &["GET", "nothing"]), None);
}

#[test]
fn runtime_changes_when_enabled() {
    let s = server(true);
    let mut admin = conn_as(&s, "admin", "adminpw");
    // Only @admin users may change users.
    let mut app = conn_as(&s, "app", "apppw");
    assert_eq!(
        q_err(&mut app, &["ACL", "SETUSER", "app", "+@all", "~*"]),
        format!("{NOPERM_CMD} 'acl|setuser' command")
    );

    q::<()>(
        &mut admin,
        &[
            "ACL", "SETUSER", "eve", "on", ">evepw", "~eve:*", "+@read", "+set",
        ],
    );
    let mut eve = conn_as(&s, "eve", "evepw");
    q::<()>(&mut eve, &["SET", "eve:1", "x"]);
    assert_eq!(q_err(&mut eve, &["SET", "other", "x"]), NOPERM_KEY);
    assert!(q_err(&mut eve, &["DEL", "eve:1"]).starts_with(NOPERM_CMD));

    // A change applies to live connections at their next command.
    q::<()>(&mut admin, &["ACL", "SETUSER", "eve", "-set"]);
    assert!(q_err(&mut eve, &["SET", "eve:2", "x"]).starts_with(NOPERM_CMD));
    assert_eq!(q::<String>(&mut eve, &["GET", "eve:1"]), "x");

    // A bad rule changes nothing at all.
    let e = q_err(&mut admin, &["ACL", "SETUSER", "eve", "+set", "+@nosuch"]);
    assert!(e.contains("Unknown command or category"), "{e}");
    assert!(q_err(&mut eve, &["SET", "eve:2", "x"]).starts_with(NOPERM_CMD));

    // Switching a user off, or deleting it, ends its sessions.
    let mut raw = s.raw();
    raw.cmd(&["AUTH", "eve", "evepw"]);
    raw.expect(b"+OK\r\n");
    assert_eq!(q::<i64>(&mut admin, &["ACL", "DELUSER", "eve", "ghost"]), 1);
    raw.s
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    raw.expect_closed();
    assert!(
        redis::Client::open(format!("redis://eve:evepw@{}/", s.addr))
            .unwrap()
            .get_connection()
            .is_err()
    );
    assert!(q_err(&mut admin, &["ACL", "DELUSER", "default"]).contains("cannot be removed"));
    // The data the user wrote stays.
    assert_eq!(q::<String>(&mut admin, &["GET", "eve:1"]), "x");
}

#[test]
fn policy_rules_are_validated_and_never_carry_passwords() {
    for (rules, needle) in [
        ("on >plaintext +@all ~*", "password_sha256"),
        ("on nopass +@all ~*", "nopass"),
        ("on +@nosuch ~*", "Unknown command or category"),
        ("on +nosuchcmd ~*", "Unknown command or category"),
        ("on (~a +get", "Unmatched"),
    ] {
        let cfg = redis_guard::store::StoreConfig {
            users: vec![user("u", "pw", rules)],
            ..Default::default()
        };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("users[0].rules") && e.contains(needle),
            "{rules}: {e}"
        );
    }
    // Refused-by-design commands may still be named, so Redis policies port over.
    let cfg = redis_guard::store::StoreConfig {
        users: vec![user("u", "pw", "on ~* +@all -debug -flushall -keys")],
        ..Default::default()
    };
    cfg.validate().unwrap();
}

#[test]
fn redis_cli_speaks_acl() {
    let s = server(false);
    let out = std::process::Command::new(redis_cli())
        .args(["-h", "127.0.0.1", "-p", &s.port().to_string()])
        .args(["--user", "admin", "--pass", "adminpw", "--no-auth-warning"])
        .args(["ACL", "WHOAMI"])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "admin");
    let out = std::process::Command::new(redis_cli())
        .args(["-h", "127.0.0.1", "-p", &s.port().to_string()])
        .args(["--user", "reader", "--pass", "readpw", "--no-auth-warning"])
        .args(["SET", "k", "v"])
        .output()
        .expect("redis-cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NOPERM"), "{text}");
}

#[test]
fn monitor_is_dangerous_and_never_shows_passwords() {
    let s = server(false);
    let mut app = conn_as(&s, "app", "apppw");
    assert_eq!(
        q_err(&mut app, &["MONITOR"]),
        format!("{NOPERM_CMD} 'monitor' command")
    );
    let mut mon = s.raw();
    mon.roundtrip(&["AUTH", "admin", "adminpw"], b"+OK\r\n");
    mon.roundtrip(&["MONITOR"], b"+OK\r\n");
    let mut other = s.raw();
    other.roundtrip(&["AUTH", "app", "apppw"], b"+OK\r\n");
    other.roundtrip(&["SET", "app:1", "a\"b\n"], b"+OK\r\n");
    other.cmd(&["HELLO", "2", "AUTH", "app", "apppw"]);
    // Redis feeds the arguments as the client sent them, so match without case.
    let lines: Vec<String> = (0..3)
        .map(|_| mon.line().trim_end().to_ascii_lowercase())
        .collect();
    let all = lines.join("\n");
    assert!(lines.iter().all(|l| l.starts_with('+')), "{all}");
    assert!(
        lines[0].ends_with("\"auth\" \"(redacted)\" \"(redacted)\""),
        "{all}"
    );
    assert!(
        lines[1].ends_with("\"set\" \"app:1\" \"a\\\"b\\n\""),
        "{all}"
    );
    assert!(
        lines[2].contains("\"hello\" \"2\" \"auth\" \"(redacted)\""),
        "{all}"
    );
    assert!(!all.contains("apppw"), "{all}");
    // Administrative subcommands stay out of the feed, a client's own
    // CLIENT calls do not (Redis judges the subcommand).
    let mut admin = s.raw();
    admin.roundtrip(&["AUTH", "admin", "adminpw"], b"+OK\r\n");
    admin.roundtrip(&["ACL", "LOG", "RESET"], b"+OK\r\n");
    admin.roundtrip(&["CLIENT", "SETNAME", "watched"], b"+OK\r\n");
    let next = mon.line().trim_end().to_ascii_lowercase();
    assert!(next.contains("\"auth\" \"(redacted)\""), "{next}");
    let next = mon.line().trim_end().to_ascii_lowercase();
    assert!(
        next.ends_with("\"client\" \"setname\" \"watched\""),
        "{next}"
    );
}
