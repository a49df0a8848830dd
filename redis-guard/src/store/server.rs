//! Listeners, the accept loop, the `maxclients` limit and background tasks.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::store::acllog::AclLog;
use crate::store::audit::Audit;
use crate::store::auth::Users;
use crate::store::authguard::{AuthGuard, BanEvent};
use crate::store::client::ClientHandle;
use crate::store::cmd::pubsub::PubSub;
use crate::store::cmdstats::CommandStats;
use crate::store::config::StoreConfig;
use crate::store::connection;
use crate::store::keyspace::{Keyspace, now_ms};
use crate::store::persist::{self, Manifest, Persist};
use crate::store::tls;

/// Process-wide counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Connections refused because of `maxclients`.
    pub rejected: AtomicU64,
    /// Commands executed.
    pub commands: AtomicU64,
    /// Bytes read from clients.
    pub net_in: AtomicU64,
    /// Bytes written to clients.
    pub net_out: AtomicU64,
}

/// Samples kept for the `instantaneous_*` figures of `INFO stats`: 16
/// samples 100 ms apart, averaged, as Redis does.
const RATE_SAMPLES: usize = 16;

/// Recent per-second rates of commands, input bytes and output bytes.
#[derive(Debug, Default)]
pub struct Rates {
    samples: [[u64; 3]; RATE_SAMPLES],
    next: usize,
    last: Option<(Instant, [u64; 3])>,
}

impl Rates {
    /// Records the totals seen at `now`, as a rate since the previous call.
    fn sample(&mut self, now: Instant, totals: [u64; 3]) {
        if let Some((then, prev)) = self.last {
            let ms = now.duration_since(then).as_millis().max(1) as u64;
            let mut rate = [0; 3];
            for i in 0..3 {
                rate[i] = totals[i].saturating_sub(prev[i]) * 1000 / ms;
            }
            self.samples[self.next] = rate;
            self.next = (self.next + 1) % RATE_SAMPLES;
        }
        self.last = Some((now, totals));
    }

    /// Average per-second rates: commands, input bytes, output bytes.
    pub fn average(&self) -> [u64; 3] {
        let mut sum = [0; 3];
        for s in &self.samples {
            for i in 0..3 {
                sum[i] += s[i];
            }
        }
        sum.map(|x| x / RATE_SAMPLES as u64)
    }
}

/// Error replies by their code (`ERR`, `WRONGTYPE`, ...), for `INFO
/// errorstats` and `total_error_replies`.
#[derive(Debug, Default)]
pub struct ErrorStats {
    /// Every error reply sent.
    pub total: u64,
    /// Per code, sorted as Redis lists them. At most [`ERROR_CODES_MAX`]
    /// codes are tracked (as in Redis), so made-up codes cannot grow it.
    pub by_code: std::collections::BTreeMap<String, u64>,
}

/// Distinct error codes `INFO errorstats` tracks.
pub const ERROR_CODES_MAX: usize = 128;

impl Shared {
    /// Whether a command must wait for `CLIENT PAUSE` to end at Unix ms
    /// `now`: every command under `ALL`, writes (and PUBLISH) under `WRITE`.
    pub fn paused_for(&self, write: bool, now: u64) -> bool {
        let until = self.pause_until.load(Ordering::Acquire);
        until != 0 && now < until && (write || self.pause_all.load(Ordering::Acquire))
    }

    /// `CLIENT PAUSE`: as in Redis, a pause that is already running keeps
    /// the later end and the stricter mode of the two.
    pub fn pause(&self, until: u64, all: bool, now: u64) {
        let _g = self.pause_lock.lock();
        let cur = self.pause_until.load(Ordering::Acquire);
        if cur != 0 && now < cur {
            self.pause_all.fetch_or(all, Ordering::AcqRel);
            self.pause_until.store(cur.max(until), Ordering::Release);
        } else {
            self.pause_all.store(all, Ordering::Release);
            self.pause_until.store(until, Ordering::Release);
        }
    }

    /// `CLIENT UNPAUSE`: lifts the pause and wakes the clients waiting on it.
    pub fn unpause(&self) {
        {
            let _g = self.pause_lock.lock();
            self.pause_until.store(0, Ordering::Release);
            self.pause_all.store(false, Ordering::Release);
        }
        self.pause_notify.notify_waiters();
    }

