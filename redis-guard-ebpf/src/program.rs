//! The XDP entry point, its maps, and the per-packet decision.

use core::mem::size_of;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_ktime_get_ns, bpf_xdp_load_bytes},
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf, lpm_trie::Key},
    programs::XdpContext,
};
use network_types::{
    eth::EthHdr,
    ip::{Ipv4Hdr, Ipv6Hdr},
    tcp::TcpHdr,
};
use redis_guard_common::{
    BLOCK_ALLOW_ALL, BLOCK_ALLOW_SOME, BLOCK_DENY_ALL, BLOCK_DENY_SOME, COUNTER_COUNT, Counter,
    EVENTS_BYTES, FAMILY_V4, FAMILY_V6, FLAG_DENY_V6, FLAG_HTTP_GUARD, FLAG_RESP_ONLY,
    FLOW_ISN_ENTRIES, FilterConfig, FlowEvent, FlowKey, FlowState, IFNAME_ENTRIES, INSPECT_BYTES,
    MARKED_ENTRIES, MAX_IPV6_EXT_HEADERS, MODE_AUDIT, MarkedFlow, PORT_SLOTS, REASON_HTTP,
    REASON_NOT_RESP, TRIE_ENTRIES, V4_BLOCK_WORDS, V4_BLOCKS_PER_WORD,
};

#[map]
static CONFIG: Array<FilterConfig> = Array::with_max_entries(1, 0);
#[map]
static PORTS: Array<u8> = Array::with_max_entries(PORT_SLOTS, 0);
#[map]
static ALLOW_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(TRIE_ENTRIES, 0);
#[map]
static DENY_V4: LpmTrie<[u8; 4], u8> = LpmTrie::with_max_entries(TRIE_ENTRIES, 0);
#[map]
static ALLOW_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(TRIE_ENTRIES, 0);
#[map]
static DENY_V6: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(TRIE_ENTRIES, 0);
#[map]
static V4_BLOCKS: Array<u64> = Array::with_max_entries(V4_BLOCK_WORDS, 0);
/// Written by userspace, never read here: it travels with the other maps so
/// `stats` can name interfaces from outside the daemon's namespace.
#[map]
static IFNAMES: HashMap<u32, [u8; 16]> = HashMap::with_max_entries(IFNAME_ENTRIES, 0);
#[map]
static FLOW_ISN: LruHashMap<FlowKey, FlowState> = LruHashMap::with_max_entries(FLOW_ISN_ENTRIES, 0);
#[map]
static MARKED: LruHashMap<FlowKey, MarkedFlow> = LruHashMap::with_max_entries(MARKED_ENTRIES, 0);
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_TCP: u8 = 6;
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AH: u8 = 51;
const IPV6_DSTOPTS: u8 = 60;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;
/// Deeper header stacks than this are refused as malformed. It also gives the
/// verifier a bound on every variable packet offset.
const MAX_HEADER_OFFSET: usize = 512;

/// What the program decided, and the counter that records why.
enum Verdict {
    Pass(Counter),
    Refuse(Counter),
}

#[xdp]
pub fn redis_guard(ctx: XdpContext) -> u32 {
    let cfg = match CONFIG.get(0) {
        Some(cfg) => *cfg,
        None => FilterConfig::default(),
    };
    let audit = cfg.mode == MODE_AUDIT;
    let verdict = match refuse_fast(&ctx) {
        Some(counter) => Verdict::Refuse(counter),
        None => decide(&ctx, &cfg),
    };
    match verdict {
        Verdict::Pass(counter) => {
            count(counter);
            xdp_action::XDP_PASS
        }
        Verdict::Refuse(counter) => {
            count(counter);
            if audit {
                count(Counter::AuditPassed);
                xdp_action::XDP_PASS
            } else {
                xdp_action::XDP_DROP
            }
        }
    }
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // Per-CPU slot: no other CPU writes it, so a plain add is exact.
        unsafe { *slot += 1 };
    }
}

