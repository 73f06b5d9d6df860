//! Cluster mode in the server: the topology the controller pushes (CLUSTERX), the client view
//! (CLUSTER, READONLY, READWRITE, ASKING), request routing, and the replication that follows
//! the topology (kvrocks-compat.md §3).

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use quarry_cluster::topology::{parse_nodes, parse_range, ClusterError, Role, NODE_ID_LEN};
use quarry_cluster::{key_slot, route, RouteRequest, Topology};
use quarry_commands::args::{is, lower, parse_i64};
use quarry_commands::table::flag;
use quarry_commands::{CmdError, CommandSpec};
use quarry_resp::Frame;
use tracing::{error, info, warn};

use crate::connection::Session;
use crate::replication::{enter_role, Choice};
use crate::server::Server;

use crate::admin::{reply_result, Outcome};

/// The file the topology persists to, in `dir`.
pub const NODES_CONF: &str = "nodes.conf";

pub struct ClusterState {
    pub enabled: bool,
    pub topology: RwLock<Arc<Topology>>,
    pub nodes_conf: PathBuf,
    /// Where the migration bookkeeping persists ([`crate::migration::save_handovers`]).
    pub handovers_file: PathBuf,
    /// Serialises topology changes.
    change: Mutex<()>,
}

impl ClusterState {
    pub fn new(enabled: bool, dir: &std::path::Path, topology: Topology) -> ClusterState {
        ClusterState {
            enabled,
            topology: RwLock::new(Arc::new(topology)),
            nodes_conf: dir.join(NODES_CONF),
            handovers_file: dir.join(crate::migration::HANDOVERS_FILE),
            change: Mutex::new(()),
        }
    }

    pub fn current(&self) -> Arc<Topology> {
        self.topology.read().clone()
    }
}

/// The role a topology gives this node. Until a topology names it, and while it is a slave of
/// a master the topology does not list, the node is detached: a replica without a link, on
/// which nothing writes. (Kvrocks starts such a node as a master, and its start-up write of a
/// new replication id then costs a full sync when it turns out to be a replica.)
pub fn choice_of(topo: &Topology) -> Choice {
    match topo.myself() {
        Some(me) if me.role == Role::Master => Choice::Master,
        Some(_) => match topo.my_master() {
            Some(m) => Choice::Replica {
                host: m.host.clone(),
                port: m.port,
            },
            None => Choice::Detached,
        },
        None => Choice::Detached,
    }
}

fn cluster_err(e: ClusterError) -> CmdError {
    match e {
        ClusterError::NotInitialized => {
            CmdError::Other("CLUSTERDOWN The cluster is not initialized".into())
        }
        other => CmdError::err(other),
    }
}

/// The routing check of one command (`keys` are the positions of its keys in `args`): None to
/// run it here, or the error to answer.
pub fn check_route(
    server: &Server,
    session: &Session,
    spec: &CommandSpec,
    args: &[Bytes],
    keys: &[usize],
) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let slots: Vec<u16> = keys.iter().map(|&i| key_slot(&args[i])).collect();
    // RESTORE-ASKING (what MIGRATE sends in a cluster) is a RESTORE that comes with ASKING.
    let asking = session.asking || spec.name == "restore-asking";
    check_slots(server, session, &slots, spec.has(flag::WRITE), asking)
}

/// The routing check of a blocked client's next attempt (a write on all its keys).
pub fn check_blocking(
    server: &Server,
    session: &Session,
    op: &crate::blocking::BlockingOp,
) -> Option<String> {
    if !server.cluster.enabled {
        return None;
    }
    let slots: Vec<u16> = op.all_keys().iter().map(|k| key_slot(k)).collect();
    check_slots(server, session, &slots, true, session.asking)
}

