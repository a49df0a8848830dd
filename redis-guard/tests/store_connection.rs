//! Connection and server commands, authentication, ACL basics.

mod common;

use common::{TestServer, q, q_err, user};
use redis::Value;

#[test]
fn ping_echo_select_swapdb() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(q::<String>(&mut c, &["PING", "hi"]), "hi");
    assert_eq!(q::<String>(&mut c, &["ECHO", "x y"]), "x y");
    assert_eq!(
        q_err(&mut c, &["PING", "a", "b"]),
        "ERR wrong number of arguments for 'ping' command"
    );
    let _: () = q(&mut c, &["SET", "k", "db0"]);
    let _: () = q(&mut c, &["SELECT", "1"]);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), None);
    let _: () = q(&mut c, &["SET", "k", "db1"]);
    assert_eq!(
        q_err(&mut c, &["SELECT", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        q_err(&mut c, &["SELECT", "x"]),
        "ERR value is not an integer or out of range"
    );
    let _: () = q(&mut c, &["SWAPDB", "0", "1"]);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "db0");
    let _: () = q(&mut c, &["SELECT", "0"]);
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "db1");
    assert_eq!(
        q_err(&mut c, &["SWAPDB", "0", "99"]),
        "ERR DB index is out of range"
    );
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 1);
    let t: Vec<String> = q(&mut c, &["TIME"]);
    assert_eq!(t.len(), 2);
    assert!(q::<i64>(&mut c, &["LASTSAVE"]) > 0);
    let _: () = q(&mut c, &["FLUSHALL", "ASYNC"]);
    let _: () = q(&mut c, &["FLUSHDB", "SYNC"]);
    assert_eq!(q_err(&mut c, &["FLUSHDB", "NOW"]), "ERR syntax error");
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    let role: Vec<Value> = q(&mut c, &["ROLE"]);
    assert_eq!(role[0], Value::BulkString(b"master".to_vec()));
}

