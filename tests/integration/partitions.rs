//! The sync against DynamoDB's physics, through the testkit's partition model: hot key ranges
//! slow only their own segments, and the segment count the plan prints is the one used.

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_dr_testkit::*;

use crate::support::{dr, dr_env, record};

/// A table whose few hottest partition keys hold most of its items: the copy finishes exactly;
/// the other key ranges finish long before the hot ones, which are written near their limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_skewed_table_finishes_exactly_without_starving_the_other_key_ranges() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::seed_like("Skew-Src");
    let dst = TableSpec::seed_like("Skew-Dst");
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    let hot = ["hot-a", "hot-b"];
    let items = (0..800u64).map(|i| {
        let mut item = mixed_item(&src, i);
        let pk = match i % 4 {
            0 => format!("cold-{i}"),
            k => hot[(k as usize) % hot.len()].to_string(),
        };
        item.insert("pk".into(), AttributeValue::S(pk));
        item.insert("sk".into(), AttributeValue::S(format!("sk-{i:06}")));
        item
    });
    put_all(&client, &src.name, items).await;
    let expected = scan_all(&client, &src.name).await;
    let model = Capacity::partitioned(&dst.name, "pk", 8, 60.0);
    let hot_partitions: Vec<usize> = hot
        .iter()
        .map(|k| (capacity::key_hash_prefix(&serde_json::json!({ "S": k })) as usize * 8) / 4096)
        .collect();
    let proxy = FaultProxy::with_capacity(&dynalite.endpoint(), Faults::none(), model);
    let run = dr_env(
        &dynalite,
        &[("AWS_ENDPOINT_URL", proxy.url())],
        &[
            "sync",
            "--source",
            &src.name,
            "--dest",
            &dst.name,
            "--confirm",
            &dst.name,
            "--incident-id",
            "skew",
            "--yes",
            "--output",
            "json",
        ],
        None,
    );
    run.assert_code(0);
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dst.name).await),
        None
    );
    let c = proxy.capacity_counters();
    assert!(
        c.key_range_throttles > 0 || c.throttled_items > 0,
        "the hot ranges were throttled: {c:?}"
    );
    let last_second = |partitions: &dyn Fn(usize) -> bool| {
        c.write_units
            .iter()
            .rposition(|s| s.iter().enumerate().any(|(p, u)| partitions(p) && *u > 0.0))
            .expect("writes")
    };
    let cold_done = last_second(&|p| !hot_partitions.contains(&p));
    let hot_done = last_second(&|p| hot_partitions.contains(&p));
    assert!(
        cold_done < hot_done,
        "the cold key ranges finished (second {cold_done}) before the hot ones (second {hot_done})"
    );
    // The hottest partition was kept busy: on average over its seconds of writing, not far
    // below its limit.
    let hottest = hot_partitions[0];
    let busy: Vec<f64> = c
        .write_units
        .iter()
        .map(|s| s[hottest])
        .filter(|u| *u > 0.0)
        .collect();
    let mean = busy.iter().sum::<f64>() / busy.len() as f64;
    assert!(
        mean >= 0.4 * 60.0,
        "the hot partition ran at {mean:.1} of 60 units/s"
    );
}

/// The plan names the segment count it chose and why, and the run records and uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_segment_count_the_plan_prints_is_the_one_used() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::hash_only("Seg-Src", Scalar::S);
    let dst = TableSpec::hash_only("Seg-Dst", Scalar::S);
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..2_500).map(|i| mixed_item(&src, i))).await;
    let run = dr(
        &dynalite,
        &[
            "sync",
            "--source",
            &src.name,
            "--dest",
            &dst.name,
            "--confirm",
            &dst.name,
            "--incident-id",
            "seg",
            "--yes",
        ],
        None,
    );
    run.assert_code(0);
    let text = format!("{}{}", run.stdout, run.stderr);
    let chosen: u32 = text
        .split(" segments: ")
        .next()
        .and_then(|before| before.rsplit(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the plan names its segment count: {text}"));
    let rec = record(&dynalite, &format!("seg.{}", dst.name)).expect("record");
    assert_eq!(rec["inputs"]["segments"], chosen, "{rec}");
    assert_eq!(
        rec["copy"]["segments"].as_array().map(Vec::len),
        Some(chosen as usize)
    );
    assert!(
        chosen > 8,
        "a table of 2,500 items gets more than the old fixed 8: {chosen}"
    );
}

/// A table whose DescribeTable says it is warm for 40,000 write units/s but may take at most
/// 1,000: the copy starts from the warm figure yet never asks for more than the maximum in any
/// second, and the plan says both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_maximum_is_never_exceeded_however_warm_the_table() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let client = dynalite.client();
    let src = TableSpec::hash_only("Capped-Src", Scalar::S);
    let dst = TableSpec::hash_only("Capped-Dst", Scalar::S);
    create_table(&client, &src).await;
    create_table(&client, &dst).await;
    put_all(&client, &src.name, (0..3000).map(|i| mixed_item(&src, i))).await;
    let expected = scan_all(&client, &src.name).await;
    let mut model = Capacity::partitioned(&dst.name, &dst.hash.0, 4, 1000.0);
    model.warm_write_units = Some(40_000);
    model.max_write_units = Some(1_000);
    let proxy = FaultProxy::with_capacity(&dynalite.endpoint(), Faults::none(), model);
    let run = dr_env(
        &dynalite,
        &[("AWS_ENDPOINT_URL", proxy.url())],
        &[
            "sync",
            "--source",
            &src.name,
            "--dest",
            &dst.name,
            "--confirm",
            &dst.name,
            "--incident-id",
            "capped",
            "--segments",
            "8",
            "--yes",
        ],
        None,
    );
    run.assert_code(0);
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dst.name).await),
        None
    );
    let plan = format!("{}{}", run.stdout, run.stderr);
    assert!(
        plan.contains("its warm throughput, 40000 write units/s"),
        "{plan}"
    );
    assert!(plan.contains("never above 1000 write units/s"), "{plan}");
    let c = proxy.capacity_counters();
    assert_eq!(
        (c.table_throttles, c.throttled_items),
        (0, 0),
        "the run asked for more than the maximum: {c:?}"
    );
    let busiest = c
        .write_units
        .iter()
        .map(|s| s.iter().sum::<f64>())
        .fold(0.0, f64::max);
    assert!(busiest <= 1000.0, "{busiest} units in one second");
    assert!(busiest >= 500.0, "the copy ran near the maximum: {busiest}");
}
