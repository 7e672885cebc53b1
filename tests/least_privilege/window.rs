//! `--scope window` under the policy `iam-policy` prints for a table with an export location:
//! the incremental export, its status, and reading its objects back.

use std::time::{Duration, SystemTime};

use dynamo_dr_testkit::*;

use crate::scenarios::Scenarios;

const TABLE: &str = "Events";

/// A bad write to 20 items at 08:30 on a clock two hours back, undone from 08:15 to 08:45.
pub async fn window(s: &mut Scenarios) {
    let spec = TableSpec::hash_only(TABLE, Scalar::S);
    let direct = s.lab.moto.client();
    create_table(&direct, &spec).await;
    put_all(&direct, TABLE, (0..100).map(|i| sized_item(&spec, i, 80))).await;
    s.lab.moto.s3("PUT", "/dr-exports", b"");
    let history = s.lab.live.history();
    let base = SystemTime::now() - Duration::from_secs(2 * 3600);
    history.set_clock(Some(base));
    enable_pitr(&s.lab.live.client(), TABLE).await;
    history.set_clock(Some(base + Duration::from_secs(30 * 60)));
    let bad = (0..20).map(|i| sized_item(&spec, i, 120));
    put_all(&s.lab.live.client(), TABLE, bad).await;
    history.set_clock(None);
    let from = rfc3339(base + Duration::from_secs(15 * 60));
    let to = rfc3339(base + Duration::from_secs(45 * 60));
    let restore = [
        "restore",
        "--table",
        TABLE,
        "--incident-id",
        "inc-w",
        "--scope",
        "window",
        "--from",
        &from,
        "--to",
        &to,
        "--confirm",
        TABLE,
        "--yes",
        "--allow-live-traffic",
    ];
    s.role(
        "undo a window from its incremental export",
        &["--journal", "dynamodb://dr-journal"],
        &["--table", "Feed"],
        &[TABLE, "Feed"],
        &[(&restore, 0)],
    );
}
