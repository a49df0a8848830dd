//! Value representations and their memory estimates.
//!
//! Strings are a single exact-size heap allocation (`Box<[u8]>`, 16 bytes
//! inline). Collections keep a running byte estimate so that memory
//! accounting after a write is O(1) instead of walking the collection.

use std::collections::{BTreeSet, VecDeque};

use hashbrown::{HashMap, HashSet};

/// Keys and members: exact-size byte boxes.
pub type Key = Box<[u8]>;

/// Fixed-seed hasher so that `SCAN` cursors stay valid for the process lifetime.
pub type FixedState = foldhash::fast::FixedState;

/// The hasher every keyspace and collection table uses.
pub fn hasher() -> FixedState {
    FixedState::with_seed(0x5eed_6a75_a4d0_c0de)
}

/// Approximate per-element bookkeeping overhead, used by the memory estimate.
const HASH_FIELD_OVERHEAD: usize = 48;
const SET_MEMBER_OVERHEAD: usize = 40;
const ZSET_MEMBER_OVERHEAD: usize = 96;

/// A value stored under a key.
///
/// Collections are boxed so that the enum (and thus every hash table slot)
/// stays at 24 bytes: most keys hold short strings.
#[derive(Debug, Clone)]
pub enum Value {
    /// A binary-safe string.
    Str(Box<[u8]>),
    /// A hash of fields to values.
    Hash(Box<HashVal>),
    /// A list.
    List(Box<ListVal>),
    /// A set of members.
    Set(Box<SetVal>),
    /// A sorted set.
    ZSet(Box<ZSetVal>),
}

impl Value {
    /// Estimated heap bytes held by the value.
    pub fn mem(&self) -> usize {
        match self {
            Value::Str(s) => s.len() + 16,
            Value::Hash(h) => h.mem() + 64,
            Value::List(l) => l.mem() + 64,
            Value::Set(s) => s.mem() + 64,
            Value::ZSet(z) => z.mem() + 96,
        }
    }

    /// Name reported by `TYPE`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether this is a collection without elements (such keys are deleted, like in Redis).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }

    /// Name reported by `OBJECT ENCODING`, mimicking Redis's size thresholds.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => {
                if s.len() <= 20 && crate::store::protocol::parse_int(s).is_some() {
                    "int"
                } else if s.len() <= 44 {
                    "embstr"
                } else {
                    "raw"
                }
            }
            Value::Hash(h) => {
                if h.is_packed() {
                    "listpack"
                } else {
                    "hashtable"
                }
            }
            Value::List(_) => "quicklist",
            Value::Set(s) => {
                // Redis 7.0 only has intset as a compact set encoding.
                if s.is_intset() { "intset" } else { "hashtable" }
            }
            Value::ZSet(z) => {
                if z.is_packed() {
                    "listpack"
                } else {
                    "skiplist"
                }
            }
        }
    }
}

/// Access to one value kind for the typed keyspace helpers.
pub trait Kind: Sized {
    /// An empty value of this kind, for writes that create the key.
    fn empty() -> Value;
    /// Borrows the value as this kind, `None` on a type mismatch.
    fn get(v: &Value) -> Option<&Self>;
    /// Mutably borrows the value as this kind, `None` on a type mismatch.
    fn get_mut(v: &mut Value) -> Option<&mut Self>;
}

macro_rules! kind {
    ($t:ty, $var:ident) => {
        impl Kind for $t {
            fn empty() -> Value {
                Value::$var(Box::default())
            }
            fn get(v: &Value) -> Option<&Self> {
                match v {
                    Value::$var(x) => Some(x),
                    _ => None,
                }
            }
            fn get_mut(v: &mut Value) -> Option<&mut Self> {
                match v {
                    Value::$var(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}

kind!(HashVal, Hash);
kind!(ListVal, List);
kind!(SetVal, Set);
kind!(ZSetVal, ZSet);

/// Kinds made of distinct members (hash fields, set and sorted-set
/// members), so that `HDEL`/`SREM`/`ZREM` and `HLEN`/`SCARD`/`ZCARD` are one
/// implementation each.
pub trait Members: Kind {
    /// Number of members.
    fn count(&self) -> usize;
    /// Removes a member; whether it was there.
    fn remove_member(&mut self, m: &[u8]) -> bool;
}

macro_rules! members {
    ($t:ty) => {
        impl Members for $t {
            fn count(&self) -> usize {
                self.len()
            }
            fn remove_member(&mut self, m: &[u8]) -> bool {
                self.remove(m)
            }
        }
    };
}

members!(HashVal);
members!(SetVal);
members!(ZSetVal);

impl Kind for Box<[u8]> {
    fn empty() -> Value {
        Value::Str(Box::default())
    }
    fn get(v: &Value) -> Option<&Self> {
        match v {
            Value::Str(x) => Some(x),
            _ => None,
        }
    }
    fn get_mut(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Str(x) => Some(x),
            _ => None,
        }
    }
}

/// Small lists, sets and sorted sets are kept packed up to this many
/// elements (Redis's listpack limit for sorted sets).
pub const PACKED_MAX_ENTRIES: usize = 128;
/// Hashes stay packed up to this many fields, as Redis 7.0's
/// `hash-max-listpack-entries 512`: `OBJECT ENCODING` shows the switch.
pub const HASH_PACKED_MAX_ENTRIES: usize = 512;
/// Fields or values longer than this switch a hash to the hashtable form.
pub const PACKED_MAX_ITEM: usize = 64;

/// Length-prefixed byte strings in one buffer: a compact sequence for small
/// collections (one allocation instead of one or two per element).
#[derive(Debug, Clone, Default)]
pub struct Packed {
    buf: Vec<u8>,
    n: usize,
}

fn put_len(buf: &mut Vec<u8>, mut n: usize) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            buf.push(b);
            return;
        }
        buf.push(b | 0x80);
    }
}

fn get_len(buf: &[u8], mut at: usize) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[at];
        at += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b & 0x80 == 0 {
            return (n, at);
        }
        shift += 7;
    }
}

