//! The cluster topology: parsed from Kvrocks' nodes string, persisted in `nodes.conf`, and
//! shown as CLUSTER NODES, SLOTS, SHARDS and INFO.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::SLOT_COUNT;

/// Kvrocks' node ids are 40 characters.
pub const NODE_ID_LEN: usize = 40;

/// Errors with Kvrocks' texts (each is sent as `-ERR <text>`, except `NotInitialized`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("Invalid cluster nodes info")]
    InvalidNodesInfo,
    #[error("Invalid cluster node id")]
    InvalidNodeId,
    #[error("Invalid cluster node port")]
    InvalidPort,
    #[error("Invalid cluster node role")]
    InvalidRole,
    #[error("Slot is out of range")]
    SlotOutOfRange,
    #[error("Slot distribution is overlapped")]
    SlotOverlapped,
    #[error("Invalid nodes definition: Missing newline between node entries.")]
    MissingNewline,
    #[error("Invalid cluster version")]
    InvalidVersion,
    #[error("The node isn't a master")]
    NotAMaster,
    #[error("No this node in the cluster")]
    UnknownNode,
    #[error("Invalid slot id")]
    InvalidSlot,
    /// Sent as `-CLUSTERDOWN The cluster is not initialized`.
    #[error("The cluster is not initialized")]
    NotInitialized,
    #[error("{0}")]
    Other(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Slave,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub host: String,
    pub port: u16,
    pub role: Role,
    /// The master's id for a slave.
    pub master_id: Option<String>,
    /// `slave,fail` (kvrocks-controller marks failed replicas).
    pub failed: bool,
}

/// A whole topology as pushed by the controller.
#[derive(Clone, Debug)]
pub struct Topology {
    /// -1 until the first SETNODES.
    pub version: i64,
    /// This node's id ("" until known).
    pub myid: String,
    /// By id (Kvrocks keeps them in a sorted map, and CLUSTER NODES lists them in that order).
    pub nodes: BTreeMap<String, Node>,
    /// Owner id of each slot.
    slots: Vec<Option<u32>>,
    /// Index -> id, for `slots`.
    owners: Vec<String>,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            version: -1,
            myid: String::new(),
            nodes: BTreeMap::new(),
            slots: vec![None; SLOT_COUNT as usize],
            owners: Vec::new(),
        }
    }
}

fn is_node_id(s: &str) -> bool {
    s.len() == NODE_ID_LEN && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_slot(s: &str) -> Result<u16, ClusterError> {
    s.parse::<u16>()
        .ok()
        .filter(|&v| v < SLOT_COUNT)
        .ok_or(ClusterError::SlotOutOfRange)
}

/// A parsed nodes string: nodes and the owner of each slot.
pub struct Parsed {
    pub nodes: BTreeMap<String, Node>,
    pub slots: Vec<Option<String>>,
}

/// Parses Kvrocks' nodes string: one node per line,
/// `<id> <host> <port> master|slave[,fail]|replica <master_id|-> [slot | a-b ...]`.
pub fn parse_nodes(text: &str) -> Result<Parsed, ClusterError> {
    let mut nodes = BTreeMap::new();
    let mut slots: Vec<Option<String>> = vec![None; SLOT_COUNT as usize];
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return Err(ClusterError::InvalidNodesInfo);
    }
    for line in lines {
        let f: Vec<&str> = line.split(' ').filter(|t| !t.is_empty()).collect();
        if f.len() < 5 {
            return Err(ClusterError::InvalidNodesInfo);
        }
        if f[0].len() != NODE_ID_LEN {
            return Err(ClusterError::InvalidNodeId);
        }
        let port: u16 = f[2].parse().map_err(|_| ClusterError::InvalidPort)?;
        let role_text = f[3].to_ascii_lowercase();
        let (role_name, failed) = match role_text.split_once(',') {
            Some((r, "fail")) => (r.to_string(), true),
            Some(_) => return Err(ClusterError::InvalidRole),
            None => (role_text.clone(), false),
        };
        let role = match role_name.as_str() {
            "master" => Role::Master,
            "slave" | "replica" => Role::Slave,
            _ => return Err(ClusterError::InvalidRole),
        };
        let master_id = f[4];
        if (role == Role::Master && master_id != "-")
            || (role == Role::Slave && master_id.len() != NODE_ID_LEN)
        {
            return Err(ClusterError::InvalidNodeId);
        }
        if role == Role::Slave && f.len() != 5 {
            return Err(ClusterError::InvalidNodesInfo);
        }
        for spec in &f[5..] {
            let (a, b) = match spec.split_once('-') {
                None => {
                    if is_node_id(spec) {
                        return Err(ClusterError::MissingNewline);
                    }
                    let v = parse_slot(spec)?;
                    (v, v)
                }
                Some((x, y)) => {
                    if y.contains('-') {
                        return Err(ClusterError::SlotOutOfRange);
                    }
                    let (a, b) = (parse_slot(x)?, parse_slot(y)?);
                    if a >= b {
                        return Err(ClusterError::SlotOutOfRange);
                    }
                    (a, b)
                }
            };
            for s in a..=b {
                let owner = &mut slots[s as usize];
                if owner.is_some() {
                    return Err(ClusterError::SlotOverlapped);
                }
                *owner = Some(f[0].to_string());
            }
        }
        nodes.insert(
            f[0].to_string(),
            Node {
                id: f[0].to_string(),
                host: f[1].to_string(),
                port,
                role,
                master_id: (role == Role::Slave).then(|| master_id.to_string()),
                failed,
            },
        );
    }
    Ok(Parsed { nodes, slots })
}

