//! Building Ethernet/IP/TCP frames byte by byte.
//!
//! The verdict tests feed these to the real XDP program through
//! BPF_PROG_TEST_RUN, and `cargo xtask bench xdp` uses them as the SYN flood.
//! Everything a parser can trip on is a knob: VLAN tags, IPv4 options, IPv6
//! extension headers, fragments. Checksums are correct, so frames that pass
//! XDP are also accepted by the kernel stack behind it.

use std::net::IpAddr;

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// Fragmentation of the IP packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// Offset in 8-byte units.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// A TCP segment in an Ethernet frame.
#[derive(Clone, Debug)]
pub struct TcpFrame {
    /// Source address (v4 and v6 must not be mixed with `dst`).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Flag bits, see [`tcp_flags`].
    pub flags: u8,
    /// Segment payload.
    pub payload: Vec<u8>,
    /// VLAN tags, outermost first, as (TPID, VID).
    pub vlans: Vec<(u16, u16)>,
    /// Raw IPv4 options (padded to 4 bytes).
    pub ipv4_options: Vec<u8>,
    /// IPv6 extension headers as (type, body); the first two bytes (next
    /// header, length) are filled in and the body is padded to 8n - 2.
    pub ipv6_ext: Vec<(u8, Vec<u8>)>,
    /// IP fragmentation (IPv6 adds a fragment header).
    pub fragment: Option<Fragment>,
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
}

impl TcpFrame {
    /// A bare SYN from `src:sport` to `dst:dport` with sequence number `seq`.
    pub fn syn(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, seq: u32) -> TcpFrame {
        TcpFrame {
            src,
            dst,
            sport,
            dport,
            seq,
            ack: 0,
            flags: tcp_flags::SYN,
            payload: Vec::new(),
            vlans: Vec::new(),
            ipv4_options: Vec::new(),
            ipv6_ext: Vec::new(),
            fragment: None,
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
        }
    }

    /// The same flow with a data segment (ACK|PSH) at `seq` carrying `payload`.
    pub fn data(&self, seq: u32, payload: &[u8]) -> TcpFrame {
        TcpFrame {
            seq,
            ack: 1,
            flags: tcp_flags::ACK | tcp_flags::PSH,
            payload: payload.to_vec(),
            ..self.clone()
        }
    }

