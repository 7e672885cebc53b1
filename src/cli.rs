//! The command line: argument parsing, the confirmation prompt, and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use tracing_subscriber::Layer;

use crate::aws::AwsOptions;
use crate::commands::compare::{DiffArgs, VerifyArgs};
use crate::commands::iam_policy::IamPolicyArgs;
use crate::commands::journal::JournalCommand;
use crate::commands::recovery_mode::RecoveryModeCommand;
use crate::commands::restore::RestoreArgs;
use crate::commands::resume::ResumeArgs;
use crate::commands::stack::StackArgs;
use crate::commands::sync::SyncArgs;
use crate::commands::{self, Ctx};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::journal;
use crate::output::{self, Format, out, outln};
use crate::session::Session;

#[derive(Debug, Parser)]
#[command(
    name = "dynamo-dr",
    version,
    about = "Put a DynamoDB table back to a point in time, in place.",
    long_about = "Put a DynamoDB table back to a point in time, in place: same table name, ARN, \
                  streams, alarms and infrastructure-as-code.\n\nWARNING: restore and sync write \
                  into the live table. A table whose writes reach stream consumers, Kinesis \
                  destinations or replicas is diffed by default: only the items that differ are \
                  deleted or put. Any other table is HARD-RESET by default: every current item is \
                  deleted before the restored items are copied back (--strategy chooses). A \
                  targeted restore (--scope missing|keys|partition) never resets: it writes only \
                  its items, each write conditional. A restore takes a forensic backup first.\n\nExit \
                  codes: 0 success; 1 failure (safe to investigate and run again); 2 input \
                  refused, nothing changed; 3 the check found the tables differ.",
    after_long_help = "An incident, in order (ID: the incident id, T: the time to restore to):\n\
        1. dynamo-dr check --environment Prod --pitr-time T\n\
        2. dynamo-dr recovery-mode start --environment Prod\n\
        3. dynamo-dr restore --table A --confirm A [--table B --confirm B …]\n\
        \x20     --pitr-time T --incident-id ID --dry-run\n\
        4. the same without --dry-run: restores, verifies, writes the incident report\n\
        5. dynamo-dr status ID.A; if a table failed: dynamo-dr resume ID.A\n\
        6. dynamo-dr recovery-mode end --environment Prod\n\
        7. dynamo-dr report ID (the final report, with the recovery-mode window)\n\
        The README's runbook has the details."
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub(crate) struct GlobalArgs {
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
    #[arg(long, global = true, value_name = "N", default_value_t = crate::aws::DEFAULT_RETRY_BUDGET, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub retry_budget: u32,
    /// Seconds one attempt of an AWS call may take before it is abandoned and retried.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = crate::aws::DEFAULT_ATTEMPT_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub attempt_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Restore a table in place from a point in time or a backup (hard reset, diff or a targeted
    /// scope; the plan says which).
    Restore(Box<RestoreArgs>),
    /// Make DEST hold exactly the items of SOURCE (hard reset or diff of DEST; the plan says
    /// which).
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
        /// Redraw every few seconds (phase, rate, time left, segments) until the execution
        /// ends, wherever it runs; exit 0 when it succeeded, 1 when it failed.
        #[arg(long)]
        watch: bool,
        /// Seconds between redraws with --watch.
        #[arg(long, value_name = "SECONDS", default_value_t = 5, requires = "watch", value_parser = clap::value_parser!(u64).range(1..=300))]
        interval: u64,
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
    /// Write the incident report (HTML, Markdown and JSON) of one execution, or of every execution of
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
    /// Print the CloudFormation template of the seed's form: a pair of state machines, a
    /// function and a role per configured table, the journal table and a recovery-mode state
    /// machine per environment (see "In AWS" in the README).
    Stack(StackArgs),
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
                outln!("{}", output::error_json(&e));
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
        .with_writer(|| crate::progress::LogWriter)
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

/// The session from the flags and the config, resolved once.
fn session(cli: &Cli) -> Result<Session> {
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
    Ok(Session {
        aws: AwsOptions {
            sdk: Default::default(),
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
        config,
    })
}

async fn run(cli: Cli) -> Result<()> {
    let ctx = Ctx {
        session: session(&cli)?,
        format: cli.global.output,
    };
    match cli.command {
        Command::Restore(args) => commands::restore::restore(&ctx, *args).await,
        Command::Sync(args) => commands::sync::sync(&ctx, args).await,
        Command::Resume(args) => commands::resume::resume(&ctx, args).await,
        Command::Verify(args) => commands::compare::verify(&ctx, args).await,
        Command::Diff(args) => commands::compare::diff(&ctx, args).await,
        Command::Status {
            id,
            watch,
            interval,
        } => {
            let every = watch.then(|| std::time::Duration::from_secs(interval));
            commands::journal::status(&ctx, &id, every).await
        }
        Command::Executions => commands::journal::executions(&ctx).await,
        Command::Journal(JournalCommand::Init) => commands::journal::journal_init(&ctx).await,
        Command::RecoveryMode(cmd) => commands::recovery_mode::recovery_mode(&ctx, cmd).await,
        Command::IamPolicy(args) => commands::iam_policy::iam_policy(&ctx, args).await,
        Command::Stack(args) => commands::stack::stack(&ctx, args).await,
        Command::KeyDigest { key, execution } => {
            commands::journal::key_digest(&ctx, &key, execution.as_deref()).await
        }
        Command::Report { id, report_dir } => {
            commands::journal::report(&ctx, &id, &report_dir).await
        }
        Command::Check {
            environment,
            pitr_time,
        } => commands::check::check(&ctx, &environment, pitr_time.as_deref()).await,
        Command::Man { dir } => {
            use clap::CommandFactory;
            std::fs::create_dir_all(&dir)
                .and_then(|()| clap_mangen::generate_to(Cli::command(), &dir))
                .map_err(|source| Error::Write {
                    path: dir.display().to_string(),
                    source,
                })?;
            outln!("man pages written to {}", dir.display());
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "dynamo-dr", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_help_says_which_runs_reset_the_table() {
        let help = super::Cli::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(!help.contains("restore and sync HARD-RESET"), "{help}");
        assert!(help.contains("replicas is diffed by default"), "{help}");
        assert!(
            help.contains("Any other table is HARD-RESET by default"),
            "{help}"
        );
        assert!(
            help.contains("(--scope missing|keys|partition) never resets"),
            "{help}"
        );
    }
}
