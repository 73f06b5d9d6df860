//! A blocking client connection to another Redis-protocol server: the destination of a slot
//! migration, or the target of MIGRATE.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The longest reply line accepted (a status, an error, a length).
const MAX_LINE: u64 = 64 * 1024;
/// How deep arrays may nest in a reply.
const MAX_DEPTH: usize = 8;
/// How many items an array in a reply may have.
const MAX_ITEMS: i64 = 1 << 20;

/// The socket as the reply reader sees it: each read waits at most until the deadline of the
/// reply being read, so that a peer trickling bytes cannot stretch one reply past it.
struct DeadlineStream {
    stream: TcpStream,
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Read for DeadlineStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(d) = *self.deadline.lock() {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        self.stream.read(buf)
    }
}

/// Why a call to the peer failed: the connection, or an error reply.
#[derive(Debug)]
pub enum PeerError {
    /// Connecting, writing or reading failed (a timeout included); the connection is unusable.
    Io(String),
    /// The peer answered with an error (the text after `-`).
    Reply(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Io(s) | PeerError::Reply(s) => f.write_str(s),
        }
    }
}

impl From<PeerError> for String {
    fn from(e: PeerError) -> String {
        e.to_string()
    }
}

pub struct Peer {
    stream: TcpStream,
    reader: BufReader<DeadlineStream>,
    /// Each reply must be complete within this, from when its reading starts.
    timeout: Duration,
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Peer {
    /// Connects within `timeout`, which also bounds every later read and write; AUTHs when a
    /// password is given. Over TLS with `tls-replication`.
    pub fn connect(
        server: &crate::server::Server,
        addr: &str,
        timeout: Duration,
        password: Option<&str>,
    ) -> Result<Peer, PeerError> {
        let io = |e: std::io::Error| PeerError::Io(format!("cannot connect to {addr}: {e}"));
        let target = addr
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| PeerError::Io(format!("cannot resolve {addr}")))?;
        let stream = crate::tls::connect_to_node(server, target, timeout).map_err(io)?;
        // A cut network must not hold the caller for long.
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let _ = stream.set_nodelay(true);
        let deadline = Arc::new(Mutex::new(None));
        let reader = BufReader::new(DeadlineStream {
            stream: stream.try_clone().map_err(io)?,
            deadline: deadline.clone(),
        });
        let mut p = Peer {
            stream,
            reader,
            timeout,
            deadline,
        };
        if let Some(pw) = password {
            p.call(&[b"AUTH", pw.as_bytes()])?;
        }
        Ok(p)
    }

    /// Bounds later reads and writes by `timeout`.
    pub fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.timeout = timeout;
        self.stream.set_read_timeout(Some(timeout))?;
        self.stream.set_write_timeout(Some(timeout))
    }

    /// Sends commands without waiting for their replies (read them with [`Peer::read`]).
    pub fn send(&mut self, commands: &[Vec<&[u8]>]) -> Result<(), PeerError> {
        let mut out = Vec::new();
        for args in commands {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a);
                out.extend_from_slice(b"\r\n");
            }
        }
        self.stream
            .write_all(&out)
            .map_err(|e| PeerError::Io(format!("sending to the destination failed: {e}")))
    }

    /// Sends one command; returns the reply line (or the bulk body).
    pub fn call(&mut self, args: &[&[u8]]) -> Result<String, PeerError> {
        self.send(&[args.to_vec()])?;
        self.read()
    }

    /// Reads one reply: a line, a bulk body, or an array's items joined by spaces. The whole
    /// reply must arrive within the timeout; lines, nesting and sizes are bounded, since the
    /// peer may be any server a client names (MIGRATE).
    pub fn read(&mut self) -> Result<String, PeerError> {
        *self.deadline.lock() = Some(Instant::now() + self.timeout);
        let r = self.read_at(0);
        *self.deadline.lock() = None;
        r
    }

    fn read_at(&mut self, depth: usize) -> Result<String, PeerError> {
        let io =
            |e: std::io::Error| PeerError::Io(format!("reading from the destination failed: {e}"));
        let bad = || PeerError::Io("a malformed reply from the destination".into());
        let mut raw = Vec::new();
        let n = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut raw)
            .map_err(io)?;
        if n == 0 {
            return Err(PeerError::Io(
                "the destination closed the connection".into(),
            ));
        }
        if raw.last() != Some(&b'\n') {
            return Err(bad());
        }
        let kind = raw[0];
        let rest = String::from_utf8_lossy(&raw[1..]).trim_end().to_string();
        match kind {
            b'-' => Err(PeerError::Reply(rest)),
            b'$' => {
                let len: i64 = rest.parse().map_err(|_| bad())?;
                if len < 0 {
                    return Ok(String::new());
                }
                if len > 64 << 20 {
                    return Err(PeerError::Io(
                        "an oversized reply from the destination".into(),
                    ));
                }
                let mut body = vec![0; len as usize + 2];
                self.reader.read_exact(&mut body).map_err(io)?;
                body.truncate(len as usize);
                Ok(String::from_utf8_lossy(&body).to_string())
            }
            b'*' => {
                let n: i64 = rest.parse().map_err(|_| bad())?;
                if depth >= MAX_DEPTH || n > MAX_ITEMS {
                    return Err(bad());
                }
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    items.push(self.read_at(depth + 1)?);
                }
                Ok(items.join(" "))
            }
            _ => Ok(rest),
        }
    }
}
