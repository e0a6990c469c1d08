//! `multusctl`: explain, lint and inspect Multus (see the crate documentation and
//! `docs/troubleshooting.md`).

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    multusctl::cli::run(multusctl::cli::Cli::parse())
}
