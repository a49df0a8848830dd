//! Databases, expiry, memory accounting and eviction.
//!
//! The whole keyspace sits behind one mutex held only for the execution of a
//! single command (or one `EXEC`): parsing, reply encoding and socket I/O run
//! outside it on every core, and per-command, multi-key and `MULTI/EXEC`
//! atomicity follow for free. Each database is split into [`TABLES`] hash
//! tables by hash bits; this keeps resize pauses small, gives `SCAN` a cursor
//! that stays valid while keys come and go, and lets eviction and active
//! expiry sample keys without walking the whole database.
//!
//! Every change to a key goes through a [`Db`] method that calls `signal`,
//! which invalidates `WATCH`ers and wakes clients blocked on that key.

use std::collections::{HashMap as StdHashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};

use hashbrown::HashMap;
use rand::Rng;

use crate::store::cmd::blocking::Waiter;
use crate::store::config::EvictionPolicy;
use crate::store::value::{FixedState, Key, Kind, Value, hasher};

/// Number of hash tables per database. Not a power of two on purpose: with
/// 1024 tables a 1M-key database lands just past hashbrown's 7/8 load limit
/// in every table and doubles them all; 1280 keeps them about 3/4 full.
pub const TABLES: usize = 1280;
/// Candidates the eviction pool keeps, as Redis's `EVPOOL_SIZE`.
const EVICT_POOL: usize = 16;
// Table index above, hash bits below; 11 bits cover TABLES. 42 hash bits
// keep every cursor below 2^53: clients that read the cursor as a signed
// 64-bit integer (go-redis, StackExchange.Redis, phpredis once) or as a
// double (JavaScript) get it exactly.
const SCAN_BITS: u32 = 42;
const SCAN_MASK: u64 = (1 << SCAN_BITS) - 1;
/// Estimated bookkeeping bytes per key on top of key and value sizes.
const ENTRY_OVERHEAD: usize = 56;

/// `f` applied to an entry's value as kind `K`: `Ok(None)` for no entry,
/// `WrongType` for another kind (the tail of [`Db::read`] and
/// [`Db::read_for_write`]).
fn view<K: Kind, T>(
    e: Option<&mut Entry>,
    f: impl FnOnce(&K) -> T,
) -> Result<Option<T>, WrongType> {
    match e {
        None => Ok(None),
        Some(e) => K::get(&e.value).map(|v| Some(f(v))).ok_or(WrongType),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Frees large values on a background thread, so deleting a collection with
/// millions of elements does not stall every client behind the keyspace lock.
pub fn free_later(v: Value) {
    static DROPPER: LazyLock<Option<mpsc::Sender<Value>>> = LazyLock::new(|| {
        let (tx, rx) = mpsc::channel::<Value>();
        std::thread::Builder::new()
            .name("store-free".into())
            .spawn(move || for _dropped in rx {})
            .ok()
            .map(|_| tx)
    });
    if v.mem() < 64 * 1024 {
        return;
    }
    // Without the helper thread (spawn failed) the value is simply dropped here.
    if let Some(tx) = DROPPER.as_ref() {
        let _ = tx.send(v);
    }
}

/// The operation met a key holding another type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

/// A key's value with its expiry and access clock.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 = persistent.
    pub expire: u64,
    /// Milliseconds since server start at the last access (wrapping), for LRU.
    pub lru: u32,
    /// How a string value was last written, for `OBJECT ENCODING`.
    pub form: StrForm,
}

// The form byte lives in what was padding: a key's slot does not grow.
const _: () = assert!(std::mem::size_of::<Entry>() == 40);

/// Redis's encoding of a string follows how it was written, not only its
/// content: APPEND to an existing key and SETRANGE leave a `raw` string
/// even when it reads as a small integer, INCRBYFLOAT an `embstr`. Any
/// other write stores the value afresh, encoded by its content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StrForm {
    /// Encoded by content: `int`, `embstr` up to 44 bytes, else `raw`.
    #[default]
    Content,
    /// Edited in place: always `raw`.
    Raw,
    /// Built from a number's text: `embstr` up to 44 bytes, else `raw`.
    Embstr,
}

impl Entry {
    /// The `OBJECT ENCODING` name of the value.
    pub fn encoding(&self) -> &'static str {
        match (&self.value, self.form) {
            (Value::Str(_), StrForm::Raw) => "raw",
            (Value::Str(s), StrForm::Embstr) if s.len() <= 44 => "embstr",
            (Value::Str(_), StrForm::Embstr) => "raw",
            _ => self.value.encoding(),
        }
    }
}

type Table = HashMap<Key, Entry, FixedState>;

