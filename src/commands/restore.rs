//! `dynamo-dr restore`: one table, or several to one instant, in place.

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, RunArgs};
use crate::error::{Error, Result};
use crate::input::SeedInput;
use crate::journal::Scope;
use crate::options::{self, RESTORE_TIMEOUT_MINUTES, RunOptions};
use crate::output::{self, out, outln};
use crate::restore::{self, RestoreRequest, Source, job};
use crate::{aws, lifecycle, prompt, validate};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").args(["pitr_time", "backup_arn", "input", "from"]).required(true))]
pub(crate) struct RestoreArgs {
    /// Table to recover: its physical name, or a logical name from the config. Repeat to restore
    /// several tables to one instant (one --confirm each; every table is validated before any is
    /// touched, then all run concurrently).
    #[arg(long, value_name = "TABLE", required = true)]
    pub table: Vec<String>,
    /// Incident id: letters, digits and hyphens; names the backup and temporary table.
    #[arg(long, value_name = "ID", required_unless_present = "input")]
    pub incident_id: Option<String>,
    /// Time to restore to: RFC 3339 with Z or an offset (2025-01-15T09:00:00Z), or `latest`.
    #[arg(long, value_name = "TIME")]
    pub pitr_time: Option<String>,
    /// Restore from this DynamoDB backup instead of PITR.
    #[arg(long, value_name = "ARN")]
    pub backup_arn: Option<String>,
    /// The physical table name again, typed out: the guard rail. One per --table.
    #[arg(
        long,
        value_name = "PHYSICAL_TABLE_NAME",
        required_unless_present = "input"
    )]
    pub confirm: Vec<String>,
    /// The seed's JSON payload, from a file or - for stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["incident_id", "confirm", "pitr_time", "backup_arn"])]
    pub input: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Keep the temporary table after a successful recovery.
    #[arg(long)]
    pub keep_restored_table: bool,
    /// Show the plan, the names it would create and delete, the backup, and the units, cost and
    /// time to expect under each strategy; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the restore to finish, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = RESTORE_TIMEOUT_MINUTES, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 60))]
    pub restore_timeout: u64,
    /// Where the incident report (HTML, Markdown and JSON) is written at the end.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub report_dir: PathBuf,
    /// What to put back: `table` (everything), `missing` (restore-point items absent now; never
    /// overwrites or deletes), `keys` (the keys of --keys), `partition` (the items under each
    /// --partition-key). Targeted scopes write conditionally and need no recovery mode.
    #[arg(long, value_enum, default_value_t = ScopeArg::Table)]
    pub scope: ScopeArg,
    /// With --scope keys: a file of keys, one per line, in DynamoDB JSON, or the lines
    /// `verify --keys-out` and `diff --out` write; or s3://BUCKET/KEY under the table's
    /// `keys_location`.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// With --scope partition: a partition key value (a number for a numeric key, base64 for a
    /// binary one). Repeatable.
    #[arg(long = "partition-key", value_name = "VALUE")]
    pub partition_key: Vec<String>,
    /// With --scope window: the start of the window whose writes are undone (RFC 3339,
    /// inclusive): items are put back as they were then.
    #[arg(long, value_name = "TIME", requires = "to")]
    pub from: Option<String>,
    /// With --scope window: the end of the window (exclusive). Every write after it is kept: an
    /// item written again since is a conflict, left as it is and reported.
    #[arg(long, value_name = "TIME", requires = "from")]
    pub to: Option<String>,
    /// With --scope window: the S3 bucket the incremental export is written to (the table's
    /// `export_bucket` in the config otherwise).
    #[arg(long, value_name = "BUCKET")]
    pub export_bucket: Option<String>,
    /// With --scope window: the key prefix of the export in that bucket (`export_prefix`).
    #[arg(long, value_name = "PREFIX")]
    pub export_prefix: Option<String>,
    /// With --scope window: write every item back WITHOUT a condition, overwriting writes made
    /// after the window. Only when those writes are known to be bad too.
    #[arg(long)]
    pub overwrite_later_writes: bool,
    /// Before the copy, raise the live table's warm write throughput (and each GSI's below it)
    /// to UNITS write units per second, so the copy starts there instead of climbing to it. An
    /// on-demand table only; DynamoDB charges for the increase, which cannot be undone.
    #[arg(long, value_name = "UNITS", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub prewarm: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ScopeArg {
    Table,
    Missing,
    Keys,
    Partition,
    Window,
}

