//! One client connection: read requests, execute them in order, write the replies.
//!
//! All complete requests in a read are executed before the replies are written back in one go,
//! which is what makes pipelining cheap. Commands run on the connection's task; RocksDB reads
//! are short, and the few commands that walk the whole keyspace run under `block_in_place` so
//! that they do not hold up other connections on the same worker.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quarry_commands::table::{check_subcommand, flag};
use quarry_commands::{CmdError, Ctx, Exec};
use quarry_resp::{parse_request_resumable, Frame, ParseLimits, ParseState, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::admin;
use crate::clients::ClientHandle;
use crate::server::Server;

/// What the connection does after a command.
pub enum Flow {
    Continue,
    /// Write what is buffered, then close (QUIT, CLIENT KILL of itself).
    Close,
    /// Close and stop the server (SHUTDOWN).
    Shutdown,
    /// DEBUG SLEEP: wait, then send the reply.
    Sleep(Duration, Frame),
    /// Enter MONITOR mode after the reply.
    Monitor,
    /// RESET: leave MONITOR mode.
    Reset,
    /// A pipelined write found a key held by another connection: wait for it without
    /// holding the worker thread, then run the command again.
    KeyBusy(crate::group::Busy),
    /// BLPOP and friends found nothing: wait for a write to one of the keys, or the timeout.
    Block(crate::blocking::BlockingOp),
    /// PSYNC accepted: the connection becomes a replica's feed from sequence `next`.
    Feed {
        /// The engine PSYNC checked: the feed streams this one's WAL.
        engine: Arc<quarry_storage::Engine>,
        next: u64,
        ip: String,
        port: u16,
        /// A quarry replica: it takes the stream's notes.
        quarry: bool,
    },
    /// `_fetch_file`: the connection streams checkpoint files, then closes.
    SendFiles(Vec<String>),
    /// WAIT: reply once `replicas` replicas acknowledged `target`, or at the deadline.
    Wait {
        target: u64,
        replicas: usize,
        deadline: Option<Instant>,
    },
}

impl Flow {
    /// The connection waits (a sleep, a blocked command, WAIT) or hands its socket to a
    /// replication thread: what it answered before must be sent first. (A write whose key
    /// another connection holds, [`Flow::KeyBusy`], sends its own before it waits.)
    fn waits(&self) -> bool {
        matches!(
            self,
            Flow::Sleep(..)
                | Flow::Block(_)
                | Flow::Wait { .. }
                | Flow::Feed { .. }
                | Flow::SendFiles(_)
        )
    }
}

/// What a replica told in its handshake (REPLCONF) before PSYNC.
#[derive(Default)]
pub struct ReplHandshake {
    pub listening_port: u16,
    pub announce_ip: Option<String>,
    pub last_batch: Option<quarry_replication::master::LastBatch>,
    /// The replica takes notes in the stream (`REPLCONF capa notes`).
    pub notes: bool,
}

/// CLIENT REPLY: whether this connection's commands get replies. Pub/Sub messages and the
/// (un)subscribe confirmations are sent regardless, as in Redis.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// The next command gets no reply (CLIENT REPLY SKIP).
    SkipNext,
}

/// SUBSCRIBE and its kin answer with push messages, which CLIENT REPLY OFF does not silence.
fn is_subscription_command(name: &[u8]) -> bool {
    [
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "ssubscribe",
        "sunsubscribe",
    ]
    .iter()
    .any(|c| name.eq_ignore_ascii_case(c.as_bytes()))
}

/// Per-connection state that commands can change.
pub struct Session {
    pub handle: Arc<ClientHandle>,
    pub protocol: Protocol,
    pub authenticated: bool,
    /// The Kvrocks namespace the connection authenticated into; None is the default one.
    pub namespace: Option<Bytes>,
    /// The admin (`requirepass`, or no password set) may run every command; a namespace's
    /// connection may not run [`crate::namespace::admin_only`] ones.
    pub admin: bool,
    /// The ACL user the connection runs as.
    pub user: crate::acl::SessionUser,
    pub repl: ReplHandshake,
    /// READONLY: cluster replicas serve this connection's reads of their master's slots.
    pub readonly: bool,
    /// ASKING: the next command may use a slot being imported here.
    pub asking: bool,
    /// This connection is a migrating source's (CLUSTER IMPORT ... 0).
    pub importing: bool,
    /// Channels and patterns this connection subscribed to.
    pub pubsub: Option<crate::pubsub::Subscriptions>,
    /// Inside MULTI: the queued commands.
    pub multi: Option<crate::multi::MultiState>,
    /// WATCHed keys.
    pub watch: Option<crate::multi::Watched>,
    pub reply: ReplyMode,
    /// CLIENT REPLY ON answers even when it ends a SKIP.
    pub force_reply: bool,
    /// The command being run gets no reply (CLIENT REPLY OFF or SKIP): a blocked or sleeping
    /// command checks this when its reply comes.
    pub silent: bool,
    /// Pipelined writes that share one WriteBatch ([`crate::group`]); committed before
    /// anything else runs and before the connection waits for anything.
    pub group: Option<crate::group::Group>,
    /// The command that blocked: its slow-log entry and latency sample wait until it is
    /// served ([`finish_blocked`]), as in Redis.
    pub blocked_call: Option<BlockedCall>,
}

