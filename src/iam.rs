//! Least-privilege IAM policies: exactly the calls dynamo-dr makes for one table's recovery, or
//! for one environment's recovery mode, on exactly those resources. The seed gives each table's
//! Step Function minimal, table-specific permissions; this makes that policy for any role.

use serde_json::{Value, json};

use crate::config::EnvironmentConfig;
use crate::restore::{EXECUTION_TAG, INCIDENT_TAG, SOURCE_TAG};
use crate::validate::{NAME_SEPARATOR, TEMP_TABLE_PREFIX};

/// Where the policy applies: one region always; the account is `*` where the operator did not
/// say.
#[derive(Debug, Clone)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Scope {
    fn dynamodb(&self, resource: &str) -> String {
        format!(
            "arn:{}:dynamodb:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    fn lambda(&self, resource: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
}

/// What the policy is for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Physical table names to restore (and sync into).
    pub tables: Vec<String>,
    /// The shared journal's control table, when one is used.
    pub journal_table: Option<String>,
    /// An environment whose recovery mode the role runs.
    pub recovery_mode: Option<RecoveryMode>,
    /// Customer managed KMS keys of the tables: the backup, the restore (which keeps the key)
    /// and every read and write go through them.
    pub kms_keys: Vec<String>,
    /// The KMS key that wraps sensitive tables' journal keys (`--journal-kms-key`), as an ARN.
    pub journal_kms_key: Option<String>,
    /// Also `journal init`: CreateTable on the journal table, in a statement of its own so that
    /// it can be granted once and removed.
    pub journal_init: bool,
    /// Also `restore --prewarm`: UpdateTable on the live tables, in a statement of its own.
    pub prewarm: bool,
    /// The role of one of the stack's functions: it reads and writes only its own journal items
    /// and never lists the journal, as an operator's `report` and `journal list` do.
    pub function: bool,
    /// Environments whose recovery-mode record the tables' runs read before they write.
    pub environments: Vec<String>,
    /// Where keys files are read from S3 (the tables' `keys_location`, `s3://BUCKET/PREFIX`).
    pub keys_locations: Vec<String>,
    /// Where `--scope window` writes its incremental exports (the tables' `export_bucket` and
    /// `export_prefix`, as `s3://BUCKET/PREFIX`).
    pub export_locations: Vec<String>,
}

/// The recovery mode of one environment.
#[derive(Debug, Clone)]
pub struct RecoveryMode {
    pub name: String,
    pub env: EnvironmentConfig,
    /// The environment's tables: `end` reads their leases.
    pub tables: Vec<String>,
}

/// Actions a policy grants that no test's request reaches, with the call that needs them and
/// why no test reaches it: `(statement id prefix, action, why)`. The least-privilege suite
/// fails on any other grant that no recorded request used.
pub const UNREACHED: &[(&str, &str, &str)] = &[
    (
        "TableKmsKeys",
        "kms:*",
        "DynamoDB itself calls KMS for a table with a customer managed key, on the caller's \
         behalf (kms:ViaService), when it backs it up, restores it and reads or writes it; no \
         emulator encrypts tables, so no recorded request reaches the key",
    ),
    (
        "ListBackups",
        "dynamodb:ListBackups",
        "restore/backup.rs find_backup: after CreateBackup's answer was lost, the forensic backup \
         is adopted by listing the table's backups; tests/integration/faults.rs loses answers, \
         this suite's recorder does not",
    ),
    (
        "ExportObjects",
        "s3:PutObject",
        "DynamoDB writes an export's objects as the caller (Developer Guide, \"Requesting a table \
         export\": s3:PutObject, s3:PutObjectAcl, s3:AbortMultipartUpload); the testkit's export \
         writes them to moto itself, so no recorded request of the tool's reaches them",
    ),
    (
        "ExportObjects",
        "s3:PutObjectAcl",
        "as s3:PutObject: the export's own writes",
    ),
    (
        "ExportObjects",
        "s3:AbortMultipartUpload",
        "as s3:PutObject: the export's own writes",
    ),
    (
        "JournalInit",
        "dynamodb:DescribeTable",
        "also granted by the Journal statements; kept here so that the init statement alone \
         suffices for `journal init`",
    ),
];
/// A region code such as us-east-1 or ap-southeast-2 (no wildcards), else why not.
pub fn region(region: &str) -> Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .iter()
            .take(parts.len() - 1)
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok_and(|n| n > 0);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{region:?} is not an AWS region code, e.g. us-east-1 or eu-west-2"
        ))
    }
}

