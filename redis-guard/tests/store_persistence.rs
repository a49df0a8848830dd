//! Durability: a real `redis-guard store` process is killed with SIGKILL
//! and restarted on the same `data_dir`; files are damaged on purpose.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use redis::{Connection, ErrorKind, Value};

/// One store process on a data directory that outlives it.
struct Store {
    child: Child,
    addr: String,
    log: Arc<Mutex<String>>,
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    let cfg = dir.join("store.toml");
    let text = format!(
        r#"[store]
enabled = true
listen = ["127.0.0.1:0"]
data_dir = "{}"
{extra}

[[store.users]]
name = "default"
nopass = true
rules = "on ~* &* +@all"

[[store.users]]
name = "app"
password_sha256 = "{}"
rules = "on ~* &* +@all -@admin"
"#,
        dir.join("data").display(),
        redis_guard::store::auth::sha256_hex(b"apppass")
    );
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_redis-guard")
}

impl Store {
    /// Starts the binary and waits until it listens.
    fn start(cfg: &Path) -> Store {
        Self::try_start(cfg).unwrap_or_else(|log| panic!("store did not start:\n{log}"))
    }

    /// Starts the binary; `Err(stderr)` if it exits before listening.
    fn try_start(cfg: &Path) -> Result<Store, String> {
        let mut child = Command::new(bin())
            .args(["--log-level", "info", "store", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn redis-guard");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(a) = line.split("store listening addr=").nth(1) {
                    let addr = a.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => Ok(Store { child, addr, log }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(log.lock().unwrap().clone())
            }
        }
    }

    /// Runs the binary expecting it to exit with an error; returns stderr.
    fn must_fail(cfg: &Path) -> String {
        let mut child = Command::new(bin())
            .args(["store", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn redis-guard");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(!status.success(), "the store must refuse to start");
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                return err;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the store kept running on damaged data");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A connection that has waited out `-LOADING`.
    fn conn(&self) -> Connection {
        let client = redis::Client::open(self.url()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut c = client.get_connection().expect("connect");
            match redis::cmd("DBSIZE").query::<i64>(&mut c) {
                Ok(_) => return c,
                Err(e) if e.kind() == ErrorKind::BusyLoadingError => {}
                Err(e) => panic!("store not usable: {e}"),
            }
            assert!(Instant::now() < deadline, "store still loading");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill9(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        self.log.lock().unwrap().clone()
    }

    /// Graceful stop (SIGTERM).
    fn stop(mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().unwrap();
    }
}

/// A failing test must not leave its store running (and holding its
/// data directory or a tmpfs mount).
impl Drop for Store {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn q<T: redis::FromRedisValue>(c: &mut Connection, args: &[&str]) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// What one writer had acknowledged.
#[derive(Default, Clone, Debug)]
struct Acked {
    /// Next sequence number to use.
    next: u64,
    /// Every acknowledged SET / HSET sequence number.
    sets: Vec<u64>,
    hsets: Vec<u64>,
    /// Highest acknowledged INCR reply.
    incr: i64,
    /// Highest acknowledged RPUSH reply (list length).
    rpush: i64,
}

/// Writes SET, INCR, HSET and RPUSH until the connection dies, recording
/// every acknowledged reply.
fn writer(addr: String, id: usize, acked: Arc<Mutex<Acked>>, stop: Arc<AtomicBool>) {
    let Ok(client) = redis::Client::open(format!("redis://{addr}/")) else {
        return;
    };
    let Ok(mut c) = client.get_connection() else {
        return;
    };
    let mut rng = rand::rng();
    while !stop.load(Ordering::Relaxed) {
        let n = {
            let mut a = acked.lock().unwrap();
            a.next += 1;
            a.next
        };
        match rng.random_range(0..4) {
            0 => {
                let r: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(format!("w{id}:s{n}"))
                    .arg(format!("v{n}"))
                    .query(&mut c);
                if r.is_err() {
                    return;
                }
                acked.lock().unwrap().sets.push(n);
            }
            1 => {
                let Ok(v) = redis::cmd("INCR")
                    .arg(format!("w{id}:ctr"))
                    .query::<i64>(&mut c)
                else {
                    return;
                };
                let mut a = acked.lock().unwrap();
                a.incr = a.incr.max(v);
            }
            2 => {
                let r: redis::RedisResult<i64> = redis::cmd("HSET")
                    .arg(format!("w{id}:h"))
                    .arg(format!("f{n}"))
                    .arg(n)
                    .query(&mut c);
                if r.is_err() {
                    return;
                }
                acked.lock().unwrap().hsets.push(n);
            }
            _ => {
                let Ok(len) = redis::cmd("RPUSH")
                    .arg(format!("w{id}:l"))
                    .arg(n)
                    .query::<i64>(&mut c)
                else {
                    return;
                };
                let mut a = acked.lock().unwrap();
                a.rpush = a.rpush.max(len);
            }
        }
    }
}

/// Every acknowledged write of every writer is in the restarted store.
fn verify(c: &mut Connection, acked: &[Arc<Mutex<Acked>>]) {
    for (id, a) in acked.iter().enumerate() {
        let a = a.lock().unwrap().clone();
        let mut p = redis::pipe();
        for n in &a.sets {
            p.cmd("GET").arg(format!("w{id}:s{n}"));
        }
        let got: Vec<Option<String>> = p.query(c).unwrap();
        for (n, v) in a.sets.iter().zip(got) {
            assert_eq!(
                v,
                Some(format!("v{n}")),
                "writer {id}: acknowledged SET s{n} lost"
            );
        }
        let h: HashMap<String, u64> = q(c, &["HGETALL", &format!("w{id}:h")]);
        for n in &a.hsets {
            assert_eq!(
                h.get(&format!("f{n}")),
                Some(n),
                "writer {id}: HSET f{n} lost"
            );
        }
        let ctr: Option<i64> = q(c, &["GET", &format!("w{id}:ctr")]);
        assert!(
            ctr.unwrap_or(0) >= a.incr,
            "writer {id}: counter {ctr:?} below acknowledged {}",
            a.incr
        );
        let len: i64 = q(c, &["LLEN", &format!("w{id}:l")]);
        assert!(
            len >= a.rpush,
            "writer {id}: list length {len} below acknowledged {}",
            a.rpush
        );
    }
}

/// Kill -9 at random moments under concurrent writers, restart, check.
/// Returns the stores' logs of all rounds.
fn crash_rounds(extra: &str, rounds: usize, writers: usize) -> String {
    let mut logs = String::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), extra);
    let acked: Vec<Arc<Mutex<Acked>>> = (0..writers).map(|_| Arc::default()).collect();
    let mut rng = rand::rng();
    for round in 0..rounds {
        let s = Store::start(&cfg);
        let mut c = s.conn();
        verify(&mut c, &acked);
        drop(c);
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = acked
            .iter()
            .enumerate()
            .map(|(id, a)| {
                let (addr, a, stop) = (s.addr.clone(), a.clone(), stop.clone());
                std::thread::spawn(move || writer(addr, id, a, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
        let log = s.kill9();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        assert!(!log.contains("ERROR"), "round {round}: {log}");
        logs.push_str(&log);
    }
    let s = Store::start(&cfg);
    let mut c = s.conn();
    verify(&mut c, &acked);
    let total: usize = acked
        .iter()
        .map(|a| {
            let a = a.lock().unwrap();
            a.sets.len() + a.hsets.len()
        })
        .sum();
    assert!(
        total > 100,
        "too few writes acknowledged to mean anything: {total}"
    );
    s.stop();
    logs
}

#[test]
fn kill9_everysec_loses_no_acknowledged_write() {
    crash_rounds(r#"appendfsync = "everysec""#, 8, 4);
}

#[test]
fn kill9_always_loses_no_acknowledged_write() {
    crash_rounds(r#"appendfsync = "always""#, 4, 4);
}

/// Compaction runs every few kilobytes, so kills land during it.
#[test]
fn kill9_during_compaction_loses_nothing() {
    let logs = crash_rounds(
        r#"appendfsync = "no"
auto_compact_min_size = "16kb"
auto_compact_percentage = 10"#,
        8,
        3,
    );
    let started = logs.matches("compaction: dataset encoded").count();
    let finished = logs.matches("snapshot written").count();
    assert!(started > 0, "no compaction ran: {logs}");
    eprintln!("{started} compactions started, {finished} finished before their kill");
}

fn data(dir: &Path) -> PathBuf {
    dir.join("data")
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data(dir))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn repair(cfg: &Path) -> String {
    let out = Command::new(bin())
        .args(["store", "--repair", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn truncated_tail_is_cut_back_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: () = q(&mut c, &["SET", "b", "2"]);
    s.kill9();
    let log = files(dir.path(), "log-").pop().unwrap();
    let full = std::fs::read(&log).unwrap();
    // Cut the last record (SET b) in half, as a crash mid-write would.
    std::fs::write(&log, &full[..full.len() - 5]).unwrap();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), Some("1".into()));
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "b"]), None);
    let _: () = q(&mut c, &["SET", "c", "3"]);
    let out = s.kill9();
    assert!(
        out.contains("incomplete record")
            && out.contains(&log.display().to_string())
            && out.contains("offset="),
        "{out}"
    );
    // The cut happened, and new records were appended after it cleanly.
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "c"]), Some("3".into()));
    s.stop();
}

/// A store that logged `SET k0 v` .. `SET k19 v` and was killed: its
/// directory, config, log file and the log's bytes, ready to be damaged.
fn twenty_sets_then_crash() -> (tempfile::TempDir, PathBuf, PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    for i in 0..20 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), "v"]);
    }
    s.kill9();
    let log = files(dir.path(), "log-").pop().unwrap();
    let bytes = std::fs::read(&log).unwrap();
    (dir, cfg, log, bytes)
}

#[test]
fn corruption_inside_a_log_refuses_to_start_and_repair_fixes_it() {
    let (_dir, cfg, log, mut bytes) = twenty_sets_then_crash();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&log, &bytes).unwrap();
    let err = Store::must_fail(&cfg);
    // The process's final error line itself names the file and offset.
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&log.display().to_string()), "{err}");
    assert!(last.contains("offset"), "{err}");
    let said = repair(&cfg);
    assert!(said.contains("cut out"), "{said}");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let n: i64 = q(&mut c, &["DBSIZE"]);
    assert_eq!(n, 19, "only the damaged record's key is lost");
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "k0"]),
        Some("v".into())
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "k19"]),
        Some("v".into())
    );
    s.stop();
}

