//! A model of a DynamoDB table's throughput, in front of an emulator that has none: partitions
//! with their own write and read limits, a table-level limit, and DynamoDB's throttling answers.
//!
//! What it rests on (Amazon DynamoDB Developer Guide):
//! - a partition serves at most 3,000 read and 1,000 write units per second, and owns a contiguous
//!   range of the hash of the partition key ("Partitions and data distribution",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.Partitions.html>;
//!   "Burst and adaptive capacity",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html>);
//! - a write costs one unit per 1 KB of item, a strongly consistent read one unit per 4 KB, an
//!   eventually consistent one half that ("Capacity unit consumption",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>);
//!   item size is the UTF-8 length of attribute names plus the size of their values;
//! - a BatchWriteItem whose items are partly throttled returns them as UnprocessedItems; when none
//!   could be written it fails (as a single PutItem, UpdateItem or DeleteItem that does not fit
//!   does) with ProvisionedThroughputExceededException, whose
//!   ThrottlingReasons name a key range (`TableWriteKeyRangeThroughputExceeded`) or the table
//!   (`TableWriteProvisionedThroughputExceeded`)
//!   (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html>,
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TroubleshootingThrottling.html>).
//!
//! Keys are placed as dynalite orders them: `md5("Outliers" + hash key bytes)`, whose first three
//! hex digits also choose dynalite's parallel-scan segment, so scan order and partition order
//! correlate exactly as on DynamoDB. Partition `p` of `P` owns the digits
//! `[p·4096/P, (p+1)·4096/P)`. Numbers are hashed by their text, not by dynalite's binary
//! encoding: only string and binary keys are placed exactly.

use std::time::Instant;

use md5::{Digest, Md5};
use serde_json::{Value, json};

/// The table's shape and limits.
#[derive(Debug, Clone)]
pub struct Capacity {
    /// The modelled table; requests for other tables pass untouched.
    pub table: String,
    /// Its partition key attribute.
    pub hash_key: String,
    pub partitions: u32,
    /// Write units per second each partition serves.
    pub partition_write_units: f64,
    /// Read units per second each partition serves.
    pub partition_read_units: f64,
    /// The table's own limit (provisioned or on-demand), if below the partitions' sum.
    pub table_write_units: Option<f64>,
    pub table_read_units: Option<f64>,
    /// What DescribeTable answers as the table's WarmThroughput.WriteUnitsPerSecond and
    /// OnDemandThroughput.MaxWriteRequestUnits, when set
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TableDescription.html>).
    /// The maximum also limits the table, as `table_write_units` does.
    pub warm_write_units: Option<u64>,
    pub max_write_units: Option<u64>,
    /// Seconds of unused capacity a partition can spend at once. DynamoDB keeps up to 300 s; the
    /// model keeps little, so that a benchmark measures the sustained rate, not the burst.
    pub burst_seconds: f64,
}

impl Capacity {
    /// `partitions` partitions of `write_units` write units per second each (and DynamoDB's
    /// 3:1 read to write ratio), no separate table limit, a 1 s burst.
    pub fn partitioned(table: &str, hash_key: &str, partitions: u32, write_units: f64) -> Capacity {
        Capacity {
            table: table.into(),
            hash_key: hash_key.into(),
            partitions: partitions.max(1),
            partition_write_units: write_units,
            partition_read_units: write_units * 3.0,
            table_write_units: None,
            table_read_units: None,
            warm_write_units: None,
            max_write_units: None,
            burst_seconds: 1.0,
        }
    }

    /// A DescribeTable answer for the modelled table with its warm throughput and on-demand
    /// maximum, as DynamoDB gives them.
    pub fn describe(&self, mut answer: Value) -> Value {
        if answer.pointer("/Table/TableName").and_then(Value::as_str) != Some(self.table.as_str()) {
            return answer;
        }
        if let Some(w) = self.warm_write_units {
            answer["Table"]["WarmThroughput"] = json!({
                "ReadUnitsPerSecond": w * 3, "WriteUnitsPerSecond": w, "Status": "ACTIVE"
            });
        }
        if let Some(m) = self.max_write_units {
            answer["Table"]["OnDemandThroughput"] =
                json!({ "MaxReadRequestUnits": -1, "MaxWriteRequestUnits": m });
        }
        answer
    }

