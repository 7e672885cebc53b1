//! What each subcommand does, between the parsed arguments and the library.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aws::{self, AwsOptions};
use crate::backoff::RetryPolicy;
use crate::cli::{
    DiffArgs, RecoveryModeCommand, RestoreArgs, ResumeArgs, RunArgs, SyncArgs, VerifyArgs,
};
use crate::config::{Config, ResolvedTable};
use crate::error::{Error, Result};
use crate::execution::{self, Recorder};
use crate::input::SeedInput;
use crate::journal::lease;
use crate::journal::seal::JournalKey;
use crate::journal::{self, Execution, Inputs, Journal, Kind, Phase, Status};
use crate::output::{self, Format};
use crate::rate::{Limiter, RateCap};
use crate::recovery_mode;
use crate::restore::{self, Plan, RestoreRequest, Source, SourceDetail};
use crate::sync::SyncOptions;
use crate::table::TableInfo;
use crate::validate;

/// What every command needs: configuration, connection and output settings.
pub struct Ctx {
    pub config: Config,
    pub aws: AwsOptions,
    pub journal: journal::Location,
    pub format: Format,
    pub retry: RetryPolicy,
    /// From the command line; a table's config applies where these are unset.
    pub max_read_rate: Option<RateCap>,
    pub max_write_rate: Option<RateCap>,
    /// Seals sensitive tables' checkpoint keys (`--journal-key-file`, `DYNAMO_DR_JOURNAL_KEY`).
    pub journal_key: Option<JournalKey>,
    /// Or: a KMS key that makes a fresh journal key per execution (`--journal-kms-key`).
    pub journal_kms_key: Option<String>,
}

impl Ctx {
    /// Whether the config marks `table` sensitive (excluded or not).
    pub fn is_sensitive(&self, table: &str) -> bool {
        self.config.is_sensitive(table)
    }

    fn mark_sensitive(&self, mut a: TableInfo, mut b: TableInfo) -> (TableInfo, TableInfo) {
        let either =
            a.sensitive || b.sensitive || self.is_sensitive(&a.name) || self.is_sensitive(&b.name);
        a.sensitive = either;
        b.sensitive = either;
        (a, b)
    }

    /// Names sensitive keys: under the operator's journal key when there is one, so they can be
    /// looked up with `dynamo-dr key-digest`; else under a key nobody keeps.
    fn key_digest(&self) -> crate::digest::KeyDigest {
        self.journal_key
            .as_ref()
            .map_or_else(crate::digest::KeyDigest::ephemeral, JournalKey::digest_key)
    }

    /// Refuses a run on a sensitive table before anything changes when there is no key.
    fn require_key(&self, sensitive: bool, table: &str) -> Result<()> {
        if sensitive && self.journal_key.is_none() && self.journal_kms_key.is_none() {
            return Err(crate::execution::missing_key(table));
        }
        Ok(())
    }
}

impl Ctx {
    /// The key that seals a sensitive execution's checkpoints: the one KMS wrapped into its
    /// record, else the operator's, else a new one from KMS (returned wrapped, for the record).
    async fn execution_key(
        &self,
        existing: Option<&Execution>,
        sensitive: bool,
        id: &str,
        table: &str,
    ) -> Result<(Option<JournalKey>, Option<journal::WrappedKey>)> {
        if !sensitive {
            return Ok((None, None));
        }
        if let Some(wrapped) = existing.and_then(|e| e.data_key.as_ref()) {
            let kms = aws::kms_client(&self.aws).await;
            let key = journal::envelope::unwrap(&kms, wrapped, id).await?;
            return Ok((Some(key), None));
        }
        if let Some(key) = &self.journal_key {
            return Ok((Some(key.clone()), None));
        }
        match (&self.journal_kms_key, existing) {
            (Some(kms_key), None) => {
                let kms = aws::kms_client(&self.aws).await;
                let (key, wrapped) = journal::envelope::new_data_key(&kms, kms_key, id).await?;
                Ok((Some(key), Some(wrapped)))
            }
            // A run started with the operator's own key needs that key back.
            _ => Err(crate::execution::missing_key(table)),
        }
    }

    async fn open(&self) -> Result<(aws_sdk_dynamodb::Client, Arc<dyn Journal>)> {
        let client = aws::dynamodb_client(&self.aws).await;
        let journal = journal::open(&self.journal, &client).await?;
        Ok((client, journal))
    }
}

/// The retry budget and rate caps for a run on `table` (None: no configured table).
fn pacing(ctx: &Ctx, table: Option<&crate::config::TableOptions>) -> SyncOptions {
    let read = ctx.max_read_rate.or(table.and_then(|t| t.max_read_rate));
    let write = ctx.max_write_rate.or(table.and_then(|t| t.max_write_rate));
    SyncOptions {
        retry: ctx.retry.clone(),
        read_rate: Arc::new(Limiter::new(read)),
        write_rate: Arc::new(Limiter::new(write)),
        ..SyncOptions::default()
    }
}

fn sync_options(ctx: &Ctx, table: &ResolvedTable, run: &RunArgs) -> SyncOptions {
    let defaults = pacing(ctx, Some(&table.options));
    SyncOptions {
        // 0: chosen from the table once it is described (preflight), and recorded.
        segments: run.segments.or(table.options.segments).unwrap_or(0),
        write_concurrency: run
            .write_concurrency
            .map(|n| n as usize)
            .or(table.options.write_concurrency)
            .unwrap_or(defaults.write_concurrency),
        page_limit: run.scan_page_limit,
        ..defaults
    }
}

/// With no terminal, nobody can answer the prompt: refuse before any AWS call.
fn require_terminal_or_yes(yes: bool) -> Result<()> {
    if !yes && !std::io::stdin().is_terminal() {
        return Err(Error::invalid(
            "--yes",
            "there is no terminal to confirm on (stdin is not a TTY); review the plan, then pass --yes",
        ));
    }
    Ok(())
}

/// Whether the answer names exactly these, in this order, separated by any whitespace.
fn typed_all(answer: &str, names: &[String]) -> bool {
    answer
        .split_whitespace()
        .eq(names.iter().map(String::as_str))
}