/// A blocking command's first run, which blocked.
pub struct BlockedCall {
    /// Its index in the command table (its statistics).
    index: usize,
    args: Vec<Bytes>,
    micros: u64,
}

/// How [`dispatch`] runs a command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On its own: it writes its batch, then marks watchers and wakes blocked clients.
    Alone,
    /// In a pipeline's group ([`crate::group`]): the group's commit does the rest.
    Grouped,
    /// Inside EXEC, which has checked routing and role, holds the migration fence, and commits.
    InExec,
}

/// Unregisters the client however its task ends: normally, or aborted by CLIENT KILL or
/// shutdown.
struct Registration<'a> {
    server: &'a Server,
    handle: &'a ClientHandle,
    monitoring: bool,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if self.server.cluster.enabled {
            crate::cluster::connection_closed(self.server, self.handle.id);
        }
        if self.monitoring {
            self.server.monitors.fetch_sub(1, Ordering::Relaxed);
        }
        self.server.clients.unregister(self.handle.id);
    }
}

/// A client's socket: plain TCP, or TLS from `tls-port`.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The socket for a replication thread (a replica's feed, full-sync files): the TCP socket
    /// itself, or one bridged to the TLS stream.
    fn into_thread_socket(self) -> std::io::Result<std::net::TcpStream>;
}

impl ClientStream for TcpStream {
    fn into_thread_socket(self) -> std::io::Result<std::net::TcpStream> {
        let std = self.into_std()?;
        std.set_nonblocking(false)?;
        Ok(std)
    }
}

impl ClientStream for tokio::net::UnixStream {
    fn into_thread_socket(self) -> std::io::Result<std::net::TcpStream> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "replication runs over TCP, not the unix socket",
        ))
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_thread_socket(self) -> std::io::Result<std::net::TcpStream> {
        crate::tls::bridge_accepted(&tokio::runtime::Handle::current(), self)
    }
}

