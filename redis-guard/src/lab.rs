//! A network-namespace lab: a server namespace with one veth link to an
//! allowlisted client namespace and one to an attacker namespace.
//!
//! The end-to-end tests, `cargo xtask lab` and `cargo xtask bench xdp` all
//! build the same topology through this module. Addresses live in
//! 10.77.0.0/16 and fd77::/16 on veths the lab creates; nothing is ever sent
//! anywhere else. Dropping a [`Lab`] deletes its namespaces (and with them
//! the veths and anything still attached).
//!
//! ```text
//!   client ns                 server ns                 attacker ns
//!   c<id> 10.77.2i.2 ---- s<id>c 10.77.2i.1
//!                             s<id>a 10.77.2i+1.1 ---- a<id> 10.77.2i+1.2
//! ```

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// One lab instance; `id` keeps concurrent labs apart (names and subnets).
pub struct Lab {
    /// Lab number, 1..=126 (its subnets are 10.77.2id.0/24 and 10.77.2id+1.0/24).
    pub id: u8,
    /// Server namespace name.
    pub server_ns: String,
    /// Allowlisted client namespace name.
    pub client_ns: String,
    /// Attacker namespace name.
    pub attacker_ns: String,
    /// Server-side veth facing the client.
    pub server_if_client: String,
    /// Server-side veth facing the attacker.
    pub server_if_attacker: String,
    /// Client-side veth.
    pub client_if: String,
    /// Attacker-side veth.
    pub attacker_if: String,
}

impl Lab {
    /// Creates the namespaces, veths and addresses. Stale namespaces with the
    /// same names (from a killed run) are removed first.
    pub fn create(id: u8) -> anyhow::Result<Lab> {
        if id == 0 || id > 126 {
            bail!("lab id must be in 1..=126");
        }
        let lab = Lab {
            id,
            server_ns: format!("rg{id}-server"),
            client_ns: format!("rg{id}-client"),
            attacker_ns: format!("rg{id}-attacker"),
            server_if_client: format!("rg{id}sc"),
            server_if_attacker: format!("rg{id}sa"),
            client_if: format!("rg{id}c"),
            attacker_if: format!("rg{id}a"),
        };
        lab.teardown();
        for ns in [&lab.server_ns, &lab.client_ns, &lab.attacker_ns] {
            sh(&["ip", "netns", "add", ns])?;
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        }
        lab.link(
            &lab.server_if_client,
            &lab.client_if,
            &lab.client_ns,
            lab.client_net(),
        )?;
        lab.link(
            &lab.server_if_attacker,
            &lab.attacker_if,
            &lab.attacker_ns,
            lab.attacker_net(),
        )?;
        Ok(lab)
    }

    fn link(&self, server_if: &str, peer_if: &str, peer_ns: &str, net: u8) -> anyhow::Result<()> {
        sh(&[
            "ip",
            "link",
            "add",
            server_if,
            "netns",
            &self.server_ns,
            "type",
            "veth",
            "peer",
            "name",
            peer_if,
            "netns",
            peer_ns,
        ])?;
        for (ns, ifname, host) in [
            (&self.server_ns, server_if, 1u8),
            (&peer_ns.to_string(), peer_if, 2),
        ] {
            for (addr, extra) in [
                (format!("10.77.{net}.{host}/24"), None),
                // No duplicate address detection: the address is usable at once.
                (format!("fd77:{net:x}::{host}/64"), Some("nodad")),
            ] {
                let mut args = vec!["ip", "-n", ns, "addr", "add", &addr, "dev", ifname];
                args.extend(extra);
                sh(&args)?;
            }
            sh(&["ip", "-n", ns, "link", "set", ifname, "up"])?;
        }
        Ok(())
    }

    fn client_net(&self) -> u8 {
        self.id * 2
    }

    fn attacker_net(&self) -> u8 {
        self.id * 2 + 1
    }

