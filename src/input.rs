//! The seed's Step Functions payload, accepted by `restore --input`.

use std::io::Read;

use serde::Deserialize;

use crate::error::{Error, Result};

/// `{"incidentId", "pitrBackupTime", "tableNameRecoveryConfirmation"}`. Unknown fields are refused
/// rather than ignored: a misspelt field must not silently drop a guard rail.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SeedInput {
    pub incident_id: String,
    pub pitr_backup_time: String,
    pub table_name_recovery_confirmation: String,
}

impl SeedInput {
    pub fn parse(text: &str, origin: &str) -> Result<SeedInput> {
        serde_json::from_str(text).map_err(|e| {
            Error::invalid(
                "input",
                format!(
                    "{origin} is not a valid recovery payload: {e}; expected {{\"incidentId\": \
                     \"incident-2025-001\", \"pitrBackupTime\": \"2025-01-15T09:00:00+00:00\", \
                     \"tableNameRecoveryConfirmation\": \"<physical table name>\"}}"
                ),
            )
        })
    }

    /// Reads a file, or standard input for `-`.
    pub fn read(path: &str) -> Result<SeedInput> {
        let text = if path == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::invalid("input", format!("cannot read standard input: {e}")))?;
            s
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| Error::invalid("input", format!("cannot read {path}: {e}; pass an existing JSON file or - for standard input")))?
        };
        SeedInput::parse(&text, if path == "-" { "standard input" } else { path })
    }
}

/// The payload of a table's restore state machine (`dynamo-dr stack`): the seed's three fields,
/// or a backup instead of the PITR time, and optionally a targeted scope. Unknown fields are
/// refused, as in [`SeedInput`].
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StackInput {
    pub incident_id: String,
    pub table_name_recovery_confirmation: String,
    /// `latest` or an RFC 3339 time; or
    #[serde(default)]
    pub pitr_backup_time: Option<String>,
    /// the ARN of an on-demand backup of the table.
    #[serde(default)]
    pub backup_arn: Option<String>,
    /// `table` (the default), `missing`, `keys`, `partition` or `window`.
    #[serde(default)]
    pub scope: Option<String>,
    /// For `keys`: `s3://BUCKET/KEY` of a keys file.
    #[serde(default)]
    pub keys: Option<String>,
    /// For `partition`: the partition key values.
    #[serde(default)]
    pub partition_values: Vec<String>,
    /// For `window`: its start and end (RFC 3339); the writes between them are undone.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// For `window`: the export's bucket, which must be the table's configured `export_bucket`
    /// (the one the stack's role may write to); its prefix comes from the config.
    #[serde(default)]
    pub export_bucket: Option<String>,
    /// For `window`: write back without a condition, overwriting writes made after the window.
    #[serde(default)]
    pub overwrite_later_writes: bool,
}