fn entry_mem(key: &[u8], e: &Entry) -> usize {
    key.len() + e.value.mem() + ENTRY_OVERHEAD
}

fn hash_of(key: &[u8]) -> u64 {
    hasher().hash_one(key)
}

fn slot_of(h: u64) -> usize {
    // The high bits choose the table; hashbrown uses the low bits and the top
    // seven, so keys of one table still spread over its buckets.
    ((h >> 32) as usize) % TABLES
}

/// [`Db::signal`] on the fields it needs, for callers that hold a borrow of
/// the tables at the same time.
fn signal_in(
    watched: &StdHashMap<Key, Vec<Arc<AtomicBool>>>,
    blocked: &StdHashMap<Key, VecDeque<u64>>,
    ready: &mut Vec<Key>,
    key: &[u8],
) {
    if !watched.is_empty()
        && let Some(v) = watched.get(key)
    {
        for f in v {
            f.store(true, Ordering::Release);
        }
    }
    if !blocked.is_empty() && blocked.contains_key(key) {
        ready.push(key.into());
    }
}

/// One logical database. Its tables are allocated on the first insert, so
/// unused databases cost almost nothing.
#[derive(Default)]
pub struct Db {
    tables: Vec<Table>,
    len: usize,
    expires: usize,
    mem: usize,
    expired_total: u64,
    /// Watch flags of clients that `WATCH`ed a key here.
    pub watched: StdHashMap<Key, Vec<Arc<AtomicBool>>>,
    /// Waiter ids (FIFO) of clients blocked on a key here.
    pub blocked: StdHashMap<Key, VecDeque<u64>>,
    /// Keys with blocked clients that were written since the last wake-up pass.
    pub ready: Vec<Key>,
    expire_cursor: usize,
    /// Running estimate of the remaining TTL (ms) of keys with one, from
    /// the keys active expiry samples, as Redis keeps it for `avg_ttl`.
    avg_ttl: u64,
    /// Read lookups that found their key (`keyspace_hits`).
    hits: u64,
    /// Read lookups that did not (`keyspace_misses`).
    misses: u64,
    /// Keys removed by expiry or eviction since the last log append: they
    /// go to the command log as `DEL`, since replay cannot know about them.
    pub dels: Vec<Key>,
    /// Whether removals are collected into `dels` (only while logging).
    pub log_dels: bool,
}

impl Db {
    /// Number of keys (including logically expired ones not yet reclaimed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Estimated average remaining TTL (ms) of keys with one (`avg_ttl`).
    pub fn avg_ttl(&self) -> u64 {
        self.avg_ttl
    }

    /// Whether the database holds no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of keys with a TTL.
    pub fn expires(&self) -> usize {
        self.expires
    }

    /// Estimated bytes used by keys and values.
    pub fn mem(&self) -> usize {
        self.mem
    }

    /// Invalidates watchers and wakes blocked clients of `key`.
    pub fn signal(&mut self, key: &[u8]) {
        signal_in(&self.watched, &self.blocked, &mut self.ready, key);
    }

    fn ensure_tables(&mut self) {
        if self.tables.is_empty() {
            self.tables = (0..TABLES)
                .map(|_| HashMap::with_hasher(hasher()))
                .collect();
        }
    }

    fn unlink(&mut self, t: usize, key: &[u8]) -> Option<Entry> {
        let e = self.tables.get_mut(t)?.remove(key)?;
        self.len -= 1;
        if e.expire != 0 {
            self.expires -= 1;
        }
        self.mem -= entry_mem(key, &e);
        Some(e)
    }

    /// The table index of `key` if it is live (expiring it lazily), for
    /// callers that go on to remove or replace the entry.
    /// The entry of `key` as stored, without expiring or touching it.
    fn stored(&self, key: &[u8]) -> Option<&Entry> {
        self.tables[slot_of(hash_of(key))].get(key)
    }

    fn live_slot(&mut self, key: &[u8], now: u64) -> Option<usize> {
        let t = slot_of(hash_of(key));
        self.live_entry_in(t, key, now, false).map(|_| t)
    }

    /// The live entry of `key` (expiring it lazily), updating its access clock.
    pub fn get(&mut self, key: &[u8], now: u64, clock: u32) -> Option<&mut Entry> {
        let e = self.live_entry(key, now, false)?;
        e.lru = clock;
        Some(e)
    }

    /// The live entry of `key` in one probe of its table, expiring it
    /// lazily, and counted as a read lookup when `count` says so. Reads and
    /// in-place writes use it directly: a second lookup after the expiry
    /// check cost every GET an extra probe and key comparison.
    fn live_entry(&mut self, key: &[u8], now: u64, count: bool) -> Option<&mut Entry> {
        self.live_entry_in(slot_of(hash_of(key)), key, now, count)
    }

