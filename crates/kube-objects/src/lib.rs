//! Kubernetes objects from YAML or JSON files and directories, as `kubectl apply -f` reads them:
//! one loader for kube-mock's seed, `multusctl`'s object files and the test fixtures.
//!
//! Accepted shapes: single objects, multi-document YAML, JSON arrays, `kind: List` (or any
//! `…List` with `items`), and maps of arrays such as `{"pods": [...], "nads": [...]}` (the
//! fixture shape). Documents that are empty or have no `kind` are passed over.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Why objects could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file or directory could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not YAML or JSON.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: ParseError,
    },
}

/// Text that is not YAML or JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(String);

/// One object and the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// The object.
    pub object: Value,
}

/// Objects of a file, or of every `.yaml`, `.yml` and `.json` file of a directory (sorted by
/// name, recursive, hidden entries skipped).
pub fn load_path(path: &Path) -> Result<Vec<Loaded>, LoadError> {
    let read_err = |source| LoadError::Read { path: path.to_path_buf(), source };
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
        let mut out = Vec::new();
        for file in files {
            out.extend(load_path(&file)?);
        }
        return Ok(out);
    }
    let text = std::fs::read_to_string(path).map_err(read_err)?;
    let objects = parse_text(&text).map_err(|source| LoadError::Parse { path: path.to_path_buf(), source })?;
    Ok(objects.into_iter().map(|object| Loaded { path: path.to_path_buf(), object }).collect())
}

/// Every object of several paths, in order.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Loaded>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        out.extend(load_path(p)?);
    }
    Ok(out)
}

/// Objects from YAML or JSON text.
pub fn parse_text(text: &str) -> Result<Vec<Value>, ParseError> {
    let trimmed = text.trim_start();
    let documents: Vec<Value> = if trimmed.starts_with('{') || trimmed.starts_with('[') {
        vec![serde_json::from_str(text).map_err(|e| ParseError(e.to_string()))?]
    } else {
        serde_saphyr::from_multiple(text).map_err(|e| ParseError(e.to_string()))?
    };
    let mut out = Vec::new();
    for document in documents {
        flatten(document, &mut out);
    }
    Ok(out)
}

fn flatten(value: Value, out: &mut Vec<Value>) {
    match value {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_flattens_to_objects() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\n";
        let objects = parse_text(yaml).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1]["kind"], "ConfigMap");
        let fixture = r#"{"pods":[{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}],"nads":[{"apiVersion":"k8s.cni.cncf.io/v1","kind":"NetworkAttachmentDefinition","metadata":{"name":"n"}}]}"#;
        assert_eq!(parse_text(fixture).unwrap().len(), 2);
        assert_eq!(parse_text(r#"[{"kind":"Pod"},null,{"kind":"Namespace"}]"#).unwrap().len(), 2);
        assert!(parse_text("{nope").is_err());
        assert!(parse_text("a: [b").is_err());
    }

    #[test]
    fn a_directory_loads_sorted_and_skips_hidden_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yaml"), "kind: Pod\nmetadata: {name: b}\n").unwrap();
        std::fs::write(dir.path().join("a.json"), r#"{"kind":"Pod","metadata":{"name":"a"}}"#).unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "kind: Pod\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "kind: Pod\n").unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("c/c.yml"), "kind: Pod\nmetadata: {name: c}\n").unwrap();
        let names: Vec<_> =
            load_path(dir.path()).unwrap().into_iter().map(|l| l.object["metadata"]["name"].clone()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        std::fs::write(dir.path().join("bad.yaml"), "a: [b").unwrap();
        assert!(matches!(load_path(dir.path()), Err(LoadError::Parse { .. })));
        assert!(matches!(load_path(&dir.path().join("missing.yaml")), Err(LoadError::Read { .. })));
    }
}
