//! Kvrocks namespaces: tenants of one node, each with its own keys, and a token to reach them.
//!
//! A `namespace.<name> <token>` line (or NAMESPACE ADD/SET) gives a namespace a token.
//! `AUTH <token>` puts a connection in that namespace: its keys are stored under the
//! namespace's prefix, which the Kvrocks key encoding already carries, so a Kvrocks data
//! directory with namespaces opens unchanged. `AUTH <requirepass>` makes the connection the
//! admin, in the default namespace (`__namespace`), as in Kvrocks.
//!
//! The tokens live in the config (`Config::tokens`). With `repl-namespace-enabled` a master
//! also writes them, as Kvrocks does, to the propagate column family under
//! `__namespace_keys__` (a JSON object, token -> name): the record replicates, and a replica
//! that applies it takes the master's namespaces.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use quarry_commands::args::{lower, text};
use quarry_commands::CmdError;
use quarry_resp::Frame;
use quarry_storage::{ColumnFamily, WriteBatch, WriteOrigin};
use tracing::{info, warn};

use crate::admin::Outcome;
use crate::connection::{Flow, Session};
use crate::server::Server;

/// Kvrocks' record of the namespaces in the propagate column family.
pub const DB_KEY: &[u8] = quarry_storage::digest::NAMESPACE_RECORD;

/// Kvrocks' default namespace's name, as NAMESPACE GET * lists it.
pub const DEFAULT: &str = "__namespace";

/// What Kvrocks answers a user (a namespace's connection) that runs an admin's command.
pub const ADMIN_REQUIRED: &str = "admin permission required to perform the command";

/// Kvrocks' rules for a name: at most 255 bytes, and not ending in byte 0x7f.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.len() > u8::MAX as usize {
        return Err(format!("size exceed limit {}", u8::MAX));
    }
    if name.as_bytes().last() == Some(&0x7f) {
        return Err("namespace contain illegal letter".into());
    }
    Ok(())
}

/// The commands only the admin runs. Kvrocks' list (NAMESPACE, FLUSHALL, CONFIG, SHUTDOWN,
/// BGSAVE, FLUSHBACKUP, SLAVEOF, LASTSAVE, RDB, CLUSTER, CLUSTERX), and the ones that would
/// show or change other tenants' data: the replication stream and its files, MONITOR, DEBUG,
/// the whole-node maintenance commands and the slot migration internals.
pub fn admin_only(name: &str, args: &[Bytes]) -> bool {
    if name == "acl" {
        // What a tenant may ask of ACL: about itself and the categories.
        return !args.get(1).is_some_and(|s| {
            ["whoami", "cat", "genpass", "help"]
                .iter()
                .any(|w| s.eq_ignore_ascii_case(w.as_bytes()))
        });
    }
    matches!(
        name,
        "namespace"
            | "flushall"
            | "config"
            | "shutdown"
            | "bgsave"
            | "flushbackup"
            | "slaveof"
            | "replicaof"
            | "lastsave"
            | "cluster"
            | "clusterx"
            | "psync"
            | "sync"
            | "replconf"
            | "_db_name"
            | "_fetch_meta"
            | "_fetch_file"
            | "pollupdates"
            | "applybatch"
            | "monitor"
            | "debug"
            | "compact"
            | "flushmemtable"
            | "digest"
            | "verify"
            | "perflog"
            | "rdb"
            | "slowlog"
            | "failover"
    )
}

/// What a user and password given to AUTH or HELLO are.
pub enum Credential {
    /// An ACL user (`default`'s password is `requirepass`): the admin, in the default
    /// namespace, with what the user's rules allow.
    User(String),
    /// A namespace's token (given alone, or as the `default` user's password).
    Tenant(Bytes),
}

/// Looks a user and password up: a namespace's token (for `default`), or an ACL user's
/// password. None if neither matches, or the user is off.
pub fn authenticate(server: &Server, user: &str, password: &[u8]) -> Option<Credential> {
    if user == "default" {
        let config = server.config.read();
        if let Ok(token) = std::str::from_utf8(password) {
            if let Some(name) = config.tokens().get(token) {
                return Some(Credential::Tenant(Bytes::from(name.clone())));
            }
        }
    }
    let u = server.acl.user(user)?;
    u.check_password(password)
        .then(|| Credential::User(user.to_string()))
}

/// Puts a session where a credential leads.
pub fn enter(server: &Server, session: &mut Session, credential: Credential) {
    match credential {
        Credential::User(name) => {
            // A user confined to a namespace works there, as its token's connections do.
            let confined = server
                .acl
                .user(&name)
                .and_then(|u| u.namespace().map(|n| Bytes::from(n.to_string())));
            session.admin = confined.is_none();
            session.namespace = confined;
            set_user(server, session, &name);
        }
        Credential::Tenant(ns) => {
            session.admin = false;
            session.namespace = Some(ns);
            set_user(server, session, "default");
        }
    }
    session.authenticated = true;
}