impl Packed {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Appends an item.
    pub fn push(&mut self, item: &[u8]) {
        // Exact growth: small collections stay as tight as Redis's listpacks.
        self.buf.reserve_exact(item.len() + 2);
        put_len(&mut self.buf, item.len());
        self.buf.extend_from_slice(item);
        self.n += 1;
    }

    /// Items with their byte ranges (start of length prefix, end of data).
    fn spans(&self) -> impl Iterator<Item = (usize, &[u8], usize)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= self.buf.len() {
                return None;
            }
            let start = at;
            let (len, data) = get_len(&self.buf, at);
            at = data + len;
            Some((start, &self.buf[data..data + len], at))
        })
    }

    /// Appends an item with amortized growth (list chunks, which fill up).
    fn append(&mut self, item: &[u8]) {
        self.buf.reserve(item.len() + 2);
        put_len(&mut self.buf, item.len());
        self.buf.extend_from_slice(item);
        self.n += 1;
    }

    /// Prepends an item with amortized growth (list chunks).
    fn prepend(&mut self, item: &[u8]) {
        // The length prefix, encoded as put_len does, without allocating.
        let (mut prefix, mut k, mut n) = ([0u8; 10], 0, item.len());
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            prefix[k] = if n == 0 { b } else { b | 0x80 };
            k += 1;
            if n == 0 {
                break;
            }
        }
        let add = k + item.len();
        let old = self.buf.len();
        self.buf.reserve(add);
        self.buf.resize(old + add, 0);
        self.buf.copy_within(0..old, add);
        self.buf[..k].copy_from_slice(&prefix[..k]);
        self.buf[k..add].copy_from_slice(item);
        self.n += 1;
    }

    /// Prepends an item (moves the buffer: only used while packed lists are small).
    pub fn insert_front(&mut self, item: &[u8]) {
        let mut enc = Vec::with_capacity(item.len() + 2);
        put_len(&mut enc, item.len());
        enc.extend_from_slice(item);
        self.buf.reserve_exact(enc.len());
        self.buf.splice(0..0, enc);
        self.n += 1;
    }

    /// Inserts an item at byte offset `at` (which must be an item boundary).
    pub fn insert_at(&mut self, at: usize, item: &[u8]) {
        let mut enc = Vec::with_capacity(item.len() + 2);
        put_len(&mut enc, item.len());
        enc.extend_from_slice(item);
        self.buf.reserve_exact(enc.len());
        self.buf.splice(at..at, enc);
        self.n += 1;
    }

    /// Iterates over the items.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.spans().map(|(_, d, _)| d)
    }

    /// Replaces the item occupying bytes `start..end` by `item`.
    fn replace(&mut self, start: usize, end: usize, item: &[u8]) {
        let mut enc = Vec::with_capacity(item.len() + 2);
        put_len(&mut enc, item.len());
        enc.extend_from_slice(item);
        self.buf.reserve_exact(enc.len());
        self.buf.splice(start..end, enc);
    }

    /// Replaces the `i`th item; false when there is none.
    fn set_nth(&mut self, i: usize, item: &[u8]) -> bool {
        let span = self.spans().nth(i).map(|(start, _, end)| (start, end));
        match span {
            Some((start, end)) => {
                self.replace(start, end, item);
                true
            }
            None => false,
        }
    }

    /// Removes `count` items occupying bytes `start..end`.
    fn remove_span(&mut self, start: usize, end: usize, count: usize) {
        self.buf.drain(start..end);
        self.n -= count;
    }

    /// Buffer size, for the memory estimate.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }
}

#[derive(Debug, Clone)]
enum HashRepr {
    /// Alternating field, value.
    Small(Packed),
    Big(HashMap<Key, Box<[u8]>, FixedState>),
}

/// A hash value: packed while small, a hash table once large.
#[derive(Debug, Clone)]
pub struct HashVal {
    repr: HashRepr,
    /// Estimate for the table form (the packed form is measured directly).
    bytes: usize,
}

impl Default for HashVal {
    fn default() -> Self {
        HashVal {
            repr: HashRepr::Small(Packed::default()),
            bytes: 0,
        }
    }
}

