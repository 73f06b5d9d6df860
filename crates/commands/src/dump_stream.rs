//! Streams in Redis' serialization format (DUMP, RESTORE, MIGRATE).
//!
//! Redis 7.0 writes RDB type 19 (`STREAM_LISTPACKS_2`): the entries as a radix tree of
//! listpacks keyed by each node's master id, then the length, last id, first id, max deleted
//! id and entries added, then the consumer groups with their pending entries and consumers.
//! Type 15 (Redis 5 to 6.2) lacks the id fields after the last id and the groups' read
//! counters; type 21 (Redis 7.2) adds each consumer's active time.
//!
//! A node's listpack starts with its master entry (count, deleted, the master fields, 0);
//! each entry then holds flags, the id as differences from the master id, either its values
//! alone (when its fields are the master's) or its field count, fields and values, and last
//! the number of listpack elements the entry used.

use quarry_types::stream::{Consumer, Entry, Group, Pending, StreamId};
use quarry_types::Db;

use crate::dump::{bad, listpack, put_len, put_str, Reader};
use crate::CmdError;

pub const T_STREAM_1: u8 = 15;
pub const T_STREAM_2: u8 = 19;
pub const T_STREAM_3: u8 = 21;

const FLAG_DELETED: i64 = 1;
const FLAG_SAME_FIELDS: i64 = 2;

/// A stream as the RDB format carries it.
#[derive(Debug, Default, PartialEq)]
pub struct RdbStream {
    pub entries: Vec<Entry>,
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted: StreamId,
    pub entries_added: u64,
    pub groups: Vec<RdbGroup>,
}

#[derive(Debug, Default, PartialEq)]
pub struct RdbGroup {
    pub name: Vec<u8>,
    pub last_id: StreamId,
    /// None in Redis 5 to 6.2 payloads, which do not carry it: worked out as Redis does.
    pub entries_read: Option<i64>,
    /// Pending entries: id, delivery time (ms), delivery count, consumer.
    pub pending: Vec<(StreamId, u64, u64, Vec<u8>)>,
    /// Consumers: name, seen time (ms), active time (ms).
    pub consumers: Vec<(Vec<u8>, u64, u64)>,
}

// ------------------------------------------------------------------------------- listpacks

/// A listpack being written: elements, then the header and terminator on `finish`.
struct ListpackWriter {
    body: Vec<u8>,
    count: usize,
}

impl ListpackWriter {
    fn new() -> Self {
        ListpackWriter {
            body: Vec::new(),
            count: 0,
        }
    }

    /// The element's length, written after it so that the listpack can be walked backwards.
    fn backlen(&mut self, l: usize) {
        let l = l as u64;
        let bytes: Vec<u8> = if l <= 127 {
            vec![l as u8]
        } else if l < 16383 {
            vec![(l >> 7) as u8, (l & 127) as u8 | 128]
        } else if l < 2_097_151 {
            vec![
                (l >> 14) as u8,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]
        } else if l < 268_435_455 {
            vec![
                (l >> 21) as u8,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]
        } else {
            vec![
                (l >> 28) as u8,
                ((l >> 21) & 127) as u8 | 128,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]
        };
        self.body.extend_from_slice(&bytes);
    }

    fn int(&mut self, v: i64) {
        let start = self.body.len();
        if (0..=127).contains(&v) {
            self.body.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u16) & 0x1fff;
            self.body.push(0xc0 | (u >> 8) as u8);
            self.body.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            self.body.push(0xf1);
            self.body.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.body.push(0xf2);
            self.body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            self.body.push(0xf3);
            self.body.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            self.body.push(0xf4);
            self.body.extend_from_slice(&v.to_le_bytes());
        }
        let len = self.body.len() - start;
        self.backlen(len);
        self.count += 1;
    }

    fn string(&mut self, s: &[u8]) {
        let start = self.body.len();
        let n = s.len();
        if n < 64 {
            self.body.push(0x80 | n as u8);
        } else if n < 4096 {
            self.body.push(0xe0 | (n >> 8) as u8);
            self.body.push(n as u8);
        } else {
            self.body.push(0xf0);
            self.body.extend_from_slice(&(n as u32).to_le_bytes());
        }
        self.body.extend_from_slice(s);
        let len = self.body.len() - start;
        self.backlen(len);
        self.count += 1;
    }

    fn finish(self) -> Vec<u8> {
        let total = 6 + self.body.len() + 1;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(self.count.min(65535) as u16).to_le_bytes());
        out.extend_from_slice(&self.body);
        out.push(0xff);
        out
    }
}

