//! Server commands that need only the command table or nothing at all: ECHO, TIME, COMMAND.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quarry_resp::Frame;

use crate::args::is;
use crate::table::{
    flag, has_movable_keys, help_lines, lookup, CommandSpec, COMMANDS, SUBCOMMANDS,
};
use crate::{CmdError, CmdResult, Ctx};

pub fn echo(_ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    Ok(Frame::Bulk(a[1].clone()))
}

pub fn time(_ctx: &mut Ctx<'_>, _a: &[Bytes]) -> CmdResult {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Frame::Array(vec![
        Frame::bulk(now.as_secs().to_string()),
        Frame::bulk(now.subsec_micros().to_string()),
    ]))
}

fn acl_categories(spec: &CommandSpec) -> Vec<Frame> {
    let bits = spec.acl_categories();
    crate::acl_table::CATEGORIES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, c)| Frame::Simple(format!("@{c}")))
        .collect()
}

/// One entry of COMMAND INFO, in Redis 7's ten-field shape.
fn info_entry(spec: &CommandSpec) -> Frame {
    let mut flags: Vec<Frame> = flag::NAMES
        .iter()
        .filter(|(f, _)| spec.has(*f))
        .map(|(_, n)| Frame::Simple((*n).into()))
        .collect();
    if has_movable_keys(spec.name) {
        flags.push(Frame::Simple("movablekeys".into()));
    }
    Frame::Array(vec![
        Frame::bulk(spec.name),
        Frame::Integer(spec.arity as i64),
        Frame::Set(flags),
        Frame::Integer(spec.first_key as i64),
        Frame::Integer(spec.last_key as i64),
        Frame::Integer(spec.step as i64),
        Frame::Set(acl_categories(spec)),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
        Frame::Array(Vec::new()),
    ])
}

fn docs_entry(spec: &CommandSpec) -> Frame {
    Frame::Map(vec![
        (Frame::bulk("summary"), Frame::bulk(spec.summary)),
        (Frame::bulk("since"), Frame::bulk(spec.since)),
        (Frame::bulk("group"), Frame::bulk(spec.group)),
    ])
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands in this server.",
    "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    "    Return a list of all commands in this server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "GETKEYS <full-command>",
    "    Return the keys from a full command.",
    "HELP",
    "    Print this help.",
];

