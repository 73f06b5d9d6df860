//! Streams in Kvrocks' layout (kvrocks-compat.md §1.3–1.4).
//!
//! Metadata extras: last generated id, recorded first id, max deleted id, first id, last id
//! (each ms:u64 BE + seq:u64 BE), entries added (u64), number of groups (u64). Entries live in
//! the stream column family under `ms ++ seq` (u64 BE each), their fields and values as
//! varint32-prefixed strings. Consumer groups, consumers and pending entries share that
//! column family under sub-keys that start with `u64::MAX`, after every entry.

use quarry_storage::encoding::{Metadata, RedisType};
use quarry_storage::rocksdb::Direction;
use quarry_storage::{ColumnFamily, StorageError, WriteBatch};

use crate::db::Db;
use crate::txn::Start;
use crate::{Result, TypeError};

const LOG_DATA_STREAM: &[u8] = b"8";
const GROUP_META: u8 = 1;
const CONSUMER_META: u8 = 2;
const PEL_ENTRY: u8 = 3;

/// A stream entry id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next id in order, or None after the largest.
    pub fn next(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            (self.ms != u64::MAX).then(|| StreamId::new(self.ms + 1, 0))
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous id in order, or None before the smallest.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq == 0 {
            (self.ms != 0).then(|| StreamId::new(self.ms - 1, u64::MAX))
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<StreamId> {
        Some(StreamId::new(
            u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            u64::from_be_bytes(b.get(8..16)?.try_into().ok()?),
        ))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A stream's metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamMeta {
    pub meta: Metadata,
    pub last_generated: StreamId,
    pub recorded_first: StreamId,
    pub max_deleted: StreamId,
    pub first: StreamId,
    pub last: StreamId,
    pub entries_added: u64,
    pub groups: u64,
}

impl StreamMeta {
    fn fresh() -> StreamMeta {
        StreamMeta {
            meta: Metadata::new_complex(RedisType::Stream),
            last_generated: StreamId::MIN,
            recorded_first: StreamId::MIN,
            max_deleted: StreamId::MIN,
            first: StreamId::MIN,
            last: StreamId::MIN,
            entries_added: 0,
            groups: 0,
        }
    }

    pub fn decode(meta: Metadata) -> Result<StreamMeta> {
        let p = &meta.payload;
        let id = |i: usize| StreamId::decode(p.get(i * 16..i * 16 + 16).unwrap_or(&[]));
        let u = |at: usize| {
            p.get(at..at + 8)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        };
        let corrupt = || TypeError::Storage(StorageError::Corrupt("stream metadata".into()));
        Ok(StreamMeta {
            last_generated: id(0).ok_or_else(corrupt)?,
            recorded_first: id(1).ok_or_else(corrupt)?,
            max_deleted: id(2).ok_or_else(corrupt)?,
            first: id(3).ok_or_else(corrupt)?,
            last: id(4).ok_or_else(corrupt)?,
            entries_added: u(80).ok_or_else(corrupt)?,
            // Optional on decode, as in Kvrocks.
            groups: u(88).unwrap_or(0),
            meta,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut m = self.meta.clone();
        let mut p = Vec::with_capacity(96);
        for id in [
            self.last_generated,
            self.recorded_first,
            self.max_deleted,
            self.first,
            self.last,
        ] {
            p.extend_from_slice(&id.encode());
        }
        p.extend_from_slice(&self.entries_added.to_be_bytes());
        p.extend_from_slice(&self.groups.to_be_bytes());
        m.payload = p;
        m.encode()
    }

    pub fn len(&self) -> u64 {
        self.meta.size
    }

    pub fn is_empty(&self) -> bool {
        self.meta.size == 0
    }
}

/// Encodes an entry's fields and values.
pub fn encode_entry(fields: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        let mut n = f.len() as u32;
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
        out.extend_from_slice(f);
    }
    out
}

pub fn decode_entry(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let mut n: u32 = 0;
        let mut shift = 0;
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            n |= ((c & 0x7f) as u32) << shift;
            i += 1;
            if c & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let end = (i + n as usize).min(b.len());
        out.push(b[i..end].to_vec());
        b = &b[end..];
    }
    out
}

pub type Entry = (StreamId, Vec<Vec<u8>>);

/// The `i`-th big-endian u64 of a group record (0 past its end, as a shorter record from an
/// older writer reads).
fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i * 8..i * 8 + 8)
        .map_or(0, |x| u64::from_be_bytes(x.try_into().expect("8 bytes")))
}

