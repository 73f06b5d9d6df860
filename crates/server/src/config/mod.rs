//! Configuration: a kvrocks.conf-style file of `key value` lines, `--key value` overrides on the
//! command line, and CONFIG GET/SET/REWRITE at run time.
//!
//! Every Kvrocks 2.10 directive is accepted (see `directives.rs`). Unlike Kvrocks, a directive
//! that neither Kvrocks nor quarry knows stops start-up, as does an invalid value; both errors
//! name the line.

mod directives;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use directives::DIRECTIVES;

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Int(i64, i64),
    Enum(&'static [&'static str]),
    Str,
    /// Octal permission bits.
    Octal,
    /// A size with an optional K/M/G/T/P suffix and a minimum.
    Size(u64),
    /// May appear several times (`rename-command`).
    Multi,
    /// A Redis directive kept for tools; any value.
    Compat,
    /// `notify-keyspace-events`: Redis' class letters, written back in Redis' order.
    NotifyFlags,
    /// Kvrocks' cron expression (`bgsave-cron`, ...): empty, or groups of five fields.
    Cron,
    /// Percentiles from 0 to 100, space-separated (`latency-tracking-info-percentiles`).
    Percentiles,
}

pub struct Directive {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    pub read_only: bool,
    pub implemented: bool,
    pub doc: &'static str,
}

/// Directives whose new value takes effect at once with CONFIG SET. Other implemented directives
/// are fixed at start-up and refused by CONFIG SET, so that no setting pretends to apply.
const LIVE: &[&str] = &[
    "timeout",
    "lua-time-limit",
    "busy-reply-threshold",
    "stream-node-max-entries",
    "maxclients",
    "requirepass",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "proto-max-bulk-len",
    "resp3-enabled",
    "log-level",
    "masterauth",
    "replica-announce-ip",
    "replica-announce-port",
    "max-replication-mb",
    "max-db-size",
    "backup-dir",
    "max-backup-to-keep",
    "max-backup-keep-hours",
    "bgsave-cron",
    "compact-cron",
    "compaction-checker-cron",
    "compaction-checker-range",
    "force-compact-file-age",
    "force-compact-file-min-deleted-percentage",
    "dbsize-scan-cron",
    "purge-backup-on-fullsync",
    "slave-serve-stale-data",
    "min-replicas-to-write",
    "notify-keyspace-events",
    "min-replicas-max-lag",
    "slave-priority",
    "migrate-sequence-gap",
    "migrate-batch-size-kb",
    "migrate-batch-rate-limit-mb",
    "migrate-type",
    "migrate-speed",
    "migrate-pipeline-size",
    "tls-cert-file",
    "tls-key-file",
    "tls-key-file-pass",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-protocols",
    "tls-auth-clients",
    "tls-ciphersuites",
    "tls-session-caching",
    "tls-session-cache-size",
    "tls-session-cache-timeout",
    "tls-ciphers",
    "tls-prefer-server-ciphers",
    "verify-cycle-seconds",
    "verify-max-mb-per-second",
    "verify-slice-keys",
    "verify-repair",
    "latency-tracking",
    "json-max-nesting-depth",
    "max-bitmap-to-string-mb",
    "profiling-sample-ratio",
    "profiling-sample-record-max-len",
    "profiling-sample-record-threshold-ms",
    "profiling-sample-commands",
    "log-retention-days",
    "latency-tracking-info-percentiles",
    "latency-monitor-threshold",
    "slave-empty-db-before-fullsync",
    "fullsync-recv-file-delay",
    "redis-cursor-compatible",
    "json-storage-format",
    "rocksdb.write_options.write_batch_max_bytes",
];

/// Why a directive cannot mean anything in quarry, if it cannot.
pub fn meaningless(name: &str) -> Option<&'static str> {
    directives::MEANINGLESS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, why)| *why)
}

pub fn directive(name: &str) -> Option<&'static Directive> {
    DIRECTIVES.iter().find(|d| d.name == name)
}

