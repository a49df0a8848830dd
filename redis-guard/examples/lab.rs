//! `cargo xtask lab`: the namespace lab, interactive.
//!
//! Builds a server namespace running `redis-guard run` in front of a real
//! redis-server, an allowlisted client namespace and an attacker namespace,
//! shows what each of them gets, then waits for Ctrl-C and tears everything
//! down (`--once` tears down at once).

use std::{
    net::IpAddr,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use redis_guard::lab::{Lab, scratch_dir};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

const LAB_ID: u8 = 120;

fn main() -> anyhow::Result<()> {
    let once = std::env::args().any(|a| a == "--once");
    let bin = std::env::var_os("REDIS_GUARD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/release/redis-guard"));
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }

    let lab = Lab::create(LAB_ID)?;
    let dir = scratch_dir("lab")?;
    println!("== redis-guard lab (scratch files in {})", dir.display());
    let _redis = lab.start_redis(6379, &dir)?;
    let mut daemon = lab.start_daemon(&bin, &dir, "")?;
    let server: IpAddr = lab.server_v4().into();
    let server_atk: IpAddr = lab.server_v4_attacker_side().into();

    println!(
        "server   {}: redis-server 7 on :6379, redis-guard on {} and {} (native XDP)",
        lab.server_ns, lab.server_if_client, lab.server_if_attacker
    );
    println!(
        "client   {}: {} / {} (allowlisted)",
        lab.client_ns,
        lab.client_v4(),
        lab.client_v6()
    );
    println!(
        "attacker {}: {} / {} (not allowlisted)\n",
        lab.attacker_ns,
        lab.attacker_v4(),
        lab.attacker_v6()
    );

    println!(
        "client   redis-cli PING               -> {}",
        Lab::redis_cli(&lab.client_ns, server, 6379, &["PING"])
    );
    println!(
        "client   redis-cli -h {} PING   -> {}",
        lab.server_v6(),
        Lab::redis_cli(&lab.client_ns, lab.server_v6().into(), 6379, &["PING"])
    );
    Lab::redis_cli(
        &lab.client_ns,
        server,
        6379,
        &["SET", "lab:greeting", "hello"],
    );
    println!(
        "attacker TCP connect to :6379         -> {} (SYN dropped by XDP)",
        Lab::connect_outcome(&lab.attacker_ns, server_atk, 6379)
    );
    Lab::send_raw(
        &lab.client_ns,
        server,
        6379,
        b"POST / HTTP/1.1\r\nHost: redis\r\n\r\nSET lab:pwned 1\r\nFLUSHALL\r\n",
    )?;
    println!(
        "client   HTTP POST carrying FLUSHALL  -> flow marked and dropped; lab:greeting = {:?}, lab:pwned exists = {}",
        Lab::redis_cli(&lab.client_ns, server, 6379, &["GET", "lab:greeting"]),
        Lab::redis_cli(&lab.client_ns, server, 6379, &["EXISTS", "lab:pwned"]),
    );
    std::thread::sleep(Duration::from_millis(300));
    println!("\n== redis-guard stats\n{}", daemon.stats_text()?);
    println!("== security events (JSON lines)\n{}", daemon.events());

    if !once {
        println!("Try it yourself (as root), then press Ctrl-C to tear the lab down:");
        println!(
            "  nsenter --net=/run/netns/{} redis-cli -h {server} PING",
            lab.client_ns
        );
        println!(
            "  nsenter --net=/run/netns/{} redis-cli -h {server_atk} PING    # hangs: dropped",
            lab.attacker_ns
        );
        println!(
            "  {} stats --pin-path {}",
            bin.display(),
            daemon.pin_path.display()
        );
        println!("  tail -f {}", daemon.stdout.display());
        while !STOP.load(Ordering::SeqCst) {
            if daemon.guard.exited().is_some() {
                println!("redis-guard exited:\n{}", daemon.log());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!("tearing down the lab");
    let _ = daemon.guard.terminate(Duration::from_secs(10));
    drop(_redis);
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
