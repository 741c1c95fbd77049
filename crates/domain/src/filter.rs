//! Metadata filters of retrieval, with the operators of managed knowledge bases: `equals`,
//! `notEquals`, `greaterThan`, `greaterThanOrEquals`, `lessThan`, `lessThanOrEquals`, `in`,
//! `notIn`, `startsWith`, `listContains`, `stringContains`, `andAll`, `orAll`.
//!
//! ```json
//! {"andAll": [{"equals": {"key": "department", "value": "legal"}},
//!             {"greaterThan": {"key": "year", "value": 2020}}]}
//! ```
//!
//! dokko-ingest evaluates a filter on its copy of the files' metadata to choose what it searches;
//! dokko-api evaluates it again on the current metadata of what comes back (a file's metadata may
//! have changed since the last processing job).
//!
//! A filter is parsed once per query (a malformed one is refused with the path of the fault,
//! `filter.andAll[1].greaterThan.value: …`) and evaluated against each file's metadata.
//! Semantics: a condition on a key the file does not have is false, except `notEquals` and
//! `notIn`, which are true there. Numbers compare as numbers; `greaterThan` and friends also
//! compare strings (RFC 3339 dates such as `last_modified` order correctly as text).
//! `stringContains` matches a string value or any string of a list value.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// At most this many conditions in one filter, and this deep.
const MAX_CONDITIONS: usize = 100;
const MAX_DEPTH: usize = 8;

pub const OPERATORS: [&str; 13] = [
    "equals",
    "notEquals",
    "greaterThan",
    "greaterThanOrEquals",
    "lessThan",
    "lessThanOrEquals",
    "in",
    "notIn",
    "startsWith",
    "listContains",
    "stringContains",
    "andAll",
    "orAll",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Equals(String, Value),
    NotEquals(String, Value),
    Compare(String, Ordering, bool, Value),
    In(String, Vec<Value>),
    NotIn(String, Vec<Value>),
    StartsWith(String, String),
    ListContains(String, Value),
    StringContains(String, String),
    AndAll(Vec<Filter>),
    OrAll(Vec<Filter>),
}

/// Why a filter was refused: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

impl std::error::Error for FilterError {}

fn fault(path: &str, problem: impl Into<String>) -> FilterError {
    FilterError { path: path.to_owned(), problem: problem.into() }
}

impl Filter {
    /// Parses the JSON filter found at `path` (used in messages, e.g. `filter`).
    pub fn parse(value: &Value, path: &str) -> Result<Filter, FilterError> {
        let mut conditions = 0;
        parse(value, path, 0, &mut conditions)
    }

    /// Whether a file with `metadata` passes.
    pub fn matches(&self, metadata: &Map<String, Value>) -> bool {
        match self {
            Filter::Equals(key, value) => metadata.get(key).is_some_and(|v| same(v, value)),
            Filter::NotEquals(key, value) => !metadata.get(key).is_some_and(|v| same(v, value)),
            Filter::Compare(key, wanted, or_equal, value) => metadata.get(key).is_some_and(|v| {
                compare(v, value).is_some_and(|order| order == *wanted || (*or_equal && order == Ordering::Equal))
            }),
            Filter::In(key, values) => metadata.get(key).is_some_and(|v| values.iter().any(|x| same(v, x))),
            Filter::NotIn(key, values) => !metadata.get(key).is_some_and(|v| values.iter().any(|x| same(v, x))),
            Filter::StartsWith(key, prefix) => {
                metadata.get(key).and_then(Value::as_str).is_some_and(|s| s.starts_with(prefix.as_str()))
            }
            Filter::ListContains(key, value) => {
                metadata.get(key).and_then(Value::as_array).is_some_and(|list| list.iter().any(|v| same(v, value)))
            }
            Filter::StringContains(key, part) => match metadata.get(key) {
                Some(Value::String(s)) => s.contains(part.as_str()),
                Some(Value::Array(list)) => list.iter().any(|v| v.as_str().is_some_and(|s| s.contains(part.as_str()))),
                _ => false,
            },
            Filter::AndAll(all) => all.iter().all(|f| f.matches(metadata)),
            Filter::OrAll(any) => any.iter().any(|f| f.matches(metadata)),
        }
    }
}