/// The scope the flags ask for; a flag of another scope is refused, not ignored.
fn scope(args: &RestoreArgs, tables: usize) -> Result<Scope> {
    let wrong = |flag: &str, scope: &str| {
        Err(Error::invalid(
            flag,
            format!("{flag} goes with --scope {scope}; give both, or neither"),
        ))
    };
    if args.keys.is_some() && args.scope != ScopeArg::Keys {
        return wrong("--keys", "keys");
    }
    if !args.partition_key.is_empty() && args.scope != ScopeArg::Partition {
        return wrong("--partition-key", "partition");
    }
    let window_flags = args.from.is_some()
        || args.export_bucket.is_some()
        || args.export_prefix.is_some()
        || args.overwrite_later_writes;
    if window_flags && args.scope != ScopeArg::Window {
        return wrong("--from/--to/--export-bucket", "window");
    }
    let scope = match args.scope {
        ScopeArg::Table => return Ok(Scope::Table),
        ScopeArg::Missing => Scope::Missing,
        ScopeArg::Keys => match &args.keys {
            // Absolute, so that a resume from another directory reads the same file.
            Some(file) if file.to_str().is_some_and(|f| f.starts_with("s3://")) => Scope::Keys {
                file: file.display().to_string(),
                sha256: String::new(),
                keys: 0,
            },
            Some(file) => Scope::Keys {
                file: std::path::absolute(file)
                    .unwrap_or_else(|_| file.clone())
                    .display()
                    .to_string(),
                sha256: String::new(),
                keys: 0,
            },
            None => return wrong("--keys", "keys"),
        },
        ScopeArg::Partition if args.partition_key.is_empty() => {
            return wrong("--partition-key", "partition");
        }
        ScopeArg::Partition => Scope::Partition {
            values: args.partition_key.clone(),
        },
        ScopeArg::Window => window(args)?,
    };
    if tables > 1 {
        return Err(Error::invalid(
            "--scope",
            "a targeted scope names one table's items; restore one table per run",
        ));
    }
    if args.run.strategy.is_some() {
        return Err(Error::invalid(
            "--strategy",
            format!(
                "--strategy chooses how a whole table is copied back; --scope {} writes only the \
                 items in scope, conditionally. Drop --strategy",
                scope.as_str()
            ),
        ));
    }
    Ok(scope)
}

pub(crate) async fn restore(ctx: &Ctx, args: RestoreArgs) -> Result<()> {
    let requests = restore_requests(ctx, &args)?;
    if let [
        RestoreRequest {
            source: Source::Backup(arn),
            table,
            ..
        },
    ] = requests.as_slice()
    {
        // Region and account, once known, before any DynamoDB call.
        let region = aws::region(&ctx.aws).await;
        validate::backup_arn_belongs(arn, table, region.as_deref(), None)?;
        let account = aws::caller_identity(&ctx.aws).await.ok().map(|i| i.account);
        validate::backup_arn_belongs(arn, table, region.as_deref(), account.as_deref())?;
    }
    if args.dry_run {
        // Every table's plan, and every table's reason to refuse, not just the first.
        let total = requests.len();
        let mut refused = Vec::new();
        for request in requests {
            let table = request.table.clone();
            if let Err(e) = dry_run(ctx, request, args.run.options()).await {
                if total > 1 {
                    outln!("\n{table}: WOULD BE REFUSED: {e}");
                }
                refused.push((table, e));
            }
        }
        return match refused.is_empty() {
            true => Ok(()),
            false => Err(job::refusal(refused, total)),
        };
    }
    run_restores(ctx, requests, args.run.options(), &args.report_dir).await
}

