//! The attacker's suite: every scenario of the reference documents
//! (`../shared/reference/`) run against a *default install*: the real
//! `redis-guard store` binary with nothing but a `[store]` table, so the
//! password is the one generated on first start. Each scenario asserts that
//! the attack failed, that the data is intact, and that a legitimate client
//! (redis-cli with the generated password) is still served.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Raw, redis_cli};

/// A `redis-guard store` process with a default `[store]` table.
struct Install {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    password: String,
}

impl Drop for Install {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn install(extra: &str) -> Install {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = dir.path().join("redis-guard.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &policy,
        format!(
            "[store]\nenabled = true\nlisten = [\"127.0.0.1:{port}\"]\ndata_dir = \"{}\"\n{extra}",
            data.display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_redis-guard"))
        .args(["store", "--config"])
        .arg(&policy)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.path().join("events.jsonl")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("store.log")).unwrap())
        .spawn()
        .expect("spawning redis-guard store");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut inst = Install {
        child,
        addr,
        dir,
        password: String::new(),
    };
    loop {
        let up = TcpStream::connect(addr).is_ok();
        let pw = std::fs::read_to_string(data.join("default.password")).unwrap_or_default();
        if up && !pw.trim().is_empty() {
            inst.password = pw.trim().to_string();
            break;
        }
        if let Ok(Some(status)) = inst.child.try_wait() {
            panic!("redis-guard store exited with {status}: {}", inst.log());
        }
        assert!(
            Instant::now() < deadline,
            "store did not start: {}",
            inst.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Wait until loading (if any) is over: an authenticated PING answers PONG.
    while inst.cli(&["PING"]) != "PONG" {
        assert!(
            Instant::now() < deadline,
            "store never served: {}",
            inst.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    inst
}

impl Install {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("store.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The legitimate client: redis-cli with the generated password.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(redis_cli())
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(["-a", &self.password, "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The attacker: redis-cli with no password.
    fn anon_cli(&self, args: &[&str]) -> String {
        let out = Command::new(redis_cli())
            .args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
            + &String::from_utf8_lossy(&out.stderr)
    }

    fn seed(&self) {
        assert_eq!(self.cli(&["SET", "session:42", "alice-token"]), "OK");
        assert_eq!(self.cli(&["HSET", "user:1", "api_key", "s3cr3t"]), "1");
    }

    /// Data intact and the legitimate client served.
    fn assert_intact_and_served(&self) {
        assert_eq!(self.cli(&["GET", "session:42"]), "alice-token");
        assert_eq!(self.cli(&["HGET", "user:1", "api_key"]), "s3cr3t");
        assert_eq!(self.cli(&["DBSIZE"]), "2");
    }
}

#[test]
fn default_install_generates_a_private_password_and_never_logs_it() {
    let inst = install("");
    let file = inst.data_dir().join("default.password");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(inst.password.len() >= 32, "a strong password");
    let log = inst.log();
    assert!(
        log.contains("default.password"),
        "the log says where: {log}"
    );
    assert!(!log.contains(&inst.password), "the log must never print it");
}

/// Scenario 1, data breach: scan, connect, `KEYS *`, `GET`, `CONFIG GET *`.
#[test]
fn scenario_data_breach_fails() {
    let inst = install("");
    inst.seed();
    for args in [
        &["KEYS", "*"][..],
        &["GET", "session:42"],
        &["HGETALL", "user:1"],
        &["SCAN", "0"],
        &["CONFIG", "GET", "*"],
        &["INFO"],
        &["CLIENT", "LIST"],
    ] {
        let out = inst.anon_cli(args);
        assert!(out.contains("NOAUTH"), "{args:?} -> {out}");
        assert!(
            !out.contains("alice-token") && !out.contains("s3cr3t"),
            "{out}"
        );
    }
    inst.assert_intact_and_served();
}

/// Scenario 2, service disruption: `FLUSHALL`, `FLUSHDB`, `DEL`, `SET`.
#[test]
fn scenario_service_disruption_fails() {
    let inst = install("");
    inst.seed();
    for args in [
        &["FLUSHALL"][..],
        &["FLUSHDB"],
        &["DEL", "session:42"],
        &["SET", "session:42", "hijacked"],
        &["SWAPDB", "0", "1"],
    ] {
        let out = inst.anon_cli(args);
        assert!(out.contains("NOAUTH"), "{args:?} -> {out}");
    }
    inst.assert_intact_and_served();
}

/// Scenario 3, remote code execution: `CONFIG SET dir` + `dbfilename` +
/// `SAVE`, then `MODULE LOAD`. It fails without a password, and it fails
/// for the fully privileged `default` user too: nothing can point the
/// store's writes outside `data_dir` or load code.
#[test]
fn scenario_file_write_and_module_load_fail_even_for_the_admin() {
    let inst = install("");
    inst.seed();
    let target = tempfile::tempdir().unwrap();
    let target_dir = target.path().display().to_string();
    let chain: [&[&str]; 5] = [
        &["CONFIG", "SET", "dir", &target_dir],
        &["CONFIG", "SET", "dbfilename", "shell.so"],
        &["SAVE"],
        &["BGSAVE"],
        &["MODULE", "LOAD", &format!("{target_dir}/shell.so")],
    ];
    for args in chain {
        let out = inst.anon_cli(args);
        assert!(out.contains("NOAUTH"), "{args:?} -> {out}");
    }
    for args in chain {
        let out = inst.cli(args);
        let is_save = args[0].ends_with("SAVE");
        // SAVE and BGSAVE may exist (persistence writes into data_dir under
        // fixed names); everything else must be refused outright.
        assert!(
            out.starts_with("ERR") || (is_save && !out.starts_with("ERR")),
            "{args:?} -> {out}"
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    let written: Vec<_> = std::fs::read_dir(target.path()).unwrap().collect();
    assert!(
        written.is_empty(),
        "files written outside data_dir: {written:?}"
    );
    let dir_now = inst.cli(&["CONFIG", "GET", "dir"]);
    assert!(
        !dir_now.contains(&target_dir),
        "CONFIG GET dir must not report {target_dir}: {dir_now}"
    );
    // The other ways to run code or reach another host do not exist either.
    for args in [
        &["EVAL", "return redis.call('flushall')", "0"][..],
        &["SLAVEOF", "192.0.2.1", "6379"],
        &["REPLICAOF", "192.0.2.1", "6379"],
        &["DEBUG", "SEGFAULT"],
        &["SHUTDOWN", "NOSAVE"],
    ] {
        let out = inst.cli(args);
        assert!(
            out.contains("not available in redis-guard"),
            "{args:?} -> {out}"
        );
    }
    inst.assert_intact_and_served();
    let events = std::fs::read_to_string(inst.dir.path().join("events.jsonl")).unwrap_or_default()
        + &inst.log();
    assert!(
        events.contains("dangerous_command_refused"),
        "audit events: {events}"
    );
}

fn http_attack(addr: SocketAddr, body: &str) -> Vec<u8> {
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        addr.port(),
        body.len()
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

/// The Redis CSRF (cross-protocol) attack: a web page makes the browser POST
/// Redis commands. Even with the password in the body, nothing after the
/// `POST` line runs, and the connection is closed.
#[test]
fn scenario_redis_csrf_fails() {
    let inst = install("");
    inst.seed();
    let got = http_attack(
        inst.addr,
        &format!("AUTH {}\r\nSET pwned 1\r\nFLUSHALL\r\n", inst.password),
    );
    assert!(got.is_empty(), "no reply to an HTTP request: {got:?}");
    // Inline commands smuggled in headers too.
    let mut raw = Raw::connect(inst.addr);
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\nX: y\r\nFLUSHALL\r\n\r\n");
    raw.expect_closed();
    inst.assert_intact_and_served();
    assert_eq!(inst.cli(&["EXISTS", "pwned"]), "0");
    let events = std::fs::read_to_string(inst.dir.path().join("events.jsonl")).unwrap_or_default()
        + &inst.log();
    assert!(events.contains("cross_protocol_kill"), "{events}");
}

/// Password guessing: a brute-forcing source is banned after
/// `auth_max_failures`; the right password from it is then refused too,
/// while a client from another address is served as before.
#[test]
fn scenario_password_guessing_fails() {
    let inst = install("auth_max_failures = 5\nauth_failure_delay_ms = 10\n");
    inst.seed();
    let attacker: std::net::IpAddr = "127.0.0.66".parse().unwrap();
    let mut raw = Raw::connect_from(inst.addr, attacker);
    for guess in ["123456", "password", "redis", "admin", "foobared"] {
        raw.cmd(&["AUTH", guess]);
    }
    let mut replies = String::new();
    for _ in 0..5 {
        replies.push_str(&raw.line());
    }
    assert_eq!(replies.matches("WRONGPASS").count(), 5, "{replies}");
    raw.expect_closed();
    // Banned: even the right password from this source is refused now.
    let mut again = Raw::connect_from(inst.addr, attacker);
    again.cmd(&["AUTH", &inst.password]);
    let reply = String::from_utf8_lossy(&again.drain()).into_owned();
    assert!(
        !reply.starts_with("+OK"),
        "a banned source must not get in: {reply}"
    );
    let events = std::fs::read_to_string(inst.dir.path().join("events.jsonl")).unwrap_or_default()
        + &inst.log();
    assert!(
        events.contains("auth_ban") && events.contains("127.0.0.66"),
        "{events}"
    );
    inst.assert_intact_and_served();
}