/// The routing check for keys whose slots are `slots`; `asking` as if ASKING came first.
pub fn check_slots(
    server: &Server,
    session: &Session,
    slots: &[u16],
    write: bool,
    asking: bool,
) -> Option<String> {
    let topo = server.cluster.topology.read();
    let decision = route(
        &topo,
        &RouteRequest {
            slots,
            write,
            readonly_conn: session.readonly,
        },
    );
    let slot = slots[0];
    let m = &server.migration;
    match decision {
        quarry_cluster::Route::Serve => {
            let mine = topo.owner(slot).is_some_and(|o| o.id == topo.myid);
            if mine {
                // Handed over, the topology not updated yet: the destination serves it.
                if let Some(addr) = m.migrated_to(slot) {
                    return Some(format!("MOVED {slot} {addr}"));
                }
                if m.is_interrupted(slot) {
                    return Some(
                        "TRYAGAIN Slot handover was interrupted by a restart; waiting for the cluster topology"
                            .into(),
                    );
                }
                if write && m.is_forbidden(slot) {
                    return Some(
                        "TRYAGAIN Can't write to slot being migrated which is in write forbidden phase"
                            .into(),
                    );
                }
            }
            None
        }
        quarry_cluster::Route::Moved { .. } | quarry_cluster::Route::NotServed
            if (m.importing(slot) && (session.importing || asking)) || m.is_imported(slot) =>
        {
            None
        }
        other => other.error(),
    }
}

pub fn run(server: &Server, session: &mut Session, name: &str, a: &[Bytes]) -> Outcome {
    match name {
        "readonly" => {
            session.readonly = true;
            reply_result(Ok(Frame::ok()))
        }
        "readwrite" => {
            session.readonly = false;
            reply_result(Ok(Frame::ok()))
        }
        // Good for the next command: it may use a slot being imported here.
        "asking" => {
            session.asking = true;
            reply_result(Ok(Frame::ok()))
        }
        "applybatch" if server.cluster.enabled && !session.importing => {
            reply_result(Err(CmdError::err(
                "APPLYBATCH is accepted only on a connection importing slots (CLUSTER IMPORT)",
            )))
        }
        "applybatch" => reply_result(apply_batch(server, a)),
        _ if !server.cluster.enabled => {
            reply_result(Err(CmdError::err("Cluster mode is not enabled")))
        }
        "cluster" => reply_result(cluster(server, session, a)),
        "clusterx" => reply_result(clusterx(server, a)),
        _ => reply_result(Err(CmdError::err("Invalid cluster command options"))),
    }
}

