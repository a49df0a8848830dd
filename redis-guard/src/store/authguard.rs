//! Per-source counting of failed authentications and the bans they lead to.
//!
//! Constant-time comparison and the per-reply delay slow down guessing over
//! one connection; this is what stops an attacker who simply opens many
//! connections. Sources are client IP addresses: ports are free to change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use tokio::sync::broadcast;

/// Sources tracked at once. Beyond it, expired entries are forgotten first,
/// then counters of sources that are not banned; bans are the last thing to
/// go, since forgetting one lets an attacker straight back in.
pub const MAX_TRACKED_SOURCES: usize = 100_000;

/// Ban notices kept for a subscriber that has not read them yet; a slower
/// subscriber loses the oldest ones (and learns so from `RecvError::Lagged`).
const BAN_CHANNEL: usize = 1024;

/// A source address was banned after too many failed authentications.
///
/// The firewall will later turn these into kernel (XDP) drops, so that a
/// banned source stops costing the store anything at all; until then the
/// store itself refuses the source's new connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanEvent {
    /// The banned client address.
    pub addr: IpAddr,
    /// When the ban ends.
    pub until: SystemTime,
    /// Failures counted in the window that led to the ban.
    pub failures: u32,
}

/// What a failed authentication led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; the source may go on.
    Counted,
    /// This failure reached the limit: the source is banned from now on.
    BannedNow(BanEvent),
    /// The source was banned already (a connection opened before the ban).
    AlreadyBanned,
}

/// Distinct wrong credentials remembered per source, so that a client
/// retrying the same wrong password (redis-py retries a failed connect up
/// to ten times) counts once: repeating a guess teaches an attacker
/// nothing, and one typo must not ban a whole host.
const RECENT_CREDENTIALS: usize = 4;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
    /// Keyed hashes of the last distinct failed (user, password) pairs.
    recent: [u64; RECENT_CREDENTIALS],
}

impl Entry {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|t| now < t)
    }

    /// Nothing about the source is worth remembering any more.
    fn expired(&self, now: Instant, window: Duration) -> bool {
        !self.banned(now) && now.duration_since(self.window_start) >= window
    }
}

/// Failure counters and bans for all sources, shared by every connection.
#[derive(Debug)]
pub struct AuthGuard {
    max_failures: u32,
    window: Duration,
    ban: Duration,
    capacity: usize,
    sources: Mutex<HashMap<IpAddr, Entry>>,
    bans: broadcast::Sender<BanEvent>,
    /// Per-process random key for the credential hashes, so nothing
    /// password-derived in memory can be checked against a guess offline.
    hasher: std::collections::hash_map::RandomState,
}

impl AuthGuard {
    /// A guard banning a source for `ban` after `max_failures` failures within `window`.
    pub fn new(max_failures: u32, window: Duration, ban: Duration) -> AuthGuard {
        AuthGuard::with_capacity(max_failures, window, ban, MAX_TRACKED_SOURCES)
    }

