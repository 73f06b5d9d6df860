//! The string type: the value lives in the metadata record itself (`flags | expire | bytes`).

use quarry_storage::encoding::{
    now_ms, peek_type_and_expire, string_value_offset, Metadata, RedisType,
};
use quarry_storage::{ColumnFamily, WriteBatch};

use crate::db::Db;
use crate::{Result, TypeError};

/// Largest string value, as Redis's default `proto-max-bulk-len`.
pub const MAX_STRING_LEN: usize = 512 * 1024 * 1024;

/// Kvrocks prefixes each string write with this WAL marker (its `kRedisString`).
const LOG_DATA_STRING: &[u8] = b"1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetCondition {
    Always,
    /// Only if the key does not exist.
    Nx,
    /// Only if the key exists.
    Xx,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No TTL (a plain SET clears an existing one).
    Clear,
    /// KEEPTTL.
    Keep,
    /// Absolute Unix milliseconds.
    At(u64),
}

#[derive(Debug, PartialEq, Eq)]
pub struct SetOutcome {
    pub written: bool,
    /// The previous string value, when the caller asked for it (SET ... GET).
    pub old: Option<Vec<u8>>,
}

impl Db {
    /// Reads a live string: its value and expiry. WRONGTYPE for a live key of another type.
    pub fn get_string(&self, key: &[u8]) -> Result<Option<(Vec<u8>, u64)>> {
        let mkey = self.codec.metadata_key(key);
        let Some(raw) = self.get_cf(ColumnFamily::Metadata, &mkey)? else {
            return Ok(None);
        };
        let (kind, expire, _) = peek_type_and_expire(&raw)
            .ok_or_else(|| quarry_storage::StorageError::Corrupt("metadata".into()))?;
        if expire != 0 && expire < now_ms() {
            return Ok(None);
        }
        if kind != RedisType::String {
            // A collection with no elements reads as missing.
            let meta = Metadata::decode(&raw)?;
            if meta.is_dead(now_ms()) {
                return Ok(None);
            }
            return Err(TypeError::WrongType);
        }
        Ok(Some((raw[string_value_offset(&raw)..].to_vec(), expire)))
    }

