//! DUMP and RESTORE in Redis's serialization format (RDB version 10, Redis 7.0), so that tools
//! that move keys with DUMP/RESTORE work between Redis and quarry.
//!
//! DUMP writes the plain encodings every Redis since 2.x loads (string, list, set, sorted set
//! with binary scores, hash). RESTORE also reads the compact encodings Redis 7.0 writes
//! (intset, ziplist, listpack, quicklist), integer-encoded and LZF-compressed strings.
//! A payload ends with the RDB version (2 bytes LE) and a CRC64 (Jones, 8 bytes LE).

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_storage::encoding::{now_ms, RedisType};
use quarry_types::{Db, End, Expiry, SetCondition, ZAddFlags};

use crate::args::{is, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

/// What DUMP writes: Redis 7.0's, so that 7.0 and later can RESTORE quarry's payloads.
const RDB_VERSION: u16 = 10;
/// The newest payloads RESTORE reads: Redis 7.2's (its new types, 20 and 21, are read).
const RDB_VERSION_READ: u16 = 11;

const T_STRING: u8 = 0;
const T_LIST: u8 = 1;
const T_SET: u8 = 2;
const T_ZSET: u8 = 3;
const T_HASH: u8 = 4;
const T_ZSET_2: u8 = 5;
const T_HASH_ZIPLIST: u8 = 13;
const T_LIST_ZIPLIST: u8 = 10;
const T_SET_INTSET: u8 = 11;
const T_ZSET_ZIPLIST: u8 = 12;
const T_LIST_QUICKLIST: u8 = 14;
const T_HASH_LISTPACK: u8 = 16;
const T_ZSET_LISTPACK: u8 = 17;
const T_LIST_QUICKLIST_2: u8 = 18;
const T_SET_LISTPACK: u8 = 20;
/// quarry's own type byte for a Bloom filter, which Redis' RDB has no type for (RedisBloom
/// writes a module type): the metadata's 20-byte payload, the item count, then each
/// sub-filter as a string. Only quarry reads it.
const T_QUARRY_BLOOM: u8 = 200;
/// quarry's own type byte for a JSON document (RedisJSON writes a module type): the document
/// as JSON text, one string. Only quarry reads it.
const T_QUARRY_JSON: u8 = 201;
/// quarry's own type byte for a t-digest (RedisBloom writes a module type): the compression,
/// the observations, the minimum and maximum and each merged centroid's mean and weight (as
/// strings of their shortest decimal form). Only quarry reads it.
const T_QUARRY_TDIGEST: u8 = 202;

/// CRC-64/Jones as Redis computes it (reflected, poly 0xad93d23594c935a9, init 0).
pub fn crc64(data: &[u8]) -> u64 {
    let mut crc: u64 = 0;
    for &b in data {
        crc ^= b as u64;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
    }
    crc
}

// ------------------------------------------------------------------------------------ writing

pub(crate) fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The DUMP payload of a value.
fn payload(kind: u8, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 11);
    out.push(kind);
    out.extend_from_slice(&body);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The DUMP payload of `key` (None when it does not exist), for MIGRATE.
pub fn dump_payload(db: &Db, key: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
    serialize(db, key)
}

fn serialize(db: &Db, key: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
    let Some(kind) = db.key_type(key)? else {
        return Ok(None);
    };
    let mut body = Vec::new();
    let t = match kind {
        RedisType::String | RedisType::Bitmap => {
            let v = db.get(key)?.unwrap_or_default();
            put_str(&mut body, &v);
            T_STRING
        }
        RedisType::List => {
            let items = db.list_all(key)?;
            put_len(&mut body, items.len() as u64);
            for i in &items {
                put_str(&mut body, i);
            }
            T_LIST
        }
        RedisType::Set => {
            let items = db.smembers(key)?;
            put_len(&mut body, items.len() as u64);
            for i in &items {
                put_str(&mut body, i);
            }
            T_SET
        }
        RedisType::ZSet => {
            let items = db.zset_items(key)?.unwrap_or_default();
            put_len(&mut body, items.len() as u64);
            for (m, s) in &items {
                put_str(&mut body, m);
                body.extend_from_slice(&s.to_le_bytes());
            }
            T_ZSET_2
        }
        RedisType::Stream => {
            let s = crate::dump_stream::read_db(db, key)?.unwrap_or_default();
            let node = crate::stream::NODE_MAX_ENTRIES.load(std::sync::atomic::Ordering::Relaxed);
            crate::dump_stream::write(&s, if node == 0 { 100 } else { node as usize }, &mut body);
            crate::dump_stream::T_STREAM_2
        }
        // Redis keeps a HyperLogLog as a string: the dense "HYLL" form.
        RedisType::HyperLogLog => {
            let v = db.hll_redis_string(key)?.unwrap_or_default();
            put_str(&mut body, &v);
            T_STRING
        }
        RedisType::Bloom => {
            let (info, size, filters) = db.bf_dump(key)?.unwrap_or_default();
            put_str(&mut body, &info);
            put_len(&mut body, size);
            put_len(&mut body, filters.len() as u64);
            for f in &filters {
                put_str(&mut body, f);
            }
            T_QUARRY_BLOOM
        }
        RedisType::TDigest => {
            let (compression, min, max, observations, centroids) =
                db.td_dump(key)?.unwrap_or((0, 0.0, 0.0, 0, Vec::new()));
            put_len(&mut body, compression as u64);
            put_len(&mut body, observations);
            put_str(&mut body, min.to_string().as_bytes());
            put_str(&mut body, max.to_string().as_bytes());
            put_len(&mut body, centroids.len() as u64);
            for c in &centroids {
                put_str(&mut body, c.mean.to_string().as_bytes());
                put_str(&mut body, c.weight.to_string().as_bytes());
            }
            T_QUARRY_TDIGEST
        }
        RedisType::Json => {
            let text = db.json_read(key)?.map(|d| d.text).unwrap_or_default();
            put_str(&mut body, &text);
            T_QUARRY_JSON
        }
        RedisType::Hash => {
            let items = db.hgetall(key)?;
            put_len(&mut body, items.len() as u64);
            for (f, v) in &items {
                put_str(&mut body, f);
                put_str(&mut body, v);
            }
            T_HASH
        }
        other => {
            return Err(CmdError::err(format!(
                "DUMP of a {} key is not supported by quarry",
                other.name()
            )))
        }
    };
    Ok(Some(payload(t, body)))
}

pub fn dump(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(serialize(ctx.db, &a[1])?.map_or(Frame::Null, Frame::bulk))
}

// ------------------------------------------------------------------------------------ reading

pub(crate) fn bad() -> CmdError {
    CmdError::err("Bad data format")
}

pub(crate) struct Reader<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CmdError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(bad)?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn byte(&mut self) -> Result<u8, CmdError> {
        Ok(self.take(1)?[0])
    }
    fn len_or_enc(&mut self) -> Result<Len, CmdError> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Plain((first & 0x3f) as u64),
            1 => Len::Plain((((first & 0x3f) as u64) << 8) | self.byte()? as u64),
            2 => match first {
                0x80 => Len::Plain(
                    u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| bad())?) as u64,
                ),
                0x81 => Len::Plain(u64::from_be_bytes(
                    self.take(8)?.try_into().map_err(|_| bad())?,
                )),
                _ => return Err(bad()),
            },
            _ => Len::Encoded(first & 0x3f),
        })
    }
    pub(crate) fn len(&mut self) -> Result<u64, CmdError> {
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(bad()),
        }
    }
    /// Bounded so that a hostile length cannot reserve huge memory.
    pub(crate) fn count(&mut self) -> Result<usize, CmdError> {
        let n = self.len()?;
        if n > self.b.len() as u64 * 8 + 16 {
            return Err(bad());
        }
        Ok(n as usize)
    }
    pub(crate) fn string(&mut self) -> Result<Vec<u8>, CmdError> {
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(self.take(usize::try_from(n).map_err(|_| bad())?)?.to_vec()),
            Len::Encoded(0) => Ok((self.byte()? as i8).to_string().into_bytes()),
            Len::Encoded(1) => Ok(
                i16::from_le_bytes(self.take(2)?.try_into().map_err(|_| bad())?)
                    .to_string()
                    .into_bytes(),
            ),
            Len::Encoded(2) => Ok(
                i32::from_le_bytes(self.take(4)?.try_into().map_err(|_| bad())?)
                    .to_string()
                    .into_bytes(),
            ),
            Len::Encoded(3) => {
                let clen = self.len()? as usize;
                let len = self.len()?;
                // An LZF back-reference of 3 bytes yields up to 264 (88x): a larger claimed
                // length is a bad payload, not an allocation to make.
                if len > clen as u64 * 88 + 64 {
                    return Err(bad());
                }
                lzf_decompress(self.take(clen)?, len as usize)
            }
            _ => Err(bad()),
        }
    }
    fn binary_double(&mut self) -> Result<f64, CmdError> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| bad())?,
        ))
    }
    /// RDB_TYPE_ZSET's scores: a length byte and the text (253 nan, 254 +inf, 255 -inf).
    fn text_double(&mut self) -> Result<f64, CmdError> {
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => std::str::from_utf8(self.take(n as usize)?)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad),
        }
    }
}

