//! Building SDK clients and reading the SDK's errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::AwsErrorKind;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Connection settings from the command line or config file; unset fields fall back to the SDK's
/// own chain (environment, `~/.aws/config`, instance role), so `AWS_ENDPOINT_URL*` keep working.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
    /// How long one attempt of a call may take before it is abandoned and retried
    /// [default: 60 s].
    pub attempt_timeout: Option<Duration>,
    /// Attempts the SDK makes of a control-plane call (DescribeTable, CreateBackup, ...) before
    /// the error reaches the tool: the same `--retry-budget` the tool's own retries of data-plane
    /// calls have (see [`without_retries`]) [default: 15].
    pub max_attempts: Option<u32>,
    /// The SDK config these options load, once per session: every client made from it shares
    /// one credentials chain and its cache, so credentials are resolved once, not per client.
    pub sdk: SharedSdkConfig,
}

/// An SDK config loaded at first use and shared by every clone of the options that hold it.
#[derive(Debug, Clone, Default)]
pub struct SharedSdkConfig(std::sync::Arc<tokio::sync::OnceCell<aws_config::SdkConfig>>);

/// Attempts of one call, the SDK's and the tool's own retries alike (`--retry-budget`).
pub const DEFAULT_RETRY_BUDGET: u32 = 15;
/// One attempt's timeout, in seconds (`--attempt-timeout`).
pub const DEFAULT_ATTEMPT_TIMEOUT_SECONDS: u64 = 60;

impl AwsOptions {
    /// One attempt's timeout, as the clients are built with.
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
            .unwrap_or(Duration::from_secs(DEFAULT_ATTEMPT_TIMEOUT_SECONDS))
    }
}

/// The region a run would use: `--region` or the config's, else the SDK's chain (AWS_REGION,
/// the profile); `None` when none says.
pub async fn region(opts: &AwsOptions) -> Option<String> {
    if let Some(r) = &opts.region {
        return Some(r.clone());
    }
    let mut chain = aws_config::default_provider::region::DefaultRegionChain::builder();
    if let Some(profile) = &opts.profile {
        chain = chain.profile_name(profile);
    }
    chain.build().region().await.map(|r| r.to_string())
}

/// The session's SDK config: loaded by the first caller, then shared.
pub async fn load_config(opts: &AwsOptions) -> aws_config::SdkConfig {
    opts.sdk.0.get_or_init(|| load_new(opts)).await.clone()
}

async fn load_new(opts: &AwsOptions) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // A hung connection must surface as a retryable timeout rather than stall a segment forever.
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(opts.attempt_timeout())
                .build(),
        )
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(opts.max_attempts.unwrap_or(DEFAULT_RETRY_BUDGET)),
        );
    if let Some(region) = &opts.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &opts.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

pub async fn dynamodb_client(opts: &AwsOptions) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::from(&load_config(opts).await)
        // The SDK's shared retry quota (500 tokens) runs dry in a long run against a throttling
        // table, after which it stops retrying control-plane calls at all; give the tool its own.
        .retry_partition(
            RetryPartition::custom("dynamo-dr")
                .token_bucket(TokenBucket::builder().capacity(50_000).build())
                .build(),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// For lookups that only inform a plan: one retry, then the caller reports what it could not see
/// (an emulator answers an operation it lacks with a 500, which the full budget would retry for
/// minutes).
pub fn briefly(client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
    with_retries(client, RetryConfig::standard().with_max_attempts(2))
}

/// [`briefly`] for Lambda.
pub fn briefly_lambda(client: &aws_sdk_lambda::Client) -> aws_sdk_lambda::Client {
    let config = client
        .config()
        .to_builder()
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::standard().with_max_attempts(2))
        .build();
    aws_sdk_lambda::Client::from_conf(config)
}

/// The same client without the SDK's retries, for Scan, BatchWriteItem and BatchGetItem: the
/// tool retries those itself, under its own budget, so that it sees every throttle (to slow
/// down) and every UnprocessedItem. Also for CreateBackup, which is not idempotent.
pub fn without_retries(client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
    with_retries(client, RetryConfig::disabled())
}

fn with_retries(client: &aws_sdk_dynamodb::Client, retry: RetryConfig) -> aws_sdk_dynamodb::Client {
    let config = client.config().to_builder().retry_config(retry).build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

pub async fn kms_client(opts: &AwsOptions) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&load_config(opts).await)
}

/// Path-style addressing when the endpoint is overridden (an emulator has no bucket subdomains).
pub async fn s3_client(opts: &AwsOptions) -> aws_sdk_s3::Client {
    let config = load_config(opts).await;
    let path_style =
        config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
    let config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub async fn lambda_client(opts: &AwsOptions) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&load_config(opts).await)
}

/// Error codes DynamoDB uses for "slow down" and transient server faults.
const RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
];

