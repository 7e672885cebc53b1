//! What a worker invocation did, as one CloudWatch embedded metric format (EMF) log line:
//! CloudWatch Logs extracts the metrics from the function's log, so the stack's dashboard gets
//! them with no PutMetricData call and no extra permission.
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use serde_json::{Map, Value, json};

/// The namespace every dynamo-dr metric is published in; the stack's dashboard reads it.
pub const NAMESPACE: &str = "dynamo-dr";

/// The dimension sets each line is published under: per table (the dashboard), per table and
/// phase, per table and execution (one incident's own figures).
pub const DIMENSION_SETS: [&[&str]; 3] = [&["Table"], &["Table", "Phase"], &["Table", "Execution"]];

/// What one invocation of a segment worker did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerMetrics {
    pub table: String,
    pub execution: String,
    pub phase: String,
    pub segment: Option<u32>,
    pub items_written: u64,
    pub items_deleted: u64,
    pub pages: u64,
    pub write_requests: u64,
    /// Requests DynamoDB throttled or left partly unprocessed.
    pub throttled: u64,
    pub read_units: f64,
    pub write_units: f64,
    pub seconds: f64,
}

impl WorkerMetrics {
    /// The metrics, each with its value and EMF unit.
    fn values(&self) -> [(&'static str, f64, &'static str); 8] {
        [
            ("ItemsWritten", self.items_written as f64, "Count"),
            ("ItemsDeleted", self.items_deleted as f64, "Count"),
            ("Pages", self.pages as f64, "Count"),
            ("WriteRequests", self.write_requests as f64, "Count"),
            ("ThrottledRequests", self.throttled as f64, "Count"),
            ("ReadUnits", self.read_units, "Count"),
            ("WriteUnits", self.write_units, "Count"),
            ("WorkSeconds", self.seconds, "Seconds"),
        ]
    }

    /// The EMF document, on one line, stamped `at_ms` (milliseconds since the epoch). It holds
    /// names, counts and units only: never a key or an item value.
    pub fn line(&self, at_ms: i64) -> String {
        let mut root = Map::new();
        root.insert("Table".into(), json!(self.table));
        root.insert("Execution".into(), json!(self.execution));
        root.insert("Phase".into(), json!(self.phase));
        if let Some(s) = self.segment {
            root.insert("Segment".into(), json!(s));
        }
        let mut metrics = Vec::new();
        for (name, value, unit) in self.values() {
            root.insert(name.into(), json!(value));
            metrics.push(json!({ "Name": name, "Unit": unit }));
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": at_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": DIMENSION_SETS,
                    "Metrics": metrics,
                }],
            }),
        );
        Value::Object(root).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's rules for a document, each checked; returns the first broken one.
    fn conforms(line: &str) -> std::result::Result<(), String> {
        // "The LogEvent message MUST be a valid JSON object with no additional data at the
        // beginning or end of the LogEvent message string."
        if line.contains('\n') || line.trim() != line {
            return Err("not one line with nothing around the object".into());
        }
        let root: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let root = root.as_object().ok_or("the root is not an object")?;
        let aws = root["_aws"].as_object().ok_or("no _aws metadata object")?;
        // Timestamp: a number, milliseconds since the epoch.
        aws["Timestamp"]
            .as_i64()
            .ok_or("Timestamp is not an integer")?;
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .ok_or("CloudWatchMetrics is not an array")?;
        for d in directives {
            let ns = d["Namespace"].as_str().ok_or("Namespace is not a string")?;
            if ns.is_empty() || ns.len() > 1024 {
                return Err("Namespace must be 1 to 1024 characters".into());
            }
            for set in d["Dimensions"]
                .as_array()
                .ok_or("Dimensions not an array")?
            {
                let set = set.as_array().ok_or("a DimensionSet is not an array")?;
                // "A DimensionSet MUST NOT contain more than 30 dimension keys."
                if set.len() > 30 {
                    return Err("more than 30 dimensions in a set".into());
                }
                for key in set {
                    let key = key.as_str().ok_or("a dimension key is not a string")?;
                    // Dimension target members MUST be strings (1 to 1024 characters).
                    match root.get(key).and_then(Value::as_str) {
                        Some(v) if !v.is_empty() && v.len() <= 1024 => {}
                        _ => return Err(format!("dimension {key} has no string member")),
                    }
                }
            }
            let metrics = d["Metrics"].as_array().ok_or("Metrics is not an array")?;
            // "A MetricDirective object MUST NOT contain more than 100 MetricDefinition objects."
            if metrics.len() > 100 {
                return Err("more than 100 metrics".into());
            }
            const UNITS: [&str; 27] = [
                "Seconds",
                "Microseconds",
                "Milliseconds",
                "Bytes",
                "Kilobytes",
                "Megabytes",
                "Gigabytes",
                "Terabytes",
                "Bits",
                "Kilobits",
                "Megabits",
                "Gigabits",
                "Terabits",
                "Percent",
                "Count",
                "Bytes/Second",
                "Kilobytes/Second",
                "Megabytes/Second",
                "Gigabytes/Second",
                "Terabytes/Second",
                "Bits/Second",
                "Kilobits/Second",
                "Megabits/Second",
                "Gigabits/Second",
                "Terabits/Second",
                "Count/Second",
                "None",
            ];
            for m in metrics {
                let name = m["Name"].as_str().ok_or("a metric has no Name")?;
                if let Some(unit) = m.get("Unit")
                    && !unit.as_str().is_some_and(|u| UNITS.contains(&u))
                {
                    return Err(format!("{name} has unit {unit}, not one of the spec's"));
                }
                // Metric target members: a number (or an array of at most 100 numbers).
                if !root.get(name).is_some_and(Value::is_number) {
                    return Err(format!("metric {name} has no numeric member"));
                }
            }
        }
        Ok(())
    }

    fn sample() -> WorkerMetrics {
        WorkerMetrics {
            table: "Orders".into(),
            execution: "dr-orders-inc-42".into(),
            phase: "copy".into(),
            segment: Some(3),
            items_written: 1200,
            pages: 12,
            write_requests: 48,
            throttled: 2,
            read_units: 150.5,
            write_units: 1200.0,
            seconds: 4.25,
            ..WorkerMetrics::default()
        }
    }

    #[test]
    fn a_workers_line_is_an_emf_document_the_specification_accepts() {
        let line = sample().line(1_780_000_000_123);
        assert_eq!(conforms(&line), Ok(()));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_780_000_000_123_i64);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], NAMESPACE);
        assert_eq!(
            (&v["ItemsWritten"], &v["ThrottledRequests"], &v["Segment"]),
            (&json!(1200.0), &json!(2.0), &json!(3))
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Table"], ["Table", "Phase"], ["Table", "Execution"]])
        );
    }

    #[test]
    fn the_checker_refuses_what_the_specification_forbids() {
        let good: Value = serde_json::from_str(&sample().line(1)).unwrap();
        let broken = |f: fn(&mut Value)| {
            let mut v = good.clone();
            f(&mut v);
            conforms(&v.to_string())
        };
        assert!(broken(|v| v["Table"] = json!(7)).is_err());
        assert!(broken(|v| v["Pages"] = json!("12")).is_err());
        assert!(broken(|v| v["_aws"]["Timestamp"] = json!("now")).is_err());
        assert!(
            broken(|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Items"))
                .is_err()
        );
        assert!(conforms(&format!("{} ", sample().line(1))).is_err());
    }
}
