//! Pub/Sub: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs, PUBLISH, SPUBLISH and
//! PUBSUB, with RESP3 push messages and RESP2's subscribe mode.
//!
//! A master also writes each PUBLISH to the pubsub column family, as Kvrocks does, so that its
//! replicas publish the message to their own subscribers when they apply the batch (the
//! column family's compaction filter drops the records). A replica publishes locally and
//! writes nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::RwLock;
use quarry_commands::args::lower;
use quarry_commands::CmdError;
use quarry_resp::{Frame, Protocol};
use quarry_storage::{ColumnFamily, WriteBatch, WriteOrigin};
use quarry_types::glob::glob_match;
use tokio::sync::mpsc;

use crate::connection::{Flow, Session};
use crate::server::Server;

use crate::admin::Outcome;

/// One subscribed connection, as publishers see it.
pub struct Subscriber {
    pub id: u64,
    tx: mpsc::UnboundedSender<Bytes>,
    protocol: Protocol,
}

impl Subscriber {
    fn deliver(&self, frame: Frame) {
        let mut out = BytesMut::new();
        frame.encode(self.protocol, &mut out);
        let _ = self.tx.send(out.freeze());
    }
}

/// A connection's own subscriptions; dropping them (the connection ends, however it ends, or
/// sends RESET) unsubscribes everything.
pub struct Subscriptions {
    hub: Arc<PubSub>,
    pub sub: Arc<Subscriber>,
    pub rx: mpsc::UnboundedReceiver<Bytes>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard: BTreeSet<Bytes>,
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        let hub = self.hub.clone();
        hub.forget(self);
    }
}

