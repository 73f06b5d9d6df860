//! Blocking RESP helpers for the replication conversations.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub fn send(stream: &mut TcpStream, args: &[&[u8]]) -> io::Result<()> {
    stream.write_all(&command(args))
}

/// One line without its CRLF. Lines longer than `max` are an error.
pub fn read_line<R: BufRead>(r: &mut R, max: usize) -> io::Result<String> {
    let mut buf = Vec::new();
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if let Some(i) = available.iter().position(|&b| b == b'\n') {
            buf.extend_from_slice(&available[..i]);
            r.consume(i + 1);
            break;
        }
        let n = available.len();
        buf.extend_from_slice(available);
        r.consume(n);
        if buf.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))
}

/// The largest bulk string accepted from a peer (a WAL batch can hold several big values).
pub const MAX_PAYLOAD: usize = 4 << 30;

/// Reads exactly `len` bytes and the CRLF after them.
pub fn read_payload<R: Read>(r: &mut R, len: usize) -> io::Result<Vec<u8>> {
    if len > MAX_PAYLOAD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a bulk string of {len} bytes is larger than {MAX_PAYLOAD}"),
        ));
    }
    let mut data = vec![0u8; len + 2];
    r.read_exact(&mut data)?;
    if &data[len..] != b"\r\n" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bulk string without CRLF",
        ));
    }
    data.truncate(len);
    Ok(data)
}

/// Reads one RESP array of bulk strings (a command sent by a replica on the feed connection).
pub fn read_command(r: &mut BufReader<TcpStream>) -> io::Result<Vec<Vec<u8>>> {
    let head = read_line(r, 64)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad command from replica");
    let n: usize = head
        .strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .ok_or_else(bad)?;
    if n > 16 {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let len: usize = read_line(r, 64)?
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        if len > 1024 {
            return Err(bad());
        }
        out.push(read_payload(r, len)?);
    }
    Ok(out)
}