fn cluster(server: &Server, session: &mut Session, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = lower(&a[1]);
    let topo = server.cluster.current();
    let init = || {
        if topo.initialized() {
            Ok(())
        } else {
            Err(cluster_err(ClusterError::NotInitialized))
        }
    };
    match (sub.as_str(), a.len()) {
        ("keyslot", 3) => Ok(Frame::Integer(key_slot(&a[2]) as i64)),
        ("myid", 2) => Ok(Frame::bulk(topo.myid.clone())),
        ("nodes", 2) => {
            init()?;
            let marker = server
                .migration
                .nodes_marker(|slot| topo.owner(slot).map(|n| n.id.clone()));
            Ok(Frame::Verbatim(topo.nodes_text(&marker)))
        }
        ("info", 2) => {
            init()?;
            let mut text = topo.info_text();
            // Migration state is a master's (Kvrocks shows it only there).
            if topo.myself().is_some_and(|me| me.role == Role::Master)
                && !server.repl.is_replica.load(std::sync::atomic::Ordering::Acquire)
            {
                text.push_str(&server.migration.info_lines());
            }
            Ok(Frame::Verbatim(text))
        }
        ("import", 4) => import(server, session, a),
        ("slots", 2) => {
            init()?;
            let node = |id: &str| {
                let n = &topo.nodes[id];
                Frame::Array(vec![
                    Frame::bulk(n.host.clone()),
                    Frame::Integer(n.port as i64),
                    Frame::bulk(n.id.clone()),
                ])
            };
            Ok(Frame::Array(
                topo.slot_runs()
                    .into_iter()
                    .map(|(s, e, owner)| {
                        let mut entry =
                            vec![Frame::Integer(s as i64), Frame::Integer(e as i64), node(owner)];
                        entry.extend(topo.replicas_of(owner).iter().map(|r| node(&r.id)));
                        Frame::Array(entry)
                    })
                    .collect(),
            ))
        }
        ("shards", 2) => {
            init()?;
            Ok(shards(server, &topo))
        }
        ("replicas", 3) => {
            init()?;
            let id = String::from_utf8_lossy(&a[2]).to_string();
            topo.replicas_text(&id)
                .map(Frame::Verbatim)
                .map_err(cluster_err)
        }
        ("countkeysinslot", 3) => {
            let slot = slot_arg(&a[2])?;
            let storage = server.storage().ok_or(CmdError::Loading)?;
            Ok(Frame::Integer(storage.db.keys_in_slot(slot, u64::MAX)?.len() as i64))
        }
        ("getkeysinslot", 4) => {
            let slot = slot_arg(&a[2])?;
            let count = parse_i64(&a[3])?;
            if count < 0 {
                return Err(CmdError::err("Invalid number of keys"));
            }
            let storage = server.storage().ok_or(CmdError::Loading)?;
            Ok(Frame::Array(
                storage
                    .db
                    .keys_in_slot(slot, count as u64)?
                    .into_iter()
                    .map(Frame::bulk)
                    .collect(),
            ))
        }
        ("reset", 2 | 3) => {
            if a.len() == 3 && !is(&a[2], "hard") && !is(&a[2], "soft") {
                return Err(CmdError::Syntax);
            }
            reset(server)
        }
        _ => Err(CmdError::err(
            "CLUSTER command, CLUSTER INFO|NODES|SLOTS|SHARDS|KEYSLOT|MYID|REPLICAS|COUNTKEYSINSLOT|GETKEYSINSLOT|RESET",
        )),
    }
}

fn slot_arg(b: &[u8]) -> Result<u16, CmdError> {
    match parse_i64(b) {
        Ok(v) if (0..16384).contains(&v) => Ok(v as u16),
        _ => Err(CmdError::err("Invalid slot")),
    }
}

/// CLUSTER SHARDS, in Redis 7's shape: one map per master with its slots and nodes.
fn shards(server: &Server, topo: &Topology) -> Frame {
    let seq = server.engine().map(|e| e.latest_sequence()).unwrap_or(0);
    let node_map = |n: &quarry_cluster::Node| {
        let offset = if n.id == topo.myid { seq as i64 } else { 0 };
        Frame::Map(vec![
            (Frame::bulk("id"), Frame::bulk(n.id.clone())),
            (Frame::bulk("port"), Frame::Integer(n.port as i64)),
            (Frame::bulk("ip"), Frame::bulk(n.host.clone())),
            (Frame::bulk("endpoint"), Frame::bulk(n.host.clone())),
            (
                Frame::bulk("role"),
                Frame::bulk(if n.role == Role::Master {
                    "master"
                } else {
                    "replica"
                }),
            ),
            (Frame::bulk("replication-offset"), Frame::Integer(offset)),
            (
                Frame::bulk("health"),
                Frame::bulk(if n.failed { "fail" } else { "online" }),
            ),
        ])
    };
    Frame::Array(
        topo.nodes
            .values()
            .filter(|n| n.role == Role::Master)
            .map(|m| {
                let slots = topo
                    .ranges_of(&m.id)
                    .into_iter()
                    .flat_map(|(s, e)| [Frame::Integer(s as i64), Frame::Integer(e as i64)])
                    .collect();
                let mut nodes = vec![node_map(m)];
                nodes.extend(topo.replicas_of(&m.id).into_iter().map(node_map));
                Frame::Map(vec![
                    (Frame::bulk("slots"), Frame::Array(slots)),
                    (Frame::bulk("nodes"), Frame::Array(nodes)),
                ])
            })
            .collect(),
    )
}

