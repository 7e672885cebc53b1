//! DynamoDB's incremental export to S3, for a window scope: started idempotently, waited for,
//! and read back with every manifest and data file checked against its MD5 first.
//!
//! The layout is the Developer Guide's "DynamoDB table export output format"
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html>):
//! `ExportManifest` names `manifest-summary.json`, whose `manifestFilesS3Key` names
//! `manifest-files.json`, one JSON line per gzipped data file (`dataFileS3Key`, `itemCount`,
//! `md5Checksum` in base64). Each manifest has a checksum file beside it: `.checksum` in today's
//! guide, `.md5` in older exports; either is accepted, as hex or base64. The API is
//! ExportTableToPointInTime with `ExportType=INCREMENTAL_EXPORT`
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ExportTableToPointInTime.html>,
//! API_IncrementalExportSpecification: `ExportFromTime` inclusive, `ExportToTime` exclusive).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    ExportDescription, ExportFormat, ExportStatus, ExportType, ExportViewType,
    IncrementalExportSpecification,
};
use jiff::Timestamp;
use md5::{Digest, Md5};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::aws;
use crate::backoff::{Poll, PollPolicy, poll_until};
use crate::error::{Error, Result};
use crate::item::{Item, item_from_json};

/// The shortest and longest windows one incremental export covers.
pub const MIN_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The export's price as documented (DynamoDB pricing, "Export to Amazon S3", us-east-1): per GB
/// of data processed.
pub const PRICE_PER_GB: f64 = 0.10;

/// One line of an incremental export: a key changed in the window, with its images at the
/// window's start (`old`) and end (`new`); `None` where the item did not exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub keys: Item,
    pub old: Option<Item>,
    pub new: Option<Item>,
}

/// A data file as `manifest-files.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub key: String,
    pub items: u64,
    /// Base64 MD5 of the gzipped object.
    pub md5: String,
}

/// Starts the export of `[from, to)` of `table_arn`, or finds the one this `token` started.
pub async fn start(
    client: &Client,
    table_arn: &str,
    (from, to): (Timestamp, Timestamp),
    (bucket, prefix): (&str, Option<&str>),
    token: &str,
) -> Result<String> {
    let spec = IncrementalExportSpecification::builder()
        .export_from_time(aws::to_aws_time(from))
        .export_to_time(aws::to_aws_time(to))
        .export_view_type(ExportViewType::NewAndOldImages)
        .build();
    let out = client
        .export_table_to_point_in_time()
        .table_arn(table_arn)
        .s3_bucket(bucket)
        .set_s3_prefix(prefix.map(str::to_string))
        .export_format(ExportFormat::DynamodbJson)
        .export_type(ExportType::IncrementalExport)
        .incremental_export_specification(spec)
        // Idempotent: the same token and request give back the same export.
        .client_token(token)
        .send()
        .await
        .map_err(|e| aws::aws_error("ExportTableToPointInTime", table_arn, &e))?;
    out.export_description
        .and_then(|d| d.export_arn)
        .ok_or_else(|| Error::BadState {
            what: format!("the export of {table_arn}"),
            state: "started with no ARN in the answer".into(),
            hint: "run again: the same client token finds the same export".into(),
        })
}

/// Waits for the export `arn` to complete, showing its progress through `on_pending`.
pub async fn wait(
    client: &Client,
    arn: &str,
    deadline: Duration,
    on_pending: impl FnMut(&str, Duration),
) -> Result<ExportDescription> {
    let policy = PollPolicy {
        initial: Duration::from_millis(250),
        cap: Duration::from_secs(30),
        deadline,
    };
    poll_until(&format!("export {arn}"), &policy, on_pending, || async {
        let d = client
            .describe_export()
            .export_arn(arn)
            .send()
            .await
            .map_err(|e| aws::aws_error("DescribeExport", arn, &e))?
            .export_description
            .ok_or_else(|| Error::BadState {
                what: format!("export {arn}"),
                state: "described with no description".into(),
                hint: "run again".into(),
            })?;
        match d.export_status() {
            Some(ExportStatus::Completed) => Ok(Poll::Ready(d)),
            Some(ExportStatus::Failed) => Err(Error::BadState {
                what: format!("export {arn}"),
                state: format!(
                    "FAILED ({}: {})",
                    d.failure_code().unwrap_or("no code"),
                    d.failure_message().unwrap_or("no message")
                ),
                hint: "check the bucket exists and the caller may write to it (s3:PutObject); \
                       nothing was written to the table. Fix it and start again with a new \
                       incident id"
                    .into(),
            }),
            other => Ok(Poll::Pending(format!(
                "{} ({} items so far)",
                other.map_or("unknown", |s| s.as_str()),
                d.item_count().unwrap_or(0)
            ))),
        }
    })
    .await
}

