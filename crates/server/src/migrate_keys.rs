//! MIGRATE: moves keys to another Redis-protocol server (Redis, Kvrocks, quarry) as DUMP
//! payloads sent with RESTORE, then deletes them here unless COPY is given. As in Redis, the
//! keys cannot change between the DUMP and the DELETE (they are locked, and the deletes are one
//! batch), and connections to targets are kept for reuse until idle for 10 seconds
//! (INFO `migrate_cached_sockets`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use quarry_commands::args::{is, parse_i64};
use quarry_commands::CmdError;
use quarry_resp::Frame;
use quarry_storage::encoding::now_ms;
use quarry_types::TtlState;
use tracing::debug;

use crate::peer::{Peer, PeerError};
use crate::server::Server;

/// How long an unused connection to a target is kept.
const IDLE: Duration = Duration::from_secs(10);
/// At most this many targets keep a connection (Redis' MIGRATE_SOCKET_CACHE_ITEMS).
const MAX_CACHED: usize = 64;

struct Cached {
    peer: Peer,
    last_used: Instant,
    /// The database the connection last SELECTed.
    db: i64,
}

/// Connections to MIGRATE targets, by `host:port`.
#[derive(Default)]
pub struct SocketCache {
    map: Mutex<HashMap<String, Cached>>,
    reaper: AtomicBool,
}

impl SocketCache {
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    /// A cached connection, or a new one (which has no database selected).
    fn take(
        &self,
        server: &Server,
        addr: &str,
        timeout: Duration,
    ) -> Result<(Cached, bool), PeerError> {
        if let Some(mut c) = self.map.lock().remove(addr) {
            // Each MIGRATE brings its own timeout.
            if c.peer.set_timeout(timeout).is_ok() {
                return Ok((c, true));
            }
        }
        let peer = Peer::connect(server, addr, timeout, None)?;
        Ok((
            Cached {
                peer,
                last_used: Instant::now(),
                db: -1,
            },
            false,
        ))
    }

    fn put_back(self: &Arc<Self>, addr: String, mut c: Cached) {
        c.last_used = Instant::now();
        let mut map = self.map.lock();
        if map.len() >= MAX_CACHED && !map.contains_key(&addr) {
            let oldest = map
                .iter()
                .min_by_key(|(_, c)| c.last_used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
        map.insert(addr, c);
        drop(map);
        // One reaper at a time closes idle connections, and stops when none are left.
        if !self.reaper.swap(true, Ordering::AcqRel) {
            let cache = Arc::clone(self);
            std::thread::spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                let mut map = cache.map.lock();
                map.retain(|_, c| c.last_used.elapsed() < IDLE);
                if map.is_empty() {
                    cache.reaper.store(false, Ordering::Release);
                    return;
                }
            });
        }
    }
}

struct Request<'a> {
    host: &'a str,
    port: &'a str,
    db: i64,
    timeout: Duration,
    copy: bool,
    replace: bool,
    auth: Option<(Option<&'a [u8]>, &'a [u8])>,
    keys: &'a [Bytes],
}