#[derive(Clone, Debug)]
pub struct Config {
    values: BTreeMap<&'static str, String>,
    multi: BTreeMap<&'static str, Vec<String>>,
    /// Directives given in the file or on the command line.
    explicit: BTreeSet<&'static str>,
    /// Kvrocks namespaces, token -> name: the `namespace.<name> <token>` lines, then what
    /// NAMESPACE SET/ADD/DEL and a master (with `repl-namespace-enabled`) changed.
    tokens: BTreeMap<String, String>,
    file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            values: DIRECTIVES
                .iter()
                .filter(|d| !matches!(d.kind, Kind::Multi))
                .map(|d| (d.name, d.default.to_string()))
                .collect(),
            multi: BTreeMap::new(),
            explicit: BTreeSet::new(),
            tokens: BTreeMap::new(),
            file: None,
        }
    }
}

/// Checks a value against its directive and returns it in canonical form.
fn normalize(d: &Directive, raw: &str) -> Result<String, String> {
    match d.kind {
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int(lo, hi) => {
            let n: i64 = raw
                .trim()
                .parse()
                .map_err(|_| format!("'{raw}' is not an integer"))?;
            if n < lo || n > hi {
                return Err(format!(
                    "out of numeric range: must be between {lo} and {hi}"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Enum(values) => {
            let lower = raw.to_ascii_lowercase();
            if values.contains(&lower.as_str()) {
                Ok(lower)
            } else {
                let list: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
                Err(format!(
                    "invalid enum option, acceptable values are {}",
                    list.join(", ")
                ))
            }
        }
        Kind::NotifyFlags => crate::notify::parse_flags(raw)
            .map(crate::notify::flags_to_string)
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string()),
        Kind::Octal => u32::from_str_radix(raw.trim_start_matches('0'), 8)
            .map(|n| format!("{n:o}"))
            .map_err(|_| format!("'{raw}' is not an octal number")),
        Kind::Size(min) => {
            let n = parse_size(raw)?;
            if n < min {
                return Err(format!(
                    "this config value should be between {min} and {}",
                    u64::MAX
                ));
            }
            Ok(n.to_string())
        }
        Kind::Str | Kind::Multi | Kind::Compat => Ok(raw.to_string()),
        Kind::Cron => crate::cron::Schedule::parse(raw)
            .map(|_| raw.split_whitespace().collect::<Vec<_>>().join(" ")),
        Kind::Percentiles => {
            if crate::latency::valid_percentiles(raw) {
                Ok(raw.split_whitespace().collect::<Vec<_>>().join(" "))
            } else {
                Err("latency-tracking-info-percentiles takes numbers between 0 and 100".into())
            }
        }
    }
}

/// `512M`, `1g`, `1048576`: powers of 1024.
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let raw = raw.trim();
    let (digits, mult) = match raw.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_lowercase() {
                'k' => 1 << 10,
                'm' => 1 << 20,
                'g' => 1 << 30,
                't' => 1 << 40,
                'p' => 1 << 50,
                other => return Err(format!("encounter unexpected unit: `{other}`")),
            };
            (&raw[..i], m)
        }
        _ => (raw, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{raw}' is not a size"))?;
    n.checked_mul(mult)
        .ok_or_else(|| "arithmetic overflow".to_string())
}

/// Splits one config line into key and value, as Kvrocks does: `#` starts a comment, a value may
/// be quoted, an unquoted value is the rest of the line. Returns None for blank and comment lines.
fn split_line(line: &str) -> Result<Option<(String, String)>, String> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let key_end = line
        .find(|c: char| c.is_whitespace() || c == '#')
        .unwrap_or(line.len());
    let key = line[..key_end].to_string();
    let rest = line[key_end..].trim_start();
    // An ACL user's rules are words of their own (`#<hash>` is a password, not a comment).
    if key.eq_ignore_ascii_case("user") {
        return Ok(Some((key, rest.trim_end().to_string())));
    }
    if rest.starts_with('"') || rest.starts_with('\'') {
        let quote = rest.chars().next().unwrap_or('"');
        let mut value = String::new();
        let mut chars = rest[1..].chars();
        loop {
            match chars.next() {
                None => return Err("config line ends unexpectedly in quoted string".into()),
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some('r') => value.push('\r'),
                    Some(c @ ('"' | '\'' | '\\')) => value.push(c),
                    Some(_) | None => {}
                },
                Some(c) if c == quote => break,
                Some(c) => value.push(c),
            }
        }
        let tail: String = chars.collect();
        let tail = tail.trim();
        if !tail.is_empty() && !tail.starts_with('#') {
            return Err("more than 2 item in config line".into());
        }
        return Ok(Some((key, value)));
    }
    let value = rest.split('#').next().unwrap_or("").trim().to_string();
    Ok(Some((key, value)))
}

