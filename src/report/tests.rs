//! The report's text, as people read it.
use super::*;
use crate::journal::Phase;

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

/// Two tables' restores with their phases, traces and segments, as the journal holds them.
fn two_tables() -> Report {
    let at: Timestamp = "2026-12-04T09:40:00Z".parse().unwrap();
    let secs = |s: i64| at + jiff::SignedDuration::from_secs(s);
    let phases = [
        (Phase::BackupAndRestore, 0, 40),
        (Phase::Delete, 40, 52),
        (Phase::Copy, 52, 70),
        (Phase::Check, 70, 75),
        (Phase::CleanUp, 75, 77),
    ];
    let executions = ["Orders", "Customers"].map(|table| {
        let mut e = record(
            crate::journal::Source::Pitr(PitrTime::Latest),
            crate::journal::Scope::Table,
        );
        e.inputs.table = table.into();
        e.phases = phases
            .iter()
            .map(|(phase, from, to)| crate::journal::PhaseSpan {
                phase: *phase,
                started_at: secs(*from),
                finished_at: Some(secs(*to)),
            })
            .collect();
        for (p, from) in [(&mut e.delete, 40), (&mut e.copy, 52)] {
            p.started_at = Some(secs(from));
            p.segments = vec![Default::default(); 2];
            for s in 0..10 {
                let page = crate::journal::PageTally {
                    items: 100,
                    read_units: 25.0,
                    write_units: 100.0,
                    throttled: u64::from(s == 3),
                    capacity: (Some(400.0), Some(1200.0)),
                };
                p.trace.record(secs(from + s), page);
            }
            for (n, seg) in p.segments.iter_mut().enumerate() {
                seg.finished_at = Some(secs(from + 9 + n as i64));
            }
        }
        execution_report(&e)
    });
    Report {
        format_version: FORMAT_VERSION,
        subject: "inc-1".into(),
        incident_id: Some("inc-1".into()),
        outcome: "recovered".into(),
        generated_at: secs(80),
        generated_by: Principal {
            at: secs(80),
            operator: Operator::current(),
            aws: None,
            aws_error: None,
        },
        executions: executions.to_vec(),
        recovery_mode: Vec::new(),
    }
}

/// The part of `html` inside the figure named `name`.
fn figure<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("<figure data-chart=\"{name}\">"))
        .unwrap_or_else(|| panic!("no {name} chart"));
    let end = start + html[start..].find("</figure>").unwrap();
    &html[start..end]
}

#[test]
fn the_html_timeline_holds_one_series_per_table_and_phase() {
    let html = html::page(&two_tables()).unwrap();
    let timeline = figure(&html, "timeline");
    assert!(timeline.contains("<svg"), "{timeline}");
    for table in ["Orders", "Customers"] {
        for phase in ["backup-and-restore", "delete", "copy", "check", "clean-up"] {
            let label = format!(">\n{table} {phase}\n<");
            assert_eq!(timeline.matches(&label).count(), 1, "{label} in {timeline}");
        }
        // Per table: its rates (both sync phases' writes, the reads, the capacity, the
        // throttled seconds) and one segment chart per sync phase.
        let rates = figure(&html, &format!("rates {table}"));
        for label in [
            "delete write units/s",
            "copy write units/s",
            "read units/s",
            "stated write capacity: 400 units/s",
            "a second with throttled requests",
        ] {
            let label = format!(">\n{label}\n<");
            assert_eq!(rates.matches(&label).count(), 1, "{label} in {rates}");
        }
        assert_eq!(
            html.matches(&format!("<figure data-chart=\"segments {table}\">"))
                .count(),
            2
        );
    }
    // The Markdown report follows, as HTML, and the page needs nothing from outside.
    assert!(html.contains("<h1>"), "{html}");
    for outside in ["<script", "src=", "href=", "<link", "@import", "url("] {
        assert!(!html.contains(outside), "{outside} in the page");
    }
}
