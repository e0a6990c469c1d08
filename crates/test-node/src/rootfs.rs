//! Programs copied into a node's root file system (a directory, or a `FROM scratch` image's
//! context) with the shared libraries they load, so they run there as on this machine.

use std::collections::BTreeSet;
use std::path::Path;

/// The absolute paths of the libraries (and the loader) in `ldd` output.
pub fn shared_libraries(ldd: &str) -> Vec<String> {
    ldd.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect()
}

/// Copy `source` to `path_in_root` under `root`, and every library `ldd` says it loads to the
/// same path under `root` (each library once per call of [`RootFs::finish`]).
#[derive(Debug)]
pub struct RootFs<'a> {
    root: &'a Path,
    libraries: BTreeSet<String>,
}

impl<'a> RootFs<'a> {
    pub fn new(root: &'a Path) -> Self {
        Self { root, libraries: BTreeSet::new() }
    }

    /// Copy one program (or any file) into the root and note the libraries it loads.
    pub fn add(&mut self, path_in_root: &str, source: &Path) -> std::io::Result<()> {
        copy_into(self.root, path_in_root, source)?;
        let ldd = std::process::Command::new("ldd").arg(source).output()?;
        self.libraries.extend(shared_libraries(&String::from_utf8_lossy(&ldd.stdout)));
        Ok(())
    }

    /// Copy the libraries the programs load.
    pub fn finish(self) -> std::io::Result<()> {
        for lib in &self.libraries {
            copy_into(self.root, lib, Path::new(lib))?;
        }
        Ok(())
    }
}

fn copy_into(root: &Path, path_in_root: &str, source: &Path) -> std::io::Result<()> {
    let dest = root.join(path_in_root.trim_start_matches('/'));
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::copy(source, &dest)
        .map(|_| ())
        .map_err(|e| std::io::Error::new(e.kind(), format!("copying {} to {}: {e}", source.display(), dest.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_lines_give_the_libraries_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n\tnot a dynamic executable\n";
        assert_eq!(shared_libraries(out), ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]);
    }

    #[test]
    fn a_program_arrives_with_its_libraries() {
        let root = tempfile::tempdir().unwrap();
        let mut fs = RootFs::new(root.path());
        let ls = Path::new("/bin/ls");
        if !ls.exists() {
            return;
        }
        fs.add("/usr/bin/ls", ls).unwrap();
        fs.finish().unwrap();
        assert!(root.path().join("usr/bin/ls").is_file());
        let ldd = std::process::Command::new("ldd").arg(ls).output().unwrap();
        for lib in shared_libraries(&String::from_utf8_lossy(&ldd.stdout)) {
            assert!(root.path().join(lib.trim_start_matches('/')).is_file(), "{lib}");
        }
    }
}
