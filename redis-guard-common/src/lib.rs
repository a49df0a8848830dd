//! Types shared by the redis-guard XDP program (`redis-guard-ebpf`) and its
//! userspace loader (`redis-guard`).
//!
//! Everything here is `#[repr(C)]` plain data: the kernel and userspace read
//! the same bytes out of BPF maps, so the layout is the contract. Padding is
//! explicit so that no uninitialised byte ever ends up in a map key.
#![cfg_attr(not(feature = "user"), no_std)]

/// Names of the maps the XDP program defines; userspace looks them up and
/// pins them under these names.
pub mod maps {
    /// `Array<FilterConfig>` with one entry: mode and guard flags.
    pub const CONFIG: &str = "CONFIG";
    /// `Array<u8>` indexed by TCP destination port: non-zero means protected.
    pub const PORTS: &str = "PORTS";
    /// `LpmTrie<[u8; 4], u8>`: IPv4 sources allowed to reach protected ports.
    pub const ALLOW_V4: &str = "ALLOW_V4";
    /// `LpmTrie<[u8; 4], u8>`: IPv4 sources always dropped (wins over allow).
    pub const DENY_V4: &str = "DENY_V4";
    /// `LpmTrie<[u8; 16], u8>`: IPv6 sources allowed to reach protected ports.
    pub const ALLOW_V6: &str = "ALLOW_V6";
    /// `LpmTrie<[u8; 16], u8>`: IPv6 sources always dropped (wins over allow).
    pub const DENY_V6: &str = "DENY_V6";
    /// `Array<u64>` of [`V4_BLOCK_WORDS`](super::V4_BLOCK_WORDS) words: four
    /// bits per IPv4 /24 block summarising the allow and deny tries.
    pub const V4_BLOCKS: &str = "V4_BLOCKS";
    /// `HashMap<u32, [u8; 16]>`: names of the interfaces the daemon attached
    /// to, by ifindex, so `stats` can name them from another namespace.
    pub const IFNAMES: &str = "IFNAMES";
    /// `LruHashMap<FlowKey, FlowState>`: what the program remembers of
    /// each flow it saw start (its initial sequence number, whether its
    /// source was judged, whether it is marked).
    pub const FLOW_ISN: &str = "FLOW_ISN";
    /// `LruHashMap<FlowKey, MarkedFlow>`: flows the guard has marked.
    pub const MARKED: &str = "MARKED";
    /// `PerCpuArray<u64>` indexed by [`Counter`](super::Counter).
    pub const COUNTERS: &str = "COUNTERS";
    /// `RingBuf` of [`FlowEvent`](super::FlowEvent), one per newly marked flow.
    pub const EVENTS: &str = "EVENTS";
}

/// Name of the XDP program inside the object file.
pub const PROGRAM_NAME: &str = "redis_guard";

/// Capacity of the per-flow ISN table.
pub const FLOW_ISN_ENTRIES: u32 = 262_144;
/// Capacity of the marked-flow table.
pub const MARKED_ENTRIES: u32 = 65_536;
/// Capacity of each allow/deny trie.
pub const TRIE_ENTRIES: u32 = 65_536;
/// Size in bytes of the marked-flow event ring buffer.
pub const EVENTS_BYTES: u32 = 256 * 1024;
/// Number of TCP ports (the PORTS array is indexed by port).
pub const PORT_SLOTS: u32 = 65_536;
/// How many IPv6 extension headers the parser walks before giving up.
pub const MAX_IPV6_EXT_HEADERS: u32 = 6;
/// How many bytes at the start of a client stream the HTTP guard inspects.
pub const INSPECT_BYTES: usize = 24;

/// IPv4 /24 blocks summarised per `V4_BLOCKS` word.
pub const V4_BLOCKS_PER_WORD: u32 = 16;
/// Length of the `V4_BLOCKS` array: 2^24 blocks, 16 per word (8 MiB).
pub const V4_BLOCK_WORDS: u32 = (1 << 24) / V4_BLOCKS_PER_WORD;
/// Block bit: an allow prefix of /24 or shorter covers the whole block.
pub const BLOCK_ALLOW_ALL: u64 = 1;
/// Block bit: an allow prefix longer than /24 lies in the block; ask the trie.
pub const BLOCK_ALLOW_SOME: u64 = 2;
/// Block bit: a deny prefix of /24 or shorter covers the whole block.
pub const BLOCK_DENY_ALL: u64 = 4;
/// Block bit: a deny prefix longer than /24 lies in the block; ask the trie.
pub const BLOCK_DENY_SOME: u64 = 8;
/// Capacity of the interface-name table.
pub const IFNAME_ENTRIES: u32 = 256;

/// `FilterConfig::mode`: drop what the policy refuses.
pub const MODE_ENFORCE: u32 = 0;
/// `FilterConfig::mode`: count and report every verdict, drop nothing.
pub const MODE_AUDIT: u32 = 1;

/// `FilterConfig::flags`: mark flows whose stream starts like HTTP.
pub const FLAG_HTTP_GUARD: u32 = 1 << 0;
/// `FilterConfig::flags`: mark flows whose first byte is not `*`.
pub const FLAG_RESP_ONLY: u32 = 1 << 1;
/// `FilterConfig::flags`: the IPv6 deny trie has entries (else it is skipped).
pub const FLAG_DENY_V6: u32 = 1 << 3;

/// Runtime switches, the single entry of the `CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FilterConfig {
    /// [`MODE_ENFORCE`] or [`MODE_AUDIT`].
    pub mode: u32,
    /// Bit set of `FLAG_*`.
    pub flags: u32,
    /// Bumped by userspace after every change to the allow and deny maps,
    /// never 0. A flow whose source was judged under the current
    /// generation (`FlowState::judged`) is not looked up in the tries again.
    pub generation: u32,
}

