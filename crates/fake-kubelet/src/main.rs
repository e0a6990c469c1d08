//! fake-kubelet binary.
fn main() {}
