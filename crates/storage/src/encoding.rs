//! Kvrocks' on-disk encodings (kvrocks-compat.md §1.2–1.3): metadata keys, sub-keys, metadata
//! values and versions. This is the one place where these bytes are built and read; fixture tests
//! in `tests/kvrocks_fixtures.rs` pin them against bytes that Kvrocks 2.10.1 wrote.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::StorageError;

/// Kvrocks' default namespace, used for every key unless namespaces are configured.
pub const DEFAULT_NAMESPACE: &[u8] = b"__namespace";

/// Bit 7 of the metadata flags: expire and size are 64-bit (expire in milliseconds).
const FLAG_64BIT: u8 = 0x80;
const TYPE_MASK: u8 = 0x0f;

/// The stored type of a key (low 4 bits of the metadata flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RedisType {
    None = 0,
    String = 1,
    Hash = 2,
    List = 3,
    Set = 4,
    ZSet = 5,
    Bitmap = 6,
    SortedInt = 7,
    Stream = 8,
    Bloom = 9,
    Json = 10,
    HyperLogLog = 11,
    TDigest = 12,
}

impl RedisType {
    pub fn from_flags(flags: u8) -> Option<RedisType> {
        use RedisType::*;
        Some(match flags & TYPE_MASK {
            0 => None,
            1 => String,
            2 => Hash,
            3 => List,
            4 => Set,
            5 => ZSet,
            6 => Bitmap,
            7 => SortedInt,
            8 => Stream,
            9 => Bloom,
            10 => Json,
            11 => HyperLogLog,
            12 => TDigest,
            _ => return Option::None,
        })
    }

    /// The name TYPE reports, as Kvrocks names them.
    pub fn name(self) -> &'static str {
        use RedisType::*;
        match self {
            None => "none",
            String => "string",
            Hash => "hash",
            List => "list",
            Set => "set",
            ZSet => "zset",
            Bitmap => "bitmap",
            SortedInt => "sortedint",
            Stream => "stream",
            Bloom => "MBbloom--",
            Json => "ReJSON-RL",
            HyperLogLog => "hyperloglog",
            TDigest => "TDIS-TYPE",
        }
    }

    /// Single-KV types keep their whole value in the metadata record (no version, no size).
    pub fn is_single_kv(self) -> bool {
        matches!(self, RedisType::String | RedisType::Json)
    }

    /// The column families that hold this type's sub-keys (none for a single record).
    pub fn subkey_families(self) -> &'static [crate::ColumnFamily] {
        use crate::ColumnFamily as Cf;
        match self {
            k if k.is_single_kv() => &[],
            RedisType::ZSet => &[Cf::Default, Cf::ZSetScore],
            RedisType::Stream => &[Cf::Stream],
            _ => &[Cf::Default],
        }
    }

    /// Types that stay alive with size 0.
    pub fn is_emptyable(self) -> bool {
        matches!(
            self,
            RedisType::String
                | RedisType::Json
                | RedisType::Stream
                | RedisType::Bloom
                | RedisType::TDigest
                | RedisType::HyperLogLog
        )
    }
}

/// How keys are prefixed: the namespace, and whether the 2-byte slot follows it (cluster mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyCodec {
    namespace: Vec<u8>,
    slot_encoded: bool,
}

impl KeyCodec {
    pub fn new(namespace: &[u8], slot_encoded: bool) -> KeyCodec {
        assert!(
            namespace.len() <= u8::MAX as usize,
            "namespace longer than 255 bytes"
        );
        KeyCodec {
            namespace: namespace.to_vec(),
            slot_encoded,
        }
    }

    pub fn standalone() -> KeyCodec {
        KeyCodec::new(DEFAULT_NAMESPACE, false)
    }

    pub fn slot_encoded(&self) -> bool {
        self.slot_encoded
    }

