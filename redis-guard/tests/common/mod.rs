//! Shared helpers: an in-process store on 127.0.0.1:0, redis-rs clients, raw sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use redis_guard::store::auth::sha256_hex;
use redis_guard::store::config::UserConfig;
use redis_guard::store::{BanEvent, Server, StoreConfig};

/// A running store; shut down on drop.
pub struct TestServer {
    /// The first bound address: plaintext unless `[store.tls] plaintext = false`.
    pub addr: SocketAddr,
    /// The first TLS address, when `[store.tls]` is configured.
    pub tls_addr: Option<SocketAddr>,
    pub password: Option<(String, String)>,
    /// Subscribed to [`Server::ban_events`] before the server started.
    pub bans: tokio::sync::broadcast::Receiver<BanEvent>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Default config (no users: default nopass) plus `tweak`.
    pub fn start(tweak: impl FnOnce(&mut StoreConfig)) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = StoreConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            data_dir: dir.path().join("data"),
            ..Default::default()
        };
        tweak(&mut cfg);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let server = match Server::bind(cfg).await {
                    Ok(s) => s,
                    Err(e) => {
                        addr_tx.send(Err(format!("{e:#}"))).unwrap();
                        return;
                    }
                };
                addr_tx
                    .send(Ok((
                        server.local_addrs()[0],
                        server.tls_addrs().first().copied(),
                        server.ban_events(),
                    )))
                    .unwrap();
                server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("run");
            });
        });
        let (addr, tls_addr, bans) = addr_rx
            .recv()
            .expect("server thread")
            .unwrap_or_else(|e| panic!("bind failed: {e}"));
        TestServer {
            addr,
            tls_addr,
            password: None,
            bans,
            shutdown: Some(stop_tx),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// A server whose `default` user needs `pass`.
    pub fn with_password(pass: &str) -> TestServer {
        let p = pass.to_string();
        let mut s = TestServer::start(|c| c.users = vec![user("default", &p, "on ~* &* +@all")]);
        s.password = Some(("default".into(), pass.into()));
        s
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `INFO security` as (kind, total) pairs.
    pub fn security_counts(&self) -> std::collections::HashMap<String, u64> {
        let mut c = self.conn();
        let info: String = q(&mut c, &["INFO", "security"]);
        info.lines()
            .filter_map(|l| l.strip_prefix("security_events_"))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().parse().unwrap()))
            .collect()
    }

    /// The total of one event kind, from `INFO security`.
    pub fn security_count(&self, kind: &str) -> u64 {
        self.security_counts()
            .get(kind)
            .copied()
            .unwrap_or_else(|| panic!("INFO security has no {kind}"))
    }

    /// Waits up to 30 s (a loaded machine is slow) for the total of `kind`
    /// to reach `at_least`.
    pub fn wait_security_count(&self, kind: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = self.security_count(kind);
            if n >= at_least || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A redis-rs connection, authenticated when the server has a password.
    pub fn conn(&self) -> redis::Connection {
        let url = match &self.password {
            Some((u, p)) => format!("redis://{u}:{p}@{}/", self.addr),
            None => format!("redis://{}/", self.addr),
        };
        let c = redis::Client::open(url).expect("client");
        let con = c
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect");
        con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        con
    }

    /// A redis-rs RESP3 connection.
    pub fn conn3(&self) -> redis::Connection {
        let url = match &self.password {
            Some((u, p)) => format!("redis://{u}:{p}@{}/?protocol=resp3", self.addr),
            None => format!("redis://{}/?protocol=resp3", self.addr),
        };
        let c = redis::Client::open(url).expect("client");
        c.get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect")
    }

    /// A raw socket.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr)
    }

    /// A raw socket whose source address is `src` (any 127.0.0.0/8 address
    /// works on loopback), to play a client other than 127.0.0.1.
    pub fn raw_from(&self, src: &str) -> Raw {
        Raw::connect_from(self.addr, src.parse().expect("source address"))
    }

    /// A raw socket, authenticated when the server has a password.
    pub fn raw_authed(&self) -> Raw {
        let mut r = Raw::connect(self.addr);
        if let Some((u, p)) = &self.password {
            r.roundtrip(&["AUTH", u, p], b"+OK\r\n");
        }
        r
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A user with a SHA-256 password.
pub fn user(name: &str, pass: &str, rules: &str) -> UserConfig {
    UserConfig {
        name: name.into(),
        password_sha256: Some(sha256_hex(pass.as_bytes())),
        rules: rules.into(),
        ..Default::default()
    }
}

/// A raw TCP client for exact-bytes assertions.
pub struct Raw {
    pub s: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    /// Connects from a chosen source address; std cannot bind before connecting.
    pub fn connect_from(addr: SocketAddr, src: IpAddr) -> Raw {
        use socket2::{Domain, Socket, Type};
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::new(src, 0).into())
            .expect("bind source address");
        sock.connect_timeout(&addr.into(), Duration::from_secs(5))
            .expect("connect");
        let s: TcpStream = sock.into();
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        s.set_nodelay(true).unwrap();
        Raw { s }
    }

    pub fn send(&mut self, data: &[u8]) {
        self.s.write_all(data).expect("write");
    }

    /// Sends a command as a multibulk request.
    pub fn cmd(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
        }
        self.send(&out);
    }

    /// Reads until `expected` bytes arrived (or 5 s passed) and returns them.
    pub fn read_n(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        while buf.len() < n && Instant::now() < deadline {
            match self.s.read(&mut chunk) {
                Ok(0) => break,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                Err(_) => continue,
            }
        }
        buf
    }

    /// Reads one simple (single-line) reply.
    pub fn line(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        while !buf.ends_with(b"\r\n") && Instant::now() < deadline {
            match self.s.read(&mut b) {
                Ok(0) => break,
                Ok(_) => buf.push(b[0]),
                Err(_) => continue,
            }
        }
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Reads exactly the expected reply and asserts it.
    pub fn expect(&mut self, expected: &[u8]) {
        let got = self.read_n(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Sends a command and asserts the exact reply.
    pub fn roundtrip(&mut self, args: &[&str], expected: &[u8]) {
        self.cmd(args);
        self.expect(expected);
    }

    /// Asserts that the server closes the connection (EOF) within 5 s.
    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut chunk = [0u8; 4096];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(_) => {
                    assert!(Instant::now() < deadline, "connection was not closed");
                }
            }
        }
    }

    /// Reads whatever arrives within the read timeout.
    pub fn drain(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 65536];
        while let Ok(k) = self.s.read(&mut chunk) {
            if k == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..k]);
        }
        buf
    }
}