// --------------------------------------------------------------------------------- writing

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_len(out, id.ms);
    put_len(out, id.seq);
}

fn raw_id(id: StreamId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.ms.to_be_bytes());
    b[8..].copy_from_slice(&id.seq.to_be_bytes());
    b
}

/// One node: `entries` under the first one's id, its fields as the master fields.
fn node(entries: &[Entry]) -> Vec<u8> {
    let (master, first) = &entries[0];
    let master_fields: Vec<&[u8]> = first.chunks(2).map(|p| &p[0][..]).collect();
    let mut lp = ListpackWriter::new();
    lp.int(entries.len() as i64);
    lp.int(0);
    lp.int(master_fields.len() as i64);
    for f in &master_fields {
        lp.string(f);
    }
    lp.int(0);
    for (id, fv) in entries {
        let same = fv.len() == master_fields.len() * 2
            && fv.chunks(2).zip(&master_fields).all(|(p, m)| p[0] == *m);
        lp.int(if same { FLAG_SAME_FIELDS } else { 0 });
        lp.int(id.ms.wrapping_sub(master.ms) as i64);
        lp.int(id.seq.wrapping_sub(master.seq) as i64);
        let n = fv.len() / 2;
        if same {
            for p in fv.chunks(2) {
                lp.string(&p[1]);
            }
            lp.int(n as i64 + 3);
        } else {
            lp.int(n as i64);
            for s in fv {
                lp.string(s);
            }
            lp.int(2 * n as i64 + 4);
        }
    }
    lp.finish()
}

/// The body of an RDB type 19 stream (Redis 7.0), `node_entries` entries to a node.
pub fn write(s: &RdbStream, node_entries: usize, out: &mut Vec<u8>) {
    let chunks: Vec<&[Entry]> = s.entries.chunks(node_entries.max(1)).collect();
    put_len(out, chunks.len() as u64);
    for chunk in chunks {
        put_str(out, &raw_id(chunk[0].0));
        put_str(out, &node(chunk));
    }
    put_len(out, s.length);
    put_id(out, s.last_id);
    put_id(out, s.first_id);
    put_id(out, s.max_deleted);
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for g in &s.groups {
        put_str(out, &g.name);
        put_id(out, g.last_id);
        put_len(out, g.entries_read.unwrap_or(-1) as u64);
        put_len(out, g.pending.len() as u64);
        for (id, delivered, count, _) in &g.pending {
            out.extend_from_slice(&raw_id(*id));
            out.extend_from_slice(&(*delivered as i64).to_le_bytes());
            put_len(out, *count);
        }
        let mut owned: std::collections::HashMap<&[u8], Vec<StreamId>> =
            std::collections::HashMap::new();
        for (id, _, _, consumer) in &g.pending {
            owned.entry(&consumer[..]).or_default().push(*id);
        }
        put_len(out, g.consumers.len() as u64);
        for (name, seen, _) in &g.consumers {
            put_str(out, name);
            out.extend_from_slice(&(*seen as i64).to_le_bytes());
            let own = owned.get(&name[..]).map_or(&[][..], |v| &v[..]);
            put_len(out, own.len() as u64);
            for id in own {
                out.extend_from_slice(&raw_id(*id));
            }
        }
    }
}

