//! The server's side of replication: the node's role (decided at start-up, persisted when it
//! changes), the commands (SLAVEOF/REPLICAOF, ROLE, PSYNC, REPLCONF, `_fetch_meta`,
//! `_fetch_file`, `_db_name`, WAIT, DIGEST), INFO's replication section, and the [`Host`] the
//! replication link runs against.

use std::fmt::Write as _;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use quarry_commands::args::{is, lower, parse_i64};
use quarry_commands::CmdError;
use quarry_replication::master::{LastBatch, Master, PsyncRequest};
use quarry_replication::replica::{Link, LinkState};
use quarry_replication::{Host, LinkSettings};
use quarry_resp::Frame;
use quarry_storage::batch::{self, BatchRecord};
use quarry_storage::encoding::KeyCodec;
use quarry_storage::files::write_durable;
use quarry_storage::wal::{WalGap, WalReader};
use quarry_storage::{Engine, EngineOptions, Role};
use tracing::{error, info, warn};

use crate::connection::{Flow, Session};
use crate::server::{Server, Storage};

use crate::admin::{reply_result, Outcome};

/// Where a node records its role (`master` or `replicaof <host> <port>`) and the `slaveof` of
/// its configuration at that time, so that it comes back in the same role after a restart.
pub const ROLE_FILE: &str = "replication-role";

/// A node's role as decided at start-up or by REPLICAOF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice {
    Master,
    Replica {
        host: String,
        port: u16,
    },
    /// Cluster mode: a slave whose master the topology does not list. It is a replica (nothing
    /// writes) with no link until the topology names its master.
    Detached,
}

fn parse_master(text: &str) -> Option<(String, u16)> {
    let mut it = text.split_whitespace();
    let host = it.next()?.to_string();
    let port = it.next()?.parse().ok()?;
    it.next().is_none().then_some((host, port))
}

/// The start-up decision, made before anything writes.
///
/// The role file wins while the configuration's `slaveof` is the one it was written under: a
/// REPLICAOF at run time (either way) then survives the restart. A configuration that names
/// another master (an edit, or CONFIG REWRITE after REPLICAOF) is the newer word. A replica
/// whose `slaveof` was merely removed stays a replica: only REPLICAOF NO ONE promotes, so a
/// replica never comes back as a writable master holding stale data.
pub fn decide_role(dir: &Path, slaveof: &str) -> Result<(Choice, &'static str), String> {
    let from_config = || -> Result<(Choice, &'static str), String> {
        if slaveof.is_empty() {
            return Ok((Choice::Master, "no slaveof configured"));
        }
        let (host, port) = parse_master(slaveof)
            .ok_or_else(|| format!("slaveof {slaveof:?}: expected `<host> <port>`"))?;
        Ok((Choice::Replica { host, port }, "slaveof in the config"))
    };
    let path = dir.join(ROLE_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return from_config();
    };
    let mut lines = text.lines();
    let role = lines.next().unwrap_or("").trim();
    let recorded = lines
        .find_map(|l| l.strip_prefix("config-slaveof"))
        .map(str::trim)
        .unwrap_or("");
    if recorded != slaveof.trim() && !slaveof.trim().is_empty() {
        // The operator named another master since: the configuration is the newer word.
        return from_config();
    }
    if recorded != slaveof.trim() && role != "master" {
        // `slaveof` was removed from the configuration, but nothing promoted this replica.
        // Coming back as a writable master would serve stale data; REPLICAOF NO ONE decides.
        warn!(role, "slaveof is no longer configured, but this node was a replica; it stays one until REPLICAOF NO ONE");
    }
    if role == "master" {
        return Ok((Choice::Master, "the role file (last role: master)"));
    }
    if let Some((host, port)) = role.strip_prefix("replicaof ").and_then(parse_master) {
        return Ok((
            Choice::Replica { host, port },
            "the role file (last role: replica)",
        ));
    }
    Err(format!(
        "{} is not understood: {text:?} (expected `master` or `replicaof <host> <port>`)",
        path.display()
    ))
}

/// Records `choice`, and the configuration's `slaveof` it was made under.
pub fn persist_role(dir: &Path, choice: &Choice, config_slaveof: &str) -> std::io::Result<()> {
    let role = match choice {
        Choice::Master => "master".to_string(),
        Choice::Replica { host, port } => format!("replicaof {host} {port}"),
        Choice::Detached => return Ok(()),
    };
    let text = format!("{role}\nconfig-slaveof {}\n", config_slaveof.trim());
    write_durable(&dir.join(ROLE_FILE), text.as_bytes())
}

pub struct ReplState {
    pub master: Arc<Master>,
    pub link: Mutex<Option<Link>>,
    pub is_replica: AtomicBool,
    pub engine_options: EngineOptions,
    pub codec: KeyCodec,
    pub dir: PathBuf,
    pub me: Weak<Server>,
    /// `slaveof` as the configuration file (or command line) gave it at start-up.
    pub config_slaveof: String,
    /// Serialises role changes.
    role_change: Mutex<()>,
}