#[test]
fn a_flipped_byte_in_the_last_record_is_corruption_not_a_torn_tail() {
    // The last record is whole: nothing a crash mid-write leaves looks like
    // that, and it may have been acknowledged after an fsync.
    let (_dir, cfg, log, mut bytes) = twenty_sets_then_crash();
    let end = bytes.len();
    bytes[end - 3] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let err = Store::must_fail(&cfg);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.contains(&log.display().to_string()), "{err}");
    assert!(last.contains("checksum"), "{err}");
    let said = repair(&cfg);
    assert!(!said.is_empty(), "--repair said nothing");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 19);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k19"]), None);
    s.stop();
}

#[test]
fn a_missing_log_refuses_to_start_and_repair_loads_without_it() {
    let (dir, cfg, log, _) = twenty_sets_then_crash();
    std::fs::remove_file(&log).unwrap();
    let err = Store::must_fail(&cfg);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.contains(&log.display().to_string()) && last.contains("--repair"),
        "{err}"
    );
    let said = repair(&cfg);
    assert!(
        said.contains("missing; dropped from the manifest"),
        "{said}"
    );
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 0);
    let _: () = q(&mut c, &["SET", "after", "1"]);
    s.kill9();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "after"]),
        Some("1".into())
    );
    s.stop();
    // --repair on a data_dir that is not there says so.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let gone = config(&elsewhere, "");
    let out = Command::new(bin())
        .args(["store", "--config"])
        .arg(&gone)
        .arg("--repair")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("does not exist"), "{text}");
}

