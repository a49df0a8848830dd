//! The per-client loop.
//!
//! Each read is followed by executing every complete request in the buffer
//! and a single write of all their replies (pipelining costs one syscall per
//! batch, not per command). Before replies leave, the command-log records of
//! the batch are written out (see [`crate::store::persist::Persist::commit`]),
//! so no reply acknowledges a write a crash could lose. Protocol errors get
//! Redis's error reply and close only this connection.
//!
//! Replies the peer does not take stay in the write buffer while the client
//! goes on being served, as in Redis; once they (with queued pub/sub
//! messages) pass the client's output-buffer limit the connection is closed,
//! so a client that never reads costs at most its limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::MutexGuard;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::store::client::{ClientHandle, ClientState, PUSH_QUEUE, PushMsg};
use crate::store::cmd::{
    self, BlockRequest, COMMANDS, CmdError, Ctx, arity_ok, blocking, lookup, unknown_command,
    wrong_args,
};
use crate::store::config::ByteSize;
use crate::store::frame::Out;
use crate::store::keyspace::Keyspace;
use crate::store::keyspace::now_ms;
use crate::store::protocol::{Parser, ProtoError};
use crate::store::server::Shared;

/// Replies are flushed early once this much is pending inside one batch.
const FLUSH_AT: usize = 64 * 1024;
/// Initial size of a connection's read and write buffers (idle clients stay small).
const BUF_START: usize = 4 * 1024;
/// Buffers larger than this are released once empty.
const BUF_KEEP: usize = 256 * 1024;

/// Serves one client until it disconnects, is killed, errs or the server stops.
pub async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let laddr = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let (rd, wr) = stream.into_split();
    serve_io(rd, wr, peer, laddr, fd, shared).await;
}

/// [`serve`] for a connection whose TLS handshake is done; `laddr` is the
/// listening address it came in on.
pub async fn serve_tls(
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
    laddr: SocketAddr,
    shared: Arc<Shared>,
) {
    let fd = std::os::fd::AsRawFd::as_raw_fd(stream.get_ref().0);
    let (rd, wr) = tokio::io::split(stream);
    serve_io(rd, wr, peer, laddr, fd, shared).await;
}

async fn serve_io<R, W>(
    rd: R,
    wr: W,
    peer: SocketAddr,
    laddr: SocketAddr,
    fd: i32,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (push_tx, push_rx) = mpsc::channel(PUSH_QUEUE);
    let acl_epoch = shared.acl_epoch.load(Ordering::Acquire);
    let user = shared.users.read().autologin();
    let shown_user = user
        .as_ref()
        .map(|u| u.name.clone())
        .unwrap_or_else(|| "default".into());
    let handle = Arc::new(ClientHandle::new(id, peer, laddr, shown_user, push_tx));
    handle.fd.store(fd, Ordering::Relaxed);
    shared.clients.lock().insert(id, handle.clone());
    let mut state = ClientState::new(handle, user);
    state.acl_epoch = acl_epoch;
    let mut conn = Conn {
        handle: state.handle.clone(),
        rd,
        wr,
        rbuf: BytesMut::with_capacity(BUF_START),
        wbuf: BytesMut::with_capacity(BUF_START),
        unflushed: false,
        over_soft_since: None,
        resume: false,
        push_rx,
    };
    if let Err(e) = conn.run(&shared, &mut state).await {
        tracing::debug!(client = id, error = %e, "connection closed");
    }
    cleanup(&shared, &mut state);
}

fn cleanup(shared: &Arc<Shared>, state: &mut ClientState) {
    let id = state.handle.id;
    if !state.subs.is_empty() || !state.psubs.is_empty() {
        shared
            .pubsub
            .lock()
            .remove_client(id, &state.subs, &state.psubs);
    }
    if !state.watched.is_empty() {
        let mut ks = shared.ks.lock();
        cmd::transactions::unwatch_all(&mut ks, state);
    }
    if state.monitor {
        cmd::monitor::remove(shared, id);
    }
    shared.clients.lock().remove(&id);
    // Fold this client's counters into the server totals.
    let h = &state.handle;
    let st = &shared.stats;
    st.commands
        .fetch_add(h.commands.load(Ordering::Relaxed), Ordering::Relaxed);
    st.net_in
        .fetch_add(h.net_in.load(Ordering::Relaxed), Ordering::Relaxed);
    st.net_out
        .fetch_add(h.net_out.load(Ordering::Relaxed), Ordering::Relaxed);
}

