//! JSON documents (RedisJSON's JSON.*, as Kvrocks 2.10 serves them), stored in Kvrocks'
//! layout (`quarry_types::json`).
//!
//! Documents are parsed with serde_json, the parser RedisJSON itself uses, and queried with
//! serde_json_path, an implementation of RFC 9535 JSONPath: a maintained crate that reports
//! each match's location, which the commands that change a document need. A path that does
//! not start with `$` is read in the legacy syntax (`.`, `a.b`, `.a[0]`) and turned into the
//! JSONPath it means. Replies have Kvrocks' shapes: per-match arrays for every path, as
//! Kvrocks answers legacy paths too. Objects keep their keys sorted, as Kvrocks' do.

use bytes::Bytes;
use quarry_resp::Frame;
use serde_json::Value;
use serde_json_path::JsonPath;

use crate::args::{is, lower, text};
use crate::{CmdError, CmdResult, Ctx};

/// How deep a document may nest: serde_json's own limit (it guards the parser's stack).
/// Kvrocks' `json-max-nesting-depth` defaults to 1024; deeper documents than this are refused
/// here.
const MAX_DEPTH: usize = 128;

/// `json-max-nesting-depth`, at most [`MAX_DEPTH`] (set from the configuration).
pub static MAX_NESTING: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(MAX_DEPTH);

fn max_nesting() -> usize {
    MAX_NESTING.load(std::sync::atomic::Ordering::Relaxed)
}

fn parse_path(p: &[u8]) -> Result<JsonPath, CmdError> {
    let s = std::str::from_utf8(p).map_err(|_| CmdError::err("invalid JSONPath"))?;
    let full = if s.starts_with('$') {
        s.to_string()
    } else if s.is_empty() || s == "." {
        "$".to_string()
    } else if s.starts_with('.') || s.starts_with('[') {
        format!("${s}")
    } else {
        format!("$.{s}")
    };
    JsonPath::parse(&full).map_err(|e| CmdError::err(format!("invalid JSONPath '{s}': {e}")))
}

/// The path argument at `i`, `$` when it is not given.
fn optional_path(a: &[Bytes], i: usize) -> &[u8] {
    a.get(i).map_or(&b"$"[..], |p| &p[..])
}

fn path_arg(a: &[Bytes], i: usize) -> Result<JsonPath, CmdError> {
    parse_path(optional_path(a, i))
}

fn is_root(path: &JsonPath) -> bool {
    *path == JsonPath::parse("$").expect("the root path")
}

/// What `path` matches in `doc`, as the JSON array JSON.GET and JSON.MGET print.
fn matched(path: &JsonPath, doc: &Value) -> Value {
    Value::Array(path.query(doc).all().into_iter().cloned().collect())
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn parse_value(b: &[u8]) -> Result<Value, CmdError> {
    let v: Value = serde_json::from_slice(b).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            CmdError::err(format!(
                "the JSON document is nested deeper than {MAX_DEPTH} levels"
            ))
        } else {
            CmdError::err(e.to_string())
        }
    })?;
    check_depth(&v)?;
    Ok(v)
}

/// A document written must nest no deeper than `json-max-nesting-depth`.
fn check_depth(v: &Value) -> Result<(), CmdError> {
    if depth(v) > max_nesting() {
        return Err(CmdError::err(format!(
            "the JSON document is nested deeper than {} levels",
            max_nesting()
        )));
    }
    Ok(())
}

/// A stored document: read whatever `json-max-nesting-depth` says now (the limit is for what
/// is written).
fn parse_stored(text: &[u8]) -> Result<Value, CmdError> {
    serde_json::from_slice(text).map_err(|e| CmdError::err(e.to_string()))
}

fn read(ctx: &Ctx<'_>, key: &[u8]) -> Result<Option<(Value, u64)>, CmdError> {
    match ctx.db.json_read(key)? {
        Some(doc) => Ok(Some((parse_stored(&doc.text)?, doc.expire_ms))),
        None => Ok(None),
    }
}

