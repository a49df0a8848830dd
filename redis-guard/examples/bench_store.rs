//! `cargo xtask bench store`: the bundled store against Debian's
//! redis-server, side by side in one run on loopback.
//!
//! 1. Throughput: `redis-benchmark -c 50 -t set,get,incr,lpush,rpop,sadd,
//!    hset,zadd,lrange_100` at `-P 1` and `-P 16`, both servers requiring a
//!    password, runs alternating between the servers; per-test requests/s and
//!    p99 latency, medians over rounds, geometric mean of the ratios.
//! 2. Memory: 1M keys with 64-byte values loaded through `redis-cli --pipe`;
//!    our RSS versus redis's `used_memory_rss`.
//!
//! With `--persistence` it measures durability instead, both servers
//! logging every write with `appendfsync everysec`:
//!
//! 1. SET throughput, `redis-benchmark -c 50 -t set` at `-P 1` and `-P 16`.
//! 2. Restart time with 1M keys: from process start until `DBSIZE` answers
//!    the full count, once replaying the log alone and once after a
//!    compaction (`BGREWRITEAOF`: RDB-preamble base / our snapshot).
//!
//! `--threads N` runs the store with `threads = N` instead of its default
//! (one worker per CPU). Prints a Markdown report and writes it to
//! target/bench/store.md (or store-persistence.md).

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use redis_guard::{
    lab::{ChildGuard, machine_summary, scratch_dir},
    store::auth::sha256_hex,
};

const PASSWORD: &str = "bench-password-8c1f2e";
const REDIS_PORT: u16 = 6501;
const OURS_PORT: u16 = 6502;
const TESTS: &str = "set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100";

struct Args {
    requests: u32,
    rounds: usize,
    keys: u32,
}

/// `store.threads` for the store under test (`--threads N`); unset keeps
/// the store's default (one worker per CPU). Global because every way of
/// starting the store reads it.
static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