/// Reads the stream at `key` whole, in the shape the RDB format wants.
pub fn read_db(db: &Db, key: &[u8]) -> Result<Option<RdbStream>, CmdError> {
    let Some(m) = db.stream_meta(key)? else {
        return Ok(None);
    };
    let entries = db.stream_range(key, &m, StreamId::MIN, StreamId::MAX, false, 0)?;
    let mut s = RdbStream {
        length: entries.len() as u64,
        entries,
        last_id: m.last_generated,
        first_id: m.recorded_first,
        max_deleted: m.max_deleted,
        entries_added: m.entries_added,
        groups: Vec::new(),
    };
    for (name, g) in db.stream_groups(key, &m)? {
        let mut pending = Vec::new();
        db.stream_pending_walk(key, &m, &name, StreamId::MIN, StreamId::MAX, |id, p| {
            pending.push((id, p.delivery_ms, p.deliveries, p.consumer));
            true
        })?;
        let consumers = db
            .stream_consumers(key, &m, &name)?
            .into_iter()
            .map(|(n, c)| (n, c.seen_ms, c.active_ms))
            .collect();
        s.groups.push(RdbGroup {
            name,
            last_id: g.last_delivered,
            entries_read: Some(g.entries_read),
            pending,
            consumers,
        });
    }
    Ok(Some(s))
}

// --------------------------------------------------------------------------------- reading

fn int(b: &[u8]) -> Result<i64, CmdError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)
}

fn read_id(r: &mut Reader<'_>) -> Result<StreamId, CmdError> {
    Ok(StreamId::new(r.len()?, r.len()?))
}

fn read_raw_id(r: &mut Reader<'_>) -> Result<StreamId, CmdError> {
    let b = r.take(16)?;
    Ok(StreamId::new(
        u64::from_be_bytes(b[..8].try_into().map_err(|_| bad())?),
        u64::from_be_bytes(b[8..].try_into().map_err(|_| bad())?),
    ))
}

fn read_ms(r: &mut Reader<'_>) -> Result<u64, CmdError> {
    Ok(i64::from_le_bytes(r.take(8)?.try_into().map_err(|_| bad())?).max(0) as u64)
}

/// The entries of one node whose master id is `master`.
fn read_node(master: StreamId, lp: &[u8], out: &mut Vec<Entry>) -> Result<(), CmdError> {
    let items = listpack(lp)?;
    let mut it = items.iter();
    let mut next = || it.next().ok_or_else(bad);
    let count = int(next()?)?;
    let deleted = int(next()?)?;
    let nfields = usize::try_from(int(next()?)?).map_err(|_| bad())?;
    let total = count.checked_add(deleted).ok_or_else(bad)?;
    if count < 0 || deleted < 0 || total == 0 || nfields > lp.len() {
        return Err(bad());
    }
    let master_fields: Vec<Vec<u8>> = (0..nfields)
        .map(|_| next().cloned())
        .collect::<Result<_, _>>()?;
    if int(next()?)? != 0 {
        return Err(bad());
    }
    for _ in 0..total {
        let flags = int(next()?)?;
        let ms = master.ms.wrapping_add(int(next()?)? as u64);
        let seq = master.seq.wrapping_add(int(next()?)? as u64);
        let mut fv = Vec::new();
        if flags & FLAG_SAME_FIELDS != 0 {
            for f in &master_fields {
                fv.push(f.clone());
                fv.push(next()?.clone());
            }
        } else {
            let n = usize::try_from(int(next()?)?).map_err(|_| bad())?;
            if n > lp.len() {
                return Err(bad());
            }
            for _ in 0..2 * n {
                fv.push(next()?.clone());
            }
        }
        let _lp_count = next()?;
        if flags & FLAG_DELETED == 0 {
            out.push((StreamId::new(ms, seq), fv));
        }
    }
    if it.next().is_some() {
        return Err(bad());
    }
    Ok(())
}