pub async fn serve<S: ClientStream>(server: Arc<Server>, mut stream: S, handle: Arc<ClientHandle>) {
    let mut registration = Registration {
        server: &server,
        handle: &handle,
        monitoring: false,
    };
    // A connection made while no password is set is the admin, and stays authenticated if a
    // password is set later (as in Redis and Kvrocks).
    let open = !server.hot.auth_required.load(Ordering::Relaxed);
    let mut session = Session {
        handle: handle.clone(),
        protocol: Protocol::Resp2,
        authenticated: open,
        namespace: None,
        admin: open,
        user: crate::acl::SessionUser::new(&server.acl, "default"),
        repl: ReplHandshake::default(),
        readonly: false,
        asking: false,
        importing: false,
        pubsub: None,
        multi: None,
        watch: None,
        reply: ReplyMode::On,
        force_reply: false,
        silent: false,
        group: None,
        blocked_call: None,
    };
    let mut handover: Option<Flow> = None;
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut monitor: Option<tokio::sync::broadcast::Receiver<Bytes>> = None;
    let mut parse_state = ParseState::default();
    let mut turn = TURN_BYTES;
    'conn: loop {
        let limits = ParseLimits {
            max_bulk_len: server.hot.max_bulk_len.load(Ordering::Relaxed),
        };
        // A turn runs about `turn` bytes of the client's requests; what is left waits until
        // the worker's other connections had theirs (see TURN_BYTES).
        let turn_start = rbuf.len();
        if turn_start > 0 {
            TURNS.fetch_add(1, Ordering::Relaxed);
        }
        let mut cut_short = false;
        loop {
            // Large replies end a turn too (16 LRANGEs of 100 elements are 224 KB).
            // (A blocked, paused or waiting client's input is read meanwhile: rbuf may grow.)
            let used = turn_start
                .saturating_sub(rbuf.len())
                .max(wbuf.len() / REPLY_BYTES_PER_INPUT_BYTE);
            if used >= turn && !rbuf.is_empty() {
                crate::group::commit(&server, &mut session, &mut wbuf);
                cut_short = true;
                break;
            }
            match parse_request_resumable(&mut rbuf, limits, &mut parse_state) {
                Ok(Some(req)) => {
                    if req.args.is_empty() {
                        continue;
                    }
                    let before = session.reply;
                    if before == ReplyMode::SkipNext {
                        session.reply = ReplyMode::On;
                    }
                    let pushes = is_subscription_command(&req.args[0]);
                    let mut mark = wbuf.len();
                    // A command whose reply is skipped never joins a group (its reply is cut
                    // from the buffer below).
                    let more = !rbuf.is_empty() && before == ReplyMode::On;
                    // (The check before the lookup keeps the lookup off the common path.)
                    if server.pause.maybe_active() {
                        if let Some(spec) = server.lookup(&req.args[0]) {
                            let exec_writes = session.multi.as_ref().is_some_and(|m| m.writes());
                            let held = hold_while_paused(
                                &server,
                                &mut session,
                                &mut stream,
                                &mut rbuf,
                                &mut wbuf,
                                spec,
                                exec_writes,
                            );
                            if held.await.is_err() {
                                break 'conn;
                            }
                        }
                    }
                    let mut flow = execute(&server, &mut session, req.args, &mut wbuf, more);
                    while let Flow::KeyBusy(busy) = flow {
                        // What was answered goes out before the wait.
                        if !wbuf.is_empty()
                            && send_replies(&server, &mut session, &mut stream, &mut wbuf)
                                .await
                                .is_err()
                        {
                            break 'conn;
                        }
                        mark = wbuf.len();
                        let woken = busy.wait.until_free().await;
                        // A CLIENT PAUSE that began meanwhile holds the write as it would have
                        // held its first try.
                        let held = hold_while_paused(
                            &server,
                            &mut session,
                            &mut stream,
                            &mut rbuf,
                            &mut wbuf,
                            busy.spec,
                            false,
                        );
                        if held.await.is_err() {
                            break 'conn;
                        }
                        flow = busy.wait.retry(woken, || {
                            execute(&server, &mut session, busy.args, &mut wbuf, more)
                        });
                    }
                    session.silent = !pushes
                        && !std::mem::take(&mut session.force_reply)
                        && match session.reply {
                            ReplyMode::Off | ReplyMode::SkipNext => true,
                            ReplyMode::On => before == ReplyMode::SkipNext,
                        };
                    if session.silent {
                        wbuf.truncate(mark);
                    }
                    // What was answered goes out before the connection waits, or gives its
                    // socket away.
                    if flow.waits()
                        && !wbuf.is_empty()
                        && send_replies(&server, &mut session, &mut stream, &mut wbuf)
                            .await
                            .is_err()
                    {
                        break 'conn;
                    }
                    match flow {
                        Flow::Continue => {}
                        Flow::KeyBusy(_) => unreachable!("waited for above"),
                        Flow::Close => {
                            let _ =
                                send_replies(&server, &mut session, &mut stream, &mut wbuf).await;
                            break 'conn;
                        }
                        Flow::Shutdown => {
                            server.request_shutdown();
                            break 'conn;
                        }
                        Flow::Sleep(d, reply) => {
                            tokio::time::sleep(d).await;
                            if !session.silent {
                                reply.encode(session.protocol, &mut wbuf);
                            }
                        }
                        Flow::Block(op) => {
                            let Some(reply) =
                                wait_blocked(&server, &mut session, &mut stream, &mut rbuf, op)
                                    .await
                            else {
                                break 'conn;
                            };
                            if !session.silent {
                                reply.encode(session.protocol, &mut wbuf);
                            }
                        }
                        flow @ (Flow::Feed { .. } | Flow::SendFiles(_)) => {
                            handover = Some(flow);
                            break 'conn;
                        }
                        Flow::Wait {
                            target,
                            replicas,
                            deadline,
                        } => {
                            let waited = wait_for_replicas(
                                &server,
                                &mut stream,
                                &mut rbuf,
                                target,
                                replicas,
                                deadline,
                            );
                            let Some(acked) = waited.await else {
                                break 'conn;
                            };
                            if !session.silent {
                                Frame::Integer(acked as i64).encode(session.protocol, &mut wbuf);
                            }
                        }
                        Flow::Reset => {
                            if monitor.take().is_some() {
                                server.monitors.fetch_sub(1, Ordering::Relaxed);
                                registration.monitoring = false;
                            }
                        }
                        Flow::Monitor => {
                            if monitor.is_none() {
                                monitor = Some(server.monitor.subscribe());
                                server.monitors.fetch_add(1, Ordering::Relaxed);
                                registration.monitoring = true;
                            }
                        }
                    }
                    if wbuf.len() > 256 * 1024
                        && send_replies(&server, &mut session, &mut stream, &mut wbuf)
                            .await
                            .is_err()
                    {
                        break 'conn;
                    }
                }
                Ok(None) => {
                    crate::group::commit(&server, &mut session, &mut wbuf);
                    break;
                }
                Err(e) => {
                    crate::group::commit(&server, &mut session, &mut wbuf);
                    debug!(client = %handle.addr, error = %e, "protocol error, closing");
                    Frame::Error(format!("ERR {e}")).encode(session.protocol, &mut wbuf);
                    let _ = send_replies(&server, &mut session, &mut stream, &mut wbuf).await;
                    break 'conn;
                }
            }
        }
        if !wbuf.is_empty()
            && send_replies(&server, &mut session, &mut stream, &mut wbuf)
                .await
                .is_err()
        {
            break;
        }
        if handle.is_killed() {
            break;
        }
        if cut_short {
            let turns = TURNS.load(Ordering::Relaxed);
            tokio::task::yield_now().await;
            // Nobody else had a turn meanwhile: no one waits for this worker, and a client
            // alone (a bulk load) gets longer turns, which commit larger groups.
            turn = if TURNS.load(Ordering::Relaxed) == turns {
                (turn * 2).min(MAX_TURN_BYTES)
            } else {
                TURN_BYTES
            };
            continue;
        }
        let timeout = server.hot.timeout_secs.load(Ordering::Relaxed);
        // The common case waits on the socket alone; kills and shutdown abort the task.
        let read = if let Some(subs) = session.pubsub.as_mut() {
            tokio::select! {
                r = stream.read_buf(&mut rbuf) => r,
                message = subs.rx.recv() => {
                    if let Some(m) = message {
                        wbuf.extend_from_slice(&m);
                        // Whatever else is queued goes out in the same write.
                        while let Ok(m) = subs.rx.try_recv() {
                            wbuf.extend_from_slice(&m);
                        }
                    }
                    continue;
                }
            }
        } else if let Some(rx) = monitor.as_mut() {
            tokio::select! {
                r = stream.read_buf(&mut rbuf) => r,
                line = rx.recv() => {
                    match line {
                        Ok(line) => wbuf.extend_from_slice(&line),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => break,
                    }
                    continue;
                }
            }
        } else if timeout > 0 {
            match tokio::time::timeout(Duration::from_secs(timeout), stream.read_buf(&mut rbuf))
                .await
            {
                Ok(r) => r,
                Err(_) => {
                    debug!(client = %handle.addr, "idle timeout, closing");
                    break;
                }
            }
        } else {
            stream.read_buf(&mut rbuf).await
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                server.stats.net_input_bytes.add(n as u64);
            }
        }
    }
    drop(registration);
    if let Some(flow) = handover {
        hand_over(&server, stream, flow);
    }
}

