//! Loading the XDP program, attaching it, and keeping its maps in step with
//! the policy.
//!
//! Kernel-dependent choices (native versus generic attach, whether bpffs is
//! mounted) are made once, here, at load time, and each fallback is logged.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::CString,
    io,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError,
    maps::{
        Array, HashMap, MapData, MapError, PerCpuArray, RingBuf,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{ProgramError, Xdp, XdpMode as AyaXdpMode, xdp::XdpLinkId},
};
use ipnet::IpNet;
use redis_guard_common::{
    BLOCK_ALLOW_ALL, BLOCK_ALLOW_SOME, BLOCK_DENY_ALL, BLOCK_DENY_SOME, COUNTER_COUNT,
    FLAG_DENY_V6, FLAG_HTTP_GUARD, FLAG_RESP_ONLY, FilterConfig, FlowKey, FlowState, MODE_AUDIT,
    MODE_ENFORCE, MarkedFlow, PROGRAM_NAME, V4_BLOCKS_PER_WORD, maps,
};
use tracing::{error, info, warn};

use crate::{
    metrics::Counters,
    policy::{FirewallPolicy, Mode, XdpMode},
};

/// The compiled XDP object, built by `build.rs` through aya-build.
static XDP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/redis-guard-xdp"));

/// Why the firewall could not be brought up or updated.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// The process lacks the privileges to load BPF programs or attach XDP.
    #[error(
        "missing privileges: loading XDP needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON): {0}"
    )]
    NotPrivileged(String),
    /// The kernel verifier refused the program.
    #[error("the kernel refused the XDP program: {error}\nverifier log:\n{log}")]
    Refused {
        /// The error returned by BPF_PROG_LOAD (shown in the message, so
        /// not chained as a source).
        error: io::Error,
        /// The verifier's log.
        log: String,
    },
    /// The object file could not be parsed or its maps created.
    #[error("cannot load the XDP object")]
    Object(#[source] EbpfError),
    /// The object has no XDP program of the expected name (a build mix-up).
    #[error("the XDP object has no program named `{0}`")]
    MissingProgram(&'static str),
    /// A configured interface does not exist.
    #[error("interface `{0}` does not exist")]
    UnknownInterface(String),
    /// Attaching to an interface failed in every allowed mode.
    #[error("cannot attach XDP to `{interface}` ({mode}){}", attach_hint(source))]
    Attach {
        /// The interface.
        interface: String,
        /// The mode(s) tried.
        mode: &'static str,
        /// The last error.
        #[source]
        source: ProgramError,
    },
    /// A map the program should define is missing or has the wrong type.
    #[error("map {name}")]
    Map {
        /// The map's name.
        name: &'static str,
        /// What went wrong.
        #[source]
        source: MapError,
    },
    /// bpffs could not be mounted or maps could not be pinned.
    #[error("pinning maps under {path}: {reason}")]
    Pin {
        /// The pin directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The mode an interface actually got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    /// Driver (native) XDP.
    Native,
    /// Generic (skb) XDP.
    Generic,
}

impl AttachedMode {
    /// Name used in logs and events.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        }
    }
}

/// One step of [`Firewall::attach_listed`], kept so it can be undone.
#[derive(Debug)]
pub enum AttachChange {
    /// The interface had no program and got one.
    Added(String),
    /// The interface's program was re-attached; it had this mode before.
    Switched(String, AttachedMode),
}

struct Attachment {
    interface: String,
    link: XdpLinkId,
    mode: AttachedMode,
}

/// A loaded program with its maps, attached to zero or more interfaces.
/// Dropping it detaches every interface and removes the pins.
pub struct Firewall {
    ebpf: Ebpf,
    attachments: Vec<Attachment>,
    pin_dir: Option<PathBuf>,
    /// The pin directory, opened and `flock`ed while this daemon owns it.
    pin_lock: Option<std::fs::File>,
    applied: Option<FirewallPolicy>,
    /// `FilterConfig::generation` last written: moved on every policy
    /// change, so flows judged under an older policy are judged again.
    generation: u32,
    /// Non-zero words of `V4_BLOCKS` as last written, to update only diffs.
    v4_blocks: BTreeMap<u32, u64>,
    /// Ports set in `PORTS`, kept write by write like `v4_blocks`.
    ports: BTreeSet<u16>,
}

impl Firewall {
    /// Loads the program into the kernel and fills its maps from `policy`.
    /// Nothing is attached yet.
    pub fn load(policy: &FirewallPolicy) -> Result<Firewall, FirewallError> {
        raise_memlock_limit();
        let mut ebpf = Ebpf::load(XDP_OBJECT).map_err(|e| match e {
            EbpfError::MapError(MapError::CreateError { ref io_error, .. })
                if is_permission(io_error) =>
            {
                FirewallError::NotPrivileged(e.to_string())
            }
            EbpfError::MapError(MapError::SyscallError(ref s)) if is_permission(&s.io_error) => {
                FirewallError::NotPrivileged(e.to_string())
            }
            other => FirewallError::Object(other),
        })?;
        let program = xdp_program(&mut ebpf)?;
        program.load().map_err(|e| match e {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                // EACCES here is the verifier's "invalid program"; EPERM
                // means missing capabilities. Without CAP_PERFMON the
                // verifier refuses the packet pointer arithmetic with EACCES
                // too: that is a privilege problem, not a bad program.
                if io_error.raw_os_error() == Some(libc::EPERM) {
                    FirewallError::NotPrivileged(io_error.to_string())
                } else if !has_capability(CAP_PERFMON) && !has_capability(CAP_SYS_ADMIN) {
                    FirewallError::NotPrivileged(format!(
                        "{io_error}: the verifier needs CAP_PERFMON (or CAP_SYS_ADMIN) for this \
                         program, and this process has neither"
                    ))
                } else {
                    FirewallError::Refused {
                        error: io_error,
                        log: verifier_log.to_string(),
                    }
                }
            }
            other => FirewallError::Object(EbpfError::ProgramError(other)),
        })?;
        let mut fw = Firewall {
            ebpf,
            attachments: Vec::new(),
            pin_dir: None,
            pin_lock: None,
            applied: None,
            generation: 0,
            v4_blocks: BTreeMap::new(),
            ports: BTreeSet::new(),
        };
        fw.apply(policy)?;
        Ok(fw)
    }

    /// Attaches to every interface in the policy, honouring `xdp_mode`.
    /// Each interface gets one log line naming the mode it got.
    /// If one fails, those attached before it are detached again.
    pub fn attach_all(&mut self, policy: &FirewallPolicy) -> Result<(), FirewallError> {
        self.attach_listed(policy).map(drop)
    }

    /// Attaches to one interface. With [`XdpMode::Auto`] native mode is tried
    /// first and generic mode is the logged fallback.
    pub fn attach(
        &mut self,
        interface: &str,
        mode: XdpMode,
    ) -> Result<AttachedMode, FirewallError> {
        let c_name = CString::new(interface)
            .map_err(|_| FirewallError::UnknownInterface(interface.to_string()))?;
        if unsafe { libc::if_nametoindex(c_name.as_ptr()) } == 0 {
            return Err(FirewallError::UnknownInterface(interface.to_string()));
        }
        let program = self.program()?;
        let attach_err = |mode: &'static str, source: ProgramError| {
            if let ProgramError::SyscallError(s) = &source
                && is_permission(&s.io_error)
            {
                return FirewallError::NotPrivileged(s.to_string());
            }
            FirewallError::Attach {
                interface: interface.to_string(),
                mode,
                source,
            }
        };
        let (link, got) = match mode {
            XdpMode::Native => (
                program
                    .attach(interface, AyaXdpMode::Driver)
                    .map_err(|e| attach_err("native", e))?,
                AttachedMode::Native,
            ),
            XdpMode::Generic => (
                program
                    .attach(interface, AyaXdpMode::Skb)
                    .map_err(|e| attach_err("generic", e))?,
                AttachedMode::Generic,
            ),
            XdpMode::Auto => match program.attach(interface, AyaXdpMode::Driver) {
                Ok(link) => (link, AttachedMode::Native),
                // Generic mode cannot help when the interface already has a
                // program: the kernel allows one, in whichever mode.
                Err(native_err)
                    if os_error(&native_err) == Some(libc::EEXIST)
                        || os_error(&native_err) == Some(libc::EBUSY) =>
                {
                    return Err(attach_err("native", native_err));
                }
                Err(native_err) => {
                    warn!(
                        interface,
                        error = %error_chain(&native_err),
                        "native XDP unavailable; falling back to generic mode"
                    );
                    (
                        program
                            .attach(interface, AyaXdpMode::Skb)
                            .map_err(|e| attach_err("native, then generic", e))?,
                        AttachedMode::Generic,
                    )
                }
            },
        };
        info!(interface, mode = got.as_str(), "XDP program attached");
        self.record_ifname(interface);
        self.attachments.push(Attachment {
            interface: interface.to_string(),
            link,
            mode: got,
        });
        Ok(got)
    }

    /// Remembers `interface`'s name by index in the pinned `IFNAMES` map, so
    /// `stats` run from another network namespace still names it.
    fn record_ifname(&mut self, interface: &str) {
        let c_name = CString::new(interface).unwrap_or_default();
        let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        let mut name = [0u8; 16];
        let len = interface.len().min(15);
        name[..len].copy_from_slice(&interface.as_bytes()[..len]);
        if let Ok(mut names) = map_mut::<HashMap<_, u32, [u8; 16]>>(&mut self.ebpf, maps::IFNAMES)
            && let Err(e) = names.insert(index, name, 0)
        {
            warn!(interface, error = %e, "could not record the interface name");
        }
    }

    /// Interfaces currently attached, with their modes.
    pub fn attached(&self) -> Vec<(String, AttachedMode)> {
        self.attachments
            .iter()
            .map(|a| (a.interface.clone(), a.mode))
            .collect()
    }

    /// Detaches from every interface (also done on drop).
    pub fn detach_all(&mut self) {
        let attachments = std::mem::take(&mut self.attachments);
        let Ok(program) = self.program() else { return };
        for a in attachments {
            match program.detach(a.link) {
                Ok(()) => info!(interface = %a.interface, "XDP program detached"),
                Err(e) => warn!(interface = %a.interface, error = %e, "detach failed"),
            }
        }
    }

    /// First half of bringing attachments in line with a new policy:
    /// attaches the listed interfaces that have no program yet, and
    /// re-attaches those whose mode no longer satisfies `xdp_mode`.
    ///
    /// All or nothing: on an error every interface is put back the way it
    /// was before the error returns. The returned changes let the caller
    /// undo them with [`Firewall::undo_attach`] if a later step fails.
    pub fn attach_listed(
        &mut self,
        policy: &FirewallPolicy,
    ) -> Result<Vec<AttachChange>, FirewallError> {
        // Kept where the mode still satisfies `xdp_mode` (auto accepts either).
        let fits = |m: AttachedMode| match policy.xdp_mode {
            XdpMode::Auto => true,
            XdpMode::Native => m == AttachedMode::Native,
            XdpMode::Generic => m == AttachedMode::Generic,
        };
        let mut changes = Vec::new();
        for name in &policy.interfaces {
            let current = self
                .attachments
                .iter()
                .find(|a| &a.interface == name)
                .map(|a| a.mode);
            let step = match current {
                Some(mode) if fits(mode) => continue,
                Some(mode) => {
                    self.detach_one(name);
                    changes.push(AttachChange::Switched(name.clone(), mode));
                    self.attach(name, policy.xdp_mode)
                }
                None => {
                    changes.push(AttachChange::Added(name.clone()));
                    self.attach(name, policy.xdp_mode)
                }
            };
            if let Err(e) = step {
                if let Some(AttachChange::Added(_)) = changes.last() {
                    changes.pop();
                }
                self.undo_attach(changes);
                return Err(e);
            }
        }
        Ok(changes)
    }

    /// Undoes what [`Firewall::attach_listed`] did, newest change first.
    pub fn undo_attach(&mut self, changes: Vec<AttachChange>) {
        for change in changes.into_iter().rev() {
            match change {
                AttachChange::Added(name) => self.detach_one(&name),
                AttachChange::Switched(name, mode) => {
                    self.detach_one(&name);
                    let back = match mode {
                        AttachedMode::Native => XdpMode::Native,
                        AttachedMode::Generic => XdpMode::Generic,
                    };
                    if let Err(e) = self.attach(&name, back) {
                        error!(
                            interface = %name,
                            error = %error_chain(&e),
                            "could not put the program back in its previous mode; the interface is unfiltered"
                        );
                    }
                }
            }
        }
    }

    /// Second half: detaches the interfaces the policy no longer lists.
    /// Done last, once everything that can fail has succeeded.
    pub fn detach_unlisted(&mut self, policy: &FirewallPolicy) {
        let unlisted: Vec<String> = self
            .attachments
            .iter()
            .filter(|a| !policy.interfaces.contains(&a.interface))
            .map(|a| a.interface.clone())
            .collect();
        for name in unlisted {
            self.detach_one(&name);
        }
    }

    fn detach_one(&mut self, interface: &str) {
        let Some(at) = self
            .attachments
            .iter()
            .position(|a| a.interface == interface)
        else {
            return;
        };
        let a = self.attachments.remove(at);
        let Ok(program) = self.program() else { return };
        match program.detach(a.link) {
            Ok(()) => info!(interface = %a.interface, "XDP program detached"),
            Err(e) => warn!(interface = %a.interface, error = %e, "detach failed"),
        }
    }

    fn program(&mut self) -> Result<&mut Xdp, FirewallError> {
        xdp_program(&mut self.ebpf)
    }

    /// Writes the policy into the maps, touching only what changed since the
    /// last call, so a reload never opens a window where the allowlist is
    /// empty or half-written.
    ///
    /// All or nothing: when a write fails part-way (a map full, say), the
    /// policy that was in force is written back before the error returns,
    /// so "keeping the previous policy" is what the kernel really enforces.
    pub fn apply(&mut self, policy: &FirewallPolicy) -> Result<(), FirewallError> {
        let Err(e) = self.write_policy(policy) else {
            self.applied = Some(policy.clone());
            return Ok(());
        };
        if let Some(previous) = self.applied.clone()
            && let Err(restore) = self.write_policy(&previous)
        {
            // Neither policy is whole in the maps. The next apply still
            // leaves them exact: its diffs follow the maps write by write.
            self.applied = None;
            error!(
                error = %error_chain(&restore),
                "could not restore the previous policy after a failed update; the maps may hold parts of both"
            );
        }
        Err(e)
    }

    fn write_policy(&mut self, policy: &FirewallPolicy) -> Result<(), FirewallError> {
        // Deny first, then allow, then the block summary that points into
        // them: each step only adds before it removes, so an address present
        // in both the old and the new policy is never judged by a gap.
        let mut v4_allow = Vec::new();
        let mut v6_allow = Vec::new();
        split(&policy.allow, &mut v4_allow, &mut v6_allow);
        let mut v4_deny = Vec::new();
        let mut v6_deny = Vec::new();
        split(&policy.deny, &mut v4_deny, &mut v6_deny);
        sync_trie::<4>(&mut self.ebpf, maps::DENY_V4, &v4_deny)?;
        sync_trie::<16>(&mut self.ebpf, maps::DENY_V6, &v6_deny)?;
        sync_trie::<4>(&mut self.ebpf, maps::ALLOW_V4, &v4_allow)?;
        sync_trie::<16>(&mut self.ebpf, maps::ALLOW_V6, &v6_allow)?;
        // After the tries: a block flagged "some" must find its trie entries.
        // `v4_blocks` follows every single write, so after a failure it still
        // says what the map holds and a retry or rollback diffs correctly.
        let blocks = v4_block_words(&v4_allow, &v4_deny);
        {
            let mut array: Array<_, u64> = map_mut(&mut self.ebpf, maps::V4_BLOCKS)?;
            let err = |source| FirewallError::Map {
                name: maps::V4_BLOCKS,
                source,
            };
            for (word, bits) in &blocks {
                if self.v4_blocks.get(word) != Some(bits) {
                    array.set(*word, *bits, 0).map_err(err)?;
                    self.v4_blocks.insert(*word, *bits);
                }
            }
            let stale: Vec<u32> = self
                .v4_blocks
                .keys()
                .filter(|w| !blocks.contains_key(w))
                .copied()
                .collect();
            for word in stale {
                array.set(word, 0, 0).map_err(err)?;
                self.v4_blocks.remove(&word);
            }
        }

        {
            let mut ports: Array<_, u8> = map_mut(&mut self.ebpf, maps::PORTS)?;
            let err = |source| FirewallError::Map {
                name: maps::PORTS,
                source,
            };
            for port in &policy.ports {
                ports.set(u32::from(*port), 1, 0).map_err(err)?;
                self.ports.insert(*port);
            }
            let stale: Vec<u16> = self.ports.difference(&policy.ports).copied().collect();
            for port in stale {
                ports.set(u32::from(port), 0, 0).map_err(err)?;
                self.ports.remove(&port);
            }
        }

        let mut flags = 0;
        if policy.http_guard {
            flags |= FLAG_HTTP_GUARD;
        }
        if policy.resp_only {
            flags |= FLAG_RESP_ONLY;
        }
        if !v6_deny.is_empty() {
            flags |= FLAG_DENY_V6;
        }
        // Written after the tries and the block map, so that a flow judged
        // under this generation was judged by the new policy.
        self.generation = self.generation.wrapping_add(1).max(1);
        let cfg = FilterConfig {
            mode: match policy.mode {
                Mode::Enforce => MODE_ENFORCE,
                Mode::Audit => MODE_AUDIT,
            },
            flags,
            generation: self.generation,
        };
        let mut config: Array<_, FilterConfig> = map_mut(&mut self.ebpf, maps::CONFIG)?;
        config.set(0, cfg, 0).map_err(|source| FirewallError::Map {
            name: maps::CONFIG,
            source,
        })?;
        Ok(())
    }

    /// Pins every map under `dir` (mounting bpffs at /sys/fs/bpf if needed)
    /// so that `redis-guard stats` can read them from another process.
    ///
    /// The directory is `flock`ed for as long as this daemon runs: a second
    /// daemon given the same `pin_path` is refused instead of taking over the
    /// first one's pins. Pins left by a daemon that died without cleaning up
    /// are not locked; their flow memory (marked flows and stream starts) is
    /// carried into this program's maps before they are replaced, as is what
    /// a cleanly stopped daemon kept in the flow memory directory, so a
    /// restart keeps dropping the flows it had marked.
    pub fn pin(&mut self, dir: &Path) -> Result<(), FirewallError> {
        let pin_err = |reason: String| FirewallError::Pin {
            path: dir.to_path_buf(),
            reason,
        };
        ensure_bpffs(dir).map_err(pin_err)?;
        std::fs::create_dir_all(dir).map_err(|e| pin_err(format!("create directory: {e}")))?;
        let lock = std::fs::File::open(dir).map_err(|e| pin_err(format!("open directory: {e}")))?;
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            return Err(pin_err(if e.kind() == io::ErrorKind::WouldBlock {
                "in use by another running redis-guard; give each daemon its own firewall.pin_path"
                    .to_string()
            } else {
                format!("lock directory: {e}")
            }));
        }
        let memory = flow_memory_dir(dir);
        let mut carried = 0;
        for source in [memory.as_path(), dir] {
            carried += self.carry_flows(source);
        }
        if carried > 0 {
            info!(
                flows = carried,
                "flow memory carried over from the previous run"
            );
        }
        remove_pins(&memory);
        if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            warn!(path = %dir.display(), "replacing stale pins from an earlier run");
            clear_pins(dir);
        }
        self.pin_dir = Some(dir.to_path_buf());
        self.pin_lock = Some(lock);
        for (name, map) in self.ebpf.maps() {
            map.pin(dir.join(name))
                .map_err(|e| pin_err(format!("pin {name}: {e}")))?;
        }
        Ok(())
    }

    /// Copies the entries of pinned `MARKED` and `FLOW_ISN` maps under `dir`
    /// (if any) into this program's maps; how many were copied. A map whose
    /// layout does not match (another version) is skipped with a warning.
    fn carry_flows(&mut self, dir: &Path) -> usize {
        fn open<V: aya::Pod>(path: &Path) -> Option<HashMap<MapData, FlowKey, V>> {
            let data = MapData::from_pin(path).ok()?;
            let map = aya::maps::Map::from_map_data(data).ok()?;
            match HashMap::try_from(map) {
                Ok(m) => Some(m),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "ignoring flow memory of another layout");
                    None
                }
            }
        }
        fn copy<V: aya::Pod>(
            ebpf: &mut Ebpf,
            name: &'static str,
            from: &HashMap<MapData, FlowKey, V>,
            adapt: impl Fn(V) -> V,
        ) -> usize {
            let Ok(mut to) = map_mut::<HashMap<_, FlowKey, V>>(ebpf, name) else {
                return 0;
            };
            from.iter()
                .flatten()
                .filter(|(k, v)| to.insert(k, adapt(*v), 0).is_ok())
                .count()
        }
        let mut n = 0;
        if let Some(old) = open::<MarkedFlow>(&dir.join(maps::MARKED)) {
            n += copy(&mut self.ebpf, maps::MARKED, &old, |v| v);
        }
        if let Some(old) = open::<FlowState>(&dir.join(maps::FLOW_ISN)) {
            // The old run counted its own generations: judge the sources
            // again under this run's policy.
            n += copy(&mut self.ebpf, maps::FLOW_ISN, &old, |v| FlowState {
                judged: 0,
                ..v
            });
        }
        n
    }

    /// Moves the `MARKED` pin, when it holds any flow, into the flow memory
    /// directory next to the pin directory, where the next start picks it
    /// up. Only marked flows are kept: they are few, and they are what keeps
    /// a blocked request from running after a restart.
    fn keep_marked_flows(&mut self, dir: &Path) {
        let any = map_mut::<HashMap<_, FlowKey, MarkedFlow>>(&mut self.ebpf, maps::MARKED)
            .is_ok_and(|m| m.keys().next().is_some());
        if !any {
            return;
        }
        let memory = flow_memory_dir(dir);
        // bpffs refuses rename(2) of a pin; a second pin of the same map is
        // what keeps it alive once the pin directory is gone.
        let kept = std::fs::create_dir_all(&memory)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                let map = self.ebpf.map(maps::MARKED).ok_or("no MARKED map")?;
                map.pin(memory.join(maps::MARKED))
                    .map_err(|e| e.to_string())
            });
        match kept {
            Ok(()) => info!(path = %memory.display(), "marked flows kept for the next start"),
            Err(e) => {
                warn!(path = %memory.display(), error = %e, "could not keep the marked flows")
            }
        }
    }

    /// Takes the marked-flow event ring buffer (once).
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.ebpf
            .take_map(maps::EVENTS)
            .and_then(|m| RingBuf::try_from(m).ok())
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<Counters, FirewallError> {
        let map = self.ebpf.map(maps::COUNTERS).ok_or(FirewallError::Map {
            name: maps::COUNTERS,
            source: MapError::InvalidName {
                name: maps::COUNTERS.into(),
            },
        })?;
        let counters: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| FirewallError::Map {
                name: maps::COUNTERS,
                source,
            })?;
        Counters::read(&counters).map_err(|source| FirewallError::Map {
            name: maps::COUNTERS,
            source,
        })
    }

    /// The loaded eBPF object, for tests and benchmarks that drive the
    /// program directly (BPF_PROG_TEST_RUN).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        self.detach_all();
        if let Some(dir) = self.pin_dir.take() {
            self.keep_marked_flows(&dir);
            remove_pins(&dir);
        }
        // Closing the directory releases its lock.
        self.pin_lock = None;
    }
}