/// Offsets of the records of a command log (12-byte header: length, sum).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut v = Vec::new();
    let mut off = 0;
    while off + 12 <= bytes.len() {
        v.push(off);
        off += 12 + u32::from_le_bytes(bytes[off..off + 4].try_into().unwrap()) as usize;
    }
    v
}

#[test]
fn a_damaged_record_length_is_corruption_not_a_torn_tail() {
    let (_dir, cfg, log, mut bytes) = twenty_sets_then_crash();
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 20);
    // The length's high byte: the record now claims to run past the end,
    // exactly like a torn last write, but ten complete records follow.
    bytes[offsets[10] + 3] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let err = Store::must_fail(&cfg);
    assert!(err.contains("damaged record header"), "{err}");
    assert!(err.contains(&format!("offset {}", offsets[10])), "{err}");
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing was cut");
    let said = repair(&cfg);
    assert!(said.contains("cut out"), "{said}");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 19);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k10"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "k19"]), 1);
    s.stop();
}

#[test]
fn turning_appendonly_on_over_a_snapshot_keeps_new_writes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::start(&config(dir.path(), "appendonly = false"));
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: () = q(&mut c, &["SAVE"]);
    s.stop();
    // The manifest names a snapshot and no log: the first start with the
    // log on creates one, and must not then delete it as a stray.
    let cfg = config(dir.path(), "appendonly = true");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "e", "1"]);
    let out = s.kill9();
    assert!(!out.contains("removing a file"), "{out}");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), Some("1".into()));
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "e"]), Some("1".into()));
    s.stop();
}