#[test]
fn unknown_and_dangerous_commands_do_not_exist() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(
        q_err(&mut c, &["FOO", "a", "b"]),
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    for cmd in [
        "DEBUG",
        "EVAL",
        "SCRIPT",
        "FUNCTION",
        "MODULE",
        "SHUTDOWN",
        "REPLICAOF",
        "SLAVEOF",
        "MIGRATE",
        "SYNC",
        "PSYNC",
    ] {
        // Refused by name (with an audit event), not mistaken for a typo.
        let e = q_err(&mut c, &[cmd, "x"]);
        assert!(e.contains("is not available in redis-guard"), "{cmd}: {e}");
    }
    let e = q_err(&mut c, &["CONFIG", "SET", "dir", "/tmp"]);
    assert!(e.contains("is not available in redis-guard"), "{e}");
    assert_eq!(
        q_err(&mut c, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
}

#[test]
fn auth_required_and_both_forms() {
    let s = TestServer::start(|cfg| {
        cfg.users = vec![
            user("default", "defpass", "on ~* &* +@all"),
            user("alice", "alicepass", "on ~* &* +@all"),
            user("bob", "bobpass", "off ~* +@all"),
        ]
    });
    let mut r = s.raw();
    r.roundtrip(&["GET", "x"], b"-NOAUTH Authentication required.\r\n");
    r.roundtrip(&["FOO"], b"-NOAUTH Authentication required.\r\n");
    r.roundtrip(
        &["AUTH", "nope"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    r.roundtrip(
        &["AUTH", "bob", "bobpass"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    r.roundtrip(
        &["AUTH", "ghost", "x"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    r.roundtrip(&["AUTH", "defpass"], b"+OK\r\n");
    r.roundtrip(&["PING"], b"+PONG\r\n");
    r.roundtrip(&["AUTH", "alice", "alicepass"], b"+OK\r\n");
    r.roundtrip(&["ACL", "WHOAMI"], b"$5\r\nalice\r\n");
    r.roundtrip(&["CLIENT", "SETNAME", "me"], b"+OK\r\n");
    r.cmd(&["CLIENT", "INFO"]);
    let info = String::from_utf8(r.drain()).unwrap();
    assert!(info.contains("user=alice"), "{info}");
    assert!(info.contains("name=me"), "{info}");
    // RESET drops authentication again.
    r.roundtrip(&["RESET"], b"+RESET\r\n");
    r.roundtrip(&["GET", "x"], b"-NOAUTH Authentication required.\r\n");
    r.roundtrip(&["QUIT"], b"+OK\r\n");
    r.expect_closed();

    // redis-rs with username in the URL (AUTH user pass).
    let url = format!("redis://alice:alicepass@{}/", s.addr);
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    // redis-rs with password only (AUTH pass).
    let url = format!("redis://:defpass@{}/", s.addr);
    let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    let bad = format!("redis://:wrong@{}/", s.addr);
    assert!(redis::Client::open(bad).unwrap().get_connection().is_err());
}

#[test]
fn hello_auth_setname_and_noauth_text() {
    let s = TestServer::with_password("pw");
    let mut r = s.raw();
    r.cmd(&["HELLO", "3"]);
    r.expect(b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n");
    r.roundtrip(
        &["HELLO", "3", "AUTH", "default", "bad"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    r.roundtrip(
        &["HELLO", "4"],
        b"-NOPROTO unsupported protocol version\r\n",
    );
    // A bad name fails the whole command before it authenticates, as in
    // Redis: the name's own error, and still no access.
    let bad_name = b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n";
    r.roundtrip(&["HELLO", "2", "SETNAME", "a b"], bad_name);
    r.roundtrip(
        &["HELLO", "3", "SETNAME", "a b", "AUTH", "default", "pw"],
        bad_name,
    );
    r.roundtrip(&["PING"], b"-NOAUTH Authentication required.\r\n");
    r.cmd(&["HELLO", "3", "AUTH", "default", "pw", "SETNAME", "cli1"]);
    let reply = String::from_utf8(r.drain()).unwrap();
    assert!(reply.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"), "{reply}");
    r.roundtrip(&["CLIENT", "GETNAME"], b"$4\r\ncli1\r\n");
    r.roundtrip(&["GET", "missing"], b"_\r\n");
    r.roundtrip(&["HELLO", "2"], b"");
    let reply = String::from_utf8(r.drain()).unwrap();
    assert!(reply.starts_with("*14\r\n"), "{reply}");
    r.roundtrip(&["GET", "missing"], b"$-1\r\n");
}

#[test]
fn nopass_default_logs_in_automatically() {
    let s = TestServer::start(|cfg| {
        cfg.users = vec![common::user("admin", "x", "on ~* +@all"), {
            let mut u = redis_guard::store::config::UserConfig {
                name: "default".into(),
                nopass: true,
                rules: "on ~* &* +@all".into(),
                ..Default::default()
            };
            u.rules = "on ~* &* +@all".into();
            u
        }]
    });
    let mut r = s.raw();
    r.roundtrip(&["PING"], b"+PONG\r\n");
    r.roundtrip(
        &["AUTH", "whatever"],
        b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n",
    );
    r.roundtrip(&["AUTH", "admin", "x"], b"+OK\r\n");
}

#[test]
fn password_file_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "filepass\n").unwrap();
    // SAFETY: test-only variable with a unique name, set before the server starts.
    unsafe { std::env::set_var("RG_STORE_TEST_PW", "envpass") };
    let f2 = f.clone();
    let s = TestServer::start(move |cfg| {
        cfg.users = vec![
            redis_guard::store::config::UserConfig {
                name: "default".into(),
                password_file: Some(f2),
                ..Default::default()
            },
            redis_guard::store::config::UserConfig {
                name: "envuser".into(),
                password_env: Some("RG_STORE_TEST_PW".into()),
                ..Default::default()
            },
        ]
    });
    let mut r = s.raw();
    r.roundtrip(&["AUTH", "filepass"], b"+OK\r\n");
    r.roundtrip(&["AUTH", "envuser", "envpass"], b"+OK\r\n");
    r.roundtrip(
        &["AUTH", "envuser", "filepass"],
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
}

#[test]
fn acl_command_and_key_restrictions() {
    let s = TestServer::start(|cfg| {
        cfg.users = vec![
            user("default", "root", "on ~* &* +@all"),
            user("reader", "r", "on ~app:* +@read +@transaction -@dangerous"),
        ]
    });
    let mut r = s.raw();
    r.roundtrip(&["AUTH", "reader", "r"], b"+OK\r\n");
    r.roundtrip(&["GET", "app:1"], b"$-1\r\n");
    r.roundtrip(
        &["SET", "app:1", "x"],
        b"-NOPERM this user has no permissions to run the 'set' command\r\n",
    );
    r.roundtrip(
        &["GET", "other"],
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n",
    );
    r.roundtrip(
        &["KEYS", "*"],
        b"-NOPERM this user has no permissions to run the 'keys' command\r\n",
    );
    // A refused command inside MULTI aborts the transaction.
    r.roundtrip(&["MULTI"], b"+OK\r\n");
    r.roundtrip(&["GET", "app:1"], b"+QUEUED\r\n");
    r.roundtrip(
        &["SET", "app:1", "x"],
        b"-NOPERM this user has no permissions to run the 'set' command\r\n",
    );
    r.roundtrip(
        &["EXEC"],
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
}

#[test]
fn client_subcommands() {
    let s = TestServer::start(|_| {});
    let mut a = s.conn();
    let mut b = s.conn();
    let id_b: i64 = q(&mut b, &["CLIENT", "ID"]);
    let id_a: i64 = q(&mut a, &["CLIENT", "ID"]);
    assert_ne!(id_a, id_b);
    assert_eq!(q::<Option<String>>(&mut a, &["CLIENT", "GETNAME"]), None);
    let _: () = q(&mut a, &["CLIENT", "SETNAME", "alpha"]);
    assert_eq!(q::<String>(&mut a, &["CLIENT", "GETNAME"]), "alpha");
    assert_eq!(
        q_err(&mut a, &["CLIENT", "SETNAME", "a b"]),
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    let list: String = q(&mut a, &["CLIENT", "LIST"]);
    assert!(list.contains("name=alpha"));
    assert_eq!(list.lines().count(), 2, "{list}");
    let normal: String = q(&mut a, &["CLIENT", "LIST", "TYPE", "normal"]);
    assert_eq!(normal.lines().count(), 2, "{normal}");
    let pubsub: String = q(&mut a, &["CLIENT", "LIST", "TYPE", "pubsub"]);
    assert_eq!(pubsub.lines().count(), 0, "{pubsub}");
    let mine: String = q(&mut a, &["CLIENT", "LIST", "ID", &id_a.to_string()]);
    assert!(mine.contains("name=alpha") && mine.lines().count() == 1);
    let _: () = q(&mut a, &["CLIENT", "NO-EVICT", "on"]);
    let killed: i64 = q(&mut a, &["CLIENT", "KILL", "ID", &id_b.to_string()]);
    assert_eq!(killed, 1);
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(redis::cmd("PING").query::<String>(&mut b).is_err());
    assert!(q_err(&mut a, &["CLIENT", "NOPE"]).starts_with("ERR unknown subcommand 'NOPE'"));
    // cmd= names the subcommand, and NULL after an unknown command, as
    // Redis shows them.
    let me: String = q(&mut a, &["CLIENT", "INFO"]);
    assert!(me.contains(" cmd=client|info "), "{me}");
    let _ = q_err(&mut a, &["NOSUCHCOMMAND"]);
    let mut observer = s.conn();
    let mine: String = q(&mut observer, &["CLIENT", "LIST", "ID", &id_a.to_string()]);
    assert!(mine.contains(" cmd=NULL "), "{mine}");
    // CLIENT REPLY OFF / ON over a raw socket.
    let mut r = s.raw();
    r.cmd(&["CLIENT", "REPLY", "OFF"]);
    r.cmd(&["SET", "x", "1"]);
    r.cmd(&["CLIENT", "REPLY", "ON"]);
    r.expect(b"+OK\r\n");
    r.cmd(&["CLIENT", "REPLY", "SKIP"]);
    r.cmd(&["PING"]);
    r.roundtrip(&["GET", "x"], b"$1\r\n1\r\n");
}

#[test]
fn info_command_config_memory() {
    let s = TestServer::start(|c| c.maxmemory = redis_guard::store::config::ByteSize(1 << 30));
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: () = q(&mut c, &["SET", "b", "2", "EX", "100"]);
    let info: String = q(&mut c, &["INFO"]);
    for needle in [
        "# Server",
        "redis_version:7.0.15",
        "# Clients",
        "connected_clients:1",
        "# Memory",
        "used_memory:",
        "maxmemory:1073741824",
        "# Stats",
        "# Keyspace",
        "db0:keys=2,expires=1",
    ] {
        assert!(info.contains(needle), "missing {needle}");
    }
    let mem: String = q(&mut c, &["INFO", "memory"]);
    assert!(mem.contains("used_memory:") && !mem.contains("# Server"));
    let n: i64 = q(&mut c, &["COMMAND", "COUNT"]);
    assert!(n > 150);
    let infos: Vec<Value> = q(&mut c, &["COMMAND", "INFO", "get", "nosuch"]);
    assert_eq!(infos.len(), 2);
    assert_eq!(infos[1], Value::Nil);
    match &infos[0] {
        Value::Array(v) => {
            assert_eq!(v[0], Value::BulkString(b"get".to_vec()));
            assert_eq!(v[1], Value::Int(2));
            assert_eq!(v[3], Value::Int(1));
            let cats = format!("{:?}", v[6]);
            assert!(cats.contains("@read") && cats.contains("@string"), "{cats}");
        }
        other => panic!("{other:?}"),
    }
    let list: Vec<String> = q(&mut c, &["COMMAND", "LIST"]);
    assert!(list.contains(&"zadd".to_string()));
    let _: Value = q(&mut c, &["COMMAND", "DOCS", "get"]);
    let _: Value = q(&mut c, &["COMMAND"]);
    let cfg: Vec<String> = q(&mut c, &["CONFIG", "GET", "save"]);
    assert_eq!(cfg, vec!["save".to_string(), String::new()]);
    let cfg: Vec<String> = q(&mut c, &["CONFIG", "GET", "appendonly"]);
    assert_eq!(cfg, vec!["appendonly".to_string(), "yes".to_string()]);
    let cfg: Vec<String> = q(&mut c, &["CONFIG", "GET", "maxmemory*"]);
    assert!(cfg.contains(&"maxmemory-policy".to_string()));
    let m: i64 = q(&mut c, &["MEMORY", "USAGE", "a"]);
    assert!(m > 0);
    assert_eq!(q::<Option<i64>>(&mut c, &["MEMORY", "USAGE", "zz"]), None);
}

#[test]
fn maxclients_refuses_extra_connections() {
    let s = TestServer::start(|c| c.maxclients = 2);
    let mut a = s.raw();
    let mut b = s.raw();
    a.roundtrip(&["PING"], b"+PONG\r\n");
    b.roundtrip(&["PING"], b"+PONG\r\n");
    let mut c = s.raw();
    c.expect(b"-ERR max number of clients reached\r\n");
    c.expect_closed();
    drop(a);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut d = s.raw();
    d.roundtrip(&["PING"], b"+PONG\r\n");
}

#[test]
fn idle_timeout_closes() {
    let s = TestServer::start(|c| c.timeout = 1);
    let mut a = s.raw();
    a.roundtrip(&["PING"], b"+PONG\r\n");
    a.expect_closed();
}

#[test]
fn binds_several_addresses_and_names_bad_one() {
    // Binding v4 and v6 together works (addresses are checked in the shutdown test).
    let _both = TestServer::start(|c| {
        c.listen = vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()]
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let cfg = redis_guard::store::StoreConfig {
        listen: vec![addr],
        data_dir: std::env::temp_dir().join("rg-store-bindtest"),
        ..Default::default()
    };
    let err = match rt.block_on(redis_guard::store::Server::bind(cfg)) {
        Ok(_) => panic!("bind on a taken port must fail"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&addr.to_string()), "{err}");
}

#[test]
fn run_stops_on_shutdown_and_closes_connections() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = redis_guard::store::StoreConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
        data_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let server = rt.block_on(redis_guard::store::Server::bind(cfg)).unwrap();
    let addrs = server.local_addrs();
    assert_eq!(addrs.len(), 2);
    assert!(addrs.iter().all(|a| a.port() != 0));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = rt.spawn(server.run(async {
        let _ = rx.await;
    }));
    let mut v4 = common::Raw::connect(addrs[0]);
    let mut v6 = common::Raw::connect(addrs[1]);
    v4.roundtrip(&["SET", "k", "v"], b"+OK\r\n");
    v6.roundtrip(&["GET", "k"], b"$1\r\nv\r\n");
    // A blocked client is released by shutdown too.
    v6.cmd(&["BLPOP", "never", "0"]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    tx.send(()).unwrap();
    let started = std::time::Instant::now();
    rt.block_on(handle).unwrap().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    v4.expect_closed();
    v6.expect_closed();
    // (No reconnect check: a parallel test may already have been given the freed port.)
}

/// The server side of a client's connection, as `ss -tno` reports it.
fn server_socket_line(s: &TestServer) -> String {
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established"])
        .arg(format!("( sport = :{} )", s.port()))
        .output()
        .expect("ss (iproute2)");
    String::from_utf8(out.stdout).unwrap()
}

/// A client that vanishes without a FIN (power loss, a dropped NAT entry)
/// must not hold its slot forever when `timeout` is 0: as Redis's
/// `tcp-keepalive 300`, the kernel probes a silent connection.
#[test]
fn accepted_connections_have_tcp_keepalive() {
    let s = TestServer::start(|_| {});
    let mut c = s.conn();
    assert_eq!(
        q::<Vec<String>>(&mut c, &["CONFIG", "GET", "tcp-keepalive"]),
        ["tcp-keepalive", "300"]
    );
    // Until the client acknowledges the reply, `ss` shows the retransmit
    // timer instead; then timer:(keepalive,4min59sec,0), due within 300 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut line = server_socket_line(&s);
    while !line.contains("keepalive") && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        line = server_socket_line(&s);
    }
    assert!(line.contains("timer:(keepalive,4min5"), "{line}");

    let off = TestServer::start(|c| c.tcp_keepalive = 0);
    let mut c2 = off.conn();
    let _: String = q(&mut c2, &["PING"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let line = server_socket_line(&off);
    assert!(!line.is_empty() && !line.contains("keepalive"), "{line}");
}
