//! End-to-end tests: the real daemon attached (native XDP) to veths in
//! network namespaces, a real redis-server behind it, real clients in front.
//! Needs root, iproute2, python3, redis-server and redis-cli
//! (`cargo xtask setup`); without them the tests fail, they never skip.

use std::{
    net::IpAddr,
    path::Path,
    sync::atomic::{AtomicU8, Ordering},
    time::{Duration, Instant},
};

use redis_guard::lab::{Daemon, Lab, scratch_dir};

/// Lab ids 1..=60 belong to this test binary; each test takes its own.
static NEXT_LAB: AtomicU8 = AtomicU8::new(1);

fn lab() -> Lab {
    Lab::create(NEXT_LAB.fetch_add(1, Ordering::SeqCst)).expect("creating the namespace lab")
}

fn start_daemon(lab: &Lab, dir: &Path, extra: &str) -> Daemon {
    lab.start_daemon(Path::new(env!("CARGO_BIN_EXE_redis-guard")), dir, extra)
        .expect("starting redis-guard run")
}

fn start_daemon_result(lab: &Lab, dir: &Path, extra: &str) -> anyhow::Result<Daemon> {
    lab.start_daemon(Path::new(env!("CARGO_BIN_EXE_redis-guard")), dir, extra)
}

fn connect_outcome(ns: &str, addr: IpAddr, port: u16) -> String {
    Lab::connect_outcome(ns, addr, port)
}

fn send_raw(ns: &str, addr: IpAddr, port: u16, payload: &[u8]) {
    Lab::send_raw(ns, addr, port, payload).unwrap();
}

fn redis_cli(ns: &str, host: IpAddr, args: &[&str]) -> String {
    Lab::redis_cli(ns, host, 6379, args)
}

fn xdp_attached(ns: &str, ifname: &str) -> bool {
    Lab::xdp_attached(ns, ifname)
}

#[test]
fn outsider_syn_is_dropped_and_allowlisted_client_is_served_v4() {
    let lab = lab();
    let dir = scratch_dir("e2e-v4").unwrap();
    let _redis = lab.start_redis(6379, &dir).unwrap();
    let daemon = start_daemon(&lab, &dir, "");
    assert!(daemon.log().contains("mode=\"native\"") || daemon.log().contains("mode=native"));
    assert!(xdp_attached(&lab.server_ns, &lab.server_if_client));

    assert_eq!(
        redis_cli(&lab.client_ns, lab.server_v4().into(), &["PING"]),
        "PONG"
    );
    assert_eq!(
        connect_outcome(&lab.attacker_ns, lab.server_v4_attacker_side().into(), 6379),
        "timeout",
        "an outsider's SYN must be dropped silently (timeout, not refused)"
    );
    // Other ports on the same host are untouched: nothing listens there, so
    // the kernel itself answers with a RST.
    assert_eq!(
        connect_outcome(&lab.attacker_ns, lab.server_v4_attacker_side().into(), 6390),
        "refused"
    );
    let stats = daemon.stats_json().unwrap();
    assert!(stats["counters"]["dropped_not_allowed"].as_u64().unwrap() >= 1);
    assert!(stats["counters"]["passed"].as_u64().unwrap() >= 1);
    assert_eq!(stats["mode"], "enforce");
}

#[test]
fn outsider_syn_is_dropped_and_allowlisted_client_is_served_v6() {
    let lab = lab();
    let dir = scratch_dir("e2e-v6").unwrap();
    let _redis = lab.start_redis(6379, &dir).unwrap();
    let daemon = start_daemon(&lab, &dir, "");
    assert_eq!(
        redis_cli(&lab.client_ns, lab.server_v6().into(), &["PING"]),
        "PONG"
    );
    assert_eq!(
        connect_outcome(&lab.attacker_ns, lab.server_v6_attacker_side().into(), 6379),
        "timeout"
    );
    let stats = daemon.stats_json().unwrap();
    assert!(stats["counters"]["dropped_not_allowed"].as_u64().unwrap() >= 1);
}