fn parse(a: &[Bytes]) -> Result<Request<'_>, CmdError> {
    let mut req = Request {
        host: "",
        port: "",
        db: 0,
        timeout: Duration::ZERO,
        copy: false,
        replace: false,
        auth: None,
        keys: &a[3..4],
    };
    let mut j = 6;
    while j < a.len() {
        let more = a.len() - 1 - j;
        if is(&a[j], "copy") {
            req.copy = true;
        } else if is(&a[j], "replace") {
            req.replace = true;
        } else if is(&a[j], "auth") {
            if more < 1 {
                return Err(CmdError::Syntax);
            }
            req.auth = Some((None, &a[j + 1]));
            j += 1;
        } else if is(&a[j], "auth2") {
            if more < 2 {
                return Err(CmdError::Syntax);
            }
            req.auth = Some((Some(&a[j + 1][..]), &a[j + 2]));
            j += 2;
        } else if is(&a[j], "keys") {
            if !a[3].is_empty() {
                return Err(CmdError::err(
                    "When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            req.keys = &a[j + 1..];
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    req.db = parse_i64(&a[4])?;
    let timeout = parse_i64(&a[5])?;
    req.timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    req.host = std::str::from_utf8(&a[1]).map_err(|_| CmdError::Syntax)?;
    req.port = std::str::from_utf8(&a[2]).map_err(|_| CmdError::Syntax)?;
    Ok(req)
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password |
/// AUTH2 username password] [KEYS key [key ...]]
/// The keys are the namespace `ns`'s (None: the default one).
pub fn migrate(server: &Server, ns: Option<&Bytes>, a: &[Bytes]) -> Result<Frame, CmdError> {
    let req = parse(a)?;
    let storage = server.storage().ok_or(CmdError::Loading)?;
    let db = &*storage.db(ns);
    // Nothing moves until the target has answered and the keys are gone here.
    let _guard = db.locks().lock_many(req.keys);
    let mut payloads: Vec<(&Bytes, u64, Vec<u8>)> = Vec::new();
    for key in req.keys {
        let ttl = match db.ttl(key)? {
            TtlState::Missing => continue,
            TtlState::NoExpiry => 0,
            TtlState::ExpiresAt(at) => match at.checked_sub(now_ms()) {
                Some(0) => 1,
                Some(left) => left,
                None => continue,
            },
        };
        if let Some(p) = quarry_commands::dump_payload(db, key)? {
            payloads.push((key, ttl, p));
        }
    }
    if payloads.is_empty() {
        return Ok(Frame::Simple("NOKEY".into()));
    }
    let addr = format!("{}:{}", req.host, req.port);
    let cache = Arc::clone(&server.migrate_sockets);
    // A cached connection the target has since closed is retried once on a new one, as long
    // as nothing was acknowledged.
    let mut retried = false;
    loop {
        let (mut conn, was_cached) = cache.take(server, &addr, req.timeout).map_err(|_| {
            CmdError::Other("IOERR error or timeout connecting to the client".into())
        })?;
        let outcome = send_and_read(server, &req, &mut conn, &payloads);
        match outcome.io_error {
            None => cache.put_back(addr, conn),
            Some(_) => {
                debug!(target = %addr, "MIGRATE lost its connection");
                // Nothing was acknowledged on a connection that had been idle in the cache:
                // the target likely closed it; one more try on a new one.
                if was_cached && !retried && outcome.accepted.is_empty() {
                    retried = true;
                    continue;
                }
            }
        }
        return finish(db, &req, &payloads, outcome);
    }
}

/// What the target said: which keys it accepted (in order, as far as it got), its first
/// error, and whether the connection failed (while writing, or while reading).
struct Outcome {
    accepted: Vec<bool>,
    error: Option<String>,
    io_error: Option<&'static str>,
}

fn send_and_read(
    server: &Server,
    req: &Request<'_>,
    conn: &mut Cached,
    payloads: &[(&Bytes, u64, Vec<u8>)],
) -> Outcome {
    let mut out = Outcome {
        accepted: Vec::with_capacity(payloads.len()),
        error: None,
        io_error: None,
    };
    let db_text = req.db.to_string();
    let select = conn.db != req.db;
    let cluster = server.cluster.enabled;
    let ttls: Vec<String> = payloads.iter().map(|(_, t, _)| t.to_string()).collect();
    let mut commands: Vec<Vec<&[u8]>> = Vec::new();
    match req.auth {
        Some((Some(user), pass)) => commands.push(vec![b"AUTH", user, pass]),
        Some((None, pass)) => commands.push(vec![b"AUTH", pass]),
        None => {}
    }
    if select {
        commands.push(vec![b"SELECT", db_text.as_bytes()]);
    }
    for ((key, _, payload), ttl) in payloads.iter().zip(&ttls) {
        let name: &[u8] = if cluster {
            b"RESTORE-ASKING"
        } else {
            b"RESTORE"
        };
        let mut cmd = vec![name, &key[..], ttl.as_bytes(), &payload[..]];
        if req.replace {
            cmd.push(b"REPLACE");
        }
        commands.push(cmd);
    }
    if conn.peer.send(&commands).is_err() {
        out.io_error = Some("writing");
        return out;
    }
    // Ok(None): fine; Ok(Some(text)): an error reply; Err: the connection failed.
    let reply = |conn: &mut Cached| match conn.peer.read() {
        Ok(_) => Ok(None),
        Err(PeerError::Reply(e)) => Ok(Some(e)),
        Err(PeerError::Io(_)) => Err(()),
    };
    let mut refused = None;
    for expected in [req.auth.is_some(), select] {
        if expected {
            match reply(conn) {
                Ok(e) => refused = refused.or(e),
                Err(()) => {
                    out.io_error = Some("reading");
                    return out;
                }
            }
        }
    }
    if select && refused.is_none() {
        conn.db = req.db;
    }
    for _ in payloads {
        match reply(conn) {
            // A refused AUTH or SELECT makes every key fail, whatever RESTORE said.
            Ok(e) => match refused.clone().or(e) {
                Some(e) => {
                    conn.db = -1;
                    out.error.get_or_insert(e);
                    out.accepted.push(false);
                }
                None => out.accepted.push(true),
            },
            Err(()) => {
                out.io_error = Some("reading");
                break;
            }
        }
    }
    out
}

/// Deletes what the target accepted (unless COPY), in one batch; reports the target's error.
fn finish(
    db: &quarry_types::Db,
    req: &Request<'_>,
    payloads: &[(&Bytes, u64, Vec<u8>)],
    outcome: Outcome,
) -> Result<Frame, CmdError> {
    if !req.copy {
        let moved: Vec<&Bytes> = payloads
            .iter()
            .zip(&outcome.accepted)
            .filter(|(_, ok)| **ok)
            .map(|((k, _, _), _)| *k)
            .collect();
        if !moved.is_empty() {
            // The locks are held already; inside a transaction the deletes take none. Inside
            // EXEC, EXEC's own transaction takes them.
            if quarry_types::txn::active() {
                db.delete(&moved)?;
            } else {
                let txn = quarry_types::txn::begin();
                let deleted = db.delete(&moved);
                let overlay = txn.finish();
                deleted?;
                db.commit(overlay)?;
            }
        }
    }
    match (outcome.error, outcome.io_error) {
        (Some(e), _) => Err(CmdError::err(format!(
            "Target instance replied with error: {e}"
        ))),
        (None, Some(what)) => Err(CmdError::Other(format!(
            "IOERR error or timeout {what} to target instance"
        ))),
        (None, None) => Ok(Frame::ok()),
    }
}