/// A KMS key ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID`), else why not.
pub fn kms_key_arn(arn: &str) -> Result<(), String> {
    match arn.splitn(6, ':').collect::<Vec<_>>().as_slice() {
        ["arn", partition, "kms", region, account, resource]
            if !arn.contains(['*', '?'])
                && !partition.is_empty()
                && !region.is_empty()
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && resource
                    .strip_prefix("key/")
                    .is_some_and(|id| !id.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{arn:?} is not a KMS key ARN, e.g. \
             arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        )),
    }
}

fn statement(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// Statement ids may hold only letters and digits.
fn sid(prefix: &str, name: &str) -> String {
    let clean: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{prefix}{clean}")
}

fn deny(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Deny", "Action": actions, "Resource": resources })
}

/// Two tables whose names make one's patterns match the other's resources cannot share a
/// policy: `A`'s temporary tables `DR-TEMP-A.*` and `A.B`'s `DR-TEMP-A.B.*` differ only in a
/// dot, and so do the execution ids `*.B` and `*.A.B`, since table names may hold dots. Each
/// policy denies the other's, so such tables need a role each.
pub fn shareable(tables: &[String]) -> Result<(), String> {
    for a in tables {
        let sep = NAME_SEPARATOR;
        if let Some(b) = tables
            .iter()
            .find(|b| b.starts_with(&format!("{a}{sep}")) || b.ends_with(&format!("{sep}{a}")))
        {
            return Err(format!(
                "{a} and {b} cannot share one policy: table names may hold dots, so the patterns \
                 that name {a}'s temporary tables and journal items would also name {b}'s, and \
                 the policy denies those; print one policy per table and give each its own role"
            ));
        }
    }
    Ok(())
}

/// The policy document. Tables must be [`shareable`].
pub fn policy(scope: &Scope, req: &Request) -> Value {
    let mut statements = Vec::new();
    for table in &req.tables {
        statements.extend(table_statements(scope, table));
        if req.prewarm {
            // No condition key limits UpdateTable to warm throughput: an opt-in of its own.
            let live = scope.dynamodb(&format!("table/{table}"));
            statements.push(statement(
                &sid("Prewarm", table),
                &["dynamodb:UpdateTable"],
                vec![live],
            ));
        }
    }
    if !req.tables.is_empty() {
        // Neither call has resource-level permissions: ListBackups finds a run's forensic
        // backup, ListEventSourceMappings the consumers of a table's stream for the plan.
        statements.push(statement(
            "ListBackups",
            &["dynamodb:ListBackups"],
            vec!["*".into()],
        ));
        statements.push(statement(
            "StreamConsumers",
            &["lambda:ListEventSourceMappings"],
            vec!["*".into()],
        ));
    }
    statements.extend(keys_statements(scope, req));
    statements.extend(export_statements(scope, req));
    statements.extend(table_kms_statements(scope, req));
    statements.extend(journal_kms_statements(req));
    if let Some(journal) = &req.journal_table {
        statements.extend(journal_statements(scope, req, journal));
    }
    if let Some(mode) = &req.recovery_mode {
        statements.extend(recovery_mode_statements(scope, mode));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// Reading keys files under the tables' `keys_location`s, and nothing else in S3.
fn keys_statements(scope: &Scope, req: &Request) -> Option<Value> {
    let places: Vec<String> = req
        .keys_locations
        .iter()
        .filter_map(|l| crate::validate::S3Uri::location(l).ok())
        .map(|l| format!("arn:{}:s3:::{}/{}*", scope.partition, l.bucket, l.key))
        .collect();
    (!places.is_empty()).then(|| statement("KeysObjects", &["s3:GetObject"], places))
}

/// A window scope's incremental export of the tables, written to their export locations and
/// read back from there; nothing else in S3.
fn export_statements(scope: &Scope, req: &Request) -> Vec<Value> {
    let places: Vec<String> = req
        .export_locations
        .iter()
        .filter_map(|l| crate::validate::S3Uri::location(l).ok())
        .map(|l| format!("arn:{}:s3:::{}/{}*", scope.partition, l.bucket, l.key))
        .collect();
    if places.is_empty() {
        return Vec::new();
    }
    let tables = |rest: &str| -> Vec<String> {
        let arn = |t: &String| scope.dynamodb(&format!("table/{t}{rest}"));
        req.tables.iter().map(arn).collect()
    };
    vec![
        statement(
            "Exports",
            &["dynamodb:ExportTableToPointInTime"],
            tables(""),
        ),
        statement(
            "ExportStatus",
            &["dynamodb:DescribeExport"],
            tables("/export/*"),
        ),
        statement(
            "ExportObjects",
            &[
                "s3:PutObject",
                "s3:PutObjectAcl",
                "s3:AbortMultipartUpload",
                "s3:GetObject",
            ],
            places,
        ),
    ]
}

/// What restoring `table` in place needs, from the command line or a stack's function alike.
fn table_statements(scope: &Scope, table: &str) -> Vec<Value> {
    let live = scope.dynamodb(&format!("table/{table}"));
    let temp_name = |rest: &str| {
        scope.dynamodb(&format!(
            "table/{TEMP_TABLE_PREFIX}{table}{NAME_SEPARATOR}{rest}"
        ))
    };
    let temp = temp_name("*");
    // Preflight, forensic backup, the restore's source, the hard reset or diff, and what else
    // sees the table's writes, for the plan and the default strategy.
    let live_actions = [
        "dynamodb:DescribeTable",
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:CreateBackup",
        "dynamodb:RestoreTableToPointInTime",
        "dynamodb:Scan",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:DescribeKinesisStreamingDestination",
        // The targeted scopes write each key conditionally (a key absent at the restore point
        // is deleted) and read conflicts back with BatchGetItem; the partition scope reads its
        // key with Query.
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
    ];
    let backup_actions = ["dynamodb:DescribeBackup", "dynamodb:RestoreTableFromBackup"];
    let temp_actions = [
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ListTagsOfResource",
        // The Service Authorization Reference lists the target table as a resource of
        // RestoreTableFromBackup, beside the backup.
        "dynamodb:RestoreTableFromBackup",
    ];
    let mut out = vec![
        statement(&sid("LiveTable", table), &live_actions, vec![live.clone()]),
        statement(
            &sid("Backups", table),
            &backup_actions,
            vec![format!("{live}/backup/*")],
        ),
        // A restore writes into its target table with these.
        statement(
            &sid("TemporaryTables", table),
            &temp_actions,
            vec![temp.clone()],
        ),
        // Incident ids hold no dot, so a copy of this table has exactly one after its name; one
        // with more is a copy of a table whose name continues with a dot.
        deny(
            &sid("OtherTablesCopies", table),
            &["dynamodb:*"],
            vec![temp_name("*.*")],
        ),
    ];
    out.extend(ownership_statements(table, temp));
    out
}

/// Tagging a copy as this table's, and deleting only such copies.
fn ownership_statements(table: &str, temp: String) -> Vec<Value> {
    // Tagging is what makes a table the tool's own (clean-up deletes by these tags), so the
    // role may tag only tables that carry no execution tag yet, only with the tool's three
    // keys, and only as this table's copy: it cannot make another run's table, or any other
    // table, look like its own. Condition keys as DynamoDB's ABAC documents them:
    // <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/abac-example-use-cases.html>.
    let mut tag = statement(
        &sid("TagTemporaryTables", table),
        &["dynamodb:TagResource"],
        vec![temp.clone()],
    );
    tag["Condition"] = json!({
        "Null": { format!("aws:ResourceTag/{EXECUTION_TAG}"): "true" },
        "StringEquals": { format!("aws:RequestTag/{SOURCE_TAG}"): table },
        "ForAllValues:StringEquals": { "aws:TagKeys": [EXECUTION_TAG, INCIDENT_TAG, SOURCE_TAG] },
    });
    // Only tables the tool tagged as this table's temporary copies.
    let mut delete = statement(
        &sid("DeleteTemporaryTables", table),
        &["dynamodb:DeleteTable"],
        vec![temp],
    );
    delete["Condition"] = json!({
        "StringEquals": { format!("aws:ResourceTag/{SOURCE_TAG}"): table }
    });
    vec![tag, delete]
}

fn table_kms_statements(scope: &Scope, req: &Request) -> Option<Value> {
    if req.kms_keys.is_empty() {
        return None;
    }
    // Only through DynamoDB: the role cannot use the key for anything else. The actions are
    // those a table with a customer managed key needs:
    // <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/encryption.usagenotes.html>.
    let mut kms = statement(
        "TableKmsKeys",
        &[
            "kms:DescribeKey",
            "kms:Encrypt",
            "kms:Decrypt",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:CreateGrant",
        ],
        req.kms_keys.clone(),
    );
    kms["Condition"] = json!({
        "StringEquals": { "kms:ViaService": format!("dynamodb.{}.amazonaws.com", scope.region) }
    });
    Some(kms)
}

/// Execution ids are `<incident>.<table>` ([`crate::validate::execution_id`]) and incident ids
/// hold no dot: the patterns for this table's ids, and for those of tables whose names end in
/// `.<table>`.
fn execution_ids(table: &str) -> (String, String) {
    let sep = NAME_SEPARATOR;
    (format!("*{sep}{table}"), format!("*{sep}*{sep}{table}"))
}

fn journal_kms_statements(req: &Request) -> Vec<Value> {
    let Some(key) = req
        .journal_kms_key
        .as_ref()
        .filter(|_| !req.tables.is_empty())
    else {
        return Vec::new();
    };
    // Only data keys bound to one of these tables' executions, as the tool makes them.
    let context = format!(
        "kms:EncryptionContext:{}",
        crate::journal::envelope::CONTEXT_KEY
    );
    let (own, other): (Vec<_>, Vec<_>) = req.tables.iter().map(|t| execution_ids(t)).unzip();
    let actions = ["kms:GenerateDataKey", "kms:Decrypt"];
    let mut allow = statement("JournalKmsKey", &actions, vec![key.clone()]);
    allow["Condition"] = json!({ "StringLike": { &context: own } });
    let mut refuse = deny("JournalKmsKeyOtherTables", &actions, vec![key.clone()]);
    refuse["Condition"] = json!({ "StringLike": { &context: other } });
    vec![allow, refuse]
}

/// The journal items the role may write, and those of other tables that its patterns would
/// also match (see [`execution_ids`]).
fn journal_keys(req: &Request) -> (Vec<String>, Vec<String>) {
    use crate::journal::dynamo::{execution_pk, lease_pk, recovery_mode_pk, segments_pk};
    let (mut own, mut other) = (Vec::new(), Vec::new());
    for table in &req.tables {
        let (mine, theirs) = execution_ids(table);
        own.extend([
            lease_pk(table),
            execution_pk(&mine),
            format!("{}*", segments_pk(&mine)),
        ]);
        other.extend([execution_pk(&theirs), format!("{}*", segments_pk(&theirs))]);
    }
    if let Some(mode) = &req.recovery_mode {
        own.push(recovery_mode_pk(&mode.name));
        own.push(lease_pk(&crate::journal::environment_lease(&mode.name)));
    }
    (own, other)
}

/// The journal items the role reads but never writes: the recovery-mode record of the tables'
/// environments, and the leases of the environment's tables for recovery mode's `end`.
fn journal_reads(req: &Request) -> Vec<String> {
    use crate::journal::dynamo::{lease_pk, recovery_mode_pk};
    let mut keys: Vec<String> = req
        .environments
        .iter()
        .map(|e| recovery_mode_pk(e))
        .collect();
    if let Some(mode) = &req.recovery_mode {
        keys.extend(mode.tables.iter().map(|t| lease_pk(t)));
    }
    keys
}

fn journal_statements(scope: &Scope, req: &Request, journal: &str) -> Vec<Value> {
    let arn = scope.dynamodb(&format!("table/{journal}"));
    let leading = |keys: Vec<String>| json!({ "dynamodb:LeadingKeys": keys });
    let (own, other) = journal_keys(req);
    let mut out = Vec::new();
    if req.function {
        out.push(statement(
            "JournalTable",
            &["dynamodb:DescribeTable"],
            vec![arn.clone()],
        ));
        let reads = journal_reads(req);
        if !reads.is_empty() {
            let mut read = statement("JournalReads", &["dynamodb:GetItem"], vec![arn.clone()]);
            read["Condition"] = json!({ "ForAllValues:StringEquals": leading(reads) });
            out.push(read);
        }
    } else {
        // `report` and `journal list` read every execution.
        out.push(statement(
            "JournalTable",
            &[
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:Scan",
            ],
            vec![arn.clone()],
        ));
    }
    // Never DeleteItem: leases are released, not deleted, so that their fencing numbers only
    // grow; records and checkpoints stay for the audit trail.
    let item_actions: &[&str] = if req.function {
        &["dynamodb:GetItem", "dynamodb:PutItem"]
    } else {
        &["dynamodb:PutItem"]
    };
    // Leases, records and checkpoints of these tables and this environment alone:
    // <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html>.
    let mut items = statement("JournalItems", item_actions, vec![arn.clone()]);
    items["Condition"] = json!({ "ForAllValues:StringLike": leading(own) });
    out.push(items);
    if !other.is_empty() {
        let mut refuse = deny("JournalOtherTables", item_actions, vec![arn.clone()]);
        refuse["Condition"] = json!({ "ForAnyValue:StringLike": leading(other) });
        out.push(refuse);
    }
    if req.journal_init {
        out.push(statement(
            "JournalInit",
            &["dynamodb:CreateTable", "dynamodb:DescribeTable"],
            vec![arn],
        ));
    }
    out
}

/// Pausing and resuming the environment's functions: those of its prefix carrying all its
/// tags, never an excluded one.
fn function_statements(scope: &Scope, mode: &RecoveryMode, functions: &str) -> Vec<Value> {
    let name = &mode.name;
    let mut concurrency = statement(
        &sid("FunctionConcurrency", name),
        &[
            "lambda:GetFunctionConcurrency",
            "lambda:PutFunctionConcurrency",
            "lambda:DeleteFunctionConcurrency",
        ],
        vec![functions.to_string()],
    );
    let mut out = Vec::new();
    if !mode.env.tags.is_empty() {
        // The environment's functions are those of the prefix carrying all its tags: the role
        // reads any function's tags to tell, and pauses only those that carry them.
        let tags: serde_json::Map<String, Value> = mode
            .env
            .tags
            .iter()
            .map(|(k, v)| (format!("aws:ResourceTag/{k}"), json!(v)))
            .collect();
        concurrency["Condition"] = json!({ "StringEquals": tags });
        out.push(statement(
            &sid("FunctionTags", name),
            &["lambda:ListTags"],
            vec![functions.to_string()],
        ));
    }
    out.push(concurrency);
    if !mode.env.exclude.is_empty() {
        // Excluded functions are never paused, nor their mappings changed.
        let excluded: Vec<String> = mode
            .env
            .exclude
            .iter()
            .map(|p| scope.lambda(&format!("function:{p}")))
            .collect();
        out.push(deny(
            &sid("ExcludedFunctions", name),
            &[
                "lambda:PutFunctionConcurrency",
                "lambda:DeleteFunctionConcurrency",
            ],
            excluded.clone(),
        ));
        let mut their_mappings = deny(
            &sid("ExcludedFunctionsMappings", name),
            &[
                "lambda:UpdateEventSourceMapping",
                "lambda:DeleteEventSourceMapping",
                "lambda:CreateEventSourceMapping",
            ],
            vec!["*".into()],
        );
        their_mappings["Condition"] = json!({ "ArnLike": { "lambda:FunctionArn": excluded } });
        out.push(their_mappings);
    }
    out
}

fn recovery_mode_statements(scope: &Scope, mode: &RecoveryMode) -> Vec<Value> {
    let name = &mode.name;
    let functions = scope.lambda(&format!("function:{}*", mode.env.function_prefix));
    let mappings = scope.lambda("event-source-mapping:*");
    let of_functions = json!({ "ArnLike": { "lambda:FunctionArn": functions.clone() } });
    // Listing has no resource-level permissions; the tool filters by prefix itself.
    let list = statement(
        &sid("ListLambda", name),
        &["lambda:ListFunctions", "lambda:ListEventSourceMappings"],
        vec!["*".into()],
    );
    let mut out = vec![list];
    out.extend(function_statements(scope, mode, &functions));
    // Only mappings of the environment's functions; Delete serves the `skip` policy, which
    // replaces a mapping by a tagged twin.
    let mut change = statement(
        &sid("EventSourceMappings", name),
        &[
            "lambda:UpdateEventSourceMapping",
            "lambda:DeleteEventSourceMapping",
        ],
        vec![mappings.clone()],
    );
    change["Condition"] = of_functions.clone();
    // ListTags and TagResource have no lambda:FunctionArn key
    // (<https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html>):
    // a condition on it would never hold. Nor has a deleted mapping a function: a Get that
    // confirms the delete (ResourceNotFound) would be AccessDenied under that condition. So the
    // reads are unconditioned: a mapping's settings and tags tell which is a twin. A tag can be
    // set only on a mapping being created as a twin, with the twin's tag.
    let reads = statement(
        &sid("MappingReads", name),
        &["lambda:GetEventSourceMapping", "lambda:ListTags"],
        vec![mappings.clone()],
    );
    let mut tag = statement(
        &sid("TagTwins", name),
        &["lambda:TagResource"],
        vec![mappings],
    );
    tag["Condition"] = json!({
        "Null": { format!("aws:RequestTag/{}", crate::mappings::REPLACES_TAG): "false" }
    });
    // CreateEventSourceMapping names no resource; the condition holds it to the functions.
    let mut create = statement(
        &sid("CreateEventSourceMapping", name),
        &["lambda:CreateEventSourceMapping"],
        vec!["*".into()],
    );
    create["Condition"] = of_functions;
    out.extend([change, reads, tag, create]);
    out
}

#[cfg(test)]
mod tests;