struct Conn<R, W> {
    handle: Arc<ClientHandle>,
    rd: R,
    wr: W,
    rbuf: BytesMut,
    /// Replies not yet taken by the socket; what was written is advanced past.
    wbuf: BytesMut,
    /// Bytes were handed to `wr` since its last flush: a TLS writer may
    /// still hold them as records.
    unflushed: bool,
    /// Since when the pending output has been over the soft limit.
    over_soft_since: Option<Instant>,
    /// `args` holds a command `CLIENT PAUSE` postponed: run it before
    /// parsing more input.
    resume: bool,
    push_rx: mpsc::Receiver<PushMsg>,
}

/// The output-buffer limit of a client was passed; the connection closes.
#[derive(Debug, thiserror::Error)]
#[error("output buffer limit reached: {pending} bytes pending, limit {limit}")]
pub struct OutputLimitExceeded {
    /// Reply and pub/sub bytes pending when the limit was checked.
    pub pending: usize,
    /// The limit that applied.
    pub limit: usize,
}

/// Commands of one pipeline executed under one acquisition of the keyspace lock.
const LOCK_BATCH: usize = 32;

/// Consecutive pipelined commands that share one clock reading. Reading the
/// clock per command was 4-5% of the store's CPU at `-P 16`; Redis itself
/// freezes the clock across a whole `EXEC`, and a stale reading here is
/// bounded by the run time of the few commands before it.
const CLOCK_EVERY: usize = 8;

/// Why [`Conn::run_batch`] stopped.
enum Batch {
    NeedInput,
    Flush,
    Block(BlockRequest),
    /// `CLIENT PAUSE` holds the command in `args` back until it ends.
    Postponed,
    Close,
    Malformed(ProtoError),
}

enum Event {
    Read(usize),
    Wrote(std::io::Result<usize>),
    Push(PushMsg),
    AuthTimeout,
    Close,
}

