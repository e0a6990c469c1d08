use super::*;
use crate::model::Case;

/// A target kind that adds nothing but `CNI_PATH` and a records dir.
struct Plain;

impl TargetVars for Plain {
    fn var(&self, key: &str, _which: &str, env: &CaseEnv) -> Option<Value> {
        (key == "records").then(|| Value::String(format!("{}/calls", env.tmp_path())))
    }
    fn cni_path(&self, _env: &CaseEnv) -> String {
        "/opt/cni".into()
    }
    fn config_template(&self, target: &Target, _case: &Case) -> Value {
        default_config(target)
    }
}

fn case(yaml: &str) -> Case {
    let text = format!("cases:\n{yaml}");
    crate::model::parse_case_file(&text, std::path::Path::new("t.yaml"), "protocol").unwrap().remove(0)
}

fn target() -> Target {
    Target::from_spec("plugin:/usr/lib/cni/bridge").unwrap()
}

#[test]
fn a_step_sends_the_rendered_template_and_the_full_environment() {
    let case = case(
        "  - id: x\n    title: t\n    strength: MUST\n    assertions: [1]\n    steps:\n      - cni: ADD\n        version: 0.4.0\n        env: {CNI_IFNAME: net9, CNI_ARGS: null}\n",
    );
    let target = target();
    let versions = Versions { supported: Some(vec!["0.4.0".into(), "1.0.0".into()]), default: "1.0.0".into() };
    let scope = Scope { target: &target, versions: &versions, vars: &Plain };
    let mut env = CaseEnv::create("eth0".into()).unwrap();
    env.attachments.insert(
        "main".into(),
        crate::case_env::Attachment {
            cid: "c1".into(),
            ifname: "eth0".into(),
            netns: None,
            netns_path: "/run/netns/n1".into(),
            pod: "c1".into(),
            slot: 0,
        },
    );
    let inv = scope.invocation(&case, &case.steps[0], &mut env);
    assert_eq!(inv.command, "ADD");
    assert_eq!(inv.version.as_deref(), Some("0.4.0"));
    let stdin: Value = serde_json::from_slice(&inv.stdin).unwrap();
    assert_eq!(stdin["cniVersion"], "0.4.0");
    assert_eq!(stdin["name"], format!("net-{}", env.id));
    assert_eq!(stdin["type"], "bridge");
    let vars: BTreeMap<String, String> = inv.env.into_iter().collect();
    assert_eq!(vars["CNI_COMMAND"], "ADD");
    assert_eq!(vars["CNI_CONTAINERID"], "c1");
    assert_eq!(vars["CNI_NETNS"], "/run/netns/n1");
    assert_eq!(vars["CNI_IFNAME"], "net9", "the step's env overrides");
    assert!(!vars.contains_key("CNI_ARGS"), "a null env entry removes the variable");
    assert_eq!(vars["CNI_PATH"], "/opt/cni");
    assert_eq!(scope.render(&env, "{{records}}"), format!("{}/calls", env.tmp_path()));
}

#[test]
fn version_and_probe_environment() {
    let case = case(
        "  - id: x\n    title: t\n    strength: MUST\n    assertions: [1]\n    steps:\n      - cni: VERSION\n        env_base: probe\n        stdin: {json: {cniVersion: '{{unsupported_version}}'}}\n",
    );
    let target = target();
    let versions = Versions { supported: Some(vec!["1.0.0".into()]), default: "1.0.0".into() };
    let scope = Scope { target: &target, versions: &versions, vars: &Plain };
    let mut env = CaseEnv::create("eth0".into()).unwrap();
    let inv = scope.invocation(&case, &case.steps[0], &mut env);
    let stdin: Value = serde_json::from_slice(&inv.stdin).unwrap();
    assert_eq!(stdin["cniVersion"], "1.1.0", "the newest version the target does not support");
    let vars: BTreeMap<String, String> = inv.env.into_iter().collect();
    assert_eq!(vars["CNI_NETNS"], "dummy");
    assert_eq!(vars["CNI_CONTAINERID"], "");
}