    pub fn total_write_units(&self) -> f64 {
        let sum = self.partition_write_units * f64::from(self.partitions);
        self.table_write_units.map_or(sum, |t| t.min(sum))
    }
}

/// The first three hex digits of dynalite's key hash, 0..4096.
pub fn key_hash_prefix(hash_value: &Value) -> u32 {
    let bytes: Vec<u8> = if let Some(s) = hash_value.get("S").and_then(Value::as_str) {
        s.as_bytes().to_vec()
    } else if let Some(b) = hash_value.get("B").and_then(Value::as_str) {
        base64_decode(b)
    } else if let Some(n) = hash_value.get("N").and_then(Value::as_str) {
        n.as_bytes().to_vec()
    } else {
        Vec::new()
    };
    let mut h = Md5::new();
    h.update(b"Outliers");
    h.update(&bytes);
    let d = h.finalize();
    (u32::from(d[0]) << 4) | (u32::from(d[1]) >> 4)
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else {
            continue;
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// An attribute value's size by DynamoDB's rules.
fn value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(0, |n| {
            n.chars().filter(char::is_ascii_digit).count().div_ceil(2) + 1
        }),
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" | "NS" | "BS" => inner.as_array().map_or(0, |a| {
            a.iter()
                .map(|m| value_size(&json!({ &kind[..1]: m })))
                .sum()
        }),
        "L" => {
            3 + inner
                .as_array()
                .map_or(0, |a| a.iter().map(|e| 1 + value_size(e)).sum())
        }
        "M" => 3 + inner.as_object().map_or(0, |m| map_size(m) + m.len()),
        _ => 0,
    }
}

fn map_size(m: &serde_json::Map<String, Value>) -> usize {
    m.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// An item's size in bytes, by DynamoDB's rules.
pub fn item_size(item: &Value) -> usize {
    item.as_object().map_or(0, map_size)
}

/// Write units for putting `item`: one per 1 KB, at least one.
fn write_cost(item: &Value) -> f64 {
    item_size(item).div_ceil(1024).max(1) as f64
}

#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    depth: f64,
    tokens: f64,
}

impl Bucket {
    fn new(rate: f64, burst_seconds: f64) -> Bucket {
        let depth = (rate * burst_seconds).max(1.0);
        Bucket {
            rate,
            depth,
            tokens: depth,
        }
    }

    fn refill(&mut self, dt: f64) {
        self.tokens = (self.tokens + dt * self.rate).min(self.depth);
    }
}

/// What the model counted, for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Write units accepted, per second since the model started, per partition.
    pub write_units: Vec<Vec<f64>>,
    /// Read units served, likewise.
    pub read_units: Vec<Vec<f64>>,
    /// Write requests for the table: BatchWriteItem, PutItem, UpdateItem and DeleteItem.
    pub write_requests: u64,
    /// Of them, those with at least one item throttled (partly or wholly).
    pub throttled_write_requests: u64,
    /// Of them, those with nothing written (ProvisionedThroughputExceededException).
    pub rejected_write_requests: u64,
    /// Items returned unprocessed or rejected.
    pub throttled_items: u64,
    /// By reason: key range against table.
    pub key_range_throttles: u64,
    pub table_throttles: u64,
    pub read_requests: u64,
    pub throttled_read_requests: u64,
    /// Of the read units, those of reads by key (GetItem, BatchGetItem), apart from Scans: a
    /// diff's reads, without its count check's.
    pub key_read_units: f64,
    /// Write requests, and those throttled, per second.
    pub write_requests_per_second: Vec<u64>,
    pub throttled_per_second: Vec<u64>,
}

