//! `quarry-cluster`: sets up and inspects a cluster of quarry (or Kvrocks) nodes by pushing the
//! topology with `CLUSTERX`, as kvrocks-controller would, for local use and tests.
//!
//!     quarry-cluster create [--replicas N] [-a PASSWORD] HOST:PORT...
//!     quarry-cluster show [-a PASSWORD] HOST:PORT
//!     quarry-cluster failover [-a PASSWORD] REPLICA-HOST:PORT
//!
//! `create` gives every node a random 40-character id, makes the first nodes masters with
//! equal shares of the 16384 slots, attaches the others as replicas (N per master), and
//! pushes the topology to every node. `show` prints CLUSTER NODES and each node's role,
//! sequence and link, and for quarry nodes the continuous verification of each master-replica
//! pair (slices checked, mismatches, repairs). `failover` promotes a replica: it swaps it with its master in the
//! topology and pushes the result with a new version to every node.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl Reply {
    fn text(&self) -> String {
        match self {
            Reply::Status(s) | Reply::Error(s) | Reply::Bulk(Some(s)) => s.clone(),
            Reply::Int(i) => i.to_string(),
            Reply::Bulk(None) => String::new(),
            Reply::Array(items) => items.iter().map(Reply::text).collect::<Vec<_>>().join(" "),
        }
    }
}

impl Conn {
    fn open(addr: &str, password: Option<&str>) -> Result<Conn, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
        let mut c = Conn { stream, reader };
        if let Some(p) = password {
            c.ok(&["AUTH", p])?;
        }
        Ok(c)
    }

    fn call(&mut self, args: &[&str]) -> Result<Reply, String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.stream
            .write_all(out.as_bytes())
            .map_err(|e| e.to_string())?;
        self.read()
    }

    fn ok(&mut self, args: &[&str]) -> Result<Reply, String> {
        match self.call(args)? {
            Reply::Error(e) => Err(format!("{}: {e}", args[..2.min(args.len())].join(" "))),
            r => Ok(r),
        }
    }

    fn read(&mut self) -> Result<Reply, String> {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let line = line.trim_end_matches(['\r', '\n']);
        let (kind, rest) = line.split_at(line.len().min(1));
        Ok(match kind {
            "+" => Reply::Status(rest.into()),
            "-" => Reply::Error(rest.into()),
            ":" => Reply::Int(rest.parse().map_err(|_| "bad integer")?),
            "$" | "=" => {
                let n: i64 = rest.parse().map_err(|_| "bad length")?;
                if n < 0 {
                    return Ok(Reply::Bulk(None));
                }
                let mut buf = vec![0; n as usize + 2];
                self.reader
                    .read_exact(&mut buf)
                    .map_err(|e| e.to_string())?;
                buf.truncate(n as usize);
                let mut s = String::from_utf8_lossy(&buf).to_string();
                if kind == "=" && s.len() >= 4 {
                    s = s[4..].to_string(); // "txt:"
                }
                Reply::Bulk(Some(s))
            }
            "*" => {
                let n: i64 = rest.parse().map_err(|_| "bad length")?;
                let mut items = Vec::new();
                for _ in 0..n.max(0) {
                    items.push(self.read()?);
                }
                Reply::Array(items)
            }
            _ => return Err(format!("unexpected reply: {line}")),
        })
    }
}

fn node_id() -> String {
    (0..40)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect()
}

fn split_addr(addr: &str) -> Result<(String, u16), String> {
    let (h, p) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr}: expected HOST:PORT"))?;
    Ok((
        h.to_string(),
        p.parse().map_err(|_| format!("{addr}: bad port"))?,
    ))
}

fn push(
    addrs: &[String],
    ids: &[String],
    nodes: &str,
    version: i64,
    password: Option<&str>,
) -> Result<(), String> {
    for (addr, id) in addrs.iter().zip(ids) {
        let mut c = Conn::open(addr, password)?;
        c.ok(&["CLUSTERX", "SETNODEID", id])?;
        c.ok(&["CLUSTERX", "SETNODES", nodes, &version.to_string()])?;
    }
    Ok(())
}

fn create(addrs: &[String], replicas: usize, password: Option<&str>) -> Result<(), String> {
    if addrs.is_empty() {
        return Err("no nodes given".into());
    }
    let masters = addrs.len().div_ceil(replicas + 1);
    let ids: Vec<String> = addrs.iter().map(|_| node_id()).collect();
    let mut text = String::new();
    for (i, addr) in addrs.iter().enumerate() {
        let (host, port) = split_addr(addr)?;
        if i < masters {
            let start = 16384 * i / masters;
            let end = 16384 * (i + 1) / masters - 1;
            text.push_str(&format!(
                "{} {host} {port} master - {start}-{end}\n",
                ids[i]
            ));
        } else {
            let master = &ids[(i - masters) % masters];
            text.push_str(&format!("{} {host} {port} slave {master}\n", ids[i]));
        }
    }
    let mut version = 0;
    for addr in addrs {
        let v = Conn::open(addr, password)?
            .ok(&["CLUSTERX", "VERSION"])?
            .text();
        version = version.max(v.parse::<i64>().unwrap_or(-1) + 1);
    }
    push(addrs, &ids, &text, version.max(1), password)?;
    show(&addrs[0], password)
}

