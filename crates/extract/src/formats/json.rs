//! JSON (and JSON Lines) flattened to `path.to.key: value` lines.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::Format;
use crate::error::ExtractError;
use crate::text::{Sink, decode};

/// One line per scalar, named by its path (`author.name: Ada`, `items[2].sku: X1`), in the
/// order of the source; an array of scalars on one line (`tags: red, blue`); `null` and empty
/// containers left out. The elements of a top-level array, and the records of JSON Lines, are
/// separated by blank lines.
///
/// serde_json refuses nesting deeper than 128 levels, which also bounds the recursion here.
pub(crate) fn extract(bytes: &[u8], sink: &mut Sink) -> Result<(), ExtractError> {
    let text = decode(bytes, None);
    match serde_json::from_str::<Node>(&text) {
        Ok(Node::Array(records)) => records.iter().try_for_each(|record| {
            sink.paragraph()?;
            flatten(record, &mut String::new(), sink)
        }),
        Ok(value) => flatten(&value, &mut String::new(), sink),
        Err(error) => {
            // JSON Lines: one document per non-empty line. Only if every line parses, so a
            // broken JSON file reports the first error rather than a line-by-line one.
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            if lines.len() < 2 {
                return Err(ExtractError::corrupt(Format::Json, error));
            }
            let records = lines
                .iter()
                .map(|line| serde_json::from_str::<Node>(line))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| ExtractError::corrupt(Format::Json, error))?;
            records.iter().try_for_each(|record| {
                sink.paragraph()?;
                flatten(record, &mut String::new(), sink)
            })
        }
    }
}

/// A JSON value whose objects keep their keys in source order (serde_json's `Value` sorts them
/// unless a crate in the build turns on `preserve_order`).
#[derive(Debug)]
enum Node {
    Null,
    /// A string, number or boolean, as text.
    Scalar(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Scalar(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Node>()? {
            entries.push(entry);
        }
        Ok(Node::Object(entries))
    }
}

fn flatten(node: &Node, path: &mut String, sink: &mut Sink) -> Result<(), ExtractError> {
    match node {
        Node::Null => Ok(()),
        Node::Scalar(text) => line(path, text, sink),
        Node::Object(entries) => entries.iter().try_for_each(|(key, value)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let result = flatten(value, path, sink);
            path.truncate(len);
            result
        }),
        Node::Array(items) if items.iter().all(|i| matches!(i, Node::Null | Node::Scalar(_))) => {
            let values: Vec<&str> = items
                .iter()
                .filter_map(|item| match item {
                    Node::Scalar(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            if values.is_empty() {
                return Ok(());
            }
            line(path, &values.join(", "), sink)
        }
        Node::Array(items) => items.iter().enumerate().try_for_each(|(index, item)| {
            let len = path.len();
            path.push_str(&format!("[{index}]"));
            let result = flatten(item, path, sink);
            path.truncate(len);
            result
        }),
    }
}

fn line(path: &str, value: &str, sink: &mut Sink) -> Result<(), ExtractError> {
    sink.newline()?;
    if !path.is_empty() {
        sink.push_str(path)?;
        sink.push_str(": ")?;
    }
    sink.push_str(value)?;
    sink.push('\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(input: &str) -> Result<String, ExtractError> {
        let mut sink = Sink::new(1 << 20);
        extract(input.as_bytes(), &mut sink)?;
        sink.finish()
    }

    #[test]
    fn paths_and_values() {
        let json = r#"{"title": "Quarterly report", "author": {"name": "Ada", "id": 7},
            "tags": ["finance", "q3"], "draft": false, "notes": null,
            "sections": [{"heading": "Revenue"}, {"heading": "Costs"}]}"#;
        assert_eq!(
            render(json).expect("valid"),
            "title: Quarterly report\nauthor.name: Ada\nauthor.id: 7\ntags: finance, q3\ndraft: false\nsections[0].heading: Revenue\nsections[1].heading: Costs"
        );
    }

    #[test]
    fn json_lines_and_top_level_arrays_are_records() {
        assert_eq!(render("{\"a\": 1}\n\n{\"a\": 2}\n").expect("valid"), "a: 1\n\na: 2");
        assert_eq!(render(r#"[{"a": 1}, "x"]"#).expect("valid"), "a: 1\n\nx");
    }

    #[test]
    fn broken_json_is_corrupt() {
        assert!(matches!(render("{\"a\": "), Err(ExtractError::Corrupt { format: Format::Json, .. })));
    }
}