    /// [`Db::live_entry`] with the key's table index already computed.
    fn live_entry_in(&mut self, t: usize, key: &[u8], now: u64, count: bool) -> Option<&mut Entry> {
        let Some(table) = self.tables.get_mut(t) else {
            self.misses += u64::from(count);
            return None;
        };
        match table.entry_ref(key) {
            hashbrown::hash_map::EntryRef::Vacant(_) => {
                self.misses += u64::from(count);
                None
            }
            hashbrown::hash_map::EntryRef::Occupied(o) => {
                let e = o.get();
                if e.expire == 0 || e.expire > now {
                    self.hits += u64::from(count);
                    return Some(o.into_mut());
                }
                self.misses += u64::from(count);
                // The same bookkeeping as `unlink` and `live_slot`, on the
                // fields alone: the table stays borrowed on this path.
                let (k, e) = o.remove_entry();
                self.len -= 1;
                self.expires -= 1;
                self.mem -= entry_mem(&k, &e);
                self.expired_total += 1;
                if self.log_dels {
                    self.dels.push(k);
                }
                signal_in(&self.watched, &self.blocked, &mut self.ready, key);
                None
            }
        }
    }

    /// [`Db::get`] for a command that reads the key, counted in
    /// `keyspace_hits`/`keyspace_misses` as Redis counts its read lookups
    /// (a key of another type is a hit). Writes look keys up uncounted.
    pub fn get_read(&mut self, key: &[u8], now: u64, clock: u32) -> Option<&mut Entry> {
        let t = self.live_slot(key, now);
        self.count_read(t.is_some());
        let e = self.tables[t?].get_mut(key)?;
        e.lru = clock;
        Some(e)
    }

    /// [`Db::peek`] for a command that reads the key, counted like
    /// [`Db::get_read`] (`TYPE`, `TTL`, `EXISTS`).
    pub fn peek_read(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.live_entry(key, now, true).map(|e| &*e)
    }