/// Where a stopped daemon keeps its marked flows for the next start:
/// `<pin_path>-flows` (bpffs refuses names with dots), outside the pin directory so that `stats` and
/// a clean stop's "pins removed" are unaffected.
pub fn flow_memory_dir(pin_dir: &Path) -> PathBuf {
    let mut name = pin_dir.as_os_str().to_owned();
    name.push("-flows");
    PathBuf::from(name)
}

const _: () = assert!(COUNTER_COUNT as usize == redis_guard_common::Counter::ALL.len());

/// The errno behind a failed attach, whichever way aya made the call.
/// An error with its sources, `outer: inner: ...`: aya's attach errors name
/// the syscall and keep the errno, the part an operator needs, in `source`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

fn os_error(e: &ProgramError) -> Option<i32> {
    match e {
        ProgramError::SyscallError(s) => s.io_error.raw_os_error(),
        ProgramError::NetlinkError(e) => e.raw_os_error(),
        _ => None,
    }
}

/// What to do about the attach errors users meet in practice.
fn attach_hint(e: &ProgramError) -> &'static str {
    match os_error(e) {
        Some(libc::EEXIST) | Some(libc::EBUSY) => {
            " (another XDP program is already attached to this interface: see `ip link show` or `bpftool net`, and detach it first)"
        }
        _ => "",
    }
}

