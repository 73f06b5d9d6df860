//! Data types on top of storage: one module per type, plus the operations on keys of any type.
//!
//! A [`Db`] is one namespace of one engine. Every operation that reads before it writes holds
//! the key locks of its keys for the whole read-modify-write, and every operation writes one
//! WriteBatch, so that it is atomic for other clients and replicates as one unit.

pub mod bitmap;
pub mod bloom;
pub mod cbor;
mod db;
mod error;
mod float_sum;
pub mod glob;
mod hash;
mod hll;
pub mod json;
pub use hll::redis_hll_registers;
mod keys;
mod list;
mod locks;
mod set;
pub use quarry_storage::sharded;
pub mod sortedint;
pub mod stream;
mod string;
pub mod tdigest;
pub mod txn;
mod zset;

/// Number parsing with Redis's rules, shared with the command layer.
pub mod parse {
    pub use crate::string::{parse_f64_strict, parse_i64_strict};
}

pub use bitmap::MAX_BIT_OFFSET;
pub use db::Db;

/// A sorted-set score as stored (8-byte order-preserving double).
pub fn decode_score(raw: [u8; 8]) -> f64 {
    quarry_storage::encoding::decode_ordered_double(raw)
}
pub use error::TypeError;
pub use hash::HashIncrError;
pub use keys::{ExpireCondition, ScanPage, TtlState};
pub use list::End;
pub use locks::{take_handed_over, KeyLocks};
pub use quarry_storage::encoding::RedisType;
pub use set::SetOp;
pub use string::{Expiry, SetCondition, SetOutcome};
pub use zset::{ScoredMembers, ZAddFlags, ZAddOutcome};

pub type Result<T, E = TypeError> = std::result::Result<T, E>;
