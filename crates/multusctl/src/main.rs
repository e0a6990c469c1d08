//! `multusctl`: explain, lint and inspect Multus (see the crate documentation and
//! `docs/troubleshooting.md`).

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    if build_info::asks_for_version(std::env::args_os()) {
        println!("{}", build_info::version_line!("multusctl"));
        return ExitCode::SUCCESS;
    }
    multusctl::cli::run(multusctl::cli::Cli::parse())
}
