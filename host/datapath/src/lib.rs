//! The router (vpc-ebpf/src) built for the host: the same source files,
//! compiled against a host aya-ebpf (`host/aya-ebpf`: maps as Rust
//! collections with the kernel's semantics, the XDP and TC contexts over a
//! byte buffer), so that a coverage-guided fuzzer (`fuzz/`) and plain
//! tests can run the parser and the whole per-packet pipeline with
//! sanitizers, on a deployment's maps. The harness is [`Host`].
//!
//! Everything but the entry points (`main.rs`) and the harness programs
//! (`bench.rs`, `tput.rs`) is included, unchanged.

// `#[path]` takes a literal only: one line per module. They are the
// kernel build's: lints and the host's unused items are not theirs here.
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/allowance.rs"]
mod allowance;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/atomic.rs"]
mod atomic;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/config.rs"]
mod config;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/copy.rs"]
mod copy;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/csum.rs"]
mod csum;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/ct.rs"]
mod ct;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/ctx.rs"]
mod ctx;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/flowlog.rs"]
mod flowlog;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/frag.rs"]
mod frag;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/hyperplane.rs"]
mod hyperplane;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/internet_gateway.rs"]
mod internet_gateway;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/maps.rs"]
mod maps;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/nat.rs"]
mod nat;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/nat_gateway.rs"]
mod nat_gateway;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/overlay.rs"]
mod overlay;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/parse.rs"]
mod parse;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/policy.rs"]
mod policy;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/port.rs"]
mod port;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/port_allocation.rs"]
mod port_allocation;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/resolver.rs"]
mod resolver;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/route.rs"]
mod route;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/router.rs"]
mod router;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/stats.rs"]
mod stats;
#[allow(clippy::all, dead_code, unused_imports, unused_unsafe)]
#[path = "../../../vpc-ebpf/src/trace.rs"]
mod trace;

pub mod check;
mod harness;

pub use aya_ebpf::host::Hook;
pub use harness::*;
