//! The journal in a local directory: one JSON file per execution and per lease, each replaced
//! atomically (temporary file, fsync, rename, fsync of the directory).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::RecoveryMode;
use super::{Execution, Journal, Lease, Phase, SegmentRecord};
use crate::error::{Error, Result};

pub struct LocalJournal {
    dir: PathBuf,
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Journal(format!(
        "cannot {what} {}: {e}; check the --journal directory",
        path.display()
    ))
}

/// Execution ids and table names are `[A-Za-z0-9_.-]`, so they are safe as file names.
fn file_name(id: &str) -> Result<String> {
    if id.is_empty()
        || id.starts_with('.')
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(Error::invalid(
            "execution id",
            format!("{id:?} is not an execution id such as inc-1.MyTable"),
        ));
    }
    Ok(format!("{id}.json"))
}

impl LocalJournal {
    pub fn open(dir: &Path) -> Result<LocalJournal> {
        for d in [dir.to_path_buf()]
            .into_iter()
            .chain(["executions", "leases", "recovery-mode", "segments"].map(|s| dir.join(s)))
        {
            crate::private::own_dir(&d).map_err(|e| io(&d, "create", e))?;
        }
        Ok(LocalJournal {
            dir: dir.to_path_buf(),
        })
    }

    fn execution_path(&self, id: &str) -> Result<PathBuf> {
        Ok(self.dir.join("executions").join(file_name(id)?))
    }

    /// A table's lease, or an environment's (`environment:NAME`, a name no table can have) in
    /// a folder of their own.
    fn lease_path(&self, table: &str) -> Result<PathBuf> {
        match table.strip_prefix(super::ENVIRONMENT_LEASE) {
            Some(env) => {
                let dir = self.dir.join("leases").join("environments");
                crate::private::own_dir(&dir).map_err(|e| io(&dir, "create", e))?;
                Ok(dir.join(file_name(env)?))
            }
            None => Ok(self.dir.join("leases").join(file_name(table)?)),
        }
    }

    fn segment_path(&self, id: &str, phase: Phase, segment: u32) -> Result<PathBuf> {
        let name = file_name(&format!("{id}.{}.{segment}", phase.as_str()))?;
        Ok(self.dir.join("segments").join(name))
    }

    /// Serialises lease swaps between processes on this machine.
    fn lock(&self) -> Result<File> {
        self.lock_in("leases")
    }

    /// Serialises compare-and-swaps of the files of `sub`, between threads and processes alike
    /// (each call opens its own description of the lock file).
    fn lock_in(&self, sub: &str) -> Result<File> {
        let path = self.dir.join(sub).join(".lock");
        let f = crate::private::keep(&path).map_err(|e| io(&path, "open", e))?;
        f.lock().map_err(|e| io(&path, "lock", e))?;
        Ok(f)
    }
}

impl LocalJournal {
    /// Writes `record` as version `expected + 1` if the file's is still `expected` (0: no file,
    /// or one written before records had versions). Small files: a synchronous write (with
    /// fsync) is brief and works on any runtime.
    fn put_versioned<T: serde::Serialize>(
        &self,
        sub: &str,
        path: &Path,
        record: &T,
        expected: u64,
        what: &str,
    ) -> Result<()> {
        #[derive(serde::Deserialize)]
        struct Versioned {
            #[serde(default)]
            version: u64,
        }
        let _guard = self.lock_in(sub)?;
        let current = match read_optional(path)? {
            Some(b) => {
                serde_json::from_slice::<Versioned>(&b)
                    .map_err(|e| Error::Journal(format!("{} is damaged ({e})", path.display())))?
                    .version
            }
            None => 0,
        };
        if current != expected {
            return Err(Error::Conflict {
                what: what.to_string(),
                expected,
            });
        }
        let mut value = serde_json::to_value(record).map_err(|e| Error::Journal(e.to_string()))?;
        value["version"] = serde_json::json!(expected + 1);
        let bytes = serde_json::to_vec_pretty(&value).map_err(|e| Error::Journal(e.to_string()))?;
        write_atomic(path, &bytes)
    }
}

/// Replaces `path` so that a reader (or a crash) sees the old or the new content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = crate::private::create(&tmp).map_err(|e| io(&tmp, "create", e))?;
    f.write_all(bytes).map_err(|e| io(&tmp, "write", e))?;
    f.sync_all().map_err(|e| io(&tmp, "fsync", e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| io(path, "rename into", e))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(dir, "fsync", e))?;
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path, "read", e)),
    }
}

