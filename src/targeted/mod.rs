//! A targeted restore: make part of the live table equal to the restore point and leave every
//! other item alone. The part is the items missing now, the keys of a file, or the items under
//! some partition key values (read with Query).
//!
//! Every write is conditional on the live item still being what was read just before: an
//! application write in between makes the condition fail, and the item is kept as the
//! application wrote it and reported as a conflict. A condition is the equality of every
//! attribute read (or the item's absence), so an application write that only adds an attribute
//! is not seen; a table with a version attribute is guarded by it among the rest.

mod input;
mod keys;
mod missing;
mod partition;
mod window;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::aws;
use crate::calls::{self, Units, charge_read, retrying, retrying_fenced};
use crate::digest::{KeyDigest, item_digest};
use crate::error::{AwsErrorKind, Error, Result};
use crate::item::{Item, KeySchema, key_from_json, key_text, write_units};
use crate::journal::{Phase, Scope, SegmentCheckpoint};
use crate::progress::Progress;
use crate::rate::{Limiter, RateCap, RateUnit};
use crate::sync::{Checkpoint, SyncOptions, Totals};
use crate::table::TableInfo;
pub use input::{KeysFile, live_count, partition_values, read_keys_file};
pub use window::WindowInputs;

/// Keys read per BatchGetItem, and per page of a keys file.
const KEYS_PER_PAGE: usize = 100;
/// DynamoDB's limit on an expression's length.
const MAX_EXPRESSION: usize = 4096;

/// One kind of targeted scope: where its candidates come from, how its phases are segmented and
/// checkpointed, and what each candidate's target is. A new scope is a file implementing this,
/// registered in [`source`]; the rest (conditional writes, conflicts, the check, resume, both
/// drivers) is shared.
#[async_trait::async_trait]
trait Source: Send + Sync {
    /// As the journal and the plan name it.
    fn name(&self) -> &'static str;

    /// The segments of `phase`; 0 when the scope has no such phase.
    fn segments(&self, phase: Phase, scan_segments: u32) -> u32;

    /// What the progress of `phase` counts up to, when known before reading.
    fn total(&self, _phase: Phase, _restored: &TableInfo) -> Option<u64> {
        None
    }

    /// A page of `segment`'s candidates from `start` (this scope's own checkpoint), and where
    /// the next page starts (`None`: the segment is done).
    async fn page(
        &self,
        ctx: &Ctx<'_>,
        segment: u32,
        start: Option<Item>,
    ) -> Result<(Vec<Candidate>, Option<Item>)>;

    /// Writes without a condition: whatever the live item is, it is overwritten.
    fn unconditional(&self) -> bool {
        false
    }

    /// Whether the live item is already the target: by default, the restore point's version.
    fn settled(&self, restored: Option<&Item>, live: Option<&Item>) -> bool {
        match (restored, live) {
            (Some(r), Some(l)) => item_digest(r) == item_digest(l),
            (None, None) => true,
            _ => false,
        }
    }
}

/// The registration of every targeted scope; `None` for the whole table, which is not one.
/// `partitions` are a partition scope's values typed by the table's hash key, `window` a window
/// scope's exports (empty, or `None`, where only the segments are asked).
fn source(
    scope: &Scope,
    partitions: &[AttributeValue],
    window: Option<&WindowInputs>,
) -> Option<Box<dyn Source>> {
    match scope {
        Scope::Table => None,
        Scope::Missing => Some(Box::new(missing::Missing)),
        Scope::Keys { file, keys, .. } => Some(Box::new(keys::Keys {
            path: file.into(),
            keys: *keys,
            cursor: Default::default(),
        })),
        Scope::Partition { values } => Some(Box::new(partition::Partition {
            count: values.len(),
            values: partitions.to_vec(),
        })),
        Scope::Window {
            bucket,
            overwrite_later_writes,
            ..
        } => Some(Box::new(window::Window {
            bucket: bucket.clone(),
            overwrite: *overwrite_later_writes,
            inputs: window.cloned(),
            files: Default::default(),
            open: Default::default(),
            seen: Default::default(),
        })),
    }
}

/// The segments of a targeted phase, as the scope says (the whole table: `scan_segments`).
pub fn segments(scope: &Scope, phase: Phase, scan_segments: u32) -> u32 {
    source(scope, &[], None).map_or(scan_segments.max(1), |s| s.segments(phase, scan_segments))
}