/// The flood's own shape, judged from fixed offsets: untagged IPv4 without
/// options, not a fragment, TCP with a sane header, to a protected port,
/// from a /24 the block bitmap settles without a trie walk. `Some` only for
/// a refusal the full parser would reach with the same counter; anything
/// else, or any doubt, returns `None` and takes the full path. A spoofed SYN
/// flood thus costs one bounds check and two array loads per packet.
#[inline(always)]
fn refuse_fast(ctx: &XdpContext) -> Option<Counter> {
    const FIXED: usize = EthHdr::LEN + Ipv4Hdr::LEN + TcpHdr::LEN;
    let start = ctx.data();
    let frame_len = ctx.data_end() - start;
    if start + FIXED > ctx.data_end() {
        return None;
    }
    let p = start as *const u8;
    let b = |i: usize| unsafe { *p.add(i) };
    // EtherType 0x0800, version 4 with IHL 5, protocol TCP, and neither MF
    // nor a fragment offset (the reserved and DF bits do not matter).
    if b(12) != 0x08 || b(13) != 0x00 || b(14) != 0x45 || b(23) != IPPROTO_TCP {
        return None;
    }
    if b(20) & 0x3f != 0 || b(21) != 0 {
        return None;
    }
    let tot_len = be16([b(16), b(17)]) as usize;
    let doff = ((b(46) >> 4) as usize) * 4;
    if tot_len < Ipv4Hdr::LEN + TcpHdr::LEN
        || EthHdr::LEN + tot_len > frame_len
        || doff < TcpHdr::LEN
        || doff > tot_len - Ipv4Hdr::LEN
    {
        return None;
    }
    match PORTS.get(be16([b(36), b(37)]) as u32) {
        Some(port) if *port != 0 => {}
        _ => return None,
    }
    let block = u32::from_be_bytes([0, b(26), b(27), b(28)]);
    let word = match V4_BLOCKS.get(block / V4_BLOCKS_PER_WORD) {
        Some(w) => *w,
        None => return None,
    };
    let bits = (word >> ((block % V4_BLOCKS_PER_WORD) * 4)) & 0xf;
    if bits & BLOCK_DENY_ALL != 0 {
        Some(Counter::DroppedDenied)
    } else if bits == 0 {
        Some(Counter::DroppedNotAllowed)
    } else {
        None
    }
}

/// Bounds-checked pointer to a `T` at `offset` bytes into the frame.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if offset > MAX_HEADER_OFFSET || start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

#[inline(always)]
fn be16(b: [u8; 2]) -> u16 {
    u16::from_be_bytes(b)
}

/// Where the TCP header starts and what the IP layer told us.
struct L3 {
    key: FlowKey,
    l4_off: usize,
    /// Bytes of TCP header + payload according to the IP header.
    l4_len: usize,
}

#[inline(always)]
fn decide(ctx: &XdpContext, cfg: &FilterConfig) -> Verdict {
    let frame_len = ctx.data_end() - ctx.data();
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Verdict::Refuse(Counter::Malformed);
    };
    let mut proto = u16::from_be(unsafe { (*eth).ether_type });
    let mut off = EthHdr::LEN;
    // Up to two tags: 802.1Q, or 802.1ad outer + 802.1Q inner.
    for _ in 0..2 {
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            let Some(tag) = ptr_at::<[u8; 4]>(ctx, off) else {
                return Verdict::Refuse(Counter::Malformed);
            };
            proto = be16(unsafe { [(*tag)[2], (*tag)[3]] });
            off += 4;
        }
    }
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        return Verdict::Refuse(Counter::Malformed);
    }
    let l3 = match proto {
        ETH_P_IP => parse_v4(ctx, off, frame_len),
        ETH_P_IPV6 => parse_v6(ctx, off, frame_len),
        _ => return Verdict::Pass(Counter::NotProtected),
    };
    match l3 {
        Ok(l3) => decide_tcp(ctx, cfg, l3),
        Err(verdict) => verdict,
    }
}