impl HashVal {
    /// Number of fields.
    pub fn len(&self) -> usize {
        match &self.repr {
            HashRepr::Small(p) => p.len() / 2,
            HashRepr::Big(m) => m.len(),
        }
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the compact encoding is in use (`OBJECT ENCODING` says listpack).
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, HashRepr::Small(_))
    }

    fn mem(&self) -> usize {
        match &self.repr {
            HashRepr::Small(p) => p.bytes(),
            HashRepr::Big(_) => self.bytes,
        }
    }

    /// Value of a field.
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match &self.repr {
            HashRepr::Small(p) => {
                let mut it = p.iter();
                while let (Some(f), Some(v)) = (it.next(), it.next()) {
                    if f == field {
                        return Some(v);
                    }
                }
                None
            }
            HashRepr::Big(m) => m.get(field).map(|v| &v[..]),
        }
    }

    /// Whether a field exists.
    pub fn contains(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// All (field, value) pairs.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match &self.repr {
            HashRepr::Small(p) => {
                let mut it = p.iter();
                Box::new(std::iter::from_fn(move || Some((it.next()?, it.next()?))))
            }
            HashRepr::Big(m) => Box::new(m.iter().map(|(k, v)| (&k[..], &v[..]))),
        }
    }

    fn convert_to_table(&mut self) {
        let HashRepr::Small(p) = &self.repr else {
            return;
        };
        let (m, bytes) = {
            let mut m = HashMap::with_capacity_and_hasher(p.len() / 2 + 1, hasher());
            let mut bytes = 0;
            let mut it = p.iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                bytes += f.len() + v.len() + HASH_FIELD_OVERHEAD;
                m.insert(Key::from(f), Box::from(v));
            }
            (m, bytes)
        };
        self.repr = HashRepr::Big(m);
        self.bytes = bytes;
    }

    /// Sets a field; returns true when the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let HashRepr::Small(p) = &self.repr {
            let item_too_big = field.len() > PACKED_MAX_ITEM || value.len() > PACKED_MAX_ITEM;
            let full = p.len() / 2 >= HASH_PACKED_MAX_ENTRIES && !self.contains(field);
            if item_too_big || full {
                self.convert_to_table();
            }
        }
        match &mut self.repr {
            HashRepr::Small(p) => {
                let found = {
                    let mut spans = p.spans();
                    let mut found = None;
                    while let (Some((_, f, _)), Some((vs, _, ve))) = (spans.next(), spans.next()) {
                        if f == field {
                            found = Some((vs, ve));
                            break;
                        }
                    }
                    found
                };
                match found {
                    Some((vs, ve)) => {
                        p.replace(vs, ve, value);
                        false
                    }
                    None => {
                        p.push(field);
                        p.push(value);
                        true
                    }
                }
            }
            HashRepr::Big(m) => {
                if let Some(old) = m.get_mut(field) {
                    self.bytes = self.bytes - old.len() + value.len();
                    *old = value.into();
                    false
                } else {
                    self.bytes += field.len() + value.len() + HASH_FIELD_OVERHEAD;
                    m.insert(field.into(), value.into());
                    true
                }
            }
        }
    }

    /// Removes a field; returns true when it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match &mut self.repr {
            HashRepr::Small(p) => {
                let found = {
                    let mut spans = p.spans();
                    let mut found = None;
                    while let (Some((fs, f, _)), Some((_, _, ve))) = (spans.next(), spans.next()) {
                        if f == field {
                            found = Some((fs, ve));
                            break;
                        }
                    }
                    found
                };
                match found {
                    Some((fs, ve)) => {
                        // Field and value go in one step.
                        p.remove_span(fs, ve, 2);
                        true
                    }
                    None => false,
                }
            }
            HashRepr::Big(m) => match m.remove(field) {
                Some(v) => {
                    self.bytes -= field.len() + v.len() + HASH_FIELD_OVERHEAD;
                    true
                }
                None => false,
            },
        }
    }
}

#[derive(Debug, Clone)]
enum ListRepr {
    Small(Packed),
    Big(Chunks),
}

/// Items per chunk of a large list. A pop from the tail walks its chunk's
/// length prefixes from the front, so chunks stay short: at 128 items RPOP
/// at redis-benchmark -P 16 fell to 0.77x redis-server, at 32 it measured
/// 1.08x-1.12x with LPUSH 1.12x-1.26x.
const CHUNK_ITEMS: usize = 32;
/// Bytes per chunk, as Redis's default `list-max-listpack-size -2` (8 KB).
const CHUNK_BYTES: usize = 8 * 1024;
/// Bookkeeping per chunk, for the memory estimate.
const CHUNK_OVERHEAD: usize = 48;

/// A large list: a deque of packed chunks, like Redis's quicklist of
/// listpacks. One allocation per chunk instead of one per element keeps
/// LPUSH/RPUSH off the allocator and big lists about as small as Redis's.
#[derive(Debug, Clone, Default)]
struct Chunks {
    nodes: VecDeque<Packed>,
    len: usize,
    /// The chunks' bytes plus their overhead.
    bytes: usize,
}