fn write(ctx: &Ctx<'_>, key: &[u8], v: &Value, expire_ms: u64) -> Result<(), CmdError> {
    let text = serde_json::to_vec(v).map_err(|e| CmdError::err(e.to_string()))?;
    ctx.db.json_write(key, &text, expire_ms)?;
    Ok(())
}

/// The JSON pointers of what `path` matches in `v`.
fn pointers(path: &JsonPath, v: &Value) -> Vec<String> {
    path.query_located(v)
        .locations()
        .map(|l| l.to_json_pointer())
        .collect()
}

fn doesnt_exist() -> CmdError {
    CmdError::err("could not perform this operation on a key that doesn't exist")
}

/// Runs `op` on each match of `path` in the document at `key` and writes it back if any op
/// changed it; the ops' results, in match order. None if the key is missing.
fn modify<T>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    path: &[u8],
    mut op: impl FnMut(&mut Value) -> (Option<T>, bool),
) -> Result<Option<Vec<Option<T>>>, CmdError> {
    let path = parse_path(path)?;
    let _guard = ctx.db.locks().lock(key);
    let Some((mut doc, expire)) = read(ctx, key)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut changed = false;
    for p in pointers(&path, &doc) {
        if let Some(target) = doc.pointer_mut(&p) {
            let (r, c) = op(target);
            out.push(r);
            changed |= c;
        }
    }
    if changed {
        write(ctx, key, &doc, expire)?;
    }
    Ok(Some(out))
}

