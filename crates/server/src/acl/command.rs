//! The ACL command, with Redis 7.0's replies and texts.

use bytes::Bytes;
use quarry_commands::args::{lower, parse_i64, text};
use quarry_commands::table::help_lines;
use quarry_commands::CmdError;
use quarry_resp::Frame;

use super::{category_bit, full_name, registry, Denied, User};
use crate::admin::Outcome;
use crate::connection::{Flow, Session};
use crate::server::Server;

const HELP: &[&str] = &[
    "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CAT [<category>]",
    "    List all commands that belong to <category>, or all command categories",
    "    when no category is specified.",
    "DELUSER <username> [<username> ...]",
    "    Delete a list of users.",
    "DRYRUN <username> <command> [<arg> ...]",
    "    Returns whether the user can execute the given command without executing the command.",
    "GETUSER <username>",
    "    Get the user's details.",
    "GENPASS [<bits>]",
    "    Generate a secure 256-bit user password. The optional `bits` argument can",
    "    be used to specify a different size.",
    "LIST",
    "    Show users details in config file format.",
    "LOAD",
    "    Reload users from the ACL file.",
    "LOG [<count> | RESET]",
    "    Show the ACL log entries.",
    "SAVE",
    "    Save the current config to the ACL file.",
    "SETUSER <username> <attribute> [<attribute> ...]",
    "    Create or modify a user with the specified attributes.",
    "USERS",
    "    List all the registered usernames.",
    "WHOAMI",
    "    Return the current connection username.",
    "HELP",
    "    Prints this help.",
];

pub fn run(server: &Server, session: &mut Session, a: &[Bytes]) -> Outcome {
    (acl(server, session, a), Flow::Continue)
}

fn acl(server: &Server, session: &mut Session, a: &[Bytes]) -> Result<Frame, CmdError> {
    let sub = lower(&a[1]);
    match sub.as_str() {
        "setuser" => {
            let name = text(&a[2]);
            if super::has_spaces(&name) {
                return Err(CmdError::err(
                    "Usernames can't contain spaces or null characters",
                ));
            }
            let rules: Vec<String> = a[3..].iter().map(|r| text(r)).collect();
            server.acl.set_user(&name, &rules).map_err(CmdError::err)?;
            after_change(server, &name);
            Ok(Frame::ok())
        }
        "deluser" => {
            let names: Vec<String> = a[2..].iter().map(|n| text(n)).collect();
            if names.iter().any(|n| n == "default") {
                return Err(CmdError::err("The 'default' user cannot be removed"));
            }
            let gone = server.acl.delete(&names);
            for name in &gone {
                kill_clients_of(server, name);
            }
            Ok(Frame::Integer(gone.len() as i64))
        }
        "getuser" => Ok(match server.acl.user(&text(&a[2])) {
            None => Frame::Null,
            Some(u) => getuser(&u),
        }),
        "list" => Ok(Frame::Array(
            server
                .acl
                .all()
                .iter()
                .map(|u| Frame::bulk(format!("user {} {}", u.name, u.describe())))
                .collect(),
        )),
        "users" => Ok(Frame::Array(
            server.acl.names().into_iter().map(Frame::bulk).collect(),
        )),
        "whoami" => Ok(Frame::bulk(session.user.name.clone())),
        "load" | "save" => {
            let file = server.config.read().get("aclfile").to_string();
            if file.is_empty() {
                return Err(CmdError::err("This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration."));
            }
            if sub == "load" {
                load_file(server, &file).map_err(CmdError::err)?;
                for u in server.acl.names() {
                    after_change(server, &u);
                }
            } else {
                save_file(server, &file).map_err(|e| {
                    tracing::warn!(file, error = %e, "ACL SAVE failed");
                    CmdError::err("There was an error trying to save the ACLs. Please check the server logs for more information")
                })?;
            }
            Ok(Frame::ok())
        }
        "cat" if a.len() == 2 => Ok(Frame::Array(
            quarry_commands::acl_table::CATEGORIES
                .iter()
                .map(|c| Frame::bulk(*c))
                .collect(),
        )),
        "cat" if a.len() == 3 => {
            let name = text(&a[2]);
            let Some(bit) = category_bit(&name) else {
                let shown: String = name.chars().take(128).collect();
                return Err(CmdError::err(format!("Unknown category '{shown}'")));
            };
            Ok(Frame::Array(
                registry()
                    .entries
                    .iter()
                    .filter(|e| e.categories & bit != 0)
                    .map(|e| Frame::bulk(e.full.clone()))
                    .collect(),
            ))
        }
        "genpass" if a.len() <= 3 => {
            let bits = match a.get(2) {
                Some(b) => parse_i64(b)?,
                None => 256,
            };
            if bits <= 0 || bits > 4096 {
                return Err(CmdError::err("ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096"));
            }
            let chars = (bits as usize).div_ceil(4);
            let hex: String = (0..chars)
                .map(|_| char::from_digit(rand::random::<u32>() % 16, 16).expect("a hex digit"))
                .collect();
            Ok(Frame::bulk(hex))
        }
        "log" if a.len() <= 3 => {
            let mut count = 10i64;
            if let Some(arg) = a.get(2) {
                if arg.eq_ignore_ascii_case(b"reset") {
                    server.acl.log_reset();
                    return Ok(Frame::ok());
                }
                count = parse_i64(arg)?.max(0);
            }
            let now = std::time::Instant::now();
            Ok(server.acl.with_log(|log| {
                Frame::Array(
                    log.iter()
                        .take(count as usize)
                        .map(|e| {
                            Frame::Map(vec![
                                (Frame::bulk("count"), Frame::Integer(e.count as i64)),
                                (Frame::bulk("reason"), Frame::bulk(e.reason)),
                                (Frame::bulk("context"), Frame::bulk(e.context)),
                                (Frame::bulk("object"), Frame::bulk(e.object.clone())),
                                (Frame::bulk("username"), Frame::bulk(e.username.clone())),
                                (
                                    Frame::bulk("age-seconds"),
                                    Frame::Double(
                                        now.duration_since(e.at).as_millis() as f64 / 1000.0,
                                    ),
                                ),
                                (
                                    Frame::bulk("client-info"),
                                    Frame::bulk(e.client_info.clone()),
                                ),
                            ])
                        })
                        .collect(),
                )
            }))
        }
        "dryrun" => dryrun(server, a),
        "help" => Ok(help_lines(HELP)),
        _ => Err(CmdError::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try ACL HELP.",
            text(&a[1])
        ))),
    }
}

