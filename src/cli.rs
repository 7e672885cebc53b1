//! The command line: argument parsing, the confirmation prompt, and exit codes.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::aws::{self, AwsOptions};
use crate::config::{Config, ResolvedTable};
use crate::error::{Error, Result};
use crate::input::SeedInput;
use crate::output::{self, Format};
use crate::restore::{self, Plan, RestoreRequest, Source, SourceDetail};
use crate::sync::{self, SyncOptions};
use crate::validate;
use crate::verify;

#[derive(Debug, Parser)]
#[command(
    name = "dynamo-dr",
    version,
    about = "Put a DynamoDB table back to a point in time, in place.",
    long_about = "Put a DynamoDB table back to a point in time, in place: same table name, ARN, \
                  streams, alarms and infrastructure-as-code.\n\nWARNING: restore and sync HARD-RESET \
                  the destination table: every current item is deleted before the restored items \
                  are copied back. A forensic backup is taken first.\n\nExit codes: 0 success; 1 \
                  failure (safe to investigate and run again); 2 input refused, nothing changed; 3 \
                  the check found the tables differ."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Table configuration file [default: ./dynamo-dr.toml when it exists].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// AWS region (else the SDK's chain: AWS_REGION, profile).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// AWS named profile.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Endpoint URL for every service (AWS_ENDPOINT_URL* also work).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Summary format on stdout; progress always goes to stderr.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// More detail on stderr (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore a table in place from a point in time or a backup (hard reset).
    Restore(RestoreArgs),
    /// Make DEST hold exactly the items of SOURCE (hard reset of DEST).
    Sync(SyncArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").args(["pitr_time", "backup_arn", "input"]).required(true))]
pub struct RestoreArgs {
    /// Table to recover: its physical name, or a logical name from the config.
    #[arg(long, value_name = "TABLE")]
    pub table: String,
    /// Incident id: letters, digits and hyphens; names the backup and temporary table.
    #[arg(long, value_name = "ID", required_unless_present = "input")]
    pub incident_id: Option<String>,
    /// Time to restore to: RFC 3339 with Z or an offset (2025-01-15T09:00:00Z), or `latest`.
    #[arg(long, value_name = "TIME")]
    pub pitr_time: Option<String>,
    /// Restore from this DynamoDB backup instead of PITR.
    #[arg(long, value_name = "ARN")]
    pub backup_arn: Option<String>,
    /// The physical table name again, typed out: the guard rail.
    #[arg(
        long,
        value_name = "PHYSICAL_TABLE_NAME",
        required_unless_present = "input"
    )]
    pub confirm: Option<String>,
    /// The seed's JSON payload, from a file or - for stdin.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["incident_id", "confirm", "pitr_time", "backup_arn"])]
    pub input: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
    /// Keep the temporary table after a successful recovery.
    #[arg(long)]
    pub keep_restored_table: bool,
    /// How long to wait for the restore to finish, in minutes.
    #[arg(long, value_name = "MINUTES", default_value_t = 24 * 60, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 60))]
    pub restore_timeout: u64,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Table to copy from.
    #[arg(long, value_name = "TABLE")]
    pub source: String,
    /// Table to overwrite: physical name or logical name from the config.
    #[arg(long, value_name = "TABLE")]
    pub dest: String,
    /// The destination's physical name again, typed out.
    #[arg(long, value_name = "PHYSICAL_TABLE_NAME")]
    pub confirm: String,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Parallel scan segments [default: 8, or the config's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub segments: Option<u32>,
    /// BatchWriteItem requests in flight [default: 32, or the config's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub write_concurrency: Option<u64>,
    /// Do not ask; required when there is no terminal to ask on.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Parses the command line, runs, prints, and returns the documented exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let format = cli.global.output;
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if format == Format::Json {
                println!("{}", output::error_json(&e));
            }
            ExitCode::from(e.exit_status() as u8)
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "dynamo_dr=info",
        1 => "dynamo_dr=debug",
        _ => "dynamo_dr=trace,aws_smithy_runtime=debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.global.config.as_deref())?;
    let aws = AwsOptions {
        region: cli.global.region.clone().or(config.aws.region.clone()),
        profile: cli.global.profile.clone().or(config.aws.profile.clone()),
        endpoint_url: cli
            .global
            .endpoint_url
            .clone()
            .or(config.aws.endpoint_url.clone()),
    };
    let format = cli.global.output;
    match cli.command {
        Command::Restore(args) => restore_cmd(&config, &aws, format, args).await,
        Command::Sync(args) => sync_cmd(&config, &aws, format, args).await,
    }
}

