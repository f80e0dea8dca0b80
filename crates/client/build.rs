//! With the `grpc` feature: generates the LogService client (no server
//! side) from the repository's `proto/skald/v1/log_service.proto`, with the
//! vendored `protoc`, so the client can never drift from the contract the
//! server is built from. Without the feature: nothing.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    generate()
}

#[cfg(feature = "grpc")]
fn generate() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("skald/v1/log_service.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_protos(std::slice::from_ref(&file), &[root])?;
    println!("cargo:rerun-if-changed={}", file.display());
    Ok(())
}

#[cfg(not(feature = "grpc"))]
fn generate() -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}
