//! Streaming request parser: RESP multibulk and inline commands.
//!
//! The parser keeps its position inside a partially received multibulk
//! request, so a request delivered in many small reads is scanned once rather
//! than from the start on every read. Bulk payloads are never copied: a
//! complete request is split off the read buffer and its arguments are slices
//! of that one shared allocation.

use bytes::{Buf, Bytes, BytesMut};

use crate::store::config::MAX_MULTIBULK_LEN;

/// Longest inline request (and longest `*`/`$` header line) Redis accepts.
pub const INLINE_MAX: usize = 64 * 1024;

/// A malformed request. The connection replies with [`ProtoError::message`]
/// and is closed, like Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    /// Bad or too large `*<count>`.
    #[error("ERR Protocol error: invalid multibulk length")]
    InvalidMultibulkLen,
    /// Bad or too large `$<len>`.
    #[error("ERR Protocol error: invalid bulk length")]
    InvalidBulkLen,
    /// Something other than `$` where a bulk header was expected.
    #[error("ERR Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    /// An inline request without newline longer than [`INLINE_MAX`].
    #[error("ERR Protocol error: too big inline request")]
    TooBigInline,
    /// A `*` line without newline longer than [`INLINE_MAX`].
    #[error("ERR Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    /// A `$` line without newline longer than [`INLINE_MAX`].
    #[error("ERR Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// Inline request with an unterminated quote.
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// More than 10 arguments before authentication.
    #[error("ERR Protocol error: unauthenticated multibulk length")]
    UnauthMultibulkLen,
    /// A bulk longer than 16 KiB before authentication.
    #[error("ERR Protocol error: unauthenticated bulk length")]
    UnauthBulkLen,
}

impl ProtoError {
    /// The error reply text, without the leading `-`.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Incremental parser for one connection.
#[derive(Debug)]
pub struct Parser {
    max_bulk: u64,
    /// Arguments still expected in the current multibulk request (0 = none in progress).
    remaining: usize,
    /// Parse position inside the read buffer for the request in progress.
    pos: usize,
    ranges: Vec<(usize, usize)>,
}

impl Parser {
    /// A parser refusing bulks longer than `max_bulk` bytes.
    pub fn new(max_bulk: u64) -> Self {
        Parser {
            max_bulk,
            remaining: 0,
            pos: 0,
            ranges: Vec::new(),
        }
    }

    /// Tries to take one request off the front of `buf`.
    ///
    /// Returns `Ok(true)` with `args` filled (possibly empty, for blank lines
    /// and `*0`, which callers skip), `Ok(false)` when more data is needed.
    /// `authed` enables Redis's tighter limits for unauthenticated clients.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        args: &mut Vec<Bytes>,
        authed: bool,
    ) -> Result<bool, ProtoError> {
        args.clear();
        if self.remaining == 0 {
            if buf.is_empty() {
                return Ok(false);
            }
            if buf[0] != b'*' {
                return parse_inline(buf, args);
            }
            let Some(nl) = find_cr(buf, 1) else {
                if buf.len() > INLINE_MAX {
                    return Err(ProtoError::TooBigMbulkCount);
                }
                return Ok(false);
            };
            if nl + 1 >= buf.len() {
                return Ok(false);
            }
            let count = parse_int(&buf[1..nl]).ok_or(ProtoError::InvalidMultibulkLen)?;
            if count > MAX_MULTIBULK_LEN as i64 {
                return Err(ProtoError::InvalidMultibulkLen);
            }
            if !authed && count > 10 {
                return Err(ProtoError::UnauthMultibulkLen);
            }
            if count <= 0 {
                let _ = buf.split_to(nl + 2);
                return Ok(true);
            }
            self.remaining = count as usize;
            self.pos = nl + 2;
            self.ranges.clear();
            self.ranges.reserve(self.remaining.min(1024));
        }
        while self.remaining > 0 {
            let pos = self.pos;
            if pos >= buf.len() {
                return Ok(false);
            }
            if buf[pos] != b'$' {
                return Err(ProtoError::ExpectedDollar(buf[pos] as char));
            }
            let Some(nl) = find_cr(buf, pos + 1) else {
                if buf.len() - pos > INLINE_MAX {
                    return Err(ProtoError::TooBigBulkCount);
                }
                return Ok(false);
            };
            if nl + 1 >= buf.len() {
                return Ok(false);
            }
            let len = parse_int(&buf[pos + 1..nl]).ok_or(ProtoError::InvalidBulkLen)?;
            if len < 0 || len as u64 > self.max_bulk {
                return Err(ProtoError::InvalidBulkLen);
            }
            if !authed && len > 16384 {
                return Err(ProtoError::UnauthBulkLen);
            }
            let start = nl + 2;
            let end = start + len as usize;
            if buf.len() < end + 2 {
                // Grow towards the payload size, but never trust a declared
                // length for more than 1 MiB at a time: a client could
                // otherwise make us allocate 512 MB by sending one header.
                let need = end + 2 - buf.len();
                buf.reserve(need.min(1 << 20));
                return Ok(false);
            }
            self.ranges.push((start, end));
            self.pos = end + 2;
            self.remaining -= 1;
        }
        // Each argument is split off the buffer by itself: one reference
        // count increment per argument, where a frame split off whole and
        // then sliced cost two more atomic operations per request.
        let mut at = 0;
        for &(s, e) in &self.ranges {
            buf.advance(s - at);
            args.push(buf.split_to(e - s).freeze());
            at = e;
        }
        buf.advance(self.pos - at);
        self.pos = 0;
        self.ranges.clear();
        Ok(true)
    }
}

