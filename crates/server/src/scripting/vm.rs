//! One Lua 5.1 state per worker thread, its sandbox, and the conversions between Redis replies
//! and Lua values.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, RegistryKey, StdLib, Table, Value};
use quarry_resp::Frame;

use super::RunState;

/// Nesting limit of a reply built from a Lua table (a self-referencing table is cut there).
const MAX_DEPTH: usize = 500;

pub struct Vm {
    pub lua: Lua,
    /// The sandbox's globals view, the environment of every script.
    pub env: Table,
    /// Function libraries' globals: the library API while one loads, `env` otherwise.
    pub fenv: Table,
    /// Switches `fenv` between the two.
    pub set_loading: Function,
    /// The real `redis` table, where each run sets `__dispatch`.
    pub redis: Table,
    /// Compiled scripts by SHA1, valid while `generation` matches the server's.
    pub scripts: HashMap<String, RegistryKey>,
    /// Loaded libraries: name → (code, functions by name).
    pub libraries: HashMap<String, (Arc<str>, HashMap<String, RegistryKey>)>,
    pub generation: u64,
    /// Memory last added to the server-wide total, and that total.
    reported: u64,
    total: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    runs: u64,
}

impl Drop for Vm {
    /// A thread that ends (tokio retires idle blocking threads) takes its state's memory out
    /// of the total.
    fn drop(&mut self) {
        if let Some(total) = &self.total {
            total.fetch_sub(self.reported, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// How long a library's code may run while FUNCTION LOAD registers its functions (Redis' 500 ms).
pub const LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

thread_local! {
    /// When the library being loaded on this thread runs out of time.
    pub static LOAD_DEADLINE: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
    /// The script running on this thread, for the instruction hook and the pcall guard.
    pub static CURRENT: RefCell<Option<Arc<RunState>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's Lua state, created on first use and created afresh when the
/// server's script generation moved on (SCRIPT FLUSH). `memory` is the server-wide total of
/// the states' memory, kept up to date here.
pub fn with_vm<R>(
    generation: u64,
    memory: &std::sync::Arc<std::sync::atomic::AtomicU64>,
    f: impl FnOnce(&mut Vm) -> R,
) -> Result<R, String> {
    VM.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| "Lua state busy".to_string())?;
        if slot.as_ref().is_some_and(|vm| vm.generation != generation) {
            // Dropping it takes its memory out of the total.
            slot.take();
        }
        if slot.is_none() {
            let mut vm = Vm::new().map_err(|e| format!("cannot create the Lua state: {e}"))?;
            vm.generation = generation;
            vm.total = Some(memory.clone());
            *slot = Some(vm);
        }
        let vm = slot.as_mut().expect("created above");
        let r = f(vm);
        // A step of garbage collection every 50 runs, as Redis does.
        vm.runs += 1;
        if vm.runs % 50 == 0 {
            let _ = vm.lua.gc_step_kbytes(50);
        }
        vm.report_memory(memory);
        Ok(r)
    })
}

fn killed() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|r| r.is_killed()))
}

