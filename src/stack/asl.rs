//! The state machines' definitions (Amazon States Language, JSONPath): the parent, the child
//! and the recovery-mode machine, with `${Function}` and `${SyncMachine}` left for
//! CloudFormation's `DefinitionSubstitutions`.

use serde_json::{Value, json};

use super::INLINE_MAP_LIMIT;

/// Lambda's own transient errors, retried with backoff and full jitter; the handler's errors are
/// not: its steps are safe to repeat, but an error it returns needs the operator.
fn lambda_retry() -> Value {
    json!([{ "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException",
        "Lambda.SdkClientException", "Lambda.TooManyRequestsException"],
        "IntervalSeconds": 2, "MaxAttempts": 6, "BackoffRate": 2, "JitterStrategy": "FULL" }])
}

/// A Task invoking the table's function with `payload`; its answer replaces `$.run`.
fn invoke(payload: Value, next: &str) -> Value {
    json!({
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": { "FunctionName": "${Function}", "Payload": payload },
        "ResultSelector": { "executionId.$": "$.Payload.executionId", "phase.$": "$.Payload.phase",
            "state.$": "$.Payload.state", "waitSeconds.$": "$.Payload.waitSeconds",
            "segments.$": "$.Payload.segments" },
        "ResultPath": "$.run",
        "Retry": lambda_retry(),
        "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed" }],
        "Next": next,
    })
}

/// `$.run` to the next state: a sync phase (delete or copy) to the child, then by `state`:
/// wait, continue (the same Task again), done, failed. The phase comes first: once phase 1 is
/// done the handler answers `continue` in the delete (or, resumed, the copy) phase, and a
/// targeted scope planned again after a check hands its phases back to the child too.
fn route(wait: &str, again: &str, done: &str) -> Value {
    json!({
        "Type": "Choice",
        "Choices": [
            { "Or": [
                { "Variable": "$.run.phase", "StringEquals": "delete" },
                { "Variable": "$.run.phase", "StringEquals": "copy" },
              ], "Next": "SyncTableData" },
            { "Variable": "$.run.state", "StringEquals": "wait", "Next": wait },
            { "Variable": "$.run.state", "StringEquals": "continue", "Next": again },
            { "Variable": "$.run.state", "StringEquals": "done", "Next": done },
        ],
        "Default": "Failed",
    })
}

fn failed() -> Value {
    json!({ "Type": "Fail", "Error": "RecoveryFailed",
        "Cause": "the step's error is in this execution's history and the journal; `dynamo-dr status` and `dynamo-dr resume` continue from the CLI" })
}

/// The parent: the seed's payload, refused in the first state when bad, then backup and
/// restore (polling with Wait states the handler sizes), the child, then check and clean-up.
pub fn restore_definition(logical: &str) -> Value {
    let run = json!({ "executionId.$": "$.run.executionId" });
    let mut advance = run.clone();
    advance["action"] = json!("advance");
    json!({
        "Comment": format!("In-place recovery of {logical} by dynamo-dr. Input: {{\"incidentId\", \"tableNameRecoveryConfirmation\", \"pitrBackupTime\" or \"backupArn\"}}, optionally \"scope\" (missing, keys with \"keys\": \"s3://BUCKET/KEY\", partition with \"partitionValues\")"),
        "StartAt": "Validate",
        "States": {
            "Validate": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": { "FunctionName": "${Function}",
                    "Payload": { "action": "start", "table": logical, "input.$": "$" } },
                "ResultSelector": { "executionId.$": "$.Payload.executionId", "phase.$": "$.Payload.phase",
                    "state.$": "$.Payload.state", "waitSeconds.$": "$.Payload.waitSeconds",
                    "segments.$": "$.Payload.segments" },
                "ResultPath": "$.run",
                "Retry": lambda_retry(),
                // The handler's refusals (exit 2 at the CLI) have this error type.
                "Catch": [{ "ErrorEquals": ["Refused"], "ResultPath": "$.error", "Next": "Refused" },
                          { "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed" }],
                "Next": "BackupAndRestore",
            },
            "BackupAndRestore": invoke(advance.clone(), "AfterBackupAndRestore"),
            "AfterBackupAndRestore": route("WaitForRestore", "BackupAndRestore", "CheckAndCleanUp"),
            "WaitForRestore": { "Type": "Wait", "SecondsPath": "$.run.waitSeconds", "Next": "BackupAndRestore" },
            "SyncTableData": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                "Parameters": { "StateMachineArn": "${SyncMachine}", "Input": { "executionId.$": "$.run.executionId" } },
                "ResultPath": null,
                "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed" }],
                "Next": "CheckAndCleanUp",
            },
            "CheckAndCleanUp": invoke(advance, "AfterCheck"),
            "AfterCheck": route("WaitForCheck", "CheckAndCleanUp", "Recovered"),
            "WaitForCheck": { "Type": "Wait", "SecondsPath": "$.run.waitSeconds", "Next": "CheckAndCleanUp" },
            "Recovered": { "Type": "Succeed" },
            "Refused": { "Type": "Fail", "Error": "Refused",
                "Cause": "the input was refused before anything was changed; the error says what was wrong and the valid form" },
            "Failed": failed(),
        },
    })
}

