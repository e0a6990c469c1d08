//! `fake-cni`: a scriptable fake CNI plugin for tests (see README.md).

fn main() -> std::process::ExitCode {
    let inv = fake_cni::Invocation::from_process();
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    let status = fake_cni::run(&inv, &mut stdout, &mut stderr);
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
