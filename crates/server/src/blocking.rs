//! Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP):
//! the waiting room.
//!
//! A blocked client first tries its command; if every list is empty it waits on the keys it
//! names. Every successful write command wakes the waiters of the keys it touched (its key
//! positions in the command table), and they try again. Waiters register before they retry,
//! so a push between a failed try and the wait cannot be missed.
//!
//! Blocked clients are served in the order they blocked, before a newcomer: a blocking pop
//! whose every key has a woken client (of its namespace) that has not tried yet does not try
//! at once but queues behind it, as in Redis, where a push serves the blocked clients before
//! any other command runs. Otherwise the newcomer could take the element pushed for the woken
//! client. A waiter that leaves wakes the next in line, so one behind it is never stranded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use quarry_commands::args::parse_f64;
use quarry_commands::list::{end_of, parse_mpop};
use quarry_commands::CmdError;
use quarry_resp::Frame;
use quarry_types::{End, TypeError};
use tokio::sync::Notify;

use crate::server::Server;

/// A blocked client as the waiting room knows it: an id, its namespace and its own wake-up.
type Waiter = (u64, Option<Bytes>, Arc<Wake>);

/// A blocked client's wake-up.
#[derive(Default)]
pub struct Wake {
    notify: Notify,
    /// Woken, and not tried since: the element that woke it is its own to take.
    pending: AtomicBool,
}