#[async_trait::async_trait]
impl Journal for LocalJournal {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    async fn load(&self, id: &str) -> Result<Option<Execution>> {
        let path = self.execution_path(id)?;
        read_optional(&path)?
            .map(|b| Execution::parse(&b, &path.display().to_string()))
            .transpose()
    }

    async fn save(&self, execution: &mut Execution) -> Result<()> {
        let path = self.execution_path(&execution.id)?;
        let what = format!("the record of execution {}", execution.id);
        self.put_versioned("executions", &path, execution, execution.version, &what)?;
        execution.version += 1;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Execution>> {
        let dir = self.dir.join("executions");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io(&dir, "list", e))? {
            let path = entry.map_err(|e| io(&dir, "list", e))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                let bytes = fs::read(&path).map_err(|e| io(&path, "read", e))?;
                out.push(Execution::parse(&bytes, &path.display().to_string())?);
            }
        }
        Ok(out)
    }

    async fn load_recovery_mode(&self, environment: &str) -> Result<Option<RecoveryMode>> {
        let path = self.dir.join("recovery-mode").join(file_name(environment)?);
        read_optional(&path)?
            .map(|b| RecoveryMode::parse(&b, &path.display().to_string()))
            .transpose()
    }

    async fn save_recovery_mode(&self, record: &mut RecoveryMode) -> Result<()> {
        let path = self
            .dir
            .join("recovery-mode")
            .join(file_name(&record.environment)?);
        let what = format!("the recovery-mode record of {}", record.environment);
        self.put_versioned("recovery-mode", &path, record, record.version, &what)?;
        record.version += 1;
        Ok(())
    }

    async fn read_lease(&self, table: &str) -> Result<Option<(Lease, u64)>> {
        let path = self.lease_path(table)?;
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Journal(format!(
                "lease file {} is damaged ({e}); remove it only if no run holds the table",
                path.display()
            ))
        })?;
        Ok(Some((stored.lease, stored.version)))
    }

    async fn swap_lease(
        &self,
        table: &str,
        lease: Option<&Lease>,
        expected: Option<u64>,
    ) -> Result<bool> {
        let path = self.lease_path(table)?;
        {
            let _guard = self.lock()?;
            let current = match read_optional(&path)? {
                Some(b) => serde_json::from_slice::<Stored>(&b).ok().map(|s| s.version),
                None => None,
            };
            if current != expected {
                return Ok(false);
            }
            match lease {
                Some(l) => {
                    let stored = Stored {
                        version: expected.map_or(1, |v| v + 1),
                        lease: l.clone(),
                    };
                    let bytes = serde_json::to_vec_pretty(&stored)
                        .map_err(|e| Error::Journal(e.to_string()))?;
                    write_atomic(&path, &bytes)?;
                }
                None => match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path, "remove", e)),
                },
            }
            Ok(true)
        }
    }

    async fn load_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
    ) -> Result<Option<(SegmentRecord, u64)>> {
        let path = self.segment_path(id, phase, segment)?;
        let Some(bytes) = read_optional(&path)? else {
            return Ok(None);
        };
        let stored: StoredSegment = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Journal(format!(
                "segment file {} is damaged ({e}); the execution's record still holds the \
                 checkpoint of the last finished phase",
                path.display()
            ))
        })?;
        Ok(Some((stored.record, stored.version)))
    }

    async fn swap_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
        record: &SegmentRecord,
        expected: u64,
    ) -> Result<bool> {
        let path = self.segment_path(id, phase, segment)?;
        let _guard = self.lock_in("segments")?;
        let current = self
            .load_segment(id, phase, segment)
            .await?
            .map_or(0, |(_, v)| v);
        if current != expected {
            return Ok(false);
        }
        let stored = StoredSegment {
            version: expected + 1,
            record: record.clone(),
        };
        let bytes =
            serde_json::to_vec_pretty(&stored).map_err(|e| Error::Journal(e.to_string()))?;
        write_atomic(&path, &bytes)?;
        Ok(true)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSegment {
    version: u64,
    #[serde(flatten)]
    record: SegmentRecord,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    version: u64,
    #[serde(flatten)]
    lease: Lease,
}
