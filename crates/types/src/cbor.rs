//! CBOR (RFC 8949) for JSON documents, as Kvrocks stores them with `json-storage-format cbor`
//! (jsoncons' encoder): definite lengths, integers in their shortest form, and a double as a
//! single-precision float when that holds it exactly. Reading takes any well-formed CBOR that
//! maps to JSON: indefinite lengths, half-precision floats, and tags (whose content is read).

use serde_json::{Map, Number, Value};

/// Encodes a JSON value as jsoncons does.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put(value, &mut out);
    out
}

fn head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn put(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                head(0, u, out);
            } else if let Some(i) = n.as_i64() {
                // i < 0 here: CBOR stores -1 - i.
                head(1, !(i as u64), out);
            } else {
                let d = n.as_f64().unwrap_or(0.0);
                let f = d as f32;
                if f as f64 == d {
                    out.push(0xfa);
                    out.extend_from_slice(&f.to_be_bytes());
                } else {
                    out.push(0xfb);
                    out.extend_from_slice(&d.to_be_bytes());
                }
            }
        }
        Value::String(s) => {
            head(3, s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            head(4, items.len() as u64, out);
            for v in items {
                put(v, out);
            }
        }
        Value::Object(map) => {
            head(5, map.len() as u64, out);
            for (k, v) in map {
                head(3, k.len() as u64, out);
                out.extend_from_slice(k.as_bytes());
                put(v, out);
            }
        }
    }
}

/// Decodes one CBOR item that makes up the whole of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader { bytes, at: 0 };
    let v = r.item(0)?;
    if r.at != bytes.len() {
        return Err("trailing bytes after the CBOR document".into());
    }
    Ok(v)
}

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 1024;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// What an initial byte announces: a major type and its argument, or an indefinite length.
enum Arg {
    Value(u64),
    Indefinite,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("truncated CBOR document")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn arg(&mut self, info: u8) -> Result<Arg, String> {
        Ok(Arg::Value(match info {
            0..=23 => info as u64,
            24 => self.byte()? as u64,
            25 => u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as u64,
            26 => u32::from_be_bytes(self.take(4)?.try_into().unwrap()) as u64,
            27 => u64::from_be_bytes(self.take(8)?.try_into().unwrap()),
            31 => return Ok(Arg::Indefinite),
            _ => return Err(format!("reserved CBOR additional information {info}")),
        }))
    }

