//! Every target over its seeds, every kept regression input (`fuzz/regressions/<target>/`),
//! and a small deterministic batch of mutated seeds: what `cargo xtask fuzz` explores at scale,
//! in a form that runs with the ordinary test suite.

use std::path::Path;

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut inputs: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn targets_accept_their_seeds() {
    for target in multus_fuzz::TARGETS {
        let seeds = (target.seeds)();
        assert!(!seeds.is_empty(), "{} has seeds", target.name);
        for seed in &seeds {
            (target.run)(seed);
        }
    }
}

#[test]
fn kept_regression_inputs_do_not_crash() {
    for target in multus_fuzz::TARGETS {
        for (path, input) in regressions(target.name) {
            eprintln!("replaying {path}");
            (target.run)(&input);
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            name.starts_with('.') || name == "README.md" || multus_fuzz::target(&name).is_some(),
            "fuzz/regressions/{name} names no target"
        );
    }
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    const INTERESTING: &[&[u8]] =
        &[b"\"", b"{", b"}", b"[", b"]", b",", b":", b"null", b"\\u0000", b"\xff", b"=", b";", b"/", b"-1", b"1e999"];
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(4) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.truncate(at),
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            _ if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn mutated_seeds_do_not_crash() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for target in multus_fuzz::TARGETS {
        for seed in (target.seeds)() {
            for _ in 0..200 {
                (target.run)(&mutate(&mut rng, &seed));
            }
        }
    }
}
