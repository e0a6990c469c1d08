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
    fn namespaces_and_crds_are_seeded_first() {
        // The shapes a file may take are kube-objects' (tested there).
        let mut ordered = parse_text("kind: Pod\n---\nkind: CustomResourceDefinition\n---\nkind: Namespace\n").unwrap();
        order_for_seeding(&mut ordered);
        let kinds: Vec<_> = ordered.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Namespace", "CustomResourceDefinition", "Pod"]);
    }

    #[test]
    fn the_reference_fixture_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed/fixture-example.json");
        let objects = load_path(&path).unwrap();
        assert!(objects.iter().any(|o| o["kind"] == "NetworkAttachmentDefinition"));
        assert!(objects.iter().any(|o| o["metadata"]["name"] == "pod1"));
    }
}
