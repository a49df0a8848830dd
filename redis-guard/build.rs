//! Builds the XDP object (`redis-guard-ebpf`, binary `redis-guard-xdp`) for
//! the bpf target with the nightly toolchain, so that a plain `cargo build`
//! produces a daemon with its program embedded. `cargo xtask setup` installs
//! what this needs (rust-src for nightly, bpf-linker).

fn main() -> anyhow::Result<()> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../redis-guard-ebpf");
    println!("cargo:rerun-if-changed={root}/../redis-guard-common/src");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "redis-guard-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
