//! The `long double` arithmetic of `INCRBYFLOAT` and `HINCRBYFLOAT`.
//!
//! Redis 7.0 reads both operands with `strtold`, adds them in x86-64's
//! 80-bit extended type (a 64-bit mantissa) and prints the sum with
//! `%.17Lf`, trailing zeros stripped. The representation error of that
//! type is part of the text clients see: `INCRBYFLOAT k 1234.56` answers
//! `1234.56000000000000005`, while three increments of `0.1` answer `0.3`.
//! Rust has no `long double`, so the type is emulated here with big
//! integers: correctly rounded parsing (as glibc's `strtold`), a correctly
//! rounded sum (as the x87 unit in round-to-nearest-even) and an exact
//! `%.17Lf` (as glibc's `printf`, ties to even). The range includes the
//! type's denormals and ends at its overflow (about 1.19e4932), so an
//! increment of `1e309`, beyond `f64`, works as it does in Redis.

use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};

/// Mantissa bits of the x87 extended type.
const MANT_BITS: u64 = 64;
/// Largest binary exponent of a value's leading bit (the type's emax).
const MAX_LEAD_EXP2: i64 = 16383;
/// Binary exponent of the smallest denormal, 2^-16445.
const MIN_LSB_EXP2: i64 = -16445;
/// Redis's text buffer for a `long double` (`MAX_LONG_DOUBLE_CHARS`):
/// longer input is no number.
const MAX_CHARS: usize = 5 * 1024;
/// Digits after the point that `%.17Lf` prints.
const FRACTION_DIGITS: u32 = 17;

/// Why an increment has no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrFloatError {
    /// The sum is not finite (`ERR increment would produce NaN or Infinity`).
    NotFinite,
}

/// A finite value `±mant × 2^exp`; `mant == 0` is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ld {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// What `strtold` makes of a text that Redis accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Num {
    Finite(Ld),
    /// `inf` or `infinity`: a number to Redis, but no sum with it is finite.
    Infinite,
}

/// Returns the text `INCRBYFLOAT` stores and replies for `cur + delta`.
/// Both must already have passed [`valid`].
pub fn add(cur: &[u8], delta: &[u8]) -> Result<String, IncrFloatError> {
    let (Some(Num::Finite(a)), Some(Num::Finite(b))) = (parse(cur), parse(delta)) else {
        return Err(IncrFloatError::NotFinite);
    };
    let sum = sum(a, b).ok_or(IncrFloatError::NotFinite)?;
    Ok(format(sum))
}

/// Whether Redis reads `a` as a `long double` (its `string2ld`): what
/// `strtold` takes whole, without leading space, NaN, overflow, or a
/// nonzero value that underflows to zero. `inf` passes.
pub fn valid(a: &[u8]) -> bool {
    parse(a).is_some()
}

/// Whether `a` is a valid `long double` that is infinite (`inf`,
/// `-Infinity`): `HINCRBYFLOAT` refuses those as increments up front.
pub fn is_infinite(a: &[u8]) -> bool {
    parse(a) == Some(Num::Infinite)
}

/// Exponent values beyond which any input of at most [`MAX_CHARS`] digits
/// is certainly out of range; clamping to them keeps the big-integer
/// work bounded whatever exponent a client writes.
const EXP_CLAMP: i64 = 1 << 20;

fn parse(s: &[u8]) -> Option<Num> {
    if s.is_empty() || s.len() >= MAX_CHARS || s[0].is_ascii_whitespace() || s[0] == 0x0b {
        return None;
    }
    // Redis copies the value into a C string and requires strtold to
    // consume all of it, so a NUL anywhere leaves bytes unconsumed.
    if s.contains(&0) {
        return None;
    }
    let (neg, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(Num::Infinite);
    }
    if body.len() > 2 && (body.starts_with(b"0x") || body.starts_with(b"0X")) {
        return parse_hex(neg, &body[2..]).map(Num::Finite);
    }
    parse_dec(neg, body).map(Num::Finite)
}

/// Splits `digits[.digits][<marker>[+-]digits]` into the mantissa digits,
/// the number of them after the point and the exponent. `None` unless the
/// whole text has that shape with at least one mantissa digit.
fn split_number(
    body: &[u8],
    is_digit: fn(u8) -> bool,
    marker: &[u8; 2],
) -> Option<(Vec<u8>, i64, i64)> {
    let mut digits = Vec::with_capacity(body.len());
    let mut frac = 0i64;
    let mut seen_point = false;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if is_digit(c) {
            digits.push(c);
            if seen_point {
                frac += 1;
            }
        } else if c == b'.' && !seen_point {
            seen_point = true;
        } else {
            break;
        }
        i += 1;
    }
    if digits.is_empty() {
        return None;
    }
    let mut exp = 0i64;
    if i < body.len() {
        if !marker.contains(&body[i]) {
            return None;
        }
        let mut rest = &body[i + 1..];
        let eneg = match rest.first() {
            Some(b'-') => {
                rest = &rest[1..];
                true
            }
            Some(b'+') => {
                rest = &rest[1..];
                false
            }
            _ => false,
        };
        if rest.is_empty() || !rest.iter().all(u8::is_ascii_digit) {
            return None;
        }
        for &c in rest {
            exp = (exp * 10 + i64::from(c - b'0')).min(EXP_CLAMP);
        }
        if eneg {
            exp = -exp;
        }
    }
    Some((digits, frac, exp))
}

