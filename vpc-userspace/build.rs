use anyhow::{anyhow, Context as _};
use aya_build::Toolchain;

/// Builds `vpc-ebpf` for bpfel-unknown-none (nightly, bpf-linker) and leaves
/// the object in OUT_DIR for `include_bytes_aligned!`.
fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    // The eBPF object also compiles vpc-common: aya-build watches only the
    // eBPF crate, so a change to the shared types would leave a stale object.
    if let Some(common) = packages.iter().find(|p| p.name.as_str() == "vpc-common") {
        if let Some(dir) = common.manifest_path.parent() {
            println!("cargo:rerun-if-changed={dir}/src");
            println!("cargo:rerun-if-changed={dir}/Cargo.toml");
        }
    }
    let ebpf_package = packages
        .into_iter()
        .find(|cargo_metadata::Package { name, .. }| name.as_str() == "vpc-ebpf")
        .ok_or_else(|| anyhow!("vpc-ebpf package not found"))?;
    let cargo_metadata::Package {
        name,
        manifest_path,
        ..
    } = ebpf_package;
    let root_dir = manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {manifest_path}"))?
        .as_str();
    let ebpf_package = aya_build::Package {
        name: name.as_str(),
        root_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf_package], Toolchain::default())
}