/// Asks the operator to type the names (`noun`: "table name", "environment name"),
/// space-separated; anything else refuses.
fn prompt(summary: &str, noun: &str, tables: &[String]) -> Result<()> {
    eprintln!("{summary}");
    let expected = tables.join(" ");
    let plural = if tables.len() == 1 { "" } else { "s" };
    eprint!("Type the {noun}{plural} ({expected}) to proceed, anything else to stop: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::invalid("confirmation", format!("cannot read the answer: {e}")))?;
    if !typed_all(&answer, tables) {
        return Err(Error::invalid(
            "confirmation",
            "the typed name did not match; nothing was changed",
        ));
    }
    Ok(())
}

/// The capacity a copy-back writes against, and what the table's GSIs add to it.
fn capacity_text(t: &TableInfo) -> String {
    let table = match t.write_capacity {
        Some(w) => format!("{w} provisioned write units/s"),
        None => format!(
            "on-demand (each segment starts at its share of the ~{} writes/s a new on-demand \
             table sustains, then finds its key range's pace)",
            crate::estimate::ON_DEMAND_START_WRITES
        ),
    };
    match t.gsis {
        0 => table,
        n => format!(
            "{table}; every write also writes each of the {n} global secondary index(es) that \
             project it, against the same quota: up to {}x the units, and a GSI short of \
             capacity throttles the table",
            n + 1
        ),
    }
}

fn plan_summary(plan: &Plan) -> String {
    let r = &plan.request;
    let approx = plan
        .dest
        .approx_items
        .map(|n| format!("~{n} items (DescribeTable, up to 6 h stale)"))
        .unwrap_or_else(|| "unknown size".into());
    let source = match &plan.source {
        SourceDetail::Pitr {
            time,
            earliest,
            latest,
            ..
        } => {
            format!("point-in-time recovery to {time} (restorable window {earliest} to {latest})")
        }
        SourceDetail::Backup {
            arn,
            name,
            created,
            source_table,
        } => {
            format!("backup {name} of {source_table}, taken {created} ({arn})")
        }
    };
    format!(
        "\nIn-place recovery plan, execution {exec}\n\
         \x20 table (HARD RESET): {table} ({approx}), key {key}\n\
         \x20 restore from:       {source}\n\
         \x20 will create:        {backup}\n\
         \x20                     temporary table {temp} (on-demand{kms})\n\
         \x20 will then DELETE every item of {table} and copy the restored items back\n\
         \x20 segments:           {segments}\n\
         \x20 write capacity:     {capacity}\n\
         \x20 temporary table:    {after}\n",
        segments = if r.segments_why.is_empty() {
            format!("{} (--segments or the config)", r.sync.segments)
        } else {
            r.segments_why.clone()
        },
        capacity = capacity_text(&plan.dest),
        exec = r.names.execution_id,
        table = plan.dest.name,
        key = plan.dest.key,
        backup = if r.forensic_backup {
            format!("forensic backup {}", r.names.backup)
        } else {
            "NO forensic backup (forensic_backup = false in the config)".into()
        },
        temp = r.names.temp_table,
        kms = plan
            .dest
            .kms_key_arn
            .as_ref()
            .map(|k| format!(", KMS key {k}"))
            .unwrap_or_default(),
        after = if r.keep_restored_table {
            "kept afterwards"
        } else {
            "deleted afterwards"
        },
    )
}

fn source_text(source: &Source) -> String {
    match source {
        Source::Pitr(t) => t.to_string(),
        Source::Backup(arn) => format!("backup:{arn}"),
    }
}

fn source_from_text(text: &str) -> Result<Source> {
    if let Some(arn) = text.strip_prefix("backup:") {
        return Ok(Source::Backup(arn.to_string()));
    }
    validate::pitr_time(text, jiff::Timestamp::now()).map(Source::Pitr)
}

/// An earlier record with this id: resumable, or a reason to refuse.
fn check_existing(
    existing: &Option<Execution>,
    kind: Kind,
    inputs: &Inputs,
    journal: &dyn Journal,
) -> Result<()> {
    let Some(e) = existing else { return Ok(()) };
    if e.status == Status::Succeeded {
        return Err(Error::invalid(
            "incident id",
            format!(
                "execution {} already succeeded at {} (journal {}); to run again use a new incident id",
                e.id,
                e.updated_at,
                journal.describe()
            ),
        ));
    }
    if e.kind != kind
        || (&e.inputs.table, &e.inputs.incident_id, &e.inputs.source)
            != (&inputs.table, &inputs.incident_id, &inputs.source)
    {
        return Err(Error::invalid(
            "incident id",
            format!(
                "execution {} exists with other inputs (table {}, source {}); resume it with \
                 `dynamo-dr resume {}`, or use a new incident id",
                e.id, e.inputs.table, e.inputs.source, e.id
            ),
        ));
    }
    Ok(())
}

/// The operator's choices that govern how a run may start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub yes: bool,
    pub break_lock: bool,
    pub allow_live_traffic: bool,
    pub page_limit: Option<i32>,
    pub no_verify: bool,
    pub strategy: journal::Strategy,
}

/// The restore guard: a table tied to an environment is restored only while that environment's
/// recovery mode is on. Returns a sentence for the journal when the operator overrides it.
async fn recovery_mode_guard(
    ctx: &Ctx,
    journal: &dyn Journal,
    table: &str,
    flags: Flags,
) -> Result<Option<String>> {
    let Some(env) = ctx.config.environment_of(table) else {
        return Ok(None);
    };
    let on = journal
        .load_recovery_mode(&env)
        .await?
        .is_some_and(|r| r.is_on());
    if on {
        return Ok(None);
    }
    if flags.allow_live_traffic {
        let note = format!(
            "LIVE TRAFFIC ALLOWED: recovery mode is not on for environment {env}; the application may write to {table} during the run (--allow-live-traffic)"
        );
        tracing::warn!("{note}");
        return Ok(Some(note));
    }
    Err(Error::invalid(
        "recovery mode",
        format!(
            "{table} belongs to environment {env}, whose recovery mode is not on, so the application could \
             write to it during the run. Start it with `dynamo-dr recovery-mode start --environment {env}`, \
             or pass --allow-live-traffic to run anyway"
        ),
    ))
}

/// How a journaled run starts: the journal, the record to resume (if any), the lease already
/// taken, notes for the trail, the sealing key and the AWS principal.
struct Start {
    journal: Arc<dyn Journal>,
    existing: Option<Execution>,
    lease: (lease::LeaseGuard, Option<String>),
    notes: Vec<String>,
    key: Option<JournalKey>,
    /// A new execution's journal key from KMS, wrapped, to store in its record.
    data_key: Option<journal::WrappedKey>,
    identity: std::result::Result<journal::AwsIdentity, String>,
}