fn clusterx(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = lower(&a[1]);
    match (sub.as_str(), a.len()) {
        ("version", 2) => Ok(Frame::bulk(server.cluster.current().version.to_string())),
        ("myid", 2) => Ok(Frame::bulk(server.cluster.current().myid.clone())),
        ("setnodeid", 3) if a[2].len() == NODE_ID_LEN => {
            let id = String::from_utf8_lossy(&a[2]).to_string();
            let _serial = server.cluster.change.lock();
            let mut topo = (*server.cluster.current()).clone();
            topo.myid = id;
            commit(server, topo)?;
            Ok(Frame::ok())
        }
        ("setnodes", 4 | 5) => {
            let version = std::str::from_utf8(&a[3])
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| CmdError::err("Invalid version"))?;
            let force = match a.get(4) {
                None => false,
                Some(f) if is(f, "force") => true,
                Some(_) => return Err(CmdError::err("Invalid setnodes options")),
            };
            set_nodes(server, &String::from_utf8_lossy(&a[2]), version, force)?;
            Ok(Frame::ok())
        }
        ("migrate", 3) if is(&a[2], "cancel") => {
            let job = server.migration.job.lock().clone();
            match job {
                Some(j) if j.running() => {
                    j.cancel.store(true, std::sync::atomic::Ordering::Release);
                    tokio::task::block_in_place(|| {
                        j.wait(Some(std::time::Duration::from_secs(30)))
                    });
                    Ok(Frame::ok())
                }
                _ => Err(CmdError::err("There is no migrating job")),
            }
        }
        ("migrate", 4..=6) => migrate(server, a),
        ("setslot", 6) => {
            let ranges = parse_slot_ranges(&String::from_utf8_lossy(&a[2]))?;
            if !is(&a[3], "node") {
                return Err(CmdError::err("Invalid setslot options"));
            }
            if a[4].len() != NODE_ID_LEN {
                return Err(CmdError::err("Invalid node id"));
            }
            let version = parse_i64(&a[5])?;
            if version < 0 {
                return Err(CmdError::err("Invalid version"));
            }
            set_slot(server, &ranges, &String::from_utf8_lossy(&a[4]), version)?;
            Ok(Frame::ok())
        }
        _ => Err(CmdError::err(
            "CLUSTERX command, CLUSTERX VERSION|MYID|SETNODEID|SETNODES|SETSLOT|MIGRATE",
        )),
    }
}

