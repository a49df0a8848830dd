//! Builds the XDP object (`redis-guard-ebpf`, binary `redis-guard-xdp`) for
//! the bpf target with the nightly toolchain, so that a plain `cargo build`
//! produces a daemon with its program embedded. `cargo xtask setup` installs
//! what this needs (rust-src for nightly, bpf-linker).

/// Names the rustup toolchain that builds the XDP object instead of
/// `nightly`: a dated nightly whose LLVM matches bpf-linker 0.10.3 (LLVM 22),
/// for builders that install their own, such as the container image.
const TOOLCHAIN_VAR: &str = "REDIS_GUARD_EBPF_TOOLCHAIN";

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../redis-guard-ebpf");
    println!("cargo:rerun-if-changed={root}/../redis-guard-common/src");
    println!("cargo:rerun-if-env-changed={TOOLCHAIN_VAR}");
    let pinned = std::env::var(TOOLCHAIN_VAR).ok().filter(|t| !t.is_empty());
    let toolchain = match &pinned {
        Some(name) => aya_build::Toolchain::Custom(name),
        None => aya_build::Toolchain::default(),
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "redis-guard-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        toolchain,
    )
}