/// What a completed export holds, its manifests checked: `manifest-files.json`'s key and MD5 (hex),
/// its data files, and the items they hold.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub files_key: String,
    pub files_md5: String,
    pub files: Vec<DataFile>,
    pub items: u64,
}

/// Reads and checks a completed export's manifests: each against its checksum file, and the data
/// files' item counts against the summary's.
pub async fn manifest(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    summary_key: &str,
) -> Result<Manifest> {
    let summary = checked(s3, bucket, summary_key).await?;
    let summary: Value = serde_json::from_slice(&summary)
        .map_err(|e| integrity(summary_key, format!("not JSON: {e}")))?;
    let files_key = summary["manifestFilesS3Key"]
        .as_str()
        .ok_or_else(|| integrity(summary_key, "no manifestFilesS3Key".into()))?
        .to_string();
    let text = checked(s3, bucket, &files_key).await?;
    let files = data_files(&files_key, &text)?;
    let items: u64 = files.iter().map(|f| f.items).sum();
    let expected = summary["itemCount"].as_u64();
    if expected != Some(items) {
        return Err(integrity(
            &files_key,
            format!("its files hold {items} items, the summary says {expected:?}"),
        ));
    }
    Ok(Manifest {
        files_md5: hex::encode(Md5::digest(&text)),
        files_key,
        files,
        items,
    })
}

/// A recorded export's data files again, refused if `manifest-files.json` changed since.
pub async fn recorded_files(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    (files_key, md5): (&str, &str),
) -> Result<Vec<DataFile>> {
    let text = get(s3, bucket, files_key).await?;
    if hex::encode(Md5::digest(&text)) != md5 {
        return Err(integrity(
            files_key,
            "changed since the run checked it".into(),
        ));
    }
    data_files(files_key, &text)
}

fn data_files(key: &str, text: &[u8]) -> Result<Vec<DataFile>> {
    text.split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .enumerate()
        .map(|(n, line)| {
            let v: Value = serde_json::from_slice(line)
                .map_err(|e| integrity(key, format!("line {}: {e}", n + 1)))?;
            let field = |f: &str| {
                v[f].as_str()
                    .map(str::to_string)
                    .ok_or_else(|| integrity(key, format!("line {}: no {f}", n + 1)))
            };
            Ok(DataFile {
                key: field("dataFileS3Key")?,
                md5: field("md5Checksum")?,
                items: v["itemCount"].as_u64().unwrap_or(0),
            })
        })
        .collect()
}

/// An object whose checksum file (`.checksum`, or `.md5` in older exports) matches it.
async fn checked(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let body = get(s3, bucket, key).await?;
    let stem = key.strip_suffix(".json").unwrap_or(key);
    let sum = match get(s3, bucket, &format!("{stem}.checksum")).await {
        Ok(sum) => sum,
        Err(_) => get(s3, bucket, &format!("{stem}.md5")).await?,
    };
    let sum = String::from_utf8_lossy(&sum).trim().to_string();
    if !md5_matches(&Md5::digest(&body), &sum) {
        return Err(integrity(key, "does not match its checksum file".into()));
    }
    Ok(body)
}

fn md5_matches(digest: &[u8], expected: &str) -> bool {
    hex::encode(digest).eq_ignore_ascii_case(expected)
        || aws_smithy_types::base64::encode(digest) == expected
}

fn integrity(key: &str, why: String) -> Error {
    Error::BadState {
        what: format!("export object {key}"),
        state: format!("damaged: {why}"),
        hint: "nothing was written from it; find what changed the export's objects, then start \
               again with a new incident id (a new export)"
            .into(),
    }
}

/// A small object (a manifest), whole.
async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| aws::aws_error("GetObject", format!("s3://{bucket}/{key}"), &e))?;
    let bytes = out.body.collect().await.map_err(|e| Error::Io {
        path: format!("s3://{bucket}/{key}"),
        source: std::io::Error::other(e),
    })?;
    Ok(bytes.to_vec())
}

