//! The interface: one file per subcommand, each owning its arguments. A subcommand turns its
//! arguments into the library's values, has the operator confirm, calls the library and prints.

pub(crate) mod check;
pub(crate) mod compare;
pub(crate) mod iam_policy;
pub(crate) mod journal;
pub(crate) mod recovery_mode;
pub(crate) mod restore;
pub(crate) mod resume;
pub(crate) mod stack;
pub(crate) mod sync;

use std::io::Write;

use clap::Args;

use crate::error::{Error, Result};
use crate::journal::Strategy;
use crate::options::{Requested, RunOptions};
use crate::output::Format;
use crate::session::Session;

/// What every command needs: the library's session, and how to print.
pub(crate) struct Ctx {
    pub session: Session,
    pub format: Format,
}

/// The interface adds only the output format to the session.
impl std::ops::Deref for Ctx {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

/// How to put the table back: the command line's names for [`Strategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StrategyArg {
    HardReset,
    Diff,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Strategy {
        match s {
            StrategyArg::HardReset => Strategy::HardReset,
            StrategyArg::Diff => Strategy::Diff,
        }
    }
}

/// How a run, new or resumed, may start.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
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
}

impl StartArgs {
    /// The options a run that resumes from its record may change.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            yes: self.yes,
            break_lock: self.break_lock,
            allow_live_traffic: self.allow_live_traffic,
            ..RunOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Parallel scan segments, each paced on its own key range [default: the config's, else
    /// chosen from the table's size and write capacity; the plan says how].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub segments: Option<u32>,
    /// BatchWriteItem requests in flight [default: 32, or the config's].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub write_concurrency: Option<u64>,
    #[command(flatten)]
    pub start: StartArgs,
    /// Skip the final content verification (the item count check still runs).
    #[arg(long)]
    pub no_verify: bool,
    /// hard-reset: delete every item, then copy every item (the seed's). diff: delete only keys
    /// absent from the source and put only missing or different items; the table is never empty
    /// [default: diff when the table's writes reach stream consumers, Kinesis destinations or
    /// replicas, else hard-reset; the plan says which].
    #[arg(long, value_enum)]
    pub strategy: Option<StrategyArg>,
    /// Allow a hard reset of a global table, although every replica is then empty until the
    /// copy is done.
    #[arg(long)]
    pub allow_empty_replicas: bool,
}

impl RunArgs {
    pub fn options(&self) -> RunOptions {
        RunOptions {
            no_verify: self.no_verify,
            strategy: self.strategy.map(Into::into),
            allow_empty_replicas: self.allow_empty_replicas,
            ..self.start.options()
        }
    }

    pub fn requested(&self) -> Requested {
        Requested {
            segments: self.segments,
            write_concurrency: self.write_concurrency.map(|n| n as usize),
            page_limit: self.start.scan_page_limit,
        }
    }
}

/// A file of JSON lines the operator asked for.
fn jsonl_writer(path: &std::path::Path, field: &str) -> Result<std::io::BufWriter<std::fs::File>> {
    crate::private::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|e| Error::invalid(field, format!("cannot create {}: {e}", path.display())))
}

fn write_line(
    out: &mut impl Write,
    path: &std::path::Path,
    value: &serde_json::Value,
) -> Result<()> {
    writeln!(out, "{value}").map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}

fn flush(out: &mut impl Write, path: &std::path::Path) -> Result<()> {
    out.flush().map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })
}