/// CLUSTERX MIGRATE <slot|a-b> <dst_node_id> [ASYNC|SYNC [timeout]]
fn migrate(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let range = match parse_slot_ranges(&String::from_utf8_lossy(&a[2]))?[..] {
        [range] => range,
        // Kvrocks 2.10 takes the first range and ignores the others without a word.
        _ => {
            return Err(CmdError::err(
                "Only one slot range can be migrated at a time",
            ))
        }
    };
    let dst_id = String::from_utf8_lossy(&a[3]).to_string();
    let (sync, timeout) = match a.get(4).map(|f| lower(f)) {
        None => (false, None),
        Some(f) if f == "async" => {
            if a.len() > 5 {
                return Err(CmdError::err("Async migration does not support timeout"));
            }
            (false, None)
        }
        Some(f) if f == "sync" => {
            let t = match a.get(5) {
                None => None,
                Some(t) => {
                    let t = parse_i64(t)
                        .map_err(|_| CmdError::err("timeout is not an integer or out of range"))?;
                    if t < 0 {
                        return Err(CmdError::err("timeout is negative"));
                    }
                    (t > 0).then(|| std::time::Duration::from_secs(t as u64))
                }
            };
            (true, t)
        }
        Some(_) => return Err(CmdError::err("Invalid sync flag")),
    };
    let topo = server.cluster.current();
    init_or(&topo)?;
    let dst = topo
        .nodes
        .get(&dst_id)
        .ok_or_else(|| CmdError::err("Can't find the destination node id"))?;
    let mig = &server.migration;
    if (range.0..=range.1).any(|s| mig.migrated_to(s).is_some()) {
        return Err(CmdError::err("Can't migrate slot which has been migrated"));
    }
    if (range.0..=range.1).any(|s| topo.owner(s).is_none_or(|o| o.id != topo.myid)) {
        return Err(CmdError::err(
            "Can't migrate slot which doesn't belong to me",
        ));
    }
    if topo.myself().is_some_and(|me| me.role != Role::Master)
        || server
            .repl
            .is_replica
            .load(std::sync::atomic::Ordering::Acquire)
    {
        return Err(CmdError::err("Slave can't migrate slot"));
    }
    if dst.role != Role::Master {
        return Err(CmdError::err("Can't migrate slot to a slave"));
    }
    if dst.id == topo.myid {
        return Err(CmdError::err("Can't migrate slot to myself"));
    }
    let job = {
        let mut current = mig.job.lock();
        if current.as_ref().is_some_and(|j| j.running()) {
            return Err(CmdError::err("There is already a migrating job"));
        }
        let job = Arc::new(crate::migration::Job::new(
            range,
            dst.id.clone(),
            format!("{}:{}", dst.host, dst.port),
        ));
        *current = Some(job.clone());
        job
    };
    let me = server
        .repl
        .me
        .upgrade()
        .ok_or_else(|| CmdError::err("shutting down"))?;
    crate::migration::start(&me, job.clone());
    if !sync {
        return Ok(Frame::ok());
    }
    let ended = tokio::task::block_in_place(|| job.wait(timeout));
    if !ended {
        return Ok(Frame::Null);
    }
    let state = *job.state.lock();
    if state == "success" {
        return Ok(Frame::ok());
    }
    let error = job.error.lock().clone();
    Err(CmdError::err(
        error.unwrap_or_else(|| "migration failed".into()),
    ))
}

fn init_or(topo: &Topology) -> Result<(), CmdError> {
    if topo.initialized() {
        Ok(())
    } else {
        Err(cluster_err(ClusterError::NotInitialized))
    }
}

/// CLUSTER IMPORT <range> <0 start | 1 success | 2 failed>, sent by a migrating source.
fn import(server: &Server, session: &mut Session, a: &[Bytes]) -> Result<Frame, CmdError> {
    let range = parse_range(&String::from_utf8_lossy(&a[2]))
        .ok_or_else(|| CmdError::err("Slot range is invalid"))?;
    let state = match parse_i64(&a[3]) {
        Ok(s @ 0..=2) => s,
        _ => return Err(CmdError::err("Invalid import state")),
    };
    let topo = server.cluster.current();
    if topo.myself().is_some_and(|me| me.role != Role::Master)
        || server
            .repl
            .is_replica
            .load(std::sync::atomic::Ordering::Acquire)
    {
        return Err(CmdError::err("Slave can't import slot"));
    }
    let storage = server.storage().ok_or(CmdError::Loading)?;
    let mut import = server.migration.import.lock();
    match state {
        0 => {
            if (range.0..=range.1).any(|s| topo.owner(s).is_some_and(|o| o.id == topo.myid)) {
                return Err(CmdError::err("Can't import slot which belongs to me"));
            }
            if let Some(i) = import.as_ref() {
                if i.state == "start" && i.client != session.handle.id {
                    if i.range != range {
                        return Err(CmdError::err("There is already an importing job"));
                    }
                    // The same range again from a new connection: the source retries after
                    // losing the old one (a network cut leaves it open here). Start over.
                    warn!(range = %format_range(range), "a new import of the same range replaces the unfinished one");
                }
            }
            // Whatever an earlier attempt left goes first.
            storage.db.delete_slot_range(range.0, range.1)?;
            *import = Some(crate::migration::Import {
                range,
                state: "start",
                client: session.handle.id,
            });
            session.importing = true;
            info!(range = %format_range(range), "importing slots");
        }
        1 => {
            let Some(i) = import.as_mut().filter(|i| i.range == range) else {
                return Err(CmdError::err("Slot range is invalid"));
            };
            // Recorded before it is acknowledged: a restart keeps serving the range. If it
            // cannot be recorded, the source keeps the range.
            server.migration.imported.write().push(range);
            if let Err(e) = tokio::task::block_in_place(|| crate::migration::save_handovers(server))
            {
                server.migration.imported.write().retain(|r| *r != range);
                return Err(CmdError::err(e));
            }
            i.state = "success";
            session.importing = false;
            info!(range = %format_range(range), "slots imported");
        }
        _ => {
            match import.as_mut() {
                Some(i) if i.range == range => i.state = "error",
                _ => return Err(CmdError::err("Slot range is invalid")),
            }
            server.migration.imported.write().retain(|r| *r != range);
            storage.db.delete_slot_range(range.0, range.1)?;
            tokio::task::block_in_place(|| crate::migration::save_handovers(server))
                .map_err(CmdError::err)?;
            session.importing = false;
            warn!(range = %format_range(range), "slot import failed; its keys were removed");
        }
    }
    Ok(Frame::ok())
}

