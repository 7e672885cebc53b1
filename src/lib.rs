//! dynamo-dr: in-place point-in-time recovery of DynamoDB tables.
//!
//! The binary is a thin shell over [`cli::run`]; everything else is usable as a library.

pub mod aws;
pub mod backoff;
pub mod calls;
pub mod check;
pub mod cli;
pub(crate) mod commands;
pub mod config;
pub mod digest;
pub mod error;
pub mod estimate;
pub mod execution;
pub mod iam;
pub mod input;
pub mod item;
pub mod journal;
pub mod lifecycle;
pub mod options;
pub(crate) mod output;
pub mod private;
pub mod progress;
pub(crate) mod prompt;
pub mod rate;
pub mod recovery_mode;
pub mod report;
pub mod restore;
pub mod session;
pub mod sync;
pub mod table;
pub mod table_sync;
pub mod validate;
pub mod verify;

pub use error::{Error, ExitStatus, Result};
