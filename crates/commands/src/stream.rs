//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID, XREAD, XINFO, and
//! the consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM).
//! Semantics and error texts as in Redis 7.

use bytes::Bytes;
use quarry_resp::{Frame, Protocol};
use quarry_storage::encoding::now_ms;
use quarry_types::stream::{Consumer, Entry, Group, Pending, StreamId, StreamMeta, StreamWrite};
use quarry_types::Db;

use crate::args::{is, parse_i64, parse_u64};
use crate::{CmdError, CmdResult, Ctx};

fn invalid_id() -> CmdError {
    CmdError::err("Invalid stream ID specified as stream command argument")
}

/// `ms-seq`, or `ms` alone (then `missing_seq`). Returns the id and whether seq was `*`.
fn parse_id_with(
    arg: &[u8],
    missing_seq: u64,
    allow_star: bool,
) -> Result<(StreamId, bool), CmdError> {
    let s = std::str::from_utf8(arg).map_err(|_| invalid_id())?;
    match s.split_once('-') {
        None => Ok((
            StreamId::new(parse_u64(s.as_bytes()).ok_or_else(invalid_id)?, missing_seq),
            false,
        )),
        Some((ms, "*")) if allow_star => Ok((
            StreamId::new(parse_u64(ms.as_bytes()).ok_or_else(invalid_id)?, 0),
            true,
        )),
        Some((ms, seq)) => Ok((
            StreamId::new(
                parse_u64(ms.as_bytes()).ok_or_else(invalid_id)?,
                parse_u64(seq.as_bytes()).ok_or_else(invalid_id)?,
            ),
            false,
        )),
    }
}

fn parse_id(arg: &[u8]) -> Result<StreamId, CmdError> {
    Ok(parse_id_with(arg, 0, false)?.0)
}

/// A range bound: `-`, `+`, an id, an incomplete id, or `(`id for an exclusive bound.
fn range_bound(arg: &[u8], start: bool) -> Result<Option<StreamId>, CmdError> {
    if arg == b"-" {
        return Ok(Some(StreamId::MIN));
    }
    if arg == b"+" {
        return Ok(Some(StreamId::MAX));
    }
    if let Some(rest) = arg.strip_prefix(b"(") {
        let id = parse_id_with(rest, if start { 0 } else { u64::MAX }, false)?.0;
        let moved = if start { id.next() } else { id.prev() };
        return match moved {
            Some(id) => Ok(Some(id)),
            None => Err(CmdError::err(if start {
                "invalid start ID for the interval"
            } else {
                "invalid end ID for the interval"
            })),
        };
    }
    Ok(Some(
        parse_id_with(arg, if start { 0 } else { u64::MAX }, false)?.0,
    ))
}

fn id_frame(id: StreamId) -> Frame {
    Frame::bulk(id.to_string())
}

fn entry_frame((id, fields): Entry) -> Frame {
    Frame::Array(vec![
        id_frame(id),
        Frame::Array(
            fields
                .into_iter()
                .map(|f| Frame::Bulk(Bytes::from(f)))
                .collect(),
        ),
    ])
}

fn entries_frame(entries: Vec<Entry>) -> Frame {
    Frame::Array(entries.into_iter().map(entry_frame).collect())
}

/// Trimming options of XADD and XTRIM.
#[derive(Default)]
struct Trim {
    maxlen: Option<u64>,
    minid: Option<StreamId>,
    approx: bool,
    limit: Option<u64>,
}

/// Parses `MAXLEN|MINID [=|~] threshold [LIMIT count]` at `a[*i]`; returns false if `a[*i]`
/// is not a trim option.
fn parse_trim(a: &[Bytes], i: &mut usize, trim: &mut Trim) -> Result<bool, CmdError> {
    let maxlen = is(&a[*i], "maxlen");
    if !maxlen && !is(&a[*i], "minid") {
        if is(&a[*i], "limit") {
            let n = a.get(*i + 1).ok_or(CmdError::Syntax)?;
            let n = parse_i64(n)?;
            if n < 0 {
                return Err(CmdError::err("The LIMIT argument must be >= 0."));
            }
            trim.limit = Some(n as u64);
            *i += 2;
            return Ok(true);
        }
        return Ok(false);
    }
    let mut j = *i + 1;
    if a.get(j).is_some_and(|x| &x[..] == b"~") {
        trim.approx = true;
        j += 1;
    } else if a.get(j).is_some_and(|x| &x[..] == b"=") {
        j += 1;
    }
    let v = a.get(j).ok_or(CmdError::Syntax)?;
    if maxlen {
        let n = parse_i64(v)?;
        if n < 0 {
            return Err(CmdError::err("The MAXLEN argument must be >= 0."));
        }
        trim.maxlen = Some(n as u64);
    } else {
        trim.minid = Some(parse_id(v)?);
    }
    *i = j + 1;
    Ok(true)
}

fn check_trim(trim: &Trim) -> Result<(), CmdError> {
    if trim.limit.is_some() && !trim.approx {
        return Err(CmdError::err(
            "syntax error, LIMIT cannot be used without the special ~ option",
        ));
    }
    if trim.maxlen.is_some() && trim.minid.is_some() {
        return Err(CmdError::Syntax);
    }
    Ok(())
}

/// `stream-node-max-entries` (Redis's default 100): `~` trims whole blocks of this many
/// entries. Set by the server from its configuration.
pub static NODE_MAX_ENTRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);

