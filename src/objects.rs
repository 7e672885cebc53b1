//! Objects in S3 the tool reads: a keys file given as `s3://BUCKET/KEY`, which a state machine's
//! worker (with no disk of the operator's) reads as the CLI reads a local file.

use std::path::Path;

use tokio::io::AsyncWriteExt;

use crate::aws;
use crate::error::{Error, Result};

pub use crate::validate::S3Uri;

/// Copies the object into `to` (a file only its owner can read), streamed: never held whole.
pub async fn download(client: &aws_sdk_s3::Client, uri: &S3Uri, to: &Path) -> Result<()> {
    let what = uri.to_string();
    let out = client
        .get_object()
        .bucket(&uri.bucket)
        .key(&uri.key)
        .send()
        .await
        .map_err(|e| match aws::error_code(&e) {
            Some("NoSuchKey" | "NoSuchBucket" | "AccessDenied") => Error::invalid(
                "keys",
                format!(
                    "cannot read {what}: {}; give an object this role may read \
                     (s3:GetObject)",
                    aws::describe(&e)
                ),
            ),
            _ => aws::aws_error("GetObject", &what, &e),
        })?;
    let written = |source| Error::Io {
        path: to.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::create(to).await.map_err(written)?;
    let mut body = out.body;
    // A body cut off mid-way is retryable: the run fails resumable (exit 1).
    let cut = |e: aws_sdk_s3::primitives::ByteStreamError| Error::Io {
        path: what.clone(),
        source: std::io::Error::other(e),
    };
    while let Some(chunk) = body.try_next().await.map_err(cut)? {
        file.write_all(&chunk).await.map_err(written)?;
    }
    file.flush().await.map_err(written)
}
