//! `multus-conformance`: a plugin-agnostic CNI conformance harness, with Multus thick-plugin
//! cases. See `README.md` for the case schema, target files and reports.
//!
//! Layers, each using only those before it:
//! - the case model: [`vocabulary`], [`model`], [`embedded`];
//! - pure judging and templating: [`stdout_json`], [`normalize`], [`expect`], [`template`],
//!   [`describe`], [`records`], [`report`];
//! - targets: [`thick_spec`], [`notes`], [`daemons`], [`target`], [`versions`]; the I/O edge
//!   [`sys`];
//! - one case: [`case_env`], [`errors`], [`invocation`] (stdin and environment of a step),
//!   [`checks`] and [`actions`] every target shares;
//! - one driver per kind of target ([`driver`]: plugin, runtime, thick) behind `TargetDriver`;
//! - running: [`session`], [`cni_step`], [`case_setup`], [`parallel`], [`steps`],
//!   [`applicability`], [`runner`];
//! - over runs: [`matrix`], [`diff`].

pub mod actions;
pub mod applicability;
pub mod case_env;
pub mod case_setup;
pub mod checks;
pub mod cni_step;
pub mod daemons;
pub mod describe;
pub mod diff;
pub mod driver;
pub mod embedded;
pub mod errors;
pub mod expect;
pub mod invocation;
pub mod matrix;
pub mod model;
pub mod normalize;
pub mod notes;
pub mod parallel;
pub mod records;
pub mod report;
pub mod runner;
pub mod session;
pub mod stdout_json;
pub mod steps;
pub mod sys;
pub mod target;
pub mod template;
pub mod thick;
pub mod thick_spec;
pub mod versions;
pub mod vocabulary;

pub use model::{Case, load_dir};
pub use report::{Outcome, Report};
pub use runner::Runner;
pub use target::Target;

/// Select cases by group and id (substring match for ids, exact for groups).
pub fn filter_cases(cases: Vec<Case>, groups: &[String], ids: &[String]) -> Vec<Case> {
    cases
        .into_iter()
        .filter(|c| groups.is_empty() || groups.contains(&c.group))
        .filter(|c| ids.is_empty() || ids.iter().any(|i| c.id.contains(i.as_str())))
        .collect()
}