impl Counters {
    /// Mean number of partitions that accepted writes, over the seconds in which any did.
    pub fn mean_busy_partitions(&self) -> f64 {
        let busy: Vec<usize> = self
            .write_units
            .iter()
            .map(|s| s.iter().filter(|u| **u > 0.0).count())
            .filter(|n| *n > 0)
            .collect();
        if busy.is_empty() {
            return 0.0;
        }
        busy.iter().sum::<usize>() as f64 / busy.len() as f64
    }

    /// Throttled write requests as a share of write requests, over the seconds from the first
    /// to the last that accepted writes less `trim` seconds at each end (start-up and tail).
    pub fn throttled_share(&self, trim: usize) -> f64 {
        let totals: Vec<f64> = self.write_units.iter().map(|s| s.iter().sum()).collect();
        let (Some(a), Some(b)) = (
            totals.iter().position(|t| *t > 0.0),
            totals.iter().rposition(|t| *t > 0.0),
        ) else {
            return 0.0;
        };
        let (a, b) = (a + trim, b.saturating_sub(trim));
        let sum = |v: &[u64]| -> u64 { v.iter().skip(a).take((b + 1).saturating_sub(a)).sum() };
        let requests = sum(&self.write_requests_per_second);
        if requests == 0 {
            return 0.0;
        }
        sum(&self.throttled_per_second) as f64 / requests as f64
    }

    /// Write units per second over the seconds from the first to the last that accepted writes.
    pub fn write_units_per_second(&self) -> f64 {
        let totals: Vec<f64> = self.write_units.iter().map(|s| s.iter().sum()).collect();
        let first = totals.iter().position(|t| *t > 0.0);
        let last = totals.iter().rposition(|t| *t > 0.0);
        match (first, last) {
            (Some(a), Some(b)) => totals[a..=b].iter().sum::<f64>() / (b - a + 1) as f64,
            _ => 0.0,
        }
    }
}

/// The live model: buckets and counters.
#[derive(Debug)]
pub struct Model {
    pub capacity: Capacity,
    write: Vec<Bucket>,
    read: Vec<Bucket>,
    table_write: Option<Bucket>,
    table_read: Option<Bucket>,
    started: Instant,
    refilled: Instant,
    pub counters: Counters,
}

/// A throttle's reason, as DynamoDB names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    KeyRange,
    Table,
}

/// How the model answered a read by key.
#[derive(Debug)]
pub enum ReadVerdict {
    /// Every key fits.
    Pass,
    /// Read these keys; return the others as UnprocessedKeys.
    Partial {
        admitted: Vec<Value>,
        unprocessed: Vec<Value>,
    },
    /// Nothing fits: ProvisionedThroughputExceededException with this reason.
    Reject(Reason),
}

/// How the model answered a write.
#[derive(Debug)]
pub enum WriteVerdict {
    /// The request as it stands: the table is not modelled, or everything fits.
    Pass,
    /// Forward this request (the admitted part) and return these write requests unprocessed.
    Partial {
        forward: Value,
        unprocessed: Vec<Value>,
    },
    /// Nothing fits: ProvisionedThroughputExceededException with this reason.
    Reject(Reason),
}