impl Subscriptions {
    /// Redis' count: channels plus patterns (shard channels are counted on their own).
    fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    fn set(&mut self, kind: Kind) -> &mut BTreeSet<Bytes> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }

    /// The count a (un)subscribe reply carries for `kind`.
    fn count_for(&self, kind: Kind) -> usize {
        match kind {
            Kind::Shard => self.shard.len(),
            _ => self.count(),
        }
    }

    /// Whether the connection is in subscribe mode.
    pub fn active(&self) -> bool {
        self.count() + self.shard.len() > 0
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

#[derive(Default)]
pub struct PubSub {
    channels: RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>>,
    shard: RwLock<HashMap<Bytes, Vec<Arc<Subscriber>>>>,
    patterns: RwLock<Vec<(Bytes, Arc<Subscriber>)>>,
    /// Subscriptions of every kind: publishing costs nothing while there are none.
    total: AtomicUsize,
}

impl PubSub {
    pub fn is_empty(&self) -> bool {
        self.total.load(Ordering::Relaxed) == 0
    }

    /// How many subscribers a PUBLISH to `channel` would reach now.
    pub fn receivers(&self, channel: &[u8]) -> usize {
        if self.is_empty() {
            return 0;
        }
        let direct = self.channels.read().get(channel).map_or(0, |v| v.len());
        let patterns = self
            .patterns
            .read()
            .iter()
            .filter(|(p, _)| glob_match(p, channel))
            .count();
        direct + patterns
    }

    /// Channels with at least one subscriber (INFO `pubsub_channels`).
    pub fn channel_count(&self) -> usize {
        self.channels.read().len()
    }

    /// Distinct patterns subscribed to (INFO `pubsub_patterns`, PUBSUB NUMPAT).
    pub fn pattern_count(&self) -> usize {
        self.patterns
            .read()
            .iter()
            .map(|(p, _)| p)
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Delivers to channel and pattern subscribers; the number of receivers.
    pub fn publish(&self, channel: &[u8], message: &[u8]) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut n = 0;
        if let Some(subs) = self.channels.read().get(channel) {
            for s in subs {
                s.deliver(Frame::Push(vec![
                    Frame::bulk("message"),
                    Frame::bulk(Bytes::copy_from_slice(channel)),
                    Frame::bulk(Bytes::copy_from_slice(message)),
                ]));
                n += 1;
            }
        }
        for (pattern, s) in self.patterns.read().iter() {
            if glob_match(pattern, channel) {
                s.deliver(Frame::Push(vec![
                    Frame::bulk("pmessage"),
                    Frame::Bulk(pattern.clone()),
                    Frame::bulk(Bytes::copy_from_slice(channel)),
                    Frame::bulk(Bytes::copy_from_slice(message)),
                ]));
                n += 1;
            }
        }
        n
    }

    fn spublish(&self, channel: &[u8], message: &[u8]) -> usize {
        let Some(subs) = self.shard.read().get(channel).cloned() else {
            return 0;
        };
        for s in &subs {
            s.deliver(Frame::Push(vec![
                Frame::bulk("smessage"),
                Frame::bulk(Bytes::copy_from_slice(channel)),
                Frame::bulk(Bytes::copy_from_slice(message)),
            ]));
        }
        subs.len()
    }

    fn add(&self, kind: Kind, name: &Bytes, sub: &Arc<Subscriber>) {
        match kind {
            Kind::Channel => self
                .channels
                .write()
                .entry(name.clone())
                .or_default()
                .push(sub.clone()),
            Kind::Shard => self
                .shard
                .write()
                .entry(name.clone())
                .or_default()
                .push(sub.clone()),
            Kind::Pattern => self.patterns.write().push((name.clone(), sub.clone())),
        }
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn remove(&self, kind: Kind, name: &Bytes, id: u64) {
        let removed = match kind {
            Kind::Channel | Kind::Shard => {
                let mut map = match kind {
                    Kind::Channel => self.channels.write(),
                    _ => self.shard.write(),
                };
                let mut removed = false;
                if let Some(list) = map.get_mut(name) {
                    let before = list.len();
                    list.retain(|s| s.id != id);
                    removed = list.len() < before;
                    if list.is_empty() {
                        map.remove(name);
                    }
                }
                removed
            }
            Kind::Pattern => {
                let mut list = self.patterns.write();
                let before = list.len();
                list.retain(|(p, s)| !(p == name && s.id == id));
                list.len() < before
            }
        };
        if removed {
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Drops every subscription of a connection (it closed or sent RESET).
    pub fn forget(&self, subs: &Subscriptions) {
        let id = subs.sub.id;
        for c in &subs.channels {
            self.remove(Kind::Channel, c, id);
        }
        for p in &subs.patterns {
            self.remove(Kind::Pattern, p, id);
        }
        for c in &subs.shard {
            self.remove(Kind::Shard, c, id);
        }
    }
}

fn push(out: &mut BytesMut, proto: Protocol, items: Vec<Frame>) {
    Frame::Push(items).encode(proto, out);
}

fn subs_of<'a>(hub: &Arc<PubSub>, session: &'a mut Session) -> &'a mut Subscriptions {
    session.pubsub.get_or_insert_with(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        Subscriptions {
            hub: hub.clone(),
            sub: Arc::new(Subscriber {
                id: session.handle.id,
                tx,
                protocol: session.protocol,
            }),
            rx,
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shard: BTreeSet::new(),
        }
    })
}

pub fn run(server: &Server, session: &mut Session, name: &str, a: &[Bytes]) -> Outcome {
    let proto = session.protocol;
    let mut out = BytesMut::new();
    // A namespace's connections have channels of their own.
    let hub = &server.hub(session.namespace.as_ref());
    match name {
        "subscribe" | "psubscribe" | "ssubscribe" => {
            let (kind, word) = match name {
                "subscribe" => (Kind::Channel, "subscribe"),
                "psubscribe" => (Kind::Pattern, "psubscribe"),
                _ => (Kind::Shard, "ssubscribe"),
            };
            let subs = subs_of(hub, session);
            for ch in &a[1..] {
                // The hub the subscriptions were made in (a connection that changes
                // namespace keeps them there).
                if subs.set(kind).insert(ch.clone()) {
                    subs.hub.add(kind, ch, &subs.sub);
                }
                let count = subs.count_for(kind);
                push(
                    &mut out,
                    proto,
                    vec![
                        Frame::bulk(word),
                        Frame::Bulk(ch.clone()),
                        Frame::Integer(count as i64),
                    ],
                );
            }
        }
        "unsubscribe" | "punsubscribe" | "sunsubscribe" => {
            let (kind, word) = match name {
                "unsubscribe" => (Kind::Channel, "unsubscribe"),
                "punsubscribe" => (Kind::Pattern, "punsubscribe"),
                _ => (Kind::Shard, "sunsubscribe"),
            };
            let subs = subs_of(hub, session);
            let names: Vec<Bytes> = if a.len() > 1 {
                a[1..].to_vec()
            } else {
                subs.set(kind).iter().cloned().collect()
            };
            if names.is_empty() {
                let count = subs.count_for(kind);
                push(
                    &mut out,
                    proto,
                    vec![Frame::bulk(word), Frame::Null, Frame::Integer(count as i64)],
                );
            }
            for ch in names {
                if subs.set(kind).remove(&ch) {
                    subs.hub.remove(kind, &ch, subs.sub.id);
                }
                let count = subs.count_for(kind);
                push(
                    &mut out,
                    proto,
                    vec![
                        Frame::bulk(word),
                        Frame::Bulk(ch),
                        Frame::Integer(count as i64),
                    ],
                );
            }
        }
        // MPUBLISH (Kvrocks): several messages to one channel, in one batch.
        "publish" | "mpublish" => {
            // Inside EXEC or a script the message goes out with the transaction's commit: its
            // record joins the transaction's batch, and subscribers get it once the writes
            // before it can be read (the reply counts the subscribers there are now).
            let in_txn = quarry_types::txn::active();
            let messages = &a[2..];
            // A master records the message for its replicas; a replica writes nothing. The
            // record names no namespace (Kvrocks' layout), so only the default namespace's
            // messages go to replicas.
            if !server.repl.is_replica.load(Ordering::Acquire) && session.namespace.is_none() {
                if let Some(storage) = server.storage() {
                    let mut batch = WriteBatch::default();
                    for m in messages {
                        batch.put_cf(storage.engine.cf(ColumnFamily::PubSub), &a[1], m);
                    }
                    let written = if in_txn {
                        storage.db.write(batch).map_err(CmdError::from)
                    } else {
                        storage
                            .engine
                            .write(batch, WriteOrigin::Local)
                            .map_err(|e| CmdError::Storage(e.to_string()))
                    };
                    if let Err(e) = written {
                        return (Err(e), Flow::Continue);
                    }
                }
            }
            let mut n = 0;
            for m in messages {
                n += if in_txn {
                    crate::notify::defer_publish(a[1].clone(), m.clone());
                    hub.receivers(&a[1])
                } else {
                    hub.publish(&a[1], m)
                };
            }
            return (Ok(Frame::Integer(n as i64)), Flow::Continue);
        }
        "spublish" => {
            let n = hub.spublish(&a[1], &a[2]);
            return (Ok(Frame::Integer(n as i64)), Flow::Continue);
        }
        "pubsub" => return (pubsub(hub, a), Flow::Continue),
        _ => {}
    }
    (Ok(Frame::Raw(out.freeze())), Flow::Continue)
}

fn pubsub(hub: &PubSub, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = lower(&a[1]);
    let names = |map: &HashMap<Bytes, Vec<Arc<Subscriber>>>, pattern: Option<&Bytes>| {
        Frame::Array(
            map.keys()
                .filter(|c| pattern.is_none_or(|p| glob_match(p, c)))
                .map(|c| Frame::Bulk(c.clone()))
                .collect(),
        )
    };
    let counts = |map: &HashMap<Bytes, Vec<Arc<Subscriber>>>, chans: &[Bytes]| {
        let mut out = Vec::new();
        for c in chans {
            out.push(Frame::Bulk(c.clone()));
            out.push(Frame::Integer(map.get(c).map_or(0, |v| v.len()) as i64));
        }
        Frame::Array(out)
    };
    match (sub.as_str(), a.len()) {
        ("channels", 2 | 3) => Ok(names(&hub.channels.read(), a.get(2))),
        ("shardchannels", 2 | 3) => Ok(names(&hub.shard.read(), a.get(2))),
        ("numsub", _) => Ok(counts(&hub.channels.read(), &a[2..])),
        ("shardnumsub", _) => Ok(counts(&hub.shard.read(), &a[2..])),
        // Unique patterns, however many clients subscribed to each.
        ("numpat", 2) => Ok(Frame::Integer(hub.pattern_count() as i64)),
        ("help", 2) => Ok(quarry_commands::table::help_lines(&[
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
            "HELP",
            "    Print this help.",
        ])),
        _ => Err(CmdError::WrongArity(format!("pubsub|{sub}"))),
    }
}

/// RESP2 subscribe mode: only these commands may run.
pub fn allowed_in_subscribe_mode(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// PING in RESP2 subscribe mode answers `["pong", message]`.
pub fn ping_in_subscribe_mode(a: &[Bytes]) -> Frame {
    Frame::Array(vec![
        Frame::bulk("pong"),
        Frame::Bulk(a.get(1).cloned().unwrap_or_default()),
    ])
}
