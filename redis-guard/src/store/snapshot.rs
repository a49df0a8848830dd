//! The snapshot file format: a point-in-time image of every database.
//!
//! ```text
//! "RGSNAP\r\n"          8-byte magic
//! u32 LE version        currently 1
//! u64 LE created        Unix ms of the point in time
//! entries, each:
//!   u8 type             1 string, 2 hash, 3 list, 4 set, 5 sorted set
//!   u32 db, u64 expire  absolute Unix ms, 0 = none
//!   key                 u64 length + bytes
//!   value               string: bytes; hash: u64 n + n (field, value);
//!                       list/set: u64 n + n items; zset: u64 n + n (f64 bits, member)
//! u8 0xFF               end of entries
//! u64 LE xxh3-64        of every byte before it
//! ```
//!
//! Expiries are absolute, so a key whose time passed while the store was down
//! is dropped at load. The whole file is verified before any of it is used.

use std::path::Path;

use crate::store::keyspace::{Entry, Keyspace};
use crate::store::value::{HashVal, Key, ListVal, SetVal, Value, ZSetVal};

/// First bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"RGSNAP\r\n";
/// The format version this build writes and reads.
pub const VERSION: u32 = 1;
const END: u8 = 0xFF;

fn bytes(w: &mut Vec<u8>, b: &[u8]) {
    w.extend_from_slice(&(b.len() as u64).to_le_bytes());
    w.extend_from_slice(b);
}

/// Encodes every database into the complete file contents, checksum
/// included. Runs under the keyspace lock, so it is the point in time;
/// encoding straight into one buffer (no per-key copies of the data
/// structures) keeps that pause short. The buffer costs about the size of
/// the file in memory until it is written out.
pub fn encode(ks: &Keyspace, created: u64) -> Vec<u8> {
    let mut w = Vec::with_capacity(ks.used_memory() as usize + 64);
    w.extend_from_slice(MAGIC);
    w.extend_from_slice(&VERSION.to_le_bytes());
    w.extend_from_slice(&created.to_le_bytes());
    for (db, d) in ks.dbs.iter().enumerate() {
        for (key, e) in d.entries() {
            encode_entry(&mut w, db, key, e);
        }
    }
    w.push(END);
    let sum = xxhash_rust::xxh3::xxh3_64(&w);
    w.extend_from_slice(&sum.to_le_bytes());
    w
}

fn encode_entry(w: &mut Vec<u8>, db: usize, key: &[u8], e: &Entry) {
    let ty: u8 = match &e.value {
        Value::Str(_) => 1,
        Value::Hash(_) => 2,
        Value::List(_) => 3,
        Value::Set(_) => 4,
        Value::ZSet(_) => 5,
    };
    w.push(ty);
    w.extend_from_slice(&(db as u32).to_le_bytes());
    w.extend_from_slice(&e.expire.to_le_bytes());
    bytes(w, key);
    match &e.value {
        Value::Str(s) => bytes(w, s),
        Value::Hash(h) => {
            w.extend_from_slice(&(h.len() as u64).to_le_bytes());
            for (f, v) in h.iter() {
                bytes(w, f);
                bytes(w, v);
            }
        }
        Value::List(l) => {
            w.extend_from_slice(&(l.len() as u64).to_le_bytes());
            for x in l.iter() {
                bytes(w, x);
            }
        }
        Value::Set(s) => {
            w.extend_from_slice(&(s.len() as u64).to_le_bytes());
            for x in s.iter() {
                bytes(w, x);
            }
        }
        Value::ZSet(z) => {
            w.extend_from_slice(&(z.len() as u64).to_le_bytes());
            for (score, m) in z.ordered() {
                w.extend_from_slice(&score.to_bits().to_le_bytes());
                bytes(w, m);
            }
        }
    }
}

/// Why a snapshot could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    /// Byte offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// Set when the file is sound but holds keys of this database, which
    /// the configuration does not have: a setting to change, not damage.
    pub missing_db: Option<usize>,
}

fn bad(offset: usize, reason: impl Into<String>) -> Bad {
    Bad {
        offset: offset as u64,
        reason: reason.into(),
        missing_db: None,
    }
}

struct Rd<'a> {
    d: &'a [u8],
    at: usize,
}

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.d.len())
            .ok_or_else(|| bad(self.at, "length runs past the end of the data"))?;
        let s = &self.d[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Bad> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Bad> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Bad> {
        let n = self.u64()?;
        self.take(usize::try_from(n).map_err(|_| bad(self.at, "length too large"))?)
    }
    fn count(&mut self) -> Result<usize, Bad> {
        let at = self.at;
        let n = self.u64()?;
        // Every element takes at least 8 bytes: a count beyond that is garbage.
        if n > (self.d.len() - self.at) as u64 / 8 {
            return Err(bad(at, format!("element count {n} exceeds the file")));
        }
        Ok(n as usize)
    }
}

