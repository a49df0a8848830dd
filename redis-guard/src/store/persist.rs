//! Durability: the command log, snapshots, the manifest, loading and compaction.
//!
//! # Files (all inside `data_dir`, under fixed names)
//!
//! - `manifest`: which files make up the data, in load order. Text:
//!   `redis-guard-manifest 1`, then an optional `snapshot snapshot-N.rgs`,
//!   then `log log-N.aof` lines, then `checksum <xxh3 hex>` over the lines
//!   before it. Always replaced whole: temp file, fsync, rename, directory
//!   fsync, so it names files that exist at every moment.
//! - `snapshot-N.rgs`: see [`crate::store::snapshot`].
//! - `log-N.aof`: command log records, see [`crate::store::oplog`].
//!
//! No command can name a file or a directory: names come from the generation
//! number alone, and names read back from a manifest must match the patterns
//! above, so a tampered manifest cannot point outside `data_dir` either.
//!
//! # Write path
//!
//! Commands append records to the buffer inside the keyspace (under its
//! lock, so log order is execution order). Before a connection sends replies
//! it calls [`Persist::commit`] with the sequence number of the last record
//! it may have observed: if that record is not yet written, the connection
//! takes the writer lock, moves the whole buffer out (everyone's records, a
//! group write) and `write(2)`s it. So under every `appendfsync` policy an
//! acknowledged write has reached the OS and survives a process crash. With
//! `always` the connection then waits, without holding any lock, until the
//! fsync thread reports a synced sequence at least as high: one
//! `fdatasync` covers every writer whose records were in the file (group
//! commit). With `everysec` the same thread syncs once a second; with `no`
//! only compaction and shutdown sync. Lock order is writer → keyspace.
//!
//! # Compaction (`BGREWRITEAOF`, `BGSAVE`, automatic)
//!
//! 1. Create the next generation's empty log and write a manifest naming the
//!    old snapshot, the old logs and the new log.
//! 2. Under the writer and keyspace locks: write out and fsync the old log,
//!    switch appends to the new one, and encode the dataset into the
//!    snapshot's bytes in memory ([`snapshot::encode`]: a pause proportional
//!    to the data size, and memory for the encoded file until it is written;
//!    Redis forks instead, which this process cannot do safely with threads).
//! 3. On a background thread: write the snapshot (temp, fsync, rename, dir
//!    fsync), then a manifest naming it and the new log, then delete the
//!    files it replaced.
//!
//! A crash before step 3's manifest leaves step 1's manifest, which loads
//! the old files plus whatever the new log received; after it, the new pair.
//!
//! # Loading
//!
//! The server binds first and answers `-LOADING` meanwhile. The snapshot is
//! verified whole, then logs are replayed through the command handlers with
//! each record's original clock. A record cut short at the end of the last
//! log (a crash mid-write) is truncated away with a warning naming file and
//! offset; anything else wrong refuses to start with [`LoadError`], which
//! `redis-guard store --repair` ([`repair`]) fixes explicitly.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar};
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use serde::Deserialize;

use crate::store::client::{ClientHandle, ClientState};
use crate::store::cmd::{COMMANDS, Ctx, lookup};
use crate::store::config::StoreConfig;
use crate::store::frame::Out;
use crate::store::keyspace::now_ms;
use crate::store::oplog::{self, Damage};
use crate::store::server::Shared;
use crate::store::snapshot;

/// Name of the manifest inside `data_dir`.
pub const MANIFEST: &str = "manifest";
const MANIFEST_HEAD: &str = "redis-guard-manifest 1";

/// The `appendfsync` policies, with Redis's meaning.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// A reply waits until its record is on disk.
    Always,
    /// Records reach the OS before the reply and the disk within about a second.
    #[default]
    Everysec,
    /// Records reach the OS before the reply; the OS decides when they hit the disk.
    No,
}

impl FsyncPolicy {
    /// The name used in `CONFIG GET appendfsync`.
    pub fn as_str(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Everysec => "everysec",
            FsyncPolicy::No => "no",
        }
    }
}

/// Why the data could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read or written.
    #[error("{}: {error}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The error (shown in the message, so not chained as a source).
        error: std::io::Error,
    },
    /// The manifest is unreadable or names files it must not.
    #[error("{}: line {line}: {reason} (run `redis-guard store --repair`)", file.display())]
    Manifest {
        /// The manifest.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A snapshot or log is damaged somewhere other than a log's tail.
    #[error("{}: offset {offset}: {reason} (run `redis-guard store --repair`)", file.display())]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the damage.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The manifest is gone but data files are there: starting empty would
    /// let the next start delete them as strays.
    #[error(
        "{}: missing, but the data directory holds {found}; refusing to start empty over them (run `redis-guard store --repair` to rebuild the manifest from them)",
        file.display()
    )]
    MissingManifest {
        /// Where the manifest should be.
        file: PathBuf,
        /// The data files found.
        found: String,
    },
    /// The data is sound but does not fit the configuration (keys in a
    /// database beyond `store.databases`). `--repair` must not touch it.
    #[error("{}: {reason}", file.display())]
    Config {
        /// The file holding the data.
        file: PathBuf,
        /// What to change.
        reason: String,
    },
    /// The manifest names a file that is not there.
    #[error(
        "{}: named by the manifest but missing (run `redis-guard store --repair` to load without it)",
        file.display()
    )]
    Missing {
        /// The missing file.
        file: PathBuf,
    },
    /// Another store has this `data_dir` open.
    #[error(
        "{}: in use by another running redis-guard store (its lock is held); give each store its own data_dir",
        dir.display()
    )]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
}

fn missing_or_io(path: &Path, e: std::io::Error) -> LoadError {
    if e.kind() == std::io::ErrorKind::NotFound {
        LoadError::Missing {
            file: path.to_path_buf(),
        }
    } else {
        io_err(path)(e)
    }
}

/// The lock file that keeps a second store (or `--repair`) off a
/// `data_dir` a running store owns.
const LOCK_FILE: &str = "redis-guard.lock";

/// Takes `dir`'s lock, held for as long as the returned file stays open.
pub fn lock_data_dir(dir: &Path) -> Result<File, LoadError> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        let e = std::io::Error::last_os_error();
        return Err(if e.kind() == std::io::ErrorKind::WouldBlock {
            LoadError::Locked {
                dir: dir.to_path_buf(),
            }
        } else {
            io_err(&path)(e)
        });
    }
    Ok(f)
}