#[inline(always)]
fn parse_v4(ctx: &XdpContext, off: usize, frame_len: usize) -> Result<L3, Verdict> {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, off) else {
        return Err(Verdict::Refuse(Counter::Malformed));
    };
    let ip = unsafe { &*ip };
    // Not TCP, so not ours, however broken the rest of its header: the
    // stack judges that, and other traffic is never touched.
    if ip.proto != IPPROTO_TCP {
        return Err(Verdict::Pass(Counter::NotProtected));
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    let tot_len = be16(ip.tot_len) as usize;
    if ip.vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN || tot_len < ihl || off + tot_len > frame_len {
        return Err(Verdict::Refuse(Counter::Malformed));
    }
    let frag_off = be16(ip.frags) & 0x1fff;
    if frag_off == 1 {
        // An offset of 8 bytes only serves to overwrite the first fragment's
        // TCP ports and flags (RFC 1858 overlap attack); RFC 3128 says drop.
        return Err(Verdict::Refuse(Counter::Malformed));
    }
    if frag_off != 0 {
        // No TCP header, so no port to judge. Its first fragment was judged
        // (and dropped if refused), so it cannot be reassembled on its own.
        return Err(Verdict::Pass(Counter::Fragments));
    }
    let mut key = FlowKey::default();
    key.family = FAMILY_V4;
    key.src[..4].copy_from_slice(&ip.src_addr);
    key.dst[..4].copy_from_slice(&ip.dst_addr);
    Ok(L3 {
        key,
        l4_off: off + ihl,
        l4_len: tot_len - ihl,
    })
}

#[inline(always)]
fn parse_v6(ctx: &XdpContext, off: usize, frame_len: usize) -> Result<L3, Verdict> {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, off) else {
        return Err(Verdict::Refuse(Counter::Malformed));
    };
    let ip = unsafe { &*ip };
    if ip.next_hdr != IPPROTO_TCP && !is_ext_header(ip.next_hdr) {
        return Err(Verdict::Pass(Counter::NotProtected));
    }
    let payload_len = be16(ip.payload_len) as usize;
    // payload_len == 0 means a jumbogram, which never crosses Ethernet.
    if ip.vcf[0] >> 4 != 6 || payload_len == 0 || off + Ipv6Hdr::LEN + payload_len > frame_len {
        return Err(Verdict::Refuse(Counter::Malformed));
    }
    let mut next = ip.next_hdr;
    let mut l4_off = off + Ipv6Hdr::LEN;
    let l4_end = l4_off + payload_len;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        let len = match next {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS | IPV6_AH => {
                let Some(h) = ptr_at::<[u8; 2]>(ctx, l4_off) else {
                    return Err(Verdict::Refuse(Counter::Malformed));
                };
                let (nh, hlen) = unsafe { ((*h)[0], (*h)[1] as usize) };
                // AH counts 4-byte words minus 2; the others 8-byte words minus 1.
                let len = if next == IPV6_AH {
                    (hlen + 2) * 4
                } else {
                    (hlen + 1) * 8
                };
                next = nh;
                len
            }
            IPV6_FRAGMENT => {
                let Some(h) = ptr_at::<[u8; 8]>(ctx, l4_off) else {
                    return Err(Verdict::Refuse(Counter::Malformed));
                };
                let h = unsafe { &*h };
                next = h[0];
                if be16([h[2], h[3]]) & 0xfff8 != 0 {
                    return Err(Verdict::Pass(Counter::Fragments));
                }
                8
            }
            _ => break,
        };
        l4_off += len;
        if l4_off > l4_end {
            return Err(Verdict::Refuse(Counter::Malformed));
        }
    }
    if is_ext_header(next) {
        return Err(Verdict::Refuse(Counter::Malformed));
    }
    if next != IPPROTO_TCP {
        return Err(Verdict::Pass(Counter::NotProtected));
    }
    let mut key = FlowKey::default();
    key.family = FAMILY_V6;
    key.src = ip.src_addr;
    key.dst = ip.dst_addr;
    Ok(L3 {
        key,
        l4_off,
        l4_len: l4_end - l4_off,
    })
}

#[inline(always)]
fn is_ext_header(next: u8) -> bool {
    matches!(
        next,
        IPV6_HOPOPTS | IPV6_ROUTING | IPV6_FRAGMENT | IPV6_AH | IPV6_DSTOPTS
    )
}

