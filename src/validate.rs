//! The guard rails checked before anything in AWS is touched: pure functions of the input.

use jiff::Timestamp;

use crate::error::{Error, Result};

/// DynamoDB's limit on table and backup names.
pub const MAX_NAME: usize = 255;
/// Incident ids longer than this are refused even when the names would fit: they are for humans.
pub const MAX_INCIDENT_ID: usize = 64;

pub const TEMP_TABLE_PREFIX: &str = "DR-TEMP-";
pub const BACKUP_PREFIX: &str = "DR-FORENSIC-";

/// Letters, digits and hyphens, 1 to [`MAX_INCIDENT_ID`] characters.
pub fn incident_id(id: &str) -> Result<String> {
    let example = "valid examples: incident-2025-001, corruption-fix-20250115";
    if id.is_empty() {
        return Err(Error::invalid(
            "incident id",
            format!("must not be empty; {example}"),
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(Error::invalid(
            "incident id",
            format!(
                "{id:?} contains {bad:?}; only letters, digits and hyphens are allowed; {example}"
            ),
        ));
    }
    if id.len() > MAX_INCIDENT_ID {
        return Err(Error::invalid(
            "incident id",
            format!(
                "{} characters is too long; at most {MAX_INCIDENT_ID}, so the temporary table and \
                 backup names derived from it stay within DynamoDB's {MAX_NAME}-character limit; {example}",
                id.len()
            ),
        ));
    }
    Ok(id.to_string())
}

/// DynamoDB's own rule for table names: 3 to 255 of `[a-zA-Z0-9_.-]`.
pub fn table_name(field: &str, name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !(3..=MAX_NAME).contains(&name.len()) || !ok_chars {
        return Err(Error::invalid(
            field,
            format!(
                "{name:?} is not a DynamoDB table name: 3 to 255 characters of letters, digits, \
                 '_', '.' and '-'; for example Prod-PersistentStack-ProviderTable00A96798-C6VX9JVDOYGN"
            ),
        ));
    }
    Ok(())
}

/// The point in time to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PitrTime {
    /// DynamoDB's LatestRestorableDateTime, about five minutes before now.
    Latest,
    At(Timestamp),
}

impl PitrTime {
    /// The restore point for people: `latest`, or [`restore_point_text`].
    pub fn text(&self) -> String {
        match self {
            PitrTime::Latest => "latest".into(),
            PitrTime::At(t) => restore_point_text(*t),
        }
    }
}

impl std::fmt::Display for PitrTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PitrTime::Latest => f.write_str("latest"),
            PitrTime::At(t) => write!(f, "{t}"),
        }
    }
}

/// RFC 3339 with `Z` or a numeric offset, or `latest`. A time without an offset is refused:
/// guessing its zone could restore to the wrong hour.
pub fn pitr_time(text: &str, now: Timestamp) -> Result<PitrTime> {
    let example = "use RFC 3339 with a zone, e.g. 2025-01-15T09:00:00Z or 2025-01-15T09:00:00+00:00, or the word latest";
    let text = text.trim();
    if text.eq_ignore_ascii_case("latest") {
        return Ok(PitrTime::Latest);
    }
    if text.contains('[') {
        return Err(Error::invalid(
            "PITR time",
            format!(
                "{text:?} has a bracketed time zone name; DynamoDB takes an instant, so give the \
                 offset alone; {example}"
            ),
        ));
    }
    let looks_rfc3339 = text.len() >= 20
        && text
            .as_bytes()
            .get(10)
            .is_some_and(|b| matches!(b, b'T' | b't'));
    let t: Timestamp = match text.parse() {
        Ok(t) if looks_rfc3339 => t,
        // A well-formed date-time past the last instant jiff can hold (9999-12-30) is simply
        // far in the future.
        Err(_)
            if looks_rfc3339
                && text
                    .get(..19)
                    .is_some_and(|c| c.parse::<jiff::civil::DateTime>().is_ok()) =>
        {
            return Err(future(text, now));
        }
        Ok(_) | Err(_) => {
            return Err(Error::invalid(
                "PITR time",
                format!("{text:?} is not a date-time with a zone offset; {example}"),
            ));
        }
    };
    if t > now {
        return Err(future(&t.to_string(), now));
    }
    Ok(PitrTime::At(t))
}