fn ints(v: Vec<Option<i64>>) -> Frame {
    Frame::Array(
        v.into_iter()
            .map(|r| r.map_or(Frame::Null, Frame::Integer))
            .collect(),
    )
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON.SET key path value [NX | XX]
pub fn set(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx) = (false, false);
    for opt in &a[4..] {
        if is(opt, "NX") {
            nx = true;
        } else if is(opt, "XX") {
            xx = true;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if nx && xx {
        return Err(CmdError::Syntax);
    }
    let path = parse_path(&a[2])?;
    let value = parse_value(&a[3])?;
    let key = &a[1];
    let _guard = ctx.db.locks().lock(key);
    let Some((mut doc, expire)) = read(ctx, key)? else {
        if xx {
            return Ok(Frame::Null);
        }
        if !is_root(&path) {
            return Err(CmdError::err("new objects must be created at the root"));
        }
        write(ctx, key, &value, 0)?;
        return Ok(Frame::ok());
    };
    let found = pointers(&path, &doc);
    if !found.is_empty() {
        if nx {
            return Ok(Frame::Null);
        }
        for p in found {
            if p.is_empty() {
                doc = value.clone();
            } else if let Some(t) = doc.pointer_mut(&p) {
                *t = value.clone();
            }
        }
        write(ctx, key, &doc, expire)?;
        return Ok(Frame::ok());
    }
    if xx {
        return Ok(Frame::Null);
    }
    // A new member: the path's parent must exist and be an object, and the last step a name.
    let text = std::str::from_utf8(&a[2]).unwrap_or("");
    let (parent, name) = split_last_member(text)
        .ok_or_else(|| CmdError::err("path does not exist or is not an object member"))?;
    let parent_path = parse_path(parent.as_bytes())?;
    let mut added = false;
    for p in pointers(&parent_path, &doc) {
        if let Some(Value::Object(o)) = doc.pointer_mut(&p) {
            o.insert(name.clone(), value.clone());
            added = true;
        }
    }
    if !added {
        return Ok(Frame::Null);
    }
    write(ctx, key, &doc, expire)?;
    Ok(Frame::ok())
}

/// `$.a.b` -> (`$.a`, `b`); `$['x']` -> (`$`, `x`). None if the last step is not a name.
fn split_last_member(path: &str) -> Option<(String, String)> {
    let p = if path.starts_with('$') {
        path.to_string()
    } else if path.starts_with('.') {
        format!("${path}")
    } else {
        format!("$.{path}")
    };
    if let Some(stripped) = p.strip_suffix("']").or_else(|| p.strip_suffix("\"]")) {
        let open = stripped.rfind("['").or_else(|| stripped.rfind("[\""))?;
        return Some((p[..open].to_string(), stripped[open + 2..].to_string()));
    }
    let dot = p.rfind('.')?;
    let name = &p[dot + 1..];
    if name.is_empty() || name.contains(['[', ']', '*', '$']) {
        return None;
    }
    Some((p[..dot].to_string(), name.to_string()))
}

/// Serializes as JSON.GET's INDENT, NEWLINE and SPACE ask.
struct Format {
    indent: String,
    newline: String,
    space: String,
}

fn print(v: &Value, f: &Format, level: usize, out: &mut String) {
    let pad = |out: &mut String, level: usize| {
        out.push_str(&f.newline);
        for _ in 0..level {
            out.push_str(&f.indent);
        }
    };
    match v {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(out, level + 1);
                print(item, f, level + 1, out);
            }
            pad(out, level);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(out, level + 1);
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                out.push_str(&f.space);
                print(item, f, level + 1, out);
            }
            pad(out, level);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// JSON.GET key [INDENT s] [NEWLINE s] [SPACE s] [path ...]
pub fn get(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut f = Format {
        indent: String::new(),
        newline: String::new(),
        space: String::new(),
    };
    let mut i = 2;
    while i + 1 < a.len() {
        if is(&a[i], "INDENT") {
            f.indent = text(&a[i + 1]);
        } else if is(&a[i], "NEWLINE") {
            f.newline = text(&a[i + 1]);
        } else if is(&a[i], "SPACE") {
            f.space = text(&a[i + 1]);
        } else {
            break;
        }
        i += 2;
    }
    let paths: Vec<JsonPath> = a[i..]
        .iter()
        .map(|p| parse_path(p))
        .collect::<Result<_, _>>()?;
    let Some((doc, _)) = read(ctx, &a[1])? else {
        return Ok(Frame::Null);
    };
    let result = match paths.len() {
        0 => doc,
        1 => matched(&paths[0], &doc),
        _ => {
            let mut map = serde_json::Map::new();
            for (p, raw) in paths.iter().zip(&a[i..]) {
                map.insert(text(raw), matched(p, &doc));
            }
            Value::Object(map)
        }
    };
    let mut out = String::new();
    print(&result, &f, 0, &mut out);
    Ok(Frame::bulk(out))
}

/// JSON.MGET key [key ...] path
pub fn mget(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let path = parse_path(&a[a.len() - 1])?;
    let mut out = Vec::with_capacity(a.len() - 2);
    for key in &a[1..a.len() - 1] {
        // Another type, or a missing key, is nil in MGET.
        let doc = match read(ctx, key) {
            Ok(d) => d,
            Err(CmdError::WrongType) => None,
            Err(e) => return Err(e),
        };
        out.push(match doc {
            Some((doc, _)) => Frame::bulk(matched(&path, &doc).to_string()),
            None => Frame::Null,
        });
    }
    Ok(Frame::Array(out))
}

/// JSON.MSET key path value [key path value ...]
pub fn mset(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !(a.len() - 1).is_multiple_of(3) {
        return Err(CmdError::WrongArity("json.mset".into()));
    }
    for triple in a[1..].chunks(3) {
        let cmd = [
            Bytes::from_static(b"json.set"),
            triple[0].clone(),
            triple[1].clone(),
            triple[2].clone(),
        ];
        set(ctx, &cmd)?;
    }
    Ok(Frame::ok())
}

/// Removes the values at JSON pointers `found` (the root excluded), the deepest and last
/// first, so that removing one never moves another (array indices compare as numbers: `/10`
/// goes before `/2`); returns how many went.
fn remove_matches(doc: &mut Value, mut found: Vec<String>) -> i64 {
    found.retain(|p| !p.is_empty());
    let order = |p: &String| -> Vec<(usize, String)> {
        p.split('/')
            .map(|seg| (seg.parse().unwrap_or(usize::MAX), seg.to_string()))
            .collect()
    };
    found.sort_by_cached_key(|p| std::cmp::Reverse(order(p)));
    found.dedup();
    let mut n = 0;
    for p in &found {
        let (parent, last) = p.rsplit_once('/').expect("not the root");
        let name = last.replace("~1", "/").replace("~0", "~");
        match doc.pointer_mut(parent) {
            Some(Value::Object(o)) => n += o.remove(&name).is_some() as i64,
            Some(Value::Array(items)) => {
                if let Ok(i) = name.parse::<usize>() {
                    if i < items.len() {
                        items.remove(i);
                        n += 1;
                    }
                }
            }
            _ => {}
        }
    }
    n
}

/// JSON.DEL / JSON.FORGET key [path]: how many values went (the root: the key).
pub fn del(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let path = path_arg(a, 2)?;
    let key = &a[1];
    if is_root(&path) {
        // The whole document: the key goes (DEL takes the key's lock itself).
        if ctx.db.json_format(key)?.is_none() {
            return Ok(Frame::Integer(0));
        }
        return Ok(Frame::Integer(ctx.db.delete(&[key])?));
    }
    let _guard = ctx.db.locks().lock(key);
    let Some((mut doc, expire)) = read(ctx, key)? else {
        return Ok(Frame::Integer(0));
    };
    let found = pointers(&path, &doc);
    let n = remove_matches(&mut doc, found);
    if n > 0 {
        write(ctx, key, &doc, expire)?;
    }
    Ok(Frame::Integer(n))
}

/// JSON.TYPE key [path]
pub fn type_of(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let path = path_arg(a, 2)?;
    let Some((doc, _)) = read(ctx, &a[1])? else {
        return Ok(Frame::Null);
    };
    Ok(Frame::Array(
        path.query(&doc)
            .all()
            .into_iter()
            .map(|v| Frame::bulk(type_name(v)))
            .collect(),
    ))
}

/// JSON.STRLEN, JSON.ARRLEN, JSON.OBJLEN key [path]: each match's length (nil for another
/// type).
pub fn len(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let name = lower(&a[0]);
    let path = path_arg(a, 2)?;
    let Some((doc, _)) = read(ctx, &a[1])? else {
        return if name == "json.strlen" && a.len() > 2 {
            Err(doesnt_exist())
        } else {
            Ok(Frame::Null)
        };
    };
    Ok(ints(
        path.query(&doc)
            .all()
            .into_iter()
            .map(|v| match (name.as_str(), v) {
                ("json.strlen", Value::String(s)) => Some(s.chars().count() as i64),
                ("json.arrlen", Value::Array(x)) => Some(x.len() as i64),
                ("json.objlen", Value::Object(o)) => Some(o.len() as i64),
                _ => None,
            })
            .collect(),
    ))
}

/// JSON.OBJKEYS key [path]
pub fn objkeys(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let path = path_arg(a, 2)?;
    let Some((doc, _)) = read(ctx, &a[1])? else {
        return Ok(Frame::Null);
    };
    Ok(Frame::Array(
        path.query(&doc)
            .all()
            .into_iter()
            .map(|v| match v {
                Value::Object(o) => {
                    Frame::Array(o.keys().map(|k| Frame::bulk(k.clone())).collect())
                }
                _ => Frame::Null,
            })
            .collect(),
    ))
}

/// JSON.STRAPPEND key [path] value
pub fn strappend(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (path, raw) = if a.len() == 4 {
        (&a[2][..], &a[3])
    } else {
        (&b"$"[..], &a[2])
    };
    let Value::String(tail) = parse_value(raw)? else {
        return Err(CmdError::err("the value to append must be a JSON string"));
    };
    let r = modify(ctx, &a[1], path, |v| match v {
        Value::String(s) => {
            s.push_str(&tail);
            (Some(s.chars().count() as i64), true)
        }
        _ => (None, false),
    })?
    .ok_or_else(doesnt_exist)?;
    Ok(ints(r))
}

/// JSON.ARRAPPEND key path value [value ...]
pub fn arrappend(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let values: Vec<Value> = a[3..]
        .iter()
        .map(|v| parse_value(v))
        .collect::<Result<_, _>>()?;
    let r = modify(ctx, &a[1], &a[2], |v| match v {
        Value::Array(items) => {
            items.extend(values.iter().cloned());
            (Some(items.len() as i64), true)
        }
        _ => (None, false),
    })?
    .ok_or_else(doesnt_exist)?;
    Ok(ints(r))
}

/// JSON.TOGGLE key [path]: each boolean's new value as 1/0 (nil for another type).
pub fn toggle(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let path = optional_path(a, 2);
    match modify(ctx, &a[1], path, |v| match v {
        Value::Bool(b) => {
            *b = !*b;
            (Some(*b as i64), true)
        }
        _ => (None, false),
    })? {
        Some(r) => Ok(ints(r)),
        None => Ok(Frame::Null),
    }
}

/// JSON.CLEAR key [path]: arrays and objects emptied, numbers set to 0; how many changed.
pub fn clear(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let path = optional_path(a, 2);
    let r = modify(ctx, &a[1], path, |v| match v {
        Value::Array(x) if !x.is_empty() => {
            x.clear();
            (Some(()), true)
        }
        Value::Object(o) if !o.is_empty() => {
            o.clear();
            (Some(()), true)
        }
        Value::Number(n) if n.as_f64() != Some(0.0) => {
            *v = Value::from(0);
            (Some(()), true)
        }
        _ => (None, false),
    })?;
    match r {
        Some(r) => Ok(Frame::Integer(r.iter().flatten().count() as i64)),
        None => Ok(Frame::Null),
    }
}

/// JSON.NUMINCRBY / JSON.NUMMULTBY key path number: the new values as a JSON array (null for
/// a match that is not a number).
pub fn numop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mult = is(&a[0], "json.nummultby");
    let by = match parse_value(&a[3])? {
        Value::Number(n) => n,
        _ => return Err(CmdError::err("the number is not a JSON number")),
    };
    let r = modify(ctx, &a[1], &a[2], |v| {
        let Value::Number(n) = v else {
            return (Some(Value::Null), false);
        };
        let result = match (n.as_i64(), by.as_i64()) {
            (Some(x), Some(y)) if !mult => x.checked_add(y).map(Value::from),
            (Some(x), Some(y)) => x.checked_mul(y).map(Value::from),
            _ => None,
        }
        .or_else(|| {
            let (x, y) = (n.as_f64()?, by.as_f64()?);
            let z = if mult { x * y } else { x + y };
            z.is_finite()
                .then(|| serde_json::Number::from_f64(z).map(Value::Number))
                .flatten()
        });
        match result {
            Some(new) => {
                *v = new.clone();
                (Some(new), true)
            }
            None => (Some(Value::Null), false),
        }
    })?
    .ok_or_else(doesnt_exist)?;
    Ok(Frame::bulk(
        Value::Array(r.into_iter().map(|x| x.unwrap_or(Value::Null)).collect()).to_string(),
    ))
}

/// JSON.ARRPOP key [path [index]]: each popped value serialized (nil for an empty array or
/// another type).
pub fn arrpop(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let path = optional_path(a, 2);
    let index = match a.get(3) {
        Some(i) => crate::args::parse_i64(i)?,
        None => -1,
    };
    let r = modify(ctx, &a[1], path, |v| match v {
        Value::Array(items) if !items.is_empty() => {
            let len = items.len() as i64;
            let at = if index < 0 { len + index } else { index }.clamp(0, len - 1);
            (Some(items.remove(at as usize).to_string()), true)
        }
        _ => (None, false),
    })?
    .ok_or_else(doesnt_exist)?;
    Ok(Frame::Array(
        r.into_iter()
            .map(|x| x.map_or(Frame::Null, Frame::bulk))
            .collect(),
    ))
}

/// JSON.INFO key: the storage format (`json` or `cbor`), as Kvrocks.
pub fn info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let Some(format) = ctx.db.json_format(&a[1])? else {
        return Err(doesnt_exist());
    };
    Ok(Frame::Array(vec![
        Frame::bulk("storage_format"),
        Frame::bulk(format),
    ]))
}

