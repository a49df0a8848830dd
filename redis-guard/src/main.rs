use std::process::ExitCode;

use clap::Parser as _;
use redis_guard::cli::{self, Cli};

/// jemalloc, the allocator Redis ships with: the store's many small,
/// long-lived key and value allocations fragment glibc's malloc arenas
/// (RSS varied 1.13x-1.22x of redis's across runs with it), and matching
/// Redis's allocator keeps the memory comparison about data structures.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Return freed pages to the OS from a background thread within about a
/// second, as Redis does with `jemalloc-bg-thread yes`: a burst of large
/// requests (pipelines, big values) must not leave its memory counted
/// against the store long after it is gone.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8; 60] =
    b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing(&cli);
    if cli.command.is_report() {
        // A report piped into `head` should end quietly when the reader
        // goes away, as other Unix tools do, rather than panic on EPIPE.
        // Only here: the daemon's sockets need SIGPIPE ignored.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let json = matches!(cli.log_format, cli::LogFormat::Json);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli::runtime_threads(&cli) {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("redis-guard: error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                // One more JSON line for log collectors, not a bare text line.
                tracing::error!(fatal = true, "{e:#}");
            } else {
                eprintln!("redis-guard: error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
