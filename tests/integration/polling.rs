//! The poll loop follows a real CREATING table until it is ACTIVE.

use std::time::{Duration, Instant};

use dynamo_dr::table::wait_active;
use dynamo_dr_testkit::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_through_creating_until_active() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "1500"]).await;
    let client = dynalite.client();
    let started = Instant::now();
    assert_eq!(
        start_create_table(&client, "Slow-Table")
            .await
            .as_ref()
            .map(|s| s.as_str()),
        Some("CREATING")
    );
    let info = wait_active(&client, "Slow-Table", Duration::from_secs(30), "test")
        .await
        .expect("active");
    assert!(info.is_active());
    assert_eq!(info.key.hash, "id");
    // dynalite flips to ACTIVE only after --createTableMs, so returning earlier would be a bug.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "returned after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_shorter_than_the_creation_reports_the_last_state() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "30000"]).await;
    let client = dynalite.client();
    start_create_table(&client, "Slower-Table").await;
    let err = wait_active(&client, "Slower-Table", Duration::from_millis(400), "test")
        .await
        .unwrap_err();
    match err {
        dynamo_dr::Error::WaitTimeout { last_state, .. } => assert_eq!(last_state, "CREATING"),
        other => panic!("expected a timeout, got {other}"),
    }
}