fn apply_trim(
    db: &Db,
    key: &[u8],
    w: &mut StreamWrite,
    trim: &Trim,
    staged: Option<StreamId>,
) -> Result<u64, CmdError> {
    if trim.maxlen.is_none() && trim.minid.is_none() {
        return Ok(0);
    }
    let node = NODE_MAX_ENTRIES.load(std::sync::atomic::Ordering::Relaxed);
    let (limit, node) = if trim.approx {
        (trim.limit.unwrap_or(node * 100), Some(node))
    } else {
        (0, None)
    };
    Ok(db.stream_trim(key, w, trim.maxlen, trim.minid, limit, node, staged)?)
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value ...
pub fn xadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let key = &a[1];
    let mut i = 2;
    let mut nomkstream = false;
    let mut trim = Trim::default();
    while i < a.len() {
        if is(&a[i], "nomkstream") {
            nomkstream = true;
            i += 1;
        } else if !parse_trim(a, &mut i, &mut trim)? {
            break;
        }
    }
    check_trim(&trim)?;
    let id_arg = a.get(i).ok_or(CmdError::WrongArity("xadd".into()))?;
    let fields = &a[i + 1..];
    if fields.is_empty() || !fields.len().is_multiple_of(2) {
        return Err(CmdError::WrongArity("xadd".into()));
    }
    let explicit = if &id_arg[..] == b"*" {
        None
    } else {
        Some(parse_id_with(id_arg, 0, true)?)
    };
    if let Some((id, false)) = explicit {
        if id == StreamId::MIN {
            return Err(CmdError::err(
                "The ID specified in XADD must be greater than 0-0",
            ));
        }
    }
    let db = ctx.db;
    let _guard = db.locks().lock(key);
    let Some(mut w) = db.stream_open(key, !nomkstream)? else {
        return Ok(Frame::Null);
    };
    let last = w.meta.last_generated;
    let top = || {
        CmdError::err(
            "The ID specified in XADD is equal or smaller than the target stream top item",
        )
    };
    let id = match explicit {
        None => {
            if last == StreamId::MAX {
                return Err(CmdError::err(
                    "The stream has exhausted the last possible ID, unable to add more items",
                ));
            }
            let now = now_ms();
            if now > last.ms {
                StreamId::new(now, 0)
            } else {
                last.next().ok_or_else(top)?
            }
        }
        Some((id, true)) => {
            if id.ms < last.ms {
                return Err(top());
            }
            if id.ms == last.ms && last != StreamId::MIN {
                if last.seq == u64::MAX {
                    return Err(top());
                }
                StreamId::new(id.ms, last.seq + 1)
            } else if id.ms == 0 {
                StreamId::new(0, 1)
            } else {
                StreamId::new(id.ms, 0)
            }
        }
        Some((id, false)) => {
            if id <= last && (w.meta.entries_added > 0 || last != StreamId::MIN) {
                return Err(top());
            }
            id
        }
    };
    let values: Vec<Vec<u8>> = fields.iter().map(|f| f.to_vec()).collect();
    db.stream_put(key, &mut w, id, &values);
    apply_trim(db, key, &mut w, &trim, Some(id))?;
    db.stream_commit(key, w)?;
    Ok(id_frame(id))
}

/// XLEN key [id [+|-]]: the number of entries, or (Kvrocks) of those after `id` (`+`, the
/// default) or before it (`-`), `id` itself not counted.
pub fn xlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let after = match a.get(3) {
        None => true,
        Some(d) if &d[..] == b"+" => true,
        Some(d) if &d[..] == b"-" => false,
        Some(_) => return Err(CmdError::Syntax),
    };
    if a.len() > 4 {
        return Err(CmdError::Syntax);
    }
    let id = match a.get(2) {
        Some(arg) => Some(parse_id_with(arg, 0, false)?.0),
        None => None,
    };
    let Some(m) = ctx.db.stream_meta(&a[1])? else {
        return Ok(Frame::Integer(0));
    };
    let Some(id) = id else {
        return Ok(Frame::Integer(m.len() as i64));
    };
    let range = if after {
        id.next().map(|from| (from, StreamId::MAX))
    } else {
        id.prev().map(|to| (StreamId::MIN, to))
    };
    let n = match range {
        Some((from, to)) => ctx.db.stream_range(&a[1], &m, from, to, false, 0)?.len(),
        None => 0,
    };
    Ok(Frame::Integer(n as i64))
}

fn range_generic(ctx: &mut Ctx<'_>, a: &[Bytes], rev: bool) -> CmdResult {
    let (s, e) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    let start = range_bound(s, true)?;
    let end = range_bound(e, false)?;
    let mut count = 0usize;
    match a.len() {
        4 => {}
        6 if is(&a[4], "count") => {
            let n = parse_i64(&a[5])?;
            if n <= 0 {
                return Ok(Frame::Array(Vec::new()));
            }
            count = n as usize;
        }
        _ => return Err(CmdError::Syntax),
    }
    let Some(m) = ctx.db.stream_meta(&a[1])? else {
        return Ok(Frame::Array(Vec::new()));
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(Frame::Array(Vec::new()));
    };
    Ok(entries_frame(
        ctx.db.stream_range(&a[1], &m, start, end, rev, count)?,
    ))
}

pub fn xrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    range_generic(ctx, a, false)
}

pub fn xrevrange(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    range_generic(ctx, a, true)
}

pub fn xdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ids = a[2..]
        .iter()
        .map(|x| parse_id(x))
        .collect::<Result<Vec<_>, _>>()?;
    let db = ctx.db;
    let _guard = db.locks().lock(&a[1]);
    let Some(mut w) = db.stream_open(&a[1], false)? else {
        return Ok(Frame::Integer(0));
    };
    let n = db.stream_delete(&a[1], &mut w, &ids)?;
    if n > 0 {
        db.stream_commit(&a[1], w)?;
    }
    Ok(Frame::Integer(n as i64))
}