/// How much of one client's input a connection runs before it lets the other connections of
/// its worker thread run: the group of its writes so far is committed, their replies are sent,
/// and the task yields. Without it a client that pipelines much (16 MSETs of 10 keys are 27 KB)
/// held the worker for all of it, and the other clients saw their first reply only after every
/// such pipeline ahead of them (MSET -P 16: p50 24 ms; with 4 KiB turns 2.5 ms, at the same
/// throughput; docs/threading.md, "Turns"). A connection whose yield found no other turn
/// taken meanwhile doubles its turn, up to MAX_TURN_BYTES: with 4 KiB turns a lone client's
/// bulk load of 512-byte values ran 30% slower, in groups of 7 SETs.
const TURN_BYTES: usize = 4096;
const MAX_TURN_BYTES: usize = 256 * 1024;

/// How many bytes of replies count as one byte of requests in a turn.
const REPLY_BYTES_PER_INPUT_BYTE: usize = 16;

/// Turns taken by all connections (see TURN_BYTES).
static TURNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Gives the socket to a replication thread (a replica's feed, or a full sync's files).
fn hand_over<S: ClientStream>(server: &Server, stream: S, flow: Flow) {
    let Ok(std) = stream.into_thread_socket() else {
        return;
    };
    match flow {
        Flow::Feed {
            engine,
            next,
            ip,
            port,
            quarry,
        } => {
            let current = server.engine();
            if current.is_some_and(|c| Arc::ptr_eq(&c, &engine)) {
                server
                    .repl
                    .master
                    .start_feeder(engine, std, next, ip, port, quarry);
            } else {
                // The database was replaced since PSYNC looked at it.
                let _ = std::io::Write::write_all(
                    &mut &std,
                    format!("-{}\r\n", CmdError::Loading).as_bytes(),
                );
            }
        }
        Flow::SendFiles(names) => {
            server
                .repl
                .master
                .start_file_sender(server.repl.dir.clone(), std, names)
        }
        _ => {}
    }
}

/// Waits as a blocking command that found nothing to take (BLPOP, BRPOPLPUSH, BZPOPMIN,
/// XREAD BLOCK, ...): tries again whenever a write to one of its keys wakes it, until it is
/// served, times out, is redirected (its slot moved, in cluster mode) or CLIENT UNBLOCK ends
/// the wait, and then ends the command's statistics and slow-log entry ([`finish_blocked`]).
/// Returns its reply, or None if the client went away meanwhile, which skips the statistics
/// (what it sends while it waits is read into `rbuf` and waits its turn).
async fn wait_blocked<S: ClientStream>(
    server: &Server,
    session: &mut Session,
    stream: &mut S,
    rbuf: &mut BytesMut,
    op: crate::blocking::BlockingOp,
) -> Option<Frame> {
    let handle = &session.handle;
    let waiting = crate::blocking::Waiting::enter(&server.waiting, op.ns.as_ref(), op.keys());
    let mut woken = false;
    // Behind clients that blocked earlier on all its keys, it waits for its turn instead of
    // trying first.
    let mut behind = !op.is_stream() && waiting.behind_others();
    // CLIENT UNBLOCK sets the mode, then wakes the wait: a wake-up with no mode set is a permit
    // left by one that came as an earlier wait of this client ended, and is ignored below.
    handle.unblock_mode.store(0, Ordering::Release);
    handle.blocked.store(true, Ordering::Release);
    // How long the try that served the client took, or 0 when CLIENT UNBLOCK ended the wait:
    // either ends the command's run for its statistics ([`finish_blocked`]); a timeout or a
    // redirection does not.
    let mut serving_micros = None;
    let reply = loop {
        let mut tried = None;
        // Registered before the retry: a push in between leaves a permit. In cluster mode the
        // pop is a write like any other: fenced against a migration's cut-over, and routed
        // again (the slot may have moved while the client waited).
        let attempt = {
            let _fence = server.migration.fence.read();
            match crate::cluster::check_blocking(server, session, &op) {
                Some(e) => Some(Ok(Frame::Error(e))),
                None if std::mem::take(&mut behind) => None,
                None if !op.may_have_data(server) => None,
                None => {
                    tried = Some(Instant::now());
                    // A pop is a write: watchers are marked before and after it, as for any
                    // write command.
                    server.watches.touch_keys(op.ns.as_ref(), &op.all_keys());
                    let noting = crate::notify::begin_retry(server, op.ns.as_ref(), op.args());
                    let attempt = op.retry(server);
                    if let (Some(n), Some(Ok(frame))) = (noting, &attempt) {
                        n.finish(server, op.args(), frame);
                    }
                    attempt
                }
            }
        };
        // Tried: newcomers no longer wait for this one.
        waiting.wakeup.tried();
        // Served or not, the next client in line gets its turn.
        if std::mem::take(&mut woken) {
            server.waiting.pass_on(op.keys(), waiting.id);
        }
        if let Some(result) = attempt {
            serving_micros = tried.map(|t| t.elapsed().as_micros() as u64);
            if result.is_ok() {
                server.watches.touch_keys(op.ns.as_ref(), &op.all_keys());
            }
            break result.unwrap_or_else(|e| Frame::Error(e.to_string()));
        }
        let until = op.deadline();
        let timeout = async {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = waiting.wakeup.notified() => {
                woken = true;
                continue;
            }
            // CLIENT UNBLOCK from another connection.
            _ = handle.unblock.notified() => {
                let mode = handle.unblock_mode.load(Ordering::Acquire);
                if mode == 0 {
                    continue;
                }
                serving_micros = Some(0);
                break if mode == 2 {
                    Frame::error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
                } else {
                    op.timed_out()
                };
            }
            _ = timeout => break op.timed_out(),
            // A blocked client is still watched: if it goes away, so does its wait. What it
            // sends meanwhile waits its turn.
            r = stream.read_buf(rbuf) => match r {
                Ok(0) | Err(_) => return None,
                Ok(_) => continue,
            },
        }
    };
    handle.blocked.store(false, Ordering::Release);
    drop(waiting);
    let failed = if let Frame::Error(text) = &reply {
        server.stats.count_error(text);
        true
    } else {
        false
    };
    if let Some(first) = session.blocked_call.take() {
        finish_blocked(server, session, &first, serving_micros, failed);
    }
    Some(reply)
}

