//! The journal in a DynamoDB control table shared by every operator of the account: items
//! `execution#<id>`, `lease#<table>` and `segment#<id>#<phase>#<n>`, leases and segments changed
//! only by conditional writes.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};

use super::RecoveryMode;
use super::{Execution, Journal, Lease, Phase, SegmentRecord};
use crate::aws;
use crate::error::{AwsErrorKind, Error, Result};

type PutItem = aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;

const PK: &str = "pk";
const RECORD: &str = "record";
const VERSION: &str = "version";

pub struct DynamoJournal {
    client: Client,
    table: String,
}

/// `dynamo-dr journal init`: creates the control table (on-demand) if it does not exist and waits
/// for it to be ACTIVE.
pub async fn init(client: &Client, table: &str) -> Result<bool> {
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(PK)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| Error::Journal(e.to_string()))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(PK)
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| Error::Journal(e.to_string()))?,
        )
        .send()
        .await;
    let created = match created {
        Ok(_) => true,
        Err(e) if aws::error_kind(&e) == AwsErrorKind::AlreadyExists => false,
        Err(e) => return Err(aws::aws_error("CreateTable", table, &e)),
    };
    crate::table::wait_active(
        client,
        table,
        std::time::Duration::from_secs(600),
        "journal table",
    )
    .await?;
    Ok(created)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

impl DynamoJournal {
    pub async fn open(client: Client, table: &str) -> Result<DynamoJournal> {
        match crate::table::describe(&client, table).await? {
            Some(_) => Ok(DynamoJournal {
                client,
                table: table.to_string(),
            }),
            None => Err(Error::invalid(
                "--journal",
                format!(
                    "the journal table {table} does not exist; create it once per account with \
                     `dynamo-dr journal init --journal dynamodb://{table}`"
                ),
            )),
        }
    }

    /// Puts a record as version `expected + 1` if its stored version is still `expected` (0: no
    /// item, or one written before records had versions).
    /// A write whose answer was lost and whose retry failed its condition is ours when the item
    /// read back holds our record at our version.
    async fn put_versioned(
        &self,
        (pk, body): (String, String),
        put: PutItem,
        expected: u64,
        what: &str,
    ) -> Result<()> {
        let put = put
            .item(PK, s(pk.clone()))
            .item(RECORD, s(body.clone()))
            .item(VERSION, AttributeValue::N((expected + 1).to_string()));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(#v)")
                .expression_attribute_names("#v", VERSION)
        } else {
            expect_version(put, Some(expected))
        };
        let sent = put
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws::aws_error("PutItem", &self.table, &e));
        if swapped(sent)? {
            return Ok(());
        }
        let ours = self.get(pk).await?.is_some_and(|item| {
            version_of(&item, what).ok() == Some(expected + 1)
                && record_of(&item, what).ok().as_deref() == Some(body.as_str())
        });
        if ours {
            return Ok(());
        }
        Err(Error::Conflict {
            what: what.to_string(),
            expected,
        })
    }

    async fn get(&self, pk: String) -> Result<Option<HashMap<String, AttributeValue>>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| aws::aws_error("GetItem", &self.table, &e))?;
        Ok(out.item)
    }
}

fn version_of(item: &HashMap<String, AttributeValue>, origin: &str) -> Result<u64> {
    match item.get(VERSION) {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| Error::Journal(format!("{origin} has a bad version"))),
        _ => Err(Error::Journal(format!("{origin} has no version"))),
    }
}

/// The partition keys of the journal's items; IAM policies hold a role to its own with
/// `dynamodb:LeadingKeys` patterns built from these.
pub fn execution_pk(id: &str) -> String {
    format!("execution#{id}")
}

pub fn lease_pk(table: &str) -> String {
    format!("lease#{table}")
}

pub fn recovery_mode_pk(environment: &str) -> String {
    format!("recovery-mode#{environment}")
}

/// Every segment item of execution `id` starts with this.
pub fn segments_pk(id: &str) -> String {
    format!("segment#{id}#")
}

fn segment_pk(id: &str, phase: Phase, segment: u32) -> String {
    format!("{}{}#{segment}", segments_pk(id), phase.as_str())
}