    fn count_read(&mut self, found: bool) {
        if found {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }

    /// Counted read lookups: (hits, misses).
    pub fn read_stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Like [`Db::get`] without touching the access clock (`OBJECT`, `TYPE`-like probes).
    pub fn peek(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.live_entry(key, now, false).map(|e| &*e)
    }

    /// Whether `key` exists.
    pub fn exists(&mut self, key: &[u8], now: u64) -> bool {
        self.live_slot(key, now).is_some()
    }

    /// Runs `f` on the value of `key` as kind `K`; `Ok(None)` when missing.
    pub fn read<K: Kind, T>(
        &mut self,
        key: &[u8],
        now: u64,
        clock: u32,
        f: impl FnOnce(&K) -> T,
    ) -> Result<Option<T>, WrongType> {
        view(self.get_read(key, now, clock), f)
    }

    /// [`Db::read`] for a command that goes on to write the key: Redis's
    /// write lookup, which sets the access clock but is not counted in
    /// `keyspace_hits`/`keyspace_misses` (APPEND, SETRANGE, INCRBYFLOAT,
    /// HSETNX, HINCRBY, HINCRBYFLOAT).
    pub fn read_for_write<K: Kind, T>(
        &mut self,
        key: &[u8],
        now: u64,
        clock: u32,
        f: impl FnOnce(&K) -> T,
    ) -> Result<Option<T>, WrongType> {
        view(self.get(key, now, clock), f)
    }

    /// Checks that `key` is missing or of kind `K`.
    pub fn check<K: Kind>(&mut self, key: &[u8], now: u64) -> Result<bool, WrongType> {
        match self.peek(key, now) {
            None => Ok(false),
            Some(e) => K::get(&e.value).map(|_| true).ok_or(WrongType),
        }
    }

    /// Runs `f` on the value of `key` as kind `K`, creating an empty value first
    /// when `create` is set. Keeps memory accounting right, deletes the key when
    /// a collection becomes empty, and signals the change.
    pub fn write<K: Kind, T>(
        &mut self,
        key: &[u8],
        now: u64,
        clock: u32,
        create: bool,
        f: impl FnOnce(&mut K) -> T,
    ) -> Result<Option<T>, WrongType> {
        self.write_changed(key, now, clock, create, |v| (f(v), true))
    }

    /// Like [`Db::write`], but `f` also reports whether it changed anything;
    /// no-op writes (e.g. `SADD` of an existing member) do not count as a
    /// modification for `WATCH`, as in Redis.
    pub fn write_changed<K: Kind, T>(
        &mut self,
        key: &[u8],
        now: u64,
        clock: u32,
        create: bool,
        f: impl FnOnce(&mut K) -> (T, bool),
    ) -> Result<Option<T>, WrongType> {
        let t = slot_of(hash_of(key));
        // One probe for a live key (the hot path of every collection write
        // and INCR); a created key is inserted through the same probe's slot.
        let e = match self.live_entry_in(t, key, now, false) {
            Some(e) if K::get(&e.value).is_none() => return Err(WrongType),
            Some(e) => e,
            None if create => {
                let e = Entry {
                    value: K::empty(),
                    expire: 0,
                    lru: clock,
                    form: StrForm::Content,
                };
                self.mem += entry_mem(key, &e);
                self.len += 1;
                self.ensure_tables();
                self.tables[t].entry_ref(key).insert(e).into_mut()
            }
            None => return Ok(None),
        };
        let before = e.value.mem();
        e.lru = clock;
        let (out, changed) = f(K::get_mut(&mut e.value).ok_or(WrongType)?);
        if changed {
            // A string rewritten by a typed write (INCR) is encoded by its
            // content again; APPEND and SETRANGE set their form after.
            e.form = StrForm::Content;
        }
        let after = e.value.mem();
        let empty = e.value.is_empty_collection();
        self.mem = self.mem + after - before;
        if empty {
            self.unlink(t, key);
        }
        if changed {
            self.signal(key);
        }
        Ok(Some(out))
    }

    /// Records how the string at `key` was written (see [`StrForm`]).
    pub fn set_form(&mut self, key: &[u8], now: u64, form: StrForm) {
        if let Some(t) = self.live_slot(key, now)
            && let Some(e) = self.tables[t].get_mut(key)
        {
            e.form = form;
        }
    }

    /// Stores `value` under `key`, replacing any old value; `expire` 0 = persistent.
    pub fn set(&mut self, key: &[u8], value: Value, expire: u64, clock: u32) {
        let t = slot_of(hash_of(key));
        let fresh = Entry {
            value,
            expire,
            lru: clock,
            form: StrForm::Content,
        };
        // Overwriting in place keeps the key's allocation and its bucket:
        // removing and re-inserting cost a free, an allocation and two more
        // probes on every SET of an existing key.
        self.ensure_tables();
        let mem = entry_mem(key, &fresh);
        let new_ttl = fresh.expire != 0;
        match self.tables[t].entry_ref(key) {
            hashbrown::hash_map::EntryRef::Occupied(mut o) => {
                let old = o.insert(fresh);
                self.mem = self.mem - entry_mem(key, &old) + mem;
                match (old.expire != 0, new_ttl) {
                    (false, true) => self.expires += 1,
                    (true, false) => self.expires -= 1,
                    _ => {}
                }
            }
            hashbrown::hash_map::EntryRef::Vacant(v) => {
                v.insert(fresh);
                self.mem += mem;
                self.len += 1;
                self.expires += usize::from(new_ttl);
            }
        }
        self.signal(key);
    }

    fn insert_at(&mut self, t: usize, key: &[u8], e: Entry) {
        self.ensure_tables();
        self.mem += entry_mem(key, &e);
        self.len += 1;
        if e.expire != 0 {
            self.expires += 1;
        }
        self.tables[t].insert(key.into(), e);
    }

    /// Stores a whole entry (used by `RENAME`, `MOVE`, `COPY`).
    pub fn put_entry(&mut self, key: &[u8], e: Entry) {
        let t = slot_of(hash_of(key));
        self.unlink(t, key);
        self.insert_at(t, key, e);
        self.signal(key);
    }

    /// Deletes `key`, returning its live entry.
    pub fn remove(&mut self, key: &[u8], now: u64) -> Option<Entry> {
        let t = self.live_slot(key, now)?;
        let e = self.unlink(t, key);
        self.signal(key);
        e
    }

    /// Sets or clears (`0`) the expiry of an existing key; false when missing.
    pub fn set_expire(&mut self, key: &[u8], expire: u64, now: u64) -> bool {
        let Some(t) = self.live_slot(key, now) else {
            return false;
        };
        let Some(e) = self.tables[t].get_mut(key) else {
            return false;
        };
        match (e.expire != 0, expire != 0) {
            (false, true) => self.expires += 1,
            (true, false) => self.expires -= 1,
            _ => {}
        }
        e.expire = expire;
        self.signal(key);
        true
    }

    /// Deletes everything, invalidating the watchers of the keys it held.
    ///
    /// Large databases are freed on a helper thread so the keyspace lock is
    /// not held while millions of values are deallocated.
    pub fn clear(&mut self) {
        // Redis touches only the watched keys that were there to delete.
        self.touch_watched_held(None);
        let old = std::mem::take(&mut self.tables);
        if self.len > 10_000 {
            let spawned = std::thread::Builder::new()
                .name("store-free".into())
                .spawn(move || drop(old));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "freeing flushed database inline");
            }
        } else {
            drop(old);
        }
        self.len = 0;
        self.expires = 0;
        self.mem = 0;
        self.avg_ttl = 0;
    }

    /// Whether `key` is stored here, expired or not (Redis's `dictFind`).
    fn holds(&self, key: &[u8]) -> bool {
        self.tables
            .get(slot_of(hash_of(key)))
            .is_some_and(|t| t.contains_key(key))
    }

    /// Invalidates the watchers of every watched key held here or in
    /// `other`: what FLUSHDB and SWAPDB change.
    fn touch_watched_held(&self, other: Option<&Db>) {
        for (key, v) in &self.watched {
            if self.holds(key) || other.is_some_and(|o| o.holds(key)) {
                for f in v {
                    f.store(true, Ordering::Release);
                }
            }
        }
    }

    /// Swaps the contents of two databases; watchers and waiters stay with
    /// their database index: watchers of a key either side held are
    /// invalidated, waiters woken.
    pub fn swap_contents(a: &mut Db, b: &mut Db) {
        a.touch_watched_held(Some(b));
        b.touch_watched_held(Some(a));
        std::mem::swap(&mut a.tables, &mut b.tables);
        std::mem::swap(&mut a.len, &mut b.len);
        std::mem::swap(&mut a.expires, &mut b.expires);
        std::mem::swap(&mut a.mem, &mut b.mem);
        // The TTL estimate describes the keys, so it moves with them; the
        // hit counters are server-wide totals and stay.
        std::mem::swap(&mut a.avg_ttl, &mut b.avg_ttl);
        for db in [a, b] {
            let keys: Vec<Key> = db.blocked.keys().cloned().collect();
            db.ready.extend(keys);
        }
    }

    /// One `SCAN` step: up to about `count` keys at or after `cursor` passing
    /// `keep`, and the next cursor (0 when done).
    pub fn scan(
        &mut self,
        cursor: u64,
        count: usize,
        now: u64,
        mut keep: impl FnMut(&[u8], &Entry) -> bool,
    ) -> (u64, Vec<Key>) {
        if self.tables.is_empty() {
            return (0, Vec::new());
        }
        let count = count.max(1);
        let mut t = (cursor >> SCAN_BITS) as usize;
        let mut threshold = cursor & SCAN_MASK;
        let mut found: Vec<(u64, Key)> = Vec::new();
        let mut out = Vec::new();
        // COUNT is work, as in Redis: keys examined, whether `keep` takes
        // them or not, so a MATCH that finds nothing still returns after
        // about COUNT keys instead of walking the whole keyspace in one call.
        let mut examined = 0;
        while t < TABLES {
            found.clear();
            for (k, _) in self.tables[t].iter() {
                let h = hash_of(k) & SCAN_MASK;
                if h >= threshold {
                    found.push((h, k.clone()));
                }
            }
            found.sort_unstable();
            let mut i = 0;
            while i < found.len() {
                let (h, _) = found[i];
                // Never split keys sharing a position across two calls.
                while i < found.len() && found[i].0 == h {
                    let k = &found[i].1;
                    if let Some(e) = self.tables[t].get(k)
                        && (e.expire == 0 || e.expire > now)
                    {
                        examined += 1;
                        if keep(k, e) {
                            out.push(k.clone());
                        }
                    }
                    i += 1;
                }
                if examined >= count && i < found.len() {
                    return (((t as u64) << SCAN_BITS) | found[i].0, out);
                }
            }
            t += 1;
            threshold = 0;
            if examined >= count {
                break;
            }
        }
        if t >= TABLES {
            (0, out)
        } else {
            ((t as u64) << SCAN_BITS, out)
        }
    }

    /// Every stored entry, expired or not (for snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.tables.iter().flat_map(|t| t.iter())
    }

    /// Drops every key whose expiry is at or before `now` (after loading),
    /// returning how many went.
    pub fn purge_expired(&mut self, now: u64) -> usize {
        if self.expires == 0 {
            return 0;
        }
        let mut doomed = Vec::new();
        for (t, table) in self.tables.iter().enumerate() {
            for (k, e) in table.iter() {
                if e.expire != 0 && e.expire <= now {
                    doomed.push((t, k.clone()));
                }
            }
        }
        for (t, k) in &doomed {
            self.unlink(*t, k);
        }
        doomed.len()
    }

    /// Every live key (for `KEYS`).
    pub fn keys(&self, now: u64) -> impl Iterator<Item = &Key> {
        self.tables.iter().flat_map(move |t| {
            t.iter()
                .filter(move |(_, e)| e.expire == 0 || e.expire > now)
                .map(|(k, _)| k)
        })
    }

    /// A random key from a random table, or `None` if empty. `volatile` restricts
    /// the pick to keys with a TTL (giving up after a bounded number of probes).
    fn sample_one(&self, rng: &mut impl Rng, volatile: bool) -> Option<(&Key, &Entry)> {
        if self.len == 0 || (volatile && self.expires == 0) {
            return None;
        }
        for _ in 0..16 {
            let start = rng.random_range(0..TABLES);
            for off in 0..TABLES {
                let t = &self.tables[(start + off) % TABLES];
                if t.is_empty() {
                    continue;
                }
                let n = rng.random_range(0..t.len());
                let (k, e) = t.iter().nth(n)?;
                if !volatile || e.expire != 0 {
                    return Some((k, e));
                }
                // A key with a TTL chosen at random in this table: taking
                // the first one would offer the same few keys every time.
                let with_ttl = t.values().filter(|e| e.expire != 0).count();
                if with_ttl > 0 {
                    let n = rng.random_range(0..with_ttl);
                    return t.iter().filter(|(_, e)| e.expire != 0).nth(n);
                }
                break;
            }
        }
        None
    }

    /// One key chosen uniformly: an index into the whole database, found
    /// by walking the table sizes. `sample_one` is cheaper but favours the
    /// keys of a table that follows empty ones, which shows in a small
    /// database; eviction can live with that, RANDOMKEY should not.
    fn uniform_one(&self, rng: &mut impl Rng) -> Option<&Key> {
        if self.len == 0 {
            return None;
        }
        let mut i = rng.random_range(0..self.len);
        for t in &self.tables {
            if i < t.len() {
                return t.iter().nth(i).map(|(k, _)| k);
            }
            i -= t.len();
        }
        None
    }

    /// A random live key.
    pub fn random_key(&mut self, now: u64) -> Option<Key> {
        let mut rng = rand::rng();
        for _ in 0..100 {
            let k = self.uniform_one(&mut rng)?.clone();
            if self.exists(&k, now) {
                return Some(k);
            }
        }
        None
    }

    /// One round of active expiry: examines up to `limit` keys with a TTL,
    /// continuing where the last round stopped. Returns (examined, expired).
    pub fn expire_round(&mut self, now: u64, limit: usize) -> (usize, usize) {
        if self.expires == 0 {
            self.avg_ttl = 0;
            return (0, 0);
        }
        let mut examined = 0;
        let mut doomed: Vec<(usize, Key)> = Vec::new();
        let mut visited = 0;
        let mut entries = 0;
        let (mut ttl_sum, mut ttl_n) = (0u64, 0u64);
        // Bound the work when TTL keys are rare among many persistent ones.
        while examined < limit && visited < TABLES && entries < limit * 100 {
            let t = self.expire_cursor;
            for (k, e) in self.tables[t].iter() {
                entries += 1;
                if e.expire != 0 {
                    examined += 1;
                    if e.expire <= now {
                        doomed.push((t, k.clone()));
                    } else {
                        ttl_sum = ttl_sum.saturating_add(e.expire - now);
                        ttl_n += 1;
                    }
                }
            }
            self.expire_cursor = (self.expire_cursor + 1) % TABLES;
            visited += 1;
        }
        if let Some(avg) = ttl_sum.checked_div(ttl_n) {
            // Redis's smoothing: each round moves the estimate 2% of the way.
            self.avg_ttl = if self.avg_ttl == 0 {
                avg
            } else {
                self.avg_ttl / 50 * 49 + avg / 50
            };
        }
        let n = doomed.len();
        for (t, k) in doomed {
            self.unlink(t, &k);
            self.expired_total += 1;
            self.signal(&k);
            if self.log_dels {
                self.dels.push(k);
            }
        }
        (examined, n)
    }
}

