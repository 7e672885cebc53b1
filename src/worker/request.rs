//! The restore a payload asks for, and the one a recorded execution continues with: built as
//! the CLI's `restore` and `resume` build theirs, so that both drivers run the same request.

use crate::error::{Error, Result};
use crate::input::{PointIn, StackInput};
use crate::journal::{Execution, Kind, Scope};
use crate::options;
use crate::restore::{RestoreRequest, Source};
use crate::session::Session;
use crate::validate;

/// The restore the payload asks for, checked as `restore` checks its flags.
pub(super) fn seed_request(
    session: &Session,
    logical: &str,
    input: serde_json::Value,
) -> Result<RestoreRequest> {
    let input = StackInput::parse(&input)?;
    let table = session.config.resolve("table", logical)?;
    validate::confirmation(&input.table_name_recovery_confirmation, &table.physical)?;
    let incident = validate::incident_id(&input.incident_id)?;
    let now = jiff::Timestamp::now();
    let scope = stack_scope(&input, now)?;
    let source = match &scope {
        Scope::Window { from, .. } => Source::Pitr(validate::PitrTime::At(*from)),
        _ => match input.point()? {
            PointIn::Time(t) => Source::Pitr(validate::pitr_time(t, now)?),
            PointIn::Backup(arn) => Source::Backup(validate::backup_arn(arn)?),
        },
    };
    session.require_key(table.options.sensitive.unwrap_or(false), &table.physical)?;
    options::keys_scope(&table.options, &scope)?;
    let scope = stack_export_target(&scope, &table.options)?;
    let sync = options::sync_options(
        session,
        Some(&table.options),
        options::Requested {
            page_limit: table.options.scan_page_limit,
            ..Default::default()
        },
    );
    let table = (table.physical.as_str(), &table.options);
    RestoreRequest::new(table, incident, source, scope, sync)
}

/// A window's export goes where the stack's role may write: the table's configured bucket.
fn stack_export_target(scope: &Scope, options: &crate::config::TableOptions) -> Result<Scope> {
    if matches!(scope, Scope::Window { .. }) && options.export_bucket.is_none() {
        return Err(Error::invalid(
            "exportBucket",
            "the table has no export_bucket in its config, so the stack's role may write an \
             export nowhere; set export_bucket (and export_prefix) for the table, deploy again \
             with `dynamo-dr stack`, then start the execution again",
        ));
    }
    options::export_target(scope, options, "exportBucket")
}

/// The payload's scope; a keys file is an S3 object (a function has no operator's disk).
fn stack_scope(input: &StackInput, now: jiff::Timestamp) -> Result<Scope> {
    let refused = |why: &str| {
        Error::invalid(
            "scope",
            format!(
                "{why}; give \"scope\": \"table\" (the default), \"missing\", \"keys\" with \
                 \"keys\": \"s3://BUCKET/KEY\", \"partition\" with \"partitionValues\": [...], \
                 or \"window\" with \"from\" and \"to\""
            ),
        )
    };
    let scope = match (input.scope.as_deref().unwrap_or("table"), &input.keys) {
        ("table", None) => Scope::Table,
        ("missing", None) => Scope::Missing,
        ("keys", Some(uri)) if crate::objects::S3Uri::parse(uri)?.is_some() => Scope::Keys {
            file: uri.clone(),
            sha256: String::new(),
            keys: 0,
        },
        ("keys", Some(other)) => return Err(refused(&format!("{other} is not an S3 URI"))),
        ("keys", None) => return Err(refused("scope keys needs \"keys\"")),
        ("partition", None) if !input.partition_values.is_empty() => Scope::Partition {
            values: input.partition_values.clone(),
        },
        ("partition", None) => return Err(refused("scope partition needs \"partitionValues\"")),
        ("window", None) => {
            let ends = (input.from.as_deref(), input.to.as_deref());
            let (from, to) = validate::window(ends, ["from", "to"], now)?;
            Scope::Window {
                from,
                to,
                bucket: input.export_bucket.clone().unwrap_or_default(),
                prefix: None,
                overwrite_later_writes: input.overwrite_later_writes,
            }
        }
        (_, Some(_)) => return Err(refused("\"keys\" goes with scope keys")),
        (other, None) => return Err(refused(&format!("{other:?} is not a scope"))),
    };
    if !matches!(scope, Scope::Partition { .. }) && !input.partition_values.is_empty() {
        return Err(refused("\"partitionValues\" goes with scope partition"));
    }
    Ok(scope)
}

/// The request a recorded restore continues with, as `resume` builds it.
pub(super) fn recorded_request(session: &Session, exec: &Execution) -> Result<RestoreRequest> {
    session.config.guard("table", &exec.inputs.table)?;
    if exec.kind != Kind::Restore {
        return Err(Error::invalid(
            "executionId",
            format!(
                "{} is a sync; the state machines run restores only. Continue it with \
                 `dynamo-dr resume {}`",
                exec.id, exec.id
            ),
        ));
    }
    let page_limit = session
        .config
        .resolve("table", &exec.inputs.table)
        .ok()
        .and_then(|t| t.options.scan_page_limit);
    RestoreRequest::recorded(exec, options::recorded(session, exec, page_limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_in_the_stack_exports_only_to_the_configured_bucket() {
        let scope = Scope::Window {
            from: "2025-01-15T09:05:00Z".parse().unwrap(),
            to: "2025-01-15T09:45:00Z".parse().unwrap(),
            bucket: String::new(),
            prefix: None,
            overwrite_later_writes: false,
        };
        let none = crate::config::TableOptions::default();
        let e = stack_export_target(&scope, &none).unwrap_err();
        assert!(e.to_string().contains("dynamo-dr stack"), "{e}");
        let configured = crate::config::TableOptions {
            export_bucket: Some("dr-exports".into()),
            export_prefix: Some("incidents/".into()),
            ..Default::default()
        };
        match stack_export_target(&scope, &configured).unwrap() {
            Scope::Window { bucket, prefix, .. } => {
                assert_eq!(
                    (bucket.as_str(), prefix.as_deref()),
                    ("dr-exports", Some("incidents/"))
                )
            }
            other => panic!("{other:?}"),
        }
        let mut elsewhere = scope.clone();
        if let Scope::Window { bucket, .. } = &mut elsewhere {
            *bucket = "other".into();
        }
        assert!(stack_export_target(&elsewhere, &configured).is_err());
    }
}
