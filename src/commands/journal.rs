//! The journal's commands: `status`, `executions`, `report`, `journal init` and `key-digest`.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Subcommand;

use super::Ctx;
use crate::error::{Error, Result};
use crate::journal;
use crate::journal::seal::JournalKey;
use crate::output::watch::{self, Look};
use crate::output::{self, Format, out, outln};
use crate::{aws, lifecycle};

#[derive(Debug, Subcommand)]
pub(crate) enum JournalCommand {
    /// Create the control table named by --journal dynamodb://TABLE (idempotent).
    Init,
}

/// `dynamo-dr report ID`: the incident report of an execution or a whole incident.
pub(crate) async fn report(ctx: &Ctx, id: &str, dir: &std::path::Path) -> Result<()> {
    let (_, journal) = ctx.open().await?;
    let written = lifecycle::write_report(ctx, journal.as_ref(), id, dir, None).await?;
    match ctx.format {
        Format::Json => outln!("{}", written.json()),
        Format::Text => outln!("incident report: {}", written.text()),
    }
    Ok(())
}

pub(crate) async fn status(ctx: &Ctx, id: &str, watch: Option<Duration>) -> Result<()> {
    let (_, journal) = ctx.open().await?;
    if let Some(every) = watch {
        return watch_status(ctx, journal.as_ref(), id, every).await;
    }
    let exec = load_merged(journal.as_ref(), id).await?;
    match ctx.format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&exec).map_err(|e| Error::Journal(e.to_string()))?
        ),
        Format::Text => out!("{}", output::status_text(&exec)),
    }
    Ok(())
}

/// The execution with the segment workers' checkpoints, which workers in AWS keep apart.
async fn load_merged(journal: &dyn journal::Journal, id: &str) -> Result<journal::Execution> {
    let exec = journal.load(id).await?.ok_or_else(|| {
        Error::invalid(
            "execution id",
            format!(
                "no execution {id} in the journal {}; list them with `dynamo-dr executions`",
                journal.describe()
            ),
        )
    })?;
    journal::merged(journal, exec).await
}

/// `status ID --watch`: redraws every `every` until the execution ends, whoever runs it (a CLI
/// elsewhere, or the state machines' workers); exits 0 only when it succeeded.
async fn watch_status(
    ctx: &Ctx,
    journal: &dyn journal::Journal,
    id: &str,
    every: Duration,
) -> Result<()> {
    let client = aws::dynamodb_client(&ctx.aws).await;
    let redraw = std::io::stdout().is_terminal() && ctx.format == Format::Text;
    let (mut last, mut counted): (Option<Look>, Option<(String, Option<u64>)>) = (None, None);
    loop {
        let exec = load_merged(journal, id).await?;
        let look = Look::of(&exec, jiff::Timestamp::now());
        let table = watch::counted_table(&exec);
        if table.is_some() && counted.as_ref().map(|c| &c.0) != table.as_ref() {
            let name = table.unwrap_or_default();
            // The count is only for the time left: a table gone or unreadable shows none.
            let items = crate::table::describe(&client, &name).await.ok().flatten();
            counted = Some((
                name,
                items.and_then(|t| t.approx_items).map(|n| n.max(0) as u64),
            ));
        }
        let total = counted.as_ref().and_then(|c| c.1);
        match ctx.format {
            Format::Json => outln!(
                "{}",
                serde_json::to_string(&exec).map_err(|e| Error::Journal(e.to_string()))?
            ),
            Format::Text => {
                if redraw {
                    out!("\x1b[2J\x1b[H");
                }
                outln!("{}", watch::rate_line(last, look, total));
                out!("{}", output::status_text(&exec));
            }
        }
        match exec.status {
            journal::Status::Running => {}
            journal::Status::Succeeded => return Ok(()),
            journal::Status::Failed => {
                return Err(Error::Incomplete(format!(
                    "execution {id} failed in phase {}; `dynamo-dr resume {id}` continues it \
                     from its checkpoints",
                    exec.phase.as_str()
                )));
            }
        }
        last = Some(look);
        tokio::time::sleep(every).await;
    }
}

pub(crate) async fn executions(ctx: &Ctx) -> Result<()> {
    let (_, journal) = ctx.open().await?;
    let mut all = journal.list().await?;
    all.sort_by_key(|e| std::cmp::Reverse(e.created_at));
    match ctx.format {
        Format::Json => outln!("{}", output::executions_json(&all)),
        Format::Text => out!("{}", output::executions_text(&all)),
    }
    Ok(())
}

pub(crate) async fn journal_init(ctx: &Ctx) -> Result<()> {
    let journal::Location::DynamoDb(table) = &ctx.journal else {
        return Err(Error::invalid(
            "--journal",
            "journal init creates a DynamoDB journal: pass --journal dynamodb://TABLE (a directory journal needs no set-up)",
        ));
    };
    let client = aws::dynamodb_client(&ctx.aws).await;
    let created = journal::dynamo::init(&client, table).await?;
    outln!(
        "journal table {table} {}",
        if created { "created" } else { "already exists" }
    );
    Ok(())
}

pub(crate) async fn key_digest(ctx: &Ctx, key: &str, execution: Option<&str>) -> Result<()> {
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
    outln!("{}", digest.name(&value.to_string()));
    Ok(())
}