#[inline(always)]
fn decide_tcp(ctx: &XdpContext, cfg: &FilterConfig, l3: L3) -> Verdict {
    let L3 {
        mut key,
        l4_off,
        l4_len,
    } = l3;
    // The ports first: a broken segment to a port that is not protected is
    // the stack's business, not ours.
    let Some(ports) = ptr_at::<[u8; 4]>(ctx, l4_off) else {
        return Verdict::Refuse(Counter::Malformed);
    };
    let ports = unsafe { *ports };
    if l4_len < 4 {
        // The "ports" are padding past the IP packet's end.
        return Verdict::Refuse(Counter::Malformed);
    }
    key.sport = be16([ports[0], ports[1]]);
    key.dport = be16([ports[2], ports[3]]);
    match PORTS.get(key.dport as u32) {
        Some(p) if *p != 0 => {}
        _ => return Verdict::Pass(Counter::NotProtected),
    }
    let Some(tcp) = ptr_at::<TcpHdr>(ctx, l4_off) else {
        // Includes first fragments too short to hold the TCP header: the
        // "tiny fragment" attack of RFC 1858.
        return Verdict::Refuse(Counter::Malformed);
    };
    let tcp = unsafe { &*tcp };
    // Byte 12 holds the data offset, byte 13 the flags; read them as raw
    // bytes rather than through the bitfield accessors.
    let raw = tcp as *const TcpHdr as *const u8;
    let (doff_byte, flags) = unsafe { (*raw.add(12), *raw.add(13)) };
    let doff = ((doff_byte >> 4) as usize) * 4;
    if doff < TcpHdr::LEN || doff > l4_len {
        return Verdict::Refuse(Counter::Malformed);
    }

    let syn = flags & TCP_SYN != 0 && flags & TCP_ACK == 0;
    let payload_len = l4_len - doff;
    let guard = cfg.flags & (FLAG_HTTP_GUARD | FLAG_RESP_ONLY) != 0;

    // A flow that started while the program was attached has a state entry.
    // Its source verdict holds until the policy changes (the generation
    // moves), so an established allowed flow costs this one lookup instead
    // of a trie walk and two more table lookups per packet.
    let state = if guard {
        FLOW_ISN.get_ptr_mut(&key)
    } else {
        None
    };
    let judged = match state {
        Some(s) => cfg.generation != 0 && unsafe { (*s).judged } == cfg.generation,
        None => false,
    };
    if !judged {
        if let Some(verdict) = check_source(&key, cfg.flags) {
            return verdict;
        }
        if let Some(s) = state {
            unsafe { (*s).judged = cfg.generation };
        }
    }

    // Only a flow without state, or one its state says is marked, can have
    // a `MARKED` record.
    let marked_reason = match state {
        Some(s) => unsafe { (*s).marked },
        None => 0,
    };
    if state.is_none() || marked_reason != 0 {
        let record = MARKED.get_ptr_mut(&key);
        if syn {
            // The 5-tuple is being reused by a new connection: judge it afresh.
            if record.is_some() {
                let _ = MARKED.remove(&key);
            }
        } else if flags & TCP_RST != 0 && payload_len == 0 {
            if record.is_some() || marked_reason != 0 {
                // A bare RST carries no command and lets the server free the
                // half-dead connection whose data we dropped.
                return Verdict::Pass(Counter::Passed);
            }
        } else if let Some(record) = record {
            let record = unsafe { &mut *record };
            // Not atomic: two CPUs may race on one flow. It is a report, not a bill.
            record.packets += 1;
            return Verdict::Refuse(reason_counter(record.reason));
        } else if marked_reason != 0 {
            // The record was evicted; the flow stays marked.
            return Verdict::Refuse(reason_counter(marked_reason));
        }
    }

    if !guard {
        return Verdict::Pass(Counter::Passed);
    }

    let seq = u32::from_be_bytes(tcp.seq);
    let stream_start = if syn {
        let fresh = FlowState {
            isn: seq,
            judged: cfg.generation,
            marked: 0,
        };
        let _ = FLOW_ISN.insert(&key, &fresh, 0);
        // TCP Fast Open: data carried in the SYN is the start of the stream.
        payload_len > 0
    } else if payload_len > 0 {
        match state {
            Some(s) => seq == unsafe { (*s).isn }.wrapping_add(1),
            None => {
                count(Counter::Untracked);
                false
            }
        }
    } else {
        false
    };
    if !stream_start {
        return Verdict::Pass(Counter::Passed);
    }

    let payload_off = l4_off + doff;
    // Never true (l4_off <= MAX_HEADER_OFFSET, doff <= 60); it gives the
    // verifier an upper bound for the helper's offset argument.
    if payload_off > MAX_HEADER_OFFSET + 64 {
        return Verdict::Refuse(Counter::Malformed);
    }
    let (buf, n) = load_prefix(ctx, payload_off, payload_len);
    if n == 0 {
        return Verdict::Refuse(Counter::Malformed);
    }

    let reason = if cfg.flags & FLAG_HTTP_GUARD != 0 && looks_like_http(&buf, n) {
        REASON_HTTP
    } else if cfg.flags & FLAG_RESP_ONLY != 0 && buf[0] != b'*' {
        REASON_NOT_RESP
    } else {
        return Verdict::Pass(Counter::Passed);
    };
    mark(ctx, &key, reason, cfg.mode);
    Verdict::Refuse(reason_counter(reason))
}

