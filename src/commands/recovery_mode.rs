//! `dynamo-dr recovery-mode start|end|status`.

use clap::{Args, Subcommand};

use super::Ctx;
use crate::error::{Error, Result};
use crate::journal::lease;
use crate::output::{self, Format, out, outln};
use crate::{aws, prompt, recovery_mode};

#[derive(Debug, Subcommand)]
pub(crate) enum RecoveryModeCommand {
    /// Record every function's reserved concurrency, then set it to 0 and disable its event
    /// source mappings.
    Start(RecoveryModeArgs),
    /// Put back every recorded value and re-enable the mappings start disabled (or replace those
    /// chosen to skip the recovery's records).
    End(EndArgs),
    /// Each function's current and saved state, with drift.
    Status {
        #[arg(long, value_name = "ENV")]
        environment: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RecoveryModeArgs {
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
pub(crate) struct EndArgs {
    #[command(flatten)]
    pub common: RecoveryModeArgs,
    /// Replace the mappings on DynamoDB streams of the functions matching PATTERN (`*`
    /// wildcards) by twins that start at LATEST, so those consumers never see the recovery's
    /// writes (nor records written before the pause that they had not read). Repeatable; added to
    /// the environment's `skip_recovery_events`.
    #[arg(long = "skip-recovery-events", value_name = "PATTERN")]
    pub skip_recovery_events: Vec<String>,
    /// End it even while a restore or sync of one of the environment's tables holds its lease
    /// (the application may then write into a table mid-restore). Recorded in the journal.
    #[arg(long)]
    pub force: bool,
}

/// The two commands that change an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Start,
    End,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Start => "start",
            Change::End => "end",
        }
    }
}

pub(crate) async fn recovery_mode(ctx: &Ctx, cmd: RecoveryModeCommand) -> Result<()> {
    let (args, change, skip, force) = match cmd {
        RecoveryModeCommand::Start(a) => (a, Change::Start, Vec::new(), false),
        RecoveryModeCommand::End(a) => (a.common, Change::End, a.skip_recovery_events, a.force),
        RecoveryModeCommand::Status { environment } => return status(ctx, &environment).await,
    };
    let RecoveryModeArgs {
        environment: env_name,
        dry_run,
        yes,
    } = args;
    let env_name = &env_name;
    let kind = change.as_str();
    let env = ctx.config.environment(env_name)?;
    let skip: Vec<String> = env
        .skip_recovery_events
        .iter()
        .cloned()
        .chain(skip)
        .collect();
    if !dry_run {
        prompt::require_terminal_or_yes(yes)?;
    }
    let (_, journal) = ctx.open().await?;
    let lambda = aws::lambda_client(&ctx.aws).await;
    let end = recovery_mode::EndOptions {
        skip: &skip,
        tables: ctx.config.tables_of(env_name),
        force,
    };
    let run = |dry: bool| {
        let (lambda, journal, env, end) = (&lambda, journal.clone(), &env, &end);
        async move {
            let change = recovery_mode::Change {
                client: lambda,
                journal: &journal,
                environment: env_name,
                dry_run: dry,
                timing: lease::Timing::cli(ctx.aws.attempt_timeout()),
            };
            match kind {
                "start" => recovery_mode::start(&change, env).await,
                _ => recovery_mode::end(&change, end).await,
            }
        }
    };
    if !dry_run && !yes {
        let plan = run(true).await?;
        prompt::prompt(
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
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "environment": env_name, "dryRun": dry_run, "actions": actions })
        ),
        Format::Text => out!("{}", output::actions_text(&title, &actions)),
    }
    let failures = recovery_mode::failures(&actions);
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

/// `recovery-mode status`: read-only, so neither asked nor confirmed.
async fn status(ctx: &Ctx, env_name: &str) -> Result<()> {
    let env = ctx.config.environment(env_name)?;
    let (_, journal) = ctx.open().await?;
    let lambda = aws::lambda_client(&ctx.aws).await;
    let (record, functions) =
        recovery_mode::status(&lambda, journal.as_ref(), env_name, &env).await?;
    // Its consumers of DynamoDB streams are paused; their records expire at 24 hours.
    let streamed = record.as_ref().is_some_and(|r| {
        r.mappings
            .values()
            .any(|m| m.event_source_arn.contains(":dynamodb:"))
    });
    if let Some(warning) = record
        .as_ref()
        .and_then(|r| recovery_mode::stale_streams(r, streamed, jiff::Timestamp::now()))
    {
        tracing::warn!("{warning}");
    }
    match ctx.format {
        Format::Json => outln!(
            "{}",
            output::recovery_status_json(env_name, record.as_ref(), &functions)
        ),
        Format::Text => out!(
            "{}",
            output::recovery_status_text(env_name, record.as_ref(), &functions)
        ),
    }
    Ok(())
}