/// WAIT: polls the replicas' acknowledgements until `replicas` of them acknowledged `target`
/// or the deadline passes, and returns how many did; None if the client went away meanwhile
/// (what it sends while it waits is read into `rbuf` and waits its turn).
async fn wait_for_replicas<S: ClientStream>(
    server: &Server,
    stream: &mut S,
    rbuf: &mut BytesMut,
    target: u64,
    replicas: usize,
    deadline: Option<Instant>,
) -> Option<usize> {
    loop {
        let acked = server.repl.master.count_acked(target);
        if acked >= replicas || deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(acked);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            r = stream.read_buf(rbuf) => match r {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
        }
    }
}

/// If a CLIENT PAUSE covers `spec`, sends what was answered and waits for the pause to end.
/// A client that goes away while held is gone at once (`Err`), as a blocked one is; what it
/// sends meanwhile is read into `rbuf` and waits its turn.
async fn hold_while_paused<S: ClientStream>(
    server: &Server,
    session: &mut Session,
    stream: &mut S,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    spec: &quarry_commands::table::CommandSpec,
    exec_writes: bool,
) -> Result<(), ()> {
    if !server.pause.maybe_active() || server.pause.covering(spec, exec_writes).is_none() {
        return Ok(());
    }
    if !wbuf.is_empty() && send_replies(server, session, stream, wbuf).await.is_err() {
        return Err(());
    }
    let held = server.pause.wait(spec, exec_writes);
    tokio::pin!(held);
    loop {
        tokio::select! {
            _ = &mut held => return Ok(()),
            r = stream.read_buf(rbuf) => match r {
                Ok(0) | Err(_) => return Err(()),
                Ok(_) => continue,
            },
        }
    }
}

/// Sends the buffered replies. Each write they acknowledge is in the WAL file already
/// ([`quarry_storage::Engine::write`] returns after the WAL write), except for an open pipeline
/// group's, which is committed here first.
async fn send_replies<S: ClientStream>(
    server: &Server,
    session: &mut Session,
    stream: &mut S,
    wbuf: &mut BytesMut,
) -> std::io::Result<()> {
    crate::group::commit(server, session, wbuf);
    if quarry_types::take_handed_over() {
        tokio::task::yield_now().await;
    }
    write_out(server, stream, wbuf).await
}

async fn write_out<S: ClientStream>(
    server: &Server,
    stream: &mut S,
    wbuf: &mut BytesMut,
) -> std::io::Result<()> {
    server.stats.net_output_bytes.add(wbuf.len() as u64);
    stream.write_all(wbuf).await?;
    // TLS buffers what it encrypts (a plain socket's flush does nothing).
    stream.flush().await?;
    wbuf.clear();
    Ok(())
}

fn unknown_command(args: &[Bytes]) -> Frame {
    let name = String::from_utf8_lossy(&args[0]);
    let mut shown: String = name.chars().take(128).collect();
    shown = shown.replace(['\r', '\n'], " ");
    let mut tail = String::new();
    for a in args.iter().skip(1) {
        if tail.len() >= 128 {
            break;
        }
        let text: String = String::from_utf8_lossy(a)
            .chars()
            .take(128 - tail.len())
            .collect();
        tail.push_str(&format!("'{}' ", text.replace(['\r', '\n'], " ")));
    }
    Frame::Error(format!(
        "ERR unknown command '{shown}', with args beginning with: {tail}"
    ))
}

