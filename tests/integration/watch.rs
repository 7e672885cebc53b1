//! `status ID --watch` follows an execution another process runs, redrawing until it ends.

use std::time::Duration;

use dynamo_dr_testkit::*;

use crate::support::{dr, record, spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_follows_a_run_in_another_process_until_it_ends() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::seed_like("Watched-Source");
    let dst = TableSpec::seed_like("Watched-Dest");
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..1500).map(|i| mixed_item(&src, i))).await;
    put_all(
        &client,
        &dst.name,
        (0..1500).map(|i| mixed_item(&dst, i + 7)),
    )
    .await;
    // Capped, so that it lasts several seconds: 3,000 writes at 300 a second.
    let mut run = spawn(
        &dynalite,
        &[
            "--max-write-rate",
            "300",
            "sync",
            "--source",
            &src.name,
            "--dest",
            &dst.name,
            "--confirm",
            &dst.name,
            "--incident-id",
            "watched",
            "--yes",
        ],
    );
    let id = format!("watched.{}", dst.name);
    wait_for("the run's record", Duration::from_secs(30), || async {
        record(&dynalite, &id).is_some()
    })
    .await;
    let watch = dr(
        &dynalite,
        &["status", &id, "--watch", "--interval", "1"],
        None,
    );
    assert!(run.wait().expect("the sync").success());
    watch.assert_code(0);
    let looks = watch.stdout.matches(&format!("execution {id}")).count();
    assert!(looks >= 2, "one look only:\n{}", watch.stdout);
    assert!(
        watch.stdout.contains(" items/s"),
        "no rate:\n{}",
        watch.stdout
    );
    let last = watch.stdout.rsplit("execution ").next().unwrap_or_default();
    assert!(last.contains("succeeded"), "{last}");
    assert!(!watch.stdout.contains("\x1b["), "redraw codes in a pipe");
    // An execution that is no more running is shown once, and its outcome is the exit code.
    let again = dr(&dynalite, &["status", &id, "--watch"], None);
    again.assert_code(0);
    assert_eq!(again.stdout.matches(&format!("execution {id}")).count(), 1);
}