/// Formats slot ranges as Kvrocks does: `N` or `A-B`, space-separated.
pub fn format_ranges(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `N` or `A-B` (A ≤ B) as a slot range.
pub fn parse_range(s: &str) -> Option<(u16, u16)> {
    let p = |x: &str| x.parse::<u16>().ok().filter(|&v| v < SLOT_COUNT);
    match s.split_once('-') {
        Some((a, b)) => p(a).zip(p(b)).filter(|(a, b)| a <= b),
        None => p(s).map(|v| (v, v)),
    }
}

impl Topology {
    pub fn initialized(&self) -> bool {
        self.version >= 0
    }

    /// Replaces the nodes and slots with `parsed`.
    pub fn install(&mut self, parsed: Parsed, version: i64) {
        self.nodes = parsed.nodes;
        self.owners = self.nodes.keys().cloned().collect();
        self.slots = parsed
            .slots
            .iter()
            .map(|o| {
                o.as_ref()
                    .and_then(|id| self.owners.iter().position(|x| x == id))
                    .map(|i| i as u32)
            })
            .collect();
        self.version = version;
    }

    /// Gives the slots `from..=to` to the node `id` (CLUSTERX SETSLOT); the caller checks that
    /// it is a known master.
    pub fn assign(&mut self, from: u16, to: u16, id: &str, version: i64) {
        if let Some(idx) = self.owners.iter().position(|x| x == id) {
            for s in from..=to {
                self.slots[s as usize] = Some(idx as u32);
            }
        }
        self.version = version;
    }

    /// The owner of `slot`.
    pub fn owner(&self, slot: u16) -> Option<&Node> {
        let idx = (*self.slots.get(slot as usize)?)?;
        self.nodes.get(&self.owners[idx as usize])
    }

    pub fn myself(&self) -> Option<&Node> {
        self.nodes.get(&self.myid)
    }

    /// This node's master, if it is a slave whose master is known.
    pub fn my_master(&self) -> Option<&Node> {
        let me = self.myself()?;
        if me.role != Role::Slave {
            return None;
        }
        self.nodes.get(me.master_id.as_deref()?)
    }

    /// The slot ranges a node owns.
    pub fn ranges_of(&self, id: &str) -> Vec<(u16, u16)> {
        let Some(idx) = self.owners.iter().position(|x| x == id) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut start: Option<u16> = None;
        for s in 0..=SLOT_COUNT {
            let mine = s < SLOT_COUNT && self.slots[s as usize] == Some(idx as u32);
            match (mine, start) {
                (true, None) => start = Some(s),
                (false, Some(a)) => {
                    out.push((a, s - 1));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    /// Contiguous runs of slots with the same owner: (start, end, owner id).
    pub fn slot_runs(&self) -> Vec<(u16, u16, &str)> {
        let mut out = Vec::new();
        let mut s = 0u16;
        while s < SLOT_COUNT {
            let owner = self.slots[s as usize];
            let mut e = s;
            while e + 1 < SLOT_COUNT && self.slots[e as usize + 1] == owner {
                e += 1;
            }
            if let Some(i) = owner {
                out.push((s, e, self.owners[i as usize].as_str()));
            }
            s = e + 1;
        }
        out
    }

    pub fn replicas_of(&self, master_id: &str) -> Vec<&Node> {
        self.nodes
            .values()
            .filter(|n| n.role == Role::Slave && n.master_id.as_deref() == Some(master_id))
            .collect()
    }

    pub fn slots_assigned(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Masters that own at least one slot.
    pub fn cluster_size(&self) -> usize {
        let mut owners: Vec<u32> = self.slots.iter().flatten().copied().collect();
        owners.sort_unstable();
        owners.dedup();
        owners.len()
    }

    fn node_line(&self, n: &Node, now_ms: u128, extra: &str) -> String {
        let mut line = format!("{} {}:{}@{} ", n.id, n.host, n.port, n.port as u32 + 10000);
        if n.id == self.myid {
            line.push_str("myself,");
        }
        match n.role {
            Role::Master => line.push_str("master - "),
            Role::Slave => {
                line.push_str("slave");
                if n.failed {
                    line.push_str(",fail");
                }
                let _ = write!(line, " {} ", n.master_id.as_deref().unwrap_or("-"));
            }
        }
        let _ = write!(
            line,
            "{} {} {} connected",
            now_ms.saturating_sub(1),
            now_ms,
            self.version
        );
        if n.role == Role::Master {
            let ranges = self.ranges_of(&n.id);
            if !ranges.is_empty() {
                line.push(' ');
                line.push_str(&format_ranges(&ranges));
            }
        }
        line.push_str(extra);
        line.push('\n');
        line
    }

    /// CLUSTER NODES. `extra_for_myself` carries the migration markers.
    pub fn nodes_text(&self, extra_for_myself: &str) -> String {
        let now = now_ms();
        self.nodes
            .values()
            .map(|n| {
                let extra = if n.id == self.myid {
                    extra_for_myself
                } else {
                    ""
                };
                self.node_line(n, now, extra)
            })
            .collect()
    }

    /// CLUSTER REPLICAS <master_id>.
    pub fn replicas_text(&self, master_id: &str) -> Result<String, ClusterError> {
        let master = self
            .nodes
            .get(master_id)
            .ok_or(ClusterError::InvalidNodeId)?;
        if master.role != Role::Master {
            return Err(ClusterError::NotAMaster);
        }
        let now = now_ms();
        Ok(self
            .replicas_of(master_id)
            .into_iter()
            .map(|n| self.node_line(n, now, ""))
            .collect())
    }

    /// CLUSTER INFO without the migration lines.
    pub fn info_text(&self) -> String {
        let assigned = self.slots_assigned();
        format!(
            "cluster_state:ok\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{assigned}\r\ncluster_slots_pfail:0\r\ncluster_slots_fail:0\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
            self.nodes.len(),
            self.cluster_size(),
            self.version,
            self.version
        )
    }

    /// The `node ...` lines of nodes.conf (the nodes string SETNODES takes).
    pub fn nodes_string(&self) -> String {
        let mut out = String::new();
        for n in self.nodes.values() {
            let _ = write!(out, "{} {} {} ", n.id, n.host, n.port);
            match n.role {
                Role::Master => {
                    out.push_str("master -");
                    let ranges = self.ranges_of(&n.id);
                    if !ranges.is_empty() {
                        out.push(' ');
                        out.push_str(&format_ranges(&ranges));
                    }
                }
                Role::Slave => {
                    out.push_str(if n.failed { "slave,fail " } else { "slave " });
                    out.push_str(n.master_id.as_deref().unwrap_or("-"));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Writes `nodes.conf` as Kvrocks does (`version`, `id`, `node ...` lines), so that a crash
    /// leaves the old file or the new one ([`quarry_storage::files::write_durable`]).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut text = format!("version {}\nid {}\n", self.version, self.myid);
        for line in self.nodes_string().lines() {
            let _ = writeln!(text, "node {line}");
        }
        quarry_storage::files::write_durable(path, text.as_bytes())
    }

    /// Reads `nodes.conf`; None if there is none.
    pub fn load(path: &Path) -> Result<Option<Topology>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut version = -1;
        let mut id = String::new();
        let mut nodes = String::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = value.trim();
            match key {
                "version" => {
                    version = value.parse().map_err(|_| {
                        format!(
                            "{}:{}: {}",
                            path.display(),
                            n + 1,
                            ClusterError::InvalidVersion
                        )
                    })?
                }
                "id" => {
                    // An empty id: the topology was set before this node learned its id.
                    if !value.is_empty() && value.len() != NODE_ID_LEN {
                        return Err(format!(
                            "{}:{}: {}",
                            path.display(),
                            n + 1,
                            ClusterError::InvalidNodeId
                        ));
                    }
                    id = value.to_string();
                }
                "node" => {
                    nodes.push_str(value);
                    nodes.push('\n');
                }
                other => {
                    return Err(format!(
                        "{}:{}: unknown key: {other}",
                        path.display(),
                        n + 1
                    ))
                }
            }
        }
        let mut topo = Topology {
            myid: id,
            ..Topology::default()
        };
        if version >= 0 {
            let parsed = parse_nodes(&nodes).map_err(|e| format!("{}: {e}", path.display()))?;
            topo.install(parsed, version);
        }
        Ok(Some(topo))
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a000000000000000000000000000000000000001";
    const B: &str = "b000000000000000000000000000000000000002";
    const C: &str = "c000000000000000000000000000000000000003";

    #[test]
    fn parses_kvrocks_nodes_strings_with_their_errors() {
        let text = format!(
            "{A} 127.0.0.1 7000 master - 0-100 200  300-400\n{B}  127.0.0.1 7001 slave,fail {A}\n\n{C} h 7002 MASTER - 101-199 201-299 401-16383\n"
        );
        let p = parse_nodes(&text).unwrap();
        let mut t = Topology::default();
        t.install(p, 3);
        t.myid = A.into();
        assert_eq!(t.ranges_of(A), vec![(0, 100), (200, 200), (300, 400)]);
        assert_eq!(t.owner(200).unwrap().id, A);
        assert_eq!(t.owner(201).unwrap().id, C);
        assert!(t.nodes[B].failed);
        assert_eq!(t.cluster_size(), 2);
        assert_eq!(t.slots_assigned(), 16384);
        let nodes = t.nodes_text("");
        let first: Vec<&str> = nodes.lines().next().unwrap().split(' ').collect();
        assert_eq!(first[..3], [A, "127.0.0.1:7000@17000", "myself,master"]);
        assert_eq!(first[3], "-");
        assert_eq!(first[6], "3");
        assert_eq!(first[7], "connected");
        assert_eq!(first[8..], ["0-100", "200", "300-400"]);
        assert!(nodes.contains(&format!("slave,fail {A} ")));

        let bad = |s: String| parse_nodes(&s).err().unwrap().to_string();
        assert_eq!(bad(format!("{A} h 1 master")), "Invalid cluster nodes info");
        assert_eq!(
            bad("abc h 1 master -".to_string()),
            "Invalid cluster node id"
        );
        assert_eq!(
            bad(format!("{A} h 70000 master -")),
            "Invalid cluster node port"
        );
        assert_eq!(bad(format!("{A} h 1 boss -")), "Invalid cluster node role");
        assert_eq!(
            bad(format!("{A} h 1 master {B}")),
            "Invalid cluster node id"
        );
        assert_eq!(bad(format!("{A} h 1 slave -")), "Invalid cluster node id");
        assert_eq!(
            bad(format!("{A} h 1 slave {B} 1")),
            "Invalid cluster nodes info"
        );
        assert_eq!(
            bad(format!("{A} h 1 master - 16384")),
            "Slot is out of range"
        );
        assert_eq!(bad(format!("{A} h 1 master - 5-5")), "Slot is out of range");
        assert_eq!(
            bad(format!("{A} h 1 master - 0-10\n{C} h 2 master - 10")),
            "Slot distribution is overlapped"
        );
        assert_eq!(
            bad(format!("{A} h 1 master - 0-10 {C} h 2 master -")),
            "Invalid nodes definition: Missing newline between node entries."
        );
        assert_eq!(bad(String::from("\n\n")), "Invalid cluster nodes info");
    }

    #[test]
    fn nodes_conf_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nodes.conf");
        let mut t = Topology::default();
        t.install(
            parse_nodes(&format!(
                "{A} 127.0.0.1 7000 master - 0-5000 6000\n{B} 127.0.0.1 7001 slave {A}\n{C} 127.0.0.1 7002 master - 5001-5999 6001-16383"
            ))
            .unwrap(),
            7,
        );
        t.myid = B.into();
        t.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&format!(
            "version 7\nid {B}\nnode {A} 127.0.0.1 7000 master - 0-5000 6000\n"
        )));
        let back = Topology::load(&path).unwrap().unwrap();
        assert_eq!(back.version, 7);
        assert_eq!(back.myid, B);
        assert_eq!(back.nodes, t.nodes);
        assert_eq!(back.my_master().unwrap().id, A);
        assert_eq!(back.ranges_of(C), vec![(5001, 5999), (6001, 16383)]);
        assert!(Topology::load(&dir.path().join("none")).unwrap().is_none());
    }
}
