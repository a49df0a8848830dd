//! The command log's record format and the in-memory buffer it is built in.
//!
//! # Record framing
//!
//! ```text
//! u32 LE  payload length
//! u64 LE  xxh3-64 of the payload
//! payload:
//!   u64 LE  Unix ms at which the command(s) ran
//!   u32 LE  number of commands
//!   per command: u32 db, u32 argc, per argument: u32 length + bytes
//! ```
//!
//! A record is one command, or one whole `MULTI/EXEC` transaction: the
//! checksum covers it entirely, so a transaction torn by a crash is dropped
//! whole on recovery. Every command carries its database index, so no
//! `SELECT` context has to be reconstructed.
//!
//! # Why commands are replayed at their original time
//!
//! The payload records the time at which the command ran and replay runs it
//! with that clock. Relative expiries (`EXPIRE k 10`, `SET .. EX`, `GETEX`)
//! therefore land on exactly the same absolute deadline, without rewriting
//! each command family. What is not a function of the arguments and the
//! clock is logged as its effect instead: keys deleted by lazy or active
//! expiry and by eviction become `DEL`, `SPOP` becomes `SREM` of the members
//! it chose, and a blocking pop (served at once or later, for another
//! client's push) becomes the equivalent non-blocking pop or move.
//!
//! The buffer lives inside the [`Keyspace`](crate::store::keyspace::Keyspace),
//! behind the same mutex as the data, so record order is execution order.
//! The writer ([`crate::store::persist`]) takes the buffer out and writes it
//! to the file before any reply of the commands it contains leaves.

use bytes::Bytes;

/// Bytes of the per-record header: length and checksum.
pub const HEADER: usize = 12;
/// The smallest valid payload: time and command count.
const MIN_PAYLOAD: usize = 12;

/// Encoded records and the sequence number they end at.
#[derive(Debug, Default)]
pub struct Pending {
    bytes: Vec<u8>,
    seq: u64,
}

/// The pending records, behind their own small lock: appended to under the
/// keyspace lock, taken by the log writer without the keyspace lock, so
/// writing the log never waits for command execution on another thread.
pub type SharedPending = std::sync::Arc<parking_lot::Mutex<Pending>>;

/// Commands appended while the keyspace lock is held, not yet written out.
#[derive(Debug, Default)]
pub struct OpLog {
    /// Whether writes are recorded at all (off while loading and without `appendonly`).
    pub enabled: bool,
    pending: SharedPending,
    seq: u64,
    open: Option<Open>,
    /// Effects recorded by commands whose arguments do not determine them
    /// (`SPOP`, blocking pops): logged in place of the command.
    pub effects: Vec<(usize, Vec<Bytes>)>,
}

#[derive(Debug)]
struct Open {
    payload: Vec<u8>,
    ncmds: u32,
}

impl OpLog {
    /// Number of records appended since start; a client whose last command
    /// produced record `n` must see `n` written (or synced) before its reply.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The buffer the log writer takes records from.
    pub fn pending(&self) -> SharedPending {
        self.pending.clone()
    }

    /// Opens a record that all commands up to [`OpLog::end_tx`] join.
    pub fn begin_tx(&mut self, now: u64) {
        if self.open.is_none() {
            self.open = Some(Open::new(now));
        }
    }

    /// Closes the transaction record (dropping it if it holds nothing).
    pub fn end_tx(&mut self) {
        if let Some(o) = self.open.take()
            && o.ncmds > 0
        {
            self.seal(o);
        }
    }

    /// Appends one command, as its own record unless a transaction is open.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, now: u64, db: usize, args: &[A]) {
        match self.open.as_mut() {
            Some(o) => o.push(db, args),
            None => {
                // The hot path: encode in place, no per-record allocation.
                let mut p = self.pending.lock();
                let buf = &mut p.bytes;
                let start = buf.len();
                buf.extend_from_slice(&[0; HEADER]);
                buf.extend_from_slice(&now.to_le_bytes());
                buf.extend_from_slice(&1u32.to_le_bytes());
                push_cmd(buf, db, args);
                let payload = &buf[start + HEADER..];
                let len = (payload.len() as u32).to_le_bytes();
                let sum = xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes();
                buf[start..start + 4].copy_from_slice(&len);
                buf[start + 4..start + HEADER].copy_from_slice(&sum);
                self.seq += 1;
                p.seq = self.seq;
            }
        }
    }

    fn seal(&mut self, mut o: Open) {
        o.payload[8..12].copy_from_slice(&o.ncmds.to_le_bytes());
        let mut p = self.pending.lock();
        frame_into(&mut p.bytes, &o.payload);
        self.seq += 1;
        p.seq = self.seq;
    }

    /// Takes the pending bytes and the sequence number they end at.
    pub fn take(&mut self, spare: Vec<u8>) -> (Vec<u8>, u64) {
        take(&self.pending, spare)
    }
}

