//! multus-shim started as a container runtime starts a CNI plugin: a clean environment with
//! the `CNI_*` variables, the network config on stdin, the result on stdout. Every caller of
//! the shim (tests, bench, xtask) goes through [`ShimCall`].

use serde_json::Value;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The `CNI_ARGS` a kubelet-driven runtime passes for a pod.
pub fn cni_args(namespace: &str, name: &str, container_id: &str, uid: &str) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={uid}"
    )
}

/// One invocation of the shim: its environment (set in order, a later value wins) and stdin.
#[derive(Debug, Clone, Default)]
pub struct ShimCall {
    env: Vec<(OsString, OsString)>,
    stdin: Vec<u8>,
}

impl ShimCall {
    /// `CNI_COMMAND=command`, nothing else yet.
    pub fn new(command: &str) -> Self {
        Self::default().env("CNI_COMMAND", command)
    }

    /// The attachment: `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`.
    pub fn attachment(self, container_id: &str, netns_path: &str, ifname: &str, args: impl AsRef<OsStr>) -> Self {
        self.env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns_path)
            .env("CNI_IFNAME", ifname)
            .env("CNI_ARGS", args)
    }

    pub fn cni_path(self, path: impl AsRef<OsStr>) -> Self {
        self.env("CNI_PATH", path)
    }

    /// `PATH` as a runtime sets it (the shim's own environment is otherwise empty).
    pub fn system_path(self) -> Self {
        self.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = stdin.into();
        self
    }

    /// Start `shim` and return it running, stdin written and closed (for callers that time it,
    /// or kill it mid-command).
    pub fn spawn(&self, shim: &Path) -> std::io::Result<Child> {
        let mut cmd = Command::new(shim);
        cmd.env_clear().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        // The shim may exit before reading stdin (e.g. missing env): a broken pipe is fine.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(&self.stdin);
        }
        Ok(child)
    }

    /// Run `shim` to its end.
    pub fn run(&self, shim: &Path) -> std::io::Result<ShimRun> {
        let out = self.spawn(shim)?.wait_with_output()?;
        Ok(ShimRun {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// The output of one shim invocation.
#[derive(Debug, Clone)]
pub struct ShimRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ShimRun {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("shim stdout is not JSON ({e}): {self:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `env` stands in for the shim: it prints the environment it got, and reads no stdin.
    #[test]
    fn the_environment_is_exactly_the_calls_and_a_later_value_wins() {
        let call = ShimCall::new("ADD")
            .attachment("c1", "/var/run/netns/n1", "eth0", cni_args("ns", "p", "c1", "u1"))
            .env("CNI_ARGS", "IgnoreUnknown=1")
            .stdin("{}");
        let run = call.run(Path::new("/usr/bin/env")).unwrap();
        assert!(run.success(), "{run:?}");
        let mut lines: Vec<&str> = run.stdout.lines().collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "CNI_ARGS=IgnoreUnknown=1",
                "CNI_COMMAND=ADD",
                "CNI_CONTAINERID=c1",
                "CNI_IFNAME=eth0",
                "CNI_NETNS=/var/run/netns/n1"
            ]
        );
    }
}