/// One targeted phase.
#[derive(Clone)]
pub struct Pass<'a> {
    /// The restore point: the temporary table.
    pub restored: &'a TableInfo,
    pub live: &'a TableInfo,
    pub scope: &'a Scope,
    /// Typed by [`partition_values`], for a partition scope.
    pub partitions: &'a [AttributeValue],
    /// A window scope's exports.
    pub window: Option<&'a WindowInputs>,
    /// Names a sensitive table's keys.
    pub digest: Option<&'a KeyDigest>,
    /// Conflicts already recorded: never planned again by this execution's passes.
    pub known_conflicts: HashSet<String>,
}

/// What a scope check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeCheck {
    pub in_scope: u64,
    pub equal: u64,
    /// In scope, not equal to the restore point, and not a recorded conflict.
    pub differing: u64,
    /// A few of them, named as outputs name keys.
    pub sample: Vec<String>,
}

/// A key in scope: its restore-point and live versions (`live` is key-only for `missing`).
struct Candidate {
    key: Item,
    restored: Option<Item>,
    live: Option<Item>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Put,
    Delete,
    Unchanged,
    Conflict,
}

struct Ctx<'a> {
    client: Client,
    pass: Pass<'a>,
    phase: Phase,
    opts: &'a SyncOptions,
    cp: Arc<dyn Checkpoint>,
    /// Writes nothing: counts what differs.
    check_only: bool,
    conflicts: std::sync::Mutex<HashSet<String>>,
    source: Box<dyn Source>,
    progress: Progress,
    units: Units,
    reads: AtomicU64,
    writes: AtomicU64,
    check: std::sync::Mutex<ScopeCheck>,
    /// This process's share of the table's maximum (see [`share_of_maximum`]).
    table_max: Limiter,
}

/// This process's share of the live table's on-demand maximum or provisioned capacity, in
/// capacity units, less the Limiter's burst (a twentieth of a second), so that the segments
/// together never ask for more in any second: all of them in one process, or the one a Lambda
/// invocation runs.
fn share_of_maximum(live: &TableInfo, segments: u32, from: &[SegmentCheckpoint]) -> Limiter {
    let running = if from.is_empty() {
        segments
    } else {
        from.iter().filter(|c| !c.done).count() as u32
    };
    Limiter::new(live.write_limits.max.as_ref().map(|m| RateCap {
        per_second: m.units as f64 * f64::from(running) / f64::from(segments.max(1)) / 1.05,
        unit: RateUnit::CapacityUnits,
    }))
}

/// Runs one targeted phase from `from`'s checkpoints, recording each page's counts and every
/// conflict through `cp`.
pub async fn run(
    client: &Client,
    pass: Pass<'_>,
    phase: Phase,
    opts: &SyncOptions,
    from: &[SegmentCheckpoint],
    cp: Arc<dyn Checkpoint>,
) -> Result<Totals> {
    let mut ctx = Ctx::new(client, pass, phase, opts, cp, false)?;
    let n = ctx.source.segments(phase, opts.segments);
    ctx.table_max = share_of_maximum(ctx.pass.live, n, from);
    ctx.segments(n, from).await?;
    let (items, duration) = ctx.progress.clone().finish();
    Ok(Totals {
        items,
        scans: ctx.reads.load(Ordering::Relaxed),
        writes: ctx.writes.load(Ordering::Relaxed),
        duration,
        read_units: ctx.units.read(),
        write_units: ctx.units.write(),
    })
}

/// Reads the scope in both tables and counts the items that differ from the restore point,
/// leaving out recorded conflicts.
pub async fn check(client: &Client, pass: Pass<'_>, opts: &SyncOptions) -> Result<ScopeCheck> {
    let cp: Arc<dyn Checkpoint> = Arc::new(crate::sync::NoCheckpoint);
    let mut total = ScopeCheck::default();
    for phase in [Phase::Delete, Phase::Copy] {
        let n = segments(pass.scope, phase, opts.segments);
        if n == 0 {
            continue;
        }
        let ctx = Ctx::new(client, pass.clone(), phase, opts, cp.clone(), true)?;
        ctx.segments(n, &[]).await?;
        ctx.progress.clone().finish();
        let found = ctx.check.into_inner().unwrap_or_else(|p| p.into_inner());
        total.in_scope += found.in_scope;
        total.equal += found.equal;
        total.differing += found.differing;
        total
            .sample
            .extend(found.sample.into_iter().take(crate::verify::SAMPLE));
        total.sample.truncate(crate::verify::SAMPLE);
    }
    Ok(total)
}

