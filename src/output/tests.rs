//! What operators read at the end of a run and before one, pinned as reviewed snapshots.

use std::time::Duration;

use super::*;
use crate::check::{Item, Report, TableReport};
use crate::journal::{Scope, Strategy};
use crate::restore::{RestoreReport, TempTableFate};
use crate::sync::SyncReport;
use crate::validate::PitrTime;
use crate::verify::CountCheck;

fn at(text: &str) -> jiff::Timestamp {
    text.parse().unwrap()
}

/// A restore's summary, as `restore` prints it when the run succeeded.
#[test]
fn the_summary_of_a_restore_reads_as_reviewed() {
    let report = RestoreReport {
        execution_id: "inc-42.Prod-Orders".into(),
        table: "Prod-Orders".into(),
        restored_table: "DR-TEMP-Prod-Orders.inc-42".into(),
        restored_table_fate: TempTableFate::Deleted,
        backup_arn: "arn:aws:dynamodb:us-east-1:123456789012:table/Prod-Orders/backup/01".into(),
        restored_to: Some(at("2026-12-04T09:04:59Z")),
        source: Source::Pitr(PitrTime::At(at("2026-12-04T09:04:59.250Z"))),
        sync: SyncReport {
            deleted_items: 12_000,
            copied_items: 11_940,
            scan_requests: 48,
            write_requests: 960,
            delete_duration: Duration::from_millis(4_200),
            copy_duration: Duration::from_millis(5_100),
        },
        counts: CountCheck {
            source: 11_940,
            dest: 11_940,
        },
        rewritten_pages: 1,
        strategy: Strategy::HardReset,
        scope: Scope::Table,
        read_units: 310.5,
        write_units: 23_880.0,
        duration: Duration::from_millis(612_300),
    };
    insta::assert_snapshot!("restore_summary", restore_text(&report));
    let targeted = RestoreReport {
        scope: Scope::Missing,
        counts: CountCheck { source: 0, dest: 0 },
        ..report.clone()
    };
    insta::assert_snapshot!("restore_summary_targeted", restore_text(&targeted));
    let json = serde_json::to_string_pretty(&restore_json(&report)).unwrap();
    insta::assert_snapshot!("restore_summary_json", json);
}

/// `check` of an environment with one table ready and one not.
#[test]
fn check_reads_as_reviewed() {
    let item = |check, result, detail: &str| Item {
        check,
        result,
        detail: detail.into(),
    };
    let report = Report {
        environment: "Prod".into(),
        recovery_mode: item("recovery mode", "info", "off (no record)"),
        tables: vec![
            TableReport {
                logical: "OrdersTable".into(),
                table: "Prod-Orders".into(),
                items: vec![
                    item("table", "ok", "ACTIVE, ~12000 items"),
                    item(
                        "pitr",
                        "ok",
                        "restorable 2026-11-27T09:00:00Z .. 2026-12-04T09:10:00Z",
                    ),
                ],
            },
            TableReport {
                logical: "LedgerTable".into(),
                table: "Prod-Ledger".into(),
                items: vec![item(
                    "pitr",
                    "fail",
                    "point-in-time recovery is off; turn it on before an incident",
                )],
            },
        ],
    };
    insta::assert_snapshot!("check", check_text(&report));
}

/// The plan's write capacity line: the warm start, the maximum and whose, and the time they give.
#[test]
fn the_write_capacity_names_the_warm_start_the_maximum_and_the_time() {
    use aws_sdk_dynamodb::types::{
        KeySchemaElement, KeyType, OnDemandThroughput, TableWarmThroughputDescription,
    };
    let t = aws_sdk_dynamodb::types::TableDescription::builder()
        .table_name("Orders")
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .item_count(1_000_000)
        .table_size_bytes(1_000_000_000)
        .warm_throughput(
            TableWarmThroughputDescription::builder()
                .write_units_per_second(8_000)
                .build(),
        )
        .on_demand_throughput(
            OnDemandThroughput::builder()
                .max_write_request_units(20_000)
                .build(),
        )
        .build();
    let info = crate::table::TableInfo::from_description(&t).unwrap();
    insta::assert_snapshot!(capacity_text(&info, None));
}

/// A table whose warm throughput makes a hard reset far slower than its quota allows is offered
/// `--prewarm`; once asked for, the plan starts there and says what it costs.
#[test]
fn a_slow_warm_start_offers_a_prewarm_and_an_asked_one_is_priced() {
    use aws_sdk_dynamodb::types::{KeySchemaElement, KeyType};
    let t = aws_sdk_dynamodb::types::TableDescription::builder()
        .table_name("Orders")
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .item_count(50_000_000)
        .table_size_bytes(50_000_000_000)
        .build();
    let mut info = crate::table::TableInfo::from_description(&t).unwrap();
    let offered = capacity_text(&info, None);
    assert!(
        offered.contains("--prewarm UNITS (up to 40000) would start the copy there"),
        "{offered}"
    );
    info.write_limits.prewarm(40_000);
    let asked = capacity_text(&info, Some(40_000));
    assert!(
        asked.contains("the 40000 write units/s it is pre-warmed to"),
        "{asked}"
    );
    assert!(asked.contains("charges for the increase once"), "{asked}");
    assert!(!asked.contains("would start the copy there"), "{asked}");
}
