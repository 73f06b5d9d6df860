//! MULTI/EXEC/DISCARD and WATCH/UNWATCH.
//!
//! Queued commands are checked as Redis checks them (unknown command, arity, routing, role),
//! and a rejected one makes EXEC answer EXECABORT. EXEC takes the key locks of every queued
//! command, checks the watched keys, and runs the commands inside a [`quarry_types::txn`]
//! transaction: each command reads what the earlier ones wrote, and all the writes are
//! committed as one WriteBatch, so that no client sees half a transaction and the replicas
//! apply it as one unit.
//!
//! WATCH: every write command marks the watchers of its keys before it writes, so that an
//! EXEC that checks after taking its locks cannot miss a write that is already committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use quarry_commands::table::{flag, CommandSpec};
use quarry_commands::CmdError;
use quarry_resp::Frame;
use quarry_types::Db;

use crate::connection::{dispatch, Flow, Mode, Session};
use crate::server::Server;

/// A command queued inside MULTI, as it was checked when queued.
struct Queued {
    spec: &'static CommandSpec,
    sub: Option<usize>,
    args: Vec<Bytes>,
    /// The positions of its keys in `args`.
    keys: Vec<usize>,
}

impl Queued {
    fn key_names(&self) -> impl Iterator<Item = &Bytes> {
        self.keys.iter().map(|&p| &self.args[p])
    }
}

/// The commands queued since MULTI.
#[derive(Default)]
pub struct MultiState {
    queued: Vec<Queued>,
    /// A command was rejected while queueing: EXEC answers EXECABORT.
    failed: bool,
}

impl MultiState {
    /// Whether a queued command writes or may replicate (CLIENT PAUSE WRITE holds such an
    /// EXEC).
    pub fn writes(&self) -> bool {
        self.queued
            .iter()
            .any(|q| q.spec.has(flag::WRITE) || crate::pause::may_replicate(q.spec.name))
    }
}

/// Commands that run at once inside MULTI instead of being queued.
pub fn runs_immediately(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Marks the transaction of `session`, if one is open, as failed (a command was rejected).
pub fn flag_failed(session: &mut Session) {
    if let Some(m) = session.multi.as_mut() {
        m.failed = true;
    }
}

/// The registry of watched keys: key → the connections watching it, each with its namespace
/// (None: the default one). A write marks the watchers of its keys in its own namespace.
#[derive(Default)]
pub struct Watches {
    /// Number of (connection, key) pairs: write commands skip the registry when it is zero.
    count: AtomicUsize,
    map: Mutex<HashMap<Bytes, Vec<Watcher>>>,
}

struct Watcher {
    ns: Option<Bytes>,
    dirty: Arc<AtomicBool>,
}

impl Watches {
    /// Marks the watchers of the keys of a write command (at positions `keys` of `args`) that
    /// is about to run in namespace `ns`.
    pub fn touch(&self, ns: Option<&Bytes>, args: &[Bytes], keys: &[usize]) {
        self.mark(ns, keys.iter().map(|&p| &args[p]));
    }

    /// Marks the watchers of `keys` of namespace `ns`.
    pub fn touch_keys(&self, ns: Option<&Bytes>, keys: &[Bytes]) {
        self.mark(ns, keys);
    }

    fn mark<'k>(&self, ns: Option<&Bytes>, keys: impl IntoIterator<Item = &'k Bytes>) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let map = self.map.lock();
        for key in keys {
            if let Some(watchers) = map.get(key) {
                for w in watchers.iter().filter(|w| w.ns.as_ref() == ns) {
                    w.dirty.store(true, Ordering::Release);
                }
            }
        }
    }

    /// FLUSHDB: marks the watchers of namespace `ns` whose watched keys exist (a missing or
    /// expired key is not changed by a flush, as in Redis).
    pub fn touch_live(&self, ns: Option<&Bytes>, db: &Db) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let map = self.map.lock();
        for (key, watchers) in map.iter() {
            let mut mine = watchers.iter().filter(|w| w.ns.as_ref() == ns).peekable();
            if mine.peek().is_some() && db.peek_live(key).ok().flatten().is_some() {
                for w in mine {
                    w.dirty.store(true, Ordering::Release);
                }
            }
        }
    }

    /// FLUSHALL: marks every watcher whose key exists in its namespace.
    pub fn touch_flushall(&self, server: &crate::server::Server) {
        if self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let Some(storage) = server.storage() else {
            return;
        };
        let map = self.map.lock();
        for (key, watchers) in map.iter() {
            for w in watchers {
                let db = storage.db(w.ns.as_ref());
                if db.peek_live(key).ok().flatten().is_some() {
                    w.dirty.store(true, Ordering::Release);
                }
            }
        }
    }

    fn add(&self, ns: Option<&Bytes>, key: Bytes, flag: &Arc<AtomicBool>) {
        self.map.lock().entry(key).or_default().push(Watcher {
            ns: ns.cloned(),
            dirty: flag.clone(),
        });
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn remove(&self, keys: &[(Bytes, bool)], flag: &Arc<AtomicBool>) {
        let mut map = self.map.lock();
        for (key, _) in keys {
            if let Some(watchers) = map.get_mut(key) {
                let before = watchers.len();
                watchers.retain(|w| !Arc::ptr_eq(&w.dirty, flag));
                self.count
                    .fetch_sub(before - watchers.len(), Ordering::AcqRel);
                if watchers.is_empty() {
                    map.remove(key);
                }
            }
        }
    }
}