/// JSON.ARRINSERT key path index value [value ...]: each array's new length (nil for another
/// type, or an index outside the array).
pub fn arrinsert(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let index = crate::args::parse_i64(&a[3])?;
    let values: Vec<Value> = a[4..]
        .iter()
        .map(|v| parse_value(v))
        .collect::<Result<_, _>>()?;
    let r = modify(ctx, &a[1], &a[2], |v| match v {
        Value::Array(items) => {
            let len = items.len() as i64;
            if index >= len || index < -len {
                return (None, false);
            }
            let at = if index >= 0 { index } else { len + index } as usize;
            items.splice(at..at, values.iter().cloned());
            (Some(items.len() as i64), true)
        }
        _ => (None, false),
    })?;
    match r {
        Some(r) => Ok(ints(r)),
        None => Ok(Frame::Null),
    }
}

/// JSON.ARRINDEX key path value [start [stop]]: each array's first index of the value in
/// `[start, stop)` (0 for stop: the end), -1 if absent, nil for another type.
pub fn arrindex(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 6 {
        return Err(CmdError::WrongArity("json.arrindex".into()));
    }
    let path = parse_path(&a[2])?;
    let needle = parse_value(&a[3])?;
    let start = a
        .get(4)
        .map(|s| crate::args::parse_i64(s))
        .transpose()?
        .unwrap_or(0);
    let stop = a
        .get(5)
        .map(|s| crate::args::parse_i64(s))
        .transpose()?
        .unwrap_or(0);
    let Some((doc, _)) = read(ctx, &a[1])? else {
        return Ok(Frame::Null);
    };
    Ok(ints(
        path.query(&doc)
            .all()
            .into_iter()
            .map(|v| {
                let Value::Array(items) = v else { return None };
                let len = items.len() as i64;
                let from = if start < 0 {
                    (len + start).max(0)
                } else {
                    start.min(len - 1)
                };
                let mut to = match stop {
                    0 => len,
                    s if s < 0 => (len + s).max(0),
                    s => s,
                };
                to = to.min(len);
                if from < 0 || from >= to {
                    return Some(-1);
                }
                Some(
                    items[from as usize..to as usize]
                        .iter()
                        .position(|x| *x == needle)
                        .map_or(-1, |p| p as i64 + from),
                )
            })
            .collect(),
    ))
}