/// The connection now runs as ACL user `name` (CLIENT LIST shows it).
pub fn set_user(server: &Server, session: &mut Session, name: &str) {
    session.user = crate::acl::SessionUser::new(&server.acl, name);
    session.handle.info.lock().user = name.to_string();
}

/// NAMESPACE GET|SET|ADD|DEL, with Kvrocks' replies and texts.
/// Kvrocks' `MOVEX key token`: moves `key` from this connection's namespace to the token's
/// (`requirepass` names the default namespace). 1 if moved; 0 if the key is missing, or
/// exists there already (or the two are the same namespace).
pub fn movex(server: &Server, session: &Session, a: &[Bytes]) -> Result<Frame, CmdError> {
    let target = {
        let config = server.config.read();
        let admin = config.get("requirepass");
        if admin.is_empty() {
            return Err(CmdError::err(
                "Forbidden to move key when requirepass is empty",
            ));
        }
        match std::str::from_utf8(&a[2]) {
            Ok(t) if t == admin => None,
            Ok(t) => match config.tokens().get(t) {
                Some(name) => Some(Bytes::from(name.clone())),
                None => return Err(CmdError::err("Invalid password")),
            },
            Err(_) => return Err(CmdError::err("Invalid password")),
        }
    };
    if target == session.namespace {
        return Ok(Frame::Integer(0));
    }
    let storage = server.storage().ok_or(CmdError::Loading)?;
    let src = storage.db(session.namespace.as_ref());
    let dst = storage.db(target.as_ref());
    let moved = src.move_to(&a[1], &dst)?;
    Ok(Frame::Integer(moved as i64))
}

pub fn command(server: &Server, a: &[Bytes]) -> Outcome {
    (run(server, &lower(&a[1]), a), Flow::Continue)
}

fn run(server: &Server, sub: &str, a: &[Bytes]) -> Result<Frame, CmdError> {
    let repl = server.config.read().get_bool("repl-namespace-enabled");
    if repl && server.repl.is_replica.load(Ordering::Acquire) && sub != "get" {
        return Err(CmdError::err("namespace is read-only for slave"));
    }
    match (sub, a.len()) {
        ("get", 3) => {
            let config = server.config.read();
            if a[2].as_ref() == b"*" {
                let mut out = Vec::new();
                for (token, name) in config.tokens() {
                    out.push(Frame::bulk(name.clone()));
                    out.push(Frame::bulk(token.clone()));
                }
                out.push(Frame::bulk(DEFAULT));
                out.push(Frame::bulk(config.get("requirepass").to_string()));
                return Ok(Frame::Array(out));
            }
            let name = text(&a[2]);
            Ok(config
                .tokens()
                .iter()
                .find(|(_, n)| **n == name)
                .map(|(t, _)| Frame::bulk(t.clone()))
                .unwrap_or(Frame::Null))
        }
        ("set", 4) | ("add", 4) => {
            let (name, token) = (text(&a[2]), text(&a[3]));
            let result = change(server, |tokens| {
                if sub == "add" {
                    if let Some((t, _)) = tokens.iter().find(|(_, n)| **n == name) {
                        return if *t == token {
                            Ok(false)
                        } else {
                            Err("the namespace already exists".into())
                        };
                    }
                    if tokens.contains_key(&token) {
                        return Err("the token already exists".into());
                    }
                }
                tokens.retain(|_, n| *n != name);
                tokens.insert(token.clone(), name.clone());
                Ok(true)
            });
            log_change(
                if sub == "add" { "added" } else { "updated" },
                &name,
                &result,
            );
            result.map(|()| Frame::ok())
        }
        ("del", 3) => {
            let name = text(&a[2]);
            let result = change(server, |tokens| {
                if name == DEFAULT {
                    return Err("forbidden to delete the default namespace".into());
                }
                let before = tokens.len();
                tokens.retain(|_, n| *n != name);
                if tokens.len() == before {
                    return Err("the namespace was not found".into());
                }
                Ok(true)
            });
            log_change("deleted", &name, &result);
            result.map(|()| Frame::ok())
        }
        _ => Err(CmdError::err(
            "NAMESPACE subcommand must be one of GET, SET, DEL, ADD",
        )),
    }
}

fn log_change(what: &str, name: &str, result: &Result<(), CmdError>) {
    match result {
        Ok(()) => warn!(namespace = name, "namespace {what}"),
        Err(e) => info!(namespace = name, error = %e, "namespace not {what}"),
    }
}