/// Codes with which DynamoDB asks the caller to slow down.
const THROTTLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
];

/// Whether DynamoDB throttled the call.
pub fn is_throttle<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    error_kind(err) == AwsErrorKind::Throttled
}

/// Where DynamoDB says a throttle's limit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    /// One key range (a hot partition): `…KeyRangeThroughputExceeded`.
    KeyRange,
    /// The table, an index or the account: every other reason, or none given.
    Table,
}

/// The scope of a throttle, from its ThrottlingReasons
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TroubleshootingThrottling.html>);
/// `None` when the call was not throttled.
pub fn throttle_scope<E: ProvideErrorMetadata>(
    err: &SdkError<E, HttpResponse>,
) -> Option<ThrottleScope> {
    if !is_throttle(err) {
        return None;
    }
    let reasons = match err {
        SdkError::ServiceError(service) => service
            .raw()
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
            .and_then(|v| v.get("ThrottlingReasons").cloned()),
        _ => None,
    };
    let key_range = reasons
        .as_ref()
        .and_then(|r| r.as_array())
        .is_some_and(|r| {
            !r.is_empty()
                && r.iter().all(|x| {
                    x.get("reason")
                        .and_then(|s| s.as_str())
                        .is_some_and(|s| s.contains("KeyRange"))
                })
        });
    Some(if key_range {
        ThrottleScope::KeyRange
    } else {
        ThrottleScope::Table
    })
}

/// Whether a failed call may succeed if repeated unchanged.
pub fn is_retryable<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            // Any 5xx is the service's fault, whatever error type it names.
            RETRYABLE_CODES.contains(&code) || service.raw().status().is_server_error()
        }
        _ => false,
    }
}

/// The service error code, for messages; act on [`error_kind`].
pub fn error_code<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    }
}

/// The most of a failed call's description a person reads.
const MAX_DESCRIPTION: usize = 160;

/// A failed call as people read it, in every message: `<AWS error code or HTTP status>: <one
/// sentence of cause>`, at most [`MAX_DESCRIPTION`] characters, never the SDK's debug dump
/// (which goes to the debug log). Callers name the call.
pub fn describe<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    tracing::debug!(error = ?err, "AWS call failed");
    let status = |r: &HttpResponse| format!("HTTP {}", r.status().as_u16());
    let (head, cause) = match err {
        SdkError::ServiceError(service) => {
            let (e, http) = (service.err(), status(service.raw()));
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => (code.to_string(), message.to_string()),
                (Some(code), None) => (code.to_string(), http),
                (None, Some(message)) => (http, message.to_string()),
                (None, None) => (http, uncoded(service.raw().status().as_u16()).into()),
            }
        }
        SdkError::ResponseError(r) => (
            status(r.raw()),
            "the answer could not be read as the call's response".into(),
        ),
        SdkError::TimeoutError(_) => ("timeout".into(), "no answer within the timeout".into()),
        SdkError::DispatchFailure(_) => ("not sent".into(), chain(err)),
        _ => ("error".into(), chain(err)),
    };
    let text = format!("{head}: {}", first_sentence(&cause));
    match text.char_indices().nth(MAX_DESCRIPTION) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Why an answer without an AWS error code failed, by its status alone.
fn uncoded(status: u16) -> &'static str {
    match status {
        403 => "access denied, with no AWS error code",
        404 => "the endpoint does not know this call",
        400..=499 => "the request was refused, with no AWS error code",
        500..=599 => "the service failed, with no AWS error code (an emulator may lack the call)",
        _ => "the answer carried no AWS error code",
    }
}

/// An error and its sources' messages, innermost last, without the SDK's debug form.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Up to the first sentence's full stop.
fn first_sentence(text: &str) -> &str {
    let text = text.lines().next().unwrap_or_default();
    match text.find(". ") {
        Some(end) => &text[..=end],
        None => text,
    }
}

/// Classifies a failed call by its service error code: the one place codes are matched.
pub fn error_kind<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> AwsErrorKind {
    match error_code(err) {
        Some(c) if THROTTLE_CODES.contains(&c) => AwsErrorKind::Throttled,
        Some(
            "ResourceNotFoundException" | "BackupNotFoundException" | "TableNotFoundException",
        ) => AwsErrorKind::NotFound,
        // DynamoDB answers CreateTable on an existing name with ResourceInUseException.
        Some("TableAlreadyExistsException" | "ResourceInUseException") => {
            AwsErrorKind::AlreadyExists
        }
        Some("ConditionalCheckFailedException") => AwsErrorKind::ConditionFailed,
        _ => AwsErrorKind::Other,
    }
}

/// Wraps a failed call as [`crate::Error::Aws`].
pub fn aws_error<E>(
    operation: &'static str,
    resource: impl Into<String>,
    err: &SdkError<E, HttpResponse>,
) -> crate::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    crate::Error::Aws {
        operation,
        resource: resource.into(),
        kind: error_kind(err),
        message: describe(err),
    }
}

