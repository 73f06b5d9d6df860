//! The declarative command table: one entry per command, read by dispatch, `COMMAND`, key
//! extraction and routing alike.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::{
    bitmap, bloom, dump, geo, hash, hll, json, keys, list, rdb, server, set, sort, sortedint,
    stream, string, tdigest, zset, CmdResult, Ctx,
};

/// How a command runs.
#[derive(Clone, Copy)]
pub enum Exec {
    /// Runs here, against the data.
    Data(fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult),
    /// Runs in the server crate, which owns connections, config and INFO.
    Server,
}

/// Command flags, named as Redis's `COMMAND INFO` prints them.
pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const FAST: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const LOADING: u32 = 1 << 6;
    pub const STALE: u32 = 1 << 7;
    pub const NO_AUTH: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    /// quarry's own: the command walks the whole keyspace or waits on the disk for long, so
    /// the server runs it where it cannot hold up other connections. Not shown by COMMAND.
    pub const WALKS_KEYSPACE: u32 = 1 << 16;

    pub const NAMES: [(u32, &str); 11] = [
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (FAST, "fast"),
        (NOSCRIPT, "noscript"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (NO_AUTH, "no_auth"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
    ];
}

pub struct CommandSpec {
    pub name: &'static str,
    /// Redis arity: positive = exact argument count (name included), negative = at least.
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub exec: Exec,
}

impl CommandSpec {
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i32;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Positions of the key arguments in `argv` (name at 0), from first/last/step.
    pub fn key_positions(&self, argc: usize) -> Vec<usize> {
        if self.first_key <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 {
            argc as i32 + self.last_key
        } else {
            self.last_key
        };
        let mut out = Vec::new();
        let mut i = self.first_key;
        while i <= last && (i as usize) < argc {
            out.push(i as usize);
            i += self.step.max(1);
        }
        out
    }
}

use flag::*;

impl CommandSpec {
    /// The command's ACL categories, as bits over [`crate::acl_table::CATEGORIES`]: Redis' own
    /// for the commands Redis has, and for Kvrocks' extras what Redis would derive from the
    /// flags, with the group's data type.
    pub fn acl_categories(&self) -> u32 {
        acl_lookup(self.name).map_or_else(|| derived_acl_categories(self), |(c, _)| c)
    }
}

/// The ACL categories of a subcommand (`container|sub`): Redis' own, else its container's.
pub fn subcommand_acl_categories(spec: &CommandSpec, sub: &str) -> u32 {
    acl_lookup(&format!("{}|{sub}", spec.name)).map_or_else(|| spec.acl_categories(), |(c, _)| c)
}

/// Redis' categories and key-spec access (1 read, 2 write) of `get` or `config|get`.
pub fn acl_lookup(full_name: &str) -> Option<(u32, &'static [u8])> {
    let t = crate::acl_table::REDIS_COMMANDS;
    t.binary_search_by(|(n, _, _)| (*n).cmp(full_name))
        .ok()
        .map(|i| (t[i].1, t[i].2))
}

/// The bit of category `name` (lower case).
pub fn acl_category(name: &str) -> u32 {
    crate::acl_table::CATEGORIES
        .iter()
        .position(|c| *c == name)
        .map_or(0, |i| 1 << i)
}

fn derived_acl_categories(spec: &CommandSpec) -> u32 {
    let cat = acl_category;
    let mut c = match spec.group {
        "string" => cat("string"),
        "list" => cat("list"),
        "hash" => cat("hash"),
        "set" => cat("set"),
        "sorted_set" | "sortedset" | "zset" => cat("sortedset"),
        "stream" => cat("stream"),
        "geo" => cat("geo"),
        "hyperloglog" => cat("hyperloglog"),
        "bitmap" => cat("bitmap"),
        "pubsub" => cat("pubsub"),
        "generic" => cat("keyspace"),
        "scripting" => cat("scripting"),
        "transactions" => cat("transaction"),
        "connection" => cat("connection"),
        _ => 0,
    };
    if spec.has(WRITE) {
        c |= cat("write");
    }
    if spec.has(READONLY) && c & cat("scripting") == 0 {
        c |= cat("read");
    }
    if spec.has(ADMIN) {
        c |= cat("admin") | cat("dangerous");
    }
    c | if spec.has(FAST) {
        cat("fast")
    } else {
        cat("slow")
    }
}

/// Where XREAD's or XREADGROUP's STREAMS token is: past GROUP's two names and the options'
/// values, so that a group or consumer named "streams" is not taken for it.
pub fn streams_position(name: &str, args: &[Bytes]) -> Option<usize> {
    let mut i = if name == "xreadgroup" { 4 } else { 1 };
    while i < args.len() {
        let a = &args[i];
        if a.eq_ignore_ascii_case(b"streams") {
            return Some(i);
        }
        i += if a.eq_ignore_ascii_case(b"count") || a.eq_ignore_ascii_case(b"block") {
            2
        } else {
            1
        };
    }
    None
}

/// The positions of a command's keys in `args`, including the commands whose keys follow a
/// count (`numkeys`), which the first/last/step triple cannot describe.
/// Commands whose keys are found by reading their arguments (a key count, STORE, STREAMS ...),
/// not by first/last/step alone: COMMAND INFO marks them `movablekeys`, as Redis does, and
/// [`command_keys`] reads the arguments of these only. (SORT_RO's one key is fixed; Redis marks
/// it all the same.)
pub fn has_movable_keys(name: &str) -> bool {
    matches!(
        name,
        "lmpop"
            | "zmpop"
            | "sintercard"
            | "zintercard"
            | "zunion"
            | "zinter"
            | "zdiff"
            | "blmpop"
            | "bzmpop"
            | "zunionstore"
            | "zinterstore"
            | "zdiffstore"
            | "tdigest.merge"
            | "eval"
            | "evalsha"
            | "eval_ro"
            | "evalsha_ro"
            | "fcall"
            | "fcall_ro"
            | "sort"
            | "sort_ro"
            | "migrate"
            | "xread"
            | "xreadgroup"
            | "georadius"
            | "georadiusbymember"
    )
}

/// The keys at `positions` of `args` (what [`command_keys`] found).
pub fn key_names(args: &[Bytes], positions: &[usize]) -> Vec<Bytes> {
    positions.iter().map(|&p| args[p].clone()).collect()
}

pub fn command_keys(spec: &CommandSpec, args: &[Bytes]) -> Vec<usize> {
    if !has_movable_keys(spec.name) {
        return spec.key_positions(args.len());
    }
    // (position of numkeys, keys before it)
    let numkeys_at = match spec.name {
        "lmpop" | "zmpop" | "sintercard" | "zintercard" | "zunion" | "zinter" | "zdiff" => 1,
        "blmpop" | "bzmpop" | "zunionstore" | "zinterstore" | "zdiffstore" | "tdigest.merge"
        | "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => 2,
        // SORT key ... [STORE destination]: the destination is a key too.
        "sort" => {
            let mut out = spec.key_positions(args.len());
            // The last STORE wins, as in the parser.
            let stores = args.len().saturating_sub(1);
            if let Some(i) = (2..stores)
                .rev()
                .find(|&i| args[i].eq_ignore_ascii_case(b"store"))
            {
                out.push(i + 1);
            }
            return out;
        }
        // MIGRATE host port key|"" db timeout [...] [KEYS key [key ...]]
        "migrate" => {
            if args.len() > 3 && args[3].is_empty() {
                if let Some(k) = (6..args.len()).find(|&i| args[i].eq_ignore_ascii_case(b"keys")) {
                    return (k + 1..args.len()).collect();
                }
            }
            return spec.key_positions(args.len());
        }
        // XREAD/XREADGROUP ... STREAMS key [key ...] id [id ...]
        "xread" | "xreadgroup" => {
            let Some(at) = streams_position(spec.name, args) else {
                return Vec::new();
            };
            let n = (args.len() - at - 1) / 2;
            return (at + 1..at + 1 + n).collect();
        }
        // GEORADIUS ... [STORE|STOREDIST destination]
        "georadius" | "georadiusbymember" => {
            let mut out = spec.key_positions(args.len());
            out.extend(geo::store_key_position(spec.name, args));
            return out;
        }
        _ => return spec.key_positions(args.len()),
    };
    let mut out = Vec::new();
    if matches!(
        spec.name,
        "zunionstore" | "zinterstore" | "zdiffstore" | "tdigest.merge"
    ) {
        out.push(1);
    }
    let n = args
        .get(numkeys_at)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0);
    let last = (numkeys_at + 1).saturating_add(n).min(args.len());
    out.extend(numkeys_at + 1..last);
    out
}