/// Statistics counted under the keyspace lock.
#[derive(Debug, Default, Clone)]
pub struct KeyspaceStats {
    /// Keys evicted by `maxmemory`.
    pub evicted_keys: u64,
    /// Lookups that found the key.
    pub hits: u64,
    /// Lookups that did not.
    pub misses: u64,
}

/// All databases plus the state that must change atomically with them.
pub struct Keyspace {
    /// The databases, indexed by `SELECT` number.
    pub dbs: Vec<Db>,
    /// Memory limit in bytes (0 = none).
    pub maxmemory: u64,
    /// Eviction policy applied at the limit.
    pub policy: EvictionPolicy,
    /// Counters for `INFO stats`.
    pub stats: KeyspaceStats,
    /// Blocked clients by waiter id.
    pub waiters: StdHashMap<u64, Waiter>,
    /// Source of waiter ids (monotonic, so FIFO order is id order).
    pub next_waiter: u64,
    /// Records of executed writes not yet handed to the log writer.
    pub oplog: crate::store::oplog::OpLog,
    /// Eviction candidates kept between rounds, ascending by score (idle
    /// time, or nearness of expiry): (score, database, key).
    evict_pool: Vec<(u64, usize, Key)>,
    /// Writes since start (or since loading): `rdb_changes_since_last_save`
    /// counts from its value at the last save. Counted whether or not the
    /// log is on: with `appendonly = false` it is what a save would keep.
    pub dirty: u64,
    start_ms: u64,
}

