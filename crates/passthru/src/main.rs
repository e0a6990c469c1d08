//! `passthru`: see the library documentation.

fn main() -> std::process::ExitCode {
    cni::skel::run(&passthru::Passthru)
}
