//! The arithmetic of `INCRBYFLOAT` and `HINCRBYFLOAT`.
//!
//! Redis 7.0 adds in `long double` and prints with `%.17Lf`, trailing zeros
//! stripped. Its 64-bit mantissa is precise enough that everyday decimals
//! come out as a person would write them: three `INCRBYFLOAT k 0.1` give
//! `0.3`, where a `double` sum prints `0.30000000000000004`. Rust has no
//! `long double`, so decimal operands are added exactly instead, which
//! gives Redis's text whenever the result has fewer than about 19
//! significant digits (and is closer to the written numbers when it has
//! more). Operands that do not fit a 128-bit decimal mantissa fall back to
//! `f64`, printed the same `%.17f` way.

/// Digits after the point that `%.17Lf` keeps.
const FRACTION_DIGITS: i32 = 17;
/// Decimal exponent beyond which `long double` overflows (about 1.19e4932).
const MAX_EXP10: i32 = 4932;

/// Why an increment has no result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncrFloatError {
    /// The sum is not finite (`ERR increment would produce NaN or Infinity`).
    NotFinite,
}

/// `±mant × 10^exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dec {
    neg: bool,
    mant: u128,
    exp: i32,
}

/// Returns the text `INCRBYFLOAT` stores and replies for `cur + delta`.
/// Both must already have passed [`crate::store::cmd::parse_float`].
pub fn add(cur: &[u8], delta: &[u8]) -> Result<String, IncrFloatError> {
    if let (Some(a), Some(b)) = (parse(cur), parse(delta))
        && let Some(sum) = sum(a, b)
    {
        if sum.mant != 0 && digits(sum.mant) as i32 + sum.exp > MAX_EXP10 {
            return Err(IncrFloatError::NotFinite);
        }
        return Ok(format(sum));
    }
    let parse_f = |b: &[u8]| crate::store::cmd::parse_float(b).unwrap_or(f64::NAN);
    let v = parse_f(cur) + parse_f(delta);
    if !v.is_finite() {
        return Err(IncrFloatError::NotFinite);
    }
    Ok(strip(format!("{v:.17}")))
}

/// Whether `INCRBYFLOAT` takes `a` as a number (Redis parses it as a
/// `long double`, whose range is far wider than `f64`'s).
pub fn valid(a: &[u8]) -> bool {
    match parse(a) {
        Some(d) if d.mant == 0 => true,
        Some(d) => {
            let magnitude = digits(d.mant) as i32 + d.exp;
            magnitude <= MAX_EXP10 && magnitude > -MAX_EXP10 - 18
        }
        None => crate::store::cmd::parse_float(a).is_some(),
    }
}

/// Parses `[+-]digits[.digits][e[+-]digits]`, exactly up to 38 significant
/// digits; anything else (hex, `inf`) is `None`.
fn parse(s: &[u8]) -> Option<Dec> {
    let (neg, mut rest) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut mant: u128 = 0;
    let mut exp: i32 = 0;
    let mut any_digit = false;
    let mut seen_point = false;
    while let Some((&c, tail)) = rest.split_first() {
        match c {
            b'0'..=b'9' => {
                any_digit = true;
                let next = mant
                    .checked_mul(10)
                    .and_then(|m| m.checked_add(u128::from(c - b'0')));
                match next {
                    // Leading zeros carry no significance.
                    _ if mant == 0 && c == b'0' => {}
                    Some(m) => mant = m,
                    // Past 38 significant digits: keep the magnitude and
                    // drop the digit (still more precise than long double).
                    None => {
                        if !seen_point {
                            exp = exp.checked_add(1)?;
                        }
                        rest = tail;
                        continue;
                    }
                }
                if seen_point {
                    exp = exp.checked_sub(1)?;
                }
            }
            b'.' if !seen_point => seen_point = true,
            b'e' | b'E' => {
                let e = std::str::from_utf8(tail).ok()?;
                if e.is_empty() || e.starts_with('+') && e.len() == 1 {
                    return None;
                }
                let e: i32 = e.parse().ok()?;
                exp = exp.checked_add(e)?;
                rest = &[];
                break;
            }
            _ => return None,
        }
        rest = tail;
    }
    if !rest.is_empty() || !any_digit || exp.abs() > 2 * MAX_EXP10 {
        return None;
    }
    Some(Dec { neg, mant, exp })
}