    /// Whether the next byte is the "break" that ends an indefinite-length item (consumed).
    fn at_break(&mut self) -> Result<bool, String> {
        match self.bytes.get(self.at) {
            Some(0xff) => {
                self.at += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err("truncated CBOR document".into()),
        }
    }

    fn text(&mut self, arg: Arg) -> Result<String, String> {
        let raw = match arg {
            Arg::Value(n) => self
                .take(usize::try_from(n).map_err(|_| "CBOR string too long")?)?
                .to_vec(),
            Arg::Indefinite => {
                let mut all = Vec::new();
                while !self.at_break()? {
                    let ib = self.byte()?;
                    if ib >> 5 != 3 {
                        return Err("a chunk of a CBOR text string is not text".into());
                    }
                    match self.arg(ib & 0x1f)? {
                        Arg::Value(n) => all.extend_from_slice(
                            self.take(usize::try_from(n).map_err(|_| "CBOR string too long")?)?,
                        ),
                        Arg::Indefinite => return Err("nested indefinite CBOR string".into()),
                    }
                }
                all
            }
        };
        String::from_utf8(raw).map_err(|_| "CBOR text string is not UTF-8".into())
    }

    fn item(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("CBOR document nested too deeply".into());
        }
        let ib = self.byte()?;
        let (major, info) = (ib >> 5, ib & 0x1f);
        if major == 7 {
            return self.simple(info);
        }
        let arg = self.arg(info)?;
        match (major, arg) {
            (0, Arg::Value(n)) => Ok(Value::Number(n.into())),
            (1, Arg::Value(n)) => Ok(match i64::try_from(n) {
                Ok(i) => Value::Number((-1 - i).into()),
                // Below i64::MIN: JSON numbers beyond 64 bits are doubles.
                Err(_) => number(-1.0 - n as f64),
            }),
            (2, _) => Err("CBOR byte strings have no JSON form".into()),
            (3, arg) => Ok(Value::String(self.text(arg)?)),
            (4, arg) => {
                let mut items = Vec::new();
                match arg {
                    Arg::Value(n) => {
                        for _ in 0..n {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    Arg::Indefinite => {
                        while !self.at_break()? {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                }
                Ok(Value::Array(items))
            }
            (5, arg) => {
                let mut map = Map::new();
                let mut entry = |r: &mut Self| -> Result<(), String> {
                    let key = match r.item(depth + 1)? {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    let value = r.item(depth + 1)?;
                    map.insert(key, value);
                    Ok(())
                };
                match arg {
                    Arg::Value(n) => {
                        for _ in 0..n {
                            entry(self)?;
                        }
                    }
                    Arg::Indefinite => {
                        while !self.at_break()? {
                            entry(self)?;
                        }
                    }
                }
                Ok(Value::Object(map))
            }
            // A tag: its content is the value (dates, big numbers as jsoncons reads them).
            (6, Arg::Value(_)) => self.item(depth + 1),
            _ => Err(format!("malformed CBOR item 0x{ib:02x}")),
        }
    }

    fn simple(&mut self, info: u8) -> Result<Value, String> {
        Ok(match info {
            20 => Value::Bool(false),
            21 => Value::Bool(true),
            22 | 23 => Value::Null,
            25 => number(half(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))),
            26 => number(f32::from_be_bytes(self.take(4)?.try_into().unwrap()) as f64),
            27 => number(f64::from_be_bytes(self.take(8)?.try_into().unwrap())),
            _ => return Err(format!("CBOR simple value {info} has no JSON form")),
        })
    }
}

/// A double as JSON: NaN and infinities, which JSON lacks, become null.
fn number(d: f64) -> Value {
    Number::from_f64(d).map_or(Value::Null, Value::Number)
}

/// IEEE 754 half precision to double.
fn half(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document of `JSON.SET j1 $ '{"a":1,"b":[true,false,null,"x",1.5,0.1,-7,-300,300,
    /// 70000,5000000000,-5000000000,1e300],"c":{"d":"é","e":{}},"f":[]}'` as Kvrocks 2.10.1
    /// stored it with `json-storage-format cbor` (its metadata value after the format byte,
    /// from POLLUPDATES ... FORMAT RAW).
    const KVROCKS_J1: &str = "A461610161628DF5F4F66178FA3FC00000FB3FB999999999999A2639012B19012C\
        1A000111701B000000012A05F2003B000000012A05F1FFFB7E37E43C8800759C6163A2616462C3A9616\
        5A0616680";

    fn j1() -> Value {
        serde_json::from_str(
            r#"{"a":1,"b":[true,false,null,"x",1.5,0.1,-7,-300,300,70000,5000000000,-5000000000,1e300],"c":{"d":"é","e":{}},"f":[]}"#,
        )
        .unwrap()
    }

    #[test]
    fn kvrocks_cbor_decodes_and_encodes_to_the_same_bytes() {
        let bytes = hex::decode(KVROCKS_J1).unwrap();
        assert_eq!(decode(&bytes).unwrap(), j1());
        assert_eq!(hex::encode_upper(encode(&j1())), KVROCKS_J1);
        // A string document, and u64::MAX (Kvrocks' j2 and j3).
        assert_eq!(
            decode(&hex::decode("6D6A757374206120737472696E67").unwrap()).unwrap(),
            Value::String("just a string".into())
        );
        let max = hex::decode("1BFFFFFFFFFFFFFFFF").unwrap();
        assert_eq!(decode(&max).unwrap(), Value::Number(u64::MAX.into()));
        assert_eq!(encode(&decode(&max).unwrap()), max);
    }

    #[test]
    fn other_well_formed_cbor_reads_and_bad_bytes_are_errors() {
        // Indefinite array and map, a chunked string, half floats, a tag, undefined.
        let v = decode(&hex::decode("9F01BF61610AFF7F61616161FFFF").unwrap()).unwrap();
        assert_eq!(v, serde_json::json!([1, {"a": 10}, "aa"]));
        assert_eq!(decode(&[0xf9, 0x3c, 0x00]).unwrap(), serde_json::json!(1.0));
        assert_eq!(
            decode(&[0xf9, 0xc4, 0x00]).unwrap(),
            serde_json::json!(-4.0)
        );
        assert_eq!(decode(&[0xc1, 0x01]).unwrap(), serde_json::json!(1));
        assert_eq!(decode(&[0xf7]).unwrap(), Value::Null);
        for bad in [
            &[][..],
            &[0x82, 0x01],
            &[0x1c],
            &[0x41, 0x00],
            &[0x01, 0x02],
            &[0x61, 0xff],
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let deep = vec![0x81u8; MAX_DEPTH + 2];
        assert!(decode(&deep).is_err());
    }
}
