//! One suite, both journals: the local directory and the DynamoDB control table.

use std::sync::Arc;

use dynamo_dr::journal::dynamo::{DynamoJournal, init};
use dynamo_dr::journal::lease;
use dynamo_dr::journal::local::LocalJournal;
use dynamo_dr::journal::{
    Execution, Inputs, Journal, Kind, Lease, Operator, Phase, SegmentCheckpoint, SegmentRecord,
};
use dynamo_dr_testkit::*;
use jiff::{SignedDuration, Timestamp};

fn execution(id: &str) -> Execution {
    let mut e = Execution::new(
        id.into(),
        Kind::Restore,
        Inputs {
            table: "Orders".into(),
            incident_id: Some("inc-1".into()),
            source: dynamo_dr::journal::Source::Pitr(dynamo_dr::validate::PitrTime::Latest),
            segments: 2,
            keep_restored_table: false,
            verify: true,
            strategy: Default::default(),
            sensitive: false,
            forensic_backup: true,
            scope: Default::default(),
            prewarm: None,
        },
        Phase::BackupAndRestore,
    );
    e.copy.segments = vec![SegmentCheckpoint::default(); 2];
    e
}

/// A CLI lease whose writes land within two seconds of a token check: a broken lock waits that.
fn quick() -> lease::Timing {
    lease::Timing::cli(std::time::Duration::from_secs(1))
}

fn lease_for(execution_id: &str, holder: Operator, expires_in_s: i64) -> Lease {
    let now = Timestamp::now();
    Lease {
        table: "Orders".into(),
        execution_id: execution_id.into(),
        holder,
        acquired_at: now,
        expires_at: now
            .checked_add(SignedDuration::from_secs(expires_in_s))
            .expect("time"),
        token: format!("t-{execution_id}"),
        fence: 1,
        kind: Default::default(),
        workers_until: None,
        grace_ms: 2000,
        released: false,
        in_flight_until: None,
    }
}

/// Writes `lease` over whatever is there, as another machine would have.
async fn put_lease(j: &Arc<dyn Journal>, lease: Lease) {
    let v = j
        .read_lease(&lease.table)
        .await
        .expect("read")
        .map(|(_, v)| v);
    assert!(
        j.swap_lease(&lease.table.clone(), Some(&lease), v)
            .await
            .expect("swap")
    );
}