fn parse_dec(neg: bool, body: &[u8]) -> Option<Ld> {
    let (digits, frac, exp) = split_number(body, |c| c.is_ascii_digit(), b"eE")?;
    let first = digits.iter().position(|&c| c != b'0');
    let Some(first) = first else {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    };
    let sig = &digits[first..];
    let exp10 = exp - frac;
    // Decimal exponent of the leading digit: outside the type's range
    // (1.19e4932 down to 3.6e-4951) strtold overflows or underflows to
    // zero with ERANGE, which Redis refuses.
    let lead = sig.len() as i64 - 1 + exp10;
    if !(-4953..=4933).contains(&lead) {
        return None;
    }
    let mant = BigUint::parse_bytes(sig, 10)?;
    let (num, den) = if exp10 >= 0 {
        (mant * pow10(exp10 as u32), BigUint::from(1u8))
    } else {
        (mant, pow10((-exp10) as u32))
    };
    nonzero(round(neg, &num, &den)?)
}

fn parse_hex(neg: bool, body: &[u8]) -> Option<Ld> {
    let (digits, frac, exp) = split_number(body, |c| c.is_ascii_hexdigit(), b"pP")?;
    let mant = BigUint::parse_bytes(&digits, 16)?;
    if mant.is_zero() {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let exp2 = exp - 4 * frac;
    let lead = mant.bits() as i64 - 1 + exp2;
    if !(MIN_LSB_EXP2 - 2..=MAX_LEAD_EXP2).contains(&lead) {
        return None;
    }
    let one = BigUint::from(1u8);
    let (num, den) = if exp2 >= 0 {
        (mant << exp2 as u64, one)
    } else {
        (mant, one << (-exp2) as u64)
    };
    nonzero(round(neg, &num, &den)?)
}

/// A nonzero text that rounds to zero underflowed: refused, as Redis does.
fn nonzero(v: Ld) -> Option<Ld> {
    (v.mant != 0).then_some(v)
}

fn pow10(n: u32) -> BigUint {
    BigUint::from(10u8).pow(n)
}

/// Rounds `±num/den` (`num` nonzero or not, `den` nonzero) to the nearest
/// extended value, ties to even, denormals included. `None` on overflow.
fn round(neg: bool, num: &BigUint, den: &BigUint) -> Option<Ld> {
    if num.is_zero() {
        return Some(Ld {
            neg,
            mant: 0,
            exp: 0,
        });
    }
    let divide = |k: i64| -> (BigUint, BigUint, BigUint) {
        let (n, d) = if k >= 0 {
            (num.clone(), den << k as u64)
        } else {
            (num << (-k) as u64, den.clone())
        };
        let (q, r) = (&n / &d, &n % &d);
        (q, r, d)
    };
    // num/den lies in [2^(nb-db-1), 2^(nb-db+1)): with this k the quotient
    // has 64 or 65 bits, and one more step fixes the latter.
    let mut k = (num.bits() as i64 - den.bits() as i64 - MANT_BITS as i64).max(MIN_LSB_EXP2);
    let (mut q, mut r, mut d) = divide(k);
    if q.bits() > MANT_BITS {
        k += 1;
        (q, r, d) = divide(k);
    }
    let twice: BigUint = r << 1u8;
    if twice > d || (twice == d && q.bit(0)) {
        q += 1u8;
        if q.bits() > MANT_BITS {
            q >>= 1u8;
            k += 1;
        }
    }
    let mant = q.to_u64()?;
    if mant != 0 && mant.ilog2() as i64 + k > MAX_LEAD_EXP2 {
        return None;
    }
    Some(Ld { neg, mant, exp: k })
}

/// The extended-precision sum, or `None` when it overflows.
fn sum(a: Ld, b: Ld) -> Option<Ld> {
    if a.mant == 0 && b.mant == 0 {
        // Round-to-nearest: -0 + -0 is -0, any other zero sum is +0.
        return Some(Ld {
            neg: a.neg && b.neg,
            mant: 0,
            exp: 0,
        });
    }
    if a.mant == 0 {
        return Some(b);
    }
    if b.mant == 0 {
        return Some(a);
    }
    let low = a.exp.min(b.exp);
    let am = BigUint::from(a.mant) << (a.exp - low) as u64;
    let bm = BigUint::from(b.mant) << (b.exp - low) as u64;
    let (neg, mag) = if a.neg == b.neg {
        (a.neg, am + bm)
    } else if am >= bm {
        (a.neg && am != bm, am - bm)
    } else {
        (b.neg, bm - am)
    };
    let one = BigUint::from(1u8);
    let (num, den) = if low >= 0 {
        (mag << low as u64, one)
    } else {
        (mag, one << (-low) as u64)
    };
    round(neg, &num, &den)
}

/// `%.17Lf` (ties to even), then Redis's clean-up: trailing fraction zeros
/// and a bare point dropped, `-0` shown as `0`. The largest value has 4933
/// integer digits, so the text always fits Redis's buffer.
fn format(v: Ld) -> String {
    let scaled = BigUint::from(v.mant) * pow10(FRACTION_DIGITS);
    let q = if v.exp >= 0 {
        scaled << v.exp as u64
    } else {
        let d = BigUint::from(1u8) << (-v.exp) as u64;
        let (mut q, r) = (&scaled / &d, &scaled % &d);
        let twice: BigUint = r << 1u8;
        if twice > d || (twice == d && q.bit(0)) {
            q += 1u8;
        }
        q
    };
    let digits = q.to_string();
    let digits = format!("{digits:0>width$}", width = FRACTION_DIGITS as usize + 1);
    let (int, fr) = digits.split_at(digits.len() - FRACTION_DIGITS as usize);
    let sign = if v.neg { "-" } else { "" };
    let fr = fr.trim_end_matches('0');
    let text = if fr.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{fr}")
    };
    if text == "-0" { "0".into() } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(a: &str, b: &str) -> String {
        add(a.as_bytes(), b.as_bytes()).unwrap()
    }

    #[test]
    fn matches_redis_long_double_text() {
        // Replies of redis-server 7.0.15 (x86-64) for the same operations.
        assert_eq!(inc("0.2", "0.1"), "0.3");
        assert_eq!(inc("0.3", "0.1"), "0.4");
        assert_eq!(inc("1.1", "2.2"), "3.3");
        assert_eq!(inc("100", "-99.9"), "0.1");
        assert_eq!(inc("0", "1e-20"), "0");
        assert_eq!(inc("0", "123456789012345678"), "123456789012345678");
        assert_eq!(inc("10.50", "0.1"), "10.6");
        assert_eq!(inc("5.0e3", "2.0e2"), "5200");
        assert_eq!(inc("3", "-3"), "0");
        assert_eq!(inc("-0.5", "0.25"), "-0.25");
        assert_eq!(inc("0", "1e3"), "1000");
        assert_eq!(inc("1", ".5"), "1.5");
        assert_eq!(inc("0", "1234.56"), "1234.56000000000000005");
        assert_eq!(inc("1000.10", "0.2"), "1000.29999999999999999");
        assert_eq!(inc("0", "10000.01"), "10000.00999999999999979");
        assert_eq!(inc("25000.75", "0.1"), "25000.84999999999999964");
        assert_eq!(
            inc("1.5", "123456789.123456789"),
            "123456790.62345678899873747"
        );
        assert_eq!(inc("1.5", "1e-400"), "1.5");
        assert_eq!(inc("0", "0x1p-2"), "0.25");
        // redis-server 7.0.15 refuses a value with a NUL anywhere.
        assert!(!valid(b"1.5\0junk"));
    }

    #[test]
    fn range_is_long_doubles() {
        // redis-server 7.0.15's texts: 1e309 is just below 10^309 there.
        let big = inc("0", "1e309");
        assert_eq!(big.len(), 309);
        assert!(big.starts_with("999999999999999999986349424581256454766"));
        assert!(inc("0", "-1e309").starts_with("-999999999999999999986349"));
        assert!(valid(b"1e4932"));
        assert!(!valid(b"1.2e4932"), "overflows");
        assert!(valid(b"4e-4951"), "a denormal");
        assert!(!valid(b"1e-4952"), "underflows to zero");
        assert!(valid(b"0e-99999"), "zero is no underflow");
        assert!(valid(b"inf") && valid(b"-Infinity") && is_infinite(b"+INF"));
        assert_eq!(add(b"1e4932", b"1e4932"), Err(IncrFloatError::NotFinite));
        assert_eq!(add(b"inf", b"1"), Err(IncrFloatError::NotFinite));
        let top = inc("0", "1.18e4932");
        assert_eq!(top.len(), 4933);
        assert!(top.starts_with("118000000000000000000065281291809369920"));
        assert!(!valid(b"\0junk"), "not all of it converts");
    }

    #[test]
    fn texts_strtold_refuses() {
        for bad in [
            &b""[..],
            b" 1",
            b"\t1",
            b"1 ",
            b"nan",
            b"-nan",
            b"1e",
            b"1e+",
            b"0x",
            b"0x1p",
            b".",
            b"-",
            b"1..2",
            b"abc",
            b"1e5000",
        ] {
            assert!(!valid(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        let long = vec![b'1'; MAX_CHARS];
        assert!(!valid(&long));
        assert!(valid(b"1e0000000000000000000000001"));
        assert!(!valid(b"1e99999999999999999999999999"));
    }

    #[test]
    fn ties_round_to_even() {
        // 2^64 + 1 is halfway between two extended values: even wins.
        assert_eq!(inc("18446744073709551616", "1"), "18446744073709551616");
        assert_eq!(inc("18446744073709551616", "3"), "18446744073709551620");
    }
}
