//! INCRBYFLOAT arithmetic with Redis's visible results.
//!
//! Redis adds in `long double` and prints the sum with `%.17Lf`, trailing zeros removed. A
//! long double carries about 19 significant digits, so for the decimal inputs clients send, the
//! printed sum is the exact decimal sum rounded to 17 places. quarry computes exactly that with
//! 128-bit decimal arithmetic (ties to even), and falls back to f64 when the numbers do not fit.

/// A decimal number `mant / 10^scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Dec {
    mant: i128,
    scale: u32,
}

const PRINT_DECIMALS: u32 = 17;
const MAX_SCALE: u32 = 36;

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

/// Parses `[-+]digits[.digits][e[-+]digits]` exactly; None if it does not fit.
fn parse(text: &[u8]) -> Option<Dec> {
    let s = std::str::from_utf8(text).ok()?;
    let (neg, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (num, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut mant: i128 = 0;
    for c in int.bytes().chain(frac.bytes()) {
        if !c.is_ascii_digit() {
            return None;
        }
        mant = mant.checked_mul(10)?.checked_add((c - b'0') as i128)?;
    }
    let mut scale = frac.len() as i32 - exp;
    if scale < 0 {
        mant = mant.checked_mul(pow10((-scale) as u32)?)?;
        scale = 0;
    }
    if scale as u32 > MAX_SCALE {
        return None;
    }
    Some(Dec {
        mant: if neg { -mant } else { mant },
        scale: scale as u32,
    })
}

fn add(a: Dec, b: Dec) -> Option<Dec> {
    let scale = a.scale.max(b.scale);
    let am = a.mant.checked_mul(pow10(scale - a.scale)?)?;
    let bm = b.mant.checked_mul(pow10(scale - b.scale)?)?;
    Some(Dec {
        mant: am.checked_add(bm)?,
        scale,
    })
}

/// Rounds to `PRINT_DECIMALS` places, ties to even.
fn round(d: Dec) -> Dec {
    if d.scale <= PRINT_DECIMALS {
        return d;
    }
    let div = pow10(d.scale - PRINT_DECIMALS).unwrap_or(i128::MAX);
    let q = d.mant / div;
    let r = d.mant % div;
    let twice = r.abs() * 2;
    let up = twice > div || (twice == div && q % 2 != 0);
    let q = if up { q + d.mant.signum() } else { q };
    Dec {
        mant: q,
        scale: PRINT_DECIMALS,
    }
}

fn format(d: Dec) -> String {
    let neg = d.mant < 0;
    let digits = d.mant.unsigned_abs().to_string();
    let scale = d.scale as usize;
    let (int, frac) = if digits.len() > scale {
        digits.split_at(digits.len() - scale)
    } else {
        ("0", digits.as_str())
    };
    let mut frac = format!("{:0>width$}", frac, width = scale);
    while frac.ends_with('0') {
        frac.pop();
    }
    let body = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    // Like Redis, never print a negative zero.
    if neg && body.chars().any(|c| c.is_ascii_digit() && c != '0') {
        format!("-{body}")
    } else {
        body
    }
}

/// `current + delta` as INCRBYFLOAT stores it, or None if the sum is not finite.
pub fn incr_float(current: &[u8], delta: &[u8]) -> Option<String> {
    if let (Some(a), Some(b)) = (parse(current), parse(delta)) {
        if let Some(sum) = add(a, b) {
            return Some(format(round(sum)));
        }
    }
    let a: f64 = std::str::from_utf8(current).ok()?.parse().ok()?;
    let b: f64 = std::str::from_utf8(delta).ok()?.parse().ok()?;
    let sum = a + b;
    if !sum.is_finite() {
        return None;
    }
    let mut s = format!("{:.17}", sum);
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    if s == "-0" {
        s = "0".into();
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(a: &str, b: &str) -> String {
        incr_float(a.as_bytes(), b.as_bytes()).unwrap()
    }

    #[test]
    fn sums_print_as_redis_prints_them() {
        assert_eq!(sum("1", "-1.1"), "-0.1");
        assert_eq!(sum("10.5", "0.1"), "10.6");
        assert_eq!(sum("0", "10.5"), "10.5");
        assert_eq!(sum("10.5", "5.0e3"), "5010.5");
        assert_eq!(sum("3", "0"), "3");
        assert_eq!(sum("0", "1e-20"), "0");
        assert_eq!(sum("1", "-1"), "0");
    }

    #[test]
    fn no_negative_zero() {
        let first = sum("0", "0.024390243902439025");
        assert_eq!(first, "0.02439024390243902");
        assert_eq!(sum(&first, "-0.024390243902439025"), "0");
    }

    #[test]
    fn huge_values_fall_back_to_binary_floats() {
        assert!(incr_float(b"1.7e308", b"1.7e308").is_none());
        assert!(sum("1e40", "1").starts_with("10000000000000000"));
    }
}