/// The XDP program inside the loaded object.
fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, FirewallError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(FirewallError::MissingProgram(PROGRAM_NAME))?
        .try_into()
        .map_err(|e: ProgramError| FirewallError::Object(EbpfError::ProgramError(e)))
}

fn split(nets: &BTreeSet<IpNet>, v4: &mut Vec<(u32, [u8; 4])>, v6: &mut Vec<(u32, [u8; 16])>) {
    for net in nets {
        match net {
            IpNet::V4(n) => v4.push((u32::from(n.prefix_len()), n.network().octets())),
            IpNet::V6(n) => v6.push((u32::from(n.prefix_len()), n.network().octets())),
        }
    }
}

/// The `V4_BLOCKS` summary: for every /24 block, whether an allow or deny
/// prefix covers it whole (prefix <= 24) or lies inside it (prefix > 24).
fn v4_block_words(allow: &[(u32, [u8; 4])], deny: &[(u32, [u8; 4])]) -> BTreeMap<u32, u64> {
    let mut words = BTreeMap::new();
    for (nets, all, some) in [
        (allow, BLOCK_ALLOW_ALL, BLOCK_ALLOW_SOME),
        (deny, BLOCK_DENY_ALL, BLOCK_DENY_SOME),
    ] {
        for (prefix, addr) in nets {
            let first = u32::from_be_bytes(*addr) >> 8;
            let (count, bit) = if *prefix <= 24 {
                (1u32 << (24 - prefix), all)
            } else {
                (1, some)
            };
            for block in first..first + count {
                let shift = (block % V4_BLOCKS_PER_WORD) * 4;
                *words.entry(block / V4_BLOCKS_PER_WORD).or_insert(0u64) |= bit << shift;
            }
        }
    }
    words
}

