//! Per-client state: the private part owned by the connection task and the
//! shared handle other clients see through `CLIENT LIST` / `CLIENT KILL`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::store::auth::User;
use crate::store::value::Key;

/// A message pushed to a subscribed client.
#[derive(Debug, Clone)]
pub enum PushMsg {
    /// A `PUBLISH` to a channel the client subscribed to.
    Message {
        /// Channel name.
        channel: Bytes,
        /// Payload.
        data: Bytes,
    },
    /// A `PUBLISH` matching a pattern the client subscribed to.
    PMessage {
        /// The matching pattern.
        pattern: Bytes,
        /// Channel name.
        channel: Bytes,
        /// Payload.
        data: Bytes,
    },
    /// One `MONITOR` line, already formatted.
    Monitor(Bytes),
}

/// What [`ClientHandle::try_push`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for the client's task to write.
    Queued,
    /// The client's backlog is full: it is not reading and must be disconnected.
    Overflow,
    /// The client is gone.
    Gone,
}

/// Pending pub/sub messages a client may have before it is disconnected.
pub const PUSH_QUEUE: usize = 100_000;

impl PushMsg {
    /// Bytes this message accounts for in the subscriber's backlog.
    pub fn size(&self) -> usize {
        match self {
            PushMsg::Message { channel, data } => channel.len() + data.len() + 32,
            PushMsg::PMessage {
                pattern,
                channel,
                data,
            } => pattern.len() + channel.len() + data.len() + 32,
            PushMsg::Monitor(line) => line.len() + 8,
        }
    }
}

/// The part of a client visible to other clients.
#[derive(Debug)]
pub struct ClientHandle {
    /// Unique, increasing id.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// Local (listening) address.
    pub laddr: SocketAddr,
    /// Connection time.
    pub created: Instant,
    /// `CLIENT SETNAME` value.
    pub name: Mutex<Option<Bytes>>,
    /// Selected database.
    pub db: AtomicUsize,
    /// Unix milliseconds of the last command.
    pub last_active: AtomicU64,
    /// Index of the last command in the command table (+1; 0 = none yet).
    pub last_cmd: AtomicUsize,
    /// Index + 1 into [`crate::store::cmd::SUBCOMMANDS`] of the last
    /// command's subcommand (0: none), for `cmd=client|list`.
    pub last_sub: AtomicUsize,
    /// Authenticated user name.
    pub user: Mutex<String>,
    /// Protocol version (2 or 3).
    pub resp: AtomicUsize,
    /// Channel + pattern subscriptions.
    pub subs: AtomicUsize,
    /// Pattern subscriptions.
    pub psubs: AtomicUsize,
    /// Commands queued in MULTI, or usize::MAX when not in MULTI.
    pub multi: AtomicUsize,
    /// Set by `CLIENT KILL`; the connection closes as soon as it sees it.
    pub killed: AtomicBool,
    /// Wakes the connection task for `killed`.
    pub kill: Notify,
    /// Where pub/sub messages for this client go.
    pub push: mpsc::Sender<PushMsg>,
    /// Bytes queued in `push` and not yet written to the socket.
    pub push_bytes: AtomicUsize,
    /// `CLIENT NO-EVICT` flag (informational: clients are never evicted).
    pub no_evict: AtomicBool,
    /// Blocked in `BLPOP` and friends (`flags=b` in `CLIENT LIST`).
    pub blocked: AtomicBool,
    /// Held by `CLIENT PAUSE`: shown blocked too (`flags=b`, counted in
    /// `blocked_clients`), as Redis shows paused clients.
    pub paused: AtomicBool,
    /// In `MONITOR` mode (`flags=O`).
    pub monitor: AtomicBool,
    /// Reply bytes produced and not yet taken by the socket, as of the last
    /// write attempt (`omem`).
    pub out_pending: AtomicUsize,
    /// Commands executed (per client so the hot path never shares a cache line).
    pub commands: AtomicU64,
    /// Bytes read.
    pub net_in: AtomicU64,
    /// The socket's file descriptor (`fd`; -1 for internal clients).
    pub fd: std::sync::atomic::AtomicI32,
    /// Unparsed bytes in the query buffer while waiting for input (`qbuf`).
    pub qbuf: AtomicUsize,
    /// Allocated size of the query buffer (`qbuf-free`, `rbs`).
    pub qbuf_cap: AtomicUsize,
    /// Bytes of the commands queued in `MULTI` (`multi-mem`).
    pub multi_mem: AtomicUsize,
    /// Bytes written.
    pub net_out: AtomicU64,
}

impl ClientHandle {
    /// A fresh handle for client `id`, logged in as `user` (for display
    /// until `AUTH`), whose pushes go to `push`.
    pub fn new(
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        user: String,
        push: mpsc::Sender<PushMsg>,
    ) -> ClientHandle {
        ClientHandle {
            id,
            addr,
            laddr,
            created: Instant::now(),
            name: Mutex::new(None),
            db: AtomicUsize::new(0),
            last_active: AtomicU64::new(crate::store::keyspace::now_ms()),
            last_cmd: AtomicUsize::new(0),
            last_sub: AtomicUsize::new(0),
            user: Mutex::new(user),
            resp: AtomicUsize::new(2),
            subs: AtomicUsize::new(0),
            psubs: AtomicUsize::new(0),
            multi: AtomicUsize::new(usize::MAX),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            push,
            push_bytes: AtomicUsize::new(0),
            no_evict: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            monitor: AtomicBool::new(false),
            out_pending: AtomicUsize::new(0),
            commands: AtomicU64::new(0),
            net_in: AtomicU64::new(0),
            net_out: AtomicU64::new(0),
            fd: std::sync::atomic::AtomicI32::new(-1),
            qbuf: AtomicUsize::new(0),
            qbuf_cap: AtomicUsize::new(0),
            multi_mem: AtomicUsize::new(0),
        }
    }

