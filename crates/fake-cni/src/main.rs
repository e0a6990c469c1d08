//! `fake-cni`: a scriptable fake CNI plugin for tests (see README.md).

fn main() -> std::process::ExitCode {
    // A background child of an earlier invocation ("spawn", "holdStdout").
    if let Ok(plan) = std::env::var(fake_cni::child::ENV_CHILD) {
        return std::process::ExitCode::from(u8::try_from(fake_cni::child::run(&plan)).unwrap_or(1));
    }
    if build_info::asks_for_version(std::env::args_os()) {
        println!("{}", build_info::version_line!("fake-cni"));
        return std::process::ExitCode::SUCCESS;
    }
    let inv = fake_cni::Invocation::from_process();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let status = fake_cni::run(&inv, &mut stdout, &mut stderr);
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
