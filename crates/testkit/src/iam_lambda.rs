//! Lambda's REST operations and Step Functions' JSON ones as IAM authorizations. Lambda's
//! operation is its method and path (<https://docs.aws.amazon.com/lambda/latest/api/API_Operations.html>);
//! its actions, resources and keys are those of
//! <https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html>.

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use crate::iam::{Authorization, Call, function_arn, mapping_arn};

pub(crate) fn decoded(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `lambda:RequestTag/K` and `aws:TagKeys` of tags given as a JSON object.
fn with_tags(mut a: Authorization, tags: &Value) -> Authorization {
    let Some(tags) = tags.as_object() else {
        return a;
    };
    for (k, v) in tags {
        a.context.insert(format!("aws:RequestTag/{k}"), v.clone());
    }
    let keys: Vec<&String> = tags.keys().collect();
    a.context.insert("aws:TagKeys".into(), json!(keys));
    a
}

pub(crate) fn lambda(call: &Call) -> Vec<Authorization> {
    let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
    let name = format!("{} {}", call.method, call.path);
    let segments: Vec<&str> = call.path.trim_matches('/').split('/').collect();
    let a = |action: &str, resource: String| Authorization::new(action, resource, &name);
    let function = |n: &str| function_arn(&decoded(n));
    let of_mapping = |x: Authorization| match &call.mapping_function {
        Some(f) => x.with("lambda:FunctionArn", json!(function_arn(f))),
        None => x,
    };
    match (call.method.as_str(), segments.as_slice()) {
        ("GET", [_, "functions"]) => vec![a("lambda:ListFunctions", "*".into())],
        ("GET", [_, "event-source-mappings"]) => {
            vec![a("lambda:ListEventSourceMappings", "*".into())]
        }
        ("POST", [_, "event-source-mappings"]) => create_mapping(call, &body, &name),
        ("GET", [_, "event-source-mappings", uuid]) => {
            vec![of_mapping(a(
                "lambda:GetEventSourceMapping",
                mapping_arn(uuid),
            ))]
        }
        ("DELETE", [_, "event-source-mappings", uuid]) => {
            vec![of_mapping(a(
                "lambda:DeleteEventSourceMapping",
                mapping_arn(uuid),
            ))]
        }
        ("PUT", [_, "event-source-mappings", uuid]) => {
            let x = a("lambda:UpdateEventSourceMapping", mapping_arn(uuid));
            vec![match body["FunctionName"].as_str() {
                Some(f) => x.with("lambda:FunctionArn", json!(function_arn(f))),
                None => of_mapping(x),
            }]
        }
        (method, [_, "functions", f, "concurrency"]) => {
            let action = match method {
                "GET" => "lambda:GetFunctionConcurrency",
                "PUT" => "lambda:PutFunctionConcurrency",
                _ => "lambda:DeleteFunctionConcurrency",
            };
            let mut x = a(action, function(f));
            for (k, v) in call.resource_tags.iter().flatten() {
                x = x.with(&format!("aws:ResourceTag/{k}"), json!(v));
            }
            vec![x]
        }
        ("POST", [_, "functions", f, "invocations"]) => {
            vec![a("lambda:InvokeFunction", function(f))]
        }
        ("GET", [_, "tags", arn]) => vec![a("lambda:ListTags", decoded(arn))],
        ("POST", [_, "tags", arn]) => {
            vec![with_tags(
                a("lambda:TagResource", decoded(arn)),
                &body["Tags"],
            )]
        }
        _ => vec![a("lambda:Unknown", name.clone())],
    }
}

/// CreateEventSourceMapping names no resource; with `Tags` it also needs lambda:TagResource on
/// the mapping it creates (<https://docs.aws.amazon.com/lambda/latest/dg/tags-esm.html>).
fn create_mapping(call: &Call, body: &Value, name: &str) -> Vec<Authorization> {
    let function = function_arn(body["FunctionName"].as_str().unwrap_or_default());
    let create = Authorization::new("lambda:CreateEventSourceMapping", "*", name)
        .with("lambda:FunctionArn", json!(function));
    let create = with_tags(create, &body["Tags"]);
    let mut out = vec![create];
    if body["Tags"].as_object().is_some_and(|t| !t.is_empty()) {
        let created: Value = serde_json::from_slice(&call.response).unwrap_or(Value::Null);
        let arn = created["EventSourceMappingArn"]
            .as_str()
            .map(str::to_string)
            .or_else(|| created["UUID"].as_str().map(mapping_arn))
            .unwrap_or_default();
        out.push(with_tags(
            Authorization::new("lambda:TagResource", arn, name),
            &body["Tags"],
        ));
    }
    out
}

/// The calls a state machine's engine makes for `startExecution.sync` and the like.
pub(crate) fn states(call: &Call) -> Vec<Authorization> {
    let body: Value = serde_json::from_slice(&call.body).unwrap_or(Value::Null);
    let name = call.target.clone().unwrap_or_default();
    let op = name.strip_prefix("AWSStepFunctions.").unwrap_or("?");
    let resource = match op {
        "StartExecution" | "StartSyncExecution" => body["stateMachineArn"].as_str(),
        _ => body["executionArn"].as_str(),
    };
    vec![Authorization::new(
        &format!("states:{op}"),
        resource.unwrap_or("*"),
        &name,
    )]
}
