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
pub fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

pub fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

pub fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}