/// JSON.ARRTRIM key path start stop: each array kept to `[start, stop]`; its new length.
pub fn arrtrim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let start = crate::args::parse_i64(&a[3])?;
    let stop = crate::args::parse_i64(&a[4])?;
    let r = modify(ctx, &a[1], &a[2], |v| match v {
        Value::Array(items) => {
            let len = items.len() as i64;
            let begin = if start < 0 {
                (len + start).max(0)
            } else {
                start
            };
            let end = if stop < 0 { (len + stop).max(0) } else { stop }.min(len - 1);
            if begin >= len || begin > end {
                items.clear();
                return (Some(0), true);
            }
            let kept: Vec<Value> = items.drain(begin as usize..=end as usize).collect();
            *items = kept;
            (Some(items.len() as i64), true)
        }
        _ => (None, false),
    })?
    .ok_or_else(doesnt_exist)?;
    Ok(ints(r))
}

/// RFC 7396 JSON Merge Patch: members of an object patch are merged in (a null removes
/// one), anything else replaces the target.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(t) = target else {
        return;
    };
    for (k, v) in members {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The member names of a path made of names only (`$.a.b`, `$['a']`, `a.b`), from the root.
/// None for a path with indexes, wildcards or filters.
fn member_names(path: &str) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = path.to_string();
    while !matches!(rest.as_str(), "" | "$" | ".") {
        let (parent, name) = split_last_member(&rest)?;
        names.push(name);
        rest = parent;
    }
    names.reverse();
    Some(names)
}

