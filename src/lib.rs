//! dynamo-dr: in-place point-in-time recovery of DynamoDB tables.
//!
//! The binary is a thin shell over [`cli::run`]; everything else is usable as a library.

pub mod aws;
pub mod backoff;
pub mod calls;
pub mod check;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod error;
pub mod estimate;
pub mod execution;
pub mod iam;
pub mod input;
pub mod item;
pub mod journal;
pub mod output;
pub mod private;
pub mod progress;
pub mod rate;
pub mod recovery_mode;
pub mod report;
pub mod restore;
pub mod sync;
pub mod table;
pub mod validate;
pub mod verify;

pub use error::{Error, ExitStatus, Result};
