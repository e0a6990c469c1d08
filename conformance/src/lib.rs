//! `multus-conformance`: a plugin-agnostic CNI conformance harness, with Multus thick-plugin
//! cases. See `README.md` for the case schema, target files and reports.
//!
//! Pure parts (unit-tested without root): [`model`] (case files), [`expect`] (judging an
//! invocation, result schemas), [`normalize`], [`report`], [`diff`], [`target`] (descriptions
//! and templating). I/O: [`sys`] (processes, netns), [`runner`], [`checks`], [`thick`].

pub mod checks;
pub mod diff;
pub mod embedded;
pub mod expect;
pub mod matrix;
pub mod model;
pub mod normalize;
pub mod notes;
pub mod report;
pub mod runner;
pub mod sys;
pub mod target;
pub mod thick;

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
