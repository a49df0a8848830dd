//! Listeners, the accept loop, the `maxclients` limit and background tasks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::store::acllog::AclLog;
use crate::store::auth::Users;
use crate::store::authguard::{AuthGuard, BanEvent};
use crate::store::client::ClientHandle;
use crate::store::cmd::pubsub::PubSub;
use crate::store::config::StoreConfig;
use crate::store::connection;
use crate::store::keyspace::{Keyspace, now_ms};

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
    /// When the server started.
    pub started: Instant,
    /// Random 40-hex-digit id of this run, like Redis's `run_id`.
    pub run_id: String,
    /// Bound addresses.
    pub addrs: Vec<SocketAddr>,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Unix seconds of the (notional) last save: the start time, as nothing is persisted.
    pub lastsave: u64,
}

/// The store server: bound listeners ready to [`Server::run`].
pub struct Server {
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    limit: Arc<Semaphore>,
}

impl Server {
    /// Binds every `listen` address (port 0 allowed for tests); fails with context naming the address.
    pub async fn bind(config: StoreConfig) -> anyhow::Result<Server> {
        config.validate()?;
        let users = Users::from_config(&config.users)?;
        // Nothing is persisted yet, so an unusable data_dir only matters once
        // `appendonly` asks for persistence.
        if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
            if config.appendonly {
                return Err(e).with_context(|| {
                    format!("store.data_dir: creating {}", config.data_dir.display())
                });
            }
            tracing::warn!(dir = %config.data_dir.display(), error = %e, "store.data_dir is not usable");
        }
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for addr in &config.listen {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("store.listen: cannot bind {addr}"))?;
            addrs.push(
                l.local_addr()
                    .with_context(|| format!("store.listen: local address of {addr}"))?,
            );
            listeners.push(l);
        }
        let (shutdown_tx, shutdown) = watch::channel(false);
        let ks = Keyspace::new(
            config.databases,
            config.maxmemory.0,
            config.maxmemory_policy,
        );
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
            auth_guard,
            ks: Mutex::new(ks),
            pubsub: Mutex::new(PubSub::default()),
            monitors: Mutex::new(Vec::new()),
            monitor_count: std::sync::atomic::AtomicUsize::new(0),
            clients: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            stats: ServerStats::default(),
            started: Instant::now(),
            run_id,
            addrs,
            shutdown,
            lastsave: now_ms() / 1000,
            config,
        });
        Ok(Server {
            listeners,
            shared,
            shutdown_tx,
            limit,
        })
    }

    /// The actually bound addresses (with real ports when 0 was configured).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.shared.addrs.clone()
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
        } = self;
        let mut tasks = Vec::new();
        for l in listeners {
            tasks.push(tokio::spawn(accept_loop(l, shared.clone(), limit.clone())));
        }
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
        Ok(())
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, limit: Arc<Semaphore>) {
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
        if shared.auth_guard.is_banned(peer.ip()) {
            crate::events::security_event(
                "connection_refused_banned",
                peer.ip(),
                serde_json::json!({}),
            );
            tokio::spawn(refuse_banned(stream));
            continue;
        }
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection::serve(stream, peer, shared).await;
                    drop(permit);
                });
            }
            Err(_) => {
                shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(reject(stream));
            }
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

/// Active expiry like Redis: about ten times a second sample keys with a TTL
/// in every database, repeating while more than a quarter of them had expired,
/// within a small time budget so writers are never stalled for long.
async fn active_expire(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let started = Instant::now();
        let ndb = shared.config.databases;
        for db in 0..ndb {
            loop {
                let (examined, expired) = {
                    let mut ks = shared.ks.lock();
                    ks.dbs[db].expire_round(now_ms(), 20)
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
