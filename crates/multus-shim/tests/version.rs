//! `multus-shim -version` (and `-v`, Go's spellings; `--version`, `-V`): the git commit and
//! build date, exit 0, without contacting a daemon.

#[test]
fn every_version_flag_prints_the_stamp() {
    for flag in ["-version", "--version", "-v", "-V"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_multus-shim")).arg(flag).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let line = String::from_utf8_lossy(&out.stdout);
        assert!(line.starts_with("multus-shim: version:"), "{flag}: {line}");
        assert!(line.contains("(multus-rs), commit:") && line.contains(", date:"), "{flag}: {line}");
    }
}