fn pow10(n: i32) -> Option<u128> {
    10u128.checked_pow(u32::try_from(n).ok()?)
}

/// Exact sum, or `None` when aligning the operands overflows 128 bits.
fn sum(a: Dec, b: Dec) -> Option<Dec> {
    if a.mant == 0 {
        return Some(b);
    }
    if b.mant == 0 {
        return Some(a);
    }
    let exp = a.exp.min(b.exp);
    let am = a.mant.checked_mul(pow10(a.exp - exp)?)?;
    let bm = b.mant.checked_mul(pow10(b.exp - exp)?)?;
    let (neg, mant) = if a.neg == b.neg {
        (a.neg, am.checked_add(bm)?)
    } else if am >= bm {
        (a.neg, am - bm)
    } else {
        (b.neg, bm - am)
    };
    Some(Dec { neg, mant, exp })
}

fn digits(mut m: u128) -> u32 {
    let mut n = 1;
    while m >= 10 {
        m /= 10;
        n += 1;
    }
    n
}

/// `%.17f` of an exact decimal (ties to even), trailing zeros stripped.
fn format(d: Dec) -> String {
    let Dec {
        neg,
        mut mant,
        mut exp,
    } = d;
    if exp < -FRACTION_DIGITS {
        let cut = -FRACTION_DIGITS - exp;
        mant = match pow10(cut) {
            Some(p) => {
                let (q, r) = (mant / p, mant % p);
                let half = p / 2;
                if r > half || (r == half && q % 2 == 1) {
                    q + 1
                } else {
                    q
                }
            }
            // More than 38 digits below the 17th place: rounds to zero.
            None => 0,
        };
        exp = -FRACTION_DIGITS;
    }
    let mut s = String::new();
    if neg && mant != 0 {
        s.push('-');
    }
    let m = mant.to_string();
    if exp >= 0 {
        s.push_str(&m);
        if mant != 0 {
            s.extend(std::iter::repeat_n('0', exp as usize));
        }
        return s;
    }
    let frac = (-exp) as usize;
    if m.len() > frac {
        let (int, fr) = m.split_at(m.len() - frac);
        s.push_str(int);
        s.push('.');
        s.push_str(fr);
    } else {
        s.push_str("0.");
        s.extend(std::iter::repeat_n('0', frac - m.len()));
        s.push_str(&m);
    }
    strip(s)
}

/// Drops trailing fraction zeros and a bare point; `-0` becomes `0`.
fn strip(s: String) -> String {
    let t = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if t == "-0" { "0".into() } else { t.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(a: &str, b: &str) -> String {
        add(a.as_bytes(), b.as_bytes()).unwrap()
    }

    #[test]
    fn matches_redis_long_double_text() {
        // Replies of redis-server 7.0.15 for the same operations.
        assert_eq!(inc("0.2", "0.1"), "0.3");
        assert_eq!(inc("1.1", "2.2"), "3.3");
        assert_eq!(inc("100", "-99.9"), "0.1");
        assert_eq!(inc("0", "1e-20"), "0");
        assert_eq!(inc("0", "123456789012345678"), "123456789012345678");
        assert_eq!(inc("10.50", "0.1"), "10.6");
        assert_eq!(inc("5.0e3", "2.0e2"), "5200");
        assert_eq!(inc("3", "-3"), "0");
        assert_eq!(inc("-0.5", "0.25"), "-0.25");
        assert_eq!(inc("0", "0.000000000000000015"), "0.00000000000000002");
        assert_eq!(inc("0", "1e3"), "1000");
        assert_eq!(inc("1", ".5"), "1.5");
        assert_eq!(inc("0", "1e400").len(), 401);
        // A 401-digit value is still a number to add to.
        let big = inc("0", "1e400");
        assert_eq!(inc(&big, "1e400"), format!("2{}", "0".repeat(400)));
    }

    #[test]
    fn out_of_range_and_fallbacks() {
        assert_eq!(
            add(b"0", b"1e5000"),
            Err(IncrFloatError::NotFinite),
            "beyond long double"
        );
        // Exponents too far apart for 128 bits: the f64 path.
        assert_eq!(inc("1e30", "1e-30"), "1000000000000000019884624838656");
        assert_eq!(add(b"inf", b"1"), Err(IncrFloatError::NotFinite));
    }
}