impl ReplState {
    pub fn new(
        engine_options: EngineOptions,
        codec: KeyCodec,
        dir: PathBuf,
        me: Weak<Server>,
        max_mb: u64,
        config_slaveof: String,
    ) -> ReplState {
        let master = Arc::new(Master::default());
        master.max_replication_mb.store(max_mb, Ordering::Relaxed);
        ReplState {
            master,
            link: Mutex::new(None),
            is_replica: AtomicBool::new(false),
            engine_options,
            codec,
            dir,
            me,
            config_slaveof,
            role_change: Mutex::new(()),
        }
    }
}

/// Builds the storage over an opened engine.
pub fn storage_over(engine: Arc<Engine>, codec: &KeyCodec) -> Arc<Storage> {
    Arc::new(Storage::new(engine, codec))
}

/// Applies a decided role to a running node (start-up and REPLICAOF).
pub fn enter_role(server: &Server, choice: &Choice) -> Result<(), String> {
    // The old link stops first (it may be waiting for the engine in a full sync), and no lock
    // is held while it does.
    let old = server.repl.link.lock().take();
    if let Some(link) = old {
        link.stop();
    }
    server.verify.reset();
    let engine = server.engine().ok_or("the database is being replaced")?;
    let rsid = server.config.read().get_bool("use-rsid-psync");
    match choice {
        Choice::Master => {
            engine.gate().set_role(Role::Master);
            server.repl.is_replica.store(false, Ordering::Release);
            if rsid {
                // Kvrocks' ShiftReplId: batches from here on carry this node's own id.
                let id = engine.shift_replid().map_err(|e| e.to_string())?;
                info!(replid = %id, sequence = engine.latest_sequence(), "new replication id");
            } else {
                engine.set_replid(None);
            }
        }
        Choice::Detached => {
            engine.gate().set_role(Role::Replica);
            engine.set_replid(None);
            server.repl.is_replica.store(true, Ordering::Release);
        }
        Choice::Replica { host, port } => {
            engine.gate().set_role(Role::Replica);
            engine.set_replid(None);
            server.repl.is_replica.store(true, Ordering::Release);
            let host_ref: Arc<dyn Host> = Arc::new(HostRef(server.repl.me.clone()));
            *server.repl.link.lock() = Some(Link::start(host_ref, host.clone(), *port));
        }
    }
    Ok(())
}

/// The replication link's view of the server. It holds a weak reference, so that a stopped
/// server is not kept alive by its link.
struct HostRef(Weak<Server>);

impl Host for HostRef {
    fn engine(&self) -> Option<Arc<Engine>> {
        self.0.upgrade()?.engine()
    }

    fn settings(&self) -> LinkSettings {
        let Some(server) = self.0.upgrade() else {
            return LinkSettings::default();
        };
        let cfg = server.config.read();
        let announce_port = match cfg.get_i64("replica-announce-port") {
            0 => server.port,
            p => p as u16,
        };
        LinkSettings {
            dir: server.repl.dir.clone(),
            masterauth: cfg.get("masterauth").to_string(),
            db_name: cfg.get("db-name").to_string(),
            announce_port,
            announce_ip: cfg.get("replica-announce-ip").to_string(),
            use_rsid_psync: cfg.get_bool("use-rsid-psync"),
            empty_db_before_fullsync: cfg.get_bool("slave-empty-db-before-fullsync"),
            recv_file_delay: Duration::from_secs(
                cfg.get_i64("fullsync-recv-file-delay").max(0) as u64
            ),
        }
    }

