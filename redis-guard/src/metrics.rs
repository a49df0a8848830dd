//! Firewall counters: summing the per-CPU verdict counters and presenting
//! them to `redis-guard stats`, either from the daemon's own maps or from
//! the maps it pinned on bpffs.

use std::{borrow::Borrow, path::Path};

use anyhow::Context as _;
use aya::maps::{Map, MapData, MapError, PerCpuArray};
use redis_guard_common::{COUNTER_COUNT, Counter, maps};

/// A snapshot of every verdict counter, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    values: [u64; COUNTER_COUNT as usize],
}

impl Counters {
    /// Reads and sums a loaded `COUNTERS` map.
    pub fn read<T: Borrow<MapData>>(map: &PerCpuArray<T, u64>) -> Result<Counters, MapError> {
        let mut out = Counters::default();
        for counter in Counter::ALL {
            let per_cpu = map.get(&(counter as u32), 0)?;
            out.values[counter as usize] = per_cpu.iter().sum();
        }
        Ok(out)
    }

    /// Reads the counters a running daemon pinned under `dir`.
    pub fn from_pin(dir: &Path) -> anyhow::Result<Counters> {
        let path = dir.join(maps::COUNTERS);
        let data = MapData::from_pin(&path).with_context(|| {
            format!(
                "cannot open {}: is `redis-guard run` running with this pin_path? (reading pins \
                 needs root; a daemon started under `ip netns exec` pins inside that command's \
                 private /sys, out of reach: start it with `nsenter --net=/run/netns/NAME` instead)",
                path.display()
            )
        })?;
        let map = Map::from_map_data(data)?;
        let array: PerCpuArray<_, u64> = PerCpuArray::try_from(map)?;
        Ok(Counters::read(&array)?)
    }

    /// One counter's value.
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
    }

    /// Packets refused by any rule (dropped in enforce mode).
    pub fn refused(&self) -> u64 {
        [
            Counter::DroppedNotAllowed,
            Counter::DroppedDenied,
            Counter::DroppedHttp,
            Counter::DroppedNotResp,
            Counter::Malformed,
        ]
        .iter()
        .map(|c| self.get(*c))
        .sum()
    }

    /// Counters as a JSON object keyed by counter name.
    pub fn to_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        for counter in Counter::ALL {
            obj.insert(counter.name().into(), self.get(counter).into());
        }
        serde_json::Value::Object(obj)
    }

    /// Human-readable table, one counter per line.
    pub fn render(&self) -> String {
        let width = Counter::ALL
            .iter()
            .map(|c| c.name().len())
            .max()
            .unwrap_or(0);
        Counter::ALL
            .iter()
            .map(|c| format!("{:<width$}  {}\n", c.name(), self.get(*c)))
            .collect()
    }

    /// Per-counter difference `self - earlier` (saturating).
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut out = Counters::default();
        for (i, v) in out.values.iter_mut().enumerate() {
            *v = self.values[i].saturating_sub(earlier.values[i]);
        }
        out
    }
}