    /// Counts one error reply; `reply` is its text after the `-`.
    pub fn count_error(&self, reply: &[u8]) {
        let end = reply
            .iter()
            .position(|&c| c == b' ' || c == b'\r')
            .unwrap_or(reply.len());
        let code = String::from_utf8_lossy(&reply[..end.min(64)]);
        let mut e = self.errors.lock();
        e.total += 1;
        if let Some(n) = e.by_code.get_mut(code.as_ref()) {
            *n += 1;
        } else if e.by_code.len() < ERROR_CODES_MAX {
            e.by_code.insert(code.into_owned(), 1);
        }
    }

    /// Commands processed and bytes read and written since start: the
    /// closed connections' totals plus every open connection's counters.
    pub fn totals(&self) -> [u64; 3] {
        let st = &self.stats;
        let mut t = [
            st.commands.load(Ordering::Relaxed),
            st.net_in.load(Ordering::Relaxed),
            st.net_out.load(Ordering::Relaxed),
        ];
        for h in self.clients.lock().values() {
            t[0] += h.commands.load(Ordering::Relaxed);
            t[1] += h.net_in.load(Ordering::Relaxed);
            t[2] += h.net_out.load(Ordering::Relaxed);
        }
        t
    }
}

/// State shared by all connections.
pub struct Shared {
    /// The configuration the server was started with.
    pub config: StoreConfig,
    /// Users: the policy's, changed only by `ACL SETUSER/DELUSER` when
    /// `acl_runtime_changes` allows it (and never written back to the policy).
    pub users: RwLock<Users>,
    /// Bumped after every change to `users`, so connections know to refresh
    /// their user snapshot (one atomic load per command otherwise).
    pub acl_epoch: AtomicU64,
    /// Recent refusals and failed logins, for `ACL LOG`.
    pub acl_log: Mutex<AclLog>,
    /// `SLOWLOG` entries (touched only by slow commands and `SLOWLOG`).
    pub slowlog: Mutex<crate::store::slowlog::SlowLog>,
    /// Failed-authentication counters and bans per source address.
    pub auth_guard: AuthGuard,
    /// The data.
    pub ks: Mutex<Keyspace>,
    /// Channel and pattern subscriptions.
    pub pubsub: Mutex<PubSub>,
    /// Clients that ran `MONITOR`.
    pub monitors: Mutex<Vec<Arc<ClientHandle>>>,
    /// `monitors.len()`, read without the lock on every command.
    pub monitor_count: std::sync::atomic::AtomicUsize,
    /// Connected clients by id, for `CLIENT LIST/KILL`.
    pub clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    /// Next client id.
    pub next_id: AtomicU64,
    /// Counters.
    pub stats: ServerStats,
    /// Recent rates for `INFO`'s `instantaneous_*` fields.
    pub rates: Mutex<Rates>,
    /// Error replies sent, by code.
    pub errors: Mutex<ErrorStats>,
    /// Highest dataset size seen (`used_memory_peak`), sampled every 100 ms.
    pub mem_peak: AtomicU64,
    /// `CLIENT PAUSE`: Unix ms until which clients are paused (0 = never).
    pub pause_until: AtomicU64,
    /// The pause holds every command (`ALL`), not only writes (`WRITE`).
    pub pause_all: std::sync::atomic::AtomicBool,
    /// Serialises `CLIENT PAUSE`/`UNPAUSE`; readers use the atomics above.
    pause_lock: Mutex<()>,
    /// Wakes postponed clients when a pause is lifted or shortened.
    pub pause_notify: tokio::sync::Notify,
    /// When the server started.
    pub started: Instant,
    /// Random 40-hex-digit id of this run, like Redis's `run_id`.
    pub run_id: String,
    /// Bound addresses: the plaintext ones first, then the TLS ones.
    pub addrs: Vec<SocketAddr>,
    /// Bound TLS addresses (also in `addrs`).
    pub tls_addrs: Vec<SocketAddr>,
    /// The TLS acceptor new handshakes use; replaced whole by
    /// [`TlsReload::reload`] so certificates rotate without a restart.
    pub tls: Option<RwLock<TlsAcceptor>>,
    /// Security events: stderr, `audit_log`, counters.
    pub audit: Audit,
    /// New connections per source in the current second.
    conn_rate: ConnRate,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Durability: log writer, snapshot state, `LOADING` flag.
    pub persist: Persist,
    /// `INFO commandstats`.
    pub cmdstats: CommandStats,
}

/// The store server: bound listeners ready to [`Server::run`].
pub struct Server {
    listeners: Vec<(TcpListener, bool)>,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    limit: Arc<Semaphore>,
    to_load: Option<Manifest>,
}