fn lzf_decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, CmdError> {
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            out.extend_from_slice(input.get(i..i + n).ok_or_else(bad)?);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i).ok_or_else(bad)? as usize;
                i += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + *input.get(i).ok_or_else(bad)? as usize + 1;
            i += 1;
            let start = out.len().checked_sub(back).ok_or_else(bad)?;
            for k in 0..len + 2 {
                let c = out[start + k];
                out.push(c);
            }
        }
    }
    if out.len() != out_len {
        return Err(bad());
    }
    Ok(out)
}

/// Elements of a listpack.
pub(crate) fn listpack(b: &[u8]) -> Result<Vec<Vec<u8>>, CmdError> {
    let mut p = 6;
    let mut out = Vec::new();
    let get = |p: usize, n: usize| b.get(p..p + n).ok_or_else(bad);
    loop {
        let c = *b.get(p).ok_or_else(bad)?;
        if c == 0xff {
            break;
        }
        let (value, used): (Vec<u8>, usize) = if c & 0x80 == 0 {
            ((c & 0x7f).to_string().into_bytes(), 1)
        } else if c & 0xc0 == 0x80 {
            let n = (c & 0x3f) as usize;
            (get(p + 1, n)?.to_vec(), 1 + n)
        } else if c & 0xe0 == 0xc0 {
            let v = ((((c & 0x1f) as u16) << 8) | *b.get(p + 1).ok_or_else(bad)? as u16) as i16;
            // 13-bit two's complement.
            let v = if v >= 1 << 12 { v - (1 << 13) } else { v };
            (v.to_string().into_bytes(), 2)
        } else if c & 0xf0 == 0xe0 {
            let n = (((c & 0x0f) as usize) << 8) | *b.get(p + 1).ok_or_else(bad)? as usize;
            (get(p + 2, n)?.to_vec(), 2 + n)
        } else {
            match c {
                0xf0 => {
                    let n =
                        u32::from_le_bytes(get(p + 1, 4)?.try_into().map_err(|_| bad())?) as usize;
                    (get(p + 5, n)?.to_vec(), 5 + n)
                }
                0xf1 => (
                    i16::from_le_bytes(get(p + 1, 2)?.try_into().map_err(|_| bad())?)
                        .to_string()
                        .into_bytes(),
                    3,
                ),
                0xf2 => {
                    let x = get(p + 1, 3)?;
                    let v = (i32::from_le_bytes([0, x[0], x[1], x[2]])) >> 8;
                    (v.to_string().into_bytes(), 4)
                }
                0xf3 => (
                    i32::from_le_bytes(get(p + 1, 4)?.try_into().map_err(|_| bad())?)
                        .to_string()
                        .into_bytes(),
                    5,
                ),
                0xf4 => (
                    i64::from_le_bytes(get(p + 1, 8)?.try_into().map_err(|_| bad())?)
                        .to_string()
                        .into_bytes(),
                    9,
                ),
                _ => return Err(bad()),
            }
        };
        let backlen = match used {
            0..=127 => 1,
            128..=16382 => 2,
            16383..=2097150 => 3,
            2097151..=268435454 => 4,
            _ => 5,
        };
        out.push(value);
        p += used + backlen;
    }
    Ok(out)
}

