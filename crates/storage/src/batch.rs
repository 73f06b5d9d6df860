//! Decoder of RocksDB's WriteBatch wire format, written in Rust because the crate's own
//! `iterate` silently drops records (rust-rocksdb-notes.md, trap 3).
//!
//! Format: 12-byte header (sequence u64 LE, count u32 LE), then records. Each record is a tag
//! byte, a varint32 column-family id for the `CF` variants, and varint32-prefixed byte strings.
//! LogData records carry no sequence; every other record takes one.

use crate::StorageError;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchRecord<'a> {
    Put {
        cf: u32,
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        cf: u32,
        key: &'a [u8],
    },
    SingleDelete {
        cf: u32,
        key: &'a [u8],
    },
    DeleteRange {
        cf: u32,
        begin: &'a [u8],
        end: &'a [u8],
    },
    Merge {
        cf: u32,
        key: &'a [u8],
        value: &'a [u8],
    },
    LogData(&'a [u8]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedBatch<'a> {
    pub sequence: u64,
    pub count: u32,
    pub records: Vec<BatchRecord<'a>>,
}

fn varint32(buf: &[u8], pos: &mut usize) -> Option<u32> {
    let mut result: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        result |= ((b & 0x7f) as u32) << shift;
        if b & 0x80 == 0 {
            return Some(result);
        }
    }
    None
}

fn slice<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = varint32(buf, pos)? as usize;
    let s = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(s)
}

/// Decodes a whole batch. Fails on truncation, unknown tags, or a record count that does not
/// match the header, so that nothing inside a batch can be skipped unnoticed.
pub fn decode(data: &[u8]) -> Result<DecodedBatch<'_>, StorageError> {
    let bad = |why: &str| StorageError::Corrupt(format!("write batch: {why}"));
    if data.len() < 12 {
        return Err(bad("shorter than its header"));
    }
    let sequence = u64::from_le_bytes(data[0..8].try_into().map_err(|_| bad("header"))?);
    let count = u32::from_le_bytes(data[8..12].try_into().map_err(|_| bad("header"))?);
    let mut pos = 12;
    let mut records = Vec::new();
    let mut counted = 0u32;
    while pos < data.len() {
        let tag = data[pos];
        pos += 1;
        let truncated = || bad("truncated record");
        let rec = match tag {
            0x01 | 0x05 | 0x02 | 0x06 => {
                let cf = if tag & 0x04 != 0 {
                    varint32(data, &mut pos).ok_or_else(truncated)?
                } else {
                    0
                };
                let key = slice(data, &mut pos).ok_or_else(truncated)?;
                let value = slice(data, &mut pos).ok_or_else(truncated)?;
                if tag == 0x01 || tag == 0x05 {
                    BatchRecord::Put { cf, key, value }
                } else {
                    BatchRecord::Merge { cf, key, value }
                }
            }
            0x00 | 0x04 => {
                let cf = if tag == 0x04 {
                    varint32(data, &mut pos).ok_or_else(truncated)?
                } else {
                    0
                };
                BatchRecord::Delete {
                    cf,
                    key: slice(data, &mut pos).ok_or_else(truncated)?,
                }
            }
            0x07 | 0x08 => {
                let cf = if tag == 0x08 {
                    varint32(data, &mut pos).ok_or_else(truncated)?
                } else {
                    0
                };
                BatchRecord::SingleDelete {
                    cf,
                    key: slice(data, &mut pos).ok_or_else(truncated)?,
                }
            }
            0x0F | 0x0E => {
                let cf = if tag == 0x0E {
                    varint32(data, &mut pos).ok_or_else(truncated)?
                } else {
                    0
                };
                let begin = slice(data, &mut pos).ok_or_else(truncated)?;
                let end = slice(data, &mut pos).ok_or_else(truncated)?;
                BatchRecord::DeleteRange { cf, begin, end }
            }
            0x03 => BatchRecord::LogData(slice(data, &mut pos).ok_or_else(truncated)?),
            other => return Err(bad(&format!("unsupported record tag 0x{other:02x}"))),
        };
        if !matches!(rec, BatchRecord::LogData(_)) {
            counted += 1;
        }
        records.push(rec);
    }
    if counted != count {
        return Err(bad(&format!(
            "header counts {count} records, found {counted}"
        )));
    }
    Ok(DecodedBatch {
        sequence,
        count,
        records,
    })
}

