//! Every attribute type, key type and index shape comes through a sync unchanged.

use dynamo_dr_testkit::*;

use crate::support::dr;

async fn roundtrip(dynalite: &Emulator, spec: TableSpec, items: Vec<Item>) {
    let client = dynalite.client();
    let dest = TableSpec {
        name: format!("{}-dest", spec.name),
        ..spec.clone()
    };
    create_table(&client, &spec).await;
    create_table(&client, &dest).await;
    let n = items.len();
    put_all(&client, &spec.name, items).await;
    let expected = scan_all(&client, &spec.name).await;
    assert_eq!(
        expected.len(),
        n,
        "{}: fixture keys must be distinct",
        spec.name
    );
    let run = dr(
        dynalite,
        &[
            "sync",
            "--source",
            &spec.name,
            "--dest",
            &dest.name,
            "--confirm",
            &dest.name,
            "--segments",
            "3",
            "--yes",
        ],
        None,
    );
    run.assert_code(0);
    assert_eq!(
        diff_summary(&expected, &scan_all(&client, &dest.name).await),
        None,
        "{}",
        spec.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribute_and_key_type_survives_a_sync() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let mut specs = Vec::new();
    for (i, hash) in [Scalar::S, Scalar::N, Scalar::B].into_iter().enumerate() {
        specs.push(TableSpec::hash_only(&format!("hash-only-{i}"), hash));
        for (j, range) in [Scalar::S, Scalar::N, Scalar::B].into_iter().enumerate() {
            specs.push(TableSpec {
                name: format!("composite-{i}-{j}"),
                hash: ("pk".into(), hash),
                range: Some(("sk".into(), range)),
                gsi: false,
                lsi: false,
            });
        }
    }
    specs.push(TableSpec {
        gsi: true,
        lsi: true,
        ..TableSpec::seed_like("with-gsi-and-lsi")
    });
    for spec in specs {
        let items = (0..120).map(|i| mixed_item(&spec, i)).collect();
        roundtrip(&dynalite, spec, items).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_near_the_400_kb_limit_survive_a_sync() {
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "0"]).await;
    let spec = TableSpec {
        gsi: true,
        ..TableSpec::seed_like("large-items")
    };
    // 399,000 bytes of payload plus names and keys: just under DynamoDB's 400 KB item limit.
    let items = (0..30)
        .map(|i| {
            if i % 3 == 0 {
                sized_item(&spec, i, 399_000)
            } else {
                mixed_item(&spec, i)
            }
        })
        .collect();
    roundtrip(&dynalite, spec, items).await;
}
