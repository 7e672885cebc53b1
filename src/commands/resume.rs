//! `dynamo-dr resume`: continue an execution from its record and checkpoints.

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, StartArgs};
use crate::error::{Error, Result};
use crate::journal::{self, Kind};
use crate::options;
use crate::prompt;
use crate::restore::RestoreRequest;

#[derive(Debug, Args)]
pub(crate) struct ResumeArgs {
    /// Execution id, e.g. inc-1.MyTable
    pub id: String,
    /// Where a restore's incident report (HTML, Markdown and JSON) is written at the end.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub report_dir: PathBuf,
    #[command(flatten)]
    pub start: StartArgs,
}

pub(crate) async fn resume(ctx: &Ctx, args: ResumeArgs) -> Result<()> {
    let (client, journal) = ctx.open().await?;
    let exec = journal.load(&args.id).await?.ok_or_else(|| {
        Error::invalid(
            "execution id",
            format!(
                "no execution {} in the journal {}; list them with `dynamo-dr executions`",
                args.id,
                journal.describe()
            ),
        )
    })?;
    drop(client);
    // The config may have excluded the table since the run began.
    ctx.config.guard("table", &exec.inputs.table)?;
    if let journal::Source::Table(source) = &exec.inputs.source {
        ctx.config.guard("source", source)?;
    }
    prompt::require_terminal_or_yes(args.start.yes)?;
    // A key KMS wrapped into the record needs nothing from the operator.
    if exec.data_key.is_none() {
        ctx.require_key(exec.inputs.sensitive, &exec.inputs.table)?;
    }
    // Strategy and verification are the record's.
    let run = args.start.options();
    let opts = options::recorded(ctx, &exec, args.start.scan_page_limit);
    match exec.kind {
        Kind::Restore => {
            let request = RestoreRequest::recorded(&exec, opts)?;
            super::restore::run_restores(ctx, vec![request], run, &args.report_dir).await
        }
        Kind::Sync => {
            super::sync::run_sync(ctx, exec.id.clone(), exec.inputs.clone(), opts, run).await
        }
    }
}
