//! Whether this node serves a command (Kvrocks' `Cluster::CanExecByMySelf`, kvrocks-compat.md
//! §3.4).

use crate::topology::{Role, Topology};

/// What the routing decision needs to know about one command.
pub struct RouteRequest<'a> {
    /// The slots of the command's keys, in order.
    pub slots: &'a [u16],
    pub write: bool,
    /// The connection sent READONLY.
    pub readonly_conn: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Serve,
    /// `-MOVED <slot> <host>:<port>`
    Moved {
        slot: u16,
        host: String,
        port: u16,
    },
    /// `-CROSSSLOT Attempted to access keys that don't hash to the same slot`
    CrossSlot,
    /// `-CLUSTERDOWN Hash slot not served`
    NotServed,
    /// `-CLUSTERDOWN The cluster is not initialized`
    NotInitialized,
}

impl Route {
    /// The error reply, without the leading `-`; None for `Serve`.
    pub fn error(&self) -> Option<String> {
        Some(match self {
            Route::Serve => return None,
            Route::Moved { slot, host, port } => format!("MOVED {slot} {host}:{port}"),
            Route::CrossSlot => {
                "CROSSSLOT Attempted to access keys that don't hash to the same slot".into()
            }
            Route::NotServed => "CLUSTERDOWN Hash slot not served".into(),
            Route::NotInitialized => "CLUSTERDOWN The cluster is not initialized".into(),
        })
    }
}

pub fn route(topo: &Topology, req: &RouteRequest<'_>) -> Route {
    let Some(&slot) = req.slots.first() else {
        return Route::Serve;
    };
    if req.slots.iter().any(|&s| s != slot) {
        return Route::CrossSlot;
    }
    if !topo.initialized() {
        return Route::NotInitialized;
    }
    let Some(owner) = topo.owner(slot) else {
        return Route::NotServed;
    };
    if owner.id == topo.myid {
        return Route::Serve;
    }
    // A replica serves reads of its master's slots to connections that asked for it.
    if let Some(me) = topo.myself() {
        if me.role == Role::Slave
            && !req.write
            && req.readonly_conn
            && me.master_id.as_deref() == Some(owner.id.as_str())
        {
            return Route::Serve;
        }
    }
    Route::Moved {
        slot,
        host: owner.host.clone(),
        port: owner.port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::parse_nodes;

    const A: &str = "a000000000000000000000000000000000000001";
    const B: &str = "b000000000000000000000000000000000000002";
    const C: &str = "c000000000000000000000000000000000000003";

    fn topo(myid: &str) -> Topology {
        let mut t = Topology::default();
        t.install(
            parse_nodes(&format!(
                "{A} 10.0.0.1 7000 master - 0-8000\n{B} 10.0.0.2 7001 slave {A}\n{C} 10.0.0.3 7002 master - 8001-16000"
            ))
            .unwrap(),
            1,
        );
        t.myid = myid.into();
        t
    }

    fn req(slots: &[u16], write: bool, readonly_conn: bool) -> RouteRequest<'_> {
        RouteRequest {
            slots,
            write,
            readonly_conn,
        }
    }

    #[test]
    fn routes_like_kvrocks() {
        let a = topo(A);
        assert_eq!(route(&a, &req(&[], true, false)), Route::Serve);
        assert_eq!(route(&a, &req(&[5, 5], true, false)), Route::Serve);
        assert_eq!(route(&a, &req(&[5, 6], false, false)), Route::CrossSlot);
        assert_eq!(route(&a, &req(&[16100], false, false)), Route::NotServed);
        assert_eq!(
            route(&a, &req(&[9000], false, false)).error().unwrap(),
            "MOVED 9000 10.0.0.3:7002"
        );
        let b = topo(B);
        assert_eq!(
            route(&b, &req(&[5], false, false)).error().unwrap(),
            "MOVED 5 10.0.0.1:7000"
        );
        assert_eq!(route(&b, &req(&[5], false, true)), Route::Serve);
        assert!(matches!(
            route(&b, &req(&[5], true, true)),
            Route::Moved { .. }
        ));
        assert!(matches!(
            route(&b, &req(&[9000], false, true)),
            Route::Moved { .. }
        ));
        assert_eq!(
            route(&Topology::default(), &req(&[1], false, false))
                .error()
                .unwrap(),
            "CLUSTERDOWN The cluster is not initialized"
        );
    }
}
