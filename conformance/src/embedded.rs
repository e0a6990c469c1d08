//! The case files and target files built into the binary (see `build.rs`), so that an
//! installed `cni-conformance` needs no source tree. `--scenarios DIR` still loads from disk.

use crate::model::{Case, LoadError};
use std::path::Path;

mod files {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

pub use files::{SCENARIOS, TARGETS};

/// Every embedded case, in the same order as [`crate::model::load_dir`] gives for the source tree.
pub fn load_scenarios() -> Result<Vec<Case>, LoadError> {
    let files = SCENARIOS.iter().filter_map(|(rel, text)| {
        let (group, _) = rel.split_once('/')?;
        Some((group.to_string(), Path::new("scenarios").join(rel), text.to_string()))
    });
    crate::model::load_texts(files)
}

/// An embedded target file by name (`fake-cni.yaml`, or `targets/fake-cni.yaml`).
pub fn target_file(name: &str) -> Option<&'static str> {
    let name = name.strip_prefix("targets/").unwrap_or(name);
    let name = Path::new(name).file_name()?.to_str()?;
    TARGETS.iter().find(|(rel, _)| *rel == name).map(|(_, text)| *text)
}
