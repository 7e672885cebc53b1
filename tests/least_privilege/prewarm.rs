//! `restore --prewarm` under the policy `iam-policy --prewarm` prints: UpdateTable on the live
//! table (the window scenario's, restored whole this time), beside a restore's other grants.

use crate::scenarios::Scenarios;

const TABLE: &str = "Events";

pub fn prewarm(s: &mut Scenarios) {
    let restore = [
        "restore",
        "--table",
        TABLE,
        "--incident-id",
        "inc-pw",
        "--pitr-time",
        "latest",
        "--confirm",
        TABLE,
        "--prewarm",
        "12000",
        "--yes",
        "--allow-live-traffic",
    ];
    s.role(
        "pre-warm the table before the copy",
        &["--journal", "dynamodb://dr-journal"],
        &["--table", "Feed", "--prewarm"],
        &[TABLE, "Feed"],
        &[(&restore, 0)],
    );
}
