//! Verdict tests: the real XDP program, loaded into this kernel, run on
//! crafted frames through BPF_PROG_TEST_RUN. Needs root; without it every
//! test fails with the loader's "missing privileges" error.

use std::{net::IpAddr, path::Path};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use redis_guard::{
    events::flow_event_fields,
    firewall::Firewall,
    frames::{Fragment, TcpFrame, arp_request, tcp_flags},
    metrics::Counters,
    policy::Policy,
};
use redis_guard_common::{Counter, FlowEvent, PROGRAM_NAME};

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;

const POLICY: &str = r#"
[firewall]
interfaces = ["lo"]
ports = [6379, 7000]
allow = ["10.77.0.0/16", "fd77::/16", "192.0.2.7", "198.51.100.16/28"]
deny = ["10.77.9.0/24", "fd77:9::/32", "10.77.5.5/32"]
"#;

struct Harness {
    fw: Firewall,
}

impl Harness {
    fn new(extra: &str) -> Harness {
        let text = format!("{POLICY}{extra}\n");
        let policy = Policy::parse(Path::new("test.toml"), &text).expect("policy");
        let fw = Firewall::load(policy.firewall.as_ref().unwrap())
            .expect("loading the XDP program (these tests need root)");
        Harness { fw }
    }

    fn counters(&self) -> Counters {
        self.fw.counters().unwrap()
    }

    /// Runs the program on `frame`; returns the action and counter deltas.
    fn run(&mut self, frame: &[u8]) -> (u32, Counters) {
        let before = self.counters();
        let prog: &mut Xdp = self
            .fw
            .ebpf_mut()
            .program_mut(PROGRAM_NAME)
            .unwrap()
            .try_into()
            .unwrap();
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        let result = prog.test_run(opts).expect("BPF_PROG_TEST_RUN");
        (result.return_value, self.counters().since(&before))
    }

    #[track_caller]
    fn expect(&mut self, frame: &[u8], action: u32, counter: Counter, what: &str) {
        let (got, delta) = self.run(frame);
        assert_eq!(
            got,
            action,
            "{what}: expected {}, got {} (counters {})",
            name(action),
            name(got),
            delta.to_json()
        );
        assert_eq!(
            delta.get(counter),
            1,
            "{what}: counter {} should move by one; deltas {}",
            counter.name(),
            delta.to_json()
        );
    }
}