/// JSON.MERGE key path value: merges `value` into each match of `path` (RFC 7396 at the
/// root and at each match; a null value deletes the matches). A path that matches nothing is
/// created when it is made of member names, as Kvrocks does.
pub fn merge(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let key = &a[1];
    let path_text = std::str::from_utf8(&a[2]).map_err(|_| CmdError::err("invalid JSONPath"))?;
    let path = parse_path(&a[2])?;
    let patch = parse_value(&a[3])?;
    let _guard = ctx.db.locks().lock(key);
    let Some((mut doc, expire)) = read(ctx, key)? else {
        if !is_root(&path) {
            return Err(CmdError::err("new objects must be created at the root"));
        }
        write(ctx, key, &patch, 0)?;
        return Ok(Frame::ok());
    };
    let found = pointers(&path, &doc);
    if found.is_empty() {
        // A new member, with the objects on the way to it.
        let Some(names) = member_names(path_text) else {
            return Ok(Frame::Null);
        };
        let mut at = &mut doc;
        for (i, name) in names.iter().enumerate() {
            let Value::Object(o) = at else {
                return Ok(Frame::Null);
            };
            if i + 1 == names.len() {
                o.insert(name.clone(), patch.clone());
                break;
            }
            at = o
                .entry(name.clone())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    } else if patch.is_null() && !is_root(&path) {
        remove_matches(&mut doc, found);
    } else {
        for p in found {
            if let Some(t) = doc.pointer_mut(&p) {
                merge_patch(t, &patch);
            }
        }
    }
    check_depth(&doc)?;
    write(ctx, key, &doc, expire)?;
    Ok(Frame::ok())
}

/// A JSON value as RESP, as RedisJSON's JSON.RESP gives it: `[` or `{` first in arrays and
/// objects, integers as integers, other numbers and strings as bulk strings, booleans as
/// simple strings, null as nil.
fn to_resp(v: &Value) -> Frame {
    match v {
        Value::Null => Frame::Null,
        Value::Bool(b) => Frame::Simple(if *b { "true" } else { "false" }.into()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Frame::Integer(i),
            None => Frame::bulk(n.to_string()),
        },
        Value::String(s) => Frame::bulk(s.clone()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() + 1);
            out.push(Frame::Simple("[".into()));
            out.extend(items.iter().map(to_resp));
            Frame::Array(out)
        }
        Value::Object(members) => {
            let mut out = Vec::with_capacity(members.len() * 2 + 1);
            out.push(Frame::Simple("{".into()));
            for (k, item) in members {
                out.push(Frame::bulk(k.clone()));
                out.push(to_resp(item));
            }
            Frame::Array(out)
        }
    }
}

