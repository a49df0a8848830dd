//! The redis-guard developer loop: `cargo xtask <command>`.
//!
//! # Layout
//!
//! - `setup`: installs what a fresh machine lacks (idempotent).
//! - `run`: builds and runs the daemon (default: the default policy).
//! - `test`: the whole suite, as CI runs it.
//! - `lab`: the network-namespace lab, interactive.
//! - `bench`: benchmarks (`xdp`, `store`, `store --persistence`).
//! - `fuzz`: the protocol parser fuzz target, for a bounded time.

mod setup;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "redis-guard developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install rust-src for nightly, bpf-linker 0.10.3 and the Debian
    /// packages the tests use. Safe to run again.
    Setup,
    /// Build (release) and run the daemon: `cargo xtask run -- ARGS`.
    /// Without ARGS: `run --config redis-guard.toml`.
    Run {
        /// Arguments for `redis-guard`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run the whole test suite (unit, kernel and namespace end-to-end).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Start the namespace lab: a server namespace running the daemon in
    /// front of a real Redis, an allowlisted client and an attacker.
    Lab {
        /// Run the demonstration and tear down at once, without waiting
        /// for Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Run a benchmark and print a Markdown report.
    Bench {
        /// `xdp` or `store`.
        #[arg(value_parser = ["xdp", "store"])]
        what: String,
        /// `store` only: measure durability (SET with `appendfsync
        /// everysec`, restart time) against redis-server with the same.
        #[arg(long)]
        persistence: bool,
        /// Extra arguments for the benchmark program.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Fuzz the RESP parser for a bounded time (needs cargo-fuzz, nightly).
    Fuzz {
        /// Seconds to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup => setup::setup(),
        Task::Run { args } => run(args),
        Task::Test { args } => test(args),
        Task::Lab { once } => lab(once),
        Task::Bench {
            what,
            persistence,
            mut args,
        } => {
            if persistence {
                args.push("--persistence".into());
            }
            bench(&what, args)
        }
        Task::Fuzz { seconds } => fuzz(seconds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs `cmd`, failing with its description if it exits non-zero.
fn status(mut cmd: Command) -> anyhow::Result<()> {
    let desc = format!("{cmd:?}");
    let st = cmd.status().with_context(|| format!("spawning {desc}"))?;
    if !st.success() {
        bail!("{desc} failed ({st})");
    }
    Ok(())
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Commands that load BPF or create namespaces need root; use sudo when the
/// developer is not root, as the aya template does.
fn privileged(program: &Path) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg("-E").arg(program);
        c
    }
}

fn build_release(extra: &[&str]) -> anyhow::Result<()> {
    let mut c = cargo();
    c.args(["build", "--release", "-p", "redis-guard"])
        .args(extra);
    status(c)
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    setup::setup()?;
    build_release(&[])?;
    let args = if args.is_empty() {
        vec!["run".into(), "--config".into(), "redis-guard.toml".into()]
    } else {
        args
    };
    let mut c = privileged(&root().join("target/release/redis-guard"));
    c.args(&args).current_dir(root());
    status(c)
}

fn test(args: Vec<String>) -> anyhow::Result<()> {
    setup::setup()?;
    if !is_root() {
        bail!(
            "the kernel (XDP) and namespace tests need root: run `sudo -E cargo xtask test` \
             (they fail rather than skip without it)"
        );
    }
    let mut c = cargo();
    c.args(["test", "--workspace", "--all-targets"]).args(&args);
    status(c)
}

fn run_example(name: &str, args: &[String]) -> anyhow::Result<()> {
    setup::setup()?;
    build_release(&["--bins", "--examples"])?;
    let mut c = privileged(&root().join("target/release/examples").join(name));
    c.args(args)
        .env("REDIS_GUARD_BIN", root().join("target/release/redis-guard"))
        .current_dir(root());
    status(c)
}

fn lab(once: bool) -> anyhow::Result<()> {
    let args = if once {
        vec!["--once".to_string()]
    } else {
        vec![]
    };
    run_example("lab", &args)
}

fn bench(what: &str, args: Vec<String>) -> anyhow::Result<()> {
    match what {
        "xdp" => run_example("bench_xdp", &args),
        "store" => run_example("bench_store", &args),
        other => bail!("unknown benchmark {other}"),
    }
}

fn fuzz(seconds: u64) -> anyhow::Result<()> {
    setup::setup()?;
    let have = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        let mut c = Command::new("cargo");
        c.args(["install", "cargo-fuzz", "--locked"]);
        status(c)?;
    }
    let mut c = Command::new("cargo");
    c.current_dir(root().join("redis-guard"))
        .args(["+nightly", "fuzz", "run", "resp_parser", "--"])
        .arg(format!("-max_total_time={seconds}"));
    status(c)
}