/// Runs one request and appends its reply to `out`. `more` says that the client sent more
/// requests after this one (a pipeline), whose writes may share one batch ([`crate::group`]).
pub fn execute(
    server: &Server,
    session: &mut Session,
    args: Vec<Bytes>,
    out: &mut BytesMut,
    more: bool,
) -> Flow {
    let proto = session.protocol;
    let spec = server.lookup(&args[0]);
    // Whatever does not join the pipeline's group runs after the group's commit, as if the
    // group's commands had run one by one before it.
    if session.group.is_some()
        && !spec.is_some_and(|s| crate::group::eligible(server, session, s, more))
    {
        crate::group::commit(server, session, out);
    }
    let Some(spec) = spec else {
        crate::multi::flag_failed(session);
        let reply = unknown_command(&args);
        if let Frame::Error(text) = &reply {
            server.stats.count_error(text);
        }
        reply.encode(proto, out);
        return Flow::Continue;
    };
    if !spec.arity_ok(args.len()) {
        crate::multi::flag_failed(session);
        let text = CmdError::WrongArity(spec.name.to_string()).to_string();
        server.stats.count_error(&text);
        Frame::Error(text).encode(proto, out);
        return Flow::Continue;
    }
    // Where the command's keys are, worked out once here for every gate after: ACL, routing,
    // key locks, the access clock, watchers, notifications and wake-ups.
    let keys = quarry_commands::table::command_keys(spec, &args);
    if !session.authenticated {
        if !server.hot.auth_required.load(Ordering::Relaxed) {
            // No password (any more): the admin, as Kvrocks makes such a connection.
            session.authenticated = true;
            session.admin = true;
        } else if !spec.has(flag::NO_AUTH) {
            crate::multi::flag_failed(session);
            Frame::error("NOAUTH Authentication required.").encode(proto, out);
            return Flow::Continue;
        }
    }
    if !session.admin && crate::namespace::admin_only(spec.name, &args) {
        crate::multi::flag_failed(session);
        let text = format!("ERR {}", crate::namespace::ADMIN_REQUIRED);
        server.stats.count_error(&text);
        Frame::Error(text).encode(proto, out);
        return Flow::Continue;
    }
    // RESP2 subscribe mode: only the subscription commands, PING, QUIT and RESET.
    if proto == Protocol::Resp2 && session.pubsub.as_ref().is_some_and(|s| s.active()) {
        if spec.name == "ping" && args.len() <= 2 {
            crate::pubsub::ping_in_subscribe_mode(&args).encode(proto, out);
            return Flow::Continue;
        }
        if !crate::pubsub::allowed_in_subscribe_mode(spec.name) {
            Frame::Error(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ))
            .encode(proto, out);
            return Flow::Continue;
        }
    }
    let sub = match check_subcommand(spec, &args) {
        Ok(sub) => sub,
        Err(e) => {
            crate::multi::flag_failed(session);
            Frame::Error(e.to_string()).encode(proto, out);
            return Flow::Continue;
        }
    };
    let acl_id = crate::acl::id_of(spec, sub);
    if let Err(denied) = session.user.check(&server.acl, acl_id, spec, &args, &keys) {
        crate::multi::flag_failed(session);
        let context = if session.multi.is_some() {
            "multi"
        } else {
            "toplevel"
        };
        crate::acl::log_denial(server, session, denied, acl_id, &args, context);
        let text = crate::acl::noperm_text(denied, crate::acl::full_name(acl_id));
        server.stats.count_error(&text);
        Frame::Error(text).encode(proto, out);
        return Flow::Continue;
    }
    if let Some(busy) = server.scripting.busy_error(spec.name, &args) {
        if spec.name == "exec" && session.multi.take().is_some() {
            // The transaction is discarded, as Redis does when EXEC is refused.
            session.watch = None;
            Frame::Error(format!(
                "EXECABORT Transaction discarded because of: {busy}"
            ))
            .encode(proto, out);
            return Flow::Continue;
        }
        crate::multi::flag_failed(session);
        Frame::Error(busy).encode(proto, out);
        return Flow::Continue;
    }
    if matches!(
        spec.name,
        "multi" | "exec" | "discard" | "watch" | "unwatch"
    ) {
        let started = Instant::now();
        let flow = crate::multi::run(server, session, spec.name, &args, out);
        let micros = started.elapsed().as_micros() as u64;
        server.record_command(Server::command_index(spec), micros, false);
        return flow;
    }
    if session.multi.is_some() && !crate::multi::runs_immediately(spec.name) {
        // Checked now as Redis checks at queueing time; a rejection fails the EXEC.
        let rejected = if matches!(
            spec.name,
            "save" | "shutdown" | "psync" | "sync" | "monitor"
        ) {
            Some("ERR Command not allowed inside a transaction".to_string())
        } else if server.cluster.enabled {
            crate::cluster::check_route(server, session, spec, &args, &keys)
        } else {
            None
        };
        let rejected = rejected.or_else(|| {
            crate::replication::gate(server, spec.has(flag::WRITE), spec.has(flag::STALE))
                .err()
                .or_else(|| crate::server::size_limit_refusal(server, spec))
                .map(|e| e.to_string())
        });
        match rejected {
            Some(e) => {
                crate::multi::flag_failed(session);
                Frame::Error(e).encode(proto, out);
            }
            None => crate::multi::queue(session, spec, sub, args, keys, out),
        }
        return Flow::Continue;
    }
    if crate::group::eligible(server, session, spec, more) {
        return match crate::group::run(server, session, spec, sub, args, keys, out) {
            Ok(()) => Flow::Continue,
            Err(busy) => Flow::KeyBusy(busy),
        };
    }
    dispatch(server, session, spec, sub, args, out, Mode::Alone, &keys)
}

