//! The `redis-guard` command line: one binary, four subcommands.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, anyhow, bail};
use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};
use clap::{Parser, Subcommand, ValueEnum};
use redis_guard_common::{
    FLAG_HTTP_GUARD, FLAG_RESP_ONLY, FilterConfig, FlowKey, MODE_AUDIT, MarkedFlow, maps,
};
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::{
    events::{self, EventSink},
    firewall::Firewall,
    metrics::Counters,
    policy::{DEFAULT_PIN_PATH, FirewallPolicy, Mode, Policy},
    store::{
        BanEvent, Server,
        config::{StoreConfig, UserConfig},
        server::TlsReload,
    },
};

/// redis-guard: a kernel-level (XDP) firewall for Redis, with a bundled
/// hardened Redis-compatible store.
#[derive(Debug, Parser)]
#[command(name = "redis-guard", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `redis_guard=debug`.
    /// RUST_LOG overrides it.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the XDP program onto the configured interfaces and enforce the
    /// policy until SIGINT or SIGTERM (SIGHUP reloads the policy).
    Run {
        /// Policy file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a policy file; exits non-zero naming the file, key and reason.
    Check {
        /// Policy file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print the live counters and marked flows of a running daemon.
    Stats {
        /// Directory the daemon pinned its maps in (default: the policy's
        /// `firewall.pin_path`, else /sys/fs/bpf/redis-guard).
        #[arg(long)]
        pin_path: Option<PathBuf>,
        /// Take `pin_path` from this policy file.
        #[arg(long, short, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run only the bundled store (no BPF privileges needed).
    Store {
        /// Policy file (its `[store]` table).
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
        /// Instead of serving, make `data_dir` loadable again: cut damaged
        /// command logs back to their last good record, set a corrupt
        /// snapshot aside, rebuild a torn manifest; prints what was dropped.
        #[arg(long)]
        repair: bool,
    },
}

impl Command {
    /// Whether this subcommand only prints a report and exits (`check`,
    /// `stats`), as opposed to serving.
    pub fn is_report(&self) -> bool {
        matches!(self, Command::Check { .. } | Command::Stats { .. })
    }
}

/// Sets up `tracing` on stderr.
pub fn init_tracing(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cli.log_level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the chosen subcommand.
/// Worker threads for the tokio runtime: the store's `threads` setting when
/// this command serves the store, else tokio's default (one per CPU).
///
/// The runtime exists before `dispatch` loads the policy, so the file is
/// read here once more; a file that does not load yields `None`, and
/// `dispatch` then reports the error properly.
pub fn runtime_threads(cli: &Cli) -> Option<usize> {
    let (config, store_always) = match &cli.command {
        Command::Run { config } => (config, false),
        Command::Store {
            config,
            repair: false,
        } => (config, true),
        _ => return None,
    };
    let policy = Policy::load(config).ok()?;
    (store_always || policy.store.enabled).then(|| policy.store.worker_threads())
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config } => run(&config).await,
        Command::Check { config } => check(&config),
        Command::Stats {
            pin_path,
            config,
            json,
        } => stats(pin_path, config, json),
        Command::Store {
            config,
            repair: true,
        } => repair(&config),
        Command::Store { config, .. } => store(&config).await,
    }
}

fn check(config: &Path) -> anyhow::Result<()> {
    let policy = Policy::load(config)?;
    if let Some(fw) = policy.firewall.as_ref().filter(|fw| fw.allow.is_empty()) {
        eprintln!(
            "{}: note: `firewall.allow` is empty, so no source can reach ports {}",
            config.display(),
            fw.ports_text()
        );
    }
    // The file may be checked on another host than the one it is for, so
    // this is a note; `run` refuses a missing interface.
    if let Some(fw) = &policy.firewall
        && let Err(e) = check_interfaces(config, fw)
    {
        eprintln!("{e} on this host (`redis-guard run` here would refuse it)");
    }
    match &policy.firewall {
        Some(fw) => println!(
            "{}: ok: firewall on {} ({} mode, ports {}, {} allow and {} deny entries, http_guard {}, resp_only {}); store {}",
            config.display(),
            fw.interfaces.join(", "),
            fw.mode,
            fw.ports_text(),
            fw.allow.len(),
            fw.deny.len(),
            fw.http_guard,
            fw.resp_only,
            if policy.store.enabled {
                "enabled"
            } else {
                "disabled"
            },
        ),
        // Valid for `redis-guard store`, which is what a store-only file is
        // for (it runs the store whatever `enabled` says); `run` refuses it,
        // and a file that configures neither is a mistake.
        None if policy.store.enabled || has_store_table(config) => println!(
            "{}: ok for `redis-guard store` (no [firewall] table, so `redis-guard run` refuses it)",
            config.display(),
        ),
        None => bail!(
            "{}: key `firewall`: missing; the file configures neither the firewall ([firewall], \
             for `redis-guard run`) nor the store ([store], for `redis-guard store`)",
            config.display()
        ),
    }
    Ok(())
}

/// Tells a service manager about our state (`READY=1`, `STOPPING=1`)
/// through `$NOTIFY_SOCKET`, as systemd's `Type=notify` expects; nothing
/// when the variable is unset. A failure is logged, never fatal: the
/// service manager then times the start out and says so itself.
fn sd_notify(state: &str) {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    // '@' names a socket in the abstract namespace.
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = addr.and_then(|addr| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr));
    if let Err(e) = sent {
        warn!(socket = %path.to_string_lossy(), "could not notify the service manager ({state}): {e}");
    }
}

