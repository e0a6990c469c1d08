//! The scenario model: what a case file under `conformance/scenarios/<group>/*.yaml` says.
//! Pure data plus loading and validation; nothing here runs anything. See README.md for the
//! schema with examples.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The groups, in report order.
pub const GROUPS: &[&str] = &[
    "protocol",
    "versions",
    "add",
    "del-idempotency",
    "check",
    "status-gc",
    "chaining",
    "runtime",
    "multus-selection",
    "multus-status-annotation",
    "multus-failures",
    "multus-devices",
    "multus-dynamic",
    "thick-daemon",
];

/// How binding an assertion is (cni.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
pub enum Strength {
    /// Spec requirement.
    #[serde(rename = "MUST")]
    Must,
    /// Spec recommendation.
    #[serde(rename = "SHOULD")]
    Should,
    /// Reference (Go skel/libcni/Multus) behaviour that runtimes depend on.
    #[serde(rename = "REF")]
    Ref,
}

impl Strength {
    pub fn as_str(self) -> &'static str {
        match self {
            Strength::Must => "MUST",
            Strength::Should => "SHOULD",
            Strength::Ref => "REF",
        }
    }
}

/// Which kind of target a case applies to (cni.md §5 tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Applies {
    /// Any plugin (A).
    Any,
    /// Plugins that create the container interface (I).
    Interface,
    /// Plugins that own IPAM state the harness can inspect (P).
    Ipam,
    /// Chained plugins that need a `prevResult` (C).
    Chained,
    /// Meta plugins such as Multus (M).
    Meta,
    /// Thick plugins: a shim talking to a daemon (T).
    Thick,
    /// Targets that run a network the case defines (`setup.network`) with libcni semantics:
    /// a runtime (the harness's own, `kind: conflist`) or a meta plugin (through a NAD).
    Network,
    /// Runtime-side cases (R): the harness acting as a libcni-like runtime.
    Runtime,
}

impl Applies {
    pub fn as_str(self) -> &'static str {
        match self {
            Applies::Any => "any",
            Applies::Interface => "interface",
            Applies::Ipam => "ipam",
            Applies::Chained => "chained",
            Applies::Meta => "meta",
            Applies::Thick => "thick",
            Applies::Network => "network",
            Applies::Runtime => "runtime",
        }
    }
}

/// Something a case needs before it can run (`can_run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Require {
    /// Effective uid 0.
    Root,
    /// Real network namespaces (root and `ip`).
    Netns,
    /// The target supports this CNI version (probed with VERSION).
    Version(String),
    /// The target does NOT support this version (e.g. the "unsupported version" cases need one).
    UnsupportedVersion,
    /// The target declares this capability in its config template.
    Capability(String),
    /// An API server (thick targets).
    ApiServer,
    /// The target records delegate calls (fake-cni delegates), so calls can be inspected.
    DelegateRecords,
    /// The target declares plugins it runs after (`prev_plugins`): a chained plugin the
    /// harness can feed a real `prevResult`.
    Chain,
    /// A thick target whose daemon reads device IDs from a scriptable kubelet pod-resources
    /// API (`fake-kubelet`), so `setup.devices` can give pods devices.
    Devices,
    /// A thick target that declares networks following the pod (`dynamic_networks: true`, a
    /// multus-rs extension): a target without it reports the case `unsupported`, not a failure.
    DynamicNetworks,
}

/// One case file: a list of cases of one group.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(default)]
    pub group: Option<String>,
    pub cases: Vec<Case>,
}

/// One conformance case.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub title: String,
    /// Assertion numbers of cni.md §5, or `T12.3-25` style references to multus-thick.md §12.
    #[serde(default)]
    pub assertions: Vec<Value>,
    pub strength: Strength,
    #[serde(default = "default_applies")]
    pub applies: Vec<Applies>,
    #[serde(default)]
    pub requires: Vec<Require>,
    /// Default config version of every step: `default` (the target's preferred one) or a version.
    #[serde(default)]
    pub version: Option<String>,
    /// Why a reference plugin may legitimately differ; printed with a failure.
    #[serde(default)]
    pub explain: Option<String>,
    #[serde(default)]
    pub setup: Setup,
    pub steps: Vec<Step>,
    /// The group, filled from the directory name when loading.
    #[serde(default)]
    pub group: String,
    /// The file the case came from.
    #[serde(skip)]
    pub source: PathBuf,
}

