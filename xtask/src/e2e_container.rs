//! `cargo xtask e2e --local --container`: the daemon as a container of the project's image.

use anyhow::{Result, bail};

use crate::e2e::E2eArgs;

pub fn run(_args: &E2eArgs) -> Result<()> {
    bail!("--container is not implemented yet")
}
