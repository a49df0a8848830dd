//! `cargo xtask bench xdp`: the firewall benchmarks, side by side in one run.
//!
//! 1. Drop rate. A SYN flood from a non-allowlisted source at the protected
//!    port, generated with BPF_PROG_RUN in live-frames mode
//!    (BPF_F_TEST_XDP_LIVE_FRAMES) on the server's veth: the kernel runs an
//!    XDP program on page-pool frames exactly as a NIC driver would. For
//!    redis-guard that program is ours (it drops). For nftables it is a
//!    two-instruction XDP_PASS program, so every frame becomes an skb on the
//!    same veth and meets the same policy in nftables (netdev ingress, the
//!    earliest nftables hook, and inet prerouting at raw priority). Same
//!    generator, same frames, same interface, same CPU.
//! 2. Cost for allowed traffic. redis-benchmark from the allowlisted client
//!    namespace to a real redis-server, with the program attached (native and
//!    generic) versus no program, alternating rounds; a bare XDP_PASS program
//!    in each mode shows what the attach mode costs before any program runs.
//! 3. Under a flood. The same redis-benchmark while the outsider's flood runs
//!    at a fixed rate against the attached program, versus no flood.
//!
//! Prints a Markdown report and writes it to target/bench/xdp.md.

use std::{
    fmt::Write as _,
    os::fd::{AsFd, AsRawFd},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use redis_guard::{
    firewall::Firewall,
    frames::TcpFrame,
    lab::{Lab, enter_netns, mac_address, machine_summary, scratch_dir},
    policy::{Policy, XdpMode},
};
use redis_guard_common::{Counter, PROGRAM_NAME};

const LAB_ID: u8 = 121;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

struct Args {
    flood_frames: u32,
    rounds: usize,
    flood_pps: u64,
    requests: u32,
    drop_only: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        flood_frames: 50_000_000,
        rounds: 3,
        flood_pps: 1_000_000,
        requests: 200_000,
        drop_only: false,
    };
    let argv: Vec<String> = std::env::args().collect();
    args.drop_only = argv.iter().any(|a| a == "--drop-only");
    let mut i = 1;
    while i < argv.len() {
        if argv[i] == "--drop-only" {
            i += 1;
            continue;
        }
        let v = argv.get(i + 1).map(String::as_str).unwrap_or("");
        match argv[i].as_str() {
            "--flood-frames" => args.flood_frames = v.parse().expect("--flood-frames N"),
            "--rounds" => args.rounds = v.parse().expect("--rounds N"),
            "--flood-pps" => args.flood_pps = v.parse().expect("--flood-pps N"),
            "--requests" => args.requests = v.parse().expect("--requests N"),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    args
}

fn bpf(cmd: libc::c_long, attr: &mut [u8; 128]) -> std::io::Result<i64> {
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn put32(attr: &mut [u8; 128], off: usize, v: u32) {
    attr[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(attr: &mut [u8; 128], off: usize, v: u64) {
    attr[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads `r0 = action; exit`. With XDP_PASS it is the cheapest possible way
/// into the stack; with XDP_DROP it measures the generator's own ceiling.
fn load_trivial_program(action: u8) -> anyhow::Result<std::os::fd::OwnedFd> {
    // struct bpf_insn {u8 code; u8 dst:4, src:4; s16 off; s32 imm}
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, action, 0, 0, 0]), // mov64 r0, action
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]),      // exit
    ];
    let license = b"GPL\0";
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, BPF_PROG_TYPE_XDP);
    put32(&mut attr, 4, insns.len() as u32);
    put64(&mut attr, 8, insns.as_ptr() as u64);
    put64(&mut attr, 16, license.as_ptr() as u64);
    attr[48..56].copy_from_slice(b"xdp_pass");
    put32(&mut attr, 68, BPF_XDP);
    let fd = bpf(BPF_PROG_LOAD, &mut attr).context("BPF_PROG_LOAD of the pass program")?;
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
}

/// Runs `prog_fd` on `repeat` live copies of `frame` arriving on `ifindex`;
/// returns the wall-clock time the kernel took.
fn live_frames(prog_fd: i32, frame: &[u8], ifindex: u32, repeat: u32) -> anyhow::Result<Duration> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    let ctx: [u32; 6] = [0, frame.len() as u32, 0, ifindex, 0, 0];
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, prog_fd as u32);
    put32(&mut attr, 8, frame.len() as u32);
    put64(&mut attr, 16, frame.as_ptr() as u64);
    put32(&mut attr, 32, repeat);
    put32(&mut attr, 40, std::mem::size_of_val(&ctx) as u32);
    put64(&mut attr, 48, ctx.as_ptr() as u64);
    put32(&mut attr, 64, BPF_F_TEST_XDP_LIVE_FRAMES);
    put32(
        &mut attr,
        72,
        std::env::var("RG_BATCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64),
    );
    let start = Instant::now();
    bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN (live frames)")?;
    Ok(start.elapsed())
}