/// The restore point from the flags or the payload: exactly one, and for several tables one
/// instant.
fn source((time, backup): (Option<String>, Option<String>), tables: usize) -> Result<Source> {
    let source = match (time, backup) {
        (Some(t), None) => Source::Pitr(validate::pitr_time(&t, jiff::Timestamp::now())?),
        (None, Some(arn)) => Source::Backup(validate::backup_arn(&arn)?),
        _ => {
            return Err(Error::invalid(
                "source",
                "give exactly one of --pitr-time or --backup-arn",
            ));
        }
    };
    match &source {
        _ if tables < 2 => Ok(source),
        Source::Backup(_) => Err(Error::invalid(
            "--backup-arn",
            "a backup holds one table; restore several tables to one instant with \
             --pitr-time TIME, or each from its own backup in separate runs",
        )),
        Source::Pitr(validate::PitrTime::Latest) => Err(Error::invalid(
            "--pitr-time",
            "`latest` is each table's own latest restorable time, so the tables would not \
             be restored to one instant; give one time, e.g. 2025-01-15T09:00:00Z (`dynamo-dr \
             check --environment ENV --pitr-time TIME` shows whether it is restorable)",
        )),
        Source::Pitr(_) => Ok(source),
    }
}

/// Every input check that needs no AWS call, for every table, before anything else.
fn restore_requests(ctx: &Ctx, args: &RestoreArgs) -> Result<Vec<RestoreRequest>> {
    let tables = args
        .table
        .iter()
        .map(|t| ctx.config.resolve("table", t))
        .collect::<Result<Vec<_>>>()?;
    let (incident, time_text, backup, confirms) = match &args.input {
        Some(path) => {
            if tables.len() != 1 {
                return Err(Error::invalid(
                    "--input",
                    "the seed's payload confirms one table; restore several tables with --table A \
                     --table B --pitr-time T --incident-id ID --confirm A --confirm B",
                ));
            }
            let seed = SeedInput::read(path)?;
            (
                seed.incident_id,
                Some(seed.pitr_backup_time),
                None,
                vec![seed.table_name_recovery_confirmation],
            )
        }
        None => (
            args.incident_id.clone().unwrap_or_default(),
            args.pitr_time.clone(),
            args.backup_arn.clone(),
            args.confirm.clone(),
        ),
    };
    let incident = validate::incident_id(&incident)?;
    let scope = scope(args, tables.len())?;
    let physical: Vec<String> = tables.iter().map(|t| t.physical.clone()).collect();
    validate::confirmations(&confirms, &physical)?;
    let source = match &scope {
        Scope::Window { from, .. } => Source::Pitr(validate::PitrTime::At(*from)),
        _ => source((time_text, backup), tables.len())?,
    };
    // The names each run creates, refused before the prompt when too long.
    for t in &physical {
        validate::names(t, &incident)?;
    }
    if !args.dry_run {
        prompt::require_terminal_or_yes(args.run.start.yes)?;
    }
    tables
        .into_iter()
        .map(|table| {
            ctx.require_key(table.options.sensitive.unwrap_or(false), &table.physical)?;
            options::keys_scope(&table.options, &scope)?;
            let scope = options::export_target(&scope, &table.options, "--export-bucket")?;
            let sync = options::sync_options(ctx, Some(&table.options), args.run.requested());
            let named = (table.physical.as_str(), &table.options);
            let request =
                RestoreRequest::new(named, incident.clone(), source.clone(), scope, sync)?;
            Ok(RestoreRequest {
                keep_restored_table: args.keep_restored_table,
                restore_deadline: options::restore_deadline(args.restore_timeout),
                prewarm: args.prewarm,
                ..request
            })
        })
        .collect()
}

