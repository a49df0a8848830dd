//! `[store.tls]` with real clients: redis-cli (OpenSSL), redis-rs (rustls)
//! and redis-py (Python's ssl), plus mutual TLS, the minimum version and
//! `plaintext = false`.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::time::Duration;

use common::{TestPki, TestServer, q, redis_cli, user};
use redis_guard::store::config::TlsVersion;

fn tls_server(
    pki: &TestPki,
    tweak: impl FnOnce(&mut redis_guard::store::config::TlsConfig),
) -> TestServer {
    let mut tls = pki.tls_config();
    tweak(&mut tls);
    TestServer::start(move |c| c.tls = Some(tls))
}

/// redis-cli over TLS to `addr`, trusting the test CA; `extra` goes before the command.
fn cli_tls(pki: &TestPki, addr: SocketAddr, extra: &[&str], cmd: &[&str]) -> Output {
    let port = addr.port().to_string();
    let ca = pki.path("ca.pem");
    let mut c = Command::new(redis_cli());
    c.args(["-h", "127.0.0.1", "-p", &port, "--tls", "--cacert"])
        .arg(&ca)
        .args(extra)
        .args(cmd);
    c.output().expect("run redis-cli")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A redis-rs connection over TLS, trusting the test CA.
fn rs_tls(
    pki: &TestPki,
    addr: SocketAddr,
    client: Option<(&str, &str)>,
) -> redis::RedisResult<redis::Connection> {
    let certs = redis::TlsCertificates {
        client_tls: client.map(|(c, k)| redis::ClientTlsConfig {
            client_cert: pki.read(c),
            client_key: pki.read(k),
        }),
        root_cert: Some(pki.read("ca.pem")),
    };
    let client =
        redis::Client::build_with_tls(format!("rediss://127.0.0.1:{}/", addr.port()), certs)?;
    client.get_connection_with_timeout(Duration::from_secs(5))
}

/// Runs a redis-py script with `PORT` and `CA` set; returns its stdout.
fn python(pki: &TestPki, addr: SocketAddr, script: &str) -> Output {
    Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .env("PORT", addr.port().to_string())
        .env("PKI", pki.dir.path())
        .output()
        .expect("run python3 (install python3-redis: cargo xtask setup)")
}

#[test]
fn redis_cli_over_tls_and_plaintext_side_by_side() {
    let pki = TestPki::new();
    let s = tls_server(&pki, |_| {});
    let tls = s.tls_addr.expect("TLS address");
    assert_ne!(tls, s.addr);
    let o = cli_tls(&pki, tls, &[], &["SET", "k", "over-tls"]);
    assert_eq!(stdout(&o), "OK", "{o:?}");
    let o = cli_tls(&pki, tls, &[], &["GET", "k"]);
    assert_eq!(stdout(&o), "over-tls");
    // The plaintext listener serves the same data.
    let mut plain = s.conn();
    assert_eq!(q::<String>(&mut plain, &["GET", "k"]), "over-tls");
}

#[test]
fn redis_rs_over_tls_with_large_values_and_pipelines() {
    let pki = TestPki::new();
    let s = tls_server(&pki, |_| {});
    let mut c = rs_tls(&pki, s.tls_addr.unwrap(), None).expect("TLS connection");
    // Bigger than one TLS record and than a socket buffer: partial writes
    // and the TLS writer's flush are exercised.
    let big = "x".repeat(3 * 1024 * 1024);
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&big)
        .query(&mut c)
        .unwrap();
    let got: String = redis::cmd("GET").arg("big").query(&mut c).unwrap();
    assert_eq!(got.len(), big.len());
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("INCR").arg("n").ignore();
        p.cmd("GET").arg(format!("missing{i}")).ignore();
    }
    p.cmd("GET").arg("n");
    let (n,): (i64,) = p.query(&mut c).unwrap();
    assert_eq!(n, 1000);
}