/// Verifies `data` and loads it into `ks` (whose databases must be empty).
/// Returns the snapshot's creation time and the number of keys.
pub fn load(data: &[u8], ks: &mut Keyspace) -> Result<(u64, usize), Bad> {
    if data.len() < MAGIC.len() + 4 + 8 + 1 + 8 {
        return Err(bad(data.len(), "file is too short to be a snapshot"));
    }
    if &data[..8] != MAGIC {
        return Err(bad(0, "bad magic: not a redis-guard snapshot"));
    }
    let body = data.len() - 8;
    let mut sum = [0u8; 8];
    sum.copy_from_slice(&data[body..]);
    if xxhash_rust::xxh3::xxh3_64(&data[..body]) != u64::from_le_bytes(sum) {
        // One checksum covers the file, so the damage is somewhere before
        // this offset (where the checksum sits), not necessarily at it.
        return Err(bad(
            body,
            "checksum mismatch: the file is damaged somewhere before this offset",
        ));
    }
    let mut r = Rd {
        d: &data[..body],
        at: 8,
    };
    let version = r.u32()?;
    if version != VERSION {
        return Err(bad(8, format!("unsupported snapshot version {version}")));
    }
    let created = r.u64()?;
    let ndb = ks.dbs.len();
    let mut n = 0;
    loop {
        let at = r.at;
        let ty = r.u8()?;
        if ty == END {
            break;
        }
        let db = r.u32()? as usize;
        if db >= ndb {
            let mut b = bad(
                at,
                format!("database {db} does not exist (store.databases = {ndb})"),
            );
            b.missing_db = Some(db);
            return Err(b);
        }
        let expire = r.u64()?;
        let key: Key = r.bytes()?.into();
        let value = match ty {
            1 => Value::Str(r.bytes()?.into()),
            2 => {
                let mut h = HashVal::default();
                for _ in 0..r.count()? {
                    let f = r.bytes()?;
                    h.insert(f, r.bytes()?);
                }
                Value::Hash(Box::new(h))
            }
            3 => {
                let mut l = ListVal::default();
                for _ in 0..r.count()? {
                    l.push(r.bytes()?, false);
                }
                Value::List(Box::new(l))
            }
            4 => {
                let mut s = SetVal::default();
                for _ in 0..r.count()? {
                    s.insert(r.bytes()?);
                }
                Value::Set(Box::new(s))
            }
            5 => {
                let mut z = ZSetVal::default();
                for _ in 0..r.count()? {
                    let score = f64::from_bits(r.u64()?);
                    z.insert(r.bytes()?, score);
                }
                Value::ZSet(Box::new(z))
            }
            t => return Err(bad(at, format!("unknown entry type {t}"))),
        };
        ks.dbs[db].set(&key, value, expire, 0);
        n += 1;
    }
    if r.at != body {
        return Err(bad(r.at, "data after the end marker"));
    }
    Ok((created, n))
}

/// Reads and verifies a snapshot file without loading it anywhere.
pub fn verify(path: &Path, databases: usize) -> Result<usize, Bad> {
    let data = std::fs::read(path).map_err(|e| bad(0, e.to_string()))?;
    let mut ks = Keyspace::new(databases, 0, Default::default());
    load(&data, &mut ks).map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_corruption() {
        let mut ks = Keyspace::new(2, 0, Default::default());
        ks.dbs[0].set(b"s", Value::Str(Box::from(&b"v"[..])), 123, 0);
        let mut l = ListVal::default();
        l.push(b"a", false);
        l.push(b"b", false);
        ks.dbs[1].set(b"l", Value::List(Box::new(l)), 0, 0);
        let mut data = encode(&ks, 99);
        let mut back = Keyspace::new(2, 0, Default::default());
        assert_eq!(load(&data, &mut back).unwrap(), (99, 2));
        assert_eq!(back.dbs[0].len(), 1);
        assert_eq!(back.dbs[1].len(), 1);
        data[30] ^= 0x40;
        let mut again = Keyspace::new(2, 0, Default::default());
        assert!(
            load(&data, &mut again)
                .unwrap_err()
                .reason
                .starts_with("checksum mismatch")
        );
    }
}
