//! SORT and SORT_RO: lists, sets and sorted sets, with BY and GET patterns (keys or hash
//! fields), LIMIT, ASC/DESC, ALPHA and STORE.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_types::RedisType;

use crate::args::{is, parse_i64};
use crate::{CmdError, CmdResult, Ctx};

/// Looks up a BY/GET pattern for one element: `*` is replaced by the element, and
/// `key->field` reads a hash field. `#` is the element itself.
fn lookup(ctx: &mut Ctx<'_>, pattern: &[u8], element: &[u8]) -> Result<Option<Vec<u8>>, CmdError> {
    if pattern == b"#" {
        return Ok(Some(element.to_vec()));
    }
    let Some(star) = pattern.iter().position(|&b| b == b'*') else {
        return Ok(None);
    };
    let mut key = pattern[..star].to_vec();
    key.extend_from_slice(element);
    let rest = &pattern[star + 1..];
    // `->field` after the star names a hash field (not when it comes last).
    let arrow = rest.windows(2).position(|w| w == b"->");
    match arrow {
        Some(at) if at + 2 < rest.len() => {
            key.extend_from_slice(&rest[..at]);
            let field = &rest[at + 2..];
            match ctx.db.hget(&key, field) {
                Ok(v) => Ok(v),
                Err(quarry_types::TypeError::WrongType) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        _ => {
            key.extend_from_slice(rest);
            match ctx.db.get(&key) {
                Ok(v) => Ok(v),
                Err(quarry_types::TypeError::WrongType) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    }
}

/// SORT key [BY pattern] [LIMIT offset count] [GET pattern ...] [ASC|DESC] [ALPHA]
/// [STORE destination]; SORT_RO without STORE.
pub fn sort(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let read_only = crate::args::lower(&a[0]) == "sort_ro";
    let (mut by, mut limit, mut gets, mut desc, mut alpha, mut store) =
        (None::<Bytes>, None, Vec::new(), false, false, None::<Bytes>);
    let mut i = 2;
    while i < a.len() {
        let left = a.len() - i - 1;
        if is(&a[i], "ASC") {
            desc = false;
        } else if is(&a[i], "DESC") {
            desc = true;
        } else if is(&a[i], "ALPHA") {
            alpha = true;
        } else if is(&a[i], "LIMIT") && left >= 2 {
            limit = Some((parse_i64(&a[i + 1])?, parse_i64(&a[i + 2])?));
            i += 2;
        } else if is(&a[i], "STORE") && left >= 1 && !read_only {
            store = Some(a[i + 1].clone());
            i += 1;
        } else if is(&a[i], "BY") && left >= 1 {
            by = Some(a[i + 1].clone());
            i += 1;
        } else if is(&a[i], "GET") && left >= 1 {
            gets.push(a[i + 1].clone());
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    let kind = ctx.db.peek_live(&a[1])?.map(|(t, _)| t);
    let mut elements: Vec<Vec<u8>> = match kind {
        None => Vec::new(),
        Some(RedisType::List) => ctx.db.lrange(&a[1], 0, -1)?,
        Some(RedisType::Set) => ctx.db.smembers(&a[1])?,
        Some(RedisType::ZSet) => ctx
            .db
            .zrange_by_rank(&a[1], 0, -1, false)?
            .into_iter()
            .map(|(m, _)| m)
            .collect(),
        Some(_) => return Err(CmdError::WrongType),
    };
    // BY with no `*` (such as `nosort`) keeps the collection's own order; a sorted set's
    // order can still be reversed with DESC.
    let dont_sort = by.as_ref().is_some_and(|p| !p.contains(&b'*'));
    if dont_sort && desc && kind == Some(RedisType::ZSet) {
        elements.reverse();
    }
    let mut items: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(elements.len());
    for e in elements {
        let weight = match &by {
            Some(p) if !dont_sort => lookup(ctx, p, &e)?,
            _ => None,
        };
        items.push((e, weight));
    }
    if !dont_sort {
        if alpha {
            items.sort_by(|x, y| {
                let kx = if by.is_some() {
                    x.1.as_deref().unwrap_or(b"")
                } else {
                    &x.0
                };
                let ky = if by.is_some() {
                    y.1.as_deref().unwrap_or(b"")
                } else {
                    &y.0
                };
                kx.cmp(ky).then_with(|| x.0.cmp(&y.0))
            });
        } else {
            let mut keyed = Vec::with_capacity(items.len());
            for (e, w) in items {
                let source = if by.is_some() {
                    w.clone()
                } else {
                    Some(e.clone())
                };
                let score = match source {
                    None => 0.0,
                    Some(s) => quarry_types::parse::parse_f64_strict(&s).ok_or_else(|| {
                        CmdError::err("One or more scores can't be converted into double")
                    })?,
                };
                keyed.push((score, e, w));
            }
            keyed.sort_by(|x, y| x.0.total_cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
            items = keyed.into_iter().map(|(_, e, w)| (e, w)).collect();
        }
        if desc {
            items.reverse();
        }
    }
    let (start, count) = match limit {
        Some((o, c)) => {
            let o = o.max(0) as usize;
            let c = if c < 0 { usize::MAX } else { c as usize };
            (o, c)
        }
        None => (0, usize::MAX),
    };
    let picked: Vec<Vec<u8>> = items
        .into_iter()
        .skip(start)
        .take(count)
        .map(|(e, _)| e)
        .collect();
    let mut out: Vec<Option<Vec<u8>>> = Vec::new();
    if gets.is_empty() {
        out.extend(picked.into_iter().map(Some));
    } else {
        for e in &picked {
            for g in &gets {
                out.push(lookup(ctx, g, e)?);
            }
        }
    }
    if let Some(dst) = store {
        let values: Vec<Vec<u8>> = out.into_iter().map(|v| v.unwrap_or_default()).collect();
        return Ok(Frame::Integer(ctx.db.list_store(&dst, &values)? as i64));
    }
    Ok(Frame::Array(
        out.into_iter()
            .map(|v| v.map_or(Frame::Null, |b| Frame::Bulk(Bytes::from(b))))
            .collect(),
    ))
}
