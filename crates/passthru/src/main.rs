//! `passthru`: see the library documentation.

fn main() -> std::process::ExitCode {
    if build_info::asks_for_version(std::env::args_os()) {
        println!("{}", build_info::version_line!("passthru"));
        return std::process::ExitCode::SUCCESS;
    }
    cni::skel::run(&passthru::Passthru)
}
