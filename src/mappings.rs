//! An event source mapping's whole configuration, and its replacement by a twin that starts at
//! `LATEST`: recovery mode's `skip` policy for a consumer of a DynamoDB stream.
//!
//! Lambda allows one mapping per function and DynamoDB stream ("The event source arn ... and
//! function ... provided mapping already exists", ResourceConflictException), so the old mapping
//! is deleted before its twin is created. The twin is tagged with the UUID it replaces
//! (<https://docs.aws.amazon.com/lambda/latest/dg/tags-esm.html>), and a rerun adopts a mapping
//! only by that tag, never by its function and source alone.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::get_event_source_mapping::GetEventSourceMappingOutput;
use aws_sdk_lambda::types::{
    DestinationConfig, EventSourceMappingLoggingConfig, EventSourceMappingMetric,
    EventSourceMappingMetricsConfig, EventSourceMappingSystemLogLevel, EventSourcePosition, Filter,
    FilterCriteria, FunctionResponseType, OnFailure, OnSuccess,
};
use serde::{Deserialize, Serialize};

use crate::aws::{aws_error, error_kind};
use crate::backoff::{Poll, PollPolicy, poll_until};
use crate::error::{AwsErrorKind, Error, Result};

/// The tag a twin carries: the UUID of the mapping it replaces.
pub const REPLACES_TAG: &str = "dynamo-dr:replaces";

/// How long a deleted mapping may stay `Deleting` before its twin can be created.
const DELETE_DEADLINE: Duration = Duration::from_secs(300);

/// Everything `CreateEventSourceMapping` accepts for a DynamoDB stream source, as
/// `GetEventSourceMapping` and `ListTags` returned it, plus the state and the position it had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingConfig {
    pub uuid: String,
    pub mapping_arn: Option<String>,
    pub function_arn: String,
    pub event_source_arn: String,
    pub state: Option<String>,
    pub starting_position: Option<String>,
    pub batch_size: Option<i32>,
    pub maximum_batching_window_in_seconds: Option<i32>,
    pub parallelization_factor: Option<i32>,
    #[serde(default)]
    pub filter_patterns: Vec<String>,
    pub kms_key_arn: Option<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
    pub system_log_level: Option<String>,
    pub on_failure_destination: Option<String>,
    pub on_success_destination: Option<String>,
    pub maximum_record_age_in_seconds: Option<i32>,
    pub bisect_batch_on_function_error: Option<bool>,
    pub maximum_retry_attempts: Option<i32>,
    pub tumbling_window_in_seconds: Option<i32>,
    #[serde(default)]
    pub function_response_types: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl MappingConfig {
    /// Every setting a twin must share with the original: all but identity, state and position.
    pub fn settings(&self) -> MappingConfig {
        let mut tags = self.tags.clone();
        tags.remove(REPLACES_TAG);
        MappingConfig {
            uuid: String::new(),
            mapping_arn: None,
            state: None,
            starting_position: None,
            tags,
            ..self.clone()
        }
    }
}

/// The source is a DynamoDB stream (`arn:aws:dynamodb:…:table/T/stream/…`).
pub fn is_dynamodb_stream(arn: &str) -> bool {
    arn.split(':').nth(2) == Some("dynamodb") && arn.contains("/stream/")
}

/// Settings of other source kinds that a twin on a DynamoDB stream could not carry; a mapping
/// holding any is not replaced (its consumer would silently change).
fn uncarried(out: &GetEventSourceMappingOutput) -> Vec<&'static str> {
    let mut found = Vec::new();
    let mut check = |set: bool, name| {
        if set {
            found.push(name)
        }
    };
    check(!out.topics().is_empty(), "Topics");
    check(!out.queues().is_empty(), "Queues");
    check(
        !out.source_access_configurations().is_empty(),
        "SourceAccessConfigurations",
    );
    check(
        out.self_managed_event_source().is_some(),
        "SelfManagedEventSource",
    );
    check(
        out.amazon_managed_kafka_event_source_config().is_some()
            || out.self_managed_kafka_event_source_config().is_some(),
        "Kafka configuration",
    );
    check(
        out.document_db_event_source_config().is_some(),
        "DocumentDBEventSourceConfig",
    );
    check(out.scaling_config().is_some(), "ScalingConfig");
    check(
        out.provisioned_poller_config().is_some(),
        "ProvisionedPollerConfig",
    );
    check(
        out.starting_position_timestamp().is_some(),
        "StartingPositionTimestamp",
    );
    found
}

