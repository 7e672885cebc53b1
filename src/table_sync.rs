//! `sync`: make one table hold exactly the items of another, as a journaled execution. Checked
//! read-only first ([`prepare`]); the caller has the operator confirm; then [`run`].

use std::sync::Arc;

use aws_sdk_dynamodb::Client;

use crate::error::{Error, Result};
use crate::journal::{Execution, Inputs, Journal, Kind, Phase, Source, lease};
use crate::lifecycle::{self, Start};
use crate::options::RunOptions;
use crate::session::Session;
use crate::sync::SyncOptions;
use crate::table::{self, TableInfo};

/// A sync that passed every read-only check and waits for the operator's go.
pub struct Prepared {
    pub id: String,
    pub inputs: Inputs,
    pub opts: SyncOptions,
    pub src: TableInfo,
    pub dst: TableInfo,
    pub existing: Option<Execution>,
    /// How the segment count was chosen.
    pub segments_why: String,
    pub journal: Arc<dyn Journal>,
    client: Client,
    notes: Vec<String>,
}

/// The checks that need AWS and the journal: recovery mode, an earlier execution of the same
/// id, both tables ACTIVE with the same key, and the segment count.
pub async fn prepare(
    session: &Session,
    id: String,
    inputs: Inputs,
    opts: SyncOptions,
    run: RunOptions,
) -> Result<Prepared> {
    let (client, journal) = session.open().await?;
    let notes: Vec<String> =
        lifecycle::recovery_mode_guard(session, journal.as_ref(), &inputs.table, run)
            .await?
            .into_iter()
            .collect();
    let existing = journal.load(&id).await?;
    lifecycle::check_existing(&existing, Kind::Sync, &inputs, journal.as_ref())?;
    let mut inputs = existing
        .as_ref()
        .map(|e| e.inputs.clone())
        .unwrap_or(inputs);
    let Source::Table(source) = inputs.source.clone() else {
        return Err(Error::invalid(
            "execution id",
            format!(
                "execution {id} is a restore from {}, not a sync; resume it with `dynamo-dr \
                 resume {id}`",
                inputs.source
            ),
        ));
    };
    let src = table::describe_existing(&client, &source, "source").await?;
    let dst = table::describe_existing(&client, &inputs.table, "dest").await?;
    for t in [&src, &dst] {
        if !t.is_active() {
            return Err(Error::invalid(
                "table",
                format!("{} is {}, not ACTIVE; wait and run again", t.name, t.status),
            ));
        }
    }
    src.require_same_key(&dst)?;
    if existing.is_none() {
        let lambda = crate::aws::lambda_client(&session.aws).await;
        let watchers = crate::watchers::describe(&client, &lambda, &dst).await?;
        inputs.strategy = crate::options::strategy(None, run, &dst, &watchers)?.0;
    }
    // The source's size decides: it is what the copy reads and writes.
    let (segments, why) = src.segments(inputs.segments, &dst);
    inputs.segments = segments;
    let opts = SyncOptions { segments, ..opts };
    Ok(Prepared {
        id,
        inputs,
        opts,
        segments_why: why.unwrap_or_else(|| format!("{segments} segments")),
        src,
        dst,
        existing,
        journal,
        client,
        notes,
    })
}

/// Runs the confirmed sync under the table's lease; returns its final record.
pub async fn run(session: &Session, p: Prepared, run: RunOptions) -> Result<Execution> {
    let Prepared {
        id,
        inputs,
        opts,
        src,
        dst,
        existing,
        journal,
        client,
        notes,
        ..
    } = p;
    let timing = lease::Timing::cli(session.aws.attempt_timeout());
    let lease = lease::acquire(journal.clone(), &dst.name, &id, run.break_lock, timing).await?;
    let (key, data_key) = match session
        .execution_key(existing.as_ref(), inputs.sensitive, &id, &inputs.table)
        .await
    {
        Ok(k) => k,
        Err(e) => {
            let _ = lease.0.release().await;
            return Err(e);
        }
    };
    let start = Start {
        journal,
        existing,
        lease,
        notes,
        key,
        data_key,
        identity: crate::aws::caller_identity(&session.aws).await,
        recovery_env: lifecycle::guarded_environment(session, &dst.name, run),
    };
    let fresh = || Execution::new(id.clone(), Kind::Sync, inputs, Phase::Delete);
    let ((), exec) = lifecycle::journaled(start, fresh, |rec| async move {
        let inputs = rec.snapshot().await.inputs;
        let work = crate::machine::Work::new(&src, &dst, &inputs, rec.key_digest(), None)?;
        crate::execution::run_to_clean_up(&client, &work, &opts, &rec).await?;
        rec.update(|e| e.enter(Phase::Done)).await
    })
    .await?;
    Ok(exec)
}