impl Vm {
    fn new() -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        let g = lua.globals();
        // os: only clock, as in Redis.
        let os = lua.create_table()?;
        let start = std::time::Instant::now();
        os.set(
            "clock",
            lua.create_function(move |_, ()| Ok(start.elapsed().as_secs_f64()))?,
        )?;
        g.set("os", os)?;
        super::libs::install(&lua)?;
        let redis = lua.create_table()?;
        redis.set(
            "sha1hex",
            lua.create_function(|_, args: mlua::Variadic<Value>| match args.as_slice() {
                [v] => {
                    let s = arg_bytes(v).unwrap_or_default();
                    Ok(super::sha1_hex(&s))
                }
                _ => Err(mlua::Error::RuntimeError(
                    "wrong number of arguments".into(),
                )),
            })?,
        )?;
        redis.set(
            "log",
            lua.create_function(|_, (level, msg): (i64, mlua::String)| {
                let text = String::from_utf8_lossy(&msg.as_bytes()).to_string();
                match level {
                    0 | 1 => tracing::debug!(target: "script", "{text}"),
                    2 => tracing::info!(target: "script", "{text}"),
                    _ => tracing::warn!(target: "script", "{text}"),
                }
                Ok(())
            })?,
        )?;
        redis.set(
            "setresp",
            lua.create_function(|_, v: i64| {
                if v != 2 && v != 3 {
                    return Err(mlua::Error::RuntimeError(
                        "RESP version must be 2 or 3.".into(),
                    ));
                }
                CURRENT.with(|c| {
                    if let Some(r) = c.borrow().as_ref() {
                        r.set_resp3(v == 3);
                    }
                });
                Ok(())
            })?,
        )?;
        let killed_fn = lua.create_function(|_, ()| Ok(killed()))?;
        let error_text = lua.create_function(|_, v: Value| {
            Ok(match v {
                Value::Error(e) => super::libs::error_text(&e),
                Value::String(s) => s.to_string_lossy(),
                other => format!("{other:?}"),
            })
        })?;
        redis.set("REDIS_VERSION", crate::admin::REDIS_VERSION)?;
        redis.set(
            "REDIS_VERSION_NUM",
            version_num(crate::admin::REDIS_VERSION),
        )?;
        let (env, fenv, set_loading): (Table, Table, Function) = lua
            .load(include_str!("prelude.lua"))
            .set_name("@prelude")
            .call((redis.clone(), killed_fn, error_text))?;
        // Time limit and SCRIPT KILL: checked every 10,000 instructions; so is FUNCTION LOAD's
        // time limit.
        lua.set_hook(HookTriggers::new().every_nth_instruction(10_000), |_, _| {
            if LOAD_DEADLINE.with(|d| d.get().is_some_and(|d| std::time::Instant::now() >= d)) {
                return Err(mlua::Error::RuntimeError("FUNCTION LOAD timeout".into()));
            }
            let stop = CURRENT.with(|c| c.borrow().as_ref().map(|r| r.tick()));
            if stop == Some(true) {
                return Err(mlua::Error::RuntimeError(
                    "ERR Script killed by user with SCRIPT KILL...".into(),
                ));
            }
            Ok(mlua::VmState::Continue)
        });
        Ok(Vm {
            lua,
            env,
            fenv,
            set_loading,
            redis,
            scripts: HashMap::new(),
            libraries: HashMap::new(),
            generation: 0,
            reported: 0,
            total: None,
            runs: 0,
        })
    }

    /// Adds this state's memory change since the last report to the server-wide total.
    fn report_memory(&mut self, total: &std::sync::atomic::AtomicU64) {
        let now = self.lua.used_memory() as u64;
        total.fetch_add(
            now.wrapping_sub(self.reported),
            std::sync::atomic::Ordering::Relaxed,
        );
        self.reported = now;
    }

    /// The compiled function of a script, compiling it on first use on this thread.
    pub fn script(&mut self, sha: &str, body: &[u8]) -> Result<Function, String> {
        if let Some(key) = self.scripts.get(sha) {
            if let Ok(f) = self.lua.registry_value::<Function>(key) {
                return Ok(f);
            }
        }
        let f = self
            .lua
            .load(body)
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                format!(
                    "ERR Error compiling script (new function): {}",
                    lua_error_text(&e)
                )
            })?;
        let key = self
            .lua
            .create_registry_value(f.clone())
            .map_err(|e| format!("ERR {e}"))?;
        self.scripts.insert(sha.to_string(), key);
        Ok(f)
    }
}

/// `7.0.15` as Redis' `REDIS_VERSION_NUM`: 0x00070015 read as hex digits pairs, 0x07000f.
fn version_num(v: &str) -> i64 {
    v.split('.')
        .take(3)
        .fold(0, |n, part| (n << 8) | part.parse::<i64>().unwrap_or(0))
}

/// A Lua error as one line of text, without mlua's traceback.
pub fn lua_error_text(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_error_text(cause),
        mlua::Error::MemoryError(m) => m.clone(),
        other => other.to_string(),
    }
    .lines()
    .next()
    .unwrap_or("")
    .to_string()
}

