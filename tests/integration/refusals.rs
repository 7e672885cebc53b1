//! Every validation rule: exit 2, a message naming the problem, and nothing created in AWS.

use dynamo_dr_testkit::*;

use crate::support::{dr, inventory, write_file};

/// Runs each case and checks exit 2, the message, and an unchanged account.
async fn assert_refused(emulator: &Emulator, cases: &[(Vec<String>, Option<String>, &str)]) {
    let client = emulator.client();
    let before = inventory(&client).await;
    for (args, stdin, expected) in cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = dr(emulator, &argv, stdin.as_deref());
        assert_eq!(run.code, 2, "{argv:?} should be refused\n{}", run.stderr);
        assert!(
            run.stderr.contains(expected),
            "{argv:?}: expected {expected:?} in the message, got:\n{}",
            run.stderr
        );
        assert_eq!(
            inventory(&client).await,
            before,
            "{argv:?} changed the account"
        );
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

const T: &str = "Prod-UsersTable-1A2B";

/// `restore` of table T with the given incident, confirmation and source flags.
fn restore(incident: &str, confirm: &str, source: &[&str]) -> Vec<String> {
    let mut a = args(&[
        "restore",
        "--table",
        T,
        "--incident-id",
        incident,
        "--confirm",
        confirm,
        "--yes",
    ]);
    a.extend(args(source));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_refused_before_any_aws_call() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    create_table(&client, &TableSpec::seed_like(T)).await;
    enable_pitr(&client, T).await;
    let dir = tempfile::tempdir().expect("dir");
    let bad_field = write_file(
        &dir,
        "bad.json",
        r#"{"incidentId":"a","pitrBackupTime":"latest","tableNameRecoveryConfirmaton":"x"}"#,
    );
    let excluded = write_file(
        &dir,
        "dr.toml",
        &format!(
            "[tables.Users]\nname = \"{T}\"\n[tables.SSNTable]\nname = \"Prod-SSN-1\"\nexcluded = \"holds SSNs; security review pending\"\n"
        ),
    );
    let typo = write_file(
        &dir,
        "typo.toml",
        &format!("[tables.Users]\nname = \"{T}\"\nsegmnts = 4\n"),
    );
    let long_id = "a".repeat(65);
    let no_yes: Vec<String> = restore("i", T, &["--pitr-time", "latest"])
        .into_iter()
        .filter(|a| a != "--yes")
        .collect();

    let cases = vec![
        (
            restore("inc_1", T, &["--pitr-time", "latest"]),
            None,
            "only letters, digits and hyphens",
        ),
        (
            restore(&long_id, T, &["--pitr-time", "latest"]),
            None,
            "at most 64",
        ),
        (
            restore("i", T, &["--pitr-time", "2999-01-01T00:00:00Z"]),
            None,
            "in the future",
        ),
        (
            restore("i", T, &["--pitr-time", "2025-01-15T09:00:00"]),
            None,
            "2025-01-15T09:00:00+00:00",
        ),
        (
            restore("i", T, &["--pitr-time", "yesterday"]),
            None,
            "not a date-time with a zone offset",
        ),
        (
            restore("i", "prod-userstable-1a2b", &["--pitr-time", "latest"]),
            None,
            "letter case",
        ),
        (
            restore("i", "Other", &["--pitr-time", "latest"]),
            None,
            "does not match the table being recovered",
        ),
        (
            restore(
                "i",
                T,
                &["--backup-arn", "arn:aws:dynamodb:us-east-1:123:table/X"],
            ),
            None,
            "not a DynamoDB backup ARN",
        ),
        (
            restore(
                "i",
                T,
                &[
                    "--backup-arn",
                    "arn:aws:backup:us-east-1:123:recovery-point:abc",
                ],
            ),
            None,
            "AWS Backup recovery point",
        ),
        (no_yes, None, "no terminal to confirm on"),
        (
            args(&["restore", "--table", T, "--input", &bad_field, "--yes"]),
            None,
            "tableNameRecoveryConfirmaton",
        ),
        (
            args(&[
                "restore",
                "--table",
                T,
                "--input",
                "/nonexistent.json",
                "--yes",
            ]),
            None,
            "cannot read /nonexistent.json",
        ),
        (
            args(&[
                "restore", "--table", T, "--table", "Other", "--input", &bad_field, "--yes",
            ]),
            None,
            "the seed's payload confirms one table",
        ),
        (
            args(&[
                "restore",
                "--table",
                T,
                "--table",
                T,
                "--incident-id",
                "i",
                "--confirm",
                T,
                "--confirm",
                T,
                "--pitr-time",
                "2025-01-15T09:00:00Z",
                "--yes",
            ]),
            None,
            "is given twice",
        ),
        (
            args(&["restore", "--table", T, "--input", "-", "--yes"]),
            Some("{not json".into()),
            "not a valid recovery payload",
        ),
        (
            args(&[
                "restore",
                "--table",
                T,
                "--confirm",
                T,
                "--pitr-time",
                "latest",
                "--yes",
            ]),
            None,
            "--incident-id",
        ),
        (
            args(&[
                "restore",
                "--table",
                T,
                "--incident-id",
                "i",
                "--confirm",
                T,
                "--pitr-time",
                "latest",
                "--backup-arn",
                "arn:x",
                "--yes",
            ]),
            None,
            "cannot be used with",
        ),
        (
            args(&[
                "--config",
                &excluded,
                "restore",
                "--table",
                "SSNTable",
                "--incident-id",
                "i",
                "--confirm",
                "Prod-SSN-1",
                "--pitr-time",
                "latest",
                "--yes",
            ]),
            None,
            "excluded from disaster recovery",
        ),
        (
            args(&[
                "--config",
                &excluded,
                "restore",
                "--table",
                "Nope-Table",
                "--incident-id",
                "i",
                "--confirm",
                "Nope-Table",
                "--pitr-time",
                "latest",
                "--yes",
            ]),
            None,
            "not a table configured",
        ),
        (
            args(&[
                "--config",
                &typo,
                "restore",
                "--table",
                "Users",
                "--incident-id",
                "i",
                "--confirm",
                T,
                "--pitr-time",
                "latest",
                "--yes",
            ]),
            None,
            "segmnts",
        ),
        (
            args(&["sync", "--source", T, "--dest", T, "--confirm", T, "--yes"]),
            None,
            "same table",
        ),
        (
            args(&[
                "restore",
                "--table",
                T,
                "--incident-id",
                "i",
                "--confirm",
                T,
                "--pitr-time",
                "latest",
                "--segments",
                "0",
                "--yes",
            ]),
            None,
            "--segments",
        ),
    ];
    assert_refused(&moto, &cases).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_in_aws_that_forbids_the_run_is_refused_without_changes() {
    let moto = Emulator::start(Kind::Moto).await;
    let client = moto.client();
    let spec = TableSpec::seed_like(T);
    create_table(&client, &spec).await;
    enable_pitr(&client, T).await;
    put_all(&client, T, (0..10).map(|i| mixed_item(&spec, i))).await;
    let no_pitr = TableSpec::seed_like("NoPitrTable");
    create_table(&client, &no_pitr).await;
    // Another table's backup, and a backup of a table whose key schema has since changed.
    let other = TableSpec::seed_like("OtherTable");
    create_table(&client, &other).await;
    let other_backup = create_backup(&client, "OtherTable", "b").await;
    let reshaped = TableSpec::hash_only("ReshapedTable", Scalar::S);
    create_table(&client, &reshaped).await;
    let reshaped_backup = create_backup(&client, "ReshapedTable", "b").await;
    client
        .delete_table()
        .table_name("ReshapedTable")
        .send()
        .await
        .expect("delete");
    create_table(&client, &TableSpec::seed_like("ReshapedTable")).await;
    create_table(
        &client,
        &TableSpec::seed_like("DR-TEMP-Prod-UsersTable-1A2B.taken"),
    )
    .await;
    let hash_only = TableSpec::hash_only("HashOnlyTable", Scalar::N);
    create_table(&client, &hash_only).await;

    let earliest = pitr_window(&client, T).await.0.secs();
    let before_window = jiff::Timestamp::from_second(earliest - 3600)
        .expect("time")
        .to_string();
    let missing_backup =
        format!("arn:aws:dynamodb:us-east-1:123456789012:table/{T}/backup/01700000000000-deadbeef");

    let restore_of = |table: &str, incident: &str, source: &[&str]| {
        let mut a = args(&[
            "restore",
            "--table",
            table,
            "--incident-id",
            incident,
            "--confirm",
            table,
            "--yes",
        ]);
        a.extend(args(source));
        a
    };
    let cases = vec![
        (
            restore_of("Missing-Table", "i", &["--pitr-time", "latest"]),
            None,
            "does not exist",
        ),
        (
            restore_of("NoPitrTable", "i", &["--pitr-time", "latest"]),
            None,
            "point-in-time recovery is DISABLED",
        ),
        (
            restore_of(T, "i", &["--pitr-time", &before_window]),
            None,
            "outside the restorable window",
        ),
        (
            restore_of(T, "taken", &["--pitr-time", "latest"]),
            None,
            "DR-TEMP-Prod-UsersTable-1A2B.taken already exists",
        ),
        (
            restore_of(T, "i", &["--backup-arn", &missing_backup]),
            None,
            "no backup",
        ),
        (
            restore_of(T, "i", &["--backup-arn", &other_backup]),
            None,
            "is a backup of table \"OtherTable\"",
        ),
        (
            restore_of("ReshapedTable", "i", &["--backup-arn", &reshaped_backup]),
            None,
            "key schema HASH id",
        ),
        (
            args(&[
                "sync",
                "--source",
                "HashOnlyTable",
                "--dest",
                T,
                "--confirm",
                T,
                "--yes",
            ]),
            None,
            "items cannot be copied between them",
        ),
        (
            args(&[
                "sync",
                "--source",
                "Missing-Table",
                "--dest",
                T,
                "--confirm",
                T,
                "--yes",
            ]),
            None,
            "does not exist",
        ),
    ];
    assert_refused(&moto, &cases).await;
    // The window error must print the window itself.
    let run = dr(
        &moto,
        &restore_of(T, "i", &["--pitr-time", &before_window])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        None,
    );
    let earliest_text = jiff::Timestamp::from_second(earliest)
        .expect("t")
        .to_string();
    assert!(
        run.stderr.contains(&earliest_text[..16]),
        "window not printed: {}",
        run.stderr
    );
    // Nothing about the refused table changed either.
    assert_eq!(scan_all(&client, T).await.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_is_not_active_is_refused() {
    // dynalite keeps a new table CREATING for as long as asked.
    let dynalite = Emulator::start_with(Kind::Dynalite, &["--createTableMs", "30000"]).await;
    let client = dynalite.client();
    start_create_table(&client, "Creating-Table").await;
    let cases = vec![(
        args(&[
            "restore",
            "--table",
            "Creating-Table",
            "--incident-id",
            "i",
            "--confirm",
            "Creating-Table",
            "--pitr-time",
            "latest",
            "--yes",
        ]),
        None,
        "is CREATING, not ACTIVE",
    )];
    assert_refused(&dynalite, &cases).await;
}
