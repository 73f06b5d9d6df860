//! Lua's `struct` library (`struct.pack`, `struct.unpack`, `struct.size`), with the behaviour
//! of the `lua_struct.c` that Redis embeds, quirks included: integers are 64-bit (`long`),
//! wider integer fields get zero high bytes, `=` is not an option, and the default is native
//! (little-endian) byte order with no alignment.

use mlua::{Lua, MultiValue, Table, Value, Variadic};

/// The widest integral field, as in the C library.
const MAX_INT_SIZE: usize = 32;
/// What `!` without a number aligns to: the alignment of a double on this platform.
const MAX_ALIGN: usize = 8;
/// Lua 5.1's C stack holds about 8000 values; a format asking for more fails as it does there.
const MAX_RESULTS: usize = 7990;

fn err(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(msg.into())
}

fn arg_err(n: usize, func: &str, msg: &str) -> mlua::Error {
    err(format!("bad argument #{n} to '{func}' ({msg})"))
}

/// A walk over a format string, carrying the byte order and alignment it has set so far.
struct Format<'a> {
    fmt: &'a [u8],
    at: usize,
    little: bool,
    align: usize,
    func: &'static str,
}

impl<'a> Format<'a> {
    fn new(fmt: &'a [u8], func: &'static str) -> Self {
        Format {
            fmt,
            at: 0,
            little: cfg!(target_endian = "little"),
            align: 1,
            func,
        }
    }

    fn next_option(&mut self) -> Option<u8> {
        let c = *self.fmt.get(self.at)?;
        self.at += 1;
        Some(c)
    }

    /// The number right after an option, or `default` when there is none.
    fn number(&mut self, default: usize) -> mlua::Result<usize> {
        if !self.fmt.get(self.at).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut n: usize = 0;
        while let Some(d) = self.fmt.get(self.at).filter(|d| d.is_ascii_digit()) {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
                .filter(|&n| n <= i32::MAX as usize)
                .ok_or_else(|| err("integral size overflow"))?;
            self.at += 1;
        }
        Ok(n)
    }

    /// The size of an option's field; 0 for options with no size of their own.
    fn size(&mut self, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'b' | b'B' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > MAX_INT_SIZE {
                    return Err(err(format!(
                        "integral size {n} is larger than limit of {MAX_INT_SIZE}"
                    )));
                }
                n
            }
            _ => 0,
        })
    }

    /// Padding needed before a field of `size` bytes at offset `len`.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    /// Byte order, alignment and spaces; anything else is not an option.
    fn control(&mut self, opt: u8) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.number(MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(err(format!("alignment {a} is not a power of 2")));
                }
                self.align = a;
            }
            _ => {
                return Err(arg_err(
                    1,
                    self.func,
                    &format!("invalid format option '{}'", opt as char),
                ))
            }
        }
        Ok(())
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        Value::UserData(_) | Value::LightUserData(_) => "userdata",
        Value::String(_) => "string",
        _ => "number",
    }
}

fn check_number(lua: &Lua, v: Option<&Value>, n: usize, func: &str) -> mlua::Result<f64> {
    let v = v.cloned().unwrap_or(Value::Nil);
    let name = type_name(&v);
    lua.coerce_number(v)?
        .ok_or_else(|| arg_err(n, func, &format!("number expected, got {}", name)))
}

fn check_string(lua: &Lua, v: Option<&Value>, n: usize, func: &str) -> mlua::Result<Vec<u8>> {
    let v = v.cloned().unwrap_or(Value::Nil);
    let name = type_name(&v);
    match lua.coerce_string(v)? {
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => Err(arg_err(n, func, &format!("string expected, got {}", name))),
    }
}

/// `n` as the C library stores it: negative numbers through a signed 64-bit integer, then the
/// low `size` bytes (bytes past the eighth are zero).
fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let value = if n < 0.0 { n as i64 as u64 } else { n as u64 };
    let mut bytes = [0u8; MAX_INT_SIZE];
    for (i, b) in bytes.iter_mut().take(size.min(8)).enumerate() {
        *b = (value >> (8 * i)) as u8;
    }
    let field = &mut bytes[..size];
    if !little {
        field.reverse();
    }
    out.extend_from_slice(field);
}

