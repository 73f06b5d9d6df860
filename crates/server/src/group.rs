//! Group commit of a pipeline: consecutive write commands that one connection sent together
//! run in one transaction ([`quarry_types::txn`], as EXEC's commands do) and reach RocksDB as
//! one WriteBatch, instead of one write (and one pass through RocksDB's write group) each.
//!
//! What each reply means does not change. The replies of a group are sent only after the
//! group's batch is in the WAL (the connection commits the group before it sends anything, or
//! runs a command that is not grouped, or waits for more input), so every acknowledged write
//! is durable as documented; a group whose commit fails answers the error for each of its
//! commands, and none of its writes is visible. Other clients never see a part of a group
//! before its commit: each command's keys are locked for the whole group, and the writes are
//! in the thread's overlay until then. Replicas receive the group as one batch, as they do an
//! EXEC. Watchers are marked and blocked clients woken after the commit, as after an EXEC.
//!
//! A group is taken only where it cannot change a reply: a data command that writes, outside
//! MULTI, with replies on, in standalone mode. A command whose keys another connection holds
//! ends this group first, so two groups never wait for each other, and then waits for them
//! without holding its worker thread ([`Busy`]).

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quarry_commands::table::{flag, CommandSpec};
use quarry_commands::{CmdError, Exec};
use quarry_resp::Frame;

use crate::connection::{dispatch, Mode, ReplyMode, Session};
use crate::server::{Server, Storage};

/// A group this large is committed, so that a long pipeline does not build a huge batch.
const MAX_COMMANDS: usize = 256;

/// The open group of a connection; its transaction lives on the connection's thread, so the
/// connection commits it before anything that may move it to another thread (any await).
pub struct Group {
    txn: quarry_types::txn::TxnGuard,
    /// The write fence, held shared from the group's first command until the group is dropped
    /// after its commit: a verification repair that rewrites keys never falls between a
    /// grouped command's read and the group's write. (Grouped commands do not take it again.)
    /// Held without a guard, as the key locks are: a guard would tie the connection's task to
    /// this thread. (`fence_shard` is the shard it holds.)
    fence: Arc<quarry_types::sharded::ReadMostly<()>>,
    fence_shard: usize,
    storage: Arc<Storage>,
    /// The connection's namespace, whose view holds the group's key locks.
    ns: Option<Bytes>,
    /// Each grouped command's reply, as a byte range of the connection's output buffer.
    replies: Vec<Range<usize>>,
    /// The grouped write commands and their keys, for watchers, blocked clients and the
    /// command statistics after the commit.
    written: Vec<(&'static CommandSpec, Vec<Bytes>)>,
}

impl Drop for Group {
    /// A group that ends without its commit (it should not: the connection commits before it
    /// can leave this thread) still gives its keys back; its writes are dropped with the
    /// transaction. After a commit this finds nothing left to release.
    fn drop(&mut self) {
        self.db().locks().release_extras();
        // SAFETY: `run` locked this shard shared for this group, and nothing else unlocks it.
        unsafe { self.fence.unlock_shared(self.fence_shard) };
    }
}

impl Group {
    fn db(&self) -> crate::server::DbRef<'_> {
        self.storage.db(self.ns.as_ref())
    }
}

/// Whether `spec` may join a group on this connection now. `more` says that the client sent
/// more after this request: a lone command gains nothing from a group.
pub fn eligible(server: &Server, session: &Session, spec: &CommandSpec, more: bool) -> bool {
    (more || session.group.is_some())
        && spec.has(flag::WRITE)
        && !spec.has(flag::WALKS_KEYSPACE)
        && matches!(spec.exec, Exec::Data(_))
        && !server.cluster.enabled
        && session.multi.is_none()
        && session.reply == ReplyMode::On
        // With a batch size limit each command is its own batch, as in Kvrocks.
        && quarry_storage::WRITE_BATCH_MAX_BYTES.load(std::sync::atomic::Ordering::Relaxed) == 0
}

/// A grouped command whose keys another connection holds: it runs again, with these
/// arguments, once [`KeyWait`] says so.
pub struct Busy {
    pub args: Vec<Bytes>,
    pub spec: &'static CommandSpec,
    pub wait: KeyWait,
}

/// The held key's mutex in the key locks of the database the command runs in.
pub struct KeyWait {
    storage: Arc<Storage>,
    ns: Option<Bytes>,
    slot: usize,
}

impl KeyWait {
    /// Waits for the mutex without holding the thread ([`quarry_types::KeyLocks::until_free`]):
    /// true if this connection was woken in its turn.
    pub async fn until_free(&self) -> bool {
        let db = self.storage.db(self.ns.as_ref());
        db.locks().until_free(self.slot).await
    }