fn show(addr: &str, password: Option<&str>) -> Result<(), String> {
    let mut c = Conn::open(addr, password)?;
    let nodes = c.ok(&["CLUSTER", "NODES"])?.text();
    print!("{nodes}");
    println!();
    for line in nodes.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 2 {
            continue;
        }
        let node_addr = f[1].split('@').next().unwrap_or("");
        let summary = match Conn::open(node_addr, password).and_then(|mut n| {
            let replication = n.ok(&["INFO", "replication"])?.text();
            // quarry's verification of each master-replica pair (Kvrocks has none).
            let verification = n
                .call(&["INFO", "verification"])
                .map(|r| r.text())
                .unwrap_or_default();
            Ok(format!("{replication}\n{verification}"))
        }) {
            Ok(info) => {
                let field = |k: &str| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(&format!("{k}:")))
                        .unwrap_or("-")
                        .trim()
                        .to_string()
                };
                let mut s = format!(
                    "role={} sequence={}",
                    field("role"),
                    field("master_repl_offset")
                );
                if field("role") == "slave" {
                    s.push_str(&format!(" link={}", field("master_link_status")));
                    if field("verify_slices_checked") != "-" {
                        s.push_str(&format!(
                            " verified={} mismatches={} last_mismatch=[{}] last_ok={}s_ago repairs={} full_syncs={}",
                            field("verify_slices_checked"),
                            field("verify_mismatches"),
                            field("verify_last_mismatch_range"),
                            field("verify_last_ok_seconds_ago"),
                            field("verify_repairs"),
                            field("verify_full_syncs"),
                        ));
                    }
                } else if field("verify_slices_issued") != "-" {
                    s.push_str(&format!(
                        " verify_slices_issued={} cycle_progress={} cycles={} repairs_served={}",
                        field("verify_slices_issued"),
                        field("verify_cycle_progress"),
                        field("verify_cycles_completed"),
                        field("verify_repairs_served"),
                    ));
                }
                s
            }
            Err(e) => format!("unreachable ({e})"),
        };
        println!("{node_addr:<22} {summary}");
    }
    Ok(())
}

/// Promotes the replica at `addr`: it takes its master's slots, and the old master becomes its
/// replica, in a new topology version pushed to every node.
fn failover(addr: &str, password: Option<&str>) -> Result<(), String> {
    let mut c = Conn::open(addr, password)?;
    let nodes = c.ok(&["CLUSTER", "NODES"])?.text();
    let version: i64 = c.ok(&["CLUSTERX", "VERSION"])?.text().parse().unwrap_or(0);
    let mut rows: Vec<Vec<String>> = nodes
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .filter(|f: &Vec<String>| f.len() >= 8)
        .collect();
    let me = rows
        .iter()
        .position(|f| f[2].contains("myself"))
        .ok_or("the node does not know itself")?;
    if !rows[me][2].contains("slave") {
        return Err(format!("{addr} is not a replica"));
    }
    let old_master = rows[me][3].clone();
    let new_master = rows[me][0].clone();
    let mut text = String::new();
    for f in &mut rows {
        let (host, port) = split_addr(f[1].split('@').next().unwrap_or(""))?;
        let id = &f[0];
        let slots = if f[2].contains("master") {
            f[8..].join(" ")
        } else {
            String::new()
        };
        if *id == new_master {
            let theirs = nodes
                .lines()
                .find(|l| l.starts_with(&old_master))
                .map(|l| l.split(' ').skip(8).collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            text.push_str(&format!("{id} {host} {port} master - {theirs}\n"));
        } else if *id == old_master || f[3] == old_master {
            text.push_str(&format!("{id} {host} {port} slave {new_master}\n"));
        } else if f[2].contains("master") {
            text.push_str(&format!("{id} {host} {port} master - {slots}\n"));
        } else {
            text.push_str(&format!("{id} {host} {port} slave {}\n", f[3]));
        }
    }
    let addrs: Vec<String> = rows
        .iter()
        .map(|f| f[1].split('@').next().unwrap_or("").to_string())
        .collect();
    let ids: Vec<String> = rows.iter().map(|f| f[0].clone()).collect();
    push(&addrs, &ids, &text, version + 1, password)?;
    show(addr, password)
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut password = None;
    let mut replicas = 0;
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    let cmd = it.next().unwrap_or_default();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-a" | "--password" => password = it.next(),
            "--replicas" => {
                replicas = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--replicas takes a number")?
            }
            _ => rest.push(a),
        }
    }
    let password = password.as_deref();
    match (cmd.as_str(), rest.as_slice()) {
        ("create", addrs) => create(addrs, replicas, password),
        ("show", [addr]) => show(addr, password),
        ("failover", [addr]) => failover(addr, password),
        _ => Err("usage: quarry-cluster create [--replicas N] [-a PASSWORD] HOST:PORT... | show HOST:PORT | failover REPLICA-HOST:PORT".into()),
    }
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quarry-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