fn default_applies() -> Vec<Applies> {
    vec![Applies::Any]
}

/// Objects seeded before the steps (thick targets).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    /// Pods to create in the API server. Without this, a thick target creates one plain pod per
    /// attachment (named after it) so that delegates run.
    #[serde(default)]
    pub pods: Option<Vec<PodSpec>>,
    /// NetworkAttachmentDefinitions to create.
    #[serde(default)]
    pub nads: Vec<NadSpec>,
    /// A network the target runs with libcni semantics (cases tagged `network`/`runtime`): a
    /// `kind: conflist` target runs it itself; a thick target gets it as a NAD named `{{net}}`
    /// that the pod's selection annotation names (with the capability arguments as fields).
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// Devices the kubelet reports for pods (cases that `require: [devices]`).
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// The kubelet's pod-resources API fails every call with this gRPC status:
    /// `CODE[:MESSAGE]` (`unavailable:kubelet is restarting`).
    #[serde(default)]
    pub kubelet_fail: Option<String>,
}

/// Devices of one resource the (fake) kubelet gave a case pod.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// The attachment whose pod holds the devices; default `main`.
    #[serde(default = "main_attachment")]
    pub attachment: String,
    /// Device-plugin resource name (templated), e.g. `intel.com/sriov`.
    pub resource: String,
    /// Device IDs in the order the kubelet reports them (templated).
    pub ids: Vec<String>,
    /// Also write the device plugin's device-info file of every ID
    /// (`/var/run/k8s.cni.cncf.io/devinfo/dp/<resource>-<id>-device.json`, a PCI device;
    /// needs root), removed after the case.
    #[serde(default)]
    pub device_info: bool,
}

