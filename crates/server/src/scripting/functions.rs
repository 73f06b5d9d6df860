//! FUNCTION libraries: `#!lua name=<lib>` code whose top level calls
//! `redis.register_function`. A library's code is stored in RocksDB's propagate column family
//! under Kvrocks' keys (`lua_lib_code_<lib>`, and `lua_func_lib_<function>` → library), so that
//! replicas and restarts have it; what a code registers is worked out by running it, once per
//! distinct code, and each thread compiles the libraries it calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use mlua::{Function, Value};
use parking_lot::RwLock;
use quarry_commands::table::help_lines;
use quarry_commands::CmdError;
use quarry_resp::Frame;
use quarry_storage::rocksdb::{Direction, IteratorMode, ReadOptions};
use quarry_storage::{ColumnFamily, WriteBatch, WriteOrigin};

use super::vm::{self, Vm};
use crate::server::{Server, Storage};

const LIB_CODE_PREFIX: &str = "lua_lib_code_";
const FUNC_LIB_PREFIX: &str = "lua_func_lib_";
pub const KNOWN_FLAGS: &[&str] = &[
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];

#[derive(Clone, Debug)]
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<String>,
    pub flags: Vec<String>,
}

/// What a library's code registers.
#[derive(Clone, Debug)]
pub struct LibraryInfo {
    pub name: String,
    pub functions: Vec<FunctionInfo>,
}

/// A function FCALL found: its library's code and its flags.
pub struct Resolved {
    pub name: String,
    pub library: String,
    pub code: Arc<str>,
    pub flags: Vec<String>,
}

#[derive(Default)]
pub struct Functions {
    /// Parsed libraries by the SHA1 of their code.
    parsed: RwLock<HashMap<String, Arc<LibraryInfo>>>,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Words as Redis' sdssplitargs reads them: separated by blanks, with "double-quoted" (with
/// backslash escapes) and 'single-quoted' parts; None when a quote is not closed or is
/// followed by something other than a blank.
pub(crate) fn split_args(line: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_whitespace() => break,
                '"' | '\'' => {
                    let quote = c;
                    loop {
                        match chars.next()? {
                            '\\' if quote == '"' => match chars.next()? {
                                'n' => word.push('\n'),
                                'r' => word.push('\r'),
                                't' => word.push('\t'),
                                other => word.push(other),
                            },
                            '\\' if chars.peek() == Some(&'\'') => {
                                chars.next();
                                word.push('\'');
                            }
                            c if c == quote => break,
                            other => word.push(other),
                        }
                    }
                    if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                        return None;
                    }
                }
                other => word.push(other),
            }
        }
        out.push(word);
    }
}

/// The library name from the `#!lua name=<lib>` line, and the code with that line blanked
/// (Lua does not skip it in a string chunk; the newline keeps line numbers right).
fn metadata(code: &str) -> Result<(String, String), CmdError> {
    if !code.starts_with("#!") {
        return Err(CmdError::err("Missing library metadata"));
    }
    let Some((line, body)) = code.split_once('\n') else {
        return Err(CmdError::err("Invalid library metadata"));
    };
    let parts = split_args(line).ok_or_else(|| CmdError::err("Invalid library metadata"))?;
    let mut parts = parts.into_iter();
    let engine = parts.next().unwrap_or_default();
    let engine = engine.strip_prefix("#!").unwrap_or(&engine).to_string();
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(n) if name.is_none() => name = Some(n.to_string()),
            Some(_) => {
                return Err(CmdError::err(
                    "Invalid metadata value, name argument was given multiple times",
                ))
            }
            None => return Err(CmdError::err(format!("Invalid metadata value given: {p}"))),
        }
    }
    let name = name.ok_or_else(|| CmdError::err("Library name was not given"))?;
    if !valid_name(&name) {
        return Err(CmdError::err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(CmdError::err(format!("Engine '{engine}' not found")));
    }
    Ok((name, format!("\n{body}")))
}