/// A copy of `data` with the last byte of one value changed: the first Put of a sub-key
/// (default column family) or of a string's metadata record with a value. Record count and
/// sequence stay as they were, so nothing in the stream's own checks notices. Only the
/// divergence failpoint of verification tests uses it (docs/replication.md). None if the
/// batch has no such value.
pub fn alter_one_value(data: &[u8]) -> Option<Vec<u8>> {
    let decoded = decode(data).ok()?;
    let target = decoded.records.iter().find_map(|r| match r {
        BatchRecord::Put { cf: 0, value, .. } if !value.is_empty() => Some(*value),
        BatchRecord::Put { cf: 1, value, .. }
            if value.len() > crate::encoding::string_value_offset(value)
                && crate::encoding::peek_type_and_expire(value)
                    .is_some_and(|(t, _, _)| t == crate::encoding::RedisType::String) =>
        {
            Some(*value)
        }
        _ => None,
    })?;
    let offset = target.as_ptr() as usize - data.as_ptr() as usize + target.len() - 1;
    let mut out = data.to_vec();
    out[offset] ^= 0x01;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_kvrocks_set_batch() {
        // SET str hello, as Kvrocks 2.10.1 wrote it (standalone fixture, first batch).
        let data = hex_decode(
            "01000000000000000100000003013105010F0B5F5F6E616D6573706163657374720E81000000000000000068656C6C6F",
        );
        let b = decode(&data).unwrap();
        assert_eq!((b.sequence, b.count), (1, 1));
        assert_eq!(b.records[0], BatchRecord::LogData(b"1"));
        let BatchRecord::Put { cf, key, value } = &b.records[1] else {
            panic!("not a put")
        };
        assert_eq!(*cf, 1);
        assert_eq!(*key, b"\x0b__namespacestr");
        assert_eq!(&value[9..], b"hello");
    }

    #[test]
    fn truncated_or_miscounted_batches_are_errors() {
        let data = hex_decode("010000000000000002000000050103616263");
        assert!(decode(&data).is_err());
        let data = hex_decode("0100000000000000020000000501016b0176");
        assert!(decode(&data)
            .unwrap_err()
            .to_string()
            .contains("header counts 2"));
    }

    #[test]
    fn one_value_altered_keeps_the_record_count() {
        // SET str hello (Kvrocks 2.10.1 fixture): the string value's last byte changes.
        let data = hex_decode(
            "01000000000000000100000003013105010F0B5F5F6E616D6573706163657374720E81000000000000000068656C6C6F",
        );
        let altered = alter_one_value(&data).unwrap();
        let b = decode(&altered).unwrap();
        assert_eq!((b.sequence, b.count), (1, 1));
        let BatchRecord::Put { value, .. } = &b.records[1] else {
            panic!("not a put")
        };
        assert_eq!(&value[9..], b"helln");
        // A batch of LogData only has nothing to alter.
        assert_eq!(
            alter_one_value(&hex_decode("010000000000000000000000030131")),
            None
        );
    }

    fn hex_decode(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}

/// Builds a raw WriteBatch in RocksDB's format by column-family id, for batches made away from
/// an engine (slot migration sends them with APPLYBATCH).
#[derive(Default, Clone, Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
}

fn put_varint32(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_slice(out: &mut Vec<u8>, s: &[u8]) {
    put_varint32(out, s.len() as u32);
    out.extend_from_slice(s);
}

impl BatchBuilder {
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            buf: vec![0; 12],
            count: 0,
        }
    }

    /// Starts a record: RocksDB's tag for the default column family, or the other tag and the
    /// column family's id.
    fn begin_record(&mut self, default_tag: u8, cf_tag: u8, cf: u32) {
        if self.buf.is_empty() {
            self.buf.resize(12, 0);
        }
        if cf == 0 {
            self.buf.push(default_tag);
        } else {
            self.buf.push(cf_tag);
            put_varint32(&mut self.buf, cf);
        }
        self.count += 1;
    }

    pub fn put(&mut self, cf: u32, key: &[u8], value: &[u8]) {
        self.begin_record(0x01, 0x05, cf);
        put_slice(&mut self.buf, key);
        put_slice(&mut self.buf, value);
    }

    pub fn delete(&mut self, cf: u32, key: &[u8]) {
        self.begin_record(0x00, 0x04, cf);
        put_slice(&mut self.buf, key);
    }

    /// Deletes every key of `cf` in `[begin, end)`.
    pub fn delete_range(&mut self, cf: u32, begin: &[u8], end: &[u8]) {
        self.begin_record(0x0F, 0x0E, cf);
        put_slice(&mut self.buf, begin);
        put_slice(&mut self.buf, end);
    }

    /// Records (not LogData) in the batch.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The raw batch (sequence 0; the engine that applies it assigns sequences).
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        if out.len() < 12 {
            out.resize(12, 0);
        }
        out[8..12].copy_from_slice(&self.count.to_le_bytes());
        self.count = 0;
        out
    }
}

#[cfg(test)]
mod builder_tests {
    use super::*;

    #[test]
    fn built_batches_decode_back() {
        let mut b = BatchBuilder::new();
        b.put(0, b"k", b"v");
        b.put(5, b"s", b"x");
        b.delete(1, b"m");
        let raw = b.finish();
        let d = decode(&raw).unwrap();
        assert_eq!(d.count, 3);
        assert_eq!(
            d.records,
            vec![
                BatchRecord::Put {
                    cf: 0,
                    key: b"k",
                    value: b"v"
                },
                BatchRecord::Put {
                    cf: 5,
                    key: b"s",
                    value: b"x"
                },
                BatchRecord::Delete { cf: 1, key: b"m" },
            ]
        );
        assert!(b.is_empty());
    }
}