/// Every data file read through and checked against its MD5, before anything is written from
/// any of them: one damaged file stops the run with the table untouched.
pub async fn verify_files(s3: &aws_sdk_s3::Client, bucket: &str, files: &[DataFile]) -> Result<()> {
    for file in files {
        download(s3, bucket, file, None).await?;
    }
    Ok(())
}

/// The data file streamed (into `to`, when given) and refused unless its MD5 is the manifest's.
pub async fn download(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    file: &DataFile,
    to: Option<&Path>,
) -> Result<()> {
    let what = format!("s3://{bucket}/{}", file.key);
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(&file.key)
        .send()
        .await
        .map_err(|e| aws::aws_error("GetObject", &what, &e))?;
    let written = |path: &Path, source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut out_file = match to {
        Some(p) => Some(
            tokio::fs::File::create(p)
                .await
                .map_err(|e| written(p, e))?,
        ),
        None => None,
    };
    let mut body = out.body;
    let mut digest = Md5::new();
    let cut = |e: aws_sdk_s3::primitives::ByteStreamError| Error::Io {
        path: what.clone(),
        source: std::io::Error::other(e),
    };
    while let Some(chunk) = body.try_next().await.map_err(cut)? {
        digest.update(&chunk);
        if let (Some(f), Some(p)) = (out_file.as_mut(), to) {
            f.write_all(&chunk).await.map_err(|e| written(p, e))?;
        }
    }
    if let (Some(f), Some(p)) = (out_file.as_mut(), to) {
        f.flush().await.map_err(|e| written(p, e))?;
    }
    if !md5_matches(&digest.finalize(), &file.md5) {
        return Err(integrity(&file.key, "its MD5 is not the manifest's".into()));
    }
    Ok(())
}

/// A downloaded data file's lines, decompressed as they are read.
pub fn lines(
    path: &Path,
) -> Result<std::io::Lines<BufReader<flate2::read::GzDecoder<std::fs::File>>>> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(BufReader::new(flate2::read::GzDecoder::new(file)).lines())
}

/// One line of an incremental export in DynamoDB JSON.
pub fn parse_line(line: &str) -> std::result::Result<Change, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let image = |f: &str| {
        v.get(f)
            .filter(|i| !i.is_null())
            .map(item_from_json)
            .transpose()
    };
    Ok(Change {
        keys: image("Keys")?.ok_or("no Keys")?,
        old: image("OldImage")?,
        new: image("NewImage")?,
    })
}

/// The pieces of `[from, to)` one export each can cover: at most 24 hours, none under 15 minutes.
pub fn pieces(from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp)> {
    let span = to.duration_since(from).as_secs().max(0) as u64;
    let n = span.div_ceil(MAX_WINDOW.as_secs()).max(1);
    let step = span / n;
    (0..n)
        .map(|i| {
            let a = from + jiff::SignedDuration::from_secs((i * step) as i64);
            let b = if i + 1 == n {
                to
            } else {
                from + jiff::SignedDuration::from_secs(((i + 1) * step) as i64)
            };
            (a, b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_with_either_image_absent() {
        let line = r#"{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"v":{"L":[{"N":"1"},{"BOOL":true}]}}}"#;
        let c = parse_line(line).unwrap();
        assert!(c.old.is_none());
        assert_eq!(c.new.unwrap().len(), 2);
        assert!(parse_line(r#"{"OldImage":{}}"#).is_err());
    }

    #[test]
    fn checksums_are_read_as_hex_or_base64() {
        let d = Md5::digest(b"x");
        assert!(md5_matches(&d, &hex::encode(d).to_uppercase()));
        assert!(md5_matches(&d, &aws_smithy_types::base64::encode(d)));
        assert!(!md5_matches(&d, "00"));
    }

    #[test]
    fn a_long_window_is_cut_into_exports_of_at_most_a_day() {
        let from: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let to = from + jiff::SignedDuration::from_hours(72);
        let p = pieces(from, to);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].0, from);
        assert_eq!(p[2].1, to);
        assert!(p.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(
            pieces(from, from + jiff::SignedDuration::from_mins(40)).len(),
            1
        );
        let odd = pieces(from, from + jiff::SignedDuration::from_hours(25));
        assert!(
            odd.iter()
                .all(|(a, b)| b.duration_since(*a).as_secs() as u64 <= MAX_WINDOW.as_secs())
        );
    }
}