fn future(t: &str, now: Timestamp) -> Error {
    Error::invalid(
        "PITR time",
        format!(
            "{t} is in the future (now is {}); choose a time before now, or latest",
            seconds(now)
        ),
    )
}

/// A window's two ends (`fields` name them in refusals): instants, not `latest`, in order.
/// How long the window may be, and where, is the table's PITR window's to say (preflight).
pub fn window(
    ends: (Option<&str>, Option<&str>),
    fields: [&str; 2],
    now: Timestamp,
) -> Result<(Timestamp, Timestamp)> {
    let [from_field, to_field] = fields;
    let instant = |field: &str, text: Option<&str>| match text {
        Some(t) => match pitr_time(t, now) {
            Ok(PitrTime::At(t)) => Ok(t),
            Ok(PitrTime::Latest) => Err(Error::invalid(
                field,
                "a window's ends are instants (e.g. 2025-01-15T09:05:00Z), not latest",
            )),
            Err(e) => Err(Error::invalid(field, e.to_string())),
        },
        None => Err(Error::invalid(
            field,
            format!(
                "a window needs {from_field} and {to_field}: the window whose writes are \
                 undone, e.g. {from_field} 2025-01-15T09:05:00Z {to_field} 2025-01-15T09:45:00Z"
            ),
        )),
    };
    let (from, to) = (instant(from_field, ends.0)?, instant(to_field, ends.1)?);
    if from >= to {
        return Err(Error::invalid(
            to_field,
            format!(
                "the window ends ({to}) before it starts ({from}); give {from_field} < {to_field}"
            ),
        ));
    }
    Ok((from, to))
}

/// An instant as people read it: to the second.
pub fn seconds(t: Timestamp) -> Timestamp {
    t.round(jiff::Unit::Second).unwrap_or(t)
}

/// An instant rounded to the nearest millisecond, the precision of DynamoDB's windows and
/// backup times: the SDK reads epoch seconds as a float, so `…25.549Z` arrives as
/// `…25.549000024Z` and `…49.462Z` as `…49.461999893Z`. Rounded, never truncated.
pub fn millis(t: Timestamp) -> Timestamp {
    t.round(jiff::Unit::Millisecond).unwrap_or(t)
}

/// Every time printed for people (plan, summary, report, `check`, `status`, `executions`): to
/// the millisecond at most, three digits as AWS prints them (`.140Z`), none for a whole second.
pub fn time_text(t: Timestamp) -> String {
    let t = millis(t);
    let format = match t.subsec_nanosecond() {
        0 => "%Y-%m-%dT%H:%M:%SZ",
        _ => "%Y-%m-%dT%H:%M:%S%.3fZ",
    };
    t.strftime(format).to_string()
}

/// The precision of a point-in-time restore, decided here once. DynamoDB restores "to the state
/// based on the selected date and time (day:hour:minute:second)"
/// (<https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_RestoreTableToPointInTime.html>)
/// and nothing promises that RestoreSummary's RestoreDateTime keeps more. So a restore to `t`
/// asks for [`restore_second`] of `t`, and provenance compares the reported instant at this unit.
pub const RESTORE_PRECISION: jiff::Unit = jiff::Unit::Second;

/// The instant a restore to `t` asks DynamoDB for: `t` floored to [`RESTORE_PRECISION`], so the
/// restored state is never later than asked.
pub fn restore_second(t: Timestamp) -> Timestamp {
    let floor = jiff::TimestampRound::new()
        .smallest(RESTORE_PRECISION)
        .mode(jiff::RoundMode::Floor);
    t.round(floor).unwrap_or(t)
}

/// Whether a restore to `t` asks for an instant inside the restorable window.
pub fn restorable(t: Timestamp, earliest: Timestamp, latest: Timestamp) -> bool {
    (earliest..=latest).contains(&restore_second(t))
}

/// A restore point for people: `2025-01-15T09:04:59Z`, and for a sub-second time what was
/// dropped: `2025-01-15T09:04:59Z (DynamoDB restores to the second; .250 dropped)`.
pub fn restore_point_text(t: Timestamp) -> String {
    let second = restore_second(t);
    let dropped = t.duration_since(second).subsec_nanos();
    if dropped == 0 {
        return time_text(second);
    }
    let fraction = match dropped % 1_000_000 {
        0 => format!("{:03}", dropped / 1_000_000),
        _ => format!("{dropped:09}").trim_end_matches('0').to_string(),
    };
    format!(
        "{} (DynamoDB restores to the second; .{fraction} dropped)",
        time_text(second)
    )
}