#[test]
fn a_missing_manifest_refuses_to_start_over_data_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "before", "1"]);
    let _: () = q(&mut c, &["SAVE"]);
    let _: () = q(&mut c, &["SET", "after", "2"]);
    s.kill9();
    std::fs::remove_file(data(dir.path()).join("manifest")).unwrap();
    let err = Store::must_fail(&cfg);
    assert!(
        err.contains("missing, but the data directory holds"),
        "{err}"
    );
    // Refusing twice deletes nothing either.
    Store::must_fail(&cfg);
    let said = repair(&cfg);
    assert!(said.contains("now names snapshot-"), "{said}");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "before"]),
        Some("1".into())
    );
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "after"]),
        Some("2".into())
    );
    s.stop();
}

#[test]
fn an_empty_log_left_by_a_crashed_first_start_does_not_block_the_next() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data(dir.path())).unwrap();
    std::fs::write(data(dir.path()).join("log-1.aof"), b"").unwrap();
    let s = Store::start(&config(dir.path(), ""));
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    s.kill9();
    let s = Store::start(&config(dir.path(), ""));
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), Some("1".into()));
    s.stop();
}

#[test]
fn one_store_per_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let err = Store::must_fail(&cfg);
    assert!(
        err.contains("in use by another running redis-guard store"),
        "{err}"
    );
    let out = Command::new(bin())
        .args(["store", "--repair", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--repair must not run under a live store"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    // The running store is untouched.
    let _: () = q(&mut c, &["SET", "b", "2"]);
    s.kill9();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 2);
    s.stop();
}

#[test]
fn fewer_databases_is_a_setting_to_fix_not_damage_to_repair() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::start(&config(dir.path(), ""));
    let mut c = s.conn();
    let _: () = q(&mut c, &["SELECT", "10"]);
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let _: () = q(&mut c, &["SAVE"]);
    s.stop();
    let small = config(dir.path(), "databases = 4");
    let err = Store::must_fail(&small);
    assert!(
        err.contains("raise store.databases to at least 11"),
        "{err}"
    );
    let out = Command::new(bin())
        .args(["store", "--repair", "--config"])
        .arg(&small)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was changed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        files(dir.path(), "snapshot-")
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".corrupt"))
    );
    let s = Store::start(&config(dir.path(), ""));
    let mut c = s.conn();
    let _: () = q(&mut c, &["SELECT", "10"]);
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "k"]), Some("v".into()));
    s.stop();
}

#[test]
fn a_log_rewrite_is_not_a_save() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::start(&config(dir.path(), ""));
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "k", "v"]);
    let _: () = q(&mut c, &["SAVE"]);
    let before: i64 = q(&mut c, &["LASTSAVE"]);
    let _: () = q(&mut c, &["SET", "k2", "v"]);
    std::thread::sleep(Duration::from_millis(1100));
    let _: String = q(&mut c, &["BGREWRITEAOF"]);
    wait_info(&mut c, "aof_rewrite_in_progress", "0", 10);
    assert_eq!(q::<i64>(&mut c, &["LASTSAVE"]), before);
    let info: String = q(&mut c, &["INFO", "persistence"]);
    assert!(info.contains("rdb_changes_since_last_save:1\r\n"), "{info}");
    s.stop();
}

