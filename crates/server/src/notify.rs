//! Keyspace notifications (`notify-keyspace-events`), as Redis sends them: for each change a
//! command makes, a message on `__keyspace@0__:<key>` (the event name) and one on
//! `__keyevent@0__:<event>` (the key), each if its class is enabled.
//!
//! Commands do not report what they changed, so the events are worked out around a write
//! command: which of its keys existed before and after it, and its reply (how many members it
//! added, what it popped). This costs two existence checks per key, and only while some class
//! is enabled; with the default (none) a write pays one atomic load. The events and their order
//! are Redis 7.0's. Two are not sent: `expired` (quarry drops expired keys in compaction, not
//! one by one) and `evicted` (quarry never evicts).
//!
//! Notifications are local to a node, as in Redis: a replica applying its master's WAL sends
//! none.

use bytes::Bytes;
use quarry_commands::args::is;
use quarry_commands::table::{command_keys, flag, lookup, CommandSpec};
use quarry_resp::Frame;
use quarry_types::Db;

use crate::server::Server;

pub const KEYSPACE: u32 = 1 << 0;
pub const KEYEVENT: u32 = 1 << 1;
pub const GENERIC: u32 = 1 << 2;
pub const STRING: u32 = 1 << 3;
pub const LIST: u32 = 1 << 4;
pub const SET: u32 = 1 << 5;
pub const HASH: u32 = 1 << 6;
pub const ZSET: u32 = 1 << 7;
pub const EXPIRED: u32 = 1 << 8;
pub const EVICTED: u32 = 1 << 9;
pub const STREAM: u32 = 1 << 10;
pub const KEY_MISS: u32 = 1 << 11;
pub const MODULE: u32 = 1 << 13;
pub const NEW: u32 = 1 << 14;
/// `A`: every class but key-miss and new.
pub const ALL: u32 =
    GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// The flags of a `notify-keyspace-events` value, or None for an unknown letter.
pub fn parse_flags(s: &str) -> Option<u32> {
    s.chars().try_fold(0u32, |f, c| {
        Some(
            f | match c {
                'A' => ALL,
                'g' => GENERIC,
                '$' => STRING,
                'l' => LIST,
                's' => SET,
                'h' => HASH,
                'z' => ZSET,
                'x' => EXPIRED,
                'e' => EVICTED,
                'K' => KEYSPACE,
                'E' => KEYEVENT,
                't' => STREAM,
                'm' => KEY_MISS,
                'd' => MODULE,
                'n' => NEW,
                _ => return None,
            },
        )
    })
}

/// The flags written back as Redis writes them (CONFIG GET).
pub fn flags_to_string(f: u32) -> String {
    let mut s = String::new();
    if f & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if f & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// What a write command's keys looked like before it ran.
pub struct Before {
    keys: Vec<Bytes>,
    existed: Vec<bool>,
    /// XGROUP DELCONSUMER, XREADGROUP, XCLAIM, XAUTOCLAIM: whether the consumer existed, and
    /// (filled in after the command) whether it exists.
    consumer_existed: bool,
    consumer_after: bool,
}

fn active(server: &Server) -> u32 {
    let f = server
        .hot
        .notify_flags
        .load(std::sync::atomic::Ordering::Relaxed);
    // Nothing is sent without K or E.
    if f & (KEYSPACE | KEYEVENT) == 0 {
        0
    } else {
        f
    }
}

fn exists(db: &Db, key: &[u8]) -> bool {
    db.key_type(key).ok().flatten().is_some()
}

/// The consumer a stream command names, as (key, group, consumer).
fn consumer_of<'a>(name: &str, a: &'a [Bytes]) -> Option<(&'a Bytes, &'a Bytes, &'a Bytes)> {
    match name {
        "xgroup" if a.len() >= 5 && is(&a[1], "delconsumer") => Some((&a[2], &a[3], &a[4])),
        "xclaim" | "xautoclaim" if a.len() >= 4 => Some((&a[1], &a[2], &a[3])),
        "xreadgroup" if a.len() >= 4 && is(&a[1], "group") => {
            let at = quarry_commands::table::streams_position(name, a)?;
            Some((a.get(at + 1)?, &a[2], &a[3]))
        }
        _ => None,
    }
}