/// Copies up to `INSPECT_BYTES` of payload into a stack buffer.
#[inline(always)]
fn load_prefix(ctx: &XdpContext, off: usize, len: usize) -> ([u8; INSPECT_BYTES], usize) {
    let mut buf = [0u8; INSPECT_BYTES];
    let want = if len < INSPECT_BYTES {
        len
    } else {
        INSPECT_BYTES
    };
    // The volatile read hides `want`'s provenance from LLVM, so the range
    // checks below stay next to the helper call where the verifier needs
    // them, instead of being folded into earlier branches it cannot follow.
    let n = unsafe { core::ptr::read_volatile(&want) };
    if n == 0 || n > INSPECT_BYTES {
        return (buf, 0);
    }
    let rc = unsafe { bpf_xdp_load_bytes(ctx.ctx, off as u32, buf.as_mut_ptr().cast(), n as u32) };
    if rc != 0 {
        return (buf, 0);
    }
    (buf, n)
}

#[inline(always)]
fn reason_counter(reason: u32) -> Counter {
    if reason == REASON_HTTP {
        Counter::DroppedHttp
    } else {
        Counter::DroppedNotResp
    }
}

/// Deny wins over allow whatever the prefix lengths; an empty allow list
/// admits nobody.
///
/// IPv4 goes through `V4_BLOCKS` first: one inlined array load settles every
/// source whose /24 holds no prefix longer than /24, which is nearly all of
/// a spoofed flood. An LPM trie walk costs more than the rest of the program
/// together, so it is only taken for blocks flagged "some".
#[inline(always)]
fn check_source(key: &FlowKey, flags: u32) -> Option<Verdict> {
    let (denied, allowed) = if key.family == FAMILY_V4 {
        let block = u32::from_be_bytes([0, key.src[0], key.src[1], key.src[2]]);
        let word = match V4_BLOCKS.get(block / V4_BLOCKS_PER_WORD) {
            Some(w) => *w,
            None => 0,
        };
        let bits = (word >> ((block % V4_BLOCKS_PER_WORD) * 4)) & 0xf;
        let k = Key::new(32, [key.src[0], key.src[1], key.src[2], key.src[3]]);
        let denied = bits & BLOCK_DENY_ALL != 0
            || (bits & BLOCK_DENY_SOME != 0 && DENY_V4.get(&k).is_some());
        let allowed = bits & BLOCK_ALLOW_ALL != 0
            || (bits & BLOCK_ALLOW_SOME != 0 && ALLOW_V4.get(&k).is_some());
        (denied, allowed)
    } else {
        let k = Key::new(128, key.src);
        (
            flags & FLAG_DENY_V6 != 0 && DENY_V6.get(&k).is_some(),
            ALLOW_V6.get(&k).is_some(),
        )
    };
    if denied {
        Some(Verdict::Refuse(Counter::DroppedDenied))
    } else if !allowed {
        Some(Verdict::Refuse(Counter::DroppedNotAllowed))
    } else {
        None
    }
}

#[inline(always)]
fn mark(ctx: &XdpContext, key: &FlowKey, reason: u32, mode: u32) {
    let now = unsafe { bpf_ktime_get_ns() };
    let ifindex = ctx.ingress_ifindex() as u32;
    let entry = MarkedFlow {
        first_seen_ns: now,
        packets: 1,
        reason,
        ifindex,
    };
    let _ = MARKED.insert(key, &entry, 0);
    if let Some(state) = FLOW_ISN.get_ptr_mut(key) {
        unsafe { (*state).marked = reason };
    }
    count(if reason == REASON_HTTP {
        Counter::MarkedHttp
    } else {
        Counter::MarkedNotResp
    });
    let event = FlowEvent {
        key: *key,
        ts_ns: now,
        reason,
        ifindex,
        mode,
        _pad: 0,
    };
    if EVENTS.output::<FlowEvent>(&event, 0).is_err() {
        count(Counter::EventsLost);
    }
}

