//! Integration tests: the CLI and library against private emulator processes, and exact response
//! sequences through aws-smithy-mocks for the paths emulators never take.

mod support;

mod batch_retry;
mod check;
mod downstream;
mod faults;
mod fidelity;
mod guards;
mod iam_policy;
mod journal_suite;
mod layers;
mod multi_table;
mod partitions;
mod polling;
mod prewarm;
mod provenance;
mod recovery_mode;
mod refusals;
mod report_html;
mod restore_moto;
mod restore_requests;
mod resume;
mod sensitive;
mod skip_events;
mod stack;
mod sync_dynalite;
mod targeted;
mod verify;
mod watch;
mod window;