impl Keyspace {
    /// Creates `n` empty databases.
    pub fn new(n: usize, maxmemory: u64, policy: EvictionPolicy) -> Self {
        Keyspace {
            dbs: (0..n).map(|_| Db::default()).collect(),
            maxmemory,
            policy,
            stats: KeyspaceStats::default(),
            waiters: StdHashMap::new(),
            next_waiter: 1,
            oplog: Default::default(),
            evict_pool: Vec::new(),
            dirty: 0,
            start_ms: now_ms(),
        }
    }

    /// The LRU clock: wrapping milliseconds since start.
    pub fn clock(&self) -> u32 {
        self.clock_at(now_ms())
    }

    /// The LRU clock at Unix time `now` (ms), saving a second clock read per command.
    pub fn clock_at(&self, now: u64) -> u32 {
        now.wrapping_sub(self.start_ms) as u32
    }

    /// Estimated dataset bytes.
    pub fn used_memory(&self) -> u64 {
        self.dbs.iter().map(|d| d.mem as u64).sum()
    }

    /// Total keys expired so far (lazily or actively).
    pub fn expired_keys(&self) -> u64 {
        self.dbs.iter().map(|d| d.expired_total).sum()
    }

    /// Turns recording of writes (and of expiry/eviction removals) on or off.
    pub fn set_logging(&mut self, on: bool) {
        self.oplog.enabled = on;
        for db in &mut self.dbs {
            db.log_dels = on;
            db.dels.clear();
        }
    }