impl Server {
    /// Binds every `listen` address (port 0 allowed for tests); fails with context naming the address.
    pub async fn bind(mut config: StoreConfig) -> anyhow::Result<Server> {
        config.validate()?;
        config.maxclients = fit_open_files_limit(config.maxclients);
        let users = Users::from_config(&config.users)?;
        // Opening data_dir (and initialising a fresh one) comes first so that
        // an unusable directory fails the start before anything listens.
        let (persist, to_load) = Persist::open(&config)
            .with_context(|| format!("store.data_dir: {}", config.data_dir.display()))?;
        let audit = Audit::open(config.audit_log.as_deref())?;
        crate::store::cmd::warm_clock();
        let acceptor = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        let mut tls_addrs = Vec::new();
        let plain = config
            .plaintext_listen()
            .iter()
            .map(|a| ("store.listen", a, false));
        let secure = config
            .tls_listen()
            .iter()
            .map(|a| ("store.tls.listen", a, true));
        for (key, addr, is_tls) in plain.chain(secure) {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("{key}: cannot bind {addr}"))?;
            let bound = l
                .local_addr()
                .with_context(|| format!("{key}: local address of {addr}"))?;
            addrs.push(bound);
            if is_tls {
                tls_addrs.push(bound);
            }
            listeners.push((l, is_tls));
        }
        let (shutdown_tx, shutdown) = watch::channel(false);
        let mut ks = Keyspace::new(
            config.databases,
            config.maxmemory.0,
            config.maxmemory_policy,
        );
        // With data to load, logging starts once it is loaded.
        ks.set_logging(config.appendonly && to_load.is_none());
        let run_id: String = {
            use rand::Rng;
            let mut r = rand::rng();
            (0..40)
                .map(|_| char::from_digit(r.random_range(0..16), 16).unwrap_or('0'))
                .collect()
        };
        let limit = Arc::new(Semaphore::new(config.maxclients));
        let auth_guard = AuthGuard::new(
            config.auth_max_failures,
            Duration::from_secs(config.auth_failure_window_secs),
            Duration::from_secs(config.auth_ban_secs),
        );
        let shared = Arc::new(Shared {
            users: RwLock::new(users),
            acl_epoch: AtomicU64::new(0),
            acl_log: Mutex::new(AclLog::default()),
            slowlog: Mutex::new(Default::default()),
            auth_guard,
            ks: Mutex::new(ks),
            pubsub: Mutex::new(PubSub::default()),
            monitors: Mutex::new(Vec::new()),
            monitor_count: std::sync::atomic::AtomicUsize::new(0),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stats: ServerStats::default(),
            rates: Mutex::new(Rates::default()),
            errors: Mutex::new(ErrorStats::default()),
            mem_peak: AtomicU64::new(0),
            pause_until: AtomicU64::new(0),
            pause_all: std::sync::atomic::AtomicBool::new(false),
            pause_lock: Mutex::new(()),
            pause_notify: tokio::sync::Notify::new(),
            started: Instant::now(),
            run_id,
            addrs,
            tls_addrs,
            tls: acceptor.map(RwLock::new),
            audit,
            conn_rate: ConnRate::default(),
            shutdown,
            persist,
            cmdstats: CommandStats::new(crate::store::cmd::COMMANDS.len()),
            config,
        });
        Ok(Server {
            listeners,
            shared,
            shutdown_tx,
            limit,
            to_load,
        })
    }

    /// The actually bound addresses (with real ports when 0 was
    /// configured): the plaintext ones first, then the TLS ones.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared.addrs.clone()
    }

    /// The actually bound TLS addresses.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.shared.tls_addrs.clone()
    }

    /// A handle that re-reads the `[store.tls]` certificate, key and client
    /// CA files (the daemon calls it on SIGHUP); `None` without TLS.
    pub fn tls_reload(&self) -> Option<TlsReload> {
        self.shared
            .tls
            .as_ref()
            .map(|_| TlsReload(self.shared.clone()))
    }

    /// Every ban the store imposes from now on (subscribe before [`Server::run`],
    /// which consumes the server). Meant for the daemon, which will turn bans
    /// into kernel drops; a receiver that falls behind loses the oldest bans.
    pub fn ban_events(&self) -> tokio::sync::broadcast::Receiver<BanEvent> {
        self.shared.auth_guard.subscribe()
    }

    /// Serves until `shutdown` completes, then stops accepting and closes connections.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let Server {
            listeners,
            shared,
            shutdown_tx,
            limit,
            to_load,
        } = self;
        let mut tasks = Vec::new();
        for (l, tls) in listeners {
            tasks.push(tokio::spawn(accept_loop(
                l,
                tls,
                shared.clone(),
                limit.clone(),
            )));
        }
        // Clients are accepted (and told `-LOADING`) while the data loads.
        let loaded = match to_load {
            None => Ok(()),
            Some(m) => {
                let s = shared.clone();
                tokio::task::spawn_blocking(move || persist::load(&s, m))
                    .await
                    .map_err(|e| anyhow::anyhow!("loading task failed: {e}"))
                    .and_then(|r| r.map(|_| ()).map_err(anyhow::Error::from))
            }
        };
        if let Err(e) = loaded {
            let _ = shutdown_tx.send(true);
            for t in &tasks {
                t.abort();
            }
            return Err(e.context("store: loading the data from store.data_dir"));
        }
        shared.persist.loading.store(false, Ordering::Release);
        let background =
            Persist::start_background(&shared).context("starting the persistence thread")?;
        tasks.push(tokio::spawn(active_expire(shared.clone())));
        shutdown.await;
        tracing::info!("store shutting down");
        let _ = shutdown_tx.send(true);
        for t in &tasks {
            t.abort();
        }
        // Wait for the aborts to land so the listening sockets are closed
        // when `run` returns.
        for t in tasks {
            let _ = t.await;
        }
        // Connections hold a permit each; getting them all back means all closed.
        let all = shared.config.maxclients as u32;
        let _ = tokio::time::timeout(Duration::from_secs(5), limit.acquire_many(all)).await;
        shared.persist.shutdown(&shared);
        let _ = background.join();
        Ok(())
    }
}

