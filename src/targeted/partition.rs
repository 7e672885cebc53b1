//! `--scope partition`: every item under some partition key values made equal to the restore
//! point. One segment per value, read with Query in both tables and checkpointed by the Query's
//! `LastEvaluatedKey`: the delete phase removes live items the restore point does not have, the
//! copy phase puts back the restore point's.

use std::collections::HashSet;

use aws_sdk_dynamodb::types::AttributeValue;

use super::{Candidate, Ctx, Source, join};
use crate::error::{Error, Result};
use crate::item::{Item, key_only, key_text};
use crate::journal::Phase;

pub(super) struct Partition {
    /// The values as given, one segment each.
    pub(super) count: usize,
    /// Typed by the table's hash key ([`super::partition_values`]).
    pub(super) values: Vec<AttributeValue>,
}

impl Partition {
    fn value(&self, segment: u32) -> Result<&AttributeValue> {
        self.values
            .get(segment as usize)
            .ok_or_else(|| Error::BadState {
                what: format!("partition segment {segment}"),
                state: format!("one of {} typed values", self.values.len()),
                hint: "the values were not typed by the table's key; this is a bug, report it"
                    .into(),
            })
    }
}

#[async_trait::async_trait]
impl Source for Partition {
    fn name(&self) -> &'static str {
        "partition"
    }

    fn segments(&self, _phase: Phase, _scan_segments: u32) -> u32 {
        self.count as u32
    }

    async fn page(
        &self,
        ctx: &Ctx<'_>,
        segment: u32,
        start: Option<Item>,
    ) -> Result<(Vec<Candidate>, Option<Item>)> {
        let key = &ctx.pass.live.key;
        let value = self.value(segment)?;
        if ctx.phase == Phase::Delete {
            // Live items under the value that the restore point does not have.
            let (live, next) = ctx.query(&ctx.pass.live.name, value, start).await?;
            let keys: Vec<Item> = live.iter().map(|i| key_only(key, i)).collect();
            let restored = ctx.get(&ctx.pass.restored.name, &keys, true).await?;
            let had: HashSet<String> = restored.iter().map(|i| key_text(key, i)).collect();
            let page = live
                .into_iter()
                .filter(|i| !had.contains(&key_text(key, i)))
                .map(|l| Candidate {
                    key: key_only(key, &l),
                    restored: None,
                    live: Some(l),
                })
                .collect();
            return Ok((page, next));
        }
        let (restored, next) = ctx.query(&ctx.pass.restored.name, value, start).await?;
        let keys: Vec<Item> = restored.iter().map(|i| key_only(key, i)).collect();
        let live = ctx.get(&ctx.pass.live.name, &keys, false).await?;
        Ok((join(key, keys, restored, live), next))
    }
}