/// Runs a redis-rs command.
pub fn q<T: redis::FromRedisValue>(con: &mut redis::Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

/// Waits (up to 5 s) until the server reports a blocked client, so that a
/// test pushes only after its waiter blocked.
pub fn wait_blocked(con: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while q::<String>(con, &["INFO", "clients"]).contains("blocked_clients:0") {
        assert!(Instant::now() < deadline, "no client ever blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a redis-rs command expecting an error; returns its text.
pub fn q_err(con: &mut redis::Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("{args:?} should fail, got {v:?}"),
        Err(e) => error_text(&e),
    }
}

/// Error text as Redis sent it: `CODE message`.
pub fn error_text(e: &redis::RedisError) -> String {
    let code = e.code().unwrap_or("");
    let detail = e.detail().unwrap_or("");
    if detail.is_empty() {
        code.to_string()
    } else {
        format!("{code} {detail}")
    }
}

/// The redis-cli binary; fails loudly when missing.
pub fn redis_cli() -> std::path::PathBuf {
    for p in ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    if let Ok(out) = std::process::Command::new("which")
        .arg("redis-cli")
        .output()
    {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return s.into();
        }
    }
    panic!(
        "redis-cli is required for this test but was not found (install the redis-tools package)"
    );
}

/// PEM files of a throwaway PKI in a temporary directory: a CA, a server
/// certificate for 127.0.0.1 and localhost, a client certificate from the
/// same CA, and a client certificate from an unrelated CA.
pub struct TestPki {
    pub dir: tempfile::TempDir,
}

impl TestPki {
    pub fn new() -> TestPki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();
        let ca = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = p.self_signed(&key).unwrap();
            (cert.pem(), Issuer::new(p, key))
        };
        let leaf = |issuer: &Issuer<'_, KeyPair>, names: &[&str], usage| {
            let key = KeyPair::generate().unwrap();
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name
                .push(DnType::CommonName, "redis-guard test");
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (ca_pem, ca_issuer) = ca("redis-guard test CA");
        write("ca.pem", ca_pem);
        let (c, k) = leaf(
            &ca_issuer,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write("server.pem", c);
        write("server.key", k);
        let (c, k) = leaf(&ca_issuer, &["client"], ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", c);
        write("client.key", k);
        let (rogue_pem, rogue_issuer) = ca("someone else's CA");
        write("rogue-ca.pem", rogue_pem);
        let (c, k) = leaf(
            &rogue_issuer,
            &["client"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        write("rogue.pem", c);
        write("rogue.key", k);
        TestPki { dir }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// A `[store.tls]` on 127.0.0.1:0 with this PKI's server certificate.
    pub fn tls_config(&self) -> redis_guard::store::config::TlsConfig {
        redis_guard::store::config::TlsConfig {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: None,
            min_version: Default::default(),
            plaintext: true,
        }
    }
}
