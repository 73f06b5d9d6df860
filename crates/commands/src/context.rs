//! What a data command sees while it runs.

use parking_lot::Mutex;
use quarry_resp::Protocol;
use quarry_types::Db;

/// The execution context of one command.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub cursors: &'a CursorStore,
    pub protocol: Protocol,
}

/// SCAN cursors: Redis clients expect numbers, while quarry continues a scan from a key. The
/// store remembers the key behind each number handed out, in a ring of fixed size as Kvrocks'
/// `redis-cursor-compatible` mode does; a cursor that fell out of the ring is refused.
///
/// With `redis-cursor-compatible no` the cursor is the key itself, as in Kvrocks: `_<key>`
/// for SCAN and the bare field or member for HSCAN, SSCAN and ZSCAN; a `_` in front is
/// dropped when it comes back, and any other text is a name to go on after.
pub struct CursorStore {
    inner: Mutex<CursorRing>,
}

/// `redis-cursor-compatible`: numbers (yes) or the names themselves (no). Set with the other
/// live settings when the configuration loads or changes.
pub static REDIS_CURSOR_COMPATIBLE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

struct CursorRing {
    next_id: u64,
    slots: Vec<Option<(u64, Vec<u8>)>>,
}

const CURSOR_RING: usize = 16384;

impl Default for CursorStore {
    fn default() -> Self {
        CursorStore {
            inner: Mutex::new(CursorRing {
                next_id: 1,
                slots: vec![None; CURSOR_RING],
            }),
        }
    }
}

/// The cursor that ends a scan (and starts one).
pub const END_CURSOR: &[u8] = b"0";

impl CursorStore {
    fn compatible(&self) -> bool {
        REDIS_CURSOR_COMPATIBLE.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The cursor that continues after `key`: a number, or (not compatible) the key itself,
    /// behind a `_` for SCAN (`keyspace`).
    pub fn cursor_after(&self, key: Vec<u8>, keyspace: bool) -> bytes::Bytes {
        if self.compatible() {
            return bytes::Bytes::from(self.issue(key).to_string());
        }
        if keyspace {
            let mut c = Vec::with_capacity(key.len() + 1);
            c.push(b'_');
            c.extend_from_slice(&key);
            c.into()
        } else {
            key.into()
        }
    }

    /// Where a scan goes on from, given the cursor a client sent: nowhere for `0` (the start),
    /// else after the name behind it; Redis' error for a number that is not one or not known.
    pub fn resume_from(&self, cursor: &[u8]) -> Result<Option<Vec<u8>>, crate::CmdError> {
        if cursor == END_CURSOR {
            return Ok(None);
        }
        if !self.compatible() {
            let name = cursor.strip_prefix(b"_").unwrap_or(cursor);
            return Ok(Some(name.to_vec()));
        }
        let number: u64 = std::str::from_utf8(cursor)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| crate::CmdError::err("invalid cursor"))?;
        self.resume(number)
    }

    /// Hands out a cursor number for "continue after `key`".
    fn issue(&self, key: Vec<u8>) -> u64 {
        let mut ring = self.inner.lock();
        let id = ring.next_id;
        ring.next_id += 1;
        ring.slots[(id as usize) % CURSOR_RING] = Some((id, key));
        id
    }

    /// Where a scan goes on from: nowhere for cursor 0 (the start), else the position behind
    /// the cursor, or Redis's error for a cursor that is not known (any more).
    fn resume(&self, cursor: u64) -> Result<Option<Vec<u8>>, crate::CmdError> {
        if cursor == 0 {
            return Ok(None);
        }
        self.resolve(cursor)
            .map(Some)
            .ok_or_else(|| crate::CmdError::err("invalid cursor"))
    }

    /// The key behind a cursor number, if it is still known.
    fn resolve(&self, id: u64) -> Option<Vec<u8>> {
        let ring = self.inner.lock();
        match &ring.slots[(id as usize) % CURSOR_RING] {
            Some((stored, key)) if *stored == id => Some(key.clone()),
            _ => None,
        }
    }
}