impl Chunks {
    fn collect<'a>(items: impl Iterator<Item = &'a [u8]>) -> Chunks {
        let mut c = Chunks::default();
        for v in items {
            c.push(v, false);
        }
        c
    }

    fn push(&mut self, v: &[u8], left: bool) {
        let end = if left {
            self.nodes.front_mut()
        } else {
            self.nodes.back_mut()
        };
        let full = match end {
            Some(p) if p.len() < CHUNK_ITEMS && p.bytes() + v.len() + 2 <= CHUNK_BYTES => false,
            Some(p) => {
                // Sealed for good: give back the growth slack.
                p.buf.shrink_to_fit();
                true
            }
            None => true,
        };
        if full {
            if left {
                self.nodes.push_front(Packed::default());
            } else {
                self.nodes.push_back(Packed::default());
            }
            self.bytes += CHUNK_OVERHEAD;
        }
        let p = if left {
            self.nodes.front_mut()
        } else {
            self.nodes.back_mut()
        };
        let p = p.expect("a chunk was just ensured");
        let before = p.bytes();
        if left {
            p.prepend(v);
        } else {
            p.append(v);
        }
        self.bytes += p.bytes() - before;
        self.len += 1;
    }

    fn pop(&mut self, left: bool) -> Option<Box<[u8]>> {
        let p = if left {
            self.nodes.front_mut()
        } else {
            self.nodes.back_mut()
        }?;
        let (start, item, end) = if left {
            p.spans().next()?
        } else {
            p.spans().last()?
        };
        let v = Box::from(item);
        let before = p.bytes();
        p.remove_span(start, end, 1);
        self.bytes -= before - p.bytes();
        self.len -= 1;
        if p.is_empty() {
            if left {
                self.nodes.pop_front();
            } else {
                self.nodes.pop_back();
            }
            self.bytes -= CHUNK_OVERHEAD;
        }
        Some(v)
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.nodes.iter().flat_map(|p| p.iter())
    }

    /// Drops `n` items from the head (`left`) or the tail: whole chunks,
    /// then a cut in the chunk at that end.
    fn drop_end(&mut self, mut n: usize, left: bool) {
        while n > 0 {
            let end = if left {
                self.nodes.front_mut()
            } else {
                self.nodes.back_mut()
            };
            let Some(p) = end else {
                return;
            };
            if n >= p.len() {
                n -= p.len();
                self.len -= p.len();
                self.bytes -= p.bytes() + CHUNK_OVERHEAD;
                if left {
                    self.nodes.pop_front();
                } else {
                    self.nodes.pop_back();
                }
                continue;
            }
            // The byte offset where the first kept (head) or first dropped
            // (tail) item starts.
            let at = if left { n } else { p.len() - n };
            let cut = p.spans().nth(at).map_or(p.bytes(), |(start, _, _)| start);
            let before = p.bytes();
            if left {
                p.remove_span(0, cut, n);
            } else {
                p.remove_span(cut, before, n);
            }
            self.bytes -= before - p.bytes();
            self.len -= n;
            return;
        }
    }

    /// Replaces element `i` in place (LSET): one chunk is rewritten.
    fn set(&mut self, mut i: usize, v: &[u8]) -> bool {
        for p in self.nodes.iter_mut() {
            if i < p.len() {
                let before = p.bytes();
                let done = p.set_nth(i, v);
                self.bytes = self.bytes + p.bytes() - before;
                return done;
            }
            i -= p.len();
        }
        false
    }

    /// Items from index `start` on, skipping whole chunks first.
    fn iter_from(&self, mut start: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut whole = 0;
        for p in &self.nodes {
            if start < p.len() {
                break;
            }
            start -= p.len();
            whole += 1;
        }
        self.nodes
            .iter()
            .skip(whole)
            .flat_map(|p| p.iter())
            .skip(start)
    }
}

/// A list value: packed while small (≤128 elements of ≤64 bytes), a deque
/// of packed chunks once large.
#[derive(Debug, Clone)]
pub struct ListVal {
    repr: ListRepr,
}

impl Default for ListVal {
    fn default() -> Self {
        ListVal {
            repr: ListRepr::Small(Packed::default()),
        }
    }
}

fn packable<'a>(mut items: impl Iterator<Item = &'a [u8]>, n: usize) -> bool {
    n <= PACKED_MAX_ENTRIES && items.all(|v| v.len() <= PACKED_MAX_ITEM)
}

impl ListVal {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.repr {
            ListRepr::Small(p) => p.len(),
            ListRepr::Big(c) => c.len,
        }
    }

    /// Whether the list has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn mem(&self) -> usize {
        match &self.repr {
            ListRepr::Small(p) => p.bytes(),
            ListRepr::Big(c) => c.bytes,
        }
    }

    fn make_chunks(&mut self) {
        if let ListRepr::Small(p) = &self.repr {
            self.repr = ListRepr::Big(Chunks::collect(p.iter()));
        }
    }

    /// Pushes at the head (`left`) or tail.
    pub fn push(&mut self, v: &[u8], left: bool) {
        if let ListRepr::Small(p) = &self.repr
            && (v.len() > PACKED_MAX_ITEM || p.len() >= PACKED_MAX_ENTRIES)
        {
            self.make_chunks();
        }
        match &mut self.repr {
            ListRepr::Small(p) => {
                if left {
                    p.insert_front(v);
                } else {
                    p.push(v);
                }
            }
            ListRepr::Big(c) => c.push(v, left),
        }
    }

    /// Pops from the head (`left`) or tail.
    pub fn pop(&mut self, left: bool) -> Option<Box<[u8]>> {
        match &mut self.repr {
            ListRepr::Small(p) => {
                let (start, item, end) = if left {
                    p.spans().next()?
                } else {
                    p.spans().last()?
                };
                let v = Box::from(item);
                p.remove_span(start, end, 1);
                Some(v)
            }
            ListRepr::Big(c) => c.pop(left),
        }
    }

    /// Element at `i` (0-based from the head).
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        match &self.repr {
            ListRepr::Small(p) => p.iter().nth(i),
            ListRepr::Big(c) => c.iter_from(i).next(),
        }
    }

    /// Keeps only elements `start..=end` (LTRIM, indices already resolved):
    /// a large list loses whole chunks at both ends instead of being rebuilt.
    pub fn trim(&mut self, start: usize, end: usize) {
        match &mut self.repr {
            ListRepr::Small(p) => {
                let mut kept = Packed::default();
                for v in p.iter().skip(start).take(end + 1 - start) {
                    kept.push(v);
                }
                *p = kept;
            }
            ListRepr::Big(c) => {
                let back = c.len.saturating_sub(end + 1);
                c.drop_end(back, false);
                c.drop_end(start, true);
                if packable(c.iter(), c.len) {
                    let mut p = Packed::default();
                    for v in c.iter() {
                        p.push(v);
                    }
                    self.repr = ListRepr::Small(p);
                }
            }
        }
    }

    /// Replaces element `i` (LSET) without rebuilding the list; false when
    /// `i` is out of range. A long value in a packed list unpacks it.
    pub fn set(&mut self, i: usize, v: &[u8]) -> bool {
        if i >= self.len() {
            return false;
        }
        if v.len() > PACKED_MAX_ITEM {
            self.make_chunks();
        }
        match &mut self.repr {
            ListRepr::Small(p) => p.set_nth(i, v),
            ListRepr::Big(c) => c.set(i, v),
        }
    }

    /// All elements, head first.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match &self.repr {
            ListRepr::Small(p) => Box::new(p.iter()),
            ListRepr::Big(c) => Box::new(c.iter()),
        }
    }

    /// Elements `start..=end` (indices already clamped by the caller).
    pub fn range(&self, start: usize, end: usize) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match &self.repr {
            ListRepr::Small(p) => Box::new(p.iter().skip(start).take(end + 1 - start)),
            ListRepr::Big(c) => Box::new(c.iter_from(start).take(end + 1 - start)),
        }
    }

    /// Runs an arbitrary edit on the elements as a deque (used by the O(n)
    /// commands: LSET, LINSERT, LREM, LTRIM), then re-packs the result.
    pub fn edit<T>(&mut self, f: impl FnOnce(&mut VecDeque<Box<[u8]>>) -> T) -> T {
        let mut d: VecDeque<Box<[u8]>> = self.iter().map(Box::from).collect();
        let out = f(&mut d);
        if packable(d.iter().map(|v| &v[..]), d.len()) {
            let mut p = Packed::default();
            for v in d.iter() {
                p.push(v);
            }
            self.repr = ListRepr::Small(p);
        } else {
            self.repr = ListRepr::Big(Chunks::collect(d.iter().map(|v| &v[..])));
        }
        out
    }
}