    /// A handle for work that runs commands without a connection (loading
    /// the data): nobody can see or message it.
    pub fn internal() -> Arc<ClientHandle> {
        let (push, _) = mpsc::channel(1);
        let nowhere = SocketAddr::from(([127, 0, 0, 1], 0));
        Arc::new(ClientHandle::new(
            0,
            nowhere,
            nowhere,
            "default".into(),
            push,
        ))
    }

    /// Requests the connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        // Wake every waiter: the connection may be parked in its main select
        // or in a write to a client that stopped reading.
        self.kill.notify_waiters();
    }

    /// Queues a push (pub/sub message, `MONITOR` line) unless the client's
    /// backlog would pass `limit` bytes.
    pub fn try_push(&self, msg: PushMsg, limit: usize) -> Pushed {
        let size = msg.size();
        if self.push_bytes.load(Ordering::Relaxed).saturating_add(size) > limit {
            return Pushed::Overflow;
        }
        // Counted before it is sent: the connection may take the message
        // and subtract its size at once, and a count added only after the
        // send could be seen below zero, wrap, and read as a client over
        // its output limit.
        self.push_bytes.fetch_add(size, Ordering::Relaxed);
        let sent = self.push.try_send(msg);
        if sent.is_err() {
            self.push_bytes.fetch_sub(size, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Pushed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Pushed::Overflow,
            Err(mpsc::error::TrySendError::Closed(_)) => Pushed::Gone,
        }
    }

    /// Marks activity for `idle=` (the command itself was recorded by
    /// [`ClientHandle::set_last`] when it was looked up).
    pub fn touch(&self, now_ms: u64) {
        self.last_active.store(now_ms, Ordering::Relaxed);
    }

    /// Records the last command for `CLIENT LIST`'s `cmd=`: `None` for an
    /// unknown one (`cmd=NULL`, as Redis shows it), with its subcommand
    /// when it has one.
    pub fn set_last(&self, cmd_index: Option<usize>, sub_index: Option<usize>) {
        self.last_cmd
            .store(cmd_index.map_or(0, |i| i + 1), Ordering::Relaxed);
        self.last_sub
            .store(sub_index.map_or(0, |i| i + 1), Ordering::Relaxed);
    }
}

/// `CLIENT REPLY` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    /// Normal.
    On,
    /// Discard all replies.
    Off,
    /// Discard the reply of the next command only.
    Skip,
    /// Internal: the current command's reply is discarded, then back to `On`.
    SkipThis,
}

/// State owned by the connection task.
pub struct ClientState {
    /// Shared part.
    pub handle: Arc<ClientHandle>,
    /// Selected database.
    pub db: usize,
    /// RESP3 negotiated.
    pub resp3: bool,
    /// Authenticated user, `None` until `AUTH` when authentication is required.
    pub user: Option<Arc<User>>,
    /// Commands queued by `MULTI`.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A queued command was rejected: `EXEC` must fail with `EXECABORT`.
    pub multi_error: bool,
    /// Set when a watched key changes.
    pub watch_dirty: Arc<AtomicBool>,
    /// Watched (db, key) pairs.
    pub watched: Vec<(usize, Key)>,
    /// Channel subscriptions.
    pub subs: HashSet<Bytes>,
    /// Pattern subscriptions.
    pub psubs: HashSet<Bytes>,
    /// `CLIENT REPLY` mode.
    pub reply: ReplyMode,
    /// Close after flushing the current replies (`QUIT`, protocol errors).
    pub close: bool,
    /// The last command was held back by `CLIENT PAUSE`: it runs again
    /// once the pause ends.
    pub postponed: bool,
    /// Wait owed before the pending replies go out: failed authentications
    /// add `auth_failure_delay_ms` each, so that pipelining (or queueing in
    /// `MULTI`) many guesses does not share one delay.
    pub reply_delay: Duration,
    /// The `acl_epoch` that `user` was read at; a newer epoch means the
    /// user table changed and `user` must be looked up again.
    pub acl_epoch: u64,
    /// The client ran `MONITOR` and receives the command feed.
    pub monitor: bool,
    /// Command-log sequence number that must be written (or synced, under
    /// `appendfsync always`) before this client's pending replies are sent.
    pub aof_seq: u64,
    /// Whether the pending replies include one of this client's own logged
    /// writes (whose acknowledgement a failed log write must withhold).
    pub wrote: bool,
}

impl ClientState {
    /// Creates the state for a new connection.
    pub fn new(handle: Arc<ClientHandle>, user: Option<Arc<User>>) -> Self {
        ClientState {
            handle,
            db: 0,
            resp3: false,
            user,
            multi: None,
            multi_error: false,
            watch_dirty: Arc::new(AtomicBool::new(false)),
            watched: Vec::new(),
            subs: HashSet::new(),
            psubs: HashSet::new(),
            reply: ReplyMode::On,
            close: false,
            postponed: false,
            reply_delay: Duration::ZERO,
            acl_epoch: 0,
            monitor: false,
            aof_seq: 0,
            wrote: false,
        }
    }

    /// Whether the client is in RESP2 subscribed mode, where only pub/sub commands are allowed.
    pub fn in_subscribed_mode(&self) -> bool {
        !self.resp3 && (!self.subs.is_empty() || !self.psubs.is_empty())
    }
}
