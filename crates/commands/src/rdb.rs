//! Kvrocks' `RDB LOAD <path> [NX] [DB <index>]`: imports a Redis RDB file (versions 1 to
//! 11, as Redis 7.2 writes them) into the connection's namespace.
//!
//! The file is mapped, not read into memory, and walked record by record: AUX, SELECTDB,
//! RESIZEDB, expiry, LRU and LFU opcodes, then keys, whose values are decoded as RESTORE
//! decodes them (every Redis encoding of strings, lists, sets, sorted sets, hashes and
//! streams). Keys of another database than `DB` (0) are skipped, keys that expired are not
//! written, and with NX existing keys stay as they are. Each key is written in one batch (its
//! old value replaced), so a failure part way leaves the keys before it loaded. The file's
//! CRC64 is checked at the end, as Redis and Kvrocks do.

use bytes::Bytes;
use quarry_resp::Frame;
use quarry_storage::encoding::now_ms;
use tracing::{info, warn};

use crate::args::{is, parse_i64};
use crate::dump::{bad, crc64, read_value, replace_value, Reader};
use crate::{CmdError, CmdResult, Ctx};

const OP_FUNCTION: u8 = 0xF5;
const OP_FUNCTION2: u8 = 0xF6;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;
/// The newest RDB format read (Redis 7.2).
const MAX_VERSION: u32 = 11;

/// What a load did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub keys: u64,
    pub expired: u64,
    pub skipped_existing: u64,
    pub other_db: u64,
}

/// Loads the RDB image `data` into `ctx.db`.
pub fn load(ctx: &Ctx<'_>, data: &[u8], db_index: u64, nx: bool) -> Result<Loaded, CmdError> {
    if data.len() < 9 || &data[..5] != b"REDIS" {
        return Err(CmdError::err("Wrong signature trying to load DB from file"));
    }
    let version: u32 = std::str::from_utf8(&data[5..9])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CmdError::err("Wrong signature trying to load DB from file"))?;
    if version == 0 || version > MAX_VERSION {
        return Err(CmdError::err(format!(
            "Can't handle RDB format version {version}"
        )));
    }
    let mut r = Reader { b: data, pos: 9 };
    let mut done = Loaded::default();
    let mut db_id = 0u64;
    let mut expire_at = 0u64;
    let now = now_ms();
    let started = std::time::Instant::now();
    loop {
        let op = r.byte()?;
        match op {
            OP_EOF => break,
            OP_EXPIRETIME => {
                let secs = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| bad())?);
                expire_at = secs as u64 * 1000;
                continue;
            }
            OP_EXPIRETIME_MS => {
                expire_at = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| bad())?);
                continue;
            }
            OP_FREQ => {
                r.byte()?;
                continue;
            }
            OP_IDLE => {
                r.len()?;
                continue;
            }
            OP_SELECTDB => {
                db_id = r.len()?;
                continue;
            }
            OP_RESIZEDB => {
                r.len()?;
                r.len()?;
                continue;
            }
            OP_AUX => {
                r.string()?;
                r.string()?;
                continue;
            }
            OP_MODULE_AUX => return Err(CmdError::err("RDB module not supported")),
            OP_FUNCTION | OP_FUNCTION2 => return Err(CmdError::err("RDB function not supported")),
            _ => {}
        }
        let key = r.string()?;
        let value = read_value(&mut r, op)?;
        let expiry = std::mem::take(&mut expire_at);
        if db_id != db_index {
            done.other_db += 1;
            continue;
        }
        if expiry != 0 && expiry <= now {
            done.expired += 1;
            continue;
        }
        let db = ctx.db;
        let _guard = db.locks().lock(&key);
        if nx && db.key_type(&key)?.is_some() {
            done.skipped_existing += 1;
            continue;
        }
        replace_value(db, &key, value, expiry)?;
        done.keys += 1;
        if done.keys.is_multiple_of(100_000) {
            info!(
                keys = done.keys,
                mb = r.pos / (1024 * 1024),
                of_mb = data.len() / (1024 * 1024),
                "RDB LOAD in progress"
            );
        }
    }
    // RDB 5 and later end with the CRC64 of everything before it (0: saved without one).
    if version >= 5 {
        let at = r.pos;
        let stored = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| bad())?);
        if stored != 0 && stored != crc64(&data[..at]) {
            warn!("RDB LOAD: the file's checksum does not match its contents");
            return Err(CmdError::err(
                "All objects were processed and loaded but the checksum is unexpected!",
            ));
        }
    }
    info!(
        keys = done.keys,
        expired = done.expired,
        existing_skipped = done.skipped_existing,
        other_db = done.other_db,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "RDB LOAD done"
    );
    Ok(done)
}

/// RDB LOAD path [NX] [DB index]
pub fn rdb(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if !is(&a[1], "LOAD") {
        return Err(CmdError::err("unknown subcommand"));
    }
    let path = String::from_utf8_lossy(&a[2]).to_string();
    let (mut nx, mut db_index) = (false, 0u64);
    let mut i = 3;
    while i < a.len() {
        if is(&a[i], "NX") {
            nx = true;
            i += 1;
        } else if is(&a[i], "DB") && i + 1 < a.len() {
            db_index = parse_i64(&a[i + 1])
                .ok()
                .filter(|&n| (0..=u32::MAX as i64).contains(&n))
                .ok_or(CmdError::NotInteger)? as u64;
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let file = std::fs::File::open(&path)
        .map_err(|e| CmdError::err(format!("cannot open RDB file {path}: {e}")))?;
    // SAFETY: the map is read-only and private, and holds while no other process truncates
    // or rewrites the file during the load (docs/operations: the file must stay as it is
    // while it loads). A rewrite shows as a checksum error; a truncation would end the
    // process with SIGBUS, as it would any reader of a mapped file.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| CmdError::err(format!("cannot map RDB file {path}: {e}")))?;
    load(ctx, &map, db_index, nx)?;
    Ok(Frame::ok())
}