fn info_field(c: &mut Connection, field: &str) -> String {
    let info: String = q(c, &["INFO", "persistence"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("{field} missing from {info}"))
        .to_string()
}

/// Waits up to `secs` for `INFO persistence` to show `field:want`.
fn wait_info(c: &mut Connection, field: &str, want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while info_field(c, field) != want {
        assert!(
            Instant::now() < deadline,
            "{field} never became {want} within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bgsave_schedule_during_a_rewrite_runs_a_save_after_it() {
    let dir = tempfile::tempdir().unwrap();
    // No automatic compaction: the rewrite below must be the one running.
    let s = Store::start(&config(dir.path(), "auto_compact_percentage = 0"));
    let mut c = s.conn();
    // Enough data that the rewrite is still writing its snapshot when the
    // BGSAVE SCHEDULE right behind it arrives.
    let value = "x".repeat(2000);
    for chunk in 0..50 {
        let mut p = redis::pipe();
        for i in 0..1000 {
            p.cmd("SET")
                .arg(format!("k{chunk}:{i}"))
                .arg(&value)
                .ignore();
        }
        p.query::<()>(&mut c).unwrap();
    }
    assert_eq!(info_field(&mut c, "rdb_saves"), "0");
    let replies: (String, String) = redis::pipe()
        .cmd("BGREWRITEAOF")
        .cmd("BGSAVE")
        .arg("SCHEDULE")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        replies,
        (
            "Background append only file rewriting started".into(),
            "Background saving scheduled".into()
        )
    );
    // The scheduled save runs once the rewrite is done, and as a save.
    wait_info(&mut c, "rdb_saves", "1", 30);
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    assert_eq!(info_field(&mut c, "aof_rewrites"), "1");
    s.stop();
}

#[test]
fn bgsave_and_bgrewriteaof_inside_a_transaction_are_scheduled() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::start(&config(dir.path(), ""));
    let mut c = s.conn();
    let replies: Vec<String> = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("k")
        .arg("v")
        .cmd("BGSAVE")
        .cmd("BGREWRITEAOF")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        replies,
        vec![
            "OK",
            "Background saving scheduled",
            "Background append only file rewriting scheduled"
        ]
    );
    // Both run once the transaction is over: the save first, as a save.
    wait_info(&mut c, "rdb_saves", "1", 10);
    wait_info(&mut c, "aof_rewrites", "1", 10);
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
    s.stop();
}

/// Runs `mount` arguments; panics on failure (these tests run as root).
fn mount(args: &[&str]) {
    let st = Command::new("mount").args(args).status().unwrap();
    assert!(st.success(), "mount {args:?}");
}

#[test]
fn a_full_disk_refuses_writes_loses_no_acknowledged_one_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let d = data(dir.path());
    std::fs::create_dir_all(&d).unwrap();
    let dstr = d.display().to_string();
    mount(&["-t", "tmpfs", "-o", "size=256k", "tmpfs", &dstr]);
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(dstr.clone());
    let cfg = config(dir.path(), "auto_compact_min_size = \"64mb\"");
    let s = Store::start(&cfg);
    // Several writers so that a failed group write carries other clients'
    // records: none of them may be acknowledged.
    let acked: Vec<Arc<Mutex<Vec<String>>>> = (0..4).map(|_| Arc::default()).collect();
    let value = "x".repeat(1000);
    let threads: Vec<_> = acked
        .iter()
        .enumerate()
        .map(|(w, acked)| {
            let (url, acked, value) = (s.url(), acked.clone(), value.clone());
            std::thread::spawn(move || {
                let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
                for i in 0..2000 {
                    let key = format!("w{w}:{i}");
                    match redis::cmd("SET").arg(&key).arg(&value).query::<()>(&mut c) {
                        Ok(()) => acked.lock().unwrap().push(key),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let total: usize = acked.iter().map(|a| a.lock().unwrap().len()).sum();
    assert!(
        total > 0 && total < 8000,
        "the disk should fill: {total} writes acknowledged"
    );
    let mut c = s.conn();
    let e = redis::cmd("SET")
        .arg("late")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("MISCONF"), "{e}");
    // A rewrite that cannot be written leaves no partial file behind to
    // hold the space whose lack made it fail.
    let _ = redis::cmd("BGREWRITEAOF").query::<Value>(&mut c);
    wait_info(&mut c, "aof_rewrite_in_progress", "0", 10);
    let temps: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "left behind: {temps:?}");
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "err");
    assert_ne!(info_field(&mut c, "aof_rewrites_consecutive_failures"), "0");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
    // Room again: the store retries on its own and takes writes again.
    mount(&["-o", "remount,size=64m", &dstr]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis::cmd("SET")
        .arg("late")
        .arg("1")
        .query::<()>(&mut c)
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "writes still refused after space came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    s.kill9();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    for a in &acked {
        for key in a.lock().unwrap().iter() {
            assert_eq!(
                q::<i64>(&mut c, &["EXISTS", key]),
                1,
                "acknowledged {key} lost"
            );
        }
    }
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "late"]),
        Some("1".into())
    );
    s.stop();
}

