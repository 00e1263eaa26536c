//! The router's parser (vpc-ebpf/src/parse.rs, built for the host) on any
//! bytes: no panic, no read outside the frame (the address sanitizer),
//! and the tuple, fields or drop reason of an independent parser
//! (etherparse with the bounds the datapath documents).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| vpc_ebpf_host::check::parse(data));