    /// Runs the command again: as the woken connection, whose turn it is, if `woken`.
    ///
    /// The retry goes through the whole of `execute` again, not just the group: while the
    /// connection waited, the server may have become a replica, changed its ACL rules or
    /// storage, or started a script that makes writes answer BUSY.
    pub fn retry<R>(&self, woken: bool, retry: impl FnOnce() -> R) -> R {
        if woken {
            let db = self.storage.db(self.ns.as_ref());
            db.locks().retry_woken(self.slot, retry)
        } else {
            retry()
        }
    }
}

/// Runs a command that [`eligible`] accepted inside this connection's group, opening one if
/// needed. `positions` are where its keys are in `args`. If another connection holds one of
/// its keys, this connection's group is committed and the command comes back as [`Busy`]:
/// the connection waits for that key without holding its worker thread, which meanwhile runs
/// other connections (and the holder, often), then runs the command again.
pub fn run(
    server: &Server,
    session: &mut Session,
    spec: &'static CommandSpec,
    sub: Option<usize>,
    args: Vec<Bytes>,
    positions: Vec<usize>,
    out: &mut BytesMut,
) -> Result<(), Busy> {
    let keys = quarry_commands::table::key_names(&args, &positions);
    let joined = session
        .group
        .as_ref()
        .is_some_and(|g| g.db().locks().lock_extras(&keys).is_ok());
    if !joined {
        // Another group holds a key of this command, or none is open: end ours first.
        commit(server, session, out);
        if let Some(storage) = server.storage() {
            // The fence before the key locks, in the order every write takes them.
            let fence = Arc::clone(&server.migration.fence);
            // The group's drop unlocks it once, or the failure just below does.
            let fence_shard = fence.lock_shared();
            let locked = storage
                .db(session.namespace.as_ref())
                .locks()
                .lock_extras(&keys);
            if let Err(slot) = locked {
                // SAFETY: locked shared just above, and no group owns it.
                unsafe { fence.unlock_shared(fence_shard) };
                let wait = KeyWait {
                    storage,
                    ns: session.namespace.clone(),
                    slot,
                };
                return Err(Busy { args, spec, wait });
            }
            session.group = Some(Group {
                txn: quarry_types::txn::begin(),
                fence,
                fence_shard,
                storage,
                ns: session.namespace.clone(),
                replies: Vec::new(),
                written: Vec::new(),
            });
        }
    }
    // Without a database (a full sync is swapping it) the command runs alone and answers so.
    let mode = if session.group.is_some() {
        Mode::Grouped
    } else {
        Mode::Alone
    };
    let start = out.len();
    dispatch(server, session, spec, sub, args, out, mode, &positions);
    let Some(g) = session.group.as_mut() else {
        return Ok(());
    };
    g.replies.push(start..out.len());
    g.written.push((spec, keys));
    if g.replies.len() >= MAX_COMMANDS {
        commit(server, session, out);
    }
    Ok(())
}

/// Commits the connection's group, if one is open: one WriteBatch, then the locks are released,
/// watchers marked and blocked clients woken. If the batch cannot be written, each grouped
/// command's reply becomes the error.
pub fn commit(server: &Server, session: &mut Session, out: &mut BytesMut) {
    let Some(mut group) = session.group.take() else {
        return;
    };
    let txn = std::mem::replace(&mut group.txn, quarry_types::txn::TxnGuard::idle());
    let overlay = txn.finish();
    let still_current = server
        .storage()
        .is_some_and(|now| Arc::ptr_eq(&now, &group.storage));
    let committed = if still_current {
        group.db().commit(overlay).map_err(CmdError::from)
    } else {
        Err(CmdError::Loading)
    };
    group.db().locks().release_extras();
    // Watchers that came in while the group ran may have read the old values.
    for (_, keys) in &group.written {
        server.watches.touch_keys(group.ns.as_ref(), keys);
    }
    match committed {
        Ok(()) => {
            crate::notify::flush_deferred(server, group.ns.as_ref());
            if server.waiting.blocked_clients() > 0 {
                for key in group.written.iter().flat_map(|(_, keys)| keys) {
                    server.waiting.wake(key);
                }
            }
        }
        Err(e) => {
            crate::notify::discard_deferred();
            let text = e.to_string();
            if let CmdError::Storage(detail) = &e {
                crate::connection::log_storage_error(server, "group commit", detail);
            }
            replace_replies(out, &group.replies, &text, session);
            for (spec, _) in &group.written {
                server.stats.count_error(&text);
                server.command_stats[Server::command_index(spec)].add_failed();
            }
        }
    }
}

/// Rewrites `out` with `error` in place of each reply in `replies` (ascending, disjoint), and
/// keeps the bytes between them (replies of commands that were not grouped).
fn replace_replies(out: &mut BytesMut, replies: &[Range<usize>], error: &str, session: &Session) {
    let Some(first) = replies.first() else {
        return;
    };
    let tail = out.split_off(first.start);
    let base = first.start;
    let mut at = 0;
    for r in replies {
        out.extend_from_slice(&tail[at..r.start - base]);
        Frame::Error(error.to_string()).encode(session.protocol, out);
        at = r.end - base;
    }
    out.extend_from_slice(&tail[at..]);
}