fn get_integer(data: &[u8], little: bool, signed: bool) -> f64 {
    // `i0`: a field of no bytes reads as 0.
    if data.is_empty() {
        return 0.0;
    }
    let mut l: u64 = 0;
    let mut push = |b: u8| l = (l << 8) | u64::from(b);
    if little {
        data.iter().rev().for_each(|&b| push(b));
    } else {
        data.iter().for_each(|&b| push(b));
    }
    if !signed {
        return l as f64;
    }
    // The C code shifts by size*8-1, which the hardware takes modulo 64 for wide fields.
    let mask = u64::MAX.wrapping_shl((data.len() * 8 - 1) as u32);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn pack(lua: &Lua, args: Variadic<Value>) -> mlua::Result<mlua::String> {
    let fmt = check_string(lua, args.first(), 1, "pack")?;
    let mut f = Format::new(&fmt, "pack");
    let mut out = Vec::new();
    let mut arg = 2;
    while let Some(opt) = f.next_option() {
        let mut size = f.size(opt)?;
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, args.get(arg - 1), arg, "pack")?;
                arg += 1;
                put_integer(&mut out, n, f.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = check_number(lua, args.get(arg - 1), arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if f.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'd' => {
                let n = check_number(lua, args.get(arg - 1), arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if f.little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(lua, args.get(arg - 1), arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The C code names the argument after the string (it has moved on).
                    return Err(arg_err(arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt)?,
        }
    }
    lua.create_string(&out)
}

fn unpack(lua: &Lua, args: Variadic<Value>) -> mlua::Result<MultiValue> {
    let fmt = check_string(lua, args.first(), 1, "unpack")?;
    let data = check_string(lua, args.get(1), 2, "unpack")?;
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        v => check_number(lua, v, 3, "unpack")?,
    };
    // NaN is refused too.
    if start.is_nan() || start < 1.0 {
        return Err(arg_err(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = start as usize - 1;
    let mut f = Format::new(&fmt, "unpack");
    let too_short = || arg_err(2, "unpack", "data string too short");
    let mut values: Vec<Value> = Vec::new();
    while let Some(opt) = f.next_option() {
        let mut size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if size > data.len() || pos > data.len() - size {
            return Err(too_short());
        }
        if values.len() >= MAX_RESULTS {
            return Err(err("stack overflow (too many results)"));
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(&data[pos..pos + size], f.little, opt.is_ascii_lowercase());
                values.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().expect("checked length");
                let n = if f.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                values.push(Value::Number(f64::from(n)));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().expect("checked length");
                let n = if f.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                values.push(Value::Number(n));
            }
            b'c' => {
                if size == 0 {
                    // `c0` takes its length from the number unpacked just before it.
                    let Some(Value::Number(n)) = values.last() else {
                        return Err(err("format 'c0' needs a previous size"));
                    };
                    size = if *n > 0.0 { *n as usize } else { 0 };
                    values.pop();
                    if size > data.len() || pos > data.len() - size {
                        return Err(too_short());
                    }
                }
                values.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(err("unfinished string in data"));
                };
                values.push(Value::String(lua.create_string(&data[pos..pos + end])?));
                size = end + 1;
            }
            _ => f.control(opt)?,
        }
        pos += size;
    }
    values.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_iter(values))
}

fn size(lua: &Lua, args: Variadic<Value>) -> mlua::Result<f64> {
    let fmt = check_string(lua, args.first(), 1, "size")?;
    let mut f = Format::new(&fmt, "size");
    let mut pos = 0;
    while let Some(opt) = f.next_option() {
        let size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if opt == b's' {
            return Err(arg_err(1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_err(1, "size", "option 'c0' has no fixed size"));
        }
        // As in the C code, unknown letters and digits are not checked here.
        if !opt.is_ascii_alphanumeric() {
            f.control(opt)?;
        }
        pos += size;
    }
    Ok(pos as f64)
}

pub fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("pack", super::libs::located(lua, pack)?)?;
    t.set("unpack", super::libs::located(lua, unpack)?)?;
    t.set("size", super::libs::located(lua, size)?)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(code: &str) -> mlua::Result<Vec<u8>> {
        let lua = Lua::new();
        lua.globals().set("struct", library(&lua)?)?;
        let s: mlua::String = lua.load(code).eval()?;
        Ok(s.as_bytes().to_vec())
    }

    /// Bytes captured from Redis 7.0.15's `struct.pack`.
    #[test]
    fn pack_matches_redis_bytes() {
        assert_eq!(
            eval("return struct.pack('>HhBbi', 513, -2, 255, -1, 70000)").unwrap(),
            b"\x02\x01\xff\xfe\xff\xff\x00\x01\x11\x70"
        );
        assert_eq!(
            eval("return struct.pack('<I3dfs', 65538, 1.5, 0.25, 'ab')").unwrap(),
            b"\x02\x00\x01\x00\x00\x00\x00\x00\x00\xf8\x3f\x00\x00\x80\x3eab\x00"
        );
        assert_eq!(
            eval("return struct.pack('!4bi', 1, 2)").unwrap(),
            b"\x01\x00\x00\x00\x02\x00\x00\x00"
        );
        assert_eq!(
            eval("return struct.pack('i9', -1)").unwrap(),
            b"\xff\xff\xff\xff\xff\xff\xff\xff\x00"
        );
    }

    #[test]
    fn unpack_and_size_match_redis() {
        let got = |code: &str| -> String {
            let lua = Lua::new();
            lua.globals().set("struct", library(&lua).unwrap()).unwrap();
            let t: Vec<Value> = lua
                .load(code)
                .eval::<MultiValue>()
                .unwrap()
                .into_iter()
                .collect();
            t.iter()
                .map(|v| match v {
                    Value::Number(n) => n.to_string(),
                    Value::Integer(n) => n.to_string(),
                    Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
                    other => format!("{other:?}"),
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            got("return struct.unpack('>HhBb', struct.pack('>HhBb', 513, -2, 255, -1))"),
            "513,-2,255,-1,7"
        );
        assert_eq!(
            got("return struct.unpack('<i2c0', struct.pack('<i2c0', 3, 'abc'))"),
            "abc,6"
        );
        assert_eq!(got("return struct.unpack('b', 'xyz', 2)"), "121,3");
        assert_eq!(
            got("return struct.unpack('<i9', struct.pack('<i9', -1))"),
            "-1,10"
        );
        assert_eq!(got("return struct.unpack('xB', 'ab')"), "98,3");
        assert_eq!(got("return struct.size('!8bd')"), "16");
        assert_eq!(got("return struct.size('zb')"), "1");
        assert_eq!(got("return struct.unpack('i0', 'x')"), "0,1");
    }

    #[test]
    fn errors_read_as_in_redis() {
        let e = |code: &str| eval(code).unwrap_err().to_string();
        assert!(e("return struct.size('s')")
            .contains("bad argument #1 to 'size' (option 's' has no fixed size)"));
        assert!(e("return struct.pack('z', 1)")
            .contains("bad argument #1 to 'pack' (invalid format option 'z')"));
        assert!(e("return struct.unpack('i', 'ab')")
            .contains("bad argument #2 to 'unpack' (data string too short)"));
        assert!(e("return struct.pack('i', 'x')")
            .contains("bad argument #2 to 'pack' (number expected, got string)"));
        assert!(e("return struct.pack('c5', 'ab')")
            .contains("bad argument #3 to 'pack' (string too short)"));
        assert!(e("return struct.pack('i40', 1)")
            .contains("integral size 40 is larger than limit of 32"));
        assert!(e("return struct.pack('!3i', 1)").contains("alignment 3 is not a power of 2"));
        assert!(
            e("return struct.unpack('c0', 'abc')").contains("format 'c0' needs a previous size")
        );
        assert!(e("return struct.unpack('s', 'abc')").contains("unfinished string in data"));
        assert!(e("return struct.unpack('b', 'abc', 0)")
            .contains("bad argument #3 to 'unpack' (offset must be 1 or greater)"));
        assert!(e("return struct.unpack('b', 'x', 0/0)").contains("offset must be 1 or greater"));
        assert!(e("return struct.size('=b')")
            .contains("bad argument #1 to 'size' (invalid format option '=')"));
    }
}