/// A consumer group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub consumers: u64,
    pub pending: u64,
    pub last_delivered: StreamId,
    pub entries_read: i64,
    pub lag: u64,
}

impl Group {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        for v in [
            self.consumers,
            self.pending,
            self.last_delivered.ms,
            self.last_delivered.seq,
            self.entries_read as u64,
            self.lag,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Group {
        let u = |i| u64_at(b, i);
        Group {
            consumers: u(0),
            pending: u(1),
            last_delivered: StreamId::new(u(2), u(3)),
            entries_read: u(4) as i64,
            lag: u(5),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consumer {
    pub pending: u64,
    pub seen_ms: u64,
    pub active_ms: u64,
}

impl Consumer {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24);
        for v in [self.pending, self.seen_ms, self.active_ms] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Consumer {
        let u = |i| u64_at(b, i);
        Consumer {
            pending: u(0),
            seen_ms: u(1),
            active_ms: u(2),
        }
    }
}

/// A pending entry: delivered to a consumer, not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub delivery_ms: u64,
    pub deliveries: u64,
    pub consumer: Vec<u8>,
}

impl Pending {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.consumer.len());
        out.extend_from_slice(&self.delivery_ms.to_be_bytes());
        out.extend_from_slice(&self.deliveries.to_be_bytes());
        out.extend_from_slice(&(self.consumer.len() as u64).to_be_bytes());
        out.extend_from_slice(&self.consumer);
        out
    }

    fn decode(b: &[u8]) -> Pending {
        let u = |i| u64_at(b, i);
        Pending {
            delivery_ms: u(0),
            deliveries: u(1),
            consumer: b.get(24..).unwrap_or(&[]).to_vec(),
        }
    }
}

fn len_prefixed(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s);
}

fn group_sub(kind: u8, group: &[u8]) -> Vec<u8> {
    let mut sub = u64::MAX.to_be_bytes().to_vec();
    sub.push(kind);
    len_prefixed(&mut sub, group);
    sub
}

/// A stream opened for a change: its metadata, and the batch the change goes into.
pub struct StreamWrite {
    pub meta: StreamMeta,
    pub batch: WriteBatch,
    pub existed: bool,
}

impl Db {
    /// The live stream at `key`; WRONGTYPE for another type.
    pub fn stream_meta(&self, key: &[u8]) -> Result<Option<StreamMeta>> {
        match self.typed_metadata(key, RedisType::Stream)? {
            Some(m) => Ok(Some(StreamMeta::decode(m)?)),
            None => Ok(None),
        }
    }