/// A conditional write's refusal as `false`.
fn swapped(sent: Result<()>) -> Result<bool> {
    match sent {
        Ok(()) => Ok(true),
        Err(Error::Aws {
            kind: AwsErrorKind::ConditionFailed,
            ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The condition that the item's version is still `expected` (0 or `None`: no item).
fn expect_version(put: PutItem, expected: Option<u64>) -> PutItem {
    match expected {
        None | Some(0) => put
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK),
        Some(v) => put
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":v", AttributeValue::N(v.to_string())),
    }
}

fn record_of(item: &HashMap<String, AttributeValue>, origin: &str) -> Result<String> {
    match item.get(RECORD) {
        Some(AttributeValue::S(r)) => Ok(r.clone()),
        _ => Err(Error::Journal(format!(
            "{origin} has no record attribute; the journal is damaged"
        ))),
    }
}

#[async_trait::async_trait]
impl Journal for DynamoJournal {
    fn describe(&self) -> String {
        format!("dynamodb://{}", self.table)
    }

    async fn load(&self, id: &str) -> Result<Option<Execution>> {
        let origin = format!("journal item execution#{id} in {}", self.table);
        let Some(item) = self.get(execution_pk(id)).await? else {
            return Ok(None);
        };
        Execution::parse(record_of(&item, &origin)?.as_bytes(), &origin).map(Some)
    }

    async fn save(&self, execution: &mut Execution) -> Result<()> {
        let mut next = execution.clone();
        next.version += 1;
        let record = serde_json::to_string(&next).map_err(|e| Error::Journal(e.to_string()))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("table", s(&execution.inputs.table))
            .item("updatedAt", s(execution.updated_at.to_string()));
        let what = format!("the record of execution {}", execution.id);
        let pk = execution_pk(&execution.id);
        self.put_versioned((pk, record), put, execution.version, &what)
            .await?;
        execution.version += 1;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<Execution>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .filter_expression("begins_with(#pk, :p)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":p", s(execution_pk("")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| aws::aws_error("Scan", &self.table, &e))?;
            for item in page.items() {
                let origin = format!("a journal item in {}", self.table);
                out.push(Execution::parse(
                    record_of(item, &origin)?.as_bytes(),
                    &origin,
                )?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn load_recovery_mode(&self, environment: &str) -> Result<Option<RecoveryMode>> {
        let origin = format!("journal item recovery-mode#{environment} in {}", self.table);
        let Some(item) = self.get(recovery_mode_pk(environment)).await? else {
            return Ok(None);
        };
        RecoveryMode::parse(record_of(&item, &origin)?.as_bytes(), &origin).map(Some)
    }

    async fn save_recovery_mode(&self, record: &mut RecoveryMode) -> Result<()> {
        let mut next = record.clone();
        next.version += 1;
        let body = serde_json::to_string(&next).map_err(|e| Error::Journal(e.to_string()))?;
        let put = self.client.put_item().table_name(&self.table);
        let what = format!("the recovery-mode record of {}", record.environment);
        let pk = recovery_mode_pk(&record.environment);
        self.put_versioned((pk, body), put, record.version, &what)
            .await?;
        record.version += 1;
        Ok(())
    }

    async fn read_lease(&self, table: &str) -> Result<Option<(Lease, u64)>> {
        let origin = format!("journal item lease#{table} in {}", self.table);
        let Some(item) = self.get(lease_pk(table)).await? else {
            return Ok(None);
        };
        let lease: Lease = serde_json::from_str(&record_of(&item, &origin)?)
            .map_err(|e| Error::Journal(format!("{origin} is damaged ({e})")))?;
        Ok(Some((lease, version_of(&item, &origin)?)))
    }

    async fn swap_lease(
        &self,
        table: &str,
        lease: Option<&Lease>,
        expected: Option<u64>,
    ) -> Result<bool> {
        let pk = s(lease_pk(table));
        let sent = match (lease, expected) {
            (None, None) => return Ok(true),
            (Some(l), _) => {
                let record = serde_json::to_string(l).map_err(|e| Error::Journal(e.to_string()))?;
                let next = expected.map_or(1, |v| v + 1);
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item(PK, pk)
                    .item(RECORD, s(record))
                    .item(VERSION, AttributeValue::N(next.to_string()));
                expect_version(put, expected)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws::aws_error("PutItem", &self.table, &e))
            }
            (None, Some(v)) => self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(PK, pk)
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", AttributeValue::N(v.to_string()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws::aws_error("DeleteItem", &self.table, &e)),
        };
        swapped(sent)
    }

    async fn load_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
    ) -> Result<Option<(SegmentRecord, u64)>> {
        let pk = segment_pk(id, phase, segment);
        let origin = format!("journal item {pk} in {}", self.table);
        let Some(item) = self.get(pk).await? else {
            return Ok(None);
        };
        let record: SegmentRecord = serde_json::from_str(&record_of(&item, &origin)?)
            .map_err(|e| Error::Journal(format!("{origin} is damaged ({e})")))?;
        Ok(Some((record, version_of(&item, &origin)?)))
    }

    async fn swap_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
        record: &SegmentRecord,
        expected: u64,
    ) -> Result<bool> {
        let body = serde_json::to_string(record).map_err(|e| Error::Journal(e.to_string()))?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(segment_pk(id, phase, segment)))
            .item(RECORD, s(body))
            .item(VERSION, AttributeValue::N((expected + 1).to_string()));
        swapped(
            expect_version(put, Some(expected))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws::aws_error("PutItem", &self.table, &e)),
        )
    }
}
