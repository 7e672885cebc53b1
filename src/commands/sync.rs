//! `dynamo-dr sync`: make DEST hold exactly the items of SOURCE.

use std::time::Instant;

use clap::Args;

use super::{Ctx, RunArgs};
use crate::error::{Error, Result};
use crate::journal::{Inputs, Source, Strategy};
use crate::options::{self, RunOptions};
use crate::output::{self, Format, out, outln};
use crate::sync::SyncOptions;
use crate::{prompt, table_sync, validate};

#[derive(Debug, Args)]
pub(crate) struct SyncArgs {
    /// Table to copy from.
    #[arg(long, value_name = "TABLE")]
    pub source: String,
    /// Table to overwrite: physical name or logical name from the config.
    #[arg(long, value_name = "TABLE")]
    pub dest: String,
    /// The destination's physical name again, typed out.
    #[arg(long, value_name = "PHYSICAL_TABLE_NAME")]
    pub confirm: String,
    /// Names the execution (<ID>.<DEST>) so rerunning the same command resumes it.
    #[arg(long, value_name = "ID")]
    pub incident_id: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

pub(crate) async fn sync(ctx: &Ctx, args: SyncArgs) -> Result<()> {
    let dest = ctx.config.resolve("dest", &args.dest)?;
    validate::table_name("source", &args.source)?;
    ctx.config.guard("source", &args.source)?;
    validate::confirmation(&args.confirm, &dest.physical)?;
    if args.source == dest.physical {
        return Err(Error::invalid(
            "source",
            "source and dest are the same table; a sync would empty it",
        ));
    }
    let incident = args
        .incident_id
        .as_deref()
        .map(validate::incident_id)
        .transpose()?;
    prompt::require_terminal_or_yes(args.run.start.yes)?;
    let sensitive = dest.options.sensitive.unwrap_or(false) || ctx.is_sensitive(&args.source);
    ctx.require_key(sensitive, &dest.physical)?;
    let id =
        validate::sync_execution_id(incident.as_deref(), &dest.physical, jiff::Timestamp::now());
    let opts = options::sync_options(ctx, Some(&dest.options), args.run.requested());
    let inputs = Inputs {
        table: dest.physical.clone(),
        incident_id: incident,
        source: Source::Table(args.source.clone()),
        segments: opts.segments,
        keep_restored_table: false,
        verify: !args.run.no_verify,
        // Chosen when the tables are described (table_sync::prepare).
        strategy: Default::default(),
        sensitive,
        forensic_backup: true,
        scope: Default::default(),
        prewarm: None,
    };
    run_sync(ctx, id, inputs, opts, args.run.options()).await
}

/// Checks both tables, has the operator confirm, runs, prints the summary.
pub(crate) async fn run_sync(
    ctx: &Ctx,
    id: String,
    inputs: Inputs,
    opts: SyncOptions,
    run: RunOptions,
) -> Result<()> {
    let p = table_sync::prepare(ctx, id, inputs, opts, run).await?;
    let (dst, src) = (&p.dst.name, &p.src.name);
    let what = match p.inputs.strategy {
        Strategy::HardReset => {
            format!(
                "DELETE every item of {dst} (HARD RESET), then copy every item of {src} into it"
            )
        }
        Strategy::Diff => format!(
            "delete only the items of {dst} absent from {src}, and put only missing or different \
             ones (DIFF)"
        ),
    };
    let mut summary = format!(
        "\nSync plan, execution {}: {what}\n  {}\n  write capacity: {}\n",
        p.id,
        p.segments_why,
        output::capacity_text(&p.dst, None)
    );
    if let Some(e) = &p.existing {
        summary.push_str(&format!(
            "  RESUMING at phase {} (journal {})\n",
            e.phase.as_str(),
            p.journal.describe()
        ));
    }
    prompt::confirm(run.yes, &summary, std::slice::from_ref(&p.dst.name))?;
    let started = Instant::now();
    let exec = table_sync::run(ctx, p, run).await?;
    match ctx.format {
        Format::Json => outln!("{}", output::sync_json(&exec, started.elapsed())),
        Format::Text => out!("{}", output::sync_text(&exec, started.elapsed())),
    }
    Ok(())
}