/// A Lua argument of redis.call as a command argument: strings and numbers.
pub fn arg_bytes(v: &Value) -> Option<Bytes> {
    match v {
        Value::String(s) => Some(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Integer(i) => Some(Bytes::from(i.to_string())),
        // Shortest round-trip form, as Redis's fpconv_dtoa.
        Value::Number(n) => Some(Bytes::from(format!("{n}"))),
        _ => None,
    }
}

/// A command's reply as the Lua value scripts receive (RESP2 rules, or RESP3 after
/// `redis.setresp(3)`). Errors are handled by the caller.
pub fn frame_to_lua(lua: &Lua, f: Frame, resp3: bool) -> mlua::Result<Value> {
    Ok(match f {
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.set("ok", s)?;
            Value::Table(t)
        }
        Frame::Error(e) => {
            let t = lua.create_table()?;
            t.set("err", e)?;
            Value::Table(t)
        }
        Frame::Integer(i) => Value::Integer(i),
        Frame::Bulk(b) => Value::String(lua.create_string(&b)?),
        Frame::Verbatim(s) => {
            if resp3 {
                let t = lua.create_table()?;
                let inner = lua.create_table()?;
                inner.set("format", "txt")?;
                inner.set("string", s)?;
                t.set("verbatim_string", inner)?;
                Value::Table(t)
            } else {
                Value::String(lua.create_string(&s)?)
            }
        }
        Frame::Null | Frame::NullArray => {
            if resp3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        Frame::Array(items) | Frame::Push(items) => array(lua, items, resp3)?,
        Frame::Set(items) => {
            if resp3 {
                let set = lua.create_table()?;
                for item in items {
                    set.raw_set(frame_to_lua(lua, item, resp3)?, true)?;
                }
                let t = lua.create_table()?;
                t.set("set", set)?;
                Value::Table(t)
            } else {
                array(lua, items, resp3)?
            }
        }
        Frame::Map(pairs) => {
            if resp3 {
                let map = lua.create_table()?;
                for (k, v) in pairs {
                    map.raw_set(frame_to_lua(lua, k, resp3)?, frame_to_lua(lua, v, resp3)?)?;
                }
                let t = lua.create_table()?;
                t.set("map", map)?;
                Value::Table(t)
            } else {
                let flat = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
                array(lua, flat, resp3)?
            }
        }
        Frame::Double(d) => {
            if resp3 {
                let t = lua.create_table()?;
                t.set("double", d)?;
                Value::Table(t)
            } else {
                Value::String(lua.create_string(quarry_resp::format_double(d))?)
            }
        }
        Frame::Boolean(b) => {
            if resp3 {
                Value::Boolean(b)
            } else {
                Value::Integer(b as i64)
            }
        }
        Frame::Raw(_) => Value::Nil,
    })
}

fn array(lua: &Lua, items: Vec<Frame>, resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.into_iter().enumerate() {
        t.raw_set(i + 1, frame_to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(t))
}

/// A script's result as the reply to its caller (`resp3`: the caller's protocol).
pub fn lua_to_frame(v: &Value, resp3: bool) -> Frame {
    to_frame(v, resp3, 0)
}

fn to_frame(v: &Value, resp3: bool, depth: usize) -> Frame {
    if depth > MAX_DEPTH {
        return Frame::error("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(true) => {
            if resp3 {
                Frame::Boolean(true)
            } else {
                Frame::Integer(1)
            }
        }
        Value::Boolean(false) => {
            if resp3 {
                Frame::Boolean(false)
            } else {
                Frame::Null
            }
        }
        Value::Integer(i) => Frame::Integer(*i),
        Value::Number(n) => Frame::Integer(if n.is_finite() { n.trunc() as i64 } else { 0 }),
        Value::Table(t) => table_to_frame(t, resp3, depth),
        _ => Frame::Null,
    }
}

fn table_to_frame(t: &Table, resp3: bool, depth: usize) -> Frame {
    let field = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        let text = String::from_utf8_lossy(&e.as_bytes()).to_string();
        let text = text.strip_prefix('-').unwrap_or(&text).to_string();
        return Frame::Error(if text.is_empty() { "ERR".into() } else { text });
    }
    if let Value::String(s) = field("ok") {
        return Frame::Simple(String::from_utf8_lossy(&s.as_bytes()).to_string());
    }
    if let Value::Table(m) = field("map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                to_frame(&k, resp3, depth + 1),
                to_frame(&v, resp3, depth + 1),
            ));
        }
        return Frame::Map(pairs);
    }
    if let Value::Table(s) = field("set") {
        let items = s
            .pairs::<Value, Value>()
            .flatten()
            .map(|(k, _)| to_frame(&k, resp3, depth + 1))
            .collect();
        return Frame::Set(items);
    }
    match field("double") {
        Value::Number(d) => return Frame::Double(d),
        Value::Integer(i) => return Frame::Double(i as f64),
        _ => {}
    }
    if let Value::String(s) = field("big_number") {
        return Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes()));
    }
    if let Value::Table(v) = field("verbatim_string") {
        if let Ok(s) = v.raw_get::<mlua::String>("string") {
            return Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes()));
        }
    }
    let mut items = Vec::new();
    let mut i = 1;
    loop {
        let v: Value = t.raw_get(i).unwrap_or(Value::Nil);
        if v == Value::Nil {
            break;
        }
        let item = to_frame(&v, resp3, depth + 1);
        let stop = matches!(&item, Frame::Error(e) if e == "ERR reached lua stack limit");
        items.push(item);
        if stop {
            break;
        }
        i += 1;
    }
    Frame::Array(items)
}