/// Writes the start (or resume) into the journal under the held lease, and returns the recorder.
async fn begin(start: Start, fresh: impl FnOnce() -> Execution) -> Result<Arc<Recorder>> {
    let Start {
        journal,
        existing,
        lease: (guard, note),
        notes,
        key,
        data_key,
        identity,
    } = start;
    let mut exec = existing.unwrap_or_else(fresh);
    if data_key.is_some() {
        exec.data_key = data_key;
    }
    let me = journal::Operator::current();
    let principal = match &identity {
        Ok(id) => format!(" as {}", id.arn),
        Err(_) => String::new(),
    };
    if exec.events.len() > 1 || exec.status != Status::Running {
        exec.event(format!(
            "resumed by {}@{} (pid {}){principal} at phase {}",
            me.user,
            me.host,
            me.pid,
            exec.phase.as_str()
        ));
    } else {
        exec.event(format!(
            "started by {}@{} (pid {}){principal}: table {}, source {}, segments {}",
            me.user, me.host, me.pid, exec.inputs.table, exec.inputs.source, exec.inputs.segments
        ));
    }
    exec.principals.push(journal::Principal {
        at: jiff::Timestamp::now(),
        operator: me,
        aws: identity.as_ref().ok().cloned(),
        aws_error: identity.err(),
    });
    for n in note.into_iter().chain(notes) {
        exec.event(n);
    }
    exec.status = Status::Running;
    if let Err(e) = journal.save(&exec).await {
        let _ = guard.release().await;
        return Err(e);
    }
    Ok(Arc::new(Recorder::new(journal, exec, Some(guard), key)))
}

/// Runs `work` as a journaled execution: start record, Ctrl-C handling, outcome record.
async fn journaled<T, Fut>(
    start: Start,
    fresh: impl FnOnce() -> Execution,
    work: impl FnOnce(Arc<Recorder>) -> Fut,
) -> Result<(T, Execution)>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let rec = begin(start, fresh).await?;
    let id = rec.snapshot().await.id;
    let result = interruptible(work(rec.clone())).await.map_err(|e| match e {
        Error::Interrupted => Error::PhaseFailed {
            phase: "the run",
            state: format!("the journal holds the checkpoints; `dynamo-dr resume {id}` continues"),
            source: Box::new(Error::Interrupted),
        },
        other => other,
    });
    let exec = rec.finish(result.as_ref().err()).await?;
    Ok((result?, exec))
}

pub async fn restore(ctx: &Ctx, args: RestoreArgs) -> Result<()> {
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
            if let Err(e) = dry_run(ctx, request, args.run.flags()).await {
                if total > 1 {
                    crate::outln!("\n{table}: WOULD BE REFUSED: {e}");
                }
                refused.push((table, e));
            }
        }
        return match refused.is_empty() {
            true => Ok(()),
            false => Err(refusal(refused, total)),
        };
    }
    run_restores(ctx, requests, args.run.flags(), &args.report_dir).await
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
    let physical: Vec<String> = tables.iter().map(|t| t.physical.clone()).collect();
    validate::confirmations(&confirms, &physical)?;
    let source = match (time_text, backup) {
        (Some(t), None) => Source::Pitr(validate::pitr_time(&t, jiff::Timestamp::now())?),
        (None, Some(arn)) => Source::Backup(validate::backup_arn(&arn)?),
        _ => {
            return Err(Error::invalid(
                "source",
                "give exactly one of --pitr-time or --backup-arn",
            ));
        }
    };
    if tables.len() > 1 {
        match &source {
            Source::Backup(_) => {
                return Err(Error::invalid(
                    "--backup-arn",
                    "a backup holds one table; restore several tables to one instant with \
                     --pitr-time TIME, or each from its own backup in separate runs",
                ));
            }
            Source::Pitr(validate::PitrTime::Latest) => {
                return Err(Error::invalid(
                    "--pitr-time",
                    "`latest` is each table's own latest restorable time, so the tables would not \
                     be restored to one instant; give one time, e.g. 2025-01-15T09:00:00Z (`dynamo-dr \
                     check --environment ENV --pitr-time TIME` shows whether it is restorable)",
                ));
            }
            Source::Pitr(_) => {}
        }
    }
    let names = physical
        .iter()
        .map(|t| validate::names(t, &incident))
        .collect::<Result<Vec<_>>>()?;
    if !args.dry_run {
        require_terminal_or_yes(args.run.yes)?;
    }
    tables
        .into_iter()
        .zip(names)
        .map(|(table, names)| {
            let sensitive = table.options.sensitive.unwrap_or(false);
            ctx.require_key(sensitive, &table.physical)?;
            Ok(RestoreRequest {
                sensitive,
                forensic_backup: table.options.forensic_backup.unwrap_or(true),
                table: table.physical.clone(),
                incident: incident.clone(),
                source: source.clone(),
                names,
                keep_restored_table: args.keep_restored_table,
                sync: sync_options(ctx, &table, &args.run),
                backup_deadline: Duration::from_secs(4 * 3600),
                restore_deadline: Duration::from_secs(args.restore_timeout * 60),
                segments_why: String::new(),
            })
        })
        .collect()
}

/// The plan and its estimate, from read-only calls; nothing is created, taken or journaled.
async fn dry_run(ctx: &Ctx, request: RestoreRequest, flags: Flags) -> Result<()> {
    let (client, journal) = ctx.open().await?;
    let guard = recovery_mode_guard(ctx, journal.as_ref(), &request.table, flags).await;
    let existing = journal.load(&request.names.execution_id).await?;
    let (read, write) = (request.sync.read_rate.cap(), request.sync.write_rate.cap());
    let plan = restore::preflight(&client, request, existing.is_some()).await?;
    let estimate = crate::estimate::estimate(
        plan.dest.approx_items.unwrap_or_default().max(0) as u64,
        plan.dest.approx_bytes.unwrap_or_default().max(0) as u64,
    );
    let mut out = plan_summary(&plan);
    out.push_str(&format!(
        "  strategy:           {} (--strategy diff writes only what differs)\n",
        flags.strategy.as_str()
    ));
    if let Some(e) = &existing {
        out.push_str(&format!(
            "  would RESUME execution {} at phase {}\n",
            e.id,
            e.phase.as_str()
        ));
    }
    match guard {
        Ok(Some(note)) => out.push_str(&format!("  WARNING: {note}\n")),
        Ok(None) => {}
        Err(e) => out.push_str(&format!("  WOULD BE REFUSED: {e}\n")),
    }
    out.push('\n');
    out.push_str(&crate::estimate::text(&estimate, read, write));
    out.push_str("\nDry run: nothing was changed.\n");
    crate::out!("{out}");
    Ok(())
}

/// A restore that passed every check and waits for the operator's go.
struct Prepared {
    plan: Plan,
    inputs: Inputs,
    existing: Option<Execution>,
    notes: Vec<String>,
}