pub fn xtrim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut trim = Trim::default();
    let mut i = 2;
    while i < a.len() {
        if !parse_trim(a, &mut i, &mut trim)? {
            return Err(CmdError::Syntax);
        }
    }
    if trim.maxlen.is_none() && trim.minid.is_none() {
        return Err(CmdError::Syntax);
    }
    check_trim(&trim)?;
    let db = ctx.db;
    let _guard = db.locks().lock(&a[1]);
    let Some(mut w) = db.stream_open(&a[1], false)? else {
        return Ok(Frame::Integer(0));
    };
    let n = apply_trim(db, &a[1], &mut w, &trim, None)?;
    if n > 0 {
        db.stream_commit(&a[1], w)?;
    }
    Ok(Frame::Integer(n as i64))
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
pub fn xsetid(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let id = parse_id(&a[2])?;
    let mut entries_added = None;
    let mut max_deleted = None;
    let mut i = 3;
    while i < a.len() {
        let v = a.get(i + 1).ok_or(CmdError::Syntax)?;
        if is(&a[i], "entriesadded") {
            let n = parse_i64(v)?;
            if n < 0 {
                return Err(CmdError::err("entries_added must be positive"));
            }
            entries_added = Some(n as u64);
        } else if is(&a[i], "maxdeletedid") {
            let m = parse_id(v)?;
            if id < m {
                return Err(CmdError::err(
                    "The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(m);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let db = ctx.db;
    let _guard = db.locks().lock(&a[1]);
    let Some(mut w) = db.stream_open(&a[1], false)? else {
        return Err(CmdError::NoSuchKey);
    };
    if let Some(n) = entries_added {
        if w.meta.len() > n {
            return Err(CmdError::err(
                "The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
        w.meta.entries_added = n;
    }
    if !w.meta.is_empty() && id < w.meta.last {
        return Err(CmdError::err(
            "The ID specified in XSETID is smaller than the target stream top item",
        ));
    }
    w.meta.last_generated = id;
    if let Some(m) = max_deleted {
        w.meta.max_deleted = m;
    }
    db.stream_commit(&a[1], w)?;
    Ok(Frame::ok())
}

// ------------------------------------------------------------------------------- XREAD(GROUP)

/// A parsed XREAD or XREADGROUP.
pub struct ReadRequest {
    pub keys: Vec<Bytes>,
    /// Per key: an id, `$` (None until resolved) or `>` (groups).
    ids: Vec<ReadFrom>,
    pub count: usize,
    /// BLOCK in ms (0 = forever); None without BLOCK.
    pub block_ms: Option<u64>,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    protocol: Protocol,
    /// Set once the client blocked: a stream or group that disappears ends the wait.
    pub blocked: bool,
}

#[derive(Clone, Copy)]
enum ReadFrom {
    After(StreamId),
    Last,
    New,
}

/// Parses XREAD / XREADGROUP.
pub fn parse_read(a: &[Bytes], group: bool, protocol: Protocol) -> Result<ReadRequest, CmdError> {
    let name = if group { "xreadgroup" } else { "xread" };
    let mut i = 1;
    let mut count = 0usize;
    let mut block_ms = None;
    let mut grp = None;
    let mut noack = false;
    let streams_at = loop {
        let Some(arg) = a.get(i) else {
            return Err(CmdError::Syntax);
        };
        if is(arg, "count") {
            let n = parse_i64(a.get(i + 1).ok_or(CmdError::Syntax)?)?;
            count = n.max(0) as usize;
            i += 2;
        } else if is(arg, "block") {
            let n = parse_i64(a.get(i + 1).ok_or(CmdError::Syntax)?)
                .map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
            if n < 0 {
                return Err(CmdError::err("timeout is negative"));
            }
            block_ms = Some(n as u64);
            i += 2;
        } else if group && is(arg, "group") {
            let (g, c) = (a.get(i + 1), a.get(i + 2));
            let (Some(g), Some(c)) = (g, c) else {
                return Err(CmdError::Syntax);
            };
            grp = Some((g.clone(), c.clone()));
            i += 3;
        } else if group && is(arg, "noack") {
            noack = true;
            i += 1;
        } else if is(arg, "streams") {
            break i + 1;
        } else {
            return Err(CmdError::Syntax);
        }
    };
    if group && grp.is_none() {
        return Err(CmdError::err("Missing GROUP option for XREADGROUP"));
    }
    let rest = &a[streams_at..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CmdError::err(format!(
            "Unbalanced '{name}' list of streams: for each stream key an ID or '$' must be specified."
        )));
    }
    let n = rest.len() / 2;
    let keys = rest[..n].to_vec();
    let mut ids = Vec::with_capacity(n);
    for arg in &rest[n..] {
        ids.push(if &arg[..] == b"$" && !group {
            ReadFrom::Last
        } else if &arg[..] == b">" && group {
            ReadFrom::New
        } else {
            ReadFrom::After(parse_id_with(arg, 0, false)?.0)
        });
    }
    Ok(ReadRequest {
        keys,
        ids,
        count,
        block_ms,
        group: grp,
        noack,
        protocol,
        blocked: false,
    })
}

impl ReadRequest {
    /// XREAD resolves `$` to the stream's last id once, when the command arrives.
    pub fn resolve_last(&mut self, db: &Db) -> Result<(), CmdError> {
        for (k, from) in self.keys.iter().zip(self.ids.iter_mut()) {
            if let ReadFrom::Last = from {
                let last = db
                    .stream_meta(k)?
                    .map_or(StreamId::MIN, |m| m.last_generated);
                *from = ReadFrom::After(last);
            }
        }
        Ok(())
    }

    /// Whether the request may block: XREADGROUP only for `>`.
    pub fn may_block(&self) -> bool {
        self.block_ms.is_some()
            && (self.group.is_none() || self.ids.iter().all(|i| matches!(i, ReadFrom::New)))
    }

    /// One try: the reply if some stream had entries, None otherwise. The caller holds no
    /// lock; XREADGROUP takes the key locks it needs.
    pub fn attempt(&self, db: &Db) -> Result<Option<Frame>, CmdError> {
        let mut results = Vec::new();
        for (k, from) in self.keys.iter().zip(&self.ids) {
            let entries = match &self.group {
                None => {
                    let ReadFrom::After(after) = from else {
                        continue;
                    };
                    let Some(m) = db.stream_meta(k)? else {
                        continue;
                    };
                    match after.next() {
                        Some(start) => {
                            db.stream_range(k, &m, start, StreamId::MAX, false, self.count)?
                        }
                        None => Vec::new(),
                    }
                }
                Some((g, c)) => {
                    if self.blocked {
                        let gone =
                            || CmdError::Other("UNBLOCKED the stream key no longer exists".into());
                        let m = db.stream_meta(k).map_err(|_| gone())?.ok_or_else(gone)?;
                        if db.stream_group(k, &m, g)?.is_none() {
                            return Err(CmdError::Other(
                                "NOGROUP the consumer group this client was blocked on no longer exists".into(),
                            ));
                        }
                    }
                    let got = read_group(db, k, g, c, *from, self.count, self.noack)?;
                    match got {
                        GroupRead::Entries(e) => e,
                        GroupRead::History(h) => {
                            // History is returned even when empty, as in Redis.
                            results.push((k.clone(), history_frame(h)));
                            continue;
                        }
                    }
                }
            };
            if !entries.is_empty() {
                results.push((k.clone(), entries_frame(entries)));
            }
        }
        if results.is_empty() {
            return Ok(None);
        }
        Ok(Some(if self.protocol == Protocol::Resp3 {
            Frame::Map(
                results
                    .into_iter()
                    .map(|(k, v)| (Frame::Bulk(k), v))
                    .collect(),
            )
        } else {
            Frame::Array(
                results
                    .into_iter()
                    .map(|(k, v)| Frame::Array(vec![Frame::Bulk(k), v]))
                    .collect(),
            )
        }))
    }

    /// The reply when nothing arrived in time.
    pub fn timed_out(&self) -> Frame {
        Frame::NullArray
    }

    /// Checks groups exist (XREADGROUP answers NOGROUP at once, even with BLOCK).
    pub fn check_groups(&self, db: &Db) -> Result<(), CmdError> {
        let Some((g, _)) = &self.group else {
            return Ok(());
        };
        for k in &self.keys {
            let found = match db.stream_meta(k)? {
                Some(m) => db.stream_group(k, &m, g)?.is_some(),
                None => false,
            };
            if !found {
                return Err(nogroup_read(k, g));
            }
        }
        Ok(())
    }
}

fn nogroup_read(k: &[u8], g: &[u8]) -> CmdError {
    CmdError::Other(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(k),
        String::from_utf8_lossy(g)
    ))
}

enum GroupRead {
    Entries(Vec<Entry>),
    History(Vec<(StreamId, Option<Vec<Vec<u8>>>)>),
}

fn history_frame(h: Vec<(StreamId, Option<Vec<Vec<u8>>>)>) -> Frame {
    Frame::Array(
        h.into_iter()
            .map(|(id, fields)| match fields {
                Some(f) => entry_frame((id, f)),
                None => Frame::Array(vec![id_frame(id), Frame::NullArray]),
            })
            .collect(),
    )
}

/// The consumer `c`, created (and counted in the group) if missing, seen at `now`.
fn touch_consumer(
    db: &Db,
    key: &[u8],
    w: &StreamWrite,
    g: &[u8],
    group: &mut Group,
    c: &[u8],
    now: u64,
) -> Result<Consumer, CmdError> {
    let mut consumer = match db.stream_consumer(key, &w.meta, g, c)? {
        Some(x) => x,
        None => {
            group.consumers += 1;
            Consumer::default()
        }
    };
    consumer.seen_ms = now;
    Ok(consumer)
}

/// The stream at `key` opened for a change, with its group `g`; None if either is missing.
fn open_group(db: &Db, key: &[u8], g: &[u8]) -> Result<Option<(StreamWrite, Group)>, CmdError> {
    let Some(w) = db.stream_open(key, false)? else {
        return Ok(None);
    };
    Ok(db.stream_group(key, &w.meta, g)?.map(|group| (w, group)))
}

/// Writes a group, one of its consumers, and the stream's change.
fn commit_group(
    db: &Db,
    key: &[u8],
    mut w: StreamWrite,
    g: &[u8],
    group: &Group,
    c: &[u8],
    consumer: &Consumer,
) -> Result<(), CmdError> {
    db.stream_put_group(key, &mut w, g, group);
    db.stream_put_consumer(key, &mut w, g, c, consumer);
    Ok(db.stream_commit(key, w)?)
}

fn read_group(
    db: &Db,
    key: &[u8],
    g: &[u8],
    c: &[u8],
    from: ReadFrom,
    count: usize,
    noack: bool,
) -> Result<GroupRead, CmdError> {
    let _guard = db.locks().lock(key);
    let Some((mut w, mut group)) = open_group(db, key, g)? else {
        return Err(nogroup_read(key, g));
    };
    let now = now_ms();
    let mut consumer = touch_consumer(db, key, &w, g, &mut group, c, now)?;
    let out = match from {
        ReadFrom::New | ReadFrom::Last => {
            let start = group.last_delivered.next();
            let entries = match start {
                Some(s) => db.stream_range(key, &w.meta, s, StreamId::MAX, false, count)?,
                None => Vec::new(),
            };
            for (id, _) in &entries {
                group.last_delivered = *id;
                if group.entries_read >= 0 && !has_tombstones(&w.meta, *id) {
                    group.entries_read += 1;
                } else if w.meta.entries_added > 0 {
                    group.entries_read = estimate_counter(&w.meta, *id);
                }
                if !noack {
                    let old = db.stream_pending_entry(key, &w.meta, g, *id)?;
                    if old.is_none() {
                        group.pending += 1;
                        consumer.pending += 1;
                    }
                    db.stream_put_pending(
                        key,
                        &mut w,
                        g,
                        *id,
                        &Pending {
                            delivery_ms: now,
                            deliveries: 1,
                            consumer: c.to_vec(),
                        },
                    );
                }
            }
            if !entries.is_empty() {
                consumer.active_ms = now;
            }
            GroupRead::Entries(entries)
        }
        ReadFrom::After(after) => {
            let mut ids = Vec::new();
            if let Some(start) = after.next() {
                db.stream_pending_walk(key, &w.meta, g, start, StreamId::MAX, |id, p| {
                    if p.consumer == c {
                        ids.push(id);
                    }
                    count == 0 || ids.len() < count
                })?;
            }
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let e = db.stream_range(key, &w.meta, id, id, false, 1)?;
                out.push((id, e.into_iter().next().map(|(_, f)| f)));
            }
            GroupRead::History(out)
        }
    };
    commit_group(db, key, w, g, &group, c, &consumer)?;
    Ok(out)
}

/// XREAD without BLOCK (BLOCK is handled by the server, which waits and retries).
pub fn xread(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut req = parse_read(a, false, ctx.protocol)?;
    req.resolve_last(ctx.db)?;
    Ok(req.attempt(ctx.db)?.unwrap_or(Frame::NullArray))
}

// -------------------------------------------------------------------------------- groups

fn nogroup(key: &[u8], g: &[u8]) -> CmdError {
    CmdError::Other(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(g),
        String::from_utf8_lossy(key)
    ))
}

fn group_start_id(arg: &[u8], m: &StreamMeta) -> Result<StreamId, CmdError> {
    match arg {
        b"$" => Ok(m.last_generated),
        b"-" => Ok(StreamId::MIN),
        b"+" => Ok(StreamId::MAX),
        _ => parse_id(arg),
    }
}

/// XGROUP CREATE | SETID | DESTROY | CREATECONSUMER | DELCONSUMER | HELP
pub fn xgroup(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    if sub == "help" {
        return Ok(crate::table::help_lines(&[
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CREATE <key> <groupname> <id|$> [option]",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "DELCONSUMER <key> <groupname> <consumername>",
            "DESTROY <key> <groupname>",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "HELP",
        ]));
    }
    let arity = match sub.as_str() {
        "create" => (5, 8),
        "setid" => (5, 7),
        "destroy" => (4, 4),
        "createconsumer" | "delconsumer" => (5, 5),
        _ => {
            return Err(CmdError::err(format!(
                "unknown subcommand '{}'. Try XGROUP HELP.",
                String::from_utf8_lossy(&a[1])
            )))
        }
    };
    if a.len() < arity.0 || a.len() > arity.1 {
        return Err(CmdError::WrongArity(format!("xgroup|{sub}")));
    }
    let (key, g) = (&a[2], &a[3]);
    let mut mkstream = false;
    let mut entries_read: Option<i64> = None;
    if matches!(sub.as_str(), "create" | "setid") {
        let mut i = 5;
        while i < a.len() {
            if sub == "create" && is(&a[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if is(&a[i], "entriesread") {
                let n = parse_i64(a.get(i + 1).ok_or(CmdError::Syntax)?)?;
                if n < -1 {
                    return Err(CmdError::err(
                        "value for ENTRIESREAD must be positive or -1",
                    ));
                }
                entries_read = Some(n);
                i += 2;
            } else {
                return Err(CmdError::Syntax);
            }
        }
    }
    let db = ctx.db;
    let _guard = db.locks().lock(key);
    let Some(mut w) = db.stream_open(key, sub == "create" && mkstream)? else {
        return Err(CmdError::err(if sub == "create" {
            "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."
        } else {
            "The XGROUP subcommand requires the key to exist."
        }));
    };
    let existing = db.stream_group(key, &w.meta, g)?;
    match sub.as_str() {
        "create" => {
            if existing.is_some() {
                return Err(CmdError::Other(
                    "BUSYGROUP Consumer Group name already exists".into(),
                ));
            }
            let id = group_start_id(&a[4], &w.meta)?;
            let group = Group {
                last_delivered: id,
                entries_read: entries_read.unwrap_or(-1),
                ..Group::default()
            };
            w.meta.groups += 1;
            db.stream_put_group(key, &mut w, g, &group);
            db.stream_commit(key, w)?;
            Ok(Frame::ok())
        }
        "setid" => {
            let mut group = existing.ok_or_else(|| nogroup(key, g))?;
            group.last_delivered = group_start_id(&a[4], &w.meta)?;
            group.entries_read = entries_read.unwrap_or(-1);
            db.stream_put_group(key, &mut w, g, &group);
            db.stream_commit(key, w)?;
            Ok(Frame::ok())
        }
        "destroy" => {
            if existing.is_none() {
                return Ok(Frame::Integer(0));
            }
            w.meta.groups = w.meta.groups.saturating_sub(1);
            db.stream_destroy_group(key, &mut w, g);
            db.stream_commit(key, w)?;
            Ok(Frame::Integer(1))
        }
        "createconsumer" => {
            let mut group = existing.ok_or_else(|| nogroup(key, g))?;
            if db.stream_consumer(key, &w.meta, g, &a[4])?.is_some() {
                return Ok(Frame::Integer(0));
            }
            let c = touch_consumer(db, key, &w, g, &mut group, &a[4], now_ms())?;
            commit_group(db, key, w, g, &group, &a[4], &c)?;
            Ok(Frame::Integer(1))
        }
        _ => {
            let mut group = existing.ok_or_else(|| nogroup(key, g))?;
            if db.stream_consumer(key, &w.meta, g, &a[4])?.is_none() {
                return Ok(Frame::Integer(0));
            }
            let n = db.stream_drop_consumer_pending(key, &mut w, g, &a[4])?;
            group.pending = group.pending.saturating_sub(n);
            group.consumers = group.consumers.saturating_sub(1);
            db.stream_delete_consumer(key, &mut w, g, &a[4]);
            db.stream_put_group(key, &mut w, g, &group);
            db.stream_commit(key, w)?;
            Ok(Frame::Integer(n as i64))
        }
    }
}

/// XACK key group id [id ...]
pub fn xack(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let ids = a[3..]
        .iter()
        .map(|x| parse_id(x))
        .collect::<Result<Vec<_>, _>>()?;
    let (key, g) = (&a[1], &a[2]);
    let db = ctx.db;
    let _guard = db.locks().lock(key);
    let Some((mut w, mut group)) = open_group(db, key, g)? else {
        return Ok(Frame::Integer(0));
    };
    let mut n = 0;
    let mut per_consumer: std::collections::HashMap<Vec<u8>, u64> = Default::default();
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id) {
            continue;
        }
        if let Some(p) = db.stream_pending_entry(key, &w.meta, g, id)? {
            db.stream_delete_pending(key, &mut w, g, id);
            *per_consumer.entry(p.consumer).or_default() += 1;
            n += 1;
        }
    }
    if n == 0 {
        return Ok(Frame::Integer(0));
    }
    group.pending = group.pending.saturating_sub(n);
    for (c, k) in per_consumer {
        if let Some(mut cm) = db.stream_consumer(key, &w.meta, g, &c)? {
            cm.pending = cm.pending.saturating_sub(k);
            db.stream_put_consumer(key, &mut w, g, &c, &cm);
        }
    }
    db.stream_put_group(key, &mut w, g, &group);
    db.stream_commit(key, w)?;
    Ok(Frame::Integer(n as i64))
}

/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
pub fn xpending(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (key, g) = (&a[1], &a[2]);
    let mut i = 3;
    let mut min_idle = None;
    if a.len() > 3 && is(&a[3], "idle") {
        let n = parse_i64(a.get(4).ok_or(CmdError::Syntax)?)?;
        min_idle = Some(n.max(0) as u64);
        i = 5;
    }
    let extended = a.len() > i;
    if extended && a.len() < i + 3 || a.len() > i + 4 || (min_idle.is_some() && !extended) {
        return Err(CmdError::Syntax);
    }
    let db = ctx.db;
    let Some(m) = db.stream_meta(key)? else {
        return Err(nogroup(key, g));
    };
    let Some(group) = db.stream_group(key, &m, g)? else {
        return Err(nogroup(key, g));
    };
    if !extended {
        let mut first = None;
        let mut last = None;
        let mut per: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
        let mut total = 0;
        db.stream_pending_walk(key, &m, g, StreamId::MIN, StreamId::MAX, |id, p| {
            first.get_or_insert(id);
            last = Some(id);
            *per.entry(p.consumer).or_default() += 1;
            total += 1;
            true
        })?;
        let _ = group;
        if total == 0 {
            return Ok(Frame::Array(vec![
                Frame::Integer(0),
                Frame::Null,
                Frame::Null,
                Frame::NullArray,
            ]));
        }
        return Ok(Frame::Array(vec![
            Frame::Integer(total),
            first.map_or(Frame::Null, id_frame),
            last.map_or(Frame::Null, id_frame),
            Frame::Array(
                per.into_iter()
                    .map(|(c, n)| {
                        Frame::Array(vec![
                            Frame::Bulk(Bytes::from(c)),
                            Frame::bulk(n.to_string()),
                        ])
                    })
                    .collect(),
            ),
        ]));
    }
    let start = range_bound(&a[i], true)?;
    let end = range_bound(&a[i + 1], false)?;
    let count = parse_i64(&a[i + 2])?;
    let consumer = a.get(i + 3);
    let mut out = Vec::new();
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(Frame::Array(out));
    };
    if count <= 0 {
        return Ok(Frame::Array(out));
    }
    let now = now_ms();
    db.stream_pending_walk(key, &m, g, start, end, |id, p| {
        if consumer.is_some_and(|c| c[..] != p.consumer[..]) {
            return true;
        }
        let idle = now.saturating_sub(p.delivery_ms);
        if min_idle.is_some_and(|mi| idle < mi) {
            return true;
        }
        out.push(Frame::Array(vec![
            id_frame(id),
            Frame::Bulk(Bytes::from(p.consumer)),
            Frame::Integer(idle as i64),
            Frame::Integer(p.deliveries as i64),
        ]));
        (out.len() as i64) < count
    })?;
    Ok(Frame::Array(out))
}

/// Moves pending entry `id` to consumer `c` (creating the PEL entry when `force`). Returns
/// whether it was claimed; `Err(())` marks an entry deleted from the stream.
#[allow(clippy::too_many_arguments)]
fn claim_one(
    db: &Db,
    key: &[u8],
    w: &mut StreamWrite,
    g: &[u8],
    group: &mut Group,
    c: &[u8],
    consumer: &mut Consumer,
    id: StreamId,
    pending: Option<Pending>,
    delivery_ms: u64,
    deliveries: Option<u64>,
    justid: bool,
) -> Result<Option<Option<Entry>>, CmdError> {
    let exists = db
        .stream_range(key, &w.meta, id, id, false, 1)?
        .into_iter()
        .next();
    let Some(entry) = exists else {
        // Deleted from the stream: it leaves the PEL.
        if let Some(p) = pending {
            db.stream_delete_pending(key, w, g, id);
            group.pending = group.pending.saturating_sub(1);
            if p.consumer != c {
                if let Some(mut old) = db.stream_consumer(key, &w.meta, g, &p.consumer)? {
                    old.pending = old.pending.saturating_sub(1);
                    db.stream_put_consumer(key, w, g, &p.consumer, &old);
                }
            } else {
                consumer.pending = consumer.pending.saturating_sub(1);
            }
        }
        return Ok(None);
    };
    let mut p = match pending {
        Some(p) => {
            if p.consumer != c {
                if let Some(mut old) = db.stream_consumer(key, &w.meta, g, &p.consumer)? {
                    old.pending = old.pending.saturating_sub(1);
                    db.stream_put_consumer(key, w, g, &p.consumer, &old);
                }
                consumer.pending += 1;
            }
            p
        }
        None => {
            group.pending += 1;
            consumer.pending += 1;
            Pending {
                delivery_ms,
                deliveries: 0,
                consumer: c.to_vec(),
            }
        }
    };
    p.consumer = c.to_vec();
    p.delivery_ms = delivery_ms;
    match deliveries {
        Some(n) => p.deliveries = n,
        None if !justid => p.deliveries += 1,
        None => {}
    }
    db.stream_put_pending(key, w, g, id, &p);
    Ok(Some(Some(entry)))
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID lastid]
pub fn xclaim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (key, g, c) = (&a[1], &a[2], &a[3]);
    let min_idle = parse_i64(&a[4])
        .map_err(|_| CmdError::err("Invalid min-idle-time argument for XCLAIM"))?
        .max(0) as u64;
    let mut ids = Vec::new();
    let mut i = 5;
    while i < a.len() {
        match parse_id_with(&a[i], 0, false) {
            Ok((id, _)) => ids.push(id),
            Err(_) => break,
        }
        i += 1;
    }
    let now = now_ms();
    let mut delivery_ms = now;
    let mut deliveries = None;
    let (mut force, mut justid) = (false, false);
    let mut last_id = None;
    while i < a.len() {
        let next = a.get(i + 1);
        if is(&a[i], "force") {
            force = true;
            i += 1;
            continue;
        }
        if is(&a[i], "justid") {
            justid = true;
            i += 1;
            continue;
        }
        let v = next.ok_or(CmdError::Syntax)?;
        if is(&a[i], "idle") {
            delivery_ms = now.saturating_sub(
                parse_i64(v)
                    .map_err(|_| CmdError::err("Invalid IDLE option argument for XCLAIM"))?
                    .max(0) as u64,
            );
        } else if is(&a[i], "time") {
            delivery_ms = parse_i64(v)
                .map_err(|_| CmdError::err("Invalid TIME option argument for XCLAIM"))?
                .max(0) as u64;
        } else if is(&a[i], "retrycount") {
            deliveries = Some(
                parse_i64(v)
                    .map_err(|_| CmdError::err("Invalid RETRYCOUNT option argument for XCLAIM"))?
                    .max(0) as u64,
            );
        } else if is(&a[i], "lastid") {
            last_id = Some(parse_id(v)?);
        } else {
            return Err(CmdError::err(format!(
                "Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(&a[i])
            )));
        }
        i += 2;
    }
    let db = ctx.db;
    let _guard = db.locks().lock(key);
    let Some((mut w, mut group)) = open_group(db, key, g)? else {
        return Err(nogroup(key, g));
    };
    if let Some(l) = last_id {
        if l > group.last_delivered {
            group.last_delivered = l;
        }
    }
    let mut consumer = touch_consumer(db, key, &w, g, &mut group, c, now)?;
    let mut out = Vec::new();
    for id in ids {
        let pending = db.stream_pending_entry(key, &w.meta, g, id)?;
        match &pending {
            None if !force => continue,
            Some(p) if now.saturating_sub(p.delivery_ms) < min_idle => continue,
            _ => {}
        }
        if let Some(Some(entry)) = claim_one(
            db,
            key,
            &mut w,
            g,
            &mut group,
            c,
            &mut consumer,
            id,
            pending,
            delivery_ms,
            deliveries,
            justid,
        )? {
            consumer.active_ms = now;
            out.push(if justid {
                id_frame(id)
            } else {
                entry_frame(entry)
            });
        }
    }
    commit_group(db, key, w, g, &group, c, &consumer)?;
    Ok(Frame::Array(out))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub fn xautoclaim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (key, g, c) = (&a[1], &a[2], &a[3]);
    let min_idle = parse_i64(&a[4])
        .map_err(|_| CmdError::err("Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0) as u64;
    let start = range_bound(&a[5], true)?.unwrap_or(StreamId::MAX);
    let mut count = 100usize;
    let mut justid = false;
    let mut i = 6;
    while i < a.len() {
        if is(&a[i], "justid") {
            justid = true;
            i += 1;
        } else if is(&a[i], "count") {
            let n = parse_i64(a.get(i + 1).ok_or(CmdError::Syntax)?)?;
            if !(1..=i64::MAX / 10).contains(&n) {
                return Err(CmdError::err("COUNT must be > 0"));
            }
            count = n as usize;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let db = ctx.db;
    let _guard = db.locks().lock(key);
    let Some((mut w, mut group)) = open_group(db, key, g)? else {
        return Err(nogroup(key, g));
    };
    let now = now_ms();
    let mut consumer = touch_consumer(db, key, &w, g, &mut group, c, now)?;
    let mut candidates = Vec::new();
    let mut next = StreamId::MIN;
    let mut scanned = 0;
    let attempts = count * 10;
    db.stream_pending_walk(key, &w.meta, g, start, StreamId::MAX, |id, p| {
        if scanned >= attempts || candidates.len() >= count {
            next = id;
            return false;
        }
        scanned += 1;
        if now.saturating_sub(p.delivery_ms) >= min_idle {
            candidates.push((id, p));
        }
        true
    })?;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    for (id, p) in candidates {
        match claim_one(
            db,
            key,
            &mut w,
            g,
            &mut group,
            c,
            &mut consumer,
            id,
            Some(p),
            now,
            None,
            justid,
        )? {
            Some(Some(entry)) => claimed.push(if justid {
                id_frame(id)
            } else {
                entry_frame(entry)
            }),
            _ => deleted.push(id_frame(id)),
        }
    }
    if !claimed.is_empty() {
        consumer.active_ms = now;
    }
    commit_group(db, key, w, g, &group, c, &consumer)?;
    Ok(Frame::Array(vec![
        id_frame(next),
        Frame::Array(claimed),
        Frame::Array(deleted),
    ]))
}

/// XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP
pub fn xinfo(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    if sub == "help" {
        return Ok(crate::table::help_lines(&[
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CONSUMERS <key> <groupname>",
            "GROUPS <key>",
            "STREAM <key> [FULL [COUNT <count>]",
            "HELP",
        ]));
    }
    let min = match sub.as_str() {
        "stream" | "groups" => 3,
        "consumers" => 4,
        _ => {
            return Err(CmdError::err(format!(
                "unknown subcommand '{}'. Try XINFO HELP.",
                String::from_utf8_lossy(&a[1])
            )))
        }
    };
    if a.len() < min || (sub != "stream" && a.len() != min) {
        return Err(CmdError::WrongArity(format!("xinfo|{sub}")));
    }
    let key = &a[2];
    let db = ctx.db;
    let Some(m) = db.stream_meta(key)? else {
        return Err(CmdError::NoSuchKey);
    };
    let kv = |k: &str, v: Frame| [Frame::bulk(k.to_string()), v];
    let pair_map = |items: Vec<[Frame; 2]>| {
        if ctx.protocol == Protocol::Resp3 {
            Frame::Map(items.into_iter().map(|[k, v]| (k, v)).collect())
        } else {
            Frame::Array(items.into_iter().flatten().collect())
        }
    };
    let now = now_ms();
    match sub.as_str() {
        "stream" => {
            let full = a.len() > 3 && is(&a[3], "full");
            if a.len() > 3 && !full {
                return Err(CmdError::Syntax);
            }
            let mut items = vec![
                kv("length", Frame::Integer(m.len() as i64)),
                kv(
                    "radix-tree-keys",
                    Frame::Integer(m.len().div_ceil(100) as i64),
                ),
                kv(
                    "radix-tree-nodes",
                    Frame::Integer((m.len().div_ceil(100) + 1) as i64),
                ),
                kv("last-generated-id", id_frame(m.last_generated)),
                kv("max-deleted-entry-id", id_frame(m.max_deleted)),
                kv("entries-added", Frame::Integer(m.entries_added as i64)),
                kv("recorded-first-entry-id", id_frame(m.recorded_first)),
            ];
            if full {
                let mut count = 10usize;
                if a.len() == 6 && is(&a[4], "count") {
                    count = parse_i64(&a[5])?.max(0) as usize;
                } else if a.len() != 4 {
                    return Err(CmdError::Syntax);
                }
                let entries =
                    db.stream_range(key, &m, StreamId::MIN, StreamId::MAX, false, count)?;
                items.push(kv("entries", entries_frame(entries)));
                let mut groups = Vec::new();
                for (name, g) in db.stream_groups(key, &m)? {
                    let mut pel = Vec::new();
                    db.stream_pending_walk(
                        key,
                        &m,
                        &name,
                        StreamId::MIN,
                        StreamId::MAX,
                        |id, p| {
                            pel.push(Frame::Array(vec![
                                id_frame(id),
                                Frame::Bulk(Bytes::from(p.consumer)),
                                Frame::Integer(p.delivery_ms as i64),
                                Frame::Integer(p.deliveries as i64),
                            ]));
                            count == 0 || pel.len() < count
                        },
                    )?;
                    let mut consumers = Vec::new();
                    for (cn, c) in db.stream_consumers(key, &m, &name)? {
                        // The consumer's own pending entries: [id, delivery time, deliveries].
                        let mut own = Vec::new();
                        db.stream_pending_walk(
                            key,
                            &m,
                            &name,
                            StreamId::MIN,
                            StreamId::MAX,
                            |id, p| {
                                if p.consumer == cn {
                                    own.push(Frame::Array(vec![
                                        id_frame(id),
                                        Frame::Integer(p.delivery_ms as i64),
                                        Frame::Integer(p.deliveries as i64),
                                    ]));
                                }
                                count == 0 || own.len() < count
                            },
                        )?;
                        consumers.push(pair_map(vec![
                            kv("name", Frame::Bulk(Bytes::from(cn))),
                            kv("seen-time", Frame::Integer(c.seen_ms as i64)),
                            kv("active-time", Frame::Integer(c.active_ms as i64)),
                            kv("pel-count", Frame::Integer(c.pending as i64)),
                            kv("pending", Frame::Array(own)),
                        ]));
                    }
                    groups.push(pair_map(vec![
                        kv("name", Frame::Bulk(Bytes::from(name))),
                        kv("last-delivered-id", id_frame(g.last_delivered)),
                        kv("entries-read", entries_read_frame(&g)),
                        kv("lag", lag_frame(&m, &g)),
                        kv("pel-count", Frame::Integer(g.pending as i64)),
                        kv("pending", Frame::Array(pel)),
                        kv("consumers", Frame::Array(consumers)),
                    ]));
                }
                items.push(kv("groups", Frame::Array(groups)));
            } else {
                items.push(kv("groups", Frame::Integer(m.groups as i64)));
                let first = db.stream_range(key, &m, StreamId::MIN, StreamId::MAX, false, 1)?;
                let last = db.stream_range(key, &m, StreamId::MIN, StreamId::MAX, true, 1)?;
                items.push(kv(
                    "first-entry",
                    first.into_iter().next().map_or(Frame::Null, entry_frame),
                ));
                items.push(kv(
                    "last-entry",
                    last.into_iter().next().map_or(Frame::Null, entry_frame),
                ));
            }
            Ok(pair_map(items))
        }
        "groups" => {
            let groups = db
                .stream_groups(key, &m)?
                .into_iter()
                .map(|(name, g)| {
                    pair_map(vec![
                        kv("name", Frame::Bulk(Bytes::from(name))),
                        kv("consumers", Frame::Integer(g.consumers as i64)),
                        kv("pending", Frame::Integer(g.pending as i64)),
                        kv("last-delivered-id", id_frame(g.last_delivered)),
                        kv("entries-read", entries_read_frame(&g)),
                        kv("lag", lag_frame(&m, &g)),
                    ])
                })
                .collect();
            Ok(Frame::Array(groups))
        }
        _ => {
            let g = &a[3];
            if db.stream_group(key, &m, g)?.is_none() {
                return Err(nogroup(key, g));
            }
            let consumers = db
                .stream_consumers(key, &m, g)?
                .into_iter()
                .map(|(name, c)| {
                    pair_map(vec![
                        kv("name", Frame::Bulk(Bytes::from(name))),
                        kv("pending", Frame::Integer(c.pending as i64)),
                        kv("idle", Frame::Integer(now.saturating_sub(c.seen_ms) as i64)),
                        kv(
                            "inactive",
                            Frame::Integer(if c.active_ms == 0 {
                                -1
                            } else {
                                now.saturating_sub(c.active_ms) as i64
                            }),
                        ),
                    ])
                })
                .collect();
            Ok(Frame::Array(consumers))
        }
    }
}

fn entries_read_frame(g: &Group) -> Frame {
    if g.entries_read < 0 {
        Frame::Null
    } else {
        Frame::Integer(g.entries_read)
    }
}

/// Redis's `streamEstimateDistanceFromFirstEverEntry`: the logical read counter of `id`, or -1
/// when it cannot be known.
pub(crate) fn estimate_counter(m: &StreamMeta, id: StreamId) -> i64 {
    if m.entries_added == 0 {
        return 0;
    }
    if m.is_empty() && id <= m.last_generated {
        return m.entries_added as i64;
    }
    if id == m.last_generated {
        return m.entries_added as i64;
    }
    if id > m.last_generated {
        return -1;
    }
    if m.max_deleted == StreamId::MIN || m.max_deleted < m.first {
        if id < m.first {
            return (m.entries_added - m.len()) as i64;
        }
        if id == m.first {
            return (m.entries_added - m.len() + 1) as i64;
        }
    }
    -1
}

/// Whether deleted entries may lie between `start` and the end of the stream.
fn has_tombstones(m: &StreamMeta, start: StreamId) -> bool {
    if m.is_empty() || m.max_deleted == StreamId::MIN {
        return false;
    }
    m.max_deleted >= start && m.max_deleted <= m.last_generated
}

/// Redis's lag: entries added after the group's last delivered one, when that can be known.
fn lag_frame(m: &StreamMeta, g: &Group) -> Frame {
    if m.entries_added == 0 {
        return Frame::Integer(0);
    }
    if g.entries_read >= 0 && !has_tombstones(m, g.last_delivered) {
        return Frame::Integer(m.entries_added as i64 - g.entries_read);
    }
    match estimate_counter(m, g.last_delivered) {
        -1 => Frame::Null,
        n => Frame::Integer(m.entries_added as i64 - n),
    }
}
