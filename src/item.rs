//! One DynamoDB item, as every layer sees it: its key schema, its key, its size and its
//! DynamoDB JSON form.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, KeySchemaElement, KeyType};

use crate::error::{Error, Result};

/// An item as the SDK returns it.
pub type Item = HashMap<String, AttributeValue>;

/// A primary key schema: attribute names in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    pub hash: String,
    pub range: Option<String>,
}

impl KeySchema {
    pub fn from_elements(elements: &[KeySchemaElement]) -> Option<KeySchema> {
        let find = |kind: KeyType| {
            elements
                .iter()
                .find(|e| e.key_type() == &kind)
                .map(|e| e.attribute_name().to_string())
        };
        Some(KeySchema {
            hash: find(KeyType::Hash)?,
            range: find(KeyType::Range),
        })
    }

    pub fn attributes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.hash.as_str()).chain(self.range.as_deref())
    }
}

impl std::fmt::Display for KeySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.range {
            Some(r) => write!(f, "HASH {} + RANGE {}", self.hash, r),
            None => write!(f, "HASH {}", self.hash),
        }
    }
}

/// An item's key as text, the same for the same key whatever the item's other attributes.
pub fn key_text(key: &KeySchema, item: &Item) -> String {
    let k: Item = key
        .attributes()
        .filter_map(|a| item.get(a).map(|v| (a.to_string(), v.clone())))
        .collect();
    key_to_json(&k)
        .map(|v| v.to_string())
        .unwrap_or_else(|_| "<unprintable key>".into())
}

/// `#k0, #k1` with their names, so reserved words and odd characters in key names are safe.
pub fn key_projection(key: &KeySchema) -> (String, HashMap<String, String>) {
    let names: HashMap<String, String> = key
        .attributes()
        .enumerate()
        .map(|(i, a)| (format!("#k{i}"), a.to_string()))
        .collect();
    let mut placeholders: Vec<&String> = names.keys().collect();
    placeholders.sort();
    let projection = placeholders
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    (projection, names)
}

/// The key attributes of an item, cloned.
pub fn key_only(key: &KeySchema, item: &Item) -> Item {
    key.attributes()
        .filter_map(|a| item.get(a).map(|v| (a.to_string(), v.clone())))
        .collect()
}

/// The primary key of an item. A scanned item always carries it, so a missing one means the
/// table's schema is not what DescribeTable said.
pub fn key_of(key: &KeySchema, mut item: Item, table: &str) -> Result<Item> {
    let mut out = HashMap::with_capacity(2);
    for attr in key.attributes() {
        let v = item.remove(attr).ok_or_else(|| Error::BadState {
            what: format!("an item scanned from {table}"),
            state: format!("missing key attribute {attr}"),
            hint: "the table's key schema changed during the run; run again".into(),
        })?;
        out.insert(attr.to_string(), v);
    }
    Ok(out)
}

/// DynamoDB's size of an item, in bytes, by its documented rules; for capacity-unit caps, which
/// must be paid before a write.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(v: &aws_sdk_dynamodb::types::AttributeValue) -> usize {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let number = |n: &str| {
        let digits = n.chars().filter(char::is_ascii_digit).count();
        digits.div_ceil(2) + 1
    };
    match v {
        A::S(s) => s.len(),
        A::N(n) => number(n),
        A::B(b) => b.as_ref().len(),
        A::Bool(_) | A::Null(_) => 1,
        A::Ss(v) => v.iter().map(String::len).sum(),
        A::Ns(v) => v.iter().map(|n| number(n)).sum(),
        A::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        A::L(v) => 3 + v.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        A::M(m) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// Write units a put of `item` costs: one per started KB.
pub fn write_units(item: &Item) -> f64 {
    item_size(item).div_ceil(1024).max(1) as f64
}

/// A key (S, N or B attributes only) as DynamoDB JSON, for checkpoints.
pub fn key_to_json(key: &HashMap<String, AttributeValue>) -> Result<serde_json::Value> {
    if let Some((name, _)) = key.iter().find(|(_, v)| {
        !matches!(
            v,
            AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)
        )
    }) {
        return Err(Error::Journal(format!(
            "key attribute {name} is not S, N or B; it cannot be checkpointed"
        )));
    }
    Ok(item_to_json(key))
}

/// An item as DynamoDB JSON (`{"name": {"S": "..."}}`), binary as base64: the form the AWS CLI
/// and console use.
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> serde_json::Value {
    // Sorted, so the same item always prints the same text (keys are compared as text).
    let sorted: std::collections::BTreeMap<&String, &AttributeValue> = item.iter().collect();
    serde_json::Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k.clone(), attr_to_json(v)))
            .collect(),
    )
}