/// JSON equality, with numbers compared by value (`1` equals `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// How the file's value `have` orders against the filter's `want`; none across types.
fn compare(have: &Value, want: &Value) -> Option<Ordering> {
    match (have, want) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

fn parse(value: &Value, path: &str, depth: usize, conditions: &mut usize) -> Result<Filter, FilterError> {
    if depth > MAX_DEPTH {
        return Err(fault(path, format!("filters nest at most {MAX_DEPTH} deep")));
    }
    *conditions += 1;
    if *conditions > MAX_CONDITIONS {
        return Err(fault(path, format!("a filter has at most {MAX_CONDITIONS} conditions")));
    }
    let Some(object) = value.as_object() else {
        return Err(fault(
            path,
            "expected an object with one operator, such as {\"equals\": {\"key\": …, \"value\": …}}",
        ));
    };
    let mut entries = object.iter();
    let (Some((operator, operand)), None) = (entries.next(), entries.next()) else {
        return Err(fault(path, format!("expected exactly one operator, found {}", object.len())));
    };
    let here = format!("{path}.{operator}");
    match operator.as_str() {
        "andAll" | "orAll" => {
            let Some(members) = operand.as_array() else {
                return Err(fault(&here, "expected a list of filters"));
            };
            if members.is_empty() {
                return Err(fault(&here, "expected at least one filter"));
            }
            let parsed = members
                .iter()
                .enumerate()
                .map(|(i, member)| parse(member, &format!("{here}[{i}]"), depth + 1, conditions))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if operator == "andAll" { Filter::AndAll(parsed) } else { Filter::OrAll(parsed) })
        }
        "equals"
        | "notEquals"
        | "greaterThan"
        | "greaterThanOrEquals"
        | "lessThan"
        | "lessThanOrEquals"
        | "in"
        | "notIn"
        | "startsWith"
        | "listContains"
        | "stringContains" => {
            let (key, value) = key_value(operand, &here)?;
            let value_path = format!("{here}.value");
            let text = |value: Value| match value {
                Value::String(s) => Ok(s),
                _ => Err(fault(&value_path, "expected a string")),
            };
            let scalar = |value: Value| match value {
                Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(value),
                _ => Err(fault(&value_path, "expected a string, a number or a boolean")),
            };
            let ordered = |value: Value| match value {
                Value::String(_) | Value::Number(_) => Ok(value),
                _ => Err(fault(&value_path, "expected a number or a string")),
            };
            let list = |value: Value| match value {
                Value::Array(items) if !items.is_empty() => {
                    items.into_iter().map(scalar).collect::<Result<Vec<_>, _>>()
                }
                _ => Err(fault(&value_path, "expected a non-empty list")),
            };
            Ok(match operator.as_str() {
                "equals" => Filter::Equals(key, scalar(value)?),
                "notEquals" => Filter::NotEquals(key, scalar(value)?),
                "greaterThan" => Filter::Compare(key, Ordering::Greater, false, ordered(value)?),
                "greaterThanOrEquals" => Filter::Compare(key, Ordering::Greater, true, ordered(value)?),
                "lessThan" => Filter::Compare(key, Ordering::Less, false, ordered(value)?),
                "lessThanOrEquals" => Filter::Compare(key, Ordering::Less, true, ordered(value)?),
                "in" => Filter::In(key, list(value)?),
                "notIn" => Filter::NotIn(key, list(value)?),
                "startsWith" => Filter::StartsWith(key, text(value)?),
                "listContains" => Filter::ListContains(key, scalar(value)?),
                _ => Filter::StringContains(key, text(value)?),
            })
        }
        other => Err(fault(path, format!("unknown operator {other:?}; expected one of {}", OPERATORS.join(", ")))),
    }
}