impl<'a> Ctx<'a> {
    fn new(
        client: &Client,
        pass: Pass<'a>,
        phase: Phase,
        opts: &'a SyncOptions,
        cp: Arc<dyn Checkpoint>,
        check_only: bool,
    ) -> Result<Ctx<'a>> {
        let source =
            source(pass.scope, pass.partitions, pass.window).ok_or_else(|| Error::BadState {
                what: format!("a targeted pass on {}", pass.live.name),
                state: "with the whole table as its scope".into(),
                hint: "the whole table is restored by the sync phases; this is a bug, report it"
                    .into(),
            })?;
        let total = source.total(phase, pass.restored);
        let verb = if check_only { "check" } else { phase.as_str() };
        Ok(Ctx {
            client: aws::without_retries(client),
            conflicts: std::sync::Mutex::new(pass.known_conflicts.clone()),
            progress: Progress::items_of(
                &format!("{verb} {} ({})", pass.live.name, source.name()),
                total,
            ),
            source,
            pass,
            phase,
            opts,
            cp,
            check_only,
            units: Units::default(),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            check: std::sync::Mutex::new(ScopeCheck::default()),
            table_max: Limiter::unlimited(),
        })
    }

    async fn segments(&self, n: u32, from: &[SegmentCheckpoint]) -> Result<()> {
        let starts: Vec<Option<(Option<Item>, bool)>> = if from.is_empty() {
            (0..n).map(|_| Some((None, false))).collect()
        } else {
            from.iter()
                .map(|c| {
                    (!c.done)
                        .then(|| c.next_key.as_ref().map(key_from_json).transpose())
                        .transpose()
                        .map(|k| k.map(|k| (k, true)))
                })
                .collect::<Result<_>>()?
        };
        // Futures made first, then run: a closure returning a borrowing future inside a stream
        // combinator is not provably `Send`, and the Lambda worker's futures must be.
        let runs: Vec<_> = starts
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|(start, redo)| self.segment(i as u32, start, redo)))
            .collect();
        stream::iter(runs)
            .buffer_unordered(n.max(1) as usize)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    async fn segment(&self, segment: u32, mut start: Option<Item>, mut redo: bool) -> Result<()> {
        loop {
            let (page, next) = self.source.page(self, segment, start).await?;
            let tally = crate::journal::PageTally {
                items: page.len() as u64,
                ..Default::default()
            };
            let outcomes = self.apply(page).await?;
            if !self.check_only {
                let count = |o| outcomes.iter().filter(|x| **x == o).count() as u64;
                self.cp
                    .targeted(
                        count(Outcome::Put),
                        count(Outcome::Delete),
                        count(Outcome::Unchanged),
                    )
                    .await?;
                self.cp
                    .page_done(self.phase, segment, next.as_ref(), tally, redo)
                    .await?;
            }
            redo = false;
            match next {
                // A Lambda invocation stops at a page boundary before its deadline; the next
                // continues from the checkpoint.
                Some(_) if self.opts.stop_at.is_some_and(|t| Instant::now() >= t) => return Ok(()),
                Some(k) => start = Some(k),
                None => return Ok(()),
            }
        }
    }

    async fn scan(&self, segment: u32, start: Option<Item>) -> Result<(Vec<Item>, Option<Item>)> {
        let table = &self.pass.restored.name;
        let req = self
            .client
            .scan()
            .table_name(table)
            .segment(segment as i32)
            .total_segments(self.source.segments(self.phase, self.opts.segments) as i32)
            .consistent_read(true)
            .set_limit(self.opts.page_limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start);
        let out = retrying(
            &self.opts.retry,
            &self.opts.read_rate,
            "Scan",
            table,
            || {
                self.reads.fetch_add(1, Ordering::Relaxed);
                req.clone().send()
            },
        )
        .await?;
        let consumed = out.consumed_capacity.and_then(|c| c.capacity_units);
        Ok(self.paid(out.items, out.last_evaluated_key, consumed))
    }

    async fn query(
        &self,
        table: &str,
        value: &AttributeValue,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let req = input::partition_query(&self.client, table, &self.pass.live.key, value)
            .consistent_read(true)
            .set_limit(self.opts.page_limit)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_exclusive_start_key(start);
        let out = retrying(
            &self.opts.retry,
            &self.opts.read_rate,
            "Query",
            table,
            || {
                self.reads.fetch_add(1, Ordering::Relaxed);
                req.clone().send()
            },
        )
        .await?;
        let consumed = out.consumed_capacity.and_then(|c| c.capacity_units);
        Ok(self.paid(out.items, out.last_evaluated_key, consumed))
    }

    /// A read page's items and where the next one starts, its capacity paid.
    fn paid(
        &self,
        items: Option<Vec<Item>>,
        next: Option<Item>,
        consumed: Option<f64>,
    ) -> (Vec<Item>, Option<Item>) {
        let items = items.unwrap_or_default();
        self.units.add_read(consumed);
        charge_read(&self.opts.read_rate, &items, consumed);
        (items, next.filter(|k| !k.is_empty()))
    }

    async fn get(&self, table: &str, keys: &[Item], keys_only: bool) -> Result<Vec<Item>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.reads
            .fetch_add(keys.len().div_ceil(KEYS_PER_PAGE) as u64, Ordering::Relaxed);
        calls::batch_get(
            &self.client,
            table,
            keys.to_vec(),
            keys_only.then_some(&self.pass.live.key),
            &self.opts.retry,
            &self.opts.read_rate,
            Some(&self.units),
        )
        .await
    }

    /// How outputs name a key: DynamoDB JSON, or a digest for a sensitive table.
    fn name(&self, key: &Item) -> String {
        let text = key_text(&self.pass.live.key, key);
        match self.pass.digest {
            Some(d) => d.name(&text),
            None => text,
        }
    }

    async fn apply(&self, page: Vec<Candidate>) -> Result<Vec<Outcome>> {
        let concurrency = self.opts.write_concurrency.max(1);
        let decisions: Vec<_> = page.into_iter().map(|c| self.decide(c)).collect();
        stream::iter(decisions)
            .buffer_unordered(concurrency)
            .try_collect()
            .await
    }

    async fn decide(&self, c: Candidate) -> Result<Outcome> {
        let name = self.name(&c.key);
        if self
            .conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&name)
        {
            return Ok(Outcome::Conflict);
        }
        let equal = self.source.settled(c.restored.as_ref(), c.live.as_ref());
        if self.check_only {
            let mut check = self.check.lock().unwrap_or_else(|p| p.into_inner());
            check.in_scope += 1;
            if equal {
                check.equal += 1;
            } else {
                check.differing += 1;
                if check.sample.len() < crate::verify::SAMPLE {
                    check.sample.push(name);
                }
            }
            return Ok(Outcome::Unchanged);
        }
        if equal {
            self.progress.add(1);
            return Ok(Outcome::Unchanged);
        }
        let outcome = self.write(&c).await?;
        if outcome == Outcome::Conflict {
            self.conflicts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name.clone());
            tracing::warn!(table = %self.pass.live.name, key = %name, "conflict: the item changed after it was read; kept as it is");
            self.cp.conflict(&name).await?;
        }
        self.progress.add(1);
        Ok(outcome)
    }

    /// The put (or delete) of `c`'s restore-point version, conditional on `guard`, fenced; the
    /// write units DynamoDB says it consumed.
    async fn send(&self, c: &Candidate, guard: Option<Guard>) -> Result<Option<f64>> {
        let (condition, names, values) = match guard {
            Some(g) => (Some(g.expression), Some(g.names), Some(g.values)),
            None => (None, None, None),
        };
        let table = &self.pass.live.name;
        let fence = || self.cp.may_write();
        let values = values.filter(|v| !v.is_empty());
        match &c.restored {
            Some(item) => {
                let req = self
                    .client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item.clone()))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total);
                retrying_fenced(
                    &self.opts.retry,
                    &self.opts.write_rate,
                    ("PutItem", table),
                    fence,
                    || req.clone().send(),
                )
                .await
                .map(|o| o.consumed_capacity.and_then(|c| c.capacity_units))
            }
            None => {
                let req = self
                    .client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(c.key.clone()))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .return_consumed_capacity(ReturnConsumedCapacity::Total);
                retrying_fenced(
                    &self.opts.retry,
                    &self.opts.write_rate,
                    ("DeleteItem", table),
                    fence,
                    || req.clone().send(),
                )
                .await
                .map(|o| o.consumed_capacity.and_then(|c| c.capacity_units))
            }
        }
    }

    /// One conditional put or delete. A failed condition is read again: the item may already be
    /// what this write makes it (an earlier attempt whose answer was lost).
    async fn write(&self, c: &Candidate) -> Result<Outcome> {
        let table = &self.pass.live.name;
        let condition = match guard(&self.pass.live.key, c.live.as_ref()) {
            _ if self.source.unconditional() => None,
            Some(g) => Some(g),
            None => {
                tracing::warn!(table = %table, key = %self.name(&c.key), "too many attributes to guard a write; left as a conflict");
                return Ok(Outcome::Conflict);
            }
        };
        let cost = c.restored.as_ref().map_or(1.0, write_units);
        self.opts.write_rate.take(1, cost).await;
        self.table_max.take(1, cost).await;
        self.writes.fetch_add(1, Ordering::Relaxed);
        let sent = self.send(c, condition).await;
        let done = if c.restored.is_some() {
            Outcome::Put
        } else {
            Outcome::Delete
        };
        match sent {
            Ok(consumed) => {
                self.units.add_write(consumed);
                Ok(done)
            }
            Err(Error::Aws {
                kind: AwsErrorKind::ConditionFailed,
                ..
            }) => {
                let now = self.get(table, std::slice::from_ref(&c.key), false).await?;
                let now = now.first().map(item_digest);
                Ok(if now == c.restored.as_ref().map(item_digest) {
                    done
                } else {
                    Outcome::Conflict
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// The restore-point and live versions of each key.
fn join(key: &KeySchema, keys: Vec<Item>, restored: Vec<Item>, live: Vec<Item>) -> Vec<Candidate> {
    let mut restored: HashMap<String, Item> = restored
        .into_iter()
        .map(|i| (key_text(key, &i), i))
        .collect();
    let mut live: HashMap<String, Item> =
        live.into_iter().map(|i| (key_text(key, &i), i)).collect();
    keys.into_iter()
        .map(|k| {
            let text = key_text(key, &k);
            Candidate {
                restored: restored.remove(&text),
                live: live.remove(&text),
                key: k,
            }
        })
        .collect()
}

/// A condition expression with its names and values.
struct Guard {
    expression: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

/// The condition that the live item is still `live` as read: absent, or every attribute equal.
/// `None` when the expression would pass DynamoDB's 4 KB limit.
fn guard(key: &KeySchema, live: Option<&Item>) -> Option<Guard> {
    let mut names = HashMap::from([("#k".to_string(), key.hash.clone())]);
    let mut values = HashMap::new();
    let Some(live) = live else {
        return Some(Guard {
            expression: "attribute_not_exists(#k)".into(),
            names,
            values,
        });
    };
    let mut terms = vec!["attribute_exists(#k)".to_string()];
    let mut attributes: Vec<(&String, &AttributeValue)> = live.iter().collect();
    attributes.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, value)) in attributes.into_iter().enumerate() {
        names.insert(format!("#a{i}"), name.clone());
        values.insert(format!(":v{i}"), value.clone());
        terms.push(format!("#a{i} = :v{i}"));
    }
    let expression = terms.join(" AND ");
    (expression.len() <= MAX_EXPRESSION).then_some(Guard {
        expression,
        names,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `pk`/`sk` key, for this module's tests and its children's.
    pub(super) fn schema() -> KeySchema {
        KeySchema {
            hash: "pk".into(),
            range: Some("sk".into()),
        }
    }

    #[test]
    fn a_guard_names_every_attribute_or_the_items_absence() {
        let key = schema();
        let Guard {
            expression: absent,
            names,
            values,
        } = guard(&key, None).unwrap();
        assert_eq!(absent, "attribute_not_exists(#k)");
        assert_eq!(names["#k"], "pk");
        assert!(values.is_empty());
        let live: Item = [
            ("pk".to_string(), AttributeValue::S("a".into())),
            ("sk".to_string(), AttributeValue::N("1".into())),
            ("v".to_string(), AttributeValue::N("7".into())),
        ]
        .into();
        let Guard {
            expression: expr,
            names,
            values,
        } = guard(&key, Some(&live)).unwrap();
        assert_eq!(expr.matches(" = ").count(), 3, "{expr}");
        assert_eq!(values.len(), 3);
        assert_eq!(names.len(), 4);
        let wide: Item = (0..400)
            .map(|i| (format!("attribute{i}"), AttributeValue::N("1".into())))
            .collect();
        assert!(guard(&key, Some(&wide)).is_none());
    }
}