/// Re-reads the TLS files of a running store; see [`Server::tls_reload`].
#[derive(Clone)]
pub struct TlsReload(Arc<Shared>);

impl TlsReload {
    /// Builds a new acceptor from the same `[store.tls]` paths and swaps it
    /// in for new handshakes; open connections keep their session. On any
    /// error the running certificates stay in force.
    pub fn reload(&self) -> anyhow::Result<()> {
        let shared = &self.0;
        let (Some(cfg), Some(slot)) = (shared.config.tls.as_ref(), shared.tls.as_ref()) else {
            return Ok(());
        };
        let fresh = tls::acceptor(cfg)?;
        *slot.write() = fresh;
        Ok(())
    }
}

/// Turns TCP keepalive on for a client, with Redis's timing for
/// `tcp-keepalive`: the first probe after `secs` of silence, then up to
/// three more a third of that apart, before the kernel resets the
/// connection and the store's read fails.
fn set_keepalive(stream: &tokio::net::TcpStream, secs: u64) {
    let idle = Duration::from_secs(secs);
    let ka = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(Duration::from_secs((secs / 3).max(1)))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "could not turn TCP keepalive on");
    }
}

async fn accept_loop(
    listener: TcpListener,
    is_tls: bool,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        if shared.config.tcp_keepalive > 0 {
            set_keepalive(&stream, shared.config.tcp_keepalive);
        }
        if shared.auth_guard.is_banned(peer.ip()) {
            shared.audit.event(
                "connection_refused_banned",
                peer.ip(),
                serde_json::json!({}),
            );
            tokio::spawn(refuse_banned(stream));
            continue;
        }
        let rate = shared.config.max_connections_per_source_per_sec;
        if rate > 0 && !shared.conn_rate.admit(peer.ip(), rate, Instant::now()) {
            shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
            shared.audit.event(
                "connection_rate_limited",
                peer.ip(),
                serde_json::json!({ "limit_per_sec": rate }),
            );
            // Not even a task: the point is to spend as little as possible
            // on a flood. The reply fits any socket buffer or is dropped.
            let _ = stream.try_write(RATE_LIMITED_REPLY);
            continue;
        }
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let tls = if is_tls {
                    shared.tls.as_ref().map(|t| t.read().clone())
                } else {
                    None
                };
                tokio::spawn(async move {
                    match tls {
                        None => connection::serve(stream, peer, shared).await,
                        Some(acceptor) => serve_tls(acceptor, stream, peer, shared).await,
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                shared.audit.event(
                    "connection_refused_maxclients",
                    peer.ip(),
                    serde_json::json!({ "maxclients": shared.config.maxclients }),
                );
                tokio::spawn(reject(stream));
            }
        }
    }
}

/// Completes the TLS handshake within `auth_timeout_secs` (a peer that
/// stalls mid-handshake holds a client slot), then serves the connection.
async fn serve_tls(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
) {
    let laddr = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let secs = shared.config.auth_timeout_secs;
    let handshake = acceptor.accept(stream);
    let mut shutdown = shared.shutdown.clone();
    let result = tokio::select! {
        r = handshake => r,
        _ = tokio::time::sleep(Duration::from_secs(secs)), if secs > 0 => {
            Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))
        }
        _ = shutdown.changed() => return,
    };
    match result {
        Ok(tls) => connection::serve_tls(tls, peer, laddr, shared).await,
        Err(e) => {
            // Failed handshakes are what scanners and clients without the
            // right certificate (mutual TLS) produce.
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            shared.audit.event(
                "tls_handshake_failed",
                peer.ip(),
                serde_json::json!({ "error": e.to_string() }),
            );
        }
    }
}

