//! Seed objects from YAML or JSON files and directories ([`kube_objects`]: single objects,
//! multi-document YAML, JSON arrays, `kind: List`, maps of arrays such as
//! `{"pods": [...], "nads": [...]}`), in the order a store can take them.

use std::path::Path;

use serde_json::Value;

use crate::error::Error;

/// Objects from a file, or from every `.yaml`, `.yml` and `.json` file in a directory
/// (sorted by name, not recursive into hidden entries): see [`kube_objects`].
pub fn load_path(path: &Path) -> Result<Vec<Value>, Error> {
    let loaded = kube_objects::load_path(path).map_err(|e| match e {
        kube_objects::LoadError::Read { path, source } => Error::SeedRead { path, source },
        kube_objects::LoadError::Parse { path, source } => Error::SeedParse { path, source },
    })?;
    Ok(loaded.into_iter().map(|l| l.object).collect())
}

/// Objects from YAML or JSON text.
pub use kube_objects::parse_text;

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
