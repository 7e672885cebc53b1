//! UnprocessedItems, throttling and the retry budget, through exact response sequences.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ErrorMetadata;
use aws_sdk_dynamodb::operation::batch_write_item::{BatchWriteItemError, BatchWriteItemOutput};
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException;
use aws_sdk_dynamodb::types::{AttributeValue, WriteRequest};
use aws_smithy_mocks::{MockResponse, Rule, RuleMode, mock, mock_client};
use dynamo_dr::backoff::RetryPolicy;
use dynamo_dr::item::KeySchema;
use dynamo_dr::sync::{SyncOptions, hard_reset};
use dynamo_dr::table::TableInfo;

const ITEMS: usize = 60;

fn table(name: &str) -> TableInfo {
    TableInfo {
        name: name.into(),
        arn: format!("arn:aws:dynamodb:us-east-1:123456789012:table/{name}"),
        status: "ACTIVE".into(),
        key: KeySchema {
            hash: "pk".into(),
            range: None,
        },
        kms_key_arn: None,
        approx_items: None,
        approx_bytes: None,
        restored_to: None,
        restored_from: None,
        sensitive: false,
        write_capacity: None,
        gsis: 0,
        indexes: Vec::new(),
        write_limits: Default::default(),
        read_limits: Default::default(),
        stream: None,
        replicas: Vec::new(),
        hash_type: Some("S".into()),
    }
}

fn options(max_attempts: u32) -> SyncOptions {
    SyncOptions {
        segments: 1,
        write_concurrency: 4,
        pages_in_memory: 2,
        page_limit: None,
        retry: RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(5),
            max_attempts,
        },
        ..SyncOptions::default()
    }
}

/// The source holds ITEMS items; the destination is already empty.
fn scans() -> Rule {
    mock!(Client::scan).then_compute_output(|req| {
        let items = if req.table_name() == Some("source") {
            (0..ITEMS)
                .map(|i| HashMap::from([("pk".to_string(), AttributeValue::S(format!("k{i}")))]))
                .collect()
        } else {
            vec![]
        };
        ScanOutput::builder().set_items(Some(items)).build()
    })
}

fn key(r: &WriteRequest) -> String {
    match r.put_request().and_then(|p| p.item().get("pk")) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("unexpected request {other:?}"),
    }
}

fn throttled() -> BatchWriteItemError {
    BatchWriteItemError::ProvisionedThroughputExceededException(
        ProvisionedThroughputExceededException::builder()
            .message("Rate exceeded")
            .meta(
                ErrorMetadata::builder()
                    .code("ProvisionedThroughputExceededException")
                    .message("Rate exceeded")
                    .build(),
            )
            .build(),
    )
}

fn client(rules: &[&Rule]) -> Client {
    mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules, |c| c
        .retry_config(
            aws_sdk_dynamodb::config::retry::RetryConfig::disabled()
        ))
}

#[tokio::test]
async fn unprocessed_items_and_throttling_are_retried_until_every_item_is_written_once() {
    let written: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (w, c) = (written.clone(), calls.clone());
    let writes = mock!(Client::batch_write_item).then_compute_response(move |req| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        let requests = req
            .request_items()
            .and_then(|m| m.get("dest"))
            .cloned()
            .unwrap_or_default();
        // Every third call is throttled outright; every other call takes only half the batch.
        if n % 3 == 2 {
            return MockResponse::Error(throttled());
        }
        let keep = if n % 2 == 0 {
            requests.len() / 2
        } else {
            requests.len()
        };
        let mut w = w.lock().expect("lock");
        for r in &requests[..keep] {
            *w.entry(key(r)).or_default() += 1;
        }
        let left = requests[keep..].to_vec();
        let mut out = BatchWriteItemOutput::builder();
        if !left.is_empty() {
            out = out.unprocessed_items("dest", left);
        }
        MockResponse::Output(out.build())
    });
    let scan = scans();
    let client = client(&[&scan, &writes]);
    let report = hard_reset(&client, &table("source"), &table("dest"), &options(8))
        .await
        .expect("sync");
    assert_eq!(report.copied_items, ITEMS as u64);
    let written = written.lock().expect("lock");
    assert_eq!(written.len(), ITEMS, "every item written");
    assert!(
        written.values().all(|&n| n == 1),
        "no item written twice: {written:?}"
    );
    assert!(
        calls.load(Ordering::SeqCst) > ITEMS.div_ceil(25),
        "retries happened"
    );
}