fn sync_options(table: &ResolvedTable, run: &RunArgs) -> SyncOptions {
    let defaults = SyncOptions::default();
    SyncOptions {
        segments: run
            .segments
            .or(table.options.segments)
            .unwrap_or(defaults.segments),
        write_concurrency: run
            .write_concurrency
            .map(|n| n as usize)
            .or(table.options.write_concurrency)
            .unwrap_or(defaults.write_concurrency),
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

/// Asks the operator to type the table name; anything else refuses.
fn prompt(summary: &str, table: &str) -> Result<()> {
    eprintln!("{summary}");
    eprint!("Type the table name ({table}) to proceed, anything else to stop: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::invalid("confirmation", format!("cannot read the answer: {e}")))?;
    if answer.trim() != table {
        return Err(Error::invalid(
            "confirmation",
            "the typed name did not match; nothing was changed",
        ));
    }
    Ok(())
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
         \x20 will create:        forensic backup {backup}\n\
         \x20                     temporary table {temp} (on-demand{kms})\n\
         \x20 will then DELETE every item of {table} and copy the restored items back\n\
         \x20 temporary table:    {after}\n",
        exec = r.names.execution_id,
        table = plan.dest.name,
        key = plan.dest.key,
        backup = r.names.backup,
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

async fn restore_cmd(
    config: &Config,
    aws_opts: &AwsOptions,
    format: Format,
    args: RestoreArgs,
) -> Result<()> {
    let table = config.resolve("table", &args.table)?;
    let (incident, time_text, backup, confirm) = match &args.input {
        Some(path) => {
            let seed = SeedInput::read(path)?;
            (
                seed.incident_id,
                Some(seed.pitr_backup_time),
                None,
                seed.table_name_recovery_confirmation,
            )
        }
        None => (
            args.incident_id.clone().unwrap_or_default(),
            args.pitr_time.clone(),
            args.backup_arn.clone(),
            args.confirm.clone().unwrap_or_default(),
        ),
    };
    let incident = validate::incident_id(&incident)?;
    validate::confirmation(&confirm, &table.physical)?;
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
    let names = validate::names(&table.physical, &incident)?;
    require_terminal_or_yes(args.run.yes)?;

    let request = RestoreRequest {
        table: table.physical.clone(),
        incident,
        source,
        names,
        keep_restored_table: args.keep_restored_table,
        sync: sync_options(&table, &args.run),
        backup_deadline: Duration::from_secs(4 * 3600),
        restore_deadline: Duration::from_secs(args.restore_timeout * 60),
    };
    let client = aws::dynamodb_client(aws_opts).await;
    let plan = restore::preflight(&client, request).await?;
    if args.run.yes {
        eprintln!("{}", plan_summary(&plan));
    } else {
        prompt(&plan_summary(&plan), &plan.dest.name)?;
    }
    let report = interruptible(restore::execute(&client, &plan))
        .await
        .map_err(|e| match e {
            Error::Interrupted => Error::PhaseFailed {
                phase: "the run",
                state: format!(
                    "forensic backup {} and temporary table {} may exist, and {} may be partly \
                 synced; check them before running again",
                    plan.request.names.backup, plan.request.names.temp_table, plan.dest.name
                ),
                source: Box::new(Error::Interrupted),
            },
            other => other,
        })?;
    match format {
        Format::Json => println!("{}", output::restore_json(&report)),
        Format::Text => print!("{}", output::restore_text(&report)),
    }
    Ok(())
}

async fn sync_cmd(
    config: &Config,
    aws_opts: &AwsOptions,
    format: Format,
    args: SyncArgs,
) -> Result<()> {
    let dest = config.resolve("dest", &args.dest)?;
    validate::table_name("source", &args.source)?;
    validate::confirmation(&args.confirm, &dest.physical)?;
    if args.source == dest.physical {
        return Err(Error::invalid(
            "source",
            "source and dest are the same table; a sync would empty it",
        ));
    }
    require_terminal_or_yes(args.run.yes)?;
    let opts = sync_options(&dest, &args.run);
    let client = aws::dynamodb_client(aws_opts).await;
    let src = crate::table::describe_existing(&client, &args.source, "source").await?;
    let dst = crate::table::describe_existing(&client, &dest.physical, "dest").await?;
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
    let summary = format!(
        "\nSync plan: DELETE every item of {} (HARD RESET), then copy every item of {} into it ({} segments)\n",
        dst.name, src.name, opts.segments
    );
    if args.run.yes {
        eprintln!("{summary}");
    } else {
        prompt(&summary, &dst.name)?;
    }
    let started = Instant::now();
    let work = async {
        let report = sync::hard_reset(&client, &src, &dst, &opts).await?;
        let counts =
            verify::check_counts(&client, &src.name, &dst.name, opts.segments, &opts.retry).await?;
        Ok::<_, Error>((report, counts))
    };
    let (report, counts) = interruptible(work).await?;
    let total = started.elapsed();
    match format {
        Format::Json => println!(
            "{}",
            output::sync_json(&src.name, &dst.name, &report, &counts, total)
        ),
        Format::Text => print!(
            "{}",
            output::sync_text(&src.name, &dst.name, &report, &counts, total)
        ),
    }
    Ok(())
}

/// Stops the work on Ctrl-C with a clear error instead of a silent kill.
async fn interruptible<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
    }
}
