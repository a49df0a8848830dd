//! `cargo xtask setup`: make a fresh machine able to build and test.
//!
//! Each step checks before it acts, so a second run costs a few process
//! spawns and installs nothing.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::{is_root, status};

/// The only bpf-linker release that works with this machine's LLVM (newer
/// ones need a system LLVM 23).
const BPF_LINKER_VERSION: &str = "0.10.3";

/// Debian packages the tests and the lab use, with the binary that proves
/// each is present.
const PACKAGES: &[(&str, &str)] = &[
    ("redis-server", "/usr/bin/redis-server"),
    ("redis-tools", "/usr/bin/redis-cli"),
    ("nftables", "/usr/sbin/nft"),
    ("iproute2", "/usr/sbin/ip"),
    ("bpftool", "/usr/sbin/bpftool"),
    ("python3", "/usr/bin/python3"),
    // redis-py, for the store's TLS tests with a second real client.
    (
        "python3-redis",
        "/usr/lib/python3/dist-packages/redis/__init__.py",
    ),
    ("util-linux", "/usr/bin/nsenter"),
    // jemalloc (the daemon's allocator) is built from source by its crate.
    ("make", "/usr/bin/make"),
];

/// Installs whatever is missing.
pub fn setup() -> anyhow::Result<()> {
    rust_src()?;
    bpf_linker()?;
    debian_packages()?;
    Ok(())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .unwrap_or_default();
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        return Ok(());
    }
    eprintln!("xtask setup: adding rust-src to the nightly toolchain");
    let mut c = Command::new("rustup");
    c.args(["component", "add", "rust-src", "--toolchain", "nightly"]);
    status(c).context("the eBPF build needs `rust-src` for nightly (-Z build-std=core)")
}

fn bpf_linker() -> anyhow::Result<()> {
    if let Some(v) = output("bpf-linker", &["--version"])
        && v.contains(BPF_LINKER_VERSION)
    {
        return Ok(());
    }
    eprintln!("xtask setup: installing bpf-linker {BPF_LINKER_VERSION} (about a minute)");
    let mut c = Command::new("cargo");
    c.args([
        "install",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
        "--locked",
        "--force",
    ]);
    status(c)
}

fn debian_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, bin)| !std::path::Path::new(bin).exists())
        .map(|(pkg, _)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}; run `sudo apt-get install {}` or run setup as root",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("xtask setup: installing {}", missing.join(" "));
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    status(update)?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    status(install)?;
    // On a systemd host the package starts a Redis on 6379, which would
    // shadow the bundled store's default port. Only undo what we just did.
    if missing.contains(&"redis-server") && std::path::Path::new("/run/systemd/system").exists() {
        let mut stop = Command::new("systemctl");
        stop.args(["disable", "--now", "redis-server"]);
        let _ = stop.status();
    }
    Ok(())
}