fn consumer_exists(db: &Db, key: &[u8], group: &[u8], consumer: &[u8]) -> bool {
    let Ok(Some(m)) = db.stream_meta(key) else {
        return false;
    };
    matches!(db.stream_consumer(key, &m, group, consumer), Ok(Some(_)))
}

/// A write command on its way: its keys as they were, to be compared once it has run.
pub struct Noting {
    storage: std::sync::Arc<crate::server::Storage>,
    /// The namespace the command runs in: its keys, and its subscribers.
    ns: Option<Bytes>,
    before: Before,
}

/// Starts noting a command (`args` as the client sent it, `keys` the positions of its keys);
/// None when no event can be sent, which is what a write costs with notifications off: one
/// atomic load.
pub fn begin(
    server: &Server,
    ns: Option<&Bytes>,
    spec: &CommandSpec,
    args: &[Bytes],
    keys: &[usize],
) -> Option<Noting> {
    if active(server) == 0 || args.is_empty() {
        return None;
    }
    let storage = server.storage()?;
    let before = before(&storage.db(ns), spec, args, keys)?;
    Some(Noting {
        storage,
        ns: ns.cloned(),
        before,
    })
}

impl Noting {
    /// Sends the events of the command, which answered `reply`.
    pub fn finish(self, server: &Server, args: &[Bytes], reply: &Frame) {
        let ns = self.ns.as_ref();
        after(server, ns, &self.storage.db(ns), args, reply, self.before);
    }
}

/// [`begin`] for a blocked command's next attempt, of which only the arguments are kept.
pub fn begin_retry(server: &Server, ns: Option<&Bytes>, args: &[Bytes]) -> Option<Noting> {
    if active(server) == 0 {
        return None;
    }
    let spec = lookup(args.first()?)?;
    begin(server, ns, spec, args, &command_keys(spec, args))
}

/// Looks at the keys of a write command before it runs; None when no event can be sent.
fn before(db: &Db, spec: &CommandSpec, args: &[Bytes], keys: &[usize]) -> Option<Before> {
    if !spec.has(flag::WRITE) && !matches!(spec.name, "xreadgroup") {
        return None;
    }
    let keys = quarry_commands::table::key_names(args, keys);
    let existed = keys.iter().map(|k| exists(db, k)).collect();
    let consumer_existed =
        consumer_of(spec.name, args).is_some_and(|(k, g, c)| consumer_exists(db, k, g, c));
    Some(Before {
        keys,
        existed,
        consumer_existed,
        consumer_after: false,
    })
}

fn int(r: &Frame) -> i64 {
    match r {
        Frame::Integer(n) => *n,
        _ => 0,
    }
}

/// Nothing came back: a nil, an empty array, or the placeholder of a command that blocked.
fn is_nil(r: &Frame) -> bool {
    matches!(r, Frame::Null | Frame::NullArray)
        || matches!(r, Frame::Array(v) if v.is_empty())
        || matches!(r, Frame::Raw(b) if b.is_empty())
}