/// Elements of a ziplist.
fn ziplist(b: &[u8]) -> Result<Vec<Vec<u8>>, CmdError> {
    let mut p = 10;
    let mut out = Vec::new();
    let get = |p: usize, n: usize| b.get(p..p + n).ok_or_else(bad);
    loop {
        let first = *b.get(p).ok_or_else(bad)?;
        if first == 0xff {
            break;
        }
        p += if first < 254 { 1 } else { 5 };
        let c = *b.get(p).ok_or_else(bad)?;
        let (value, used): (Vec<u8>, usize) = match c >> 6 {
            0 => {
                let n = (c & 0x3f) as usize;
                (get(p + 1, n)?.to_vec(), 1 + n)
            }
            1 => {
                let n = (((c & 0x3f) as usize) << 8) | *b.get(p + 1).ok_or_else(bad)? as usize;
                (get(p + 2, n)?.to_vec(), 2 + n)
            }
            2 => {
                let n = u32::from_be_bytes(get(p + 1, 4)?.try_into().map_err(|_| bad())?) as usize;
                (get(p + 5, n)?.to_vec(), 5 + n)
            }
            _ => {
                let int = |v: i64| v.to_string().into_bytes();
                match c {
                    0xc0 => (
                        int(
                            i16::from_le_bytes(get(p + 1, 2)?.try_into().map_err(|_| bad())?)
                                as i64,
                        ),
                        3,
                    ),
                    0xd0 => (
                        int(
                            i32::from_le_bytes(get(p + 1, 4)?.try_into().map_err(|_| bad())?)
                                as i64,
                        ),
                        5,
                    ),
                    0xe0 => (
                        int(i64::from_le_bytes(
                            get(p + 1, 8)?.try_into().map_err(|_| bad())?,
                        )),
                        9,
                    ),
                    0xf0 => {
                        let x = get(p + 1, 3)?;
                        (
                            int((i32::from_le_bytes([0, x[0], x[1], x[2]]) >> 8) as i64),
                            4,
                        )
                    }
                    0xfe => (int(*b.get(p + 1).ok_or_else(bad)? as i8 as i64), 2),
                    0xf1..=0xfd => (int((c & 0x0f) as i64 - 1), 1),
                    _ => return Err(bad()),
                }
            }
        };
        out.push(value);
        p += used;
    }
    Ok(out)
}

