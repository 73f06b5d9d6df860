//! Redis 7.0 ACL users: rules, permission checks, and the descriptions ACL LIST and GETUSER
//! print.
//!
//! Every command and subcommand of the command table has an ACL id: a command's index in
//! [`COMMANDS`], and `COMMANDS.len()` plus a subcommand's index in [`SUBCOMMANDS`]. A selector
//! is a bitmap over those ids, key and channel patterns, and the first arguments allowed for
//! commands that are otherwise denied (`+select|0`). A user has a root selector and any number
//! of extra ones (`(...)`); a command runs if any selector allows it.
//!
//! Categories come from Redis' own command descriptions (`quarry_commands::acl_table`); a
//! command Redis does not have (Kvrocks' extras) gets them from its flags and group, as Redis
//! derives the implicit ones.

pub mod command;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use quarry_commands::acl_table::CATEGORIES;
use quarry_commands::table::{flag, CommandSpec, SUBCOMMANDS};
use quarry_commands::COMMANDS;
use quarry_types::glob::glob_match;
use sha2::{Digest, Sha256};

/// Read and write permission of a key pattern (`%R~`, `%W~`; `~` is both).
const READ: u8 = 1;
const WRITE: u8 = 2;

/// One id of the ACL bitmap: a command or a subcommand.
struct Entry {
    /// `get`, or `config|get`.
    full: String,
    categories: u32,
    /// A subcommand's container.
    parent: Option<usize>,
    children: Vec<usize>,
    /// Per key spec: [`READ`] and/or [`WRITE`].
    key_access: &'static [u8],
}

struct Registry {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| {
        let redis = quarry_commands::table::acl_lookup;
        let mut entries: Vec<Entry> = COMMANDS
            .iter()
            .map(|spec| {
                let (categories, key_access) =
                    redis(spec.name).unwrap_or_else(|| (spec.acl_categories(), derived_keys(spec)));
                Entry {
                    full: spec.name.to_string(),
                    categories,
                    parent: None,
                    children: Vec::new(),
                    key_access,
                }
            })
            .collect();
        for (container, sub, _) in SUBCOMMANDS {
            let parent = COMMANDS.iter().position(|c| c.name == *container);
            let full = format!("{container}|{sub}");
            let (categories, key_access) = redis(&full).unwrap_or_else(|| {
                parent
                    .map(|p| {
                        let spec = &COMMANDS[p];
                        (
                            quarry_commands::table::subcommand_acl_categories(spec, sub),
                            entries[p].key_access,
                        )
                    })
                    .unwrap_or((cat("slow"), &[]))
            });
            let id = entries.len();
            if let Some(p) = parent {
                entries[p].children.push(id);
            }
            entries.push(Entry {
                full,
                categories,
                parent,
                children: Vec::new(),
                key_access,
            });
        }
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.full.clone(), i))
            .collect();
        Registry { entries, by_name }
    })
}

fn cat(name: &str) -> u32 {
    quarry_commands::table::acl_category(name)
}

/// The bit of a category name, if Redis has it.
pub fn category_bit(name: &str) -> Option<u32> {
    Some(cat(&name.to_ascii_lowercase())).filter(|b| *b != 0)
}

fn derived_keys(spec: &CommandSpec) -> &'static [u8] {
    if spec.first_key <= 0 {
        &[]
    } else if spec.has(flag::WRITE) {
        &[READ | WRITE]
    } else {
        &[READ]
    }
}

/// The ACL id of a command as dispatch found it (`sub`: its index in [`SUBCOMMANDS`]).
pub fn id_of(spec: &'static CommandSpec, sub: Option<usize>) -> usize {
    match sub {
        Some(s) => COMMANDS.len() + s,
        None => crate::server::Server::command_index(spec),
    }
}

/// The full name (`config|get`) of an ACL id.
pub fn full_name(id: usize) -> &'static str {
    &registry().entries[id].full
}

fn words() -> usize {
    registry().entries.len().div_ceil(64)
}

/// Why a command was refused, with the position of the key or channel at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(p) => (2, p),
            Denied::Channel(p) => (4, p),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct KeyPattern {
    pattern: String,
    access: u8,
}