    fn connect(
        &self,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> std::io::Result<std::net::TcpStream> {
        match self.0.upgrade() {
            Some(server) => crate::tls::connect_to_node(&server, addr, timeout),
            None => Err(std::io::Error::other("the server stopped")),
        }
    }

    fn take_engine(&self) -> Option<Engine> {
        let server = self.0.upgrade()?;
        // A full sync replaces what this node's own replicas replicate: they start over, and
        // nothing of the old history (checkpoint, anchors) is served any more.
        server.repl.master.pause_for_new_history(&server.repl.dir);
        // Digests under way stop, so that they do not hold the engine.
        server.verify.reset();
        let Some(storage) = server.storage.write().take() else {
            server.repl.master.resume();
            return None;
        };
        info!("full sync: closing the database (clients get LOADING until it is replaced)");
        let deadline = Instant::now() + Duration::from_secs(10);
        let Storage { engine, db, named } = match wait_unique(storage, deadline) {
            Ok(s) => Arc::into_inner(s).expect("unique"),
            Err(s) => {
                error!("full sync: the database stays in use; keeping it");
                *server.storage.write() = Some(s);
                server.repl.master.resume();
                return None;
            }
        };
        drop(db);
        drop(named);
        match wait_unique(engine, deadline) {
            Ok(e) => Arc::into_inner(e),
            Err(e) => {
                error!("full sync: the engine stays in use; keeping it");
                *server.storage.write() = Some(storage_over(e, &server.repl.codec));
                server.repl.master.resume();
                None
            }
        }
    }

    fn open_engine(&self) -> Result<Engine, String> {
        let server = self.0.upgrade().ok_or("the server stopped")?;
        Engine::open(&server.repl.engine_options).map_err(|e| e.to_string())
    }

    fn install_engine(&self, engine: Engine) {
        if let Some(server) = self.0.upgrade() {
            let engine = Arc::new(engine);
            *server.storage.write() = Some(storage_over(engine, &server.repl.codec));
            server.repl.master.resume();
            if let Err(e) = crate::namespace::load_and_rewrite(&server) {
                error!(error = %e, "cannot take the master's namespaces after the full sync");
            }
        }
    }

    fn on_note(&self, note: &[u8]) {
        if let Some(server) = self.0.upgrade() {
            crate::verify::on_note(&server, note);
        }
    }

    fn alter_before_apply(&self, batch: &[u8]) -> Option<Vec<u8>> {
        let server = self.0.upgrade()?;
        if server.verify.alter_next.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let altered = batch::alter_one_value(batch)?;
        server.verify.alter_next.fetch_sub(1, Ordering::Relaxed);
        warn!("failpoint: one value of the master's batch was altered before it was applied");
        Some(altered)
    }

    fn on_full_sync(&self) {
        // (Verification was reset when the old database was taken.)
        if let Some(server) = self.0.upgrade() {
            if server.config.read().get_bool("purge-backup-on-fullsync") {
                crate::backup::purge(&server, 0, 0);
            }
        }
    }

    fn on_applied(&self, data: &[u8]) {
        let Some(server) = self.0.upgrade() else {
            return;
        };
        // The master's namespaces (`repl-namespace-enabled`): taken once applied.
        if memchr::memmem::find(data, crate::namespace::DB_KEY).is_some()
            && batch::decode(data).is_ok_and(|d| {
                d.records.iter().any(|r| {
                    matches!(r, BatchRecord::Put { cf: 4, key, .. } if *key == crate::namespace::DB_KEY)
                })
            })
        {
            match crate::namespace::load_and_rewrite(&server) {
                Ok(()) => info!("took the master's namespaces"),
                Err(e) => error!(error = %e, "cannot take the master's namespaces"),
            }
        }
        // Clients blocked on a key the master just wrote get to try again, and the master's
        // PUBLISHes reach this node's subscribers.
        let blocked = server.waiting.blocked_clients() > 0;
        let subscribed = !server.pubsub.is_empty();
        if !blocked && !subscribed {
            return;
        }
        if let Ok(decoded) = batch::decode(data) {
            for rec in decoded.records {
                match rec {
                    BatchRecord::Put { cf: 1, key, .. } if blocked => {
                        // Any namespace's key: a client of another namespace that wakes finds
                        // nothing new and waits on.
                        if let Some(user_key) =
                            user_key_of_metadata(key, server.repl.codec.slot_encoded())
                        {
                            server.waiting.wake(user_key);
                        }
                    }
                    BatchRecord::Put { cf: 3, key, value } if subscribed => {
                        server.pubsub.publish(key, value);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The user key of a metadata key of any namespace.
fn user_key_of_metadata(metadata_key: &[u8], slot_encoded: bool) -> Option<&[u8]> {
    quarry_storage::encoding::user_key_in(metadata_key, true, slot_encoded)
}

fn wait_unique<T>(arc: Arc<T>, deadline: Instant) -> Result<Arc<T>, Arc<T>> {
    loop {
        if Arc::strong_count(&arc) == 1 {
            return Ok(arc);
        }
        if Instant::now() > deadline {
            return Err(arc);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn run(server: &Server, session: &mut Session, name: &str, a: &[Bytes]) -> Outcome {
    match name {
        "slaveof" | "replicaof" => reply_result(slaveof(server, a)),
        "role" => reply_result(role(server)),
        "psync" => psync(server, session, a),
        "replconf" => reply_result(replconf(server, session, a)),
        "_db_name" => {
            let name = server.config.read().get("db-name").to_string();
            reply_result(Ok(Frame::Raw(Bytes::from(format!("{name}\r\n")))))
        }
        "_fetch_meta" => fetch_meta(server),
        "_fetch_file" => {
            let names: Vec<String> = String::from_utf8_lossy(&a[1])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            (Ok(Frame::Raw(Bytes::new())), Flow::SendFiles(names))
        }
        "wait" => wait(server, a),
        "digest" => reply_result(digest(server, a)),
        "pollupdates" => reply_result(tokio::task::block_in_place(|| pollupdates(server, a))),
        _ => reply_result(Err(CmdError::err(format!(
            "command '{name}' has no handler"
        )))),
    }
}

fn slaveof(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    if a.len() != 3 {
        return Err(CmdError::WrongArity(lower(&a[0])));
    }
    if server.config.read().get_bool("cluster-enabled") {
        return Err(CmdError::err("can't change to slave in cluster mode"));
    }
    let _serial = server.repl.role_change.lock();
    let choice = if is(&a[1], "no") && is(&a[2], "one") {
        Choice::Master
    } else {
        let host = String::from_utf8_lossy(&a[1]).to_string();
        let port = match parse_i64(&a[2]) {
            Ok(p) if (1..=65535).contains(&p) => p as u16,
            _ => return Err(CmdError::err("port should be number")),
        };
        if replicates_itself(server, &host, port)? {
            return Err(CmdError::err("can't replicate itself"));
        }
        for r in server.repl.master.replicas() {
            if r.port == port && (r.ip == host || resolves_to(&host, &r.ip)) {
                return Err(CmdError::err("can't replicate your own replicas"));
            }
        }
        Choice::Replica { host, port }
    };
    let current = current_choice(server);
    if current == choice {
        // The same master again (or master again): nothing to restart.
        return Ok(Frame::ok());
    }
    tokio::task::block_in_place(|| {
        enter_role(server, &choice).map_err(CmdError::err)?;
        persist_role(&server.repl.dir, &choice, &server.repl.config_slaveof)
            .map_err(|e| CmdError::err(format!("cannot record the new role: {e}")))?;
        // CONFIG REWRITE then writes the current master, as in Kvrocks.
        let slaveof = match &choice {
            Choice::Replica { host, port } => format!("{host} {port}"),
            _ => String::new(),
        };
        server.config.write().set_internal("slaveof", slaveof);
        Ok::<(), CmdError>(())
    })?;
    match &choice {
        Choice::Replica { host, port } => {
            info!(master = %format!("{host}:{port}"), "role changed: replica")
        }
        _ => warn!("MASTER MODE enabled (REPLICAOF NO ONE)"),
    }
    Ok(Frame::ok())
}

pub fn current_choice(server: &Server) -> Choice {
    match server.repl.link.lock().as_ref() {
        Some(l) => Choice::Replica {
            host: l.host.clone(),
            port: l.port,
        },
        None if server.repl.is_replica.load(Ordering::Acquire) => Choice::Detached,
        None => Choice::Master,
    }
}

fn resolves_to(host: &str, ip: &str) -> bool {
    (host, 0)
        .to_socket_addrs()
        .map(|mut it| it.any(|a| a.ip().to_string() == ip))
        .unwrap_or(false)
}

fn replicates_itself(server: &Server, host: &str, port: u16) -> Result<bool, CmdError> {
    if port != server.port {
        return Ok(false);
    }
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|_| CmdError::err(format!("Can not resolve hostname: {host}")))?
        .collect();
    let binds = server.config.read().get("bind").to_string();
    Ok(addrs.iter().any(|a| {
        a.ip().is_loopback()
            || a.ip().is_unspecified()
            || binds
                .split_whitespace()
                .any(|b| b == a.ip().to_string() || b == "0.0.0.0")
    }))
}

fn role(server: &Server) -> Result<Frame, CmdError> {
    let seq = server.engine().map(|e| e.latest_sequence()).unwrap_or(0);
    if let Some(link) = server.repl.link.lock().as_ref() {
        let state = match link.status.state() {
            LinkState::Connected => "connected",
            LinkState::FetchMeta | LinkState::FetchSst => "sync",
            // Redis' state for a link that is down and will be connected again.
            LinkState::StorageRefused => "connect",
            _ => "connecting",
        };
        return Ok(Frame::Array(vec![
            Frame::bulk("slave"),
            Frame::bulk(link.host.clone()),
            Frame::bulk(link.port.to_string()),
            Frame::bulk(state),
            Frame::bulk(seq.to_string()),
        ]));
    }
    let mut out = vec![Frame::bulk("master"), Frame::bulk(seq.to_string())];
    let replicas = server.repl.master.replicas();
    if !replicas.is_empty() {
        out.push(Frame::Array(
            replicas
                .iter()
                .map(|r| {
                    Frame::Array(vec![
                        Frame::bulk(r.ip.clone()),
                        Frame::bulk(r.port.to_string()),
                        Frame::bulk(r.sent.load(Ordering::Relaxed).to_string()),
                    ])
                })
                .collect(),
        ));
    }
    Ok(Frame::Array(out))
}

fn parse_u64(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn psync(server: &Server, session: &mut Session, a: &[Bytes]) -> Outcome {
    let (replid, next) = match a.len() {
        2 => (None, &a[1]),
        3 => {
            if a[1].len() != quarry_storage::wal::REPLID_LEN {
                return reply_result(Err(CmdError::err("Wrong replication id length")));
            }
            (Some(String::from_utf8_lossy(&a[1]).to_string()), &a[2])
        }
        _ => return reply_result(Err(CmdError::WrongArity("psync".into()))),
    };
    let Some(next) = parse_u64(next) else {
        return reply_result(Err(CmdError::err(
            "value is not an unsigned long long or out of range",
        )));
    };
    let Some(engine) = server.engine() else {
        return reply_result(Err(CmdError::Loading));
    };
    let req = PsyncRequest {
        replid,
        next,
        last_batch: session.repl.last_batch.take(),
    };
    let rsid = server.config.read().get_bool("use-rsid-psync");
    let peer = session.handle.addr;
    info!(replica = %peer, listening_port = session.repl.listening_port, next, replid = req.replid.as_deref().unwrap_or("not supported"), local_sequence = engine.latest_sequence(), "replica asks for synchronization");
    let decision =
        tokio::task::block_in_place(|| server.repl.master.check_psync(&engine, &req, rsid));
    match decision {
        Ok(()) => {
            let ip = session
                .repl
                .announce_ip
                .clone()
                .unwrap_or_else(|| peer.ip().to_string());
            (
                Ok(Frame::Raw(Bytes::new())),
                Flow::Feed {
                    engine,
                    next,
                    ip,
                    port: session.repl.listening_port,
                    // Only a replica that said it reads notes gets them: older quarry
                    // replicas and Kvrocks' would take them for batches.
                    quarry: session.repl.notes,
                },
            )
        }
        Err(reason) => {
            info!(replica = %peer, next, reason = %reason, "partial sync refused: the replica will full-sync");
            reply_result(Err(CmdError::err(reason)))
        }
    }
}

fn replconf(server: &Server, session: &mut Session, a: &[Bytes]) -> Result<Frame, CmdError> {
    let opt = lower(&a[1]);
    match opt.as_str() {
        // Kvrocks' two options, as pairs.
        "listening-port" | "ip-address" => {
            if a.len() % 2 != 1 {
                return Err(CmdError::WrongArity("replconf".into()));
            }
            for pair in a[1..].chunks(2) {
                match lower(&pair[0]).as_str() {
                    "listening-port" => match parse_i64(&pair[1]) {
                        Ok(p) if (1..=65535).contains(&p) => session.repl.listening_port = p as u16,
                        _ => {
                            return Err(CmdError::err(
                                "listening-port should be number or out of range",
                            ))
                        }
                    },
                    "ip-address" => {
                        if pair[1].is_empty() {
                            return Err(CmdError::err("ip-address should not be empty"));
                        }
                        session.repl.announce_ip =
                            Some(String::from_utf8_lossy(&pair[1]).to_string());
                    }
                    _ => return Err(CmdError::err("unknown option")),
                }
            }
            Ok(Frame::ok())
        }
        // quarry: the replica proves continuity with the digest of its last batch.
        "capa" if a.len() == 3 && is(&a[2], "batch-digest") => Ok(Frame::ok()),
        // quarry: the replica reads notes in the stream (verification's markers).
        "capa" if a.len() == 3 && is(&a[2], "notes") => {
            session.repl.notes = true;
            Ok(Frame::ok())
        }
        "last-batch" if a.len() == 4 => {
            let seq = parse_u64(&a[2]).ok_or(CmdError::NotInteger)?;
            let digest = (!is(&a[3], "none")).then(|| String::from_utf8_lossy(&a[3]).to_string());
            session.repl.last_batch = Some(LastBatch { seq, digest });
            let latest = server.engine().map(|e| e.latest_sequence()).unwrap_or(0);
            Ok(Frame::Integer(latest as i64))
        }
        "batch-digest" if a.len() == 3 => {
            let seq = parse_u64(&a[2]).ok_or(CmdError::NotInteger)?;
            let engine = server.engine().ok_or(CmdError::Loading)?;
            Ok(
                tokio::task::block_in_place(|| server.repl.master.digest_at(&engine, seq))
                    .map(Frame::bulk)
                    .unwrap_or(Frame::Null),
            )
        }
        // Acks travel on the feed connection; one here has nothing to acknowledge.
        "ack" | "getack" => Ok(Frame::Raw(Bytes::new())),
        _ => Err(CmdError::err("unknown option")),
    }
}

fn fetch_meta(server: &Server) -> Outcome {
    let Some(engine) = server.engine() else {
        return (Err(CmdError::Loading), Flow::Close);
    };
    let ttl = server
        .config
        .read()
        .get_i64("rocksdb.wal_ttl_seconds")
        .max(0) as u64;
    let result = server
        .repl
        .master
        .fetch_meta(&engine, &server.repl.dir, ttl);
    match result {
        Ok(names) => (
            Ok(Frame::Raw(Bytes::from(format!("{}\r\n", names.join(","))))),
            Flow::Close,
        ),
        Err(e) => {
            error!(error = %e, "full sync: cannot create a checkpoint");
            (
                Ok(Frame::Raw(Bytes::from_static(
                    b"-can't create db checkpoint\r\n",
                ))),
                Flow::Close,
            )
        }
    }
}

fn wait(server: &Server, a: &[Bytes]) -> Outcome {
    let n = match parse_i64(&a[1]) {
        Ok(n) => n.max(0) as usize,
        Err(e) => return reply_result(Err(e)),
    };
    let timeout = match parse_i64(&a[2]) {
        Ok(t) if t >= 0 => t as u64,
        Ok(_) => return reply_result(Err(CmdError::err("timeout is negative"))),
        Err(e) => return reply_result(Err(e)),
    };
    if server.repl.is_replica.load(Ordering::Acquire) {
        return reply_result(Err(CmdError::err(
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        )));
    }
    let target = server.engine().map(|e| e.latest_sequence()).unwrap_or(0);
    let acked = server.repl.master.count_acked(target);
    if acked >= n {
        return reply_result(Ok(Frame::Integer(acked as i64)));
    }
    let deadline = (timeout > 0).then(|| Instant::now() + Duration::from_millis(timeout));
    (
        Ok(Frame::Raw(Bytes::new())),
        Flow::Wait {
            target,
            replicas: n,
            deadline,
        },
    )
}

/// `DIGEST [slot|from-to ...]`: `[digest, sequence, keys]` of the logical contents.
fn digest(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let mut ranges = Vec::new();
    for arg in &a[1..] {
        let text = String::from_utf8_lossy(arg);
        let parse = |s: &str| {
            s.parse::<u16>()
                .ok()
                .filter(|&v| v < quarry_storage::slot::SLOT_COUNT)
        };
        let range = match text.split_once('-') {
            Some((x, y)) => parse(x).zip(parse(y)).filter(|(x, y)| x <= y),
            None => parse(&text).map(|v| (v, v)),
        };
        ranges.push(range.ok_or_else(|| CmdError::err(format!("invalid slot range '{text}'")))?);
    }
    let engine = server.engine().ok_or(CmdError::Loading)?;
    let d = quarry_storage::digest::digest(&engine, server.repl.codec.slot_encoded(), &ranges)
        .map_err(|e| CmdError::Storage(e.to_string()))?;
    Ok(Frame::Array(vec![
        Frame::bulk(d.hex),
        Frame::Integer(d.sequence as i64),
        Frame::Integer(d.keys as i64),
    ]))
}

/// `DEBUG DIGEST-VALUE key ...`: one digest per key (zeros for a missing key).
pub fn digest_values(server: &Server, keys: &[Bytes]) -> Result<Frame, CmdError> {
    let engine = server.engine().ok_or(CmdError::Loading)?;
    let mut out = Vec::new();
    for k in keys {
        let mk = server.repl.codec.metadata_key(k);
        let d = quarry_storage::digest::key_digest(&engine, &mk, server.repl.codec.slot_encoded())
            .map_err(|e| CmdError::Storage(e.to_string()))?;
        out.push(Frame::bulk(d.unwrap_or_else(|| "0".repeat(32))));
    }
    Ok(Frame::Array(out))
}

/// `DEBUG DIGEST`: the digest of the whole dataset.
pub fn digest_all(server: &Server) -> Result<Frame, CmdError> {
    let engine = server.engine().ok_or(CmdError::Loading)?;
    let d = quarry_storage::digest::digest(&engine, server.repl.codec.slot_encoded(), &[])
        .map_err(|e| CmdError::Storage(e.to_string()))?;
    Ok(Frame::Simple(d.hex))
}

/// Kvrocks' integer parse errors, as `ERR <reason>`.
fn kvrocks_int(a: &[u8], range: std::ops::RangeInclusive<i64>) -> Result<i64, CmdError> {
    quarry_commands::args::parse_int_kvrocks(a, range).map_err(CmdError::err)
}

/// `POLLUPDATES <sequence> [MAX <1..1000>] [STRICT] [FORMAT RAW]`, Kvrocks 2.10's change
/// capture: the WAL batches after `<sequence>`, hex-encoded, with `next_sequence` (the last
/// sequence they hold, to poll from next) and `latest_sequence`. Stricter than Kvrocks: a
/// batch that starts after the asked position (the WAL was purged meanwhile) is an error,
/// never a silent skip.
fn pollupdates(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sequence = kvrocks_int(&a[1], 0..=i64::MAX)? as u64;
    let (mut max, mut strict) = (16u64, false);
    let mut i = 2;
    while i < a.len() {
        if is(&a[i], "MAX") && i + 1 < a.len() {
            max = kvrocks_int(&a[i + 1], 1..=1000)? as u64;
            i += 2;
        } else if is(&a[i], "STRICT") {
            strict = true;
            i += 1;
        } else if is(&a[i], "FORMAT") && i + 1 < a.len() {
            if !is(&a[i + 1], "RAW") {
                return Err(CmdError::err("invalid FORMAT option, only support RAW"));
            }
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let engine = server.engine().ok_or(CmdError::Loading)?;
    let latest = engine.latest_sequence();
    let next = sequence + 1;
    if next > latest + 1 {
        return Err(CmdError::err("next sequence is out of range"));
    }
    let mut updates = Vec::new();
    let mut next_sequence = sequence;
    // A passing iterator error reads as "nothing yet": a fresh reader tries again before the
    // position counts as gone.
    for _attempt in 0..3 {
        if next > latest || !updates.is_empty() {
            break;
        }
        let mut reader = if strict {
            WalReader::new(engine.db(), next)
        } else {
            WalReader::containing(engine.db(), next)
        };
        while (updates.len() as u64) < max {
            match reader.read() {
                Ok(Some(b)) => {
                    next_sequence = b.last_seq();
                    // Upper-case hex, as Kvrocks' `StringToHex` writes it.
                    updates.push(Frame::bulk(hex::encode_upper(&b.data)));
                }
                Ok(None) => break,
                Err(WalGap::NotABatchStart(_)) if strict && updates.is_empty() => {
                    let found = quarry_storage::wal::batch_containing(engine.db(), next)
                        .map_or_else(|| "none".to_string(), |s| s.to_string());
                    return Err(CmdError::err(format!(
                        "mismatched sequence number, expected {next} but got {found}"
                    )));
                }
                Err(e) => return Err(CmdError::err(e)),
            }
        }
    }
    // The position is written, yet nothing was read: the WAL no longer reaches it.
    if next <= latest && updates.is_empty() {
        return Err(CmdError::err(format!(
            "the WAL does not hold sequence {next} any more"
        )));
    }
    Ok(Frame::Map(vec![
        (
            Frame::bulk("next_sequence"),
            Frame::Integer(next_sequence as i64),
        ),
        (
            Frame::bulk("latest_sequence"),
            Frame::Integer(latest as i64),
        ),
        (Frame::bulk("updates"), Frame::Array(updates)),
    ]))
}

/// INFO `# Replication` (kvrocks-compat.md §2.7).
pub fn info_section(server: &Server) -> String {
    let mut out = String::new();
    let seq = server.engine().map(|e| e.latest_sequence()).unwrap_or(0);
    let mut l = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    if let Some(link) = server.repl.link.lock().as_ref() {
        l("role", &"slave");
        l("master_host", &link.host);
        l("master_port", &link.port);
        l(
            "master_link_status",
            &if link.status.is_up() { "up" } else { "down" },
        );
        l(
            "master_sync_unrecoverable_error",
            &if link.status.state() == LinkState::Error {
                "yes"
            } else {
                "no"
            },
        );
        // Storage refuses the master's batches (a full disk); see Persistence for why.
        l(
            "master_link_storage_refused",
            &((link.status.state() == LinkState::StorageRefused) as u8),
        );
        l(
            "master_sync_in_progress",
            &(link.status.sync_in_progress() as u8),
        );
        l("master_last_io_seconds_ago", &link.last_io_seconds_ago());
        l("slave_repl_offset", &seq);
        l(
            "slave_priority",
            &server.config.read().get_i64("slave-priority"),
        );
        l(
            "sync_full_requested",
            &link.status.full_syncs_requested.load(Ordering::Relaxed),
        );
        l(
            "repl_applied_batches",
            &link.status.applied_batches.load(Ordering::Relaxed),
        );
        l(
            "repl_applied_bytes",
            &link.status.applied_bytes.load(Ordering::Relaxed),
        );
        l(
            "sync_partial_ok_requested",
            &link.status.partial_syncs_ok.load(Ordering::Relaxed),
        );
    } else {
        l("role", &"master");
    }
    let replicas = server.repl.master.replicas();
    l("connected_slaves", &replicas.len());
    let lag = server.hot.min_replicas_max_lag.load(Ordering::Relaxed);
    if server.hot.min_replicas_to_write.load(Ordering::Relaxed) > 0 && lag > 0 {
        l(
            "min_slaves_good_slaves",
            &server.repl.master.count_good(lag),
        );
    }
    for (i, r) in replicas.iter().enumerate() {
        let sent = r.sent.load(Ordering::Relaxed);
        l(
            &format!("slave{i}"),
            &format_args!(
                "ip={},port={},offset={},lag={},ack={}",
                r.ip,
                r.port,
                sent,
                seq.saturating_sub(sent),
                r.acked.load(Ordering::Relaxed)
            ),
        );
    }
    l("master_repl_offset", &seq);
    out
}

/// Whether a command may run on this node now: LOADING during a database swap, READONLY for
/// writes on a replica, MASTERDOWN while a replica with `slave-serve-stale-data no` has not
/// caught up.
pub fn gate(server: &Server, write: bool, stale_ok: bool) -> Result<(), CmdError> {
    if write && !server.repl.is_replica.load(Ordering::Acquire) && !enough_good_replicas(server) {
        return Err(no_replicas());
    }
    gate_role(server, write, stale_ok)
}

/// [`gate`] without the good-replicas check: a script that already wrote is not refused its
/// next write because a replica fell behind meanwhile (it would apply only in part), as in
/// Redis.
pub fn gate_role(server: &Server, write: bool, stale_ok: bool) -> Result<(), CmdError> {
    if !server.repl.is_replica.load(Ordering::Acquire) {
        return Ok(());
    }
    if write {
        return Err(CmdError::ReadOnlyReplica);
    }
    if !stale_ok && !server.hot.serve_stale_data.load(Ordering::Relaxed) {
        // A range being repaired is stale data until the master's rewrite arrives.
        if server.verify.repairing() {
            return Err(CmdError::MasterDown);
        }
        let seq = server.engine().map(|e| e.latest_sequence()).unwrap_or(0);
        let up = server
            .repl
            .link
            .lock()
            .as_ref()
            .map(|l| l.status.caught_up(seq))
            .unwrap_or(false);
        if !up {
            return Err(CmdError::MasterDown);
        }
    }
    Ok(())
}

/// The refusal of a write for want of good replicas (`min-replicas-to-write`).
pub fn no_replicas() -> CmdError {
    CmdError::Other("NOREPLICAS Not enough good replicas to write.".into())
}

/// `min-replicas-to-write`: whether enough replicas acknowledged within
/// `min-replicas-max-lag` seconds for a master to take writes (always, when either is 0).
pub fn enough_good_replicas(server: &Server) -> bool {
    let need = server.hot.min_replicas_to_write.load(Ordering::Relaxed);
    let lag = server.hot.min_replicas_max_lag.load(Ordering::Relaxed);
    need == 0 || lag == 0 || server.repl.master.count_good(lag) as u64 >= need
}

/// Starts the housekeeping of full-sync checkpoints, the `max-db-size` check, and the
/// scheduled jobs (`bgsave-cron`, `compact-cron`, backup retention).
pub fn start_maintenance(server: &Arc<Server>) {
    let weak = Arc::downgrade(server);
    let _ = std::thread::Builder::new()
        .name("repl-cron".into())
        .spawn(move || {
            let mut jobs = crate::cron::Jobs::default();
            for tick in 1u64.. {
                std::thread::sleep(Duration::from_secs(1));
                let Some(server) = weak.upgrade() else { return };
                // `max-db-size`, every second (Kvrocks checks after flushes and compactions).
                let limit = server.config.read().get_i64("max-db-size").max(0) as u64 * (1 << 30);
                if let Some(engine) = server.engine() {
                    let reached = engine.check_size_limit(limit);
                    server
                        .hot
                        .db_size_limit_reached
                        .store(reached, Ordering::Relaxed);
                }
                jobs.tick(&server);
                if tick % 3600 == 0 {
                    let cfg = server.config.read();
                    let dir = cfg.get("log-dir");
                    if !dir.is_empty() && dir != "stdout" {
                        let removed = crate::logfile::purge(
                            std::path::Path::new(dir),
                            cfg.get_i64("log-retention-days"),
                        );
                        if removed > 0 {
                            info!(removed, "old log files removed (log-retention-days)");
                        }
                    }
                }
                if tick % 5 != 0 {
                    continue;
                }
                server.repl.master.maintain(&server.repl.dir);
                let mb = server.config.read().get_i64("max-replication-mb").max(0) as u64;
                server
                    .repl
                    .master
                    .max_replication_mb
                    .store(mb, Ordering::Relaxed);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(host: &str, port: u16) -> Choice {
        Choice::Replica {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn the_role_file_wins_while_the_config_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert_eq!(decide_role(d, "").unwrap().0, Choice::Master);
        assert_eq!(decide_role(d, "h 1").unwrap().0, replica("h", 1));
        // REPLICAOF at run time on a node started without slaveof.
        persist_role(d, &replica("m", 7), "").unwrap();
        assert_eq!(decide_role(d, "").unwrap().0, replica("m", 7));
        // REPLICAOF NO ONE on a node whose config says slaveof: it stays a master.
        persist_role(d, &Choice::Master, "h 1").unwrap();
        assert_eq!(decide_role(d, "h 1").unwrap().0, Choice::Master);
        // The operator named another master since: the configuration is the newer word.
        assert_eq!(decide_role(d, "h 2").unwrap().0, replica("h", 2));
        // A promoted node whose slaveof was removed afterwards: still a master.
        assert_eq!(decide_role(d, "").unwrap().0, Choice::Master);
        // A replica whose slaveof was removed: still a replica, until REPLICAOF NO ONE.
        persist_role(d, &replica("h", 1), "h 1").unwrap();
        assert_eq!(decide_role(d, "").unwrap().0, replica("h", 1));
        std::fs::write(d.join(ROLE_FILE), "nonsense\nconfig-slaveof \n").unwrap();
        assert!(decide_role(d, "").is_err());
    }
}