/// The names one recovery derives from the table and incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub temp_table: String,
    pub backup: String,
    /// Stable for a table and incident, so a rerun can find its own resources.
    pub execution_id: String,
}

/// Separates the table from the incident in derived names. Incident ids never contain it, so
/// the last one in a name is always this separator: two different (table, incident) pairs can
/// never derive the same name (with `-`, `Orders` + `Archive-inc1` and `Orders-Archive` + `inc1`
/// did).
pub const NAME_SEPARATOR: char = '.';

pub fn names(table: &str, incident: &str) -> Result<Names> {
    let names = Names {
        temp_table: format!("{TEMP_TABLE_PREFIX}{table}{NAME_SEPARATOR}{incident}"),
        backup: format!("{BACKUP_PREFIX}{table}{NAME_SEPARATOR}{incident}"),
        execution_id: execution_id(incident, table),
    };
    let longest = names.backup.len().max(names.temp_table.len());
    if longest > MAX_NAME {
        let room = MAX_NAME.saturating_sub(BACKUP_PREFIX.len() + table.len() + 1);
        return Err(Error::invalid(
            "incident id",
            format!(
                "with table {table:?} the derived name {:?} would be {longest} characters, over \
                 DynamoDB's {MAX_NAME}; use an incident id of at most {room} characters",
                names.backup
            ),
        ));
    }
    Ok(names)
}

/// The id of the execution of `incident` on `table`.
pub fn execution_id(incident: &str, table: &str) -> String {
    format!("{incident}.{table}")
}

/// A sync's execution id: with no incident id, `sync-<UTC time>` stands in for it.
pub fn sync_execution_id(incident: Option<&str>, table: &str, now: jiff::Timestamp) -> String {
    match incident {
        Some(i) => execution_id(i, table),
        None => execution_id(&format!("sync-{}", now.strftime("%Y%m%dT%H%M%SZ")), table),
    }
}

/// The live table a temporary table or forensic backup name was derived from, if it is one.
pub fn derived_from(name: &str) -> Option<&str> {
    let rest = name
        .strip_prefix(TEMP_TABLE_PREFIX)
        .or_else(|| name.strip_prefix(BACKUP_PREFIX))?;
    let (table, incident) = rest.rsplit_once(NAME_SEPARATOR)?;
    incident_id(incident).ok().map(|_| table)
}

/// `--confirm` must repeat the physical table name exactly: the seed's typed guard rail.
pub fn confirmation(confirm: &str, table: &str) -> Result<()> {
    if confirm != table {
        let hint = if confirm.eq_ignore_ascii_case(table) {
            " (it differs only in letter case; table names are case-sensitive)"
        } else {
            ""
        };
        return Err(Error::invalid(
            "confirmation",
            format!(
                "{confirm:?} does not match the table being recovered, {table:?}{hint}; pass \
                 --confirm {table} exactly as the DynamoDB console shows it"
            ),
        ));
    }
    Ok(())
}

/// One typed confirmation per table, in any order: each table needs its own, and a
/// confirmation that names none of them (a typo, a table left out of --table) is refused.
pub fn confirmations(confirms: &[String], tables: &[String]) -> Result<()> {
    if let ([confirm], [table]) = (confirms, tables) {
        return confirmation(confirm, table);
    }
    let list = tables.join(", ");
    for (i, table) in tables.iter().enumerate() {
        if tables[..i].contains(table) {
            return Err(Error::invalid(
                "--table",
                format!("{table} is given twice; name each table once"),
            ));
        }
    }
    for confirm in confirms {
        if !tables.contains(confirm) {
            let hint = tables
                .iter()
                .find(|t| t.eq_ignore_ascii_case(confirm))
                .map(|t| {
                    format!(
                        " (it differs from {t} only in letter case; table names are case-sensitive)"
                    )
                })
                .unwrap_or_default();
            return Err(Error::invalid(
                "confirmation",
                format!(
                    "--confirm {confirm:?} matches none of the tables being recovered ({list}){hint}; \
                     pass one --confirm per table, each exactly as the DynamoDB console shows it"
                ),
            ));
        }
    }
    for table in tables {
        match confirms.iter().filter(|c| *c == table).count() {
            1 => {}
            0 => {
                return Err(Error::invalid(
                    "confirmation",
                    format!(
                        "{table} has no confirmation: every table needs its own; add --confirm {table}"
                    ),
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "confirmation",
                    format!("--confirm {table} is given twice; confirm each table once"),
                ));
            }
        }
    }
    Ok(())
}

