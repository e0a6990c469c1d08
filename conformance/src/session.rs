//! The run context every step works in: the target, the versions it speaks, and its driver.

use crate::driver::TargetDriver;
use crate::invocation::Scope;
use crate::target::Target;
use crate::versions::Versions;

pub struct Session {
    pub target: Target,
    pub versions: Versions,
    pub driver: Box<dyn TargetDriver>,
}

impl Session {
    /// The run as templating and invocation building see it.
    pub fn scope(&self) -> Scope<'_> {
        Scope { target: &self.target, versions: &self.versions, vars: self.driver.vars() }
    }
}
