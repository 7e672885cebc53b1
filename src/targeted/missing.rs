//! `--scope missing`: every restore-point item absent from the live table is put back; nothing
//! that exists is overwritten or deleted. Candidates come from a parallel Scan of the temporary
//! table, checkpointed by its `LastEvaluatedKey`.

use super::{Candidate, Ctx, Source, join};
use crate::error::Result;
use crate::item::{Item, key_only};
use crate::journal::Phase;
use crate::table::TableInfo;

pub(super) struct Missing;

#[async_trait::async_trait]
impl Source for Missing {
    fn name(&self) -> &'static str {
        "missing"
    }

    /// Scan segments for the puts; never a delete.
    fn segments(&self, phase: Phase, scan_segments: u32) -> u32 {
        match phase {
            Phase::Copy => scan_segments.max(1),
            _ => 0,
        }
    }

    fn total(&self, _phase: Phase, restored: &TableInfo) -> Option<u64> {
        restored.approx_items.map(|n| n.max(0) as u64)
    }

    async fn page(
        &self,
        ctx: &Ctx<'_>,
        segment: u32,
        start: Option<Item>,
    ) -> Result<(Vec<Candidate>, Option<Item>)> {
        let key = &ctx.pass.live.key;
        let (restored, next) = ctx.scan(segment, start).await?;
        let keys: Vec<Item> = restored.iter().map(|i| key_only(key, i)).collect();
        let live = ctx.get(&ctx.pass.live.name, &keys, true).await?;
        Ok((join(key, keys, restored, live), next))
    }

    /// Any live item is kept as it is: this scope only adds.
    fn settled(&self, restored: Option<&Item>, live: Option<&Item>) -> bool {
        live.is_some() || restored.is_none()
    }
}