/// Runs a library's code in `vm` and collects what it registers.
fn load(vm: &Vm, code: &str) -> Result<(LibraryInfo, Vec<(String, Function)>), CmdError> {
    let (name, body) = metadata(code)?;
    let lua = &vm.lua;
    let chunk = lua
        .load(body.as_str())
        .set_name("@user_function")
        .set_environment(vm.fenv.clone())
        .into_function()
        .map_err(|e| {
            CmdError::err(format!(
                "Error compiling function: {}",
                vm::lua_error_text(&e)
            ))
        })?;
    let registered: std::cell::RefCell<Vec<(FunctionInfo, Function)>> = Default::default();
    let result = lua.scope(|scope| {
        let register = scope.create_function(|_, args: mlua::MultiValue| {
            let (info, f) = registration(args)?;
            let mut all = registered.borrow_mut();
            if all
                .iter()
                .any(|(i, _)| i.name.eq_ignore_ascii_case(&info.name))
            {
                return Err(mlua::Error::RuntimeError(
                    "Function already exists in the library".into(),
                ));
            }
            all.push((info, f));
            Ok(())
        })?;
        vm.redis.raw_set("__register", register)?;
        vm.set_loading.call::<()>(true)?;
        vm::LOAD_DEADLINE.with(|d| d.set(Some(std::time::Instant::now() + vm::LOAD_TIMEOUT)));
        let r = chunk.call::<()>(());
        vm::LOAD_DEADLINE.with(|d| d.set(None));
        vm.set_loading.call::<()>(false)?;
        vm.redis.raw_set("__register", Value::Nil)?;
        r
    });
    result.map_err(|e| {
        CmdError::err(format!(
            "Error registering functions: {}",
            vm::lua_error_text(&e)
        ))
    })?;
    let registered = registered.into_inner();
    if registered.is_empty() {
        return Err(CmdError::err("No functions registered"));
    }
    let info = LibraryInfo {
        name,
        functions: registered.iter().map(|(i, _)| i.clone()).collect(),
    };
    let functions = registered.into_iter().map(|(i, f)| (i.name, f)).collect();
    Ok((info, functions))
}

