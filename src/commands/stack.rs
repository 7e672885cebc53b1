//! `dynamo-dr stack`: the CloudFormation template of the seed's per-table state machines.

use clap::Args;

use super::Ctx;
use crate::error::Result;
use crate::output::outln;
use crate::stack::{self, StackRequest};

#[derive(Debug, Args)]
pub(crate) struct StackArgs {
    /// The journal's control table the functions share.
    #[arg(long, value_name = "NAME", default_value = "dynamo-dr-journal")]
    pub journal_table: String,
    /// Segment workers one table's Map runs at once; above 40 the Map runs in distributed mode.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrency: u32,
}

pub(crate) async fn stack(ctx: &Ctx, args: StackArgs) -> Result<()> {
    crate::validate::table_name("--journal-table", &args.journal_table)?;
    let template = stack::template(
        &ctx.config,
        &StackRequest {
            journal_table: args.journal_table,
            max_concurrency: args.max_concurrency,
            journal_kms_key: ctx.journal_kms_key.clone(),
        },
    )?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&template).unwrap_or_default()
    );
    Ok(())
}