/// Whether the (already validated) policy file has a `[store]` table.
fn has_store_table(config: &Path) -> bool {
    std::fs::read_to_string(config)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("store"))
}

async fn run(config: &Path) -> anyhow::Result<()> {
    let policy = Policy::load(config)?;
    let Some(fw_policy) = policy.firewall.clone() else {
        bail!(
            "{}: key `firewall`: missing; `run` needs a [firewall] table (use `redis-guard store` for the store alone)",
            config.display()
        );
    };
    let sink = EventSink::default();

    warn_if_nobody_allowed(&fw_policy);
    // Before anything is loaded or attached: a typo in the list must not
    // leave the interfaces before it filtered for a moment.
    check_interfaces(config, &fw_policy)?;
    let mut firewall = Firewall::load(&fw_policy)?;
    firewall.pin(&fw_policy.pin_path)?;
    firewall.attach_all(&fw_policy)?;
    // Audit mode drops nothing, so the line must not claim enforcement.
    let doing = match fw_policy.mode {
        Mode::Enforce => "enforcing",
        Mode::Audit => "auditing",
    };
    info!(
        mode = %fw_policy.mode,
        ports = %fw_policy.ports_text(),
        allow = fw_policy.allow.len(),
        deny = fw_policy.deny.len(),
        "firewall {doing} policy from {}",
        config.display()
    );
    let pump = firewall.take_events().map(|ring| {
        let sink = sink.clone();
        tokio::spawn(async move {
            if let Err(e) = events::pump_flow_events(ring, sink).await {
                error!(error = %e, "event reader stopped");
            }
        })
    });
    let mut tasks = tokio::task::JoinSet::new();

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (mut ban_rx, tls_reload) = if policy.store.enabled {
        let h = start_store(&policy, shutdown_rx.clone(), &mut tasks).await?;
        (Some(h.bans), h.tls_reload)
    } else {
        (None, None)
    };
    // Attached, and the store listening: a `Type=notify` unit counts as
    // started only now, so units ordered after it (the Redis it protects)
    // never listen unfiltered.
    sd_notify("READY=1");
    let mut bans = KernelBans::default();
    let mut ban_expiry = tokio::time::interval(Duration::from_secs(1));

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let mut report = tokio::time::interval(Duration::from_secs(60));
    let mut last = firewall.counters()?;
    let mut current = fw_policy;
    // A store that stops on its own (damaged data, a failed listener) ends
    // the daemon with an error, so that the service manager sees the
    // failure and restarts it instead of reporting a running service whose
    // store refuses every connection.
    let mut store_failed: Option<anyhow::Error> = None;
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: detaching"); break; }
            _ = sigint.recv() => { info!("SIGINT: detaching"); break; }
            r = tasks.join_next(), if !tasks.is_empty() => {
                store_failed = Some(match r {
                    Some(Ok(Err(e))) => e.context("the store stopped"),
                    _ => anyhow!("the store stopped unexpectedly"),
                });
                error!("the store stopped: detaching and exiting");
                break;
            }
            ban = next_ban(&mut ban_rx), if ban_rx.is_some() => match ban {
                Ok(ev) if current.kernel_bans && !ev.addr.is_loopback() => {
                    bans.add(ev.addr, ev.until);
                    match firewall.apply(&bans.effective(&current)) {
                        Ok(()) => sink.emit("kernel_ban", json!({
                            "source": ev.addr.to_string(),
                            "failures": ev.failures,
                            "until": humantime::format_rfc3339_seconds(ev.until).to_string(),
                        })),
                        Err(e) => error!(addr = %ev.addr, "could not install a kernel ban: {e}"),
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    warn!(missed = n, "fell behind the store's ban events; those bans stay store-only");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => ban_rx = None,
            },
            _ = ban_expiry.tick(), if !bans.is_empty() => {
                if bans.expire(std::time::SystemTime::now())
                    && let Err(e) = firewall.apply(&bans.effective(&current))
                {
                    error!("could not lift expired kernel bans: {e}");
                }
            }
            _ = sighup.recv() => {
                match reload(config, &mut firewall, &current, &bans, &policy.store) {
                    Ok(new) => current = new,
                    Err(e) => error!("policy reload failed, keeping the previous policy: {e:#}"),
                }
                reload_tls(tls_reload.as_ref());
            }
            _ = report.tick() => {
                if let Ok(now) = firewall.counters() {
                    let delta = now.since(&last);
                    if delta.refused() > 0 {
                        sink.emit("drops", json!({ "window_secs": 60, "counters": delta.to_json() }));
                    }
                    last = now;
                }
            }
        }
    }
    sd_notify("STOPPING=1");
    let _ = shutdown_tx.send(true);
    firewall.detach_all();
    drop(firewall);
    if let Some(pump) = pump {
        pump.abort();
    }
    // The store drains its clients on the shutdown signal.
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    info!("detached cleanly");
    match store_failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Sources the store banned for failed authentications, dropped in the
/// kernel until their ban ends. They ride on top of the policy's deny list
/// and survive reloads; the policy file itself is never touched.
#[derive(Debug, Default)]
struct KernelBans {
    until: std::collections::BTreeMap<std::net::IpAddr, std::time::SystemTime>,
}

impl KernelBans {
    fn add(&mut self, addr: std::net::IpAddr, until: std::time::SystemTime) {
        let e = self.until.entry(addr).or_insert(until);
        *e = (*e).max(until);
    }

    fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// Forgets bans that ended; whether any did.
    fn expire(&mut self, now: std::time::SystemTime) -> bool {
        let before = self.until.len();
        self.until.retain(|_, until| *until > now);
        before != self.until.len()
    }

    /// `policy` with every banned source added to its deny list.
    fn effective(&self, policy: &FirewallPolicy) -> FirewallPolicy {
        let mut p = policy.clone();
        p.deny
            .extend(self.until.keys().map(|a| ipnet::IpNet::from(*a)));
        p
    }
}

async fn next_ban(
    rx: &mut Option<tokio::sync::broadcast::Receiver<BanEvent>>,
) -> Result<BanEvent, tokio::sync::broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn reload(
    config: &Path,
    firewall: &mut Firewall,
    current: &FirewallPolicy,
    bans: &KernelBans,
    running_store: &StoreConfig,
) -> anyhow::Result<FirewallPolicy> {
    let policy = Policy::load(config)?;
    if policy.store != *running_store {
        // Users, rules and limits live in the running store (ACL SETUSER
        // changes them at run time); a reload applying half of `[store]`
        // would be worse than saying plainly that none of it applies.
        warn!(
            file = %config.display(),
            "[store] differs from the running store's settings: store changes take effect on restart (SIGHUP only re-reads the TLS certificate files)"
        );
    }
    let Some(new) = policy.firewall else {
        bail!("{}: key `firewall`: missing", config.display());
    };
    if new.pin_path != current.pin_path {
        warn!("firewall.pin_path changes take effect on restart");
    }
    if new.xdp_mode != current.xdp_mode {
        warn!(
            from = ?current.xdp_mode,
            to = ?new.xdp_mode,
            "firewall.xdp_mode changed: re-attaching the interfaces whose mode differs (each is unfiltered for the moment between detach and attach)"
        );
    }
    // Everything that can fail without side effects goes first, and each
    // step that can fail undoes itself and the steps before it, so a bad
    // reload really does leave the previous policy in force: the maps as
    // they were, and the same interfaces in the same modes.
    check_interfaces(config, &new)?;
    let changes = firewall.attach_listed(&new)?;
    if let Err(e) = firewall.apply(&bans.effective(&new)) {
        firewall.undo_attach(changes);
        return Err(e.into());
    }
    firewall.detach_unlisted(&new);
    warn_if_nobody_allowed(&new);
    info!(
        mode = %new.mode,
        allow = new.allow.len(),
        deny = new.deny.len(),
        "policy reloaded"
    );
    Ok(new)
}

/// Every listed interface must exist; the error names the file and key.
fn check_interfaces(config: &Path, policy: &FirewallPolicy) -> anyhow::Result<()> {
    for name in &policy.interfaces {
        let c_name = std::ffi::CString::new(name.as_str())?;
        if unsafe { libc::if_nametoindex(c_name.as_ptr()) } == 0 {
            bail!(
                "{}: key `firewall.interfaces`: interface `{name}` does not exist",
                config.display()
            );
        }
    }
    Ok(())
}

fn warn_if_nobody_allowed(policy: &FirewallPolicy) {
    if policy.allow.is_empty() {
        warn!(
            ports = %policy.ports_text(),
            "firewall.allow is empty: no source can reach the protected ports (secure default; list your clients to let them in)"
        );
    }
}

/// Binds the bundled store and serves it on the runtime until `shutdown`
/// flips to true. Binding happens here, before returning, so a busy port
/// is a startup error rather than a log line later.
/// What the caller of [`start_store`] keeps of the running store.
struct StoreHandles {
    /// Authentication bans, for kernel drops.
    bans: tokio::sync::broadcast::Receiver<BanEvent>,
    /// Re-reads the TLS files on SIGHUP (certificate rotation).
    tls_reload: Option<TlsReload>,
}

/// SIGHUP's store part: fresh TLS certificates for new handshakes; a
/// failure keeps the running ones.
fn reload_tls(tls: Option<&TlsReload>) {
    if let Some(t) = tls {
        match t.reload() {
            Ok(()) => info!("store TLS certificates reloaded"),
            Err(e) => error!("store TLS reload failed, keeping the previous certificates: {e:#}"),
        }
    }
}

async fn start_store(
    policy: &Policy,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    tasks: &mut tokio::task::JoinSet<anyhow::Result<()>>,
) -> anyhow::Result<StoreHandles> {
    let mut config = policy.store.clone();
    ensure_default_user(&mut config)?;
    let server = Server::bind(config)
        .await
        .with_context(|| format!("{}: starting the bundled store", policy.file.display()))?;
    let tls = server.tls_addrs();
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    for addr in server.local_addrs() {
        info!(%addr, tls = tls.contains(&addr), threads, "store listening");
    }
    let handles = StoreHandles {
        bans: server.ban_events(),
        tls_reload: server.tls_reload(),
    };
    tasks.spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        let r = server.run(stop).await;
        if let Err(e) = &r {
            error!("store stopped: {e:#}");
        }
        r
    });
    Ok(handles)
}