fn map_mut<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, FirewallError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = MapError>,
{
    let map = ebpf.map_mut(name).ok_or(FirewallError::Map {
        name,
        source: MapError::InvalidName { name: name.into() },
    })?;
    T::try_from(map).map_err(|source| FirewallError::Map { name, source })
}

/// Makes the trie hold exactly `wanted`: inserts first, then removes extras,
/// so an entry present in both old and new policy is never absent.
///
/// When old and new together do not fit the map, the extras go first and the
/// inserts are retried: entries common to both policies still never leave,
/// but an address that moves from one entry to another (a /8 replaced by the
/// /16 inside it) is briefly unmatched. Only a reload that swaps most of a
/// near-full list pays that, and the log says so.
fn sync_trie<const N: usize>(
    ebpf: &mut Ebpf,
    name: &'static str,
    wanted: &[(u32, [u8; N])],
) -> Result<(), FirewallError> {
    let mut trie: LpmTrie<_, [u8; N], u8> = map_mut(ebpf, name)?;
    let err = |source| FirewallError::Map { name, source };
    let mut full = false;
    for (prefix, addr) in wanted {
        match trie.insert(&Key::new(*prefix, *addr), 1, 0) {
            Ok(()) => {}
            Err(MapError::SyscallError(s)) if s.io_error.raw_os_error() == Some(libc::ENOSPC) => {
                full = true;
                break;
            }
            Err(e) => return Err(err(e)),
        }
    }
    let wanted_keys: BTreeSet<(u32, [u8; N])> = wanted.iter().copied().collect();
    let existing: Vec<Key<[u8; N]>> = trie.keys().collect::<Result<_, _>>().map_err(err)?;
    for key in existing {
        if !wanted_keys.contains(&(key.prefix_len(), key.data())) {
            trie.remove(&key).map_err(err)?;
        }
    }
    if full {
        warn!(
            map = name,
            entries = wanted.len(),
            "the old and new lists did not fit the map together: removed the old entries before adding the new ones"
        );
        for (prefix, addr) in wanted {
            trie.insert(&Key::new(*prefix, *addr), 1, 0).map_err(err)?;
        }
    }
    Ok(())
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones use
/// memcg and ignore it. Raising it is harmless either way.
fn raise_memlock_limit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK; fine on kernels >= 5.11");
    }
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn fs_magic(path: &Path) -> Option<i64> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0 {
        Some(st.f_type as i64)
    } else {
        None
    }
}

