//! `dynamo-dr check`: can each table of an environment be recovered now?

use super::Ctx;
use crate::error::{Error, Result};
use crate::output::{Format, out, outln};
use crate::validate;

pub(crate) async fn check(ctx: &Ctx, environment: &str, pitr_time: Option<&str>) -> Result<()> {
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
    let report = crate::check::run(
        (&client, &crate::aws::lambda_client(&ctx.aws).await),
        journal.as_ref(),
        &ctx.config,
        environment,
        at,
    )
    .await?;
    match ctx.format {
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "ok": report.failures() == 0, "report": report })
        ),
        Format::Text => out!("{}", crate::output::check_text(&report)),
    }
    match report.failures() {
        0 => Ok(()),
        failed => Err(Error::ChecksFailed { failed }),
    }
}
