//! Reply frames and their encoding in RESP2 or RESP3.

use bytes::{BufMut, Bytes, BytesMut};

/// Protocol version negotiated with `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// A reply. RESP3-only shapes are written in their RESP2 form when the client speaks RESP2,
/// the way Redis does it (maps flatten to arrays, doubles become bulk strings, and so on).
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// Null bulk in RESP2, `_` in RESP3.
    Null,
    /// Null array in RESP2 (`*-1`), `_` in RESP3.
    NullArray,
    Array(Vec<Frame>),
    Map(Vec<(Frame, Frame)>),
    Set(Vec<Frame>),
    Double(f64),
    Boolean(bool),
    /// Verbatim text (`=`); a plain bulk string in RESP2.
    Verbatim(String),
    /// Out-of-band push (`>`); an array in RESP2.
    Push(Vec<Frame>),
    /// Bytes written as they are, already encoded.
    Raw(Bytes),
}

impl Frame {
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(msg.into())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Appends this frame's encoding to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => line(out, b'+', s.as_bytes()),
            Frame::Error(s) => line(out, b'-', s.as_bytes()),
            Frame::Integer(i) => {
                out.put_u8(b':');
                put_int(out, *i);
                out.put_slice(b"\r\n");
            }
            Frame::Bulk(b) => bulk(out, b),
            Frame::Null => match proto {
                Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Frame::NullArray => match proto {
                Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Frame::Array(items) => aggregate(out, b'*', items, proto),
            Frame::Set(items) => {
                let tag = if proto == Protocol::Resp3 { b'~' } else { b'*' };
                aggregate(out, tag, items, proto)
            }
            Frame::Push(items) => {
                let tag = if proto == Protocol::Resp3 { b'>' } else { b'*' };
                aggregate(out, tag, items, proto)
            }
            Frame::Map(pairs) => {
                match proto {
                    Protocol::Resp3 => header(out, b'%', pairs.len()),
                    Protocol::Resp2 => header(out, b'*', pairs.len() * 2),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                match proto {
                    Protocol::Resp3 => line(out, b',', text.as_bytes()),
                    Protocol::Resp2 => bulk(out, text.as_bytes()),
                }
            }
            Frame::Boolean(b) => match proto {
                Protocol::Resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
                Protocol::Resp2 => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            },
            Frame::Verbatim(s) => match proto {
                Protocol::Resp3 => {
                    header(out, b'=', s.len() + 4);
                    out.put_slice(b"txt:");
                    out.put_slice(s.as_bytes());
                    out.put_slice(b"\r\n");
                }
                Protocol::Resp2 => bulk(out, s.as_bytes()),
            },
            Frame::Raw(b) => out.put_slice(b),
        }
    }

    /// Encodes into a fresh buffer; convenient in tests.
    pub fn to_bytes(&self, proto: Protocol) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(proto, &mut out);
        out.freeze()
    }
}

/// Formats a double as Redis 7.0 does in replies (`%.17g`): `inf`/`-inf`, integers without
/// a fraction, otherwise 17 significant digits with trailing zeros removed, in exponent form
/// outside 1e-4..1e17.
pub fn format_double(d: f64) -> String {
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
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{}{:02}", trim(mantissa), sign, exp.abs());
    }
    let decimals = (16 - exp).max(0) as usize;
    trim(&format!("{:.*}", decimals, d))
}

fn put_int(out: &mut BytesMut, i: i64) {
    let mut buf = itoa_buf(i);
    out.put_slice(buf.as_bytes_mut());
}

struct IntText {
    buf: [u8; 20],
    start: usize,
}

impl IntText {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }
}

fn itoa_buf(i: i64) -> IntText {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let neg = i < 0;
    let mut n = i.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        pos -= 1;
        buf[pos] = b'-';
    }
    IntText { buf, start: pos }
}

fn header(out: &mut BytesMut, tag: u8, len: usize) {
    out.put_u8(tag);
    put_int(out, len as i64);
    out.put_slice(b"\r\n");
}

fn line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(tag);
    // A status or error line cannot carry CR or LF; Redis replaces them with spaces.
    if text.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(
            text.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
        );
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    header(out, b'$', b.len());
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, tag: u8, items: &[Frame], proto: Protocol) {
    header(out, tag, items.len());
    for item in items {
        item.encode(proto, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: Frame, p: Protocol) -> Vec<u8> {
        f.to_bytes(p).to_vec()
    }

    #[test]
    fn resp2_shapes() {
        assert_eq!(enc(Frame::ok(), Protocol::Resp2), b"+OK\r\n");
        assert_eq!(enc(Frame::Integer(-42), Protocol::Resp2), b":-42\r\n");
        assert_eq!(
            enc(Frame::Integer(i64::MIN), Protocol::Resp2),
            b":-9223372036854775808\r\n"
        );
        assert_eq!(enc(Frame::bulk("ab"), Protocol::Resp2), b"$2\r\nab\r\n");
        assert_eq!(enc(Frame::Null, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(enc(Frame::NullArray, Protocol::Resp2), b"*-1\r\n");
        assert_eq!(
            enc(
                Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]),
                Protocol::Resp2
            ),
            b"*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(Frame::Double(1.5), Protocol::Resp2), b"$3\r\n1.5\r\n");
        assert_eq!(enc(Frame::Boolean(true), Protocol::Resp2), b":1\r\n");
    }

    #[test]
    fn resp3_shapes() {
        assert_eq!(enc(Frame::Null, Protocol::Resp3), b"_\r\n");
        assert_eq!(
            enc(
                Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]),
                Protocol::Resp3
            ),
            b"%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(Frame::Double(3.0), Protocol::Resp3), b",3\r\n");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(-2.0), "-2");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_double(123456.789), "123456.789");
        assert_eq!(
            enc(Frame::Verbatim("hi".into()), Protocol::Resp3),
            b"=6\r\ntxt:hi\r\n"
        );
        assert_eq!(
            enc(Frame::Push(vec![Frame::bulk("x")]), Protocol::Resp3),
            b">1\r\n$1\r\nx\r\n"
        );
    }

    #[test]
    fn error_lines_never_carry_newlines() {
        assert_eq!(
            enc(Frame::error("ERR a\r\nb"), Protocol::Resp2),
            b"-ERR a  b\r\n"
        );
    }
}