/// Reads an RDB stream body of type `kind` (15, 19 or 21).
pub fn read(r: &mut Reader<'_>, kind: u8) -> Result<RdbStream, CmdError> {
    let mut s = RdbStream::default();
    let nodes = r.count()?;
    for _ in 0..nodes {
        let key = r.string()?;
        if key.len() != 16 {
            return Err(bad());
        }
        let master = StreamId::new(
            u64::from_be_bytes(
                key.get(..8)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            ),
            u64::from_be_bytes(
                key.get(8..16)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            ),
        );
        read_node(master, &r.string()?, &mut s.entries)?;
    }
    // Ids must grow from node to node, as the radix tree keeps them.
    if s.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(bad());
    }
    s.length = r.len()?;
    s.last_id = read_id(r)?;
    if kind == T_STREAM_1 {
        s.first_id = s.entries.first().map_or(StreamId::MIN, |e| e.0);
        s.entries_added = s.length;
    } else {
        s.first_id = read_id(r)?;
        s.max_deleted = read_id(r)?;
        s.entries_added = r.len()?;
    }
    if s.length != s.entries.len() as u64 {
        return Err(bad());
    }
    let groups = r.count()?;
    let mut group_names: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    for _ in 0..groups {
        let mut g = RdbGroup {
            name: r.string()?,
            last_id: read_id(r)?,
            ..RdbGroup::default()
        };
        if kind != T_STREAM_1 {
            g.entries_read = Some(r.len()? as i64);
        }
        if !group_names.insert(g.name.clone()) {
            return Err(bad());
        }
        let pending = r.count()?;
        // Where each pending id sits in the group's list.
        let mut at = std::collections::HashMap::with_capacity(pending);
        for i in 0..pending {
            let id = read_raw_id(r)?;
            let delivered = read_ms(r)?;
            let count = r.len()?;
            if at.insert(id, i).is_some() {
                return Err(bad());
            }
            g.pending.push((id, delivered, count, Vec::new()));
        }
        let consumers = r.count()?;
        let mut consumer_names: std::collections::HashSet<Vec<u8>> =
            std::collections::HashSet::new();
        for _ in 0..consumers {
            let name = r.string()?;
            if !consumer_names.insert(name.clone()) {
                return Err(bad());
            }
            let seen = read_ms(r)?;
            let active = if kind == T_STREAM_3 {
                read_ms(r)?
            } else {
                seen
            };
            let own = r.count()?;
            for _ in 0..own {
                let id = read_raw_id(r)?;
                // Every consumer's pending entry is one of the group's, owned by one consumer.
                let p = at
                    .get(&id)
                    .map(|&i| &mut g.pending[i])
                    .filter(|p| p.3.is_empty())
                    .ok_or_else(bad)?;
                p.3 = name.clone();
            }
            g.consumers.push((name, seen, active));
        }
        if g.pending.iter().any(|p| p.3.is_empty()) {
            return Err(bad());
        }
        s.groups.push(g);
    }
    Ok(s)
}

