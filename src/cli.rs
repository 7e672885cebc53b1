//! The command line: argument parsing, the confirmation prompt, and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use tracing_subscriber::Layer;

use crate::aws::AwsOptions;
use crate::commands::{self, Ctx};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::journal;
use crate::output::{self, Format};

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
                  the check found the tables differ.",
    after_long_help = "An incident, in order (ID: the incident id, T: the time to restore to):\n\
        1. dynamo-dr check --environment Prod --pitr-time T\n\
        2. dynamo-dr recovery-mode start --environment Prod\n\
        3. dynamo-dr restore --table A --confirm A [--table B --confirm B …]\n\
        \x20     --pitr-time T --incident-id ID --dry-run\n\
        4. the same without --dry-run: restores, verifies, writes the incident report\n\
        5. dynamo-dr status ID.A; if a table failed: dynamo-dr resume ID.A\n\
        6. dynamo-dr recovery-mode end --environment Prod\n\
        7. dynamo-dr report ID   (the final report, with the recovery-mode window)\n\
        The README's runbook has the details."
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
    /// Where executions are journaled: a directory [default: $XDG_STATE_HOME/dynamo-dr], or
    /// dynamodb://TABLE to share them with every operator (after `journal init`).
    #[arg(
        long,
        global = true,
        env = "DYNAMO_DR_JOURNAL",
        value_name = "DIR|dynamodb://TABLE"
    )]
    pub journal: Option<String>,
    /// Also write structured (JSON) logs to this file. Item values are never logged.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Cap on reads from the tables, shared by all segments: items/s (2000) or capacity units/s
    /// (800cu) [default: the config's, else none]. Throttling slows the run down either way.
    #[arg(long, global = true, value_name = "RATE")]
    pub max_read_rate: Option<crate::rate::RateCap>,
    /// Cap on writes to the destination, shared by all segments: items/s (2000) or capacity
    /// units/s (800cu) [default: the config's, else none].
    #[arg(long, global = true, value_name = "RATE")]
    pub max_write_rate: Option<crate::rate::RateCap>,
    /// File holding the 256-bit key (64 hex characters) that encrypts sensitive tables'
    /// checkpoint keys in the journal [default: $DYNAMO_DR_JOURNAL_KEY].
    #[arg(long, global = true, value_name = "FILE")]
    pub journal_key_file: Option<PathBuf>,
    /// Instead of a key file: a KMS key (ARN, id or alias/NAME) that makes a fresh journal key for
    /// each execution of a sensitive table, stored wrapped in its record, so any operator allowed
    /// to decrypt with it can resume.
    #[arg(
        long,
        global = true,
        env = "DYNAMO_DR_JOURNAL_KMS_KEY",
        value_name = "KMS_KEY",
        conflicts_with = "journal_key_file"
    )]
    pub journal_kms_key: Option<String>,
    /// Attempts in a row that get nothing through (throttled, unprocessed, failed) before a run
    /// stops with exit 1; `resume` continues it.
    #[arg(long, global = true, value_name = "N", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub retry_budget: u32,
    /// Seconds one attempt of an AWS call may take before it is abandoned and retried.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub attempt_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore a table in place from a point in time or a backup (hard reset).
    Restore(RestoreArgs),
    /// Make DEST hold exactly the items of SOURCE (hard reset of DEST).
    Sync(SyncArgs),
    /// Continue a failed or interrupted execution from its checkpoints.
    Resume(ResumeArgs),
    /// Prove two tables hold the same items (exit 0), or count and name the differences (exit 3).
    Verify(VerifyArgs),
    /// Export the items that differ between two tables as DynamoDB JSON lines (forensics).
    Diff(DiffArgs),
    /// Show one execution: phase, per-segment progress, counts, timings, last error.
    Status {
        /// Execution id, e.g. inc-1.MyTable
        id: String,
    },
    /// List executions, newest first.
    Executions,
    /// Manage the shared DynamoDB journal.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Pause an environment's Lambda functions before a recovery, and put them back after.
    #[command(subcommand)]
    RecoveryMode(RecoveryModeCommand),
    /// Preflight: can each table of an environment be recovered now? Read-only; exit 1 if not.
    Check {
        /// The environment: its configured tables, and those tied to none.
        #[arg(long, value_name = "ENV")]
        environment: String,
        /// Also check that this time is inside every table's restorable window.
        #[arg(long, value_name = "TIME")]
        pitr_time: Option<String>,
    },
    /// Write the incident report (Markdown and JSON) of one execution, or of every execution of
    /// an incident: inputs, operators, phase timings, counts, backup, verification, recovery mode.
    Report {
        /// An execution id (inc-1.MyTable) or an incident id (inc-1).
        id: String,
        /// Where to write the two files.
        #[arg(long, value_name = "DIR", default_value = ".")]
        report_dir: PathBuf,
    },
    /// Print the digest under which outputs name a sensitive table's key, to find an item they
    /// mention. Needs the journal key the run used (--journal-key-file, or the execution's
    /// KMS-wrapped key with --execution).
    KeyDigest {
        /// The item's key in DynamoDB JSON, e.g. '{"ssn":{"S":"123-45-6789"}}'.
        key: String,
        /// The execution whose output named the key (for runs keyed by --journal-kms-key).
        #[arg(long, value_name = "ID")]
        execution: Option<String>,
    },
    /// Print the least-privilege IAM policy for restoring tables and/or running recovery mode.
    IamPolicy(IamPolicyArgs),
    /// Write the man pages (dynamo-dr.1 and one per subcommand) into a directory.
    Man {
        /// e.g. /usr/local/share/man/man1
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print a shell completion script, e.g. `dynamo-dr completions bash > /etc/bash_completion.d/dynamo-dr`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// Also grant what `journal init` needs (CreateTable on the journal table), in a statement
    /// of its own: grant it once, then remove it.
    #[arg(long)]
    pub journal_init: bool,
    /// A table the role may restore in place (physical or logical name); repeat for more.
    #[arg(long, value_name = "TABLE")]
    pub table: Vec<String>,
    /// With --recovery-mode: the environment whose functions the role may pause.
    #[arg(long, value_name = "ENV", requires = "recovery_mode")]
    pub environment: Option<String>,
    /// Grant recovery mode start/end/status for --environment.
    #[arg(long, requires = "environment")]
    pub recovery_mode: bool,
    /// A customer managed KMS key the tables are encrypted with (`check` shows it); repeat for
    /// more. Without it, tables with such a key cannot be backed up, restored or copied.
    #[arg(long, value_name = "KEY_ARN")]
    pub kms_key: Vec<String>,
    /// The account the resources are in [default: any, `*`].
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// The AWS partition.
    #[arg(long, default_value = "aws")]
    pub partition: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The table holding the expected items.
    #[arg(long, value_name = "TABLE")]
    pub source: String,
    /// The table to check.
    #[arg(long, value_name = "TABLE")]
    pub dest: String,
    /// Write every differing key here, one JSON object a line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub keys_out: Option<PathBuf>,
    /// Parallel scan segments for the fingerprints.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub segments: u32,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Table A, e.g. the forensic backup restored to a new table.
    #[arg(long, value_name = "TABLE")]
    pub source: String,
    /// Table B, e.g. the recovered table.
    #[arg(long, value_name = "TABLE")]
    pub dest: String,
    /// Where to write the differing items, one JSON object a line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum JournalCommand {
    /// Create the control table named by --journal dynamodb://TABLE (idempotent).
    Init,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Execution id, e.g. inc-1.MyTable
    pub id: String,
    /// Where a restore's incident report (Markdown and JSON) is written at the end.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub report_dir: PathBuf,
    /// Do not ask; required when there is no terminal to ask on.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Take over the table's lease even if another run seems to hold it.
    #[arg(long)]
    pub break_lock: bool,
    /// Items per Scan page [default: DynamoDB's 1 MB pages].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub scan_page_limit: Option<i32>,
    /// Run even though the table's environment is not in recovery mode (recorded in the journal).
    #[arg(long)]
    pub allow_live_traffic: bool,
}

