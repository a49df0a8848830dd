//! Redis glob-style pattern matching (`KEYS`, `SCAN MATCH`, `PSUBSCRIBE`, ACL key patterns).
//!
//! Supports `*`, `?`, `[abc]`, `[^abc]`, `[a-z]` and `\` escapes, with the same
//! corner cases as Redis (an unterminated `[` matches up to the end of the
//! pattern). Matching is iterative with backtracking only to the last `*`,
//! so a hostile pattern cannot cause exponential work.

/// Returns whether `s` matches `pattern`. As in Redis, an empty string
/// matches only the empty pattern, not even `*` (`PSUBSCRIBE *` gets no
/// message for the channel `""`); `KEYS *` and `SCAN MATCH *` list empty
/// names because their callers treat a lone `*` as no filter at all.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    glob(pattern, s, false)
}

/// Case-insensitive variant of [`matches`].
pub fn matches_nocase(pattern: &[u8], s: &[u8]) -> bool {
    glob(pattern, s, true)
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches one non-star pattern element at `p` against byte `c`.
/// Returns the pattern index after the element, or `None` when it does not match.
fn single(pattern: &[u8], mut p: usize, c: u8, nocase: bool) -> Option<usize> {
    match pattern[p] {
        b'?' => Some(p + 1),
        b'[' => {
            p += 1;
            let not = p < pattern.len() && pattern[p] == b'^';
            if not {
                p += 1;
            }
            let mut hit = false;
            loop {
                if p >= pattern.len() {
                    // Unterminated class: Redis treats the end of pattern as `]`.
                    break;
                }
                if pattern[p] == b'\\' && p + 1 < pattern.len() {
                    p += 1;
                    if eq(pattern[p], c, nocase) {
                        hit = true;
                    }
                } else if pattern[p] == b']' {
                    break;
                } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' {
                    let (mut lo, mut hi) = (pattern[p], pattern[p + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    let (lo, hi, cc) = if nocase {
                        (
                            lo.to_ascii_lowercase(),
                            hi.to_ascii_lowercase(),
                            c.to_ascii_lowercase(),
                        )
                    } else {
                        (lo, hi, c)
                    };
                    if cc >= lo && cc <= hi {
                        hit = true;
                    }
                    p += 2;
                } else if eq(pattern[p], c, nocase) {
                    hit = true;
                }
                p += 1;
            }
            // Step over the closing `]` if present.
            let next = if p < pattern.len() { p + 1 } else { p };
            if hit != not { Some(next) } else { None }
        }
        b'\\' if p + 1 < pattern.len() => {
            if eq(pattern[p + 1], c, nocase) {
                Some(p + 2)
            } else {
                None
            }
        }
        pc => {
            if eq(pc, c, nocase) {
                Some(p + 1)
            } else {
                None
            }
        }
    }
}

fn glob(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    if s.is_empty() {
        return pattern.is_empty();
    }
    let (mut p, mut i) = (0usize, 0usize);
    // Position after the last `*` and the string index it is currently trying.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            star = Some((p, i));
            continue;
        }
        if i == s.len() {
            return p == pattern.len();
        }
        if p < pattern.len()
            && let Some(np) = single(pattern, p, s[i], nocase)
        {
            p = np;
            i += 1;
            continue;
        }
        match star {
            Some((sp, si)) if si < s.len() => {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches as m;

    #[test]
    fn basics() {
        assert!(m(b"*", b"abc"));
        // Redis's stringmatchlen: an empty string matches only an empty
        // pattern, while trailing stars still match nothing at the end.
        assert!(!m(b"*", b""));
        assert!(!m(b"**", b""));
        assert!(m(b"", b""));
        assert!(m(b"a*", b"a"));
        assert!(m(b"a**", b"a"));
        assert!(m(b"h?llo", b"hello"));
        assert!(!m(b"h?llo", b"hllo"));
        assert!(m(b"h*llo", b"heeeello"));
        assert!(m(b"h[ae]llo", b"hallo"));
        assert!(!m(b"h[ae]llo", b"hillo"));
        assert!(m(b"h[^e]llo", b"hallo"));
        assert!(!m(b"h[^e]llo", b"hello"));
        assert!(m(b"h[a-b]llo", b"hbllo"));
        assert!(!m(b"h[a-b]llo", b"hcllo"));
        assert!(m(b"a\\*b", b"a*b"));
        assert!(!m(b"a\\*b", b"axb"));
        assert!(m(b"*a*b*c*", b"xxaxxbxxc"));
        assert!(!m(b"*a*b*c*d", b"xxaxxbxxc"));
        assert!(m(b"user:*", b"user:1"));
        assert!(!m(b"abc", b"abcd"));
        assert!(super::matches_nocase(b"HELLO", b"hello"));
    }

    #[test]
    fn pathological_is_fast() {
        let s = vec![b'a'; 5000];
        let p = b"*a*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!m(p, &s));
    }
}