impl Wake {
    fn wake(&self) {
        self.pending.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    /// Resolves once the client is woken (at once if it was woken since it last waited).
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// The client tried (served or not): newcomers need not wait for it any more.
    pub fn tried(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    fn pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
pub struct WaitingRoom {
    /// For each key, the blocked clients waiting on it.
    keys: Mutex<HashMap<Vec<u8>, Vec<Waiter>>>,
    next_id: AtomicUsize,
    /// Blocked clients: writes skip the map entirely while nobody waits.
    blocked: AtomicUsize,
}

impl WaitingRoom {
    /// Wakes the client that has waited longest on `key`. Blocked clients are served in the
    /// order they blocked, as in Redis: each one that tries passes the wake-up on to the next
    /// ([`WaitingRoom::pass_on`]). A client woken while it is not yet waiting keeps the
    /// wake-up (a Notify permit), so none is lost.
    pub fn wake(&self, key: &[u8]) {
        if self.blocked.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some((_, _, wake)) = self.keys.lock().get(key).and_then(|w| w.first()) {
            wake.wake();
        }
    }

    /// Whether, on every one of `keys`, a client of namespace `ns` was woken and has not tried
    /// yet: a newcomer's blocking pop then queues behind it instead of trying.
    pub fn serving_on_all(&self, ns: Option<&Bytes>, keys: &[Bytes]) -> bool {
        self.blocked.load(Ordering::SeqCst) > 0 && self.serving(ns, keys, u64::MAX)
    }

    /// Whether, on every one of `keys`, a client of namespace `ns` that blocked before client
    /// `before` was woken and has not tried yet.
    fn serving(&self, ns: Option<&Bytes>, keys: &[Bytes], before: u64) -> bool {
        let map = self.keys.lock();
        !keys.is_empty()
            && keys.iter().all(|k| {
                map.get(&k[..]).is_some_and(|ws| {
                    ws.iter()
                        .any(|(id, n, wake)| *id < before && n.as_ref() == ns && wake.pending())
                })
            })
    }

    /// FLUSHDB/FLUSHALL: every blocked client looks again (a stream reader whose stream is
    /// gone ends its wait).
    pub fn wake_all(&self) {
        if self.blocked.load(Ordering::SeqCst) == 0 {
            return;
        }
        for waiters in self.keys.lock().values() {
            for (_, _, wake) in waiters {
                wake.wake();
            }
        }
    }

    /// After a woken client's try: wakes, on each of its keys, the next client in line.
    pub fn pass_on(&self, keys: &[Bytes], after: u64) {
        let map = self.keys.lock();
        for k in keys {
            if let Some(ws) = map.get(&k[..]) {
                if let Some((_, _, wake)) = ws.iter().find(|(id, _, _)| *id > after) {
                    wake.wake();
                }
            }
        }
    }

    /// SeqCst, paired with `Waiting::enter`: a writer that sees 0 here wrote before the client
    /// registered, so the client's retry after registering sees the write.
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::SeqCst)
    }
}

/// A parsed blocking command.
pub struct BlockingOp {
    keys: Vec<Bytes>,
    /// The command as the client sent it, for keyspace notifications when it is served.
    args: Vec<Bytes>,
    kind: OpKind,
    /// Scores are doubles in RESP3.
    protocol: quarry_resp::Protocol,
    /// None: wait forever (timeout 0).
    deadline: Option<Instant>,
    /// The client's namespace, whose keys it waits on.
    pub ns: Option<Bytes>,
}

enum OpKind {
    /// BLPOP/BRPOP: one element from the first non-empty list, replied as [key, element].
    Pop(End),
    /// BLMPOP: up to `count` elements, replied as [key, [elements]].
    MultiPop(End, u64),
    /// BLMOVE/BRPOPLPUSH: `keys[0]` -> `dst`.
    Move { dst: Bytes, from: End, to: End },
    /// BZPOPMIN/BZPOPMAX: one member, replied as [key, member, score].
    ZPop { max: bool },
    /// BZMPOP: up to `count` members, replied as [key, [[member, score], ...]].
    ZMultiPop { max: bool, count: usize },
    /// XREAD / XREADGROUP with BLOCK.
    Stream(Box<quarry_commands::stream::ReadRequest>),
}

fn timeout_of(arg: &[u8]) -> Result<Option<Instant>, CmdError> {
    let secs =
        parse_f64(arg).map_err(|_| CmdError::err("timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(CmdError::err("timeout is negative"));
    }
    if !secs.is_finite() || secs > 1e10 {
        return Err(CmdError::err("timeout is out of range"));
    }
    Ok((secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(secs)))
}

/// Parses BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX and BZMPOP.
pub fn parse(
    name: &str,
    a: &[Bytes],
    protocol: quarry_resp::Protocol,
    ns: Option<&Bytes>,
) -> Result<BlockingOp, CmdError> {
    let mut op = parse_op(name, a)?;
    op.protocol = protocol;
    op.ns = ns.cloned();
    op.args = a.to_vec();
    Ok(op)
}

fn parse_op(name: &str, a: &[Bytes]) -> Result<BlockingOp, CmdError> {
    let last = &a[a.len() - 1];
    match name {
        "bzpopmin" | "bzpopmax" => Ok(BlockingOp {
            keys: a[1..a.len() - 1].to_vec(),
            kind: OpKind::ZPop {
                max: name == "bzpopmax",
            },
            args: Vec::new(),
            protocol: quarry_resp::Protocol::Resp2,
            deadline: timeout_of(last)?,
            ns: None,
        }),
        "bzmpop" => {
            let deadline = timeout_of(&a[1])?;
            let (keys, max, count) = quarry_commands::zset::parse_zmpop(&a[2..])?;
            Ok(BlockingOp {
                keys: keys.to_vec(),
                kind: OpKind::ZMultiPop { max, count },
                args: Vec::new(),
                protocol: quarry_resp::Protocol::Resp2,
                deadline,
                ns: None,
            })
        }
        "blpop" | "brpop" => Ok(BlockingOp {
            keys: a[1..a.len() - 1].to_vec(),
            kind: OpKind::Pop(if name == "blpop" {
                End::Left
            } else {
                End::Right
            }),
            args: Vec::new(),
            protocol: quarry_resp::Protocol::Resp2,
            deadline: timeout_of(last)?,
            ns: None,
        }),
        "brpoplpush" => Ok(BlockingOp {
            keys: vec![a[1].clone()],
            kind: OpKind::Move {
                dst: a[2].clone(),
                from: End::Right,
                to: End::Left,
            },
            args: Vec::new(),
            protocol: quarry_resp::Protocol::Resp2,
            deadline: timeout_of(&a[3])?,
            ns: None,
        }),
        "blmove" => Ok(BlockingOp {
            keys: vec![a[1].clone()],
            kind: OpKind::Move {
                dst: a[2].clone(),
                from: end_of(&a[3])?,
                to: end_of(&a[4])?,
            },
            args: Vec::new(),
            protocol: quarry_resp::Protocol::Resp2,
            deadline: timeout_of(&a[5])?,
            ns: None,
        }),
        // BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
        _ => {
            let deadline = timeout_of(&a[1])?;
            let (keys, end, count) = parse_mpop(&a[2..])?;
            Ok(BlockingOp {
                keys: keys.to_vec(),
                kind: OpKind::MultiPop(end, count),
                args: Vec::new(),
                protocol: quarry_resp::Protocol::Resp2,
                deadline,
                ns: None,
            })
        }
    }
}

impl BlockingOp {
    /// XREAD / XREADGROUP with BLOCK: waits on the streams' keys.
    pub fn stream(mut req: quarry_commands::stream::ReadRequest) -> BlockingOp {
        req.blocked = true;
        let deadline = match req.block_ms {
            Some(ms) if ms > 0 => Some(Instant::now() + Duration::from_millis(ms)),
            _ => None,
        };
        BlockingOp {
            keys: req.keys.clone(),
            kind: OpKind::Stream(Box::new(req)),
            args: Vec::new(),
            protocol: quarry_resp::Protocol::Resp2,
            deadline,
            ns: None,
        }
    }

    /// A try after a wake-up: as [`BlockingOp::attempt`], except that a key of another type
    /// keeps the client waiting (Redis serves a blocked client only from a key of its type).
    pub fn retry(&self, server: &Server) -> Option<Result<Frame, CmdError>> {
        match self.attempt(server) {
            Some(Err(CmdError::WrongType)) if !self.destination_is_wrong(server) => None,
            other => other,
        }
    }

    /// A move's destination of another type is the client's error, not a reason to wait.
    fn destination_is_wrong(&self, server: &Server) -> bool {
        let OpKind::Move { .. } = &self.kind else {
            return false;
        };
        let Some(storage) = server.storage() else {
            return false;
        };
        // The source is a list (or missing), so the WRONGTYPE came from the destination.
        matches!(
            storage.db(self.ns.as_ref()).key_type(&self.keys[0]),
            Ok(None | Some(quarry_types::RedisType::List))
        )
    }

    /// One try: the reply if some list had an element (or an error), None to keep waiting.
    pub fn attempt(&self, server: &Server) -> Option<Result<Frame, CmdError>> {
        let Some(storage) = server.storage() else {
            return Some(Err(CmdError::Loading));
        };
        let db = &*storage.db(self.ns.as_ref());
        if let OpKind::Stream(req) = &self.kind {
            return match req.attempt(db) {
                Ok(Some(frame)) => Some(Ok(frame)),
                Ok(None) => None,
                Err(e) => Some(Err(e)),
            };
        }
        let result: Result<Option<Frame>, TypeError> = (|| match &self.kind {
            OpKind::Pop(end) => {
                for key in &self.keys {
                    if let Some(mut v) = db.pop(key, *end, 1)? {
                        if let Some(e) = v.pop() {
                            return Ok(Some(Frame::Array(vec![
                                Frame::Bulk(key.clone()),
                                Frame::Bulk(Bytes::from(e)),
                            ])));
                        }
                    }
                }
                Ok(None)
            }
            OpKind::MultiPop(end, count) => {
                for key in &self.keys {
                    if let Some(v) = db.pop(key, *end, *count)? {
                        if !v.is_empty() {
                            let elements =
                                v.into_iter().map(|e| Frame::Bulk(Bytes::from(e))).collect();
                            return Ok(Some(Frame::Array(vec![
                                Frame::Bulk(key.clone()),
                                Frame::Array(elements),
                            ])));
                        }
                    }
                }
                Ok(None)
            }
            OpKind::Move { dst, from, to } => Ok(db
                .lmove(&self.keys[0], dst, *from, *to)?
                .map(|e| Frame::Bulk(Bytes::from(e)))),
            OpKind::ZPop { max } => {
                for key in &self.keys {
                    if let Some((m, sc)) = db.zpop(key, *max, 1)?.pop() {
                        return Ok(Some(Frame::Array(vec![
                            Frame::Bulk(key.clone()),
                            Frame::Bulk(Bytes::from(m)),
                            self.score(sc),
                        ])));
                    }
                }
                Ok(None)
            }
            // Handled before this closure.
            OpKind::Stream(_) => Ok(None),
            OpKind::ZMultiPop { max, count } => {
                for key in &self.keys {
                    let popped = db.zpop(key, *max, *count)?;
                    if !popped.is_empty() {
                        let items = popped
                            .into_iter()
                            .map(|(m, sc)| {
                                Frame::Array(vec![Frame::Bulk(Bytes::from(m)), self.score(sc)])
                            })
                            .collect();
                        return Ok(Some(Frame::Array(vec![
                            Frame::Bulk(key.clone()),
                            Frame::Array(items),
                        ])));
                    }
                }
                Ok(None)
            }
        })();
        match result {
            Ok(Some(frame)) => {
                if let OpKind::Move { dst, .. } = &self.kind {
                    server.waiting.wake(dst);
                }
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
        }
    }

    fn score(&self, s: f64) -> Frame {
        match self.protocol {
            quarry_resp::Protocol::Resp3 => Frame::Double(s),
            quarry_resp::Protocol::Resp2 => Frame::bulk(quarry_resp::format_double(s)),
        }
    }

    /// The reply when the time is up: a null (array for the pops).
    pub fn timed_out(&self) -> Frame {
        match &self.kind {
            OpKind::Move { .. } => Frame::Null,
            _ => Frame::NullArray,
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether a retry may find something: some source key exists (any type: another type is
    /// the retry's to judge). A wake-up by a write that left every source missing (DEL, a
    /// no-op LPUSHX ...) then touches no watcher; a push after this check wakes the client
    /// again (the wake-up is registered first), so nothing is missed. Streams always retry.
    pub fn may_have_data(&self, server: &Server) -> bool {
        if matches!(self.kind, OpKind::Stream(_)) {
            return true;
        }
        match server.storage() {
            Some(storage) => storage
                .db(self.ns.as_ref())
                .exists(&self.keys)
                .map_or(true, |n| n > 0),
            None => true,
        }
    }

    /// XREAD / XREADGROUP: every reader may be served from one write, in no order.
    pub fn is_stream(&self) -> bool {
        matches!(self.kind, OpKind::Stream(_))
    }

    /// The command as sent (empty for XREAD, which changes nothing when served).
    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    pub fn keys(&self) -> &[Bytes] {
        &self.keys
    }

    /// Every key the operation touches: the watched keys and a move's destination.
    pub fn all_keys(&self) -> Vec<Bytes> {
        let mut out = self.keys.clone();
        if let OpKind::Move { dst, .. } = &self.kind {
            out.push(dst.clone());
        }
        out
    }
}

/// Registration in the waiting room for the time a client is blocked; leaving is automatic,
/// also when the connection's task is aborted.
pub struct Waiting<'a> {
    room: &'a WaitingRoom,
    pub id: u64,
    ns: Option<Bytes>,
    keys: Vec<Bytes>,
    /// Notified whenever one of the keys is written.
    pub wakeup: Arc<Wake>,
}

impl<'a> Waiting<'a> {
    pub fn enter(room: &'a WaitingRoom, ns: Option<&Bytes>, keys: &[Bytes]) -> Waiting<'a> {
        let id = room.next_id.fetch_add(1, Ordering::Relaxed) as u64;
        let wakeup = Arc::new(Wake::default());
        {
            let mut map = room.keys.lock();
            for k in keys {
                map.entry(k.to_vec())
                    .or_default()
                    .push((id, ns.cloned(), wakeup.clone()));
            }
        }
        room.blocked.fetch_add(1, Ordering::SeqCst);
        Waiting {
            room,
            id,
            ns: ns.cloned(),
            keys: keys.to_vec(),
            wakeup,
        }
    }

    /// Whether, on every one of its keys, a client of its namespace that blocked before this
    /// one was woken and has not tried yet: it is its turn first, and it wakes this one after
    /// its try (or when it leaves).
    pub fn behind_others(&self) -> bool {
        self.room.serving(self.ns.as_ref(), &self.keys, self.id)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        // Woken and gone before its try (a timeout, CLIENT UNBLOCK or a disconnect at the same
        // moment): the wake-up goes on to the next in line, wherever this one stood.
        // And the first in line wakes the next in any case: it may be what a newcomer queued
        // behind.
        let unused_wake = self.wakeup.pending();
        let mut map = self.room.keys.lock();
        for k in &self.keys {
            if let Some(waiters) = map.get_mut(&k[..]) {
                let Some(at) = waiters.iter().position(|(id, _, _)| *id == self.id) else {
                    continue;
                };
                waiters.remove(at);
                if at == 0 || unused_wake {
                    if let Some((_, _, next)) = waiters.get(at) {
                        next.wake();
                    }
                }
                if waiters.is_empty() {
                    map.remove(&k[..]);
                }
            }
        }
        self.room.blocked.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Vec<Bytes> {
        vec![Bytes::copy_from_slice(k.as_bytes())]
    }

    #[test]
    fn a_newcomer_waits_for_a_woken_client_until_it_tried() {
        let room = WaitingRoom::default();
        let first = Waiting::enter(&room, None, &key("k"));
        // Blocked but not woken: a newcomer tries at once (the key may hold another type).
        assert!(!room.serving_on_all(None, &key("k")));
        room.wake(b"k");
        assert!(room.serving_on_all(None, &key("k")));
        assert!(!room.serving_on_all(None, &key("other")));
        // Another namespace's client does not hold this one up.
        assert!(!room.serving_on_all(Some(&Bytes::from_static(b"ns")), &key("k")));
        let newcomer = Waiting::enter(&room, None, &key("k"));
        assert!(newcomer.behind_others());
        first.wakeup.tried();
        assert!(!room.serving_on_all(None, &key("k")));
        assert!(!newcomer.behind_others());
    }

    #[test]
    fn a_client_that_leaves_first_in_line_wakes_the_next() {
        let room = WaitingRoom::default();
        let first = Waiting::enter(&room, None, &key("k"));
        let second = Waiting::enter(&room, None, &key("k"));
        let third = Waiting::enter(&room, None, &key("k"));
        // The second leaving is not first in line: nobody is woken.
        drop(second);
        assert!(!third.wakeup.pending());
        drop(first);
        assert!(third.wakeup.pending());
        let woken = third.wakeup.notified();
        tokio::pin!(woken);
        assert!(
            futures_poll_once(woken.as_mut()),
            "the wake-up is kept for the next wait"
        );
    }

    #[test]
    fn a_woken_client_that_leaves_before_its_try_passes_the_wake_up_on() {
        let room = WaitingRoom::default();
        let first = Waiting::enter(&room, None, &key("k"));
        let second = Waiting::enter(&room, None, &key("k"));
        let third = Waiting::enter(&room, None, &key("k"));
        // The first tried and passed the turn on; the second leaves before its try (a timeout
        // at the same moment), while the first still waits ahead of it.
        room.pass_on(&key("k"), first.id);
        assert!(second.wakeup.pending());
        drop(second);
        assert!(third.wakeup.pending());
        drop(first);
    }

    /// Polls a future once with a no-op waker.
    fn futures_poll_once<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        f.poll(&mut cx).is_ready()
    }
}
