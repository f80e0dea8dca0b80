//! Generates the gRPC service from `proto/skald/v1/log_service.proto`
//! with the vendored `protoc` (no system protoc needed), plus the file
//! descriptor set that the reflection service serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("skald/v1/log_service.proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("skald_v1_descriptor.bin"))
        .compile_protos(std::slice::from_ref(&file), &[root])?;
    println!("cargo:rerun-if-changed={}", file.display());
    Ok(())
}