#[derive(Debug, Subcommand)]
pub enum RecoveryModeCommand {
    /// Record every function's reserved concurrency, then set it to 0 and disable its event
    /// source mappings.
    Start(RecoveryModeArgs),
    /// Put back every recorded value and re-enable the mappings start disabled.
    End(RecoveryModeArgs),
    /// Each function's current and saved state, with drift.
    Status {
        #[arg(long, value_name = "ENV")]
        environment: String,
    },
}

#[derive(Debug, Args)]
pub struct RecoveryModeArgs {
    /// The environment, e.g. Prod (functions named Prod-*, unless configured otherwise).
    #[arg(long, value_name = "ENV")]
    pub environment: String,
    /// List every function with the planned action, or why it is excluded; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask; required when there is no terminal to ask on.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").args(["pitr_time", "backup_arn", "input"]).required(true))]
pub struct RestoreArgs {
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
    #[arg(long, value_name = "MINUTES", default_value_t = 24 * 60, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 60))]
    pub restore_timeout: u64,
    /// Where the incident report (Markdown and JSON) is written at the end.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub report_dir: PathBuf,
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
    /// Names the execution (<ID>.<DEST>) so rerunning the same command resumes it.
    #[arg(long, value_name = "ID")]
    pub incident_id: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Parallel scan segments, each paced on its own key range [default: the config's, else
    /// chosen from the table's size and write capacity; the plan says how].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub segments: Option<u32>,
    /// BatchWriteItem requests in flight [default: 32, or the config's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub write_concurrency: Option<u64>,
    /// Do not ask; required when there is no terminal to ask on.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Take over the table's lease even if another run seems to hold it (recorded in the journal).
    #[arg(long)]
    pub break_lock: bool,
    /// Items per Scan page [default: DynamoDB's 1 MB pages]; smaller pages checkpoint more often.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..))]
    pub scan_page_limit: Option<i32>,
    /// Run even though the table's environment is not in recovery mode (recorded in the journal).
    #[arg(long)]
    pub allow_live_traffic: bool,
    /// Skip the final content verification (the item count check still runs).
    #[arg(long)]
    pub no_verify: bool,
    /// hard-reset: delete every item, then copy every item (the seed's). diff: delete only keys
    /// absent from the source and put only missing or different items; the table is never empty.
    #[arg(long, value_enum, default_value_t = crate::journal::Strategy::HardReset)]
    pub strategy: crate::journal::Strategy,
}

impl RunArgs {
    pub fn flags(&self) -> commands::Flags {
        commands::Flags {
            yes: self.yes,
            break_lock: self.break_lock,
            allow_live_traffic: self.allow_live_traffic,
            page_limit: self.scan_page_limit,
            no_verify: self.no_verify,
            strategy: self.strategy,
        }
    }
}

/// Parses the command line, runs, prints, and returns the documented exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_tracing(cli.global.verbose, cli.global.log_file.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(e.exit_status() as u8);
    }
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
            // check and a multi-table restore have printed their reports, which say what failed.
            if format == Format::Json
                && !matches!(e, Error::ChecksFailed { .. } | Error::Tables { .. })
            {
                crate::outln!("{}", output::error_json(&e));
            }
            ExitCode::from(e.exit_status() as u8)
        }
    }
}