/// The message for keys in a database the configuration does not have.
fn too_few_databases(db: usize, ndb: usize) -> String {
    format!(
        "holds keys of database {db}, but store.databases = {ndb}: raise store.databases to at least {} (the data itself is fine; --repair would not help)",
        db + 1
    )
}

fn io_err(file: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |error| LoadError::Io {
        file: file.to_path_buf(),
        error,
    }
}

/// The files that make up the data, in load order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// The snapshot, if any.
    pub snapshot: Option<String>,
    /// Logs replayed after the snapshot, oldest first.
    pub logs: Vec<String>,
}

/// Generation number of a file name this module may write, if it is one.
pub fn generation(name: &str) -> Option<u64> {
    let num = name
        .strip_prefix("snapshot-")
        .and_then(|r| r.strip_suffix(".rgs"))
        .or_else(|| {
            name.strip_prefix("log-")
                .and_then(|r| r.strip_suffix(".aof"))
        })?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 19 {
        return None;
    }
    num.parse().ok()
}

impl Manifest {
    /// Highest generation named.
    pub fn generation(&self) -> u64 {
        self.snapshot
            .iter()
            .chain(&self.logs)
            .filter_map(|n| generation(n))
            .max()
            .unwrap_or(0)
    }

    /// The file text, checksum line included.
    pub fn render(&self) -> String {
        let mut s = format!("{MANIFEST_HEAD}\n");
        if let Some(x) = &self.snapshot {
            s.push_str(&format!("snapshot {x}\n"));
        }
        for l in &self.logs {
            s.push_str(&format!("log {l}\n"));
        }
        let sum = xxhash_rust::xxh3::xxh3_64(s.as_bytes());
        s.push_str(&format!("checksum {sum:016x}\n"));
        s
    }

    /// Parses a manifest file's text.
    pub fn parse(file: &Path, text: &str) -> Result<Manifest, LoadError> {
        let bad = |line: usize, reason: &str| LoadError::Manifest {
            file: file.to_path_buf(),
            line,
            reason: reason.into(),
        };
        let mut m = Manifest::default();
        let mut body_len = 0;
        let mut sum = None;
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let n = i + 1;
            let Some(l) = line.strip_suffix('\n') else {
                return Err(bad(n, "torn manifest: last line is incomplete"));
            };
            if sum.is_some() {
                return Err(bad(n, "text after the checksum line"));
            }
            if i == 0 {
                if l != MANIFEST_HEAD {
                    return Err(bad(n, "not a redis-guard manifest (bad first line)"));
                }
            } else if let Some(x) = l.strip_prefix("snapshot ") {
                if generation(x).is_none() || !x.starts_with("snapshot-") {
                    return Err(bad(n, "snapshot name must be snapshot-<n>.rgs"));
                }
                if m.snapshot.is_some() || !m.logs.is_empty() {
                    return Err(bad(n, "snapshot must come first and only once"));
                }
                m.snapshot = Some(x.to_string());
            } else if let Some(x) = l.strip_prefix("log ") {
                if generation(x).is_none() || !x.starts_with("log-") {
                    return Err(bad(n, "log name must be log-<n>.aof"));
                }
                m.logs.push(x.to_string());
            } else if let Some(x) = l.strip_prefix("checksum ") {
                sum = Some((n, x.to_string()));
                continue;
            } else {
                return Err(bad(n, "unknown line"));
            }
            body_len += line.len();
        }
        let Some((n, sum)) = sum else {
            return Err(bad(
                text.lines().count().max(1),
                "torn manifest: no checksum line",
            ));
        };
        let want = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(&text.as_bytes()[..body_len])
        );
        if sum != want {
            return Err(bad(n, "checksum mismatch"));
        }
        Ok(m)
    }
}

/// Fsyncs a directory so a rename or a new file in it is durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` with `data` durably: temp file, fsync, rename, dir fsync.
fn replace_file(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    write_temp(&tmp, data)?;
    fs::rename(&tmp, dir.join(name)).inspect_err(|_| discard_temp(&tmp))?;
    sync_dir(dir)
}

/// Writes and fsyncs a temp file; one that fails is removed, not left to
/// hold the disk space whose lack may be why it failed (writes stay refused
/// while the disk is full).
fn write_temp(tmp: &Path, data: &[u8]) -> std::io::Result<()> {
    let written = File::create(tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    written.inspect_err(|_| discard_temp(tmp))
}

fn discard_temp(tmp: &Path) {
    if let Err(e) = fs::remove_file(tmp)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = %tmp.display(), error = %e, "could not remove a temp file");
    }
}

fn write_manifest(dir: &Path, m: &Manifest) -> std::io::Result<()> {
    replace_file(dir, MANIFEST, m.render().as_bytes())
}

/// Opens (creating empty) a log for appending and makes its existence durable.
fn create_log(dir: &Path, name: &str) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.join(name))?;
    f.sync_all()?;
    sync_dir(dir)?;
    Ok(f)
}

struct Tail {
    file: Arc<File>,
    size: u64,
    /// A write failed since the file was last known to end at `size`, so
    /// it may end in a partial record. Checked (and cut) only then: a
    /// metadata call per group write cost about 5% of SET throughput.
    maybe_torn: bool,
}

#[derive(Default)]
struct Writer {
    tail: Option<Tail>,
    spare: Vec<u8>,
    /// The keyspace's record buffer (set once the server exists).
    pending: Option<oplog::SharedPending>,
    /// Records a failed write(2) could not store, with the sequence number
    /// they end at. They go first in the next write, and nothing after them
    /// counts as written until they are: another client's acknowledgement
    /// must never cover a record that is not in the file.
    failed: Option<(Vec<u8>, u64)>,
}