fn name(action: u32) -> &'static str {
    match action {
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        _ => "other",
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn syn(src: &str, dst: &str, dport: u16) -> TcpFrame {
    TcpFrame::syn(ip(src), 40000, ip(dst), dport, 1000)
}

#[test]
fn allowlist_and_deny_precedence() {
    let mut h = Harness::new("");
    use Counter::*;
    let table: &[(&str, &str, u16, u32, Counter, &str)] = &[
        (
            "10.77.1.2",
            "10.77.0.1",
            6379,
            XDP_PASS,
            Passed,
            "v4 allowed",
        ),
        (
            "10.77.1.2",
            "10.77.0.1",
            7000,
            XDP_PASS,
            Passed,
            "second port allowed",
        ),
        (
            "192.0.2.7",
            "10.77.0.1",
            6379,
            XDP_PASS,
            Passed,
            "single address allowed",
        ),
        (
            "192.0.2.8",
            "10.77.0.1",
            6379,
            XDP_DROP,
            DroppedNotAllowed,
            "v4 outside allowlist",
        ),
        (
            "10.77.9.5",
            "10.77.0.1",
            6379,
            XDP_DROP,
            DroppedDenied,
            "deny wins over a wider allow",
        ),
        (
            "192.0.2.8",
            "10.77.0.1",
            80,
            XDP_PASS,
            NotProtected,
            "non-protected port untouched",
        ),
        (
            "192.0.2.8",
            "10.77.0.1",
            6380,
            XDP_PASS,
            NotProtected,
            "neighbouring port untouched",
        ),
        ("fd77::5", "fd77::1", 6379, XDP_PASS, Passed, "v6 allowed"),
        (
            "2001:db8::5",
            "fd77::1",
            6379,
            XDP_DROP,
            DroppedNotAllowed,
            "v6 outside allowlist",
        ),
        (
            "fd77:9::5",
            "fd77::1",
            6379,
            XDP_DROP,
            DroppedDenied,
            "v6 deny wins",
        ),
        (
            "2001:db8::5",
            "fd77::1",
            22,
            XDP_PASS,
            NotProtected,
            "v6 other port",
        ),
    ];
    for (src, dst, port, action, counter, what) in table {
        h.expect(&syn(src, dst, *port).build(), *action, *counter, what);
    }
    h.expect(&arp_request(), XDP_PASS, NotProtected, "ARP");
}

#[test]
fn empty_allowlist_admits_nobody() {
    let policy = Policy::parse(
        Path::new("t.toml"),
        "[firewall]\ninterfaces=[\"lo\"]\nports=[6379]\n",
    )
    .unwrap();
    let fw = Firewall::load(policy.firewall.as_ref().unwrap()).unwrap();
    let mut h = Harness { fw };
    h.expect(
        &syn("10.77.1.2", "10.77.0.1", 6379).build(),
        XDP_DROP,
        Counter::DroppedNotAllowed,
        "empty allow",
    );
}

#[test]
fn vlan_tags_ip_options_and_ipv6_extension_headers() {
    let mut h = Harness::new("");
    use Counter::*;
    for (src, action, counter) in [
        ("10.77.1.2", XDP_PASS, Passed),
        ("192.0.2.9", XDP_DROP, DroppedNotAllowed),
    ] {
        let mut f = syn(src, "10.77.0.1", 6379);
        f.vlans = vec![(0x8100, 10)];
        h.expect(&f.build(), action, counter, "802.1Q");
        f.vlans = vec![(0x88a8, 100), (0x8100, 10)];
        h.expect(&f.build(), action, counter, "802.1ad + 802.1Q");
        f.vlans = vec![];
        // Record-route style option, 12 bytes: IHL 8.
        f.ipv4_options = vec![7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        h.expect(&f.build(), action, counter, "IPv4 options");
        f.vlans = vec![(0x8100, 10)];
        h.expect(&f.build(), action, counter, "VLAN + IPv4 options");
    }
    let mut f = syn("10.77.1.2", "10.77.0.1", 6379);
    f.vlans = vec![(0x88a8, 1), (0x8100, 2), (0x8100, 3)];
    h.expect(&f.build(), XDP_DROP, Malformed, "three VLAN tags");

    for (src, action, counter) in [
        ("fd77::2", XDP_PASS, Passed),
        ("2001:db8::2", XDP_DROP, DroppedNotAllowed),
    ] {
        let mut f = syn(src, "fd77::1", 6379);
        f.ipv6_ext = vec![(0, vec![1, 0]), (43, vec![0, 0, 0, 0, 0, 0]), (60, vec![])];
        h.expect(
            &f.build(),
            action,
            counter,
            "hop-by-hop, routing, dest-opts",
        );
        f.ipv6_ext = vec![(51, vec![0; 10])];
        h.expect(&f.build(), action, counter, "authentication header");
        f.ipv6_ext = vec![(0, vec![]), (60, vec![0; 30])];
        f.vlans = vec![(0x8100, 7)];
        h.expect(&f.build(), action, counter, "VLAN + v6 ext headers");
    }
    let mut f = syn("fd77::2", "fd77::1", 6379);
    f.ipv6_ext = (0..7).map(|_| (60u8, vec![])).collect();
    h.expect(
        &f.build(),
        XDP_DROP,
        Malformed,
        "more ext headers than the bound",
    );
}

#[test]
fn truncation_at_every_boundary_is_malformed() {
    let mut h = Harness::new("");
    let mut frames = Vec::new();
    let mut v4 = syn("10.77.1.2", "10.77.0.1", 6379).data(1001, b"*1\r\n$4\r\nPING\r\n");
    v4.vlans = vec![(0x8100, 5)];
    v4.ipv4_options = vec![1, 1, 1, 0];
    frames.push(("v4", v4.build()));
    let mut v6 = syn("fd77::2", "fd77::1", 6379).data(1001, b"*1\r\n$4\r\nPING\r\n");
    v6.vlans = vec![(0x88a8, 5), (0x8100, 6)];
    v6.ipv6_ext = vec![(0, vec![]), (60, vec![0; 6])];
    frames.push(("v6", v6.build()));
    for (what, full) in frames {
        // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header,
        // so the sweep starts there.
        for len in 14..full.len() {
            let (action, delta) = h.run(&full[..len]);
            assert_eq!(action, XDP_DROP, "{what} truncated to {len} bytes passed");
            assert_eq!(
                delta.get(Counter::Malformed),
                1,
                "{what} truncated to {len}: {}",
                delta.to_json()
            );
        }
        let (action, _) = h.run(&full);
        assert_eq!(action, XDP_PASS, "{what} whole frame");
    }
    // Bad header fields, not just short frames.
    let mut bad = syn("10.77.1.2", "10.77.0.1", 6379).build();
    bad[14] = 0x44; // IHL 4 < 5
    h.expect(&bad, XDP_DROP, Counter::Malformed, "IHL below 5");
    let mut bad = syn("10.77.1.2", "10.77.0.1", 6379).build();
    bad[14 + 20 + 12] = 0x40; // TCP data offset 4 words
    h.expect(&bad, XDP_DROP, Counter::Malformed, "TCP doff below 5");
    let mut bad = syn("10.77.1.2", "10.77.0.1", 6379).build();
    bad[14] = 0x65; // version 6 inside an IPv4 ethertype
    h.expect(&bad, XDP_DROP, Counter::Malformed, "IP version mismatch");
}

/// Broken traffic that is not for a protected port is the stack's to judge:
/// other traffic is never touched, malformed or not.
#[test]
fn broken_traffic_to_other_ports_or_protocols_passes() {
    let mut h = Harness::new("");
    use Counter::*;
    let mut bad = syn("192.0.2.99", "10.77.0.1", 6379).build();
    bad[14] = 0x44; // IHL 4 < 5
    bad[14 + 9] = 1; // ICMP
    h.expect(&bad, XDP_PASS, NotProtected, "ICMP with IHL 4");
    let mut bad = syn("192.0.2.99", "10.77.0.1", 80).build();
    bad[14 + 20 + 12] = 0x40; // TCP data offset 4 words
    h.expect(&bad, XDP_PASS, NotProtected, "TCP doff 4 to port 80");
    // A TCP segment of 8 bytes: ports, but no room for the rest of the header.
    for (port, action, counter) in [(80, XDP_PASS, NotProtected), (6379, XDP_DROP, Malformed)] {
        let mut short = syn("192.0.2.99", "10.77.0.1", port).build()[..14 + 20 + 8].to_vec();
        short[16..18].copy_from_slice(&28u16.to_be_bytes());
        h.expect(&short, action, counter, "8-byte TCP header");
    }
    let mut bad = syn("2001:db8::9", "fd77::1", 6379).build();
    bad[14 + 6] = 17; // UDP
    bad[14 + 4..14 + 6].copy_from_slice(&9000u16.to_be_bytes()); // beyond the frame
    h.expect(&bad, XDP_PASS, NotProtected, "IPv6 UDP with a bad length");
}

#[test]
fn fragments() {
    let mut h = Harness::new("");
    use Counter::*;
    let mut f = syn("192.0.2.99", "10.77.0.1", 6379);
    f.fragment = Some(Fragment {
        offset: 0,
        more: true,
    });
    h.expect(
        &f.build(),
        XDP_DROP,
        DroppedNotAllowed,
        "v4 first fragment judged by its ports",
    );
    f.fragment = Some(Fragment {
        offset: 100,
        more: false,
    });
    h.expect(
        &f.build(),
        XDP_PASS,
        Fragments,
        "v4 later fragment has no ports: passed, counted",
    );
    f.fragment = Some(Fragment {
        offset: 1,
        more: true,
    });
    h.expect(
        &f.build(),
        XDP_DROP,
        Malformed,
        "v4 offset-1 overlap fragment",
    );

    let mut f = syn("2001:db8::9", "fd77::1", 6379);
    f.fragment = Some(Fragment {
        offset: 0,
        more: true,
    });
    h.expect(&f.build(), XDP_DROP, DroppedNotAllowed, "v6 first fragment");
    f.fragment = Some(Fragment {
        offset: 50,
        more: false,
    });
    h.expect(&f.build(), XDP_PASS, Fragments, "v6 later fragment");
}

#[test]
fn http_at_stream_start_is_marked_and_the_flow_dropped() {
    let mut h = Harness::new("");
    use Counter::*;
    let mut ring = h.fw.take_events().unwrap();
    let flow = syn("10.77.1.2", "10.77.0.1", 6379);
    h.expect(&flow.build(), XDP_PASS, Passed, "SYN");
    let (action, delta) = h.run(
        &flow
            .data(1001, b"POST / HTTP/1.1\r\nHost: x\r\n\r\nFLUSHALL\r\n")
            .build(),
    );
    assert_eq!(action, XDP_DROP);
    assert_eq!(delta.get(DroppedHttp), 1);
    assert_eq!(delta.get(MarkedHttp), 1);
    h.expect(
        &flow.data(1040, b"*1\r\n$8\r\nFLUSHALL\r\n").build(),
        XDP_DROP,
        DroppedHttp,
        "rest of a marked flow",
    );
    let mut rst = flow.data(1040, b"");
    rst.flags = tcp_flags::RST;
    h.expect(&rst.build(), XDP_PASS, Passed, "bare RST of a marked flow");

    let item = ring.next().expect("a flow_marked event");
    let ev: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    drop(item);
    let fields = flow_event_fields(&ev);
    assert_eq!(fields["src"], "10.77.1.2");
    assert_eq!(fields["sport"], 40000);
    assert_eq!(fields["dst"], "10.77.0.1");
    assert_eq!(fields["dport"], 6379);
    assert_eq!(fields["reason"], "http");
    assert_eq!(fields["action"], "dropped");

    // A new SYN on the same 5-tuple is a new connection, judged afresh.
    h.expect(
        &flow.build(),
        XDP_PASS,
        Passed,
        "SYN reusing a marked tuple",
    );
    h.expect(
        &flow.data(1001, b"*1\r\n$4\r\nPING\r\n").build(),
        XDP_PASS,
        Passed,
        "RESP on the reused tuple",
    );
}

#[test]
fn http_detection_table() {
    use Counter::*;
    let cases: &[(&[u8], u32, Counter)] = &[
        (b"POST / HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"GET / HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"GET /index.html HTTP/1.0\r\n", XDP_DROP, DroppedHttp),
        (b"PUT /x HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"HEAD / HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"OPTIONS * HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"DELETE /k HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"patch /k HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"CONNECT redis:6379 HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"TRACE / HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"GET http://victim/ HTTP/1.1\r\n", XDP_DROP, DroppedHttp),
        (b"Host: 10.77.0.1:6379\r\n", XDP_DROP, DroppedHttp),
        (b"host:x\r\n", XDP_DROP, DroppedHttp),
        // Servers accept empty lines before the request line and any run of
        // blanks after the method; so must the guard.
        (b"\r\nPUT / HTTP/1.0\r\n", XDP_DROP, DroppedHttp),
        (b"\r\n\r\nHost: x\r\n", XDP_DROP, DroppedHttp),
        (b"PUT  / HTTP/1.0\r\n", XDP_DROP, DroppedHttp),
        (b"PUT\t/ HTTP/1.0\r\n", XDP_DROP, DroppedHttp),
        (
            b"GET /a/path/longer/than/the/window HTTP/1.1\r\n",
            XDP_DROP,
            DroppedHttp,
        ),
        (b"GET /k", XDP_DROP, DroppedHttp),
        // Redis inline commands and RESP must pass.
        (b"GET key\r\n", XDP_PASS, Passed),
        (b"GET http\r\n", XDP_PASS, Passed),
        // An inline GET of a key that starts with '/': its line ends in view
        // without an HTTP version.
        (b"GET /foo\r\n", XDP_PASS, Passed),
        (b"GET /foo\n", XDP_PASS, Passed),
        (b"GETRANGE /k 0 1\r\n", XDP_PASS, Passed),
        (b"PING\r\n", XDP_PASS, Passed),
        (b"SET post 1\r\n", XDP_PASS, Passed),
        (b"OPTIONS x\r\n", XDP_PASS, Passed),
        (b"*2\r\n$3\r\nGET\r\n$1\r\n/\r\n", XDP_PASS, Passed),
        (b"POST", XDP_PASS, Passed),
    ];
    let mut h = Harness::new("");
    for (i, (payload, action, counter)) in cases.iter().enumerate() {
        let mut flow = syn("10.77.1.2", "10.77.0.1", 6379);
        flow.sport = 20000 + i as u16;
        h.run(&flow.build());
        h.expect(
            &flow.data(1001, payload).build(),
            *action,
            *counter,
            &String::from_utf8_lossy(payload),
        );
    }
}

#[test]
fn post_in_a_later_segment_passes() {
    let mut h = Harness::new("");
    let flow = syn("10.77.1.2", "10.77.0.1", 6379);
    h.run(&flow.build());
    let first = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$17\r\n";
    h.expect(
        &flow.data(1001, first).build(),
        XDP_PASS,
        Counter::Passed,
        "RESP stream start",
    );
    h.expect(
        &flow
            .data(1001 + first.len() as u32, b"POST /x HTTP/1.1\r\n")
            .build(),
        XDP_PASS,
        Counter::Passed,
        "HTTP-looking bytes inside a pipelined RESP value",
    );
    // A retransmission of the first segment is inspected again, same verdict.
    h.expect(
        &flow.data(1001, first).build(),
        XDP_PASS,
        Counter::Passed,
        "retransmitted stream start",
    );
}

#[test]
fn tcp_fast_open_payload_in_syn_is_inspected() {
    let mut h = Harness::new("");
    let mut f = syn("10.77.1.2", "10.77.0.1", 6379);
    f.payload = b"POST / HTTP/1.1\r\n".to_vec();
    h.expect(
        &f.build(),
        XDP_DROP,
        Counter::DroppedHttp,
        "HTTP in SYN data",
    );
}

#[test]
fn flows_without_a_seen_syn_are_untracked_and_pass() {
    let mut h = Harness::new("");
    let flow = syn("10.77.1.2", "10.77.0.1", 6379);
    let (action, delta) = h.run(&flow.data(555, b"POST / HTTP/1.1\r\n").build());
    assert_eq!(action, XDP_PASS, "established before attach: not inspected");
    assert_eq!(delta.get(Counter::Untracked), 1);
    assert_eq!(delta.get(Counter::Passed), 1);
}

#[test]
fn resp_only_marks_non_resp_streams() {
    let mut h = Harness::new("resp_only = true");
    let cases: &[(&[u8], u32, Counter)] = &[
        (b"PING\r\n", XDP_DROP, Counter::DroppedNotResp),
        (b"GET key\r\n", XDP_DROP, Counter::DroppedNotResp),
        (b"*1\r\n$4\r\nPING\r\n", XDP_PASS, Counter::Passed),
        (b"POST / HTTP/1.1\r\n", XDP_DROP, Counter::DroppedHttp),
    ];
    for (i, (payload, action, counter)) in cases.iter().enumerate() {
        let mut flow = syn("10.77.1.2", "10.77.0.1", 6379);
        flow.sport = 30000 + i as u16;
        h.run(&flow.build());
        h.expect(
            &flow.data(1001, payload).build(),
            *action,
            *counter,
            &String::from_utf8_lossy(payload),
        );
    }
    let mut flow = syn("10.77.1.2", "10.77.0.1", 6379);
    flow.sport = 31000;
    h.run(&flow.build());
    h.run(&flow.data(1001, b"PING\r\n").build());
    h.expect(
        &flow.data(1007, b"*1\r\n$4\r\nPING\r\n").build(),
        XDP_DROP,
        Counter::DroppedNotResp,
        "rest of a not-RESP flow",
    );
}

#[test]
fn http_guard_off_passes_http() {
    let mut h = Harness::new("http_guard = false");
    let flow = syn("10.77.1.2", "10.77.0.1", 6379);
    h.run(&flow.build());
    h.expect(
        &flow.data(1001, b"POST / HTTP/1.1\r\n").build(),
        XDP_PASS,
        Counter::Passed,
        "guard disabled",
    );
}

#[test]
fn audit_mode_counts_every_verdict_and_drops_nothing() {
    let mut h = Harness::new("mode = \"audit\"");
    let mut ring = h.fw.take_events().unwrap();
    for (frame, counter) in [
        (
            syn("192.0.2.8", "10.77.0.1", 6379).build(),
            Counter::DroppedNotAllowed,
        ),
        (
            syn("10.77.9.1", "10.77.0.1", 6379).build(),
            Counter::DroppedDenied,
        ),
        (
            syn("10.77.1.2", "10.77.0.1", 6379).build()[..40].to_vec(),
            Counter::Malformed,
        ),
    ] {
        let (action, delta) = h.run(&frame);
        assert_eq!(action, XDP_PASS);
        assert_eq!(delta.get(counter), 1, "{}", delta.to_json());
        assert_eq!(delta.get(Counter::AuditPassed), 1);
    }
    let flow = syn("10.77.1.2", "10.77.0.1", 6379);
    h.run(&flow.build());
    let (action, delta) = h.run(&flow.data(1001, b"POST / HTTP/1.1\r\n").build());
    assert_eq!(action, XDP_PASS);
    assert_eq!(delta.get(Counter::DroppedHttp), 1);
    assert_eq!(delta.get(Counter::MarkedHttp), 1);
    let item = ring
        .next()
        .expect("audit mode still reports the marked flow");
    let ev: FlowEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
    assert_eq!(flow_event_fields(&ev)["action"], "audited");
}

#[test]
fn policy_reload_updates_maps_in_place() {
    let mut h = Harness::new("");
    h.expect(
        &syn("198.51.100.1", "10.77.0.1", 6379).build(),
        XDP_DROP,
        Counter::DroppedNotAllowed,
        "before reload",
    );
    let new = Policy::parse(
        Path::new("t.toml"),
        "[firewall]\ninterfaces=[\"lo\"]\nports=[6380]\nallow=[\"198.51.100.0/24\"]\n",
    )
    .unwrap();
    h.fw.apply(new.firewall.as_ref().unwrap()).unwrap();
    h.expect(
        &syn("198.51.100.1", "10.77.0.1", 6380).build(),
        XDP_PASS,
        Counter::Passed,
        "newly allowed on the new port",
    );
    h.expect(
        &syn("10.77.1.2", "10.77.0.1", 6380).build(),
        XDP_DROP,
        Counter::DroppedNotAllowed,
        "old allow entry removed",
    );
    h.expect(
        &syn("198.51.100.1", "10.77.0.1", 6379).build(),
        XDP_PASS,
        Counter::NotProtected,
        "old port no longer protected",
    );
}

/// An update that fails part-way (here a list larger than the kernel's
/// table, which only a policy built in code can carry past validation) puts
/// the previous policy back: its deny entries, its ports, its allowlist.
#[test]
fn a_failed_policy_update_leaves_the_previous_policy_in_force() {
    let mut h = Harness::new("");
    let policy = |text: &str| {
        Policy::parse(Path::new("t.toml"), text)
            .unwrap()
            .firewall
            .unwrap()
    };
    let before = policy(
        "[firewall]\ninterfaces=[\"lo\"]\nports=[6379]\nallow=[\"192.0.2.0/24\"]\ndeny=[\"192.0.2.9\"]\n",
    );
    h.fw.apply(&before).unwrap();
    let mut oversize = policy("[firewall]\ninterfaces=[\"lo\"]\nports=[6380]\n");
    oversize.allow = (0..70_000u32)
        .map(|i| {
            ipnet::IpNet::from(std::net::IpAddr::from(std::net::Ipv4Addr::from(
                0x0b00_0000 + (i << 8),
            )))
        })
        .collect();
    let err = h.fw.apply(&oversize).unwrap_err();
    assert!(err.to_string().contains("ALLOW_V4"), "{err}");
    use Counter::*;
    h.expect(
        &syn("192.0.2.9", "10.77.0.1", 6379).build(),
        XDP_DROP,
        DroppedDenied,
        "the previous deny entry",
    );
    h.expect(
        &syn("192.0.2.8", "10.77.0.1", 6379).build(),
        XDP_PASS,
        Passed,
        "the previous allowlist",
    );
    h.expect(
        &syn("11.0.0.1", "10.77.0.1", 6379).build(),
        XDP_DROP,
        DroppedNotAllowed,
        "nothing of the failed allowlist",
    );
    h.expect(
        &syn("192.0.2.8", "10.77.0.1", 6380).build(),
        XDP_PASS,
        NotProtected,
        "nothing of the failed ports",
    );
    // The next good update still diffs against what the maps really hold.
    h.fw.apply(&policy("[firewall]\ninterfaces=[\"lo\"]\nports=[6381]\n"))
        .unwrap();
    h.expect(
        &syn("192.0.2.9", "10.77.0.1", 6379).build(),
        XDP_PASS,
        NotProtected,
        "6379 released",
    );
}

/// A flow that started while the program was attached remembers that its
/// source was allowed, so later packets skip the tries; a policy change must
/// void that memory at once, for flows already running.
#[test]
fn running_flows_are_judged_again_after_a_policy_change() {
    let mut h = Harness::new("");
    use Counter::*;
    let flow = syn("192.0.2.7", "10.77.0.1", 6379);
    h.expect(&flow.build(), XDP_PASS, Passed, "SYN");
    h.expect(
        &flow.data(1001, b"*1\r\n$4\r\nPING\r\n").build(),
        XDP_PASS,
        Passed,
        "stream start",
    );
    let mid = flow.data(1015, b"*1\r\n$4\r\nPING\r\n").build();
    h.expect(&mid, XDP_PASS, Passed, "mid-stream");
    let reload = |h: &mut Harness, allow: &str, deny: &str| {
        let text = format!(
            "[firewall]\ninterfaces=[\"lo\"]\nports=[6379]\nallow=[{allow}]\ndeny=[{deny}]\n"
        );
        let p = Policy::parse(Path::new("t.toml"), &text).unwrap();
        h.fw.apply(p.firewall.as_ref().unwrap()).unwrap();
    };
    reload(&mut h, "\"192.0.2.7\"", "\"192.0.2.7\"");
    h.expect(&mid, XDP_DROP, DroppedDenied, "denied by a reload");
    reload(&mut h, "\"10.77.0.0/16\"", "");
    h.expect(
        &mid,
        XDP_DROP,
        DroppedNotAllowed,
        "allow entry removed by a reload",
    );
    reload(&mut h, "\"192.0.2.0/24\"", "");
    h.expect(&mid, XDP_PASS, Passed, "allowed again");
    h.expect(&mid, XDP_PASS, Passed, "allowed again, remembered");
}

/// A marked flow's record can be evicted from the LRU `MARKED` table under
/// pressure; the flow's own state still says it is marked.
#[test]
fn a_marked_flow_stays_dropped_when_its_record_is_evicted() {
    let mut h = Harness::new("");
    use Counter::*;
    let flow = syn("10.77.1.2", "10.77.0.1", 6379);
    h.expect(&flow.build(), XDP_PASS, Passed, "SYN");
    h.expect(
        &flow.data(1001, b"POST / HTTP/1.1\r\n").build(),
        XDP_DROP,
        DroppedHttp,
        "HTTP at stream start",
    );
    {
        let map = h.fw.ebpf_mut().map_mut("MARKED").unwrap();
        let mut marked: aya::maps::HashMap<
            _,
            redis_guard_common::FlowKey,
            redis_guard_common::MarkedFlow,
        > = aya::maps::HashMap::try_from(map).unwrap();
        let keys: Vec<_> = marked.keys().map(Result::unwrap).collect();
        assert_eq!(keys.len(), 1);
        marked.remove(&keys[0]).unwrap();
    }
    h.expect(
        &flow.data(1019, b"*1\r\n$8\r\nFLUSHALL\r\n").build(),
        XDP_DROP,
        DroppedHttp,
        "rest of the flow after its record was evicted",
    );
    h.expect(&flow.build(), XDP_PASS, Passed, "a new SYN on the tuple");
    h.expect(
        &flow.data(1001, b"*1\r\n$4\r\nPING\r\n").build(),
        XDP_PASS,
        Passed,
        "RESP on the reused tuple",
    );
}

/// The program judges the flood's shape (plain IPv4 TCP from a /24 the block
/// bitmap settles) from fixed offsets before the full parser runs. Every
/// variation around that shape must get exactly the full parser's verdict
/// and counter.
#[test]
fn fixed_offset_flood_path_agrees_with_the_full_parser() {
    let mut h = Harness::new("");
    use Counter::*;
    let outsider = syn("192.0.2.99", "10.77.0.1", 6379).build();
    h.expect(&outsider, XDP_DROP, DroppedNotAllowed, "plain outsider SYN");
    for len in 14..outsider.len() {
        let (action, delta) = h.run(&outsider[..len]);
        assert_eq!(action, XDP_DROP, "outsider truncated to {len} passed");
        assert_eq!(
            delta.get(Malformed),
            1,
            "truncated to {len}: {}",
            delta.to_json()
        );
    }
    let mut padded = outsider.clone();
    padded.extend_from_slice(&[0; 6]);
    h.expect(
        &padded,
        XDP_DROP,
        DroppedNotAllowed,
        "Ethernet padding after the IP packet",
    );
    let mut bad = outsider.clone();
    bad[16] = 0xff;
    h.expect(
        &bad,
        XDP_DROP,
        Malformed,
        "IP total length beyond the frame",
    );
    let mut bad = outsider.clone();
    bad[14 + 20 + 12] = 0xf0;
    h.expect(
        &bad,
        XDP_DROP,
        Malformed,
        "TCP data offset beyond the packet",
    );
    let mut bad = outsider.clone();
    bad[23] = 17;
    h.expect(&bad, XDP_PASS, NotProtected, "UDP is not ours");
    let mut opts = syn("192.0.2.99", "10.77.0.1", 6379);
    opts.ipv4_options = vec![1, 1, 1, 0];
    h.expect(
        &opts.build(),
        XDP_DROP,
        DroppedNotAllowed,
        "IP options take the full path",
    );
    let mut tagged = syn("192.0.2.99", "10.77.0.1", 6379);
    tagged.vlans = vec![(0x8100, 7)];
    h.expect(
        &tagged.build(),
        XDP_DROP,
        DroppedNotAllowed,
        "VLAN tag takes the full path",
    );
    let mut first = syn("192.0.2.99", "10.77.0.1", 6379);
    first.fragment = Some(Fragment {
        offset: 0,
        more: true,
    });
    h.expect(
        &first.build(),
        XDP_DROP,
        DroppedNotAllowed,
        "first fragment",
    );
    for (src, port, action, counter, what) in [
        (
            "10.77.9.5",
            6379,
            XDP_DROP,
            DroppedDenied,
            "denied /24 inside an allowed /16",
        ),
        (
            "10.77.5.5",
            6379,
            XDP_DROP,
            DroppedDenied,
            "denied /32 inside an allowed /24",
        ),
        ("10.77.5.6", 6379, XDP_PASS, Passed, "its allowed neighbour"),
        (
            "198.51.100.20",
            6379,
            XDP_PASS,
            Passed,
            "inside an allowed /28",
        ),
        (
            "198.51.100.40",
            6379,
            XDP_DROP,
            DroppedNotAllowed,
            "same /24, outside the /28",
        ),
        (
            "192.0.2.99",
            80,
            XDP_PASS,
            NotProtected,
            "outsider to an unprotected port",
        ),
    ] {
        h.expect(&syn(src, "10.77.0.1", port).build(), action, counter, what);
    }
}
