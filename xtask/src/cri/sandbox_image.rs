//! The sandbox ("pause") image containerd's CRI needs for every pod: the static `sandbox-pause`
//! program alone, as an OCI image archive that `ctr images import` takes. Built here; nothing is
//! pulled.

use anyhow::{Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

use crate::image::{RUSTFLAGS, TARGET};
use crate::util::{Cmd, cargo_cmd, target_dir};

/// The reference the runtime's `sandbox_image` names (`.invalid`: no registry will answer).
pub const SANDBOX_IMAGE: &str = "multus-rs.invalid/sandbox-pause:e2e";
/// Where the program is in the image.
pub const ENTRYPOINT: &str = "/sandbox-pause";

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// `cargo build` of the static program (`profile` as the rest of the run).
pub fn build_cmd(profile: &str) -> Cmd {
    cargo_cmd()
        .args(["build", "--profile", profile, "--target", TARGET, "-p", "sandbox-pause"])
        .env("RUSTFLAGS", RUSTFLAGS)
}

/// The built program.
pub fn binary(profile: &str) -> PathBuf {
    let dir = if profile == "dev" { "debug" } else { profile };
    target_dir().join(TARGET).join(dir).join("sandbox-pause")
}

struct Blob {
    media_type: &'static str,
    bytes: Vec<u8>,
}

impl Blob {
    fn digest(&self) -> String {
        format!("sha256:{:x}", Sha256::digest(&self.bytes))
    }

    fn descriptor(&self) -> serde_json::Value {
        json!({ "mediaType": self.media_type, "digest": self.digest(), "size": self.bytes.len() })
    }
}

fn append(archive: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, bytes: &[u8]) -> Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    archive.append_data(&mut header, path, bytes).with_context(|| format!("adding {path} to an archive"))
}

/// The OCI image layout archive (`oci-layout`, `index.json`, `blobs/sha256/*`) of an image whose
/// one uncompressed layer holds `program` at [`ENTRYPOINT`], named `reference`. Same input, same
/// bytes (no timestamps).
pub fn oci_archive(program: &[u8], reference: &str) -> Result<Vec<u8>> {
    let mut layer = tar::Builder::new(Vec::new());
    append(&mut layer, ENTRYPOINT.trim_start_matches('/'), 0o755, program)?;
    let layer = Blob { media_type: LAYER_TYPE, bytes: layer.into_inner()? };
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Entrypoint": [ENTRYPOINT] },
        "rootfs": { "type": "layers", "diff_ids": [layer.digest()] },
    });
    let config = Blob { media_type: CONFIG_TYPE, bytes: serde_json::to_vec(&config)? };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config.descriptor(),
        "layers": [layer.descriptor()],
    });
    let manifest = Blob { media_type: MANIFEST_TYPE, bytes: serde_json::to_vec(&manifest)? };
    let tag = reference.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("latest");
    let mut entry = manifest.descriptor();
    entry["platform"] = json!({ "architecture": "amd64", "os": "linux" });
    // containerd names the image from its own annotation; other tools read the OCI one (a tag).
    entry["annotations"] = json!({ "io.containerd.image.name": reference, "org.opencontainers.image.ref.name": tag });
    let index =
        json!({ "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry] });

    let mut archive = tar::Builder::new(Vec::new());
    append(&mut archive, "oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    append(&mut archive, "index.json", 0o644, &serde_json::to_vec(&index)?)?;
    for blob in [&layer, &config, &manifest] {
        let path = format!("blobs/sha256/{}", blob.digest().trim_start_matches("sha256:"));
        append(&mut archive, &path, 0o644, &blob.bytes)?;
    }
    Ok(archive.into_inner()?)
}

/// Write the archive of the built program next to it; its path.
pub fn write_archive(program: &Path, out: &Path) -> Result<()> {
    let bytes = std::fs::read(program).with_context(|| format!("reading {}", program.display()))?;
    std::fs::write(out, oci_archive(&bytes, SANDBOX_IMAGE)?).with_context(|| format!("writing {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut reader = tar::Archive::new(archive);
        reader
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn the_archive_is_an_oci_layout_whose_blobs_match_their_digests() {
        let archive = oci_archive(b"\x7fELF program", SANDBOX_IMAGE).unwrap();
        let files = entries(&archive);
        let file = |name: &str| files.iter().find(|(p, _)| p == name).map(|(_, b)| b.clone()).unwrap();
        let index: serde_json::Value = serde_json::from_slice(&file("index.json")).unwrap();
        let entry = &index["manifests"][0];
        assert_eq!(entry["annotations"]["io.containerd.image.name"], SANDBOX_IMAGE);
        assert_eq!(entry["annotations"]["org.opencontainers.image.ref.name"], "e2e");
        for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("blobs/sha256/")) {
            assert_eq!(&format!("{:x}", Sha256::digest(bytes)), path.trim_start_matches("blobs/sha256/"));
        }
        let blob = |digest: &serde_json::Value| {
            file(&format!("blobs/sha256/{}", digest.as_str().unwrap().trim_start_matches("sha256:")))
        };
        let manifest: serde_json::Value = serde_json::from_slice(&blob(&entry["digest"])).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&blob(&manifest["config"]["digest"])).unwrap();
        assert_eq!(config["config"]["Entrypoint"][0], ENTRYPOINT);
        assert_eq!(config["rootfs"]["diff_ids"][0], manifest["layers"][0]["digest"]);
        let layer = entries(&blob(&manifest["layers"][0]["digest"]));
        assert_eq!(layer, vec![("sandbox-pause".to_string(), b"\x7fELF program".to_vec())]);
    }

    #[test]
    fn the_same_program_makes_the_same_archive() {
        assert_eq!(oci_archive(b"x", SANDBOX_IMAGE).unwrap(), oci_archive(b"x", SANDBOX_IMAGE).unwrap());
    }
}