    /// `ns_len | ns`: the prefix of every key of this namespace.
    pub fn namespace_prefix(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.namespace.len());
        out.push(self.namespace.len() as u8);
        out.extend_from_slice(&self.namespace);
        out
    }

    /// `[lower, upper)` of every key (metadata or sub-key) of the slots `from..=to`, in the
    /// cluster layout `ns_len | ns | slot | ...`: slots are below 16384, so `to + 1` always
    /// fits the two slot bytes.
    pub fn slot_range_bounds(&self, from: u16, to: u16) -> (Vec<u8>, Vec<u8>) {
        let mut lower = self.namespace_prefix();
        let mut upper = lower.clone();
        lower.extend_from_slice(&from.to_be_bytes());
        upper.extend_from_slice(&(to + 1).to_be_bytes());
        (lower, upper)
    }

    fn put_prefix(&self, out: &mut Vec<u8>, user_key: &[u8]) {
        out.push(self.namespace.len() as u8);
        out.extend_from_slice(&self.namespace);
        if self.slot_encoded {
            out.extend_from_slice(&crate::slot::key_slot(user_key).to_be_bytes());
        }
    }

    /// Key of the metadata record: `ns_len | ns | [slot] | user_key`.
    pub fn metadata_key(&self, user_key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.namespace.len() + user_key.len());
        self.put_prefix(&mut out, user_key);
        out.extend_from_slice(user_key);
        out
    }

    /// Recovers the user key from a metadata key of this namespace.
    pub fn user_key_of<'a>(&self, metadata_key: &'a [u8]) -> Option<&'a [u8]> {
        let skip = 1 + self.namespace.len() + if self.slot_encoded { 2 } else { 0 };
        let prefix = metadata_key.get(..1 + self.namespace.len())?;
        if prefix[0] as usize != self.namespace.len() || prefix[1..] != self.namespace[..] {
            return None;
        }
        metadata_key.get(skip..)
    }

    /// Prefix of all sub-keys of one version of a key:
    /// `ns_len | ns | [slot] | key_len:u32 | user_key | version:u64`.
    pub fn subkey_prefix(&self, user_key: &[u8], version: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.namespace.len() + user_key.len());
        self.put_prefix(&mut out, user_key);
        out.extend_from_slice(&(user_key.len() as u32).to_be_bytes());
        out.extend_from_slice(user_key);
        out.extend_from_slice(&version.to_be_bytes());
        out
    }

    pub fn subkey(&self, user_key: &[u8], version: u64, sub: &[u8]) -> Vec<u8> {
        let mut out = self.subkey_prefix(user_key, version);
        out.extend_from_slice(sub);
        out
    }
}

/// The user key inside an internal key `ns_len | ns | [slot] | ...`: a metadata key holds it
/// whole after that head; a sub-key holds its length (u32 BE) first.
pub fn user_key_in(internal_key: &[u8], metadata: bool, slot_encoded: bool) -> Option<&[u8]> {
    let head = 1 + *internal_key.first()? as usize + if slot_encoded { 2 } else { 0 };
    let rest = internal_key.get(head..)?;
    if metadata {
        return Some(rest);
    }
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    rest.get(4..4 + len)
}

/// The smallest byte string greater than every string that starts with `prefix` (an iterator's
/// upper bound for a prefix), or None if there is none (all 0xff).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A decoded metadata record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub kind: RedisType,
    /// Absolute expiry in Unix milliseconds; 0 means no TTL.
    pub expire_ms: u64,
    /// Version of the sub-keys (0 for single-KV types).
    pub version: u64,
    /// Number of elements (0 for single-KV types).
    pub size: u64,
    /// For single-KV types the value; for others the type-specific extras after `size`.
    pub payload: Vec<u8>,
}

impl Metadata {
    /// A string record.
    pub fn string(value: &[u8], expire_ms: u64) -> Metadata {
        Metadata {
            kind: RedisType::String,
            expire_ms,
            version: 0,
            size: 0,
            payload: value.to_vec(),
        }
    }

    /// A fresh record of a complex type, with a new version.
    pub fn new_complex(kind: RedisType) -> Metadata {
        Metadata {
            kind,
            expire_ms: 0,
            version: next_version(),
            size: 0,
            payload: Vec::new(),
        }
    }

    /// Encodes in the 64-bit format, as Kvrocks 2.10 writes it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25 + self.payload.len());
        Self::encode_string_header(self.kind, self.expire_ms, &mut out);
        if !self.kind.is_single_kv() {
            out.extend_from_slice(&self.version.to_be_bytes());
            out.extend_from_slice(&self.size.to_be_bytes());
        }
        out.extend_from_slice(&self.payload);
        out
    }

    fn encode_string_header(kind: RedisType, expire_ms: u64, out: &mut Vec<u8>) {
        out.push(FLAG_64BIT | kind as u8);
        out.extend_from_slice(&expire_ms.to_be_bytes());
    }

    /// Encodes a string record without building a `Metadata` first (the SET hot path).
    pub fn encode_string(value: &[u8], expire_ms: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(9 + value.len());
        Self::encode_string_header(RedisType::String, expire_ms, &mut out);
        out.extend_from_slice(value);
        out
    }

    /// Decodes either encoding: 64-bit (flag bit 7) or the legacy 32-bit one (expire in seconds).
    pub fn decode(bytes: &[u8]) -> Result<Metadata, StorageError> {
        let corrupt = |what: &str| StorageError::Corrupt(format!("metadata {what}"));
        let (&flags, rest) = bytes.split_first().ok_or_else(|| corrupt("is empty"))?;
        let kind = RedisType::from_flags(flags).ok_or_else(|| corrupt("has an unknown type"))?;
        let wide = flags & FLAG_64BIT != 0;
        let (expire_ms, rest) = if wide {
            let (e, rest) = take_u64(rest).ok_or_else(|| corrupt("is truncated"))?;
            (e, rest)
        } else {
            let (e, rest) = take_u32(rest).ok_or_else(|| corrupt("is truncated"))?;
            (e as u64 * 1000, rest)
        };
        if kind.is_single_kv() {
            return Ok(Metadata {
                kind,
                expire_ms,
                version: 0,
                size: 0,
                payload: rest.to_vec(),
            });
        }
        let (version, rest) = take_u64(rest).ok_or_else(|| corrupt("is truncated"))?;
        let (size, rest) = if wide {
            take_u64(rest).ok_or_else(|| corrupt("is truncated"))?
        } else {
            let (s, rest) = take_u32(rest).ok_or_else(|| corrupt("is truncated"))?;
            (s as u64, rest)
        };
        Ok(Metadata {
            kind,
            expire_ms,
            version,
            size,
            payload: rest.to_vec(),
        })
    }

    /// Kvrocks' `ExpireAt`: dead if expired, or if a non-emptyable type has no elements.
    pub fn is_dead(&self, now_ms: u64) -> bool {
        (self.expire_ms != 0 && self.expire_ms < now_ms)
            || (!self.kind.is_emptyable() && self.size == 0)
    }
}

