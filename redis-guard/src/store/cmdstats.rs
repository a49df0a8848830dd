//! `INFO commandstats`: calls, time, failures and refusals per command.
//!
//! Counting must not cost the hot path a shared cache line: a counter that
//! every connection bumps would bounce between cores on each command. So
//! every thread counts into its own block of counters, and `INFO` adds the
//! blocks up. Subcommands of container commands (`CLIENT LIST`,
//! `CONFIG GET`, ...) are rare admin traffic and go to one shared map.
//!
//! Time: a command the slow log times anyway adds its exact duration. The
//! others (Redis's `fast` commands, which cannot run long by design) are
//! timed on one call in 16, picked at random, and that duration counts for
//! 16: two clock readings per command were 4-5% of the store's CPU at
//! `redis-benchmark -P 16`. The pick is random because every 16th call
//! lines up with pipelines of 16, whose first command also waits for the
//! keyspace lock; that read GET at four times its real cost.

use std::cell::{Cell as StdCell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Untimed calls per timed one, for commands the slow log does not time.
pub const SAMPLE_EVERY: u64 = 16;

/// One command's totals.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Executions (queued commands count when `EXEC` runs them).
    pub calls: u64,
    /// Time spent executing, in nanoseconds (partly estimated; see the module docs).
    pub nanos: u64,
    /// Executions that replied with an error.
    pub failed: u64,
    /// Refusals before execution: arity, authentication, ACL, OOM, `LOADING`, ...
    pub rejected: u64,
}

#[derive(Default)]
struct Cell {
    calls: AtomicU64,
    nanos: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
}

/// One thread's counters, one cell per command table entry.
struct Block {
    cells: Box<[Cell]>,
}

impl Block {
    fn new(n: usize) -> Block {
        Block {
            cells: (0..n).map(|_| Cell::default()).collect(),
        }
    }
}

thread_local! {
    /// This thread's blocks, one per store in the process (tests run several).
    static LOCAL: RefCell<Vec<(u64, Arc<Block>)>> = const { RefCell::new(Vec::new()) };
    /// xorshift64 state for picking the timed calls; seeded per thread.
    static PICK: StdCell<u64> = StdCell::new(rand::random::<u64>() | 1);
}

/// True for one call in [`SAMPLE_EVERY`], at random.
fn pick() -> bool {
    PICK.with(|p| {
        let mut x = p.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.set(x);
        x % SAMPLE_EVERY == 0
    })
}

/// Adds to a counter that only one thread writes (its own block): a plain
/// load and store instead of a locked read-modify-write, which cost a few
/// nanoseconds on every command. Readers (`INFO`) still see whole values.
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Per-command statistics of one store.
pub struct CommandStats {
    id: u64,
    commands: usize,
    blocks: Mutex<Vec<Arc<Block>>>,
    subcommands: Mutex<BTreeMap<String, Totals>>,
}

/// How a command ended, for [`CommandStats::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and replied with anything but an error.
    Ok,
    /// It ran and replied with an error.
    Failed,
}

impl CommandStats {
    /// Statistics for a command table of `commands` entries.
    pub fn new(commands: usize) -> CommandStats {
        CommandStats {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            commands,
            blocks: Mutex::new(Vec::new()),
            subcommands: Mutex::new(BTreeMap::new()),
        }
    }

    fn with_block<R>(&self, f: impl FnOnce(&Block) -> R) -> R {
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            if let Some((_, b)) = local.iter().find(|(id, _)| *id == self.id) {
                return f(b);
            }
            // Blocks of stores that are gone are held only here.
            local.retain(|(_, b)| Arc::strong_count(b) > 1);
            let b = Arc::new(Block::new(self.commands));
            self.blocks.lock().push(b.clone());
            local.push((self.id, b.clone()));
            f(&b)
        })
    }

    /// Counts one execution of command `idx` and returns whether this call
    /// should be timed as a sample (one in [`SAMPLE_EVERY`], at random).
    pub fn begin(&self, idx: usize) -> bool {
        self.with_block(|b| {
            if let Some(c) = b.cells.get(idx) {
                bump(&c.calls, 1);
            }
        });
        pick()
    }

    /// Adds a call's duration (already scaled for sampling) and outcome.
    pub fn record(&self, idx: usize, nanos: u64, outcome: Outcome) {
        if nanos == 0 && outcome == Outcome::Ok {
            return;
        }
        self.with_block(|b| {
            if let Some(c) = b.cells.get(idx) {
                bump(&c.nanos, nanos);
                if outcome == Outcome::Failed {
                    bump(&c.failed, 1);
                }
            }
        });
    }

    /// Counts a refusal of command `idx` before it ran.
    pub fn rejected(&self, idx: usize) {
        self.with_block(|b| {
            if let Some(c) = b.cells.get(idx) {
                bump(&c.rejected, 1);
            }
        });
    }

    /// Counts one run of a container's subcommand (`name` like `client|list`).
    pub fn subcommand(&self, name: &str, nanos: u64, outcome: Outcome) {
        let mut subs = self.subcommands.lock();
        let t = subs.entry(name.to_string()).or_default();
        t.calls += 1;
        t.nanos += nanos;
        if outcome == Outcome::Failed {
            t.failed += 1;
        }
    }

    /// Counts a refusal of a container's subcommand before it ran.
    pub fn subcommand_rejected(&self, name: &str) {
        let mut subs = self.subcommands.lock();
        subs.entry(name.to_string()).or_default().rejected += 1;
    }

    /// The totals of command `idx` over all threads.
    pub fn totals(&self, idx: usize) -> Totals {
        let mut t = Totals::default();
        for b in self.blocks.lock().iter() {
            if let Some(c) = b.cells.get(idx) {
                t.calls += c.calls.load(Ordering::Relaxed);
                t.nanos += c.nanos.load(Ordering::Relaxed);
                t.failed += c.failed.load(Ordering::Relaxed);
                t.rejected += c.rejected.load(Ordering::Relaxed);
            }
        }
        t
    }

    /// Subcommand totals by `container|sub` name.
    pub fn subcommand_totals(&self) -> BTreeMap<String, Totals> {
        self.subcommands.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_add_up_and_about_one_call_in_sixteen_is_timed() {
        let s = Arc::new(CommandStats::new(4));
        let sampled = (0..16_000).filter(|_| s.begin(2)).count();
        assert!((800..1200).contains(&sampled), "{sampled} of 16000 timed");
        let s2 = s.clone();
        std::thread::spawn(move || {
            for _ in 0..10 {
                s2.begin(2);
                s2.record(2, 5, Outcome::Failed);
            }
            s2.rejected(2);
        })
        .join()
        .unwrap();
        let t = s.totals(2);
        assert_eq!(t.calls, 16_010);
        assert_eq!(t.failed, 10);
        assert_eq!(t.rejected, 1);
        assert_eq!(t.nanos, 50);
        assert_eq!(s.totals(1), Totals::default());
    }
}