/// Puts the command in the slow log if it took `slowlog-log-slower-than` or longer.
fn log_if_slow(server: &Server, session: &Session, args: &[Bytes], micros: u64) {
    let threshold = server.hot.slowlog_slower_than_us.load(Ordering::Relaxed);
    if threshold >= 0 && micros as i64 >= threshold {
        let info = session.handle.info.lock().name.clone();
        let max_len = server.hot.slowlog_max_len.load(Ordering::Relaxed);
        server
            .slowlog
            .lock()
            .push(args, micros, session.handle.addr_text(), info, max_len);
    }
}

/// The end of a blocked command's wait. An error reply (CLIENT UNBLOCK ... ERROR, a
/// redirection) counts as its failure. If it was served (`serving`: that try's microseconds)
/// or CLIENT UNBLOCK ended the wait (0), then, as Redis' `updateStatsOnUnblock`, the whole run
/// (the first run and the serving try, not the wait) goes to the latency histogram and the
/// slow log. Unlike Redis 7.0, which adds the first run's time to the command's microseconds
/// a second time, only the serving try's is added; and CLIENT UNBLOCK's entry has the
/// command's arguments (Redis' has none by then). A wait that timed out adds nothing else.
fn finish_blocked(
    server: &Server,
    session: &Session,
    first: &BlockedCall,
    serving: Option<u64>,
    failed: bool,
) {
    let stat = &server.command_stats[first.index];
    if failed {
        stat.add_failed();
    }
    let Some(serving) = serving else {
        return;
    };
    let total = first.micros + serving;
    stat.add_usec(serving);
    server.sample_latency(first.index, total);
    // (No blocking command is SKIP_SLOWLOG.)
    log_if_slow(server, session, &first.args, total);
}