#[derive(Clone, Debug)]
pub struct Selector {
    allkeys: bool,
    allchannels: bool,
    /// Set by `+@all` and cleared by any denial: every command, checked without the bitmap.
    allcommands: bool,
    /// Set by `+@all` only: the user may run commands added later (describes as `+@all`).
    future: bool,
    bits: Vec<u64>,
    first_args: BTreeMap<usize, Vec<String>>,
    keys: Vec<KeyPattern>,
    channels: Vec<String>,
}

/// Why a rule was refused: Redis' texts (ACLSetUserStringError).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleError {
    UnknownCommand,
    Syntax,
    KeysAfterAll,
    ChannelsAfterAll,
    NoSuchPassword,
    BadHash,
    FirstArgOfSubcommand,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            RuleError::UnknownCommand => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeysAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelsAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::FirstArgOfSubcommand => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

pub(crate) fn has_spaces(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_whitespace() || b == 0)
}

impl Selector {
    fn new() -> Selector {
        Selector {
            allkeys: false,
            // acl-pubsub-default resetchannels (Redis 7.0's default).
            allchannels: false,
            allcommands: false,
            future: false,
            bits: vec![0; words()],
            first_args: BTreeMap::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    fn bit(&self, id: usize) -> bool {
        self.bits[id / 64] & (1 << (id % 64)) != 0
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if on {
            self.bits[id / 64] |= 1 << (id % 64);
        } else {
            self.bits[id / 64] &= !(1 << (id % 64));
            self.allcommands = false;
        }
    }

    /// `+cmd` / `-cmd`: a container's subcommands follow it.
    fn change(&mut self, id: usize, on: bool) {
        self.set_bit(id, on);
        self.first_args.remove(&id);
        for &child in &registry().entries[id].children {
            self.set_bit(child, on);
        }
    }

    fn set_category(&mut self, bit: u32, on: bool) {
        for (id, e) in registry().entries.iter().enumerate() {
            if e.categories & bit != 0 {
                self.set_bit(id, on);
                self.first_args.remove(&id);
            }
        }
    }

    /// One rule of a selector (ACLSetSelector).
    fn apply(&mut self, op: &str) -> Result<(), RuleError> {
        let lower = op.to_ascii_lowercase();
        match lower.as_str() {
            "allkeys" | "~*" => {
                self.allkeys = true;
                self.keys.clear();
                return Ok(());
            }
            "resetkeys" => {
                self.allkeys = false;
                self.keys.clear();
                return Ok(());
            }
            "allchannels" | "&*" => {
                self.allchannels = true;
                self.channels.clear();
                return Ok(());
            }
            "resetchannels" => {
                self.allchannels = false;
                self.channels.clear();
                return Ok(());
            }
            "allcommands" | "+@all" => {
                self.bits.iter_mut().for_each(|w| *w = u64::MAX);
                self.allcommands = true;
                self.future = true;
                self.first_args.clear();
                return Ok(());
            }
            "nocommands" | "-@all" => {
                self.bits.iter_mut().for_each(|w| *w = 0);
                self.allcommands = false;
                self.future = false;
                self.first_args.clear();
                return Ok(());
            }
            _ => {}
        }
        let bytes = op.as_bytes();
        match bytes.first() {
            Some(b'~') | Some(b'%') => {
                if self.allkeys {
                    return Err(RuleError::KeysAfterAll);
                }
                let (access, pattern) = if bytes[0] == b'%' {
                    let mut access = 0;
                    let mut rest = None;
                    for (i, c) in op.char_indices().skip(1) {
                        match c.to_ascii_uppercase() {
                            'R' if access & READ == 0 => access |= READ,
                            'W' if access & WRITE == 0 => access |= WRITE,
                            '~' => {
                                rest = Some(&op[i + 1..]);
                                break;
                            }
                            _ => return Err(RuleError::Syntax),
                        }
                    }
                    // `%R` with no `~`: Redis reads an empty pattern.
                    (access, rest.unwrap_or(""))
                } else {
                    (READ | WRITE, &op[1..])
                };
                if has_spaces(pattern) {
                    return Err(RuleError::Syntax);
                }
                match self.keys.iter_mut().find(|k| k.pattern == pattern) {
                    Some(k) => k.access |= access,
                    None => self.keys.push(KeyPattern {
                        pattern: pattern.to_string(),
                        access,
                    }),
                }
                self.allkeys = false;
                Ok(())
            }
            Some(b'&') => {
                if self.allchannels {
                    return Err(RuleError::ChannelsAfterAll);
                }
                let pattern = &op[1..];
                if has_spaces(pattern) {
                    return Err(RuleError::Syntax);
                }
                if !self.channels.iter().any(|c| c == pattern) {
                    self.channels.push(pattern.to_string());
                }
                self.allchannels = false;
                Ok(())
            }
            Some(sign @ (b'+' | b'-')) if bytes.get(1) == Some(&b'@') => {
                let bit = category_bit(&op[2..]).ok_or(RuleError::UnknownCommand)?;
                self.set_category(bit, *sign == b'+');
                Ok(())
            }
            Some(b'+') => self.allow(&op[1..]),
            Some(b'-') => {
                let id = lookup_id(&op[1..]).ok_or(RuleError::UnknownCommand)?;
                self.change(id, false);
                Ok(())
            }
            _ => Err(RuleError::Syntax),
        }
    }

    /// `+cmd`, `+cmd|sub`, or `+cmd|first-arg` for a command without subcommands.
    fn allow(&mut self, name: &str) -> Result<(), RuleError> {
        let Some((container, sub)) = name.rsplit_once('|') else {
            let id = lookup_id(name).ok_or(RuleError::UnknownCommand)?;
            self.change(id, true);
            return Ok(());
        };
        let reg = registry();
        let parent = lookup_id(container).ok_or(RuleError::UnknownCommand)?;
        if reg.entries[parent].parent.is_some() {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if !reg.entries[parent].children.is_empty() {
            let id = lookup_id(name).ok_or(RuleError::UnknownCommand)?;
            self.change(id, true);
        } else {
            let list = self.first_args.entry(parent).or_default();
            if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                list.push(sub.to_string());
            }
        }
        Ok(())
    }

    /// Whether the selector lets `spec` run with `args` (ACLSelectorCheckCmd); `keys` are the
    /// positions of its keys in `args`.
    fn check(
        &self,
        id: usize,
        spec: &'static CommandSpec,
        args: &[Bytes],
        keys: &[usize],
    ) -> Result<(), Denied> {
        let reg = registry();
        if !self.allcommands && !spec.has(flag::NO_AUTH) && !self.bit(id) {
            // Allowed with this first argument only?
            let at = if reg.entries[id].parent.is_some() {
                2
            } else {
                1
            };
            let ok = args.len() >= 2
                && self.first_args.get(&id).is_some_and(|list| {
                    args.get(at)
                        .is_some_and(|a| list.iter().any(|f| f.as_bytes().eq_ignore_ascii_case(a)))
                });
            if !ok {
                return Err(Denied::Command);
            }
        }
        if !self.allkeys {
            let access = reg.entries[id].key_access;
            for (n, &pos) in keys.iter().enumerate() {
                let need = key_need(access, n, keys.len());
                let ok = self.keys.iter().any(|k| {
                    k.access & need == need && glob_match(k.pattern.as_bytes(), &args[pos])
                });
                if !ok {
                    return Err(Denied::Key(pos));
                }
            }
        }
        if !self.allchannels {
            for (pos, is_pattern) in channel_positions(spec.name, args) {
                let channel = &args[pos];
                let ok = self.channels.iter().any(|p| {
                    if is_pattern {
                        p.as_bytes() == &channel[..]
                    } else {
                        glob_match(p.as_bytes(), channel)
                    }
                });
                if !ok {
                    return Err(Denied::Channel(pos));
                }
            }
        }
        Ok(())
    }

    /// The command rules, as Redis describes them (ACLDescribeSelectorCommandRules): `+@all`
    /// or `-@all`, then the categories that fit best, then single commands.
    fn describe_commands(&self) -> String {
        let reg = registry();
        let mut rules = String::new();
        let additive = !self.future;
        let mut fake = Selector::new();
        if additive {
            rules.push_str("-@all ");
        } else {
            rules.push_str("+@all ");
            fake.apply("+@all").ok();
        }
        let mut temp = self.clone();
        let mut applied = [false; CATEGORIES.len()];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, name) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let bit = 1u32 << j;
                let (mut on, mut off) = (0, 0);
                for (id, e) in reg.entries.iter().enumerate() {
                    if e.categories & bit != 0 {
                        if temp.bit(id) {
                            on += 1;
                        } else {
                            off += 1;
                        }
                    }
                }
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some((j, *name));
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some((j, name)) = best else { break };
            let bit = 1u32 << j;
            fake.set_category(bit, additive);
            temp.set_category(bit, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(name);
            rules.push(' ');
            applied[j] = true;
        }
        for (id, e) in reg.entries.iter().enumerate() {
            let mine = self.bit(id);
            if mine != fake.bit(id) {
                rules.push(if mine { '+' } else { '-' });
                rules.push_str(&e.full);
                rules.push(' ');
                fake.change(id, mine);
                // A container's change moved its subcommands too; they are fixed below.
            }
            if !mine {
                if let Some(args) = self.first_args.get(&id) {
                    for a in args {
                        rules.push('+');
                        rules.push_str(&e.full);
                        rules.push('|');
                        rules.push_str(a);
                        rules.push(' ');
                    }
                }
            }
        }
        rules.pop();
        rules
    }

    fn describe_keys(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        self.keys
            .iter()
            .map(|k| {
                let prefix = match k.access {
                    READ => "%R~",
                    WRITE => "%W~",
                    _ => "~",
                };
                format!("{prefix}{}", k.pattern)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn describe_channels(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        self.channels
            .iter()
            .map(|c| format!("&{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// As in ACL LIST (ACLDescribeSelector).
    fn describe(&self) -> String {
        let mut out = String::new();
        if self.allkeys {
            out.push_str("~* ");
        } else {
            for k in self.describe_keys().split(' ').filter(|s| !s.is_empty()) {
                out.push_str(k);
                out.push(' ');
            }
        }
        if self.allchannels {
            out.push_str("&* ");
        } else {
            out.push_str("resetchannels ");
            for c in &self.channels {
                out.push('&');
                out.push_str(c);
                out.push(' ');
            }
        }
        out.push_str(&self.describe_commands());
        out
    }

    /// Whether the selector allows everything (the default user's usual state).
    fn unrestricted(&self) -> bool {
        self.allcommands && self.allkeys && self.allchannels
    }
}

/// What a key at position `n` of `count` keys needs, from the command's key specs: the spec of
/// the same position when there is one per key, or all of them together.
/// A key with neither flag (RO without ACCESS, say EXISTS) matches any pattern.
fn key_need(access: &[u8], n: usize, count: usize) -> u8 {
    if access.len() == count {
        access[n]
    } else if access.len() == 1 {
        access[0]
    } else {
        access.iter().fold(0, |a, b| a | b)
    }
}

/// The channel arguments of the pub/sub commands that ACL checks (publish and subscribe), and
/// whether each is a pattern.
fn channel_positions(name: &str, args: &[Bytes]) -> Vec<(usize, bool)> {
    match name {
        "publish" | "spublish" | "mpublish" => vec![(1, false)],
        "subscribe" | "ssubscribe" => (1..args.len()).map(|i| (i, false)).collect(),
        "psubscribe" => (1..args.len()).map(|i| (i, true)).collect(),
        _ => Vec::new(),
    }
}

/// The ACL id of `get` or `config|get` (case-insensitive).
fn lookup_id(name: &str) -> Option<usize> {
    registry().by_name.get(&name.to_ascii_lowercase()).copied()
}

pub fn hash_password(password: &[u8]) -> String {
    hex::encode(Sha256::digest(password))
}

fn valid_hash(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    /// `on` / `off`; a new user has `off` (Redis sets neither flag only before either rule).
    enabled: bool,
    nopass: bool,
    /// None, or `skip-sanitize-payload` (false) / `sanitize-payload` (true).
    sanitize: Option<bool>,
    passwords: Vec<String>,
    /// quarry's own rule `namespace:<name>`: the user works in that Kvrocks namespace, and
    /// without the admin's commands (as the namespace's token would).
    namespace: Option<String>,
    /// The root selector first.
    selectors: Vec<Selector>,
}

impl User {
    fn new(name: &str) -> User {
        User {
            name: name.to_string(),
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            namespace: None,
            selectors: vec![Selector::new()],
        }
    }

    fn default_user() -> User {
        let mut u = User::new("default");
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            u.apply(op).expect("default rules");
        }
        u
    }

    /// One rule (ACLSetUser).
    fn apply(&mut self, op: &str) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        match op.to_ascii_lowercase().as_str() {
            "on" => self.enabled = true,
            "off" => self.enabled = false,
            "skip-sanitize-payload" => self.sanitize = Some(false),
            "sanitize-payload" => self.sanitize = Some(true),
            "nopass" => {
                self.nopass = true;
                self.passwords.clear();
            }
            "resetpass" => {
                self.nopass = false;
                self.passwords.clear();
            }
            "clearselectors" => self.selectors.truncate(1),
            "reset" => {
                for r in [
                    "resetpass",
                    "resetkeys",
                    "resetchannels",
                    "off",
                    "sanitize-payload",
                    "clearselectors",
                    "-@all",
                ] {
                    self.apply(r)?;
                }
            }
            _ => {
                let first = op.as_bytes()[0];
                match first {
                    b'>' | b'#' => {
                        let hash = if first == b'>' {
                            hash_password(&op.as_bytes()[1..])
                        } else if valid_hash(&op[1..]) {
                            op[1..].to_string()
                        } else {
                            return Err(RuleError::BadHash);
                        };
                        if !self.passwords.contains(&hash) {
                            self.passwords.push(hash);
                        }
                        self.nopass = false;
                    }
                    b'<' | b'!' => {
                        let hash = if first == b'<' {
                            hash_password(&op.as_bytes()[1..])
                        } else if valid_hash(&op[1..]) {
                            op[1..].to_string()
                        } else {
                            return Err(RuleError::BadHash);
                        };
                        let at = self
                            .passwords
                            .iter()
                            .position(|p| *p == hash)
                            .ok_or(RuleError::NoSuchPassword)?;
                        self.passwords.remove(at);
                    }
                    _ if op.len() >= 10 && op[..10].eq_ignore_ascii_case("namespace:") => {
                        let name = &op[10..];
                        if has_spaces(name) || name.len() > 255 {
                            return Err(RuleError::Syntax);
                        }
                        self.namespace = (!name.is_empty()).then(|| name.to_string());
                    }
                    b'(' if op.ends_with(')') => {
                        let mut s = Selector::new();
                        for part in crate::scripting::split_config_args(&op[1..op.len() - 1])
                            .ok_or(RuleError::Syntax)?
                        {
                            s.apply(&part)?;
                        }
                        self.selectors.push(s);
                    }
                    _ => self.selectors[0].apply(op)?,
                }
            }
        }
        Ok(())
    }

    pub fn check_password(&self, password: &[u8]) -> bool {
        if !self.enabled {
            return false;
        }
        if self.nopass {
            return true;
        }
        let hash = hash_password(password);
        self.passwords.contains(&hash)
    }

    /// Whether the user may run the command (ACLCheckAllUserCommandPerm): the first selector
    /// that allows it, or the most telling refusal. `keys` are the positions of its keys.
    pub fn check(
        &self,
        id: usize,
        spec: &'static CommandSpec,
        args: &[Bytes],
        keys: &[usize],
    ) -> Result<(), Denied> {
        let mut worst = Denied::Command;
        for s in &self.selectors {
            match s.check(id, spec, args, keys) {
                Ok(()) => return Ok(()),
                Err(d) if d.rank() > worst.rank() => worst = d,
                Err(_) => {}
            }
        }
        Err(worst)
    }

    /// Whether a channel may be used (for the subscriptions of a changed user).
    pub fn unrestricted(&self) -> bool {
        self.selectors.iter().any(Selector::unrestricted)
    }

    /// The user's rules in ACL LIST's form (ACLDescribeUser).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for f in self.flags() {
            out.push_str(f);
            out.push(' ');
        }
        for p in &self.passwords {
            out.push('#');
            out.push_str(p);
            out.push(' ');
        }
        if let Some(ns) = &self.namespace {
            out.push_str("namespace:");
            out.push_str(ns);
            out.push(' ');
        }
        for (i, s) in self.selectors.iter().enumerate() {
            if i == 0 {
                out.push_str(&s.describe());
            } else {
                out.push_str(" (");
                out.push_str(&s.describe());
                out.push(')');
            }
        }
        out
    }

    fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// The namespace the user is confined to (`namespace:<name>`).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

/// ACL SETUSER's arguments with `(...)` selectors joined back (ACLMergeSelectorArguments);
/// Err names the argument that opens an unclosed selector.
pub fn merge_selector_args(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, a) in args.iter().enumerate() {
        if let Some((_, sel)) = open.as_mut() {
            sel.push(' ');
            sel.push_str(a);
            if a.ends_with(')') {
                out.push(open.take().unwrap().1);
            }
            continue;
        }
        if a.starts_with('(') && !a.ends_with(')') {
            open = Some((i, a.clone()));
            continue;
        }
        out.push(a.clone());
    }
    match open {
        Some((i, _)) => Err(args[i].clone()),
        None => Ok(out),
    }
}

/// One ACL LOG entry.
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub at: Instant,
    pub client_info: String,
}

/// The users, the ACL LOG, and a generation that tells connections to look their user up again.
pub struct Acl {
    users: RwLock<BTreeMap<String, Arc<User>>>,
    log: Mutex<VecDeque<LogEntry>>,
    pub generation: AtomicU64,
}

impl Default for Acl {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert("default".to_string(), Arc::new(User::default_user()));
        Acl {
            users: RwLock::new(users),
            log: Mutex::new(VecDeque::new()),
            generation: AtomicU64::new(1),
        }
    }
}

/// `acllog-max-len`'s default.
const LOG_MAX: usize = 128;

impl Acl {
    pub fn user(&self, name: &str) -> Option<Arc<User>> {
        self.users.read().get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<User> {
        self.user("default")
            .expect("the default user always exists")
    }

    pub fn names(&self) -> Vec<String> {
        self.users.read().keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<User>> {
        self.users.read().values().cloned().collect()
    }

    /// ACL SETUSER: every rule is applied to a copy, and the user changes only if all are valid.
    pub fn set_user(&self, name: &str, rules: &[String]) -> Result<(), String> {
        let merged = merge_selector_args(rules)
            .map_err(|at| format!("Unmatched parenthesis in acl selector starting at '{at}'."))?;
        let mut users = self.users.write();
        let mut user = users
            .get(name)
            .map(|u| (**u).clone())
            .unwrap_or_else(|| User::new(name));
        for op in &merged {
            user.apply(op)
                .map_err(|e| format!("Error in ACL SETUSER modifier '{op}': {}", e.text()))?;
        }
        users.insert(name.to_string(), Arc::new(user));
        drop(users);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// ACL DELUSER of the named users that exist; how many went.
    pub fn delete(&self, names: &[String]) -> Vec<String> {
        let mut users = self.users.write();
        let gone: Vec<String> = names
            .iter()
            .filter(|n| users.remove(n.as_str()).is_some())
            .cloned()
            .collect();
        drop(users);
        self.generation.fetch_add(1, Ordering::AcqRel);
        gone
    }

    /// Replaces every user (ACL LOAD, and the config's users at start-up); `default` stays if
    /// the set has none.
    pub fn replace_all(&self, new: BTreeMap<String, User>) {
        let mut users = self.users.write();
        let default = users.get("default").cloned();
        *users = new.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        if !users.contains_key("default") {
            users.insert(
                "default".into(),
                default.unwrap_or_else(|| Arc::new(User::default_user())),
            );
        }
        drop(users);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// `requirepass`: the default user's password (none: `nopass`).
    pub fn set_default_password(&self, password: Option<&str>) {
        let mut users = self.users.write();
        let mut user = users
            .get("default")
            .map(|u| (**u).clone())
            .unwrap_or_else(User::default_user);
        user.apply("resetpass").ok();
        match password {
            Some(p) => user.apply(&format!(">{p}")).ok(),
            None => user.apply("nopass").ok(),
        };
        users.insert("default".into(), Arc::new(user));
        drop(users);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Records a refusal; a repeat of one of the last ten entries counts there instead.
    pub fn log(&self, mut entry: LogEntry) {
        let mut log = self.log.lock();
        let same = log.iter().take(10).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.object == entry.object
                && e.username == entry.username
        });
        if let Some(i) = same {
            let mut old = log.remove(i).expect("found");
            old.count += 1;
            old.at = entry.at;
            old.client_info = std::mem::take(&mut entry.client_info);
            log.push_front(old);
        } else {
            log.push_front(entry);
            log.truncate(LOG_MAX);
        }
    }

    pub fn log_reset(&self) {
        self.log.lock().clear();
    }

    pub fn with_log<T>(&self, f: impl FnOnce(&VecDeque<LogEntry>) -> T) -> T {
        f(&self.log.lock())
    }
}

/// Parses `user <name> <rules...>` lines (of the config file or the aclfile, named `source`)
/// into users. Err holds every problem, in Redis' words, each naming its line.
pub fn parse_user_lines(
    source: &str,
    lines: &[(usize, String)],
) -> Result<BTreeMap<String, User>, String> {
    let mut users = BTreeMap::new();
    let mut errors = String::new();
    for (n, line) in lines {
        let Some(words) = crate::scripting::split_config_args(line) else {
            errors.push_str(&format!("{source}:{n}: unbalanced quotes in acl line. "));
            continue;
        };
        if words.is_empty() {
            continue;
        }
        if !words[0].eq_ignore_ascii_case("user") || words.len() < 2 {
            errors.push_str(&format!(
                "{source}:{n} should start with user keyword followed by the username. "
            ));
            continue;
        }
        let name = &words[1];
        if has_spaces(name) {
            errors.push_str(&format!(
                "'{source}:{n}: username '{name}' contains invalid characters. "
            ));
            continue;
        }
        if users.contains_key(name.as_str()) {
            errors.push_str(&format!(
                "WARNING: Duplicate user '{name}' found on line {n}. "
            ));
            continue;
        }
        let Ok(rules) = merge_selector_args(&words[2..]) else {
            errors.push_str(&format!(
                "{source}:{n}: Unmatched parenthesis in selector definition."
            ));
            continue;
        };
        let mut user = User::new(name);
        for op in &rules {
            if let Err(e) = user.apply(op) {
                errors.push_str(&format!(
                    "{source}:{n}: Error in applying operation '{op}': {}. ",
                    e.text()
                ));
                break;
            }
        }
        users.insert(name.clone(), user);
    }
    if errors.is_empty() {
        Ok(users)
    } else {
        Err(errors)
    }
}

/// What a connection runs as: its user, looked up again whenever the users changed.
pub struct SessionUser {
    pub name: String,
    user: Arc<User>,
    generation: u64,
    /// The user may run anything: the check is skipped.
    unrestricted: bool,
}

impl SessionUser {
    pub fn new(acl: &Acl, name: &str) -> SessionUser {
        let user = acl.user(name).unwrap_or_else(|| acl.default_user());
        SessionUser {
            name: name.to_string(),
            unrestricted: user.unrestricted(),
            user,
            generation: acl.generation.load(Ordering::Acquire),
        }
    }

    /// The current user, or None if it was deleted.
    pub fn current(&mut self, acl: &Acl) -> Option<&Arc<User>> {
        let now = acl.generation.load(Ordering::Acquire);
        if now != self.generation {
            self.user = acl.user(&self.name)?;
            self.unrestricted = self.user.unrestricted();
            self.generation = now;
        }
        Some(&self.user)
    }

    /// Checks a command; Ok at once for a user that may run anything.
    pub fn check(
        &mut self,
        acl: &Acl,
        id: usize,
        spec: &'static CommandSpec,
        args: &[Bytes],
        keys: &[usize],
    ) -> Result<(), Denied> {
        if self.generation == acl.generation.load(Ordering::Acquire) && self.unrestricted {
            return Ok(());
        }
        match self.current(acl) {
            Some(u) => u.check(id, spec, args, keys),
            None => Err(Denied::Command),
        }
    }
}

/// The NOPERM text of a refusal (processCommand).
pub fn noperm_text(denied: Denied, full: &str) -> String {
    match denied {
        Denied::Command => {
            format!("NOPERM this user has no permissions to run the '{full}' command")
        }
        Denied::Key(_) => {
            "NOPERM this user has no permissions to access one of the keys used as arguments".into()
        }
        Denied::Channel(_) => {
            "NOPERM this user has no permissions to access one of the channels used as arguments"
                .into()
        }
    }
}

/// What a script's redis.call gets (getAclErrorMessage).
pub fn script_text(denied: Denied) -> &'static str {
    match denied {
        Denied::Command => "can't run this command or subcommand",
        Denied::Key(_) => {
            "can't access at least one of the keys mentioned in the command arguments"
        }
        Denied::Channel(_) => "can't publish to the channel mentioned in the command",
    }
}

/// Records a refused command in the ACL LOG.
pub fn log_denial(
    server: &crate::server::Server,
    session: &crate::connection::Session,
    denied: Denied,
    id: usize,
    args: &[Bytes],
    context: &'static str,
) {
    let (reason, object) = match denied {
        Denied::Command => ("command", full_name(id).to_string()),
        Denied::Key(p) => ("key", String::from_utf8_lossy(&args[p]).into_owned()),
        Denied::Channel(p) => ("channel", String::from_utf8_lossy(&args[p]).into_owned()),
    };
    server.acl.log(LogEntry {
        count: 1,
        reason,
        context,
        object,
        username: session.user.name.clone(),
        at: Instant::now(),
        client_info: session.handle.describe(),
    });
}

/// At start-up: `requirepass` is the default user's password, then the config's `user` lines
/// or the `aclfile` (not both, as in Redis) define the users.
pub fn load_at_startup(server: &crate::server::Server) -> Result<(), String> {
    server.apply_requirepass();
    let (lines, file) = {
        let cfg = server.config.read();
        (
            cfg.get_multi("user").to_vec(),
            cfg.get("aclfile").to_string(),
        )
    };
    if !lines.is_empty() && !file.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    if !lines.is_empty() {
        let numbered: Vec<(usize, String)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 1, format!("user {l}")))
            .collect();
        let users = parse_user_lines("user directive", &numbered)?;
        let mut all: BTreeMap<String, User> = server
            .acl
            .all()
            .into_iter()
            .map(|u| (u.name.clone(), (*u).clone()))
            .collect();
        all.extend(users);
        server.acl.replace_all(all);
    }
    if !file.is_empty() && std::path::Path::new(&file).exists() {
        command::load_file(server, &file)?;
    }
    server.refresh_auth_required();
    Ok(())
}

/// CONFIG REWRITE without an `aclfile`: the users go to the config as `user` lines, as Redis
/// writes them (only once there is a user besides `default`, so that a kvrocks.conf stays
/// as it was).
pub fn into_config(server: &crate::server::Server) {
    let mut cfg = server.config.write();
    if !cfg.get("aclfile").is_empty() {
        return;
    }
    let users = server.acl.all();
    if users.len() <= 1 && cfg.get_multi("user").is_empty() {
        return;
    }
    let lines = users
        .iter()
        .map(|u| format!("{} {}", u.name, u.describe()))
        .collect();
    cfg.set_multi("user", lines);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(rules: &[&str]) -> User {
        let mut u = User::new("u");
        for r in rules {
            u.apply(r).unwrap();
        }
        u
    }

    #[test]
    fn descriptions_as_redis_prints_them() {
        assert_eq!(User::default_user().describe(), "on nopass ~* &* +@all");
        assert_eq!(User::new("u").describe(), "off resetchannels -@all");
        assert_eq!(
            user(&["on", ">p", "~k*", "+get"]).describe(),
            format!("on #{} ~k* resetchannels -@all +get", hash_password(b"p"))
        );
        assert_eq!(user(&["+@all", "-debug"]).describe_rules(), "+@all -debug");
        assert_eq!(
            user(&["+@all", "-@string"]).describe_rules(),
            "+@all -@string"
        );
        assert_eq!(user(&["-@all", "+@hash"]).describe_rules(), "-@all +@hash");
        assert_eq!(user(&["+select|0"]).describe_rules(), "-@all +select|0");
        assert_eq!(
            user(&["%R~r*", "%W~w*", "%RW~b*"]).selectors[0].describe_keys(),
            "%R~r* %W~w* ~b*"
        );
    }

    impl User {
        fn describe_rules(&self) -> String {
            self.selectors[0].describe_commands()
        }
    }

    #[test]
    fn rules_fail_with_redis_texts() {
        let mut u = user(&["~*"]);
        assert_eq!(u.apply("~a"), Err(RuleError::KeysAfterAll));
        assert_eq!(u.apply("+nosuch"), Err(RuleError::UnknownCommand));
        assert_eq!(u.apply("+@nosuch"), Err(RuleError::UnknownCommand));
        assert_eq!(u.apply("#abc"), Err(RuleError::BadHash));
        assert_eq!(u.apply("<nope"), Err(RuleError::NoSuchPassword));
        assert_eq!(
            u.apply("+config|get|x"),
            Err(RuleError::FirstArgOfSubcommand)
        );
        assert_eq!(u.apply("bogus"), Err(RuleError::Syntax));
        assert_eq!(User::new("v").apply("%X~a"), Err(RuleError::Syntax));
    }
}