/// The checks that need AWS and the journal, all read-only: recovery mode, an earlier execution
/// of the same id, the table, the source and the names.
async fn prepare(
    ctx: &Ctx,
    client: &aws_sdk_dynamodb::Client,
    journal: &dyn Journal,
    request: RestoreRequest,
    flags: Flags,
) -> Result<Prepared> {
    let notes: Vec<String> = recovery_mode_guard(ctx, journal, &request.table, flags)
        .await?
        .into_iter()
        .collect();
    let inputs = Inputs {
        table: request.table.clone(),
        incident_id: Some(request.incident.clone()),
        source: source_text(&request.source),
        segments: request.sync.segments,
        keep_restored_table: request.keep_restored_table,
        verify: !flags.no_verify,
        strategy: flags.strategy,
        sensitive: request.sensitive,
        forensic_backup: request.forensic_backup,
    };
    let existing = journal.load(&request.names.execution_id).await?;
    check_existing(&existing, Kind::Restore, &inputs, journal)?;
    // Checkpoints belong to the recorded segment count and choices.
    let request = match &existing {
        Some(e) => RestoreRequest {
            keep_restored_table: e.inputs.keep_restored_table,
            sync: SyncOptions {
                segments: e.inputs.segments,
                ..request.sync
            },
            ..request
        },
        None => request,
    };
    let plan = restore::preflight(client, request, existing.is_some()).await?;
    Ok(Prepared {
        plan,
        inputs,
        existing,
        notes,
    })
}

/// One restore, or several to one instant: every table is checked before any is touched, the
/// operator confirms them together, every lease is taken before any record is written, and then
/// they run concurrently, each its own resumable execution. One summary, one incident report.
async fn run_restores(
    ctx: &Ctx,
    requests: Vec<RestoreRequest>,
    flags: Flags,
    report_dir: &std::path::Path,
) -> Result<()> {
    let (client, journal) = ctx.open().await?;
    let incident = requests
        .first()
        .map(|r| r.incident.clone())
        .unwrap_or_default();
    let total = requests.len();
    let checked = futures_util::future::join_all(requests.into_iter().map(|r| {
        let (client, journal) = (&client, journal.as_ref());
        async move {
            let table = r.table.clone();
            (table, prepare(ctx, client, journal, r, flags).await)
        }
    }))
    .await;
    let mut prepared = Vec::new();
    let mut refused = Vec::new();
    for (table, outcome) in checked {
        match outcome {
            Ok(p) => prepared.push(p),
            Err(e) => refused.push((table, e)),
        }
    }
    if !refused.is_empty() {
        return Err(refusal(refused, total));
    }
    let mut summary = String::new();
    for p in &prepared {
        summary.push_str(&plan_summary(&p.plan));
        if let Some(e) = &p.existing {
            summary.push_str(&format!(
                "  RESUMING execution {} at phase {} (journal {})\n",
                e.id,
                e.phase.as_str(),
                journal.describe()
            ));
        }
    }
    let tables: Vec<String> = prepared.iter().map(|p| p.plan.dest.name.clone()).collect();
    confirm(flags.yes, &summary, &tables)?;
    let mut leases = Vec::new();
    for p in &prepared {
        let id = &p.plan.request.names.execution_id;
        match lease::acquire(journal.clone(), &p.plan.dest.name, id, flags.break_lock).await {
            Ok(held) => leases.push(held),
            Err(e) => {
                for (guard, _) in leases {
                    let _ = guard.release().await;
                }
                return Err(e);
            }
        }
    }
    let mut keys = Vec::new();
    for p in &prepared {
        let id = &p.plan.request.names.execution_id;
        match ctx
            .execution_key(p.existing.as_ref(), p.inputs.sensitive, id, &p.inputs.table)
            .await
        {
            Ok(k) => keys.push(k),
            Err(e) => {
                for (guard, _) in leases {
                    let _ = guard.release().await;
                }
                return Err(e);
            }
        }
    }
    let identity = aws::caller_identity(&ctx.aws).await;
    if let Err(e) = &identity {
        tracing::warn!("{e}; the journal records the local user only");
    }
    let runs = prepared
        .into_iter()
        .zip(leases)
        .zip(keys)
        .map(|((p, lease), (key, data_key))| {
            let start = Start {
                journal: journal.clone(),
                existing: p.existing,
                lease,
                notes: p.notes,
                key,
                data_key,
                identity: identity.clone(),
            };
            let client = &client;
            async move {
                let plan = p.plan;
                let (id, table) = (
                    plan.request.names.execution_id.clone(),
                    plan.dest.name.clone(),
                );
                let fresh =
                    || Execution::new(id.clone(), Kind::Restore, p.inputs, Phase::BackupAndRestore);
                let outcome = journaled(start, fresh, |rec| async move {
                    restore::execute(client, &plan, &rec).await
                })
                .await
                .map(|(report, _)| report);
                (id, table, outcome)
            }
        });
    let results = futures_util::future::join_all(runs).await;
    let report = write_report(ctx, journal.as_ref(), &incident, report_dir, Some(identity)).await;
    print_restores(ctx.format, &results, &report);
    let failed: Vec<(String, String, Error)> = results
        .into_iter()
        .filter_map(|(id, table, r)| r.err().map(|e| (id, table, e)))
        .collect();
    match (total, failed.len()) {
        (_, 0) => Ok(()),
        (1, _) => Err(failed
            .into_iter()
            .map(|(_, _, e)| e)
            .next()
            .unwrap_or(Error::Interrupted)),
        (_, n) => Err(several_failed(failed, n, total)),
    }
}

/// Why a multi-table restore did not start: each refused table and its reason.
fn refusal(refused: Vec<(String, Error)>, total: usize) -> Error {
    if total == 1 {
        if let Some((_, e)) = refused.into_iter().next() {
            return e;
        }
        return Error::Interrupted;
    }
    let all_input = refused
        .iter()
        .all(|(_, e)| e.exit_status() == crate::error::ExitStatus::Refused);
    let lines: String = refused
        .iter()
        .map(|(t, e)| format!("\n  {t}: {e}"))
        .collect();
    let message = format!(
        "{} of {total} tables cannot be restored, so none was touched:{lines}\nFix what is listed \
         and run again. A table whose execution already exists continues on its own with \
         `dynamo-dr resume <incident>.<table>`",
        refused.len()
    );
    if all_input {
        Error::invalid("tables", message)
    } else {
        Error::Incomplete(message)
    }
}