    /// Appends the removals and effects collected so far as log records.
    pub fn log_pending(&mut self, now: u64) {
        if !self.oplog.enabled {
            return;
        }
        for (i, db) in self.dbs.iter_mut().enumerate() {
            if !db.dels.is_empty() {
                let mut args: Vec<Key> = Vec::with_capacity(db.dels.len() + 1);
                args.push(Box::from(&b"DEL"[..]));
                args.append(&mut db.dels);
                self.oplog.cmd(now, i, &args);
            }
        }
        if !self.oplog.effects.is_empty() {
            for (db, args) in std::mem::take(&mut self.oplog.effects) {
                self.oplog.cmd(now, db, &args);
            }
        }
    }

    /// Logs a successful write command: removals it caused first, then its
    /// recorded effects when it left any, else the command as given.
    pub fn log_command(&mut self, now: u64, db: usize, args: &[bytes::Bytes]) {
        self.dirty += 1;
        if !self.oplog.enabled {
            return;
        }
        let had_effects = !self.oplog.effects.is_empty();
        self.log_pending(now);
        if !had_effects {
            self.oplog.cmd(now, db, args);
        }
    }

    /// Evicts keys per policy until under `maxmemory`. Returns false when still
    /// over the limit (no-eviction policy or nothing evictable).
    pub fn make_room(&mut self) -> bool {
        self.make_room_for(0)
    }