    /// GET: a string's value, or a Kvrocks bitmap as the string it stands for.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.get_string(key) {
            Err(TypeError::WrongType) => self.bitmap_as_string(key),
            other => Ok(other?.map(|(v, _)| v)),
        }
    }

    fn put_string(&self, batch: &mut WriteBatch, key: &[u8], value: &[u8], expire_ms: u64) {
        batch.put_cf(
            self.metadata_cf(),
            self.codec.metadata_key(key),
            Metadata::encode_string(value, expire_ms),
        );
    }

    fn string_batch() -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put_log_data(LOG_DATA_STRING);
        batch
    }

    /// Writes one string under the key lock the caller holds.
    fn store_string(&self, key: &[u8], value: &[u8], expire_ms: u64) -> Result<()> {
        let mut batch = Self::string_batch();
        self.put_string(&mut batch, key, value, expire_ms);
        self.write(batch)
    }

    /// SET with all its options.
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        cond: SetCondition,
        expiry: Expiry,
        get: bool,
    ) -> Result<SetOutcome> {
        let _guard = self.locks.lock(key);
        // The common case (plain SET, or SET EX) needs no read at all.
        if cond == SetCondition::Always && !get && expiry != Expiry::Keep {
            let at = if let Expiry::At(ms) = expiry { ms } else { 0 };
            self.store_string(key, value, at)?;
            return Ok(SetOutcome {
                written: true,
                old: None,
            });
        }
        let (exists, old, old_expire) = if get {
            match self.get_string(key)? {
                Some((v, e)) => (true, Some(v), e),
                None => (false, None, 0),
            }
        } else {
            match self.peek_live(key)? {
                Some((_, expire)) => (true, None, expire),
                None => (false, None, 0),
            }
        };
        let allowed = match cond {
            SetCondition::Always => true,
            SetCondition::Nx => !exists,
            SetCondition::Xx => exists,
        };
        if !allowed {
            return Ok(SetOutcome {
                written: false,
                old,
            });
        }
        let at = match expiry {
            Expiry::Clear => 0,
            Expiry::Keep => old_expire,
            Expiry::At(ms) => ms,
        };
        self.store_string(key, value, at)?;
        Ok(SetOutcome { written: true, old })
    }

    /// Read-modify-write of one string under its key lock. `f` gets the current value (None if
    /// missing) and returns the new value, or None to write nothing. The TTL is kept.
    fn update_string<T>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> Result<(Option<Vec<u8>>, T)>,
    ) -> Result<T> {
        let _guard = self.locks.lock(key);
        let current = self.get_string(key)?;
        let (new, out) = f(current.as_ref().map(|(v, _)| v.as_slice()))?;
        if let Some(new) = new {
            if new.len() > MAX_STRING_LEN {
                return Err(TypeError::TooBig);
            }
            self.store_string(key, &new, current.map(|(_, e)| e).unwrap_or(0))?;
        }
        Ok(out)
    }

    /// INCRBY / DECRBY / INCR / DECR.
    pub fn incr_by(&self, key: &[u8], delta: i64) -> Result<i64> {
        self.update_string(key, |cur| {
            let n = match cur {
                None => 0,
                Some(v) => parse_i64_strict(v).ok_or(TypeError::NotInteger)?,
            };
            let r = n.checked_add(delta).ok_or(TypeError::Overflow)?;
            Ok((Some(r.to_string().into_bytes()), r))
        })
    }

    /// INCRBYFLOAT: `delta` is the increment as the client wrote it (already checked to be a
    /// finite float). Returns the new value as stored.
    pub fn incr_by_float(&self, key: &[u8], delta: &[u8]) -> Result<Vec<u8>> {
        self.update_string(key, |cur| {
            let current = match cur {
                None => &b"0"[..],
                Some(v) => {
                    parse_f64_strict(v).ok_or(TypeError::NotFloat)?;
                    v
                }
            };
            let text = crate::float_sum::incr_float(current, delta)
                .ok_or(TypeError::NanOrInfinity)?
                .into_bytes();
            Ok((Some(text.clone()), text))
        })
    }

    /// APPEND: returns the new length.
    pub fn append(&self, key: &[u8], tail: &[u8]) -> Result<usize> {
        self.update_string(key, |cur| {
            let mut v = cur.map(|c| c.to_vec()).unwrap_or_default();
            if v.len() + tail.len() > MAX_STRING_LEN {
                return Err(TypeError::TooBig);
            }
            v.extend_from_slice(tail);
            let len = v.len();
            Ok((Some(v), len))
        })
    }

    /// SETRANGE: returns the new length. An empty `patch` never creates the key.
    pub fn set_range(&self, key: &[u8], offset: usize, patch: &[u8]) -> Result<usize> {
        self.update_string(key, |cur| {
            let cur_len = cur.map_or(0, |c| c.len());
            if patch.is_empty() {
                return Ok((None, cur_len));
            }
            if offset + patch.len() > MAX_STRING_LEN {
                return Err(TypeError::TooBig);
            }
            let mut v = cur.map(|c| c.to_vec()).unwrap_or_default();
            if v.len() < offset + patch.len() {
                v.resize(offset + patch.len(), 0);
            }
            v[offset..offset + patch.len()].copy_from_slice(patch);
            let len = v.len();
            Ok((Some(v), len))
        })
    }

    /// GETDEL.
    pub fn get_del(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let _guard = self.locks.lock(key);
        let cur = self.get(key)?;
        if cur.is_some() {
            let mut batch = Self::string_batch();
            batch.delete_cf(self.metadata_cf(), self.codec.metadata_key(key));
            self.write(batch)?;
        }
        Ok(cur)
    }

    /// GETEX: returns the value and, if `expiry` is given, changes the TTL (a time in the past
    /// deletes the key, as in Redis).
    pub fn get_ex(&self, key: &[u8], expiry: Option<Expiry>) -> Result<Option<Vec<u8>>> {
        let _guard = self.locks.lock(key);
        let Some((value, old_expire)) = self.get_string(key)? else {
            return Ok(None);
        };
        let new_expire = match expiry {
            None | Some(Expiry::Keep) => return Ok(Some(value)),
            Some(Expiry::Clear) => 0,
            Some(Expiry::At(ms)) => ms,
        };
        if new_expire != 0 && new_expire <= now_ms() {
            let mut batch = Self::string_batch();
            batch.delete_cf(self.metadata_cf(), self.codec.metadata_key(key));
            self.write(batch)?;
        } else if new_expire != old_expire {
            self.store_string(key, &value, new_expire)?;
        }
        Ok(Some(value))
    }

    /// MGET: a value per key; None for missing keys and keys of other types.
    pub fn mget<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>> {
        let mkeys: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| self.codec.metadata_key(k.as_ref()))
            .collect();
        let now = now_ms();
        let results = self.multi_get_cf(ColumnFamily::Metadata, &mkeys)?;
        let mut out = Vec::with_capacity(keys.len());
        for r in results {
            let value = match r {
                Some(raw) => match peek_type_and_expire(&raw) {
                    Some((RedisType::String, e, _)) if e == 0 || e >= now => {
                        Some(raw[string_value_offset(&raw)..].to_vec())
                    }
                    _ => None,
                },
                None => None,
            };
            out.push(value);
        }
        Ok(out)
    }

    /// MSET / MSETNX: all pairs in one batch. With `nx`, nothing is written if any key exists.
    pub fn mset<K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, pairs: &[(K, V)], nx: bool) -> Result<bool> {
        let keys: Vec<&[u8]> = pairs.iter().map(|(k, _)| k.as_ref()).collect();
        let _guard = self.locks.lock_many(&keys);
        if nx {
            for k in &keys {
                if self.peek_live(k)?.is_some() {
                    return Ok(false);
                }
            }
        }
        let mut batch = Self::string_batch();
        for (k, v) in pairs {
            self.put_string(&mut batch, k.as_ref(), v.as_ref(), 0);
        }
        self.write(batch)?;
        Ok(true)
    }

    /// CAS (Kvrocks): sets `new` if the value equals `old`. Returns 1 on success, 0 if the value
    /// differs, -1 if the key is missing.
    pub fn cas(&self, key: &[u8], old: &[u8], new: &[u8], expire_ms: u64) -> Result<i64> {
        let _guard = self.locks.lock(key);
        match self.get_string(key)? {
            None => Ok(-1),
            Some((v, _)) if v != old => Ok(0),
            Some(_) => {
                self.store_string(key, new, expire_ms)?;
                Ok(1)
            }
        }
    }

    /// CAD (Kvrocks): deletes the key if its value equals `value`. 1, 0 or -1 as CAS.
    pub fn cad(&self, key: &[u8], value: &[u8]) -> Result<i64> {
        let _guard = self.locks.lock(key);
        match self.get_string(key)? {
            None => Ok(-1),
            Some((v, _)) if v != value => Ok(0),
            Some(_) => {
                let mut batch = Self::string_batch();
                batch.delete_cf(self.metadata_cf(), self.codec.metadata_key(key));
                self.write(batch)?;
                Ok(1)
            }
        }
    }
}

