//! Honest skips: a test that cannot run here says so, and the runner counts it as skipped
//! rather than passed ([`test_skip`], re-exported so that a node's tests need one import).

pub use test_skip::{SKIPS_ENV, record, require};