    /// [`Keyspace::make_room`] for a request that itself holds `extra` bytes
    /// (its arguments, a queued transaction): Redis counts a client's query
    /// buffer and queued commands in `used_memory`, so a single 12 MB `MSET`
    /// is refused under a 10 MB `maxmemory`, not applied.
    pub fn make_room_for(&mut self, extra: usize) -> bool {
        if self.maxmemory == 0 {
            return true;
        }
        let mut rng = rand::rng();
        let now = now_ms();
        let clock = self.clock();
        while self.used_memory().saturating_add(extra as u64) > self.maxmemory {
            let volatile = matches!(
                self.policy,
                EvictionPolicy::VolatileLru | EvictionPolicy::VolatileTtl
            );
            if self.policy == EvictionPolicy::NoEviction {
                return false;
            }
            // Sample 5 keys across databases into the pool of the best
            // candidates seen so far (Redis's eviction pool), then evict
            // the best one that still exists: with the pool, a key that was
            // idle (or near its expiry) in an earlier round is not forgotten
            // because this round's sample happened to miss it.
            let mut best: Option<(u64, usize, Key)> = None;
            let candidates: Vec<usize> = (0..self.dbs.len())
                .filter(|&i| {
                    let d = &self.dbs[i];
                    if volatile { d.expires > 0 } else { d.len > 0 }
                })
                .collect();
            if candidates.is_empty() {
                return false;
            }
            for _ in 0..5 {
                let dbi = candidates[rng.random_range(0..candidates.len())];
                let Some((k, e)) = self.dbs[dbi].sample_one(&mut rng, volatile) else {
                    continue;
                };
                let score = match self.policy {
                    EvictionPolicy::AllkeysLru | EvictionPolicy::VolatileLru => {
                        clock.wrapping_sub(e.lru) as u64
                    }
                    EvictionPolicy::VolatileTtl => u64::MAX - e.expire,
                    _ => rng.random(),
                };
                if self.policy == EvictionPolicy::AllkeysRandom {
                    best = Some((score, dbi, k.clone()));
                    break;
                }
                let pool = &mut self.evict_pool;
                if !pool.iter().any(|(_, d, pk)| *d == dbi && pk == k)
                    && (pool.len() < EVICT_POOL || pool[0].0 < score)
                {
                    let at = pool.partition_point(|(s, _, _)| *s < score);
                    pool.insert(at, (score, dbi, k.clone()));
                    if pool.len() > EVICT_POOL {
                        pool.remove(0);
                    }
                }
            }
            if best.is_none() {
                // Best last; skip candidates deleted, or (volatile) made
                // persistent, since they entered the pool.
                while let Some((score, dbi, key)) = self.evict_pool.pop() {
                    let live = self.dbs.get(dbi).and_then(|d| d.stored(&key));
                    if live.is_some_and(|e| !volatile || e.expire != 0) {
                        best = Some((score, dbi, key));
                        break;
                    }
                }
            }
            let Some((_, dbi, key)) = best else {
                return false;
            };
            if let Some(e) = self.dbs[dbi].remove(&key, now) {
                if self.dbs[dbi].log_dels {
                    self.dbs[dbi].dels.push(key);
                }
                self.stats.evicted_keys += 1;
                free_later(e.value);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::value::SetVal;

    #[test]
    fn scan_visits_all_once() {
        let mut db = Db::default();
        for i in 0..5000 {
            db.set(
                format!("k{i}").as_bytes(),
                Value::Str(Box::from(&b"v"[..])),
                0,
                0,
            );
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut calls = 0;
        loop {
            let (next, keys) = db.scan(cursor, 10, 1, |_, _| true);
            for k in keys {
                assert!(seen.insert(k));
            }
            calls += 1;
            if next == 0 {
                break;
            }
            cursor = next;
        }
        assert_eq!(seen.len(), 5000);
        assert!(calls > 100);
    }

    #[test]
    fn empty_collections_vanish_and_mem_returns() {
        let mut db = Db::default();
        db.write::<SetVal, _>(b"s", 1, 0, true, |s| s.insert(b"a"))
            .unwrap();
        assert!(db.mem() > 0);
        db.write::<SetVal, _>(b"s", 1, 0, false, |s| s.remove(b"a"))
            .unwrap();
        assert_eq!(db.len(), 0);
        assert_eq!(db.mem(), 0);
    }

    /// SET over an existing key replaces the entry in place; the counts
    /// must come out as if the key had been written once, fresh.
    #[test]
    fn overwriting_keeps_counts_exact() {
        let s = |v: &[u8]| Value::Str(Box::from(v));
        let mut db = Db::default();
        db.set(b"k", s(b"small"), 0, 0);
        db.set(b"k", s(&[b'x'; 300]), 5_000, 0);
        db.set(b"k", Value::Set(Box::default()), 0, 0);
        db.set(b"k", s(b"final value"), 9_000, 0);
        let mut fresh = Db::default();
        fresh.set(b"k", s(b"final value"), 9_000, 0);
        assert_eq!((db.len(), db.expires(), db.mem()), (1, 1, fresh.mem()));
        db.set(b"k", s(b"persistent"), 0, 0);
        assert_eq!(db.expires(), 0);

        // A lazily expired key is gone in one probe, counted, and its
        // memory returned.
        db.set(b"t", s(b"v"), 100, 0);
        assert!(db.get_read(b"t", 99, 0).is_some());
        assert!(db.get_read(b"t", 100, 0).is_none());
        assert!(db.peek(b"t", 100).is_none());
        assert_eq!(db.read_stats(), (1, 1));
        assert_eq!(db.expired_total, 1);
        assert_eq!((db.len(), db.expires()), (1, 0));
        db.remove(b"k", 0);
        assert_eq!(db.mem(), 0);
    }
}
