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
}
