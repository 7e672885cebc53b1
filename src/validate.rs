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
    let looks_rfc3339 = text.len() >= 20
        && text
            .as_bytes()
            .get(10)
            .is_some_and(|b| matches!(b, b'T' | b't'));
    let t: Timestamp = match text.parse() {
        Ok(t) if looks_rfc3339 => t,
        Ok(_) | Err(_) => {
            return Err(Error::invalid(
                "PITR time",
                format!("{text:?} is not a date-time with a zone offset; {example}"),
            ));
        }
    };
    if t > now {
        return Err(Error::invalid(
            "PITR time",
            format!(
                "{t} is in the future (now is {}); choose a time before now, or latest",
                now.round(jiff::Unit::Second).unwrap_or(now)
            ),
        ));
    }
    Ok(PitrTime::At(t))
}

/// The names one recovery derives from the table and incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub temp_table: String,
    pub backup: String,
    /// Stable for a table and incident, so a rerun can find its own resources.
    pub execution_id: String,
}

pub fn names(table: &str, incident: &str) -> Result<Names> {
    let names = Names {
        temp_table: format!("{TEMP_TABLE_PREFIX}{table}-{incident}"),
        backup: format!("{BACKUP_PREFIX}{table}-{incident}"),
        execution_id: format!("{incident}.{table}"),
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
                    "--confirm {confirm:?} matches none of the tables being recovered ({list}){hint};                      pass one --confirm per table, each exactly as the DynamoDB console shows it"
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
    }

    #[test]
    fn derived_names_fit_limits() {
        let n = names("ProviderTable", "inc-1").unwrap();
        assert_eq!(n.temp_table, "DR-TEMP-ProviderTable-inc-1");
        assert_eq!(n.execution_id, "inc-1.ProviderTable");
        let long_table = "T".repeat(200);
        let e = names(&long_table, &"i".repeat(60)).unwrap_err();
        assert!(e.to_string().contains("at most 42 characters"), "{e}");
        assert!(names(&long_table, &"i".repeat(42)).is_ok());
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
    }
}