    /// Opens `key` for a change (creating a fresh stream when missing and `create`). The caller
    /// holds the key lock.
    pub fn stream_open(&self, key: &[u8], create: bool) -> Result<Option<StreamWrite>> {
        let (meta, existed) = match self.stream_meta(key)? {
            Some(m) => (m, true),
            None if create => (StreamMeta::fresh(), false),
            None => return Ok(None),
        };
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_STREAM);
        Ok(Some(StreamWrite {
            meta,
            batch,
            existed,
        }))
    }

    /// Writes the metadata and the batch of a change.
    pub fn stream_commit(&self, key: &[u8], mut w: StreamWrite) -> Result<()> {
        w.batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            w.meta.encode(),
        );
        self.write(w.batch)
    }

    fn stream_cf(&self) -> &quarry_storage::rocksdb::ColumnFamily {
        self.engine.cf(ColumnFamily::Stream)
    }

    fn entry_key(&self, key: &[u8], m: &StreamMeta, id: StreamId) -> Vec<u8> {
        self.codec.subkey(key, m.meta.version, &id.encode())
    }

    /// Stages a new entry.
    pub fn stream_put(&self, key: &[u8], w: &mut StreamWrite, id: StreamId, fields: &[Vec<u8>]) {
        let k = self.entry_key(key, &w.meta, id);
        w.batch.put_cf(self.stream_cf(), k, encode_entry(fields));
        if w.meta.meta.size == 0 {
            w.meta.first = id;
            w.meta.recorded_first = id;
        }
        w.meta.meta.size += 1;
        w.meta.last = id;
        w.meta.last_generated = id;
        w.meta.entries_added += 1;
    }

    /// Entries with ids in `[from, to]`, ascending or descending, at most `count` (0 = all).
    /// Reads only the entries returned.
    pub fn stream_range(
        &self,
        key: &[u8],
        m: &StreamMeta,
        from: StreamId,
        to: StreamId,
        rev: bool,
        count: usize,
    ) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        if from > to || m.is_empty() {
            return Ok(out);
        }
        let prefix = self.codec.subkey_prefix(key, m.meta.version);
        let bound = |id: StreamId| {
            let mut k = prefix.clone();
            k.extend_from_slice(&id.encode());
            k
        };
        // Group records share the sub-key space after `u64::MAX`; they are longer than the
        // 16 bytes of an entry id, which is how the scan tells them apart.
        let lower = bound(from);
        let upper = match to.next() {
            Some(n) => bound(n),
            None => crate::keys::prefix_successor(&prefix).unwrap_or_default(),
        };
        let start_key = if rev { bound(to) } else { lower.clone() };
        let iter = self.iter_cf(
            ColumnFamily::Stream,
            Some(lower),
            Some(upper),
            if rev {
                Start::From(&start_key, Direction::Reverse)
            } else {
                Start::From(&start_key, Direction::Forward)
            },
        );
        for item in iter {
            let (k, v) = item?;
            let sub = &k[prefix.len()..];
            if sub.len() != 16 {
                continue;
            }
            let Some(id) = StreamId::decode(sub) else {
                continue;
            };
            if id > to {
                continue;
            }
            out.push((id, decode_entry(&v)));
            if count > 0 && out.len() >= count {
                break;
            }
        }
        Ok(out)
    }

    /// Stages the deletion of entries that exist; returns how many.
    pub fn stream_delete(&self, key: &[u8], w: &mut StreamWrite, ids: &[StreamId]) -> Result<u64> {
        let mut n = 0;
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            let k = self.entry_key(key, &w.meta, *id);
            if self.get_cf(ColumnFamily::Stream, &k)?.is_some() {
                w.batch.delete_cf(self.stream_cf(), k);
                n += 1;
                if *id > w.meta.max_deleted {
                    w.meta.max_deleted = *id;
                }
            }
        }
        if n > 0 {
            w.meta.meta.size -= n;
            self.stream_fix_ends(key, w, ids)?;
        }
        Ok(n)
    }

    /// After deletions, finds the new first and last entries.
    fn stream_fix_ends(&self, key: &[u8], w: &mut StreamWrite, deleted: &[StreamId]) -> Result<()> {
        if w.meta.meta.size == 0 {
            w.meta.first = StreamId::MIN;
            w.meta.last = StreamId::MIN;
            return Ok(());
        }
        let gone: std::collections::HashSet<StreamId> = deleted.iter().copied().collect();
        let meta = w.meta.clone();
        let scan = |rev: bool| -> Result<StreamId> {
            let (from, to) = (StreamId::MIN, StreamId::MAX);
            // Staged deletions are not visible yet: skip them.
            let mut batch_size = 16;
            loop {
                let found = self.stream_range(key, &meta, from, to, rev, batch_size)?;
                if let Some((id, _)) = found.iter().find(|(id, _)| !gone.contains(id)) {
                    return Ok(*id);
                }
                if found.len() < batch_size {
                    return Ok(StreamId::MIN);
                }
                batch_size *= 4;
            }
        };
        if gone.contains(&w.meta.first) {
            w.meta.first = scan(false)?;
            w.meta.recorded_first = w.meta.first;
        }
        if gone.contains(&w.meta.last) {
            w.meta.last = scan(true)?;
        }
        Ok(())
    }

    /// Stages the removal of the oldest entries: down to `maxlen` entries, and/or those below
    /// `minid`, at most `limit` (0 = no limit). `node` (for `~`) removes only whole blocks of
    /// that many entries, numbered from the first entry ever added, as Redis removes whole
    /// radix-tree nodes. `staged` is an entry added in this same batch (XADD), which the
    /// database cannot show yet. Returns how many were removed.
    #[allow(clippy::too_many_arguments)]
    pub fn stream_trim(
        &self,
        key: &[u8],
        w: &mut StreamWrite,
        maxlen: Option<u64>,
        minid: Option<StreamId>,
        limit: u64,
        node: Option<u64>,
        staged: Option<StreamId>,
    ) -> Result<u64> {
        let size = w.meta.meta.size;
        // Which of the oldest entries go, as (count, last id removed).
        let mut ids: Vec<StreamId> = Vec::new();
        let mut cursor = StreamId::MIN;
        let mut done = false;
        while !done {
            let batch = self.stream_range(key, &w.meta, cursor, StreamId::MAX, false, 256)?;
            let mut list: Vec<StreamId> = batch.iter().map(|(id, _)| *id).collect();
            let exhausted = list.len() < 256;
            if exhausted {
                if let Some(st) = staged.filter(|st| !list.contains(st) && *st >= cursor) {
                    list.push(st);
                }
            }
            for id in list {
                let left = size - ids.len() as u64;
                let over_len = maxlen.is_some_and(|m| left > m);
                let below = minid.is_some_and(|m| id < m);
                if !(over_len || below)
                    || (node.is_none() && limit > 0 && ids.len() as u64 >= limit)
                {
                    done = true;
                    break;
                }
                ids.push(id);
            }
            match batch.last().and_then(|(id, _)| id.next()) {
                Some(next) if !exhausted => cursor = next,
                _ => done = true,
            }
        }
        if let Some(node) = node.filter(|n| *n > 0) {
            // Whole nodes only: the first node holds the entries up to the next multiple of
            // `node` in the count of entries ever added.
            let before = w.meta.entries_added.saturating_sub(size);
            let mut keep = 0usize;
            let mut pos = 0usize;
            let mut ordinal = before;
            while pos < ids.len() {
                let in_node = (node - ordinal % node) as usize;
                if pos + in_node > ids.len() || (limit > 0 && (pos + in_node) as u64 > limit) {
                    break;
                }
                // A node is removed only when all of it goes (and it is not the last one).
                if (pos + in_node) as u64 >= size {
                    break;
                }
                pos += in_node;
                ordinal += in_node as u64;
                keep = pos;
            }
            ids.truncate(keep);
        }
        let n = ids.len() as u64;
        for id in &ids {
            w.batch
                .delete_cf(self.stream_cf(), self.entry_key(key, &w.meta, *id));
        }
        if let Some(&last) = ids.last() {
            w.meta.meta.size -= n;
            if last > w.meta.max_deleted {
                w.meta.max_deleted = last;
            }
            if w.meta.meta.size == 0 {
                w.meta.first = StreamId::MIN;
                w.meta.last = StreamId::MIN;
            } else {
                let after = last.next().unwrap_or(last);
                let next = self.stream_range(key, &w.meta, after, StreamId::MAX, false, 1)?;
                w.meta.first = next
                    .first()
                    .map(|(i, _)| *i)
                    .or(staged.filter(|s| *s > last))
                    .unwrap_or(StreamId::MIN);
            }
            w.meta.recorded_first = w.meta.first;
        }
        Ok(n)
    }

    // ------------------------------------------------------------------------ consumer groups

    pub fn stream_group(&self, key: &[u8], m: &StreamMeta, group: &[u8]) -> Result<Option<Group>> {
        let k = self
            .codec
            .subkey(key, m.meta.version, &group_sub(GROUP_META, group));
        Ok(self
            .get_cf(ColumnFamily::Stream, &k)?
            .map(|v| Group::decode(&v)))
    }

    pub fn stream_put_group(&self, key: &[u8], w: &mut StreamWrite, group: &[u8], g: &Group) {
        let k = self
            .codec
            .subkey(key, w.meta.meta.version, &group_sub(GROUP_META, group));
        w.batch.put_cf(self.stream_cf(), k, g.encode());
    }

    /// All groups, by name.
    pub fn stream_groups(&self, key: &[u8], m: &StreamMeta) -> Result<Vec<(Vec<u8>, Group)>> {
        let prefix = self.codec.subkey(
            key,
            m.meta.version,
            &[&u64::MAX.to_be_bytes()[..], &[GROUP_META]].concat(),
        );
        let mut out = Vec::new();
        for item in self.iter_cf(
            ColumnFamily::Stream,
            None,
            crate::keys::prefix_successor(&prefix),
            Start::From(&prefix, Direction::Forward),
        ) {
            let (k, v) = item?;
            // An entry whose id starts with u64::MAX and a 0x01 byte sorts here too: 16 bytes.
            if k.len() < prefix.len() + 8 {
                continue;
            }
            let name = k[prefix.len() + 8..].to_vec();
            out.push((name, Group::decode(&v)));
        }
        // Stored length-first; listed by name, as Redis does.
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn consumer_key(&self, key: &[u8], version: u64, group: &[u8], consumer: &[u8]) -> Vec<u8> {
        let mut sub = group_sub(CONSUMER_META, group);
        len_prefixed(&mut sub, consumer);
        self.codec.subkey(key, version, &sub)
    }

    pub fn stream_consumer(
        &self,
        key: &[u8],
        m: &StreamMeta,
        group: &[u8],
        consumer: &[u8],
    ) -> Result<Option<Consumer>> {
        let k = self.consumer_key(key, m.meta.version, group, consumer);
        Ok(self
            .get_cf(ColumnFamily::Stream, &k)?
            .map(|v| Consumer::decode(&v)))
    }

    pub fn stream_put_consumer(
        &self,
        key: &[u8],
        w: &mut StreamWrite,
        group: &[u8],
        consumer: &[u8],
        c: &Consumer,
    ) {
        let k = self.consumer_key(key, w.meta.meta.version, group, consumer);
        w.batch.put_cf(self.stream_cf(), k, c.encode());
    }

    pub fn stream_delete_consumer(
        &self,
        key: &[u8],
        w: &mut StreamWrite,
        group: &[u8],
        consumer: &[u8],
    ) {
        let k = self.consumer_key(key, w.meta.meta.version, group, consumer);
        w.batch.delete_cf(self.stream_cf(), k);
    }

    /// A group's consumers, by name.
    pub fn stream_consumers(
        &self,
        key: &[u8],
        m: &StreamMeta,
        group: &[u8],
    ) -> Result<Vec<(Vec<u8>, Consumer)>> {
        let prefix = self
            .codec
            .subkey(key, m.meta.version, &group_sub(CONSUMER_META, group));
        let mut out = Vec::new();
        for item in self.iter_cf(
            ColumnFamily::Stream,
            None,
            crate::keys::prefix_successor(&prefix),
            Start::From(&prefix, Direction::Forward),
        ) {
            let (k, v) = item?;
            let name = k.get(prefix.len() + 8..).unwrap_or(&[]).to_vec();
            out.push((name, Consumer::decode(&v)));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn pel_key(&self, key: &[u8], version: u64, group: &[u8], id: StreamId) -> Vec<u8> {
        let mut sub = group_sub(PEL_ENTRY, group);
        sub.extend_from_slice(&id.encode());
        self.codec.subkey(key, version, &sub)
    }

    pub fn stream_pending_entry(
        &self,
        key: &[u8],
        m: &StreamMeta,
        group: &[u8],
        id: StreamId,
    ) -> Result<Option<Pending>> {
        let k = self.pel_key(key, m.meta.version, group, id);
        Ok(self
            .get_cf(ColumnFamily::Stream, &k)?
            .map(|v| Pending::decode(&v)))
    }

    pub fn stream_put_pending(
        &self,
        key: &[u8],
        w: &mut StreamWrite,
        group: &[u8],
        id: StreamId,
        p: &Pending,
    ) {
        let k = self.pel_key(key, w.meta.meta.version, group, id);
        w.batch.put_cf(self.stream_cf(), k, p.encode());
    }

    pub fn stream_delete_pending(
        &self,
        key: &[u8],
        w: &mut StreamWrite,
        group: &[u8],
        id: StreamId,
    ) {
        let k = self.pel_key(key, w.meta.meta.version, group, id);
        w.batch.delete_cf(self.stream_cf(), k);
    }

    /// A group's pending entries with ids in `[from, to]`, in id order, until `visit` says stop.
    pub fn stream_pending_walk(
        &self,
        key: &[u8],
        m: &StreamMeta,
        group: &[u8],
        from: StreamId,
        to: StreamId,
        mut visit: impl FnMut(StreamId, Pending) -> bool,
    ) -> Result<()> {
        if from > to {
            return Ok(());
        }
        let prefix = self
            .codec
            .subkey(key, m.meta.version, &group_sub(PEL_ENTRY, group));
        let mut start = prefix.clone();
        start.extend_from_slice(&from.encode());
        let upper = match to.next() {
            Some(n) => {
                let mut u = prefix.clone();
                u.extend_from_slice(&n.encode());
                Some(u)
            }
            None => crate::keys::prefix_successor(&prefix),
        };
        for item in self.iter_cf(
            ColumnFamily::Stream,
            None,
            upper,
            Start::From(&start, Direction::Forward),
        ) {
            let (k, v) = item?;
            let Some(id) = StreamId::decode(&k[prefix.len()..]) else {
                continue;
            };
            if !visit(id, Pending::decode(&v)) {
                break;
            }
        }
        Ok(())
    }

    /// Stages the removal of a group with its consumers and pending entries.
    pub fn stream_destroy_group(&self, key: &[u8], w: &mut StreamWrite, group: &[u8]) {
        let cf = self.stream_cf();
        let version = w.meta.meta.version;
        w.batch.delete_cf(
            cf,
            self.codec
                .subkey(key, version, &group_sub(GROUP_META, group)),
        );
        for kind in [CONSUMER_META, PEL_ENTRY] {
            let prefix = self.codec.subkey(key, version, &group_sub(kind, group));
            if let Some(end) = crate::keys::prefix_successor(&prefix) {
                w.batch.delete_range_cf(cf, prefix, end);
            }
        }
    }

    /// Stages the removal of a consumer's pending entries; returns how many.
    pub fn stream_drop_consumer_pending(
        &self,
        key: &[u8],
        w: &mut StreamWrite,
        group: &[u8],
        consumer: &[u8],
    ) -> Result<u64> {
        let mut ids = Vec::new();
        self.stream_pending_walk(
            key,
            &w.meta,
            group,
            StreamId::MIN,
            StreamId::MAX,
            |id, p| {
                if p.consumer == consumer {
                    ids.push(id);
                }
                true
            },
        )?;
        for id in &ids {
            self.stream_delete_pending(key, w, group, *id);
        }
        Ok(ids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata record Kvrocks 2.10.1 wrote for `XADD st 1-1 f v; XADD st 2-0 a b`
    /// (shared fixtures, standalone/rocksdb-contents.tsv).
    #[test]
    fn metadata_matches_kvrocks_bytes() {
        let raw = hex::decode("88000000000000000033091e3a8823cf970000000000000002000000000000000200000000000000000000000000000001000000000000000100000000000000000000000000000000000000000000000100000000000000010000000000000002000000000000000000000000000000020000000000000000").unwrap();
        let m = StreamMeta::decode(Metadata::decode(&raw).unwrap()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.last_generated, StreamId::new(2, 0));
        assert_eq!(m.recorded_first, StreamId::new(1, 1));
        assert_eq!(m.first, StreamId::new(1, 1));
        assert_eq!(m.last, StreamId::new(2, 0));
        assert_eq!(m.entries_added, 2);
        assert_eq!(m.groups, 0);
        assert_eq!(m.encode(), raw);
        assert_eq!(
            encode_entry(&[b"f".to_vec(), b"v".to_vec()]),
            hex::decode("01660176").unwrap()
        );
        assert_eq!(
            decode_entry(&hex::decode("01610162").unwrap()),
            [b"a".to_vec(), b"b".to_vec()]
        );
    }
}
