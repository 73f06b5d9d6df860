-- quarry's scripting sandbox, run once per Lua state (one per worker thread).
--
-- Scripts and function libraries see the globals through `env`, a read-only view: reading a
-- global that does not exist and writing any global are errors, and the libraries a script
-- sees (redis, cjson, cmsgpack, bit, string, math, table, os) are read-only views too, so
-- that one script cannot change what the next one runs with.
local real_redis, killed, error_text = ...
local G = _G
local rawget, rawset, error, setmetatable, getmetatable, type, select, unpack =
      rawget, rawset, error, setmetatable, getmetatable, type, select, unpack
local real_pcall, real_xpcall, real_loadstring, real_setfenv = pcall, xpcall, loadstring, setfenv

local protected = setmetatable({}, {__mode = "k"})
local function deny() error("Attempt to modify a readonly table", 2) end
-- The metatable every protected table shows to getmetatable: itself read-only.
local sealed = {}
setmetatable(sealed, {__newindex = deny, __metatable = false})
protected[sealed] = true

local function readonly(t)
  local view = {}
  setmetatable(view, {__index = t, __newindex = deny, __metatable = sealed})
  protected[view] = true
  return view
end

-- redis.call / redis.pcall: the command runs in Rust (__dispatch, set for each run).
-- The arguments go in a table: a call with thousands of them must not overflow the C stack.
function real_redis.call(...)
  local ok, v = real_redis.__dispatch(true, select("#", ...), {...})
  if ok then return v end
  error(v, 0)
end
function real_redis.pcall(...)
  local ok, v = real_redis.__dispatch(false, select("#", ...), {...})
  return v
end
-- redis.acl_check_cmd: whether the calling user may run the command (Rust, __acl_check).
function real_redis.acl_check_cmd(...)
  local ok, v = real_redis.__acl_check(select("#", ...), {...})
  if ok then return v end
  error(v, 0)
end
function real_redis.error_reply(msg)
  if type(msg) ~= "string" then error("wrong number or type of arguments", 2) end
  return {err = msg}
end
function real_redis.status_reply(msg)
  if type(msg) ~= "string" then error("wrong number or type of arguments", 2) end
  return {ok = msg}
end
real_redis.LOG_DEBUG, real_redis.LOG_VERBOSE, real_redis.LOG_NOTICE, real_redis.LOG_WARNING = 0, 1, 2, 3
real_redis.REPL_NONE, real_redis.REPL_AOF, real_redis.REPL_SLAVE, real_redis.REPL_REPLICA, real_redis.REPL_ALL = 0, 1, 2, 2, 3
function real_redis.replicate_commands() return true end
function real_redis.set_repl(flags)
  if type(flags) ~= "number" or flags < 0 or flags > 3 then
    error("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.", 2)
  end
end
function real_redis.breakpoint() return false end
function real_redis.debug() end

-- A killed script stops even when it catches errors.
local kill_message = "ERR Script killed by user with SCRIPT KILL..."
-- An error raised in Rust reaches Lua wrapped; a script that catches one gets its text, as
-- it would get a C library's error string in Redis.
function G.pcall(...)
  local r = {real_pcall(...)}
  if killed() then error(kill_message, 0) end
  if r[1] == false and type(r[2]) == "userdata" then r[2] = error_text(r[2]) end
  return unpack(r, 1, table.maxn(r))
end
function G.xpcall(...)
  local r = {real_xpcall(...)}
  if killed() then error(kill_message, 0) end
  return unpack(r, 1, table.maxn(r))
end

local env = {}
-- Binary chunks are refused; text chunks run in the sandbox.
function G.loadstring(s, name)
  if type(s) == "string" and s:sub(1, 4) == "\27Lua" then return nil end
  local f, e = real_loadstring(s, name)
  if f then real_setfenv(f, env) end
  return f, e
end
function G.setmetatable(t, mt)
  if protected[t] then error("Attempt to modify a readonly table", 2) end
  return setmetatable(t, mt)
end
function G.rawset(t, k, v)
  if protected[t] then error("Attempt to modify a readonly table", 2) end
  return rawset(t, k, v)
end

for _, name in ipairs({"loadfile", "dofile", "print", "getfenv", "setfenv", "module", "require",
                       "newproxy", "gcinfo", "collectgarbage", "load"}) do
  G[name] = nil
end

-- The libraries scripts see, as read-only views. Scripts reach the real ones only through them.
local views = {}
for _, name in ipairs({"redis", "cjson", "cmsgpack", "bit", "struct", "string", "math", "table", "os"}) do
  if name == "redis" then
    views[name] = readonly(real_redis)
  elseif rawget(G, name) ~= nil then
    views[name] = readonly(rawget(G, name))
  end
end

-- A global as scripts see it, or nil.
local function lookup(k)
  local v = views[k]
  if v ~= nil then return v end
  if k == "_G" then return env end
  return rawget(G, k)
end
local function missing(k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 3)
end

setmetatable(env, {
  __index = function(_, k)
    local v = lookup(k)
    if v == nil then missing(k) end
    return v
  end,
  __newindex = deny,
  __metatable = sealed,
})
protected[env] = true

-- Function libraries' globals, as in Redis 7: while FUNCTION LOAD runs a library's code they
-- show only the library API (redis.register_function, redis.log, the LOG_ levels and the
-- version); when its functions run, the same globals show what scripts see, where
-- redis.register_function does not exist. A library's functions keep the globals they were
-- defined with, so one table serves both, switched by `set_loading`.
local function strict(t)
  local view = {}
  setmetatable(view, {
    __index = function(_, k)
      local v = t[k]
      if v == nil then missing(k) end
      return v
    end,
    __newindex = deny,
    __metatable = sealed,
  })
  protected[view] = true
  return view
end
local library_api = {
  -- Only while FUNCTION LOAD runs a library's code (__register is set then).
  register_function = function(...)
    local register = rawget(real_redis, "__register")
    if register == nil then
      error("redis.register_function can only be called on FUNCTION LOAD command", 2)
    end
    return register(...)
  end,
  log = real_redis.log,
  LOG_DEBUG = real_redis.LOG_DEBUG, LOG_VERBOSE = real_redis.LOG_VERBOSE,
  LOG_NOTICE = real_redis.LOG_NOTICE, LOG_WARNING = real_redis.LOG_WARNING,
  REDIS_VERSION = real_redis.REDIS_VERSION, REDIS_VERSION_NUM = real_redis.REDIS_VERSION_NUM,
}
local load_globals = {redis = strict(library_api)}
local loading = false
local fenv = {}
setmetatable(fenv, {
  __index = function(_, k)
    local v
    if loading then v = load_globals[k] else v = lookup(k) end
    if v == nil then missing(k) end
    return v
  end,
  __newindex = deny,
  __metatable = sealed,
})
protected[fenv] = true
local function set_loading(on) loading = on end

return env, fenv, set_loading
