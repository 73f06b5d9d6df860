//! HyperLogLog commands: PFADD, PFCOUNT, PFMERGE.

use bytes::Bytes;
use quarry_resp::Frame;

use crate::{CmdResult, Ctx};

/// PFADD key [element ...]
pub fn pfadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.pfadd(&a[1], &a[2..])? as i64))
}

/// PFCOUNT key [key ...]
pub fn pfcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Integer(ctx.db.pfcount(&a[1..])? as i64))
}

/// PFMERGE destkey [sourcekey ...]
pub fn pfmerge(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    ctx.db.pfmerge(&a[1], &a[2..])?;
    Ok(Frame::ok())
}