/// Runs `prog_fd` `repeat` times on `frame` (plain BPF_PROG_TEST_RUN, no
/// live frames); returns the kernel's average ns per run and the action.
fn test_run(prog_fd: i32, frame: &[u8], repeat: u32) -> anyhow::Result<(u32, u32)> {
    let mut out = vec![0u8; frame.len() + 256];
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, prog_fd as u32);
    put32(&mut attr, 8, frame.len() as u32);
    put32(&mut attr, 12, out.len() as u32);
    put64(&mut attr, 16, frame.as_ptr() as u64);
    put64(&mut attr, 24, out.as_mut_ptr() as u64);
    put32(&mut attr, 32, repeat);
    bpf(BPF_PROG_TEST_RUN, &mut attr).context("BPF_PROG_TEST_RUN")?;
    let retval = u32::from_le_bytes(attr[4..8].try_into()?);
    let duration = u32::from_le_bytes(attr[36..40].try_into()?);
    Ok((duration, retval))
}

/// Attaches `prog_fd` to `ifindex` in driver mode with BPF_LINK_CREATE; the
/// program stays attached until the returned link fd is closed.
fn attach_raw(prog_fd: i32, ifindex: u32, native: bool) -> anyhow::Result<std::os::fd::OwnedFd> {
    const BPF_LINK_CREATE: libc::c_long = 28;
    const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
    const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    let mut attr = [0u8; 128];
    put32(&mut attr, 0, prog_fd as u32);
    put32(&mut attr, 4, ifindex);
    put32(&mut attr, 8, BPF_XDP);
    put32(
        &mut attr,
        12,
        if native {
            XDP_FLAGS_DRV_MODE
        } else {
            XDP_FLAGS_SKB_MODE
        },
    );
    let fd = bpf(BPF_LINK_CREATE, &mut attr).context("BPF_LINK_CREATE (xdp)")?;
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
}

fn ifindex(name: &str) -> anyhow::Result<u32> {
    let c = std::ffi::CString::new(name)?;
    match unsafe { libc::if_nametoindex(c.as_ptr()) } {
        0 => bail!("no interface {name} in this namespace"),
        i => Ok(i),
    }
}

