//! Incremental request parser: RESP multibulk requests and inline commands, as Redis reads them.
//!
//! `parse_request` looks at the bytes received so far. It returns `Ok(None)` while a request is
//! incomplete and leaves the buffer untouched, so the caller reads more and calls again; a
//! complete request is split off the buffer. Errors carry Redis's exact texts.

use bytes::{Buf, Bytes, BytesMut};

/// Longest inline request, and longest `*<n>` / `$<n>` header line, that Redis accepts.
const MAX_INLINE: usize = 64 * 1024;
/// Largest argument count of one multibulk request (Redis: 1024*1024).
const MAX_MULTIBULK: i64 = 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct ParseLimits {
    /// `proto-max-bulk-len`: the largest bulk argument accepted.
    pub max_bulk_len: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bulk_len: 512 * 1024 * 1024,
        }
    }
}

/// One parsed request: the command name and its arguments, as sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub args: Vec<Bytes>,
    /// True if it came as an inline command (as typed into telnet).
    pub inline: bool,
}

/// A malformed request. The connection that sent it gets `-ERR <text>` and is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// Parses one request from the front of `buf`.
///
/// Returns `Ok(None)` if more bytes are needed. An empty inline line or `*0`/`*-1` is consumed
/// and yields a request with no arguments, which the caller skips.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: ParseLimits,
) -> Result<Option<Request>, ProtocolError> {
    parse_request_resumable(buf, limits, &mut ParseState::default())
}

/// Where a multibulk request that has not fully arrived stopped, so that the next call goes on
/// from there instead of parsing every argument header again (which would make a request of
/// n arguments cost O(n²) when it arrives in many reads).
#[derive(Debug, Default)]
pub struct ParseState {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    count: usize,
    /// Offset of the next argument header in the buffer.
    pos: usize,
    /// Payload offsets of the arguments parsed so far.
    spans: Vec<(usize, usize)>,
}

/// [`parse_request`] for a connection: `state` carries a partly parsed request between calls.
/// Between calls the caller may only append to `buf`.
pub fn parse_request_resumable(
    buf: &mut BytesMut,
    limits: ParseLimits,
    state: &mut ParseState,
) -> Result<Option<Request>, ProtocolError> {
    if state.pending.is_some() {
        return continue_multibulk(buf, limits, state);
    }
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits, state)
    } else {
        parse_inline(buf)
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    memchr(b'\r', &buf[from..]).map(|i| i + from)
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

/// Parses the decimal number of a header line, as Redis's `string2ll` does: optional `-`, digits,
/// no leading `+`, no spaces, fits in i64.
fn parse_i64(text: &[u8]) -> Option<i64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    let (neg, digits) = match text[0] {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
    }
    Some(if neg { -v } else { v })
}

fn parse_multibulk(
    buf: &mut BytesMut,
    limits: ParseLimits,
    state: &mut ParseState,
) -> Result<Option<Request>, ProtocolError> {
    let Some(eol) = find_crlf(buf, 1) else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError::TooBigMultibulkCount);
        }
        return Ok(None);
    };
    if eol > MAX_INLINE {
        return Err(ProtocolError::TooBigMultibulkCount);
    }
    let count = parse_i64(&buf[1..eol]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > MAX_MULTIBULK {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    let pos = eol + 2;
    if count <= 0 {
        if buf.len() < pos {
            return Ok(None);
        }
        buf.advance(pos);
        return Ok(Some(Request {
            args: Vec::new(),
            inline: false,
        }));
    }
    // Offsets first: nothing is split off until the whole request is here. The capacity is
    // capped: the count is only the client's claim.
    state.pending = Some(Pending {
        count: count as usize,
        pos,
        spans: Vec::with_capacity((count as usize).min(1024)),
    });
    continue_multibulk(buf, limits, state)
}

fn continue_multibulk(
    buf: &mut BytesMut,
    limits: ParseLimits,
    state: &mut ParseState,
) -> Result<Option<Request>, ProtocolError> {
    let result = next_arguments(buf, limits, state);
    if result.is_err() {
        state.pending = None;
    }
    result
}

fn next_arguments(
    buf: &mut BytesMut,
    limits: ParseLimits,
    state: &mut ParseState,
) -> Result<Option<Request>, ProtocolError> {
    let Some(p) = state.pending.as_mut() else {
        return Ok(None);
    };
    while p.spans.len() < p.count {
        let pos = p.pos;
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError::ExpectedBulk(buf[pos] as char));
        }
        let Some(eol) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > MAX_INLINE {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(None);
        };
        if eol - pos > MAX_INLINE {
            return Err(ProtocolError::TooBigBulkCount);
        }
        let len = parse_i64(&buf[pos + 1..eol]).ok_or(ProtocolError::InvalidBulkLength)?;
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let start = eol + 2;
        let end = start + len as usize;
        // Like Redis, the two bytes after the payload are skipped without looking at them.
        if buf.len() < end + 2 {
            // A payload is on its way: make room ahead, but not more than 1 MB on the client's
            // word alone (the buffer still grows by doubling past that).
            buf.reserve((end + 2 - buf.len()).min(1 << 20));
            return Ok(None);
        }
        p.spans.push((start, end));
        p.pos = end + 2;
    }
    let Some(done) = state.pending.take() else {
        return Ok(None);
    };
    let frozen = buf.split_to(done.pos).freeze();
    let args = done
        .spans
        .into_iter()
        .map(|(s, e)| frozen.slice(s..e))
        .collect();
    Ok(Some(Request {
        args,
        inline: false,
    }))
}