#[test]
fn http_carrying_redis_commands_never_reaches_redis() {
    let lab = lab();
    let dir = scratch_dir("e2e-http").unwrap();
    let _redis = lab.start_redis(6379, &dir).unwrap();
    let server: IpAddr = lab.server_v4().into();
    // No Host: header, so even Redis 7's own POST/Host: guard would not stop
    // this one: only the XDP layer stands between it and SET.
    let put = b"PUT /x HTTP/1.1\r\nContent-Type: text/plain\r\n\r\nSET pwned_put 1\r\n";
    let post = b"POST / HTTP/1.1\r\nHost: 10.77.0.1:6379\r\n\r\nSET pwned_post 1\r\n";

    let mut daemon = start_daemon(&lab, &dir, "");
    send_raw(&lab.client_ns, server, 6379, put);
    send_raw(&lab.client_ns, server, 6379, post);
    // A pipelined RESP value containing an HTTP request line still works.
    let value = "POST /x HTTP/1.1";
    assert_eq!(
        redis_cli(&lab.client_ns, server, &["SET", "innocent", value]),
        "OK"
    );
    assert_eq!(
        redis_cli(&lab.client_ns, server, &["GET", "innocent"]),
        value
    );
    assert_eq!(
        redis_cli(&lab.client_ns, server, &["EXISTS", "pwned_put"]),
        "0"
    );
    assert_eq!(
        redis_cli(&lab.client_ns, server, &["EXISTS", "pwned_post"]),
        "0"
    );
    let redis_log = std::fs::read_to_string(dir.join("redis-6379.log")).unwrap();
    assert!(
        !redis_log.contains("SECURITY ATTACK"),
        "Redis saw the HTTP bytes: the XDP guard did not stop them"
    );
    let stats = daemon.stats_json().unwrap();
    assert!(stats["counters"]["marked_http"].as_u64().unwrap() >= 2);
    let flows = stats["marked_flows"].as_array().unwrap();
    assert!(!flows.is_empty());
    // `stats` runs in the host namespace; the name comes from the daemon.
    assert_eq!(flows[0]["interface"], lab.server_if_client);
    assert_eq!(flows[0]["reason"], "http");
    let deadline = Instant::now() + Duration::from_secs(5);
    while daemon.events().lines().count() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let events: Vec<serde_json::Value> = daemon
        .events()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each event is one JSON line"))
        .collect();
    assert!(events.len() >= 2, "events: {events:?}");
    for ev in &events {
        assert_eq!(ev["event"], "flow_marked");
        assert_eq!(ev["reason"], "http");
        assert_eq!(ev["action"], "dropped");
        assert_eq!(ev["src"], lab.client_v4().to_string());
        assert_eq!(ev["dst"], lab.server_v4().to_string());
        assert_eq!(ev["dport"], 6379);
        assert_eq!(ev["interface"], lab.server_if_client);
        assert!(ev["sport"].as_u64().unwrap() > 0);
    }

    // Control: with the guard off, the same PUT does reach Redis and runs.
    // Proves the assertions above can fail.
    daemon.guard.terminate(Duration::from_secs(10)).unwrap();
    let _daemon = start_daemon(&lab, &dir, "http_guard = false");
    send_raw(&lab.client_ns, server, 6379, put);
    assert_eq!(
        redis_cli(&lab.client_ns, server, &["EXISTS", "pwned_put"]),
        "1"
    );
}

#[test]
fn sigterm_detaches_cleanly() {
    let lab = lab();
    let dir = scratch_dir("e2e-detach").unwrap();
    let _redis = lab.start_redis(6379, &dir).unwrap();
    let mut daemon = start_daemon(&lab, &dir, "");
    assert!(daemon.pin_path.join("COUNTERS").exists());
    assert_eq!(
        connect_outcome(&lab.attacker_ns, lab.server_v4_attacker_side().into(), 6379),
        "timeout"
    );
    let status = daemon.guard.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}:\n{}", daemon.log());
    assert!(daemon.log().contains("detached cleanly"));
    for ifname in [&lab.server_if_client, &lab.server_if_attacker] {
        assert!(
            !xdp_attached(&lab.server_ns, ifname),
            "{ifname} still has XDP"
        );
    }
    assert!(!daemon.pin_path.exists(), "pins left behind");
    assert_eq!(
        connect_outcome(&lab.attacker_ns, lab.server_v4_attacker_side().into(), 6379),
        "connected",
        "with the firewall gone the port is reachable again"
    );
}

