//! Master-to-replica replication by WAL shipping, compatible with Kvrocks on the wire
//! (kvrocks-compat.md §2) and stricter about history (DESIGN.md §2).
//!
//! - [`master`]: the PSYNC decision, the feeder that streams WAL batches to a replica, and the
//!   checkpoint files of a full sync.
//! - [`replica`]: the replica's link to its master: handshake, PSYNC, the incremental stream,
//!   full sync and the swap of the database.
//!
//! The work runs on plain threads with blocking sockets: RocksDB's WAL iterator is not `Send`,
//! and each link is one sequential conversation. The server plugs in through [`Host`].

pub mod master;
pub mod replica;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quarry_storage::Engine;

/// What the replica's link needs from the server it runs in.
pub trait Host: Send + Sync + 'static {
    /// The current engine, or None while a full sync swaps the database.
    fn engine(&self) -> Option<Arc<Engine>>;
    /// The settings the link reads at each connection attempt.
    fn settings(&self) -> LinkSettings;
    /// Stops serving data (clients get LOADING), disconnects this node's own replicas and
    /// returns the engine once nothing else holds it. None if it stays in use.
    fn take_engine(&self) -> Option<Engine>;
    /// Opens the database under `<dir>/db` with the configured options.
    fn open_engine(&self) -> Result<Engine, String>;
    /// Serves data again from `engine`.
    fn install_engine(&self, engine: Engine);
    /// Called after each applied master batch (side effects: wake blocked clients, ...).
    fn on_applied(&self, batch: &[u8]);
    /// Called for each note a quarry master puts in the stream (verification's markers), at
    /// its place: every batch before it is applied, none after it yet.
    fn on_note(&self, _note: &[u8]) {}
    /// A failpoint for tests of verification: a changed copy of the master's batch to apply
    /// instead (None, always, outside such tests).
    fn alter_before_apply(&self, _batch: &[u8]) -> Option<Vec<u8>> {
        None
    }
    /// Called once a full sync replaced the database (not after a roll-back).
    fn on_full_sync(&self) {}
    /// Opens a connection to the master: plain TCP, or (with `tls-replication`) a socket
    /// bridged to a TLS link.
    fn connect(
        &self,
        addr: std::net::SocketAddr,
        timeout: std::time::Duration,
    ) -> std::io::Result<std::net::TcpStream> {
        std::net::TcpStream::connect_timeout(&addr, timeout)
    }
}

/// Settings a link reads from the configuration.
#[derive(Clone, Debug, Default)]
pub struct LinkSettings {
    pub dir: PathBuf,
    pub masterauth: String,
    pub db_name: String,
    /// The port this node announces (replica-announce-port, else its port).
    pub announce_port: u16,
    pub announce_ip: String,
    pub use_rsid_psync: bool,
    /// slave-empty-db-before-fullsync: close and delete the database before fetching the
    /// master's files (clients get LOADING for the whole fetch), to need half the disk.
    pub empty_db_before_fullsync: bool,
    /// fullsync-recv-file-delay: seconds to wait after each fetched file (tests only).
    pub recv_file_delay: Duration,
}