#[test]
fn redis_py_over_tls_with_a_password() {
    let pki = TestPki::new();
    let mut tls = pki.tls_config();
    tls.min_version = TlsVersion::V1_2;
    let s = TestServer::start(move |c| {
        c.tls = Some(tls);
        c.users = vec![user("app", "s3cret", "on ~* &* +@all")];
    });
    let o = python(
        &pki,
        s.tls_addr.unwrap(),
        r#"
import os, redis
r = redis.Redis(host="127.0.0.1", port=int(os.environ["PORT"]), ssl=True,
                ssl_ca_certs=os.environ["PKI"] + "/ca.pem", ssl_cert_reqs="required",
                username="app", password="s3cret", socket_timeout=5)
r.set("py", "value")
print(r.get("py").decode(), r.incr("count"))
try:
    redis.Redis(host="127.0.0.1", port=int(os.environ["PORT"]), ssl=True,
                ssl_ca_certs=os.environ["PKI"] + "/ca.pem", username="app",
                password="wrong", socket_timeout=5).ping()
    print("wrong password accepted")
except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError) as e:
    print("wrong password refused" if "WRONGPASS" in str(e) or "invalid" in str(e) else e)
"#,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "value 1\nwrong password refused",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn plaintext_false_opens_no_plaintext_listener() {
    let pki = TestPki::new();
    let s = TestServer::start(|c| {
        // The default plaintext port must not be bound at all.
        c.listen = vec!["127.0.0.1:0".parse().unwrap()];
        let mut tls = pki.tls_config();
        tls.plaintext = false;
        c.tls = Some(tls);
    });
    let tls = s.tls_addr.unwrap();
    assert_eq!(s.addr, tls, "the only bound address is the TLS one");
    // A plaintext client on the TLS port: no Redis reply, the handshake fails.
    let mut raw = s.raw();
    raw.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$6\r\nplain!\r\n");
    let got = raw.drain();
    assert!(!got.starts_with(b"+OK"), "{got:?}");
    raw.expect_closed();
    // The attack failed, the data is intact, TLS clients are served.
    let o = cli_tls(&pki, tls, &[], &["SET", "k", "tls"]);
    assert_eq!(stdout(&o), "OK");
    let o = cli_tls(&pki, tls, &[], &["GET", "k"]);
    assert_eq!(stdout(&o), "tls");
    let mut c = rs_tls(&pki, tls, None).unwrap();
    let n: String = redis::cmd("INFO").arg("security").query(&mut c).unwrap();
    assert!(n.contains("security_events_tls_handshake_failed:1"), "{n}");
}

#[test]
fn mutual_tls_needs_a_client_certificate_from_the_configured_ca() {
    let pki = TestPki::new();
    let s = tls_server(&pki, |t| t.client_ca = Some(pki.path("ca.pem")));
    let tls = s.tls_addr.unwrap();
    let good = ["--cert", "client.pem", "--key", "client.key"];
    let abs = |a: &[&str; 4]| -> Vec<String> {
        a.iter()
            .map(|x| {
                if x.starts_with("--") {
                    x.to_string()
                } else {
                    pki.path(x).display().to_string()
                }
            })
            .collect()
    };
    let good: Vec<String> = abs(&good);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    let o = cli_tls(&pki, tls, &good, &["SET", "k", "mtls"]);
    assert_eq!(stdout(&o), "OK", "{o:?}");
    // No certificate, or one from another CA: refused in the handshake.
    let o = cli_tls(&pki, tls, &[], &["SET", "k", "evil"]);
    assert_ne!(stdout(&o), "OK");
    let rogue = abs(&["--cert", "rogue.pem", "--key", "rogue.key"]);
    let rogue: Vec<&str> = rogue.iter().map(String::as_str).collect();
    let o = cli_tls(&pki, tls, &rogue, &["SET", "k", "evil"]);
    assert_ne!(stdout(&o), "OK");
    assert!(
        rs_tls(&pki, tls, None)
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
    );
    assert!(
        rs_tls(&pki, tls, Some(("rogue.pem", "rogue.key")))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
    );
    // Data intact; the legitimate client is served, by redis-rs too.
    let mut c = rs_tls(&pki, tls, Some(("client.pem", "client.key"))).unwrap();
    assert_eq!(q::<String>(&mut c, &["GET", "k"]), "mtls");
    let n: String = redis::cmd("INFO").arg("security").query(&mut c).unwrap();
    let failed: u64 = n
        .lines()
        .find_map(|l| l.strip_prefix("security_events_tls_handshake_failed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(failed >= 2, "{n}");
}

#[test]
fn min_version_1_3_refuses_tls_1_2_clients() {
    let script = r#"
import os, socket, ssl, sys
ctx = ssl.create_default_context(cafile=os.environ["PKI"] + "/ca.pem")
ctx.maximum_version = getattr(ssl.TLSVersion, sys.argv[1])
try:
    with socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"PING\r\n")
            print(s.version(), s.recv(64).decode().strip())
except ssl.SSLError as e:
    print("refused")
"#;
    let run = |pki: &TestPki, addr: SocketAddr, max: &str| -> String {
        let o = Command::new("/usr/bin/python3")
            .args(["-c", script, max])
            .env("PORT", addr.port().to_string())
            .env("PKI", pki.dir.path())
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout).trim(),
            String::from_utf8_lossy(&o.stderr).trim()
        )
    };
    let pki = TestPki::new();
    let s13 = tls_server(&pki, |t| t.min_version = TlsVersion::V1_3);
    assert_eq!(run(&pki, s13.tls_addr.unwrap(), "TLSv1_2"), "refused");
    assert_eq!(run(&pki, s13.tls_addr.unwrap(), "TLSv1_3"), "TLSv1.3 +PONG");
    let s12 = tls_server(&pki, |_| {});
    assert_eq!(run(&pki, s12.tls_addr.unwrap(), "TLSv1_2"), "TLSv1.2 +PONG");
}

