//! `--scope window`: every write made in a window undone, from the incremental export of that
//! window (`crate::export`). Each line names a key, its image at the window's start (the target)
//! and at its end (what the live item must still be, or the later write is a conflict). No table
//! is restored and none is scanned.
//!
//! The export's data files are shared out round-robin between the segments; a segment's
//! checkpoint is a file and the lines of it done, so a resume downloads that file again (its MD5
//! checked again) and skips what was done.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{BufReader, Lines};

use aws_sdk_dynamodb::types::AttributeValue;
use flate2::read::GzDecoder;
use tokio::sync::{Mutex, OnceCell};

use super::{Candidate, Ctx, KEYS_PER_PAGE, Source, join};
use crate::error::{Error, Result};
use crate::export::{self, DataFile};
use crate::item::{Item, key_text};
use crate::journal::{ExportRecord, Phase};
use crate::table::TableInfo;

const FILE: &str = "dynamo-dr:file";
const LINE: &str = "dynamo-dr:line";

/// What a window pass reads: the export's bucket and the recorded exports, and an S3 client.
#[derive(Debug, Clone)]
pub struct WindowInputs {
    pub s3: aws_sdk_s3::Client,
    pub exports: Vec<ExportRecord>,
}

pub(super) struct Window {
    pub(super) bucket: String,
    pub(super) overwrite: bool,
    pub(super) inputs: Option<WindowInputs>,
    pub(super) files: OnceCell<Vec<DataFile>>,
    /// Each segment's open file.
    pub(super) open: Mutex<HashMap<u32, Reader>>,
    /// A check of chained exports: the keys (by hash) each segment has checked already.
    pub(super) seen: std::sync::Mutex<HashMap<u32, HashSet<u64>>>,
}

pub(super) struct Reader {
    file: usize,
    line: u64,
    lines: Lines<BufReader<GzDecoder<std::fs::File>>>,
    _copy: tempfile::TempPath,
}

#[async_trait::async_trait]
impl Source for Window {
    fn name(&self) -> &'static str {
        "window"
    }

    fn segments(&self, phase: Phase, scan_segments: u32) -> u32 {
        match phase {
            Phase::Copy => scan_segments.max(1),
            _ => 0,
        }
    }

    fn total(&self, phase: Phase, _restored: &TableInfo) -> Option<u64> {
        let exports = &self.inputs.as_ref()?.exports;
        (phase == Phase::Copy).then(|| exports.iter().map(|e| e.items).sum())
    }

    fn unconditional(&self) -> bool {
        self.overwrite
    }

    async fn page(
        &self,
        ctx: &Ctx<'_>,
        segment: u32,
        start: Option<Item>,
    ) -> Result<(Vec<Candidate>, Option<Item>)> {
        let n = self.segments(Phase::Copy, ctx.opts.segments);
        let chained = self.inputs()?.exports.len() > 1;
        // One export: its files shared out. Chained: every segment reads every file and owns
        // the keys that hash to it, so one key's lines are applied in order by one segment.
        let (first, step) = if chained {
            (0, 1)
        } else {
            (segment as usize, n as usize)
        };
        let (mut file, mut line) = checkpoint(start.as_ref(), first)?;
        let files = self.files(ctx.check_only).await?;
        let mut changes = Vec::with_capacity(KEYS_PER_PAGE);
        let mut open = self.open.lock().await;
        // A page never spans two files: one file names a key at most once.
        while file < files.len() && changes.is_empty() {
            let mut reader = match open.remove(&segment) {
                Some(r) if r.file == file && r.line == line => r,
                _ => self.open_at(&files[file], file, line).await?,
            };
            let mut full = false;
            for text in reader.lines.by_ref() {
                reader.line += 1;
                let text = text.map_err(|e| damaged(&files[file], reader.line, e.to_string()))?;
                let change = export::parse_line(&text)
                    .map_err(|why| damaged(&files[file], reader.line, why))?;
                if !chained || owner(&ctx.pass.live.key, &change.keys, n) == segment {
                    changes.push(change);
                }
                if changes.len() == KEYS_PER_PAGE {
                    full = true;
                    break;
                }
            }
            line = reader.line;
            if full {
                open.insert(segment, reader);
            } else {
                file += step;
                line = 0;
            }
        }
        drop(open);
        let next = (file < files.len()).then(|| {
            HashMap::from([
                (FILE.to_string(), AttributeValue::N(file.to_string())),
                (LINE.to_string(), AttributeValue::N(line.to_string())),
            ])
        });
        let changes = self.first_seen(segment, ctx, changes, chained);
        Ok((self.candidates(ctx, changes).await?, next))
    }
}

