//! RESP2/RESP3 reply encoding.
//!
//! Replies are written straight into the connection's reusable output buffer
//! instead of building a tree first: a pipelined batch then costs no
//! allocation per command. The few places that need a value before knowing
//! where it goes (pub/sub messages, blocked-client wake-ups) use [`Frame`].

use bytes::{BufMut, BytesMut};

/// A reply value, for replies that are built before being encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+text`
    Simple(String),
    /// `-text` (the text starts with the error code, e.g. `ERR`)
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$len` + data
    Bulk(Vec<u8>),
    /// RESP2 `$-1`, RESP3 `_`
    Null,
    /// RESP2 `*-1`, RESP3 `_`
    NullArray,
    /// `*n`
    Array(Vec<Frame>),
    /// RESP3 `%n` (flattened to an array in RESP2)
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~n` (an array in RESP2)
    Set(Vec<Frame>),
    /// RESP3 `,d` (a bulk string in RESP2)
    Double(f64),
    /// RESP3 `>n` (an array in RESP2)
    Push(Vec<Frame>),
}

impl Frame {
    /// Encodes the frame for the given protocol version.
    pub fn encode(&self, out: &mut Out<'_>) {
        match self {
            Frame::Simple(s) => out.simple(s),
            Frame::Error(e) => out.error(e),
            Frame::Integer(n) => out.int(*n),
            Frame::Bulk(b) => out.bulk(b),
            Frame::Null => out.null(),
            Frame::NullArray => out.null_array(),
            Frame::Array(v) => {
                out.array(v.len());
                v.iter().for_each(|f| f.encode(out));
            }
            Frame::Set(v) => {
                out.set(v.len());
                v.iter().for_each(|f| f.encode(out));
            }
            Frame::Push(v) => {
                out.push(v.len());
                v.iter().for_each(|f| f.encode(out));
            }
            Frame::Map(v) => {
                out.map(v.len());
                for (k, val) in v {
                    k.encode(out);
                    val.encode(out);
                }
            }
            Frame::Double(d) => out.double(*d),
        }
    }
}

/// A reply writer bound to one client's output buffer and protocol version.
pub struct Out<'a> {
    /// The connection's output buffer.
    pub buf: &'a mut BytesMut,
    /// Whether the client negotiated RESP3 with `HELLO 3`.
    pub resp3: bool,
}

impl<'a> Out<'a> {
    /// Wraps `buf` for a client speaking RESP3 when `resp3` is set.
    pub fn new(buf: &'a mut BytesMut, resp3: bool) -> Self {
        Out { buf, resp3 }
    }

    fn line(&mut self, prefix: u8, n: i64) {
        self.buf.put_u8(prefix);
        let mut b = itoa_buf();
        self.buf.put_slice(fmt_i64(n, &mut b));
        self.buf.put_slice(b"\r\n");
    }

    /// An array of simple strings: the shape of every `... HELP` reply.
    pub fn simple_lines(&mut self, lines: &[&str]) {
        self.array(lines.len());
        for l in lines {
            self.simple(l);
        }
    }

