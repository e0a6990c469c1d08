//! Embeds `scenarios/**/*.yaml` and `targets/*.yaml` into the library, so that an installed
//! `cni-conformance` runs from any directory without its source tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}

fn table(name: &str, root: &Path, code: &mut String) {
    let mut files = Vec::new();
    yaml_files(root, &mut files);
    files.sort();
    let _ = writeln!(
        code,
        "/// `(path relative to {}/, text)`, sorted by path.",
        root.file_name().unwrap_or_default().to_string_lossy()
    );
    let _ = writeln!(code, "pub static {name}: &[(&str, &str)] = &[");
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f).to_string_lossy().replace('\\', "/");
        let _ = writeln!(code, "    ({rel:?}, include_str!({:?})),", f.display().to_string());
    }
    let _ = writeln!(code, "];");
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut code = String::new();
    table("SCENARIOS", &manifest.join("scenarios"), &mut code);
    table("TARGETS", &manifest.join("targets"), &mut code);
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("embedded.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
    println!("cargo:rerun-if-changed=scenarios");
    println!("cargo:rerun-if-changed=targets");
    println!("cargo:rerun-if-changed=build.rs");
}