    /// Serialises the frame.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.payload.len());
        out.extend_from_slice(&self.dst_mac);
        out.extend_from_slice(&self.src_mac);
        for (tpid, vid) in &self.vlans {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&(vid & 0x0fff).to_be_bytes());
        }
        let tcp = self.tcp_segment();
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                out.extend_from_slice(&0x0800u16.to_be_bytes());
                let mut opts = self.ipv4_options.clone();
                while !opts.len().is_multiple_of(4) {
                    opts.push(0);
                }
                let ihl = 5 + opts.len() / 4;
                let total = ihl * 4 + tcp.len();
                let frag = self.fragment.unwrap_or_default();
                let frag_field = (frag.offset & 0x1fff) | if frag.more { 0x2000 } else { 0 };
                let mut ip = Vec::with_capacity(ihl * 4);
                ip.push(0x40 | ihl as u8);
                ip.push(0);
                ip.extend_from_slice(&(total as u16).to_be_bytes());
                ip.extend_from_slice(&0x1234u16.to_be_bytes());
                ip.extend_from_slice(&frag_field.to_be_bytes());
                ip.push(64);
                ip.push(6);
                ip.extend_from_slice(&[0, 0]);
                ip.extend_from_slice(&src.octets());
                ip.extend_from_slice(&dst.octets());
                ip.extend_from_slice(&opts);
                let sum = checksum(&ip, 0);
                ip[10..12].copy_from_slice(&sum.to_be_bytes());
                out.extend_from_slice(&ip);
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                out.extend_from_slice(&0x86ddu16.to_be_bytes());
                let mut ext: Vec<(u8, Vec<u8>)> = self.ipv6_ext.clone();
                if let Some(frag) = self.fragment {
                    let field = (frag.offset << 3) | u16::from(frag.more);
                    let mut body = field.to_be_bytes().to_vec();
                    body.extend_from_slice(&0xdead_beefu32.to_be_bytes());
                    ext.push((44, body));
                }
                let mut headers = Vec::new();
                for (i, (kind, body)) in ext.iter().enumerate() {
                    let next = ext.get(i + 1).map_or(6, |(k, _)| *k);
                    let mut body = body.clone();
                    if *kind == 44 {
                        headers.push(next);
                        headers.push(0);
                        headers.extend_from_slice(&body);
                        continue;
                    }
                    if *kind == 51 {
                        while (body.len() + 2) % 4 != 0 {
                            body.push(0);
                        }
                        headers.push(next);
                        headers.push(((body.len() + 2) / 4 - 2) as u8);
                    } else {
                        while (body.len() + 2) % 8 != 0 {
                            body.push(0);
                        }
                        headers.push(next);
                        headers.push(((body.len() + 2) / 8 - 1) as u8);
                    }
                    headers.extend_from_slice(&body);
                }
                let first = ext.first().map_or(6, |(k, _)| *k);
                out.extend_from_slice(&[0x60, 0, 0, 0]);
                out.extend_from_slice(&((headers.len() + tcp.len()) as u16).to_be_bytes());
                out.push(first);
                out.push(64);
                out.extend_from_slice(&src.octets());
                out.extend_from_slice(&dst.octets());
                out.extend_from_slice(&headers);
            }
            _ => panic!("TcpFrame: source and destination address families differ"),
        }
        out.extend_from_slice(&tcp);
        out
    }

    fn tcp_segment(&self) -> Vec<u8> {
        let mut tcp = Vec::with_capacity(20 + self.payload.len());
        tcp.extend_from_slice(&self.sport.to_be_bytes());
        tcp.extend_from_slice(&self.dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq.to_be_bytes());
        tcp.extend_from_slice(&self.ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(self.flags);
        tcp.extend_from_slice(&64240u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(&self.payload);
        let len = tcp.len() as u32;
        let pseudo = match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut p = Vec::with_capacity(12);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&[0, 6]);
                p.extend_from_slice(&(len as u16).to_be_bytes());
                p
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let mut p = Vec::with_capacity(40);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&len.to_be_bytes());
                p.extend_from_slice(&[0, 0, 0, 6]);
                p
            }
            _ => Vec::new(),
        };
        let sum = checksum(&tcp, sum_words(&pseudo));
        tcp[16..18].copy_from_slice(&sum.to_be_bytes());
        tcp
    }
}

fn sum_words(data: &[u8]) -> u32 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum = sum.wrapping_add(u32::from(word));
    }
    sum
}

/// RFC 1071 Internet checksum of `data`, starting from a partial sum.
pub fn checksum(data: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial) + u64::from(sum_words(data));
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ARP request frame (not IP: the program must pass it untouched).
pub fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 10, 77, 0, 1]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[10, 77, 0, 2]);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let f = TcpFrame::syn(
            "10.0.0.1".parse().unwrap(),
            1234,
            "10.0.0.2".parse().unwrap(),
            6379,
            1,
        )
        .build();
        assert_eq!(checksum(&f[14..34], 0), 0);
        assert_eq!(f.len(), 14 + 20 + 20);
    }

    #[test]
    fn ipv6_ext_headers_are_padded_and_chained() {
        let mut f = TcpFrame::syn(
            "fd00::1".parse().unwrap(),
            1234,
            "fd00::2".parse().unwrap(),
            6379,
            1,
        );
        f.ipv6_ext = vec![(0, vec![1, 2, 3]), (60, vec![])];
        let bytes = f.build();
        assert_eq!(bytes[14 + 6], 0, "first next header is hop-by-hop");
        assert_eq!(bytes[54], 60, "hop-by-hop chains to destination options");
        assert_eq!(bytes[62], 6, "destination options chain to TCP");
    }
}