#[derive(Debug, Clone)]
enum SetRepr {
    Small(Packed),
    Big(HashSet<Key, FixedState>),
}

/// A set value: packed while small (≤128 members of ≤64 bytes), a hash set beyond.
#[derive(Debug, Clone)]
pub struct SetVal {
    repr: SetRepr,
    /// Estimate for the table form (the packed form is measured directly).
    bytes: usize,
    /// Whether Redis would hold this set as a hashtable rather than an
    /// intset: a non-integer member or more than 512 members ever joined
    /// it. Redis never converts back, even once the set shrinks, and
    /// `OBJECT ENCODING` and the member order show which one it is.
    hashtable: bool,
}

impl Default for SetVal {
    fn default() -> Self {
        SetVal {
            repr: SetRepr::Small(Packed::default()),
            bytes: 0,
            hashtable: false,
        }
    }
}

impl SetVal {
    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            SetRepr::Small(p) => p.len(),
            SetRepr::Big(h) => h.len(),
        }
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the compact encoding is in use.
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, SetRepr::Small(_))
    }

    /// Whether Redis 7.0 would report this set as an `intset`.
    pub fn is_intset(&self) -> bool {
        !self.hashtable
    }

    fn mem(&self) -> usize {
        match &self.repr {
            SetRepr::Small(p) => p.bytes(),
            SetRepr::Big(_) => self.bytes,
        }
    }

    /// Whether `m` is a member.
    pub fn contains(&self, m: &[u8]) -> bool {
        match &self.repr {
            SetRepr::Small(p) => p.iter().any(|x| x == m),
            SetRepr::Big(h) => h.contains(m),
        }
    }

    /// All members.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match &self.repr {
            SetRepr::Small(p) => Box::new(p.iter()),
            SetRepr::Big(h) => Box::new(h.iter().map(|m| &m[..])),
        }
    }

    /// All members in the order Redis replies them (see [`intset_order`]).
    /// Only sets small enough to be an intset are collected and sorted.
    pub fn ordered(&self) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        if self.hashtable {
            return self.iter();
        }
        let mut v: Vec<&[u8]> = self.iter().collect();
        intset_order(&mut v);
        Box::new(v.into_iter())
    }

    fn convert_to_table(&mut self) {
        let SetRepr::Small(p) = &self.repr else {
            return;
        };
        let (h, bytes) = {
            let mut h = HashSet::with_capacity_and_hasher(p.len() + 1, hasher());
            let mut bytes = 0;
            for m in p.iter() {
                bytes += m.len() + SET_MEMBER_OVERHEAD;
                h.insert(Key::from(m));
            }
            (h, bytes)
        };
        self.repr = SetRepr::Big(h);
        self.bytes = bytes;
    }

    /// Adds a member; returns true when it is new.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.contains(m) {
            return false;
        }
        if !self.hashtable
            && (self.len() >= INTSET_MAX_ENTRIES || crate::store::protocol::parse_int(m).is_none())
        {
            self.hashtable = true;
        }
        if let SetRepr::Small(p) = &self.repr
            && (m.len() > PACKED_MAX_ITEM || p.len() >= PACKED_MAX_ENTRIES)
        {
            self.convert_to_table();
        }
        match &mut self.repr {
            SetRepr::Small(p) => p.push(m),
            SetRepr::Big(h) => {
                self.bytes += m.len() + SET_MEMBER_OVERHEAD;
                h.insert(m.into());
            }
        }
        true
    }

    /// Removes a member; returns true when it existed.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            SetRepr::Small(p) => {
                let span = p.spans().find(|(_, x, _)| *x == m).map(|(s, _, e)| (s, e));
                match span {
                    Some((s, e)) => {
                        p.remove_span(s, e, 1);
                        true
                    }
                    None => false,
                }
            }
            SetRepr::Big(h) => {
                if h.remove(m) {
                    self.bytes -= m.len() + SET_MEMBER_OVERHEAD;
                    true
                } else {
                    false
                }
            }
        }
    }
}

/// Most members a Redis 7.0 intset holds (`set-max-intset-entries`).
pub const INTSET_MAX_ENTRIES: usize = 512;