fn intset(b: &[u8]) -> Result<Vec<Vec<u8>>, CmdError> {
    let width =
        u32::from_le_bytes(b.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let n =
        u32::from_le_bytes(b.get(4..8).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let mut out = Vec::with_capacity(n.min(1 << 16));
    for i in 0..n {
        let x = b.get(8 + i * width..8 + (i + 1) * width).ok_or_else(bad)?;
        let v = match width {
            2 => i16::from_le_bytes(x.try_into().map_err(|_| bad())?) as i64,
            4 => i32::from_le_bytes(x.try_into().map_err(|_| bad())?) as i64,
            8 => i64::from_le_bytes(x.try_into().map_err(|_| bad())?),
            _ => return Err(bad()),
        };
        out.push(v.to_string().into_bytes());
    }
    Ok(out)
}

/// A decoded value, ready to be written.
pub(crate) enum Value {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    ZSet(Vec<(f64, Vec<u8>)>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    Stream(crate::dump_stream::RdbStream),
    /// quarry's Bloom filter: the metadata's payload, the item count, the sub-filters.
    Bloom(Vec<u8>, u64, Vec<Vec<u8>>),
    /// A JSON document's text.
    Json(Vec<u8>),
    /// A t-digest, and its observations.
    TDigest(quarry_types::tdigest::Digest, u64),
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn pairs(flat: Vec<Vec<u8>>) -> Result<Pairs, CmdError> {
    if !flat.len().is_multiple_of(2) {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn scored(flat: Vec<Vec<u8>>) -> Result<Vec<(f64, Vec<u8>)>, CmdError> {
    pairs(flat)?
        .into_iter()
        .map(|(m, s)| {
            let score: f64 = std::str::from_utf8(&s)
                .ok()
                .and_then(|x| x.parse().ok())
                .ok_or_else(bad)?;
            // Redis refuses a NaN score in a payload; refused here before anything is written.
            if score.is_nan() {
                return Err(bad());
            }
            Ok((score, m))
        })
        .collect()
}

fn deserialize(data: &[u8]) -> Result<Value, CmdError> {
    let mut r = Reader { b: data, pos: 1 };
    let v = read_value(&mut r, data[0])?;
    if r.pos != data.len() {
        return Err(bad());
    }
    Ok(v)
}

/// One value of RDB type `kind` (a DUMP payload's, or a record of an RDB file).
pub(crate) fn read_value(r: &mut Reader<'_>, kind: u8) -> Result<Value, CmdError> {
    let v = match kind {
        T_STRING => Value::String(r.string()?),
        T_QUARRY_BLOOM => {
            let info = r.string()?;
            let size = r.len()?;
            let n = r.count()?;
            let filters = (0..n).map(|_| r.string()).collect::<Result<_, _>>()?;
            Value::Bloom(info, size, filters)
        }
        T_QUARRY_TDIGEST => {
            let compression = r.len()?;
            let observations = r.len()?;
            let num = |b: Vec<u8>| -> Result<f64, CmdError> {
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .ok_or_else(bad)
            };
            let (min, max) = (num(r.string()?)?, num(r.string()?)?);
            let n = r.count()?;
            let mut centroids = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let mean = num(r.string()?)?;
                let weight = num(r.string()?)?;
                centroids.push(quarry_types::tdigest::Centroid { mean, weight });
            }
            let sorted = centroids.windows(2).all(|w| w[0].mean <= w[1].mean);
            let sane = (1..=quarry_types::tdigest::MAX_COMPRESSION as u64).contains(&compression)
                && sorted
                && centroids
                    .iter()
                    .all(|c| c.mean.is_finite() && c.weight.is_finite() && c.weight >= 1.0);
            if !sane {
                return Err(bad());
            }
            let total = centroids.iter().map(|c| c.weight).sum();
            let empty = centroids.is_empty();
            Value::TDigest(
                quarry_types::tdigest::Digest {
                    compression: compression as u32,
                    centroids,
                    min: if empty { f64::MAX } else { min },
                    max: if empty { f64::MIN } else { max },
                    total,
                },
                observations,
            )
        }
        T_QUARRY_JSON => {
            let text = r.string()?;
            // Only a document that parses is restored.
            serde_json::from_slice::<serde_json::Value>(&text).map_err(|_| bad())?;
            Value::Json(text)
        }
        T_LIST => {
            let n = r.count()?;
            Value::List((0..n).map(|_| r.string()).collect::<Result<_, _>>()?)
        }
        T_SET => {
            let n = r.count()?;
            Value::Set((0..n).map(|_| r.string()).collect::<Result<_, _>>()?)
        }
        T_ZSET | T_ZSET_2 => {
            let n = r.count()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.string()?;
                let s = if kind == T_ZSET_2 {
                    r.binary_double()?
                } else {
                    r.text_double()?
                };
                if s.is_nan() {
                    return Err(bad());
                }
                items.push((s, m));
            }
            Value::ZSet(items)
        }
        T_HASH => {
            let n = r.count()?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push((r.string()?, r.string()?));
            }
            Value::Hash(items)
        }
        crate::dump_stream::T_STREAM_1
        | crate::dump_stream::T_STREAM_2
        | crate::dump_stream::T_STREAM_3 => Value::Stream(crate::dump_stream::read(r, kind)?),
        T_SET_INTSET => Value::Set(intset(&r.string()?)?),
        T_SET_LISTPACK => Value::Set(listpack(&r.string()?)?),
        T_LIST_ZIPLIST => Value::List(ziplist(&r.string()?)?),
        T_ZSET_ZIPLIST => Value::ZSet(scored(ziplist(&r.string()?)?)?),
        T_HASH_ZIPLIST => Value::Hash(pairs(ziplist(&r.string()?)?)?),
        T_HASH_LISTPACK => Value::Hash(pairs(listpack(&r.string()?)?)?),
        T_ZSET_LISTPACK => Value::ZSet(scored(listpack(&r.string()?)?)?),
        T_LIST_QUICKLIST | T_LIST_QUICKLIST_2 => {
            let nodes = r.count()?;
            let mut items = Vec::new();
            for _ in 0..nodes {
                if kind == T_LIST_QUICKLIST {
                    items.extend(ziplist(&r.string()?)?);
                } else {
                    match r.len()? {
                        1 => items.push(r.string()?),
                        2 => items.extend(listpack(&r.string()?)?),
                        _ => return Err(bad()),
                    }
                }
            }
            Value::List(items)
        }
        other => {
            return Err(CmdError::err(format!(
                "Bad data format: RDB type {other} is not supported by quarry"
            )))
        }
    };
    Ok(v)
}

/// Checks the version and checksum; returns the type byte and value.
fn verify(payload: &[u8]) -> Result<&[u8], CmdError> {
    let wrong = || CmdError::err("DUMP payload version or checksum are wrong");
    if payload.len() < 11 {
        return Err(wrong());
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().map_err(|_| wrong())?);
    if version > RDB_VERSION_READ || crc64(&payload[..payload.len() - 8]) != crc {
        return Err(wrong());
    }
    Ok(body)
}

/// Replaces whatever `key` holds with a decoded value and its absolute expiry (0: none), in
/// one WriteBatch (inside MULTI or a script, in the transaction's): RESTORE and RDB LOAD.
pub(crate) fn replace_value(
    db: &Db,
    key: &[u8],
    value: Value,
    expire_at: u64,
) -> Result<(), CmdError> {
    let txn = (!quarry_types::txn::active()).then(quarry_types::txn::begin);
    let result = db
        .delete(&[key])
        .map_err(CmdError::from)
        .and_then(|_| store_value(db, key, value, expire_at));
    match txn {
        Some(txn) => {
            let overlay = txn.finish();
            result?;
            Ok(db.commit(overlay)?)
        }
        None => result,
    }
}

/// Writes a decoded value under `key` (which the caller emptied), with its absolute expiry
/// (0: none).
pub(crate) fn store_value(
    db: &Db,
    key: &[u8],
    value: Value,
    expire_at: u64,
) -> Result<(), CmdError> {
    match value {
        // A string that is a Redis HyperLogLog becomes one of quarry's, so that PFADD,
        // PFCOUNT and PFMERGE work on what MIGRATE or RESTORE brought from Redis.
        Value::String(v) => match quarry_types::redis_hll_registers(&v) {
            Some(registers) => db.hll_store(key, &registers)?,
            None => {
                db.set(key, &v, SetCondition::Always, Expiry::Clear, false)?;
            }
        },
        Value::List(items) => {
            if !items.is_empty() {
                db.push(key, End::Right, &items, false)?;
            }
        }
        Value::Set(items) => {
            db.sadd(key, &items)?;
        }
        Value::ZSet(items) => {
            let items: Vec<(f64, &[u8])> = items.iter().map(|(s, m)| (*s, &m[..])).collect();
            db.zadd(key, &items, ZAddFlags::default())?;
        }
        Value::Hash(items) => {
            db.hset(key, &items, false)?;
        }
        Value::Stream(s) => crate::dump_stream::store(db, key, s)?,
        Value::Bloom(info, size, filters) => {
            if !db.bf_load(key, &info, size, &filters)? {
                return Err(bad());
            }
        }
        Value::Json(text) => db.json_write(key, &text, 0)?,
        Value::TDigest(digest, observations) => db.td_store(key, &digest, observations)?,
    }
    if expire_at != 0 {
        db.expire_at(
            key,
            expire_at as i64,
            quarry_types::ExpireCondition::default(),
        )?;
    }
    Ok(())
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]
pub fn restore(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let key = &a[1];
    let ttl = parse_i64(&a[2])?;
    let (mut replace, mut absttl) = (false, false);
    let mut idle = None;
    let mut i = 4;
    while i < a.len() {
        if is(&a[i], "replace") {
            replace = true;
            i += 1;
        } else if is(&a[i], "absttl") {
            absttl = true;
            i += 1;
        } else if is(&a[i], "idletime") && i + 1 < a.len() {
            let secs = parse_i64(&a[i + 1])?;
            if secs < 0 {
                return Err(CmdError::err("Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(secs as u64);
            i += 2;
        } else if is(&a[i], "freq") && i + 1 < a.len() {
            let f = parse_i64(&a[i + 1])?;
            if !(0..=255).contains(&f) {
                return Err(CmdError::err("Invalid FREQ value, must be >= 0 and <= 255"));
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if ttl < 0 {
        return Err(CmdError::err("Invalid TTL value, must be >= 0"));
    }
    let db = ctx.db;
    let _guard = db.locks().lock(key);
    // As in Redis, an existing key is reported before the payload is looked at.
    if !replace && db.key_type(key)?.is_some() {
        return Err(CmdError::Other(
            "BUSYKEY Target key name already exists.".into(),
        ));
    }
    let body = verify(&a[3])?;
    let value = deserialize(body)?;
    let expire_at = match (ttl, absttl) {
        (0, _) => 0,
        (t, true) => t as u64,
        (t, false) => now_ms().saturating_add(t as u64),
    };
    if expire_at != 0 && expire_at <= now_ms() {
        // Already expired: the old value goes and nothing is created, as in Redis.
        db.delete(&[key])?;
    } else {
        replace_value(db, key, value, expire_at)?;
    }
    if let Some(secs) = idle {
        crate::access::set_idle(key, secs);
    }
    Ok(Frame::ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_is_redis_jones() {
        assert_eq!(crc64(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    /// `DUMP` of `SET foo bar` in Redis 7.0.
    #[test]
    fn a_redis_string_payload_verifies_and_decodes() {
        let p = payload(T_STRING, {
            let mut b = Vec::new();
            put_str(&mut b, b"bar");
            b
        });
        let body = verify(&p).unwrap();
        assert!(matches!(deserialize(body).unwrap(), Value::String(v) if v == b"bar"));
        let mut bad = p.clone();
        bad[2] ^= 1;
        assert!(verify(&bad).is_err());
    }

    #[test]
    fn listpack_and_ziplist_entries_decode() {
        // listpack: total bytes, count, "a" (6-bit str), 5 (7-bit uint), -1 (13-bit int), end.
        let lp = [
            12, 0, 0, 0, 3, 0, 0x81, b'a', 2, 0x05, 1, 0xdf, 0xff, 2, 0xff,
        ];
        assert_eq!(
            listpack(&lp).unwrap(),
            [b"a".to_vec(), b"5".to_vec(), b"-1".to_vec()]
        );
        // ziplist: header, "ab", 12 (4-bit immediate), end.
        let zl = [
            0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0x02, b'a', b'b', 4, 0xfd, 0xff,
        ];
        assert_eq!(ziplist(&zl).unwrap(), [b"ab".to_vec(), b"12".to_vec()]);
    }
}
