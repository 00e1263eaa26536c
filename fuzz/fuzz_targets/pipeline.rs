//! The router's whole per-packet pipeline (vpc-ebpf/src, built for the
//! host) on a deployment's maps, a sequence of frames at a time: every
//! verdict a drop counted under one reason or a redirect counted as
//! forwarded, and nothing forwarded that the reference semantics do not
//! allow (see `vpc_ebpf_host::check::pipeline` for the input's layout).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vpc_ebpf_host::check::pipeline(data));