/// How a namespace line starts (`namespace.<name> <token>`).
const NAMESPACE_PREFIX: &str = "namespace.";

impl Config {
    /// The namespaces, token -> name.
    pub fn tokens(&self) -> &BTreeMap<String, String> {
        &self.tokens
    }

    /// Replaces a repeated directive's lines (`user`, from the ACL users at CONFIG REWRITE).
    pub fn set_multi(&mut self, name: &'static str, values: Vec<String>) {
        if let Some(d) = directive(name) {
            self.multi.insert(d.name, values);
            self.explicit.insert(d.name);
        }
    }

    pub fn set_tokens(&mut self, tokens: BTreeMap<String, String>) {
        self.tokens = tokens;
    }

    /// Loads a file, then applies `--key value` overrides. Errors name the line or the option.
    pub fn load(file: Option<&Path>, overrides: &[(String, String)]) -> Result<Config, String> {
        let mut cfg = Config::default();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("failed to open file '{}': {e}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                let at = |msg: String| format!("{}:{}: {msg}", path.display(), i + 1);
                let Some((key, value)) =
                    split_line(line).map_err(|m| at(format!("malformed line: {m}")))?
                else {
                    continue;
                };
                cfg.apply(&key, &value).map_err(at)?;
            }
            cfg.file = Some(path.to_path_buf());
        }
        for (key, value) in overrides {
            cfg.apply(key, value)
                .map_err(|m| format!("command-line option --{key}: {m}"))?;
        }
        if !cfg.tokens.is_empty() {
            // Kvrocks' checks and texts.
            if cfg.get("requirepass").is_empty() {
                return Err("requirepass empty wasn't allowed while the namespace exists".into());
            }
            if cfg.get_bool("cluster-enabled") {
                return Err(
                    "enabled cluster mode wasn't allowed while the namespace exists".into(),
                );
            }
            for (directive, what) in [("requirepass", "requirepass"), ("masterauth", "masterauth")]
            {
                if cfg.tokens.contains_key(cfg.get(directive)) {
                    return Err(format!("{what} is duplicated with namespace tokens"));
                }
            }
        }
        Ok(cfg)
    }

    /// Applies one directive from the file or the command line.
    fn apply(&mut self, key: &str, value: &str) -> Result<(), String> {
        let lower = key.to_ascii_lowercase();
        if lower.starts_with(NAMESPACE_PREFIX) {
            // The name keeps its case, as in Kvrocks; a later line with the same token wins.
            let name = &key[NAMESPACE_PREFIX.len()..];
            if !value.is_empty() {
                crate::namespace::check_name(name)?;
                self.tokens.insert(value.to_string(), name.to_string());
            }
            return Ok(());
        }
        let Some(d) = directive(&lower) else {
            return Err(format!(
                "'{key}' is not a valid configuration directive of quarry or Kvrocks"
            ));
        };
        // Kvrocks skips a directive whose value is empty; an empty value means "unset".
        if value.is_empty() && !matches!(d.kind, Kind::Str | Kind::Compat | Kind::Cron) {
            return Ok(());
        }
        let v = normalize(d, value).map_err(|m| format!("invalid value for '{}': {m}", d.name))?;
        if matches!(d.kind, Kind::Multi) {
            self.multi.entry(d.name).or_default().push(v);
        } else {
            self.values.insert(d.name, v);
        }
        self.explicit.insert(d.name);
        Ok(())
    }

    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name) == "yes"
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    pub fn get_multi(&self, name: &str) -> &[String] {
        self.multi.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Directives set to something else than their default that cannot mean anything in
    /// quarry, each with its value and the reason.
    pub fn meaningless_settings(&self) -> Vec<(&'static str, String, &'static str)> {
        self.explicit
            .iter()
            .filter_map(|n| {
                let why = meaningless(n)?;
                let d = directive(n)?;
                (self.get(n) != d.default).then(|| (d.name, self.get(n).to_string(), why))
            })
            .collect()
    }

    /// CONFIG GET: glob patterns, as Redis 7 (Kvrocks takes only `*` or an exact name).
    pub fn matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for d in DIRECTIVES {
            if !quarry_types::glob::glob_match_nocase(pattern, d.name.as_bytes()) {
                continue;
            }
            if matches!(d.kind, Kind::Multi) {
                for v in self.get_multi(d.name) {
                    out.push((d.name.to_string(), v.clone()));
                }
            } else {
                out.push((d.name.to_string(), self.get(d.name).to_string()));
            }
        }
        out
    }

    /// CONFIG SET of one directive. The error text is Kvrocks'.
    /// Records a value the server itself changed (REPLICAOF's `slaveof`), so that CONFIG GET
    /// and CONFIG REWRITE show it. `key` must be a known directive.
    pub fn set_internal(&mut self, key: &str, value: String) {
        if let Some(d) = directive(key) {
            self.values.insert(d.name, value);
            self.explicit.insert(d.name);
        }
    }

    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let lower = key.to_ascii_lowercase();
        let unsupported =
            || format!("CONFIG SET '{key}' error: Unsupported CONFIG parameter: {lower}");
        let d = directive(&lower).ok_or_else(unsupported)?;
        let settable = !d.read_only
            && !matches!(d.kind, Kind::Multi)
            && (!d.implemented || LIVE.contains(&d.name));
        if !settable {
            return Err(unsupported());
        }
        let v = normalize(d, value)
            .map_err(|m| format!("CONFIG SET '{key}' error: failed to set new value: {m}"))?;
        // Kvrocks' validators: namespaces need a password, and no token may be a password.
        let refused = match d.name {
            "requirepass" if v.is_empty() && !self.tokens.is_empty() => {
                Some("requirepass empty not allowed while the namespace exists")
            }
            "requirepass" if self.tokens.contains_key(&v) => {
                Some("requirepass is duplicated with namespace tokens")
            }
            "masterauth" if self.tokens.contains_key(&v) => {
                Some("masterauth is duplicated with namespace tokens")
            }
            _ => None,
        };
        if let Some(m) = refused {
            return Err(format!("CONFIG SET '{key}' error: invalid value: {m}"));
        }
        self.values.insert(d.name, v);
        self.explicit.insert(d.name);
        Ok(())
    }

    /// CONFIG REWRITE: keeps the file's comments and order, updates the values of directives it
    /// has, and appends explicitly set ones it lacks. Written through a temporary file and a
    /// rename, so a crash never leaves half a config.
    pub fn rewrite(&self) -> Result<(), String> {
        let path = self
            .file
            .as_ref()
            .ok_or("The server is running without a config file")?;
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let mut out = String::new();
        let mut written = BTreeSet::new();
        for line in old.lines() {
            match split_line(line) {
                // Namespaces are written below, from the live set.
                Ok(Some((key, _))) if key.to_ascii_lowercase().starts_with(NAMESPACE_PREFIX) => {}
                Ok(Some((key, _))) => {
                    let lower = key.to_ascii_lowercase();
                    match directive(&lower) {
                        Some(d) if matches!(d.kind, Kind::Multi) => {
                            if written.insert(d.name) {
                                for v in self.get_multi(d.name) {
                                    let _ = writeln!(out, "{} {}", d.name, v);
                                }
                            }
                        }
                        Some(d) => {
                            if written.insert(d.name) {
                                let _ = writeln!(out, "{} {}", d.name, quote(self.get(d.name)));
                            }
                        }
                        None => {
                            let _ = writeln!(out, "{line}");
                        }
                    }
                }
                _ => {
                    let _ = writeln!(out, "{line}");
                }
            }
        }
        for name in &self.explicit {
            if !written.contains(name) {
                let _ = writeln!(out, "{} {}", name, quote(self.get(name)));
            }
        }
        // With `repl-namespace-enabled` the namespaces live in the database (and replicate), as
        // in Kvrocks; otherwise in the file.
        if !self.get_bool("repl-namespace-enabled") {
            let mut lines: Vec<(&String, &String)> =
                self.tokens.iter().map(|(t, n)| (n, t)).collect();
            lines.sort();
            for (name, token) in lines {
                let _ = writeln!(out, "{NAMESPACE_PREFIX}{name} {}", quote(token));
            }
        }
        quarry_storage::files::write_durable(path, out.as_bytes())
            .map_err(|e| format!("failed to write {}: {e}", path.display()))
    }
}

