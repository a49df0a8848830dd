//! The redis-guard XDP program.
//!
//! For every frame it decides, before the kernel's TCP stack sees it:
//!
//! 1. Is it TCP to a protected port? Anything else passes untouched.
//! 2. Is the source on the deny list (drop) or outside the allow list (drop)?
//! 3. Has this flow been marked by the cross-protocol guard? Then drop it.
//! 4. Does this segment start the client's byte stream (seq == ISN + 1, the
//!    ISN remembered from the SYN)? Then look at its first bytes: an HTTP
//!    request line or header marks the flow, and so (with `resp_only`) does a
//!    first byte other than `*`. Later segments are never inspected, so RESP
//!    values that merely contain "POST / HTTP/1.1" pass.
//!
//! Frames truncated at any header boundary are counted as malformed and
//! refused: the kernel would discard them anyway, and refusing them closes any
//! gap between what this parser and the stack accept.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

#[cfg(target_arch = "bpf")]
mod program;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach a real panic, so this
    // is never executed; it only satisfies `no_std`.
    loop {}
}

/// Host builds (`cargo build --workspace`) compile this crate as an ordinary
/// binary; the real program exists only for the bpf target.
#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!("redis-guard-xdp is an eBPF object; it is loaded by `redis-guard run`");
}
