//! The command table and the commands that act on data.
//!
//! Every command has one entry in [`table::COMMANDS`]: name, arity, flags, key positions and how
//! it runs. `COMMAND`, argument counting, key extraction and (later) cluster routing all read
//! that table. A command is parsed into typed arguments and then executed against `quarry-types`;
//! commands whose work belongs to the server (CONFIG, CLIENT, INFO, ...) are marked
//! [`Exec::Server`] and run in the server crate. No sockets here.

pub mod access;
pub mod acl_table;
pub mod args;
mod bitmap;
mod bloom;
mod context;
mod dump;
mod dump_stream;
mod error;
mod geo;
mod hash;
mod hll;
pub mod json;
mod keys;
pub mod list;
mod rdb;
mod server;
mod set;
mod sort;
mod sortedint;
pub mod stream;
mod string;
pub mod table;
mod tdigest;
pub mod zset;

pub use context::{Ctx, CursorStore, REDIS_CURSOR_COMPATIBLE};
pub use dump::{crc64, dump_payload};
pub use error::CmdError;
pub use table::{lookup, CommandSpec, Exec, COMMANDS};

pub type CmdResult = Result<quarry_resp::Frame, CmdError>;