fn format_range(r: (u16, u16)) -> String {
    quarry_cluster::topology::format_ranges(&[r])
}

/// APPLYBATCH <raw WriteBatch>: a migrating source's data, written as one batch.
fn apply_batch(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    quarry_storage::batch::decode(&a[1])
        .map_err(|e| CmdError::err(format!("invalid write batch: {e}")))?;
    let engine = server.engine().ok_or(CmdError::Loading)?;
    engine
        .write(
            quarry_storage::WriteBatch::from_data(&a[1]),
            quarry_storage::WriteOrigin::Local,
        )
        .map_err(|e| CmdError::Storage(e.to_string()))?;
    Ok(Frame::Integer(a[1].len() as i64))
}

/// Called when a connection ends, however it ends: an import that was still running on it
/// failed.
pub fn connection_closed(server: &Server, client: u64) {
    let mut import = server.migration.import.lock();
    let Some(i) = import.as_mut() else { return };
    if i.client != client || i.state != "start" {
        return;
    }
    i.state = "error";
    let range = i.range;
    drop(import);
    warn!(range = %format_range(range), "the importing connection closed mid-import; removing the partial data");
    if let Some(storage) = server.storage() {
        if let Err(e) = storage.db.delete_slot_range(range.0, range.1) {
            tracing::error!(error = %e, "cannot remove a failed import's keys");
        }
    }
}

fn set_nodes(server: &Server, text: &str, version: i64, force: bool) -> Result<(), CmdError> {
    if version < 0 {
        return Err(cluster_err(ClusterError::InvalidVersion));
    }
    let _serial = server.cluster.change.lock();
    let current = server.cluster.current();
    if !force {
        if version < current.version {
            return Err(cluster_err(ClusterError::InvalidVersion));
        }
        if version == current.version {
            // Kvrocks applies nothing for the same version. If the role it set then did not
            // take (say, a full sync was swapping the database), it is applied again.
            return follow(server, &choice_of(&current)).map_err(CmdError::err);
        }
    }
    let parsed = parse_nodes(text).map_err(cluster_err)?;
    let mut topo = (*current).clone();
    topo.install(parsed, version);
    if topo.myid.is_empty() || force || !topo.nodes.contains_key(&topo.myid) {
        if let Some(id) = detect_myself(server, &topo) {
            topo.myid = id;
        }
    }
    commit(server, topo)
}

