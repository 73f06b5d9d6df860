//! Lua scripting: EVAL/EVALSHA(_RO), SCRIPT, FUNCTION and FCALL(_RO).
//!
//! Each worker thread has its own Lua 5.1 state ([`vm`]); scripts and libraries live in
//! RocksDB's propagate column family under Kvrocks' keys, so replicas and restarts have them,
//! and each thread compiles what it runs on first use. A script runs inside a
//! [`quarry_types::txn`] transaction with the key locks of its declared keys held: it reads its
//! own writes, no other client sees a part of them, and they are committed (and replicated) as
//! one WriteBatch.
//!
//! A script that runs past `lua-time-limit` makes other clients answer BUSY until it ends or
//! SCRIPT KILL (FUNCTION KILL) stops it; a script that already wrote cannot be killed, as in
//! Redis.

mod functions;
pub(crate) use functions::split_args as split_config_args;
mod libs;
mod structlib;
mod vm;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use mlua::{MultiValue, Value};
use parking_lot::{Mutex, RwLock};
use quarry_commands::args::is;
use quarry_commands::table::{flag, help_lines};
use quarry_commands::{CmdError, Ctx, Exec};
use quarry_resp::{Frame, Protocol};
use quarry_storage::{ColumnFamily, WriteBatch, WriteOrigin};

use crate::admin::Outcome;
use crate::connection::{Flow, Session};
use crate::server::{Server, Storage};

/// Kvrocks' keys in the propagate column family.
const SCRIPT_PREFIX: &str = "lua_f_";

/// How a namespace's scripts and libraries are told apart in the propagate column family.
const SCOPE_MARK: &str = "ns:";

/// The prefix of namespace `ns`'s script and library records: none for the default namespace
/// (Kvrocks' own keys), `ns:<name>:` before the same keys for another. Scripts and libraries
/// of one namespace are not seen from another.
pub(crate) fn scope(ns: Option<&Bytes>) -> String {
    match ns {
        None => String::new(),
        Some(name) => format!("{SCOPE_MARK}{}:", String::from_utf8_lossy(name)),
    }
}

/// A record of the propagate column family, where scripts and libraries are kept.
fn propagate_get(storage: &Storage, key: &str) -> Option<Vec<u8>> {
    let raw = storage
        .engine
        .get(ColumnFamily::Propagate, key.as_bytes())
        .ok()
        .flatten()?;
    Some(raw.to_vec())
}

pub fn sha1_hex(data: &[u8]) -> String {
    sha1_smol::Sha1::from(data).digest().to_string()
}

/// Server-wide scripting state.
#[derive(Default)]
pub struct Scripting {
    /// Script bodies by SHA1 (also in RocksDB).
    bodies: RwLock<HashMap<String, Arc<[u8]>>>,
    /// Bumped by SCRIPT FLUSH: threads drop their compiled scripts.
    generation: AtomicU64,
    /// Scripts running now.
    running: Mutex<Vec<Arc<RunState>>>,
    /// How many of them are past the time limit: other clients get BUSY meanwhile.
    timed_out: Arc<AtomicUsize>,
    pub functions: functions::Functions,
    /// Bytes the Lua states of all threads use.
    lua_memory: Arc<AtomicU64>,
}

/// One running script, shared with the instruction hook and SCRIPT KILL.
pub struct RunState {
    started: Instant,
    limit_ms: u64,
    /// A FUNCTION (FCALL), not a script: FUNCTION KILL stops it, SCRIPT KILL does not.
    is_function: bool,
    /// What FUNCTION STATS names: the function, or `f_<sha1>` for a script, as Redis does.
    name: String,
    /// The command that started it, as the client sent it.
    command: Vec<Bytes>,
    wrote: AtomicBool,
    killed: AtomicBool,
    timed_out: AtomicBool,
    resp3: AtomicBool,
    /// `Scripting::timed_out`, counted up once this run passes its limit.
    server_timed_out: Arc<AtomicUsize>,
}

impl RunState {
    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn set_resp3(&self, v: bool) {
        self.resp3.store(v, Ordering::Relaxed);
    }