#[tokio::test]
async fn an_exhausted_budget_fails_loudly_and_names_what_is_pending() {
    let writes = mock!(Client::batch_write_item).then_compute_output(|req| {
        let requests = req
            .request_items()
            .and_then(|m| m.get("dest"))
            .cloned()
            .unwrap_or_default();
        BatchWriteItemOutput::builder()
            .unprocessed_items("dest", requests)
            .build()
    });
    let scan = scans();
    let client = client(&[&scan, &writes]);
    let err = hard_reset(&client, &table("source"), &table("dest"), &options(3))
        .await
        .unwrap_err();
    match &err {
        dynamo_dr::Error::RetryBudgetExhausted {
            pending, attempts, ..
        } => {
            assert!(*pending > 0 && *pending <= 25, "pending {pending}");
            assert_eq!(*attempts, 4);
        }
        other => panic!("expected RetryBudgetExhausted, got {other}"),
    }
    assert_eq!(err.exit_status(), dynamo_dr::ExitStatus::Failed);
    assert!(err.to_string().contains("nothing was skipped"), "{err}");
    // One first try plus three retries for each batch that started: no silent success.
    assert!(writes.num_calls() >= 4);
}

#[tokio::test]
async fn a_non_retryable_error_stops_at_once() {
    let writes = mock!(Client::batch_write_item).then_error(|| {
        BatchWriteItemError::generic(
            ErrorMetadata::builder()
                .code("ValidationException")
                .message("Item size has exceeded the maximum allowed size")
                .build(),
        )
    });
    let scan = scans();
    let client = client(&[&scan, &writes]);
    let err = hard_reset(&client, &table("source"), &table("dest"), &options(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ValidationException"), "{err}");
    assert!(
        writes.num_calls() <= 4,
        "one call per in-flight batch, no retries: {}",
        writes.num_calls()
    );
}

/// The first write is throttled with `reason`; returns how often the run's shared limiter, which
/// every segment waits on, was told to slow down.
async fn shared_slowdowns(reason: &'static str) -> u64 {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let writes = mock!(Client::batch_write_item).then_compute_response(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            let body = serde_json::json!({
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "Throughput exceeds the current capacity",
                "ThrottlingReasons": [{ "reason": reason, "resource": "arn:aws:dynamodb:us-east-1:123456789012:table/dest" }]
            });
            return MockResponse::Http(aws_sdk_dynamodb::config::http::HttpResponse::new(
                400.try_into().expect("status"),
                aws_smithy_types::body::SdkBody::from(body.to_string()),
            ));
        }
        MockResponse::Output(BatchWriteItemOutput::builder().build())
    });
    let scan = scans();
    let client = client(&[&scan, &writes]);
    let opts = options(8);
    let report = hard_reset(&client, &table("source"), &table("dest"), &opts)
        .await
        .expect("sync");
    assert_eq!(report.copied_items, ITEMS as u64);
    assert!(
        calls.load(Ordering::SeqCst) > 1,
        "the throttled batch was retried"
    );
    opts.write_rate.throttles()
}

/// A throttle that names a key range slows that segment alone; one that names the table slows
/// the shared limiter, and so every segment.
#[tokio::test]
async fn a_throttle_slows_what_its_reason_names() {
    assert_eq!(
        shared_slowdowns("TableWriteKeyRangeThroughputExceeded").await,
        0
    );
    assert_eq!(
        shared_slowdowns("TableWriteProvisionedThroughputExceeded").await,
        1
    );
}
