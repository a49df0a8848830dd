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
const LIST_ITEM_OVERHEAD: usize = 24;
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
            Value::Hash(h) => h.bytes + 64,
            Value::List(l) => l.bytes + 64,
            Value::Set(s) => s.bytes + 64,
            Value::ZSet(z) => z.bytes + 96,
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
            Value::Hash(h) => h.map.is_empty(),
            Value::List(l) => l.items.is_empty(),
            Value::Set(s) => s.set.is_empty(),
            Value::ZSet(z) => z.dict.is_empty(),
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
                if h.map.len() <= 128 && h.map.iter().all(|(k, v)| k.len() <= 64 && v.len() <= 64) {
                    "listpack"
                } else {
                    "hashtable"
                }
            }
            Value::List(_) => "quicklist",
            Value::Set(s) => {
                if s.set.len() <= 512
                    && s.set
                        .iter()
                        .all(|m| crate::store::protocol::parse_int(m).is_some())
                {
                    "intset"
                } else {
                    "hashtable"
                }
            }
            Value::ZSet(z) => {
                if z.dict.len() <= 128 && z.dict.keys().all(|m| m.len() <= 64) {
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

/// A hash value.
#[derive(Debug, Clone)]
pub struct HashVal {
    /// Fields to values.
    pub map: HashMap<Key, Box<[u8]>, FixedState>,
    bytes: usize,
}

impl Default for HashVal {
    fn default() -> Self {
        HashVal {
            map: HashMap::with_hasher(hasher()),
            bytes: 0,
        }
    }
}

impl HashVal {
    /// Sets a field; returns true when the field is new.
    pub fn insert(&mut self, field: &[u8], value: &[u8]) -> bool {
        if let Some(old) = self.map.get_mut(field) {
            self.bytes = self.bytes - old.len() + value.len();
            *old = value.into();
            false
        } else {
            self.bytes += field.len() + value.len() + HASH_FIELD_OVERHEAD;
            self.map.insert(field.into(), value.into());
            true
        }
    }

    /// Removes a field; returns true when it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.map.remove(field) {
            Some(v) => {
                self.bytes -= field.len() + v.len() + HASH_FIELD_OVERHEAD;
                true
            }
            None => false,
        }
    }
}

/// A list value.
#[derive(Debug, Clone, Default)]
pub struct ListVal {
    /// Elements, head first.
    pub items: VecDeque<Box<[u8]>>,
    bytes: usize,
}

impl ListVal {
    /// Pushes at the head (`left`) or tail.
    pub fn push(&mut self, v: &[u8], left: bool) {
        self.bytes += v.len() + LIST_ITEM_OVERHEAD;
        if left {
            self.items.push_front(v.into());
        } else {
            self.items.push_back(v.into());
        }
    }

    /// Pops from the head (`left`) or tail.
    pub fn pop(&mut self, left: bool) -> Option<Box<[u8]>> {
        let v = if left {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        }?;
        self.bytes -= v.len() + LIST_ITEM_OVERHEAD;
        Some(v)
    }

    /// Recomputes the estimate after direct edits of `items`.
    pub fn recount(&mut self) {
        self.bytes = self
            .items
            .iter()
            .map(|v| v.len() + LIST_ITEM_OVERHEAD)
            .sum();
    }
}

/// A set value.
#[derive(Debug, Clone)]
pub struct SetVal {
    /// Members.
    pub set: HashSet<Key, FixedState>,
    bytes: usize,
}

impl Default for SetVal {
    fn default() -> Self {
        SetVal {
            set: HashSet::with_hasher(hasher()),
            bytes: 0,
        }
    }
}

impl SetVal {
    /// Adds a member; returns true when it is new.
    pub fn insert(&mut self, m: &[u8]) -> bool {
        if self.set.contains(m) {
            return false;
        }
        self.bytes += m.len() + SET_MEMBER_OVERHEAD;
        self.set.insert(m.into());
        true
    }

    /// Removes a member; returns true when it existed.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        if self.set.remove(m) {
            self.bytes -= m.len() + SET_MEMBER_OVERHEAD;
            true
        } else {
            false
        }
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

/// A sorted set: a member→score map plus an ordered index by (score, member).
#[derive(Debug, Clone)]
pub struct ZSetVal {
    /// Member to score.
    pub dict: HashMap<Key, f64, FixedState>,
    /// Members ordered by score, then bytewise.
    pub tree: BTreeSet<(Score, Key)>,
    bytes: usize,
}

impl Default for ZSetVal {
    fn default() -> Self {
        ZSetVal {
            dict: HashMap::with_hasher(hasher()),
            tree: BTreeSet::new(),
            bytes: 0,
        }
    }
}

impl ZSetVal {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.dict.len()
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    /// Sets a member's score; returns true when the member is new.
    pub fn insert(&mut self, m: &[u8], score: f64) -> bool {
        // -0 and 0 must order as one value.
        let score = if score == 0.0 { 0.0 } else { score };
        if let Some(old) = self.dict.get_mut(m) {
            if *old != score {
                self.tree.remove(&(Score(*old), Key::from(m)));
                self.tree.insert((Score(score), m.into()));
                *old = score;
            }
            false
        } else {
            self.bytes += 2 * m.len() + ZSET_MEMBER_OVERHEAD;
            self.dict.insert(m.into(), score);
            self.tree.insert((Score(score), m.into()));
            true
        }
    }

    /// Removes a member; returns true when it existed.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.dict.remove(m) {
            Some(s) => {
                self.tree.remove(&(Score(s), Key::from(m)));
                self.bytes -= 2 * m.len() + ZSET_MEMBER_OVERHEAD;
                true
            }
            None => false,
        }
    }

    /// Score of a member.
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        self.dict.get(m).copied()
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        let s = self.score(m)?;
        Some(self.tree.range(..(Score(s), Key::from(m))).count())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zset_order() {
        let mut z = ZSetVal::default();
        assert!(z.insert(b"b", 1.0));
        assert!(z.insert(b"a", 1.0));
        assert!(z.insert(b"c", 0.5));
        assert!(!z.insert(b"c", 2.0));
        let order: Vec<&[u8]> = z.tree.iter().map(|(_, m)| &m[..]).collect();
        assert_eq!(order, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(z.rank(b"c"), Some(2));
        assert!(z.remove(b"a"));
        assert_eq!(z.len(), 2);
    }
}
