//! The data calls every copy and comparison makes, retried under one budget: BatchGetItem, any
//! idempotent call, and the capacity they consume.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::KeysAndAttributes;

use crate::aws;
use crate::backoff::RetryPolicy;
use crate::error::{Error, Result};
use crate::item::{Item, KeySchema, item_size, key_projection};
use crate::rate::Limiter;

/// Consumed capacity, in thousandths of a unit so that atomics can add it.
#[derive(Debug, Default)]
pub struct Units {
    read: AtomicU64,
    write: AtomicU64,
}

impl Units {
    fn add(counter: &AtomicU64, capacity: Option<f64>) {
        if let Some(c) = capacity {
            counter.fetch_add((c * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }

    pub fn add_read(&self, capacity: Option<f64>) {
        Self::add(&self.read, capacity);
    }

    pub fn add_write(&self, capacity: Option<f64>) {
        Self::add(&self.write, capacity);
    }

    pub fn read(&self) -> f64 {
        self.read.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn write(&self) -> f64 {
        self.write.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// The units a batch call consumed, `None` when DynamoDB (or an emulator) did not say.
pub fn consumed_units(reported: &[aws_sdk_dynamodb::types::ConsumedCapacity]) -> Option<f64> {
    if reported.is_empty() {
        return None;
    }
    reported.iter().map(|c| c.capacity_units).sum()
}

/// Pays for a page read: its items, or the units DynamoDB reported (else estimated from the
/// items' sizes at one unit per 4 KB, as strongly consistent reads cost).
pub fn charge_read(limiter: &Limiter, items: &[Item], consumed: Option<f64>) {
    let units = consumed
        .unwrap_or_else(|| (items.iter().map(item_size).sum::<usize>() as f64 / 4096.0).ceil());
    limiter.charge(items.len() as f64, units);
}

/// Runs one idempotent call, retrying transient failures under the budget, after the reads of
/// earlier calls are paid for; throttling slows `limiter` down.
pub async fn retrying<T, E, F, Fut>(
    policy: &RetryPolicy,
    limiter: &Limiter,
    operation: &'static str,
    resource: &str,
    call: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let call_as = (operation, resource);
    retrying_fenced(policy, limiter, call_as, || async { Ok(0) }, call).await
}

/// [`retrying`] for a write: `fence` runs right before every attempt and stops the call when it
/// fails (a writer whose lease was taken over), and gives the fencing number logged with it.
pub async fn retrying_fenced<T, E, F, Fut, G, GFut>(
    policy: &RetryPolicy,
    limiter: &Limiter,
    (operation, resource): (&'static str, &str),
    mut fence: G,
    mut call: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    G: FnMut() -> GFut,
    GFut: Future<Output = Result<u64>>,
{
    let mut backoff = policy.start();
    loop {
        limiter.ready().await;
        let number = fence().await?;
        let sent = call().await;
        if number > 0 {
            tracing::debug!(target: "dynamo_dr::fence", fence = number, table = resource, ok = sent.is_ok(), "write answered");
        }
        match sent {
            Ok(v) => {
                limiter.succeeded();
                return Ok(v);
            }
            Err(e) if aws::is_retryable(&e) => {
                if aws::is_throttle(&e) {
                    limiter.throttled();
                }
                if backoff.wait().await.is_none() {
                    return Err(Error::RetryBudgetExhausted {
                        operation,
                        table: resource.to_string(),
                        pending: 0,
                        attempts: backoff.attempts() + 1,
                        elapsed: backoff.elapsed(),
                        last_cause: aws::describe(&e),
                    });
                }
            }
            Err(e) => return Err(aws::aws_error(operation, resource, &e)),
        }
    }
}
/// Reads `keys` from `table` with BatchGetItem (strongly consistent), retrying UnprocessedKeys.
pub async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
    keys_only: Option<&KeySchema>,
    retry: &RetryPolicy,
    read: &Limiter,
    units: Option<&Units>,
) -> Result<Vec<Item>> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let mut pending = chunk.to_vec();
        let mut backoff = retry.start();
        while !pending.is_empty() {
            let mut ka = KeysAndAttributes::builder()
                .set_keys(Some(pending.clone()))
                .consistent_read(true);
            if let Some(key) = keys_only {
                let (projection, names) = key_projection(key);
                ka = ka
                    .projection_expression(projection)
                    .set_expression_attribute_names(Some(names));
            }
            let ka = ka.build().map_err(|e| Error::BadState {
                what: "BatchGetItem request".into(),
                state: e.to_string(),
                hint: "this is a bug in dynamo-dr".into(),
            })?;
            let out = retrying(retry, read, "BatchGetItem", table, || {
                client
                    .batch_get_item()
                    .request_items(table, ka.clone())
                    .return_consumed_capacity(
                        aws_sdk_dynamodb::types::ReturnConsumedCapacity::Total,
                    )
                    .send()
            })
            .await?;
            let consumed = consumed_units(out.consumed_capacity());
            if let Some(u) = units {
                u.add_read(consumed);
            }
            let got = out
                .responses
                .and_then(|mut r| r.remove(table))
                .unwrap_or_default();
            charge_read(read, &got, consumed);
            let progressed = !got.is_empty();
            found.extend(got);
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if progressed {
                backoff.progressed();
            }
            if backoff.wait().await.is_none() {
                return Err(Error::RetryBudgetExhausted {
                    operation: "BatchGetItem",
                    table: table.to_string(),
                    pending: pending.len(),
                    attempts: backoff.attempts() + 1,
                    elapsed: backoff.elapsed(),
                    last_cause: "UnprocessedKeys".into(),
                });
            }
        }
    }
    Ok(found)
}