/// The key a pop from several keys took from (BLPOP, LMPOP, BZPOPMIN, ZMPOP): the reply's first
/// element.
fn popped_key(r: &Frame) -> Option<Bytes> {
    match r {
        Frame::Array(v) => match v.first() {
            Some(Frame::Bulk(k)) => Some(k.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn has_option(a: &[Bytes], from: usize, names: &[&str]) -> bool {
    a.iter().skip(from).any(|x| names.iter().any(|n| is(x, n)))
}

struct Events {
    list: Vec<(u32, &'static str, Bytes)>,
}

impl Events {
    fn add(&mut self, class: u32, event: &'static str, key: &Bytes) {
        self.list.push((class, event, key.clone()));
    }
}

/// Sends the events of a write command that ran with `reply`.
fn after(
    server: &Server,
    ns: Option<&Bytes>,
    db: &Db,
    args: &[Bytes],
    reply: &Frame,
    mut before: Before,
) {
    if active(server) == 0 || matches!(reply, Frame::Error(_)) {
        return;
    }
    let Some(spec) = lookup(&args[0]) else {
        return;
    };
    let after: Vec<bool> = before.keys.iter().map(|k| exists(db, k)).collect();
    before.consumer_after =
        consumer_of(spec.name, args).is_some_and(|(k, g, c)| consumer_exists(db, k, g, c));
    let mut ev = Events { list: Vec::new() };
    // Keys that came into being: `new`, before the command's own event (Redis sends it when
    // the key is added).
    for (i, k) in before.keys.iter().enumerate() {
        if !before.existed[i] && after[i] {
            ev.add(NEW, "new", k);
        }
    }
    command_events(spec.name, args, reply, &before, &after, &mut ev);
    // Inside a transaction, subscribers hear of the writes once they are committed.
    if quarry_types::txn::active() {
        DEFERRED.with(|d| {
            d.borrow_mut().extend(
                ev.list
                    .into_iter()
                    .map(|(class, event, key)| Deferred::Event(class, event, key)),
            )
        });
        return;
    }
    for (class, event, key) in ev.list {
        publish(server, ns, class, event, &key);
    }
}

/// A key's position among the command's keys.
fn index_of(before: &Before, key: &[u8]) -> Option<usize> {
    before.keys.iter().position(|k| &k[..] == key)
}

fn command_events(
    name: &str,
    a: &[Bytes],
    r: &Frame,
    before: &Before,
    after: &[bool],
    ev: &mut Events,
) {
    let keys = &before.keys;
    let Some(k0) = keys.first() else {
        return;
    };
    // The key is gone after the command removed its last element.
    let emptied = |ev: &mut Events, key: &Bytes| {
        if let Some(i) = index_of(before, key) {
            if before.existed[i] && !after[i] {
                ev.add(GENERIC, "del", key);
            }
        }
    };
    // A store command's destination: its event when it holds something, `del` when it was
    // emptied.
    // A store command's destination, the `i`-th key: its event when it holds something,
    // `del` when it was emptied.
    let stored = |ev: &mut Events, class: u32, event: &'static str, i: usize| {
        if after[i] {
            ev.add(class, event, &keys[i]);
        } else if before.existed[i] {
            ev.add(GENERIC, "del", &keys[i]);
        }
    };
    let expiry_given = has_option(a, 3, &["ex", "px", "exat", "pxat"]);
    match name {
        // ------------------------------------------------------------------------ strings
        "set" => {
            let nx = has_option(a, 3, &["nx"]);
            let xx = has_option(a, 3, &["xx"]);
            let happened = if nx {
                !before.existed[0]
            } else if xx {
                before.existed[0]
            } else {
                true
            };
            if happened && (!matches!(r, Frame::Null) || has_option(a, 3, &["get"])) {
                ev.add(STRING, "set", k0);
                if expiry_given {
                    ev.add(GENERIC, "expire", k0);
                }
            }
        }
        "setnx" | "msetnx" if int(r) == 1 => {
            keys.iter().for_each(|k| ev.add(STRING, "set", k));
        }
        "setex" | "psetex" => {
            ev.add(STRING, "set", k0);
            ev.add(GENERIC, "expire", k0);
        }
        "getset" | "mset" => keys.iter().for_each(|k| ev.add(STRING, "set", k)),
        "setrange" if a.get(3).is_some_and(|v| !v.is_empty()) => {
            ev.add(STRING, "setrange", k0);
        }
        "append" => ev.add(STRING, "append", k0),
        "incr" | "decr" | "incrby" | "decrby" => ev.add(STRING, "incrby", k0),
        "incrbyfloat" => ev.add(STRING, "incrbyfloat", k0),
        "getdel" if !is_nil(r) => {
            ev.add(GENERIC, "del", k0);
        }
        "getex" if !is_nil(r) => {
            if !after[0] {
                ev.add(GENERIC, "del", k0);
            } else if expiry_given || has_option(a, 2, &["ex", "px", "exat", "pxat"]) {
                ev.add(GENERIC, "expire", k0);
            } else if has_option(a, 2, &["persist"]) {
                ev.add(GENERIC, "persist", k0);
            }
        }
        "setbit" => ev.add(STRING, "setbit", k0),
        "bitfield" if has_option(a, 2, &["set", "incrby"]) => {
            ev.add(STRING, "setbit", k0);
        }
        "bitop" => stored(ev, STRING, "set", 0),
        "pfadd" if int(r) == 1 => {
            ev.add(STRING, "pfadd", k0);
        }
        "pfmerge" => ev.add(STRING, "pfadd", k0),
        // --------------------------------------------------------------------------- lists
        "lpush" | "rpush" | "lpushx" | "rpushx" if int(r) > 0 && after[0] => {
            let event = if name.starts_with('l') {
                "lpush"
            } else {
                "rpush"
            };
            ev.add(LIST, event, k0);
        }
        "lpop" | "rpop" if !is_nil(r) => {
            ev.add(LIST, if name == "lpop" { "lpop" } else { "rpop" }, k0);
            emptied(ev, k0);
        }
        "blpop" | "brpop" | "lmpop" | "blmpop" => {
            if let Some(key) = popped_key(r) {
                let left = match name {
                    "blpop" => true,
                    "brpop" => false,
                    _ => has_option(a, 2, &["left"]),
                };
                ev.add(LIST, if left { "lpop" } else { "rpop" }, &key);
                emptied(ev, &key);
            }
        }
        "rpoplpush" | "brpoplpush" | "lmove" | "blmove" if !is_nil(r) && keys.len() >= 2 => {
            let (from_left, to_left) = match name {
                "rpoplpush" | "brpoplpush" => (false, true),
                _ => (
                    a.get(3).is_some_and(|w| is(w, "left")),
                    a.get(4).is_some_and(|w| is(w, "left")),
                ),
            };
            ev.add(LIST, if from_left { "lpop" } else { "rpop" }, k0);
            ev.add(LIST, if to_left { "lpush" } else { "rpush" }, &keys[1]);
            if k0 != &keys[1] {
                emptied(ev, k0);
            }
        }
        "linsert" if int(r) > 0 => {
            ev.add(LIST, "linsert", k0);
        }
        "lset" => ev.add(LIST, "lset", k0),
        "ltrim" => {
            ev.add(LIST, "ltrim", k0);
            emptied(ev, k0);
        }
        "lrem" if int(r) > 0 => {
            ev.add(LIST, "lrem", k0);
            emptied(ev, k0);
        }
        // ---------------------------------------------------------------------------- sets
        "sadd" if int(r) > 0 => {
            ev.add(SET, "sadd", k0);
        }
        "srem" if int(r) > 0 => {
            ev.add(SET, "srem", k0);
            emptied(ev, k0);
        }
        "spop" if !is_nil(r) => {
            ev.add(SET, "spop", k0);
            emptied(ev, k0);
        }
        "smove" if int(r) == 1 && keys.len() >= 2 => {
            ev.add(SET, "srem", k0);
            emptied(ev, k0);
            ev.add(SET, "sadd", &keys[1]);
        }
        "sinterstore" => stored(ev, SET, "sinterstore", 0),
        "sunionstore" => stored(ev, SET, "sunionstore", 0),
        "sdiffstore" => stored(ev, SET, "sdiffstore", 0),
        // --------------------------------------------------------------------------- zsets
        "zadd" => {
            let incr = has_option(a, 2, &["incr"]);
            // Without CH the reply counts only new members: an update of an existing key
            // is assumed to change a score.
            let changed = if incr {
                !is_nil(r)
            } else {
                int(r) > 0 || (before.existed[0] && !has_option(a, 2, &["nx"]))
            };
            if changed {
                ev.add(ZSET, if incr { "zincr" } else { "zadd" }, k0);
            }
        }
        "geoadd" if int(r) > 0 || (before.existed[0] && !has_option(a, 2, &["nx"])) => {
            ev.add(ZSET, "zadd", k0);
        }
        "zincrby" => ev.add(ZSET, "zincr", k0),
        "zrem" | "zremrangebyscore" | "zremrangebyrank" | "zremrangebylex" if int(r) > 0 => {
            let event = match name {
                "zrem" => "zrem",
                "zremrangebyscore" => "zremrangebyscore",
                "zremrangebyrank" => "zremrangebyrank",
                _ => "zremrangebylex",
            };
            ev.add(ZSET, event, k0);
            emptied(ev, k0);
        }
        "zpopmin" | "zpopmax" if !is_nil(r) => {
            ev.add(
                ZSET,
                if name == "zpopmin" {
                    "zpopmin"
                } else {
                    "zpopmax"
                },
                k0,
            );
            emptied(ev, k0);
        }
        "bzpopmin" | "bzpopmax" | "zmpop" | "bzmpop" => {
            if let Some(key) = popped_key(r) {
                let min = match name {
                    "bzpopmin" => true,
                    "bzpopmax" => false,
                    _ => has_option(a, 2, &["min"]),
                };
                ev.add(ZSET, if min { "zpopmin" } else { "zpopmax" }, &key);
                emptied(ev, &key);
            }
        }
        "zunionstore" => stored(ev, ZSET, "zunionstore", 0),
        "zinterstore" => stored(ev, ZSET, "zinterstore", 0),
        "zdiffstore" => stored(ev, ZSET, "zdiffstore", 0),
        "zrangestore" => stored(ev, ZSET, "zrangestore", 0),
        "geosearchstore" => stored(ev, ZSET, "geosearchstore", 0),
        // With STORE or STOREDIST, the destination is the last key.
        "georadius" | "georadiusbymember" if keys.len() >= 2 => {
            stored(ev, ZSET, "georadiusstore", keys.len() - 1)
        }
        // -------------------------------------------------------------------------- hashes
        "hset" | "hmset" => ev.add(HASH, "hset", k0),
        "hsetnx" if int(r) == 1 => {
            ev.add(HASH, "hset", k0);
        }
        "hdel" if int(r) > 0 => {
            ev.add(HASH, "hdel", k0);
            emptied(ev, k0);
        }
        "hincrby" => ev.add(HASH, "hincrby", k0),
        "hincrbyfloat" => ev.add(HASH, "hincrbyfloat", k0),
        // ------------------------------------------------------------------------- streams
        "xadd" if !is_nil(r) => {
            ev.add(STREAM, "xadd", k0);
        }
        "xdel" if int(r) > 0 => {
            ev.add(STREAM, "xdel", k0);
        }
        "xtrim" if int(r) > 0 => {
            ev.add(STREAM, "xtrim", k0);
        }
        "xsetid" => ev.add(STREAM, "xsetid", k0),
        "xgroup" => {
            let sub = a.get(1).map(|s| s.to_ascii_lowercase()).unwrap_or_default();
            match &sub[..] {
                b"create" => ev.add(STREAM, "xgroup-create", k0),
                b"setid" => ev.add(STREAM, "xgroup-setid", k0),
                b"destroy" if int(r) == 1 => ev.add(STREAM, "xgroup-destroy", k0),
                b"createconsumer" if int(r) == 1 => ev.add(STREAM, "xgroup-createconsumer", k0),
                b"delconsumer" if before.consumer_existed => {
                    ev.add(STREAM, "xgroup-delconsumer", k0)
                }
                _ => {}
            }
        }
        "xreadgroup" | "xclaim" | "xautoclaim"
            if !before.consumer_existed && before.consumer_after =>
        {
            if let Some((key, _, _)) = consumer_of(name, a) {
                ev.add(STREAM, "xgroup-createconsumer", key);
            }
        }
        // ------------------------------------------------------------------------- generic
        "del" | "unlink" | "migrate" => {
            for (i, k) in keys.iter().enumerate() {
                if before.existed[i] && !after[i] {
                    ev.add(GENERIC, "del", k);
                }
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" if int(r) == 1 => {
            ev.add(GENERIC, if after[0] { "expire" } else { "del" }, k0);
        }
        "persist" if int(r) == 1 => {
            ev.add(GENERIC, "persist", k0);
        }
        "rename" | "renamenx" if (name == "rename" || int(r) == 1) && keys.len() >= 2 => {
            ev.add(GENERIC, "rename_from", k0);
            ev.add(GENERIC, "rename_to", &keys[1]);
        }
        "copy" if int(r) == 1 && keys.len() >= 2 => {
            ev.add(GENERIC, "copy_to", &keys[1]);
        }
        "restore" | "restore-asking" => ev.add(GENERIC, "restore", k0),
        // With STORE, the destination is the last key.
        "sort" if keys.len() >= 2 => stored(ev, LIST, "sortstore", keys.len() - 1),
        _ => {}
    }
}

/// Starts the active expiry pass (see the module note): a thread that works while the
/// `expired` class is on, on a master, and sleeps otherwise.
pub fn start_expiry(server: &std::sync::Arc<Server>) {
    let weak = std::sync::Arc::downgrade(server);
    let _ = std::thread::Builder::new()
        .name("active-expire".into())
        .spawn(move || {
            let mut cursor: Option<Vec<u8>> = None;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let Some(server) = weak.upgrade() else { return };
                let on = active(&server) & EXPIRED != 0
                    && !server
                        .repl
                        .is_replica
                        .load(std::sync::atomic::Ordering::Acquire);
                if !on {
                    cursor = None;
                    continue;
                }
                let Some(storage) = server.storage() else {
                    continue;
                };
                match storage.db.expire_scan(cursor.take(), 1000) {
                    Ok(page) => {
                        for key in page.keys {
                            publish(&server, None, EXPIRED, "expired", &key);
                        }
                        cursor = page.next;
                    }
                    Err(e) => tracing::warn!(error = %e, "active expiry pass failed"),
                }
            }
        });
}

/// What a transaction publishes, in order: its keyspace events and its PUBLISH messages.
enum Deferred {
    Event(u32, &'static str, Bytes),
    Message(Bytes, Bytes),
}

thread_local! {
    /// Messages of a transaction (EXEC, a script), sent once it commits.
    static DEFERRED: std::cell::RefCell<Vec<Deferred>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A PUBLISH inside a transaction: delivered when it commits.
pub fn defer_publish(channel: Bytes, message: Bytes) {
    DEFERRED.with(|d| d.borrow_mut().push(Deferred::Message(channel, message)));
}

/// Sends what a transaction on this thread, in namespace `ns`, published; call once it has
/// committed.
pub fn flush_deferred(server: &Server, ns: Option<&Bytes>) {
    for item in DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut())) {
        match item {
            Deferred::Event(class, event, key) => publish(server, ns, class, event, &key),
            Deferred::Message(channel, message) => {
                server.hub(ns).publish(&channel, &message);
            }
        }
    }
}

/// Drops what a transaction that did not commit published.
pub fn discard_deferred() {
    DEFERRED.with(|d| d.borrow_mut().clear());
}

/// Sends an event to the subscribers of namespace `ns`.
fn publish(server: &Server, ns: Option<&Bytes>, class: u32, event: &str, key: &[u8]) {
    let flags = active(server);
    if flags & class == 0 {
        return;
    }
    let hub = server.hub(ns);
    if flags & KEYSPACE != 0 {
        let mut channel = b"__keyspace@0__:".to_vec();
        channel.extend_from_slice(key);
        hub.publish(&channel, event.as_bytes());
    }
    if flags & KEYEVENT != 0 {
        let channel = format!("__keyevent@0__:{event}");
        hub.publish(channel.as_bytes(), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_print_as_redis() {
        let round = |s: &str| flags_to_string(parse_flags(s).unwrap());
        assert_eq!(round("gKE"), "gKE");
        assert_eq!(round("$lshzxeKE"), "$lshzxeKE");
        assert_eq!(round("KA"), "AK");
        assert_eq!(round("EA"), "AE");
        assert_eq!(round("nmKgl"), "glnKm");
        assert_eq!(round(""), "");
        assert_eq!(parse_flags("Kq"), None);
    }
}