#[test]
fn corrupted_snapshot_refuses_to_start_and_repair_sets_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "before", "1"]);
    let _: () = q(&mut c, &["SAVE"]);
    let _: () = q(&mut c, &["SET", "after", "2"]);
    s.stop();
    let snap = files(dir.path(), "snapshot-").pop().unwrap();
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[25] ^= 0x01;
    std::fs::write(&snap, &bytes).unwrap();
    let err = Store::must_fail(&cfg);
    assert!(
        err.contains(&snap.display().to_string()) && err.contains("offset"),
        "{err}"
    );
    assert!(err.contains("checksum mismatch"), "{err}");
    let said = repair(&cfg);
    assert!(said.contains("moved aside"), "{said}");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(
        q::<Option<String>>(&mut c, &["GET", "after"]),
        Some("2".into())
    );
    s.stop();
}

#[test]
fn torn_manifest_refuses_to_start_and_repair_rebuilds_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: () = q(&mut c, &["BGREWRITEAOF"]);
    std::thread::sleep(Duration::from_millis(300));
    let _: () = q(&mut c, &["SET", "b", "2"]);
    s.kill9();
    let m = data(dir.path()).join("manifest");
    // A leftover temp manifest from a crash before its rename is ignored.
    std::fs::write(data(dir.path()).join("manifest.tmp"), "redis-guard-manif").unwrap();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "b"]), Some("2".into()));
    s.kill9();
    let text = std::fs::read(&m).unwrap();
    std::fs::write(&m, &text[..text.len() / 2]).unwrap();
    let err = Store::must_fail(&cfg);
    assert!(
        err.contains(&m.display().to_string()) && err.contains("torn manifest"),
        "{err}"
    );
    let said = repair(&cfg);
    assert!(
        said.contains("rebuilding it from the files present"),
        "{said}"
    );
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "a"]), Some("1".into()));
    assert_eq!(q::<Option<String>>(&mut c, &["GET", "b"]), Some("2".into()));
    s.stop();
}

/// The state a crash leaves between compaction's two manifests: the old
/// snapshot and logs plus the new log, and a half-written snapshot.
#[test]
fn crash_between_compaction_steps_loads() {
    use redis_guard::store::persist::Manifest;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "a", "1"]);
    let _: () = q(&mut c, &["SAVE"]);
    let _: () = q(&mut c, &["INCR", "a"]);
    s.kill9();
    let d = data(dir.path());
    let old = Manifest::parse(
        &d.join("manifest"),
        &std::fs::read_to_string(d.join("manifest")).unwrap(),
    )
    .unwrap();
    let g = old.generation() + 1;
    // Records that went to the new tail after the switch.
    std::fs::copy(d.join(&old.logs[0]), d.join(format!("log-{g}.aof"))).unwrap();
    std::fs::write(d.join(&old.logs[0]), b"").unwrap();
    std::fs::write(
        d.join(format!("snapshot-{g}.rgs.tmp")),
        b"RGSNAP\r\n partial",
    )
    .unwrap();
    let mid = Manifest {
        snapshot: old.snapshot.clone(),
        logs: vec![old.logs[0].clone(), format!("log-{g}.aof")],
    };
    std::fs::write(d.join("manifest"), mid.render()).unwrap();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["GET", "a"]), 2);
    assert!(!d.join(format!("snapshot-{g}.rgs.tmp")).exists());
    s.stop();
}

#[test]
fn expiries_survive_restarts_and_lapse_while_down() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "short", "x", "PX", "1500"]);
    let _: () = q(&mut c, &["SET", "long", "x", "EX", "1000"]);
    let _: () = q(&mut c, &["SET", "rel", "x"]);
    let _: i64 = q(&mut c, &["EXPIRE", "rel", "500"]);
    let _: () = q(&mut c, &["SETEX", "snap", "1000", "x"]);
    let _: () = q(&mut c, &["SAVE"]);
    let _: () = q(&mut c, &["SET", "snapshort", "x", "PX", "1200"]);
    let _: () = q(&mut c, &["SAVE"]);
    let before: i64 = q(&mut c, &["PEXPIRETIME", "long"]);
    s.kill9();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    // Replayed with the original clock: the same absolute deadline.
    assert_eq!(q::<i64>(&mut c, &["PEXPIRETIME", "long"]), before);
    let ttl: i64 = q(&mut c, &["TTL", "rel"]);
    assert!((490..=500).contains(&ttl), "{ttl}");
    assert!(q::<i64>(&mut c, &["TTL", "snap"]) > 990);
    s.kill9();
    std::thread::sleep(Duration::from_millis(1600));
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "short", "snapshort"]), 0);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "long", "rel", "snap"]), 3);
    assert_eq!(q::<i64>(&mut c, &["DBSIZE"]), 3);
    s.stop();
}

