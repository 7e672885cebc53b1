//! `dynamo-dr verify` and `dynamo-dr diff`: compare two tables, read-only.

use std::path::PathBuf;

use clap::Args;

use super::{Ctx, flush, jsonl_writer, write_line};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::{Format, outln};
use crate::{aws, validate};

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The table holding the expected items.
    #[arg(long, value_name = "TABLE")]
    pub source: String,
    /// The table to check.
    #[arg(long, value_name = "TABLE")]
    pub dest: String,
    /// Write every differing key here, one JSON object a line.
    #[arg(long, value_name = "FILE.jsonl")]
    pub keys_out: Option<PathBuf>,
    /// Parallel scan segments for the fingerprints [default: as a restore of the larger table
    /// would use, from its size and capacity]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub segments: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
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
    src.require_same_key(&dst)?;
    Ok((src, dst))
}

pub(crate) async fn verify(ctx: &Ctx, args: VerifyArgs) -> Result<()> {
    let client = aws::dynamodb_client(&ctx.aws).await;
    let (src, dst) = table_pair(&ctx.config, &client, &args.source, &args.dest).await?;
    let mut keys_out = args
        .keys_out
        .as_deref()
        .map(|p| jsonl_writer(p, "--keys-out"))
        .transpose()?;
    let (src, dst) = ctx.mark_sensitive(src, dst);
    let pace = ctx.pacing(None);
    let digest = ctx.key_digest();
    // Enough segments to read every partition at once: a scan reads one key range at a time.
    let segments = args
        .segments
        .unwrap_or_else(|| src.segments(0, &dst).0.max(dst.segments(0, &src).0));
    let result = crate::verify::verify_tables(&client, &src, &dst, segments, &pace, &digest, |d| match (&mut keys_out, &args.keys_out) {
        (Some(w), Some(p)) => write_line(w, p, &serde_json::json!({ "kind": d.kind.as_str(), "key": serde_json::from_str::<serde_json::Value>(d.key).unwrap_or_default() })),
        _ => Ok(()),
    })
    .await;
    if let (Some(w), Some(p)) = (&mut keys_out, &args.keys_out) {
        flush(w, p)?;
    }
    let (s, _) = result?;
    match ctx.format {
        Format::Json => outln!(
            "{}",
            serde_json::json!({ "status": "equal", "source": src.name, "dest": dst.name, "items": s.count, "fingerprint": s.hex() })
        ),
        Format::Text => outln!(
            "Equal: {} and {} hold the same {} items (fingerprint {})",
            src.name,
            dst.name,
            s.count,
            s.hex()
        ),
    }
    Ok(())
}

pub(crate) async fn diff(ctx: &Ctx, args: DiffArgs) -> Result<()> {
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
    let pace = ctx.pacing(None);
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
    flush(&mut out, &args.out)?;
    let summary = serde_json::json!({
        "source": src.name, "dest": dst.name, "out": args.out.display().to_string(),
        "onlyInSource": found.missing, "onlyInDest": found.extra, "changed": found.changed,
    });
    match ctx.format {
        Format::Json => outln!("{summary}"),
        Format::Text => outln!(
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