/// Applies an edit of the tokens after Kvrocks' checks, then saves them: to the config file,
/// and (on a master with `repl-namespace-enabled`) to the database for the replicas. The edit
/// answers whether it changed anything. A failed save leaves the tokens as they were.
fn change(
    server: &Server,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<bool, String>,
) -> Result<(), CmdError> {
    let mut config = server.config.write();
    let old = config.tokens().clone();
    let mut tokens = old.clone();
    let changed = edit(&mut tokens).map_err(CmdError::err)?;
    if !changed {
        return Ok(());
    }
    // Kvrocks' checks for a namespace that is added or changed.
    for (token, name) in &tokens {
        if old.get(token) == Some(name) {
            continue;
        }
        check_name(name).map_err(CmdError::err)?;
        if config.get("requirepass").is_empty() {
            return Err(CmdError::err(
                "forbidden to add namespace when requirepass was empty",
            ));
        }
        if config.get_bool("cluster-enabled") {
            return Err(CmdError::err(
                "forbidden to add namespace when cluster mode was enabled",
            ));
        }
        if name == DEFAULT {
            return Err(CmdError::err("forbidden to add the default namespace"));
        }
        if token == config.get("requirepass") || token == config.get("masterauth") {
            return Err(CmdError::err(
                "the token is duplicated with requirepass or masterauth",
            ));
        }
    }
    let repl = config.get_bool("repl-namespace-enabled");
    if config.file().is_none() && !repl {
        return Err(CmdError::err(
            "modify namespace requires the server is running with a configuration file or enabled namespace replication",
        ));
    }
    config.set_tokens(tokens.clone());
    let saved = save(server, &config, &tokens, repl);
    if let Err(e) = saved {
        config.set_tokens(old);
        return Err(CmdError::err(e));
    }
    Ok(())
}

fn save(
    server: &Server,
    config: &crate::config::Config,
    tokens: &BTreeMap<String, String>,
    repl: bool,
) -> Result<(), String> {
    if config.file().is_some() {
        config.rewrite()?;
    }
    // A replica writes nothing of its own (its sequence must stay its master's).
    if !repl || server.repl.is_replica.load(Ordering::Acquire) {
        return Ok(());
    }
    save_to_db(server, tokens)
}

/// The namespaces a master recorded in the database, if any.
fn load_from_db(server: &Server) -> Result<BTreeMap<String, String>, String> {
    let Some(engine) = server.engine() else {
        return Ok(BTreeMap::new());
    };
    let raw = engine
        .get(ColumnFamily::Propagate, DB_KEY)
        .map_err(|e| e.to_string())?
        .map(|v| v.to_vec());
    match raw {
        Some(raw) => serde_json::from_slice(&raw)
            .map_err(|e| format!("the namespaces recorded in the database do not parse: {e}")),
        None => Ok(BTreeMap::new()),
    }
}

/// At start-up, and when a replica applies its master's record or a full sync: the config's
/// namespaces, with the database's added where the config has no such token (Kvrocks'
/// LoadAndRewrite); a replica with `repl-namespace-enabled` takes the record as it is.
/// With `repl-namespace-enabled` the file then loses its namespace lines: they live in the
/// database.
pub fn load_and_rewrite(server: &Server) -> Result<(), String> {
    let mut config = server.config.write();
    if config.get_bool("cluster-enabled") {
        return Ok(());
    }
    let from_db = load_from_db(server)?;
    let repl = config.get_bool("repl-namespace-enabled");
    if !from_db.is_empty() && !repl {
        return Err("cannot switch off repl_namespace_enabled when namespaces exist in db".into());
    }
    let from_file = !config.tokens().is_empty();
    let replica = server.repl.is_replica.load(Ordering::Acquire);
    let tokens = if replica && repl && !from_db.is_empty() {
        // A replica takes its master's namespaces as they are: one the master deleted goes.
        from_db
    } else {
        let mut tokens = config.tokens().clone();
        for (token, name) in from_db {
            tokens.entry(token).or_insert(name);
        }
        tokens
    };
    let changed = tokens != *config.tokens();
    config.set_tokens(tokens.clone());
    if (from_file || changed) && repl && config.file().is_some() {
        config.rewrite()?;
    }
    drop(config);
    if from_file && repl && !replica {
        // The file's namespaces go to the database, where the replicas read them.
        save_to_db(server, &tokens)?;
    }
    Ok(())
}

/// Writes the namespaces' record for the replicas, unless it holds them already.
fn save_to_db(server: &Server, tokens: &BTreeMap<String, String>) -> Result<(), String> {
    let engine = server.engine().ok_or("the database is being replaced")?;
    if load_from_db(server)? == *tokens {
        return Ok(());
    }
    let json = serde_json::to_vec(tokens).map_err(|e| e.to_string())?;
    let mut batch = WriteBatch::default();
    batch.put_cf(engine.cf(ColumnFamily::Propagate), DB_KEY, json);
    engine
        .write(batch, WriteOrigin::Local)
        .map_err(|e| e.to_string())
}

/// The pub/sub hubs of the namespaces: a tenant's channels are its own.
#[derive(Default)]
pub struct Hubs {
    named: parking_lot::RwLock<HashMap<Bytes, Arc<crate::pubsub::PubSub>>>,
}

impl Hubs {
    /// The hub of namespace `name`, made on first use.
    pub fn get(&self, name: &Bytes) -> Arc<crate::pubsub::PubSub> {
        if let Some(h) = self.named.read().get(name) {
            return h.clone();
        }
        self.named.write().entry(name.clone()).or_default().clone()
    }
}