fn quote(v: &str) -> String {
    if v.is_empty() {
        "\"\"".into()
    } else {
        v.to_string()
    }
}

/// The commented `quarry.conf` shipped in the repository, generated from the directive table so
/// that the two never drift apart (a test compares them).
pub fn render_template() -> String {
    let mut out = String::new();
    out.push_str(TEMPLATE_HEADER);
    let mut section = "";
    for d in DIRECTIVES {
        let this = if d.name.starts_with("rocksdb.") {
            "RocksDB"
        } else if matches!(d.kind, Kind::Compat) {
            "Redis compatibility (accepted, no effect)"
        } else {
            "Server"
        };
        if this != section {
            let _ = writeln!(
                out,
                "\n################################ {this} ################################\n"
            );
            section = this;
        }
        let note = match meaningless(d.name) {
            Some(why) => format!(" [accepted; it cannot mean anything in quarry: {why}]"),
            None => String::new(),
        };
        let _ = writeln!(out, "# {}{}", d.doc, note);
        match d.kind {
            Kind::Enum(values) => {
                let _ = writeln!(out, "# one of: {}", values.join(", "));
            }
            Kind::Int(lo, hi) if hi < i64::from(i32::MAX) || lo > i64::from(i32::MIN) => {
                let _ = writeln!(out, "# range: {lo}..{hi}");
            }
            _ => {}
        }
        if d.read_only {
            let _ = writeln!(out, "# (fixed at start-up)");
        }
        if d.name == "rocksdb.write_options.sync" {
            out.push_str(DURABILITY_NOTE);
        }
        match d.kind {
            Kind::Multi => {
                let _ = writeln!(out, "# {} OLD-NAME NEW-NAME\n", d.name);
            }
            _ if d.default.is_empty() => {
                let _ = writeln!(out, "# {} \"\"\n", d.name);
            }
            _ => {
                let _ = writeln!(out, "{} {}\n", d.name, d.default);
            }
        }
    }
    out
}

