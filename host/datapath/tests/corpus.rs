//! The fuzzers' corpus (fuzz/corpus/<target>/) replayed through the same
//! checks as the fuzz targets, on stable, in every `cargo test`: each
//! input the fuzzers kept (seeds from `vpc_tests::frames`, and what
//! coverage added) still holds every invariant.
//!
//! `VPC_FUZZ_SEED_CORPUS=1 cargo test -p vpc-ebpf-host --test corpus`
//! writes the seeds again.
use std::path::{Path, PathBuf};

use vpc_ebpf_host::{
    check::{self, encode, ports},
    Deployment, Hook, Host, XDP_REDIRECT,
};
use vpc_tests::frames::{templates, Gen, Kind};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(corpus(target))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v.into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

/// Seeds: frames of every kind from every template, and for the pipeline
/// sequences of them with the replies the host router's forwards call
/// for, so that the fuzzer starts from connections that open.
fn write_seeds() {
    let parse = corpus("parse");
    let pipeline = corpus("pipeline");
    std::fs::create_dir_all(&parse).unwrap();
    std::fs::create_dir_all(&pipeline).unwrap();
    for (ti, (name, t)) in templates().iter().enumerate() {
        let d = Deployment::new(t);
        let ports = ports(&d);
        let mut h = Host::new(4096);
        d.install(&mut h);
        let mut gen = Gen::new(&d.model, &d.links, 7 + ti as u64);
        for s in 0..4u8 {
            let mut records = vec![];
            let mut kinds = 0;
            while records.len() < 24 {
                let (kind, ingress, frame) = gen.next_frame();
                if kind == Kind::Garbage && records.len() % 3 != 0 {
                    continue;
                }
                let out = h.run(Hook::Xdp, ingress, &frame);
                if out.action == XDP_REDIRECT {
                    gen.forwarded(ingress, &frame, out.redirect.unwrap(), &out.frame);
                }
                let op = ports
                    .iter()
                    .position(|p| p.0 == ingress)
                    .unwrap_or(ports.len()) as u8;
                if kinds < 12 {
                    std::fs::write(parse.join(format!("{name}-{s}-{kinds}")), &frame).unwrap();
                    kinds += 1;
                }
                records.push((op, frame));
            }
            let input = encode(ti as u8, s % 2 == 1, &records);
            std::fs::write(pipeline.join(format!("{name}-{s}")), input).unwrap();
        }
    }
}

#[test]
fn the_corpus_holds_every_invariant() {
    if std::env::var_os("VPC_FUZZ_SEED_CORPUS").is_some() {
        write_seeds();
    }
    let parse = inputs("parse");
    let pipeline = inputs("pipeline");
    assert!(
        parse.len() >= 50 && pipeline.len() >= 20,
        "the corpus is in fuzz/corpus"
    );
    for (p, b) in &parse {
        eprintln!("{}", p.display());
        check::parse(b);
    }
    for (p, b) in &pipeline {
        eprintln!("{}", p.display());
        check::pipeline(b);
    }
}