/// Durability state shared by the server, connections and background threads.
pub struct Persist {
    /// `data_dir`'s lock, held while this store runs.
    _lock: File,
    /// `data_dir`, fixed at start.
    pub dir: PathBuf,
    /// Whether writes are logged.
    pub appendonly: bool,
    /// The `appendfsync` policy.
    pub fsync: FsyncPolicy,
    auto_pct: u64,
    auto_min: u64,
    writer: Mutex<Writer>,
    files: Mutex<Manifest>,
    written: AtomicU64,
    synced: AtomicU64,
    synced_tx: tokio::sync::watch::Sender<u64>,
    wake: (std::sync::Mutex<bool>, Condvar),
    stop: AtomicBool,
    /// True until the data is loaded; commands get `-LOADING` meanwhile.
    pub loading: AtomicBool,
    /// A snapshot/compaction is being written.
    pub bg_in_progress: AtomicBool,
    /// The running one was asked for as a snapshot (`SAVE`/`BGSAVE`) rather
    /// than a log rewrite (`BGREWRITEAOF`, automatic compaction): it is the
    /// same work here, but Redis reports and refuses the two differently.
    pub bg_is_save: AtomicBool,
    /// Unix ms when the running snapshot/compaction started.
    pub bg_started_ms: AtomicU64,
    /// Seconds the last `BGSAVE`/`SAVE` took (-1 before the first).
    pub last_save_secs: std::sync::atomic::AtomicI64,
    /// Seconds the last log rewrite (compaction) took (-1 before the first).
    pub last_rewrite_secs: std::sync::atomic::AtomicI64,
    /// Log rewrites finished since start (`aof_rewrites`).
    pub rewrites: AtomicU64,
    /// A log rewrite was asked for while a save ran (`BGREWRITEAOF`); it
    /// starts after (`aof_rewrite_scheduled`).
    pub rewrite_scheduled: AtomicBool,
    /// A save was asked for while a rewrite ran (`BGSAVE SCHEDULE`); it
    /// starts after, as a save: it moves `LASTSAVE`.
    pub save_scheduled: AtomicBool,
    /// Unix seconds of the last successful snapshot (start time before any).
    pub lastsave: AtomicU64,
    /// Whether the last save (`SAVE`/`BGSAVE`) succeeded (`rdb_last_bgsave_status`).
    pub last_save_ok: AtomicBool,
    /// Whether the last log rewrite succeeded (`aof_last_bgrewrite_status`).
    pub last_rewrite_ok: AtomicBool,
    /// Log rewrites that failed since the last one that succeeded.
    pub rewrite_failures: AtomicU64,
    /// Keys the last start loaded from the snapshot (`rdb_last_load_keys_loaded`).
    pub load_keys_loaded: AtomicU64,
    /// Keys the last start dropped because they had expired while the store
    /// was down (`rdb_last_load_keys_expired`).
    pub load_keys_expired: AtomicU64,
    /// Whether the last log write succeeded; writes are refused while not.
    pub last_write_ok: AtomicBool,
    /// Whether fsync works; writes are refused while not. Under
    /// `appendfsync always` it stays false until restart (Redis exits
    /// there): a later fsync that succeeds does not prove that the pages
    /// of the failed one reached the disk.
    pub fsync_ok: AtomicBool,
    /// [`Keyspace::dirty`](crate::store::keyspace::Keyspace::dirty) when
    /// the last save's image was taken.
    pub saved_dirty: AtomicU64,
    /// Size of the current log tail.
    pub tail_size: AtomicU64,
    /// Size of the snapshot at the last compaction (the growth reference).
    pub base_size: AtomicU64,
    /// Snapshots written since start.
    pub saves: AtomicU64,
}