/// The arguments of redis.register_function: `(name, callback)` or a table.
fn registration(args: mlua::MultiValue) -> mlua::Result<(FunctionInfo, Function)> {
    let fail = |m: &str| mlua::Error::RuntimeError(m.to_string());
    let args: Vec<Value> = args.into_iter().collect();
    let (name, callback, description, flags) = match args.as_slice() {
        [Value::Table(t)] => {
            let mut name = None;
            let mut callback = None;
            let mut description = None;
            let mut flags = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                let Value::String(k) = k else {
                    return Err(fail(
                        "named argument key given to redis.register_function is not a string",
                    ));
                };
                match (&*k.to_string_lossy(), v) {
                    ("function_name", Value::String(s)) => {
                        name = Some(s.to_str()?.to_string())
                    }
                    ("function_name", _) => {
                        return Err(fail("function_name argument given to redis.register_function must be a string"))
                    }
                    ("callback", Value::Function(f)) => callback = Some(f),
                    ("callback", _) => {
                        return Err(fail("callback argument given to redis.register_function must be a function"))
                    }
                    ("description", Value::String(s)) => {
                        description = Some(s.to_str()?.to_string())
                    }
                    ("description", _) => {
                        return Err(fail("description argument given to redis.register_function must be a string"))
                    }
                    ("flags", Value::Table(ft)) => {
                        for f in ft.sequence_values::<Value>() {
                            let known = match f? {
                                Value::String(f) => {
                                    let f = f.to_string_lossy();
                                    KNOWN_FLAGS.contains(&&*f).then_some(f)
                                }
                                _ => None,
                            };
                            let Some(f) = known else {
                                return Err(fail("unknown flag given"));
                            };
                            flags.push(f.to_string());
                        }
                    }
                    ("flags", _) => {
                        return Err(fail("flags argument to redis.register_function must be a table representing function flags"))
                    }
                    _ => {
                        return Err(fail(
                            "unknown argument given to redis.register_function",
                        ))
                    }
                }
            }
            let name = name
                .ok_or_else(|| fail("redis.register_function must get a function name argument"))?;
            let callback = callback
                .ok_or_else(|| fail("redis.register_function must get a callback argument"))?;
            (name, callback, description, flags)
        }
        [Value::String(n), Value::Function(f)] => {
            (n.to_str()?.to_string(), f.clone(), None, Vec::new())
        }
        [Value::String(_), _] => {
            return Err(fail(
                "second argument to redis.register_function must be a function",
            ))
        }
        [_, _] => {
            return Err(fail(
                "first argument to redis.register_function must be a string",
            ))
        }
        [_] => return Err(fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")),
        _ => return Err(fail("wrong number of arguments to redis.register_function")),
    };
    if !valid_name(&name) {
        // Redis 7.0 says "Library" here too.
        return Err(fail("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    Ok((
        FunctionInfo {
            name,
            description,
            flags,
        },
        callback,
    ))
}

fn get(storage: &Storage, key: String) -> Option<String> {
    let raw = super::propagate_get(storage, &key)?;
    Some(String::from_utf8_lossy(&raw).to_string())
}

/// The propagate column family's records under `prefix`: (the key after the prefix, value).
fn records_under<'a>(
    storage: &'a Storage,
    prefix: &'a str,
) -> impl Iterator<Item = (String, String)> + 'a {
    let mut opts = ReadOptions::default();
    if let Some(end) = quarry_storage::encoding::prefix_successor(prefix.as_bytes()) {
        opts.set_iterate_upper_bound(end);
    }
    storage
        .engine
        .db()
        .iterator_cf_opt(
            storage.engine.cf(ColumnFamily::Propagate),
            opts,
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        )
        .flatten()
        .map(move |(k, v)| {
            (
                String::from_utf8_lossy(&k[prefix.len()..]).to_string(),
                String::from_utf8_lossy(&v).to_string(),
            )
        })
}

/// All stored libraries' code, by name.
fn stored_libraries(storage: &Storage, scope: &str) -> BTreeMap<String, String> {
    let prefix = format!("{scope}{LIB_CODE_PREFIX}");
    records_under(storage, &prefix).collect()
}

/// The library of the function named `name` in another case (only when the exact name is not
/// stored: a walk over the function records).
fn library_of_any_case(storage: &Storage, scope: &str, name: &str) -> Option<String> {
    let prefix = format!("{scope}{FUNC_LIB_PREFIX}");
    let found = records_under(storage, &prefix)
        .find(|(function, _)| function.eq_ignore_ascii_case(name))
        .map(|(_, library)| library);
    found
}

/// What `code` registers, parsed once per distinct code.
fn library_info(server: &Server, code: &str) -> Result<Arc<LibraryInfo>, CmdError> {
    let scripting = &server.scripting;
    let sha = super::sha1_hex(code.as_bytes());
    if let Some(i) = scripting.functions.parsed.read().get(&sha) {
        return Ok(i.clone());
    }
    let generation = scripting
        .generation
        .load(std::sync::atomic::Ordering::Acquire);
    let info = vm::with_vm(generation, &scripting.lua_memory, |vm| {
        load(vm, code).map(|(i, _)| i)
    })
    .map_err(CmdError::Other)??;
    let info = Arc::new(info);
    scripting.functions.parsed.write().insert(sha, info.clone());
    Ok(info)
}

