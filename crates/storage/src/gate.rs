//! The write gate (DESIGN.md §2): the one place that decides who may write to storage.
//!
//! A replica's engine sequence must equal its master's for the same history, so while a node is
//! a replica, or has not settled its role yet at start-up, only the replication applier may
//! write. A master accepts client writes and refuses applier writes. Every write of the engine
//! passes through [`WriteGate::check`].

use std::fmt;

use crate::sharded::{ReadGuard, ReadMostly, WriteGuard};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Start-up, before the role is decided: nothing may write.
    Unknown,
    Master,
    Replica,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Unknown => "starting (role not decided yet)",
            Role::Master => "a master",
            Role::Replica => "a replica",
        })
    }
}

/// Who is asking to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOrigin {
    /// Commands from clients, and every local side effect (PUBLISH, scripts, ids, ...).
    Local,
    /// The replication applier writing a master's batch.
    Replication,
}

/// The role, behind a lock that every write holds while it runs: a role change waits for the
/// writes already admitted, so none of them lands after the change.
#[derive(Debug)]
pub struct WriteGate {
    /// Split by thread: every write reads it ([`crate::sharded`]).
    role: ReadMostly<Role>,
}

impl Default for WriteGate {
    fn default() -> Self {
        WriteGate {
            role: ReadMostly::new(Role::Unknown),
        }
    }
}

impl WriteGate {
    pub fn role(&self) -> Role {
        *self.role.read()
    }

    /// Changes the role once every admitted write has finished.
    pub fn set_role(&self, role: Role) {
        *self.role.write() = role;
    }

    /// Returns `Err(role)` if a write from `origin` is not allowed in the current role.
    pub fn check(&self, origin: WriteOrigin) -> Result<(), Role> {
        Self::allows(*self.role.read(), origin)
    }

    /// Admits a write from `origin`: the role cannot change until the guard is dropped.
    pub fn admit(&self, origin: WriteOrigin) -> Result<ReadGuard<'_, Role>, Role> {
        let guard = self.role.read();
        Self::allows(*guard, origin)?;
        Ok(guard)
    }

    /// Admits a write from `origin` that no other write may overlap: it waits for the writes
    /// already admitted and holds new ones back until the guard is dropped. For the rare
    /// writes whose position in the history must be exact (verification markers, repairs).
    pub fn admit_alone(&self, origin: WriteOrigin) -> Result<WriteGuard<'_, Role>, Role> {
        let guard = self.role.write();
        Self::allows(*guard, origin)?;
        Ok(guard)
    }

    fn allows(role: Role, origin: WriteOrigin) -> Result<(), Role> {
        match (role, origin) {
            (Role::Master, WriteOrigin::Local) | (Role::Replica, WriteOrigin::Replication) => {
                Ok(())
            }
            (role, _) => Err(role),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_writes_before_the_role_is_decided() {
        let gate = WriteGate::default();
        assert_eq!(gate.check(WriteOrigin::Local), Err(Role::Unknown));
        assert_eq!(gate.check(WriteOrigin::Replication), Err(Role::Unknown));
    }

    #[test]
    fn each_role_admits_only_its_writer() {
        let gate = WriteGate::default();
        gate.set_role(Role::Master);
        assert!(gate.check(WriteOrigin::Local).is_ok());
        assert_eq!(gate.check(WriteOrigin::Replication), Err(Role::Master));
        gate.set_role(Role::Replica);
        assert_eq!(gate.check(WriteOrigin::Local), Err(Role::Replica));
        assert!(gate.check(WriteOrigin::Replication).is_ok());
    }
}
