//! SLOWLOG: the most recent commands that took longer than `slowlog-log-slower-than`.

use std::collections::VecDeque;

use bytes::Bytes;
use quarry_resp::Frame;

const MAX_ARGS: usize = 32;
const MAX_ARG_LEN: usize = 128;

pub struct SlowEntry {
    id: u64,
    unix_secs: u64,
    micros: u64,
    args: Vec<Bytes>,
    addr: String,
    name: String,
}

#[derive(Default)]
pub struct SlowLog {
    next_id: u64,
    entries: VecDeque<SlowEntry>,
}

impl SlowLog {
    pub fn push(
        &mut self,
        args: &[Bytes],
        micros: u64,
        addr: String,
        name: String,
        max_len: usize,
    ) {
        // Like Redis: at most 32 arguments and 128 bytes of each are kept.
        let mut kept: Vec<Bytes> = Vec::new();
        for (i, a) in args.iter().enumerate() {
            if i == MAX_ARGS - 1 && args.len() > MAX_ARGS {
                kept.push(Bytes::from(format!(
                    "... ({} more arguments)",
                    args.len() - MAX_ARGS + 1
                )));
                break;
            }
            if a.len() > MAX_ARG_LEN {
                let mut v = a[..MAX_ARG_LEN].to_vec();
                v.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                );
                kept.push(Bytes::from(v));
            } else {
                kept.push(a.clone());
            }
        }
        let unix_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.entries.push_front(SlowEntry {
            id: self.next_id,
            unix_secs,
            micros,
            args: kept,
            addr,
            name,
        });
        self.next_id += 1;
        self.trim(max_len);
    }

    pub fn trim(&mut self, max_len: usize) {
        self.entries.truncate(max_len);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn reset(&mut self) {
        self.entries.clear();
    }

    /// SLOWLOG GET: the `count` newest entries (all of them for a negative count).
    pub fn get(&self, count: i64) -> Frame {
        let n = if count < 0 {
            self.entries.len()
        } else {
            count as usize
        };
        Frame::Array(
            self.entries
                .iter()
                .take(n)
                .map(|e| {
                    Frame::Array(vec![
                        Frame::Integer(e.id as i64),
                        Frame::Integer(e.unix_secs as i64),
                        Frame::Integer(e.micros as i64),
                        Frame::Array(e.args.iter().cloned().map(Frame::Bulk).collect()),
                        Frame::bulk(e.addr.clone()),
                        Frame::bulk(e.name.clone()),
                    ])
                })
                .collect(),
        )
    }
}