/// The plan and its estimate, from read-only calls; nothing is created, taken or journaled.
async fn dry_run(ctx: &Ctx, request: RestoreRequest, run: RunOptions) -> Result<()> {
    let (client, journal) = ctx.open().await?;
    let mode = crate::journal::Mode::of(&request.scope, Default::default());
    let guard = match mode.needs_recovery_mode() {
        false => Ok(None),
        true => lifecycle::recovery_mode_guard(ctx, journal.as_ref(), &request.table, run).await,
    };
    let existing = journal.load(&request.names.execution_id).await?;
    let (read, write) = (request.sync.read_rate.cap(), request.sync.write_rate.cap());
    let mut plan = restore::preflight((&client, &ctx.aws), request, existing.is_some()).await?;
    let lambda = aws::lambda_client(&ctx.aws).await;
    plan.watchers = crate::watchers::describe(&client, &lambda, &plan.dest).await?;
    ctx.mark_end_policies(&plan.dest.name, &mut plan.watchers)?;
    let strategy = options::strategy(existing.as_ref(), run, &plan.dest, &plan.watchers);
    if let Ok(s) = &strategy {
        plan.strategy = s.clone();
    }
    let estimate = crate::estimate::estimate(
        plan.dest.approx_items.unwrap_or_default().max(0) as u64,
        plan.dest.approx_bytes.unwrap_or_default().max(0) as u64,
    );
    let mut text = output::plan_summary(&plan);
    if let Some(e) = &existing {
        text.push_str(&format!(
            "  would RESUME execution {} at phase {}\n",
            e.id,
            e.phase.as_str()
        ));
    }
    for refusal in [guard.as_ref().err(), strategy.as_ref().err()]
        .into_iter()
        .flatten()
    {
        text.push_str(&format!("  WOULD BE REFUSED: {refusal}\n"));
    }
    if let Ok(Some(note)) = &guard {
        text.push_str(&format!("  WARNING: {note}\n"));
    }
    if let Some(line) = targeted_counts(&client, &plan).await? {
        text.push_str(&line);
    }
    text.push('\n');
    text.push_str(&output::estimate_text(&estimate, read, write));
    text.push_str("\nDry run: nothing was changed.\n");
    out!("{text}");
    Ok(())
}

/// What a dry run can count of a targeted scope without the restore point, which exists only
/// once it is restored.
async fn targeted_counts(
    client: &aws_sdk_dynamodb::Client,
    plan: &restore::Plan,
) -> Result<Option<String>> {
    let live = plan.dest.approx_items.unwrap_or_default().max(0);
    Ok(Some(match &plan.request.scope {
        Scope::Table => return Ok(None),
        Scope::Keys { keys, .. } => format!(
            "  targeted writes:    at most {keys}: one put or delete per key that differs from \
             the restore point; equal keys are left alone\n"
        ),
        Scope::Partition { values } => {
            let typed = crate::targeted::partition_values(&plan.dest, values)?;
            let now =
                crate::targeted::live_count(client, &plan.dest, &typed, &plan.request.sync).await?;
            format!(
                "  targeted writes:    {now} live item(s) under the value(s) now; each differing \
                 one is put back or deleted, and the restore point's items under them are put \
                 back (counted once it is restored)\n"
            )
        }
        Scope::Missing => format!(
            "  targeted writes:    one put per restore-point item absent from the live table \
             (~{live} items now); none deleted or overwritten. The count is known once the \
             restore point is restored\n"
        ),
        Scope::Window {
            bucket,
            prefix,
            overwrite_later_writes,
            ..
        } => format!(
            "  targeted writes:    one {}put or delete per item the window changed (counted once \
             the export completes); no table is restored or scanned\n  export:             \
             incremental, to s3://{bucket}/{}, billed at ${:.2} per GB processed (DynamoDB \
             pricing, us-east-1); not started by a dry run\n",
            if *overwrite_later_writes {
                "UNCONDITIONAL "
            } else {
                "conditional "
            },
            prefix.as_deref().unwrap_or(""),
            crate::export::PRICE_PER_GB
        ),
    }))
}

/// `--scope window`'s flags; the bucket may still come from the table's config.
fn window(args: &RestoreArgs) -> Result<Scope> {
    let ends = (args.from.as_deref(), args.to.as_deref());
    let (from, to) = validate::window(ends, ["--from", "--to"], jiff::Timestamp::now())?;
    Ok(Scope::Window {
        from,
        to,
        bucket: args.export_bucket.clone().unwrap_or_default(),
        prefix: args.export_prefix.clone(),
        overwrite_later_writes: args.overwrite_later_writes,
    })
}