/// Holds the client's packets to port 6379 in its own namespace (nft, output
/// hook), so the retransmissions of a blocked request cannot slip through
/// while no program is attached during a restart.
fn hold_client_traffic(ns: &str, hold: bool) {
    let script = if hold {
        "add table inet rghold\n\
         add chain inet rghold out { type filter hook output priority 0; }\n\
         add rule inet rghold out tcp dport 6379 drop\n"
    } else {
        "delete table inet rghold\n"
    };
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait()
        })
        .expect("running nft");
    assert!(status.success(), "nft {script}");
}

fn marked_sports(daemon: &Daemon) -> Vec<u64> {
    daemon.stats_json().unwrap()["marked_flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["sport"].as_u64().unwrap())
        .collect()
}

/// Waits until the daemon has dropped at least one packet of a marked flow.
fn wait_dropped_http(daemon: &Daemon) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = daemon.stats_json().unwrap()["counters"]["dropped_http"]
            .as_u64()
            .unwrap();
        if n > 0 || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn marked_flows_survive_restarts_and_a_pin_path_has_one_owner() {
    let lab = lab();
    let dir = scratch_dir("e2e-restart").unwrap();
    let _redis = lab.start_redis(6379, &dir).unwrap();
    let server: IpAddr = lab.server_v4().into();
    let mut daemon = start_daemon(&lab, &dir, "");

    // A second daemon on the same pin path is refused and leaves the first
    // one's pins alone.
    let other = scratch_dir("e2e-restart-2").unwrap();
    let err = start_daemon_result(&lab, &other, "")
        .err()
        .expect("a second daemon on the same pin_path must not start");
    assert!(
        format!("{err:#}").contains("in use by another running redis-guard"),
        "{err:#}"
    );
    assert!(daemon.pin_path.join("COUNTERS").exists());
    assert!(daemon.stats_json().is_ok());

    // The attack: its data is dropped and keeps being retransmitted.
    send_raw(
        &lab.client_ns,
        server,
        6379,
        b"PUT /x HTTP/1.1\r\nContent-Type: text/plain\r\n\r\nSET pwned_restart 1\r\n",
    );
    let marked = marked_sports(&daemon);
    assert_eq!(marked.len(), 1, "{marked:?}");

    // Clean restart: the marked flow is kept next to the pin path.
    hold_client_traffic(&lab.client_ns, true);
    let status = daemon.guard.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success());
    assert!(!daemon.pin_path.exists(), "pins left behind");
    let memory = redis_guard::firewall::flow_memory_dir(&daemon.pin_path);
    assert!(memory.join("MARKED").exists());
    let mut daemon = start_daemon(&lab, &dir, "");
    assert!(
        !memory.exists(),
        "the flow memory is taken over by the new daemon"
    );
    assert_eq!(marked_sports(&daemon), marked);
    hold_client_traffic(&lab.client_ns, false);
    assert!(
        wait_dropped_http(&daemon) > 0,
        "no retransmission seen:\n{}",
        daemon.log()
    );

    // Crash: the pins stay behind unlocked and the next start takes them over.
    hold_client_traffic(&lab.client_ns, true);
    daemon.guard.kill().unwrap();
    assert!(daemon.pin_path.join("MARKED").exists());
    let daemon = start_daemon(&lab, &dir, "");
    assert!(
        daemon.log().contains("flow memory carried over"),
        "{}",
        daemon.log()
    );
    assert_eq!(marked_sports(&daemon), marked);
    hold_client_traffic(&lab.client_ns, false);
    assert!(
        wait_dropped_http(&daemon) > 0,
        "no retransmission seen:\n{}",
        daemon.log()
    );

    assert_eq!(
        redis_cli(&lab.client_ns, server, &["EXISTS", "pwned_restart"]),
        "0"
    );
}

