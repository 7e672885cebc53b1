//! The report's text, as people read it.
use super::*;

#[test]
fn a_cell_stays_one_cell_on_one_line() {
    assert_eq!(cell("a|b\nc\r"), "a\\|b c ");
}

fn record(source: crate::journal::Source, scope: crate::journal::Scope) -> Execution {
    let inputs = crate::journal::Inputs {
        table: "Orders".into(),
        incident_id: Some("inc-1".into()),
        source,
        segments: 2,
        keep_restored_table: false,
        verify: true,
        strategy: Strategy::default(),
        sensitive: false,
        forensic_backup: true,
        scope,
        prewarm: None,
    };
    Execution::new(
        "inc-1.Orders".into(),
        Kind::Restore,
        inputs,
        crate::journal::Phase::Done,
    )
}

fn verified(method: VerificationMethod) -> Option<Verification> {
    Some(Verification {
        method,
        passed: true,
        source_items: Some(3),
        dest_items: Some(3),
        fingerprint: None,
        detail: "checked".into(),
        at: Timestamp::UNIX_EPOCH,
    })
}

#[test]
fn a_targeted_run_reports_the_verification_it_ran() {
    let latest = crate::journal::Source::Pitr(PitrTime::Latest);
    let mut e = record(latest.clone(), crate::journal::Scope::Missing);
    e.verification = verified(VerificationMethod::Scope);
    let md = execution_markdown(&execution_report(&e));
    assert!(
        md.contains("PASSED (every item in scope against the restore point)"),
        "{md}"
    );
    assert!(!md.contains("--no-verify"), "{md}");
    let mut e = record(latest.clone(), crate::journal::Scope::Table);
    e.verification = verified(VerificationMethod::Content);
    let md = execution_markdown(&execution_report(&e));
    assert!(md.contains("PASSED (every item, every attribute)"), "{md}");
    e.verification = verified(VerificationMethod::Count);
    let md = execution_markdown(&execution_report(&e));
    assert!(
        md.contains("PASSED (item counts only: --no-verify)"),
        "{md}"
    );
}

#[test]
fn the_report_says_a_sub_second_restore_point_was_dropped() {
    let at = "2025-01-15T09:04:59.250Z".parse().unwrap();
    let e = record(
        crate::journal::Source::Pitr(PitrTime::At(at)),
        crate::journal::Scope::Table,
    );
    let md = execution_markdown(&execution_report(&e));
    assert!(
        md.contains(
            "restoring to 2025-01-15T09:04:59Z (DynamoDB restores to the second; .250 dropped)"
        ),
        "{md}"
    );
}

/// An execution's section of the report as reviewed: a change of wording or structure is a
/// reviewed diff.
#[test]
fn an_executions_report_reads_as_reviewed() {
    let at: Timestamp = "2026-12-04T09:40:00.123Z".parse().unwrap();
    let at_ms = |ms: i64| at + jiff::SignedDuration::from_millis(ms);
    let by = Operator {
        user: "oncall".into(),
        host: "laptop".into(),
        pid: 4242,
    };
    let mut e = record(
        crate::journal::Source::Pitr(PitrTime::At("2026-12-04T09:04:59.250Z".parse().unwrap())),
        crate::journal::Scope::Table,
    );
    e.created_at = at;
    e.updated_at = at_ms(61_000);
    e.created_by = by.clone();
    for (n, ev) in e.events.iter_mut().enumerate() {
        ev.at = at_ms(n as i64 * 1_000);
        ev.by = by.clone();
    }
    for (n, span) in e.phases.iter_mut().enumerate() {
        span.started_at = at_ms(n as i64 * 10_000);
        span.finished_at = Some(at_ms(n as i64 * 10_000 + 9_500));
    }
    e.resources.restored_to = Some("2026-12-04T09:04:59Z".parse().unwrap());
    e.verification = verified(VerificationMethod::Content);
    e.status = Status::Succeeded;
    insta::assert_snapshot!(execution_markdown(&execution_report(&e)));
}

#[test]
fn report_times_are_to_the_millisecond() {
    let mut e = record(
        crate::journal::Source::Pitr(PitrTime::Latest),
        crate::journal::Scope::Table,
    );
    e.resources.restored_to = Some("2026-12-04T15:44:28.726999998Z".parse().unwrap());
    e.created_at = "2026-12-04T15:44:28.1234567Z".parse().unwrap();
    let md = execution_markdown(&execution_report(&e));
    assert!(md.contains("2026-12-04T15:44:28.727Z"), "{md}");
    assert!(md.contains("created 2026-12-04T15:44:28.123Z"), "{md}");
    assert!(!md.contains("726999998"), "{md}");
}
