//! Conflist targets: the harness acting as a libcni-like runtime (crate `cni`) in-process —
//! plugins in order with `prevResult` threading and capability filtering, DEL in reverse, a
//! result cache — with the outcome described as a plugin's would be.

use super::{CaseNetwork, TargetDriver};
use crate::case_env::CaseEnv;
use crate::errors::CaseSetupError;
use crate::expect::Observation;
use crate::invocation::{Invocation, Scope, TargetVars, default_config};
use crate::model::{Case, Step};
use crate::target::Target;
use crate::versions::Versions;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct RuntimeDriver {
    tokio: tokio::runtime::Runtime,
    cni_path: Vec<PathBuf>,
}

impl RuntimeDriver {
    pub fn new(target: &Target) -> std::io::Result<RuntimeDriver> {
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(RuntimeDriver { tokio, cni_path: target.cni_path.clone() })
    }

    /// The two lookup-order directories, each with a `fake-path` plugin: in the first it is
    /// fake-cni, in the second a script that fails, so using the wrong one shows.
    fn prepare_lookup_dirs(&self, env: &CaseEnv) -> std::io::Result<()> {
        let (first, second) = (env.tmp.path().join("cni-first"), env.tmp.path().join("cni-second"));
        std::fs::create_dir_all(&first)?;
        std::fs::create_dir_all(&second)?;
        if let Some(fake) = self.cni_path.iter().map(|d| d.join("fake-cni")).find(|p| p.is_file()) {
            std::os::unix::fs::symlink(fake, first.join("fake-path"))?;
        }
        let wrong = second.join("fake-path");
        std::fs::write(
            &wrong,
            "#!/bin/sh\necho '{\"code\":999,\"msg\":\"the second CNI_PATH directory was used\"}'\nexit 1\n",
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o755))
    }

    /// The runtime's view of the invocation's environment.
    fn runtime_conf(&self, r: &Scope<'_>, case: &Case, inv: &Invocation, env: &CaseEnv) -> cni::runtime::RuntimeConf {
        let get = |k: &str| inv.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        let mut rt = cni::runtime::RuntimeConf::new(get("CNI_CONTAINERID"), get("CNI_NETNS"), get("CNI_IFNAME"));
        rt.args = get("CNI_ARGS")
            .split(';')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').map_or((p.to_string(), String::new()), |(k, v)| (k.to_string(), v.to_string())))
            .collect();
        if let Some(n) = &case.setup.network
            && let Value::Object(caps) = r.render_json(env, &Value::Object(n.capability_args.clone()))
        {
            rt.capability_args = caps;
        }
        rt
    }
}

/// The network list on stdin, or the error object a runtime would answer with.
fn network_list(stdin: &[u8]) -> Result<cni::conf::NetConfList, cni::CniError> {
    serde_json::from_slice::<Value>(stdin)
        .map_err(|e| cni::CniError::new(cni::error::code::DECODING_FAILURE, format!("decoding the network: {e}")))
        .and_then(|v| {
            cni::conf::NetConfList::from_value(v)
                .map_err(|e| cni::CniError::new(cni::error::code::INVALID_NETWORK_CONFIG, e.to_string()))
        })
}

/// The outcome as a plugin would show it: exit 0 with the result, or exit 1 with the error object.
fn observation(outcome: Result<Option<Value>, cni::CniError>, start: Instant) -> Observation {
    let (exit, stdout) = match outcome {
        Ok(Some(result)) => (0, serde_json::to_string(&result).unwrap_or_default()),
        Ok(None) => (0, String::new()),
        Err(e) => (1, e.to_json()),
    };
    Observation { exit: Some(exit), stdout, duration_ms: start.elapsed().as_millis() as u64, ..Default::default() }
}

impl TargetVars for RuntimeDriver {
    fn var(&self, key: &str, which: &str, env: &CaseEnv) -> Option<Value> {
        match key {
            "records" => Some(Value::String(format!("{}/calls", env.tmp_path()))),
            "cache_dir" => Some(Value::String(format!("{}/cache", env.tmp_path()))),
            "net_ifname" => env.attachments.get(which).map(|a| Value::String(a.ifname.clone())),
            _ => None,
        }
    }

    fn cni_path(&self, env: &CaseEnv) -> String {
        let dirs: Vec<String> = env.plugin_dirs(&self.cni_path, true).iter().map(|p| p.display().to_string()).collect();
        dirs.join(":")
    }

    /// The case's own network when it defines one (named like the case unless it says).
    fn config_template(&self, target: &Target, case: &Case) -> Value {
        if let Some(n) = &case.setup.network {
            let mut config = n.config.clone();
            if let Some(m) = config.as_object_mut() {
                m.entry("name").or_insert_with(|| json!("{{net}}"));
            }
            return config;
        }
        default_config(target)
    }
}

impl TargetDriver for RuntimeDriver {
    fn vars(&self) -> &dyn TargetVars {
        self
    }

    fn probe_versions(&self, target: &Target) -> Versions {
        Versions::runtime(target.default_version.as_ref())
    }

    fn prepare_case(
        &mut self,
        _case: &Case,
        env: &mut CaseEnv,
        _network: Option<&CaseNetwork>,
    ) -> Result<(), CaseSetupError> {
        Ok(self.prepare_lookup_dirs(env)?)
    }

    fn execute(
        &self,
        r: &Scope<'_>,
        case: &Case,
        step: &Step,
        inv: &Invocation,
        env: &CaseEnv,
        timeout: Duration,
    ) -> Observation {
        let start = Instant::now();
        let list = match network_list(&inv.stdin) {
            Ok(l) => l,
            Err(e) => return observation(Err(e), start),
        };
        let rt = self.runtime_conf(r, case, inv, env);
        let exec = cni::exec::RawExec::with_timeout(timeout);
        let runtime =
            cni::runtime::CniRuntime::new(env.plugin_dirs(&self.cni_path, true), env.tmp.path().join("cache"), exec);
        let valid: Option<Vec<cni::runtime::ValidAttachment>> = step
            .patch
            .as_ref()
            .and_then(|p| p.get("cni.dev/valid-attachments"))
            .map(|v| serde_json::from_value(r.render_json(env, v)).unwrap_or_default());
        let outcome: Result<Option<Value>, cni::runtime::RuntimeError> = self.tokio.block_on(async {
            match inv.command.as_str() {
                "ADD" => runtime.add_network_list(&list, &rt).await.map(|r| Some(r.to_value())),
                "DEL" => runtime.del_network_list(&list, &rt).await.map(|()| None),
                "CHECK" => runtime.check_network_list(&list, &rt).await.map(|()| None),
                "STATUS" => runtime.status_network_list(&list).await.map(|()| None),
                "GC" => runtime.gc_network_list(&list, valid.as_deref()).await.map(|()| None),
                other => Err(cni::runtime::RuntimeError::Config(format!("the runtime has no verb {other}"))),
            }
        });
        observation(outcome.map_err(|e| e.to_cni_error()), start)
    }

    /// The runtime runs in-process: one invocation after the other.
    fn runs_concurrently(&self) -> bool {
        false
    }
}