const TEMPLATE_HEADER: &str = "\
# quarry configuration file.
#
# Format: one `directive value` per line, as kvrocks.conf. A value may be quoted; `#` starts a
# comment. Every directive can also be given on the command line as `--directive value`.
#
# quarry accepts every Kvrocks 2.10 directive, so an existing kvrocks.conf starts quarry. The
# few marked below as meaning nothing in quarry are named, with the reason, in a warning at
# start-up when set to something else than their default. A directive that neither quarry nor
# Kvrocks knows, or an invalid value, stops start-up with the line number.
#
# Namespaces (Kvrocks tenants): one `namespace.<name> <token>` line each, for example
#   namespace.shop s3cret-token
# needs requirepass, and is refused in cluster mode. `AUTH <token>` puts a connection in that
# namespace, with keys of its own; `AUTH <requirepass>` is the admin. NAMESPACE ADD/SET/DEL
# change them at run time and rewrite these lines (see README, Namespaces).
#
# This file is generated from the directive table in crates/server/src/config/directives.rs;
# the values shown are the defaults.
";

const DURABILITY_NOTE: &str = "\
#
# Durability of an acknowledged write:
#   no  (default) the write is in the WAL before the reply: it survives a crash of the process
#       (kill -9), but not a power loss or a kernel crash, which may lose the last writes.
#   yes the WAL is fsynced before the reply: the write also survives a power loss. Slower.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_file_matches_the_directive_table() {
        // The checkout this test runs in, not the one a shared build cache compiled it in.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let path = format!("{dir}/../../quarry.conf");
        let rendered = render_template();
        if std::env::var_os("QUARRY_WRITE_CONF").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == rendered,
            "quarry.conf is stale: run QUARRY_WRITE_CONF=1 cargo test -p quarry-server config"
        );
        let cfg = Config::load(Some(Path::new(&path)), &[]).unwrap();
        assert_eq!(cfg.get("port"), "6666");
    }

    #[test]
    fn every_directive_takes_effect_or_says_why_it_cannot() {
        for d in DIRECTIVES {
            let without_effect = !d.implemented && !matches!(d.kind, Kind::Compat);
            assert_eq!(
                without_effect,
                meaningless(d.name).is_some(),
                "{}: a directive that takes no effect needs its reason in MEANINGLESS, and only it",
                d.name
            );
        }
    }

    #[test]
    fn lines_split_like_kvrocks() {
        assert_eq!(split_line("  # c").unwrap(), None);
        assert_eq!(
            split_line("port 6666 # c").unwrap(),
            Some(("port".into(), "6666".into()))
        );
        assert_eq!(
            split_line("slaveof 1.2.3.4 5").unwrap(),
            Some(("slaveof".into(), "1.2.3.4 5".into()))
        );
        assert_eq!(
            split_line("requirepass \"a b\"").unwrap(),
            Some(("requirepass".into(), "a b".into()))
        );
        assert!(split_line("requirepass \"a b").is_err());
        assert!(split_line("requirepass \"a\" b").is_err());
    }

    #[test]
    fn bad_lines_are_fatal_and_named() {
        let dir = std::env::temp_dir().join(format!("quarry-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.conf");
        std::fs::write(&f, "port 7000\nno-such-thing 1\n").unwrap();
        let e = Config::load(Some(&f), &[]).unwrap_err();
        assert!(e.contains(":2:") && e.contains("no-such-thing"), "{e}");
        std::fs::write(&f, "port 7000\nworkers many\n").unwrap();
        let e = Config::load(Some(&f), &[]).unwrap_err();
        assert!(e.contains(":2:") && e.contains("workers"), "{e}");
        std::fs::write(&f, "slave-read-only maybe\n").unwrap();
        assert!(Config::load(Some(&f), &[])
            .unwrap_err()
            .contains("'yes' or 'no'"));
    }

    #[test]
    fn overrides_win_and_sizes_parse() {
        let cfg = Config::load(
            None,
            &[
                ("port".into(), "7001".into()),
                ("proto-max-bulk-len".into(), "2m".into()),
            ],
        )
        .unwrap();
        assert_eq!(cfg.get("port"), "7001");
        assert_eq!(cfg.get_i64("proto-max-bulk-len"), 2 * 1024 * 1024);
    }

    #[test]
    fn config_set_refuses_fixed_directives() {
        let mut cfg = Config::default();
        assert!(cfg
            .set("port", "1")
            .unwrap_err()
            .contains("Unsupported CONFIG parameter: port"));
        cfg.set("timeout", "5").unwrap();
        assert_eq!(cfg.get("timeout"), "5");
        cfg.set("hash-max-ziplist-entries", "10").unwrap();
        assert!(cfg.set("slowlog-max-len", "x").is_err());
    }
}