/// Writes `s` as the stream `key`, which the caller has removed.
pub fn store(db: &Db, key: &[u8], s: RdbStream) -> Result<(), CmdError> {
    let mut w = db.stream_open(key, true)?.ok_or_else(bad)?;
    for (id, fields) in &s.entries {
        db.stream_put(key, &mut w, *id, fields);
    }
    w.meta.last_generated = s.last_id;
    w.meta.recorded_first = s.first_id;
    w.meta.max_deleted = s.max_deleted;
    w.meta.entries_added = s.entries_added;
    w.meta.groups = s.groups.len() as u64;
    for g in &s.groups {
        let mut owned: std::collections::HashMap<&[u8], u64> = std::collections::HashMap::new();
        for p in &g.pending {
            *owned.entry(&p.3[..]).or_default() += 1;
        }
        for (name, seen, active) in &g.consumers {
            let pending = owned.get(&name[..]).copied().unwrap_or(0);
            let c = Consumer {
                pending,
                seen_ms: *seen,
                active_ms: *active,
            };
            db.stream_put_consumer(key, &mut w, &g.name, name, &c);
        }
        for (id, delivered, count, consumer) in &g.pending {
            let p = Pending {
                delivery_ms: *delivered,
                deliveries: *count,
                consumer: consumer.clone(),
            };
            db.stream_put_pending(key, &mut w, &g.name, *id, &p);
        }
        let group = Group {
            consumers: g.consumers.len() as u64,
            pending: g.pending.len() as u64,
            last_delivered: g.last_id,
            entries_read: g
                .entries_read
                .unwrap_or_else(|| crate::stream::estimate_counter(&w.meta, g.last_id)),
            lag: 0,
        };
        db.stream_put_group(key, &mut w, &g.name, &group);
    }
    db.stream_commit(key, w)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis 5 to 6.2 (type 15) leave out first id, max deleted id, entries added and the
    /// groups' read counters: they are worked out on load, as Redis does.
    #[test]
    fn a_legacy_stream_body_reads() {
        let entries: Vec<Entry> = [5u64, 6]
            .iter()
            .map(|&ms| {
                (
                    StreamId::new(ms, 0),
                    vec![b"data".to_vec(), vec![b'a' + ms as u8]],
                )
            })
            .collect();
        let mut body = Vec::new();
        put_len(&mut body, 1);
        put_str(&mut body, &raw_id(entries[0].0));
        put_str(&mut body, &node(&entries));
        put_len(&mut body, 2);
        put_id(&mut body, StreamId::new(6, 0));
        put_len(&mut body, 1); // one group
        put_str(&mut body, b"g1");
        put_id(&mut body, StreamId::new(5, 0));
        put_len(&mut body, 1); // its pending entry
        body.extend_from_slice(&raw_id(StreamId::new(5, 0)));
        body.extend_from_slice(&1000i64.to_le_bytes());
        put_len(&mut body, 2);
        put_len(&mut body, 1); // its consumer
        put_str(&mut body, b"c1");
        body.extend_from_slice(&2000i64.to_le_bytes());
        put_len(&mut body, 1);
        body.extend_from_slice(&raw_id(StreamId::new(5, 0)));
        let mut r = Reader { b: &body, pos: 0 };
        let s = read(&mut r, T_STREAM_1).unwrap();
        assert_eq!(r.pos, body.len());
        assert_eq!(s.entries, entries);
        assert_eq!((s.first_id, s.entries_added), (StreamId::new(5, 0), 2));
        assert_eq!(s.max_deleted, StreamId::MIN);
        let g = &s.groups[0];
        assert_eq!(g.entries_read, None);
        assert_eq!(g.pending, [(StreamId::new(5, 0), 1000, 2, b"c1".to_vec())]);
        assert_eq!(g.consumers, [(b"c1".to_vec(), 2000, 2000)]);
        // A pending entry no consumer owns is a bad payload.
        body.truncate(body.len() - 17);
        put_len(&mut body, 0);
        assert!(read(&mut Reader { b: &body, pos: 0 }, T_STREAM_1).is_err());
    }

    #[test]
    fn listpack_integers_and_strings_read_back() {
        let mut lp = ListpackWriter::new();
        let ints = [
            0i64,
            127,
            128,
            -1,
            4095,
            -4096,
            4096,
            32767,
            -32768,
            8_388_607,
            -8_388_608,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ];
        for v in ints {
            lp.int(v);
        }
        let long = vec![b'x'; 5000];
        for s in [&b""[..], b"abc", &[b'y'; 100], &long] {
            lp.string(s);
        }
        let items = listpack(&lp.finish()).unwrap();
        for (i, v) in ints.iter().enumerate() {
            assert_eq!(items[i], v.to_string().into_bytes(), "{v}");
        }
        assert_eq!(items[ints.len() + 2], vec![b'y'; 100]);
        assert_eq!(items[ints.len() + 3], long);
    }
}