macro_rules! cmd {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $group:literal, $since:literal, $summary:literal, $exec:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            group: $group,
            since: $since,
            summary: $summary,
            exec: $exec,
        }
    };
}

const S: Exec = Exec::Server;
use Exec::Data as D;

pub static COMMANDS: &[CommandSpec] = &[
    // string
    cmd!("get", 2, READONLY | FAST, 1, 1, 1, "string", "1.0.0", "Returns the string value of a key.", D(string::get)),
    cmd!("getex", -2, WRITE | FAST, 1, 1, 1, "string", "6.2.0", "Returns the string value of a key after setting its expiration time.", D(string::getex)),
    cmd!("getdel", 2, WRITE | FAST, 1, 1, 1, "string", "6.2.0", "Returns the string value of a key after deleting the key.", D(string::getdel)),
    cmd!("getset", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.", D(string::getset)),
    cmd!("set", -3, WRITE | DENYOOM, 1, 1, 1, "string", "1.0.0", "Sets the string value of a key, ignoring its type.", D(string::set)),
    cmd!("setnx", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", D(string::setnx)),
    cmd!("setex", 4, WRITE | DENYOOM, 1, 1, 1, "string", "2.0.0", "Sets the string value and expiration time of a key.", D(string::setex)),
    cmd!("psetex", 4, WRITE | DENYOOM, 1, 1, 1, "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key.", D(string::psetex)),
    cmd!("mget", -2, READONLY | FAST, 1, -1, 1, "string", "1.0.0", "Atomically returns the string values of one or more keys.", D(string::mget)),
    cmd!("mset", -3, WRITE | DENYOOM, 1, -1, 2, "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.", D(string::mset)),
    cmd!("msetnx", -3, WRITE | DENYOOM, 1, -1, 2, "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.", D(string::msetnx)),
    cmd!("append", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", D(string::append)),
    cmd!("strlen", 2, READONLY | FAST, 1, 1, 1, "string", "2.2.0", "Returns the length of a string value.", D(string::strlen)),
    cmd!("getrange", 4, READONLY, 1, 1, 1, "string", "2.4.0", "Returns a substring of the string stored at a key.", D(string::getrange)),
    cmd!("substr", 4, READONLY, 1, 1, 1, "string", "1.0.0", "Returns a substring from a string value.", D(string::getrange)),
    cmd!("setrange", 4, WRITE | DENYOOM, 1, 1, 1, "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", D(string::setrange)),
    cmd!("incr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", D(string::incr)),
    cmd!("incrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", D(string::incrby)),
    cmd!("incrbyfloat", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", D(string::incrbyfloat)),
    cmd!("decr", 2, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", D(string::decr)),
    cmd!("decrby", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", D(string::decrby)),
    cmd!("lcs", -3, READONLY, 1, 2, 1, "string", "7.0.0", "Finds the longest common substring.", D(string::lcs)),
    cmd!("cas", -4, WRITE, 1, 1, 1, "string", "2.0.2", "Sets a new value if the current value equals the old one (Kvrocks).", D(string::cas)),
    cmd!("cad", 3, WRITE, 1, 1, 1, "string", "2.0.2", "Deletes the key if its value equals the given one (Kvrocks).", D(string::cad)),
    // hash
    cmd!("hset", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", "2.0.0", "Creates or modifies the value of a field in a hash.", D(hash::hset)),
    cmd!("hmset", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", "2.0.0", "Sets the values of multiple fields.", D(hash::hmset)),
    cmd!("hsetnx", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", "2.0.0", "Sets the values of fields in a hash only where the field doesn't exist (several pairs: Kvrocks).", D(hash::hsetnx)),
    cmd!("hget", 3, READONLY | FAST, 1, 1, 1, "hash", "2.0.0", "Returns the value of a field in a hash.", D(hash::hget)),
    cmd!("hmget", -3, READONLY | FAST, 1, 1, 1, "hash", "2.0.0", "Returns the values of all fields in a hash.", D(hash::hmget)),
    cmd!("hdel", -3, WRITE | FAST, 1, 1, 1, "hash", "2.0.0", "Deletes one or more fields and their values from a hash.", D(hash::hdel)),
    cmd!("hlen", 2, READONLY | FAST, 1, 1, 1, "hash", "2.0.0", "Returns the number of fields in a hash.", D(hash::hlen)),
    cmd!("hstrlen", 3, READONLY | FAST, 1, 1, 1, "hash", "3.2.0", "Returns the length of the value of a field.", D(hash::hstrlen)),
    cmd!("hexists", 3, READONLY | FAST, 1, 1, 1, "hash", "2.0.0", "Determines whether a field exists in a hash.", D(hash::hexists)),
    cmd!("hkeys", 2, READONLY, 1, 1, 1, "hash", "2.0.0", "Returns all fields in a hash.", D(hash::hkeys)),
    cmd!("hvals", 2, READONLY, 1, 1, 1, "hash", "2.0.0", "Returns all values in a hash.", D(hash::hvals)),
    cmd!("hgetall", 2, READONLY, 1, 1, 1, "hash", "2.0.0", "Returns all fields and values in a hash.", D(hash::hgetall)),
    cmd!("hincrby", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", "2.0.0", "Increments the integer value of a field in a hash by a number.", D(hash::hincrby)),
    cmd!("hincrbyfloat", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "hash", "2.6.0", "Increments the floating point value of a field by a number.", D(hash::hincrbyfloat)),
    cmd!("hscan", -3, READONLY, 1, 1, 1, "hash", "2.8.0", "Iterates over fields and values of a hash.", D(hash::hscan)),
    cmd!("hrangebylex", -4, READONLY, 1, 1, 1, "hash", "2.0.0", "Returns the fields and values of a hash within a lexicographical range (Kvrocks).", D(hash::hrangebylex)),
    cmd!("hrandfield", -2, READONLY, 1, 1, 1, "hash", "6.2.0", "Returns one or more random fields from a hash.", D(hash::hrandfield)),
    // list
    cmd!("lpush", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist.", D(list::lpush)),
    cmd!("rpush", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist.", D(list::rpush)),
    cmd!("lpushx", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", "2.2.0", "Prepends one or more elements to a list only when the list exists.", D(list::lpushx)),
    cmd!("rpushx", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "list", "2.2.0", "Appends an element to a list only when the list exists.", D(list::rpushx)),
    cmd!("lpop", -2, WRITE | FAST, 1, 1, 1, "list", "1.0.0", "Returns the first elements in a list after removing it.", D(list::lpop)),
    cmd!("rpop", -2, WRITE | FAST, 1, 1, 1, "list", "1.0.0", "Returns and removes the last elements of a list.", D(list::rpop)),
    cmd!("llen", 2, READONLY | FAST, 1, 1, 1, "list", "1.0.0", "Returns the length of a list.", D(list::llen)),
    cmd!("lindex", 3, READONLY, 1, 1, 1, "list", "1.0.0", "Returns an element from a list by its index.", D(list::lindex)),
    cmd!("lrange", 4, READONLY, 1, 1, 1, "list", "1.0.0", "Returns a range of elements from a list.", D(list::lrange)),
    cmd!("lset", 4, WRITE | DENYOOM, 1, 1, 1, "list", "1.0.0", "Sets the value of an element in a list by its index.", D(list::lset)),
    cmd!("ltrim", 4, WRITE, 1, 1, 1, "list", "1.0.0", "Removes elements from both ends a list.", D(list::ltrim)),
    cmd!("lrem", 4, WRITE, 1, 1, 1, "list", "1.0.0", "Removes elements from a list.", D(list::lrem)),
    cmd!("linsert", 5, WRITE | DENYOOM, 1, 1, 1, "list", "2.2.0", "Inserts an element before or after another element in a list.", D(list::linsert)),
    cmd!("lpos", -3, READONLY, 1, 1, 1, "list", "6.0.6", "Returns the index of matching elements in a list.", D(list::lpos)),
    cmd!("lmove", 5, WRITE | DENYOOM, 1, 2, 1, "list", "6.2.0", "Returns an element after popping it from one list and pushing it to another.", D(list::lmove)),
    cmd!("rpoplpush", 3, WRITE | DENYOOM, 1, 2, 1, "list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list.", D(list::rpoplpush)),
    cmd!("blpop", -3, WRITE | NOSCRIPT, 1, -2, 1, "list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise.", S),
    cmd!("brpop", -3, WRITE | NOSCRIPT, 1, -2, 1, "list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise.", S),
    cmd!("brpoplpush", 4, WRITE | DENYOOM | NOSCRIPT, 1, 2, 1, "list", "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.", S),
    cmd!("blmove", 6, WRITE | DENYOOM | NOSCRIPT, 1, 2, 1, "list", "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise.", S),
    cmd!("blmpop", -5, WRITE | NOSCRIPT, 0, 0, 0, "list", "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise.", S),
    cmd!("lmpop", -4, WRITE, 0, 0, 0, "list", "7.0.0", "Returns multiple elements from a list after removing them.", D(list::lmpop)),
    // set
    cmd!("sadd", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "set", "1.0.0", "Adds one or more members to a set.", D(set::sadd)),
    cmd!("srem", -3, WRITE | FAST, 1, 1, 1, "set", "1.0.0", "Removes one or more members from a set.", D(set::srem)),
    cmd!("scard", 2, READONLY | FAST, 1, 1, 1, "set", "1.0.0", "Returns the number of members in a set.", D(set::scard)),
    cmd!("sismember", 3, READONLY | FAST, 1, 1, 1, "set", "1.0.0", "Determines whether a member belongs to a set.", D(set::sismember)),
    cmd!("smismember", -3, READONLY | FAST, 1, 1, 1, "set", "6.2.0", "Determines whether multiple members belong to a set.", D(set::smismember)),
    cmd!("smembers", 2, READONLY, 1, 1, 1, "set", "1.0.0", "Returns all members of a set.", D(set::smembers)),
    cmd!("spop", -2, WRITE | FAST, 1, 1, 1, "set", "1.0.0", "Returns one or more random members from a set after removing them.", D(set::spop)),
    cmd!("srandmember", -2, READONLY, 1, 1, 1, "set", "1.0.0", "Get one or multiple random members from a set.", D(set::srandmember)),
    cmd!("smove", 4, WRITE | FAST, 1, 2, 1, "set", "1.0.0", "Moves a member from one set to another.", D(set::smove)),
    cmd!("sdiff", -2, READONLY, 1, -1, 1, "set", "1.0.0", "Returns the difference of multiple sets.", D(set::sdiff)),
    cmd!("sinter", -2, READONLY, 1, -1, 1, "set", "1.0.0", "Returns the intersect of multiple sets.", D(set::sinter)),
    cmd!("sunion", -2, READONLY, 1, -1, 1, "set", "1.0.0", "Returns the union of multiple sets.", D(set::sunion)),
    cmd!("sdiffstore", -3, WRITE | DENYOOM, 1, -1, 1, "set", "1.0.0", "Stores the difference of multiple sets in a key.", D(set::sdiffstore)),
    cmd!("sinterstore", -3, WRITE | DENYOOM, 1, -1, 1, "set", "1.0.0", "Stores the intersect of multiple sets in a key.", D(set::sinterstore)),
    cmd!("sunionstore", -3, WRITE | DENYOOM, 1, -1, 1, "set", "1.0.0", "Stores the union of multiple sets in a key.", D(set::sunionstore)),
    cmd!("sintercard", -3, READONLY, 0, 0, 0, "set", "7.0.0", "Returns the number of members of the intersect of multiple sets.", D(set::sintercard)),
    cmd!("sscan", -3, READONLY, 1, 1, 1, "set", "2.6.0", "Iterates over members of a set.", D(set::sscan)),
    // sorted set
    cmd!("zadd", -4, WRITE | DENYOOM | FAST, 1, 1, 1, "sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores.", D(zset::zadd)),
    cmd!("zincrby", 4, WRITE | DENYOOM | FAST, 1, 1, 1, "sorted-set", "1.2.0", "Increments the score of a member in a sorted set.", D(zset::zincrby)),
    cmd!("zscore", 3, READONLY | FAST, 1, 1, 1, "sorted-set", "1.2.0", "Returns the score of a member in a sorted set.", D(zset::zscore)),
    cmd!("zmscore", -3, READONLY | FAST, 1, 1, 1, "sorted-set", "6.2.0", "Returns the score of one or more members in a sorted set.", D(zset::zmscore)),
    cmd!("zcard", 2, READONLY | FAST, 1, 1, 1, "sorted-set", "1.2.0", "Returns the number of members in a sorted set.", D(zset::zcard)),
    cmd!("zrem", -3, WRITE | FAST, 1, 1, 1, "sorted-set", "1.2.0", "Removes one or more members from a sorted set.", D(zset::zrem)),
    cmd!("zrange", -4, READONLY, 1, 1, 1, "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes, scores or names.", D(zset::zrange)),
    cmd!("zrevrange", -4, READONLY, 1, 1, 1, "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes, highest first.", D(zset::zrevrange)),
    cmd!("zrangebyscore", -4, READONLY, 1, 1, 1, "sorted-set", "1.0.5", "Returns members in a sorted set within a range of scores.", D(zset::zrangebyscore)),
    cmd!("zrevrangebyscore", -4, READONLY, 1, 1, 1, "sorted-set", "2.2.0", "Returns members in a sorted set within a range of scores, highest first.", D(zset::zrangebyscore)),
    cmd!("zcount", 4, READONLY | FAST, 1, 1, 1, "sorted-set", "2.0.0", "Returns the count of members in a sorted set that have scores within a range.", D(zset::zcount)),
    cmd!("zrank", -3, READONLY | FAST, 1, 1, 1, "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores.", D(zset::zrank)),
    cmd!("zrevrank", -3, READONLY | FAST, 1, 1, 1, "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores.", D(zset::zrank)),
    cmd!("zpopmin", -2, WRITE | FAST, 1, 1, 1, "sorted-set", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them.", D(zset::zpop)),
    cmd!("zrangebylex", -4, READONLY, 1, 1, 1, "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range.", D(zset::zrangebylex)),
    cmd!("zrevrangebylex", -4, READONLY, 1, 1, 1, "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order.", D(zset::zrangebylex)),
    cmd!("zlexcount", 4, READONLY | FAST, 1, 1, 1, "sorted-set", "2.8.9", "Returns the number of members in a sorted set within a lexicographical range.", D(zset::zlexcount)),
    cmd!("zrangestore", -5, WRITE | DENYOOM, 1, 2, 1, "sorted-set", "6.2.0", "Stores a range of members from sorted set in a key.", D(zset::zrangestore)),
    cmd!("zremrangebyrank", 4, WRITE, 1, 1, 1, "sorted-set", "2.0.0", "Removes members in a sorted set within a range of indexes.", D(zset::zremrange)),
    cmd!("zremrangebyscore", 4, WRITE, 1, 1, 1, "sorted-set", "1.2.0", "Removes members in a sorted set within a range of scores.", D(zset::zremrange)),
    cmd!("zremrangebylex", 4, WRITE, 1, 1, 1, "sorted-set", "2.8.9", "Removes members in a sorted set within a lexicographical range.", D(zset::zremrange)),
    cmd!("zunion", -3, READONLY, 0, 0, 0, "sorted-set", "6.2.0", "Returns the union of multiple sorted sets.", D(zset::zcombine)),
    cmd!("zinter", -3, READONLY, 0, 0, 0, "sorted-set", "6.2.0", "Returns the intersect of multiple sorted sets.", D(zset::zcombine)),
    cmd!("zdiff", -3, READONLY, 0, 0, 0, "sorted-set", "6.2.0", "Returns the difference between multiple sorted sets.", D(zset::zcombine)),
    cmd!("zunionstore", -4, WRITE | DENYOOM, 0, 0, 0, "sorted-set", "2.0.0", "Stores the union of multiple sorted sets in a key.", D(zset::zcombinestore)),
    cmd!("zinterstore", -4, WRITE | DENYOOM, 0, 0, 0, "sorted-set", "2.0.0", "Stores the intersect of multiple sorted sets in a key.", D(zset::zcombinestore)),
    cmd!("zdiffstore", -4, WRITE | DENYOOM, 0, 0, 0, "sorted-set", "6.2.0", "Stores the difference of multiple sorted sets in a key.", D(zset::zcombinestore)),
    cmd!("zintercard", -3, READONLY, 0, 0, 0, "sorted-set", "7.0.0", "Returns the number of members of the intersect of multiple sorted sets.", D(zset::zintercard)),
    cmd!("zrandmember", -2, READONLY, 1, 1, 1, "sorted-set", "6.2.0", "Returns one or more random members from a sorted set.", D(zset::zrandmember)),
    cmd!("zmpop", -4, WRITE, 0, 0, 0, "sorted-set", "7.0.0", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them.", D(zset::zmpop)),
    cmd!("xadd", -5, WRITE | DENYOOM | FAST, 1, 1, 1, "stream", "5.0.0", "Appends a new message to a stream. Creates the key if it doesn't exist.", D(stream::xadd)),
    cmd!("xlen", -2, READONLY | FAST, 1, 1, 1, "stream", "5.0.0", "Return the number of messages in a stream (after or before an ID: Kvrocks).", D(stream::xlen)),
    cmd!("xrange", -4, READONLY, 1, 1, 1, "stream", "5.0.0", "Returns the messages from a stream within a range of IDs.", D(stream::xrange)),
    cmd!("xrevrange", -4, READONLY, 1, 1, 1, "stream", "5.0.0", "Returns the messages from a stream within a range of IDs in reverse order.", D(stream::xrevrange)),
    cmd!("xdel", -3, WRITE | FAST, 1, 1, 1, "stream", "5.0.0", "Returns the number of messages after removing them from a stream.", D(stream::xdel)),
    cmd!("xtrim", -4, WRITE, 1, 1, 1, "stream", "5.0.0", "Deletes messages from the beginning of a stream.", D(stream::xtrim)),
    cmd!("xsetid", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "stream", "5.0.0", "An internal command for replicating stream values.", D(stream::xsetid)),
    cmd!("xread", -4, READONLY, 0, 0, 0, "stream", "5.0.0", "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", S),
    cmd!("xreadgroup", -7, WRITE, 0, 0, 0, "stream", "5.0.0", "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", S),
    cmd!("xgroup", -2, WRITE, 2, 2, 1, "stream", "5.0.0", "A container for consumer groups commands.", D(stream::xgroup)),
    cmd!("xack", -4, WRITE | FAST, 1, 1, 1, "stream", "5.0.0", "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", D(stream::xack)),
    cmd!("xpending", -3, READONLY, 1, 1, 1, "stream", "5.0.0", "Returns the information and entries from a stream consumer group's pending entries list.", D(stream::xpending)),
    cmd!("xclaim", -6, WRITE | FAST, 1, 1, 1, "stream", "5.0.0", "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", D(stream::xclaim)),
    cmd!("xautoclaim", -6, WRITE | FAST, 1, 1, 1, "stream", "6.2.0", "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", D(stream::xautoclaim)),
    cmd!("xinfo", -2, READONLY, 2, 2, 1, "stream", "5.0.0", "A container for stream introspection commands.", D(stream::xinfo)),
    cmd!("siadd", -3, WRITE, 1, 1, 1, "sortedint", "1.0.0", "Adds ids to a sorted integer set (Kvrocks).", D(sortedint::siadd)),
    cmd!("sirem", -3, WRITE, 1, 1, 1, "sortedint", "1.0.0", "Removes ids from a sorted integer set (Kvrocks).", D(sortedint::sirem)),
    cmd!("sicard", 2, READONLY, 1, 1, 1, "sortedint", "1.0.0", "Returns the number of ids in a sorted integer set (Kvrocks).", D(sortedint::sicard)),
    cmd!("siexists", -3, READONLY, 1, 1, 1, "sortedint", "1.0.0", "Tells which ids are in a sorted integer set (Kvrocks).", D(sortedint::siexists)),
    cmd!("sirange", -4, READONLY, 1, 1, 1, "sortedint", "1.0.0", "Returns ids by position, from a cursor (Kvrocks).", D(sortedint::sirange)),
    cmd!("sirevrange", -4, READONLY, 1, 1, 1, "sortedint", "1.0.0", "Returns ids by position in reverse order, from a cursor (Kvrocks).", D(sortedint::sirevrange)),
    cmd!("sirangebyvalue", -4, READONLY, 1, 1, 1, "sortedint", "1.0.0", "Returns ids within a range of values (Kvrocks).", D(sortedint::sirangebyvalue)),
    cmd!("sirevrangebyvalue", -4, READONLY, 1, 1, 1, "sortedint", "1.0.0", "Returns ids within a range of values in reverse order (Kvrocks).", D(sortedint::sirevrangebyvalue)),
    cmd!("dump", 2, READONLY | WALKS_KEYSPACE, 1, 1, 1, "generic", "2.6.0", "Returns a serialized representation of the value stored at a key.", D(dump::dump)),
    cmd!("migrate", -6, WRITE | WALKS_KEYSPACE, 3, 3, 1, "generic", "2.6.0", "Atomically transfers a key from one Redis instance to another.", S),
    cmd!("restore-asking", -4, WRITE | DENYOOM | WALKS_KEYSPACE, 1, 1, 1, "server", "3.0.0", "An internal command for migrating keys in a cluster.", D(dump::restore)),
    cmd!("restore", -4, WRITE | DENYOOM | WALKS_KEYSPACE, 1, 1, 1, "generic", "2.6.0", "Creates a key from the serialized representation of a value.", D(dump::restore)),
    cmd!("geoadd", -5, WRITE | DENYOOM, 1, 1, 1, "geo", "3.2.0", "Adds one or more members to a geospatial index.", D(geo::geoadd)),
    cmd!("geodist", -4, READONLY, 1, 1, 1, "geo", "3.2.0", "Returns the distance between two members of a geospatial index.", D(geo::geodist)),
    cmd!("geohash", -2, READONLY, 1, 1, 1, "geo", "3.2.0", "Returns members from a geospatial index as geohash strings.", D(geo::geohash)),
    cmd!("geopos", -2, READONLY, 1, 1, 1, "geo", "3.2.0", "Returns the longitude and latitude of members from a geospatial index.", D(geo::geopos)),
    cmd!("georadius", -6, WRITE | DENYOOM, 1, 1, 1, "geo", "3.2.0", "Queries a geospatial index for members within a distance from a coordinate, optionally stores the result.", D(geo::georadius)),
    cmd!("georadius_ro", -6, READONLY, 1, 1, 1, "geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a coordinate.", D(geo::georadius_ro)),
    cmd!("georadiusbymember", -5, WRITE | DENYOOM, 1, 1, 1, "geo", "3.2.0", "Queries a geospatial index for members within a distance from a member, optionally stores the result.", D(geo::georadiusbymember)),
    cmd!("georadiusbymember_ro", -5, READONLY, 1, 1, 1, "geo", "3.2.10", "Returns members from a geospatial index that are within a distance from a member.", D(geo::georadiusbymember_ro)),
    cmd!("geosearch", -7, READONLY, 1, 1, 1, "geo", "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle.", D(geo::geosearch)),
    cmd!("geosearchstore", -8, WRITE | DENYOOM, 1, 2, 1, "geo", "6.2.0", "Queries a geospatial index for members inside an area of a box or a circle, optionally stores the result.", D(geo::geosearchstore)),
    cmd!("zscan", -3, READONLY, 1, 1, 1, "sorted-set", "2.8.0", "Iterates over members and scores of a sorted set.", D(zset::zscan)),
    cmd!("bzpopmin", -3, WRITE | NOSCRIPT | FAST, 1, -2, 1, "sorted-set", "5.0.0", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.", S),
    cmd!("bzpopmax", -3, WRITE | NOSCRIPT | FAST, 1, -2, 1, "sorted-set", "5.0.0", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.", S),
    cmd!("bzmpop", -5, WRITE | NOSCRIPT, 0, 0, 0, "sorted-set", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise.", S),
    cmd!("getbit", 3, READONLY | FAST, 1, 1, 1, "bitmap", "2.2.0", "Returns a bit value by offset.", D(bitmap::getbit)),
    cmd!("setbit", 4, WRITE | DENYOOM, 1, 1, 1, "bitmap", "2.2.0", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", D(bitmap::setbit)),
    cmd!("bitcount", -2, READONLY, 1, 1, 1, "bitmap", "2.6.0", "Counts the number of set bits (population counting) in a string.", D(bitmap::bitcount)),
    cmd!("bitpos", -3, READONLY, 1, 1, 1, "bitmap", "2.8.7", "Finds the first set (1) or clear (0) bit in a string.", D(bitmap::bitpos)),
    cmd!("bitop", -4, WRITE | DENYOOM, 2, -1, 1, "bitmap", "2.6.0", "Performs bitwise operations on multiple strings, and stores the result.", D(bitmap::bitop)),
    cmd!("bitfield", -2, WRITE | DENYOOM, 1, 1, 1, "bitmap", "3.2.0", "Performs arbitrary bitfield integer operations on strings.", D(bitmap::bitfield)),
    cmd!("bitfield_ro", -2, READONLY | FAST, 1, 1, 1, "bitmap", "6.0.0", "Performs arbitrary read-only bitfield integer operations on strings.", D(bitmap::bitfield)),
    cmd!("sort", -2, WRITE | DENYOOM, 1, 1, 1, "generic", "1.0.0", "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.", D(sort::sort)),
    cmd!("sort_ro", -2, READONLY, 1, 1, 1, "generic", "7.0.0", "Returns the sorted elements of a list, a set, or a sorted set.", D(sort::sort)),
    // JSON documents (RedisJSON's JSON.*, in Kvrocks' layout)
    cmd!("json.set", -4, WRITE | DENYOOM, 1, 1, 1, "json", "1.0.0", "Sets or updates the JSON value at a path.", D(json::set)),
    cmd!("json.get", -2, READONLY, 1, 1, 1, "json", "1.0.0", "Gets the value at one or more paths in JSON serialized form.", D(json::get)),
    cmd!("json.mget", -3, READONLY, 1, -2, 1, "json", "1.0.0", "Returns the values at a path from one or more keys.", D(json::mget)),
    cmd!("json.mset", -4, WRITE | DENYOOM, 1, -3, 3, "json", "2.6.0", "Sets or updates the JSON value of one or more keys.", D(json::mset)),
    cmd!("json.del", -2, WRITE, 1, 1, 1, "json", "1.0.0", "Deletes a value.", D(json::del)),
    cmd!("json.forget", -2, WRITE, 1, 1, 1, "json", "1.0.0", "Deletes a value.", D(json::del)),
    cmd!("json.type", -2, READONLY, 1, 1, 1, "json", "1.0.0", "Returns the type of the JSON value at a path.", D(json::type_of)),
    cmd!("json.strlen", -2, READONLY, 1, 1, 1, "json", "1.0.0", "Returns the length of the JSON String at path in key.", D(json::len)),
    cmd!("json.arrlen", -2, READONLY, 1, 1, 1, "json", "1.0.0", "Returns the length of the array.", D(json::len)),
    cmd!("json.objlen", -2, READONLY, 1, 1, 1, "json", "1.0.0", "Returns the number of keys of the object.", D(json::len)),
    cmd!("json.objkeys", -2, READONLY, 1, 1, 1, "json", "1.0.0", "Returns the JSON keys of the object.", D(json::objkeys)),
    cmd!("json.strappend", -3, WRITE | DENYOOM, 1, 1, 1, "json", "1.0.0", "Appends a string to a JSON string value at path.", D(json::strappend)),
    cmd!("json.arrappend", -4, WRITE | DENYOOM, 1, 1, 1, "json", "1.0.0", "Appends one or more JSON values into the array at path.", D(json::arrappend)),
    cmd!("json.arrpop", -2, WRITE, 1, 1, 1, "json", "1.0.0", "Removes and returns the element at the specified index in the array at path.", D(json::arrpop)),
    cmd!("json.arrinsert", -5, WRITE | DENYOOM, 1, 1, 1, "json", "1.0.0", "Inserts the JSON scalar(s) value at the specified index in the array at path.", D(json::arrinsert)),
    cmd!("json.arrindex", -4, READONLY, 1, 1, 1, "json", "1.0.0", "Returns the index of the first occurrence of a JSON scalar value in the array at path.", D(json::arrindex)),
    cmd!("json.merge", 4, WRITE | DENYOOM, 1, 1, 1, "json", "2.6.0", "Merges a given JSON value into matching paths.", D(json::merge)),
    cmd!("json.resp", -2, READONLY, 1, 1, 1, "json", "1.0.0", "Returns the JSON value at path in Redis Serialization Protocol (RESP).", D(json::resp)),
    cmd!("json.debug", -2, READONLY, 2, 2, 1, "json", "1.0.0", "Debugging container command: MEMORY reports the bytes a value takes.", D(json::debug)),
    cmd!("json.arrtrim", 5, WRITE, 1, 1, 1, "json", "1.0.0", "Trims the array at path to contain only the specified inclusive range of indices from start to stop.", D(json::arrtrim)),
    cmd!("json.toggle", -2, WRITE, 1, 1, 1, "json", "2.0.0", "Toggles a boolean value.", D(json::toggle)),
    cmd!("json.clear", -2, WRITE, 1, 1, 1, "json", "2.0.0", "Clears all values from an array or an object and sets numeric values to 0.", D(json::clear)),
    cmd!("json.numincrby", 4, WRITE, 1, 1, 1, "json", "1.0.0", "Increments the numeric value at path by a value.", D(json::numop)),
    cmd!("json.nummultby", 4, WRITE, 1, 1, 1, "json", "1.0.0", "Multiplies the numeric value at path by a value.", D(json::numop)),
    cmd!("json.info", 2, READONLY, 1, 1, 1, "json", "1.0.0", "Kvrocks: the storage format of a JSON document.", D(json::info)),
    // t-digests (RedisBloom's TDIGEST.*, in Kvrocks' layout)
    cmd!("tdigest.create", -2, WRITE | DENYOOM, 1, 1, 1, "tdigest", "2.4.0", "Allocates memory and initializes a new t-digest sketch.", D(tdigest::create)),
    cmd!("tdigest.add", -3, WRITE | DENYOOM, 1, 1, 1, "tdigest", "2.4.0", "Adds one or more observations to a t-digest sketch.", D(tdigest::add)),
    cmd!("tdigest.merge", -4, WRITE | DENYOOM, 0, 0, 0, "tdigest", "2.4.0", "Merges multiple t-digest sketches into a single sketch.", D(tdigest::merge)),
    cmd!("tdigest.reset", 2, WRITE, 1, 1, 1, "tdigest", "2.4.0", "Resets a t-digest sketch: empty the sketch and re-initializes it.", D(tdigest::reset)),
    cmd!("tdigest.min", 2, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns the minimum observation value from a t-digest sketch.", D(tdigest::min_max)),
    cmd!("tdigest.max", 2, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns the maximum observation value from a t-digest sketch.", D(tdigest::min_max)),
    cmd!("tdigest.quantile", -3, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns, for each input fraction, an estimation of the value (floating point) that is smaller than the given fraction of observations.", D(tdigest::quantile)),
    cmd!("tdigest.cdf", -3, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns, for each input value, an estimation of the fraction (floating-point) of (observations smaller than the given value + half the observations equal to the given value).", D(tdigest::cdf)),
    cmd!("tdigest.rank", -3, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns, for each input value (floating-point), the estimated rank of the value (the number of observations in the sketch that are smaller than the value + half the number of observations that are equal to the value).", D(tdigest::rank)),
    cmd!("tdigest.revrank", -3, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns, for each input value (floating-point), the estimated reverse rank of the value.", D(tdigest::rank)),
    cmd!("tdigest.byrank", -3, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns, for each input rank, an estimation of the value (floating-point) with that rank.", D(tdigest::by_rank)),
    cmd!("tdigest.byrevrank", -3, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns, for each input reverse rank, an estimation of the value (floating-point) with that reverse rank.", D(tdigest::by_rank)),
    cmd!("tdigest.trimmed_mean", 4, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns an estimation of the mean value from the sketch, excluding observation values outside the low and high cutoff quantiles.", D(tdigest::trimmed_mean)),
    cmd!("tdigest.info", 2, READONLY, 1, 1, 1, "tdigest", "2.4.0", "Returns information and statistics about a t-digest sketch.", D(tdigest::info)),
    // Bloom filters (RedisBloom's BF.*, in Kvrocks' layout)
    cmd!("bf.reserve", -4, WRITE | DENYOOM, 1, 1, 1, "bf", "1.0.0", "Creates a new Bloom filter.", D(bloom::reserve)),
    cmd!("bf.add", 3, WRITE | DENYOOM | FAST, 1, 1, 1, "bf", "1.0.0", "Adds an item to a Bloom filter.", D(bloom::add)),
    cmd!("bf.madd", -3, WRITE | DENYOOM | FAST, 1, 1, 1, "bf", "1.0.0", "Adds one or more items to a Bloom filter. A filter will be created if it does not exist.", D(bloom::madd)),
    cmd!("bf.insert", -4, WRITE | DENYOOM, 1, 1, 1, "bf", "1.0.0", "Adds one or more items to a Bloom filter. A filter will be created if it does not exist.", D(bloom::insert)),
    cmd!("bf.exists", 3, READONLY | FAST, 1, 1, 1, "bf", "1.0.0", "Checks whether an item exists in a Bloom filter.", D(bloom::exists)),
    cmd!("bf.mexists", -3, READONLY | FAST, 1, 1, 1, "bf", "1.0.0", "Checks whether one or more items exist in a Bloom filter.", D(bloom::mexists)),
    cmd!("bf.info", -2, READONLY | FAST, 1, 1, 1, "bf", "1.0.0", "Returns information about a Bloom filter.", D(bloom::info)),
    cmd!("bf.card", 2, READONLY | FAST, 1, 1, 1, "bf", "2.4.4", "Returns the cardinality of a Bloom filter.", D(bloom::card)),
    cmd!("pfadd", -2, WRITE | DENYOOM | FAST, 1, 1, 1, "hyperloglog", "2.8.9", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", D(hll::pfadd)),
    cmd!("pfcount", -2, READONLY, 1, -1, 1, "hyperloglog", "2.8.9", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).", D(hll::pfcount)),
    cmd!("pfmerge", -2, WRITE | DENYOOM, 1, -1, 1, "hyperloglog", "2.8.9", "Merges one or more HyperLogLog values into a single key.", D(hll::pfmerge)),
    cmd!("zpopmax", -2, WRITE | FAST, 1, 1, 1, "sorted-set", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them.", D(zset::zpop)),
    // keyspace
    cmd!("del", -2, WRITE, 1, -1, 1, "generic", "1.0.0", "Deletes one or more keys.", D(keys::del)),
    cmd!("unlink", -2, WRITE | FAST, 1, -1, 1, "generic", "4.0.0", "Asynchronously deletes one or more keys.", D(keys::del)),
    cmd!("rdb", -3, WRITE | ADMIN | NOSCRIPT | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Kvrocks: RDB LOAD path [NX] [DB index] imports a Redis RDB file.", D(rdb::rdb)),
    cmd!("movex", 3, WRITE, 1, 1, 1, "generic", "1.0.0", "Kvrocks: moves a key to the namespace of a token.", S),
    cmd!("move", 3, WRITE | FAST, 1, 1, 1, "generic", "1.0.0", "Kvrocks: there is one database, so nothing moves; answers whether the key exists.", D(keys::move_key)),
    cmd!("exists", -2, READONLY | FAST, 1, -1, 1, "generic", "1.0.0", "Determines whether one or more keys exist.", D(keys::exists)),
    cmd!("touch", -2, READONLY | FAST, 1, -1, 1, "generic", "3.2.1", "Alters the last access time of a key(s). Returns the number of existing keys specified.", D(keys::touch)),
    cmd!("type", 2, READONLY | FAST, 1, 1, 1, "generic", "1.0.0", "Determines the type of value stored at a key.", D(keys::type_)),
    cmd!("expire", -3, WRITE | FAST, 1, 1, 1, "generic", "1.0.0", "Sets the expiration time of a key in seconds.", D(keys::expire)),
    cmd!("pexpire", -3, WRITE | FAST, 1, 1, 1, "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", D(keys::pexpire)),
    cmd!("expireat", -3, WRITE | FAST, 1, 1, 1, "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.", D(keys::expireat)),
    cmd!("pexpireat", -3, WRITE | FAST, 1, 1, 1, "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.", D(keys::pexpireat)),
    cmd!("ttl", 2, READONLY | FAST, 1, 1, 1, "generic", "1.0.0", "Returns the expiration time in seconds of a key.", D(keys::ttl)),
    cmd!("pttl", 2, READONLY | FAST, 1, 1, 1, "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", D(keys::pttl)),
    cmd!("expiretime", 2, READONLY | FAST, 1, 1, 1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", D(keys::expiretime)),
    cmd!("pexpiretime", 2, READONLY | FAST, 1, 1, 1, "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", D(keys::pexpiretime)),
    cmd!("persist", 2, WRITE | FAST, 1, 1, 1, "generic", "2.2.0", "Removes the expiration time of a key.", D(keys::persist)),
    cmd!("rename", 3, WRITE, 1, 2, 1, "generic", "1.0.0", "Renames a key and overwrites the destination.", D(keys::rename)),
    cmd!("renamenx", 3, WRITE | FAST, 1, 2, 1, "generic", "1.0.0", "Renames a key only when the target key name doesn't exist.", D(keys::renamenx)),
    cmd!("copy", -3, WRITE | DENYOOM, 1, 2, 1, "generic", "6.2.0", "Copies the value of a key to a new key.", D(keys::copy)),
    cmd!("object", -2, READONLY, 0, 0, 0, "generic", "2.2.3", "A container for object introspection commands.", D(keys::object)),
    cmd!("disk", 3, READONLY, 2, 2, 1, "server", "1.0.0", "Kvrocks: DISK USAGE key, the bytes of the key's records in storage.", D(keys::disk)),
    cmd!("stats", 1, READONLY | STALE, 0, 0, 0, "server", "1.0.0", "Kvrocks: RocksDB's statistics (tickers and histograms) as JSON.", D(keys::stats)),
    cmd!("memory", -2, READONLY, 0, 0, 0, "server", "4.0.0", "A container for memory diagnostics commands.", D(keys::memory)),
    cmd!("keys", 2, READONLY | WALKS_KEYSPACE, 0, 0, 0, "generic", "1.0.0", "Returns all key names that match a pattern.", D(keys::keys)),
    cmd!("scan", -2, READONLY | WALKS_KEYSPACE, 0, 0, 0, "generic", "2.8.0", "Iterates over the key names in the database.", D(keys::scan)),
    cmd!("randomkey", 1, READONLY | WALKS_KEYSPACE, 0, 0, 0, "generic", "1.0.0", "Returns a random key name from the database.", D(keys::randomkey)),
    cmd!("dbsize", -1, READONLY | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Returns the number of keys in the database.", D(keys::dbsize)),
    cmd!("flushdb", -1, WRITE | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Removes all keys from the current database.", D(keys::flush)),
    cmd!("flushall", -1, WRITE | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Removes all keys from all databases.", D(keys::flushall)),
    cmd!("compact", 1, ADMIN | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Compacts the whole database; compaction filters drop expired data (Kvrocks).", D(keys::compact)),
    // connection and server
    cmd!("ping", -1, FAST | STALE | LOADING, 0, 0, 0, "connection", "1.0.0", "Returns the server's liveliness response.", S),
    cmd!("echo", 2, FAST | STALE | LOADING, 0, 0, 0, "connection", "1.0.0", "Returns the given string.", D(server::echo)),
    cmd!("auth", -2, NO_AUTH | FAST | STALE | LOADING | NOSCRIPT, 0, 0, 0, "connection", "1.0.0", "Authenticates the connection.", S),
    cmd!("hello", -1, NO_AUTH | FAST | STALE | LOADING | NOSCRIPT, 0, 0, 0, "connection", "6.0.0", "Handshakes with the Redis server.", S),
    cmd!("select", 2, FAST | STALE | LOADING, 0, 0, 0, "connection", "1.0.0", "Changes the selected database.", S),
    cmd!("reset", 1, NO_AUTH | FAST | STALE | LOADING | NOSCRIPT, 0, 0, 0, "connection", "6.2.0", "Resets the connection.", S),
    cmd!("multi", 1, NOSCRIPT | LOADING | STALE | FAST, 0, 0, 0, "transactions", "1.2.0", "Starts a transaction.", S),
    cmd!("exec", 1, NOSCRIPT | LOADING | STALE | SKIP_SLOWLOG, 0, 0, 0, "transactions", "1.2.0", "Executes all commands in a transaction.", S),
    cmd!("discard", 1, NOSCRIPT | LOADING | STALE | FAST, 0, 0, 0, "transactions", "2.0.0", "Discards a transaction.", S),
    cmd!("watch", -2, NOSCRIPT | LOADING | STALE | FAST, 1, -1, 1, "transactions", "2.2.0", "Monitors changes to keys to determine the execution of a transaction.", S),
    cmd!("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST, 0, 0, 0, "transactions", "2.2.0", "Forgets about watched keys of a transaction.", S),
    cmd!("quit", -1, NO_AUTH | FAST | STALE | LOADING | NOSCRIPT, 0, 0, 0, "connection", "1.0.0", "Closes the connection.", S),
    cmd!("acl", -2, STALE | LOADING | NOSCRIPT, 0, 0, 0, "server", "6.0.0", "A container for Access List Control commands.", S),
    cmd!("client", -2, STALE | LOADING | NOSCRIPT, 0, 0, 0, "connection", "2.4.0", "A container for client connection commands.", S),
    cmd!("info", -1, STALE | LOADING | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Returns information and statistics about the server.", S),
    cmd!("config", -2, ADMIN | STALE | LOADING | NOSCRIPT, 0, 0, 0, "server", "2.0.0", "A container for server configuration commands.", S),
    cmd!("command", -1, STALE | LOADING, 0, 0, 0, "server", "2.8.13", "Returns detailed information about all commands.", D(server::command)),
    cmd!("slowlog", -2, ADMIN | STALE | LOADING, 0, 0, 0, "server", "2.2.12", "A container for slow log commands.", S),
    cmd!("monitor", 1, ADMIN | STALE | LOADING | NOSCRIPT, 0, 0, 0, "server", "1.0.0", "Listens for all requests received by the server in real-time.", S),
    cmd!("function", -2, NOSCRIPT, 0, 0, 0, "scripting", "7.0.0", "A container for function commands.", S),
    cmd!("eval", -3, NOSCRIPT | STALE | SKIP_MONITOR | WALKS_KEYSPACE, 0, 0, 0, "scripting", "2.6.0", "Executes a server-side Lua script.", S),
    cmd!("evalsha", -3, NOSCRIPT | STALE | SKIP_MONITOR | WALKS_KEYSPACE, 0, 0, 0, "scripting", "2.6.0", "Executes a server-side Lua script by SHA1 digest.", S),
    cmd!("eval_ro", -3, NOSCRIPT | STALE | SKIP_MONITOR | READONLY | WALKS_KEYSPACE, 0, 0, 0, "scripting", "7.0.0", "Executes a read-only server-side Lua script.", S),
    cmd!("evalsha_ro", -3, NOSCRIPT | STALE | SKIP_MONITOR | READONLY | WALKS_KEYSPACE, 0, 0, 0, "scripting", "7.0.0", "Executes a read-only server-side Lua script by SHA1 digest.", S),
    cmd!("fcall", -3, NOSCRIPT | STALE | SKIP_MONITOR | WALKS_KEYSPACE, 0, 0, 0, "scripting", "7.0.0", "Invokes a function.", S),
    cmd!("fcall_ro", -3, NOSCRIPT | STALE | SKIP_MONITOR | READONLY | WALKS_KEYSPACE, 0, 0, 0, "scripting", "7.0.0", "Invokes a read-only function.", S),
    cmd!("script", -2, NOSCRIPT, 0, 0, 0, "scripting", "2.6.0", "A container for Lua scripts management commands.", S),
    cmd!("time", 1, FAST | STALE | LOADING, 0, 0, 0, "server", "2.6.0", "Returns the server time.", D(server::time)),
    cmd!("debug", -2, ADMIN | STALE | LOADING | NOSCRIPT, 0, 0, 0, "server", "1.0.0", "A container for debugging commands.", S),
    cmd!("subscribe", -2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "pubsub", "2.0.0", "Listens for messages published to channels.", S),
    cmd!("psubscribe", -2, NOSCRIPT | LOADING | STALE, 0, 0, 0, "pubsub", "2.0.0", "Listens for messages published to channels that match one or more patterns.", S),
    cmd!("ssubscribe", -2, NOSCRIPT | LOADING | STALE, 1, -1, 1, "pubsub", "7.0.0", "Listens for messages published to shard channels.", S),
    cmd!("unsubscribe", -1, NOSCRIPT | LOADING | STALE, 0, 0, 0, "pubsub", "2.0.0", "Stops listening to messages posted to channels.", S),
    cmd!("punsubscribe", -1, NOSCRIPT | LOADING | STALE, 0, 0, 0, "pubsub", "2.0.0", "Stops listening to messages published to channels that match one or more patterns.", S),
    cmd!("sunsubscribe", -1, NOSCRIPT | LOADING | STALE, 1, -1, 1, "pubsub", "7.0.0", "Stops listening to messages posted to shard channels.", S),
    cmd!("publish", 3, LOADING | STALE | FAST, 0, 0, 0, "pubsub", "2.0.0", "Posts a message to a channel.", S),
    cmd!("mpublish", -3, LOADING | STALE | FAST, 0, 0, 0, "pubsub", "1.0.0", "Kvrocks: posts several messages to a channel.", S),
    cmd!("spublish", 3, LOADING | STALE | FAST, 1, 1, 1, "pubsub", "7.0.0", "Post a message to a shard channel", S),
    cmd!("pubsub", -2, LOADING | STALE, 0, 0, 0, "pubsub", "2.8.0", "A container for Pub/Sub commands.", S),
    cmd!("cluster", -2, ADMIN | NOSCRIPT | STALE, 0, 0, 0, "cluster", "3.0.0", "A container for Redis Cluster commands (Kvrocks' subset and more).", S),
    cmd!("clusterx", -2, ADMIN | NOSCRIPT | STALE, 0, 0, 0, "cluster", "1.0.0", "Kvrocks: the topology an external controller pushes.", S),
    cmd!("readonly", 1, FAST | STALE | LOADING, 0, 0, 0, "cluster", "3.0.0", "Enables read-only queries for a connection to a Redis Cluster replica node.", S),
    cmd!("readwrite", 1, FAST | STALE | LOADING, 0, 0, 0, "cluster", "3.0.0", "Enables read-write queries for a connection to a Redis Cluster replica node.", S),
    cmd!("applybatch", 2, WRITE | NOSCRIPT, 0, 0, 0, "cluster", "1.0.0", "Kvrocks: writes a raw RocksDB WriteBatch (slot migration).", S),
    cmd!("asking", 1, FAST | STALE, 0, 0, 0, "cluster", "3.0.0", "Signals that a cluster client is following an -ASK redirect.", S),
    cmd!("slaveof", 3, ADMIN | NOSCRIPT | STALE, 0, 0, 0, "server", "1.0.0", "Sets a server as a replica of another, or promotes it to being a master.", S),
    cmd!("replicaof", 3, ADMIN | NOSCRIPT | STALE, 0, 0, 0, "server", "5.0.0", "Configures a server as replica of another, or promotes it to a master.", S),
    cmd!("role", 1, NOSCRIPT | LOADING | STALE | FAST, 0, 0, 0, "server", "2.8.12", "Returns the replication role.", S),
    cmd!("psync", -2, ADMIN | NOSCRIPT | STALE, 0, 0, 0, "server", "2.8.0", "An internal command used in replication.", S),
    cmd!("replconf", -3, ADMIN | NOSCRIPT | STALE | LOADING, 0, 0, 0, "server", "3.0.0", "An internal command for configuring the replication stream.", S),
    cmd!("_fetch_meta", 1, ADMIN | NOSCRIPT | STALE | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Kvrocks full sync: lists the files of a checkpoint.", S),
    cmd!("_fetch_file", 2, ADMIN | NOSCRIPT | STALE, 0, 0, 0, "server", "1.0.0", "Kvrocks full sync: sends checkpoint files.", S),
    cmd!("_db_name", 1, STALE | LOADING, 0, 0, 0, "server", "1.0.0", "Kvrocks replication: the db-name of this node.", S),
    cmd!("wait", 3, NOSCRIPT, 0, 0, 0, "generic", "3.0.0", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.", S),
    cmd!("bgsave", -1, ADMIN | NOSCRIPT, 0, 0, 0, "server", "1.0.0", "Kvrocks: writes a backup of the database to backup-dir in the background.", S),
    cmd!("lastsave", 1, ADMIN | FAST | LOADING | STALE, 0, 0, 0, "server", "1.0.0", "Returns the Unix timestamp of the last backup (BGSAVE) started, or of the server's start.", S),
    cmd!("flushbackup", 1, ADMIN | NOSCRIPT, 0, 0, 0, "server", "1.0.0", "Kvrocks: deletes the backup in backup-dir.", S),
    cmd!("flushmemtable", 1, ADMIN | NOSCRIPT | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "quarry: flushes every memtable to SST files (obsolete WAL files may then be purged).", S),
    cmd!("pollupdates", -2, READONLY | STALE | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "Kvrocks: the WAL batches after a sequence, for change capture.", S),
    cmd!("digest", -1, READONLY | STALE | WALKS_KEYSPACE, 0, 0, 0, "server", "1.0.0", "quarry: order-independent digest of the logical contents of slot ranges, with the sequence it reflects.", S),
    cmd!("perflog", -2, ADMIN | LOADING | STALE, 0, 0, 0, "server", "1.0.0", "Kvrocks: the perf log of sampled slow commands (GET [count], LEN, RESET).", S),
    cmd!("latency", -2, ADMIN | NOSCRIPT | LOADING | STALE, 0, 0, 0, "server", "2.8.13", "A container for latency diagnostics commands.", S),
    cmd!("verify", -2, ADMIN | STALE | NOSCRIPT, 0, 0, 0, "server", "1.0.0", "quarry: continuous verification of replicas: STATUS, RUN, REPAIR.", S),
    cmd!("namespace", -3, ADMIN | STALE | LOADING | NOSCRIPT, 0, 0, 0, "server", "1.0.0", "Kvrocks: lists, adds, changes and deletes namespaces and their tokens.", S),
    cmd!("shutdown", -1, ADMIN | STALE | LOADING | NOSCRIPT, 0, 0, 0, "server", "1.0.0", "Synchronously saves the database(s) to disk and shuts down the Redis server.", S),
];

/// Subcommands of the container commands, with their Redis arities (name and subcommand
/// counted). The dispatcher checks them, so that errors read as in Redis 7:
/// `unknown subcommand 'x'. Try CLIENT HELP.` and `wrong number of arguments for 'client|kill'`.
pub static SUBCOMMANDS: &[(&str, &str, i32)] = &[
    ("acl", "cat", -2),
    ("acl", "deluser", -3),
    ("acl", "dryrun", -4),
    ("acl", "genpass", -2),
    ("acl", "getuser", 3),
    ("acl", "help", 2),
    ("acl", "list", 2),
    ("acl", "load", 2),
    ("acl", "log", -2),
    ("acl", "save", 2),
    ("acl", "setuser", -3),
    ("acl", "users", 2),
    ("acl", "whoami", 2),
    ("client", "getname", 2),
    ("client", "id", 2),
    ("client", "info", 2),
    ("client", "kill", -3),
    ("client", "list", -2),
    ("client", "pause", -3),
    ("client", "unpause", 2),
    ("client", "reply", 3),
    ("client", "setname", 3),
    ("client", "setinfo", 4),
    ("client", "unblock", -3),
    ("client", "help", 2),
    ("config", "get", -3),
    ("config", "set", -4),
    ("config", "rewrite", 2),
    ("config", "resetstat", 2),
    ("config", "help", 2),
    ("command", "count", 2),
    ("command", "docs", -2),
    ("command", "getkeys", -3),
    ("command", "getkeysandflags", -4),
    ("command", "info", -2),
    ("command", "list", -2),
    ("command", "help", 2),
    ("slowlog", "get", -2),
    ("slowlog", "len", 2),
    ("slowlog", "reset", 2),
    ("slowlog", "help", 2),
    ("object", "encoding", 3),
    ("object", "refcount", 3),
    ("object", "freq", 3),
    ("object", "idletime", 3),
    ("object", "help", 2),
    ("xgroup", "create", -5),
    ("xgroup", "createconsumer", 5),
    ("xgroup", "delconsumer", 5),
    ("xgroup", "destroy", 4),
    ("xgroup", "setid", -5),
    ("xgroup", "help", 2),
    ("xinfo", "consumers", 4),
    ("xinfo", "groups", 3),
    ("xinfo", "stream", -3),
    ("xinfo", "help", 2),
    ("latency", "latest", 2),
    ("latency", "history", 3),
    ("latency", "reset", -2),
    ("latency", "doctor", 2),
    ("latency", "histogram", -2),
    ("latency", "help", 2),
    ("memory", "usage", -3),
    ("memory", "stats", 2),
    ("memory", "doctor", 2),
    ("memory", "help", 2),
    ("function", "load", -3),
    ("function", "delete", 3),
    ("function", "list", -2),
    ("function", "flush", -2),
    ("function", "dump", 2),
    ("function", "restore", -3),
    ("function", "kill", 2),
    ("function", "stats", 2),
    ("function", "help", 2),
    ("script", "load", 3),
    ("script", "exists", -3),
    ("script", "flush", -2),
    ("script", "kill", 2),
    ("script", "help", 2),
];

/// For a container command, the index in [`SUBCOMMANDS`] of its subcommand, or the error Redis
/// gives. `Ok(None)` for commands that are not containers.
pub fn check_subcommand(
    spec: &CommandSpec,
    args: &[Bytes],
) -> Result<Option<usize>, crate::CmdError> {
    // Every command asks: one lookup, not a walk through the list.
    let Some(range) = containers().get(spec.name) else {
        return Ok(None);
    };
    // Without a subcommand the command's own arity has decided (COMMAND alone is valid).
    let Some(sub) = args.get(1) else {
        return Ok(None);
    };
    let found = SUBCOMMANDS[range.clone()]
        .iter()
        .position(|(_, s, _)| s.as_bytes().eq_ignore_ascii_case(sub))
        .map(|i| range.start + i);
    let Some(i) = found else {
        return Err(crate::CmdError::err(format!(
            "unknown subcommand '{}'. Try {} HELP.",
            String::from_utf8_lossy(&sub[..sub.len().min(128)]),
            spec.name.to_ascii_uppercase()
        )));
    };
    let (container, name, arity) = SUBCOMMANDS[i];
    let n = args.len() as i32;
    if (arity >= 0 && n != arity) || (arity < 0 && n < -arity) {
        return Err(crate::CmdError::WrongArity(format!("{container}|{name}")));
    }
    Ok(Some(i))
}

/// FNV-1a for the command tables, which every command looks up: their keys are short, and
/// SipHash cost more than the rest of the lookup. The tables are fixed at start-up, so a name
/// a client sends only probes them; there is nothing for colliding names to grow.
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type NameMap<V> = HashMap<&'static str, V, std::hash::BuildHasherDefault<NameHasher>>;

fn index() -> &'static NameMap<&'static CommandSpec> {
    static INDEX: OnceLock<NameMap<&'static CommandSpec>> = OnceLock::new();
    INDEX.get_or_init(|| COMMANDS.iter().map(|c| (c.name, c)).collect())
}

/// Each container command's entries in [`SUBCOMMANDS`] (which lists them together).
fn containers() -> &'static NameMap<std::ops::Range<usize>> {
    static CONTAINERS: OnceLock<NameMap<std::ops::Range<usize>>> = OnceLock::new();
    CONTAINERS.get_or_init(|| {
        let mut map = NameMap::<std::ops::Range<usize>>::default();
        for (i, (container, _, _)) in SUBCOMMANDS.iter().enumerate() {
            map.entry(container).or_insert(i..i).end = i + 1;
        }
        map
    })
}

/// The reply of a HELP subcommand: one status line per entry, as Redis.
pub fn help_lines(lines: &[&str]) -> quarry_resp::Frame {
    quarry_resp::Frame::Array(
        lines
            .iter()
            .map(|l| quarry_resp::Frame::Simple((*l).into()))
            .collect(),
    )
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    std::str::from_utf8(lower)
        .ok()
        .and_then(|n| index().get(n).copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_lowercase() {
        assert_eq!(index().len(), COMMANDS.len());
        assert!(COMMANDS
            .iter()
            .all(|c| c.name == c.name.to_ascii_lowercase()));
    }

    #[test]
    fn each_container_lists_its_subcommands_together() {
        for (name, range) in containers() {
            let inside = SUBCOMMANDS[range.clone()].iter();
            assert!(inside.clone().all(|(c, _, _)| c == name), "{name}");
            let count = SUBCOMMANDS.iter().filter(|(c, _, _)| c == name).count();
            assert_eq!(count, range.len(), "{name}'s subcommands are not together");
        }
        assert!(containers().contains_key("client") && !containers().contains_key("get"));
    }

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert!(lookup(b"nosuchcommand").is_none());
    }

    #[test]
    fn subcommands_are_checked_with_redis_texts() {
        let b = |v: &[&str]| {
            v.iter()
                .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                .collect::<Vec<_>>()
        };
        let client = lookup(b"client").unwrap();
        assert!(check_subcommand(client, &b(&["client", "list"]))
            .unwrap()
            .is_some());
        assert_eq!(
            check_subcommand(client, &b(&["client", "kill"]))
                .unwrap_err()
                .to_string(),
            "ERR wrong number of arguments for 'client|kill' command"
        );
        assert_eq!(
            check_subcommand(client, &b(&["client", "nope"]))
                .unwrap_err()
                .to_string(),
            "ERR unknown subcommand 'nope'. Try CLIENT HELP."
        );
        assert_eq!(
            check_subcommand(lookup(b"get").unwrap(), &b(&["get", "k"])).unwrap(),
            None
        );
    }

    #[test]
    fn xreadgroup_keys_skip_names_that_look_like_streams() {
        let spec = lookup(b"xreadgroup").unwrap();
        let args: Vec<Bytes> = [
            "XREADGROUP",
            "GROUP",
            "streams",
            "streams",
            "COUNT",
            "1",
            "STREAMS",
            "s",
            ">",
        ]
        .iter()
        .map(|a| Bytes::from(a.to_string()))
        .collect();
        assert_eq!(command_keys(spec, &args), vec![7]);
    }

    #[test]
    fn key_positions_follow_first_last_step() {
        let mset = lookup(b"mset").unwrap();
        assert_eq!(mset.key_positions(5), vec![1, 3]);
        let del = lookup(b"del").unwrap();
        assert_eq!(del.key_positions(4), vec![1, 2, 3]);
        assert!(lookup(b"ping").unwrap().key_positions(2).is_empty());
    }
}
