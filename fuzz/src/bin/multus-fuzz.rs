//! The libFuzzer binary: one executable for every target, chosen by `MULTUS_FUZZ_TARGET`
//! (`cargo xtask fuzz` builds it with coverage instrumentation and runs it; see there).
//!
//! - `MULTUS_FUZZ_TARGET=<name>`: fuzz that target; `list` prints the target names and exits.
//! - `MULTUS_FUZZ_SEED_DIR=<dir>`: write the target's seeds there before fuzzing starts (the
//!   directory is then given to libFuzzer as a second corpus directory).

#![no_main]
// `fuzz_target!` expands to the `extern "C"` entry points libFuzzer calls.
#![allow(unsafe_code)]

use std::sync::OnceLock;

static TARGET: OnceLock<&'static multus_fuzz::Target> = OnceLock::new();

fn select() -> &'static multus_fuzz::Target {
    let name = std::env::var("MULTUS_FUZZ_TARGET").unwrap_or_default();
    if name == "list" {
        for target in multus_fuzz::TARGETS {
            println!("{}\t{}", target.name, target.about);
        }
        std::process::exit(0);
    }
    let Some(target) = multus_fuzz::target(&name) else {
        eprintln!("MULTUS_FUZZ_TARGET must be one of: {}", multus_fuzz::target_names().join(", "));
        std::process::exit(2);
    };
    if let Ok(dir) = std::env::var("MULTUS_FUZZ_SEED_DIR") {
        let dir = std::path::Path::new(&dir);
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            (target.seeds)()
                .iter()
                .enumerate()
                .try_for_each(|(i, seed)| std::fs::write(dir.join(format!("seed-{i}")), seed))
        });
        if let Err(e) = written {
            eprintln!("cannot write the seeds to {}: {e}", dir.display());
            std::process::exit(2);
        }
    }
    target
}

libfuzzer_sys::fuzz_target!(
    init: {
        TARGET.get_or_init(select);
    },
    |data: &[u8]| {
        (TARGET.get_or_init(select).run)(data);
    }
);