impl Functions {
    /// The function `name` of the namespace whose records start with `scope`.
    pub fn resolve(
        &self,
        server: &Server,
        storage: &Storage,
        scope: &str,
        name: &str,
    ) -> Result<Resolved, CmdError> {
        let not_found = || CmdError::err("Function not found");
        // Function names are case-insensitive, as in Redis; the stored key keeps the case the
        // function was registered with.
        let library = get(storage, format!("{scope}{FUNC_LIB_PREFIX}{name}"))
            .or_else(|| library_of_any_case(storage, scope, name))
            .ok_or_else(not_found)?;
        let code =
            get(storage, format!("{scope}{LIB_CODE_PREFIX}{library}")).ok_or_else(not_found)?;
        let info = library_info(server, &code)?;
        let f = info
            .functions
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(not_found)?;
        Ok(Resolved {
            name: f.name.clone(),
            library,
            code: Arc::from(code.as_str()),
            flags: f.flags.clone(),
        })
    }
}

/// The function `r` on this thread's Lua state, loading its library there if needed.
pub fn function(
    vm: &mut Vm,
    _server: &Server,
    _storage: &Storage,
    r: &Resolved,
) -> Result<Function, CmdError> {
    let fresh = vm
        .libraries
        .get(&r.library)
        .is_none_or(|(code, _)| **code != *r.code);
    if fresh {
        let (_, functions) = load(vm, &r.code)?;
        let mut keys = HashMap::new();
        for (name, f) in functions {
            let key = vm
                .lua
                .create_registry_value(f)
                .map_err(|e| CmdError::err(e.to_string()))?;
            keys.insert(name, key);
        }
        vm.libraries
            .insert(r.library.clone(), (r.code.clone(), keys));
    }
    let (_, keys) = &vm.libraries[&r.library];
    let key = keys
        .get(&r.name)
        .ok_or_else(|| CmdError::err("Function not found"))?;
    vm.lua
        .registry_value::<Function>(key)
        .map_err(|e| CmdError::err(e.to_string()))
}

fn write(storage: &Storage, batch: WriteBatch) -> Result<(), CmdError> {
    storage
        .engine
        .write(batch, WriteOrigin::Local)
        .map_err(CmdError::from)
}

/// Stages the removal of a library and its function names.
fn stage_delete(storage: &Storage, scope: &str, batch: &mut WriteBatch, info: &LibraryInfo) {
    let cf = storage.engine.cf(ColumnFamily::Propagate);
    batch.delete_cf(cf, format!("{scope}{LIB_CODE_PREFIX}{}", info.name));
    for f in &info.functions {
        batch.delete_cf(cf, format!("{scope}{FUNC_LIB_PREFIX}{}", f.name));
    }
}

/// Checks and stages a library. `replace`: an existing library of that name is replaced.
fn stage_load(
    server: &Server,
    storage: &Storage,
    scope: &str,
    batch: &mut WriteBatch,
    code: &str,
    replace: bool,
    pending: &mut HashMap<String, String>,
) -> Result<String, CmdError> {
    let info = library_info(server, code)?;
    let old = get(storage, format!("{scope}{LIB_CODE_PREFIX}{}", info.name))
        .or_else(|| pending.get(&info.name).cloned());
    if let Some(old) = &old {
        if !replace {
            return Err(CmdError::err(format!(
                "Library '{}' already exists",
                info.name
            )));
        }
        let old_info = library_info(server, old)?;
        stage_delete(storage, scope, batch, &old_info);
    }
    for f in &info.functions {
        let owner = get(storage, format!("{scope}{FUNC_LIB_PREFIX}{}", f.name))
            .or_else(|| library_of_any_case(storage, scope, &f.name));
        if let Some(owner) = owner {
            if owner != info.name {
                return Err(CmdError::err(format!("Function {} already exists", f.name)));
            }
        }
    }
    let cf = storage.engine.cf(ColumnFamily::Propagate);
    batch.put_cf(cf, format!("{scope}{LIB_CODE_PREFIX}{}", info.name), code);
    for f in &info.functions {
        batch.put_cf(
            cf,
            format!("{scope}{FUNC_LIB_PREFIX}{}", f.name),
            &info.name,
        );
    }
    pending.insert(info.name.clone(), code.to_string());
    Ok(info.name.clone())
}