fn several_failed(failed: Vec<(String, String, Error)>, n: usize, total: usize) -> Error {
    // A failure to resume outranks a verification difference: both need the operator.
    let status = if failed
        .iter()
        .all(|(_, _, e)| e.exit_status() == crate::error::ExitStatus::Mismatch)
    {
        crate::error::ExitStatus::Mismatch
    } else {
        crate::error::ExitStatus::Failed
    };
    let lines: String = failed
        .iter()
        .map(|(id, t, e)| format!("\n  {t}: {e}\n    then: dynamo-dr resume {id}"))
        .collect();
    Error::Tables {
        message: format!("{n} of {total} tables were not recovered:{lines}"),
        status,
    }
}

fn print_restores(
    format: Format,
    results: &[(String, String, Result<restore::RestoreReport>)],
    report: &Result<crate::report::Written>,
) {
    if let Err(e) = report {
        tracing::warn!(
            "the incident report was not written: {e}; write it with `dynamo-dr report`"
        );
    }
    let paths = report.as_ref().ok();
    match format {
        Format::Json => {
            let mut tables: Vec<serde_json::Value> = results
                .iter()
                .map(|(id, table, r)| match r {
                    Ok(r) => output::restore_json(r),
                    Err(e) => serde_json::json!({
                        "executionId": id,
                        "table": table,
                        "status": "failed",
                        "error": output::error_json(e),
                    }),
                })
                .collect();
            let report = paths.map(crate::report::Written::json).unwrap_or_default();
            if let [single] = tables.as_mut_slice() {
                if results.iter().all(|(_, _, r)| r.is_ok()) {
                    single["report"] = report;
                    crate::outln!("{single}");
                }
                return;
            }
            crate::outln!(
                "{}",
                serde_json::json!({
                    "status": if results.iter().all(|(_, _, r)| r.is_ok()) { "succeeded" } else { "failed" },
                    "tables": tables,
                    "report": report,
                })
            );
        }
        Format::Text => {
            let mut out = String::new();
            for (_, table, r) in results {
                match r {
                    Ok(r) => out.push_str(&output::restore_text(r)),
                    Err(_) if results.len() == 1 => {}
                    Err(e) => out.push_str(&format!("Recovery of {table} FAILED: {e}\n")),
                }
            }
            if results.len() > 1 {
                let ok = results.iter().filter(|(_, _, r)| r.is_ok()).count();
                out.push_str(&format!("\n{ok} of {} tables recovered\n", results.len()));
            }
            if let Some(w) = paths {
                out.push_str(&format!("incident report: {}\n", w.text()));
            }
            crate::out!("{out}");
        }
    }
}

pub async fn sync(ctx: &Ctx, args: SyncArgs) -> Result<()> {
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
    require_terminal_or_yes(args.run.yes)?;
    let sensitive = dest.options.sensitive.unwrap_or(false) || ctx.is_sensitive(&args.source);
    ctx.require_key(sensitive, &dest.physical)?;
    let id = match &incident {
        Some(i) => format!("{i}.{}", dest.physical),
        None => format!(
            "sync-{}.{}",
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
            dest.physical
        ),
    };
    let opts = sync_options(ctx, &dest, &args.run);
    let inputs = Inputs {
        table: dest.physical.clone(),
        incident_id: incident,
        source: format!("table:{}", args.source),
        segments: opts.segments,
        keep_restored_table: false,
        verify: !args.run.no_verify,
        strategy: args.run.strategy,
        sensitive,
        forensic_backup: true,
    };
    run_sync(ctx, id, inputs, opts, args.run.flags()).await
}

async fn run_sync(
    ctx: &Ctx,
    id: String,
    inputs: Inputs,
    opts: SyncOptions,
    flags: Flags,
) -> Result<()> {
    let (client, journal) = ctx.open().await?;
    let notes: Vec<String> = recovery_mode_guard(ctx, journal.as_ref(), &inputs.table, flags)
        .await?
        .into_iter()
        .collect();
    let existing = journal.load(&id).await?;
    check_existing(&existing, Kind::Sync, &inputs, journal.as_ref())?;
    let inputs = existing
        .as_ref()
        .map(|e| e.inputs.clone())
        .unwrap_or(inputs);
    let source = inputs
        .source
        .strip_prefix("table:")
        .unwrap_or(&inputs.source)
        .to_string();
    let src = crate::table::describe_existing(&client, &source, "source").await?;
    let dst = crate::table::describe_existing(&client, &inputs.table, "dest").await?;
    for t in [&src, &dst] {
        if !t.is_active() {
            return Err(Error::invalid(
                "table",
                format!("{} is {}, not ACTIVE; wait and run again", t.name, t.status),
            ));
        }
    }
    if src.key != dst.key {
        return Err(Error::invalid(
            "source",
            format!(
                "{} has key {} but {} has key {}; items cannot be copied between them",
                src.name, src.key, dst.name, dst.key
            ),
        ));
    }
    let (mut inputs, mut opts) = (inputs, opts);
    let mut why = format!("{} segments", inputs.segments);
    if inputs.segments == 0 {
        let (n, text) = crate::estimate::segments(
            src.approx_items.unwrap_or_default().max(0) as u64,
            src.approx_bytes.unwrap_or_default().max(0) as u64,
            dst.write_capacity.map(|w| w as f64),
        );
        (inputs.segments, opts.segments, why) = (n, n, text);
    }
    let mut summary = format!(
        "\nSync plan, execution {id}: DELETE every item of {} (HARD RESET), then copy every item of {} into it\n  {why}\n  write capacity: {}\n",
        dst.name,
        src.name,
        capacity_text(&dst)
    );
    if let Some(e) = &existing {
        summary.push_str(&format!(
            "  RESUMING at phase {} (journal {})\n",
            e.phase.as_str(),
            journal.describe()
        ));
    }
    confirm(flags.yes, &summary, std::slice::from_ref(&dst.name))?;
    let started = Instant::now();
    let lease = lease::acquire(journal.clone(), &dst.name, &id, flags.break_lock).await?;
    let (key, data_key) = match ctx
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
        identity: aws::caller_identity(&ctx.aws).await,
    };
    let fresh = || Execution::new(id.clone(), Kind::Sync, inputs, Phase::Delete);
    let ((), exec) = journaled(start, fresh, |rec| async move {
        execution::sync_phases(&client, &src, &dst, &opts, &rec).await?;
        rec.update(|e| e.enter(Phase::Done)).await
    })
    .await?;
    match ctx.format {
        Format::Json => crate::outln!("{}", output::sync_json(&exec, started.elapsed())),
        Format::Text => crate::out!("{}", output::sync_text(&exec, started.elapsed())),
    }
    Ok(())
}