impl Model {
    pub fn new(capacity: Capacity) -> Model {
        let now = Instant::now();
        let p = capacity.partitions as usize;
        Model {
            write: vec![Bucket::new(capacity.partition_write_units, capacity.burst_seconds); p],
            read: vec![Bucket::new(capacity.partition_read_units, capacity.burst_seconds); p],
            table_write: capacity
                .table_write_units
                .into_iter()
                .chain(capacity.max_write_units.map(|m| m as f64))
                .reduce(f64::min)
                .map(|r| Bucket::new(r, capacity.burst_seconds)),
            table_read: capacity
                .table_read_units
                .map(|r| Bucket::new(r, capacity.burst_seconds)),
            started: now,
            refilled: now,
            counters: Counters::default(),
            capacity,
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        for b in self
            .write
            .iter_mut()
            .chain(self.read.iter_mut())
            .chain(self.table_write.iter_mut())
            .chain(self.table_read.iter_mut())
        {
            b.refill(dt);
        }
    }

    fn partition_of_prefix(&self, prefix: u32) -> usize {
        (prefix as usize * self.capacity.partitions as usize) / 4096
    }

    fn partition_of_item(&self, item: &Value) -> usize {
        let prefix = item.get(&self.capacity.hash_key).map_or(0, key_hash_prefix);
        self.partition_of_prefix(prefix)
    }

    fn second(&self) -> usize {
        self.started.elapsed().as_secs() as usize
    }

    fn record(counter: &mut Vec<Vec<f64>>, second: usize, partitions: usize, p: usize, units: f64) {
        while counter.len() <= second {
            counter.push(vec![0.0; partitions]);
        }
        counter[second][p] += units;
    }

    /// Admits what the partitions and the table can take of a BatchWriteItem.
    pub fn write(&mut self, request: &Value) -> WriteVerdict {
        let table = self.capacity.table.clone();
        let Some(list) = request
            .pointer(&format!(
                "/RequestItems/{}",
                table.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_array)
        else {
            return WriteVerdict::Pass;
        };
        self.refill();
        let second = self.second();
        let mut admitted = Vec::new();
        let mut unprocessed = Vec::new();
        let mut reason = None;
        for w in list {
            let (item, cost) = match (w.get("PutRequest"), w.get("DeleteRequest")) {
                (Some(put), _) => {
                    let item = put.get("Item").cloned().unwrap_or(Value::Null);
                    let cost = write_cost(&item);
                    (item, cost)
                }
                // A delete's cost is its item's size; the model charges one unit.
                (None, Some(del)) => (del.get("Key").cloned().unwrap_or(Value::Null), 1.0),
                _ => (Value::Null, 1.0),
            };
            match self.admit(&item, cost, second) {
                Ok(()) => admitted.push(w.clone()),
                Err(r) => {
                    reason = Some(r);
                    unprocessed.push(w.clone());
                }
            }
        }
        self.count_write(second, reason, unprocessed.len(), admitted.is_empty());
        let Some(reason) = reason else {
            return WriteVerdict::Pass;
        };
        if admitted.is_empty() {
            return WriteVerdict::Reject(reason);
        }
        let mut forward = request.clone();
        forward["RequestItems"][&table] = Value::Array(admitted);
        WriteVerdict::Partial {
            forward,
            unprocessed,
        }
    }

    /// Admits a PutItem, UpdateItem or DeleteItem of the table, or names why not: DynamoDB
    /// answers a single write it cannot take with ProvisionedThroughputExceededException
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html>).
    /// A put costs a unit per 1 KB of its item; an update or delete costs its stored item's size,
    /// which the model does not know: one unit.
    pub fn write_one(&mut self, operation: &str, request: &Value) -> Option<Reason> {
        if request.get("TableName").and_then(Value::as_str) != Some(self.capacity.table.as_str()) {
            return None;
        }
        let (key, cost) = match operation {
            "PutItem" => (request.get("Item"), write_cost(&request["Item"])),
            "UpdateItem" | "DeleteItem" => (request.get("Key"), 1.0),
            _ => return None,
        };
        self.refill();
        let second = self.second();
        let reason = self.admit(key.unwrap_or(&Value::Null), cost, second).err();
        self.count_write(second, reason, usize::from(reason.is_some()), true);
        reason
    }

    /// Takes `cost` units from the item's partition and the table, or names which has too few.
    fn admit(&mut self, item: &Value, cost: f64, second: usize) -> Result<(), Reason> {
        let p = self.partition_of_item(item);
        let partition_ok = self.write[p].tokens >= cost;
        let table_ok = self.table_write.as_ref().is_none_or(|t| t.tokens >= cost);
        if !partition_ok {
            return Err(Reason::KeyRange);
        }
        if !table_ok {
            return Err(Reason::Table);
        }
        self.write[p].tokens -= cost;
        if let Some(t) = self.table_write.as_mut() {
            t.tokens -= cost;
        }
        let partitions = self.capacity.partitions as usize;
        Self::record(&mut self.counters.write_units, second, partitions, p, cost);
        Ok(())
    }

    fn count_write(&mut self, second: usize, reason: Option<Reason>, throttled: usize, none: bool) {
        self.counters.write_requests += 1;
        bump(&mut self.counters.write_requests_per_second, second);
        let Some(reason) = reason else {
            return;
        };
        self.counters.throttled_write_requests += 1;
        bump(&mut self.counters.throttled_per_second, second);
        self.counters.throttled_items += throttled as u64;
        match reason {
            Reason::KeyRange => self.counters.key_range_throttles += 1,
            Reason::Table => self.counters.table_throttles += 1,
        }
        if none {
            self.counters.rejected_write_requests += 1;
        }
    }

    /// Admits the keys of a BatchGetItem (or GetItem, as a batch of one) that the partitions and
    /// the table can serve, charging each its least cost (one 4 KB unit, half for an eventually
    /// consistent read; an item not found costs that too); the rest are UnprocessedKeys, or, when
    /// none fits, ProvisionedThroughputExceededException
    /// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html>).
    /// [`Model::charge_reads`] charges the answer's larger items the rest.
    pub fn read(&mut self, keys: &[Value], consistent: bool) -> ReadVerdict {
        self.refill();
        self.counters.read_requests += 1;
        let least = if consistent { 1.0 } else { 0.5 };
        let (second, partitions) = (self.second(), self.capacity.partitions as usize);
        let (mut admitted, mut unprocessed, mut reason) = (Vec::new(), Vec::new(), None);
        for key in keys {
            let p = self.partition_of_item(key);
            if self.read[p].tokens < least {
                reason = Some(Reason::KeyRange);
            } else if self.table_read.as_ref().is_some_and(|t| t.tokens < least) {
                reason = Some(Reason::Table);
            } else {
                self.read[p].tokens -= least;
                if let Some(t) = self.table_read.as_mut() {
                    t.tokens -= least;
                }
                Self::record(&mut self.counters.read_units, second, partitions, p, least);
                self.counters.key_read_units += least;
                admitted.push(key.clone());
                continue;
            }
            unprocessed.push(key.clone());
        }
        let Some(reason) = reason else {
            return ReadVerdict::Pass;
        };
        self.counters.throttled_read_requests += 1;
        if admitted.is_empty() {
            return ReadVerdict::Reject(reason);
        }
        ReadVerdict::Partial {
            admitted,
            unprocessed,
        }
    }

    /// Charges items read by key beyond their least cost: each rounded up to 4 KB on its own.
    pub fn charge_reads(&mut self, items: &[Value], consistent: bool) {
        let factor = if consistent { 1.0 } else { 0.5 };
        let (second, partitions) = (self.second(), self.capacity.partitions as usize);
        for item in items {
            let units = (item_size(item).div_ceil(4096).max(1) - 1) as f64 * factor;
            if units == 0.0 {
                continue;
            }
            let p = self.partition_of_item(item);
            self.read[p].tokens -= units;
            if let Some(t) = self.table_read.as_mut() {
                t.tokens -= units;
            }
            Self::record(&mut self.counters.read_units, second, partitions, p, units);
            self.counters.key_read_units += units;
        }
    }

    /// Before a Scan of the table: `Some(reason)` when its key range (or the table) has no read
    /// capacity left. The page's cost is charged after, by [`Model::charge_scan`].
    pub fn admit_scan(&mut self, request: &Value) -> Option<Reason> {
        if request.get("TableName").and_then(Value::as_str) != Some(self.capacity.table.as_str()) {
            return None;
        }
        self.refill();
        self.counters.read_requests += 1;
        let p = match request.get("ExclusiveStartKey") {
            Some(k) => self.partition_of_item(k),
            None => {
                let segment = request.get("Segment").and_then(Value::as_u64).unwrap_or(0);
                let total = request
                    .get("TotalSegments")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                self.partition_of_prefix((segment * 4096 / total.max(1)) as u32)
            }
        };
        let reason = if self.read[p].tokens <= 0.0 {
            Some(Reason::KeyRange)
        } else if self.table_read.as_ref().is_some_and(|t| t.tokens <= 0.0) {
            Some(Reason::Table)
        } else {
            None
        };
        if reason.is_some() {
            self.counters.throttled_read_requests += 1;
        }
        reason
    }

    /// Charges a Scan's answer: per partition its items touched, one unit per 4 KB (half for an
    /// eventually consistent read). Buckets may go into debt.
    pub fn charge_scan(&mut self, request: &Value, answer: &Value) {
        if request.get("TableName").and_then(Value::as_str) != Some(self.capacity.table.as_str()) {
            return;
        }
        let consistent = request
            .get("ConsistentRead")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let partitions = self.capacity.partitions as usize;
        let mut bytes = vec![0usize; partitions];
        for item in answer
            .get("Items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            bytes[self.partition_of_item(item)] += item_size(item);
        }
        let second = self.second();
        for (p, b) in bytes.into_iter().enumerate().filter(|(_, b)| *b > 0) {
            let units = b.div_ceil(4096) as f64 * if consistent { 1.0 } else { 0.5 };
            self.read[p].tokens -= units;
            if let Some(t) = self.table_read.as_mut() {
                t.tokens -= units;
            }
            Self::record(&mut self.counters.read_units, second, partitions, p, units);
        }
    }
}

fn bump(counter: &mut Vec<u64>, second: usize) {
    if counter.len() <= second {
        counter.resize(second + 1, 0);
    }
    counter[second] += 1;
}

/// DynamoDB's answer to a request nothing of which fits.
pub fn throttle_body(reason: Reason, table_arn: &str, write: bool) -> Value {
    let (message, code) = match (reason, write) {
        (Reason::KeyRange, true) => (
            "Throughput exceeds the current capacity for one or more partitions of your table.",
            "TableWriteKeyRangeThroughputExceeded",
        ),
        (Reason::KeyRange, false) => (
            "Throughput exceeds the current capacity for one or more partitions of your table.",
            "TableReadKeyRangeThroughputExceeded",
        ),
        (Reason::Table, true) => (
            "The level of configured provisioned throughput for the table was exceeded.",
            "TableWriteProvisionedThroughputExceeded",
        ),
        (Reason::Table, false) => (
            "The level of configured provisioned throughput for the table was exceeded.",
            "TableReadProvisionedThroughputExceeded",
        ),
    };
    json!({
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": message,
        "ThrottlingReasons": [{ "reason": code, "resource": table_arn }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(pk: &str) -> Value {
        json!({ "PutRequest": { "Item": { "pk": { "S": pk }, "v": { "S": "x".repeat(900) } } } })
    }

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        let item = json!({
            "pk": {"S": "abc"}, "n": {"N": "12345"}, "b": {"BOOL": true},
            "l": {"L": [{"S": "ab"}, {"NULL": true}]}, "m": {"M": {"k": {"S": "v"}}}
        });
        // pk 2+3, n 1+4 (5 digits: 3+1), b 1+1, l 1+(3+3+2), m 1+(3+1+1+1)
        assert_eq!(item_size(&item), 5 + 5 + 2 + 9 + 7);
        assert_eq!(base64_decode("aGVsbG8="), b"hello");
    }

    #[test]
    fn a_hot_partition_throttles_alone_and_the_table_names_its_own_limit() {
        let mut cap = Capacity::partitioned("T", "pk", 4, 10.0);
        cap.burst_seconds = 1.0;
        let mut m = Model::new(cap.clone());
        // Keys of one partition only.
        let p0: Vec<String> = (0..2000)
            .map(|i| format!("k{i}"))
            .filter(|k| m.partition_of_prefix(key_hash_prefix(&json!({"S": k}))) == 0)
            .take(40)
            .collect();
        let batch = |keys: &[String]| json!({ "RequestItems": { "T": keys.iter().map(|k| put(k)).collect::<Vec<_>>() } });
        match m.write(&batch(&p0[..25])) {
            WriteVerdict::Partial { unprocessed, .. } => assert_eq!(unprocessed.len(), 15),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            m.write(&batch(&p0[25..])),
            WriteVerdict::Reject(Reason::KeyRange)
        ));
        // Another partition still takes writes.
        let p1: Vec<String> = (0..2000)
            .map(|i| format!("k{i}"))
            .filter(|k| m.partition_of_prefix(key_hash_prefix(&json!({"S": k}))) == 1)
            .take(5)
            .collect();
        assert!(matches!(m.write(&batch(&p1)), WriteVerdict::Pass));
        assert_eq!(m.counters.write_units[0][1], 5.0);

        cap.table_write_units = Some(3.0);
        let mut t = Model::new(cap);
        assert!(matches!(t.write(&batch(&p1)), WriteVerdict::Partial { .. }));
        assert!(matches!(
            t.write(&batch(&p1)),
            WriteVerdict::Reject(Reason::Table)
        ));
    }

    #[test]
    fn single_writes_spend_the_same_partition_capacity_as_batches() {
        let mut m = Model::new(Capacity::partitioned("T", "pk", 4, 10.0));
        let key = |i: u32| json!({"pk": {"S": format!("k{i}")}});
        let p = |m: &Model, i: u32| m.partition_of_prefix(key_hash_prefix(&key(i)["pk"]));
        let hot: Vec<u32> = (0..2000).filter(|i| p(&m, *i) == 0).take(12).collect();
        let cold = (0..2000)
            .find(|i| p(&m, *i) == 1)
            .expect("a key of partition 1");
        let put = |i: u32| json!({"TableName": "T", "Item": {"pk": key(i)["pk"], "v": {"S": "x".repeat(1500)}}});
        // Two units per 1.5 KB put: five fit in partition 0's ten.
        let verdicts: Vec<_> = hot[..6]
            .iter()
            .map(|i| m.write_one("PutItem", &put(*i)))
            .collect();
        assert_eq!(verdicts[..5], [None; 5]);
        assert_eq!(verdicts[5], Some(Reason::KeyRange));
        let delete = json!({"TableName": "T", "Key": key(cold)});
        assert_eq!(m.write_one("DeleteItem", &delete), None);
        let other = json!({"TableName": "U", "Key": key(hot[0])});
        assert_eq!(
            m.write_one("DeleteItem", &other),
            None,
            "another table is not modelled"
        );
        assert_eq!(m.counters.write_requests, 7);
        assert_eq!(m.counters.rejected_write_requests, 1);
        assert_eq!(m.counters.write_units[0][0], 10.0);
    }

    #[test]
    fn reads_by_key_spend_read_units_and_leave_the_rest_unprocessed() {
        // 10 write units: 30 read units per partition.
        let mut m = Model::new(Capacity::partitioned("T", "pk", 4, 10.0));
        let key = |i: u32| json!({"pk": {"S": format!("k{i}")}});
        let p = |m: &Model, i: u32| m.partition_of_prefix(key_hash_prefix(&key(i)["pk"]));
        let hot: Vec<Value> = (0..4000)
            .filter(|i| p(&m, *i) == 0)
            .take(70)
            .map(key)
            .collect();
        // Eventually consistent: half a unit each, 60 keys fit in 30 units.
        match m.read(&hot, false) {
            ReadVerdict::Partial {
                admitted,
                unprocessed,
            } => {
                assert_eq!((admitted.len(), unprocessed.len()), (60, 10));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            m.read(&hot[..1], true),
            ReadVerdict::Reject(Reason::KeyRange)
        ));
        // A 9 KB item costs 3 units strongly consistent: 1 at admission, 2 after.
        let mut big = key(1);
        big["v"] = json!({"S": "x".repeat(9000)});
        let cold = (0..4000)
            .find(|i| p(&m, *i) == 1)
            .expect("a key of partition 1");
        big["pk"] = key(cold)["pk"].clone();
        assert!(matches!(m.read(&[big.clone()], true), ReadVerdict::Pass));
        m.charge_reads(&[big], true);
        assert_eq!(m.counters.read_units[0][1], 3.0);
        assert_eq!(m.counters.throttled_read_requests, 2);
        let all: f64 = m.counters.read_units.iter().flatten().sum();
        assert_eq!(m.counters.key_read_units, all, "every read here was by key");
    }
}
