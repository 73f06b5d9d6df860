//! Argument parsing shared by all commands, with Redis's error texts.

use quarry_types::parse::{parse_f64_strict, parse_i64_strict};

use crate::CmdError;

pub fn parse_i64(b: &[u8]) -> Result<i64, CmdError> {
    parse_i64_strict(b).ok_or(CmdError::NotInteger)
}

pub fn parse_f64(b: &[u8]) -> Result<f64, CmdError> {
    parse_f64_strict(b).ok_or(CmdError::NotFloat)
}

/// Case-insensitive comparison of an argument with an option name.
/// An unsigned decimal with nothing else around it (stream ids, sorted-integer ids).
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
}

pub fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

pub fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

pub fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// The arguments of SCAN, HSCAN and SSCAN: the cursor, MATCH (`*` means no pattern), COUNT
/// and, where allowed, TYPE.
pub struct ScanArgs<'a> {
    /// As the client sent it: [`crate::CursorStore::resume_from`] reads it.
    pub cursor: &'a [u8],
    pub pattern: Option<&'a [u8]>,
    pub count: usize,
    pub type_name: Option<&'a [u8]>,
}

/// Parses `cursor [MATCH p] [COUNT n] [TYPE t]` with Redis's error texts.
pub fn parse_scan<'a>(
    cursor: &'a [u8],
    options: &'a [bytes::Bytes],
    allow_type: bool,
) -> Result<ScanArgs<'a>, CmdError> {
    let mut out = ScanArgs {
        cursor,
        pattern: None,
        count: 10,
        type_name: None,
    };
    for pair in options.chunks(2) {
        let [name, value] = pair else {
            return Err(CmdError::Syntax);
        };
        if is(name, "MATCH") {
            out.pattern = Some(&value[..]).filter(|p| *p != b"*");
        } else if is(name, "COUNT") {
            let n = parse_i64(value)?;
            if n < 1 {
                return Err(CmdError::Syntax);
            }
            out.count = n as usize;
        } else if allow_type && is(name, "TYPE") {
            out.type_name = Some(&value[..]);
        } else {
            return Err(CmdError::Syntax);
        }
    }
    Ok(out)
}

/// The most elements a negative count of SRANDMEMBER, HRANDFIELD or ZRANDMEMBER may ask for.
/// Redis streams such a reply; quarry builds replies in memory, and a count such as -10^12
/// must not take the server's memory.
pub const MAX_RANDOM_REPEATS: u64 = 10_000_000;

/// Checks the count of SRANDMEMBER/HRANDFIELD/ZRANDMEMBER: Redis's range rules (the count must
/// leave room for the values when they are asked for), and quarry's limit on repeats.
pub fn check_random_count(count: i64, with_values: bool) -> Result<(), CmdError> {
    let limit = if with_values { i64::MAX / 2 } else { i64::MAX };
    if count < -limit {
        return Err(CmdError::err("value is out of range"));
    }
    if count < 0 && count.unsigned_abs() > MAX_RANDOM_REPEATS {
        return Err(CmdError::err(format!(
            "count is out of range: a negative count may ask for at most {MAX_RANDOM_REPEATS} elements"
        )));
    }
    Ok(())
}

/// Kvrocks' `ParseInt`: an integer in `range`, or the reason it is not, in Kvrocks' words
/// (commands that only Kvrocks has answer with them).
pub fn parse_int_kvrocks(
    a: &[u8],
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, &'static str> {
    let t = String::from_utf8_lossy(a);
    if !t.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+') {
        return Err("not started as an integer");
    }
    match t.parse::<i64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        Ok(_) => Err("out of numeric range"),
        Err(_) if t[1..].chars().all(|c| c.is_ascii_digit()) => Err("out of numeric range"),
        Err(_) => Err("encounter non-integer characters"),
    }
}
