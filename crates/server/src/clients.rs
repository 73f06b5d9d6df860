//! The registry of connected clients, for CLIENT LIST/INFO/KILL, INFO clients and maxclients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use quarry_commands::table::SUBCOMMANDS;
use quarry_commands::COMMANDS;
use tokio::task::AbortHandle;

/// What CLIENT LIST shows of one connection; updated by its own task.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub resp: u8,
    pub monitor: bool,
    pub multi: bool,
    /// The ACL user the connection authenticated as.
    pub user: String,
}

pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    /// The socket's path for a client of the Unix socket (its addresses are unspecified).
    pub unix: Option<String>,
    pub created: Instant,
    pub info: Mutex<ClientInfo>,
    /// Index in the command table of the last command, `usize::MAX` before the first one.
    /// Atomics, not the info mutex: they change on every command.
    last_cmd: AtomicUsize,
    /// Index in the subcommand table, `usize::MAX` for commands without subcommands.
    last_sub: AtomicUsize,
    /// Milliseconds after `created` of the last command.
    last_active_ms: AtomicU64,
    killed: AtomicBool,
    /// Set while the client waits in a blocking command: CLIENT UNBLOCK may end the wait.
    pub blocked: AtomicBool,
    /// CLIENT UNBLOCK: 1 = as on timeout, 2 = with an error.
    pub unblock_mode: std::sync::atomic::AtomicU8,
    pub unblock: tokio::sync::Notify,
    /// Aborts the connection's task; set right after it is spawned.
    task: Mutex<Option<AbortHandle>>,
}

impl ClientHandle {
    /// The client's address as Redis shows it: `ip:port`, or `path:0` on the Unix socket.
    pub fn addr_text(&self) -> String {
        match &self.unix {
            Some(path) => format!("{path}:0"),
            None => self.addr.to_string(),
        }
    }

    fn laddr_text(&self) -> String {
        match &self.unix {
            Some(path) => format!("{path}:0"),
            None => self.laddr.to_string(),
        }
    }

    /// Closes the connection. Its task is aborted at its next await point, so a command that is
    /// running completes first (commands never await in the middle).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().as_ref() {
            task.abort();
        }
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub fn set_task(&self, task: AbortHandle) {
        *self.task.lock() = Some(task);
        if self.is_killed() {
            self.kill();
        }
    }

    pub fn touch(&self, command_index: usize, sub: Option<usize>, now: Instant) {
        self.last_cmd.store(command_index, Ordering::Relaxed);
        self.last_sub
            .store(sub.unwrap_or(usize::MAX), Ordering::Relaxed);
        self.last_active_ms.store(
            now.saturating_duration_since(self.created).as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// One line of CLIENT LIST, in Redis 7's field order.
    pub fn describe(&self) -> String {
        let info = self.info.lock().clone();
        let now = Instant::now();
        let age = now.duration_since(self.created).as_secs();
        let since_created = now.duration_since(self.created).as_millis() as u64;
        let idle = since_created.saturating_sub(self.last_active_ms.load(Ordering::Relaxed)) / 1000;
        // Redis's letters: O monitor, x inside MULTI, b blocked; N when none applies.
        let mut flags = String::new();
        if info.monitor {
            flags.push('O');
        }
        if info.multi {
            flags.push('x');
        }
        if self.blocked.load(Ordering::Acquire) {
            flags.push('b');
        }
        if self.unix.is_some() {
            flags.push('U');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let cmd = match (
            COMMANDS.get(self.last_cmd.load(Ordering::Relaxed)),
            SUBCOMMANDS.get(self.last_sub.load(Ordering::Relaxed)),
        ) {
            (Some(c), Some((_, sub, _))) => format!("{}|{}", c.name, sub),
            (Some(c), None) => c.name.to_string(),
            _ => "NULL".to_string(),
        };
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db=0 sub=0 psub=0 ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr_text(),
            self.laddr_text(),
            info.name,
            age,
            idle,
            flags,
            if info.multi { 0 } else { -1 },
            cmd,
            if info.user.is_empty() { "default" } else { info.user.as_str() },
            info.resp.max(2),
            info.lib_name,
            info.lib_ver,
        )
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_id: Mutex<u64>,
}

impl ClientRegistry {
    pub fn register(&self, addr: SocketAddr, laddr: SocketAddr) -> Arc<ClientHandle> {
        self.register_at(addr, laddr, None)
    }

    /// A client of the Unix socket at `path`.
    pub fn register_unix(&self, path: &str) -> Arc<ClientHandle> {
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        self.register_at(unspecified, unspecified, Some(path.to_string()))
    }

    fn register_at(
        &self,
        addr: SocketAddr,
        laddr: SocketAddr,
        unix: Option<String>,
    ) -> Arc<ClientHandle> {
        let id = {
            let mut n = self.next_id.lock();
            *n += 1;
            *n
        };
        let now = Instant::now();
        let handle = Arc::new(ClientHandle {
            id,
            addr,
            laddr,
            unix,
            created: now,
            info: Mutex::new(ClientInfo {
                resp: 2,
                ..Default::default()
            }),
            last_cmd: AtomicUsize::new(usize::MAX),
            last_sub: AtomicUsize::new(usize::MAX),
            last_active_ms: AtomicU64::new(0),
            killed: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            unblock_mode: std::sync::atomic::AtomicU8::new(0),
            unblock: tokio::sync::Notify::new(),
            task: Mutex::new(None),
        });
        self.clients.lock().insert(id, handle.clone());
        handle
    }

    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }

    pub fn monitors(&self) -> usize {
        self.clients
            .lock()
            .values()
            .filter(|c| c.info.lock().monitor)
            .count()
    }
}
