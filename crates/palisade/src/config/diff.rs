//! What changed between two configs, by name, so a reload can touch only the
//! SAs and connections that changed and leave the rest (and their traffic,
//! sequence numbers and replay windows) alone.

use super::Config;
use serde::Serialize;

/// Names added, removed, changed and unchanged in one kind of entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
}

impl NameDiff {
    fn of<T: PartialEq>(old: &[T], new: &[T], name: impl Fn(&T) -> &str) -> NameDiff {
        let mut d = NameDiff::default();
        for o in old {
            match new.iter().find(|n| name(n) == name(o)) {
                None => d.removed.push(name(o).to_string()),
                Some(n) if n == o => d.unchanged.push(name(o).to_string()),
                Some(_) => d.changed.push(name(o).to_string()),
            }
        }
        for n in new {
            if !old.iter().any(|o| name(o) == name(n)) {
                d.added.push(name(n).to_string());
            }
        }
        d
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The difference between the running config and a newly loaded one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    pub manual: NameDiff,
    pub connections: NameDiff,
    /// `[daemon]` changed; some of it (socket path, TUN name) only takes effect
    /// on restart, which the reload reports.
    pub daemon_changed: bool,
}

impl ConfigDiff {
    pub fn is_empty(&self) -> bool {
        self.manual.is_empty() && self.connections.is_empty() && !self.daemon_changed
    }
}

/// Compares by name; an entry is "changed" if any field differs, keys
/// included (a rekeyed manual SA must be reinstalled).
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    ConfigDiff {
        manual: NameDiff::of(&old.manual, &new.manual, |m| m.name.as_str()),
        connections: NameDiff::of(&old.connections, &new.connections, |c| c.name.as_str()),
        daemon_changed: old.daemon != new.daemon,
    }
}