fn stage_flush(storage: &Storage, scope: &str, batch: &mut WriteBatch) {
    let cf = storage.engine.cf(ColumnFamily::Propagate);
    for prefix in [LIB_CODE_PREFIX, FUNC_LIB_PREFIX] {
        let begin = format!("{scope}{prefix}").into_bytes();
        let end = quarry_storage::encoding::prefix_successor(&begin).unwrap_or_default();
        batch.delete_range_cf(cf, begin, end);
    }
}

/// A FUNCTION DUMP payload: a tag, then each library's code with its length, then a checksum.
const DUMP_TAG: &[u8] = b"QFUNC1";

fn dump(libraries: &BTreeMap<String, String>) -> Vec<u8> {
    let mut out = DUMP_TAG.to_vec();
    for code in libraries.values() {
        out.extend_from_slice(&(code.len() as u32).to_le_bytes());
        out.extend_from_slice(code.as_bytes());
    }
    let sum = sha1_smol::Sha1::from(&out).digest().bytes();
    out.extend_from_slice(&sum[..8]);
    out
}

fn undump(payload: &[u8]) -> Option<Vec<String>> {
    let body = payload.strip_prefix(DUMP_TAG)?;
    if body.len() < 8 {
        return None;
    }
    let (data, sum) = payload.split_at(payload.len() - 8);
    if sha1_smol::Sha1::from(data).digest().bytes()[..8] != *sum {
        return None;
    }
    let mut rest = &body[..body.len() - 8];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let code = rest.get(4..4 + len)?;
        out.push(String::from_utf8(code.to_vec()).ok()?);
        rest = &rest[4 + len..];
    }
    Some(out)
}

fn glob(pattern: &str, name: &str) -> bool {
    quarry_types::glob::glob_match(pattern.as_bytes(), name.as_bytes())
}

/// Redis' addReplySubcommandSyntaxError for FUNCTION, naming the subcommand as sent.
fn subcommand_syntax_error(sub: &[u8]) -> CmdError {
    CmdError::err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
        String::from_utf8_lossy(sub)
    ))
}