    /// Called by the instruction hook: marks the script as timed out once it passed the
    /// limit, and says whether it must stop.
    fn tick(&self) -> bool {
        if !self.timed_out.load(Ordering::Relaxed)
            && self.started.elapsed().as_millis() as u64 >= self.limit_ms
        {
            self.timed_out.store(true, Ordering::Release);
            self.server_timed_out.fetch_add(1, Ordering::AcqRel);
            tracing::warn!(
                limit_ms = self.limit_ms,
                "a script is running past lua-time-limit; other clients get BUSY"
            );
        }
        self.is_killed()
    }
}

impl Scripting {
    pub fn lua_memory(&self) -> u64 {
        self.lua_memory.load(Ordering::Relaxed)
    }

    pub fn cached_scripts(&self) -> usize {
        self.bodies.read().len()
    }

    /// The BUSY error for a command another client sends while a script is past its time
    /// limit, or None.
    pub fn busy_error(&self, name: &str, args: &[Bytes]) -> Option<String> {
        if self.timed_out.load(Ordering::Acquire) == 0 {
            return None;
        }
        let sub = args.get(1).map(|a| a.to_ascii_lowercase());
        let allowed = match name {
            "auth" | "hello" | "replconf" | "multi" | "discard" | "watch" | "unwatch" | "reset"
            | "quit" => true,
            "script" | "function" => matches!(sub.as_deref(), Some(b"kill") | Some(b"stats")),
            "shutdown" => args
                .get(1)
                .is_some_and(|a| a.eq_ignore_ascii_case(b"nosave")),
            _ => false,
        };
        if allowed {
            return None;
        }
        let function = self
            .running
            .lock()
            .iter()
            .any(|r| r.is_function && r.timed_out.load(Ordering::Acquire));
        Some(busy_text(function))
    }

    fn start(
        &self,
        is_function: bool,
        name: String,
        command: Vec<Bytes>,
        limit_ms: u64,
    ) -> Arc<RunState> {
        let run = Arc::new(RunState {
            started: Instant::now(),
            limit_ms: limit_ms.max(1),
            is_function,
            name,
            command,
            wrote: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            resp3: AtomicBool::new(false),
            server_timed_out: self.timed_out.clone(),
        });
        self.running.lock().push(run.clone());
        run
    }