fn getuser(u: &User) -> Frame {
    let selector = |s: &super::Selector| -> Vec<(Frame, Frame)> {
        vec![
            (Frame::bulk("commands"), Frame::bulk(s.describe_commands())),
            (Frame::bulk("keys"), Frame::bulk(s.describe_keys())),
            (Frame::bulk("channels"), Frame::bulk(s.describe_channels())),
        ]
    };
    let mut fields = vec![
        (
            Frame::bulk("flags"),
            Frame::Set(u.flags().into_iter().map(Frame::bulk).collect()),
        ),
        (
            Frame::bulk("passwords"),
            Frame::Array(u.passwords.iter().map(|p| Frame::bulk(p.clone())).collect()),
        ),
    ];
    fields.extend(selector(&u.selectors[0]));
    // quarry's own field, only for a user confined to a namespace.
    if let Some(ns) = u.namespace() {
        fields.push((Frame::bulk("namespace"), Frame::bulk(ns.to_string())));
    }
    fields.push((
        Frame::bulk("selectors"),
        Frame::Array(
            u.selectors[1..]
                .iter()
                .map(|s| Frame::Map(selector(s)))
                .collect(),
        ),
    ));
    Frame::Map(fields)
}

/// ACL DRYRUN user command [arg ...]: OK, or the refusal as a bulk string.
fn dryrun(server: &Server, a: &[Bytes]) -> Result<Frame, CmdError> {
    let name = text(&a[2]);
    let Some(user) = server.acl.user(&name) else {
        return Err(CmdError::err(format!("User '{name}' not found")));
    };
    let args = &a[3..];
    let Some(spec) = quarry_commands::lookup(&args[0]) else {
        return Err(CmdError::err(format!(
            "Command '{}' not found",
            text(&args[0])
        )));
    };
    let sub = quarry_commands::table::check_subcommand(spec, args)
        .ok()
        .flatten();
    let id = super::id_of(spec, sub);
    if !spec.arity_ok(args.len()) {
        return Err(CmdError::err(format!(
            "wrong number of arguments for '{}' command",
            full_name(id)
        )));
    }
    let keys = quarry_commands::table::command_keys(spec, args);
    Ok(match user.check(id, spec, args, &keys) {
        Ok(()) => Frame::ok(),
        Err(Denied::Command) => Frame::bulk(format!(
            "This user has no permissions to run the '{}' command",
            full_name(id)
        )),
        Err(Denied::Key(p)) => Frame::bulk(format!(
            "This user has no permissions to access the '{}' key",
            text(&args[p])
        )),
        Err(Denied::Channel(p)) => Frame::bulk(format!(
            "This user has no permissions to access the '{}' channel",
            text(&args[p])
        )),
    })
}

/// After a user changed: `requirepass` follows the default user's state, and clients of a
/// disabled user stay connected (as in Redis) but re-check at their next command.
fn after_change(server: &Server, name: &str) {
    if name == "default" {
        server.refresh_auth_required();
    }
}

/// Closes the connections authenticated as `name` (ACL DELUSER, and a user ACL LOAD dropped).
pub fn kill_clients_of(server: &Server, name: &str) {
    for c in server.clients.all() {
        if c.info.lock().user == name {
            c.kill();
        }
    }
}

/// ACL LOAD: the file replaces every user, all or nothing.
pub fn load_file(server: &Server, path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error loading ACLs, opening file '{path}': {e}"))?;
    let lines: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let users = super::parse_user_lines(path, &lines).map_err(|e| {
        format!("{e}WARNING: ACL errors detected, no change to the previously active ACL rules was performed")
    })?;
    let before = server.acl.names();
    server.acl.replace_all(users);
    let after = server.acl.names();
    for gone in before.iter().filter(|n| !after.contains(n)) {
        kill_clients_of(server, gone);
    }
    server.refresh_auth_required();
    Ok(())
}

/// ACL SAVE: every user, as ACL LIST shows it, written through a temporary file.
pub fn save_file(server: &Server, path: &str) -> Result<(), String> {
    let mut out = String::new();
    for u in server.acl.all() {
        out.push_str(&format!("user {} {}\n", u.name, u.describe()));
    }
    quarry_storage::files::write_durable(std::path::Path::new(path), out.as_bytes())
        .map_err(|e| e.to_string())
}