/// Whether stderr may carry colour: only a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whatever `RUST_LOG` or `-vv` ask for, another crate's TRACE events are dropped: the SDK
/// logs whole requests and responses at TRACE (aws-smithy-runtime's "read HTTP response body",
/// "transmitting request", `output_or_error`), and those hold item values. Only dynamo-dr's own
/// events, which never carry values, pass at every level.
fn no_wire_traces(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() < tracing::Level::TRACE || meta.target().starts_with("dynamo_dr")
}

fn init_tracing(verbose: u8, log_file: Option<&std::path::Path>) -> Result<()> {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match verbose {
        0 => "dynamo_dr=info",
        1 => "dynamo_dr=debug",
        _ => "dynamo_dr=trace,aws_smithy_runtime=debug",
    };
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
    };
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour())
        .with_target(false)
        .with_filter(filter());
    let file = match log_file {
        Some(path) => {
            let f = crate::private::append(path).map_err(|e| {
                Error::invalid("--log-file", format!("cannot open {}: {e}", path.display()))
            })?;
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f))
                    .with_filter(filter()),
            )
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .with(filter_fn(no_wire_traces))
        .try_init();
    Ok(())
}

pub async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(cli.global.config.as_deref())?;
    let journal_key =
        crate::journal::seal::JournalKey::load(cli.global.journal_key_file.as_deref())?;
    if journal_key.is_some() && cli.global.journal_kms_key.is_some() {
        return Err(Error::invalid(
            "--journal-kms-key",
            format!(
                "a journal key is also given ({}), so which one seals the checkpoints would be \
                 ambiguous; unset one",
                crate::journal::seal::KEY_ENV
            ),
        ));
    }
    let ctx = Ctx {
        aws: AwsOptions {
            region: cli.global.region.clone().or(config.aws.region.clone()),
            profile: cli.global.profile.clone().or(config.aws.profile.clone()),
            endpoint_url: cli
                .global
                .endpoint_url
                .clone()
                .or(config.aws.endpoint_url.clone()),
            attempt_timeout: Some(std::time::Duration::from_secs(cli.global.attempt_timeout)),
            max_attempts: Some(cli.global.retry_budget),
        },
        retry: crate::backoff::RetryPolicy {
            max_attempts: cli.global.retry_budget,
            ..Default::default()
        },
        max_read_rate: cli.global.max_read_rate,
        max_write_rate: cli.global.max_write_rate,
        journal_key,
        journal_kms_key: cli.global.journal_kms_key.clone(),
        journal: journal::Location::parse(cli.global.journal.as_deref())?,
        format: cli.global.output,
        config,
    };
    match cli.command {
        Command::Restore(args) => commands::restore(&ctx, args).await,
        Command::Sync(args) => commands::sync(&ctx, args).await,
        Command::Resume(args) => commands::resume(&ctx, args).await,
        Command::Verify(args) => commands::verify(&ctx, args).await,
        Command::Diff(args) => commands::diff(&ctx, args).await,
        Command::Status { id } => commands::status(&ctx, &id).await,
        Command::Executions => commands::executions(&ctx).await,
        Command::Journal(JournalCommand::Init) => commands::journal_init(&ctx).await,
        Command::RecoveryMode(cmd) => commands::recovery_mode(&ctx, cmd).await,
        Command::IamPolicy(args) => commands::iam_policy(&ctx, args).await,
        Command::KeyDigest { key, execution } => {
            commands::key_digest(&ctx, &key, execution.as_deref()).await
        }
        Command::Report { id, report_dir } => commands::report(&ctx, &id, &report_dir).await,
        Command::Check {
            environment,
            pitr_time,
        } => commands::check(&ctx, &environment, pitr_time.as_deref()).await,
        Command::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
                .map_err(|source| Error::Write {
                    path: dir.display().to_string(),
                    source,
                })?;
            crate::outln!("man pages written to {}", dir.display());
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dynamo-dr", &mut script);
            crate::out!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
    }
}