    /// The server's address on the client link.
    pub fn server_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.client_net(), 1)
    }
    /// The server's address on the attacker link.
    pub fn server_v4_attacker_side(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.attacker_net(), 1)
    }
    /// The client's address.
    pub fn client_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.client_net(), 2)
    }
    /// The attacker's address.
    pub fn attacker_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.attacker_net(), 2)
    }
    /// The server's IPv6 address on the client link.
    pub fn server_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, u16::from(self.client_net()), 0, 0, 0, 0, 0, 1)
    }
    /// The server's IPv6 address on the attacker link.
    pub fn server_v6_attacker_side(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, u16::from(self.attacker_net()), 0, 0, 0, 0, 0, 1)
    }
    /// The client's IPv6 address.
    pub fn client_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, u16::from(self.client_net()), 0, 0, 0, 0, 0, 2)
    }
    /// The attacker's IPv6 address.
    pub fn attacker_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0xfd77, u16::from(self.attacker_net()), 0, 0, 0, 0, 0, 2)
    }

    /// A command run inside network namespace `ns`. Only the network
    /// namespace is entered (not `ip netns exec`, which also remounts /sys
    /// privately), so bpffs pins stay visible to `redis-guard stats`.
    pub fn cmd(ns: &str, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{ns}")).arg(program);
        c
    }

    /// Starts a real redis-server in the server namespace on `port`,
    /// listening on the server's lab addresses, without persistence, and
    /// waits until it answers PING.
    pub fn start_redis(&self, port: u16, dir: &Path) -> anyhow::Result<ChildGuard> {
        let log = dir.join(format!("redis-{port}.log"));
        let binds = format!(
            "{} {} {} {} 127.0.0.1",
            self.server_v4(),
            self.server_v4_attacker_side(),
            self.server_v6(),
            self.server_v6_attacker_side()
        );
        let child = Lab::cmd(&self.server_ns, "redis-server")
            .args(["--port", &port.to_string(), "--bind", &binds])
            .args(["--protected-mode", "no", "--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.display().to_string()])
            .args(["--logfile", &log.display().to_string()])
            .stdin(Stdio::null())
            .spawn()
            .context("starting redis-server (is the redis-server package installed? `cargo xtask setup`)")?;
        let guard = ChildGuard::new(child, "redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Lab::cmd(&self.server_ns, "redis-cli")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "PING"])
                .output()?;
            if String::from_utf8_lossy(&out.stdout).trim() == "PONG" {
                return Ok(guard);
            }
            if Instant::now() > deadline {
                bail!("redis-server did not come up; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes a policy protecting port 6379 on both server veths (native
    /// XDP, allowlisting the client's v4 and v6 addresses, `extra` appended)
    /// and starts `redis-guard run` in the server namespace.
    pub fn start_daemon(&self, bin: &Path, dir: &Path, extra: &str) -> anyhow::Result<Daemon> {
        let bin = &bin
            .canonicalize()
            .with_context(|| format!("redis-guard binary {}", bin.display()))?;
        let pin_path = self.pin_path();
        let config = dir.join("policy.toml");
        std::fs::write(
            &config,
            format!(
                "[firewall]\ninterfaces = [\"{}\", \"{}\"]\nxdp_mode = \"native\"\nports = [6379]\n\
                 allow = [\"{}\", \"{}\"]\npin_path = \"{}\"\n{extra}\n",
                self.server_if_client,
                self.server_if_attacker,
                self.client_v4(),
                self.client_v6(),
                pin_path.display()
            ),
        )?;
        let stdout = dir.join("events.jsonl");
        let stderr = dir.join("daemon.log");
        let child = Lab::cmd(&self.server_ns, &bin.display().to_string())
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {} run", bin.display()))?;
        let mut daemon = Daemon {
            guard: ChildGuard::new(child, "redis-guard"),
            bin: bin.to_path_buf(),
            stdout,
            stderr,
            pin_path,
        };
        // "firewall enforcing policy from …" or, in audit mode, "auditing".
        daemon.wait_for_log(" policy from ", Duration::from_secs(15))?;
        Ok(daemon)
    }

    /// What a TCP connect from namespace `ns` to `addr:port` ends in:
    /// `connected`, `timeout` (2 s) or `refused`.
    pub fn connect_outcome(ns: &str, addr: IpAddr, port: u16) -> String {
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET6 if ':' in '{addr}' else socket.AF_INET)\n\
             s.settimeout(2)\n\
             try:\n    s.connect(('{addr}', {port})); print('connected')\n\
             except socket.timeout: print('timeout')\n\
             except ConnectionRefusedError: print('refused')\n\
             except OSError as e: print('error', e)\n"
        );
        Lab::cmd(ns, "python3")
            .args(["-c", &script])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| format!("error {e}"))
    }

    /// Sends raw bytes on a fresh connection from `ns`, waits half a second
    /// and closes.
    pub fn send_raw(ns: &str, addr: IpAddr, port: u16, payload: &[u8]) -> anyhow::Result<()> {
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        let script = format!(
            "import socket,time\n\
             s = socket.socket(socket.AF_INET6 if ':' in '{addr}' else socket.AF_INET)\n\
             s.settimeout(3)\n\
             s.connect(('{addr}', {port}))\n\
             s.sendall(bytes.fromhex('{hex}'))\n\
             time.sleep(0.5)\n\
             s.close()\n"
        );
        let out = Lab::cmd(ns, "python3").args(["-c", &script]).output()?;
        if !out.status.success() {
            bail!(
                "sending raw bytes failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `redis-cli -h host -p port ARGS` from namespace `ns` (5 s timeout);
    /// its trimmed stdout.
    pub fn redis_cli(ns: &str, host: IpAddr, port: u16, args: &[&str]) -> String {
        Lab::cmd(ns, "timeout")
            .args([
                "5",
                "redis-cli",
                "-h",
                &host.to_string(),
                "-p",
                &port.to_string(),
            ])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// Whether `ifname` in namespace `ns` has an XDP program attached.
    pub fn xdp_attached(ns: &str, ifname: &str) -> bool {
        Lab::cmd(ns, "ip")
            .args(["-d", "link", "show", "dev", ifname])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("prog/xdp"))
            .unwrap_or(false)
    }

    /// Where this lab's daemon pins its maps.
    pub fn pin_path(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/bpf/redis-guard-lab{}", self.id))
    }

    fn teardown(&self) {
        for ns in [&self.server_ns, &self.client_ns, &self.attacker_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        // A daemon stopped cleanly keeps its marked flows for the next
        // start; the lab's next start is a new lab, so drop them.
        let pins = self.pin_path();
        for dir in [crate::firewall::flow_memory_dir(&pins), pins] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// A `redis-guard run` started by [`Lab::start_daemon`].
pub struct Daemon {
    /// The process.
    pub guard: ChildGuard,
    /// The binary, also used for `stats`.
    pub bin: PathBuf,
    /// Its stdout: JSON-line events.
    pub stdout: PathBuf,
    /// Its stderr: logs.
    pub stderr: PathBuf,
    /// Where it pins its maps.
    pub pin_path: PathBuf,
}

impl Daemon {
    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Its events so far.
    pub fn events(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; fails if the daemon exits.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if let Some(status) = self.guard.exited() {
                bail!("redis-guard exited ({status}) early:\n{}", self.log());
            }
            if Instant::now() > deadline {
                bail!("timed out waiting for `{needle}` in:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `redis-guard stats --json` against its pins.
    pub fn stats_json(&self) -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&self.bin)
            .args(["stats", "--json", "--pin-path"])
            .arg(&self.pin_path)
            .output()?;
        if !out.status.success() {
            bail!("stats failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// `redis-guard stats` (the table) against its pins.
    pub fn stats_text(&self) -> anyhow::Result<String> {
        let out = Command::new(&self.bin)
            .args(["stats", "--pin-path"])
            .arg(&self.pin_path)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Kills (SIGTERM, then SIGKILL) the child it holds when dropped, so a
/// failing test never leaves servers behind.
pub struct ChildGuard {
    child: Option<Child>,
    what: &'static str,
}

impl ChildGuard {
    /// Takes ownership of `child`.
    pub fn new(child: Child, what: &'static str) -> ChildGuard {
        ChildGuard {
            child: Some(child),
            what,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {timeout:?} of SIGTERM", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the child with SIGKILL, as a crash would end it, and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        child.kill()?;
        Ok(child.wait()?)
    }

    /// Whether the child has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Moves the calling thread into network namespace `ns`. Threads spawned
/// afterwards inherit it; other threads are unaffected.
pub fn enter_netns(ns: &str) -> anyhow::Result<()> {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns({path}): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// The MAC address of `ifname` in namespace `ns`.
pub fn mac_address(ns: &str, ifname: &str) -> anyhow::Result<[u8; 6]> {
    let out = sh(&["ip", "-n", ns, "-o", "link", "show", "dev", ifname])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .context("no link/ether address")?;
    let mut mac = [0u8; 6];
    for (i, part) in hex.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16)?;
    }
    Ok(mac)
}

/// A command's trimmed stdout, or "" if it cannot run: for report headers.
pub fn command_stdout(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// One line describing this machine for benchmark reports: CPUs and model,
/// kernel, nftables and redis-server versions.
pub fn machine_summary() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .unwrap_or("unknown")
        .trim()
        .to_string();
    format!(
        "{} CPUs ({cpu}), kernel {}, {}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_stdout("uname", &["-r"]),
        command_stdout("nft", &["--version"]),
        command_stdout("redis-server", &["--version"]),
    )
}

/// Runs a command, failing with its stderr if it fails.
pub fn sh(args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(tag: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "redis-guard-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