#[test]
fn multi_exec_is_all_or_nothing_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("t1a")
        .arg(1)
        .ignore()
        .cmd("SET")
        .arg("t1b")
        .arg(1)
        .ignore()
        .query(&mut c)
        .unwrap();
    let _: () = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("t2a")
        .arg(1)
        .ignore()
        .cmd("SELECT")
        .arg(3)
        .ignore()
        .cmd("RPUSH")
        .arg("t2b")
        .arg("x")
        .ignore()
        .query(&mut c)
        .unwrap();
    s.kill9();
    let log = files(dir.path(), "log-").pop().unwrap();
    let full = std::fs::read(&log).unwrap();
    // Tear the second transaction anywhere inside it: it goes whole.
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "t1a", "t1b", "t2a"]), 3);
    let _: () = q(&mut c, &["SELECT", "3"]);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "t2b"]), 1);
    s.kill9();
    std::fs::write(&log, &full[..full.len() - 20]).unwrap();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "t1a", "t1b"]), 2);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "t2a"]), 0);
    let _: () = q(&mut c, &["SELECT", "3"]);
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "t2b"]), 0);
    s.stop();
}

/// Commands whose effect is random or time-dependent replay exactly.
#[test]
fn random_and_blocking_commands_replay_their_effect() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    for i in 0..50 {
        let _: i64 = q(&mut c, &["SADD", "s", &i.to_string()]);
    }
    let _: Vec<String> = q(&mut c, &["SPOP", "s", "10"]);
    let _: Option<String> = q(&mut c, &["SPOP", "s"]);
    let members: Vec<String> = q(&mut c, &["SMEMBERS", "s"]);
    // A blocked pop served by a later push.
    let addr = s.addr.clone();
    let t = std::thread::spawn(move || {
        let mut c2 = redis::Client::open(format!("redis://{addr}/"))
            .unwrap()
            .get_connection()
            .unwrap();
        let v: Vec<String> = q(&mut c2, &["BLPOP", "q", "5"]);
        v
    });
    std::thread::sleep(Duration::from_millis(200));
    let _: i64 = q(&mut c, &["RPUSH", "q", "a", "b"]);
    assert_eq!(t.join().unwrap(), vec!["q".to_string(), "a".to_string()]);
    let _: Option<String> = q(&mut c, &["BRPOPLPUSH", "q", "dst", "1"]);
    s.kill9();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let mut after: Vec<String> = q(&mut c, &["SMEMBERS", "s"]);
    let mut members = members;
    members.sort();
    after.sort();
    assert_eq!(after, members);
    assert_eq!(q::<i64>(&mut c, &["LLEN", "q"]), 0);
    assert_eq!(
        q::<Vec<String>>(&mut c, &["LRANGE", "dst", "0", "-1"]),
        vec!["b"]
    );
    s.stop();
}