/// Writes part of `buf`, or flushes the writer when `buf` is empty (0 then).
async fn write_some<W: AsyncWrite + Unpin>(wr: &mut W, buf: &[u8]) -> std::io::Result<usize> {
    if buf.is_empty() {
        wr.flush().await.map(|()| 0)
    } else {
        wr.write(buf).await
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Conn<R, W> {
    fn pending_output(&self) -> bool {
        !self.wbuf.is_empty() || self.unflushed
    }

    /// Accounts for `n` bytes taken by the writer.
    fn wrote(&mut self, n: usize) {
        self.handle.net_out.fetch_add(n as u64, Ordering::Relaxed);
        self.wbuf.advance(n);
        self.unflushed = true;
        if self.wbuf.is_empty() && self.wbuf.capacity() > BUF_KEEP {
            // One huge reply must not leave a huge buffer behind on an idle client.
            self.wbuf = BytesMut::with_capacity(BUF_START);
        }
    }

    /// Writes what the socket takes right now, without waiting. Polling with
    /// a no-op waker is fine here: whenever output stays pending, the caller
    /// goes on to await the writer, which registers the real waker.
    fn write_now(&mut self) -> std::io::Result<()> {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        while !self.wbuf.is_empty() {
            match std::pin::Pin::new(&mut self.wr).poll_write(&mut cx, &self.wbuf) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => self.wrote(n),
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if self.unflushed {
            match std::pin::Pin::new(&mut self.wr).poll_flush(&mut cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Fails once the replies and pub/sub messages waiting for this client
    /// pass its hard output-buffer limit, or have stayed over its soft limit
    /// for too long, reporting it as a security event: a peer that does not
    /// read must not make the store buffer without bound.
    /// Encodes `first` and every other queued pub/sub message into the
    /// output, writing as it goes once the buffer is large.
    fn take_pushes(
        &mut self,
        shared: &Shared,
        state: &ClientState,
        first: PushMsg,
    ) -> std::io::Result<()> {
        let mut next = Some(first);
        while let Some(m) = next {
            self.handle
                .push_bytes
                .fetch_sub(m.size(), Ordering::Relaxed);
            encode_push(&mut self.wbuf, state.resp3, &m);
            if self.wbuf.len() >= FLUSH_AT {
                self.write_now()?;
                self.check_output_limit(shared, state)?;
            }
            next = self.push_rx.try_recv().ok();
        }
        Ok(())
    }

    fn check_output_limit(&mut self, shared: &Shared, state: &ClientState) -> std::io::Result<()> {
        let pubsub = !state.subs.is_empty() || !state.psubs.is_empty();
        let cfg = &shared.config;
        let (class, l) = if pubsub {
            ("pubsub", cfg.output_buffer_limit_pubsub)
        } else {
            ("normal", cfg.output_buffer_limit_normal)
        };
        let bytes = |b: ByteSize| match b.0 {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        self.handle
            .out_pending
            .store(self.wbuf.len(), Ordering::Relaxed);
        let pending = self.wbuf.len() + self.handle.push_bytes.load(Ordering::Relaxed);
        let (hard, soft) = (bytes(l.hard), bytes(l.soft));
        let limit = if pending > hard {
            hard
        } else if pending > soft {
            let since = *self.over_soft_since.get_or_insert_with(Instant::now);
            if since.elapsed() < Duration::from_secs(l.soft_seconds) {
                return Ok(());
            }
            soft
        } else {
            self.over_soft_since = None;
            return Ok(());
        };
        tracing::warn!(client = self.handle.id, addr = %self.handle.addr, pending, limit, "output buffer limit reached, closing");
        shared.audit.event(
            "client_output_buffer_limit",
            self.handle.addr.ip(),
            serde_json::json!({
                "client": self.handle.id,
                "class": class,
                "pending": pending,
                "limit": limit,
                "user": state.user.as_ref().map(|u| u.name.clone()),
            }),
        );
        Err(std::io::Error::other(OutputLimitExceeded {
            pending,
            limit,
        }))
    }

    /// Writes all pending replies, waiting for the peer if it must. The wait
    /// is cut short by `CLIENT KILL` or server shutdown, and the output
    /// limit is checked before waiting, so a stuck peer can neither pin the
    /// task forever nor grow the buffer past its limit.
    async fn flush(&mut self, shared: &Shared, state: &ClientState) -> std::io::Result<()> {
        self.write_now()?;
        self.check_output_limit(shared, state)?;
        if !self.pending_output() {
            return Ok(());
        }
        let handle = self.handle.clone();
        let stop = stopped(&handle, shared);
        tokio::pin!(stop);
        while self.pending_output() {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    return Err(std::io::Error::other("connection stopped while writing"));
                }
                r = write_some(&mut self.wr, &self.wbuf) => match r? {
                    0 if !self.wbuf.is_empty() => {
                        return Err(std::io::ErrorKind::WriteZero.into());
                    }
                    0 => self.unflushed = false,
                    n => self.wrote(n),
                },
            }
        }
        Ok(())
    }

    /// [`Conn::flush`], after first serving the delay that failed
    /// authentications put on these replies. The wait is an async sleep in
    /// this task only: no lock is held and other clients run meanwhile.
    async fn flush_delayed(
        &mut self,
        shared: &Shared,
        state: &mut ClientState,
    ) -> std::io::Result<()> {
        commit_log(shared, state).await?;
        let delay = std::mem::take(&mut state.reply_delay);
        if !delay.is_zero() {
            tokio::select! {
                biased;
                _ = stopped(&self.handle, shared) => {
                    return Err(std::io::Error::other(
                        "connection stopped while delaying a reply",
                    ));
                }
                _ = tokio::time::sleep(delay) => {}
            }
        }
        self.flush(shared, state).await
    }

    /// Makes room for the next read: grows geometrically while a large
    /// request streams in, and drops an oversized empty buffer afterwards.
    fn prepare_read(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > BUF_KEEP {
            self.rbuf = BytesMut::with_capacity(BUF_START);
        }
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(self.rbuf.len().clamp(BUF_START, 1 << 20));
        }
    }

    async fn run(&mut self, shared: &Arc<Shared>, state: &mut ClientState) -> anyhow::Result<()> {
        let mut parser = Parser::new(shared.config.proto_max_bulk_len.0);
        let mut args: Vec<Bytes> = Vec::new();
        // One long-lived "stop" future (kill or server shutdown) instead of
        // fresh notification futures on every loop turn.
        let mut shutdown = shared.shutdown.clone();
        let stop_handle = state.handle.clone();
        let stop = async move {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                _ = stop_handle.kill.notified() => {}
                _ = shutdown.changed() => {}
            }
        };
        tokio::pin!(stop);
        let qbuf_limit = shared.config.client_query_buffer_limit.0 as usize;
        let idle = shared.config.timeout;
        let handle = state.handle.clone();
        let idle_timer = tokio::time::sleep(Duration::from_secs(idle.max(1)));
        tokio::pin!(idle_timer);
        // Only an unauthenticated connection has this deadline; it is what
        // cuts off slowloris-style clients before AUTH.
        let auth_secs = shared.config.auth_timeout_secs;
        let mut auth_due = auth_secs > 0 && state.user.is_none();
        let auth_timer = tokio::time::sleep(Duration::from_secs(auth_secs));
        tokio::pin!(auth_timer);
        loop {
            loop {
                match self.run_batch(shared, state, &mut parser, &mut args) {
                    Batch::NeedInput => break,
                    Batch::Flush if state.reply_delay.is_zero() => {
                        // Pipelined commands keep running while the peer
                        // is slow to read, up to the output limit.
                        commit_log(shared, state).await?;
                        self.write_now()?;
                        self.check_output_limit(shared, state)?;
                    }
                    Batch::Flush => self.flush_delayed(shared, state).await?,
                    Batch::Block(b) => {
                        self.flush_delayed(shared, state).await?;
                        if !self.wait_blocked(shared, state, b, stop.as_mut()).await? {
                            return Ok(());
                        }
                    }
                    Batch::Postponed => {
                        self.flush_delayed(shared, state).await?;
                        self.handle.paused.store(true, Ordering::Relaxed);
                        let resumed = self.wait_unpaused(shared, stop.as_mut()).await;
                        self.handle.paused.store(false, Ordering::Relaxed);
                        if !resumed {
                            return Ok(());
                        }
                    }
                    Batch::Close => {
                        self.flush_delayed(shared, state).await?;
                        return Ok(());
                    }
                    Batch::Malformed(e) => {
                        let text = e.message();
                        shared.count_error(text.as_bytes());
                        Out::new(&mut self.wbuf, state.resp3).error(&text);
                        self.flush_delayed(shared, state).await?;
                        let _ = self.wr.shutdown().await;
                        return Ok(());
                    }
                }
            }
            // What `CLIENT LIST` shows while this client waits for input.
            handle.qbuf.store(self.rbuf.len(), Ordering::Relaxed);
            handle
                .qbuf_cap
                .store(self.rbuf.capacity(), Ordering::Relaxed);
            if self.rbuf.len() > qbuf_limit {
                tracing::warn!(client = handle.id, "query buffer limit reached, closing");
                shared.audit.event(
                    "client_query_buffer_limit",
                    handle.addr.ip(),
                    serde_json::json!({ "client": handle.id, "limit": qbuf_limit }),
                );
                return Ok(());
            }
            if !state.reply_delay.is_zero() {
                self.flush_delayed(shared, state).await?;
            }
            commit_log(shared, state).await?;
            self.write_now()?;
            self.check_output_limit(shared, state)?;
            if handle.killed.load(Ordering::Acquire) || *shared.shutdown.borrow() {
                return Ok(());
            }
            self.prepare_read();
            // The idle timer is re-armed only when a timeout is configured, so
            // the common case does not touch the timer wheel per batch.
            let idle_armed =
                idle > 0 && state.subs.is_empty() && state.psubs.is_empty() && !state.monitor;
            if idle_armed {
                let now = tokio::time::Instant::now();
                let deadline = now
                    .checked_add(Duration::from_secs(idle))
                    .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
                idle_timer.as_mut().reset(deadline);
            }
            if auth_secs > 0 {
                match (&state.user, auth_due) {
                    (Some(_), _) => auth_due = false,
                    // Logged out again (RESET): a fresh deadline for the next AUTH.
                    (None, false) => {
                        auth_due = true;
                        auth_timer
                            .as_mut()
                            .reset(tokio::time::Instant::now() + Duration::from_secs(auth_secs));
                    }
                    (None, true) => {}
                }
            }
            let writing = self.pending_output();
            // Biased: a wake-up is nearly always the socket becoming
            // readable, and polling the rarer sources first, at random as
            // `select!` does by default (the kill and shutdown notifications
            // take a lock each), cost about 1% of the store's CPU at -P 1.
            // The pre-AUTH deadline goes first so that a client keeping the
            // socket readable cannot outrun it; the kill and shutdown flags
            // are checked before every wait above; pushes and the idle timer
            // wait only while this client is not sending (pushes are also
            // taken after every read).
            let ev = tokio::select! {
                biased;
                _ = &mut auth_timer, if auth_due => Event::AuthTimeout,
                r = self.rd.read_buf(&mut self.rbuf) => match r {
                    Ok(0) | Err(_) => Event::Close,
                    Ok(n) => Event::Read(n),
                },
                r = write_some(&mut self.wr, &self.wbuf), if writing => Event::Wrote(r),
                m = self.push_rx.recv() => match m {
                    Some(m) => Event::Push(m),
                    None => Event::Close,
                },
                _ = &mut stop => Event::Close,
                _ = &mut idle_timer, if idle_armed => Event::Close,
            };
            match ev {
                Event::Close => return Ok(()),
                Event::AuthTimeout => {
                    tracing::info!(client = handle.id, addr = %handle.addr, "no authentication in time, closing");
                    shared.audit.event(
                        "auth_timeout",
                        handle.addr.ip(),
                        serde_json::json!({ "client": handle.id, "secs": auth_secs }),
                    );
                    return Ok(());
                }
                Event::Read(n) => {
                    handle.net_in.fetch_add(n as u64, Ordering::Relaxed);
                    // The socket goes first in the wait, so a client that
                    // keeps sending would otherwise see its messages only
                    // once it paused, and be cut off for a backlog it was
                    // ready to read.
                    if let Ok(m) = self.push_rx.try_recv() {
                        self.take_pushes(shared, state, m)?;
                    }
                }
                Event::Wrote(r) => match r? {
                    0 if !self.wbuf.is_empty() => {
                        return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
                    }
                    0 => self.unflushed = false,
                    n => self.wrote(n),
                },
                Event::Push(m) => self.take_pushes(shared, state, m)?,
            }
        }
    }

    /// Executes complete requests from the read buffer until input runs out
    /// or something needs an `await`. Synchronous on purpose: the keyspace
    /// lock is kept across up to [`LOCK_BATCH`] consecutive commands of one
    /// pipeline (one lock round-trip instead of one per command) and can never
    /// be held across an `await`.
    fn run_batch(
        &mut self,
        shared: &Arc<Shared>,
        state: &mut ClientState,
        parser: &mut Parser,
        args: &mut Vec<Bytes>,
    ) -> Batch {
        let mut guard: Option<MutexGuard<'_, Keyspace>> = None;
        let mut n = 0;
        let mut now = 0;
        // A command postponed by CLIENT PAUSE is still in `args`.
        let mut resume = std::mem::take(&mut self.resume);
        loop {
            let authed = state.user.is_some();
            let parsed = if resume {
                resume = false;
                Ok(true)
            } else {
                parser.parse(&mut self.rbuf, args, authed)
            };
            match parsed {
                Ok(true) => {
                    if args.is_empty() {
                        continue;
                    }
                    if n % CLOCK_EVERY == 0 {
                        now = now_ms();
                    }
                    if let Some(b) = process(shared, state, &mut self.wbuf, args, &mut guard, now) {
                        return Batch::Block(b);
                    }
                    if std::mem::take(&mut state.postponed) {
                        self.resume = true;
                        return Batch::Postponed;
                    }
                    if state.close {
                        return Batch::Close;
                    }
                    if !state.reply_delay.is_zero() {
                        // The delay is per failed attempt: the next request
                        // in the pipeline must wait for it too.
                        return Batch::Flush;
                    }
                    if self.wbuf.len() >= FLUSH_AT {
                        return Batch::Flush;
                    }
                    n += 1;
                    if n % LOCK_BATCH == 0 {
                        // Let other clients in between long pipelines.
                        guard = None;
                    }
                }
                Ok(false) => return Batch::NeedInput,
                Err(e) => return Batch::Malformed(e),
            }
        }
    }

    /// Waits until `CLIENT PAUSE` no longer holds clients back (its time
    /// runs out or `CLIENT UNPAUSE`). False when the client must close
    /// instead: killed, shut down, or gone, in which case its postponed
    /// command is dropped unexecuted, as Redis drops it.
    async fn wait_unpaused(
        &mut self,
        shared: &Shared,
        mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> bool {
        loop {
            let until = shared.pause_until.load(Ordering::Acquire);
            let now = now_ms();
            if until == 0 || now >= until {
                return true;
            }
            // Armed before the re-check, so an UNPAUSE in between is not missed.
            let lifted = shared.pause_notify.notified();
            tokio::pin!(lifted);
            lifted.as_mut().enable();
            if shared.pause_until.load(Ordering::Acquire) != until {
                continue;
            }
            self.prepare_read();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(until - now)) => {}
                _ = &mut lifted => {}
                r = self.rd.read_buf(&mut self.rbuf) => match r {
                    Ok(0) | Err(_) => return false,
                    // Pipelined input waits in the buffer, within its limit.
                    Ok(_) => {
                        if self.rbuf.len() > shared.config.client_query_buffer_limit.0 as usize {
                            return false;
                        }
                    }
                },
                _ = &mut stop => return false,
            }
        }
    }

    /// Waits for a blocked command to be served, time out, or the client to
    /// go away. Returns false when the connection must close.
    async fn wait_blocked(
        &mut self,
        shared: &Arc<Shared>,
        state: &mut ClientState,
        mut b: BlockRequest,
        stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> anyhow::Result<bool> {
        let far = Duration::from_secs(365 * 24 * 3600);
        let sleep = tokio::time::sleep(b.timeout.unwrap_or(far));
        tokio::pin!(sleep);
        self.handle.blocked.store(true, Ordering::Relaxed);
        let r = self
            .wait_blocked_inner(shared, state, &mut b, stop, sleep)
            .await;
        self.handle.blocked.store(false, Ordering::Relaxed);
        r
    }

    async fn wait_blocked_inner(
        &mut self,
        shared: &Arc<Shared>,
        state: &mut ClientState,
        b: &mut BlockRequest,
        mut stop: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        mut sleep: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> anyhow::Result<bool> {
        loop {
            enum W {
                Served(Vec<u8>),
                Timeout,
                Gone,
                Read,
                Push(PushMsg),
            }
            self.prepare_read();
            let w = tokio::select! {
                r = &mut b.rx => match r { Ok(v) => W::Served(v), Err(_) => W::Timeout },
                _ = &mut sleep => W::Timeout,
                r = self.rd.read_buf(&mut self.rbuf) => match r {
                    Ok(0) | Err(_) => W::Gone,
                    Ok(_) => W::Read,
                },
                // A RESP3 client may block while subscribed: its messages
                // arrive while it waits, as Redis delivers them, not after.
                m = self.push_rx.recv() => match m {
                    Some(m) => W::Push(m),
                    None => W::Gone,
                },
                _ = &mut stop => W::Gone,
            };
            match w {
                W::Push(m) => {
                    let sent = match self.take_pushes(shared, state, m) {
                        Ok(()) => self.flush(shared, state).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = sent {
                        let mut ks = shared.ks.lock();
                        blocking::remove_waiter(&mut ks, b.waiter);
                        return Err(e.into());
                    }
                }
                W::Served(v) => {
                    // The pop was logged by the client that served it.
                    state.aof_seq = shared.ks.lock().oplog.seq();
                    // Its pop is in the log only once that is written: a
                    // failed write must withhold this reply like a write's.
                    state.wrote = true;
                    if !b.silent {
                        self.wbuf.extend_from_slice(&v);
                    }
                    return Ok(true);
                }
                W::Read => {
                    if self.rbuf.len() > shared.config.client_query_buffer_limit.0 as usize {
                        let mut ks = shared.ks.lock();
                        blocking::remove_waiter(&mut ks, b.waiter);
                        return Ok(false);
                    }
                }
                W::Timeout | W::Gone => {
                    let removed = {
                        let mut ks = shared.ks.lock();
                        blocking::remove_waiter(&mut ks, b.waiter).is_some()
                    };
                    if matches!(w, W::Gone) {
                        return Ok(false);
                    }
                    let served = if removed { None } else { b.rx.try_recv().ok() };
                    // Under CLIENT REPLY OFF/SKIP there is nothing to send.
                    match served {
                        _ if b.silent => {}
                        Some(v) => self.wbuf.extend_from_slice(&v),
                        None => Out::new(&mut self.wbuf, state.resp3).null_array(),
                    }
                    return Ok(true);
                }
            }
        }
    }
}

/// Encodes a pub/sub message for the client's protocol.
pub fn encode_push(buf: &mut BytesMut, resp3: bool, m: &PushMsg) {
    let mut out = Out::new(buf, resp3);
    match m {
        PushMsg::Message { channel, data } => {
            out.push(3);
            out.bulk(b"message");
            out.bulk(channel);
            out.bulk(data);
        }
        PushMsg::PMessage {
            pattern,
            channel,
            data,
        } => {
            out.push(4);
            out.bulk(b"pmessage");
            out.bulk(pattern);
            out.bulk(channel);
            out.bulk(data);
        }
        PushMsg::Monitor(line) => out.simple(&String::from_utf8_lossy(line)),
    }
}

/// Nothing that acknowledges a write leaves before its log record is in the
/// file (and on disk under `appendfsync always`): called before every write
/// of replies.
async fn commit_log(shared: &Shared, state: &mut ClientState) -> std::io::Result<()> {
    if state.aof_seq > 0 {
        let seq = std::mem::take(&mut state.aof_seq);
        let wrote = std::mem::take(&mut state.wrote);
        if !wrote && shared.persist.write_failed() {
            // A reader while the log cannot be written: answered (below)
            // without joining the writers' retries, which would stall it.
            return Ok(());
        }
        if let Err(e) = shared.persist.commit(shared, seq).await
            && wrote
        {
            // Its write is in memory but not in the log: no `+OK` for it,
            // the connection closes instead.
            return Err(e);
        }
        // A reader whose replies only show what others wrote is answered
        // even when the log cannot be written (disk full), as Redis serves
        // reads then: a full disk refuses writes (MISCONF), not service.
    }
    Ok(())
}

/// Completes once this client is killed (CLIENT KILL) or the server shuts
/// down. The kill notification is armed before the flags are read, so a
/// kill landing in between is not missed.
async fn stopped(handle: &ClientHandle, shared: &Shared) {
    let notified = handle.kill.notified();
    tokio::pin!(notified);
    notified.as_mut().enable();
    let mut shutdown = shared.shutdown.clone();
    if handle.killed.load(Ordering::Acquire) || *shutdown.borrow() {
        return;
    }
    tokio::select! {
        _ = &mut notified => {}
        _ = shutdown.changed() => {}
    }
}

/// Executes one request and returns a block request if the command blocked.
pub fn process<'s>(
    shared: &'s Arc<Shared>,
    state: &mut ClientState,
    wbuf: &mut BytesMut,
    args: &[Bytes],
    guard: &mut Option<MutexGuard<'s, Keyspace>>,
    now: u64,
) -> Option<BlockRequest> {
    let reply_start = wbuf.len();
    let resp3 = state.resp3;
    let mut ctx = Ctx {
        shared,
        client: state,
        out: Out::new(wbuf, resp3),
        guard: guard.take(),
        now,
        in_exec: false,
        block: None,
        timed: None,
        keep_reply: false,
    };
    dispatch(&mut ctx, args);
    if ctx.out.buf.get(reply_start) == Some(&b'-') {
        shared.count_error(&ctx.out.buf[reply_start + 1..]);
    }
    cmd::finish(&mut ctx, reply_start);
    *guard = ctx.guard.take();
    ctx.block.take()
}

/// Whether `CLIENT PAUSE WRITE` holds `cmd`: writes and PUBLISH, as in
/// Redis, and an EXEC whose transaction holds one.
fn pauses_for_writes(ctx: &Ctx<'_, '_>, cmd: &cmd::Command) -> bool {
    let writes = |c: &cmd::Command| c.write || c.name == "publish";
    if cmd.name == "exec" {
        return ctx.client.multi.as_ref().is_some_and(|q| {
            q.iter()
                .any(|a| lookup(&a[0]).is_some_and(|i| writes(&COMMANDS[i])))
        });
    }
    writes(cmd)
}

/// The commands of the reference attacks (write files via CONFIG SET dir +
/// SAVE, load code, stop the server, talk to another host). They do not
/// exist here for anyone; asking for one is worth an audit event, unlike a
/// typo.
fn dangerous(args: &[Bytes]) -> Option<&'static str> {
    let name = &args[0];
    if name.eq_ignore_ascii_case(b"config") {
        let sub = args.get(1)?;
        return ["set", "rewrite", "resetstat"]
            .iter()
            .find(|s| sub.eq_ignore_ascii_case(s.as_bytes()))
            .map(|_| "config");
    }
    cmd::REFUSED_COMMANDS
        .iter()
        .find(|n| name.eq_ignore_ascii_case(n.as_bytes()))
        .copied()
}

fn refuse_dangerous(ctx: &mut Ctx<'_, '_>, name: &'static str) {
    let shown = if name == "config" {
        "CONFIG SET/REWRITE/RESETSTAT".to_string()
    } else {
        name.to_ascii_uppercase()
    };
    ctx.out.error(&format!(
        "ERR {shown} is not available in redis-guard: it could write files, load code, stop the server or contact another host"
    ));
    ctx.shared.audit.event(
        "dangerous_command_refused",
        ctx.client.handle.addr.ip(),
        serde_json::json!({
            "command": shown,
            "user": ctx.client.user.as_ref().map(|u| u.name.clone()),
        }),
    );
}

fn shared_loading(ctx: &Ctx<'_, '_>) -> bool {
    ctx.shared.persist.loading.load(Ordering::Acquire)
}

/// Commands that touch no data and so answer while the dataset loads, as
/// Redis's `loading` flag allows them: an operator can watch `INFO
/// persistence` (`loading:1`) and health checks can `PING` meanwhile.
fn ok_while_loading(name: &str) -> bool {
    matches!(
        name,
        "info"
            | "ping"
            | "echo"
            | "time"
            | "command"
            | "client"
            | "select"
            | "role"
            | "lastsave"
            | "acl"
            | "config"
            | "monitor"
            | "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "publish"
            | "pubsub"
    )
}

/// `POST` and `Host:` are never Redis commands: they are an HTTP request
/// that a web page made a browser send here (cross-protocol scripting).
fn is_http_line(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:")
}

fn dispatch(ctx: &mut Ctx<'_, '_>, args: &[Bytes]) {
    if is_http_line(&args[0]) {
        // As Redis does: no reply, and nothing after it in this
        // connection's buffer runs, authenticated or not.
        ctx.client.close = true;
        ctx.shared.audit.event(
            "cross_protocol_kill",
            ctx.client.handle.addr.ip(),
            serde_json::json!({
                "command": String::from_utf8_lossy(&args[0][..args[0].len().min(16)]),
                "port": ctx.client.handle.laddr.port(),
            }),
        );
        tracing::warn!(
            peer = %ctx.client.handle.addr,
            "possible SECURITY ATTACK: an HTTP request (POST or Host:) was sent to the store; connection closed"
        );
        return;
    }
    let idx = lookup(&args[0]);
    // `CLIENT LIST`'s cmd= is the command as looked up, known or not.
    let sub = idx
        .filter(|&i| COMMANDS[i].container && args.len() > 1)
        .and_then(|i| cmd::subcommand_index(COMMANDS[i].name, &args[1]));
    ctx.client.handle.set_last(idx, sub);
    if ctx.client.user.is_none() && idx.is_none_or(|i| !COMMANDS[i].no_auth) {
        // Redis asks for AUTH only while `default` needs a password: a
        // connection opened before `ACL SETUSER default nopass` is now
        // `default`, as on redis-server.
        let open = ctx
            .shared
            .users
            .read()
            .get("default")
            .filter(|u| u.nopass() && u.enabled());
        if let Some(u) = open {
            *ctx.client.handle.user.lock() = u.name.clone();
            ctx.client.user = Some(u);
        }
    }
    if ctx.client.user.is_none() && idx.is_none_or(|i| !COMMANDS[i].no_auth) {
        if let Some(i) = idx {
            ctx.shared.cmdstats.rejected(i);
        }
        if idx.is_some_and(|i| COMMANDS[i].name == "exec") {
            cmd::transactions::abort_exec(ctx, "NOAUTH Authentication required.");
        } else {
            ctx.out.error("NOAUTH Authentication required.");
        }
        return;
    }
    // Only unknown names and CONFIG can be refused ones: the hot path of
    // ordinary commands never pays for the name scan.
    let refused = match idx {
        None => dangerous(args),
        Some(i) if COMMANDS[i].name == "config" => dangerous(args),
        Some(_) => None,
    };
    if idx.is_none() || refused.is_some() {
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        match refused {
            Some(name) => refuse_dangerous(ctx, name),
            None => ctx.out.error(&unknown_command(args)),
        }
        return;
    }
    let Some(idx) = idx else { return };
    let cmd = &COMMANDS[idx];
    if !cmd.no_auth && shared_loading(ctx) && !ok_while_loading(cmd.name) {
        ctx.shared.cmdstats.rejected(idx);
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        ctx.out
            .error("LOADING Redis is loading the dataset in memory");
        return;
    }
    if cmd.write && ctx.shared.persist.write_failed() {
        ctx.shared.cmdstats.rejected(idx);
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        ctx.out.error(
            "MISCONF Errors writing to the command log file: writes are refused (see the server log)",
        );
        return;
    }
    if !arity_ok(cmd, args.len()) {
        ctx.shared.cmdstats.rejected(idx);
        // Any command refused before it runs dooms an open transaction,
        // WATCH, MULTI and DISCARD included, as in Redis.
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        let e: CmdError = wrong_args(cmd.name);
        // Redis answers a malformed EXEC with EXECABORT even outside MULTI.
        if cmd.name == "exec" {
            cmd::transactions::abort_exec(ctx, &e.to_string());
        } else {
            ctx.out.error(&e.to_string());
        }
        return;
    }
    // An unknown subcommand or a wrong subcommand arity is refused before
    // anything runs, as Redis does, so it dooms a transaction rather than
    // being queued.
    if let Err(e) = cmd::check_subcommand(cmd, args) {
        if let Some((name, _)) = cmd::subcommand(cmd.name, &args[1]) {
            ctx.shared.cmdstats.subcommand_rejected(name);
        }
        if ctx.client.multi.is_some() {
            ctx.client.multi_error = true;
        }
        ctx.out.error(&e.to_string());
        return;
    }
    // CLIENT PAUSE: the command waits (no reply yet) and runs once the
    // pause ends; PUBLISH counts as a write, as in Redis.
    if ctx.shared.paused_for(pauses_for_writes(ctx, cmd), ctx.now) {
        ctx.client.postponed = true;
        return;
    }
    ctx.client.handle.touch(ctx.now);
    ctx.timed = None;
    cmd::execute(ctx, idx, args);
    // The handler's own timing (`cmd::run_handler`), taken only for the
    // commands the slow log times.
    if let Some(nanos) = ctx.timed.take()
        && ctx.client.multi.is_none()
    {
        let micros = nanos / 1000;
        if micros >= ctx.shared.config.slowlog_log_slower_than.max(0) as u64 {
            let name = ctx.client.handle.name.lock().clone().unwrap_or_default();
            ctx.shared.slowlog.lock().push(
                args,
                micros,
                ctx.client.handle.addr.to_string(),
                name,
                ctx.shared.config.slowlog_max_len,
            );
        }
    }
    if ctx.shared.monitor_count.load(Ordering::Relaxed) > 0 {
        cmd::monitor::feed(ctx.shared, &ctx.client.handle, ctx.client.db, cmd, args);
    }
}