/// Secure by default: with no `[[store.users]]`, the first start generates a
/// strong random password for `default` in `data_dir/default.password`
/// (mode 0600) and later starts reuse it. The log names the file, never the
/// password.
pub fn ensure_default_user(config: &mut StoreConfig) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    if !config.users.is_empty() {
        return Ok(());
    }
    let dir = &config.data_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("store.data_dir: cannot create {}", dir.display()))?;
    let path = dir.join("default.password");
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            use std::io::Write as _;
            let mut secret = [0u8; 32];
            rand::fill(&mut secret);
            writeln!(file, "{}", hex::encode(secret))
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            info!(
                path = %path.display(),
                "no [[store.users]] configured: generated a password for user `default`"
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                warn!(path = %path.display(), "password file is readable by others; chmod 600 it");
            }
            info!(path = %path.display(), "password for user `default` is in this file");
        }
        Err(e) => {
            return Err(e).with_context(|| format!("creating {}", path.display()));
        }
    }
    config.users.push(UserConfig {
        name: "default".into(),
        password_file: Some(path),
        rules: "on ~* &* +@all".into(),
        ..UserConfig::default()
    });
    Ok(())
}

/// `redis-guard store --repair`: run while the store is stopped.
fn repair(config: &Path) -> anyhow::Result<()> {
    let policy = Policy::load(config)?;
    let lines = crate::store::persist::repair(&policy.store)
        .with_context(|| format!("{}: repairing store.data_dir", config.display()))?;
    for l in lines {
        println!("{l}");
    }
    Ok(())
}