/// A network a case defines (see [`Setup::network`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The configuration list (templated): `cniVersion`, `name` (use `{{net}}`), `plugins`, …
    pub config: Value,
    /// Capability arguments the runtime supplies (`portMappings`, `bandwidth`, `ips`, `mac`, …).
    #[serde(default)]
    pub capability_args: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    /// Attachment the pod belongs to (its CNI_ARGS name the pod); default `main`.
    #[serde(default = "main_attachment")]
    pub attachment: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NadSpec {
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    /// The NAD `spec.config` (a JSON object, templated), or a named delegate of the target
    /// (`delegate: fake`).
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub delegate: Option<String>,
    /// Annotations of the NAD (templated), e.g. `k8s.v1.cni.cncf.io/resourceName`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

fn main_attachment() -> String {
    "main".to_string()
}

/// One step.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Invoke the target with this `CNI_COMMAND` (any string, e.g. `FOO`).
    #[serde(default)]
    pub cni: Option<String>,
    /// A Rust-coded check (see `vocabulary::KNOWN_CHECKS`).
    #[serde(default)]
    pub check: Option<String>,
    /// An action on the environment (see `vocabulary::KNOWN_ACTIONS`).
    #[serde(default)]
    pub action: Option<String>,
    /// Arguments of a check or action.
    #[serde(default)]
    pub with: BTreeMap<String, Value>,
    /// Which attachment (container id, netns, ifname) the step uses; default `main`.
    #[serde(default = "main_attachment")]
    pub attachment: String,
    /// Environment: `full` (all six CNI_* as libcni sets them), `none` (only CNI_COMMAND) or
    /// `probe` (libcni's VERSION probe).
    #[serde(default)]
    pub env_base: EnvBase,
    /// Variables to set (templated) or, with `null`, to remove.
    #[serde(default)]
    pub env: BTreeMap<String, Option<String>>,
    /// Override stdin entirely.
    #[serde(default)]
    pub stdin: Option<Stdin>,
    /// Config version of this step (overrides the case's).
    #[serde(default)]
    pub version: Option<String>,
    /// JSON merge patch (RFC 7386) applied to the target's config.
    #[serde(default)]
    pub patch: Option<Value>,
    /// Top-level keys set verbatim after the patch (templated; `null` stays `null`).
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// Put the result saved under this name into `prevResult` (converted to the config version).
    #[serde(default)]
    pub prev_result: Option<String>,
    /// Save the ADD result under this name.
    #[serde(default)]
    pub save_as: Option<String>,
    /// Per-step timeout in seconds (default 30).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// A check: retry it until it holds, for up to this many seconds (what an asynchronous
    /// actor such as a pod watch does eventually); its last verdict counts.
    #[serde(default)]
    pub poll: Option<u64>,
    #[serde(default)]
    pub expect: Expect,
    /// Run this step as teardown: always run, failures do not fail the case.
    #[serde(default)]
    pub cleanup: bool,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EnvBase {
    #[default]
    Full,
    None,
    Probe,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Stdin {
    /// Exactly these bytes (templated).
    Raw(String),
    /// This JSON (templated).
    Json(Value),
    /// Nothing at all.
    Empty(bool),
}

/// What a CNI step must observe.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `success`, `failure` or `any`; default `success`.
    #[serde(default)]
    pub exit: ExitExpect,
    /// Acceptable error codes (failure only).
    #[serde(default)]
    pub code: Vec<u64>,
    /// Substrings that must appear in the error `msg` (case-insensitive).
    #[serde(default)]
    pub msg_contains: Vec<String>,
    /// For verbs a pre-1.1 plugin does not know: these codes mean "verb unsupported" (recorded
    /// as such, not as a failure) when the target does not list 1.1.0.
    #[serde(default)]
    pub unsupported_codes: Vec<u64>,
    /// ADD: validate the result against the config version's schema (default true on success);
    /// `false` for a setup ADD whose schema other cases judge (the result is still saved).
    #[serde(default)]
    pub result: Option<bool>,
    /// VERSION: validate the answer (cni.md §5.1–2, 4).
    #[serde(default)]
    pub version_info: bool,
    /// The result must be equivalent to the saved result named here (after normalisation and
    /// conversion to the config version).
    #[serde(default)]
    pub equals: Option<String>,
    /// The result must contain every interface, IP and route of the saved result named here.
    #[serde(default)]
    pub contains: Option<String>,
    /// The result must have an interface with this name (templated).
    #[serde(default)]
    pub interface: Option<String>,
    /// Upper bound on the step's duration, in seconds.
    #[serde(default)]
    pub within: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ExitExpect {
    #[default]
    Success,
    Failure,
    Any,
}

/// Loading errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {msg}")]
    Io { path: PathBuf, msg: String },
    #[error("{path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("{path}: case {id}: {problem}")]
    Invalid { path: PathBuf, id: String, problem: CaseProblem },
}

/// What makes a case invalid beyond its YAML schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CaseProblem {
    #[error("unknown group {0:?} (known: {known})", known = GROUPS.join(", "))]
    UnknownGroup(String),
    #[error("id must be non-empty [a-zA-Z0-9.-]")]
    BadId,
    #[error("no steps")]
    NoSteps,
    #[error("duplicate case id")]
    DuplicateId,
    #[error("step {0}: exactly one of cni, check, action")]
    StepKinds(usize),
    #[error("step {step}: unknown check {name:?}")]
    UnknownCheck { step: usize, name: String },
    #[error("step {step}: unknown action {name:?}")]
    UnknownAction { step: usize, name: String },
    #[error("step {step}: refers to result {name:?} not saved by an earlier step")]
    UnsavedResult { step: usize, name: String },
    #[error("step {0}: error codes given but exit is success")]
    CodesOnSuccess(usize),
    #[error("step {step}: {source}")]
    Version { step: usize, source: BadVersion },
    #[error("assertion {0} is neither 1..=60 nor a T<§12 item>/Q<§13 quirk> reference")]
    BadAssertion(Value),
}

/// A version word that is neither `default`, `unsupported`, `none` nor a CNI version.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("bad version {0:?}")]
pub struct BadVersion(pub String);

/// The default scenario directory (next to this crate's manifest).
pub fn default_scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Parse one case file; `group` is the directory name.
pub fn parse_case_file(text: &str, path: &Path, group: &str) -> Result<Vec<Case>, LoadError> {
    let file: CaseFile =
        serde_saphyr::from_str(text).map_err(|e| LoadError::Parse { path: path.to_path_buf(), msg: e.to_string() })?;
    let mut cases = file.cases;
    for c in &mut cases {
        c.group = file.group.clone().unwrap_or_else(|| group.to_string());
        c.source = path.to_path_buf();
        validate_case(c).map_err(|problem| LoadError::Invalid {
            path: path.to_path_buf(),
            id: c.id.clone(),
            problem,
        })?;
    }
    Ok(cases)
}