pub async fn resume(ctx: &Ctx, args: ResumeArgs) -> Result<()> {
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
    if let Some(source) = exec.inputs.source.strip_prefix("table:") {
        ctx.config.guard("source", source)?;
    }
    require_terminal_or_yes(args.yes)?;
    // A key KMS wrapped into the record needs nothing from the operator.
    if exec.data_key.is_none() {
        ctx.require_key(exec.inputs.sensitive, &exec.inputs.table)?;
    }
    let flags = Flags {
        yes: args.yes,
        break_lock: args.break_lock,
        allow_live_traffic: args.allow_live_traffic,
        page_limit: args.scan_page_limit,
        no_verify: false,
        strategy: journal::Strategy::HardReset,
    };
    // The caps of the table's config as it is now, or of the command line.
    let table_options = ctx
        .config
        .resolve("table", &exec.inputs.table)
        .ok()
        .map(|t| t.options);
    let pace = pacing(ctx, table_options.as_ref());
    match exec.kind {
        Kind::Restore => {
            let incident = exec.inputs.incident_id.clone().unwrap_or_default();
            let request = RestoreRequest {
                table: exec.inputs.table.clone(),
                names: recorded_names(&exec, &incident)?,
                incident,
                source: source_from_text(&exec.inputs.source)?,
                keep_restored_table: exec.inputs.keep_restored_table,
                sensitive: exec.inputs.sensitive,
                forensic_backup: exec.inputs.forensic_backup,
                sync: SyncOptions {
                    segments: exec.inputs.segments,
                    page_limit: flags.page_limit,
                    ..pace
                },
                backup_deadline: Duration::from_secs(4 * 3600),
                restore_deadline: Duration::from_secs(24 * 3600),
                segments_why: String::new(),
            };
            run_restores(ctx, vec![request], flags, &args.report_dir).await
        }
        Kind::Sync => {
            let opts = SyncOptions {
                segments: exec.inputs.segments,
                page_limit: flags.page_limit,
                ..pace
            };
            run_sync(ctx, exec.id.clone(), exec.inputs.clone(), opts, flags).await
        }
    }
}

/// The names a restore derives, except those its record already holds (a record written by an
/// older version derived other names; provenance checks still decide what is ours).
fn recorded_names(exec: &Execution, incident: &str) -> Result<validate::Names> {
    let mut names = validate::names(&exec.inputs.table, incident)?;
    let r = &exec.resources;
    if let Some(t) = r.temp_table.clone() {
        names.temp_table = t;
    }
    if let Some(b) = r.backup_name.clone() {
        names.backup = b;
    }
    Ok(names)
}

/// Builds the report of `id` from the journal and writes it; `identity` is the caller's, if
/// already known (else STS is asked once the id is known to exist).
async fn write_report(
    ctx: &Ctx,
    journal: &dyn Journal,
    id: &str,
    dir: &std::path::Path,
    identity: Option<std::result::Result<journal::AwsIdentity, String>>,
) -> Result<crate::report::Written> {
    let executions = crate::report::executions(journal, id).await?;
    let identity = match identity {
        Some(known) => known,
        None => aws::caller_identity(&ctx.aws).await,
    };
    let by = journal::Principal {
        at: jiff::Timestamp::now(),
        operator: journal::Operator::current(),
        aws: identity.as_ref().ok().cloned(),
        aws_error: identity.err(),
    };
    let report = crate::report::build(journal, &ctx.config, id, executions, by).await?;
    crate::report::write(&report, dir)
}

/// `dynamo-dr report ID`: the incident report of an execution or a whole incident.
pub async fn report(ctx: &Ctx, id: &str, dir: &std::path::Path) -> Result<()> {
    let (_, journal) = ctx.open().await?;
    let written = write_report(ctx, journal.as_ref(), id, dir, None).await?;
    match ctx.format {
        Format::Json => crate::outln!("{}", written.json()),
        Format::Text => crate::outln!("incident report: {}", written.text()),
    }
    Ok(())
}

pub async fn status(ctx: &Ctx, id: &str) -> Result<()> {
    let (_, journal) = ctx.open().await?;
    let exec = journal.load(id).await?.ok_or_else(|| {
        Error::invalid(
            "execution id",
            format!(
                "no execution {id} in the journal {}; list them with `dynamo-dr executions`",
                journal.describe()
            ),
        )
    })?;
    match ctx.format {
        Format::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&exec).map_err(|e| Error::Journal(e.to_string()))?
        ),
        Format::Text => crate::out!("{}", output::status_text(&exec)),
    }
    Ok(())
}

pub async fn executions(ctx: &Ctx) -> Result<()> {
    let (_, journal) = ctx.open().await?;
    let mut all = journal.list().await?;
    all.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    match ctx.format {
        Format::Json => crate::outln!("{}", output::executions_json(&all)),
        Format::Text => crate::out!("{}", output::executions_text(&all)),
    }
    Ok(())
}

pub async fn journal_init(ctx: &Ctx) -> Result<()> {
    let journal::Location::DynamoDb(table) = &ctx.journal else {
        return Err(Error::invalid(
            "--journal",
            "journal init creates a DynamoDB journal: pass --journal dynamodb://TABLE (a directory journal needs no set-up)",
        ));
    };
    let client = aws::dynamodb_client(&ctx.aws).await;
    let created = journal::dynamo::init(&client, table).await?;
    crate::outln!(
        "journal table {table} {}",
        if created { "created" } else { "already exists" }
    );
    Ok(())
}

fn confirm(yes: bool, summary: &str, tables: &[String]) -> Result<()> {
    if yes {
        eprintln!("{summary}");
        Ok(())
    } else {
        prompt(summary, "table name", tables)
    }
}

/// Stops the work on Ctrl-C with a clear error instead of a silent kill.
async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    }
}