/// Runs a checked command and appends its reply to `out`. `keys` are the positions of its
/// keys in `args`.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    server: &Server,
    session: &mut Session,
    spec: &'static quarry_commands::table::CommandSpec,
    sub: Option<usize>,
    args: Vec<Bytes>,
    out: &mut BytesMut,
    mode: Mode,
    keys: &[usize],
) -> Flow {
    let in_exec = mode == Mode::InExec;
    let proto = session.protocol;
    if server.monitors.load(Ordering::Relaxed) > 0
        && !matches!(spec.name, "auth" | "hello" | "monitor")
    {
        feed_monitor(server, &session.handle.addr_text(), &args);
    }
    // In cluster mode a replica redirects writes to the slot's master (MOVED) before it would
    // refuse them as a replica. A write (or a script, which may write) holds the write fence
    // while it is routed and runs: a slot migration's write-forbidden phase, and a
    // verification repair's rewrite, start only when no read-modify-write is in flight.
    let may_write = spec.has(flag::WRITE) || matches!(spec.name, "eval" | "evalsha" | "fcall");
    // (EXEC and a pipeline's group hold it already, for all their commands.)
    let _fence =
        (may_write && !in_exec && mode != Mode::Grouped).then(|| server.migration.fence.read());
    if server.cluster.enabled && !in_exec {
        let asking = std::mem::take(&mut session.asking);
        let routed = crate::cluster::check_route(server, session, spec, &args, keys);
        if spec.name == "asking" {
            session.asking = asking;
        }
        if let Some(e) = routed {
            Frame::Error(e).encode(proto, out);
            return Flow::Continue;
        }
    }
    if !in_exec {
        if let Err(e) =
            crate::replication::gate(server, spec.has(flag::WRITE), spec.has(flag::STALE))
        {
            Frame::Error(e.to_string()).encode(proto, out);
            return Flow::Continue;
        }
        if let Some(e) = crate::server::size_limit_refusal(server, spec) {
            Frame::Error(e.to_string()).encode(proto, out);
            return Flow::Continue;
        }
    }
    if spec.has(flag::WRITE) {
        // Before the write, so that an EXEC that checks its watched keys once it holds the
        // key locks cannot miss it; and again after it (below), for a WATCH that came in while
        // the write ran and may have read the old value.
        server
            .watches
            .touch(session.namespace.as_ref(), &args, keys);
        if spec.name == "flushdb" {
            if let Some(storage) = server.storage() {
                let ns = session.namespace.as_ref();
                server.watches.touch_live(ns, &storage.db(ns));
            }
        } else if spec.name == "flushall" {
            server.watches.touch_flushall(server);
        }
    }
    let index = Server::command_index(spec);
    // Keyspace notifications: the keys as they were (only while some class is enabled).
    let noting = crate::notify::begin(server, session.namespace.as_ref(), spec, &args, keys);
    let profiling = crate::perflog::start(server, spec.name);
    // One clock reading serves the client's last activity, the access clock and the
    // command's run time.
    let started = Instant::now();
    // Before running it, so that CLIENT INFO/LIST show the command that asks.
    session.handle.touch(index, sub, started);
    // Each key the command names counts as used now (OBJECT IDLETIME). The stamps are
    // fetched now and written once the command has run (they have reached the cache by then),
    // except where the command may set a key's idle time itself, which must have the last
    // word: RESTORE, and scripts (EVAL's keys), which may run RESTORE.
    let touch = !quarry_commands::access::is_no_touch(spec.name);
    let touch_first = touch
        && (quarry_commands::access::sets_idle_time(spec.name)
            || !matches!(spec.exec, Exec::Data(_)));
    if touch {
        for &pos in keys {
            if touch_first {
                quarry_commands::access::touch_at(&args[pos], started);
            } else {
                quarry_commands::access::prefetch(&args[pos]);
            }
        }
    }
    let mut run = || -> (Result<Frame, CmdError>, Flow) {
        match spec.exec {
            Exec::Data(f) => {
                // Borrowed for the command, not cloned: a full sync's swap waits for it.
                let slot = server.storage.read();
                let Some(storage) = slot.as_deref() else {
                    return (Err(CmdError::Loading), Flow::Continue);
                };
                let db = storage.db(session.namespace.as_ref());
                let mut ctx = Ctx {
                    db: &db,
                    cursors: &server.cursors,
                    protocol: proto,
                };
                let _context = server
                    .hot
                    .txn_context
                    .then(quarry_types::txn::command_context);
                (f(&mut ctx, &args), Flow::Continue)
            }
            Exec::Server => admin::run(server, session, spec.name, &args),
        }
    };
    let (result, flow) = if spec.has(flag::WALKS_KEYSPACE) {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    let micros = started.elapsed().as_micros() as u64;
    if touch && !touch_first {
        for &pos in keys {
            quarry_commands::access::touch_at(&args[pos], started);
        }
    }
    if profiling {
        crate::perflog::finish(server, spec.name, micros);
    }
    if let (Some(n), Ok(frame)) = (noting, &result) {
        n.finish(server, &args, frame);
    }
    // A command that blocks (outside EXEC, where it answers at once) is counted now, as
    // Redis counts it; its latency sample and slow-log entry come when it is served.
    let blocked = !in_exec && matches!(flow, Flow::Block(_));
    if blocked {
        server.count_command(index, micros, spec.has(flag::FAST));
    } else {
        server.record_command(index, micros, spec.has(flag::FAST));
    }
    server.stats.commands_processed.add(1);
    if blocked {
        session.blocked_call = Some(BlockedCall {
            index,
            args: args.clone(),
            micros,
        });
    } else if !spec.has(flag::SKIP_SLOWLOG) {
        log_if_slow(server, session, &args, micros);
    }
    // Off the hot path: key positions are only worked out while some client is blocked.
    // Inside EXEC or a group, the commit does this.
    if spec.has(flag::WRITE) && mode == Mode::Alone {
        server
            .watches
            .touch(session.namespace.as_ref(), &args, keys);
    }
    if result.is_ok() && matches!(spec.name, "flushdb" | "flushall") {
        server.waiting.wake_all();
    }
    if result.is_ok()
        && spec.has(flag::WRITE)
        && mode == Mode::Alone
        && server.waiting.blocked_clients() > 0
    {
        for &pos in keys {
            server.waiting.wake(&args[pos]);
        }
    }
    match result {
        Ok(frame) => {
            if let Frame::Error(text) = &frame {
                server.stats.count_error(text);
            }
            frame.encode(session.protocol, out)
        }
        Err(e) => {
            server.command_stats[index].add_failed();
            server.stats.count_error(&e.to_string());
            if let CmdError::Storage(detail) = &e {
                log_storage_error(server, spec.name, detail);
            }
            Frame::Error(e.to_string()).encode(session.protocol, out)
        }
    }
    flow
}

/// Storage failures reach the client as `-ERR`, and the operator through the log, at most
/// once a second so that a failing disk does not flood it. Refused writes (a full disk) are
/// logged by the engine, once per episode and then once a minute.
pub fn log_storage_error(server: &Server, command: &str, detail: &str) {
    if detail.starts_with(WRITE_REFUSED) {
        return;
    }
    let now = server.started.elapsed().as_secs() + 1;
    let last = server.last_storage_error_log.load(Ordering::Relaxed);
    if last != now
        && server
            .last_storage_error_log
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!(command, error = detail, "storage error");
    }
}

/// How [`quarry_storage::StorageError::WriteFailed`] reads.
const WRITE_REFUSED: &str = "write refused by storage";

/// Sends a command to the MONITOR clients; `source` is the client's address, or `lua` for a
/// command a script called, as Redis writes it.
pub fn feed_monitor(server: &Server, source: &str, args: &[Bytes]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut line = format!(
        "+{}.{:06} [0 {}]",
        now.as_secs(),
        now.subsec_micros(),
        source
    );
    for a in args {
        line.push_str(" \"");
        for &c in a.iter() {
            match c {
                b'\\' => line.push_str("\\\\"),
                b'"' => line.push_str("\\\""),
                b'\n' => line.push_str("\\n"),
                b'\r' => line.push_str("\\r"),
                b'\t' => line.push_str("\\t"),
                0x20..=0x7e => line.push(c as char),
                _ => line.push_str(&format!("\\x{c:02x}")),
            }
        }
        line.push('"');
    }
    line.push_str("\r\n");
    let _ = server.monitor.send(Bytes::from(line));
}