/// Load every `*.yaml` under `<dir>/<group>/`, sorted by group order, file name, then position.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, LoadError> {
    let io = |p: &Path, e: std::io::Error| LoadError::Io { path: p.to_path_buf(), msg: e.to_string() };
    let mut files = Vec::new();
    let groups = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for gdir in groups.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()) {
        let group = gdir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for f in std::fs::read_dir(&gdir).map_err(|e| io(&gdir, e))?.filter_map(Result::ok).map(|e| e.path()) {
            if f.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let text = std::fs::read_to_string(&f).map_err(|e| io(&f, e))?;
                files.push((group.clone(), f, text));
            }
        }
    }
    load_texts(files)
}

/// Parse case files given as `(group, path, text)`: sorted by group order, then path, then
/// position in the file; ids must be unique.
pub fn load_texts(files: impl IntoIterator<Item = (String, PathBuf, String)>) -> Result<Vec<Case>, LoadError> {
    let mut files: Vec<(String, PathBuf, String)> = files.into_iter().collect();
    files.sort_by(|a, b| {
        let pos = |g: &str| GROUPS.iter().position(|x| *x == g).unwrap_or(usize::MAX);
        (pos(&a.0), &a.0, &a.1).cmp(&(pos(&b.0), &b.0, &b.1))
    });
    let mut all = Vec::new();
    for (group, path, text) in &files {
        all.extend(parse_case_file(text, path, group)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &all {
        if !seen.insert(c.id.clone()) {
            return Err(LoadError::Invalid {
                path: c.source.clone(),
                id: c.id.clone(),
                problem: CaseProblem::DuplicateId,
            });
        }
    }
    Ok(all)
}

/// Structural checks a YAML schema cannot express: one kind per step, known check and action
/// names, known groups, expectation consistency.
pub fn validate_case(c: &Case) -> Result<(), CaseProblem> {
    if !GROUPS.contains(&c.group.as_str()) {
        return Err(CaseProblem::UnknownGroup(c.group.clone()));
    }
    if c.id.is_empty() || !c.id.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.') {
        return Err(CaseProblem::BadId);
    }
    if c.steps.is_empty() {
        return Err(CaseProblem::NoSteps);
    }
    let mut saved = std::collections::BTreeSet::new();
    for (i, s) in c.steps.iter().enumerate() {
        let kinds = [s.cni.is_some(), s.check.is_some(), s.action.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(CaseProblem::StepKinds(i));
        }
        if let Some(name) = &s.check
            && !crate::vocabulary::KNOWN_CHECKS.contains(&name.as_str())
        {
            return Err(CaseProblem::UnknownCheck { step: i, name: name.clone() });
        }
        if let Some(name) = &s.action
            && !crate::vocabulary::KNOWN_ACTIONS.contains(&name.as_str())
        {
            return Err(CaseProblem::UnknownAction { step: i, name: name.clone() });
        }
        for r in [&s.prev_result, &s.expect.equals, &s.expect.contains].into_iter().flatten() {
            if r != "$prev" && !saved.contains(r) {
                return Err(CaseProblem::UnsavedResult { step: i, name: r.to_string() });
            }
        }
        if let Some(r) = s.with.get("result").and_then(Value::as_str)
            && !saved.contains(r)
        {
            return Err(CaseProblem::UnsavedResult { step: i, name: r.to_string() });
        }
        if let Some(name) = &s.save_as {
            saved.insert(name.clone());
        }
        if s.expect.exit == ExitExpect::Success && !s.expect.code.is_empty() {
            return Err(CaseProblem::CodesOnSuccess(i));
        }
        if let Some(v) = s.version.as_ref().or(c.version.as_ref()) {
            check_version_word(v).map_err(|source| CaseProblem::Version { step: i, source })?;
        }
    }
    for a in &c.assertions {
        let ok = match a {
            Value::Number(n) => n.as_u64().is_some_and(|n| (1..=60).contains(&n)),
            Value::String(s) => s.starts_with('T') || s.starts_with('Q'),
            _ => false,
        };
        if !ok {
            return Err(CaseProblem::BadAssertion(a.clone()));
        }
    }
    Ok(())
}

/// Version words a case may use.
pub fn check_version_word(v: &str) -> Result<(), BadVersion> {
    match v {
        "default" | "unsupported" | "none" => Ok(()),
        _ if cni::Version::parse(v).is_ok() => Ok(()),
        _ => Err(BadVersion(v.to_string())),
    }
}

/// The assertion tags as display strings (`§5.12`, `T12.3-25`).
pub fn assertion_labels(c: &Case) -> Vec<String> {
    c.assertions
        .iter()
        .map(|a| match a {
            Value::Number(n) => format!("§5.{n}"),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}
