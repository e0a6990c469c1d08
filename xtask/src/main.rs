//! `cargo xtask`: the project's entry points (tests, demo, e2e, conformance, bench, image).

mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "multus-rs developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what the tests need (as root, on Debian) and run the whole test suite.
    Test(test::TestArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Test(args) => test::run(args),
    }
}