#[test]
fn unusable_certificate_files_fail_the_start_naming_the_key() {
    let pki = TestPki::new();
    let start = |tls: redis_guard::store::config::TlsConfig| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = redis_guard::store::StoreConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            data_dir: dir.path().join("data"),
            tls: Some(tls),
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match rt.block_on(redis_guard::store::Server::bind(cfg)) {
            Ok(_) => panic!("bind should fail"),
            Err(e) => format!("{e:#}"),
        }
    };
    let mut t = pki.tls_config();
    t.cert = pki.path("missing.pem");
    assert!(start(t).contains("store.tls.cert"));
    let mut t = pki.tls_config();
    t.key = pki.path("server.pem");
    assert!(start(t).contains("store.tls.key"));
    let mut t = pki.tls_config();
    t.key = pki.path("client.key");
    assert!(start(t).contains("does not fit"));
    let mut t = pki.tls_config();
    t.client_ca = Some(pki.path("server.key"));
    assert!(start(t).contains("store.tls.client_ca"));
    let mut t = pki.tls_config();
    t.listen.clear();
    assert!(start(t).contains("store.tls.listen"));
}

#[test]
fn tls_section_parses_from_toml() {
    let cfg: redis_guard::store::StoreConfig = toml::from_str(
        r#"
        listen = ["127.0.0.1:6379"]
        [tls]
        listen = ["127.0.0.1:6380", "[::1]:6380"]
        cert = "/etc/redis-guard/cert.pem"
        key = "/etc/redis-guard/key.pem"
        client_ca = "/etc/redis-guard/ca.pem"
        min_version = "1.3"
        plaintext = false
        "#,
    )
    .unwrap();
    let t = cfg.tls.as_ref().unwrap();
    assert_eq!(t.min_version, TlsVersion::V1_3);
    assert!(!t.plaintext);
    assert!(cfg.plaintext_listen().is_empty());
    assert_eq!(cfg.tls_listen().len(), 2);
    cfg.validate().unwrap();
    let spelled: redis_guard::store::StoreConfig = toml::from_str(
        "[tls]\nlisten = []\ncert = \"/a\"\nkey = \"/b\"\nmin_version = \"TLSv1.3\"\n",
    )
    .unwrap();
    assert_eq!(spelled.tls.unwrap().min_version, TlsVersion::V1_3);
    // Redis's file-name spellings and a short `ca` name the same keys.
    let aliased: redis_guard::store::StoreConfig =
        toml::from_str("[tls]\nlisten = []\ncert_file = \"/a\"\nkey_file = \"/b\"\nca = \"/c\"\n")
            .unwrap();
    let t = aliased.tls.unwrap();
    assert_eq!(
        (
            t.cert.to_str(),
            t.key.to_str(),
            t.client_ca.as_deref().and_then(|p| p.to_str())
        ),
        (Some("/a"), Some("/b"), Some("/c"))
    );
    let bad = toml::from_str::<redis_guard::store::StoreConfig>(
        "[tls]\nlisten = []\ncert = \"/a\"\nkey = \"/b\"\nmin_version = \"1.1\"\n",
    );
    assert!(bad.is_err());
    let unknown = toml::from_str::<redis_guard::store::StoreConfig>(
        "[tls]\nlisten = []\ncert = \"/a\"\nkey = \"/b\"\nciphers = \"x\"\n",
    );
    assert!(unknown.is_err());
}