/// Puts members in the order Redis replies them when it would hold them in
/// an intset (every member an integer, at most 512): ascending by value.
/// Redis promises no set order, but this one is visible and code comes to
/// rely on it; other sets keep their order.
pub fn intset_order<T: AsRef<[u8]>>(members: &mut [T]) {
    if members.len() > INTSET_MAX_ENTRIES || members.len() < 2 {
        return;
    }
    let all_int = members
        .iter()
        .all(|m| crate::store::protocol::parse_int(m.as_ref()).is_some());
    if all_int {
        members.sort_by_cached_key(|m| crate::store::protocol::parse_int(m.as_ref()));
    }
}

/// A score with the total order Redis uses (NaN is never stored).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .partial_cmp(&other.0)
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

#[derive(Debug, Clone)]
enum ZRepr {
    /// Alternating member, 8-byte little-endian score, ordered by (score, member).
    Small(Packed),
    Big(Box<ZBig>),
}

/// The table form of a sorted set (boxed: keeps small sets small).
#[derive(Debug, Clone)]
struct ZBig {
    dict: HashMap<Key, f64, FixedState>,
    tree: BTreeSet<(Score, Key)>,
}

/// A sorted set: packed while small (≤128 members of ≤64 bytes, like Redis's
/// listpack), otherwise a member→score map plus an ordered (score, member) index.
#[derive(Debug, Clone)]
pub struct ZSetVal {
    repr: ZRepr,
    /// Estimate for the table form (the packed form is measured directly).
    bytes: usize,
}

impl Default for ZSetVal {
    fn default() -> Self {
        ZSetVal {
            repr: ZRepr::Small(Packed::default()),
            bytes: 0,
        }
    }
}

fn score_of(b: &[u8]) -> f64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8.min(b.len())]);
    f64::from_le_bytes(a)
}

/// Ordered (score, member) pairs.
pub type ZIter<'a> = Box<dyn DoubleEndedIterator<Item = (f64, &'a [u8])> + 'a>;