/// Reads just the type and expiry of a metadata record without copying the value.
pub fn peek_type_and_expire(bytes: &[u8]) -> Option<(RedisType, u64, bool)> {
    let (&flags, rest) = bytes.split_first()?;
    let kind = RedisType::from_flags(flags)?;
    let expire = if flags & FLAG_64BIT != 0 {
        take_u64(rest)?.0
    } else {
        take_u32(rest)?.0 as u64 * 1000
    };
    Some((kind, expire, flags & FLAG_64BIT != 0))
}

/// Offset of a string's value inside its metadata record.
pub fn string_value_offset(bytes: &[u8]) -> usize {
    match bytes.first() {
        Some(f) if f & FLAG_64BIT != 0 => 9,
        _ => 5,
    }
}

fn take_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let head = b.get(..8)?;
    Some((u64::from_be_bytes(head.try_into().ok()?), &b[8..]))
}

fn take_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let head = b.get(..4)?;
    Some((u32::from_be_bytes(head.try_into().ok()?), &b[4..]))
}

/// Current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

const VERSION_COUNTER_BITS: u32 = 11;

fn version_counter() -> &'static AtomicU64 {
    static COUNTER: OnceLock<AtomicU64> = OnceLock::new();
    // Seeded randomly so that a promoted replica whose clock stepped back still makes versions
    // that differ from the ones its old master made in the same microsecond.
    COUNTER.get_or_init(|| AtomicU64::new(rand::random::<u64>() % (1 << VERSION_COUNTER_BITS)))
}

/// A new sub-key version, as Kvrocks makes them: `(µs clock << 11) + (counter mod 2048)`.
pub fn next_version() -> u64 {
    let counter = version_counter().fetch_add(1, Ordering::Relaxed) % (1 << VERSION_COUNTER_BITS);
    (now_us() << VERSION_COUNTER_BITS) + counter
}

/// Encodes a double so that byte order equals numeric order (zset scores).
pub fn encode_ordered_double(d: f64) -> [u8; 8] {
    let bits = d.to_bits();
    let mapped = if bits & (1 << 63) != 0 {
        !bits
    } else {
        bits | (1 << 63)
    };
    mapped.to_be_bytes()
}

pub fn decode_ordered_double(b: [u8; 8]) -> f64 {
    let mapped = u64::from_be_bytes(b);
    let bits = if mapped & (1 << 63) != 0 {
        mapped & !(1 << 63)
    } else {
        !mapped
    };
    f64::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_key_layout() {
        let codec = KeyCodec::standalone();
        assert_eq!(codec.metadata_key(b"str"), b"\x0b__namespacestr");
        let cluster = KeyCodec::new(DEFAULT_NAMESPACE, true);
        // slot("str") = 0x0d73? Check against crc16 directly.
        let slot = crate::slot::key_slot(b"str").to_be_bytes();
        let mut want = b"\x0b__namespace".to_vec();
        want.extend_from_slice(&slot);
        want.extend_from_slice(b"str");
        assert_eq!(cluster.metadata_key(b"str"), want);
        assert_eq!(cluster.user_key_of(&want), Some(&b"str"[..]));
    }

    #[test]
    fn legacy_metadata_decodes_seconds() {
        // flags 0x02 (hash, legacy) | expire u32 10s | version | size u32 3
        let mut b = vec![0x02];
        b.extend_from_slice(&10u32.to_be_bytes());
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&3u32.to_be_bytes());
        let m = Metadata::decode(&b).unwrap();
        assert_eq!(
            (m.kind, m.expire_ms, m.version, m.size),
            (RedisType::Hash, 10_000, 7, 3)
        );
    }

    #[test]
    fn ordered_double_preserves_order() {
        let values = [
            f64::NEG_INFINITY,
            -2.0,
            -0.5,
            0.0,
            1.5,
            1e300,
            f64::INFINITY,
        ];
        for w in values.windows(2) {
            assert!(encode_ordered_double(w[0]) < encode_ordered_double(w[1]));
        }
        for v in values {
            assert_eq!(decode_ordered_double(encode_ordered_double(v)), v);
        }
        assert_eq!(encode_ordered_double(1.5), [0xbf, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            encode_ordered_double(-2.0),
            [0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn versions_are_distinct_and_time_based() {
        let a = next_version();
        let b = next_version();
        assert_ne!(a, b);
        let us = a >> VERSION_COUNTER_BITS;
        assert!(us.abs_diff(now_us()) < 10_000_000);
    }
}