fn nft(ns: &str, script: &str) -> anyhow::Result<()> {
    let mut child = Lab::cmd(ns, "nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("nft (install nftables: cargo xtask setup)")?;
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(script.as_bytes())?;
    if !child.wait()?.success() {
        bail!("nft -f failed for:\n{script}");
    }
    Ok(())
}

fn nft_counter(ns: &str, table: &str) -> anyhow::Result<u64> {
    let out = Lab::cmd(ns, "nft")
        .args(["list", "table"])
        .args(table.split(' '))
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let packets = text
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .context("no counter in nft output")?;
    Ok(packets.parse()?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// redis-benchmark from the client namespace; requests/s per test.
fn redis_benchmark(lab: &Lab, requests: u32) -> anyhow::Result<Vec<(String, f64)>> {
    let out = Lab::cmd(&lab.client_ns, "redis-benchmark")
        .args(["-h", &lab.server_v4().to_string(), "-p", "6379"])
        .args([
            "-c",
            "50",
            "-n",
            &requests.to_string(),
            "-t",
            "set,get",
            "-q",
            "--csv",
        ])
        .output()
        .context("redis-benchmark (install redis-tools: cargo xtask setup)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        if cols.len() >= 2 {
            rows.push((cols[0].to_string(), cols[1].parse()?));
        }
    }
    if rows.is_empty() {
        bail!(
            "redis-benchmark produced no results: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(rows)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args();
    let lab = Lab::create(LAB_ID)?;
    let dir = scratch_dir("bench-xdp")?;
    let _redis = lab.start_redis(6379, &dir)?;
    // Everything below (program attach, live frames) happens in the server
    // namespace; spawned helpers enter their own through nsenter.
    enter_netns(&lab.server_ns)?;
    let mut report = String::new();
    writeln!(report, "## `cargo xtask bench xdp`\n")?;
    writeln!(report, "Machine: {}\n", machine_summary())?;

    let policy_text = format!(
        "[firewall]\ninterfaces = [\"{}\", \"{}\"]\nxdp_mode = \"native\"\nports = [6379]\nallow = [\"{}\", \"{}\"]\n",
        lab.server_if_client,
        lab.server_if_attacker,
        lab.client_v4(),
        lab.client_v6()
    );
    let policy = Policy::parse(Path::new("bench.toml"), &policy_text)?;
    let fw_policy = policy.firewall.unwrap();

    // --- 1. drop rate -------------------------------------------------------
    let mut syn = TcpFrame::syn(
        lab.attacker_v4().into(),
        40000,
        lab.server_v4_attacker_side().into(),
        6379,
        7,
    );
    syn.dst_mac = mac_address(&lab.server_ns, &lab.server_if_attacker)?;
    syn.src_mac = mac_address(&lab.attacker_ns, &lab.attacker_if)?;
    let frame = syn.build();
    let atk_if = ifindex(&lab.server_if_attacker)?;
    let pass = load_trivial_program(2)?;
    let bare_drop = load_trivial_program(1)?;

    let mut fw = Firewall::load(&fw_policy)?;
    let our_fd = {
        let prog: &mut aya::programs::Xdp = fw
            .ebpf_mut()
            .program_mut(PROGRAM_NAME)
            .context("program")?
            .try_into()?;
        prog.fd()?.as_fd().try_clone_to_owned()?
    };
    let nft_ingress = format!(
        "table netdev rgbench {{\n chain ingress {{\n  type filter hook ingress device \"{}\" priority 0;\n  ip saddr != {} tcp dport 6379 counter drop\n }}\n}}\n",
        lab.server_if_attacker,
        lab.client_v4()
    );
    let nft_pre = format!(
        "table inet rgbench {{\n chain pre {{\n  type filter hook prerouting priority -300;\n  ip saddr != {} tcp dport 6379 counter drop\n }}\n}}\n",
        lab.client_v4()
    );
    let n = args.flood_frames;
    let mut xdp_pps = Vec::new();
    let mut ingress_pps = Vec::new();
    let mut pre_pps = Vec::new();
    let mut ceiling_pps = Vec::new();
    for round in 0..args.rounds {
        let t = live_frames(bare_drop.as_raw_fd(), &frame, atk_if, n)?;
        ceiling_pps.push(f64::from(n) / t.as_secs_f64());
        let before = fw.counters()?.get(Counter::DroppedNotAllowed);
        let t = live_frames(our_fd.as_raw_fd(), &frame, atk_if, n)?;
        let dropped = fw.counters()?.get(Counter::DroppedNotAllowed) - before;
        if dropped != u64::from(n) {
            bail!("redis-guard dropped {dropped} of {n} frames");
        }
        xdp_pps.push(f64::from(n) / t.as_secs_f64());

        for (script, table, out) in [
            (&nft_ingress, "netdev rgbench", &mut ingress_pps),
            (&nft_pre, "inet rgbench", &mut pre_pps),
        ] {
            nft(&lab.server_ns, script)?;
            let t = live_frames(pass.as_raw_fd(), &frame, atk_if, n)?;
            let dropped = nft_counter(&lab.server_ns, table)?;
            let mut del = Lab::cmd(&lab.server_ns, "nft");
            del.args(["delete", "table"]).args(table.split(' '));
            del.status()?;
            if dropped != u64::from(n) {
                bail!("nftables ({table}) dropped {dropped} of {n} frames");
            }
            out.push(f64::from(n) / t.as_secs_f64());
        }
        eprintln!(
            "drop round {round}: xdp {:.0} pps, nft ingress {:.0} pps, nft prerouting {:.0} pps",
            xdp_pps[round], ingress_pps[round], pre_pps[round]
        );
    }
    let (x, i, p) = (median(xdp_pps), median(ingress_pps), median(pre_pps));
    let ceiling = median(ceiling_pps);
    // Each live-frames call also pays a fixed cost that has nothing to do
    // with the frames (the kernel's set-up and tear-down of the run, 24-30
    // ms here). Long runs keep it out of the rates; the report says how
    // large it is, measured with one batch.
    let mut fixed = Vec::new();
    for _ in 0..5 {
        fixed.push(live_frames(our_fd.as_raw_fd(), &frame, atk_if, 64)?.as_secs_f64() * 1e3);
    }
    let fixed_ms = median(fixed);
    writeln!(
        report,
        "### Drop rate: SYN flood from a non-allowlisted source, one core\n"
    )?;
    writeln!(
        report,
        "{n} live frames per run (BPF_PROG_RUN, BPF_F_TEST_XDP_LIVE_FRAMES, batch 64) on the server veth; median of {} alternating rounds. Every run checks that all frames were dropped (redis-guard's `dropped_not_allowed` counter, the nft rule counter). Each call to the generator also costs a fixed {fixed_ms:.1} ms whatever its frame count (median of 5 calls of one 64-frame batch), included in every run's time: {:.1}% of redis-guard's run here.\n",
        args.rounds,
        fixed_ms / (f64::from(n) / x * 1e3) * 100.0
    )?;
    writeln!(
        report,
        "| dropper | pps | redis-guard ratio |\n|---|---:|---:|"
    )?;
    writeln!(report, "| redis-guard XDP (native) | {x:.0} | 1.00x |")?;
    writeln!(
        report,
        "| nftables netdev ingress | {i:.0} | {:.2}x |",
        x / i
    )?;
    writeln!(
        report,
        "| nftables inet prerouting (raw priority) | {p:.0} | {:.2}x |",
        x / p
    )?;
    writeln!(
        report,
        "| reference: bare `XDP_DROP` program (generator ceiling) | {ceiling:.0} | {:.2}x |\n",
        x / ceiling
    )?;

    // --- per-packet cost of the program itself -------------------------------
    // The same frames through BPF_PROG_TEST_RUN with a repeat count: no
    // generator, no stack, just the program, so the figures say what the
    // program adds to each packet on a real NIC.
    let client_syn = TcpFrame::syn(
        lab.client_v4().into(),
        41000,
        lab.server_v4().into(),
        6379,
        1000,
    );
    let data = client_syn
        .data(5001, b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
        .build();
    test_run(our_fd.as_raw_fd(), &client_syn.build(), 1)?; // the flow's ISN
    let repeat = 2_000_000;
    let cost = |fd: i32, frame: &[u8], want: u32| -> anyhow::Result<f64> {
        let mut runs = Vec::new();
        for _ in 0..args.rounds {
            let (ns, action) = test_run(fd, frame, repeat)?;
            if action != want {
                bail!("unexpected XDP action {action} (wanted {want})");
            }
            runs.push(f64::from(ns));
        }
        Ok(median(runs))
    };
    let bare_ns = cost(pass.as_raw_fd(), &data, 2)?;
    let allowed_ns = cost(our_fd.as_raw_fd(), &data, 2)?;
    let outsider_ns = cost(our_fd.as_raw_fd(), &frame, 1)?;
    writeln!(
        report,
        "### Program cost per packet
"
    )?;
    writeln!(
        report,
        "BPF_PROG_TEST_RUN with repeat {repeat} (the kernel's average per run, including its own loop), median of {} rounds.\n\n| frame | program | ns per packet |\n|---|---|---:|\n| allowed client, mid-stream RESP data | bare `XDP_PASS` | {bare_ns:.0} |\n| allowed client, mid-stream RESP data | redis-guard | {allowed_ns:.0} |\n| outsider SYN (flood) | redis-guard | {outsider_ns:.0} |\n",
        args.rounds
    )?;

    if args.drop_only {
        println!("{report}");
        return Ok(());
    }

    // --- 2. cost for allowed traffic ---------------------------------------
    // Five configurations, alternating: nothing attached; a bare XDP_PASS
    // program in each mode (what the attach mode costs by itself: natively,
    // veth's NAPI receive without GRO and a copy of every cloned skb;
    // generically, the skb path's own copy); redis-guard in each mode.
    let client_if = ifindex(&lab.server_if_client)?;
    let configs = [
        "no program",
        "bare XDP_PASS (native)",
        "redis-guard (native)",
        "bare XDP_PASS (generic)",
        "redis-guard (generic)",
    ];
    let mut rounds: Vec<Vec<Vec<(String, f64)>>> = vec![Vec::new(); configs.len()];
    // The order rotates every round, so each configuration runs in each
    // position equally often and a drift within a round (socket state left
    // by the run before, the machine's own load) cannot favour one of them.
    for round in 0..args.rounds {
        for k in 0..configs.len() {
            let i = (round + k) % configs.len();
            let result = match i {
                0 => redis_benchmark(&lab, args.requests)?,
                1 | 3 => {
                    let _link = attach_raw(pass.as_raw_fd(), client_if, i == 1)?;
                    redis_benchmark(&lab, args.requests)?
                }
                _ => {
                    let mode = if i == 2 {
                        XdpMode::Native
                    } else {
                        XdpMode::Generic
                    };
                    fw.attach(&lab.server_if_client, mode)?;
                    let r = redis_benchmark(&lab, args.requests);
                    fw.detach_all();
                    r?
                }
            };
            rounds[i].push(result);
        }
    }
    let summarise = |rounds: &[Vec<(String, f64)>]| -> Vec<(String, f64)> {
        rounds[0]
            .iter()
            .enumerate()
            .map(|(k, (name, _))| {
                (
                    name.clone(),
                    median(rounds.iter().map(|r| r[k].1).collect()),
                )
            })
            .collect()
    };
    let base = summarise(&rounds[0]);
    writeln!(report, "### Cost for allowed traffic\n")?;
    writeln!(
        report,
        "`redis-benchmark -c 50 -n {} -t set,get` from the allowlisted namespace to redis-server 7.0.15; median of {} rounds, the order of the five rotating every round; ratio = geometric mean of req/s against no program.\n",
        args.requests, args.rounds
    )?;
    writeln!(
        report,
        "| configuration | SET req/s | GET req/s | ratio |\n|---|---:|---:|---:|"
    )?;
    for (i, name) in configs.iter().enumerate() {
        let rows = summarise(&rounds[i]);
        let ratios: Vec<f64> = rows
            .iter()
            .zip(&base)
            .map(|((_, b), (_, a))| b / a)
            .collect();
        let cell = |test: &str| {
            rows.iter()
                .find(|(n, _)| n == test)
                .map_or("-".to_string(), |(_, v)| format!("{v:.0}"))
        };
        writeln!(
            report,
            "| {name} | {} | {} | {:.3}x |",
            cell("SET"),
            cell("GET"),
            geomean(&ratios)
        )?;
    }
    writeln!(report)?;

    // --- 3. under a flood --------------------------------------------------
    fw.attach_all(&fw_policy)?;
    let mut calm_rounds = Vec::new();
    let mut flood_rounds = Vec::new();
    let mut flood_rates = Vec::new();
    for _ in 0..args.rounds {
        calm_rounds.push(redis_benchmark(&lab, args.requests)?);
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let flood = {
            let (stop, sent, frame) = (stop.clone(), sent.clone(), frame.clone());
            let fd = our_fd.as_raw_fd();
            let target = args.flood_pps;
            std::thread::spawn(move || -> anyhow::Result<f64> {
                let start = Instant::now();
                let chunk = 10_000u32;
                while !stop.load(Ordering::Relaxed) {
                    live_frames(fd, &frame, atk_if, chunk)?;
                    let total =
                        sent.fetch_add(u64::from(chunk), Ordering::Relaxed) + u64::from(chunk);
                    let due = Duration::from_secs_f64(total as f64 / target as f64);
                    if let Some(wait) = due.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                Ok(sent.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
            })
        };
        let result = redis_benchmark(&lab, args.requests);
        stop.store(true, Ordering::Relaxed);
        let rate = flood.join().expect("flood thread")?;
        flood_rounds.push(result?);
        flood_rates.push(rate);
    }
    let calm = summarise(&calm_rounds);
    let flooded = summarise(&flood_rounds);
    writeln!(report, "### Allowed clients under a flood\n")?;
    writeln!(
        report,
        "The same redis-benchmark while the attacker's SYN flood hits the attached program at {:.0} pps (measured; target {}), versus no flood; median of {} alternating rounds.\n",
        median(flood_rates),
        args.flood_pps,
        args.rounds
    )?;
    writeln!(
        report,
        "| test | no flood (req/s) | under flood (req/s) | ratio |\n|---|---:|---:|---:|"
    )?;
    let mut ratios = Vec::new();
    for ((name, a), (_, b)) in calm.iter().zip(&flooded) {
        ratios.push(b / a);
        writeln!(report, "| {name} | {a:.0} | {b:.0} | {:.3}x |", b / a)?;
    }
    writeln!(report, "| geometric mean | | | {:.3}x |", geomean(&ratios))?;
    drop(fw);

    println!("{report}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("xdp.md"), &report)?;
    Ok(())
}
