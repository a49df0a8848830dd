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
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

/// One lab instance; `id` keeps concurrent labs apart (names and subnets).
pub struct Lab {
    /// Lab number, 1..=120.
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
        if id == 0 || id > 120 {
            bail!("lab id must be in 1..=120");
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
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.77.{net}.{host}/24"),
                "dev",
                ifname,
            ])?;
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("fd77:{net:x}::{host}/64"),
                "dev",
                ifname,
                "nodad",
            ])?;
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

    fn teardown(&self) {
        for ns in [&self.server_ns, &self.client_ns, &self.attacker_ns] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
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