/// An SDK time as the tool's, to the nearest millisecond: the SDK reads DynamoDB's epoch-second
/// floats by truncating to nanoseconds, so `1764841189.462` arrives as `….461999893` and
/// truncating again would make it `.461`, before the instant AWS prints.
pub fn timestamp(t: &aws_smithy_types::DateTime) -> Option<jiff::Timestamp> {
    let rounded = (i128::from(t.subsec_nanos()) + 500_000) / 1_000_000;
    let millis = i128::from(t.secs()) * 1000 + rounded;
    jiff::Timestamp::from_millisecond(i64::try_from(millis).ok()?).ok()
}

/// The AWS principal these credentials act as, for the audit trail. Never fatal: a run must not
/// stop because STS is unreachable, so a failure comes back as its description.
pub async fn caller_identity(opts: &AwsOptions) -> std::result::Result<AwsIdentity, String> {
    let config = aws_sdk_sts::config::Builder::from(&load_config(opts).await)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(10))
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .build();
    let client = aws_sdk_sts::Client::from_conf(config);
    let call = client.get_caller_identity().send();
    let out = match tokio::time::timeout(Duration::from_secs(45), call).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("STS GetCallerIdentity failed: {}", describe(&e))),
        Err(_) => return Err("STS GetCallerIdentity did not answer within 45 s".into()),
    };
    Ok(AwsIdentity {
        arn: out.arn().unwrap_or_default().to_string(),
        account: out.account().unwrap_or_default().to_string(),
        user_id: out.user_id().unwrap_or_default().to_string(),
    })
}

/// The AWS principal a run acted as (STS GetCallerIdentity), for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsIdentity {
    pub arn: String,
    pub account: String,
    pub user_id: String,
}

/// An instant as the SDK takes it.
pub fn to_aws_time(t: jiff::Timestamp) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_secs_and_nanos(
        t.as_second(),
        t.subsec_nanosecond().max(0) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
    use aws_smithy_types::error::ErrorMetadata;

    fn throttle(code: &str, body: &str) -> SdkError<BatchWriteItemError, HttpResponse> {
        let err = BatchWriteItemError::generic(ErrorMetadata::builder().code(code).build());
        let raw = HttpResponse::new(
            400.try_into().expect("status"),
            aws_smithy_types::body::SdkBody::from(body.to_string()),
        );
        SdkError::service_error(err, raw)
    }

    #[test]
    fn the_window_edge_is_the_millisecond_aws_prints() {
        // boto3 prints this edge as `…49.462000+00:00`; the float is `…49.461999893…`.
        let edge = aws_smithy_types::DateTime::from_secs_f64(1_764_841_189.462);
        assert!(edge.subsec_nanos() < 462_000_000, "{edge:?}");
        let t = timestamp(&edge).expect("time");
        assert_eq!(t.to_string(), "2025-12-04T09:39:49.462Z");
        let up = aws_smithy_types::DateTime::from_secs_and_nanos(1_764_841_189, 999_600_000);
        assert_eq!(
            timestamp(&up).expect("time").to_string(),
            "2025-12-04T09:39:50Z"
        );
        let below = aws_smithy_types::DateTime::from_secs_f64(1_764_841_189.000_1);
        assert_eq!(
            timestamp(&below).expect("time").to_string(),
            "2025-12-04T09:39:49Z"
        );
    }

    #[test]
    fn a_throttle_names_its_scope() {
        let pte = "ProvisionedThroughputExceededException";
        let key_range = r#"{"ThrottlingReasons":[{"reason":"TableWriteKeyRangeThroughputExceeded","resource":"arn"}]}"#;
        let table = r#"{"ThrottlingReasons":[{"reason":"TableWriteProvisionedThroughputExceeded","resource":"arn"}]}"#;
        let mixed = r#"{"ThrottlingReasons":[{"reason":"TableWriteKeyRangeThroughputExceeded"},{"reason":"IndexWriteProvisionedThroughputExceeded"}]}"#;
        assert_eq!(
            throttle_scope(&throttle(pte, key_range)),
            Some(ThrottleScope::KeyRange)
        );
        assert_eq!(
            throttle_scope(&throttle(pte, table)),
            Some(ThrottleScope::Table)
        );
        assert_eq!(
            throttle_scope(&throttle(pte, mixed)),
            Some(ThrottleScope::Table)
        );
        assert_eq!(
            throttle_scope(&throttle(pte, "{}")),
            Some(ThrottleScope::Table)
        );
        assert_eq!(
            throttle_scope(&throttle("ThrottlingException", "{}")),
            Some(ThrottleScope::Table)
        );
        assert_eq!(
            throttle_scope(&throttle("ValidationException", key_range)),
            None
        );
    }
}