fn find_cr(buf: &[u8], from: usize) -> Option<usize> {
    if from >= buf.len() {
        return None;
    }
    memchr(b'\r', &buf[from..]).map(|i| i + from)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses a strict decimal integer like Redis's `string2ll`.
pub fn parse_int(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    if neg && v == 0 {
        return None;
    }
    Some(v)
}

fn parse_inline(buf: &mut BytesMut, args: &mut Vec<Bytes>) -> Result<bool, ProtoError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > INLINE_MAX {
            return Err(ProtoError::TooBigInline);
        }
        return Ok(false);
    };
    let line = buf.split_to(nl + 1);
    let mut end = nl;
    if end > 0 && line[end - 1] == b'\r' {
        end -= 1;
    }
    let parts = split_args(&line[..end]).ok_or(ProtoError::UnbalancedQuotes)?;
    args.extend(parts.into_iter().map(Bytes::from));
    Ok(true)
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline request like Redis's `sdssplitargs`: whitespace separated,
/// with `"..."` (C escapes, `\xHH`) and `'...'` quoting. `None` on bad quoting.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        // isspace() in C: also vertical tab.
        while i < n && (line[i].is_ascii_whitespace() || line[i] == 0x0b) {
            i += 1;
        }
        // A NUL ends the line, as it ends the C string sdssplitargs walks.
        // (The token loop below stops at NUL too; not stopping here made it
        // push empty arguments forever: found by the fuzz target.)
        if i >= n || line[i] == 0 {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    cur.push(hex_val(line[i + 2])? * 16 + hex_val(line[i + 3])?);
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        break;
                    }
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(input: &[u8]) -> Result<Option<Vec<Vec<u8>>>, ProtoError> {
        let mut p = Parser::new(512 << 20);
        let mut b = BytesMut::from(input);
        let mut a = Vec::new();
        Ok(p.parse(&mut b, &mut a, true)?
            .then(|| a.iter().map(|x| x.to_vec()).collect()))
    }

    #[test]
    fn split_everywhere() {
        let req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for cut in 0..req.len() {
            let mut p = Parser::new(1024);
            let mut b = BytesMut::from(&req[..cut]);
            let mut a = Vec::new();
            assert!(!p.parse(&mut b, &mut a, true).unwrap(), "cut {cut}");
            b.extend_from_slice(&req[cut..]);
            assert!(p.parse(&mut b, &mut a, true).unwrap());
            assert_eq!(a.len(), 3);
            assert_eq!(&a[2][..], b"hello");
            assert!(b.is_empty());
        }
    }

    #[test]
    fn inline_quotes() {
        assert_eq!(
            one(b"set a \"x\\x41y\\n\"\r\n").unwrap().unwrap(),
            vec![b"set".to_vec(), b"a".to_vec(), b"xAy\n".to_vec()]
        );
        assert_eq!(one(b"set 'a b' c\n").unwrap().unwrap()[1], b"a b".to_vec());
        assert_eq!(one(b"set \"a\n"), Err(ProtoError::UnbalancedQuotes));
        assert_eq!(one(b"set \"a\"b\n"), Err(ProtoError::UnbalancedQuotes));
    }

    #[test]
    fn errors() {
        assert_eq!(one(b"*x\r\n"), Err(ProtoError::InvalidMultibulkLen));
        assert_eq!(one(b"*1048577\r\n"), Err(ProtoError::InvalidMultibulkLen));
        assert_eq!(one(b"*1\r\nx"), Err(ProtoError::ExpectedDollar('x')));
        assert_eq!(one(b"*1\r\n$-5\r\n"), Err(ProtoError::InvalidBulkLen));
        assert_eq!(one(b"*0\r\n").unwrap(), Some(vec![]));
    }

    #[test]
    fn nul_ends_an_inline_line() {
        assert_eq!(split_args(b"\0"), Some(vec![]));
        assert_eq!(
            split_args(b"SET a\0b c"),
            Some(vec![b"SET".to_vec(), b"a".to_vec()])
        );
        assert_eq!(split_args(b"\x0b PING"), Some(vec![b"PING".to_vec()]));
        assert_eq!(one(b"\0\n").unwrap(), Some(vec![]));
    }
}
