//! Server and connection commands: the ones that need the server's state rather than the data
//! (AUTH, HELLO, SELECT, PING, QUIT, CLIENT, INFO, CONFIG, SLOWLOG, MONITOR, DEBUG, SHUTDOWN).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use quarry_commands::args::{is, lower, parse_f64, parse_i64, text};
use quarry_commands::CmdError;
use quarry_resp::{Frame, Protocol};
use tracing::warn;

use crate::connection::{Flow, ReplyMode, Session};
use crate::info;
use crate::server::Server;

/// A command's reply and what the connection does next.
pub(crate) type Outcome = (Result<Frame, CmdError>, Flow);

fn reply(f: Frame) -> Outcome {
    (Ok(f), Flow::Continue)
}

/// The reply of a command that does not change the connection's flow.
pub(crate) fn reply_result(r: Result<Frame, CmdError>) -> Outcome {
    (r, Flow::Continue)
}

fn fail(e: CmdError) -> Outcome {
    (Err(e), Flow::Continue)
}

/// Arguments that the subcommand table admits but the subcommand itself does not (the table
/// has already refused unknown subcommands).
fn subcommand_error(cmd: &str, sub: &[u8]) -> CmdError {
    CmdError::WrongArity(format!("{cmd}|{}", lower(sub)))
}

pub const REDIS_VERSION: &str = "7.0.15";

pub fn run(server: &Server, session: &mut Session, name: &str, a: &[Bytes]) -> Outcome {
    match name {
        "ping" => ping(a),
        "auth" => auth(server, session, a),
        "hello" => hello(server, session, a),
        "select" => match parse_i64(&a[1]) {
            Ok(0) => reply(Frame::ok()),
            Ok(_) => fail(CmdError::err("DB index is out of range")),
            Err(e) => fail(e),
        },
        "quit" => (Ok(Frame::ok()), Flow::Close),
        "reset" => reset(server, session),
        "namespace" => crate::namespace::command(server, a),
        "movex" => reply_result(crate::namespace::movex(server, session, a)),
        "acl" => crate::acl::command::run(server, session, a),
        "client" => client(server, session, a),
        "info" => info_cmd(server, session, a),
        "migrate" => (
            crate::migrate_keys::migrate(server, session.namespace.as_ref(), a),
            Flow::Continue,
        ),
        "config" => config(server, a),
        "slowlog" => slowlog(server, a),
        "monitor" => {
            session.handle.info.lock().monitor = true;
            (Ok(Frame::ok()), Flow::Monitor)
        }
        "debug" => debug(server, session.protocol, a),
        "blpop" | "brpop" | "brpoplpush" | "blmove" | "blmpop" | "bzpopmin" | "bzpopmax"
        | "bzmpop" => {
            match crate::blocking::parse(name, a, session.protocol, session.namespace.as_ref()) {
                Err(e) => fail(e),
                // Blocked clients woken for its keys are served first: it queues behind
                // (not inside EXEC or a script, where it cannot block and answers at once).
                Ok(op)
                    if !quarry_types::txn::active()
                        && server.waiting.serving_on_all(op.ns.as_ref(), op.keys()) =>
                {
                    (Ok(Frame::Raw(Bytes::new())), Flow::Block(op))
                }
                Ok(op) => match op.attempt(server) {
                    Some(result) => (result, Flow::Continue),
                    // Nothing to pop: the connection waits (with no reply yet).
                    None => (Ok(Frame::Raw(Bytes::new())), Flow::Block(op)),
                },
            }
        }
        "xread" | "xreadgroup" => xread(server, session, name, a),
        "shutdown" => shutdown(a),
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "script"
        | "function" => crate::scripting::run(server, session, name, a),
        "bgsave" => match a.get(1) {
            Some(opt) if a.len() > 2 || !is(opt, "SCHEDULE") => fail(CmdError::Syntax),
            _ => match crate::backup::bgsave(server) {
                Ok(()) => reply(Frame::ok()),
                Err(e) => fail(e),
            },
        },
        "lastsave" => reply(Frame::Integer(crate::backup::lastsave(server))),
        "flushbackup" => {
            crate::backup::flushbackup(server);
            reply(Frame::ok())
        }
        "flushmemtable" => match server.engine() {
            Some(engine) => match engine.flush() {
                Ok(()) => reply(Frame::ok()),
                Err(e) => fail(CmdError::Storage(e.to_string())),
            },
            None => fail(CmdError::Loading),
        },
        "slaveof" | "replicaof" | "role" | "psync" | "replconf" | "_db_name" | "_fetch_meta"
        | "_fetch_file" | "wait" | "digest" | "pollupdates" => {
            crate::replication::run(server, session, name, a)
        }
        "verify" => reply_result(crate::verify::command(server, a)),
        "latency" => reply_result(crate::latency::command(server, a)),
        "perflog" => reply_result(crate::perflog::command(server, a)),
        "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe"
        | "sunsubscribe" | "publish" | "mpublish" | "spublish" | "pubsub" => {
            crate::pubsub::run(server, session, name, a)
        }
        "cluster" | "clusterx" | "readonly" | "readwrite" | "asking" | "applybatch" => {
            crate::cluster::run(server, session, name, a)
        }
        other => fail(CmdError::err(format!(
            "command '{other}' has no server handler"
        ))),
    }
}