/// The `{"key": …, "value": …}` operand of a condition.
fn key_value(operand: &Value, path: &str) -> Result<(String, Value), FilterError> {
    let Some(object) = operand.as_object() else {
        return Err(fault(path, "expected {\"key\": …, \"value\": …}"));
    };
    if let Some(extra) = object.keys().find(|k| *k != "key" && *k != "value") {
        return Err(fault(path, format!("unexpected field {extra:?}; expected key and value")));
    }
    let key = match object.get("key") {
        Some(Value::String(key)) if !key.trim().is_empty() && key.len() <= 255 => key.clone(),
        Some(_) => return Err(fault(&format!("{path}.key"), "expected a non-empty string of at most 255 bytes")),
        None => return Err(fault(path, "missing field key")),
    };
    let value = object.get("value").cloned().ok_or_else(|| fault(path, "missing field value"))?;
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta() -> Map<String, Value> {
        json!({
            "department": "legal", "year": 2021, "score": 4.5, "draft": false,
            "tags": ["contract", "eu"], "key": "contracts/2021/acme.pdf",
            "last_modified": "2024-03-01T10:00:00Z"
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    fn check(filter: Value) -> bool {
        Filter::parse(&filter, "filter").expect("valid filter").matches(&meta())
    }

    #[test]
    fn every_operator_matches_and_misses() {
        let cases = [
            (json!({"equals": {"key": "department", "value": "legal"}}), true),
            (json!({"equals": {"key": "department", "value": "hr"}}), false),
            (json!({"equals": {"key": "year", "value": 2021.0}}), true),
            (json!({"equals": {"key": "draft", "value": false}}), true),
            (json!({"equals": {"key": "missing", "value": "x"}}), false),
            (json!({"notEquals": {"key": "department", "value": "hr"}}), true),
            (json!({"notEquals": {"key": "department", "value": "legal"}}), false),
            (json!({"notEquals": {"key": "missing", "value": "legal"}}), true),
            (json!({"greaterThan": {"key": "year", "value": 2020}}), true),
            (json!({"greaterThan": {"key": "year", "value": 2021}}), false),
            (json!({"greaterThanOrEquals": {"key": "year", "value": 2021}}), true),
            (json!({"lessThan": {"key": "score", "value": 5}}), true),
            (json!({"lessThan": {"key": "score", "value": 4.5}}), false),
            (json!({"lessThanOrEquals": {"key": "score", "value": 4.5}}), true),
            (json!({"greaterThan": {"key": "last_modified", "value": "2024-01-01"}}), true),
            (json!({"greaterThan": {"key": "department", "value": 3}}), false),
            (json!({"in": {"key": "department", "value": ["hr", "legal"]}}), true),
            (json!({"in": {"key": "department", "value": ["hr"]}}), false),
            (json!({"notIn": {"key": "department", "value": ["hr"]}}), true),
            (json!({"notIn": {"key": "department", "value": ["legal"]}}), false),
            (json!({"startsWith": {"key": "key", "value": "contracts/"}}), true),
            (json!({"startsWith": {"key": "key", "value": "invoices/"}}), false),
            (json!({"listContains": {"key": "tags", "value": "eu"}}), true),
            (json!({"listContains": {"key": "tags", "value": "us"}}), false),
            (json!({"listContains": {"key": "department", "value": "legal"}}), false),
            (json!({"stringContains": {"key": "key", "value": "acme"}}), true),
            (json!({"stringContains": {"key": "tags", "value": "contr"}}), true),
            (json!({"stringContains": {"key": "key", "value": "globex"}}), false),
            (
                json!({"andAll": [{"equals": {"key": "department", "value": "legal"}},
                                  {"listContains": {"key": "tags", "value": "eu"}}]}),
                true,
            ),
            (
                json!({"andAll": [{"equals": {"key": "department", "value": "legal"}},
                                  {"listContains": {"key": "tags", "value": "us"}}]}),
                false,
            ),
            (
                json!({"orAll": [{"equals": {"key": "department", "value": "hr"}},
                                 {"greaterThan": {"key": "year", "value": 2000}}]}),
                true,
            ),
            (
                json!({"orAll": [{"equals": {"key": "department", "value": "hr"}},
                                 {"lessThan": {"key": "year", "value": 2000}}]}),
                false,
            ),
        ];
        for (filter, expected) in cases {
            assert_eq!(check(filter.clone()), expected, "{filter}");
        }
    }

    #[test]
    fn malformed_filters_say_where() {
        let cases = [
            (json!("department"), "filter: expected an object"),
            (json!({}), "filter: expected exactly one operator, found 0"),
            (json!({"equalz": {"key": "a", "value": 1}}), "filter: unknown operator \"equalz\""),
            (json!({"equals": {"value": 1}}), "filter.equals: missing field key"),
            (json!({"equals": {"key": "a"}}), "filter.equals: missing field value"),
            (json!({"equals": {"key": "", "value": 1}}), "filter.equals.key: expected a non-empty string"),
            (json!({"equals": {"key": "a", "value": {"x": 1}}}), "filter.equals.value: expected a string"),
            (json!({"in": {"key": "a", "value": "x"}}), "filter.in.value: expected a non-empty list"),
            (json!({"startsWith": {"key": "a", "value": 3}}), "filter.startsWith.value: expected a string"),
            (json!({"greaterThan": {"key": "a", "value": true}}), "filter.greaterThan.value: expected a number"),
            (json!({"andAll": []}), "filter.andAll: expected at least one filter"),
            (
                json!({"andAll": [{"equals": {"key": "a", "value": 1}}, {"lessThan": {"key": "b"}}]}),
                "filter.andAll[1].lessThan: missing field value",
            ),
            (json!({"equals": {"key": "a", "value": 1, "extra": 2}}), "filter.equals: unexpected field \"extra\""),
        ];
        for (filter, expected) in cases {
            let error = Filter::parse(&filter, "filter").expect_err("refused").to_string();
            assert!(error.starts_with(expected), "{filter}: {error}");
        }
        let mut deep = json!({"equals": {"key": "a", "value": 1}});
        for _ in 0..12 {
            deep = json!({"andAll": [deep]});
        }
        assert!(Filter::parse(&deep, "filter").is_err());
    }
}