/// Takes the pending bytes and the sequence number they end at.
pub fn take(pending: &SharedPending, spare: Vec<u8>) -> (Vec<u8>, u64) {
    let mut p = pending.lock();
    (std::mem::replace(&mut p.bytes, spare), p.seq)
}

impl Open {
    fn new(now: u64) -> Open {
        let mut payload = Vec::with_capacity(64);
        payload.extend_from_slice(&now.to_le_bytes());
        payload.extend_from_slice(&0u32.to_le_bytes());
        Open { payload, ncmds: 0 }
    }

    fn push<A: AsRef<[u8]>>(&mut self, db: usize, args: &[A]) {
        push_cmd(&mut self.payload, db, args);
        self.ncmds += 1;
    }
}

fn push_cmd<A: AsRef<[u8]>>(p: &mut Vec<u8>, db: usize, args: &[A]) {
    p.extend_from_slice(&(db as u32).to_le_bytes());
    p.extend_from_slice(&(args.len() as u32).to_le_bytes());
    for a in args {
        let a = a.as_ref();
        p.extend_from_slice(&(a.len() as u32).to_le_bytes());
        p.extend_from_slice(a);
    }
}

/// Appends `payload` with its header to `out`.
pub fn frame_into(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Unix ms at which the commands ran.
    pub time: u64,
    /// (database, arguments) per command.
    pub cmds: Vec<(usize, Vec<Bytes>)>,
}

/// What is wrong at some offset of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The file ends inside a record, or with zeros (also inside a last
    /// record, from a sector boundary on): what a crash in the middle of a
    /// write leaves.
    TruncatedTail,
    /// A record that is complete but wrong, with more data after it.
    Corrupt(String),
}

/// Decodes the record at `off`: `Ok(None)` at the end of the data.
pub fn read_record(data: &[u8], off: usize) -> Result<Option<(Record, usize)>, Damage> {
    let rest = &data[off..];
    if rest.is_empty() {
        return Ok(None);
    }
    // Filesystems may leave a zero-filled extent after a crash.
    if rest.iter().all(|b| *b == 0) {
        return Err(Damage::TruncatedTail);
    }
    if rest.len() < HEADER {
        return Err(Damage::TruncatedTail);
    }
    let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
    let sum = u64::from_le_bytes(rest[4..12].try_into().unwrap_or_default());
    if len < MIN_PAYLOAD {
        return Err(Damage::Corrupt(format!("record length {len} is too small")));
    }
    let Some(payload) = rest.get(HEADER..HEADER + len) else {
        return Err(torn_or_damaged(data, off));
    };
    if xxhash_rust::xxh3::xxh3_64(payload) != sum {
        // Only the very last record may be half-written, and only the way a
        // power cut leaves one: its first sectors on disk, the rest still
        // zeros. A last record that is wrong otherwise (a flipped bit) may
        // have been acknowledged after an fsync: refusing to start says so,
        // where cutting it would drop it without a word.
        return Err(
            if HEADER + len == rest.len() && zeros_from_a_sector(data, off + 1) {
                Damage::TruncatedTail
            } else {
                Damage::Corrupt("record checksum mismatch".into())
            },
        );
    }
    let rec = decode_payload(payload)
        .ok_or_else(|| Damage::Corrupt("record payload is malformed (checksum matched)".into()))?;
    Ok(Some((rec, off + HEADER + len)))
}

/// Whether `data` ends in zeros that start at or before a 512-byte sector
/// boundary at or after `from` (inside the last record, its header
/// included): the part of a write that never reached the disk reads back
/// as zeros, sector by sector.
fn zeros_from_a_sector(data: &[u8], from: usize) -> bool {
    let zeros = data.iter().rev().take_while(|b| **b == 0).count();
    let start = data.len() - zeros;
    let sector = start.next_multiple_of(512).max(from.next_multiple_of(512));
    zeros > 0 && sector < data.len()
}

/// A record at `off` that runs past the end of the data is what a crash
/// in the middle of a write leaves, unless a complete record follows it:
/// then its length field is damaged, and cutting the log there would throw
/// away acknowledged records.
fn torn_or_damaged(data: &[u8], off: usize) -> Damage {
    match next_valid_record(data, off + 1) {
        Some(at) => Damage::Corrupt(format!(
            "damaged record header (its length runs past the end of the file, yet a complete record follows at offset {at})"
        )),
        None => Damage::TruncatedTail,
    }
}