/// One connection's watched keys. Dropping it (UNWATCH, EXEC, DISCARD, RESET, or the
/// connection going away however it ends) takes them out of the registry.
pub struct Watched {
    registry: Arc<Watches>,
    dirty: Arc<AtomicBool>,
    /// Each key, with whether it existed when it was watched.
    keys: Vec<(Bytes, bool)>,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.registry.remove(&self.keys, &self.dirty);
    }
}

impl Watched {
    /// Whether EXEC must fail: a watched key was written, or it expired since it was watched
    /// (Redis treats a key that expires under WATCH as modified; one already expired when
    /// watched is not).
    fn broken(&self, db: &Db) -> Result<bool, CmdError> {
        if self.dirty.load(Ordering::Acquire) {
            return Ok(true);
        }
        for (key, existed) in &self.keys {
            if *existed && db.peek_live(key)?.is_none() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// MULTI, EXEC, DISCARD, WATCH and UNWATCH.
pub fn run(
    server: &Server,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
    out: &mut BytesMut,
) -> Flow {
    let proto = session.protocol;
    let reply = match name {
        "multi" => {
            if session.multi.is_some() {
                Err(CmdError::err("MULTI calls can not be nested"))
            } else {
                session.multi = Some(MultiState::default());
                Ok(Frame::ok())
            }
        }
        "discard" => match session.multi.take() {
            None => Err(CmdError::err("DISCARD without MULTI")),
            Some(_) => {
                session.watch = None;
                Ok(Frame::ok())
            }
        },
        "watch" => watch(server, session, &args[1..]),
        "unwatch" => {
            session.watch = None;
            Ok(Frame::ok())
        }
        "exec" => {
            // MONITOR shows a transaction as Redis does: MULTI, its commands, then EXEC, all
            // once EXEC runs.
            let source = (server.monitors.load(Ordering::Relaxed) > 0 && session.multi.is_some())
                .then(|| session.handle.addr_text());
            if let Some(source) = &source {
                crate::connection::feed_monitor(server, source, &[Bytes::from_static(b"multi")]);
            }
            let flow = exec(server, session, out);
            if let Some(source) = &source {
                crate::connection::feed_monitor(server, source, &[Bytes::from_static(b"exec")]);
            }
            return flow;
        }
        _ => unreachable!("multi::run called for {name}"),
    };
    match reply {
        Ok(f) => f.encode(proto, out),
        Err(e) => Frame::Error(e.to_string()).encode(proto, out),
    }
    Flow::Continue
}

fn watch(server: &Server, session: &mut Session, keys: &[Bytes]) -> Result<Frame, CmdError> {
    if session.multi.is_some() {
        return Err(CmdError::err("WATCH inside MULTI is not allowed"));
    }
    let storage = server.storage().ok_or(CmdError::Loading)?;
    let watched = session.watch.get_or_insert_with(|| Watched {
        registry: server.watches.clone(),
        dirty: Arc::new(AtomicBool::new(false)),
        keys: Vec::new(),
    });
    for key in keys {
        if watched.keys.iter().any(|(k, _)| k == key) {
            continue;
        }
        let exists = storage
            .db(session.namespace.as_ref())
            .peek_live(key)?
            .is_some();
        watched
            .registry
            .add(session.namespace.as_ref(), key.clone(), &watched.dirty);
        watched.keys.push((key.clone(), exists));
    }
    Ok(Frame::ok())
}

fn abort(session: &Session, out: &mut BytesMut, reason: &str) -> Flow {
    Frame::Error(format!(
        "EXECABORT Transaction discarded because of: {reason}"
    ))
    .encode(session.protocol, out);
    Flow::Continue
}

fn exec(server: &Server, session: &mut Session, out: &mut BytesMut) -> Flow {
    let proto = session.protocol;
    let Some(state) = session.multi.take() else {
        Frame::error("ERR EXEC without MULTI").encode(proto, out);
        return Flow::Continue;
    };
    // EXEC unwatches whatever happens.
    let watched = session.watch.take();
    if state.failed {
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
            .encode(proto, out);
        return Flow::Continue;
    }
    // The server's state may have changed since the commands were queued: the checks run again
    // for the transaction as a whole, as Redis does.
    let any_write = state.queued.iter().any(|q| q.spec.has(flag::WRITE));
    let all_stale = state.queued.iter().all(|q| q.spec.has(flag::STALE));
    if !state.queued.is_empty() {
        if let Err(e) = crate::replication::gate(server, any_write, all_stale) {
            return abort(session, out, &e.to_string());
        }
    }
    let _fence = any_write.then(|| server.migration.fence.read());
    if server.cluster.enabled {
        for q in &state.queued {
            if let Some(e) = crate::cluster::check_route(server, session, q.spec, &q.args, &q.keys)
            {
                return abort(session, out, &e);
            }
        }
    }
    let Some(storage) = server.storage() else {
        return abort(session, out, &CmdError::Loading.to_string());
    };
    let keys: Vec<Bytes> = state
        .queued
        .iter()
        .flat_map(Queued::key_names)
        .cloned()
        .collect();
    let ns = session.namespace.clone();
    let db = storage.db(ns.as_ref());
    let locks = db.locks().lock_many(&keys);
    match watched.as_ref().map(|w| w.broken(&db)).transpose() {
        Ok(Some(true)) => {
            Frame::NullArray.encode(proto, out);
            return Flow::Continue;
        }
        Err(e) => {
            Frame::Error(e.to_string()).encode(proto, out);
            return Flow::Continue;
        }
        _ => {}
    }
    drop(watched);

    let has_script = state.queued.iter().any(|q| {
        matches!(
            q.spec.name,
            "eval" | "evalsha" | "fcall" | "eval_ro" | "evalsha_ro" | "fcall_ro"
        )
    });
    let txn = quarry_types::txn::begin();
    let mut body = BytesMut::new();
    let mut wakes: Vec<Bytes> = Vec::new();
    let mut written: Vec<&Queued> = Vec::new();
    for q in &state.queued {
        let flow = dispatch(
            server,
            session,
            q.spec,
            q.sub,
            q.args.clone(),
            &mut body,
            Mode::InExec,
            &q.keys,
        );
        match flow {
            // Blocking commands do not block inside a transaction: they answer as on timeout.
            Flow::Block(op) => op.timed_out().encode(proto, &mut body),
            Flow::Sleep(_, reply) => reply.encode(proto, &mut body),
            Flow::Wait { target, .. } => {
                let acked = server.repl.master.count_acked(target);
                Frame::Integer(acked as i64).encode(proto, &mut body);
            }
            _ => {}
        }
        if q.spec.has(flag::WRITE) {
            wakes.extend(q.key_names().cloned());
            written.push(q);
        }
    }
    let overlay = txn.finish();
    let still_current = server
        .storage()
        .is_some_and(|now| Arc::ptr_eq(&now, &storage));
    let committed = if still_current {
        db.commit(overlay).map_err(CmdError::from)
    } else {
        Err(CmdError::Loading)
    };
    drop(locks);
    // Watchers that came in while the transaction ran may have read the old values.
    for q in written {
        server.watches.touch(ns.as_ref(), &q.args, &q.keys);
    }
    match &committed {
        Ok(()) => crate::notify::flush_deferred(server, ns.as_ref()),
        Err(_) => crate::notify::discard_deferred(),
    }
    match committed {
        Ok(()) => {
            out.extend_from_slice(format!("*{}\r\n", state.queued.len()).as_bytes());
            out.extend_from_slice(&body);
            if any_write && server.waiting.blocked_clients() > 0 {
                for key in &wakes {
                    server.waiting.wake(key);
                }
            }
            // A script's keys are not all known here: every blocked client gets a look (one
            // that finds nothing waits on without touching any watcher).
            if has_script && server.waiting.blocked_clients() > 0 {
                server.waiting.wake_all();
            }
        }
        Err(e) => Frame::Error(e.to_string()).encode(proto, out),
    }
    Flow::Continue
}

/// Queues a command inside MULTI, after the checks Redis makes at queueing time; `keys` are
/// the positions of its keys in `args`.
pub fn queue(
    session: &mut Session,
    spec: &'static CommandSpec,
    sub: Option<usize>,
    args: Vec<Bytes>,
    keys: Vec<usize>,
    out: &mut BytesMut,
) {
    if let Some(m) = session.multi.as_mut() {
        m.queued.push(Queued {
            spec,
            sub,
            args,
            keys,
        });
    }
    Frame::Simple("QUEUED".into()).encode(session.protocol, out);
}