async fn reject(mut stream: TcpStream) {
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        stream.write_all(b"-ERR max number of clients reached\r\n"),
    )
    .await;
}

/// Says why, then closes: a client library shows the reason to its user,
/// where a bare reset would look like a network fault and invite retries.
async fn refuse_banned(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(BANNED_REPLY).await?;
        stream.shutdown().await
    })
    .await;
}

/// Reply to a new connection from a banned source, before it is closed.
pub const BANNED_REPLY: &[u8] =
    b"-ERR too many authentication failures from this address; try again later\r\n";

/// Reply to a connection over `max_connections_per_source_per_sec`.
pub const RATE_LIMITED_REPLY: &[u8] =
    b"-ERR too many new connections from this address; try again later\r\n";

/// Connections per source address in the current one-second window.
#[derive(Default)]
struct ConnRate {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl ConnRate {
    /// Sources remembered at once; a flood from many addresses makes the
    /// table forget expired windows, then everything, instead of growing.
    const MAX_SOURCES: usize = 100_000;

    /// Whether one more connection from `ip` fits in `per_sec`.
    fn admit(&self, ip: IpAddr, per_sec: u32, now: Instant) -> bool {
        let mut w = self.windows.lock();
        if w.len() >= Self::MAX_SOURCES {
            w.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(1));
            if w.len() >= Self::MAX_SOURCES {
                w.clear();
            }
        }
        let e = w.entry(ip).or_insert((now, 0));
        if now.duration_since(e.0) >= Duration::from_secs(1) {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
        e.1 <= per_sec
    }
}

/// Active expiry like Redis: about ten times a second sample keys with a TTL
/// in every database, repeating while more than a quarter of them had expired,
/// within a small time budget so writers are never stalled for long.
async fn active_expire(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let started = Instant::now();
        // The same 100 ms beat samples INFO's instantaneous rates and peak.
        let totals = shared.totals();
        shared.rates.lock().sample(started, totals);
        if !shared.persist.loading.load(Ordering::Acquire) {
            let used = shared.ks.lock().used_memory();
            shared.mem_peak.fetch_max(used, Ordering::Relaxed);
        }
        // Nothing changes the data while clients are paused, not even
        // expiry, as in Redis.
        if shared.paused_for(true, now_ms()) {
            continue;
        }
        let ndb = shared.config.databases;
        for db in 0..ndb {
            loop {
                let (examined, expired) = {
                    let mut ks = shared.ks.lock();
                    let now = now_ms();
                    let r = ks.dbs[db].expire_round(now, 20);
                    ks.log_pending(now);
                    r
                };
                if examined == 0 || expired * 4 <= examined {
                    break;
                }
                if started.elapsed() > Duration::from_millis(25) {
                    break;
                }
            }
        }
    }
}

/// Descriptors kept for everything but clients: listeners, data files, the
/// audit log, the runtime's own. Redis reserves the same 32.
const RESERVED_FDS: u64 = 32;

/// Raises the soft open-files limit to what `maxclients` needs, as Redis
/// does at start, and returns the number of clients the limit allows.
///
/// Service managers start processes with a soft limit of 1024 (systemd's
/// default), which would otherwise stall `accept` with EMFILE long before
/// a `maxclients` of 10000. When even the hard limit is too low, the store
/// serves fewer clients and says so, instead of failing accepts at random.
pub fn fit_open_files_limit(maxclients: usize) -> usize {
    let want = maxclients as u64 + RESERVED_FDS;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return maxclients;
    }
    if lim.rlim_cur >= want {
        return maxclients;
    }
    // The soft limit up to what is needed; with CAP_SYS_RESOURCE the hard
    // limit too. Failing that, as far as the hard limit allows.
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return maxclients;
    }
    let capped = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    let got = if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
        lim.rlim_max
    } else {
        lim.rlim_cur
    };
    let fit = got.saturating_sub(RESERVED_FDS).max(1) as usize;
    tracing::warn!(
        maxclients,
        open_files_limit = got,
        reduced_to = fit,
        "the open-files limit is too low for store.maxclients: serving at most {fit} clients (raise LimitNOFILE or ulimit -n)"
    );
    fit
}
