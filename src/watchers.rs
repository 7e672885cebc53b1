//! Who else sees a table's writes: the Lambda event source mappings on its stream, its Kinesis
//! streaming destinations and its global table replicas. A copy-back writes into a live table,
//! and each of these receives every write it makes.
//!
//! Each lookup that fails is reported as unknown, with why, and never stops a plan: the plan
//! says what it could not see.

use aws_sdk_dynamodb::Client;

use crate::aws;
use crate::error::Result;
use crate::table::TableInfo;

/// A Lambda event source mapping on the table's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub uuid: String,
    /// The function's name (the ARN's last part).
    pub function: String,
    /// Enabled, Disabled, Creating and so on, as Lambda reports it.
    pub state: String,
    pub batch_size: Option<i32>,
    pub batching_window_seconds: Option<i32>,
    pub starting_position: Option<String>,
    /// For a table of an environment: the `skip_recovery_events` pattern that makes
    /// `recovery-mode end` replace this mapping by one at LATEST (`None`: it replays).
    pub at_end: Option<EndPolicy>,
}

/// What `recovery-mode end` will do with a mapping, by the environment's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndPolicy {
    Replay,
    Skip(String),
}

/// A Kinesis data stream the table's changes are also written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KinesisDestination {
    pub stream_arn: String,
    pub status: String,
}

/// What could be learnt, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen<T> {
    Known(T),
    Unknown(String),
}

impl<T: Default> Default for Seen<T> {
    fn default() -> Self {
        Seen::Known(T::default())
    }
}

impl<T> Seen<T> {
    pub fn known(&self) -> Option<&T> {
        match self {
            Seen::Known(t) => Some(t),
            Seen::Unknown(_) => None,
        }
    }
}

impl<I> Seen<Vec<I>> {
    /// The list as text, each entry by `show`: `none`, the entries, or `UNKNOWN (why)`.
    pub fn list(&self, show: impl Fn(&I) -> String) -> String {
        match self {
            Seen::Known(v) if v.is_empty() => "none".to_string(),
            Seen::Known(v) => v.iter().map(show).collect::<Vec<_>>().join("; "),
            Seen::Unknown(why) => format!("UNKNOWN ({why})"),
        }
    }
}

/// Everything that receives the table's writes besides the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watchers {
    pub mappings: Seen<Vec<Mapping>>,
    pub kinesis: Seen<Vec<KinesisDestination>>,
    /// The TTL attribute, when TTL is enabled.
    pub ttl: Seen<Option<String>>,
}

impl Watchers {
    /// Marks each mapping with what `recovery-mode end` will do with it, by the environment's
    /// `skip_recovery_events` patterns.
    pub fn mark_end_policies(&mut self, skip: &[String]) {
        if let Seen::Known(mappings) = &mut self.mappings {
            for m in mappings {
                m.at_end = Some(
                    skip.iter()
                        .find(|p| wildmatch::WildMatch::new(p).matches(&m.function))
                        .map_or(EndPolicy::Replay, |p| EndPolicy::Skip(p.clone())),
                );
            }
        }
    }

    /// Why the consumers of a streamed table are not known, when the lookup of the Lambda
    /// mappings on its stream failed.
    pub fn unknown_consumers(&self, table: &TableInfo) -> Option<String> {
        match &self.mappings {
            Seen::Unknown(why) if table.stream.is_some() => Some(format!(
                "the Lambda mappings on its stream could not be listed ({why})"
            )),
            _ => None,
        }
    }

    /// Whether anything downstream would learn of the recovery's writes one by one.
    pub fn has_consumers(&self, table: &TableInfo) -> bool {
        !table.replicas.is_empty()
            || self.mappings.known().is_some_and(|m| !m.is_empty())
            || self.kinesis.known().is_some_and(|k| !k.is_empty())
    }
}

impl Watchers {
    /// One sentence for the journal and the incident report: what saw the recovery's writes.
    pub fn sentence(&self, table: &TableInfo) -> String {
        let mappings = self
            .mappings
            .list(|m| format!("{} ({}, uuid {})", m.function, m.state, m.uuid));
        let kinesis = self.kinesis.list(|d| d.stream_arn.clone());
        let stream = table.stream.as_ref().map_or("none".to_string(), |s| {
            format!("{} ({})", s.arn, s.view_type)
        });
        let live = table.approx_items.unwrap_or_default().max(0) as u64;
        let records = match &table.stream {
            Some(_) => format!(
                "; stream records expected: hard-reset ~{}, diff one per real difference",
                hard_reset_records(live, live)
            ),
            None => String::new(),
        };
        format!(
            "downstream of {}: stream {stream}; its mappings {}; Kinesis destinations {}; \
             replicas {}{records}",
            table.name,
            mappings,
            kinesis,
            if table.replicas.is_empty() {
                "none".to_string()
            } else {
                table.replicas.join(", ")
            }
        )
    }
}

