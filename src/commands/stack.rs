//! `dynamo-dr stack`: the CloudFormation template of the seed's per-table state machines.

use clap::Args;

use super::Ctx;
use crate::error::{Error, Result};
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
    /// A table's customer managed KMS key, as TABLE=KEY_ARN (logical or physical name; repeat
    /// for more): its function may then use the key through DynamoDB. The table's `kms_key` in
    /// the config says the same.
    #[arg(long, value_name = "TABLE=KEY_ARN")]
    pub kms_key: Vec<String>,
}

pub(crate) async fn stack(ctx: &Ctx, args: StackArgs) -> Result<()> {
    crate::validate::table_name("--journal-table", &args.journal_table)?;
    let mut kms_keys = std::collections::BTreeMap::new();
    for pair in &args.kms_key {
        let Some((table, key)) = pair.split_once('=') else {
            return Err(Error::invalid(
                "--kms-key",
                format!(
                    "{pair:?} is not TABLE=KEY_ARN, e.g. Orders=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                ),
            ));
        };
        let logical = ctx.config.resolve("table", table)?.logical.ok_or_else(|| {
            Error::invalid(
                "--kms-key",
                format!(
                    "{table} is not a table of the config; the stack holds only configured tables"
                ),
            )
        })?;
        kms_keys.insert(logical, key.to_string());
    }
    let template = stack::template(
        &ctx.config,
        &StackRequest {
            journal_table: args.journal_table,
            max_concurrency: args.max_concurrency,
            journal_kms_key: ctx.journal_kms_key.clone(),
            kms_keys,
        },
    )?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&template).unwrap_or_default()
    );
    Ok(())
}
