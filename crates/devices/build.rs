//! Compiles the vendored kubelet pod-resources v1 API (`proto/podresources/v1/api.proto`) into
//! prost messages plus a tonic client and server. protox parses the file in pure Rust, so no
//! `protoc` has to be installed.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = Path::new("proto");
    let proto = proto_dir.join("podresources/v1/api.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let descriptors = protox::compile([&proto], [proto_dir])?;
    tonic_prost_build::configure()
        // The transport-agnostic server code is generated too: fake-kubelet serves this API.
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