/// The segment that owns `keys` among `n`, for chained exports.
fn owner(schema: &crate::item::KeySchema, keys: &Item, n: u32) -> u32 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key_text(schema, keys).hash(&mut h);
    (h.finish() % u64::from(n.max(1))) as u32
}

impl Window {
    /// Every recorded export's data files, read once per pass: the latest export first for
    /// the revert (chained exports are undone from the latest back), the earliest first for the
    /// check (a key's target is its image before its first change).
    async fn files(&self, check: bool) -> Result<&Vec<DataFile>> {
        self.files
            .get_or_try_init(|| async {
                let inputs = self.inputs()?;
                let mut all = Vec::new();
                let mut exports: Vec<&ExportRecord> = inputs.exports.iter().collect();
                if !check {
                    exports.reverse();
                }
                for e in exports {
                    let Some((key, md5)) = &e.manifest else {
                        return Err(Error::BadState {
                            what: format!("export {}", e.arn),
                            state: "recorded without its checked manifest".into(),
                            hint: "resume the execution: phase 1 waits for the export".into(),
                        });
                    };
                    all.extend(export::recorded_files(&inputs.s3, &self.bucket, (key, md5)).await?);
                }
                Ok(all)
            })
            .await
    }

    fn inputs(&self) -> Result<&WindowInputs> {
        self.inputs.as_ref().ok_or_else(|| Error::BadState {
            what: "a window pass".into(),
            state: "without its exports".into(),
            hint: "this is a bug, report it".into(),
        })
    }

    async fn open_at(&self, data: &DataFile, file: usize, skip: u64) -> Result<Reader> {
        let copy = tempfile::Builder::new()
            .prefix("dynamo-dr-export-")
            .tempfile()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir().display().to_string(),
                source,
            })?
            .into_temp_path();
        export::download(&self.inputs()?.s3, &self.bucket, data, Some(&copy)).await?;
        let mut lines = export::lines(&copy)?;
        for n in 0..skip {
            lines
                .next()
                .transpose()
                .map_err(|e| damaged(data, n + 1, e.to_string()))?;
        }
        Ok(Reader {
            file,
            line: skip,
            lines,
            _copy: copy,
        })
    }

    /// A check of chained exports looks at a key once: at its earliest export, whose old image
    /// is its target. The keys seen are kept by hash, 8 bytes each, per segment.
    fn first_seen(
        &self,
        segment: u32,
        ctx: &Ctx<'_>,
        changes: Vec<export::Change>,
        chained: bool,
    ) -> Vec<export::Change> {
        if !(chained && ctx.check_only) {
            return changes;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let seen = seen.entry(segment).or_default();
        changes
            .into_iter()
            .filter(|c| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                key_text(&ctx.pass.live.key, &c.keys).hash(&mut h);
                seen.insert(h.finish())
            })
            .collect()
    }

    /// Each change as a candidate: the window's start is the target; the condition is the
    /// window's end, or (for a check) the live item as it is.
    async fn candidates(
        &self,
        ctx: &Ctx<'_>,
        changes: Vec<export::Change>,
    ) -> Result<Vec<Candidate>> {
        let key = &ctx.pass.live.key;
        if ctx.check_only {
            let keys: Vec<Item> = changes.iter().map(|c| c.keys.clone()).collect();
            let live = ctx.get(&ctx.pass.live.name, &keys, false).await?;
            let old: Vec<Item> = changes.into_iter().filter_map(|c| c.old).collect();
            return Ok(join(key, keys, old, live));
        }
        let mut seen = std::collections::HashSet::new();
        Ok(changes
            .into_iter()
            .filter(|c| seen.insert(key_text(key, &c.keys)))
            .map(|c| Candidate {
                key: c.keys,
                restored: c.old,
                live: c.new,
            })
            .collect())
    }
}

/// Where a segment goes on: the recorded file and line, or `first` with none.
fn checkpoint(start: Option<&Item>, first: usize) -> Result<(usize, u64)> {
    let Some(start) = start else {
        return Ok((first, 0));
    };
    let number = |name: &str| match start.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().ok(),
        _ => None,
    };
    match (number(FILE), number(LINE)) {
        (Some(f), Some(l)) => Ok((f as usize, l)),
        _ => Err(Error::Journal(
            "a window checkpoint is not a file and line; the journal is damaged".into(),
        )),
    }
}

fn damaged(file: &DataFile, line: u64, why: String) -> Error {
    Error::BadState {
        what: format!("export data file {}", file.key),
        state: format!("line {line} unreadable: {why}"),
        hint: "the file passed its MD5 check, so the export itself is malformed; nothing from \
               this line on was written. Start again with a new incident id"
            .into(),
    }
}