/// The restore point a payload names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointIn<'a> {
    Time(&'a str),
    Backup(&'a str),
}

/// The valid payloads, for refusals.
const STACK_FORMS: &str = "{\"incidentId\", \"tableNameRecoveryConfirmation\", and \
    \"pitrBackupTime\" or \"backupArn\"}, optionally with \"scope\": \"missing\", \
    \"scope\": \"keys\" and \"keys\": \"s3://BUCKET/KEY\", or \"scope\": \"partition\" \
    and \"partitionValues\": [...]; or, with no restore point, \"scope\": \"window\", \
    \"from\" and \"to\" (RFC 3339), optionally \"overwriteLaterWrites\": true";

impl StackInput {
    pub fn parse(value: &serde_json::Value) -> Result<StackInput> {
        let input: StackInput = serde_json::from_value(value.clone()).map_err(|e| {
            Error::invalid(
                "input",
                format!("the execution's input is not a valid recovery payload: {e}; expected {STACK_FORMS}"),
            )
        })?;
        if input.scope.as_deref() == Some("window") {
            if input.pitr_backup_time.is_some() || input.backup_arn.is_some() {
                return Err(Error::invalid(
                    "input",
                    format!(
                        "a window is undone from DynamoDB's export of its writes, not from a \
                         restore point: drop \"pitrBackupTime\" and \"backupArn\"; expected \
                         {STACK_FORMS}"
                    ),
                ));
            }
            return Ok(input);
        }
        let window_field = [
            ("from", input.from.is_some()),
            ("to", input.to.is_some()),
            ("exportBucket", input.export_bucket.is_some()),
            ("overwriteLaterWrites", input.overwrite_later_writes),
        ];
        if let Some((field, _)) = window_field.iter().find(|(_, given)| *given) {
            return Err(Error::invalid(
                "input",
                format!("\"{field}\" goes with \"scope\": \"window\"; expected {STACK_FORMS}"),
            ));
        }
        input.point()?;
        Ok(input)
    }

    /// The PITR time or the backup: exactly one.
    pub fn point(&self) -> Result<PointIn<'_>> {
        match (&self.pitr_backup_time, &self.backup_arn) {
            (Some(t), None) => Ok(PointIn::Time(t)),
            (None, Some(arn)) => Ok(PointIn::Backup(arn)),
            (Some(_), Some(_)) => Err(Error::invalid(
                "input",
                format!(
                    "give \"pitrBackupTime\" or \"backupArn\", not both; expected {STACK_FORMS}"
                ),
            )),
            (None, None) => Err(Error::invalid(
                "input",
                format!(
                    "no restore point: give \"pitrBackupTime\" or \"backupArn\"; expected {STACK_FORMS}"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_example_and_refuses_unknown_fields() {
        let ok = SeedInput::parse(
            r#"{"incidentId": "transaction-corruption-20250115", "pitrBackupTime": "2025-01-15T09:00:00+00:00",
                "tableNameRecoveryConfirmation": "Prod-PersistentStack-TransactionHistoryTable00A96798-C6VX9JVDOYGN"}"#,
            "t",
        )
        .unwrap();
        assert_eq!(ok.incident_id, "transaction-corruption-20250115");
        let e = SeedInput::parse(
            r#"{"incidentId":"a","pitrBackupTime":"latest","tableNameRecoveryConfirmaton":"x"}"#,
            "t",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("tableNameRecoveryConfirmaton"),
            "{e}"
        );
    }

    #[test]
    fn a_stack_payload_names_one_restore_point() {
        let seed = serde_json::json!({"incidentId": "i", "pitrBackupTime": "latest",
            "tableNameRecoveryConfirmation": "T"});
        let ok = StackInput::parse(&seed).unwrap();
        assert_eq!(ok.point().unwrap(), PointIn::Time("latest"));
        let backup = serde_json::json!({"incidentId": "i", "backupArn": "arn:b",
            "tableNameRecoveryConfirmation": "T", "scope": "keys", "keys": "s3://b/k"});
        let ok = StackInput::parse(&backup).unwrap();
        assert_eq!(ok.point().unwrap(), PointIn::Backup("arn:b"));
        for bad in [
            serde_json::json!({"incidentId": "i", "tableNameRecoveryConfirmation": "T"}),
            serde_json::json!({"incidentId": "i", "tableNameRecoveryConfirmation": "T",
                "pitrBackupTime": "latest", "backupArn": "arn:b"}),
            serde_json::json!({"incidentId": "i", "tableNameRecoveryConfirmation": "T",
                "pitrBackupTime": "latest", "partitionValue": ["a"]}),
        ] {
            let err = StackInput::parse(&bad).unwrap_err();
            assert_eq!(
                err.exit_status(),
                crate::error::ExitStatus::Refused,
                "{bad}"
            );
            assert!(err.to_string().contains("backupArn"), "{err}");
        }
    }

    #[test]
    fn a_window_payload_has_no_restore_point_and_window_fields_go_with_it() {
        let window = serde_json::json!({"incidentId": "i", "tableNameRecoveryConfirmation": "T",
            "scope": "window", "from": "2025-01-15T09:05:00Z", "to": "2025-01-15T09:45:00Z"});
        let ok = StackInput::parse(&window).unwrap();
        assert_eq!(ok.from.as_deref(), Some("2025-01-15T09:05:00Z"));
        let mut with_point = window.clone();
        with_point["pitrBackupTime"] = serde_json::json!("latest");
        let err = StackInput::parse(&with_point).unwrap_err();
        assert!(err.to_string().contains("drop \"pitrBackupTime\""), "{err}");
        let stray = serde_json::json!({"incidentId": "i", "tableNameRecoveryConfirmation": "T",
            "pitrBackupTime": "latest", "from": "2025-01-15T09:05:00Z"});
        let err = StackInput::parse(&stray).unwrap_err();
        assert!(err.to_string().contains("\"from\" goes with"), "{err}");
        assert_eq!(err.exit_status(), crate::error::ExitStatus::Refused);
    }
}