fn ping(a: &[Bytes]) -> Outcome {
    match a.len() {
        1 => reply(Frame::Simple("PONG".into())),
        2 => reply(Frame::Bulk(a[1].clone())),
        _ => fail(CmdError::WrongArity("ping".into())),
    }
}

/// RESET: back to a fresh connection's state (RESP2, no name, not authenticated, no
/// MONITOR). The reply is written in RESP2, as Redis does.
fn reset(server: &Server, session: &mut Session) -> Outcome {
    session.pubsub = None;
    session.multi = None;
    session.watch = None;
    session.protocol = Protocol::Resp2;
    // As a new connection: authenticated (the admin) only while no password is set.
    let open = !server.hot.auth_required.load(Ordering::Relaxed);
    session.authenticated = open;
    session.admin = open;
    session.namespace = None;
    crate::namespace::set_user(server, session, "default");
    {
        let mut info = session.handle.info.lock();
        info.name.clear();
        info.resp = 2;
        info.monitor = false;
    }
    (Ok(Frame::Simple("RESET".into())), Flow::Reset)
}

/// Checks AUTH's or HELLO's user and password: an ACL user (the default one when none is
/// named, whose password is `requirepass`), or a namespace's token. A failure is logged in
/// the ACL LOG.
fn check_password(
    server: &Server,
    session: &Session,
    user: Option<&[u8]>,
    pass: &[u8],
) -> Result<crate::namespace::Credential, CmdError> {
    if user.is_none() && server.acl.default_user().nopass() {
        return Err(CmdError::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    let name = user.map_or_else(|| "default".to_string(), text);
    crate::namespace::authenticate(server, &name, pass).ok_or_else(|| {
        server.acl.log(crate::acl::LogEntry {
            count: 1,
            reason: "auth",
            context: if session.multi.is_some() {
                "multi"
            } else {
                "toplevel"
            },
            object: "AUTH".into(),
            username: name.clone(),
            at: std::time::Instant::now(),
            client_info: session.handle.describe(),
        });
        CmdError::Other("WRONGPASS invalid username-password pair or user is disabled.".into())
    })
}

fn auth(server: &Server, session: &mut Session, a: &[Bytes]) -> Outcome {
    let result = match a.len() {
        2 => check_password(server, session, None, &a[1]),
        3 => check_password(server, session, Some(&a[1]), &a[2]),
        _ => Err(CmdError::Syntax),
    };
    match result {
        Ok(credential) => {
            crate::namespace::enter(server, session, credential);
            reply(Frame::ok())
        }
        Err(e) => fail(e),
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
fn hello(server: &Server, session: &mut Session, a: &[Bytes]) -> Outcome {
    let mut proto = session.protocol;
    let mut i = 1;
    if a.len() > 1 {
        let v = match parse_i64(&a[1]) {
            Ok(v) => v,
            Err(_) => {
                return fail(CmdError::Other(
                    "ERR Protocol version is not an integer or out of range".into(),
                ))
            }
        };
        proto = match v {
            2 => Protocol::Resp2,
            3 if server.hot.resp3_enabled.load(Ordering::Relaxed) => Protocol::Resp3,
            _ => {
                return fail(CmdError::Other(
                    "NOPROTO unsupported protocol version".into(),
                ))
            }
        };
        i = 2;
    }
    let mut name = None;
    while i < a.len() {
        if is(&a[i], "AUTH") && i + 2 < a.len() {
            match check_password(server, session, Some(&a[i + 1]), &a[i + 2]) {
                Ok(credential) => crate::namespace::enter(server, session, credential),
                Err(e) => return fail(e),
            }
            i += 3;
        } else if is(&a[i], "SETNAME") && i + 1 < a.len() {
            if let Err(e) = valid_client_name(&a[i + 1]) {
                return fail(e);
            }
            name = Some(text(&a[i + 1]));
            i += 2;
        } else {
            return fail(CmdError::err(format!(
                "Syntax error in HELLO option '{}'",
                text(&a[i])
            )));
        }
    }
    if !session.authenticated && server.hot.auth_required.load(Ordering::Relaxed) {
        return fail(CmdError::Other(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into(),
        ));
    }
    session.protocol = proto;
    {
        let mut info = session.handle.info.lock();
        info.resp = if proto == Protocol::Resp3 { 3 } else { 2 };
        if let Some(n) = name {
            info.name = n;
        }
    }
    reply(Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("redis")),
        (Frame::bulk("version"), Frame::bulk(REDIS_VERSION)),
        (
            Frame::bulk("proto"),
            Frame::Integer(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (Frame::bulk("id"), Frame::Integer(session.handle.id as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk("master")),
        (Frame::bulk("modules"), Frame::Array(Vec::new())),
    ]))
}

fn valid_client_name(name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID, ADDR, LADDR, TYPE (normal|master|replica|pubsub), USER, SKIPME (yes|no), MAXAGE.",
    "LIST [TYPE (normal|master|replica|pubsub)] [ID <id> [<id> ...]]",
    "    Return information about client connections.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "SETINFO <LIB-NAME|LIB-VER> <value>",
    "    Set client meta attributes.",
    "HELP",
    "    Print this help.",
];

fn client(server: &Server, session: &mut Session, a: &[Bytes]) -> Outcome {
    let sub = lower(&a[1]);
    match (sub.as_str(), a.len()) {
        ("id", 2) => reply(Frame::Integer(session.handle.id as i64)),
        ("pause", 3 | 4) => {
            let kind = match a.get(3) {
                None => crate::pause::Kind::All,
                Some(m) if is(m, "WRITE") => crate::pause::Kind::Write,
                Some(m) if is(m, "ALL") => crate::pause::Kind::All,
                Some(_) => return fail(CmdError::err("CLIENT PAUSE mode must be WRITE or ALL")),
            };
            let ms = match parse_i64(&a[2]) {
                Ok(ms) if ms >= 0 => ms as u64,
                Ok(_) => return fail(CmdError::err("timeout is negative")),
                Err(_) => return fail(CmdError::err("timeout is not an integer or out of range")),
            };
            let until = std::time::Instant::now() + Duration::from_millis(ms);
            server.pause.pause(until, kind);
            reply(Frame::ok())
        }
        ("unpause", 2) => {
            server.pause.unpause();
            reply(Frame::ok())
        }
        ("unblock", 3 | 4) => {
            let mode = match a.get(3) {
                None => 1,
                Some(m) if is(m, "TIMEOUT") => 1,
                Some(m) if is(m, "ERROR") => 2,
                Some(_) => {
                    return fail(CmdError::err(
                        "CLIENT UNBLOCK reason should be TIMEOUT or ERROR",
                    ))
                }
            };
            let id = match parse_i64(&a[2]) {
                Ok(id) => id,
                Err(e) => return fail(e),
            };
            let target = server
                .clients
                .all()
                .into_iter()
                .find(|c| c.id as i64 == id && c.blocked.load(Ordering::Acquire));
            match target {
                Some(c) => {
                    c.unblock_mode.store(mode, Ordering::Release);
                    c.unblock.notify_one();
                    reply(Frame::Integer(1))
                }
                None => reply(Frame::Integer(0)),
            }
        }
        // The connection loop leaves out the replies (see `ReplyMode`); ON answers OK, even
        // right after SKIP; SKIP while OFF changes nothing, as in Redis.
        ("reply", 3) => {
            if is(&a[2], "ON") {
                session.reply = ReplyMode::On;
                session.force_reply = true;
            } else if is(&a[2], "OFF") {
                session.reply = ReplyMode::Off;
            } else if is(&a[2], "SKIP") {
                if session.reply != ReplyMode::Off {
                    session.reply = ReplyMode::SkipNext;
                }
            } else {
                return fail(CmdError::Syntax);
            }
            reply(Frame::ok())
        }
        ("getname", 2) => {
            let name = session.handle.info.lock().name.clone();
            reply(if name.is_empty() {
                Frame::Null
            } else {
                Frame::bulk(name)
            })
        }
        ("setname", 3) => match valid_client_name(&a[2]) {
            Ok(()) => {
                session.handle.info.lock().name = text(&a[2]);
                reply(Frame::ok())
            }
            Err(e) => fail(e),
        },
        ("setinfo", 4) => {
            if a[3].iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                return fail(CmdError::err(format!(
                    "{} cannot contain spaces, newlines or special characters.",
                    text(&a[2]).to_ascii_uppercase()
                )));
            }
            let mut info = session.handle.info.lock();
            if is(&a[2], "LIB-NAME") {
                info.lib_name = text(&a[3]);
            } else if is(&a[2], "LIB-VER") {
                info.lib_ver = text(&a[3]);
            } else {
                return fail(CmdError::err(format!(
                    "Unrecognized option '{}'",
                    text(&a[2])
                )));
            }
            reply(Frame::ok())
        }
        ("info", 2) => reply(Frame::Verbatim(format!("{}\n", session.handle.describe()))),
        ("list", _) => client_list(server, &a[2..]),
        ("kill", n) if n >= 3 => client_kill(server, session, &a[2..]),
        ("help", 2) => reply(quarry_commands::table::help_lines(CLIENT_HELP)),
        _ => fail(subcommand_error("client", &a[1])),
    }
}

fn client_list(server: &Server, opts: &[Bytes]) -> Outcome {
    let mut clients = server.clients.all();
    if !opts.is_empty() {
        if is(&opts[0], "TYPE") && opts.len() == 2 {
            let t = lower(&opts[1]);
            match t.as_str() {
                "normal" | "pubsub" | "master" | "replica" | "slave" => {
                    if t != "normal" {
                        clients.clear();
                    }
                }
                _ => {
                    return fail(CmdError::err(format!(
                        "Unknown client type '{}'",
                        text(&opts[1])
                    )))
                }
            }
        } else if is(&opts[0], "ID") && opts.len() >= 2 {
            let mut ids = Vec::new();
            for o in &opts[1..] {
                match parse_i64(o) {
                    Ok(id) if id > 0 => ids.push(id as u64),
                    _ => return fail(CmdError::err("Invalid client ID")),
                }
            }
            clients.retain(|c| ids.contains(&c.id));
        } else {
            return fail(CmdError::Syntax);
        }
    }
    let mut out = String::new();
    for c in clients {
        out.push_str(&c.describe());
        out.push('\n');
    }
    reply(Frame::Verbatim(out))
}

fn client_kill(server: &Server, session: &Session, opts: &[Bytes]) -> Outcome {
    let clients = server.clients.all();
    // Old form: CLIENT KILL ip:port
    if opts.len() == 1 {
        let addr = text(&opts[0]);
        return match clients.iter().find(|c| c.addr_text() == addr) {
            Some(c) => {
                c.kill();
                let own = c.id == session.handle.id;
                (
                    Ok(Frame::ok()),
                    if own { Flow::Close } else { Flow::Continue },
                )
            }
            None => fail(CmdError::err("No such client")),
        };
    }
    if !opts.len().is_multiple_of(2) {
        return fail(CmdError::Syntax);
    }
    let mut skipme = true;
    let mut filters: Vec<(String, String)> = Vec::new();
    for pair in opts.chunks(2) {
        let key = lower(&pair[0]);
        let value = text(&pair[1]);
        match key.as_str() {
            "skipme" => match value.to_ascii_lowercase().as_str() {
                "yes" => skipme = true,
                "no" => skipme = false,
                _ => return fail(CmdError::Syntax),
            },
            "id" => {
                if parse_i64(&pair[1]).map(|v| v <= 0).unwrap_or(true) {
                    return fail(CmdError::err("client-id should be greater than 0"));
                }
                filters.push((key, value));
            }
            "type" => match value.to_ascii_lowercase().as_str() {
                "normal" | "master" | "replica" | "slave" | "pubsub" => {
                    filters.push((key, value.to_ascii_lowercase()))
                }
                _ => return fail(CmdError::err(format!("Unknown client type '{value}'"))),
            },
            "user" => {
                if server.acl.user(&value).is_none() {
                    return fail(CmdError::err(format!("No such user '{value}'")));
                }
                filters.push((key, value))
            }
            "addr" | "laddr" | "maxage" => filters.push((key, value)),
            _ => return fail(CmdError::Syntax),
        }
    }
    // Replication links are not client connections here: TYPE master drops the link to the
    // master (it reconnects at once), TYPE slave|replica drops this node's replicas (they
    // reconnect and resume), as in Kvrocks.
    if let [(k, t)] = filters.as_slice() {
        if k == "type" && t == "master" {
            let link = server.repl.link.lock();
            return match link.as_ref() {
                Some(l) => {
                    l.reconnect();
                    reply(Frame::Integer(1))
                }
                None => reply(Frame::Integer(0)),
            };
        }
        if k == "type" && (t == "slave" || t == "replica") {
            let n = server.repl.master.replicas().len();
            server.repl.master.disconnect_all();
            return reply(Frame::Integer(n as i64));
        }
    }
    let mut killed = 0;
    let mut own = false;
    for c in clients {
        if skipme && c.id == session.handle.id {
            continue;
        }
        let matches = filters.iter().all(|(k, v)| match k.as_str() {
            "id" => c.id.to_string() == *v,
            "addr" => c.addr_text() == *v,
            "laddr" => c.laddr.to_string() == *v,
            "type" => v == "normal",
            "user" => {
                let info = c.info.lock();
                let user = if info.user.is_empty() {
                    "default"
                } else {
                    info.user.as_str()
                };
                user == v
            }
            "maxage" => v
                .parse::<u64>()
                .is_ok_and(|age| c.created.elapsed().as_secs() >= age),
            _ => false,
        });
        if matches {
            c.kill();
            killed += 1;
            own |= c.id == session.handle.id;
        }
    }
    (
        Ok(Frame::Integer(killed)),
        if own { Flow::Close } else { Flow::Continue },
    )
}

fn info_cmd(server: &Server, session: &Session, a: &[Bytes]) -> Outcome {
    let sections: Vec<String> = a[1..].iter().map(|s| lower(s)).collect();
    match info::render(server, session.namespace.as_ref(), &sections) {
        Ok(text) => reply(Frame::Verbatim(text)),
        Err(e) => fail(e),
    }
}

const CONFIG_HELP: &[&str] = &[
    "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "REWRITE",
    "    Rewrite the configuration file.",
    "HELP",
    "    Print this help.",
];

/// CONFIG REWRITE, with the ACL users as `user` lines.
fn rewrite_config(server: &Server) -> Result<(), String> {
    crate::acl::into_config(server);
    server.config.read().rewrite()
}

fn config(server: &Server, a: &[Bytes]) -> Outcome {
    let sub = lower(&a[1]);
    match sub.as_str() {
        "get" if a.len() >= 3 => {
            let cfg = server.config.read();
            let mut pairs = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for pattern in &a[2..] {
                for (k, v) in cfg.matching(pattern) {
                    if seen.insert((k.clone(), v.clone())) {
                        pairs.push((Frame::bulk(k), Frame::bulk(v)));
                    }
                }
            }
            reply(Frame::Map(pairs))
        }
        "set" if a.len() >= 4 && a.len().is_multiple_of(2) => {
            let mut cfg = server.config.write();
            let before = cfg.clone();
            for pair in a[2..].chunks(2) {
                if let Err(e) = cfg.set(&text(&pair[0]), &text(&pair[1])) {
                    *cfg = before;
                    return fail(CmdError::err(e));
                }
            }
            // New TLS settings must load, or nothing changes: new connections use them.
            let tls_changed = a[2..]
                .chunks(2)
                .any(|p| crate::tls::is_tls_directive(&lower(&p[0])));
            if tls_changed {
                if let Err(e) = server.tls.reload(&cfg) {
                    *cfg = before;
                    return fail(CmdError::err(format!("CONFIG SET failed: TLS: {e}")));
                }
                tracing::info!("TLS configuration reloaded");
            }
            server.hot.reload(&cfg);
            let password_changed = cfg.get("requirepass") != before.get("requirepass");
            drop(before);
            if password_changed {
                drop(cfg);
                server.apply_requirepass();
                cfg = server.config.write();
            }
            (server.set_log_level)(cfg.get("log-level"));
            server
                .slowlog
                .lock()
                .trim(server.hot.slowlog_max_len.load(Ordering::Relaxed));
            reply(Frame::ok())
        }
        "rewrite" if a.len() == 2 => match rewrite_config(server) {
            Ok(()) => {
                tracing::info!("configuration file rewritten");
                reply(Frame::ok())
            }
            Err(e) => fail(CmdError::err(e)),
        },
        "resetstat" if a.len() == 2 => {
            for s in &server.command_stats {
                s.reset();
            }
            server.stats.commands_processed.reset();
            server.stats.error_replies.store(0, Ordering::Relaxed);
            server.stats.errors_by_code.lock().clear();
            reply(Frame::ok())
        }
        "help" if a.len() == 2 => reply(quarry_commands::table::help_lines(CONFIG_HELP)),
        _ => fail(subcommand_error("config", &a[1])),
    }
}

fn slowlog(server: &Server, a: &[Bytes]) -> Outcome {
    let sub = lower(&a[1]);
    match (sub.as_str(), a.len()) {
        ("get", 2) => reply(server.slowlog.lock().get(10)),
        ("get", 3) => match parse_i64(&a[2]) {
            Ok(n) if n >= -1 => reply(server.slowlog.lock().get(n)),
            _ => fail(CmdError::err("count should be greater than or equal to -1")),
        },
        ("len", 2) => reply(Frame::Integer(server.slowlog.lock().len() as i64)),
        ("reset", 2) => {
            server.slowlog.lock().reset();
            reply(Frame::ok())
        }
        ("help", 2) => reply(quarry_commands::table::help_lines(&[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Print this help.",
        ])),
        _ => fail(subcommand_error("slowlog", &a[1])),
    }
}

fn debug(server: &Server, proto: Protocol, a: &[Bytes]) -> Outcome {
    let sub = lower(&a[1]);
    match (sub.as_str(), a.len()) {
        ("digest", 2) => {
            tokio::task::block_in_place(|| reply_result(crate::replication::digest_all(server)))
        }
        ("digest-value", _) => reply_result(crate::replication::digest_values(server, &a[2..])),
        ("sleep", 3) => match parse_f64(&a[2]) {
            Ok(secs) if secs >= 0.0 && secs.is_finite() => (
                Ok(Frame::Raw(Bytes::new())),
                Flow::Sleep(Duration::from_secs_f64(secs), Frame::ok()),
            ),
            Ok(_) => fail(CmdError::err("invalid sleep time")),
            Err(e) => fail(e),
        },
        ("protocol", 3) => debug_protocol(proto, &lower(&a[2])),
        ("verify-alter-next", 2 | 3) | ("verify-delay", 3)
            if !crate::verify::failpoints_allowed(server) =>
        {
            fail(CmdError::err(
                "DEBUG VERIFY-* failpoints alter replication; set enable-debug-command yes first",
            ))
        }
        ("verify-alter-next", n @ (2 | 3)) => {
            let count = if n == 3 { parse_i64(&a[2]) } else { Ok(1) };
            match count {
                Ok(c) if c >= 0 => {
                    server.verify.alter_next.store(c as u64, Ordering::Relaxed);
                    reply(Frame::ok())
                }
                _ => fail(CmdError::err("invalid count")),
            }
        }
        ("verify-delay", 3) => match parse_i64(&a[2]) {
            Ok(ms) if ms >= 0 => {
                server.verify.delay_ms.store(ms as u64, Ordering::Relaxed);
                reply(Frame::ok())
            }
            _ => fail(CmdError::err("invalid delay (milliseconds)")),
        },
        ("dbsize-limit", 3) => match lower(&a[2]).as_str() {
            v @ ("0" | "1") => {
                crate::server::set_size_limit_reached(server, v == "1");
                reply(Frame::ok())
            }
            _ => fail(CmdError::err("invalid debug dbsize-limit value")),
        },
        ("help", 2) => reply(quarry_commands::table::help_lines(&[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "PROTOCOL <type>",
            "    Reply with a test value of the given type: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false.",
            "DBSIZE-LIMIT <0|1>",
            "    Refuse (1) or accept (0) writes as if the database were at max-db-size.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
            "VERIFY-ALTER-NEXT [<count>]",
            "    Failpoint (enable-debug-command): alter one value in each of the next <count> (1) master batches this replica applies.",
            "VERIFY-DELAY <ms>",
            "    Failpoint (enable-debug-command): delay this replica's verification digests.",
            "DIGEST",
            "    Output a hex signature representing the current DB content.",
            "DIGEST-VALUE <key> [<key> ...]",
            "    Output a hex signature of the values of all the specified keys.",
            "HELP",
            "    Print this help.",
        ])),
        _ => fail(subcommand_error("debug", &a[1])),
    }
}

/// DEBUG PROTOCOL <type>: Redis' test replies of each RESP type (Kvrocks has it too, with other
/// values for `attrib` and `verbatim`, and no `push`; quarry follows Redis).
fn debug_protocol(proto: Protocol, name: &str) -> Outcome {
    let resp3 = proto == Protocol::Resp3;
    let ints = || (0..3).map(Frame::Integer).collect::<Vec<_>>();
    let frame = match name {
        "string" => Frame::bulk("Hello World"),
        "integer" => Frame::Integer(12345),
        // Redis' value, which is not meant as pi.
        #[allow(clippy::approx_constant)]
        "double" => Frame::Double(3.141),
        "bignum" if resp3 => Frame::Raw(Bytes::from_static(
            b"(1234567999999999999999999999999999999\r\n",
        )),
        "bignum" => Frame::bulk("1234567999999999999999999999999999999"),
        "null" => Frame::Null,
        "array" => Frame::Array(ints()),
        "set" => Frame::Set(ints()),
        "map" => Frame::Map(
            (0..3)
                .map(|j| (Frame::Integer(j), Frame::Boolean(j == 1)))
                .collect(),
        ),
        "attrib" => {
            let mut out = Vec::new();
            if resp3 {
                out.extend_from_slice(b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n");
            }
            out.extend_from_slice(b"$39\r\nSome real reply following the attribute\r\n");
            Frame::Raw(Bytes::from(out))
        }
        "push" if !resp3 => {
            return fail(CmdError::err("RESP2 is not supported by this command"));
        }
        "push" => Frame::Raw(Bytes::from_static(
            b">2\r\n$16\r\nserver-cpu-usage\r\n:42\r\n$40\r\nSome real reply following the push reply\r\n",
        )),
        "true" => Frame::Boolean(true),
        "false" => Frame::Boolean(false),
        "verbatim" => Frame::Verbatim("This is a verbatim\nstring".into()),
        _ => {
            return fail(CmdError::err(
                "Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
            ))
        }
    };
    reply(frame)
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE]: quarry always flushes RocksDB and stops cleanly.
fn shutdown(a: &[Bytes]) -> Outcome {
    for opt in &a[1..] {
        if !(is(opt, "NOSAVE") || is(opt, "SAVE") || is(opt, "NOW") || is(opt, "FORCE")) {
            if is(opt, "ABORT") {
                return fail(CmdError::err("No shutdown in progress."));
            }
            return fail(CmdError::Syntax);
        }
    }
    warn!("SHUTDOWN requested by a client");
    (Ok(Frame::Raw(Bytes::new())), Flow::Shutdown)
}

/// XREAD and XREADGROUP: read at once, or (BLOCK) wait for entries.
fn xread(server: &Server, session: &Session, name: &str, a: &[Bytes]) -> Outcome {
    let Some(storage) = server.storage() else {
        return fail(CmdError::Loading);
    };
    let group = name == "xreadgroup";
    let db = storage.db(session.namespace.as_ref());
    let parsed =
        quarry_commands::stream::parse_read(a, group, session.protocol).and_then(|mut req| {
            req.check_groups(&db)?;
            req.resolve_last(&db)?;
            Ok(req)
        });
    let req = match parsed {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    match req.attempt(&db) {
        Err(e) => fail(e),
        Ok(Some(frame)) => reply(frame),
        Ok(None) if req.may_block() => (
            Ok(Frame::Raw(Bytes::new())),
            Flow::Block({
                let mut op = crate::blocking::BlockingOp::stream(req);
                op.ns = session.namespace.clone();
                op
            }),
        ),
        Ok(None) => reply(req.timed_out()),
    }
}