#[test]
fn a_tls_client_that_never_reads_is_cut_at_its_output_limit() {
    let pki = TestPki::new();
    let mut tls = pki.tls_config();
    tls.min_version = TlsVersion::V1_2;
    let s = TestServer::start(move |c| {
        c.tls = Some(tls);
        c.output_buffer_limit_normal = redis_guard::store::config::OutputBufferLimit::hard(
            redis_guard::store::config::ByteSize(4 * 1024 * 1024),
        );
    });
    let value = "v".repeat(1024 * 1024);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "big", &value]);
    // Pipelines 300 GETs of 1 MB over TLS and never reads a reply.
    let mut attacker = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(
            r#"
import os, socket, ssl, time
ctx = ssl.create_default_context(cafile=os.environ["PKI"] + "/ca.pem")
raw = socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=5)
s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
s.sendall(b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 300)
time.sleep(60)
"#,
        )
        .env("PORT", s.tls_addr.unwrap().port().to_string())
        .env("PKI", pki.dir.path())
        .spawn()
        .unwrap();
    let cut = s.wait_security_count("client_output_buffer_limit", 1);
    let _ = attacker.kill();
    let _ = attacker.wait();
    assert_eq!(cut, 1);
    // Data intact, and TLS and plaintext clients are served.
    let mut t = rs_tls(&pki, s.tls_addr.unwrap(), None).unwrap();
    assert_eq!(q::<String>(&mut t, &["GET", "big"]), value);
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

#[test]
fn a_stalled_handshake_is_cut_by_the_authentication_deadline() {
    let pki = TestPki::new();
    let mut tls = pki.tls_config();
    tls.min_version = TlsVersion::V1_2;
    let s = TestServer::start(move |c| {
        c.tls = Some(tls);
        c.auth_timeout_secs = 1;
    });
    let tls = s.tls_addr.unwrap();
    let _: () = q(&mut s.conn(), &["SET", "k", "intact"]);
    // TCP connections to the TLS port that never send a ClientHello, and
    // one that sends half of one.
    let mut stalled: Vec<common::Raw> = (0..50).map(|_| common::Raw::connect(tls)).collect();
    stalled[0].send(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
    let started = std::time::Instant::now();
    for r in stalled.iter_mut() {
        r.expect_closed();
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(s.wait_security_count("tls_handshake_failed", 50) >= 50);
    // The data is intact and a real client is served.
    let o = cli_tls(&pki, tls, &[], &["GET", "k"]);
    assert_eq!(stdout(&o), "intact");
}

/// Certificate rotation: the real `redis-guard store` re-reads the TLS
/// files on SIGHUP. New handshakes get the new certificate, a broken file
/// keeps the running one, and nothing restarts.
#[test]
fn sighup_rotates_the_certificate_without_a_restart() {
    use std::io::Read;
    let old = TestPki::new();
    let new = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let install = |pki: &TestPki| {
        std::fs::write(&cert, pki.read("server.pem")).unwrap();
        std::fs::write(&key, pki.read("server.key")).unwrap();
    };
    install(&old);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (plain, tls) = (free(), free());
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "[store]\nenabled = true\nlisten = [\"{plain}\"]\ndata_dir = \"{}\"\n\
             [[store.users]]\nname = \"default\"\nnopass = true\nrules = \"on ~* &* +@all\"\n\
             [store.tls]\nlisten = [\"{tls}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
            dir.path().join("data").display(),
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("store.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_redis-guard"))
        .args(["store", "--config"])
        .arg(&policy)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || {
        let mut s = String::new();
        let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut s));
        s
    };
    let wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !log().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {needle:?} in:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("store listening");
    assert_eq!(stdout(&cli_tls(&old, tls, &[], &["PING"])), "PONG");

    install(&new);
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for("store TLS certificates reloaded");
    assert_eq!(stdout(&cli_tls(&new, tls, &[], &["PING"])), "PONG");
    let stale = cli_tls(&old, tls, &[], &["PING"]);
    assert_ne!(stdout(&stale), "PONG", "the old CA must no longer verify");

    // A half-written certificate keeps the running one in force.
    std::fs::write(&cert, b"-----BEGIN CERTIFICATE-----\ngarbage\n").unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    wait_for("store TLS reload failed");
    assert_eq!(stdout(&cli_tls(&new, tls, &[], &["PING"])), "PONG");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the store must keep running"
    );
    let _ = child.kill();
    let _ = child.wait();
}