/// Parses an integer as Redis's `string2ll`: optional `-`, digits, no spaces, no `+`, no
/// leading zeros, within i64.
pub fn parse_i64_strict(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' {
        (true, &b[1..])
    } else {
        (false, b)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((-(v as i128)) as i64)
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a float as Redis's `string2ld`: the whole text, no spaces, not NaN.
pub fn parse_f64_strict(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty()
        || s.starts_with(|c: char| c.is_whitespace())
        || s.ends_with(|c: char| c.is_whitespace())
    {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v: f64 = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if lower.contains("inf")
                || lower.contains("nan")
                || s.starts_with('+') && s[1..].starts_with(['+', '-'])
            {
                return None;
            }
            s.parse().ok()?
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_i64_strict(b"123"), Some(123));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_strict(b"9223372036854775808"), None);
        assert_eq!(parse_i64_strict(b" 1"), None);
        assert_eq!(parse_i64_strict(b"+1"), None);
        assert_eq!(parse_i64_strict(b"01"), None);
        assert_eq!(parse_i64_strict(b"-0"), None);
        assert_eq!(parse_i64_strict(b""), None);
    }

    #[test]
    fn floats_parse_like_redis() {
        assert_eq!(parse_f64_strict(b"1.5"), Some(1.5));
        assert_eq!(parse_f64_strict(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64_strict(b" 1"), None);
        assert_eq!(parse_f64_strict(b"nan"), None);
        assert_eq!(parse_f64_strict(b"abc"), None);
    }
}