/// `redis-guard SUB --config CONFIG`, run through `wrapper` (setpriv and
/// its options) when that is not empty: whether it succeeded, and its stderr.
fn redis_guard_under(wrapper: &[&str], sub: &str, config: &Path) -> (bool, String) {
    let bin = env!("CARGO_BIN_EXE_redis-guard");
    let mut cmd = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(bin);
            c
        }
        None => std::process::Command::new(bin),
    };
    let out = cmd
        .args([sub, "--config"])
        .arg(config)
        .output()
        .unwrap_or_else(|e| panic!("{wrapper:?} {bin}: {e} (setpriv is util-linux)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn clear_errors_for_missing_interface_and_privileges() {
    let dir = scratch_dir("e2e-errors").unwrap();
    let config = dir.join("p.toml");
    std::fs::write(
        &config,
        "[firewall]\ninterfaces = [\"rg-nonexistent0\"]\nallow = [\"10.77.0.0/16\"]\npin_path = \"/sys/fs/bpf/redis-guard-errtest\"\n",
    )
    .unwrap();
    let (ok, err) = redis_guard_under(&[], "run", &config);
    assert!(!ok);
    assert!(err.contains("rg-nonexistent0"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    assert!(err.contains("p.toml: key `firewall.interfaces`"), "{err}");
    assert!(!err.contains("XDP program attached"), "{err}");
    // `check` may run on another host than the policy is for: it accepts
    // the file but says what `run` would refuse here.
    let (ok, err) = redis_guard_under(&[], "check", &config);
    assert!(ok);
    assert!(
        err.contains("`rg-nonexistent0` does not exist on this host"),
        "{err}"
    );

    std::fs::write(
        &config,
        "[firewall]\ninterfaces = [\"lo\"]\npin_path = \"/sys/fs/bpf/redis-guard-errtest\"\n",
    )
    .unwrap();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ];
    let (ok, err) = redis_guard_under(&nobody, "run", &config);
    assert!(!ok);
    assert!(err.contains("missing privileges"), "{err}");

    // Root with CAP_BPF and CAP_NET_ADMIN but neither CAP_PERFMON nor
    // CAP_SYS_ADMIN: the verifier refuses the packet arithmetic with EACCES,
    // which is a missing privilege, not a refused program.
    let no_perfmon = ["setpriv", "--bounding-set=-perfmon,-sys_admin"];
    let (ok, err) = redis_guard_under(&no_perfmon, "run", &config);
    assert!(!ok);
    assert!(
        err.contains("missing privileges") && err.contains("CAP_PERFMON"),
        "{err}"
    );

    std::fs::write(&config, "[firewall]\ninterfaces = [\"lo\"]\nports = [0]\n").unwrap();
    let (ok, err) = redis_guard_under(&[], "check", &config);
    assert!(!ok);
    assert!(
        err.contains("p.toml") && err.contains("firewall.ports[0]") && err.contains("port 0"),
        "{err}"
    );
}

#[test]
fn sighup_reloads_the_policy_and_a_bad_reload_changes_nothing() {
    let lab = lab();
    let dir = scratch_dir("e2e-reload").unwrap();
    let _redis = lab.start_redis(6379, &dir).unwrap();
    let mut daemon = start_daemon(&lab, &dir, "");
    let attacker_side: IpAddr = lab.server_v4_attacker_side().into();
    assert_eq!(
        connect_outcome(&lab.attacker_ns, attacker_side, 6379),
        "timeout"
    );

    let policy = dir.join("policy.toml");
    let original = std::fs::read_to_string(&policy).unwrap();
    let widened = original.replace(
        "allow = [",
        &format!("allow = [\"{}\", ", lab.attacker_v4()),
    );
    std::fs::write(&policy, &widened).unwrap();
    unsafe { libc::kill(daemon.guard.pid() as i32, libc::SIGHUP) };
    daemon
        .wait_for_log("policy reloaded", Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        connect_outcome(&lab.attacker_ns, attacker_side, 6379),
        "connected",
        "the reloaded allowlist admits the new source"
    );

    // A reload naming a missing interface fails and leaves the maps alone.
    std::fs::write(
        &policy,
        original.replace("interfaces = [", "interfaces = [\"rg-missing0\", "),
    )
    .unwrap();
    unsafe { libc::kill(daemon.guard.pid() as i32, libc::SIGHUP) };
    daemon
        .wait_for_log("policy reload failed", Duration::from_secs(10))
        .unwrap();
    assert!(daemon.log().contains("rg-missing0"));
    assert_eq!(
        connect_outcome(&lab.attacker_ns, attacker_side, 6379),
        "connected",
        "the failed reload must not have narrowed the allowlist"
    );

    // The attacker allowed but denied: deny wins.
    let denied = widened.replace(
        "pin_path",
        &format!("deny = [\"{}\"]\npin_path", lab.attacker_v4()),
    );
    std::fs::write(&policy, &denied).unwrap();
    sighup_and_wait(&mut daemon, "policy reloaded", 2);
    assert_eq!(
        connect_outcome(&lab.attacker_ns, attacker_side, 6379),
        "timeout"
    );

    // A reload that fails only when attaching (a bridge has no native XDP),
    // after the policy itself validated: nothing of it may take effect, in
    // particular not its empty deny list.
    let bridge = format!("rgbr{}", lab.id);
    let ip = |args: &[&str]| {
        let out = Lab::cmd(&lab.server_ns, "ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    ip(&["link", "add", &bridge, "type", "bridge"]);
    ip(&["link", "set", &bridge, "up"]);
    std::fs::write(
        &policy,
        widened.replace("interfaces = [", &format!("interfaces = [\"{bridge}\", ")),
    )
    .unwrap();
    sighup_and_wait(&mut daemon, "policy reload failed", 2);
    assert!(!xdp_attached(&lab.server_ns, &bridge));
    assert_eq!(
        connect_outcome(&lab.attacker_ns, attacker_side, 6379),
        "timeout",
        "a reload that failed at attach must leave the deny list in force"
    );
    assert!(xdp_attached(&lab.server_ns, &lab.server_if_attacker));

    // And the next good reload still knows what is protected: moving the
    // protected port away leaves 6379 untouched, so the denied source reaches it.
    std::fs::write(&policy, denied.replace("ports = [6379]", "ports = [6380]")).unwrap();
    sighup_and_wait(&mut daemon, "policy reloaded", 3);
    assert_eq!(
        connect_outcome(&lab.attacker_ns, attacker_side, 6379),
        "connected",
        "a port no longer listed must not stay protected"
    );

    // `[store]` changes are not applied by a reload, and the log says so.
    assert!(
        !daemon
            .log()
            .contains("store changes take effect on restart")
    );
    std::fs::write(
        &policy,
        format!(
            "{}\n[store]\nmaxclients = 5\n",
            denied.replace("ports = [6379]", "ports = [6380]")
        ),
    )
    .unwrap();
    sighup_and_wait(&mut daemon, "policy reloaded", 4);
    assert!(
        daemon
            .log()
            .contains("store changes take effect on restart"),
        "{}",
        daemon.log()
    );
    let status = daemon.guard.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success());
}

/// Sends SIGHUP and waits until `needle` has appeared `count` times in the
/// daemon's log (earlier reloads left their own lines).
fn sighup_and_wait(daemon: &mut redis_guard::lab::Daemon, needle: &str, count: usize) {
    unsafe { libc::kill(daemon.guard.pid() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.log().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "no {count}th `{needle}` in the daemon log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Brute-forcing the bundled store gets the source dropped in the kernel for
/// the ban's duration: its SYNs time out instead of reaching the store, the
/// same host's other address and the data are untouched, and the ban lifts.
#[test]
fn store_auth_bans_become_kernel_drops_and_expire() {
    let lab = lab();
    let dir = scratch_dir("e2e-kernel-ban").unwrap();
    let hash = redis_guard::store::auth::sha256_hex(b"s3cret-pass");
    let extra = format!(
        "[store]\nenabled = true\nlisten = [\"{}:6379\", \"[{}]:6379\"]\ndata_dir = \"{}\"\n\
         auth_max_failures = 3\nauth_failure_window_secs = 60\nauth_ban_secs = 4\n\
         auth_failure_delay_ms = 0\n[[store.users]]\nname = \"default\"\npassword_sha256 = \"{hash}\"\n",
        lab.server_v4(),
        lab.server_v6(),
        dir.join("data").display()
    );
    let mut daemon = start_daemon(&lab, &dir, &extra);
    daemon
        .wait_for_log("store listening", Duration::from_secs(10))
        .unwrap();
    let v4: IpAddr = lab.server_v4().into();
    let v6: IpAddr = lab.server_v6().into();
    let auth = ["-a", "s3cret-pass", "--no-auth-warning"];
    let set = [&auth[..], &["SET", "k", "kept"]].concat();
    assert_eq!(redis_cli(&lab.client_ns, v4, &set), "OK");

    // Three different guesses: a repeated wrong password counts once.
    for guess in ["wrong1", "wrong2", "wrong3"] {
        let out = redis_cli(
            &lab.client_ns,
            v4,
            &["-a", guess, "--no-auth-warning", "PING"],
        );
        assert_ne!(out, "PONG", "a wrong password must not be served");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !daemon.events().contains("\"kernel_ban\"") {
        assert!(
            Instant::now() < deadline,
            "no kernel_ban event: {}",
            daemon.events()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.events().contains(&lab.client_v4().to_string()));
    assert_eq!(
        connect_outcome(&lab.client_ns, v4, 6379),
        "timeout",
        "a banned source's SYN must be dropped before the TCP stack"
    );
    let stats = daemon.stats_json().unwrap();
    assert!(
        stats["counters"]["dropped_denied"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    // The same client over its other address is still served, data intact.
    let get = [&auth[..], &["GET", "k"]].concat();
    assert_eq!(redis_cli(&lab.client_ns, v6, &get), "kept");

    // Ban over (4 s): the kernel lets the source in again.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(redis_cli(&lab.client_ns, v4, &get), "kept");
    let status = daemon.guard.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success());
}

/// A bundled store that stops on its own (here: a damaged command log found
/// while loading) ends `redis-guard run` with an error and a detach, so that
/// systemd or Kubernetes sees the failure and restarts it, instead of a
/// daemon that looks healthy while its store refuses every connection.
#[test]
fn a_store_that_stops_ends_the_daemon_with_an_error() {
    let lab = lab();
    let dir = scratch_dir("e2e-store-dies").unwrap();
    let data = dir.join("data");
    let hash = redis_guard::store::auth::sha256_hex(b"s3cret-pass");
    let extra = format!(
        "[store]\nenabled = true\nlisten = [\"{}:6379\"]\ndata_dir = \"{}\"\nappendonly = true\n\
         [[store.users]]\nname = \"default\"\npassword_sha256 = \"{hash}\"\n",
        lab.server_v4(),
        data.display()
    );
    let mut daemon = start_daemon(&lab, &dir, &extra);
    daemon
        .wait_for_log("store listening", Duration::from_secs(10))
        .unwrap();
    let v4: IpAddr = lab.server_v4().into();
    for i in 0..10 {
        let k = format!("k{i}");
        let out = redis_cli(
            &lab.client_ns,
            v4,
            &["-a", "s3cret-pass", "--no-auth-warning", "SET", &k, "v"],
        );
        assert_eq!(out, "OK");
    }
    assert!(
        daemon
            .guard
            .terminate(Duration::from_secs(10))
            .unwrap()
            .success()
    );

    // Flip a byte inside the newest command log.
    let mut logs: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "aof"))
        .collect();
    logs.sort();
    let log = logs.pop().expect("a command log in data_dir");
    let mut bytes = std::fs::read(&log).unwrap();
    assert!(bytes.len() > 40, "{} is too short", log.display());
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&log, &bytes).unwrap();

    let mut daemon = start_daemon(&lab, &dir, &extra);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = daemon.guard.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon kept running without its store:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "exit status {status}:\n{}", daemon.log());
    let log_text = daemon.log();
    assert!(log_text.contains("the store stopped"), "{log_text}");
    assert!(
        log_text.contains(&log.display().to_string()),
        "the error names the damaged file:\n{log_text}"
    );
    assert!(log_text.contains("detached cleanly"), "{log_text}");
    assert!(!xdp_attached(&lab.server_ns, &lab.server_if_client));
}