pub async fn recovery_mode(ctx: &Ctx, cmd: RecoveryModeCommand) -> Result<()> {
    let (env_name, dry_run, yes, kind) = match &cmd {
        RecoveryModeCommand::Start(a) => (&a.environment, a.dry_run, a.yes, "start"),
        RecoveryModeCommand::End(a) => (&a.environment, a.dry_run, a.yes, "end"),
        RecoveryModeCommand::Status { environment } => (environment, true, true, "status"),
    };
    let env = ctx.config.environment(env_name)?;
    if !dry_run {
        require_terminal_or_yes(yes)?;
    }
    let (_, journal) = ctx.open().await?;
    let lambda = aws::lambda_client(&ctx.aws).await;
    if kind == "status" {
        let (record, functions) =
            recovery_mode::status(&lambda, journal.as_ref(), env_name, &env).await?;
        match ctx.format {
            Format::Json => crate::outln!(
                "{}",
                output::recovery_status_json(env_name, record.as_ref(), &functions)
            ),
            Format::Text => crate::out!(
                "{}",
                output::recovery_status_text(env_name, record.as_ref(), &functions)
            ),
        }
        return Ok(());
    }
    let run = |dry: bool| {
        let (lambda, journal, env) = (&lambda, journal.clone(), &env);
        async move {
            match kind {
                "start" => recovery_mode::start(lambda, journal.as_ref(), env_name, env, dry).await,
                _ => recovery_mode::end(lambda, journal.as_ref(), env_name, dry).await,
            }
        }
    };
    if !dry_run && !yes {
        let plan = run(true).await?;
        prompt(
            &output::actions_text(&format!("recovery-mode {kind} plan for {env_name}"), &plan),
            "environment name",
            std::slice::from_ref(env_name),
        )?;
    }
    let actions = run(dry_run).await?;
    let title = if dry_run {
        format!("recovery-mode {kind} --dry-run for {env_name} (nothing changed)")
    } else {
        format!("recovery-mode {kind} for {env_name}")
    };
    match ctx.format {
        Format::Json => crate::outln!(
            "{}",
            serde_json::json!({ "environment": env_name, "dryRun": dry_run, "actions": actions })
        ),
        Format::Text => crate::out!("{}", output::actions_text(&title, &actions)),
    }
    let failures: Vec<String> = actions
        .iter()
        .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.target)))
        .collect();
    if !failures.is_empty() {
        return Err(Error::Incomplete(format!(
            "recovery-mode {kind} for {env_name}: {} call(s) failed; the others were done and recorded. \
             Run `dynamo-dr recovery-mode {kind} --environment {env_name}` again to finish:\n  {}",
            failures.len(),
            failures.join("\n  ")
        )));
    }
    Ok(())
}

/// Both tables, described, with matching key schemas.
async fn table_pair(
    config: &Config,
    client: &aws_sdk_dynamodb::Client,
    source: &str,
    dest: &str,
) -> Result<(crate::table::TableInfo, crate::table::TableInfo)> {
    validate::table_name("source", source)?;
    validate::table_name("dest", dest)?;
    config.guard("source", source)?;
    config.guard("dest", dest)?;
    let src = crate::table::describe_existing(client, source, "source").await?;
    let dst = crate::table::describe_existing(client, dest, "dest").await?;
    if src.key != dst.key {
        return Err(Error::invalid(
            "source",
            format!(
                "{} has key {} but {} has key {}; they cannot hold the same items",
                src.name, src.key, dst.name, dst.key
            ),
        ));
    }
    Ok((src, dst))
}

fn jsonl_writer(path: &std::path::Path, field: &str) -> Result<std::io::BufWriter<std::fs::File>> {
    crate::private::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|e| Error::invalid(field, format!("cannot create {}: {e}", path.display())))
}

fn write_line(
    out: &mut impl Write,
    path: &std::path::Path,
    value: &serde_json::Value,
) -> Result<()> {
    writeln!(out, "{value}").map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}

pub async fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let client = aws::dynamodb_client(&ctx.aws).await;
    let (src, dst) = table_pair(&ctx.config, &client, &args.source, &args.dest).await?;
    let mut keys_out = args
        .keys_out
        .as_deref()
        .map(|p| jsonl_writer(p, "--keys-out"))
        .transpose()?;
    let (src, dst) = ctx.mark_sensitive(src, dst);
    let pace = pacing(ctx, None);
    let digest = ctx.key_digest();
    let result = crate::verify::verify_tables(&client, &src, &dst, args.segments, &pace, &digest, |d| match (&mut keys_out, &args.keys_out) {
        (Some(w), Some(p)) => write_line(w, p, &serde_json::json!({ "kind": d.kind.as_str(), "key": serde_json::from_str::<serde_json::Value>(d.key).unwrap_or_default() })),
        _ => Ok(()),
    })
    .await;
    if let (Some(w), Some(p)) = (&mut keys_out, &args.keys_out) {
        w.flush().map_err(|e| Error::Io {
            path: p.display().to_string(),
            source: e,
        })?;
    }
    let (s, _) = result?;
    match ctx.format {
        Format::Json => crate::outln!(
            "{}",
            serde_json::json!({ "status": "equal", "source": src.name, "dest": dst.name, "items": s.count, "fingerprint": s.hex() })
        ),
        Format::Text => crate::outln!(
            "Equal: {} and {} hold the same {} items (fingerprint {})",
            src.name,
            dst.name,
            s.count,
            s.hex()
        ),
    }
    Ok(())
}

pub async fn diff(ctx: &Ctx, args: DiffArgs) -> Result<()> {
    let client = aws::dynamodb_client(&ctx.aws).await;
    let (src, dst) = table_pair(&ctx.config, &client, &args.source, &args.dest).await?;
    for t in [&src, &dst] {
        if ctx.is_sensitive(&t.name) {
            return Err(Error::invalid(
                "source",
                format!(
                    "{} is marked sensitive: diff would copy its items into a file; compare with \
                     `dynamo-dr verify`, which names differing keys only by digest",
                    t.name
                ),
            ));
        }
    }
    let mut out = jsonl_writer(&args.out, "--out")?;
    let pace = pacing(ctx, None);
    let digest = ctx.key_digest();
    let found = crate::verify::differences(&client, &src, &dst, &pace, &digest, |d| {
        let kind = match d.kind {
            crate::verify::DiffKind::Missing => "only-in-source",
            crate::verify::DiffKind::Extra => "only-in-dest",
            crate::verify::DiffKind::Changed => "changed",
        };
        let mut line = serde_json::json!({ "kind": kind, "key": serde_json::from_str::<serde_json::Value>(d.key).unwrap_or_default() });
        if let Some(i) = d.source {
            line["source"] = crate::item::item_to_json(i);
        }
        if let Some(i) = d.dest {
            line["dest"] = crate::item::item_to_json(i);
        }
        write_line(&mut out, &args.out, &line)
    })
    .await?;
    out.flush().map_err(|e| Error::Io {
        path: args.out.display().to_string(),
        source: e,
    })?;
    let summary = serde_json::json!({
        "source": src.name, "dest": dst.name, "out": args.out.display().to_string(),
        "onlyInSource": found.missing, "onlyInDest": found.extra, "changed": found.changed,
    });
    match ctx.format {
        Format::Json => crate::outln!("{summary}"),
        Format::Text => crate::outln!(
            "{} only in {}, {} only in {}, {} changed; written to {}",
            found.missing,
            src.name,
            found.extra,
            dst.name,
            found.changed,
            args.out.display()
        ),
    }
    Ok(())
}