/// Reads the mappings on the table's stream, its Kinesis destinations and its TTL setting.
pub async fn describe(
    client: &Client,
    lambda: &aws_sdk_lambda::Client,
    table: &TableInfo,
) -> Result<Watchers> {
    let (client, lambda) = (&aws::briefly(client), &aws::briefly_lambda(lambda));
    let mappings = async {
        match &table.stream {
            Some(stream) => mappings(lambda, &stream.arn).await,
            None => Seen::Known(Vec::new()),
        }
    };
    let (mappings, kinesis, ttl) = tokio::join!(
        mappings,
        kinesis(client, &table.name),
        ttl(client, &table.name)
    );
    Ok(Watchers {
        mappings,
        kinesis,
        ttl,
    })
}

async fn mappings(lambda: &aws_sdk_lambda::Client, stream_arn: &str) -> Seen<Vec<Mapping>> {
    let mut found = Vec::new();
    let mut marker = None;
    loop {
        let page = lambda
            .list_event_source_mappings()
            .event_source_arn(stream_arn)
            .set_marker(marker)
            .send()
            .await;
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                return Seen::Unknown(format!(
                    "ListEventSourceMappings failed: {}",
                    aws::describe(&e)
                ));
            }
        };
        found.extend(page.event_source_mappings().iter().map(|m| {
            Mapping {
                uuid: m.uuid().unwrap_or_default().to_string(),
                // `…:function:NAME` or `…:function:NAME:ALIAS`.
                function: m
                    .function_arn()
                    .and_then(|a| a.split(":function:").nth(1))
                    .and_then(|rest| rest.split(':').next())
                    .unwrap_or_default()
                    .to_string(),
                state: m.state().unwrap_or("unknown").to_string(),
                batch_size: m.batch_size(),
                batching_window_seconds: m.maximum_batching_window_in_seconds(),
                starting_position: m.starting_position().map(|p| p.as_str().to_string()),
                at_end: None,
            }
        }));
        match page.next_marker() {
            Some(next) if !next.is_empty() => marker = Some(next.to_string()),
            _ => return Seen::Known(found),
        }
    }
}

async fn kinesis(client: &Client, table: &str) -> Seen<Vec<KinesisDestination>> {
    match client
        .describe_kinesis_streaming_destination()
        .table_name(table)
        .send()
        .await
    {
        Ok(out) => Seen::Known(
            out.kinesis_data_stream_destinations()
                .iter()
                .map(|d| KinesisDestination {
                    stream_arn: d.stream_arn().unwrap_or_default().to_string(),
                    status: d
                        .destination_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_else(|| "unknown".into()),
                })
                .collect(),
        ),
        Err(e) => Seen::Unknown(format!(
            "DescribeKinesisStreamingDestination failed: {}",
            aws::describe(&e)
        )),
    }
}

async fn ttl(client: &Client, table: &str) -> Seen<Option<String>> {
    match client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
    {
        Ok(out) => Seen::Known(out.time_to_live_description().and_then(|d| {
            let on = d
                .time_to_live_status()
                .is_some_and(|s| *s == aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled);
            on.then(|| d.attribute_name().unwrap_or_default().to_string())
        })),
        Err(e) => Seen::Unknown(format!("DescribeTimeToLive failed: {}", aws::describe(&e))),
    }
}

/// Stream records a recovery emits, before it runs. DynamoDB writes a stream record only for a
/// write that changes the item: the Developer Guide's Streams page says a PutItem or UpdateItem
/// that changes no data in an item writes no stream record
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html>), as
/// tecracer observed on re-uploading the same data
/// (<https://www.tecracer.com/blog/2021/01/why-i-had-to-update-my-mental-model-of-dynamodb-streams.html>).
/// So a hard reset emits a REMOVE for every live item and an INSERT for every restored one, and
/// a diff only a record per real difference.
pub fn hard_reset_records(live_items: u64, restored_items: u64) -> u64 {
    live_items + restored_items
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    /// What moto answers a call it does not implement with.
    const MOTO_500: &str = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n\
        <h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was \
        unable to complete your request.</p>\n";

    async fn kinesis_after(status: u16, body: &'static str) -> String {
        let rule =
            mock!(Client::describe_kinesis_streaming_destination).then_http_response(move || {
                HttpResponse::new(
                    status.try_into().expect("status"),
                    aws_smithy_types::body::SdkBody::from(body),
                )
            });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));
        kinesis(&client, "Orders")
            .await
            .list(|d| d.stream_arn.clone())
    }

    #[tokio::test]
    async fn a_failed_lookup_reads_as_call_status_and_cause() {
        let plan = kinesis_after(500, MOTO_500).await;
        assert!(plan.len() < 200, "{} characters: {plan}", plan.len());
        assert!(
            plan.contains("DescribeKinesisStreamingDestination"),
            "{plan}"
        );
        assert!(plan.contains("HTTP 500"), "{plan}");
        assert!(
            !plan.contains("ServiceError {") && !plan.contains("Error at offset"),
            "{plan}"
        );
        let long = format!("Access to the table is denied. {}", "x".repeat(500));
        let body = format!(
            r#"{{"__type":"com.amazonaws.dynamodb.v20120810#AccessDeniedException","message":"{long}"}}"#
        );
        let plan = kinesis_after(400, body.leak()).await;
        assert!(plan.len() < 200, "{} characters: {plan}", plan.len());
        assert!(
            plan.contains("AccessDeniedException: Access to the table is denied.)"),
            "{plan}"
        );
    }
}
