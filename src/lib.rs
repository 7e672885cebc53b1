//! dynamo-dr: in-place point-in-time recovery of DynamoDB tables.
//!
//! The library is layered (docs/ARCHITECTURE.md; `tests/integration/layers.rs` enforces it), each
//! layer importing only its own or lower ones. A program embedding dynamo-dr builds a
//! [`session::Session`] and runs jobs with it: [`restore::job`] (in-place restores, several tables
//! to one instant), [`table_sync`], [`recovery_mode`], [`check`], [`report`] and [`iam`]; or uses
//! the data plane ([`sync`], [`verify`]) and the journal ([`journal`]) directly. The binary is a
//! thin shell over [`cli::main`]; the command line's own modules are private.

// 0 values
pub mod backoff;
pub mod config;
pub mod digest;
pub mod emf;
pub mod error;
pub mod estimate;
pub mod input;
pub mod item;
pub mod pages;
pub mod private;
pub mod progress;
pub mod rate;
pub mod validate;
// 1 AWS
pub mod aws;
pub mod calls;
pub mod export;
pub mod mappings;
pub mod objects;
pub mod table;
pub mod warm;
pub mod watchers;
// 2 storage
pub mod journal;
// 3 data plane
pub mod sync;
pub mod targeted;
pub mod verify;
// 4 orchestration
pub mod check;
pub mod execution;
pub mod iam;
pub mod lifecycle;
pub mod machine;
pub mod options;
pub mod recovery_mode;
pub mod report;
pub mod restore;
pub mod session;
pub mod stack;
pub mod table_sync;
pub mod worker;
// 5 interface
pub(crate) mod commands;
pub(crate) mod output;
pub(crate) mod prompt;
// 6 binary
pub mod cli;
pub mod lambda;

pub use error::{Error, ExitStatus, Result};
