//! kube-mock run as its binary, for a node outside the test process (xtask's local runs):
//! its command line, and the address it announces on its first line of stdout.

use std::path::{Path, PathBuf};

/// The arguments of `kube-mock` listening on a free local port, writing a kubeconfig for
/// itself to `kubeconfig_out`, seeded from `seeds`, with `extra` (e.g. `--tls`) last.
pub fn kube_mock_args(kubeconfig_out: &Path, seeds: &[PathBuf], extra: &[String]) -> Vec<String> {
    let mut args = vec![
        "--listen".to_string(),
        "127.0.0.1:0".to_string(),
        "--kubeconfig-out".to_string(),
        kubeconfig_out.display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    for s in seeds {
        args.extend(["--seed".to_string(), s.display().to_string()]);
    }
    args
}

/// The URL in kube-mock's (or fake-kubelet's) first line, `listening on <url>`.
pub fn listening_url(first_line: &str) -> Result<String, String> {
    first_line
        .strip_prefix("listening on ")
        .map(|url| url.trim().to_string())
        .ok_or_else(|| format!("unexpected first line: {first_line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_the_announced_address() {
        let args = kube_mock_args(Path::new("/r/kc"), &[PathBuf::from("/s.yaml")], &["--tls".into()]);
        assert_eq!(args.join(" "), "--listen 127.0.0.1:0 --kubeconfig-out /r/kc --tls --seed /s.yaml");
        assert_eq!(listening_url("listening on http://127.0.0.1:5\n").unwrap(), "http://127.0.0.1:5");
        assert!(listening_url("hello").is_err());
    }
}