#[test]
fn save_bgsave_lastsave_info_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let info: String = q(&mut c, &["INFO", "persistence"]);
    for f in [
        "loading:0",
        "aof_enabled:1",
        "rdb_bgsave_in_progress:0",
        "aof_rewrite_in_progress:0",
        "aof_last_write_status:ok",
    ] {
        assert!(info.contains(f), "{f} in {info}");
    }
    let _: () = q(&mut c, &["SET", "k", "v"]);
    std::thread::sleep(Duration::from_millis(1100));
    let t0: i64 = q(&mut c, &["LASTSAVE"]);
    let _: () = q(&mut c, &["SAVE"]);
    let t1: i64 = q(&mut c, &["LASTSAVE"]);
    assert!(t1 > t0, "{t0} {t1}");
    let r: String = q(&mut c, &["BGSAVE"]);
    assert!(r.starts_with("Background saving"), "{r}");
    let info: String = q(&mut c, &["INFO", "persistence"]);
    assert!(info.contains("rdb_last_save_time:"), "{info}");
    // Everything written is inside data_dir, under our own names.
    std::thread::sleep(Duration::from_millis(300));
    for e in std::fs::read_dir(dir.path()).unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        assert!(n == "data" || n == "store.toml", "stray file {n}");
    }
    // CONFIG SET dir stays refused, so SAVE cannot be pointed elsewhere.
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("dir")
        .arg("/tmp")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(e.to_string().contains("not available"), "{e}");
    // A user without @admin cannot snapshot.
    let mut app = redis::Client::open(format!("redis://app:apppass@{}/", s.addr))
        .unwrap()
        .get_connection()
        .unwrap();
    for cmd in ["SAVE", "BGSAVE", "BGREWRITEAOF", "LASTSAVE"] {
        let e = redis::cmd(cmd).query::<Value>(&mut app).unwrap_err();
        assert!(e.to_string().contains("NOPERM"), "{cmd}: {e}");
    }
    s.stop();
}

#[test]
fn appendonly_off_keeps_only_what_was_saved() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "appendonly = false");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let _: () = q(&mut c, &["SET", "saved", "1"]);
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "1");
    let _: () = q(&mut c, &["SAVE"]);
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
    let _: () = q(&mut c, &["SET", "unsaved", "1"]);
    // Without the log, what a save would keep is what monitoring must see.
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "1");
    s.kill9();
    assert!(files(dir.path(), "log-").is_empty());
    let s = Store::start(&cfg);
    let mut c = s.conn();
    assert_eq!(q::<i64>(&mut c, &["EXISTS", "saved", "unsaved"]), 1);
    assert_eq!(info_field(&mut c, "rdb_last_load_keys_loaded"), "1");
    assert_eq!(info_field(&mut c, "aof_enabled"), "0");
    // Redis shows the log's own figures only while the log is on.
    let info: String = q(&mut c, &["INFO", "persistence"]);
    assert!(!info.contains("aof_current_size"), "{info}");
    s.stop();
}

#[test]
fn clients_get_loading_while_a_large_dataset_loads() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let val = "x".repeat(100);
    for chunk in 0..40 {
        let mut p = redis::pipe();
        for i in 0..5000 {
            p.cmd("SET").arg(format!("k{chunk}:{i}")).arg(&val).ignore();
        }
        let _: () = p.query(&mut c).unwrap();
    }
    s.kill9();
    let s = Store::start(&cfg);
    let client = redis::Client::open(s.url()).unwrap();
    let mut c = client.get_connection().unwrap();
    let mut saw_loading = false;
    let mut saw_info_loading = false;
    loop {
        match redis::cmd("DBSIZE").query::<i64>(&mut c) {
            Ok(n) => {
                assert_eq!(n, 200_000);
                break;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::BusyLoadingError, "{e}");
                assert!(e.to_string().contains("loading the dataset"), "{e}");
                // Like Redis, INFO and PING answer meanwhile.
                if !saw_loading {
                    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
                    saw_info_loading = info.contains("loading:1");
                    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
                    assert_eq!(pong, "PONG");
                }
                saw_loading = true;
            }
        }
    }
    let log = s.log.lock().unwrap().clone();
    assert!(
        saw_loading,
        "200k records loaded before the first command: {log}"
    );
    assert!(saw_info_loading, "INFO persistence never said loading:1");
    eprintln!(
        "{}",
        log.lines()
            .find(|l| l.contains("data loaded"))
            .unwrap_or_default()
    );
    s.stop();
}

/// Keys evicted at random under `maxmemory` are logged as deletions:
/// after a crash exactly the same keys exist.
#[test]
fn evictions_replay_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "maxmemory = \"200kb\"\nmaxmemory_policy = \"allkeys-random\"",
    );
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let val = "x".repeat(200);
    for i in 0..3000 {
        let _: () = q(&mut c, &["SET", &format!("k{i}"), &val]);
    }
    let mut before: Vec<String> = q(&mut c, &["KEYS", "*"]);
    assert!(before.len() < 3000, "nothing was evicted");
    s.kill9();
    let s = Store::start(&cfg);
    let mut c = s.conn();
    let mut after: Vec<String> = q(&mut c, &["KEYS", "*"]);
    before.sort();
    after.sort();
    assert_eq!(before, after);
    s.stop();
}
