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
pub struct CursorStore {
    inner: Mutex<CursorRing>,
}

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

impl CursorStore {
    /// Hands out a cursor number for "continue after `key`".
    pub fn issue(&self, key: Vec<u8>) -> u64 {
        let mut ring = self.inner.lock();
        let id = ring.next_id;
        ring.next_id += 1;
        ring.slots[(id as usize) % CURSOR_RING] = Some((id, key));
        id
    }

    /// Where a scan goes on from: nowhere for cursor 0 (the start), else the position behind
    /// the cursor, or Redis's error for a cursor that is not known (any more).
    pub fn resume(&self, cursor: u64) -> Result<Option<Vec<u8>>, crate::CmdError> {
        if cursor == 0 {
            return Ok(None);
        }
        self.resolve(cursor)
            .map(Some)
            .ok_or_else(|| crate::CmdError::err("invalid cursor"))
    }

    /// The key behind a cursor number, if it is still known.
    pub fn resolve(&self, id: u64) -> Option<Vec<u8>> {
        let ring = self.inner.lock();
        match &ring.slots[(id as usize) % CURSOR_RING] {
            Some((stored, key)) if *stored == id => Some(key.clone()),
            _ => None,
        }
    }
}