/// FUNCTION LOAD | DELETE | LIST | FLUSH | DUMP | RESTORE | KILL | STATS | HELP.
/// FUNCTION, on the libraries of the namespace whose records start with `scope`.
pub fn command(server: &Server, scope: &str, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = String::from_utf8_lossy(&a[1]).to_ascii_lowercase();
    if sub == "kill" {
        return server.scripting.kill(true);
    }
    if sub == "help" {
        return Ok(help_lines(&[
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "DELETE <LIBRARY NAME>",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "FLUSH [ASYNC|SYNC]",
            "DUMP",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "KILL",
            "STATS",
            "HELP",
        ]));
    }
    let storage = server.storage().ok_or(CmdError::Loading)?;
    match sub.as_str() {
        "load" => {
            let mut replace = false;
            let mut i = 2;
            while i + 1 < a.len() {
                if a[i].eq_ignore_ascii_case(b"replace") {
                    replace = true;
                } else {
                    return Err(CmdError::err(format!(
                        "Unknown option given: {}",
                        String::from_utf8_lossy(&a[i])
                    )));
                }
                i += 1;
            }
            let Some(code) = a.get(i).filter(|_| i == a.len() - 1) else {
                return Err(CmdError::err("Function code is missing"));
            };
            let code = String::from_utf8_lossy(code).to_string();
            let mut batch = WriteBatch::default();
            let name = stage_load(
                server,
                &storage,
                scope,
                &mut batch,
                &code,
                replace,
                &mut HashMap::new(),
            )?;
            write(&storage, batch)?;
            Ok(Frame::bulk(name))
        }
        "delete" => {
            if a.len() != 3 {
                return Err(CmdError::WrongArity("function|delete".into()));
            }
            let name = String::from_utf8_lossy(&a[2]).to_string();
            let code = get(&storage, format!("{scope}{LIB_CODE_PREFIX}{name}"))
                .ok_or_else(|| CmdError::err("Library not found"))?;
            let info = library_info(server, &code)?;
            let mut batch = WriteBatch::default();
            stage_delete(&storage, scope, &mut batch, &info);
            write(&storage, batch)?;
            Ok(Frame::ok())
        }
        "flush" => {
            if a.len() > 3 {
                return Err(subcommand_syntax_error(&a[1]));
            }
            if a.len() == 3
                && !(a[2].eq_ignore_ascii_case(b"async") || a[2].eq_ignore_ascii_case(b"sync"))
            {
                return Err(CmdError::err(
                    "FUNCTION FLUSH only supports SYNC|ASYNC option",
                ));
            }
            let mut batch = WriteBatch::default();
            stage_flush(&storage, scope, &mut batch);
            write(&storage, batch)?;
            Ok(Frame::ok())
        }
        "list" => {
            let mut pattern: Option<String> = None;
            let mut with_code = false;
            let mut i = 2;
            while i < a.len() {
                if a[i].eq_ignore_ascii_case(b"withcode") && !with_code {
                    with_code = true;
                } else if a[i].eq_ignore_ascii_case(b"libraryname") && pattern.is_none() {
                    let Some(p) = a.get(i + 1) else {
                        return Err(CmdError::err("library name argument was not given"));
                    };
                    pattern = Some(String::from_utf8_lossy(p).to_string());
                    i += 1;
                } else {
                    return Err(CmdError::err(format!(
                        "Unknown argument {}",
                        String::from_utf8_lossy(&a[i])
                    )));
                }
                i += 1;
            }
            let mut out = Vec::new();
            for (name, code) in stored_libraries(&storage, scope) {
                if pattern.as_deref().is_some_and(|p| !glob(p, &name)) {
                    continue;
                }
                let info = library_info(server, &code)?;
                let functions = info
                    .functions
                    .iter()
                    .map(|f| {
                        Frame::Map(vec![
                            (Frame::bulk("name"), Frame::bulk(f.name.clone())),
                            (
                                Frame::bulk("description"),
                                f.description.clone().map_or(Frame::Null, Frame::bulk),
                            ),
                            (
                                Frame::bulk("flags"),
                                Frame::Set(
                                    f.flags.iter().map(|x| Frame::bulk(x.clone())).collect(),
                                ),
                            ),
                        ])
                    })
                    .collect();
                let mut lib = vec![
                    (Frame::bulk("library_name"), Frame::bulk(name.clone())),
                    (Frame::bulk("engine"), Frame::bulk("LUA")),
                    (Frame::bulk("functions"), Frame::Array(functions)),
                ];
                if with_code {
                    lib.push((Frame::bulk("library_code"), Frame::bulk(code.clone())));
                }
                out.push(Frame::Map(lib));
            }
            Ok(Frame::Array(out))
        }
        "dump" => Ok(Frame::bulk(dump(&stored_libraries(&storage, scope)))),
        "restore" => {
            if a.len() > 4 {
                return Err(subcommand_syntax_error(&a[1]));
            }
            let policy = a
                .get(3)
                .map(|p| String::from_utf8_lossy(p).to_ascii_lowercase())
                .unwrap_or_else(|| "append".into());
            if !matches!(policy.as_str(), "flush" | "append" | "replace") {
                return Err(CmdError::err(
                    "Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
                ));
            }
            let codes = undump(&a[2])
                .ok_or_else(|| CmdError::err("DUMP payload version or checksum are wrong"))?;
            let mut batch = WriteBatch::default();
            let mut pending = HashMap::new();
            if policy == "flush" {
                stage_flush(&storage, scope, &mut batch);
                // The flush is staged, not applied: the checks below must not see the old ones.
                for code in &codes {
                    let info = library_info(server, code)?;
                    let cf = storage.engine.cf(ColumnFamily::Propagate);
                    batch.put_cf(
                        cf,
                        format!("{scope}{LIB_CODE_PREFIX}{}", info.name),
                        code.as_str(),
                    );
                    for f in &info.functions {
                        batch.put_cf(
                            cf,
                            format!("{scope}{FUNC_LIB_PREFIX}{}", f.name),
                            &info.name,
                        );
                    }
                }
            } else {
                for code in &codes {
                    stage_load(
                        server,
                        &storage,
                        scope,
                        &mut batch,
                        code,
                        policy == "replace",
                        &mut pending,
                    )
                    .map_err(|e| match e {
                        CmdError::Other(m) if m.contains("' already exists") => {
                            CmdError::Other(m.replace('\'', ""))
                        }
                        other => other,
                    })?;
                }
            }
            write(&storage, batch)?;
            Ok(Frame::ok())
        }
        "stats" => {
            let libs = stored_libraries(&storage, scope);
            let mut functions = 0;
            for code in libs.values() {
                functions += library_info(server, code)?.functions.len();
            }
            Ok(Frame::Map(vec![
                (
                    Frame::bulk("running_script"),
                    server.scripting.running_script(),
                ),
                (
                    Frame::bulk("engines"),
                    Frame::Map(vec![(
                        Frame::bulk("LUA"),
                        Frame::Map(vec![
                            (
                                Frame::bulk("libraries_count"),
                                Frame::Integer(libs.len() as i64),
                            ),
                            (
                                Frame::bulk("functions_count"),
                                Frame::Integer(functions as i64),
                            ),
                        ]),
                    )]),
                ),
            ]))
        }
        _ => Err(CmdError::err(format!(
            "unknown subcommand '{sub}'. Try FUNCTION HELP."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_line_and_its_errors() {
        let (name, body) = metadata("#!lua name=mylib\nreturn 1").unwrap();
        assert_eq!(name, "mylib");
        assert_eq!(body, "\nreturn 1");
        assert!(metadata("return 1").is_err());
        assert!(metadata("#!lua\n")
            .unwrap_err()
            .to_string()
            .contains("not given"));
        assert!(metadata("#!js name=x\n")
            .unwrap_err()
            .to_string()
            .contains("Engine 'js'"));
        assert!(metadata("#!lua name=a-b\n")
            .unwrap_err()
            .to_string()
            .contains("Library names"));
    }

    #[test]
    fn dump_round_trips_and_rejects_damage() {
        let mut libs = BTreeMap::new();
        libs.insert("a".to_string(), "#!lua name=a\nx".to_string());
        libs.insert("b".to_string(), "#!lua name=b\ny".to_string());
        let payload = dump(&libs);
        assert_eq!(undump(&payload).unwrap().len(), 2);
        let mut bad = payload.clone();
        bad[8] ^= 1;
        assert!(undump(&bad).is_none());
    }

    #[test]
    fn shebang_words_are_read_as_redis_splits_them() {
        assert_eq!(
            split_args("#!lua name=\"foo\" x='a b'").unwrap(),
            ["#!lua", "name=foo", "x=a b"]
        );
        assert_eq!(split_args("#! name=test").unwrap(), ["#!", "name=test"]);
        assert_eq!(split_args("  ").unwrap(), Vec::<String>::new());
        assert!(split_args("name=\"foo").is_none(), "unclosed");
        assert!(
            split_args("name=\"foo\"bar").is_none(),
            "text after the quote"
        );
        assert_eq!(
            metadata("#! name=test\nx").unwrap_err().to_string(),
            "ERR Engine '' not found"
        );
        assert_eq!(metadata("#!lua name=\"foo\"\nx").unwrap().0, "foo");
        assert_eq!(
            metadata("#!lua name=x").unwrap_err().to_string(),
            "ERR Invalid library metadata"
        );
    }
}
