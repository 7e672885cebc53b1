//! `--scope keys`: each key of a file made equal to its restore-point version (put, or deleted
//! when it did not exist then). One segment reads the file a page of keys at a time,
//! checkpointed by the number of lines done; the deletes are planned with the puts.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Lines};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Candidate, Ctx, KEYS_PER_PAGE, Source, join};
use crate::error::{Error, Result};
use crate::item::{Item, key_text};
use crate::journal::Phase;
use crate::table::TableInfo;
use crate::targeted::input::parse_key;

/// The attribute of a keys-file checkpoint: the number of lines done.
const LINE: &str = "dynamo-dr:line";

pub(super) struct Keys {
    /// Where this process reads the file (a local copy of an S3 object).
    pub(super) path: PathBuf,
    pub(super) keys: u64,
    /// The open file and the lines read, for this pass.
    pub(super) cursor: tokio::sync::Mutex<Option<(Lines<BufReader<std::fs::File>>, u64)>>,
}

#[async_trait::async_trait]
impl Source for Keys {
    fn name(&self) -> &'static str {
        "keys"
    }

    fn segments(&self, phase: Phase, _scan_segments: u32) -> u32 {
        match phase {
            Phase::Copy => 1,
            _ => 0,
        }
    }

    fn total(&self, phase: Phase, _restored: &TableInfo) -> Option<u64> {
        (phase == Phase::Copy).then_some(self.keys)
    }

    async fn page(
        &self,
        ctx: &Ctx<'_>,
        _segment: u32,
        start: Option<Item>,
    ) -> Result<(Vec<Candidate>, Option<Item>)> {
        let (keys, next) = self.keys_page(ctx, start).await?;
        let restored = ctx.get(&ctx.pass.restored.name, &keys, false).await?;
        let live = ctx.get(&ctx.pass.live.name, &keys, false).await?;
        Ok((join(&ctx.pass.live.key, keys, restored, live), next))
    }
}

impl Keys {
    async fn keys_page(
        &self,
        ctx: &Ctx<'_>,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let mut guard = self.cursor.lock().await;
        if guard.is_none() {
            let skip = match start.as_ref().and_then(|s| s.get(LINE)) {
                Some(AttributeValue::N(n)) => n.parse::<u64>().map_err(|_| {
                    Error::Journal(format!("keys-file checkpoint {n} is not a line number"))
                })?,
                _ => 0,
            };
            let file = std::fs::File::open(&self.path).map_err(|e| {
                Error::invalid(
                    "--keys",
                    format!("cannot read {}: {e}", self.path.display()),
                )
            })?;
            let mut lines = BufReader::new(file).lines();
            for _ in 0..skip {
                lines.next();
            }
            *guard = Some((lines, skip));
        }
        let (lines, at) = guard.as_mut().expect("opened above");
        let mut keys = Vec::with_capacity(KEYS_PER_PAGE);
        let mut more = false;
        for line in lines.by_ref() {
            *at += 1;
            let line = line.map_err(|e| Error::invalid("--keys", e.to_string()))?;
            // Read and checked before the run; a file changed since is refused by its hash.
            let parsed = parse_key(&line, &ctx.pass.live.key)
                .map_err(|why| Error::invalid("--keys", format!("line {at}: {why}")))?;
            // BatchGetItem refuses a key twice in one request; a repeat is done once.
            let key = &ctx.pass.live.key;
            if let Some(k) =
                parsed.filter(|k| !keys.iter().any(|o| key_text(key, o) == key_text(key, k)))
            {
                keys.push(k);
            }
            if keys.len() == KEYS_PER_PAGE {
                more = true;
                break;
            }
        }
        let next =
            more.then(|| HashMap::from([(LINE.to_string(), AttributeValue::N(at.to_string()))]));
        Ok((keys, next))
    }
}