/// Pins need a bpffs. Distributions usually mount one at /sys/fs/bpf, but
/// minimal hosts and containers often do not; like Cilium, mount it there.
fn ensure_bpffs(dir: &Path) -> Result<(), String> {
    let mut ancestor = dir;
    while !ancestor.exists() {
        ancestor = ancestor
            .parent()
            .ok_or_else(|| "no existing parent directory".to_string())?;
    }
    if fs_magic(ancestor) == Some(BPF_FS_MAGIC) {
        return Ok(());
    }
    let root = Path::new("/sys/fs/bpf");
    if !dir.starts_with(root) {
        return Err(format!(
            "{} is not on a bpffs; pin under /sys/fs/bpf or mount bpffs there",
            ancestor.display()
        ));
    }
    std::fs::create_dir_all(root).map_err(|e| format!("create /sys/fs/bpf: {e}"))?;
    let src = CString::new("bpf").unwrap();
    let target = CString::new("/sys/fs/bpf").unwrap();
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "mount -t bpf bpf /sys/fs/bpf failed: {} (mounting needs CAP_SYS_ADMIN: mount bpffs \
             before starting the daemon, as the systemd unit and the DaemonSet's init container do)",
            io::Error::last_os_error()
        ));
    }
    info!("mounted bpffs at /sys/fs/bpf");
    if own_mount_namespace() {
        warn!(
            "bpffs was mounted inside this process's own mount namespace (`ip netns exec` gives \
             every command one, with a fresh /sys): the pins are invisible outside it, so \
             `redis-guard stats` run elsewhere will not find this daemon; start the daemon with \
             `nsenter --net=/run/netns/NAME` instead to keep the host's /sys/fs/bpf"
        );
    }
    Ok(())
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;

/// Whether `cap` is in this process's effective set (`/proc/self/status`);
/// true when that cannot be read, so that a doubt never hides the verifier's
/// own message.
fn has_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|eff| eff & (1 << cap) != 0)
}

/// Whether this process's mount namespace differs from init's.
fn own_mount_namespace() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/mnt"),
        std::fs::read_link("/proc/1/ns/mnt"),
    ) {
        (Ok(ours), Ok(init)) => ours != init,
        _ => false,
    }
}

fn clear_pins(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn remove_pins(dir: &Path) {
    clear_pins(dir);
    let _ = std::fs::remove_dir(dir);
}
