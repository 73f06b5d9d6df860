//! The registry of connected clients, for CLIENT LIST/INFO/KILL, INFO clients and maxclients.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What CLIENT LIST shows of one connection; updated by its own task.
#[derive(Debug, Default, Clone)]
pub struct ClientInfo {
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub last_cmd: String,
    pub resp: u8,
    pub monitor: bool,
    pub multi: bool,
}

pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    pub info: Mutex<ClientInfo>,
    pub last_active: Mutex<Instant>,
    killed: AtomicBool,
    kill_signal: Notify,
}

impl ClientHandle {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_signal.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    pub async fn killed(&self) {
        self.kill_signal.notified().await
    }

    /// One line of CLIENT LIST, in Redis 7's field order.
    pub fn describe(&self) -> String {
        let info = self.info.lock().clone();
        let now = Instant::now();
        let age = now.duration_since(self.created).as_secs();
        let idle = now.duration_since(*self.last_active.lock()).as_secs();
        let flags = if info.monitor { "O" } else { "N" };
        let cmd = if info.last_cmd.is_empty() {
            "NULL".to_string()
        } else {
            info.last_cmd.clone()
        };
        format!(
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={} db=0 sub=0 psub=0 ssub=0 multi={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            info.name,
            age,
            idle,
            flags,
            if info.multi { 0 } else { -1 },
            cmd,
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
            created: now,
            info: Mutex::new(ClientInfo {
                resp: 2,
                ..Default::default()
            }),
            last_active: Mutex::new(now),
            killed: AtomicBool::new(false),
            kill_signal: Notify::new(),
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
