//! Emulator harness and table fixtures for dynamo-dr's tests, demo and benchmarks.
//!
//! Each [`Emulator`] is a private moto or dynalite process on its own free loopback port, stopped
//! by process id when dropped, so tests run in parallel without sharing state.

pub mod capacity;
pub mod emulator;
pub mod faults;
pub mod fixtures;
pub mod history;
pub mod iam;
mod iam_lambda;
pub mod lambda_router;
pub mod recorder;
pub mod runtime_api;
mod serve;
pub mod synthetic;

pub use capacity::Capacity;
pub use emulator::{Emulator, Kind, cache_dir};
pub use faults::{FaultProxy, Faults};
pub use fixtures::*;
pub use recorder::{Recorded, RecordingProxy};