impl Persist {
    /// Prepares `data_dir` and reads its manifest. Returns the manifest to
    /// load, or `None` for a fresh directory (which is initialised here).
    pub fn open(config: &StoreConfig) -> Result<(Persist, Option<Manifest>), LoadError> {
        let dir = config.data_dir.clone();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let lock = lock_data_dir(&dir)?;
        // Leftovers of a write that crashed before its rename.
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let n = e.file_name();
                let n = n.to_string_lossy();
                if n.ends_with(".tmp")
                    && (n.starts_with(MANIFEST) || generation(n.trim_end_matches(".tmp")).is_some())
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        let (synced_tx, _) = tokio::sync::watch::channel(0);
        let p = Persist {
            _lock: lock,
            dir: dir.clone(),
            appendonly: config.appendonly,
            fsync: config.appendfsync,
            auto_pct: config.auto_compact_percentage,
            auto_min: config.auto_compact_min_size.0,
            writer: Mutex::new(Writer::default()),
            files: Mutex::new(Manifest::default()),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            synced_tx,
            wake: (std::sync::Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            bg_in_progress: AtomicBool::new(false),
            bg_is_save: AtomicBool::new(false),
            bg_started_ms: AtomicU64::new(0),
            last_save_secs: std::sync::atomic::AtomicI64::new(-1),
            last_rewrite_secs: std::sync::atomic::AtomicI64::new(-1),
            rewrites: AtomicU64::new(0),
            rewrite_scheduled: AtomicBool::new(false),
            save_scheduled: AtomicBool::new(false),
            lastsave: AtomicU64::new(now_ms() / 1000),
            last_save_ok: AtomicBool::new(true),
            last_rewrite_ok: AtomicBool::new(true),
            rewrite_failures: AtomicU64::new(0),
            load_keys_loaded: AtomicU64::new(0),
            load_keys_expired: AtomicU64::new(0),
            last_write_ok: AtomicBool::new(true),
            fsync_ok: AtomicBool::new(true),
            saved_dirty: AtomicU64::new(0),
            tail_size: AtomicU64::new(0),
            base_size: AtomicU64::new(0),
            saves: AtomicU64::new(0),
        };
        let mpath = dir.join(MANIFEST);
        match fs::read(&mpath) {
            Ok(data) => {
                let text = String::from_utf8(data).map_err(|_| LoadError::Manifest {
                    file: mpath.clone(),
                    line: 1,
                    reason: "not UTF-8".into(),
                })?;
                let m = Manifest::parse(&mpath, &text)?;
                p.loading.store(true, Ordering::Release);
                Ok((p, Some(m)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // An empty log is what a crash during a first start leaves
                // (created before the manifest): nothing to protect.
                let mut found: Vec<String> = fs::read_dir(&dir)
                    .map(|rd| {
                        rd.flatten()
                            .filter(|e| {
                                let n = e.file_name().to_string_lossy().into_owned();
                                generation(&n).is_some()
                                    && e.metadata().map(|m| m.len() > 0).unwrap_or(true)
                            })
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                if !found.is_empty() {
                    found.sort();
                    return Err(LoadError::MissingManifest {
                        file: mpath,
                        found: found.join(", "),
                    });
                }
                p.start_logs(Manifest::default())?;
                Ok((p, None))
            }
            Err(e) => Err(io_err(&mpath)(e)),
        }
    }

    /// After loading `m`: opens the last log for appending (starting a new
    /// one if `appendonly` is on and there is none) and records the files.
    fn start_logs(&self, mut m: Manifest) -> Result<(), LoadError> {
        if self.appendonly {
            let name = match m.logs.last() {
                Some(l) => l.clone(),
                None => {
                    let name = format!("log-{}.aof", m.generation() + 1);
                    let path = self.dir.join(&name);
                    create_log(&self.dir, &name).map_err(io_err(&path))?;
                    m.logs.push(name.clone());
                    write_manifest(&self.dir, &m).map_err(io_err(&self.dir.join(MANIFEST)))?;
                    name
                }
            };
            let path = self.dir.join(&name);
            let f = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(io_err(&path))?;
            let size = f.metadata().map_err(io_err(&path))?.len();
            self.tail_size.store(size, Ordering::Relaxed);
            self.writer.lock().tail = Some(Tail {
                file: Arc::new(f),
                size,
                maybe_torn: false,
            });
        }
        if let Some(s) = &m.snapshot
            && let Ok(md) = fs::metadata(self.dir.join(s))
        {
            self.base_size.store(md.len(), Ordering::Relaxed);
        }
        *self.files.lock() = m;
        Ok(())
    }

    /// Whether the log writer has had an error (writes are refused then).
    pub fn write_failed(&self) -> bool {
        self.appendonly
            && !(self.last_write_ok.load(Ordering::Relaxed)
                && self.fsync_ok.load(Ordering::Relaxed))
    }

    /// Makes sure record `seq` (and all before it) is written, and with
    /// `appendfsync always` synced, before the caller sends its replies.
    pub async fn commit(&self, shared: &Shared, seq: u64) -> std::io::Result<()> {
        if !self.appendonly {
            return Ok(());
        }
        let written = self.written.load(Ordering::Acquire);
        if written < seq {
            // Let the connections already queued on this worker run their
            // commands first, as redis's event loop does before its one
            // AOF write per turn: whoever writes next then carries all
            // their records in one write(2). At -P 1 this took the log
            // from one write per request to one per ~20 and the store from
            // 0.95x to 1.05x-1.08x redis; at -P 16 from 1.27x to 1.5x.
            requeue_once().await;
            // Blocking briefly on a writer busy in write(2) measured better
            // than yielding again: repeated yields spin through the driver.
            if self.written.load(Ordering::Acquire) < seq {
                self.write_out(shared)?;
            }
        }
        if self.fsync == FsyncPolicy::Always && self.synced.load(Ordering::Acquire) < seq {
            let mut rx = self.synced_tx.subscribe();
            self.kick();
            rx.wait_for(|s| *s >= seq)
                .await
                .map_err(|_| std::io::Error::other("log fsync thread stopped"))?;
            if self.synced.load(Ordering::Acquire) < seq {
                return Err(std::io::Error::other("log fsync failed"));
            }
        }
        Ok(())
    }

    /// Writes every buffered record to the current log (group write).
    fn write_out(&self, shared: &Shared) -> std::io::Result<()> {
        let mut w = self.writer.lock();
        let spare = std::mem::take(&mut w.spare);
        let pending = w
            .pending
            .get_or_insert_with(|| shared.ks.lock().oplog.pending())
            .clone();
        let taken = oplog::take(&pending, spare);
        self.write_locked(&mut w, taken)
    }

    fn write_locked(&self, w: &mut Writer, taken: (Vec<u8>, u64)) -> std::io::Result<()> {
        let (mut buf, mut upto) = taken;
        if let Some((mut held, held_upto)) = w.failed.take() {
            held.extend_from_slice(&buf);
            buf = held;
            upto = upto.max(held_upto);
        }
        if !buf.is_empty()
            && let Some(t) = w.tail.as_mut()
        {
            // A failed write whose partial record could not be cut off must
            // be cut now, or the held records would follow a torn one.
            let trimmed = !t.maybe_torn
                || t.file
                    .metadata()
                    .map(|m| m.len() == t.size)
                    .unwrap_or(false)
                || (t.file.set_len(t.size).is_ok()
                    && t.file
                        .metadata()
                        .map(|m| m.len() == t.size)
                        .unwrap_or(false));
            let written = if trimmed {
                (&*t.file).write_all(&buf)
            } else {
                Err(std::io::Error::other(
                    "the command log still ends in a partial record that could not be cut off",
                ))
            };
            if let Err(e) = written {
                // Cut a partial record off so later records stay readable,
                // and keep the records for the next attempt.
                t.maybe_torn = true;
                let _ = t.file.set_len(t.size);
                if self.last_write_ok.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "writing the command log failed; writes are refused until it succeeds again");
                }
                w.failed = Some((buf, upto));
                return Err(e);
            }
            t.maybe_torn = false;
            t.size += buf.len() as u64;
            self.tail_size.store(t.size, Ordering::Relaxed);
        }
        buf.clear();
        w.spare = buf;
        self.written.fetch_max(upto, Ordering::AcqRel);
        if !self.last_write_ok.swap(true, Ordering::Relaxed) {
            tracing::info!("the command log is writable again; writes are accepted");
        }
        Ok(())
    }

    fn kick(&self) {
        let (m, cv) = &self.wake;
        if let Ok(mut g) = m.lock() {
            *g = true;
            cv.notify_one();
        }
    }

    /// Fsyncs the current log if it has unsynced records.
    fn sync_now(&self) {
        let (file, target) = {
            let w = self.writer.lock();
            let Some(t) = w.tail.as_ref() else { return };
            (t.file.clone(), self.written.load(Ordering::Acquire))
        };
        if target <= self.synced.load(Ordering::Acquire) {
            return;
        }
        match file.sync_data() {
            Ok(()) => {
                self.synced.fetch_max(target, Ordering::AcqRel);
                self.synced_tx
                    .send_replace(self.synced.load(Ordering::Acquire));
                if self.fsync != FsyncPolicy::Always && !self.fsync_ok.swap(true, Ordering::Relaxed)
                {
                    tracing::info!("fsync of the command log works again; writes are accepted");
                }
            }
            Err(e) => fsync_failed(self, &e),
        }
    }

    /// Starts the thread that fsyncs per policy and starts automatic compaction.
    pub fn start_background(shared: &Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("store-persist".into())
            .spawn(move || background(shared))
    }

    /// Final write and fsync at shutdown; stops the background thread.
    pub fn shutdown(&self, shared: &Shared) {
        self.stop.store(true, Ordering::Release);
        self.kick();
        if !self.appendonly {
            return;
        }
        if let Err(e) = self.write_out(shared) {
            tracing::error!(error = %e, "final command log write failed");
        }
        self.sync_now();
    }

    /// Records how the running save or rewrite ended; `INFO` reports the
    /// two kinds apart, as Redis does.
    fn record_outcome(&self, ok: bool) {
        if self.bg_is_save.load(Ordering::Relaxed) {
            self.last_save_ok.store(ok, Ordering::Relaxed);
        } else {
            self.last_rewrite_ok.store(ok, Ordering::Relaxed);
            if ok {
                self.rewrite_failures.store(0, Ordering::Relaxed);
            } else {
                self.rewrite_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn wants_auto_compaction(&self) -> bool {
        if !self.appendonly || self.auto_pct == 0 || self.bg_in_progress.load(Ordering::Relaxed) {
            return false;
        }
        let tail = self.tail_size.load(Ordering::Relaxed);
        let base = self.base_size.load(Ordering::Relaxed);
        tail >= self.auto_min && tail >= base.saturating_mul(self.auto_pct) / 100
    }
}

fn background(shared: Arc<Shared>) {
    let p = &shared.persist;
    let mut last_sync = std::time::Instant::now();
    let mut last_retry = std::time::Instant::now();
    // A failing compaction (disk full, ...) is retried after a pause, not on
    // every tick: the log keeps working meanwhile.
    let mut retry_at: Option<std::time::Instant> = None;
    loop {
        {
            let (m, cv) = &p.wake;
            let Ok(g) = m.lock() else { return };
            // Woken at once by `always` writers; otherwise a tick for
            // `everysec` and for the compaction check.
            let tick = Duration::from_millis(100);
            let Ok((mut g, _)) = cv.wait_timeout_while(g, tick, |k| !*k) else {
                return;
            };
            *g = false;
        }
        if p.stop.load(Ordering::Acquire) {
            return;
        }
        if p.write_failed() && last_retry.elapsed() >= Duration::from_secs(1) {
            // Redis retries a failed log write on its own; so do we, once a
            // second, so freeing disk space is enough to take writes again.
            last_retry = std::time::Instant::now();
            if p.write_out(&shared).is_ok() {
                p.sync_now();
            }
        }
        match p.fsync {
            FsyncPolicy::Always => p.sync_now(),
            FsyncPolicy::Everysec if last_sync.elapsed() >= Duration::from_secs(1) => {
                // Records of idle connections may still sit in the buffer.
                let _ = p.write_out(&shared);
                p.sync_now();
                last_sync = std::time::Instant::now();
            }
            _ => {}
        }
        let idle = !p.bg_in_progress.load(Ordering::Relaxed);
        let save = idle && p.save_scheduled.load(Ordering::Relaxed);
        let rewrite = idle && p.rewrite_scheduled.load(Ordering::Relaxed);
        let may_retry = retry_at.is_none_or(|t| std::time::Instant::now() >= t);
        if may_retry && (save || rewrite || p.wants_auto_compaction()) {
            // A scheduled save runs as a save, so "BGSAVE SCHEDULE, then
            // watch LASTSAVE" sees it; a rewrite asked for as well runs next.
            // The request stays until a run starts: a client's BGSAVE can
            // take the slot first (Busy), and then this one waits its turn.
            let flag = if save {
                &p.save_scheduled
            } else {
                &p.rewrite_scheduled
            };
            retry_at = None;
            match compact(&shared, false, save) {
                Ok(Started::Yes) => flag.store(false, Ordering::Relaxed),
                Ok(Started::Busy) => {}
                Err(e) => {
                    flag.store(false, Ordering::Relaxed);
                    tracing::error!(error = %format!("{e:#}"), "compaction failed; automatic compaction retries in 10 s");
                    retry_at = Some(std::time::Instant::now() + Duration::from_secs(10));
                }
            }
        }
    }
}

/// Result of asking for a snapshot.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    /// Started (or, when waiting, finished).
    Yes,
    /// Another one is running.
    Busy,
}

/// Marks fsync as failing, so writes are refused until one works (under
/// `always`, until restart: a later fsync that succeeds proves nothing about
/// the pages of this one), and wakes `always` writers waiting for it so they
/// see the failure instead of hanging.
fn fsync_failed(p: &Persist, e: &std::io::Error) {
    p.fsync_ok.store(false, Ordering::Relaxed);
    if p.fsync == FsyncPolicy::Always {
        tracing::error!(error = %e, "fsync of the command log failed under appendfsync always; writes are refused until the store restarts");
    } else {
        tracing::error!(error = %e, "fsync of the command log failed; writes are refused until one succeeds");
    }
    p.synced_tx.send_replace(p.synced.load(Ordering::Acquire));
}

/// Asks for a save (`BGSAVE SCHEDULE`, `save`) or a log rewrite
/// (`BGREWRITEAOF`) to run after the one in progress.
pub fn schedule(shared: &Shared, save: bool) {
    let p = &shared.persist;
    if save {
        p.save_scheduled.store(true, Ordering::Relaxed);
    } else {
        p.rewrite_scheduled.store(true, Ordering::Relaxed);
    }
}

/// Writes a new snapshot and starts a new log tail (see the module docs).
/// With `wait`, returns once the snapshot and manifest are durable. `save`
/// says it was asked for as a snapshot (`SAVE`/`BGSAVE`) rather than a log
/// rewrite, which `INFO` and the refusals report apart. Must be called
/// without the keyspace lock held.
pub fn compact(shared: &Arc<Shared>, wait: bool, save: bool) -> anyhow::Result<Started> {
    use anyhow::Context;
    let p = &shared.persist;
    if p.bg_in_progress.swap(true, Ordering::AcqRel) {
        return Ok(Started::Busy);
    }
    p.bg_is_save.store(save, Ordering::Relaxed);
    p.bg_started_ms.store(now_ms(), Ordering::Relaxed);
    let r = (|| -> anyhow::Result<std::thread::JoinHandle<()>> {
        let old = p.files.lock().clone();
        let gen_ = old.generation() + 1;
        let new_log = format!("log-{gen_}.aof");
        let new_file = if p.appendonly {
            Some(
                create_log(&p.dir, &new_log)
                    .with_context(|| format!("creating {}", p.dir.join(&new_log).display()))?,
            )
        } else {
            None
        };
        // One critical section: the records before the switch are in the old
        // log, the image includes exactly them, and the new log gets the rest.
        let (image, created, dirty) = {
            let mut w = p.writer.lock();
            let mut ks = shared.ks.lock();
            ks.log_pending(now_ms());
            if let Some(f) = new_file {
                let spare = std::mem::take(&mut w.spare);
                let taken = ks.oplog.take(spare);
                // The old log is written out and synced before the manifest
                // names a log after it: a log that is not the last must be
                // whole, so a power cut right after the manifest lands must
                // not find its tail torn (the loader would refuse it).
                let synced = p
                    .write_locked(&mut w, taken)
                    .context("writing the command log")
                    .and_then(|()| match w.tail.as_ref() {
                        Some(t) => t
                            .file
                            .sync_data()
                            .inspect_err(|e| fsync_failed(p, e))
                            .context("syncing the old log"),
                        None => Ok(()),
                    });
                if let Err(e) = synced {
                    let _ = fs::remove_file(p.dir.join(&new_log));
                    return Err(e);
                }
                let mut m1 = old.clone();
                m1.logs.push(new_log.clone());
                if let Err(e) = write_manifest(&p.dir, &m1) {
                    // The new manifest may have landed before the failure
                    // (rename done, directory sync failed): the log being
                    // appended to must stay the last one it names. The new,
                    // empty log goes only once the old manifest is back.
                    if write_manifest(&p.dir, &old).is_ok() {
                        let _ = fs::remove_file(p.dir.join(&new_log));
                    }
                    return Err(e).context("writing the manifest");
                }
                *p.files.lock() = m1;
                let upto = p.written.load(Ordering::Acquire);
                p.synced.fetch_max(upto, Ordering::AcqRel);
                p.synced_tx.send_replace(p.synced.load(Ordering::Acquire));
                w.tail = Some(Tail {
                    file: Arc::new(f),
                    size: 0,
                    maybe_torn: false,
                });
                p.tail_size.store(0, Ordering::Relaxed);
            }
            let t = std::time::Instant::now();
            let created = now_ms();
            let image = snapshot::encode(&ks, created);
            tracing::info!(
                bytes = image.len(),
                ms = t.elapsed().as_millis() as u64,
                "compaction: dataset encoded under the keyspace lock"
            );
            (image, created, ks.dirty)
        };
        let shared2 = shared.clone();
        let h = std::thread::Builder::new()
            .name("store-snapshot".into())
            .spawn(move || {
                let p = &shared2.persist;
                let r = finish_snapshot(p, gen_, &image, created, dirty);
                drop(image);
                p.record_outcome(r.is_ok());
                match r {
                    Ok(()) => tracing::info!(generation = gen_, "snapshot written"),
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "writing the snapshot failed");
                    }
                }
                let secs = (now_ms().saturating_sub(p.bg_started_ms.load(Ordering::Relaxed)) / 1000)
                    as i64;
                if p.bg_is_save.load(Ordering::Relaxed) {
                    p.last_save_secs.store(secs, Ordering::Relaxed);
                } else {
                    p.last_rewrite_secs.store(secs, Ordering::Relaxed);
                    p.rewrites.fetch_add(1, Ordering::Relaxed);
                }
                p.bg_in_progress.store(false, Ordering::Release);
            })
            .context("starting the snapshot thread")?;
        Ok(h)
    })();
    match r {
        Ok(h) => {
            if wait {
                let _ = h.join();
                let ok = if save {
                    &p.last_save_ok
                } else {
                    &p.last_rewrite_ok
                };
                if !ok.load(Ordering::Relaxed) {
                    anyhow::bail!("writing the snapshot failed (see the log)");
                }
            }
            Ok(Started::Yes)
        }
        Err(e) => {
            p.record_outcome(false);
            p.bg_in_progress.store(false, Ordering::Release);
            Err(e)
        }
    }
}

fn finish_snapshot(
    p: &Persist,
    gen_: u64,
    image: &[u8],
    created: u64,
    dirty: u64,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let name = format!("snapshot-{gen_}.rgs");
    let tmp = p.dir.join(format!("{name}.tmp"));
    write_temp(&tmp, image).with_context(|| format!("writing {}", tmp.display()))?;
    let size = image.len() as u64;
    fs::rename(&tmp, p.dir.join(&name))
        .inspect_err(|_| discard_temp(&tmp))
        .with_context(|| format!("renaming {}", tmp.display()))?;
    sync_dir(&p.dir).context("syncing data_dir")?;
    let old = p.files.lock().clone();
    let new_log = format!("log-{gen_}.aof");
    let m2 = Manifest {
        snapshot: Some(name.clone()),
        logs: if p.appendonly {
            vec![new_log]
        } else {
            Vec::new()
        },
    };
    write_manifest(&p.dir, &m2).context("writing the manifest")?;
    *p.files.lock() = m2.clone();
    for f in old.snapshot.iter().chain(&old.logs) {
        if Some(f) != m2.snapshot.as_ref() && !m2.logs.contains(f) {
            let _ = fs::remove_file(p.dir.join(f));
        }
    }
    p.base_size.store(size, Ordering::Relaxed);
    // As in Redis, only a save (SAVE, BGSAVE) is a save: a log rewrite or
    // an automatic compaction leaves LASTSAVE and the rdb_* figures alone,
    // so "BGSAVE, then poll LASTSAVE" backup scripts stay right.
    if p.bg_is_save.load(Ordering::Relaxed) {
        p.saved_dirty.store(dirty, Ordering::Relaxed);
        p.lastsave.store(created / 1000, Ordering::Relaxed);
        p.saves.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// What loading found.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Keys from the snapshot.
    pub snapshot_keys: usize,
    /// Records replayed from logs.
    pub records: u64,
    /// Keys dropped because they expired while the store was down.
    pub expired: usize,
}

/// Loads `m` into the (empty) keyspace, then opens the log for appending.
/// Runs with the keyspace lock held throughout; connections get `-LOADING`.
pub fn load(shared: &Arc<Shared>, m: Manifest) -> Result<LoadReport, LoadError> {
    let p = &shared.persist;
    let started = std::time::Instant::now();
    let mut report = LoadReport::default();
    let mut guard = Some(shared.ks.lock());
    if let Some(ks) = guard.as_mut() {
        ks.set_logging(false);
    }
    if let Some(name) = &m.snapshot {
        let path = p.dir.join(name);
        let data = fs::read(&path).map_err(|e| missing_or_io(&path, e))?;
        let ks = guard.as_mut().expect("keyspace guard");
        let (_, n) = snapshot::load(&data, ks).map_err(|b| match b.missing_db {
            Some(db) => LoadError::Config {
                file: path.clone(),
                reason: too_few_databases(db, shared.config.databases),
            },
            None => LoadError::Corrupt {
                file: path.clone(),
                offset: b.offset,
                reason: b.reason,
            },
        })?;
        report.snapshot_keys = n;
    }
    let handle = ClientHandle::internal();
    let mut client = ClientState::new(handle, None);
    let mut out = BytesMut::new();
    let ndb = shared.config.databases;
    for (i, name) in m.logs.iter().enumerate() {
        let path = p.dir.join(name);
        let last = i + 1 == m.logs.len();
        // Every log is created durably (file and directory synced) before a
        // manifest names it, so one that is gone was removed, possibly with
        // acknowledged writes: that takes --repair, not a silent start.
        let data = fs::read(&path).map_err(|e| missing_or_io(&path, e))?;
        let mut off = 0usize;
        loop {
            match oplog::read_record(&data, off) {
                Ok(None) => break,
                Ok(Some((rec, next))) => {
                    for (db, args) in &rec.cmds {
                        let corrupt = |reason: String| LoadError::Corrupt {
                            file: path.clone(),
                            offset: off as u64,
                            reason,
                        };
                        if *db >= ndb {
                            return Err(LoadError::Config {
                                file: path.clone(),
                                reason: format!(
                                    "record at offset {off} {}",
                                    too_few_databases(*db, ndb)
                                ),
                            });
                        }
                        let Some(idx) = lookup(&args[0]) else {
                            return Err(corrupt(format!(
                                "unknown command {:?}",
                                String::from_utf8_lossy(&args[0])
                            )));
                        };
                        client.db = *db;
                        let mut ctx = Ctx {
                            shared,
                            client: &mut client,
                            out: Out::new(&mut out, false),
                            guard: guard.take(),
                            now: rec.time,
                            in_exec: true,
                            block: None,
                            timed: None,
                            keep_reply: false,
                        };
                        let _ = (COMMANDS[idx].handler)(&mut ctx, args);
                        guard = ctx.guard.take();
                        out.clear();
                    }
                    report.records += 1;
                    off = next;
                }
                Err(Damage::TruncatedTail) if last => {
                    tracing::warn!(
                        file = %path.display(),
                        offset = off,
                        dropped_bytes = data.len() - off,
                        "command log ends in an incomplete record (crash during a write); truncating it there"
                    );
                    let f = OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .map_err(io_err(&path))?;
                    f.set_len(off as u64).map_err(io_err(&path))?;
                    f.sync_all().map_err(io_err(&path))?;
                    break;
                }
                Err(Damage::TruncatedTail) => {
                    return Err(LoadError::Corrupt {
                        file: path.clone(),
                        offset: off as u64,
                        reason: "incomplete record in a log that is not the last one".into(),
                    });
                }
                Err(Damage::Corrupt(reason)) => {
                    return Err(LoadError::Corrupt {
                        file: path.clone(),
                        offset: off as u64,
                        reason,
                    });
                }
            }
        }
    }
    let ks = guard.as_mut().expect("keyspace guard");
    let now = now_ms();
    for db in ks.dbs.iter_mut() {
        report.expired += db.purge_expired(now);
    }
    // Strays first: they are files the manifest does not name, and the new
    // log that `start_logs` may create must not be mistaken for one.
    remove_strays(&p.dir, &m);
    p.start_logs(m.clone())?;
    ks.set_logging(p.appendonly);
    // What was loaded is on disk already: replayed commands are no change.
    ks.dirty = 0;
    drop(guard);
    p.load_keys_loaded
        .store(report.snapshot_keys as u64, Ordering::Relaxed);
    p.load_keys_expired
        .store(report.expired as u64, Ordering::Relaxed);
    tracing::info!(
        snapshot_keys = report.snapshot_keys,
        records = report.records,
        expired = report.expired,
        ms = started.elapsed().as_millis() as u64,
        "data loaded"
    );
    Ok(report)
}

/// Deletes our own files that the manifest does not name (left by a crash
/// during compaction).
fn remove_strays(dir: &Path, m: &Manifest) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let keep: Vec<&String> = m.snapshot.iter().chain(&m.logs).collect();
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if generation(&n).is_some() && !keep.contains(&&n) {
            tracing::info!(file = %e.path().display(), "removing a file the manifest does not name");
            let _ = fs::remove_file(e.path());
        }
    }
}

/// `redis-guard store --repair`: makes `data_dir` loadable again, saying
/// what it dropped. Returns the report lines.
pub fn repair(config: &StoreConfig) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let dir = &config.data_dir;
    if !dir.exists() {
        anyhow::bail!(
            "{}: does not exist (store.data_dir): there is nothing to repair",
            dir.display()
        );
    }
    if !dir.is_dir() {
        anyhow::bail!("{}: not a directory (store.data_dir)", dir.display());
    }
    // Never under a running store: it could be writing the files.
    let _lock = lock_data_dir(dir)?;
    let mpath = dir.join(MANIFEST);
    let mut said = Vec::new();
    let mut rebuilt = false;
    let mut m = match fs::read_to_string(&mpath) {
        Ok(t) => match Manifest::parse(&mpath, &t) {
            Ok(m) => m,
            Err(e) => {
                let what = match &e {
                    LoadError::Manifest { line, reason, .. } => format!("line {line}: {reason}"),
                    other => other.to_string(),
                };
                said.push(format!(
                    "{}: {what}; rebuilding it from the files present",
                    mpath.display()
                ));
                rebuilt = true;
                rebuild_manifest(dir)?
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            said.push(format!(
                "{}: missing; rebuilding it from the files present",
                mpath.display()
            ));
            rebuilt = true;
            rebuild_manifest(dir)?
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", mpath.display())),
    };
    if let Some(s) = m.snapshot.clone() {
        let path = dir.join(&s);
        match snapshot::verify(&path, config.databases) {
            Ok(_) => {}
            Err(b) if b.missing_db.is_some() => {
                anyhow::bail!(
                    "{}: {}; nothing was changed",
                    path.display(),
                    too_few_databases(b.missing_db.unwrap_or(0), config.databases)
                );
            }
            Err(_) if !path.exists() => {
                said.push(format!(
                    "{}: missing; dropped from the manifest (its keys are lost unless later logs recreate them)",
                    path.display()
                ));
                m.snapshot = None;
            }
            Err(b) => {
                let aside = dir.join(format!("{s}.corrupt"));
                fs::rename(&path, &aside).ok();
                said.push(format!(
                    "{}: offset {}: {}; moved aside to {} and dropped from the manifest (its keys are lost unless later logs recreate them)",
                    path.display(),
                    b.offset,
                    b.reason,
                    aside.display()
                ));
                m.snapshot = None;
            }
        }
    }
    let mut keep = Vec::new();
    for name in &m.logs {
        let path = dir.join(name);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                said.push(format!(
                    "{}: missing; dropped from the manifest",
                    path.display()
                ));
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        match repair_log(&path, &data, &mut said) {
            None => {}
            // Only the tail goes: cut in place, which needs no free space.
            Some(fixed) if data.starts_with(&fixed) => {
                OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| {
                        f.set_len(fixed.len() as u64)?;
                        f.sync_all()
                    })
                    .with_context(|| format!("truncating {}", path.display()))?;
            }
            Some(fixed) => {
                let tmp = dir.join(format!("{name}.tmp"));
                fs::write(&tmp, &fixed)
                    .and_then(|()| File::open(&tmp)?.sync_all())
                    .and_then(|()| fs::rename(&tmp, &path))
                    .and_then(|()| sync_dir(dir))
                    .with_context(|| format!("rewriting {}", path.display()))?;
            }
        }
        keep.push(name.clone());
    }
    m.logs = keep;
    write_manifest(dir, &m).with_context(|| format!("writing {}", mpath.display()))?;
    if rebuilt {
        let names: Vec<&String> = m.snapshot.iter().chain(&m.logs).collect();
        said.push(format!(
            "{}: now names {}",
            mpath.display(),
            if names.is_empty() {
                "no files (an empty dataset)".to_string()
            } else {
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    if said.is_empty() {
        said.push(format!("{}: nothing to repair", dir.display()));
    }
    Ok(said)
}

/// Walks one log; returns its repaired bytes if anything had to change.
/// A damaged stretch followed by complete records is cut out and the
/// records after it are kept; damage with nothing valid after it (a torn
/// tail) is cut off.
fn repair_log(path: &Path, data: &[u8], said: &mut Vec<String>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut off = 0usize;
    let mut records = 0u64;
    let mut changed = false;
    loop {
        match oplog::read_record(data, off) {
            Ok(None) => break,
            Ok(Some((_, next))) => {
                out.extend_from_slice(&data[off..next]);
                records += 1;
                off = next;
            }
            Err(damage) => {
                changed = true;
                let reason = match damage {
                    Damage::TruncatedTail => "incomplete record".to_string(),
                    Damage::Corrupt(r) => r,
                };
                match oplog::next_valid_record(data, off + 1) {
                    Some(resume) => {
                        said.push(format!(
                            "{}: offset {off}: {reason}; cut out {} damaged bytes (the command(s) in them are lost), kept the records from offset {resume} on",
                            path.display(),
                            resume - off
                        ));
                        off = resume;
                    }
                    None => {
                        said.push(format!(
                            "{}: offset {off}: {reason}; truncated there after {records} good records, dropping {} bytes that hold no complete record",
                            path.display(),
                            data.len() - off
                        ));
                        break;
                    }
                }
            }
        }
    }
    changed.then_some(out)
}

/// The newest snapshot plus every log of its generation or later.
fn rebuild_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let mut snaps = Vec::new();
    let mut logs = Vec::new();
    for e in fs::read_dir(dir)?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(g) = generation(&n) {
            if n.starts_with("snapshot-") {
                snaps.push((g, n));
            } else {
                logs.push((g, n));
            }
        }
    }
    snaps.sort();
    logs.sort();
    let snapshot = snaps.pop();
    let from = snapshot.as_ref().map(|s| s.0).unwrap_or(0);
    Ok(Manifest {
        snapshot: snapshot.map(|s| s.1),
        logs: logs
            .into_iter()
            .filter(|l| l.0 >= from)
            .map(|l| l.1)
            .collect(),
    })
}

/// Puts the current task at the back of its worker's run queue once.
///
/// Unlike `tokio::task::yield_now`, which holds the task back until the
/// worker has polled the I/O driver, a self-wake only lets the tasks already
/// queued on this worker run first: exactly the connections whose records
/// the next log write can carry, without an extra `epoll_wait` in between.
fn requeue_once() -> impl std::future::Future<Output = ()> {
    let mut queued = false;
    std::future::poll_fn(move |cx| {
        if queued {
            std::task::Poll::Ready(())
        } else {
            queued = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_roundtrip_and_torn() {
        let m = Manifest {
            snapshot: Some("snapshot-3.rgs".into()),
            logs: vec!["log-3.aof".into(), "log-4.aof".into()],
        };
        let text = m.render();
        let p = Path::new("/d/manifest");
        assert_eq!(Manifest::parse(p, &text).unwrap(), m);
        assert_eq!(m.generation(), 4);
        for cut in 1..text.len() {
            assert!(Manifest::parse(p, &text[..cut]).is_err(), "cut at {cut}");
        }
        let evil = "redis-guard-manifest 1\nlog ../../etc/passwd\n";
        assert!(Manifest::parse(p, evil).is_err());
    }

    #[test]
    fn names() {
        assert_eq!(generation("log-12.aof"), Some(12));
        assert_eq!(generation("snapshot-1.rgs"), Some(1));
        assert_eq!(generation("log-.aof"), None);
        assert_eq!(generation("log-1/x.aof"), None);
        assert_eq!(generation("dump.rdb"), None);
    }
}