/// JSON.RESP key [path]: the document (or each match of `path`, as an array) in RESP.
pub fn resp(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::err(
            "The number of arguments is more than expected",
        ));
    }
    let path = path_arg(a, 2)?;
    let Some((doc, _)) = read(ctx, &a[1])? else {
        return Ok(Frame::Null);
    };
    let matches = path.query(&doc).all();
    if a.len() == 2 {
        return Ok(matches.last().map_or(Frame::Null, |v| to_resp(v)));
    }
    Ok(Frame::Array(matches.into_iter().map(to_resp).collect()))
}

/// JSON.DEBUG MEMORY key [path]: bytes the document takes in storage (Kvrocks counts the
/// serialized JSON), or each match's serialized size.
pub fn debug(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !is(&a[1], "MEMORY") {
        if is(&a[1], "HELP") {
            return Ok(Frame::Array(vec![
                Frame::bulk("MEMORY <key> [path] - reports memory usage"),
                Frame::bulk("HELP                - this message"),
            ]));
        }
        return Err(CmdError::WrongArity("json.debug".into()));
    }
    if a.len() < 3 {
        return Err(CmdError::WrongArity("json.debug".into()));
    }
    if a.len() > 4 {
        return Err(CmdError::err(
            "The number of arguments is more than expected",
        ));
    }
    let path = path_arg(a, 3)?;
    let Some(stored) = ctx.db.json_read(&a[2])? else {
        return Ok(if a.len() == 3 {
            Frame::Integer(0)
        } else {
            Frame::Array(Vec::new())
        });
    };
    if is_root(&path) {
        return Ok(Frame::Array(vec![Frame::Integer(stored.text.len() as i64)]));
    }
    let doc = parse_stored(&stored.text)?;
    Ok(Frame::Array(
        path.query(&doc)
            .all()
            .into_iter()
            .map(|v| Frame::Integer(v.to_string().len() as i64))
            .collect(),
    ))
}