/// An on-demand (or AWS Backup, non-advanced) DynamoDB backup ARN.
pub fn backup_arn(arn: &str) -> Result<String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let example =
        "arn:aws:dynamodb:us-east-1:123456789012:table/MyTable/backup/01700000000000-abcd1234";
    match parts.as_slice() {
        ["arn", _, "dynamodb", _, _, resource]
            if resource.starts_with("table/") && resource.contains("/backup/") =>
        {
            Ok(arn.to_string())
        }
        ["arn", _, "backup", ..] => Err(Error::invalid(
            "backup ARN",
            format!(
                "{arn:?} is an AWS Backup recovery point (advanced DynamoDB backup features), which \
                 RestoreTableFromBackup cannot read; restore it with AWS Backup to a new table and \
                 use `dynamo-dr sync`, or pass a DynamoDB backup ARN such as {example}"
            ),
        )),
        _ => Err(Error::invalid(
            "backup ARN",
            format!("{arn:?} is not a DynamoDB backup ARN; expected the form {example}"),
        )),
    }
}

/// Refuses a backup ARN that is not of `table`, or not of the region and account the run acts
/// in (each when known): a restore from it would fail, or restore another table's data.
pub fn backup_arn_belongs(
    arn: &str,
    table: &str,
    region: Option<&str>,
    account: Option<&str>,
) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let (arn_region, arn_account, resource) = match parts.as_slice() {
        ["arn", _, "dynamodb", r, a, resource] => (*r, *a, *resource),
        _ => return backup_arn(arn).map(|_| ()),
    };
    let arn_table = resource
        .strip_prefix("table/")
        .and_then(|r| r.split_once("/backup/"))
        .map(|(t, _)| t)
        .unwrap_or_default();
    let list =
        format!("list {table}'s backups with `aws dynamodb list-backups --table-name {table}`");
    if arn_table != table {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "{arn} is a backup of table {arn_table:?}, not of {table}; restoring it would put \
                 another table's data into {table}. {list}"
            ),
        ));
    }
    if let Some(r) = region.filter(|r| *r != arn_region) {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "{arn} is in region {arn_region}, but this run acts in {r}; pass --region {arn_region}, or {list}"
            ),
        ));
    }
    if let Some(a) = account.filter(|a| !a.is_empty() && *a != arn_account) {
        return Err(Error::invalid(
            "backup ARN",
            format!(
                "{arn} is in account {arn_account}, but these credentials are of account {a}; use that account's credentials, or {list}"
            ),
        ));
    }
    Ok(())
}

/// `s3://BUCKET/KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Uri {
    pub bucket: String,
    pub key: String,
}

impl S3Uri {
    /// A place keys objects may be read from: `s3://BUCKET` or `s3://BUCKET/PREFIX`.
    pub fn location(text: &str) -> Result<S3Uri> {
        let rest = text.strip_prefix("s3://").unwrap_or_default();
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // `$` would be an IAM policy variable in the grant made from it.
        if bucket.is_empty() || [bucket, prefix].iter().any(|p| p.contains(['*', '?', '$'])) {
            return Err(Error::invalid(
                "keys_location",
                format!(
                    "{text:?} is not a place in S3; give s3://BUCKET or s3://BUCKET/PREFIX/, \
                     without wildcards or $"
                ),
            ));
        }
        // A folder: `s3://b/dr` must not take `s3://b/drafts/...`.
        let mut key = prefix.to_string();
        if !key.is_empty() && !key.ends_with('/') {
            key.push('/');
        }
        Ok(S3Uri {
            bucket: bucket.to_string(),
            key,
        })
    }

    /// Whether this object lies under `location`'s bucket and prefix.
    pub fn within(&self, location: &S3Uri) -> bool {
        self.bucket == location.bucket && self.key.starts_with(&location.key)
    }