/// Kvrocks' slot list (`CLUSTERX SETSLOT`, `CLUSTERX MIGRATE`): slots and `a-b` ranges
/// separated by spaces, with Kvrocks' error texts.
fn parse_slot_ranges(text: &str) -> Result<Vec<(u16, u16)>, CmdError> {
    let slot = |t: &str| {
        quarry_commands::args::parse_int_kvrocks(t.as_bytes(), 0..=16383).map(|n| n as u16)
    };
    if text.is_empty() {
        return Err(CmdError::err("No slots to parse."));
    }
    let mut out = Vec::new();
    for part in text.split(' ').filter(|p| !p.is_empty()) {
        if !part.contains('-') {
            let n = slot(part).map_err(|e| CmdError::err(format!("Invalid slot id: {e}")))?;
            out.push((n, n));
            continue;
        }
        if part.starts_with('-') || part.ends_with('-') {
            return Err(CmdError::err(format!("Invalid slot range: `{part}`. The character '-' can't appear in the first or last position.")));
        }
        let fields: Vec<&str> = part.split('-').collect();
        if fields.len() != 2 {
            return Err(CmdError::err(format!(
                "Invalid slot range: `{part}`. The slot range should be of the form `int1-int2`."
            )));
        }
        match (slot(fields[0]), slot(fields[1])) {
            (Ok(a), Ok(b)) if a <= b => out.push((a, b)),
            _ => return Err(CmdError::err(format!("Invalid slot range: `{part}`. The slot range `int1-int2` needs to satisfy the condition (int1 <= int2)."))),
        }
    }
    if out.is_empty() {
        return Err(CmdError::err(format!(
            "Invalid slots: `{text}`. No slots to parse. Please use spaces to separate slots."
        )));
    }
    Ok(out)
}

fn set_slot(
    server: &Server,
    ranges: &[(u16, u16)],
    id: &str,
    version: i64,
) -> Result<(), CmdError> {
    let _serial = server.cluster.change.lock();
    let current = server.cluster.current();
    if version != current.version + 1 {
        return Err(cluster_err(ClusterError::InvalidVersion));
    }
    let node = current
        .nodes
        .get(id)
        .ok_or(cluster_err(ClusterError::UnknownNode))?;
    if node.role != Role::Master {
        return Err(cluster_err(ClusterError::NotAMaster));
    }
    let mut topo = (*current).clone();
    for (from, to) in ranges {
        topo.assign(*from, *to, id, version);
    }
    commit(server, topo)
}

/// The first node whose port is ours and whose host is one of this machine's addresses.
fn detect_myself(server: &Server, topo: &Topology) -> Option<String> {
    let binds: Vec<String> = server
        .config
        .read()
        .get("bind")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let any = binds.is_empty() || binds.iter().any(|b| b == "0.0.0.0" || b == "::");
    topo.nodes
        .values()
        .find(|n| {
            n.port == server.port
                && (binds.contains(&n.host)
                    || (any && is_local(&n.host))
                    || (binds.is_empty() && n.host == "127.0.0.1"))
        })
        .map(|n| n.id.clone())
}

fn is_local(host: &str) -> bool {
    let Ok(addrs) = (host, 0).to_socket_addrs() else {
        return false;
    };
    addrs.into_iter().any(|a| {
        let ip = a.ip();
        ip.is_loopback()
            || std::net::UdpSocket::bind((ip, 0)).is_ok() && ip != IpAddr::from([0, 0, 0, 0])
    })
}

