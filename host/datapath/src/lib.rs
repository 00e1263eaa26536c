//! The router (vpc-ebpf/src) built for the host: the same source files,
//! compiled against a host aya-ebpf (`host/aya-ebpf`: maps as Rust
//! collections with the kernel's semantics, the XDP and TC contexts over a
//! byte buffer), so that a coverage-guided fuzzer (`fuzz/`) and plain
//! tests can run the parser and the whole per-packet pipeline with
//! sanitizers, on a deployment's maps. The harness is [`Host`].
//!
//! Everything but the entry points (`main.rs`) and the harness programs
//! (`bench.rs`, `tput.rs`) is included, unchanged.
#![allow(
    clippy::all,
    dead_code,
    unused_imports,
    unused_unsafe,
    unused_variables,
    unused_mut
)]

// `#[path]` takes a literal only: one line per module.
#[path = "../../../vpc-ebpf/src/config.rs"]
mod config;
#[path = "../../../vpc-ebpf/src/copy.rs"]
mod copy;
#[path = "../../../vpc-ebpf/src/csum.rs"]
mod csum;
#[path = "../../../vpc-ebpf/src/ct.rs"]
mod ct;
#[path = "../../../vpc-ebpf/src/ctx.rs"]
mod ctx;
#[path = "../../../vpc-ebpf/src/flowlog.rs"]
mod flowlog;
#[path = "../../../vpc-ebpf/src/frag.rs"]
mod frag;
#[path = "../../../vpc-ebpf/src/hyperplane.rs"]
mod hyperplane;
#[path = "../../../vpc-ebpf/src/internet_gateway.rs"]
mod internet_gateway;
#[path = "../../../vpc-ebpf/src/maps.rs"]
mod maps;
#[path = "../../../vpc-ebpf/src/nat.rs"]
mod nat;
#[path = "../../../vpc-ebpf/src/nat_gateway.rs"]
mod nat_gateway;
#[path = "../../../vpc-ebpf/src/parse.rs"]
mod parse;
#[path = "../../../vpc-ebpf/src/policy.rs"]
mod policy;
#[path = "../../../vpc-ebpf/src/port_allocation.rs"]
mod port_allocation;
#[path = "../../../vpc-ebpf/src/resolver.rs"]
mod resolver;
#[path = "../../../vpc-ebpf/src/route.rs"]
mod route;
#[path = "../../../vpc-ebpf/src/router.rs"]
mod router;
#[path = "../../../vpc-ebpf/src/stats.rs"]
mod stats;
#[path = "../../../vpc-ebpf/src/trace.rs"]
mod trace;

pub mod check;
mod harness;

pub use aya_ebpf::host::Hook;
pub use harness::*;