    /// `None` when `text` is not an S3 URI at all (a local path); an error when it is one
    /// without a bucket or a key.
    pub fn parse(text: &str) -> Result<Option<S3Uri>> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(None);
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Some(S3Uri {
                bucket: bucket.to_string(),
                key: key.to_string(),
            })),
            _ => Err(Error::invalid(
                "keys",
                format!("{text} names no object; give s3://BUCKET/KEY, or a local file"),
            )),
        }
    }
}

impl std::fmt::Display for S3Uri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn incident_ids() {
        assert!(incident_id("incident-2025-001").is_ok());
        assert!(incident_id("").is_err());
        assert!(incident_id("a_b").is_err());
        assert!(incident_id("a b").is_err());
        assert!(incident_id(&"a".repeat(MAX_INCIDENT_ID)).is_ok());
        assert!(incident_id(&"a".repeat(MAX_INCIDENT_ID + 1)).is_err());
    }

    #[test]
    fn pitr_times() {
        let z = pitr_time("2025-01-15T09:00:00Z", now()).unwrap();
        let off = pitr_time("2025-01-15T09:00:00+00:00", now()).unwrap();
        assert_eq!(z, off);
        let east = pitr_time("2025-01-15T10:00:00+01:00", now()).unwrap();
        assert_eq!(z, east);
        assert_eq!(pitr_time("latest", now()).unwrap(), PitrTime::Latest);
        for bad in [
            "2025-01-15T09:00:00",
            "2025-01-15",
            "yesterday",
            "",
            "1736931600",
        ] {
            let e = pitr_time(bad, now()).unwrap_err();
            assert!(e.to_string().contains("2025-01-15T09:00:00Z"), "{bad}: {e}");
        }
        let e = pitr_time("2026-06-01T00:00:00Z", now()).unwrap_err();
        assert!(e.to_string().contains("in the future"));
        let e = pitr_time("9999-12-31T23:59:59Z", now()).unwrap_err();
        assert!(e.to_string().contains("in the future"), "{e}");
        let e = pitr_time("2025-01-15T09:00:00Z[Europe/Paris]", now()).unwrap_err();
        assert!(e.to_string().contains("bracketed"), "{e}");
        let e = pitr_time("2025-01-15T09:00:00+01:00[Europe/Paris]", now()).unwrap_err();
        assert!(e.to_string().contains("bracketed"), "{e}");
    }

    #[test]
    fn milliseconds_drop_the_float_artefact() {
        let edge: Timestamp = "2026-12-01T07:44:25.549000024Z".parse().unwrap();
        let given: Timestamp = "2026-12-01T07:44:25.549Z".parse().unwrap();
        assert_eq!(millis(edge), given);
        assert_eq!(millis(edge).to_string(), "2026-12-01T07:44:25.549Z");
        assert_eq!(seconds(edge).to_string(), "2026-12-01T07:44:26Z");
    }

    #[test]
    fn people_read_times_rounded_to_the_millisecond() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        // The plan printed a backup's time as `…28.726999998Z`.
        assert_eq!(
            time_text(t("2026-12-04T15:44:28.726999998Z")),
            "2026-12-04T15:44:28.727Z"
        );
        assert_eq!(
            time_text(t("2026-12-04T15:44:28.14Z")),
            "2026-12-04T15:44:28.140Z"
        );
        assert_eq!(
            time_text(t("2026-12-04T15:44:28.9996Z")),
            "2026-12-04T15:44:29Z"
        );
        assert_eq!(time_text(t("2026-12-04T15:44:28Z")), "2026-12-04T15:44:28Z");
        assert_eq!(
            millis(t("2025-12-04T09:39:49.461999893Z")),
            t("2025-12-04T09:39:49.462Z")
        );
    }

    #[test]
    fn a_restore_asks_for_its_whole_second_never_a_later_one() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let asked = t("2025-01-15T09:04:59.250Z");
        assert_eq!(restore_second(asked), t("2025-01-15T09:04:59Z"));
        assert_eq!(
            restore_second(t("2025-01-15T09:04:59.999999999Z")),
            t("2025-01-15T09:04:59Z")
        );
        assert_eq!(
            restore_second(t("2025-01-15T09:04:59Z")),
            t("2025-01-15T09:04:59Z")
        );
        assert_eq!(
            restore_point_text(asked),
            "2025-01-15T09:04:59Z (DynamoDB restores to the second; .250 dropped)"
        );
        assert_eq!(
            restore_point_text(t("2025-01-15T09:04:59.0000015Z")),
            "2025-01-15T09:04:59Z (DynamoDB restores to the second; .0000015 dropped)"
        );
        assert_eq!(
            restore_point_text(t("2025-01-15T09:04:59Z")),
            "2025-01-15T09:04:59Z"
        );
        // The window's edges are to the millisecond; the second asked for must lie inside.
        let (earliest, latest) = (t("2025-01-15T09:00:00.500Z"), t("2025-01-15T09:04:59.462Z"));
        assert!(restorable(latest, earliest, latest));
        assert!(restorable(t("2025-01-15T09:04:59.900Z"), earliest, latest));
        assert!(!restorable(t("2025-01-15T09:05:00Z"), earliest, latest));
        assert!(!restorable(t("2025-01-15T09:00:00.700Z"), earliest, latest));
        assert!(restorable(t("2025-01-15T09:00:01Z"), earliest, latest));
    }

    #[test]
    fn derived_names_fit_limits() {
        let n = names("ProviderTable", "inc-1").unwrap();
        assert_eq!(n.temp_table, "DR-TEMP-ProviderTable.inc-1");
        assert_eq!(n.backup, "DR-FORENSIC-ProviderTable.inc-1");
        assert_eq!(n.execution_id, "inc-1.ProviderTable");
        assert_eq!(derived_from(&n.temp_table), Some("ProviderTable"));
        assert_eq!(derived_from(&n.backup), Some("ProviderTable"));
        assert_eq!(derived_from("ProviderTable"), None);
        let long_table = "T".repeat(200);
        let e = names(&long_table, &"i".repeat(60)).unwrap_err();
        assert!(e.to_string().contains("at most 42 characters"), "{e}");
        assert!(names(&long_table, &"i".repeat(42)).is_ok());
    }

    #[test]
    fn the_collision_of_the_old_scheme_is_gone() {
        let a = names("Orders", "Archive-inc1").unwrap();
        let b = names("Orders-Archive", "inc1").unwrap();
        assert_ne!(a.temp_table, b.temp_table);
        assert_ne!(a.backup, b.backup);
        assert_eq!(derived_from(&a.temp_table), Some("Orders"));
        assert_eq!(derived_from(&b.temp_table), Some("Orders-Archive"));
    }

    proptest::proptest! {
        /// Different (table, incident) pairs never derive the same names.
        #[test]
        fn derived_names_are_injective(
            t1 in "[a-zA-Z0-9_.-]{3,20}", i1 in "[a-zA-Z0-9-]{1,12}",
            t2 in "[a-zA-Z0-9_.-]{3,20}", i2 in "[a-zA-Z0-9-]{1,12}",
        ) {
            let (a, b) = (names(&t1, &i1).unwrap(), names(&t2, &i2).unwrap());
            proptest::prop_assert_eq!(a.temp_table == b.temp_table, (&t1, &i1) == (&t2, &i2));
            proptest::prop_assert_eq!(a.backup == b.backup, (&t1, &i1) == (&t2, &i2));
            proptest::prop_assert_eq!(derived_from(&a.temp_table), Some(t1.as_str()));
        }
    }

    #[test]
    fn confirmation_is_exact() {
        assert!(confirmation("Table-A", "Table-A").is_ok());
        let e = confirmation("table-a", "Table-A").unwrap_err();
        assert!(e.to_string().contains("letter case"));
    }

    #[test]
    fn every_table_needs_its_own_confirmation() {
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let tables = t(&["A", "B", "C"]);
        assert!(confirmations(&t(&["C", "A", "B"]), &tables).is_ok());
        let missing = confirmations(&t(&["A", "B"]), &tables).unwrap_err();
        assert!(
            missing.to_string().contains("C has no confirmation"),
            "{missing}"
        );
        let twice = confirmations(&t(&["A", "A", "B", "C"]), &tables).unwrap_err();
        assert!(twice.to_string().contains("given twice"), "{twice}");
        let typo = confirmations(&t(&["A", "b", "C"]), &tables).unwrap_err();
        assert!(typo.to_string().contains("letter case"), "{typo}");
        let stray = confirmations(&t(&["A", "B", "C", "D"]), &tables).unwrap_err();
        assert!(stray.to_string().contains("matches none"), "{stray}");
        assert!(!stray.to_string().contains("  "), "{stray}");
        let dup = confirmations(&t(&["A", "A"]), &t(&["A", "A"])).unwrap_err();
        assert!(dup.to_string().contains("--table"), "{dup}");
        assert!(confirmations(&t(&["A"]), &t(&["A"])).is_ok());
        assert!(confirmations(&t(&[]), &t(&["A"])).is_err());
    }

    #[test]
    fn backup_arns() {
        assert!(
            backup_arn(
                "arn:aws:dynamodb:us-east-1:123456789012:table/T/backup/01795733021632-82e549bb"
            )
            .is_ok()
        );
        assert!(backup_arn("arn:aws:backup:us-east-1:123456789012:recovery-point:abc").is_err());
        assert!(backup_arn("arn:aws:dynamodb:us-east-1:123456789012:table/T").is_err());
        assert!(backup_arn("nonsense").is_err());
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/T/backup/01795733021632-82e549bb";
        assert!(backup_arn_belongs(arn, "T", Some("us-east-1"), Some("123456789012")).is_ok());
        assert!(backup_arn_belongs(arn, "T", None, None).is_ok());
        for (table, region, account, says) in [
            ("U", None, None, "not of U"),
            ("T", Some("eu-west-1"), None, "region us-east-1"),
            ("T", None, Some("210987654321"), "account 123456789012"),
        ] {
            let e = backup_arn_belongs(arn, table, region, account).unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
            assert_eq!(e.exit_status(), crate::ExitStatus::Refused);
        }
    }

    #[test]
    fn an_s3_uri_needs_a_bucket_and_a_key_and_a_path_is_not_one() {
        let uri = S3Uri::parse("s3://ops-bucket/incidents/keys.jsonl")
            .unwrap()
            .unwrap();
        assert_eq!(uri.bucket, "ops-bucket");
        assert_eq!(uri.key, "incidents/keys.jsonl");
        assert_eq!(uri.to_string(), "s3://ops-bucket/incidents/keys.jsonl");
        assert_eq!(S3Uri::parse("/tmp/keys.jsonl").unwrap(), None);
        let place = S3Uri::location("s3://ops-bucket/incidents/").unwrap();
        assert!(uri.within(&place));
        assert!(!uri.within(&S3Uri::location("s3://ops-bucket/other/").unwrap()));
        assert!(uri.within(&S3Uri::location("s3://ops-bucket").unwrap()));
        assert!(uri.within(&S3Uri::location("s3://ops-bucket/incidents").unwrap()));
        assert!(!uri.within(&S3Uri::location("s3://ops-bucket/incident").unwrap()));
        assert!(S3Uri::location("s3://ops-bucket/${aws:username}/").is_err());
        assert!(S3Uri::location("s3://ops-*/x").is_err());
        assert!(S3Uri::location("ops-bucket").is_err());
        for bad in ["s3://", "s3://bucket", "s3://bucket/", "s3:///key"] {
            let err = S3Uri::parse(bad).unwrap_err();
            assert_eq!(
                err.exit_status(),
                crate::error::ExitStatus::Refused,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_window_is_two_instants_in_order() {
        let now: Timestamp = "2025-01-15T12:00:00Z".parse().unwrap();
        let f = ["from", "to"];
        let (a, b) = window(
            (
                Some("2025-01-15T09:05:00Z"),
                Some("2025-01-15T09:45:00+00:00"),
            ),
            f,
            now,
        )
        .unwrap();
        assert!(a < b);
        for (ends, field, says) in [
            (
                (Some("latest"), Some("2025-01-15T09:45:00Z")),
                "from",
                "not latest",
            ),
            (
                (Some("2025-01-15T09:05:00Z"), None),
                "to",
                "needs from and to",
            ),
            (
                (Some("2025-01-15T09:45:00Z"), Some("2025-01-15T09:05:00Z")),
                "to",
                "before it starts",
            ),
            (
                (Some("2025-01-15T09:05:00Z"), Some("2025-01-15T13:00:00Z")),
                "to",
                "future",
            ),
        ] {
            let e = window(ends, f, now).unwrap_err();
            let text = e.to_string();
            assert!(
                text.contains(says) && text.contains(field),
                "{ends:?}: {text}"
            );
        }
    }
}