pub async fn key_digest(ctx: &Ctx, key: &str, execution: Option<&str>) -> Result<()> {
    let example = r#"for example '{"ssn":{"S":"123-45-6789"}}'"#;
    let value: serde_json::Value = serde_json::from_str(key)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| {
            Error::invalid(
                "key",
                format!("not a key in DynamoDB JSON (an object of typed attributes); {example}"),
            )
        })?;
    let digest = match execution {
        Some(id) => {
            let (_, journal) = ctx.open().await?;
            let exec = journal.load(id).await?.ok_or_else(|| {
                Error::invalid(
                    "--execution",
                    format!("no execution {id} in the journal {}", journal.describe()),
                )
            })?;
            ctx.execution_key(Some(&exec), true, id, &exec.inputs.table)
                .await?
                .0
                .map(|k| k.digest_key())
        }
        None => ctx.journal_key.as_ref().map(JournalKey::digest_key),
    };
    let digest = digest.ok_or_else(|| crate::execution::missing_key("the table"))?;
    // The same text the tool digests: compact, attributes in name order.
    crate::outln!("{}", digest.name(&value.to_string()));
    Ok(())
}

pub async fn iam_policy(ctx: &Ctx, args: crate::cli::IamPolicyArgs) -> Result<()> {
    if args.table.is_empty() && !args.recovery_mode {
        return Err(Error::invalid(
            "--table",
            "say what the role is for: --table TABLE (repeatable), and/or --environment ENV \
             --recovery-mode",
        ));
    }
    if let Some(account) = &args.account
        && (account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(Error::invalid(
            "--account",
            format!("{account:?} is not an AWS account id: 12 digits"),
        ));
    }
    let tables = args
        .table
        .iter()
        .map(|t| ctx.config.resolve("table", t).map(|r| r.physical))
        .collect::<Result<Vec<_>>>()?;
    for key in &args.kms_key {
        crate::iam::kms_key_arn(key).map_err(|why| {
            Error::invalid(
                "--kms-key",
                format!(
                    "{why}; give the table's key as `check` or DescribeTable shows it \
                     (SSEDescription.KMSMasterKeyArn)"
                ),
            )
        })?;
    }
    if !args.kms_key.is_empty() && tables.is_empty() {
        return Err(Error::invalid(
            "--kms-key",
            "a KMS key is for the tables' data: give the tables too, with --table",
        ));
    }
    let recovery_mode = match (&args.environment, args.recovery_mode) {
        (Some(env), true) => Some((env.clone(), ctx.config.environment(env)?)),
        _ => None,
    };
    let region = aws::region(&ctx.aws).await.ok_or_else(|| {
        Error::invalid(
            "--region",
            "no region: the policy names this region's tables and keys; pass --region (e.g. \
             us-east-1) or set AWS_REGION",
        )
    })?;
    crate::iam::region(&region).map_err(|why| Error::invalid("--region", why))?;
    let scope = crate::iam::Scope {
        partition: args.partition.clone(),
        region,
        account: args.account.clone().unwrap_or_else(|| "*".into()),
    };
    let journal_table = match &ctx.journal {
        journal::Location::DynamoDb(t) => Some(t.clone()),
        journal::Location::Dir(_) => None,
    };
    if args.journal_init && journal_table.is_none() {
        return Err(Error::invalid(
            "--journal-init",
            "only a shared journal is created by `journal init`: pass --journal \
             dynamodb://TABLE (or DYNAMO_DR_JOURNAL) too",
        ));
    }
    let request = crate::iam::Request {
        tables,
        journal_table,
        recovery_mode,
        kms_keys: args.kms_key.clone(),
        journal_init: args.journal_init,
        journal_kms_key: match &ctx.journal_kms_key {
            Some(key) => {
                crate::iam::kms_key_arn(key).map_err(|why| {
                    Error::invalid(
                        "--journal-kms-key",
                        format!(
                            "{why}. A policy needs the key's ARN: `aws kms describe-key --key-id \
                             {key}` shows it"
                        ),
                    )
                })?;
                Some(key.clone())
            }
            None => None,
        },
    };
    let policy = crate::iam::policy(&scope, &request);
    let text = serde_json::to_string_pretty(&policy).map_err(|e| Error::BadState {
        what: "IAM policy".into(),
        state: e.to_string(),
        hint: "this is a bug in dynamo-dr".into(),
    })?;
    crate::outln!("{text}");
    if args.account.is_none() {
        eprintln!("note: pass --account to pin the policy to one account (now `*`)");
    }
    Ok(())
}

pub async fn check(ctx: &Ctx, environment: &str, pitr_time: Option<&str>) -> Result<()> {
    if ctx.config.tables.is_empty() {
        return Err(Error::invalid(
            "config",
            "check needs the tables configured (dynamo-dr.toml or --config): it checks each of them",
        ));
    }
    // `latest` is inside every enabled window by definition.
    let at = match pitr_time.map(|t| validate::pitr_time(t, jiff::Timestamp::now())) {
        Some(Ok(validate::PitrTime::At(at))) => Some(at),
        Some(Err(e)) => return Err(e),
        _ => None,
    };
    let (client, journal) = ctx.open().await?;
    let report = crate::check::run(&client, journal.as_ref(), &ctx.config, environment, at).await?;
    match ctx.format {
        Format::Json => crate::outln!(
            "{}",
            serde_json::json!({ "ok": report.failures() == 0, "report": report })
        ),
        Format::Text => crate::out!("{}", crate::check::text(&report)),
    }
    match report.failures() {
        0 => Ok(()),
        failed => Err(Error::ChecksFailed { failed }),
    }
}

#[cfg(test)]
mod tests {
    use super::typed_all;

    #[test]
    fn the_prompt_wants_every_name_in_order() {
        let names = ["Prod-A".to_string(), "Prod-B".to_string()];
        assert!(typed_all("Prod-A Prod-B\n", &names));
        assert!(typed_all("  Prod-A\tProd-B  ", &names));
        assert!(!typed_all("Prod-A\n", &names));
        assert!(!typed_all("Prod-B Prod-A", &names));
        assert!(!typed_all("Prod-A Prod-B Prod-C", &names));
        assert!(!typed_all("prod-a prod-b", &names));
        assert!(typed_all("Prod-A", &names[..1]));
        assert!(!typed_all("", &names[..1]));
    }
}
