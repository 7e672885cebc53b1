//! A window scope's phase 1: the incremental export(s) of the window, in place of a restored
//! table. Each is started with a client token derived from the execution id (so a lost answer
//! or a rerun finds the same export), its ARN recorded before waiting, and a resume adopts an
//! export only by that recorded ARN. Once complete, its manifests are checked and recorded.

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use sha2::{Digest, Sha256};

use super::Plan;
use crate::error::{Error, Result};
use crate::execution::Recorder;
use crate::export;
use crate::journal::{ExportRecord, Scope};

/// The export's client token: the same for every attempt of this execution's `piece`.
fn token(execution: &str, piece: usize) -> String {
    hex::encode(Sha256::digest(format!("dynamo-dr:{execution}:{piece}")))
}

/// Starts (or adopts) and waits for every export of the window, recording each.
pub(super) async fn exports(client: &Client, plan: &Plan, rec: &Arc<Recorder>) -> Result<()> {
    let Scope::Window {
        from,
        to,
        bucket,
        prefix,
        ..
    } = &plan.request.scope
    else {
        return Ok(());
    };
    let s3 = plan.s3.as_ref().ok_or_else(|| Error::BadState {
        what: "a window restore".into(),
        state: "planned without an S3 client".into(),
        hint: "this is a bug, report it".into(),
    })?;
    let id = &plan.request.names.execution_id;
    for (i, piece) in export::pieces(*from, *to).into_iter().enumerate() {
        let recorded = rec.snapshot().await.resources.exports.get(i).cloned();
        if recorded.as_ref().is_some_and(|e| e.manifest.is_some()) {
            continue;
        }
        let arn = match recorded {
            Some(e) => e.arn,
            None => {
                rec.check_lease().await?;
                let target = (bucket.as_str(), prefix.as_deref());
                let arn =
                    export::start(client, &plan.dest.arn, piece, target, &token(id, i)).await?;
                rec.update(|e| {
                    e.resources.exports.push(ExportRecord {
                        arn: arn.clone(),
                        from: Some(piece.0),
                        to: Some(piece.1),
                        ..Default::default()
                    });
                    e.event(format!(
                        "export {arn} started for {} to {}",
                        piece.0, piece.1
                    ));
                })
                .await?;
                arn
            }
        };
        tracing::info!(export = %arn, "waiting for the incremental export");
        let done = export::wait(
            client,
            &arn,
            plan.request.restore_deadline,
            |state, waited| {
                tracing::info!(export = %arn, state, waited = ?waited, "export in progress");
            },
        )
        .await?;
        let summary = done.export_manifest().ok_or_else(|| Error::BadState {
            what: format!("export {arn}"),
            state: "COMPLETED with no manifest".into(),
            hint: "look at the export in the console; start again with a new incident id".into(),
        })?;
        let manifest = export::manifest(s3, bucket, summary).await?;
        export::verify_files(s3, bucket, &manifest.files).await?;
        rec.update(|e| {
            if let Some(r) = e.resources.exports.get_mut(i) {
                r.manifest = Some((manifest.files_key.clone(), manifest.files_md5.clone()));
                r.files = manifest.files.len() as u64;
                r.items = manifest.items;
            }
            e.event(format!(
                "export {arn} complete and checked: {} item(s) in {} file(s)",
                manifest.items,
                manifest.files.len()
            ));
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_the_executions_and_the_pieces() {
        assert_eq!(token("e1", 0), token("e1", 0));
        assert_ne!(token("e1", 0), token("e1", 1));
        assert_ne!(token("e1", 0), token("e2", 0));
        assert!(token("e1", 0).len() <= 64);
    }
}