async fn suite(j: Arc<dyn Journal>) {
    // Records: absent, saved, replaced, listed.
    assert_eq!(j.load("inc-1.Orders").await.expect("load"), None);
    let mut e = execution("inc-1.Orders");
    j.save(&mut e).await.expect("save");
    assert_eq!(e.version, 1);
    assert_eq!(
        j.load("inc-1.Orders").await.expect("load").as_ref(),
        Some(&e)
    );
    let mut stale = e.clone();
    e.enter(Phase::Copy);
    e.copy.segments[1].next_key = Some(serde_json::json!({"pk": {"S": "k#1"}}));
    e.copy.segments[1].items = 100;
    j.save(&mut e).await.expect("save");
    assert_eq!(
        j.load("inc-1.Orders").await.expect("load").as_ref(),
        Some(&e)
    );
    // Records are saved by version: a writer that read an older one is refused, nothing written.
    stale.event("a late writer");
    let err = j.save(&mut stale).await.expect_err("stale version");
    assert!(matches!(err, dynamo_dr::Error::Conflict { .. }), "{err}");
    assert_eq!(stale.version, 1);
    let mut twin = execution("inc-1.Orders");
    assert!(
        j.save(&mut twin).await.is_err(),
        "a second first write must lose"
    );
    assert_eq!(
        j.load("inc-1.Orders").await.expect("load").as_ref(),
        Some(&e)
    );
    j.save(&mut execution("inc-2.Orders")).await.expect("save");
    let mut ids: Vec<String> = j
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["inc-1.Orders", "inc-2.Orders"]);

    // Recovery-mode records.
    assert_eq!(j.load_recovery_mode("Prod").await.expect("load"), None);
    let mut rm = dynamo_dr::recovery_mode::RecoveryMode::new("Prod");
    rm.functions.insert(
        "Prod-A".into(),
        dynamo_dr::recovery_mode::FunctionState {
            saved_reserved: Some(25),
            throttled: true,
            restored: false,
        },
    );
    rm.event("start");
    let mut late = rm.clone();
    j.save_recovery_mode(&mut rm).await.expect("save");
    assert_eq!(
        j.load_recovery_mode("Prod").await.expect("load"),
        Some(rm.clone())
    );
    late.functions.clear();
    let err = j
        .save_recovery_mode(&mut late)
        .await
        .expect_err("a second start that read nothing must not overwrite the first's record");
    assert!(matches!(err, dynamo_dr::Error::Conflict { .. }), "{err}");
    assert_eq!(j.load_recovery_mode("Prod").await.expect("load"), Some(rm));

    // Leases change only by compare-and-swap.
    let me = Operator::current();
    let l = lease_for("inc-1.Orders", me.clone(), 60);
    assert_eq!(j.read_lease("Orders").await.expect("read"), None);
    assert!(j.swap_lease("Orders", Some(&l), None).await.expect("swap"));
    assert!(
        !j.swap_lease("Orders", Some(&l), None).await.expect("swap"),
        "a second creator must lose"
    );
    assert_eq!(
        j.read_lease("Orders").await.expect("read"),
        Some((l.clone(), 1))
    );
    assert!(
        !j.swap_lease("Orders", Some(&l), Some(7))
            .await
            .expect("swap"),
        "a stale version must lose"
    );
    assert!(
        j.swap_lease("Orders", Some(&l), Some(1))
            .await
            .expect("swap")
    );
    assert!(!j.swap_lease("Orders", None, Some(1)).await.expect("swap"));
    assert!(j.swap_lease("Orders", None, Some(2)).await.expect("swap"));
    assert_eq!(j.read_lease("Orders").await.expect("read"), None);

    // One run per table: a live holder refuses others; --break-lock and expiry take over.
    let (held, note) = lease::acquire(j.clone(), "Orders", "inc-1.Orders", false, quick())
        .await
        .expect("acquire");
    assert_eq!(note, None);
    let first = j.read_lease("Orders").await.expect("read").expect("held").0;
    let refused = lease::acquire(j.clone(), "Orders", "inc-9.Orders", false, quick())
        .await
        .err()
        .expect("refused");
    assert_eq!(refused.exit_status(), dynamo_dr::ExitStatus::Refused);
    assert!(refused.to_string().contains("inc-1.Orders"), "{refused}");
    assert!(refused.to_string().contains("s left"), "{refused}");
    held.check().await.expect("the holder's token is current");
    let breaking = std::time::Instant::now();
    let (broken, note) = lease::acquire(j.clone(), "Orders", "inc-9.Orders", true, quick())
        .await
        .expect("break");
    let note = note.expect("note");
    assert!(note.contains("LEASE BROKEN"), "{note}");
    // The displaced holder is alive (this process): its in-flight writes are waited out.
    assert!(note.contains("waited until"), "{note}");
    assert!(breaking.elapsed() >= std::time::Duration::from_millis(1900));
    let second = j.read_lease("Orders").await.expect("read").expect("held").0;
    assert!(second.fence > first.fence && second.token != first.token);
    let stale = held.check().await.expect_err("the old holder is fenced");
    assert!(matches!(stale, dynamo_dr::Error::Fenced { .. }), "{stale}");
    assert!(stale.to_string().contains("inc-9.Orders"), "{stale}");
    held.release()
        .await
        .expect("release of a lost lease is a no-op");
    assert_eq!(
        j.read_lease("Orders")
            .await
            .expect("read")
            .map(|(l, _)| l.execution_id)
            .as_deref(),
        Some("inc-9.Orders")
    );
    broken.release().await.expect("release");
    let (released, _) = j.read_lease("Orders").await.expect("read").expect("kept");
    assert!(released.released && released.fence == second.fence);
    // A released lease is free at once, and the next holder's fence is higher still.
    let (again, note) = lease::acquire(j.clone(), "Orders", "inc-2.Orders", false, quick())
        .await
        .expect("a released lease is free");
    assert_eq!(note, None);
    let third = j.read_lease("Orders").await.expect("read").expect("held").0;
    again.release_after_failure().await.expect("release");
    // Given up after a failure, its aborted writes may be in flight: the next holder waits.
    let (after, note) = lease::acquire(j.clone(), "Orders", "inc-2.Orders", false, quick())
        .await
        .expect("free");
    let note = note.expect("a note on the wait");
    assert!(
        note.contains("released just before") && note.contains("failure"),
        "{note}"
    );
    assert_eq!(
        j.read_lease("Orders")
            .await
            .expect("read")
            .expect("held")
            .0
            .fence,
        third.fence + 1
    );
    let again = after;
    assert_eq!(third.fence, second.fence + 1);
    again.release().await.expect("release");

    let elsewhere = Operator {
        user: "alice".into(),
        host: "other-host".into(),
        pid: 1,
    };
    put_lease(&j, lease_for("old.Orders", elsewhere.clone(), -5)).await;
    let (g, note) = lease::acquire(j.clone(), "Orders", "inc-3.Orders", false, quick())
        .await
        .expect("expired lease");
    assert!(note.expect("note").contains("expired"));
    g.release().await.expect("release");

    // The same execution takes over from its own dead process on this host, not a live one.
    let dead = Operator {
        pid: 4_000_000,
        ..me.clone()
    };
    put_lease(&j, lease_for("inc-1.Orders", dead, 60)).await;
    let (g, note) = lease::acquire(j.clone(), "Orders", "inc-1.Orders", false, quick())
        .await
        .expect("dead holder");
    assert!(note.expect("note").contains("gone"));
    g.release().await.expect("release");
    let live_elsewhere = lease_for("inc-1.Orders", elsewhere, 60);
    put_lease(&j, live_elsewhere).await;
    assert!(
        lease::acquire(j.clone(), "Orders", "inc-1.Orders", false, quick())
            .await
            .is_err(),
        "a holder on another host may be alive"
    );
    segments(j.clone()).await;
    execution_leases(j).await;
}

