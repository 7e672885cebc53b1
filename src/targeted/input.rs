//! A targeted scope's inputs, checked before anything changes: a keys file, partition key
//! values typed by the table's hash key, and what a dry run can count.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::aws::AwsOptions;
use crate::calls::retrying;
use crate::error::{Error, Result};
use crate::item::{Item, KeySchema, key_from_json};
use crate::journal::Scope;
use crate::objects::S3Uri;
use crate::sync::SyncOptions;
use crate::table::TableInfo;

/// A keys scope's file where this process reads it: the operator's own file, or a private copy
/// of an S3 object (deleted when the last clone is dropped).
#[derive(Debug, Clone)]
pub struct KeysFile {
    path: PathBuf,
    _copy: Option<Arc<tempfile::TempPath>>,
}

impl KeysFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The scope's file, as given (`s3://BUCKET/KEY` is copied here first); `None` for a
    /// scope without one.
    pub async fn open(aws: &AwsOptions, scope: &Scope) -> Result<Option<KeysFile>> {
        let Scope::Keys { file, .. } = scope else {
            return Ok(None);
        };
        let Some(uri) = S3Uri::parse(file)? else {
            let path = PathBuf::from(file);
            return Ok(Some(KeysFile { path, _copy: None }));
        };
        let copy = tempfile::Builder::new()
            .prefix("dynamo-dr-keys-")
            .tempfile()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir().display().to_string(),
                source,
            })?
            .into_temp_path();
        let client = crate::aws::s3_client(aws).await;
        crate::objects::download(&client, &uri, &copy).await?;
        Ok(Some(KeysFile {
            path: copy.to_path_buf(),
            _copy: Some(Arc::new(copy)),
        }))
    }
}

/// Reads a keys file through once before anything is changed: every line is a key of `key`
/// (DynamoDB JSON, alone or as the `key` of a `verify --keys-out` or `diff` line). Returns the
/// number of keys and the file's SHA-256.
pub fn read_keys_file(path: &Path, key: &KeySchema) -> Result<(u64, String)> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::invalid(
            "--keys",
            format!("cannot read {}: {e}; pass an existing file", path.display()),
        )
    })?;
    let mut hash = Sha256::new();
    let mut keys = 0;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| {
            Error::invalid("--keys", format!("cannot read {}: {e}", path.display()))
        })?;
        hash.update(line.as_bytes());
        hash.update(b"\n");
        if parse_key(&line, key)
            .map_err(|why| {
                Error::invalid(
                    "--keys",
                    format!(
                        "{} line {}: {why}. Each line is a key in DynamoDB JSON, such as \
                         {{\"{}\":{{\"S\":\"k#1\"}}}}, or a line `verify --keys-out` or `diff` \
                         wrote",
                        path.display(),
                        n + 1,
                        key.hash
                    ),
                )
            })?
            .is_some()
        {
            keys += 1;
        }
    }
    if keys == 0 {
        return Err(Error::invalid(
            "--keys",
            format!(
                "{} holds no keys; nothing would be restored",
                path.display()
            ),
        ));
    }
    Ok((keys, hex::encode(hash.finalize())))
}

/// The key on one line of a keys file; `None` for a blank line.
pub(super) fn parse_key(line: &str, key: &KeySchema) -> std::result::Result<Option<Item>, String> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let value = match value.get("key") {
        Some(k) if k.is_object() => k,
        Some(k) if k.is_string() => {
            return Err("its key is a digest (a sensitive table's output), not a key".into());
        }
        _ => &value,
    };
    let item = key_from_json(value).map_err(|_| "not a key in DynamoDB JSON".to_string())?;
    let expected: HashSet<&str> = key.attributes().collect();
    let found: HashSet<&str> = item.keys().map(String::as_str).collect();
    if expected != found {
        return Err(format!(
            "its attributes are {found:?}, the table's key is {expected:?}"
        ));
    }
    Ok(Some(item))
}

/// The partition key values typed by the table's hash key.
pub fn partition_values(table: &TableInfo, values: &[String]) -> Result<Vec<AttributeValue>> {
    let kind = table.hash_type.as_deref().unwrap_or("S");
    values
        .iter()
        .map(|v| {
            match kind {
                "N" if v.parse::<f64>().is_ok_and(f64::is_finite) => {
                    Ok(AttributeValue::N(v.clone()))
                }
                "B" => aws_smithy_types::base64::decode(v)
                    .map(|b| AttributeValue::B(aws_smithy_types::Blob::new(b)))
                    .map_err(|_| ()),
                "S" if !v.is_empty() => Ok(AttributeValue::S(v.clone())),
                _ => Err(()),
            }
            .map_err(|()| {
                Error::invalid(
                    "--partition-key",
                    format!(
                        "{v:?} is not a value of {}'s partition key {} (type {kind}); give a \
                     {}",
                        table.name,
                        table.key.hash,
                        match kind {
                            "N" => "number",
                            "B" => "base64 binary value",
                            _ => "non-empty string",
                        }
                    ),
                )
            })
        })
        .collect()
}

/// A Query of `table` for the items under one partition key value.
pub(super) fn partition_query(
    client: &Client,
    table: &str,
    key: &KeySchema,
    value: &AttributeValue,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    client
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", &key.hash)
        .expression_attribute_values(":pk", value.clone())
}

/// The live items under `partitions` now (Query with `Select=COUNT`), for a dry run.
pub async fn live_count(
    client: &Client,
    live: &TableInfo,
    partitions: &[AttributeValue],
    opts: &SyncOptions,
) -> Result<u64> {
    let mut total = 0;
    for value in partitions {
        let mut start = None;
        loop {
            let req = partition_query(client, &live.name, &live.key, value)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start);
            let out = retrying(&opts.retry, &opts.read_rate, "Query", &live.name, || {
                req.clone().send()
            })
            .await?;
            total += out.count.max(0) as u64;
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::super::tests::schema;
    use super::*;

    #[test]
    fn a_keys_file_takes_plain_keys_and_keys_out_lines_and_refuses_the_rest() {
        let key = schema();
        let plain = r#"{"pk":{"S":"a"},"sk":{"N":"1"}}"#;
        let out = r#"{"kind":"changed","key":{"pk":{"S":"a"},"sk":{"N":"1"}}}"#;
        assert_eq!(
            parse_key(plain, &key).unwrap(),
            parse_key(out, &key).unwrap()
        );
        assert!(parse_key("   ", &key).unwrap().is_none());
        for bad in [
            r#"{"pk":{"S":"a"}}"#,
            r#"{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"S":"y"}}"#,
            r#"{"kind":"missing","key":"key-hmac:00"}"#,
            "not json",
        ] {
            assert!(parse_key(bad, &key).is_err(), "{bad}");
        }
    }

    #[test]
    fn partition_values_follow_the_hash_keys_type() {
        let mut t = crate::table::TableInfo {
            name: "T".into(),
            arn: String::new(),
            status: "ACTIVE".into(),
            key: schema(),
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
            hash_type: Some("N".into()),
        };
        assert_eq!(
            partition_values(&t, &["42".into()]).unwrap(),
            [AttributeValue::N("42".into())]
        );
        assert!(partition_values(&t, &["c#1".into()]).is_err());
        t.hash_type = Some("S".into());
        assert_eq!(
            partition_values(&t, &["c#1".into()]).unwrap(),
            [AttributeValue::S("c#1".into())]
        );
        assert!(partition_values(&t, &[String::new()]).is_err());
    }
}