    /// `+OK`
    pub fn ok(&mut self) {
        self.buf.put_slice(b"+OK\r\n");
    }
    /// A status reply; `s` must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.buf.put_u8(b'+');
        self.buf.put_slice(s.as_bytes());
        self.buf.put_slice(b"\r\n");
    }
    /// An error reply; line breaks are replaced so a reply can never be split.
    pub fn error(&mut self, s: &str) {
        self.buf.put_u8(b'-');
        for b in s.bytes() {
            self.buf
                .put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        self.buf.put_slice(b"\r\n");
    }
    /// `:n`
    pub fn int(&mut self, n: i64) {
        self.line(b':', n);
    }
    /// A bulk string.
    pub fn bulk(&mut self, data: &[u8]) {
        self.line(b'$', data.len() as i64);
        self.buf.put_slice(data);
        self.buf.put_slice(b"\r\n");
    }
    /// A bulk string holding the decimal form of `n`.
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa_buf();
        let s = fmt_i64(n, &mut b);
        let len = s.len();
        self.line(b'$', len as i64);
        self.buf.put_slice(&b[..len]);
        self.buf.put_slice(b"\r\n");
    }
    /// A null bulk string.
    pub fn null(&mut self) {
        if self.resp3 {
            self.buf.put_slice(b"_\r\n");
        } else {
            self.buf.put_slice(b"$-1\r\n");
        }
    }
    /// A null array (e.g. a timed-out `BLPOP`).
    pub fn null_array(&mut self) {
        if self.resp3 {
            self.buf.put_slice(b"_\r\n");
        } else {
            self.buf.put_slice(b"*-1\r\n");
        }
    }
    /// Array header for `n` elements.
    pub fn array(&mut self, n: usize) {
        self.line(b'*', n as i64);
    }
    /// Map header for `n` pairs (an array of `2n` elements in RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3 {
            self.line(b'%', n as i64);
        } else {
            self.line(b'*', 2 * n as i64);
        }
    }
    /// Set header for `n` elements.
    pub fn set(&mut self, n: usize) {
        self.line(if self.resp3 { b'~' } else { b'*' }, n as i64);
    }
    /// Push header for `n` elements (out-of-band data such as pub/sub messages).
    pub fn push(&mut self, n: usize) {
        self.line(if self.resp3 { b'>' } else { b'*' }, n as i64);
    }
    /// A double: RESP3 `,` type, a bulk string in RESP2 (both with `%.17g` like Redis 7.0).
    pub fn double(&mut self, d: f64) {
        let s = fmt_g17(d);
        if self.resp3 {
            self.buf.put_u8(b',');
            self.buf.put_slice(s.as_bytes());
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }
    /// A boolean: RESP3 `#t`/`#f`, `:1`/`:0` in RESP2.
    pub fn boolean(&mut self, b: bool) {
        if self.resp3 {
            self.buf.put_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }
    /// A verbatim text string (RESP3 `=` with `txt:`), a bulk string in RESP2.
    pub fn verbatim(&mut self, text: &[u8]) {
        if self.resp3 {
            self.line(b'=', text.len() as i64 + 4);
            self.buf.put_slice(b"txt:");
            self.buf.put_slice(text);
            self.buf.put_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }
    /// Appends already-encoded bytes.
    pub fn raw(&mut self, data: &[u8]) {
        self.buf.put_slice(data);
    }
}

fn itoa_buf() -> [u8; 24] {
    [0u8; 24]
}

/// Formats `n` into `buf` without allocating and returns the used prefix.
pub fn fmt_i64(n: i64, buf: &mut [u8; 24]) -> &[u8] {
    let neg = n < 0;
    let mut v = n.unsigned_abs();
    let mut tmp = [0u8; 24];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        tmp[i] = b'-';
    }
    let len = tmp.len() - i;
    buf[..len].copy_from_slice(&tmp[i..]);
    &buf[..len]
}

/// Formats a double like C's `%.17g`, which Redis 7.0 uses for scores.
pub fn fmt_g17(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{:.16e}", d);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..17).contains(&exp) {
        let decimals = (16 - exp).max(0) as usize;
        let s = format!("{:.*}", decimals, d);
        trim_fraction(&s)
    } else {
        let m = trim_fraction(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    }
}

fn trim_fraction(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17() {
        assert_eq!(fmt_g17(1.0), "1");
        assert_eq!(fmt_g17(1.1), "1.1000000000000001");
        assert_eq!(fmt_g17(1.5), "1.5");
        assert_eq!(fmt_g17(-2.25), "-2.25");
        assert_eq!(fmt_g17(1e20), "1e+20");
        assert_eq!(fmt_g17(123456789.0), "123456789");
        assert_eq!(fmt_g17(0.0001), "0.0001");
        assert_eq!(fmt_g17(f64::INFINITY), "inf");
    }

    #[test]
    fn ints() {
        let mut b = [0u8; 24];
        assert_eq!(fmt_i64(i64::MIN, &mut b), b"-9223372036854775808");
        assert_eq!(fmt_i64(0, &mut b), b"0");
        assert_eq!(fmt_i64(42, &mut b), b"42");
    }
}
