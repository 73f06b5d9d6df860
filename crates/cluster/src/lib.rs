//! Cluster mode as Kvrocks runs it (kvrocks-compat.md §3): 16384 slots whose topology an
//! external controller pushes with `CLUSTERX SETNODES`; no gossip.
//!
//! - [`topology`]: the nodes-string parser with Kvrocks' exact errors, versions, "myself",
//!   `nodes.conf`, and the replies of CLUSTER NODES / SLOTS / SHARDS / INFO.
//! - [`routing`]: whether this node serves a command's slot, or MOVED / CROSSSLOT /
//!   CLUSTERDOWN.

pub mod migrate;
pub mod routing;
pub mod topology;

pub use quarry_storage::slot::{key_slot, SLOT_COUNT};
pub use routing::{route, Route, RouteRequest};
pub use topology::{ClusterError, Node, Role, Topology};