fn parse_inline(buf: &mut BytesMut) -> Result<Option<Request>, ProtocolError> {
    let Some(nl) = memchr(b'\n', buf) else {
        if buf.len() > MAX_INLINE {
            return Err(ProtocolError::TooBigInline);
        }
        return Ok(None);
    };
    if nl > MAX_INLINE {
        return Err(ProtocolError::TooBigInline);
    }
    let mut line_end = nl;
    if line_end > 0 && buf[line_end - 1] == b'\r' {
        line_end -= 1;
    }
    let args = split_args(&buf[..line_end])?;
    buf.advance(nl + 1);
    Ok(Some(Request {
        args: args.into_iter().map(Bytes::from).collect(),
        inline: true,
    }))
}

/// C's `isspace`, which Redis uses to split inline commands.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_val(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline line into arguments with the rules of Redis's `sdssplitargs`: spaces
/// separate, double quotes allow `\n`, `\xHH` and friends, single quotes allow only `\'`, and a
/// closing quote must be followed by a space or the end of the line. As in C, a NUL byte ends
/// the line.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let line = match line.iter().position(|&c| c == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Ok(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    cur.push(
                        hex_val(line[i + 2]).unwrap_or(0) * 16 + hex_val(line[i + 3]).unwrap_or(0),
                    );
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return Err(ProtocolError::UnbalancedQuotes);
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
                    c if is_space(c) => break,
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
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<Option<Request>, ProtocolError> {
        let mut buf = BytesMut::from(bytes);
        parse_request(&mut buf, ParseLimits::default())
    }

    fn args(r: Request) -> Vec<Vec<u8>> {
        r.args.iter().map(|a| a.to_vec()).collect()
    }

    #[test]
    fn multibulk_request() {
        let r = parse(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap().unwrap();
        assert_eq!(args(r), vec![b"GET".to_vec(), b"k".to_vec()]);
    }

    #[test]
    fn incomplete_requests_wait_for_more() {
        let full = b"*2\r\n$3\r\nSET\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\nPING\r\n*1\r\n$4\r\nPING\r\n"[..]);
        for inline in [false, true, false] {
            let r = parse_request(&mut buf, ParseLimits::default())
                .unwrap()
                .unwrap();
            assert_eq!(r.inline, inline);
            assert_eq!(r.args, vec![Bytes::from_static(b"PING")]);
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn protocol_errors_have_redis_texts() {
        assert_eq!(
            parse(b"*x\r\n").unwrap_err().to_string(),
            "Protocol error: invalid multibulk length"
        );
        assert_eq!(
            parse(b"*1\r\n+a\r\n").unwrap_err().to_string(),
            "Protocol error: expected '$', got '+'"
        );
        assert_eq!(
            parse(b"*1\r\n$-5\r\n").unwrap_err().to_string(),
            "Protocol error: invalid bulk length"
        );
        assert_eq!(
            parse(b"*3000000\r\n").unwrap_err(),
            ProtocolError::InvalidMultibulkLength
        );
        assert_eq!(
            parse(b"SET \"a\"b\r\n").unwrap_err().to_string(),
            "Protocol error: unbalanced quotes in request"
        );
        assert_eq!(
            parse(&vec![b'a'; 70_000]).unwrap_err(),
            ProtocolError::TooBigInline
        );
    }

    #[test]
    fn bulk_length_limit_is_configurable() {
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        let r = parse_request(&mut buf, ParseLimits { max_bulk_len: 10 });
        assert_eq!(r, Err(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn inline_quoting_follows_sdssplitargs() {
        let r = parse(b"set \"a b\" 'c\\'d' \"\\x41\\n\"\r\n")
            .unwrap()
            .unwrap();
        assert!(r.inline);
        assert_eq!(
            args(r),
            vec![
                b"set".to_vec(),
                b"a b".to_vec(),
                b"c'd".to_vec(),
                b"A\n".to_vec()
            ]
        );
        let empty = parse(b"\r\n").unwrap().unwrap();
        assert!(empty.args.is_empty());
        let nul = parse(b"get a\0b c\r\n").unwrap().unwrap();
        assert_eq!(args(nul), vec![b"get".to_vec(), b"a".to_vec()]);
        let vt = parse(b"get\x0ba\r\n").unwrap().unwrap();
        assert_eq!(args(vt), vec![b"get".to_vec(), b"a".to_vec()]);
    }

    proptest! {
        #[test]
        fn parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            // Fed in two pieces through the resumable parser, so that its saved state is
            // exercised on arbitrary bytes too.
            let limits = ParseLimits { max_bulk_len: 64 };
            let mut state = ParseState::default();
            let mut buf = BytesMut::from(&data[..data.len() / 2]);
            for half in [&data[data.len() / 2..], &[][..]] {
                for _ in 0..64 {
                    match parse_request_resumable(&mut buf, limits, &mut state) {
                        Ok(Some(_)) => continue,
                        _ => break,
                    }
                }
                buf.extend_from_slice(half);
            }
        }

        #[test]
        fn parser_never_panics_on_resp_like_input(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b"\r\n".to_vec()),
                    Just(b"-1".to_vec()), Just(b"3".to_vec()), Just(b"\"".to_vec()),
                    Just(b"'".to_vec()), Just(b"\\x".to_vec()), Just(b"99999999999999999999".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ],
                0..40,
            )
        ) {
            let data: Vec<u8> = parts.concat();
            let mut buf = BytesMut::from(&data[..]);
            for _ in 0..64 {
                match parse_request(&mut buf, ParseLimits::default()) {
                    Ok(Some(_)) => continue,
                    _ => break,
                }
            }
        }

        #[test]
        fn resumable_parsing_matches_parsing_whole_requests(
            argvs in proptest::collection::vec(
                proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 1..6),
                1..5,
            ),
            cuts in proptest::collection::vec(1usize..40, 0..30),
        ) {
            let mut wire = Vec::new();
            for argv in &argvs {
                wire.extend_from_slice(format!("*{}\r\n", argv.len()).as_bytes());
                for a in argv {
                    wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                    wire.extend_from_slice(a);
                    wire.extend_from_slice(b"\r\n");
                }
            }
            // Feed the bytes in pieces, as reads would deliver them.
            let mut state = ParseState::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut offset = 0;
            let mut cuts = cuts.into_iter();
            while offset < wire.len() {
                let n = cuts.next().unwrap_or(wire.len()).min(wire.len() - offset);
                buf.extend_from_slice(&wire[offset..offset + n]);
                offset += n;
                while let Some(r) = parse_request_resumable(&mut buf, ParseLimits::default(), &mut state).unwrap() {
                    got.push(args(r));
                }
            }
            prop_assert_eq!(got, argvs);
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn encoded_requests_round_trip(argv in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8)) {
            let mut wire = format!("*{}\r\n", argv.len()).into_bytes();
            for a in &argv {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            let r = parse(&wire).unwrap().unwrap();
            prop_assert_eq!(args(r), argv);
        }
    }
}
