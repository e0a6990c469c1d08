//! `cargo xtask`: the project's entry points (tests, demo, e2e, conformance, bench, image, fuzz, soak).

mod bench;
mod conformance;
mod cri;
mod demo;
mod demo_hotplug;
mod e2e;
mod e2e_args;
mod e2e_caller;
mod e2e_cases;
mod e2e_cluster;
mod e2e_container;
mod e2e_cri;
mod e2e_local;
mod fixtures;
mod fuzz;
mod harness;
mod image;
mod manifests;
mod soak;
mod test;
mod util;

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
    /// kube-mock + multus-daemon + multus-shim + real delegates on this machine: what each pod got.
    Demo(demo::DemoArgs),
    /// End-to-end cases on a kind cluster (default) or on this machine (--local).
    E2e(e2e::E2eArgs),
    /// Build the static binaries and the `FROM scratch` image multus-rs:dev.
    Image(image::ImageArgs),
    /// Measure the speed and memory targets (static binaries, as shipped).
    Bench(bench::BenchArgs),
    /// Run the CNI conformance harness (conformance/, binary cni-conformance).
    Conformance(conformance::ConformanceArgs),
    /// Coverage-guided fuzzing of the decoders that take outside bytes (libFuzzer, stable toolchain).
    Fuzz(fuzz::FuzzArgs),
    /// Random ADD/CHECK/DEL with injected faults against the real daemon, shim and plugins; checks for leaks.
    Soak(soak::SoakArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Task::Test(args) => test::run(args),
        Task::Demo(args) => demo::run(args),
        Task::E2e(args) => e2e::run(args),
        Task::Image(args) => image::run(args),
        Task::Conformance(args) => conformance::run(args),
        Task::Bench(args) => bench::run(args),
        Task::Fuzz(args) => fuzz::run(args),
        Task::Soak(args) => soak::run(args),
    }
}