/// Checks every table, has the operator confirm them together, runs them, prints the outcome.
pub(crate) async fn run_restores(
    ctx: &Ctx,
    requests: Vec<RestoreRequest>,
    run: RunOptions,
    report_dir: &std::path::Path,
) -> Result<()> {
    let checked = job::check_all(ctx, requests, run).await?;
    let mut summary = String::new();
    for p in &checked.prepared {
        summary.push_str(&output::plan_summary(&p.plan));
        if let Some(e) = &p.existing {
            summary.push_str(&format!(
                "  RESUMING execution {} at phase {} (journal {})\n",
                e.id,
                e.phase.as_str(),
                checked.journal.describe()
            ));
        }
    }
    let tables: Vec<String> = checked
        .prepared
        .iter()
        .map(|p| p.plan.dest.name.clone())
        .collect();
    prompt::confirm(run.yes, &summary, &tables)?;
    let (results, report) = job::run_all(ctx, checked, run, report_dir).await?;
    output::print_restores(ctx.format, &results, &report);
    job::outcome(results)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::output::plan_summary;
    use crate::restore::{Plan, RestoreRequest, Source, SourceDetail};
    use crate::table::TableInfo;
    use crate::validate::PitrTime;

    fn plan(time: jiff::Timestamp, source: SourceDetail) -> Plan {
        use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType, TableDescription};
        let key = KeySchemaElement::builder()
            .attribute_name("pk")
            .key_type(KeyType::Hash);
        let t = TableDescription::builder()
            .table_name("Orders")
            .key_schema(key.build().unwrap())
            .build();
        Plan {
            request: RestoreRequest {
                backup_deadline: Duration::from_secs(1),
                restore_deadline: Duration::from_secs(1),
                ..RestoreRequest::new(
                    ("Orders", &Default::default()),
                    "inc-1".into(),
                    Source::Pitr(PitrTime::At(time)),
                    Default::default(),
                    Default::default(),
                )
                .unwrap()
            },
            segments_why: None,
            s3: None,
            dest: TableInfo::from_description(&t).unwrap(),
            source,
            watchers: Default::default(),
            strategy: Default::default(),
            keys: None,
        }
    }

    /// The plan an operator reads before typing the table's name, as reviewed.
    #[test]
    fn the_plan_reads_as_reviewed() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let at = t("2026-12-04T09:04:59.250Z");
        let window = SourceDetail::Pitr {
            time: PitrTime::At(at),
            earliest: t("2026-11-01T00:00:00.14Z"),
            latest: t("2026-12-04T09:40:00Z"),
            recovery_period_days: Some(35),
        };
        let mut plan = plan(at, window);
        plan.strategy.1 = "the default for a table nothing downstream reads".into();
        insta::assert_snapshot!(plan_summary(&plan));
    }

    #[test]
    fn the_plan_shows_times_to_the_millisecond_and_the_second_restored_to() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let at = t("2026-12-04T09:04:59.250Z");
        let window = SourceDetail::Pitr {
            time: PitrTime::At(at),
            earliest: t("2026-12-01T00:00:00.14Z"),
            latest: t("2026-12-04T09:05:00Z"),
            recovery_period_days: None,
        };
        let text = plan_summary(&plan(at, window));
        assert!(
            text.contains(
                "to 2026-12-04T09:04:59Z (DynamoDB restores to the second; .250 dropped)"
            ),
            "{text}"
        );
        assert!(text.contains("window 2026-12-01T00:00:00.140Z to 2026-12-04T09:05:00Z"));
        let backup = SourceDetail::Backup {
            arn: "arn".into(),
            name: "b".into(),
            created: t("2026-12-04T15:44:28.726999998Z"),
            source_table: "Orders".into(),
        };
        let text = plan_summary(&plan(at, backup));
        assert!(text.contains("taken 2026-12-04T15:44:28.727Z"), "{text}");
    }
}