impl ZSetVal {
    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            ZRepr::Small(p) => p.len() / 2,
            ZRepr::Big(b) => b.dict.len(),
        }
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the compact encoding is in use.
    pub fn is_packed(&self) -> bool {
        matches!(self.repr, ZRepr::Small(_))
    }

    fn mem(&self) -> usize {
        match &self.repr {
            ZRepr::Small(p) => p.bytes(),
            ZRepr::Big(_) => self.bytes,
        }
    }

    /// Members in ascending (score, member) order; reversible.
    pub fn ordered(&self) -> ZIter<'_> {
        match &self.repr {
            ZRepr::Small(p) => {
                let mut v = Vec::with_capacity(p.len() / 2);
                let mut it = p.iter();
                while let (Some(m), Some(sc)) = (it.next(), it.next()) {
                    v.push((score_of(sc), m));
                }
                Box::new(v.into_iter())
            }
            ZRepr::Big(b) => Box::new(b.tree.iter().map(|(s, m)| (s.0, &m[..]))),
        }
    }

    /// Ascending order starting at the first member with score ≥ `min`.
    pub fn ordered_from(&self, min: f64) -> ZIter<'_> {
        match &self.repr {
            ZRepr::Small(_) => Box::new(self.ordered().filter(move |(s, _)| *s >= min)),
            ZRepr::Big(b) => Box::new(
                b.tree
                    .range((Score(min), Key::default())..)
                    .map(|(s, m)| (s.0, &m[..])),
            ),
        }
    }

    /// An empty sorted set in the table form when `n` members, the longest
    /// `longest` bytes, would not fit the packed one: built that way from the
    /// start, a result keeps every score as computed (-0 included), as
    /// Redis's Z*STORE results do, instead of the first ones passing
    /// through the packed form.
    pub fn sized_for(n: usize, longest: usize) -> ZSetVal {
        let mut z = ZSetVal::default();
        if n > PACKED_MAX_ENTRIES || longest > PACKED_MAX_ITEM {
            z.convert_to_table();
        }
        z
    }

    fn convert_to_table(&mut self) {
        let ZRepr::Small(_) = &self.repr else {
            return;
        };
        let (dict, tree, bytes) = {
            let mut dict = HashMap::with_hasher(hasher());
            let mut tree = BTreeSet::new();
            let mut bytes = 0;
            for (s, m) in self.ordered() {
                bytes += 2 * m.len() + ZSET_MEMBER_OVERHEAD;
                dict.insert(Key::from(m), s);
                tree.insert((Score(s), Key::from(m)));
            }
            (dict, tree, bytes)
        };
        self.repr = ZRepr::Big(Box::new(ZBig { dict, tree }));
        self.bytes = bytes;
    }

    /// Byte span (member start, score end) and score of a member in the packed form.
    fn find_packed(p: &Packed, m: &[u8]) -> Option<(usize, usize, f64)> {
        let mut spans = p.spans();
        while let (Some((ms, mem, _)), Some((_, sc, se))) = (spans.next(), spans.next()) {
            if mem == m {
                return Some((ms, se, score_of(sc)));
            }
        }
        None
    }

    /// Sets a member's score; returns true when the member is new.
    pub fn insert(&mut self, m: &[u8], score: f64) -> bool {
        if let ZRepr::Small(p) = &self.repr {
            let full = p.len() / 2 >= PACKED_MAX_ENTRIES && self.score(m).is_none();
            if m.len() > PACKED_MAX_ITEM || full {
                self.convert_to_table();
            }
        }
        match &mut self.repr {
            ZRepr::Small(p) => {
                // Redis's compact form stores the score as text, where -0
                // becomes 0; its table form keeps the double, sign and all
                // (`Score` orders -0 and 0 as one value there).
                let score = if score == 0.0 { 0.0 } else { score };
                let existed = match Self::find_packed(p, m) {
                    Some((_, _, old)) if old == score => return false,
                    Some((start, end, _)) => {
                        p.remove_span(start, end, 2);
                        true
                    }
                    None => false,
                };
                // Insert before the first pair ordering after (score, m).
                let at = {
                    let mut spans = p.spans();
                    let mut at = p.bytes();
                    while let (Some((ms, mem, _)), Some((_, sc, _))) = (spans.next(), spans.next())
                    {
                        let s = score_of(sc);
                        if s > score || (s == score && mem > m) {
                            at = ms;
                            break;
                        }
                    }
                    at
                };
                p.insert_at(at, m);
                let after_member = {
                    let (len, data) = get_len(&p.buf, at);
                    data + len
                };
                p.insert_at(after_member, &score.to_le_bytes());
                !existed
            }
            ZRepr::Big(b) => {
                let ZBig { dict, tree } = &mut **b;
                if let Some(old) = dict.get_mut(m) {
                    if *old != score {
                        tree.remove(&(Score(*old), Key::from(m)));
                        tree.insert((Score(score), m.into()));
                        *old = score;
                    }
                    false
                } else {
                    self.bytes += 2 * m.len() + ZSET_MEMBER_OVERHEAD;
                    dict.insert(m.into(), score);
                    tree.insert((Score(score), m.into()));
                    true
                }
            }
        }
    }

    /// Removes a member; returns true when it existed.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match &mut self.repr {
            ZRepr::Small(p) => match Self::find_packed(p, m) {
                Some((start, end, _)) => {
                    p.remove_span(start, end, 2);
                    true
                }
                None => false,
            },
            ZRepr::Big(b) => match b.dict.remove(m) {
                Some(s) => {
                    b.tree.remove(&(Score(s), Key::from(m)));
                    self.bytes -= 2 * m.len() + ZSET_MEMBER_OVERHEAD;
                    true
                }
                None => false,
            },
        }
    }

    /// Score of a member.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match &self.repr {
            ZRepr::Small(p) => Self::find_packed(p, m).map(|(_, _, s)| s),
            ZRepr::Big(b) => b.dict.get(m).copied(),
        }
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        let s = self.score(m)?;
        match &self.repr {
            ZRepr::Small(_) => self.ordered().position(|(_, x)| x == m),
            ZRepr::Big(b) => Some(b.tree.range(..(Score(s), Key::from(m))).count()),
        }
    }

    /// Removes and returns the lowest (or highest) member.
    pub fn pop(&mut self, max: bool) -> Option<(Key, f64)> {
        let (s, m) = {
            let mut it = self.ordered();
            let (s, m) = if max { it.next_back()? } else { it.next()? };
            (s, Key::from(m))
        };
        self.remove(&m);
        Some((m, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_that_was_a_hashtable_stays_one() {
        let mut s = SetVal::default();
        s.insert(b"3");
        s.insert(b"1");
        assert!(s.is_intset());
        assert_eq!(s.ordered().collect::<Vec<_>>(), vec![&b"1"[..], b"3"]);
        s.insert(b"a");
        s.remove(b"a");
        assert!(!s.is_intset(), "no way back, as in Redis");
        let mut big = SetVal::default();
        for i in 0..513 {
            big.insert(i.to_string().as_bytes());
        }
        assert!(!big.is_intset());
        for i in 0..600 {
            big.remove(i.to_string().as_bytes());
        }
        big.insert(b"7");
        assert!(!big.is_intset());
        let mut full = SetVal::default();
        for i in 0..512 {
            full.insert(i.to_string().as_bytes());
        }
        assert!(full.is_intset(), "512 members still fit an intset");
    }

    #[test]
    fn packed_hash_behaves_like_a_map() {
        let mut h = HashVal::default();
        assert!(h.insert(b"a", b"1"));
        assert!(h.insert(b"b", b"2"));
        assert!(!h.insert(b"a", b"longer value"));
        assert_eq!(h.get(b"a"), Some(&b"longer value"[..]));
        assert_eq!(h.get(b"b"), Some(&b"2"[..]));
        assert!(h.is_packed());
        assert!(h.remove(b"a"));
        assert!(!h.remove(b"a"));
        assert_eq!(h.len(), 1);
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![(&b"b"[..], &b"2"[..])]);
        // Many fields or a long value switch to the table form, keeping content.
        // Redis 7.0's hash-max-listpack-entries is 512.
        for i in 0..511 {
            h.insert(format!("f{i}").as_bytes(), b"v");
        }
        assert!(h.is_packed());
        h.insert(b"one more", b"v");
        assert!(!h.is_packed());
        assert_eq!(h.len(), 513);
        assert_eq!(h.get(b"b"), Some(&b"2"[..]));
        let mut g = HashVal::default();
        g.insert(b"x", &[b'y'; 100]);
        assert!(!g.is_packed());
        // Long length prefixes round-trip.
        let mut p = Packed::default();
        p.push(&[7u8; 300]);
        p.push(b"");
        assert_eq!(p.iter().map(|x| x.len()).collect::<Vec<_>>(), vec![300, 0]);
    }

    #[test]
    fn packed_list_behaves_like_a_deque() {
        let mut l = ListVal::default();
        l.push(b"b", false);
        l.push(b"a", true);
        l.push(b"c", false);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(l.get(1), Some(&b"b"[..]));
        assert_eq!(l.range(1, 2).collect::<Vec<_>>(), vec![&b"b"[..], b"c"]);
        assert_eq!(l.pop(false).as_deref(), Some(&b"c"[..]));
        assert_eq!(l.pop(true).as_deref(), Some(&b"a"[..]));
        assert_eq!(l.len(), 1);
        l.edit(|d| d.push_front(Box::from(&b"z"[..])));
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"z"[..], b"b"]);
        // Growing past the packed limits switches to the deque, content intact.
        for i in 0..300 {
            l.push(format!("{i}").as_bytes(), false);
        }
        assert_eq!(l.len(), 302);
        assert_eq!(l.get(301), Some(&b"299"[..]));
        assert!(matches!(l.repr, ListRepr::Big(_)));
        // Shrinking through an edit packs it again.
        l.edit(|d| d.truncate(3));
        assert!(matches!(l.repr, ListRepr::Small(_)));
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"z"[..], b"b", b"0"]);
        l.push(&[b'x'; 65], true);
        assert!(matches!(l.repr, ListRepr::Big(_)));
        assert_eq!(l.get(0).map(|v| v.len()), Some(65));
    }

    #[test]
    fn chunked_list_matches_a_deque() {
        use std::collections::VecDeque;
        let mut l = ListVal::default();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut x: u64 = 11;
        for step in 0..20_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            // Mostly pushes, with items up to 300 bytes (some past the packed
            // limit) and the occasional huge one, so chunks seal on both limits.
            let len = if r.is_multiple_of(997) { 9000 } else { r % 300 };
            let item: Vec<u8> = (0..len).map(|i| (i + step) as u8).collect();
            match r % 7 {
                0..=2 => {
                    l.push(&item, false);
                    model.push_back(item);
                }
                3..=4 => {
                    l.push(&item, true);
                    model.push_front(item);
                }
                6 if r.is_multiple_of(50) && model.len() > 2 => {
                    let a = r % (model.len() / 2);
                    let b = model.len() - 1 - (r / 7) % (model.len() / 2);
                    l.trim(a, b);
                    model.truncate(b + 1);
                    model.drain(..a);
                }
                5 if r.is_multiple_of(3) && !model.is_empty() => {
                    let i = r % model.len();
                    assert!(l.set(i, &item));
                    model[i] = item;
                }
                5 => assert_eq!(l.pop(true).map(Vec::from), model.pop_front()),
                _ => assert_eq!(l.pop(false).map(Vec::from), model.pop_back()),
            }
            assert_eq!(l.len(), model.len());
            if step.is_multiple_of(1000) && !model.is_empty() {
                let got: Vec<&[u8]> = l.iter().collect();
                let want: Vec<&[u8]> = model.iter().map(|v| &v[..]).collect();
                assert_eq!(got, want);
                let i = r % model.len();
                assert_eq!(l.get(i), Some(&model[i][..]));
                let e = (i + 50).min(model.len() - 1);
                assert!(l.range(i, e).eq(model.range(i..=e).map(|v| &v[..])));
            }
        }
        // The estimate follows the content: what is left, no stale chunks.
        let data: usize = model.iter().map(|v| v.len()).sum();
        if let ListRepr::Big(c) = &l.repr {
            assert_eq!(c.len, model.len());
            assert!(c.bytes >= data && c.bytes <= data * 2 + 64 * c.nodes.len() + 4096);
            assert!(c.nodes.iter().all(|p| !p.is_empty()));
        }
    }

    #[test]
    fn packed_zset_matches_table_form() {
        let mut small = ZSetVal::default();
        let mut ops: Vec<(Vec<u8>, f64)> = Vec::new();
        let mut x: u64 = 7;
        for _ in 0..300 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = format!("m{}", (x >> 33) % 40).into_bytes();
            let s = ((x >> 13) % 7) as f64 - 3.0;
            ops.push((m, s));
        }
        let mut table = ZSetVal::default();
        table.convert_to_table();
        for (m, s) in &ops {
            assert_eq!(small.insert(m, *s), table.insert(m, *s));
            if s < &-2.0 {
                assert_eq!(small.remove(m), table.remove(m));
            }
        }
        assert!(small.is_packed());
        let a: Vec<_> = small.ordered().collect();
        let b: Vec<_> = table.ordered().collect();
        assert_eq!(a, b);
        for (m, _) in &ops {
            assert_eq!(small.rank(m), table.rank(m));
            assert_eq!(small.score(m), table.score(m));
        }
        assert_eq!(
            small.ordered_from(0.0).collect::<Vec<_>>(),
            table.ordered_from(0.0).collect::<Vec<_>>()
        );
        assert_eq!(small.pop(true), table.pop(true));
        assert_eq!(small.pop(false), table.pop(false));
        // Growing past 128 members converts, preserving order.
        for i in 0..200 {
            small.insert(format!("n{i:03}").as_bytes(), 1.5);
        }
        assert!(!small.is_packed());
        assert_eq!(small.rank(b"n000").map(|r| r > 0), Some(true));
    }

    #[test]
    fn packed_set_behaves_like_a_set() {
        let mut s = SetVal::default();
        assert!(s.insert(b"a"));
        assert!(!s.insert(b"a"));
        assert!(s.insert(b"b"));
        assert!(s.contains(b"b"));
        assert!(s.remove(b"a"));
        assert!(!s.remove(b"a"));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![&b"b"[..]]);
        for i in 0..200 {
            s.insert(format!("{i}").as_bytes());
        }
        assert!(!s.is_packed());
        assert_eq!(s.len(), 201);
        assert!(s.contains(b"b") && s.contains(b"199"));
    }

    #[test]
    fn zset_order() {
        let mut z = ZSetVal::default();
        assert!(z.insert(b"b", 1.0));
        assert!(z.insert(b"a", 1.0));
        assert!(z.insert(b"c", 0.5));
        assert!(!z.insert(b"c", 2.0));
        let order: Vec<&[u8]> = z.ordered().map(|(_, m)| m).collect();
        assert_eq!(order, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(z.rank(b"c"), Some(2));
        assert!(z.remove(b"a"));
        assert_eq!(z.len(), 2);
    }
}