    fn with_capacity(
        max_failures: u32,
        window: Duration,
        ban: Duration,
        capacity: usize,
    ) -> AuthGuard {
        let (bans, _) = broadcast::channel(BAN_CHANNEL);
        AuthGuard {
            max_failures: max_failures.max(1),
            window,
            ban,
            capacity: capacity.max(1),
            sources: Mutex::new(HashMap::new()),
            bans,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// A receiver of every ban from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BanEvent> {
        self.bans.subscribe()
    }

    /// Whether new connections from `addr` must be refused.
    pub fn is_banned(&self, addr: IpAddr) -> bool {
        let sources = self.sources.lock();
        // Checked on every accept: stay cheap while nobody misbehaves.
        if sources.is_empty() {
            return false;
        }
        sources.get(&addr).is_some_and(|e| e.banned(Instant::now()))
    }

    /// Counts one failed authentication from `addr`.
    ///
    /// Successes deliberately do not reset the count: otherwise an attacker
    /// holding one weak account's password could interleave successful logins
    /// to keep guessing another account's password forever.
    ///
    /// `user` and `password` are what the client sent: a failure that
    /// repeats one of the source's last few wrong credentials is not
    /// counted again.
    pub fn record_failure(&self, addr: IpAddr, user: &[u8], password: &[u8]) -> Verdict {
        use std::hash::BuildHasher;
        let credential = self.hasher.hash_one((user, password)) | 1;
        self.record_failure_at(addr, credential, Instant::now())
    }

    fn record_failure_at(&self, addr: IpAddr, credential: u64, now: Instant) -> Verdict {
        let mut sources = self.sources.lock();
        if !sources.contains_key(&addr) && sources.len() >= self.capacity {
            self.make_room(&mut sources, now);
            if sources.len() >= self.capacity {
                // Every slot holds a live ban: the attack is spread over more
                // addresses than memory is budgeted for. This source goes
                // uncounted; the failure delay still applies to it.
                return Verdict::Counted;
            }
        }
        let fresh = Entry {
            window_start: now,
            failures: 0,
            banned_until: None,
            recent: [0; RECENT_CREDENTIALS],
        };
        let e = sources.entry(addr).or_insert(fresh);
        if e.banned(now) {
            return Verdict::AlreadyBanned;
        }
        if now.duration_since(e.window_start) >= self.window || e.banned_until.is_some() {
            // A new window, also right after a ban ended: the source gets a
            // fresh allowance rather than being banned again on its next typo.
            *e = fresh;
        }
        if e.recent.contains(&credential) {
            return Verdict::Counted;
        }
        e.recent.rotate_right(1);
        e.recent[0] = credential;
        e.failures = e.failures.saturating_add(1);
        if e.failures < self.max_failures {
            return Verdict::Counted;
        }
        // Fallback only matters for absurd durations, which validation refuses.
        let until = now.checked_add(self.ban).unwrap_or(now);
        e.banned_until = Some(until);
        let ev = BanEvent {
            addr,
            until: SystemTime::now()
                .checked_add(self.ban)
                .unwrap_or_else(SystemTime::now),
            failures: e.failures,
        };
        // No subscriber is fine: the store enforces the ban on its own.
        let _ = self.bans.send(ev.clone());
        Verdict::BannedNow(ev)
    }

    fn make_room(&self, sources: &mut HashMap<IpAddr, Entry>, now: Instant) {
        let window = self.window;
        sources.retain(|_, e| !e.expired(now, window));
        if sources.len() >= self.capacity {
            sources.retain(|_, e| e.banned(now));
        }
    }

    /// Number of sources currently tracked.
    pub fn tracked(&self) -> usize {
        self.sources.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A credential hash never used before: every call is a new guess.
    fn distinct() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        NEXT.fetch_add(2, std::sync::atomic::Ordering::Relaxed)
    }

    #[test]
    fn retrying_the_same_wrong_password_counts_once() {
        let g = AuthGuard::new(4, Duration::from_secs(60), Duration::from_secs(10));
        let a = ip("10.0.0.1");
        for _ in 0..20 {
            assert_eq!(g.record_failure(a, b"default", b"typo"), Verdict::Counted);
        }
        assert!(!g.is_banned(a), "one wrong password retried is one failure");
        assert_eq!(g.record_failure(a, b"default", b"guess2"), Verdict::Counted);
        assert_eq!(g.record_failure(a, b"other", b"typo"), Verdict::Counted);
        assert!(matches!(
            g.record_failure(a, b"default", b"guess3"),
            Verdict::BannedNow(_)
        ));
    }

    #[test]
    fn bans_after_max_failures_within_the_window() {
        let g = AuthGuard::new(3, Duration::from_secs(60), Duration::from_secs(10));
        let mut rx = g.subscribe();
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert_eq!(g.record_failure_at(a, distinct(), t0), Verdict::Counted);
        assert_eq!(g.record_failure_at(a, distinct(), t0), Verdict::Counted);
        assert!(!g.is_banned(a));
        let Verdict::BannedNow(ev) = g.record_failure_at(a, distinct(), t0) else {
            panic!("third failure must ban");
        };
        assert_eq!((ev.addr, ev.failures), (a, 3));
        assert_eq!(rx.try_recv().unwrap(), ev);
        assert!(g.is_banned(a));
        assert!(!g.is_banned(ip("10.0.0.2")));
        assert_eq!(
            g.record_failure_at(a, distinct(), t0),
            Verdict::AlreadyBanned
        );
    }

    #[test]
    fn the_window_and_the_ban_expire() {
        let g = AuthGuard::new(2, Duration::from_secs(5), Duration::from_secs(10));
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        assert_eq!(g.record_failure_at(a, distinct(), t0), Verdict::Counted);
        let t1 = t0 + Duration::from_secs(6);
        assert_eq!(
            g.record_failure_at(a, distinct(), t1),
            Verdict::Counted,
            "new window"
        );
        assert!(matches!(
            g.record_failure_at(a, distinct(), t1),
            Verdict::BannedNow(_)
        ));
        let t2 = t1 + Duration::from_secs(11);
        assert_eq!(
            g.record_failure_at(a, distinct(), t2),
            Verdict::Counted,
            "fresh allowance after the ban"
        );
    }

    #[test]
    fn memory_is_bounded_and_bans_outlive_counters() {
        let g = AuthGuard::with_capacity(2, Duration::from_secs(60), Duration::from_secs(60), 4);
        let t0 = Instant::now();
        let banned = ip("10.0.0.100");
        g.record_failure_at(banned, distinct(), t0);
        assert!(matches!(
            g.record_failure_at(banned, distinct(), t0),
            Verdict::BannedNow(_)
        ));
        for i in 0..50u8 {
            g.record_failure_at(IpAddr::from([10, 1, 0, i]), distinct(), t0);
            assert!(g.tracked() <= 4);
        }
        assert!(g.is_banned(banned));
    }
}