/// Value of the `FLOW_ISN` map: one flow that started while the program
/// was attached. It lets every later packet of the flow be judged with this
/// one lookup instead of a trie walk and two table lookups.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowState {
    /// The client's initial sequence number, from its SYN.
    pub isn: u32,
    /// `FilterConfig::generation` under which the source was last found
    /// allowed; 0 when it has to be judged again.
    pub judged: u32,
    /// 0, or the reason ([`REASON_HTTP`], [`REASON_NOT_RESP`]) the flow was
    /// marked for: its packets are dropped even if its `MARKED` record is
    /// evicted.
    pub marked: u32,
}

/// One per-CPU counter per verdict reason; the index into `COUNTERS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Packets to a protected port that passed every check.
    Passed = 0,
    /// Packets to a protected port from a source outside the allowlist.
    DroppedNotAllowed = 1,
    /// Packets to a protected port from a source on the deny list.
    DroppedDenied = 2,
    /// Packets of flows marked because their stream started like HTTP.
    DroppedHttp = 3,
    /// Packets of flows marked because their first byte was not `*`.
    DroppedNotResp = 4,
    /// Frames truncated at a header boundary or otherwise unparseable.
    Malformed = 5,
    /// Non-first IP fragments (they carry no ports) that were passed.
    Fragments = 6,
    /// Packets that do not target a protected TCP port; never touched.
    NotProtected = 7,
    /// Flows newly marked as HTTP.
    MarkedHttp = 8,
    /// Flows newly marked as not RESP.
    MarkedNotResp = 9,
    /// Data segments of flows whose SYN was never seen (established before
    /// attach, or evicted from the ISN table): not inspected.
    Untracked = 10,
    /// Packets a refusing verdict would have dropped, passed in audit mode.
    AuditPassed = 11,
    /// Marked-flow events lost because the ring buffer was full.
    EventsLost = 12,
}

/// Number of counters, the length of the `COUNTERS` array.
pub const COUNTER_COUNT: u32 = 13;

impl Counter {
    /// Every counter in index order.
    pub const ALL: [Counter; COUNTER_COUNT as usize] = [
        Counter::Passed,
        Counter::DroppedNotAllowed,
        Counter::DroppedDenied,
        Counter::DroppedHttp,
        Counter::DroppedNotResp,
        Counter::Malformed,
        Counter::Fragments,
        Counter::NotProtected,
        Counter::MarkedHttp,
        Counter::MarkedNotResp,
        Counter::Untracked,
        Counter::AuditPassed,
        Counter::EventsLost,
    ];

    /// The stable snake_case name used in `stats` output and events.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Passed => "passed",
            Counter::DroppedNotAllowed => "dropped_not_allowed",
            Counter::DroppedDenied => "dropped_denied",
            Counter::DroppedHttp => "dropped_http",
            Counter::DroppedNotResp => "dropped_not_resp",
            Counter::Malformed => "malformed",
            Counter::Fragments => "fragments",
            Counter::NotProtected => "not_protected",
            Counter::MarkedHttp => "marked_http",
            Counter::MarkedNotResp => "marked_not_resp",
            Counter::Untracked => "untracked",
            Counter::AuditPassed => "audit_passed",
            Counter::EventsLost => "events_lost",
        }
    }
}

/// Address family tag in [`FlowKey::family`].
pub const FAMILY_V4: u8 = 4;
/// Address family tag in [`FlowKey::family`].
pub const FAMILY_V6: u8 = 6;

/// A TCP flow as the client sent it (source = client). IPv4 addresses use the
/// first four bytes of each address field; the rest stay zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Client address, network byte order.
    pub src: [u8; 16],
    /// Server address, network byte order.
    pub dst: [u8; 16],
    /// Client port, host byte order.
    pub sport: u16,
    /// Server (protected) port, host byte order.
    pub dport: u16,
    /// [`FAMILY_V4`] or [`FAMILY_V6`].
    pub family: u8,
    /// Explicit padding; always zero.
    pub _pad: [u8; 3],
}

/// Why a flow was marked.
pub const REASON_HTTP: u32 = 1;
/// Why a flow was marked.
pub const REASON_NOT_RESP: u32 = 2;

/// Value of the `MARKED` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkedFlow {
    /// `bpf_ktime_get_ns()` when the flow was marked (CLOCK_MONOTONIC).
    pub first_seen_ns: u64,
    /// Packets of this flow seen since it was marked, the marking one included.
    pub packets: u64,
    /// [`REASON_HTTP`] or [`REASON_NOT_RESP`].
    pub reason: u32,
    /// Interface the marking packet arrived on.
    pub ifindex: u32,
}

/// Record pushed to the `EVENTS` ring buffer when a flow is marked.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    /// The marked flow.
    pub key: FlowKey,
    /// `bpf_ktime_get_ns()` at marking time.
    pub ts_ns: u64,
    /// [`REASON_HTTP`] or [`REASON_NOT_RESP`].
    pub reason: u32,
    /// Interface the marking packet arrived on.
    pub ifindex: u32,
    /// [`MODE_ENFORCE`] or [`MODE_AUDIT`] at marking time.
    pub mode: u32,
    /// Explicit padding; always zero.
    pub _pad: u32,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all five are #[repr(C)] structs of integers and byte arrays with
    // explicit padding, so every bit pattern is valid and none is uninit.
    unsafe impl aya::Pod for super::FilterConfig {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::MarkedFlow {}
    unsafe impl aya::Pod for super::FlowEvent {}
    unsafe impl aya::Pod for super::FlowState {}
}