/// The child: the sync's phases, each fanned out over its segments with a Map whose iterations
/// advance one segment from its checkpoint until it is done.
pub fn sync_definition(logical: &str, max_concurrency: u32) -> Value {
    let mode = if max_concurrency > INLINE_MAP_LIMIT {
        json!({ "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD" })
    } else {
        json!({ "Mode": "INLINE" })
    };
    json!({
        "Comment": format!("The delete and copy phases of {logical}'s recovery by dynamo-dr, one Map iteration per scan segment"),
        "StartAt": "Phase",
        "States": {
            "Phase": invoke(json!({ "action": "phase", "executionId.$": "$.executionId" }), "AfterPhase"),
            "AfterPhase": {
                "Type": "Choice",
                "Choices": [
                    { "Variable": "$.run.state", "StringEquals": "continue", "Next": "Segments" },
                    { "Variable": "$.run.state", "StringEquals": "done", "Next": "Synced" },
                ],
                "Default": "Failed",
            },
            "Segments": {
                "Type": "Map",
                "ItemsPath": "$.run.segments",
                "ItemSelector": { "executionId.$": "$.run.executionId", "phase.$": "$.run.phase",
                    "segment.$": "$$.Map.Item.Value" },
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": mode,
                    "StartAt": "Segment",
                    "States": {
                        "Segment": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": { "FunctionName": "${Function}",
                                "Payload": { "action": "segment", "executionId.$": "$.executionId",
                                    "phase.$": "$.phase", "segment.$": "$.segment" } },
                            "ResultSelector": { "executionId.$": "$.Payload.executionId",
                                "phase.$": "$.Payload.phase", "segment.$": "$.Payload.segment",
                                "state.$": "$.Payload.state" },
                            "Retry": lambda_retry(),
                            "Next": "SegmentDone",
                        },
                        "SegmentDone": {
                            "Type": "Choice",
                            "Choices": [{ "Variable": "$.state", "StringEquals": "continue", "Next": "Segment" }],
                            "Default": "SegmentEnd",
                        },
                        "SegmentEnd": { "Type": "Succeed" },
                    },
                },
                "ResultPath": null,
                "Catch": [{ "ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed" }],
                "Next": "Phase",
            },
            "Synced": { "Type": "Succeed" },
            "Failed": failed(),
        },
    })
}

/// The recovery-mode machine of an environment: one Task, `{"change": "start" | "end"}`.
pub fn recovery_mode_definition(name: &str) -> Value {
    json!({
        "Comment": format!("Recovery mode of environment {name} by dynamo-dr. Input: {{\"change\": \"start\" | \"end\"}}"),
        "StartAt": "Change",
        "States": {
            "Change": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": { "FunctionName": "${Function}",
                    "Payload": { "action": "recovery-mode", "environment": name, "change.$": "$.change" } },
                "Retry": lambda_retry(),
                "OutputPath": "$.Payload",
                "End": true,
            },
        },
    })
}