/// Installs `topo`: persists it, then makes replication follow it.
fn commit(server: &Server, topo: Topology) -> Result<(), CmdError> {
    let persist = server
        .config
        .read()
        .get_bool("persist-cluster-nodes-enabled");
    if persist && topo.initialized() {
        tokio::task::block_in_place(|| topo.save(&server.cluster.nodes_conf))
            .map_err(|e| CmdError::err(format!("cannot write {}: {e}", NODES_CONF)))?;
    }
    let choice = choice_of(&topo);
    info!(version = topo.version, myid = %topo.myid, nodes = topo.nodes.len(), "cluster topology applied");
    // The new topology and the migration bookkeeping change together, with no write in flight:
    // a write either ran before (and is in what a handed-over range's deletion removes, which
    // the destination already has) or is routed by the new topology.
    let handed: Vec<(u16, u16)> = {
        let _no_writes_in_flight = server.migration.fence.write();
        let mine = |x: u16| topo.owner(x).is_some_and(|o| o.id == topo.myid);
        // Ranges handed over that the topology no longer gives this node: their data goes
        // (kvrocks-compat §3.6). Ranges it still gives this node stay handed over (MOVED).
        let mut migrated = server.migration.migrated.write();
        let (mut gone, kept): (Vec<_>, Vec<_>) = migrated
            .drain(..)
            .partition(|(r, _)| !(r.0..=r.1).any(mine));
        *migrated = kept;
        // So do interrupted handovers that the topology gave to another node. One it still
        // gives this node stays TRYAGAIN: only a new migration of the range settles it.
        let mut interrupted = server.migration.interrupted.write();
        let (gone_too, kept): (Vec<_>, Vec<_>) = interrupted
            .drain(..)
            .partition(|(r, _)| !(r.0..=r.1).any(mine));
        *interrupted = kept;
        gone.extend(gone_too);
        // Imported ranges the topology now gives this node need no more bookkeeping.
        server
            .migration
            .imported
            .write()
            .retain(|r| !(r.0..=r.1).all(mine));
        *server.cluster.topology.write() = Arc::new(topo);
        gone.into_iter().map(|(r, _)| r).collect()
    };
    // Only a master deletes: a node that becomes a replica gets its data from its new master,
    // and must not write anything itself.
    if choice == Choice::Master {
        for (a, b) in handed {
            if let Some(storage) = server.storage() {
                info!(range = %format_range((a, b)), "deleting the data of migrated slots");
                storage.db.delete_slot_range(a, b)?;
            }
        }
    }
    // After the deletions: a crash before them leaves the records, and the next topology
    // deletes the data then. The topology is in force already, so replication follows it
    // even if the record cannot be written.
    if let Err(e) = tokio::task::block_in_place(|| crate::migration::save_handovers(server)) {
        error!(error = %e, "cannot record the migration bookkeeping after a topology change");
    }
    follow(server, &choice).map_err(CmdError::err)
}

/// Makes replication follow the topology's role for this node (kvrocks-compat.md §3.5).
pub fn follow(server: &Server, choice: &Choice) -> Result<(), String> {
    let current = crate::replication::current_choice(server);
    if &current == choice {
        return Ok(());
    }
    match choice {
        Choice::Master => warn!("MASTER MODE enabled by cluster topology setting"),
        Choice::Replica { host, port } => {
            info!(master = %format!("{host}:{port}"), "SLAVE OF enabled by cluster topology setting")
        }
        Choice::Detached => {
            warn!("this node is a slave of a master the topology does not list; it does not replicate")
        }
    }
    tokio::task::block_in_place(|| enter_role(server, choice))
}

fn reset(server: &Server) -> Result<Frame, CmdError> {
    let _serial = server.cluster.change.lock();
    if server
        .migration
        .job
        .lock()
        .as_ref()
        .is_some_and(|j| j.running())
    {
        return Err(CmdError::err("Can't reset cluster while migrating slot"));
    }
    if server
        .migration
        .import
        .lock()
        .as_ref()
        .is_some_and(|i| i.state == "start")
    {
        return Err(CmdError::err("Can't reset cluster while importing slot"));
    }
    let storage = server.storage().ok_or(CmdError::Loading)?;
    if storage.db.key_counts()?.0 > 0 {
        return Err(CmdError::err(
            "Can't reset cluster while database is not empty",
        ));
    }
    drop(storage);
    // A replica stops replicating first; like a fresh node, the node then waits for a topology
    // before it writes anything.
    follow(server, &Choice::Detached).map_err(CmdError::err)?;
    *server.cluster.topology.write() = Arc::new(Topology::default());
    server.migration.migrated.write().clear();
    server.migration.imported.write().clear();
    server.migration.interrupted.write().clear();
    let _ = std::fs::remove_file(&server.cluster.handovers_file);
    *server.migration.job.lock() = None;
    *server.migration.import.lock() = None;
    let _ = std::fs::remove_file(&server.cluster.nodes_conf);
    info!("cluster topology reset");
    Ok(Frame::ok())
}
