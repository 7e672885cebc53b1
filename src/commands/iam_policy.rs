//! `dynamo-dr iam-policy`: the least-privilege policy for a recovery.

use clap::Args;

use super::Ctx;
use crate::error::{Error, Result};
use crate::output::outln;
use crate::{aws, journal};

#[derive(Debug, Args)]
pub(crate) struct IamPolicyArgs {
    /// Also grant what `journal init` needs (CreateTable on the journal table), in a statement
    /// of its own: grant it once, then remove it.
    #[arg(long)]
    pub journal_init: bool,
    /// Also grant UpdateTable on the tables, for `restore --prewarm`, in a statement of its own:
    /// UpdateTable can change far more of a table than its warm throughput.
    #[arg(long)]
    pub prewarm: bool,
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

pub(crate) async fn iam_policy(ctx: &Ctx, args: IamPolicyArgs) -> Result<()> {
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
    let (tables, kms_keys) = tables_and_keys(ctx, &args)?;
    let recovery_mode = match (&args.environment, args.recovery_mode) {
        (Some(env), true) => Some(crate::iam::RecoveryMode {
            name: env.clone(),
            env: ctx.config.environment(env)?,
            tables: ctx.config.tables_of(env),
        }),
        _ => None,
    };
    let scope = scope_of(ctx, &args).await?;
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
    let mut environments: Vec<String> = tables
        .iter()
        .filter_map(|t| ctx.config.environment_of(t))
        .collect();
    environments.sort();
    environments.dedup();
    let (keys_locations, export_locations) = s3_locations(ctx, &args.table);
    let request = crate::iam::Request {
        keys_locations,
        export_locations,
        tables,
        environments,
        function: false,
        journal_table,
        recovery_mode,
        kms_keys,
        journal_init: args.journal_init,
        prewarm: args.prewarm,
        journal_kms_key: journal_kms_key(ctx)?,
    };
    let policy = crate::iam::policy(&scope, &request);
    let text = serde_json::to_string_pretty(&policy).map_err(|e| Error::BadState {
        what: "IAM policy".into(),
        state: e.to_string(),
        hint: "this is a bug in dynamo-dr".into(),
    })?;
    outln!("{text}");
    if args.account.is_none() {
        eprintln!("note: pass --account to pin the policy to one account (now `*`)");
    }
    Ok(())
}

/// The tables' physical names, each checked to share the role, and their KMS keys: those given
/// and those of the config (a restore encrypts its copy with the table's key, through
/// DynamoDB, as the caller).
fn tables_and_keys(ctx: &Ctx, args: &IamPolicyArgs) -> Result<(Vec<String>, Vec<String>)> {
    let resolved = args
        .table
        .iter()
        .map(|t| ctx.config.resolve("table", t))
        .collect::<Result<Vec<_>>>()?;
    let tables: Vec<String> = resolved.iter().map(|r| r.physical.clone()).collect();
    let mut kms_keys = args.kms_key.clone();
    kms_keys.extend(resolved.iter().filter_map(|r| {
        let logical = r.logical.as_ref()?;
        ctx.config.tables.get(logical)?.kms_key.clone()
    }));
    kms_keys.sort();
    kms_keys.dedup();
    crate::iam::shareable(&tables).map_err(|why| Error::invalid("--table", why))?;
    for key in &kms_keys {
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
    if !kms_keys.is_empty() && tables.is_empty() {
        return Err(Error::invalid(
            "--kms-key",
            "a KMS key is for the tables' data: give the tables too, with --table",
        ));
    }
    Ok((tables, kms_keys))
}

/// The partition, region and account every ARN of the policy names.
async fn scope_of(ctx: &Ctx, args: &IamPolicyArgs) -> Result<crate::iam::Scope> {
    let region = aws::region(&ctx.aws).await.ok_or_else(|| {
        Error::invalid(
            "--region",
            "no region: the policy names this region's tables and keys; pass --region (e.g. \
             us-east-1) or set AWS_REGION",
        )
    })?;
    crate::iam::region(&region).map_err(|why| Error::invalid("--region", why))?;
    Ok(crate::iam::Scope {
        partition: args.partition.clone(),
        region,
        account: args.account.clone().unwrap_or_else(|| "*".into()),
    })
}

/// The key that wraps sensitive tables' journal keys, as an ARN.
fn journal_kms_key(ctx: &Ctx) -> Result<Option<String>> {
    Ok(match &ctx.journal_kms_key {
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
    })
}

/// The tables' keys locations and export locations (`s3://BUCKET/PREFIX`), each once.
fn s3_locations(ctx: &Ctx, tables: &[String]) -> (Vec<String>, Vec<String>) {
    let options: Vec<_> = tables
        .iter()
        .filter_map(|t| Some(ctx.config.resolve("table", t).ok()?.options))
        .collect();
    let mut keys: Vec<String> = options
        .iter()
        .filter_map(|o| o.keys_location.clone())
        .collect();
    let mut exports: Vec<String> = options.iter().filter_map(|o| o.export_location()).collect();
    for list in [&mut keys, &mut exports] {
        list.sort();
        list.dedup();
    }
    (keys, exports)
}
