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
//! Prints a Markdown report and writes it to target/bench/store.md.

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
            _ => {}
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

fn start_redis(dir: &Path) -> anyhow::Result<ChildGuard> {
    let child = Command::new("redis-server")
        .args(["--port", &REDIS_PORT.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--requirepass",
            PASSWORD,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", &dir.display().to_string()])
        .stdout(Stdio::null())
        .spawn()
        .context("redis-server (cargo xtask setup installs it)")?;
    let guard = ChildGuard::new(child, "redis-server");
    wait_for_ping(REDIS_PORT)?;
    Ok(guard)
}

fn start_ours(bin: &Path, dir: &Path) -> anyhow::Result<ChildGuard> {
    let config = dir.join("store.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nlisten = [\"127.0.0.1:{OURS_PORT}\"]\ndata_dir = \"{}\"\n\n[[store.users]]\nname = \"default\"\npassword_sha256 = \"{}\"\nrules = \"on ~* &* +@all\"\n",
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
    let guard = ChildGuard::new(child, "redis-guard store");
    wait_for_ping(OURS_PORT)?;
    Ok(guard)
}

/// One redis-benchmark run: (test, rps, p99 ms) per test.
fn benchmark(port: u16, pipeline: u32, requests: u32) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-a", PASSWORD, "-c", "50"])
        .args(["-n", &requests.to_string(), "-P", &pipeline.to_string()])
        .args(["-t", TESTS, "--csv", "-q"])
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

fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let bin = std::env::var_os("REDIS_GUARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/redis-guard"));
    let dir = scratch_dir("bench-store")?;
    let mut redis = Some(start_redis(&dir)?);
    let mut ours = Some(start_ours(&bin, &dir)?);

    let mut report = String::new();
    writeln!(report, "## `cargo xtask bench store`\n")?;
    writeln!(
        report,
        "Machine: {}; both servers on 127.0.0.1 requiring a password (`-a`), runs alternating.\n",
        machine_summary()
    )?;

    let skip_throughput = std::env::args().any(|a| a == "--memory-only");
    for pipeline in [1u32, 16] {
        if skip_throughput {
            break;
        }
        let mut theirs = Vec::new();
        let mut mine = Vec::new();
        for round in 0..args.rounds {
            theirs.push(benchmark(REDIS_PORT, pipeline, args.requests)?);
            mine.push(benchmark(OURS_PORT, pipeline, args.requests)?);
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
