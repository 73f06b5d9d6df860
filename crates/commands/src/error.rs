//! Command errors, and the one place where each becomes its Redis error line.

use quarry_storage::{Role, StorageError};
use quarry_types::TypeError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR value is not a valid float")]
    NotFloat,
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("ERR no such key")]
    NoSuchKey,
    #[error("ERR invalid expire time in '{0}' command")]
    InvalidExpire(&'static str),
    #[error("READONLY You can't write against a read only slave.")]
    ReadOnlyReplica,
    /// Kvrocks' exact text: Kvrocks replicas retry on it.
    #[error("LOADING kvrocks is restoring the db from backup")]
    Loading,
    #[error("MASTERDOWN Link with MASTER is down and slave-serve-stale-data is set to 'no'.")]
    MasterDown,
    #[error("LOADING quarry is not ready to accept writes yet")]
    NotReady,
    #[error("ERR {0}")]
    Storage(String),
    /// Any other error; the text carries its own prefix (`ERR ...`, `NOAUTH ...`).
    #[error("{0}")]
    Other(String),
}

impl CmdError {
    pub fn err(msg: impl std::fmt::Display) -> CmdError {
        CmdError::Other(format!("ERR {msg}"))
    }
}

impl From<TypeError> for CmdError {
    fn from(e: TypeError) -> CmdError {
        match e {
            TypeError::WrongType => CmdError::WrongType,
            TypeError::NotInteger => CmdError::NotInteger,
            TypeError::NotFloat => CmdError::NotFloat,
            TypeError::Overflow => CmdError::Overflow,
            TypeError::NanOrInfinity => CmdError::err("increment would produce NaN or Infinity"),
            TypeError::TooBig => {
                CmdError::err("string exceeds maximum allowed size (proto-max-bulk-len)")
            }
            TypeError::NoSuchKey => CmdError::NoSuchKey,
            TypeError::IndexOutOfRange => CmdError::err("index out of range"),
            TypeError::Storage(s) => s.into(),
            TypeError::LockTimeout => CmdError::Other(TypeError::LockTimeout.to_string()),
            other => CmdError::err(other),
        }
    }
}

impl From<StorageError> for CmdError {
    fn from(e: StorageError) -> CmdError {
        match e {
            StorageError::WriteRefused(Role::Replica) => CmdError::ReadOnlyReplica,
            StorageError::WriteRefused(_) => CmdError::NotReady,
            other => CmdError::Storage(other.to_string()),
        }
    }
}