fn at_page(pages: u64, key: &str) -> SegmentRecord {
    SegmentRecord {
        checkpoint: SegmentCheckpoint {
            done: false,
            next_key: Some(serde_json::json!({"pk": {"S": key}})),
            items: pages * 10,
            pages,
            rewritten_pages: 0,
            finished_at: None,
        },
        worker: format!("worker-{key}"),
        ..SegmentRecord::default()
    }
}

/// Segment checkpoints: apart from the record, one per segment, changed only by version.
async fn segments(j: Arc<dyn Journal>) {
    let id = "inc-9.Orders";
    assert_eq!(
        j.load_segment(id, Phase::Copy, 0).await.expect("load"),
        None
    );
    // 16 workers, each on its own segment, all at once: none overwrites another.
    let writes = (0..16u32).map(|n| {
        let j = j.clone();
        async move {
            for page in 1..=5u64 {
                let rec = at_page(page, &format!("k#{n}"));
                assert!(
                    j.swap_segment(id, Phase::Copy, n, &rec, page - 1)
                        .await
                        .expect("swap"),
                    "segment {n} page {page}"
                );
            }
        }
    });
    futures_util::future::join_all(writes).await;
    let loaded = dynamo_dr::journal::load_segments(j.as_ref(), id, Phase::Copy, 16)
        .await
        .expect("load");
    for (n, rec) in loaded.iter().enumerate() {
        assert_eq!(rec.as_ref(), Some(&at_page(5, &format!("k#{n}"))), "{n}");
    }
    assert_eq!(
        j.load_segment(id, Phase::Copy, 3)
            .await
            .expect("load")
            .map(|(_, v)| v),
        Some(5)
    );
    // The other phase's segment of the same number is another item.
    assert_eq!(
        j.load_segment(id, Phase::Delete, 3).await.expect("load"),
        None
    );
    // A stale worker (it read version 4) cannot overwrite the newer checkpoint.
    assert!(
        !j.swap_segment(id, Phase::Copy, 3, &at_page(1, "stale"), 4)
            .await
            .expect("swap")
    );
    assert!(
        !j.swap_segment(id, Phase::Copy, 3, &at_page(1, "stale"), 0)
            .await
            .expect("swap"),
        "a second first write"
    );
    assert_eq!(
        j.load_segment(id, Phase::Copy, 3).await.expect("load"),
        Some((at_page(5, "k#3"), 5))
    );
    // Two workers racing on one segment from the same version: exactly one wins.
    let race = (0..2).map(|w| {
        let j = j.clone();
        async move {
            j.swap_segment(id, Phase::Copy, 7, &at_page(6, &format!("w{w}")), 5)
                .await
                .expect("swap")
        }
    });
    let won: Vec<bool> = futures_util::future::join_all(race).await;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    // The record merges what the workers wrote where they are further on.
    let mut e = execution(id);
    e.enter(Phase::Copy);
    e.copy.segments = vec![SegmentCheckpoint::default(); 16];
    e.copy.segments[2].pages = 9;
    e.copy.segments[2].items = 90;
    let merged = dynamo_dr::journal::merged(j.as_ref(), e)
        .await
        .expect("merge");
    assert_eq!(merged.copy.segments[0].pages, 5);
    assert_eq!(
        merged.copy.segments[2].items, 90,
        "the record's was further"
    );
    // Segment 7 is at page 6 after the race.
    assert_eq!(merged.copy.items(), 14 * 50 + 60 + 90);
}