fn config_of(
    out: &GetEventSourceMappingOutput,
    tags: BTreeMap<String, String>,
) -> Result<MappingConfig> {
    let uuid = out.uuid().unwrap_or_default().to_string();
    let missing = |field: &str| {
        Error::invalid(
            "event source mapping",
            format!("GetEventSourceMapping of {uuid} returned no {field}"),
        )
    };
    let uncarried = uncarried(out);
    if !uncarried.is_empty() {
        return Err(Error::invalid(
            "--skip-recovery-events",
            format!(
                "mapping {uuid} has {}, which a mapping on a DynamoDB stream cannot carry; \
                 leave it out of the skip patterns (it is then re-enabled and replays)",
                uncarried.join(", ")
            ),
        ));
    }
    let destination = out.destination_config();
    Ok(MappingConfig {
        mapping_arn: out.event_source_mapping_arn().map(str::to_string),
        function_arn: out
            .function_arn()
            .ok_or_else(|| missing("FunctionArn"))?
            .to_string(),
        event_source_arn: out
            .event_source_arn()
            .ok_or_else(|| missing("EventSourceArn"))?
            .to_string(),
        state: out.state().map(str::to_string),
        starting_position: out.starting_position().map(|p| p.as_str().to_string()),
        batch_size: out.batch_size(),
        maximum_batching_window_in_seconds: out.maximum_batching_window_in_seconds(),
        parallelization_factor: out.parallelization_factor(),
        filter_patterns: out
            .filter_criteria()
            .map(|f| {
                f.filters()
                    .iter()
                    .filter_map(|f| f.pattern().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        kms_key_arn: out.kms_key_arn().map(str::to_string),
        metrics: out
            .metrics_config()
            .map(|m| m.metrics().iter().map(|m| m.as_str().to_string()).collect())
            .unwrap_or_default(),
        system_log_level: out
            .logging_config()
            .and_then(|l| l.system_log_level())
            .map(|l| l.as_str().to_string()),
        on_failure_destination: destination
            .and_then(|d| d.on_failure())
            .and_then(|d| d.destination())
            .map(str::to_string),
        on_success_destination: destination
            .and_then(|d| d.on_success())
            .and_then(|d| d.destination())
            .map(str::to_string),
        maximum_record_age_in_seconds: out.maximum_record_age_in_seconds(),
        bisect_batch_on_function_error: out.bisect_batch_on_function_error(),
        maximum_retry_attempts: out.maximum_retry_attempts(),
        tumbling_window_in_seconds: out.tumbling_window_in_seconds(),
        function_response_types: out
            .function_response_types()
            .iter()
            .map(|t| t.as_str().to_string())
            .collect(),
        tags,
        uuid,
    })
}

async fn tags_of(client: &Client, arn: Option<&str>) -> Result<BTreeMap<String, String>> {
    let Some(arn) = arn else {
        return Ok(BTreeMap::new());
    };
    let out = client
        .list_tags()
        .resource(arn)
        .send()
        .await
        .map_err(|e| aws_error("ListTags", arn, &e))?;
    Ok(out
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// The mapping's whole configuration with its tags; `None` when it does not exist.
pub async fn get(client: &Client, uuid: &str) -> Result<Option<MappingConfig>> {
    let out = match client.get_event_source_mapping().uuid(uuid).send().await {
        Ok(out) => out,
        Err(e) if error_kind(&e) == AwsErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(aws_error("GetEventSourceMapping", uuid, &e)),
    };
    let tags = tags_of(client, out.event_source_mapping_arn()).await?;
    config_of(&out, tags).map(Some)
}

/// Deletes the mapping and waits until Lambda no longer has it; one already gone is deleted.
pub async fn delete(client: &Client, uuid: &str) -> Result<()> {
    match client.delete_event_source_mapping().uuid(uuid).send().await {
        Ok(_) => {}
        Err(e) if error_kind(&e) == AwsErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(aws_error("DeleteEventSourceMapping", uuid, &e)),
    }
    let what = format!("event source mapping {uuid} to be deleted");
    poll_until(
        &what,
        &PollPolicy::new(DELETE_DEADLINE),
        |state, waited| tracing::info!(mapping = uuid, state, ?waited, "waiting for deletion"),
        || async {
            match client.get_event_source_mapping().uuid(uuid).send().await {
                Ok(out) => Ok(Poll::Pending(out.state().unwrap_or("unknown").to_string())),
                Err(e) if error_kind(&e) == AwsErrorKind::NotFound => Ok(Poll::Ready(())),
                Err(e) => Err(aws_error("GetEventSourceMapping", uuid, &e)),
            }
        },
    )
    .await
}

/// Waits until the mapping is `Enabled`: only then does Lambda read its stream, so the twin is
/// reading before any function gets its concurrency back. `Creating` and `Enabling` are waited
/// out (<https://docs.aws.amazon.com/lambda/latest/api/API_EventSourceMappingConfiguration.html>,
/// `State`); any other state is an error naming it.
pub async fn wait_enabled(client: &Client, uuid: &str) -> Result<()> {
    let what = format!("event source mapping {uuid} to be Enabled");
    poll_until(
        &what,
        &PollPolicy::new(DELETE_DEADLINE),
        |state, waited| tracing::info!(mapping = uuid, state, ?waited, "waiting until enabled"),
        || async {
            let out = client
                .get_event_source_mapping()
                .uuid(uuid)
                .send()
                .await
                .map_err(|e| aws_error("GetEventSourceMapping", uuid, &e))?;
            match out.state().unwrap_or("unknown") {
                "Enabled" => Ok(Poll::Ready(())),
                s @ ("Creating" | "Enabling" | "Updating") => Ok(Poll::Pending(s.to_string())),
                other => Err(Error::BadState {
                    what: format!("event source mapping {uuid}"),
                    state: other.to_string(),
                    hint: "enable it (aws lambda update-event-source-mapping --enabled), then run \
                           `recovery-mode end` again"
                        .into(),
                }),
            }
        },
    )
    .await
}

/// The twin of `old` that an earlier, interrupted run created: a mapping on the same source
/// whose tag names `old`'s UUID (the tag alone decides; a function name could be anyone's).
pub async fn find_twin(client: &Client, old: &MappingConfig) -> Result<Option<String>> {
    let all = client
        .list_event_source_mappings()
        .event_source_arn(&old.event_source_arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| aws_error("ListEventSourceMappings", &old.event_source_arn, &e))?;
    for m in all {
        let tags = tags_of(client, m.event_source_mapping_arn()).await?;
        if tags.get(REPLACES_TAG) == Some(&old.uuid) {
            return Ok(m.uuid().map(str::to_string));
        }
    }
    Ok(None)
}

/// Creates `old`'s twin, enabled, at `LATEST`, tagged with `old`'s UUID; returns its UUID.
pub async fn create_twin(client: &Client, old: &MappingConfig) -> Result<String> {
    let mut tags = old.tags.clone();
    tags.insert(REPLACES_TAG.into(), old.uuid.clone());
    let mut req = client
        .create_event_source_mapping()
        .function_name(&old.function_arn)
        .event_source_arn(&old.event_source_arn)
        .enabled(true)
        .starting_position(EventSourcePosition::Latest)
        .set_batch_size(old.batch_size)
        .set_maximum_batching_window_in_seconds(old.maximum_batching_window_in_seconds)
        .set_parallelization_factor(old.parallelization_factor)
        .set_kms_key_arn(old.kms_key_arn.clone())
        .set_maximum_record_age_in_seconds(old.maximum_record_age_in_seconds)
        .set_bisect_batch_on_function_error(old.bisect_batch_on_function_error)
        .set_maximum_retry_attempts(old.maximum_retry_attempts)
        .set_tumbling_window_in_seconds(old.tumbling_window_in_seconds)
        .set_tags(Some(tags.into_iter().collect()));
    if !old.filter_patterns.is_empty() {
        let filters = old
            .filter_patterns
            .iter()
            .map(|p| Filter::builder().pattern(p).build())
            .collect();
        req = req.filter_criteria(FilterCriteria::builder().set_filters(Some(filters)).build());
    }
    if !old.metrics.is_empty() {
        let metrics = old
            .metrics
            .iter()
            .map(|m| EventSourceMappingMetric::from(m.as_str()))
            .collect();
        req = req.metrics_config(
            EventSourceMappingMetricsConfig::builder()
                .set_metrics(Some(metrics))
                .build(),
        );
    }
    if let Some(level) = &old.system_log_level {
        req = req.logging_config(
            EventSourceMappingLoggingConfig::builder()
                .system_log_level(EventSourceMappingSystemLogLevel::from(level.as_str()))
                .build(),
        );
    }
    if old.on_failure_destination.is_some() || old.on_success_destination.is_some() {
        let on_failure = old
            .on_failure_destination
            .as_ref()
            .map(|d| OnFailure::builder().destination(d).build());
        let on_success = old
            .on_success_destination
            .as_ref()
            .map(|d| OnSuccess::builder().destination(d).build());
        req = req.destination_config(
            DestinationConfig::builder()
                .set_on_failure(on_failure)
                .set_on_success(on_success)
                .build(),
        );
    }
    for t in &old.function_response_types {
        req = req.function_response_types(FunctionResponseType::from(t.as_str()));
    }
    let out = req
        .send()
        .await
        .map_err(|e| aws_error("CreateEventSourceMapping", &old.function_arn, &e))?;
    out.uuid().map(str::to_string).ok_or_else(|| {
        Error::invalid(
            "event source mapping",
            format!(
                "CreateEventSourceMapping for {} returned no UUID",
                old.function_arn
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dynamodb_streams_are_streams() {
        assert!(is_dynamodb_stream(
            "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-12-01T00:00:00.000"
        ));
        assert!(!is_dynamodb_stream(
            "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
        ));
        assert!(!is_dynamodb_stream(
            "arn:aws:sqs:us-east-1:123456789012:dynamodb-stream-queue"
        ));
    }

    #[test]
    fn a_recorded_configuration_reads_back_and_its_settings_leave_identity_out() {
        let old = MappingConfig {
            uuid: "u-1".into(),
            mapping_arn: Some("arn:aws:lambda:us-east-1:1:event-source-mapping:u-1".into()),
            function_arn: "arn:aws:lambda:us-east-1:1:function:Prod-Mailer".into(),
            event_source_arn: "arn:aws:dynamodb:us-east-1:1:table/T/stream/x".into(),
            state: Some("Disabled".into()),
            starting_position: Some("TRIM_HORIZON".into()),
            batch_size: Some(50),
            maximum_batching_window_in_seconds: Some(3),
            parallelization_factor: Some(2),
            filter_patterns: vec![r#"{"eventName":["INSERT"]}"#.into()],
            kms_key_arn: None,
            metrics: vec!["EventCount".into()],
            system_log_level: None,
            on_failure_destination: Some("arn:aws:sqs:us-east-1:1:dlq".into()),
            on_success_destination: None,
            maximum_record_age_in_seconds: Some(3600),
            bisect_batch_on_function_error: Some(true),
            maximum_retry_attempts: Some(4),
            tumbling_window_in_seconds: None,
            function_response_types: vec!["ReportBatchItemFailures".into()],
            tags: [("team".to_string(), "mail".to_string())].into(),
        };
        let text = serde_json::to_string(&old).unwrap();
        let back: MappingConfig = serde_json::from_str(&text).unwrap();
        assert_eq!(back, old);
        let mut twin = old.clone();
        twin.uuid = "u-2".into();
        twin.mapping_arn = None;
        twin.state = Some("Enabled".into());
        twin.starting_position = Some("LATEST".into());
        twin.tags.insert(REPLACES_TAG.into(), "u-1".into());
        assert_eq!(twin.settings(), old.settings());
        twin.batch_size = Some(100);
        assert_ne!(twin.settings(), old.settings());
    }
}
