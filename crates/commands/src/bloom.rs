//! Bloom filter commands (RedisBloom's BF.*, as Kvrocks serves them): BF.RESERVE, BF.ADD,
//! BF.MADD, BF.INSERT, BF.EXISTS, BF.MEXISTS, BF.INFO and BF.CARD. Error texts are
//! RedisBloom's; the replies' shapes are Kvrocks'.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_types::bloom::{BloomAdd, BloomCreate};

use crate::args::{is, parse_f64, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

fn error_rate(arg: &[u8]) -> Result<f64, CmdError> {
    let rate = parse_f64(arg).map_err(|_| CmdError::err("bad error rate"))?;
    if !(rate > 0.0 && rate < 1.0) {
        return Err(CmdError::err("(0 < error rate range < 1)"));
    }
    Ok(rate)
}

fn capacity(arg: &[u8]) -> Result<u32, CmdError> {
    let n = parse_i64(arg).map_err(|_| CmdError::err("bad capacity"))?;
    if n <= 0 {
        return Err(CmdError::err("(capacity should be larger than 0)"));
    }
    u32::try_from(n).map_err(|_| CmdError::err("bad capacity"))
}

fn expansion(arg: Option<&Bytes>) -> Result<u16, CmdError> {
    let n = arg
        .and_then(|a| parse_i64(a).ok())
        .ok_or_else(|| CmdError::err("bad expansion"))?;
    if n < 1 {
        return Err(CmdError::err("expansion should be greater or equal to 1"));
    }
    u16::try_from(n).map_err(|_| CmdError::err("bad expansion"))
}

fn replies(results: Vec<BloomAdd>) -> Frame {
    Frame::Array(
        results
            .into_iter()
            .map(|r| match r {
                BloomAdd::Added => Frame::Integer(1),
                BloomAdd::Exists => Frame::Integer(0),
                BloomAdd::Full => Frame::error("ERR non scaling filter is full"),
            })
            .collect(),
    )
}

/// BF.RESERVE key error_rate capacity [EXPANSION expansion] [NONSCALING]
pub fn reserve(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let rate = error_rate(&a[2])?;
    let cap = capacity(&a[3])?;
    let (mut exp, mut nonscaling, mut has_expansion) =
        (quarry_types::bloom::DEFAULT_EXPANSION, false, false);
    let mut i = 4;
    while i < a.len() {
        if is(&a[i], "NONSCALING") {
            nonscaling = true;
            i += 1;
        } else if is(&a[i], "EXPANSION") {
            exp = expansion(a.get(i + 1))?;
            has_expansion = true;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    if nonscaling && has_expansion {
        return Err(CmdError::err("nonscaling filters cannot expand"));
    }
    if nonscaling {
        exp = 0;
    }
    if !ctx.db.bf_reserve(&a[1], rate, cap, exp)? {
        return Err(CmdError::err("item exists"));
    }
    Ok(Frame::ok())
}

/// BF.ADD key item
pub fn add(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let r = ctx
        .db
        .bf_insert(&a[1], &a[2..3], &BloomCreate::default())?
        .unwrap_or_default();
    Ok(match r.first() {
        Some(BloomAdd::Added) => Frame::Integer(1),
        Some(BloomAdd::Exists) => Frame::Integer(0),
        _ => Frame::error("ERR non scaling filter is full"),
    })
}

/// BF.MADD key item [item ...]
pub fn madd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let r = ctx
        .db
        .bf_insert(&a[1], &a[2..], &BloomCreate::default())?
        .unwrap_or_default();
    Ok(replies(r))
}

/// BF.INSERT key [CAPACITY n] [ERROR rate] [EXPANSION n] [NOCREATE] [NONSCALING] ITEMS item...
pub fn insert(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut how = BloomCreate::default();
    let (mut nonscaling, mut has_expansion) = (false, false);
    let mut i = 2;
    let items_at = loop {
        let Some(word) = a.get(i) else {
            return Err(CmdError::Syntax);
        };
        if is(word, "CAPACITY") {
            how.capacity = capacity(a.get(i + 1).ok_or(CmdError::Syntax)?)?;
            i += 2;
        } else if is(word, "ERROR") {
            how.error_rate = error_rate(a.get(i + 1).ok_or(CmdError::Syntax)?)?;
            i += 2;
        } else if is(word, "EXPANSION") {
            how.expansion = expansion(a.get(i + 1))?;
            has_expansion = true;
            i += 2;
        } else if is(word, "NOCREATE") {
            how.create = false;
            i += 1;
        } else if is(word, "NONSCALING") {
            nonscaling = true;
            i += 1;
        } else if is(word, "ITEMS") {
            break i + 1;
        } else {
            return Err(CmdError::Syntax);
        }
    };
    if nonscaling && has_expansion {
        return Err(CmdError::err("nonscaling filters cannot expand"));
    }
    if nonscaling {
        how.expansion = 0;
    }
    if items_at >= a.len() {
        return Err(CmdError::err("num of items should be greater than 0"));
    }
    match ctx.db.bf_insert(&a[1], &a[items_at..], &how)? {
        Some(r) => Ok(replies(r)),
        None => Err(CmdError::err("not found")),
    }
}

/// BF.EXISTS key item
pub fn exists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let r = ctx.db.bf_exists(&a[1], &a[2..3])?;
    Ok(Frame::Integer(r[0] as i64))
}

/// BF.MEXISTS key item [item ...]
pub fn mexists(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let r = ctx.db.bf_exists(&a[1], &a[2..])?;
    Ok(Frame::Array(
        r.into_iter().map(|e| Frame::Integer(e as i64)).collect(),
    ))
}

/// BF.INFO key [CAPACITY | SIZE | FILTERS | ITEMS | EXPANSION]
pub fn info(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 3 {
        return Err(CmdError::WrongArity("bf.info".into()));
    }
    let field = match a.get(2) {
        None => None,
        Some(f) => Some(
            ["capacity", "size", "filters", "items", "expansion"]
                .into_iter()
                .find(|w| is(f, w))
                .ok_or_else(|| CmdError::err("Invalid information value"))?,
        ),
    };
    let info = ctx
        .db
        .bf_info(&a[1])?
        .ok_or_else(|| CmdError::err("not found"))?;
    let expansion = if info.expansion == 0 {
        Frame::Null
    } else {
        Frame::Integer(info.expansion as i64)
    };
    Ok(match field {
        Some("capacity") => Frame::Integer(info.capacity() as i64),
        Some("size") => Frame::Integer(info.bloom_bytes as i64),
        Some("filters") => Frame::Integer(info.n_filters as i64),
        Some("items") => Frame::Integer(info.size as i64),
        Some(_) => expansion,
        None => Frame::Array(vec![
            Frame::Simple("Capacity".into()),
            Frame::Integer(info.capacity() as i64),
            Frame::Simple("Size".into()),
            Frame::Integer(info.bloom_bytes as i64),
            Frame::Simple("Number of filters".into()),
            Frame::Integer(info.n_filters as i64),
            Frame::Simple("Number of items inserted".into()),
            Frame::Integer(info.size as i64),
            Frame::Simple("Expansion rate".into()),
            expansion,
        ]),
    })
}

/// BF.CARD key: the items added (0 for a missing key).
pub fn card(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(
        ctx.db.bf_info(&a[1])?.map_or(0, |i| i.size as i64),
    ))
}