/// An execution's lease is renewed by any of its workers, and refused to another execution.
async fn execution_leases(j: Arc<dyn Journal>) {
    let soon = Timestamp::now()
        .checked_add(SignedDuration::from_secs(2))
        .expect("t");
    let timing = lease::Timing::execution(std::time::Duration::from_secs(1), Some(soon));
    let (a, _) = lease::hold_for_execution(j.clone(), "Shared", "inc-5.Shared", timing)
        .await
        .expect("first worker");
    let (b, _) = lease::hold_for_execution(j.clone(), "Shared", "inc-5.Shared", timing)
        .await
        .expect("a second worker of the same execution");
    a.check().await.expect("a still holds it");
    b.check().await.expect("b holds it");
    a.detach();
    b.detach();
    let (held, _) = j
        .read_lease("Shared")
        .await
        .expect("read")
        .expect("outlives its workers");
    assert_eq!(held.execution_id, "inc-5.Shared");
    assert!(
        held.expires_at
            > Timestamp::now()
                .checked_add(SignedDuration::from_mins(15))
                .expect("t")
    );
    let err = lease::hold_for_execution(j.clone(), "Shared", "inc-6.Shared", timing)
        .await
        .err()
        .expect("another execution is refused");
    assert!(err.to_string().contains("inc-5.Shared"), "{err}");
    assert!(
        lease::acquire(j.clone(), "Shared", "inc-6.Shared", false, quick())
            .await
            .is_err(),
        "and so is a CLI run of another execution"
    );
    let (last, _) = lease::hold_for_execution(j.clone(), "Shared", "inc-5.Shared", timing)
        .await
        .expect("the last worker");
    // A live CLI run of the same execution is refused too, naming the Lambda-less holder: one
    // kind of holder at a time.
    let (cli_held, _) = j.read_lease("Shared").await.expect("read").expect("held");
    assert_eq!(cli_held.workers_until, Some(soon));
    last.release().await.expect("release");
    let (gone, _) = j.read_lease("Shared").await.expect("read").expect("kept");
    assert!(gone.released);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_journal_passes_the_suite() {
    let dir = tempfile::tempdir().expect("dir");
    suite(Arc::new(LocalJournal::open(dir.path()).expect("open"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_journal_passes_the_suite() {
    let dynalite =
        Emulator::start_with(dynamo_dr_testkit::Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    assert!(init(&client, "dr-journal").await.expect("init"));
    assert!(
        !init(&client, "dr-journal")
            .await
            .expect("init is idempotent")
    );
    suite(Arc::new(
        DynamoJournal::open(client, "dr-journal")
            .await
            .expect("open"),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_are_reported_not_misread() {
    let dir = tempfile::tempdir().expect("dir");
    let local = LocalJournal::open(dir.path()).expect("open");
    let good = serde_json::to_vec(&execution("inc-1.Orders")).expect("json");
    let path = dir.path().join("executions/inc-1.Orders.json");
    let mut newer: serde_json::Value = serde_json::from_slice(&good).expect("json");
    newer["formatVersion"] = 2.into();
    for (bytes, expected) in [
        (good[..good.len() / 3].to_vec(), "damaged"),
        (b"\xff\xfe garbage".to_vec(), "damaged"),
        (serde_json::to_vec(&newer).expect("json"), "newer dynamo-dr"),
    ] {
        std::fs::write(&path, &bytes).expect("write");
        let err = local.load("inc-1.Orders").await.expect_err("damaged");
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(err.exit_status(), dynamo_dr::ExitStatus::Failed);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bytes,
            "a damaged record is left as it was"
        );
    }

    let dynalite =
        Emulator::start_with(dynamo_dr_testkit::Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    init(&client, "dr-journal").await.expect("init");
    client
        .put_item()
        .table_name("dr-journal")
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("execution#inc-1.Orders".into()),
        )
        .item(
            "record",
            aws_sdk_dynamodb::types::AttributeValue::S("{\"formatVersion\": 1, \"id\":".into()),
        )
        .send()
        .await
        .expect("put");
    let remote = DynamoJournal::open(client, "dr-journal")
        .await
        .expect("open");
    let err = remote.load("inc-1.Orders").await.expect_err("damaged");
    assert!(err.to_string().contains("damaged"), "{err}");
}

/// A journal that stops answering lease writes once told to (a network partition, a lost
/// journal table): everything else still works.
struct Partitioned {
    inner: LocalJournal,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Journal for Partitioned {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn load(&self, id: &str) -> dynamo_dr::Result<Option<Execution>> {
        self.inner.load(id).await
    }
    async fn save(&self, execution: &mut Execution) -> dynamo_dr::Result<()> {
        self.inner.save(execution).await
    }
    async fn list(&self) -> dynamo_dr::Result<Vec<Execution>> {
        self.inner.list().await
    }
    async fn read_lease(&self, table: &str) -> dynamo_dr::Result<Option<(Lease, u64)>> {
        self.inner.read_lease(table).await
    }
    async fn load_recovery_mode(
        &self,
        environment: &str,
    ) -> dynamo_dr::Result<Option<dynamo_dr::recovery_mode::RecoveryMode>> {
        self.inner.load_recovery_mode(environment).await
    }
    async fn save_recovery_mode(
        &self,
        record: &mut dynamo_dr::recovery_mode::RecoveryMode,
    ) -> dynamo_dr::Result<()> {
        self.inner.save_recovery_mode(record).await
    }
    async fn swap_lease(
        &self,
        table: &str,
        lease: Option<&Lease>,
        expected: Option<u64>,
    ) -> dynamo_dr::Result<bool> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(dynamo_dr::Error::Journal("journal unreachable".into()));
        }
        self.inner.swap_lease(table, lease, expected).await
    }
    async fn load_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
    ) -> dynamo_dr::Result<Option<(SegmentRecord, u64)>> {
        self.inner.load_segment(id, phase, segment).await
    }
    async fn swap_segment(
        &self,
        id: &str,
        phase: Phase,
        segment: u32,
        record: &SegmentRecord,
        expected: u64,
    ) -> dynamo_dr::Result<bool> {
        self.inner
            .swap_segment(id, phase, segment, record, expected)
            .await
    }
}

/// A run whose lease cannot be renewed stops before its next write, while the lease still holds:
/// another run may take it once it lapses, and two runs must never write one table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_cannot_be_renewed_stops_writing_before_it_lapses() {
    let dynalite =
        Emulator::start_with(dynamo_dr_testkit::Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::hash_only("Lease-Src", Scalar::S);
    let dst = TableSpec::hash_only("Lease-Dst", Scalar::S);
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..200).map(|i| mixed_item(&src, i))).await;
    let dir = tempfile::tempdir().expect("dir");
    let journal = Arc::new(Partitioned {
        inner: LocalJournal::open(dir.path()).expect("journal"),
        down: Default::default(),
    });
    let timing = lease::Timing {
        ttl: std::time::Duration::from_millis(1500),
        renew_every: std::time::Duration::from_millis(250),
        ..quick()
    };
    let (guard, _) = lease::acquire(journal.clone(), &dst.name, "inc-1.Lease-Dst", false, timing)
        .await
        .expect("lease");
    guard.check().await.expect("a fresh lease holds");
    journal
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let lapsed = loop {
        match guard.check().await {
            Err(e) => break e,
            Ok(()) => {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(20),
                    "the run never noticed its lease was not renewed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    assert!(
        lapsed.to_string().contains("could not be renewed"),
        "{lapsed}"
    );

    // A copy with that lease writes nothing at all.
    let describe = |name: &str| {
        let client = client.clone();
        let name = name.to_string();
        async move {
            dynamo_dr::table::describe(&client, &name)
                .await
                .expect("describe")
                .expect("exists")
        }
    };
    let (source, dest) = (describe(&src.name).await, describe(&dst.name).await);
    let mut exec = execution("inc-1.Lease-Dst");
    exec.inputs.table = dst.name.clone();
    exec.enter(Phase::Copy);
    let rec = Arc::new(dynamo_dr::execution::Recorder::new(
        journal.clone(),
        exec,
        Some(guard),
        None,
    ));
    let opts = dynamo_dr::sync::SyncOptions {
        segments: 2,
        ..Default::default()
    };
    let inputs = rec.snapshot().await.inputs;
    let digest = dynamo_dr::digest::KeyDigest::ephemeral();
    let work = dynamo_dr::machine::Work::new(&source, &dest, &inputs, digest, None).expect("work");
    let e = dynamo_dr::execution::run_to_clean_up(&client, &work, &opts, &rec)
        .await
        .expect_err("the copy must stop");
    assert!(e.to_string().contains("could not be renewed"), "{e}");
    assert!(
        scan_all(&client, &dst.name).await.is_empty(),
        "nothing was written"
    );
}