pub fn attr_to_json(v: &AttributeValue) -> serde_json::Value {
    use serde_json::json;
    let b64 = |b: &aws_smithy_types::Blob| aws_smithy_types::base64::encode(b.as_ref());
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(n) => json!({ "NULL": n }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(attr_to_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": item_to_json(m) }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(s) => json!({ "NS": s }),
        AttributeValue::Bs(s) => json!({ "BS": s.iter().map(b64).collect::<Vec<_>>() }),
        other => json!({ "UNKNOWN": format!("{other:?}") }),
    }
}

pub fn key_from_json(value: &serde_json::Value) -> Result<HashMap<String, AttributeValue>> {
    let bad = || {
        Error::Journal(format!(
            "checkpoint key {value} is not a DynamoDB key; the journal is damaged"
        ))
    };
    let obj = value.as_object().ok_or_else(bad)?;
    let mut key = HashMap::new();
    for (name, typed) in obj {
        let (t, v) = typed
            .as_object()
            .and_then(|o| o.iter().next())
            .and_then(|(t, v)| v.as_str().map(|s| (t.as_str(), s)))
            .ok_or_else(bad)?;
        let attr = match t {
            "S" => AttributeValue::S(v.to_string()),
            "N" => AttributeValue::N(v.to_string()),
            "B" => AttributeValue::B(aws_smithy_types::Blob::new(
                aws_smithy_types::base64::decode(v).map_err(|_| bad())?,
            )),
            _ => return Err(bad()),
        };
        key.insert(name.clone(), attr);
    }
    Ok(key)
}

/// An item in DynamoDB JSON (as exports write it), every type read.
pub fn item_from_json(value: &serde_json::Value) -> std::result::Result<Item, String> {
    value
        .as_object()
        .ok_or("an item is a JSON object")?
        .iter()
        .map(|(name, v)| Ok((name.clone(), attr_from_json(v)?)))
        .collect()
}

fn list(v: &serde_json::Value) -> std::result::Result<&Vec<serde_json::Value>, String> {
    v.as_array().ok_or_else(|| "not a list".to_string())
}

fn attr_from_json(value: &serde_json::Value) -> std::result::Result<AttributeValue, String> {
    let (t, v) = value
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or("an attribute is {\"TYPE\": value}")?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string).ok_or("not a string");
    let blob = |v: &serde_json::Value| -> std::result::Result<aws_smithy_types::Blob, String> {
        let b = aws_smithy_types::base64::decode(text(v)?).map_err(|_| "not base64")?;
        Ok(aws_smithy_types::Blob::new(b))
    };
    Ok(match t.as_str() {
        "S" => AttributeValue::S(text(v)?),
        "N" => AttributeValue::N(text(v)?),
        "B" => AttributeValue::B(blob(v)?),
        "BOOL" => AttributeValue::Bool(v.as_bool().ok_or("not a boolean")?),
        "NULL" => AttributeValue::Null(true),
        "SS" => AttributeValue::Ss(list(v)?.iter().map(text).collect::<Result<_, _>>()?),
        "NS" => AttributeValue::Ns(list(v)?.iter().map(text).collect::<Result<_, _>>()?),
        "BS" => AttributeValue::Bs(list(v)?.iter().map(blob).collect::<Result<_, _>>()?),
        "L" => AttributeValue::L(
            list(v)?
                .iter()
                .map(attr_from_json)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item_from_json(v)?),
        other => return Err(format!("unknown attribute type {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_through_dynamodb_json() {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        let item: Item = [
            ("s".to_string(), A::S("x".into())),
            (
                "m".to_string(),
                A::M([("b".to_string(), A::Bool(true))].into()),
            ),
            ("l".to_string(), A::L(vec![A::N("1".into()), A::Null(true)])),
            ("ss".to_string(), A::Ss(vec!["a".into()])),
            (
                "bs".to_string(),
                A::Bs(vec![aws_smithy_types::Blob::new(vec![1, 2])]),
            ),
        ]
        .into();
        assert_eq!(item_from_json(&item_to_json(&item)).unwrap(), item);
        assert!(item_from_json(&serde_json::json!({"a": {"X": 1}})).is_err());
    }

    #[test]
    fn keys_round_trip_through_json() {
        let key = HashMap::from([
            ("pk".to_string(), AttributeValue::S("a#1".into())),
            ("n".to_string(), AttributeValue::N("-1.5".into())),
            (
                "b".to_string(),
                AttributeValue::B(aws_smithy_types::Blob::new(vec![0, 255, 7])),
            ),
        ]);
        assert_eq!(key_from_json(&key_to_json(&key).unwrap()).unwrap(), key);
    }

    #[test]
    fn item_size_follows_dynamodb_rules() {
        use aws_sdk_dynamodb::types::AttributeValue as A;
        let item: Item = [
            ("pk".to_string(), A::S("abc".into())),
            ("n".to_string(), A::N("12345".into())),
        ]
        .into();
        assert_eq!(item_size(&item), 2 + 3 + 1 + 4);
        let big: Item = [("d".to_string(), A::S("x".repeat(2048)))].into();
        assert_eq!(write_units(&big), 3.0);
    }
}
