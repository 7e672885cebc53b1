//! What part of a table a restore puts back, and what a targeted restore did.

use serde::{Deserialize, Serialize};

/// The part of the table a restore makes equal to the restore point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Scope {
    /// Every item: delete and copy back (or diff). Needs recovery mode.
    #[default]
    Table,
    /// Put back every item of the restore point that is absent now; never overwrite or delete.
    Missing,
    /// Make each key of the file equal to its restore-point version (put or delete).
    Keys {
        file: String,
        /// SHA-256 of the file as the run read it: a resume refuses a changed file.
        sha256: String,
        /// Keys in the file.
        keys: u64,
    },
    /// The same for every item under these partition key values, read with Query.
    Partition {
        /// As given on the command line; typed by the table's hash key.
        values: Vec<String>,
    },
    /// Undo every write made in `[from, to)`: each key an incremental export names is put back
    /// to its image at `from`, on condition that it is still its image at `to`.
    Window {
        from: jiff::Timestamp,
        to: jiff::Timestamp,
        /// Where the export is written: the caller's bucket and prefix.
        bucket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// Written without a condition: writes made after `to` are overwritten.
        #[serde(default)]
        overwrite_later_writes: bool,
    },
}

/// What a run does to the table: all of it by a strategy, or a targeted scope, which has no
/// strategy (its writes are conditional puts and deletes of its own keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode<'a> {
    Table(super::Strategy),
    Targeted(&'a Scope),
}

impl<'a> Mode<'a> {
    /// The mode of a run of `scope`; `strategy` counts only for the whole table.
    pub fn of(scope: &'a Scope, strategy: super::Strategy) -> Mode<'a> {
        match scope {
            Scope::Table => Mode::Table(strategy),
            Scope::Missing
            | Scope::Keys { .. }
            | Scope::Partition { .. }
            | Scope::Window { .. } => Mode::Targeted(scope),
        }
    }

    /// Recovery mode guards a whole-table restore; a targeted scope touches no item outside it.
    pub fn needs_recovery_mode(self) -> bool {
        matches!(self, Mode::Table(_))
    }

    /// Conditional writes, each counted as a put, delete, unchanged key or conflict.
    pub fn targeted(self) -> Option<&'a Scope> {
        match self {
            Mode::Table(_) => None,
            Mode::Targeted(scope) => Some(scope),
        }
    }
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Table => "table",
            Scope::Missing => "missing",
            Scope::Keys { .. } => "keys",
            Scope::Partition { .. } => "partition",
            Scope::Window { .. } => "window",
        }
    }

    /// The same request: the same kind and file or values (a keys file's hash is checked apart).
    pub fn same_request(&self, other: &Scope) -> bool {
        self.as_requested() == other.as_requested()
    }

    /// The scope as asked for, without what preflight learns (a keys file's hash and count).
    fn as_requested(&self) -> Scope {
        match self {
            Scope::Keys { file, .. } => Scope::Keys {
                file: file.clone(),
                sha256: String::new(),
                keys: 0,
            },
            Scope::Table | Scope::Missing | Scope::Partition { .. } | Scope::Window { .. } => {
                self.clone()
            }
        }
    }

    /// One line for plans, journals and reports.
    pub fn describe(&self) -> String {
        match self {
            Scope::Table => "the whole table".into(),
            Scope::Missing => {
                "missing items: every restore-point item absent from the live table is put back; \
                 nothing existing is overwritten or deleted"
                    .into()
            }
            Scope::Keys { file, keys, .. } => format!(
                "{keys} keys from {file}: each made equal to its restore-point version (put, or \
                 deleted when it did not exist then)"
            ),
            Scope::Partition { values } => format!(
                "partition key value(s) {}: every item under them made equal to the restore point",
                values.join(", ")
            ),
            Scope::Window {
                from,
                to,
                overwrite_later_writes,
                ..
            } => format!(
                "the writes made from {from} to {to}: each item they changed put back as it was at \
                 {from}{}",
                if *overwrite_later_writes {
                    ", OVERWRITING any write made to it after the window"
                } else {
                    ", unless it was written again after the window (a conflict, kept)"
                }
            ),
        }
    }
}

/// Conflict keys kept in the record; past this only the count grows (a record must stay well
/// under DynamoDB's 400 KB item limit).
pub const CONFLICTS_KEPT: usize = 1_000;

/// What a targeted restore wrote and what it left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Targeted {
    pub puts: u64,
    pub deletes: u64,
    /// In scope and already equal to the restore point.
    pub unchanged: u64,
    /// Writes refused by their condition: the application changed the item after it was read.
    pub conflicts: u64,
    /// The conflicts' keys (DynamoDB JSON text, or digests for a sensitive table), the first
    /// [`CONFLICTS_KEPT`].
    #[serde(default)]
    pub conflict_keys: Vec<String>,
    /// Earlier passes' conflicts, re-planned by a rerun.
    #[serde(default)]
    pub replanned: u64,
}

impl Targeted {
    pub fn is_empty(&self) -> bool {
        *self == Targeted::default()
    }

    /// Another segment's counts and conflicts added to these.
    pub fn absorb(&mut self, other: &Targeted) {
        self.puts += other.puts;
        self.deletes += other.deletes;
        self.unchanged += other.unchanged;
        for key in &other.conflict_keys {
            self.add_conflict(key.clone());
        }
        // Conflicts past the kept keys were counted but not named.
        self.conflicts += other.conflicts - other.conflict_keys.len() as u64;
    }

    pub fn add_conflict(&mut self, key: String) {
        self.conflicts += 1;
        if self.conflict_keys.len() < CONFLICTS_KEPT && !self.conflict_keys.contains(&key) {
            self.conflict_keys.push(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_read_back_and_an_old_record_is_the_whole_table() {
        for scope in [
            Scope::Table,
            Scope::Missing,
            Scope::Keys {
                file: "keys.jsonl".into(),
                sha256: "ab".into(),
                keys: 2,
            },
            Scope::Partition {
                values: vec!["c#1".into()],
            },
            Scope::Window {
                from: "2026-01-01T09:05:00Z".parse().unwrap(),
                to: "2026-01-01T09:45:00Z".parse().unwrap(),
                bucket: "b".into(),
                prefix: Some("dr".into()),
                overwrite_later_writes: false,
            },
        ] {
            let text = serde_json::to_string(&scope).unwrap();
            assert_eq!(serde_json::from_str::<Scope>(&text).unwrap(), scope);
        }
        #[derive(Deserialize)]
        struct Old {
            #[serde(default)]
            scope: Scope,
        }
        let old: Old = serde_json::from_str("{}").unwrap();
        assert_eq!(old.scope, Scope::Table);
    }

    #[test]
    fn conflict_keys_are_bounded_but_all_are_counted() {
        let mut t = Targeted::default();
        for i in 0..CONFLICTS_KEPT + 5 {
            t.add_conflict(format!("k{i}"));
        }
        t.add_conflict("k0".into());
        assert_eq!(t.conflicts as usize, CONFLICTS_KEPT + 6);
        assert_eq!(t.conflict_keys.len(), CONFLICTS_KEPT);
    }
}
