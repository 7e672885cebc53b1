//! Recovery mode's pure parts.

use super::*;

#[test]
fn a_long_recovery_mode_on_streamed_tables_warns_before_records_expire() {
    let now: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
    let mut record = RecoveryMode::new("Prod");
    record.state = State::On;
    record.started_at = Some("2026-12-01T15:00:00Z".parse().unwrap());
    let warning = stale_streams(&record, true, now).expect("21 h on");
    assert!(warning.contains("for 21 h"), "{warning}");
    assert_eq!(stale_streams(&record, false, now), None);
    record.started_at = Some("2026-12-01T17:00:00Z".parse().unwrap());
    assert_eq!(stale_streams(&record, true, now), None);
    record.started_at = Some("2026-12-01T10:00:00Z".parse().unwrap());
    record.state = State::Off;
    assert_eq!(stale_streams(&record, true, now), None);
}