/// COMMAND [COUNT | LIST | INFO [name ...] | DOCS [name ...] | GETKEYS cmd args... | HELP]
pub fn command(_ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() == 1 {
        return Ok(Frame::Array(COMMANDS.iter().map(info_entry).collect()));
    }
    let sub = &a[1];
    if is(sub, "COUNT") && a.len() == 2 {
        Ok(Frame::Integer(COMMANDS.len() as i64))
    } else if is(sub, "LIST") {
        list(a)
    } else if is(sub, "INFO") {
        if a.len() == 2 {
            return Ok(Frame::Array(COMMANDS.iter().map(info_entry).collect()));
        }
        Ok(Frame::Array(
            a[2..]
                .iter()
                .map(|n| lookup(n).map_or(Frame::NullArray, info_entry))
                .collect(),
        ))
    } else if is(sub, "DOCS") {
        let specs: Vec<&CommandSpec> = if a.len() == 2 {
            COMMANDS.iter().collect()
        } else {
            a[2..].iter().filter_map(|n| lookup(n)).collect()
        };
        Ok(Frame::Map(
            specs
                .into_iter()
                .map(|s| (Frame::bulk(s.name), docs_entry(s)))
                .collect(),
        ))
    } else if (is(sub, "GETKEYS") && a.len() >= 3) || (is(sub, "GETKEYSANDFLAGS") && a.len() >= 4) {
        let with_flags = is(sub, "GETKEYSANDFLAGS");
        let spec = lookup(&a[2]).ok_or_else(|| CmdError::err("Invalid command specified"))?;
        let argv = &a[2..];
        if !spec.arity_ok(argv.len()) {
            return Err(CmdError::err(
                "Invalid number of arguments specified for command",
            ));
        }
        // MEMORY USAGE key: the one container whose subcommand names a key.
        let pos = if spec.name == "memory" && is(&argv[1], "USAGE") && argv.len() >= 3 {
            vec![2]
        } else {
            crate::table::command_keys(spec, argv)
        };
        // A command that may have keys (EVAL ... 0) answers an empty list when it has none.
        if pos.is_empty() && !has_movable_keys(spec.name) {
            return Err(CmdError::err("The command has no key arguments"));
        }
        if with_flags {
            return Ok(Frame::Array(
                pos.into_iter()
                    .map(|p| {
                        let flags = key_flags(spec, argv, p)
                            .into_iter()
                            .map(|f| Frame::Simple(f.into()))
                            .collect();
                        Frame::Array(vec![Frame::Bulk(argv[p].clone()), Frame::Set(flags)])
                    })
                    .collect(),
            ));
        }
        Ok(Frame::Array(
            pos.into_iter()
                .map(|p| Frame::Bulk(argv[p].clone()))
                .collect(),
        ))
    } else if is(sub, "HELP") && a.len() == 2 {
        Ok(help_lines(COMMAND_HELP))
    } else {
        Err(CmdError::WrongArity(format!(
            "command|{}",
            crate::args::lower(sub)
        )))
    }
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: commands and
/// their subcommands (`container|sub`), as Redis 7 lists them. No module exists here.
fn list(a: &[Bytes]) -> CmdResult {
    enum Filter<'a> {
        All,
        Module,
        Category(String),
        Pattern(&'a [u8]),
    }
    let filter = match a.len() {
        2 => Filter::All,
        5 if is(&a[2], "FILTERBY") => {
            if is(&a[3], "MODULE") {
                Filter::Module
            } else if is(&a[3], "ACLCAT") {
                Filter::Category(format!("@{}", crate::args::lower(&a[4])))
            } else if is(&a[3], "PATTERN") {
                Filter::Pattern(&a[4])
            } else {
                return Err(CmdError::Syntax);
            }
        }
        _ => return Err(CmdError::Syntax),
    };
    // Each name with its ACL categories (a subcommand's are its own).
    let mut names: Vec<(String, u32)> = Vec::new();
    for spec in COMMANDS.iter() {
        names.push((spec.name.to_string(), spec.acl_categories()));
        for (container, sub, _) in SUBCOMMANDS.iter().filter(|(c, _, _)| *c == spec.name) {
            names.push((
                format!("{container}|{sub}"),
                crate::table::subcommand_acl_categories(spec, sub),
            ));
        }
    }
    let keep = |name: &str, bits: &u32| match &filter {
        Filter::All => true,
        Filter::Module => false,
        Filter::Category(cat) => crate::acl_table::CATEGORIES
            .iter()
            .position(|c| cat.strip_prefix('@') == Some(*c))
            .is_some_and(|i| bits & (1 << i) != 0),
        Filter::Pattern(p) => quarry_types::glob::glob_match_nocase(p, name.as_bytes()),
    };
    Ok(Frame::Array(
        names
            .into_iter()
            .filter(|(n, s)| keep(n, s))
            .map(|(n, _)| Frame::bulk(n))
            .collect(),
    ))
}

/// The key-spec flags of the key at `pos` of `argv` (COMMAND GETKEYSANDFLAGS): those of the
/// spec whose keys begin last at or before it (an index, or the argument after a keyword),
/// else of the last spec (SORT's and GEORADIUS' STORE). Commands Redis does not have take
/// theirs from the command's flags.
fn key_flags(spec: &CommandSpec, argv: &[Bytes], pos: usize) -> Vec<&'static str> {
    let full = if spec.name == "memory" {
        "memory|usage"
    } else {
        spec.name
    };
    let Some(specs) = crate::acl_table::KEY_SPECS
        .binary_search_by(|(n, _)| (*n).cmp(full))
        .ok()
        .map(|i| crate::acl_table::KEY_SPECS[i].1)
    else {
        return if spec.has(crate::table::flag::WRITE) {
            vec!["RW", "access", "update"]
        } else {
            vec!["RO", "access"]
        };
    };
    let begin = |ks: &crate::acl_table::KeySpec| -> Option<usize> {
        if ks.index > 0 {
            return Some(ks.index as usize);
        }
        if ks.keyword.is_empty() {
            return None;
        }
        let matches = |i: &usize| argv[*i].eq_ignore_ascii_case(ks.keyword.as_bytes());
        let found = if ks.startfrom >= 0 {
            (ks.startfrom as usize..argv.len()).find(matches)
        } else {
            let from = argv.len() as i64 + ks.startfrom as i64;
            (0..=from.max(0) as usize).rev().find(matches)
        };
        found.map(|k| k + 1)
    };
    let chosen = specs
        .iter()
        .filter_map(|ks| begin(ks).filter(|&b| b <= pos).map(|b| (b, ks)))
        .max_by_key(|(b, _)| *b)
        .map(|(_, ks)| ks);
    // Specs Redis cannot place (SORT's and GEORADIUS' STORE key) hold the keys that no index
    // spec starts at.
    let unplaced = specs.iter().any(|s| s.index == 0 && s.keyword.is_empty());
    let ks = match chosen {
        Some(ks) if !(unplaced && ks.keyword.is_empty() && ks.index as usize != pos) => ks,
        _ => specs.last().expect("a spec"),
    };
    if ks.flags.contains(&"variable_flags") {
        // Redis works these out from the arguments, as its getkeys procedures do.
        let has = |word: &str| {
            argv[2..]
                .iter()
                .any(|x| x.eq_ignore_ascii_case(word.as_bytes()))
        };
        return match spec.name {
            "set" if !has("get") => vec!["OW", "update"],
            "bitfield" if !has("set") && !has("incrby") => vec!["RO", "access"],
            _ => vec!["RW", "access", "update"],
        };
    }
    ks.flags
        .iter()
        .copied()
        .filter(|f| *f != "incomplete")
        .collect()
}
