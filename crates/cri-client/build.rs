//! Compiles the CRI v1 subset (`proto/runtime/v1/api.proto`) into prost messages and a tonic
//! client. protox parses the file in pure Rust, so no `protoc` has to be installed.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = Path::new("proto");
    let proto = proto_dir.join("runtime/v1/api.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    let descriptors = protox::compile([&proto], [proto_dir])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