fn parse_args() -> Args {
    let mut args = Args {
        requests: 200_000,
        rounds: 3,
        keys: 1_000_000,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i + 1 < argv.len() {
        let v = &argv[i + 1];
        match argv[i].as_str() {
            "--requests" => args.requests = v.parse().expect("--requests N"),
            "--rounds" => args.rounds = v.parse().expect("--rounds N"),
            "--keys" => args.keys = v.parse().expect("--keys N"),
            "--threads" => {
                let _ = THREADS.set(v.parse().expect("--threads N"));
            }
            // Flags without a value (`--persistence`, `--memory-only`).
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

/// `redis-cli -p PORT -a PASSWORD` (without the warning about -a).
fn cli(port: u16) -> Command {
    let mut c = Command::new("redis-cli");
    c.args(["-p", &port.to_string(), "--no-auth-warning", "-a", PASSWORD]);
    c
}

fn wait_for_ping(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = cli(port).args(["PING"]).output()?;
        if String::from_utf8_lossy(&out.stdout).trim() == "PONG" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("server on port {port} did not answer PING");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether both servers log writes (`appendonly yes`, `appendfsync everysec`).
#[derive(Clone, Copy, PartialEq)]
enum Durability {
    Off,
    Everysec,
}

fn spawn_redis(dir: &Path, d: Durability) -> anyhow::Result<ChildGuard> {
    let aof = if d == Durability::Everysec {
        "yes"
    } else {
        "no"
    };
    let child = Command::new("redis-server")
        .args(["--port", &REDIS_PORT.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            aof,
            "--appendfsync",
            "everysec",
        ])
        .args(["--dir", &dir.display().to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("redis-server (cargo xtask setup installs it)")?;
    Ok(ChildGuard::new(child, "redis-server"))
}

fn start_redis(dir: &Path) -> anyhow::Result<ChildGuard> {
    start_redis_with(dir, Durability::Off)
}

fn start_redis_with(dir: &Path, d: Durability) -> anyhow::Result<ChildGuard> {
    let guard = spawn_redis(dir, d)?;
    wait_for_ping(REDIS_PORT)?;
    Ok(guard)
}

fn start_ours(bin: &Path, dir: &Path) -> anyhow::Result<ChildGuard> {
    start_ours_with(bin, dir, Durability::Off)
}

fn start_ours_with(bin: &Path, dir: &Path, d: Durability) -> anyhow::Result<ChildGuard> {
    let guard = spawn_ours(bin, dir, d)?;
    wait_for_ping(OURS_PORT)?;
    Ok(guard)
}

/// Which worker count the store ran with, for the report.
fn threads_note() -> String {
    match THREADS.get() {
        Some(n) => format!("redis-guard with `threads = {n}`"),
        None => "redis-guard with its default `threads` (one worker per CPU)".into(),
    }
}

fn spawn_ours(bin: &Path, dir: &Path, d: Durability) -> anyhow::Result<ChildGuard> {
    let config = dir.join("store.toml");
    let mut persistence = match d {
        Durability::Off => "appendonly = false",
        Durability::Everysec => "appendonly = true\nappendfsync = \"everysec\"",
    }
    .to_string();
    if let Some(n) = THREADS.get() {
        persistence.push_str(&format!("\nthreads = {n}"));
    }
    std::fs::write(
        &config,
        format!(
            "[store]\nlisten = [\"127.0.0.1:{OURS_PORT}\"]\ndata_dir = \"{}\"\n{persistence}\n\n[[store.users]]\nname = \"default\"\npassword_sha256 = \"{}\"\nrules = \"on ~* &* +@all\"\n",
            dir.join("data").display(),
            sha256_hex(PASSWORD.as_bytes())
        ),
    )?;
    let child = Command::new(bin)
        .args(["store", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("store.log"))?)
        .spawn()
        .with_context(|| format!("{} store", bin.display()))?;
    Ok(ChildGuard::new(child, "redis-guard store"))
}

/// One redis-benchmark run: (test, rps, p99 ms) per test.
fn benchmark(port: u16, pipeline: u32, requests: u32) -> anyhow::Result<Vec<(String, f64, f64)>> {
    benchmark_tests(port, pipeline, requests, TESTS)
}

fn benchmark_tests(
    port: u16,
    pipeline: u32,
    requests: u32,
    tests: &str,
) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-a", PASSWORD, "-c", "50"])
        .args(["-n", &requests.to_string(), "-P", &pipeline.to_string()])
        .args(["-t", tests, "--csv", "-q"])
        .output()
        .context("redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        // test, rps, avg, min, p50, p95, p99, max
        if cols.len() >= 7 {
            rows.push((cols[0].to_string(), cols[1].parse()?, cols[6].parse()?));
        }
    }
    if rows.is_empty() {
        bail!(
            "redis-benchmark gave no results on port {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(rows)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

fn load_keys(port: u16, keys: u32) -> anyhow::Result<()> {
    let mut child = cli(port)
        .args(["--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let mut stdin = std::io::BufWriter::new(child.stdin.take().unwrap());
    let value = "v".repeat(64);
    for i in 0..keys {
        let key = format!("key:{i:010}");
        write!(
            stdin,
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$64\r\n{value}\r\n",
            key.len()
        )?;
    }
    drop(stdin);
    if !child.wait()?.success() {
        bail!("redis-cli --pipe failed on port {port}");
    }
    Ok(())
}

fn info_field(port: u16, section: &str, field: &str) -> anyhow::Result<u64> {
    let out = cli(port).args(["INFO", section]).output()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .context("field missing from INFO")?
        .trim()
        .parse()
        .context("INFO field is not a number")
}

fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb * 1024)
}

/// Milliseconds from `spawn` until the server on `port` answers `DBSIZE`
/// with `keys` (it answers `-LOADING` or refuses connections before).
fn time_to_ready(
    port: u16,
    keys: u32,
    spawn: impl FnOnce() -> anyhow::Result<ChildGuard>,
) -> anyhow::Result<(f64, ChildGuard)> {
    use std::io::{BufRead, BufReader};
    let started = Instant::now();
    let guard = spawn()?;
    let deadline = started + Duration::from_secs(300);
    let auth = format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{PASSWORD}\r\n", PASSWORD.len());
    loop {
        if Instant::now() > deadline {
            bail!("server on port {port} did not load {keys} keys in time");
        }
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        s.write_all(auth.as_bytes())?;
        let mut r = BufReader::new(s.try_clone()?);
        let mut line = String::new();
        r.read_line(&mut line)?;
        loop {
            s.write_all(b"*1\r\n$6\r\nDBSIZE\r\n")?;
            line.clear();
            if r.read_line(&mut line)? == 0 {
                break;
            }
            if let Some(n) = line.trim().strip_prefix(':') {
                if n.parse::<u32>().ok() == Some(keys) {
                    return Ok((started.elapsed().as_secs_f64() * 1000.0, guard));
                }
                bail!("server on port {port} loaded {n} keys, expected {keys}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Flushes every dirty page to disk and lets both servers' once-a-second
/// fsync pass, so a durability run does not pay for the writeback of the
/// run before it.
fn settle_disk() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_millis(1100));
}

fn persistence(args: &Args, bin: &Path) -> anyhow::Result<()> {
    let dir = scratch_dir("bench-store-persistence")?;
    let redis_dir = dir.join("redis");
    let ours_dir = dir.join("ours");
    for d in [&redis_dir, &ours_dir] {
        let _ = std::fs::remove_dir_all(d);
        std::fs::create_dir_all(d)?;
    }
    let e = Durability::Everysec;
    let mut report = String::new();
    writeln!(report, "## `cargo xtask bench store --persistence`\n")?;
    writeln!(
        report,
        "Machine: {}; both servers on 127.0.0.1 requiring a password, logging every write with `appendfsync everysec` (redis-server: `--appendonly yes --appendfsync everysec --save \"\"`), runs alternating; {}.\n",
        machine_summary(),
        threads_note()
    )?;
    {
        let _redis = start_redis_with(&redis_dir, e)?;
        let _ours = start_ours_with(bin, &ours_dir, e)?;
        for pipeline in [1u32, 16] {
            let mut theirs = Vec::new();
            let mut mine = Vec::new();
            for round in 0..args.rounds {
                // Which server goes first swaps every round, and every run
                // starts with no dirty pages left by the one before: the
                // previous run's log is still being written back (and
                // fsynced within the second) when the next starts, which
                // would otherwise always tax the same server.
                let order = if round % 2 == 0 {
                    [REDIS_PORT, OURS_PORT]
                } else {
                    [OURS_PORT, REDIS_PORT]
                };
                for port in order {
                    settle_disk();
                    let r = benchmark_tests(port, pipeline, args.requests, "set")?[0].clone();
                    if port == REDIS_PORT {
                        theirs.push(r);
                    } else {
                        mine.push(r);
                    }
                }
                eprintln!("SET -P {pipeline} round {round} done");
            }
            let r = median(theirs.iter().map(|x| x.1).collect());
            let o = median(mine.iter().map(|x| x.1).collect());
            let rp = median(theirs.iter().map(|x| x.2).collect());
            let op = median(mine.iter().map(|x| x.2).collect());
            if pipeline == 1 {
                writeln!(
                    report,
                    "### SET throughput, `redis-benchmark -c 50 -n {} -t set`, median of {} rounds\n",
                    args.requests, args.rounds
                )?;
                writeln!(
                    report,
                    "| pipeline | redis-server req/s | redis-guard req/s | ratio | redis p99 ms | redis-guard p99 ms |\n|---|---:|---:|---:|---:|---:|"
                )?;
            }
            writeln!(
                report,
                "| -P {pipeline} | {r:.0} | {o:.0} | {:.2}x | {rp:.3} | {op:.3} |",
                o / r
            )?;
        }
        writeln!(report)?;
    }
    // Fresh directories: the restart measurement holds exactly `keys` keys.
    for d in [&redis_dir, &ours_dir] {
        std::fs::remove_dir_all(d)?;
        std::fs::create_dir_all(d)?;
    }
    {
        let _redis = start_redis_with(&redis_dir, e)?;
        let _ours = start_ours_with(bin, &ours_dir, e)?;
        load_keys(REDIS_PORT, args.keys)?;
        load_keys(OURS_PORT, args.keys)?;
        // Let everysec write everything out before the graceful stop.
        std::thread::sleep(Duration::from_secs(2));
    }
    writeln!(
        report,
        "### Restart with {} keys (64-byte values): process start until `DBSIZE` answers the full count, median of {} restarts\n",
        args.keys, args.rounds
    )?;
    writeln!(
        report,
        "| data on disk | redis-server ms | redis-guard ms | ratio (redis / ours) |\n|---|---:|---:|---:|"
    )?;
    for compacted in [false, true] {
        if compacted {
            for port in [REDIS_PORT, OURS_PORT] {
                let _g = if port == REDIS_PORT {
                    start_redis_with(&redis_dir, e)?
                } else {
                    start_ours_with(bin, &ours_dir, e)?
                };
                // Wait for loading, then compact and wait for it to finish.
                let (_, g) = time_to_ready(port, args.keys, || Ok(_g))?;
                cli(port).args(["BGREWRITEAOF"]).output()?;
                let deadline = Instant::now() + Duration::from_secs(120);
                while info_field(port, "persistence", "aof_rewrite_in_progress")? == 1 {
                    if Instant::now() > deadline {
                        bail!("compaction on port {port} did not finish");
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::thread::sleep(Duration::from_millis(500));
                drop(g);
            }
        }
        let mut theirs = Vec::new();
        let mut mine = Vec::new();
        for _ in 0..args.rounds {
            let (t, g) = time_to_ready(REDIS_PORT, args.keys, || spawn_redis(&redis_dir, e))?;
            drop(g);
            theirs.push(t);
            let (t, g) = time_to_ready(OURS_PORT, args.keys, || spawn_ours(bin, &ours_dir, e))?;
            drop(g);
            mine.push(t);
        }
        let r = median(theirs);
        let o = median(mine);
        let what = if compacted {
            "after `BGREWRITEAOF` (redis: RDB-preamble base; ours: snapshot)"
        } else {
            "command log only (1M `SET` records)"
        };
        writeln!(report, "| {what} | {r:.0} | {o:.0} | {:.2}x |", r / o)?;
        eprintln!("restart ({what}) done");
    }
    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("store-persistence.md"), &report)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let bin = std::env::var_os("REDIS_GUARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/redis-guard"));
    if std::env::args().any(|a| a == "--persistence") {
        return persistence(&args, &bin);
    }
    let dir = scratch_dir("bench-store")?;
    let mut redis = Some(start_redis(&dir)?);
    let mut ours = Some(start_ours(&bin, &dir)?);

    let mut report = String::new();
    writeln!(report, "## `cargo xtask bench store`\n")?;
    writeln!(
        report,
        "Machine: {}; both servers on 127.0.0.1 requiring a password (`-a`), runs alternating; {}.\n",
        machine_summary(),
        threads_note()
    )?;

    let skip_throughput = std::env::args().any(|a| a == "--memory-only");
    for pipeline in [1u32, 16] {
        if skip_throughput {
            break;
        }
        let mut theirs = Vec::new();
        let mut mine = Vec::new();
        for round in 0..args.rounds {
            // Which server goes first swaps every round, so neither always
            // runs on the socket and cache state the other left behind.
            if round % 2 == 0 {
                theirs.push(benchmark(REDIS_PORT, pipeline, args.requests)?);
                mine.push(benchmark(OURS_PORT, pipeline, args.requests)?);
            } else {
                mine.push(benchmark(OURS_PORT, pipeline, args.requests)?);
                theirs.push(benchmark(REDIS_PORT, pipeline, args.requests)?);
            }
            eprintln!("-P {pipeline} round {round} done");
        }
        writeln!(
            report,
            "### Throughput, `redis-benchmark -c 50 -n {} -P {pipeline} -t {TESTS}`\n",
            args.requests
        )?;
        writeln!(
            report,
            "| test | redis-server req/s | redis-guard req/s | ratio | redis p99 ms | redis-guard p99 ms |\n|---|---:|---:|---:|---:|---:|"
        )?;
        let mut ratios = Vec::new();
        for (k, (name, _, _)) in theirs[0].iter().enumerate() {
            let r = median(theirs.iter().map(|run| run[k].1).collect());
            let o = median(mine.iter().map(|run| run[k].1).collect());
            let rp = median(theirs.iter().map(|run| run[k].2).collect());
            let op = median(mine.iter().map(|run| run[k].2).collect());
            ratios.push(o / r);
            writeln!(
                report,
                "| {name} | {r:.0} | {o:.0} | {:.2}x | {rp:.3} | {op:.3} |",
                o / r
            )?;
        }
        writeln!(
            report,
            "| **geometric mean** | | | **{:.2}x** | | |\n",
            geomean(&ratios)
        )?;
    }

    // Memory: fresh processes, so neither carries allocator pages left over
    // from the throughput runs.
    redis.take();
    ours.take();
    let redis = start_redis(&dir)?;
    let ours = start_ours(&bin, &dir)?;
    load_keys(REDIS_PORT, args.keys)?;
    load_keys(OURS_PORT, args.keys)?;
    // Steady state, not a snapshot mid-purge: both allocators return freed
    // pages in the background, so poll until neither RSS moves by more
    // than 0.5% over a second (at most 15 s).
    let mut redis_rss = info_field(REDIS_PORT, "memory", "used_memory_rss")?;
    let mut ours_rss = rss_bytes(ours.pid())?;
    for _ in 0..15 {
        std::thread::sleep(Duration::from_secs(1));
        let (r, o) = (
            info_field(REDIS_PORT, "memory", "used_memory_rss")?,
            rss_bytes(ours.pid())?,
        );
        let settled = |a: u64, b: u64| a.abs_diff(b) * 200 <= a.max(b);
        let done = settled(r, redis_rss) && settled(o, ours_rss);
        (redis_rss, ours_rss) = (r, o);
        if done {
            break;
        }
    }
    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    writeln!(
        report,
        "### Memory, {} keys with 64-byte values\n",
        args.keys
    )?;
    writeln!(
        report,
        "| server | RSS | ratio |\n|---|---:|---:|\n| redis-server (`used_memory_rss`) | {:.1} MiB | 1.00x |\n| redis-guard (VmRSS) | {:.1} MiB | {:.2}x |",
        mb(redis_rss),
        mb(ours_rss),
        ours_rss as f64 / redis_rss as f64
    )?;
    drop(redis);
    drop(ours);

    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("store.md"), &report)?;
    Ok(())
}