#[inline(always)]
fn lower(b: u8) -> u8 {
    if b.is_ascii_uppercase() { b | 0x20 } else { b }
}

/// Case-insensitive `buf[at..at + word.len()] == word`; `word` is lowercase.
#[inline(always)]
fn starts_with_ci(buf: &[u8; INSPECT_BYTES], n: usize, at: usize, word: &[u8]) -> bool {
    if at + word.len() > n {
        return false;
    }
    let mut i = 0;
    while i < word.len() && at + i < INSPECT_BYTES {
        if lower(buf[at + i]) != word[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[inline(always)]
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A request line (`METHOD SP target`, target `/`, `*` for OPTIONS, a
/// `scheme://`, or any authority for CONNECT) or a `Host:` header line.
///
/// Parsed as leniently as HTTP servers parse it (RFC 9112 §2.2: empty lines
/// before the request line, any run of blanks after the method), since a
/// stricter reading is a way around the guard. `GET key` is a Redis inline
/// command and does not match; neither does `GET /k` when its whole line is
/// in view without an HTTP version: that is an inline GET of a key named
/// `/k`, which no browser sends.
#[inline(always)]
fn looks_like_http(buf: &[u8; INSPECT_BYTES], n: usize) -> bool {
    let mut s = 0;
    while s < n && s < INSPECT_BYTES && (buf[s] == b'\r' || buf[s] == b'\n') {
        s += 1;
    }
    if starts_with_ci(buf, n, s, b"host:") {
        return true;
    }
    // (method length, CONNECT, OPTIONS, GET)
    let (len, connect, options, get) = if starts_with_ci(buf, n, s, b"get") {
        (3, false, false, true)
    } else if starts_with_ci(buf, n, s, b"post") {
        (4, false, false, false)
    } else if starts_with_ci(buf, n, s, b"put") {
        (3, false, false, false)
    } else if starts_with_ci(buf, n, s, b"head") {
        (4, false, false, false)
    } else if starts_with_ci(buf, n, s, b"options") {
        (7, false, true, false)
    } else if starts_with_ci(buf, n, s, b"delete") {
        (6, false, false, false)
    } else if starts_with_ci(buf, n, s, b"patch") {
        (5, false, false, false)
    } else if starts_with_ci(buf, n, s, b"connect") {
        (7, true, false, false)
    } else if starts_with_ci(buf, n, s, b"trace") {
        (5, false, false, false)
    } else {
        return false;
    };
    let mut t = s + len;
    if t >= n || t >= INSPECT_BYTES || !is_blank(buf[t]) {
        return false;
    }
    while t < n && t < INSPECT_BYTES && is_blank(buf[t]) {
        t += 1;
    }
    if t >= n || t >= INSPECT_BYTES {
        return false;
    }
    let first = buf[t];
    if first == b'/' {
        return !(get && complete_inline_line(buf, n, t));
    }
    if options && first == b'*' {
        return true;
    }
    if connect {
        return first != b'\r' && first != b'\n';
    }
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://".
    if !first.is_ascii_alphabetic() {
        return false;
    }
    let mut i = t + 1;
    while i + 2 < n && i + 2 < INSPECT_BYTES {
        let c = buf[i];
        if c == b':' {
            return buf[i + 1] == b'/' && buf[i + 2] == b'/';
        }
        if !(c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.') {
            return false;
        }
        i += 1;
    }
    false
}

/// Whether the line from `from` ends (LF) in view before any `HTTP/`
/// version token: an inline command rather than a request line. A line that
/// runs past the inspected bytes is not known to be inline.
#[inline(always)]
fn complete_inline_line(buf: &[u8; INSPECT_BYTES], n: usize, from: usize) -> bool {
    let mut i = from;
    while i < n && i < INSPECT_BYTES {
        let c = buf[i];
        if c == b'\n' {
            return true;
        }
        if c == b'H' && starts_with_ci(buf, n, i, b"http/") {
            return false;
        }
        i += 1;
    }
    false
}