    fn finish(&self, run: &Arc<RunState>) {
        self.running.lock().retain(|r| !Arc::ptr_eq(r, run));
        if run.timed_out.load(Ordering::Acquire) {
            self.timed_out.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// SCRIPT KILL / FUNCTION KILL, with Redis' answers: only a run past the time limit can
    /// be killed (before it, Redis would not even read the KILL), SCRIPT KILL does not stop a
    /// function nor FUNCTION KILL a script, and a run that wrote cannot be stopped.
    fn kill(&self, functions: bool) -> Result<Frame, CmdError> {
        let running = self.running.lock();
        let busy: Vec<&Arc<RunState>> = running
            .iter()
            .filter(|r| r.timed_out.load(Ordering::Acquire))
            .collect();
        if busy.is_empty() {
            return Err(CmdError::Other(
                "NOTBUSY No scripts in execution right now.".into(),
            ));
        }
        let targets: Vec<&Arc<RunState>> = busy
            .iter()
            .copied()
            .filter(|r| r.is_function == functions)
            .collect();
        if targets.is_empty() {
            return Err(CmdError::Other(busy_text(!functions)));
        }
        if targets.iter().any(|r| r.wrote.load(Ordering::Acquire)) {
            return Err(CmdError::Other(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.".into(),
            ));
        }
        for r in targets {
            r.killed.store(true, Ordering::Release);
        }
        Ok(Frame::ok())
    }

    /// FUNCTION STATS' `running_script`: the longest-running script or function, or nil.
    pub fn running_script(&self) -> Frame {
        let running = self.running.lock();
        let Some(r) = running.iter().min_by_key(|r| r.started) else {
            return Frame::Null;
        };
        Frame::Map(vec![
            (Frame::bulk("name"), Frame::bulk(r.name.clone())),
            (
                Frame::bulk("command"),
                Frame::Array(r.command.iter().cloned().map(Frame::Bulk).collect()),
            ),
            (
                Frame::bulk("duration_ms"),
                Frame::Integer(r.started.elapsed().as_millis() as i64),
            ),
        ])
    }

    /// The script `sha` of the namespace whose records start with `scope`.
    fn body(&self, storage: &Storage, scope: &str, sha: &str) -> Option<Arc<[u8]>> {
        let key = format!("{scope}{sha}");
        if let Some(b) = self.bodies.read().get(&key) {
            return Some(b.clone());
        }
        // Loaded on the master (or before a restart): read from RocksDB.
        let raw = propagate_get(storage, &format!("{scope}{SCRIPT_PREFIX}{sha}"))?;
        let body: Arc<[u8]> = Arc::from(raw);
        self.bodies.write().insert(key, body.clone());
        Some(body)
    }

    /// Remembers a script, and stores it for replicas and restarts (a replica, which cannot
    /// write, keeps it in memory only).
    fn store(&self, storage: &Storage, scope: &str, body: &[u8]) -> String {
        let sha = sha1_hex(body);
        let key = format!("{scope}{sha}");
        if self.bodies.read().contains_key(&key) {
            return sha;
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(
            storage.engine.cf(ColumnFamily::Propagate),
            format!("{scope}{SCRIPT_PREFIX}{sha}"),
            body,
        );
        if let Err(e) = storage.engine.write(batch, WriteOrigin::Local) {
            tracing::debug!(error = %e, "script kept in memory only");
        }
        self.bodies.write().insert(key, Arc::from(body));
        sha
    }
}

/// Redis' BUSY text, which names the KILL that stops what runs.
fn busy_text(function: bool) -> String {
    if function {
        "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE."
            .into()
    } else {
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
            .into()
    }
}

/// What a run calls: a script by SHA1, or a library function.
enum Target {
    Script { sha: String, body: Arc<[u8]> },
    Function(functions::Resolved),
}

/// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, FCALL, FCALL_RO, SCRIPT and FUNCTION.
pub fn run(server: &Server, session: &mut Session, name: &str, a: &[Bytes]) -> Outcome {
    let result = match name {
        "eval" | "eval_ro" | "evalsha" | "evalsha_ro" => eval(server, session, name, a),
        "fcall" | "fcall_ro" => fcall(server, session, name == "fcall_ro", a),
        "script" => script(server, session, a),
        // FUNCTION LOAD runs a library's code (up to its time limit): off the async workers.
        "function" => {
            let scope = scope(session.namespace.as_ref());
            tokio::task::block_in_place(|| functions::command(server, &scope, a))
        }
        _ => Err(CmdError::err("unknown scripting command")),
    };
    (result, Flow::Continue)
}

/// The keys and arguments after a key count at `at`. A count that is not an integer gets
/// `bad_count` (FCALL has a text of its own; EVAL answers as any integer argument).
fn parse_keys(
    a: &[Bytes],
    at: usize,
    bad_count: Option<&str>,
) -> Result<(Vec<Bytes>, Vec<Bytes>), CmdError> {
    let n = match (quarry_commands::args::parse_i64(&a[at]), bad_count) {
        (Ok(n), _) => n,
        (Err(_), Some(text)) => return Err(CmdError::err(text)),
        (Err(e), None) => return Err(e),
    };
    if n < 0 {
        return Err(CmdError::err("Number of keys can't be negative"));
    }
    let rest = &a[at + 1..];
    if n as usize > rest.len() {
        return Err(CmdError::err(
            "Number of keys can't be greater than number of args",
        ));
    }
    Ok((rest[..n as usize].to_vec(), rest[n as usize..].to_vec()))
}

/// The flags a script declares in its `#!lua flags=...` line (Redis 7).
fn shebang_flags(body: &[u8]) -> Result<Option<Vec<String>>, CmdError> {
    if !body.starts_with(b"#!") {
        return Ok(None);
    }
    let line_end = body.iter().position(|&c| c == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[2..line_end]).to_string();
    let mut parts = line.split_whitespace();
    let engine = parts.next().unwrap_or("");
    if engine != "lua" {
        return Err(CmdError::err(format!(
            "Unexpected engine in script shebang: {engine}"
        )));
    }
    let mut flags = Vec::new();
    for p in parts {
        let Some(list) = p.strip_prefix("flags=") else {
            return Err(CmdError::err(format!("Unknown lua shebang option: {p}")));
        };
        for f in list.split(',').filter(|f| !f.is_empty()) {
            if !functions::KNOWN_FLAGS.contains(&f) {
                return Err(CmdError::err(format!(
                    "Unexpected flag in script shebang: {f}"
                )));
            }
            flags.push(f.to_string());
        }
    }
    Ok(Some(flags))
}

fn eval(
    server: &Server,
    session: &mut Session,
    name: &str,
    a: &[Bytes],
) -> Result<Frame, CmdError> {
    let storage = server.storage().ok_or(CmdError::Loading)?;
    let (keys, argv) = parse_keys(a, 2, None)?;
    let scope = scope(session.namespace.as_ref());
    let (sha, body) = if name.starts_with("evalsha") {
        let sha = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
        let body = (sha.len() == 40)
            .then(|| server.scripting.body(&storage, &scope, &sha))
            .flatten()
            .ok_or_else(|| {
                CmdError::Other("NOSCRIPT No matching script. Please use EVAL.".into())
            })?;
        (sha, body)
    } else {
        let sha = server.scripting.store(&storage, &scope, &a[1]);
        (sha, Arc::from(&a[1][..]))
    };
    let flags = shebang_flags(&body)?;
    let body: Arc<[u8]> = if flags.is_some() {
        // The `#!lua` line is not Lua: blanked, keeping the line numbers.
        let end = body.iter().position(|&c| c == b'\n').unwrap_or(body.len());
        Arc::from(&body[end..])
    } else {
        body
    };
    let mut read_only = name.ends_with("_ro");
    if let Some(flags) = &flags {
        if flags.iter().any(|f| f == "no-writes") {
            read_only = true;
        } else {
            check_may_write(server, read_only)?;
        }
    }
    execute(
        server,
        session,
        &storage,
        Target::Script { sha, body },
        a,
        keys,
        argv,
        read_only,
    )
}

fn fcall(server: &Server, session: &mut Session, ro: bool, a: &[Bytes]) -> Result<Frame, CmdError> {
    let storage = server.storage().ok_or(CmdError::Loading)?;
    let resolved = server.scripting.functions.resolve(
        server,
        &storage,
        &scope(session.namespace.as_ref()),
        &String::from_utf8_lossy(&a[1]),
    )?;
    let (keys, argv) = parse_keys(a, 2, Some("Bad number of keys provided"))?;
    let no_writes = resolved.flags.iter().any(|f| f == "no-writes");
    if !no_writes {
        check_may_write(server, ro)?;
    }
    execute(
        server,
        session,
        &storage,
        Target::Function(resolved),
        a,
        keys,
        argv,
        no_writes,
    )
}

/// Redis' checks before a script that declares it may write (a `#!lua` script or a function
/// without `no-writes`) starts, rather than failing at its first write.
fn check_may_write(server: &Server, ro_command: bool) -> Result<(), CmdError> {
    if server.repl.is_replica.load(Ordering::Acquire) {
        return Err(CmdError::Other(
            "READONLY Can not run script with write flag on readonly replica".into(),
        ));
    }
    if ro_command {
        return Err(CmdError::err(
            "Can not execute a script with write flag using *_ro command.",
        ));
    }
    if !crate::replication::enough_good_replicas(server) {
        return Err(crate::replication::no_replicas());
    }
    Ok(())
}

/// What redis.call collected during a run.
#[derive(Default)]
struct Effects {
    /// Keys of the write commands, for WATCH and blocked clients.
    written: Vec<Bytes>,
    /// FLUSHDB/FLUSHALL ran: every blocked client gets a look after the commit.
    flushed: bool,
}

/// Runs a script or function to its end. It runs off the async worker (`block_in_place`):
/// waiting for its keys' locks, or looping until a KILL, must not hold up the other
/// connections that share the worker, which answer BUSY and send the KILL meanwhile.
#[allow(clippy::too_many_arguments)]
fn execute(
    server: &Server,
    session: &mut Session,
    storage: &Arc<Storage>,
    target: Target,
    command: &[Bytes],
    keys: Vec<Bytes>,
    argv: Vec<Bytes>,
    read_only: bool,
) -> Result<Frame, CmdError> {
    tokio::task::block_in_place(|| {
        execute_here(
            server, session, storage, target, command, keys, argv, read_only,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn execute_here(
    server: &Server,
    session: &mut Session,
    storage: &Arc<Storage>,
    target: Target,
    command: &[Bytes],
    keys: Vec<Bytes>,
    argv: Vec<Bytes>,
    read_only: bool,
) -> Result<Frame, CmdError> {
    let caller_resp3 = session.protocol == Protocol::Resp3;
    let nested = quarry_types::txn::active();
    // Isolation for the declared keys; inside MULTI the transaction holds them already.
    let ns = session.namespace.clone();
    let db = storage.db(ns.as_ref());
    let locks = (!nested).then(|| db.locks().lock_many(&keys));
    let txn = (!nested).then(quarry_types::txn::begin);
    let is_function = matches!(target, Target::Function(_));
    let limit = server.hot.lua_time_limit_ms.load(Ordering::Relaxed);
    let name = match &target {
        Target::Script { sha, .. } => format!("f_{sha}"),
        Target::Function(f) => f.name.clone(),
    };
    let run = server
        .scripting
        .start(is_function, name, command.to_vec(), limit);
    vm::CURRENT.with(|c| *c.borrow_mut() = Some(run.clone()));
    let mut effects = Effects::default();
    let generation = server.scripting.generation.load(Ordering::Acquire);
    let outcome = vm::with_vm(generation, &server.scripting.lua_memory, |vm| {
        run_in_vm(
            vm,
            server,
            session,
            storage,
            &target,
            &keys,
            &argv,
            read_only,
            &run,
            &mut effects,
            caller_resp3,
        )
    });
    vm::CURRENT.with(|c| *c.borrow_mut() = None);
    server.scripting.finish(&run);
    let reply = match outcome {
        Ok(r) => r,
        Err(e) => Err(CmdError::err(e)),
    };
    // Writes made before an error stay, as in Redis.
    if let Some(txn) = txn {
        let overlay = txn.finish();
        let still_current = server
            .storage()
            .is_some_and(|now| Arc::ptr_eq(&now, storage));
        if !still_current {
            crate::notify::discard_deferred();
            return Err(CmdError::Loading);
        }
        if let Err(e) = db.commit(overlay) {
            crate::notify::discard_deferred();
            return Err(e.into());
        }
        crate::notify::flush_deferred(server, ns.as_ref());
    }
    drop(locks);
    if !effects.written.is_empty() {
        server.watches.touch_keys(ns.as_ref(), &effects.written);
        if !nested && server.waiting.blocked_clients() > 0 {
            for key in &effects.written {
                server.waiting.wake(key);
            }
        }
    }
    if effects.flushed && !nested {
        server.waiting.wake_all();
    }
    reply
}

#[allow(clippy::too_many_arguments)]
fn run_in_vm(
    vm: &mut vm::Vm,
    server: &Server,
    session: &mut Session,
    storage: &Arc<Storage>,
    target: &Target,
    keys: &[Bytes],
    argv: &[Bytes],
    read_only: bool,
    run: &Arc<RunState>,
    effects: &mut Effects,
    caller_resp3: bool,
) -> Result<Frame, CmdError> {
    let lua = vm.lua.clone();
    let (function, label) = match target {
        Target::Script { sha, body } => {
            (vm.script(sha, body).map_err(CmdError::Other)?, sha.clone())
        }
        Target::Function(f) => (functions::function(vm, server, storage, f)?, f.name.clone()),
    };
    let to_table = |items: &[Bytes]| -> mlua::Result<mlua::Table> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, k) in items.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(k)?)?;
        }
        Ok(t)
    };
    let lua_err = |e: mlua::Error| CmdError::err(vm::lua_error_text(&e));
    let keys_t = to_table(keys).map_err(lua_err)?;
    let argv_t = to_table(argv).map_err(lua_err)?;
    let is_script = matches!(target, Target::Script { .. });
    if is_script {
        let g = lua.globals();
        g.raw_set("KEYS", keys_t.clone()).map_err(lua_err)?;
        g.raw_set("ARGV", argv_t.clone()).map_err(lua_err)?;
    }
    let session_cell = std::cell::RefCell::new(session);
    let effects_cell = std::cell::RefCell::new(effects);
    let redis = vm.redis.clone();
    let result: mlua::Result<MultiValue> = lua.scope(|scope| {
        let dispatch =
            scope.create_function(|lua, (raise, n, packed): (bool, usize, mlua::Table)| {
                let mut args = Vec::with_capacity(n);
                for i in 1..=n {
                    args.push(packed.raw_get::<Value>(i)?);
                }
                let reply = call_from_script(
                    server,
                    &mut session_cell.borrow_mut(),
                    storage,
                    &args,
                    read_only,
                    run,
                    &mut effects_cell.borrow_mut(),
                );
                let resp3 = run.resp3.load(Ordering::Relaxed);
                match reply {
                    Frame::Error(e) => {
                        let t = lua.create_table()?;
                        t.set("err", e)?;
                        Ok((!raise, Value::Table(t)))
                    }
                    other => Ok((true, vm::frame_to_lua(lua, other, resp3)?)),
                }
            })?;
        redis.raw_set("__dispatch", dispatch)?;
        let acl_check = scope.create_function(|lua, (n, packed): (usize, mlua::Table)| {
            let mut argv = Vec::with_capacity(n);
            for i in 1..=n {
                argv.push(vm::arg_bytes(&packed.raw_get::<Value>(i)?));
            }
            let invalid = || -> mlua::Result<(bool, Value)> {
                let t = lua.create_table()?;
                t.set("err", "ERR Invalid command passed to redis.acl_check_cmd()")?;
                Ok((false, Value::Table(t)))
            };
            let Some(argv) = argv.into_iter().collect::<Option<Vec<Bytes>>>() else {
                return invalid();
            };
            let spec = argv.first().and_then(|name| server.lookup(name));
            let Some(spec) = spec else {
                return invalid();
            };
            let sub = quarry_commands::table::check_subcommand(spec, &argv)
                .ok()
                .flatten();
            let id = crate::acl::id_of(spec, sub);
            let keys = quarry_commands::table::command_keys(spec, &argv);
            let allowed = session_cell
                .borrow_mut()
                .user
                .check(&server.acl, id, spec, &argv, &keys)
                .is_ok();
            Ok((true, Value::Boolean(allowed)))
        })?;
        redis.raw_set("__acl_check", acl_check)?;
        let args = if is_script {
            MultiValue::new()
        } else {
            MultiValue::from_iter([Value::Table(keys_t.clone()), Value::Table(argv_t.clone())])
        };
        // pcall keeps the error value itself (a table for redis.call errors).
        let pcall: mlua::Function = lua.globals().raw_get("pcall")?;
        let r = pcall.call::<MultiValue>((function.clone(), args));
        redis.raw_set("__dispatch", Value::Nil)?;
        redis.raw_set("__acl_check", Value::Nil)?;
        r
    });
    if is_script {
        let g = lua.globals();
        let _ = g.raw_set("KEYS", Value::Nil);
        let _ = g.raw_set("ARGV", Value::Nil);
    }
    let values = match result {
        Ok(v) => v,
        Err(e) => {
            let text = vm::lua_error_text(&e);
            return Err(CmdError::Other(script_error(&text, &label)));
        }
    };
    let mut it = values.into_iter();
    let ok = matches!(it.next(), Some(Value::Boolean(true)));
    let value = it.next().unwrap_or(Value::Nil);
    if !ok {
        return Err(CmdError::Other(match &value {
            Value::Table(t) => match t.raw_get::<Value>("err") {
                Ok(Value::String(e)) => {
                    let text = String::from_utf8_lossy(&e.as_bytes()).to_string();
                    let text = text.strip_prefix('-').unwrap_or(&text).to_string();
                    format!("{text} script: {label}, on @user_script:1.")
                }
                _ => script_error("unknown error", &label),
            },
            Value::String(s) => script_error(&String::from_utf8_lossy(&s.as_bytes()), &label),
            Value::Error(e) => script_error(&vm::lua_error_text(e), &label),
            other => script_error(&format!("{other:?}"), &label),
        }));
    }
    Ok(vm::lua_to_frame(&value, caller_resp3))
}

/// A Lua runtime error as the error reply Redis gives.
fn script_error(text: &str, label: &str) -> String {
    if text.starts_with("ERR Script killed by user") {
        return text.to_string();
    }
    let text = text.strip_prefix("ERR ").unwrap_or(text);
    format!("ERR {text} script: {label}, on @user_script:1.")
}

/// redis.call / redis.pcall: one command, with the checks Redis makes for scripts. The reply
/// comes back in RESP2 or RESP3 shape depending on `redis.setresp`.
fn call_from_script(
    server: &Server,
    session: &mut Session,
    storage: &Arc<Storage>,
    args: &[Value],
    read_only: bool,
    run: &RunState,
    effects: &mut Effects,
) -> Frame {
    if args.is_empty() {
        return Frame::error("ERR Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        match vm::arg_bytes(a) {
            Some(b) => argv.push(b),
            None => {
                return Frame::error(
                    "ERR Lua redis lib command arguments must be strings or integers",
                )
            }
        }
    }
    let Some(spec) = server.lookup(&argv[0]) else {
        return Frame::error("ERR Unknown Redis command called from script");
    };
    if !spec.arity_ok(argv.len()) {
        return Frame::error("ERR Wrong number of args calling Redis command from script");
    }
    if spec.has(flag::NOSCRIPT) {
        return Frame::error("ERR This Redis command is not allowed from script");
    }
    if !session.admin && crate::namespace::admin_only(spec.name, &argv) {
        return Frame::Error(format!("ERR {}", crate::namespace::ADMIN_REQUIRED));
    }
    let sub = quarry_commands::table::check_subcommand(spec, &argv)
        .ok()
        .flatten();
    // The command's keys, worked out once for the ACL, WATCH, blocked clients, the access
    // clock, the locks and notifications.
    let positions = quarry_commands::table::command_keys(spec, &argv);
    let acl_id = crate::acl::id_of(spec, sub);
    if let Err(denied) = session
        .user
        .check(&server.acl, acl_id, spec, &argv, &positions)
    {
        crate::acl::log_denial(server, session, denied, acl_id, &argv, "lua");
        return Frame::Error(format!(
            "ERR The user executing the script {}",
            crate::acl::script_text(denied)
        ));
    }
    let write = spec.has(flag::WRITE);
    if write && read_only {
        return Frame::error("ERR Write commands are not allowed from read-only scripts.");
    }
    if matches!(spec.name, "xread" | "xreadgroup")
        && argv.iter().any(|x| x.eq_ignore_ascii_case(b"block"))
    {
        return Frame::Error(format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            spec.name
        ));
    }
    if let Err(e) = quarry_commands::table::check_subcommand(spec, &argv) {
        return Frame::Error(e.to_string());
    }
    let gated = if run.wrote.load(Ordering::Acquire) {
        crate::replication::gate_role(server, write, true)
    } else {
        crate::replication::gate(server, write, true)
    };
    if let Err(e) = gated {
        return Frame::Error(e.to_string());
    }
    if server.monitors.load(Ordering::Relaxed) > 0 {
        crate::connection::feed_monitor(server, "lua", &argv);
    }
    let keys = quarry_commands::table::key_names(&argv, &positions);
    if write {
        run.wrote.store(true, Ordering::Release);
        let ns = session.namespace.as_ref();
        server.watches.touch_keys(ns, &keys);
        // A flush names no key: every watched key that exists is marked, as from a client.
        if spec.name == "flushdb" {
            server.watches.touch_live(ns, &storage.db(ns));
            effects.flushed = true;
        } else if spec.name == "flushall" {
            server.watches.touch_flushall(server);
            effects.flushed = true;
        }
        effects.written.extend(keys.iter().cloned());
    }
    if !quarry_commands::access::is_no_touch(spec.name) {
        keys.iter().for_each(|k| quarry_commands::access::touch(k));
    }
    let saved = session.protocol;
    session.protocol = if run.resp3.load(Ordering::Relaxed) {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    // Keys the script did not declare are locked as it reaches them, for the rest of the
    // script (reads too: a read then a write of one key must not interleave with another
    // client's write). The declared ones were locked before it started.
    let db = storage.db(session.namespace.as_ref());
    if !keys.is_empty() {
        drop(db.locks().lock_many(&keys));
    }
    let noting = crate::notify::begin(server, session.namespace.as_ref(), spec, &argv, &positions);
    let result = match spec.exec {
        Exec::Data(f) => {
            let mut ctx = Ctx {
                db: &db,
                cursors: &server.cursors,
                protocol: session.protocol,
            };
            f(&mut ctx, &argv)
        }
        Exec::Server => crate::admin::run(server, session, spec.name, &argv).0,
    };
    if let (Some(n), Ok(frame)) = (noting, &result) {
        n.finish(server, &argv, frame);
    }
    session.protocol = saved;
    let stat = &server.command_stats[Server::command_index(spec)];
    stat.add_call(0);
    match result {
        Ok(f) => f,
        Err(e) => {
            stat.add_failed();
            Frame::Error(e.to_string())
        }
    }
}

/// SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP.
fn script(server: &Server, session: &Session, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    let scope = scope(session.namespace.as_ref());
    match sub.as_str() {
        "load" => {
            let storage = server.storage().ok_or(CmdError::Loading)?;
            // Compiled here once, so that a syntax error is reported now.
            let sha = sha1_hex(&a[2]);
            let generation = server.scripting.generation.load(Ordering::Acquire);
            vm::with_vm(generation, &server.scripting.lua_memory, |vm| {
                vm.script(&sha, &a[2]).map(|_| ())
            })
            .map_err(CmdError::Other)?
            .map_err(CmdError::Other)?;
            Ok(Frame::bulk(server.scripting.store(&storage, &scope, &a[2])))
        }
        "exists" => {
            let storage = server.storage().ok_or(CmdError::Loading)?;
            Ok(Frame::Array(
                a[2..]
                    .iter()
                    .map(|s| {
                        let sha = String::from_utf8_lossy(s).to_ascii_lowercase();
                        Frame::Integer(
                            server.scripting.body(&storage, &scope, &sha).is_some() as i64
                        )
                    })
                    .collect(),
            ))
        }
        "flush" => {
            if a.len() == 3 && !(is(&a[2], "async") || is(&a[2], "sync")) {
                return Err(CmdError::err("SCRIPT FLUSH only support SYNC|ASYNC option"));
            }
            if a.len() > 3 {
                return Err(CmdError::Syntax);
            }
            let storage = server.storage().ok_or(CmdError::Loading)?;
            // This namespace's scripts only (the default one's keys have no scope prefix).
            server.scripting.bodies.write().retain(|k, _| {
                if scope.is_empty() {
                    k.starts_with(SCOPE_MARK)
                } else {
                    !k.starts_with(&scope)
                }
            });
            server.scripting.generation.fetch_add(1, Ordering::AcqRel);
            let mut batch = WriteBatch::default();
            let begin = format!("{scope}{SCRIPT_PREFIX}").into_bytes();
            let end = quarry_storage::encoding::prefix_successor(&begin).unwrap_or_default();
            batch.delete_range_cf(storage.engine.cf(ColumnFamily::Propagate), begin, end);
            if let Err(e) = storage.engine.write(batch, WriteOrigin::Local) {
                tracing::debug!(error = %e, "scripts flushed in memory only");
            }
            Ok(Frame::ok())
        }
        "kill" => server.scripting.kill(false),
        "help" => Ok(help_lines(&[
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Print this help.",
        ])),
        _ => Err(CmdError::err(format!(
            "unknown subcommand '{sub}'. Try SCRIPT HELP."
        ))),
    }
}