/// The first offset at or after `from` where the rest of the data is a
/// chain of complete, checksummed records running to the end, if any.
/// Used only on damage, to tell a torn tail from a damaged header and to
/// resynchronise `--repair`.
///
/// A single valid-looking record is not enough: a value a client stored
/// can contain one (the checksum is not keyed), and resuming there would
/// replay it as a command. A chain that ends exactly at the end of the
/// file is what real records after the damage look like.
pub fn next_valid_record(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + HEADER + MIN_PAYLOAD <= data.len() {
        if record_at(data, at).is_some() && chain_to_end(data, at) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// The end of a complete record at `at`, checked cheaply first: the
/// payload's own structure must account for every byte before the
/// checksum is computed, so scanning damaged bytes costs little per offset.
fn record_at(data: &[u8], at: usize) -> Option<usize> {
    let len = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize;
    if len < MIN_PAYLOAD {
        return None;
    }
    let payload = data.get(at + HEADER..at + HEADER + len)?;
    if !well_formed(payload) {
        return None;
    }
    let sum = u64::from_le_bytes(data[at + 4..at + 12].try_into().ok()?);
    (xxhash_rust::xxh3::xxh3_64(payload) == sum).then_some(at + HEADER + len)
}

fn chain_to_end(data: &[u8], mut at: usize) -> bool {
    while at < data.len() {
        match record_at(data, at) {
            Some(next) => at = next,
            None => return false,
        }
    }
    true
}

/// Whether `p` is shaped like a payload (counts and lengths add up), without
/// copying anything.
fn well_formed(p: &[u8]) -> bool {
    let u32_at =
        |i: usize| -> Option<u32> { Some(u32::from_le_bytes(p.get(i..i + 4)?.try_into().ok()?)) };
    let Some(n) = u32_at(8) else { return false };
    let mut i = 12usize;
    for _ in 0..n {
        let (Some(_db), Some(argc)) = (u32_at(i), u32_at(i + 4)) else {
            return false;
        };
        if argc == 0 {
            return false;
        }
        i += 8;
        for _ in 0..argc {
            let Some(len) = u32_at(i) else { return false };
            i = match i.checked_add(4 + len as usize) {
                Some(j) if j <= p.len() => j,
                _ => return false,
            };
        }
    }
    i == p.len()
}

fn decode_payload(p: &[u8]) -> Option<Record> {
    let mut r = Reader { p, at: 0 };
    let time = r.u64()?;
    let n = r.u32()?;
    let mut cmds = Vec::with_capacity(n.min(1024) as usize);
    for _ in 0..n {
        let db = r.u32()? as usize;
        let argc = r.u32()?;
        if argc == 0 {
            return None;
        }
        let mut args = Vec::with_capacity(argc.min(1024) as usize);
        for _ in 0..argc {
            let len = r.u32()? as usize;
            args.push(Bytes::copy_from_slice(r.take(len)?));
        }
        cmds.push((db, args));
    }
    (r.at == p.len()).then_some(Record { time, cmds })
}

struct Reader<'a> {
    p: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.p.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_two() -> Vec<u8> {
        let mut l = OpLog::default();
        l.cmd(5, 0, &["SET", "a", "1"]);
        l.begin_tx(6);
        l.cmd(6, 1, &["INCR", "b"]);
        l.cmd(6, 2, &["DEL", "c"]);
        l.end_tx();
        assert_eq!(l.seq(), 2);
        l.take(Vec::new()).0
    }

    #[test]
    fn roundtrip() {
        let data = log_two();
        let (r1, off) = read_record(&data, 0).unwrap().unwrap();
        assert_eq!(r1.time, 5);
        assert_eq!(r1.cmds.len(), 1);
        let (r2, off) = read_record(&data, off).unwrap().unwrap();
        assert_eq!(r2.cmds.len(), 2);
        assert_eq!(r2.cmds[1].0, 2);
        assert_eq!(read_record(&data, off).unwrap(), None);
    }

    #[test]
    fn a_record_hidden_in_a_torn_value_is_not_a_resync_point() {
        // A client stores a value that is itself a valid FLUSHALL record;
        // the write of that SET is torn after it. Resuming at the embedded
        // frame would replay FLUSHALL: the tail must be judged torn.
        let mut fake = OpLog::default();
        fake.cmd(9, 0, &["FLUSHALL"]);
        let frame = fake.take(Vec::new()).0;
        let mut value = frame.clone();
        value.extend_from_slice(b"and more of the value");
        let mut l = OpLog::default();
        l.cmd(5, 0, &["SET", "a", "1"]);
        l.cmd(6, 0, &[b"SET".as_slice(), b"b", &value]);
        let data = l.take(Vec::new()).0;
        let (_, second) = read_record(&data, 0).unwrap().unwrap();
        let hidden = second
            + data[second..]
                .windows(frame.len())
                .position(|w| w == frame)
                .unwrap();
        assert!(
            record_at(&data, hidden).is_some(),
            "the hidden frame is a valid record"
        );
        let cut = data.len() - 5;
        assert_eq!(
            read_record(&data[..cut], second).unwrap_err(),
            Damage::TruncatedTail
        );
        assert_eq!(next_valid_record(&data[..cut], second + 1), None);
        // Real records after a damaged header do form a chain to the end.
        let mut damaged = log_two();
        damaged[3] ^= 0xff;
        assert!(matches!(read_record(&damaged, 0), Err(Damage::Corrupt(_))));
    }

    #[test]
    fn a_bad_last_record_is_torn_only_if_it_ends_in_unwritten_sectors() {
        // A last record of 2000 bytes whose later sectors never reached
        // the disk (zeros from a 512-byte boundary on): a torn write.
        let mut l = OpLog::default();
        l.cmd(5, 0, &["SET", "a", "1"]);
        let big = vec![b'v'; 2000];
        l.cmd(6, 0, &[b"SET".as_slice(), b"b", &big]);
        let data = l.take(Vec::new()).0;
        let (_, second) = read_record(&data, 0).unwrap().unwrap();
        let mut torn = data.clone();
        for b in &mut torn[1024..] {
            *b = 0;
        }
        assert_eq!(
            read_record(&torn, second).unwrap_err(),
            Damage::TruncatedTail
        );
        // The same record with one flipped byte and nothing unwritten may
        // have been acknowledged after an fsync: corruption, not a tail.
        let mut flipped = data.clone();
        flipped[second + 40] ^= 0x01;
        assert!(matches!(
            read_record(&flipped, second),
            Err(Damage::Corrupt(_))
        ));
        // A small last record whose header straddles a sector boundary,
        // torn right at it: zeros from inside the header on.
        let mut l = OpLog::default();
        l.cmd(5, 0, &[b"SET".as_slice(), b"pad", &vec![b'p'; 460]]);
        l.cmd(6, 0, &["SET", "c", "1"]);
        let data = l.take(Vec::new()).0;
        let (_, last) = read_record(&data, 0).unwrap().unwrap();
        assert!(last < 512 && last + HEADER > 512, "header at {last}");
        let mut torn = data.clone();
        for b in &mut torn[512..] {
            *b = 0;
        }
        assert_eq!(read_record(&torn, last).unwrap_err(), Damage::TruncatedTail);
        // Zeros that do not start on a sector boundary inside the record
        // are a value's own bytes, not a torn write.
        let mut l = OpLog::default();
        l.cmd(6, 0, &[b"SET".as_slice(), b"z", &[0u8; 8]]);
        let mut small = l.take(Vec::new()).0;
        small[20] ^= 0x01;
        assert!(matches!(read_record(&small, 0), Err(Damage::Corrupt(_))));
    }

    #[test]
    fn random_bytes_are_scanned_cheaply() {
        // A torn tail of high-entropy bytes (a compressed value): each
        // offset is rejected by the payload's structure before hashing.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let start = std::time::Instant::now();
        assert_eq!(next_valid_record(&noise, 0), None);
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn every_truncation_is_a_tail() {
        let data = log_two();
        let (_, first) = read_record(&data, 0).unwrap().unwrap();
        for cut in first + 1..data.len() {
            assert_eq!(
                read_record(&data[..cut], first).unwrap_err(),
                Damage::TruncatedTail
            );
        }
    }

    #[test]
    fn flipped_byte_in_the_middle_is_corruption() {
        let mut data = log_two();
        data[HEADER + 3] ^= 1;
        assert!(matches!(read_record(&data, 0), Err(Damage::Corrupt(_))));
        let mut zeros = log_two();
        zeros.extend_from_slice(&[0; 100]);
        let (_, a) = read_record(&zeros, 0).unwrap().unwrap();
        let (_, b) = read_record(&zeros, a).unwrap().unwrap();
        assert_eq!(read_record(&zeros, b).unwrap_err(), Damage::TruncatedTail);
    }
}