async fn store(config: &Path) -> anyhow::Result<()> {
    let policy = Policy::load(config)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let handles = start_store(&policy, rx, &mut tasks).await?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    sd_notify("READY=1");
    loop {
        tokio::select! {
            _ = sigterm.recv() => { info!("SIGTERM: stopping the store"); break; }
            _ = sigint.recv() => { info!("SIGINT: stopping the store"); break; }
            _ = sighup.recv() => reload_tls(handles.tls_reload.as_ref()),
            r = tasks.join_next() => match r {
                // E.g. damaged data: the message names the file and offset.
                Some(Ok(Err(e))) => return Err(e),
                _ => bail!("the store stopped unexpectedly"),
            },
        }
    }
    sd_notify("STOPPING=1");
    let _ = tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

fn stats(pin_path: Option<PathBuf>, config: Option<PathBuf>, as_json: bool) -> anyhow::Result<()> {
    let dir = match (pin_path, config) {
        (Some(dir), _) => dir,
        (None, Some(config)) => Policy::load(&config)?
            .firewall
            .map(|fw| fw.pin_path)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_PATH)),
        (None, None) => PathBuf::from(DEFAULT_PIN_PATH),
    };
    let counters = Counters::from_pin(&dir)?;
    let cfg = read_pinned_config(&dir)?;
    let flows = read_marked_flows(&dir)?;
    let names = read_ifnames(&dir);
    let ifname = |index: u32| {
        names
            .iter()
            .find(|(i, _)| *i == index)
            .map_or_else(|| events::interface_name(index), |(_, n)| n.clone())
    };
    let now_ns = monotonic_ns();
    if as_json {
        let flows: Vec<_> = flows
            .iter()
            .map(|(key, flow)| {
                let (src, dst) = events::flow_addrs(key);
                json!({
                    "src": src.to_string(), "sport": key.sport,
                    "dst": dst.to_string(), "dport": key.dport,
                    "reason": events::reason_name(flow.reason),
                    "packets": flow.packets,
                    "age_secs": now_ns.saturating_sub(flow.first_seen_ns) / 1_000_000_000,
                    "interface": ifname(flow.ifindex),
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "pin_path": dir.display().to_string(),
                "mode": if cfg.mode == MODE_AUDIT { "audit" } else { "enforce" },
                "http_guard": cfg.flags & FLAG_HTTP_GUARD != 0,
                "resp_only": cfg.flags & FLAG_RESP_ONLY != 0,
                "counters": counters.to_json(),
                "marked_flows": flows,
            })
        );
        return Ok(());
    }
    println!(
        "redis-guard firewall (maps pinned at {}): mode {}, http_guard {}, resp_only {}",
        dir.display(),
        if cfg.mode == MODE_AUDIT {
            "audit"
        } else {
            "enforce"
        },
        on_off(cfg.flags & FLAG_HTTP_GUARD != 0),
        on_off(cfg.flags & FLAG_RESP_ONLY != 0),
    );
    print!("{}", counters.render());
    println!("marked flows: {}", flows.len());
    for (key, flow) in &flows {
        let (src, dst) = events::flow_addrs(key);
        println!(
            "  {} -> {}  {}  packets={} age={}s interface={}",
            std::net::SocketAddr::new(src, key.sport),
            std::net::SocketAddr::new(dst, key.dport),
            events::reason_name(flow.reason),
            flow.packets,
            now_ns.saturating_sub(flow.first_seen_ns) / 1_000_000_000,
            ifname(flow.ifindex),
        );
    }
    Ok(())
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn open_pinned(dir: &Path, name: &str) -> anyhow::Result<Map> {
    let path = dir.join(name);
    let data = MapData::from_pin(&path)
        .with_context(|| format!("cannot open pinned map {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

fn read_pinned_config(dir: &Path) -> anyhow::Result<FilterConfig> {
    let array: Array<_, FilterConfig> = Array::try_from(open_pinned(dir, maps::CONFIG)?)?;
    Ok(array.get(&0, 0)?)
}

fn read_marked_flows(dir: &Path) -> anyhow::Result<Vec<(FlowKey, MarkedFlow)>> {
    let map: BpfHashMap<_, FlowKey, MarkedFlow> =
        BpfHashMap::try_from(open_pinned(dir, maps::MARKED)?)?;
    let mut flows: Vec<_> = map.iter().filter_map(Result::ok).collect();
    flows.sort_by_key(|(_, f)| f.first_seen_ns);
    Ok(flows)
}

/// The daemon's ifindex -> name records (empty if unreadable).
fn read_ifnames(dir: &Path) -> Vec<(u32, String)> {
    let Ok(map) = open_pinned(dir, maps::IFNAMES) else {
        return Vec::new();
    };
    let Ok(names) = BpfHashMap::<_, u32, [u8; 16]>::try_from(map) else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(Result::ok)
        .map(|(i, raw)| {
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            (i, String::from_utf8_lossy(&raw[..end]).into_owned())
        })
        .collect()
}

/// CLOCK_MONOTONIC in ns, the clock `bpf_ktime_get_ns` uses.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
