//! Seed objects from YAML or JSON files and directories.
//!
//! Accepted shapes: single objects, multi-document YAML, JSON arrays, `kind: List` (or any
//! `…List` with `items`), and maps of arrays such as `{"pods": [...], "nads": [...]}`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, SeedParseError};

/// Objects from a file, or from every `.yaml`, `.yml` and `.json` file in a directory
/// (sorted by name, not recursive into hidden entries).
pub fn load_path(path: &Path) -> Result<Vec<Value>, Error> {
    let read_err = |source| Error::SeedRead { path: path.to_path_buf(), source };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(read_err)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                let hidden = p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
                !hidden && (p.is_dir() || matches!(ext, "yaml" | "yml" | "json"))
            })
            .collect();
        files.sort();
        let mut objects = Vec::new();
        for file in files {
            objects.extend(load_path(&file)?);
        }
        return Ok(objects);
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    parse_text(&text).map_err(|source| Error::SeedParse { path: path.to_path_buf(), source })
}

/// Objects from YAML or JSON text.
pub fn parse_text(text: &str) -> Result<Vec<Value>, SeedParseError> {
    let trimmed = text.trim_start();
    let documents: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        vec![serde_json::from_str(text)?]
    } else {
        serde_saphyr::from_multiple(text).map_err(|e| SeedParseError::Yaml(Box::new(e)))?
    };
    let mut objects = Vec::new();
    for document in documents {
        flatten(document, &mut objects);
    }
    Ok(objects)
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.into_iter().for_each(|i| flatten(i, out)),
        Value::Object(mut map) => {
            let is_list = map.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"));
            if is_list && let Some(items) = map.remove("items") {
                flatten(items, out);
            } else if map.contains_key("kind") {
                out.push(Value::Object(map));
            } else {
                // A fixture map of arrays: {"pods": [...], "nads": [...]}.
                for (_, v) in map {
                    if v.is_array() {
                        flatten(v, out);
                    }
                }
            }
        }
        _ => {}
    }
}

/// Seeding order: namespaces and CRDs first so the objects that need them can be stored.
pub fn order_for_seeding(objects: &mut [Value]) {
    objects.sort_by_key(|o| match o["kind"].as_str() {
        Some("Namespace") => 0,
        Some("CustomResourceDefinition") => 1,
        _ => 2,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
        let objects = parse_text(yaml).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["kind"], "ConfigMap");
        let fixture = r#"{"pods":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}],"nads":[{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"n"}}]}"#;
        assert_eq!(parse_text(fixture).unwrap().len(), 2);
        assert!(parse_text("{nope").is_err());
        assert!(parse_text("a: [b").is_err());
        let mut ordered = parse_text("kind: Pod\n---\nkind: Namespace\n").unwrap();
        order_for_seeding(&mut ordered);
        assert_eq!(ordered[0]["kind"], "Namespace");
    }

    #[test]
    fn the_reference_fixture_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed/fixture-example.json");
        let objects = load_path(&path).unwrap();
        assert!(objects.iter().any(|o| o["kind"] == "NetworkAttachmentDefinition"));
        assert!(objects.iter().any(|o| o["metadata"]["name"] == "pod1"));
    }
}
