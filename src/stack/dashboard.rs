//! Per table, what an operator watches in CloudWatch while a recovery runs inside AWS: a
//! dashboard (the state machines' executions, the table's consumed and throttled capacity, the
//! workers' own metrics from their embedded-metric log lines) and an alarm on any failed or
//! timed-out execution of either state machine.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html>

use serde_json::{Value, json};

use super::Names;
use crate::emf::NAMESPACE;

/// The dashboard's widgets; `${Restore}` and `${Sync}` are the machines' ARNs, filled in by
/// `Fn::Sub` where the stack is deployed.
fn widgets(table: &str) -> Value {
    let executions = |arn: &str| {
        [
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsFailed",
            "ExecutionsTimedOut",
        ]
        .iter()
        .map(|m| json!(["AWS/States", m, "StateMachineArn", arn]))
        .collect::<Vec<_>>()
    };
    let capacity = [
        "ConsumedWriteCapacityUnits",
        "WriteThrottleEvents",
        "ConsumedReadCapacityUnits",
        "ReadThrottleEvents",
    ]
    .map(|m| json!(["AWS/DynamoDB", m, "TableName", table]));
    let workers = ["ItemsWritten", "ItemsDeleted", "ThrottledRequests", "Pages"]
        .map(|m| json!([NAMESPACE, m, "Table", table]));
    let widget = |y: u32, title: String, metrics: Value| {
        json!({
            "type": "metric", "x": 0, "y": y, "width": 24, "height": 6,
            "properties": {
                "title": title, "region": "${AWS::Region}", "view": "timeSeries",
                "stat": "Sum", "period": 60, "metrics": metrics,
            },
        })
    };
    json!({ "widgets": [
        widget(0, format!("Restore executions ({table})"), json!(executions("${Restore}"))),
        widget(6, format!("Sync executions ({table})"), json!(executions("${Sync}"))),
        widget(12, format!("{table}: consumed and throttled capacity, per minute"), json!(capacity)),
        widget(18, format!("dynamo-dr workers on {table}, per minute"), json!(workers)),
    ]})
}

/// The table's dashboard and alarm, each named in the outputs.
pub(super) fn insert(
    logical: &str,
    table: &str,
    resources: &mut serde_json::Map<String, Value>,
    outputs: &mut serde_json::Map<String, Value>,
) {
    let (board, alarm_id) = (format!("{logical}Dashboard"), format!("{logical}Alarm"));
    resources.insert(board.clone(), dashboard(logical, table));
    resources.insert(alarm_id.clone(), alarm(logical, table));
    outputs.insert(board.clone(), json!({ "Value": { "Ref": board } }));
    outputs.insert(alarm_id.clone(), json!({ "Value": { "Ref": alarm_id } }));
}

/// The dashboard resource for one table.
fn dashboard(logical: &str, table: &str) -> Value {
    let names = Names::of(logical);
    json!({
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": format!("dynamo-dr-{logical}"),
            "DashboardBody": { "Fn::Sub": [
                widgets(table).to_string(),
                { "Restore": { "Ref": names.restore_machine }, "Sync": { "Ref": names.sync_machine } },
            ]},
        },
    })
}

/// An alarm that fires on the first failed or timed-out execution of either machine.
fn alarm(logical: &str, table: &str) -> Value {
    let names = Names::of(logical);
    let mut metrics = Vec::new();
    for (id, machine) in [("r", &names.restore_machine), ("s", &names.sync_machine)] {
        for (suffix, metric) in [("f", "ExecutionsFailed"), ("t", "ExecutionsTimedOut")] {
            metrics.push(json!({
                "Id": format!("{id}{suffix}"),
                "ReturnData": false,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/States",
                        "MetricName": metric,
                        "Dimensions": [{ "Name": "StateMachineArn", "Value": { "Ref": machine } }],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }));
        }
    }
    // No data is no failure: the machines run only during an incident.
    metrics.push(json!({
        "Id": "failures",
        "Label": "failed or timed-out executions",
        "Expression": "FILL(rf,0)+FILL(rt,0)+FILL(sf,0)+FILL(st,0)",
        "ReturnData": true,
    }));
    json!({
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": format!("dynamo-dr-{logical}-execution-failed"),
            "AlarmDescription": format!(
                "A dynamo-dr execution on {table} failed or timed out: read it with `dynamo-dr \
                 status ID --journal dynamodb://...`, then start the state machine again with the \
                 same input (it continues from its checkpoints)"
            ),
            "Metrics": metrics,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "EvaluationPeriods": 1,
            "TreatMissingData": "notBreaching",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_reads_both_machines_the_table_and_the_workers_metrics() {
        let d = dashboard("Orders", "Prod-Orders");
        let sub = &d["Properties"]["DashboardBody"]["Fn::Sub"];
        let body: Value = serde_json::from_str(sub[0].as_str().unwrap()).unwrap();
        let metrics: Vec<Value> = body["widgets"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|w| w["properties"]["metrics"].as_array().unwrap().clone())
            .collect();
        let has = |ns: &str, name: &str, value: &str| {
            metrics
                .iter()
                .any(|m| m[0] == ns && m[1] == name && m[3] == value)
        };
        assert!(has("AWS/States", "ExecutionsFailed", "${Restore}"));
        assert!(has("AWS/States", "ExecutionsTimedOut", "${Sync}"));
        assert!(has("AWS/DynamoDB", "WriteThrottleEvents", "Prod-Orders"));
        assert!(has(NAMESPACE, "ItemsWritten", "Prod-Orders"));
        // Every ${...} in the body is a variable Fn::Sub is given, or a pseudo parameter.
        let text = sub[0].as_str().unwrap();
        for var in text.split("${").skip(1).map(|s| &s[..s.find('}').unwrap()]) {
            assert!(
                var == "AWS::Region" || sub[1].get(var).is_some(),
                "unbound {var}"
            );
        }
    }

    #[test]
    fn the_alarm_sums_failures_and_time_outs_of_both_machines() {
        let a = alarm("Orders", "Prod-Orders");
        let metrics = a["Properties"]["Metrics"].as_array().unwrap();
        let expr = metrics.iter().find(|m| m["ReturnData"] == true).unwrap();
        for m in metrics.iter().filter(|m| m["ReturnData"] == false) {
            let id = m["Id"].as_str().unwrap();
            assert!(expr["Expression"].as_str().unwrap().contains(id), "{id}");
        }
        assert_eq!(metrics.len(), 5);
    }
}
