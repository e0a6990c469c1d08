//! What one case owns while it runs: its temp dir, scratch host netns, attachments (container
//! id, interface name, netns), saved results, the step records of its report; and what a step
//! comes to (`StepOutcome`).

use crate::expect::Observation;
use crate::model::Case;
use crate::normalize::{self, Placeholders};
use crate::report::StepRecord;
use crate::sys::{self, Netns, SysError};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::LazyLock;

/// One attachment of a case: a container id, an interface name, a netns.
#[derive(Debug)]
pub struct Attachment {
    pub cid: String,
    pub ifname: String,
    pub netns: Option<Netns>,
    pub netns_path: String,
    pub pod: String,
    /// The attachment's number in its case (0, 1, …), `{{slot}}` in templates.
    pub slot: usize,
}

/// Everything one case owns; dropping it removes namespaces and files.
pub struct CaseEnv {
    /// Daemons started for the case (`host_daemons`): first, so that they stop before the
    /// namespaces and files they use go.
    pub daemons: Vec<crate::daemons::Running>,
    pub id: String,
    pub short: String,
    pub tmp: tempfile::TempDir,
    pub host: Option<Netns>,
    pub bin_dir: Option<PathBuf>,
    pub attachments: BTreeMap<String, Attachment>,
    pub saved: BTreeMap<String, Value>,
    pub added: BTreeSet<String>,
    pub records: Vec<StepRecord>,
    pub ph: Placeholders,
    /// Version of the step being run (for `{{version}}`).
    pub version: Option<String>,
    pub current: String,
    /// `CNI_IFNAME` of new attachments.
    pub ifname: String,
    /// Attachments whose chain prelude (`prev_plugins`) ran ADD: they get its DEL too.
    pub prelude_added: BTreeSet<String>,
    /// The last successful ADD result per attachment (the prelude's DEL gets it).
    pub final_results: BTreeMap<String, Value>,
    /// veths in the scratch host netns after the case's own setup (master links, devices):
    /// only others count as leftovers.
    pub host_baseline: Vec<String>,
}

impl CaseEnv {
    /// A fresh environment with a unique id, its temp dir, and the placeholders that hide
    /// both from reports; new attachments get `CNI_IFNAME` `ifname`.
    pub fn create(ifname: String) -> std::io::Result<CaseEnv> {
        let id = sys::unique("cc");
        let short = id.trim_start_matches("cc").to_string();
        let short = short[short.len().saturating_sub(10)..].to_string();
        let tmp = tempfile::Builder::new().prefix(&format!("cniconf-{id}-")).tempdir()?;
        let mut env = CaseEnv {
            daemons: Vec::new(),
            id: id.clone(),
            short,
            tmp,
            host: None,
            bin_dir: None,
            attachments: BTreeMap::new(),
            saved: BTreeMap::new(),
            added: BTreeSet::new(),
            records: Vec::new(),
            ph: Placeholders::new(),
            version: None,
            current: "main".into(),
            ifname,
            prelude_added: BTreeSet::new(),
            final_results: BTreeMap::new(),
            host_baseline: Vec::new(),
        };
        env.ph.add(env.tmp_path(), "tmp");
        env.ph.add(&id, "id");
        env.ph.add(env.short.clone(), "short");
        Ok(env)
    }

    pub fn tmp_path(&self) -> String {
        self.tmp.path().display().to_string()
    }

    /// Create the attachment if needed (with a real netns when root).
    pub fn attachment(&mut self, name: &str) -> Result<&Attachment, SysError> {
        if !self.attachments.contains_key(name) {
            let cid = format!("{}-{name}", self.id);
            let ns_name = format!("{}{name}", self.id);
            let (netns, path) = if sys::is_root() {
                let ns = Netns::create(&ns_name)?;
                let p = ns.path();
                (Some(ns), p)
            } else {
                (None, format!("/run/netns/{ns_name}"))
            };
            self.ph.add(&cid, &format!("cid:{name}"));
            self.ph.add(&path, &format!("netns:{name}"));
            let slot = self.attachments.len();
            self.attachments.insert(
                name.to_string(),
                Attachment {
                    cid: cid.clone(),
                    ifname: self.ifname.clone(),
                    netns,
                    netns_path: path,
                    pod: cid.to_lowercase(),
                    slot,
                },
            );
        }
        Ok(&self.attachments[name])
    }

    /// Add a step record with the observation normalised (placeholders for this case's names).
    pub fn record(&mut self, label: String, obs: &Observation, problems: &[String]) {
        let normalized = normalize::stdout(&obs.stdout, &self.ph);
        self.records.push(StepRecord {
            label,
            exit: obs.exit.or(obs.signal.map(|s| 128 + s)),
            stdout: normalize::text(&trunc(&obs.stdout), &self.ph),
            stderr: normalize::text(&trunc(&obs.stderr), &self.ph),
            normalized,
            problems: problems.to_vec(),
            duration_ms: obs.duration_ms,
        });
    }
}

static ATT_REF: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"\{\{\s*(?:cid|netns|ifname|pod):([a-z0-9]+)\s*\}\}").unwrap());

/// Attachments a case uses: step attachments plus `{{netns:x}}`-style references.
pub fn attachments_of(case: &Case) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = case.steps.iter().filter(|s| s.cni.is_some()).map(|s| s.attachment.clone()).collect();
    let text = serde_json::to_string(&case.steps).unwrap_or_default();
    for c in ATT_REF.captures_iter(&text) {
        s.insert(c[1].to_string());
    }
    if let Some(pods) = &case.setup.pods {
        for p in pods {
            s.insert(p.attachment.clone());
        }
    }
    s
}

/// Output shown in reports and failure reasons: trimmed, at most 600 bytes.
pub fn trunc(s: &str) -> String {
    let s = s.trim();
    if s.len() > 600 {
        let mut end = 600;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    } else {
        s.to_string()
    }
}

/// What one step came to.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    Ok,
    Fail(String),
    Skip(String),
    Unsupported(String),
}

impl StepOutcome {
    pub fn fail(why: impl Into<String>) -> StepOutcome {
        StepOutcome::Fail(why.into())
    }
}

impl CaseEnv {
    /// `CNI_PATH` as directories: the case's wrappers first, then (`lookup_order`: the
    /// harness's runtime) two directories that both hold a `fake-path` plugin, so that lookup
    /// order can be observed, then the target's directories.
    pub fn plugin_dirs(&self, cni_path: &[PathBuf], lookup_order: bool) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(b) = &self.bin_dir {
            dirs.push(b.clone());
        }
        if lookup_order {
            dirs.push(self.tmp.path().join("cni-first"));
            dirs.push(self.tmp.path().join("cni-second"));
        }
        dirs.extend(cni_path.iter().cloned());
        dirs
    }
}
