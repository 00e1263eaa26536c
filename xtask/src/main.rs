//! `cargo xtask`: provisioning, build, run, test, bench.
//!
//! xtask builds with nothing but stable Rust: it is what installs the rest
//! (nightly's rust-src, LLVM 22, bpf-linker, the test tools). Every step
//! checks first and installs only what is missing, saying what it does.
use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{bail, Context, Result};

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM: &str = "22";

const USAGE: &str = "usage: cargo xtask <command>

  run [-- TEMPLATE [vpc run options]]
                 build, bring up TEMPLATE (default: the embedded one), show it
                 live (the default's function invoked once, with the command
                 to repeat); Ctrl-C / SIGTERM tears it down
  test [-- ARGS] run every test (root: the datapath tests attach XDP for real),
                 then each fuzz target for 60 s (VPC_FUZZ_TIME=N to change;
                 skipped when ARGS filter the tests)
  fuzz [--time N] [TARGET...]
                 the cargo-fuzz targets (parse, pipeline) for N seconds each
                 (default 600), from their corpus in fuzz/corpus; built,
                 grown corpus and findings in ~/.cache/vpc-fuzz
  bench [-- ARGS]
                 ns/packet through BPF_PROG_TEST_RUN vs a redirect-only
                 baseline, then invocations per runtime (cold start, warm
                 latency, invocations/s); writes target/bench/results.json
                 and invoke.json
  bench --throughput
                 real packets through real veths (circulating frames and
                 sockets): the router at TC and XDP, nftables, a bare
                 redirect and a direct veth pair, with ratios; writes
                 target/bench/throughput.json
  cluster-demo   one VPC over three hosts on this machine (`vpc cluster demo`,
                 docs/multi-host.md): etcd on loopback, hosts h1 h2 h3 joined by
                 a VXLAN overlay; Enter or Ctrl-C tears it all down
  build          provision and build
  provision      install what is missing, nothing else";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (
            c.as_str(),
            r.strip_prefix(&["--".to_string()][..]).unwrap_or(r),
        ),
        None => {
            println!("{USAGE}");
            return Ok(());
        }
    };
    match cmd {
        "provision" => provision(),
        "build" => {
            provision()?;
            cargo(&["build", "--bins"], &[])
        }
        "test" => {
            require_root("the tests create namespaces and attach XDP programs")?;
            provision()?;
            // The integration tests drive the `vpc` binary as a user would.
            cargo(&["build", "--bin", "vpc"], &[])?;
            let mut a = vec!["test", "--no-fail-fast"];
            if !rest.is_empty() {
                a.push("--");
                a.extend(rest.iter().map(String::as_str));
            }
            let tests = cargo_test(&a);
            // The fuzzers, bounded, as part of every full run (CI's).
            let fuzzed = if rest.is_empty() {
                let secs = std::env::var("VPC_FUZZ_TIME")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(60);
                fuzz(secs, FUZZ_TARGETS)
            } else {
                Ok(Fuzzed::default())
            };
            summary(tests, fuzzed)
        }
        "fuzz" => {
            let mut secs = 600;
            let mut targets = vec![];
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--time" => {
                        secs = it
                            .next()
                            .and_then(|s| s.parse().ok())
                            .context("--time SECONDS")?
                    }
                    t => targets.push(t),
                }
            }
            if targets.is_empty() {
                targets.extend_from_slice(FUZZ_TARGETS);
            }
            let f = fuzz(secs, &targets)?;
            if f.failed > 0 {
                bail!("{} fuzz target(s) found a failure", f.failed);
            }
            Ok(())
        }
        "run" => {
            require_root("it creates namespaces and attaches XDP programs")?;
            provision()?;
            cargo(&["build", "--release", "--bin", "vpc"], &[])?;
            let vpc = root().join("target/release/vpc");
            let mut a: Vec<String> = vec!["run".into()];
            if rest.is_empty() {
                // The default template's function once it is Active: its
                // Python handler reaching the database (a listener standing
                // for it) through its ENI, with the command that repeats it.
                a.extend(
                    [
                        "default",
                        "--listen",
                        "DatabaseInstance:5432",
                        "--invoke",
                        r#"orders={"order": 1}"#,
                        // The endpoint on loopback TCP too: the console.
                        "--api-addr",
                        "127.0.0.1:0",
                    ]
                    .map(String::from),
                );
            } else {
                a.extend(rest.iter().cloned());
            }
            // Exec-like: vpc handles Ctrl-C / SIGTERM itself and tears down.
            let st = Command::new(&vpc)
                .args(&a)
                .status()
                .with_context(|| format!("running {}", vpc.display()))?;
            if !st.success() {
                bail!("vpc run failed ({st})");
            }
            Ok(())
        }
        "cluster-demo" => {
            require_root("it creates namespaces and attaches programs")?;
            provision()?;
            cargo(&["build", "--release", "--bin", "vpc"], &[])?;
            let vpc = root().join("target/release/vpc");
            let st = Command::new(&vpc)
                .args(["cluster", "demo"])
                .status()
                .with_context(|| format!("running {}", vpc.display()))?;
            if !st.success() {
                bail!("vpc cluster demo failed ({st})");
            }
            Ok(())
        }
        "bench" => {
            require_root("BPF_PROG_TEST_RUN needs CAP_BPF / CAP_NET_ADMIN")?;
            provision()?;
            cargo(&["build", "--release", "--bin", "vpc"], &[])?;
            let out = root().join("target/bench/results.json");
            let mut a: Vec<String> =
                vec!["bench".into(), "--json".into(), out.display().to_string()];
            a.extend(rest.iter().cloned());
            let st = Command::new(root().join("target/release/vpc"))
                .args(&a)
                .status()?;
            if !st.success() {
                bail!("bench failed ({st})");
            }
            if rest.is_empty() {
                // And invocations through the Runtime API, per runtime.
                let st = Command::new(root().join("target/release/vpc"))
                    .args(["bench", "--invoke", "--json"])
                    .arg(&out)
                    .status()?;
                if !st.success() {
                    bail!("invoke bench failed ({st})");
                }
            }
            Ok(())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn require_root(why: &str) -> Result<()> {
    if !nix_is_root() {
        bail!("run as root: {why}");
    }
    Ok(())
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { geteuid() == 0 }
}

extern "C" {
    fn geteuid() -> u32;
}

fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("xtask: cargo {}", args.join(" "));
    let st = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .env("PATH", path_with_cargo_bin())
        .envs(envs.iter().copied())
        .status()?;
    if !st.success() {
        bail!("cargo {} failed ({st})", args.join(" "));
    }
    Ok(())
}

/// Results of `cargo test`: (passed, failed, ignored), and whether cargo
/// itself succeeded.
type TestCounts = (u64, u64, u64, bool);

/// `cargo test`, streamed; its results summed over every binary.
fn cargo_test(args: &[&str]) -> Result<TestCounts> {
    use std::io::{BufRead, BufReader};
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("xtask: cargo {}", args.join(" "));
    let mut child = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .env("PATH", path_with_cargo_bin())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split([';', '.']) {
                let mut w = part.split_whitespace();
                if let (Some(n), Some(what)) =
                    (w.next().and_then(|n| n.parse::<u64>().ok()), w.next())
                {
                    match what {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        "ignored" => ignored += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let st = child.wait()?;
    Ok((passed, failed, ignored, st.success()))
}

/// The one closing line (`N passed, N failed`): the tests' and the fuzz
/// targets' (each a test that passes when it found nothing).
fn summary(tests: Result<TestCounts>, fuzzed: Result<Fuzzed>) -> Result<()> {
    let (mut passed, mut failed, ignored, ok) = tests?;
    let f = fuzzed?;
    passed += f.passed;
    failed += f.failed;
    println!("\nxtask: {passed} passed, {failed} failed, {ignored} skipped");
    if !ok {
        bail!("cargo test failed");
    }
    if f.failed > 0 {
        bail!("{} fuzz target(s) found a failure", f.failed);
    }
    if passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}

/// The cargo-fuzz targets (fuzz/fuzz_targets).
const FUZZ_TARGETS: &[&str] = &["parse", "pipeline"];
const CARGO_FUZZ_VERSION: &str = "0.13.2";

#[derive(Default)]
struct Fuzzed {
    passed: u64,
    failed: u64,
}

/// Runs each target for `secs` seconds on nightly (cargo-fuzz, libFuzzer,
/// the address sanitizer), from the committed corpus (fuzz/corpus/T, read
/// only) and a working one under the target directory (kept between runs,
/// so coverage accumulates), and reports executions and executions per
/// second from libFuzzer's final statistics.
fn fuzz(secs: u64, targets: &[&str]) -> Result<Fuzzed> {
    use std::io::{BufRead, BufReader};
    if !output("cargo", &["fuzz", "--version"]).is_some_and(|v| v.contains(CARGO_FUZZ_VERSION)) {
        // Into cargo's own bin directory (where `cargo fuzz` is found).
        step(
            &format!("cargo-fuzz {CARGO_FUZZ_VERSION}"),
            "cargo",
            &[
                "install",
                "cargo-fuzz",
                "--version",
                CARGO_FUZZ_VERSION,
                "--locked",
            ],
            &[],
        )?;
    }
    // Outside the clone, so a fresh one (CI's) reuses the last build (the
    // dependencies; the workspace's own crates build again) and the
    // working corpus keeps what earlier runs found.
    let home = cache_home().join("vpc-fuzz");
    let target_dir = home.join("target");
    let mut res = Fuzzed::default();
    for t in targets {
        let work = home.join("corpus").join(t);
        let artifacts = home.join("artifacts").join(t);
        std::fs::create_dir_all(&work)?;
        std::fs::create_dir_all(&artifacts)?;
        let seeds = root().join("fuzz/corpus").join(t);
        let time = format!("-max_total_time={secs}");
        let prefix = format!("-artifact_prefix={}/", artifacts.display());
        println!("xtask: fuzzing {t} for {secs} s (cargo fuzz run, nightly)");
        let mut child = Command::new("rustup")
            .args(["run", "nightly", "cargo", "fuzz", "run", "--target-dir"])
            .arg(&target_dir)
            .arg(t)
            .arg(&work)
            .arg(&seeds)
            .args(["--", &time, &prefix, "-print_final_stats=1", "-timeout=20"])
            .current_dir(root())
            .env("PATH", path_with_cargo_bin())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("running cargo fuzz")?;
        let (mut execs, mut rate, mut corpus) = (0u64, 0u64, 0u64);
        for line in BufReader::new(child.stderr.take().expect("piped")).lines() {
            let line = line?;
            // libFuzzer's progress lines are many: its own pulse and the
            // final statistics are what we keep.
            let stat = |k: &str| {
                line.strip_prefix(k)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let Some(v) = stat("stat::number_of_executed_units:") {
                execs = v;
            } else if let Some(v) = stat("stat::average_exec_per_sec:") {
                rate = v;
            } else if !["#", "\"", "INFO:", "MS:", "stat::", "###", "Dictionary:"]
                .iter()
                .any(|p| line.starts_with(p))
                && !line.trim().is_empty()
            {
                // Findings, the sanitizer's and panics' reports, "Done".
                println!("{line}");
            }
            if let Some(c) = line.split("corp: ").nth(1) {
                corpus = c
                    .split('/')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(corpus);
            }
        }
        let st = child.wait()?;
        if st.success() {
            res.passed += 1;
            println!("xtask: fuzz {t}: {execs} executions in {secs} s ({rate} per second), corpus {corpus} inputs, no failure");
        } else {
            res.failed += 1;
            println!(
                "xtask: fuzz {t}: FAILED after {execs} executions ({st}); the input is in {}",
                artifacts.display()
            );
        }
    }
    Ok(res)
}

/// PATH with ~/.cargo/bin (where bpf-linker lands) in it.
fn path_with_cargo_bin() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    match cargo_home() {
        Some(h) => {
            let bin = h.join("bin").display().to_string();
            if path.split(':').any(|p| p == bin) {
                path
            } else {
                format!("{bin}:{path}")
            }
        }
        None => path,
    }
}

fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd)
        .args(args)
        .env("PATH", path_with_cargo_bin())
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn step(what: &str, cmd: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    println!("xtask: installing {what}: {cmd} {}", args.join(" "));
    let st = Command::new(cmd)
        .args(args)
        .env("PATH", path_with_cargo_bin())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .envs(envs.iter().copied())
        .status()
        .with_context(|| format!("running {cmd}"))?;
    if !st.success() {
        bail!("installing {what} failed ({st})");
    }
    Ok(())
}

fn deb_installed(pkg: &str) -> bool {
    output("dpkg-query", &["-W", "-f=${Status}", pkg])
        .is_some_and(|s| s.contains("install ok installed"))
}

/// Installs only what is missing; a second run prints nothing but the checks.
/// The independent flow-log reader the tests parse our records with.
const FLOWLOGS_READER_VERSION: &str = "5.0.1";
/// AWS's runtime interface clients, for functions with a `Runtime`
/// (`python3.*`, `nodejs*`): awslambdaric from PyPI (a manylinux wheel) in
/// `target/pyenv`; aws-lambda-ric from npm in `target/node` (3.3.0: the
/// last that runs on Node 20; 4.x needs Node 22). The agent finds them
/// there unless `VPC_RUNTIME_DIR` says otherwise.
const AWSLAMBDARIC_VERSION: &str = "4.2.2";
/// SAM's transform (`AWS::Serverless-2016-10-31`): aws-sam-translator, the
/// reference implementation, which the agent and the CLI run from
/// `target/pyenv` (template/sam.py).
const SAM_TRANSLATOR_VERSION: &str = "1.115.0";
/// The CDK, for the tests that synthesize real CDK apps
/// (tests/fixtures/cdk/): aws-cdk-lib and constructs from npm in
/// `target/cdk` (about 190 MB, 10-20 s from npm's cache).
const AWS_CDK_LIB_VERSION: &str = "2.278.0";
const CONSTRUCTS_VERSION: &str = "10.8.1";
const AWS_LAMBDA_RIC_VERSION: &str = "3.3.0";
/// moto, whose own EC2 tests (in its source distribution: `tests/test_ec2/`)
/// run against the agent's EC2 API in server mode (`ec2::moto_conformance`):
/// the package and what its tests import (pytest, freezegun) in
/// `target/pyenv`, the sdist unpacked in `target/moto`.
const MOTO_VERSION: &str = "5.2.6";
/// Selenium, for the console's browser test (drives Debian's chromedriver).
const SELENIUM_VERSION: &str = "4.51.0";
/// What aws-lambda-ric's install builds with (aws-lambda-cpp and the curl it
/// bundles: cmake, autotools, a C++ compiler).
const RIC_BUILD_DEBS: &[(&str, &str)] = &[
    ("cmake", "cmake"),
    ("autoconf", "autoconf"),
    ("automake", "automake"),
    ("libtoolize", "libtool"),
    ("g++", "g++"),
    ("make", "make"),
    ("unzip", "unzip"),
];

fn provision() -> Result<()> {
    // 1. nightly + rust-src (the eBPF crate builds core with -Z build-std).
    let toolchains = output("rustup", &["toolchain", "list"]).context("rustup is required")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly")) {
        step(
            "the nightly toolchain",
            "rustup",
            &[
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ],
            &[],
        )?;
    }
    let comps = output(
        "rustup",
        &["component", "list", "--toolchain", "nightly", "--installed"],
    )
    .unwrap_or_default();
    if !comps.lines().any(|l| l.starts_with("rust-src")) {
        step(
            "rust-src for nightly",
            "rustup",
            &["component", "add", "rust-src", "--toolchain", "nightly"],
            &[],
        )?;
    }
    // 2. Debian packages: LLVM 22 for bpf-linker; the tools the topology and tests use.
    let mut debs: Vec<&str> = vec![];
    let need_linker =
        !output("bpf-linker", &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION));
    if need_linker {
        debs.extend(
            ["llvm-22-dev", "libpolly-22-dev"]
                .into_iter()
                .filter(|p| !deb_installed(p)),
        );
    }
    for (tool, pkg) in [
        ("ip", "iproute2"),
        ("ethtool", "ethtool"),
        ("nc", "netcat-openbsd"),
        ("nft", "nftables"),
        ("iperf3", "iperf3"),
        ("ping", "iputils-ping"),
        // etcd-client's build script compiles etcd's protos: before any
        // build of vpc-userspace.
        ("protoc", "protobuf-compiler"),
        // The cluster store's tests start /usr/bin/etcd themselves; nothing
        // runs it as a service.
        ("etcd", "etcd-server"),
        // The console's browser test: Debian's Chromium, headless, and its
        // WebDriver.
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
    ] {
        if output("sh", &["-c", &format!("command -v {tool}")]).is_none() {
            debs.push(pkg);
        }
    }
    if !debs.is_empty() {
        step("apt package lists", "apt-get", &["update", "-q"], &[])?;
        let mut a = vec!["install", "-y", "-q", "--no-install-recommends"];
        a.extend(debs.iter().copied());
        step(&debs.join(", "), "apt-get", &a, &[])?;
    }
    // 3. bpf-linker, built against LLVM 22 (rustc's LLVM major).
    if need_linker {
        let llvm_bin = format!("/usr/lib/llvm-{LLVM}/bin");
        let path = format!("{llvm_bin}:{}", path_with_cargo_bin());
        let feature = format!("llvm-{LLVM}");
        step(
            &format!("bpf-linker {BPF_LINKER_VERSION}"),
            "cargo",
            &[
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--no-default-features",
                "--features",
                &feature,
            ],
            &[("PATH", &path)],
        )?;
    }
    // 4. boto3 and the AWS CLI (v1, `awscli`: what the Lambda API tests
    // drive), in a venv under target/.
    let venv = root().join("target/pyenv");
    let py = venv.join("bin/python");
    let has_boto3 = || {
        Command::new(&py)
            .args(["-c", "import boto3"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_boto3() {
        if output("python3", &["-m", "venv", "--help"]).is_none() {
            step("apt package lists", "apt-get", &["update", "-q"], &[])?;
            step(
                "python3-venv",
                "apt-get",
                &[
                    "install",
                    "-y",
                    "-q",
                    "--no-install-recommends",
                    "python3-venv",
                ],
                &[],
            )?;
        }
        let v = venv.display().to_string();
        step(
            "a Python venv (target/pyenv)",
            "python3",
            &["-m", "venv", &v],
            &[],
        )?;
        let pip = venv.join("bin/pip").display().to_string();
        step(
            "boto3 and the AWS CLI from PyPI",
            &pip,
            &["install", "-q", "boto3", "awscli"],
            &[],
        )?;
    }
    if !venv.join("bin/aws").exists() {
        // A venv made before the AWS CLI was on the list.
        let pip = venv.join("bin/pip").display().to_string();
        step(
            "the AWS CLI from PyPI",
            &pip,
            &["install", "-q", "awscli"],
            &[],
        )?;
    }
    // A package of the venv, installed from PyPI unless it imports.
    let pip_module = |module: &str, req: &str| -> Result<()> {
        let has = Command::new(&py)
            .args(["-c", &format!("import {module}")])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if has {
            return Ok(());
        }
        let pip = venv.join("bin/pip").display().to_string();
        step(
            &format!("{req} from PyPI"),
            &pip,
            &["install", "-q", req],
            &[],
        )
    };
    // 5. An independent reader of flow-log records for the tests.
    pip_module(
        "flowlogs_reader",
        &format!("flowlogs-reader=={FLOWLOGS_READER_VERSION}"),
    )?;
    // 6. awslambdaric (Python functions): a wheel.
    pip_module(
        "awslambdaric",
        &format!("awslambdaric=={AWSLAMBDARIC_VERSION}"),
    )?;
    // 7. SAM's transform, expanded by the reference implementation.
    pip_module(
        "samtranslator",
        &format!("aws-sam-translator=={SAM_TRANSLATOR_VERSION}"),
    )?;
    // 8. moto, its tests and what they import.
    pip_module("moto", &format!("moto=={MOTO_VERSION}"))?;
    pip_module("pytest", "pytest")?;
    pip_module("freezegun", "freezegun")?;
    // 8b. Selenium, which drives Chromium through chromedriver for the
    // console's browser test.
    pip_module("selenium", &format!("selenium=={SELENIUM_VERSION}"))?;
    let moto_dir = root().join("target/moto");
    if !moto_dir
        .join(format!("moto-{MOTO_VERSION}/tests/test_ec2"))
        .exists()
    {
        let pip = venv.join("bin/pip").display().to_string();
        let dir = moto_dir.display().to_string();
        step(
            "moto's source distribution (its tests) from PyPI",
            &pip,
            &[
                "download",
                "-q",
                "--no-binary",
                ":all:",
                "--no-deps",
                &format!("moto=={MOTO_VERSION}"),
                "-d",
                &dir,
            ],
            &[],
        )?;
        step(
            "moto's tests",
            "tar",
            &[
                "xzf",
                &format!("{dir}/moto-{MOTO_VERSION}.tar.gz"),
                "-C",
                &dir,
            ],
            &[],
        )?;
    }
    // 9. Node.js and aws-lambda-ric (Node.js functions) in target/node.
    node_ric()?;
    // 10. The CDK, to synthesize the tests' CDK apps.
    cdk_lib()?;
    println!("xtask: toolchain ready (nightly + rust-src, bpf-linker {BPF_LINKER_VERSION}, LLVM {LLVM}, iproute2, ethtool, netcat, nftables, iperf3, protoc, etcd, boto3, the AWS CLI, flowlogs-reader {FLOWLOGS_READER_VERSION}, awslambdaric {AWSLAMBDARIC_VERSION}, aws-sam-translator {SAM_TRANSLATOR_VERSION}, moto {MOTO_VERSION} and its tests, Chromium, chromedriver, Selenium {SELENIUM_VERSION}, aws-lambda-ric {AWS_LAMBDA_RIC_VERSION}, aws-cdk-lib {AWS_CDK_LIB_VERSION})");
    Ok(())
}

fn apt_install(pkgs: &[&str]) -> Result<()> {
    if pkgs.is_empty() {
        return Ok(());
    }
    step("apt package lists", "apt-get", &["update", "-q"], &[])?;
    let mut a = vec!["install", "-y", "-q", "--no-install-recommends"];
    a.extend(pkgs.iter().copied());
    step(&pkgs.join(", "), "apt-get", &a, &[])
}

fn have(tool: &str) -> bool {
    output("sh", &["-c", &format!("command -v {tool}")]).is_some()
}

/// aws-lambda-ric in `target/node`. Its install builds native code (about
/// 3.5 minutes on 2 cores), so the built `node_modules` is also kept as a
/// tarball outside the clone, in `~/.cache/vpc/` (`$XDG_CACHE_HOME/vpc`),
/// named after the version, Node's ABI and the architecture: a fresh clone
/// on the same machine unpacks it in seconds. Without it, npm installs (its
/// download from npm's own cache, `~/.npm`, when it has been fetched once).
fn node_ric() -> Result<()> {
    let dir = root().join("target/node");
    let built = dir.join("node_modules/aws-lambda-ric/dist/rapid-client.node");
    if built.exists() {
        return Ok(());
    }
    let mut debs = vec![];
    if !have("node") {
        debs.push("nodejs");
    }
    if !have("npm") {
        debs.push("npm");
    }
    apt_install(&debs)?;
    let abi = output(
        "node",
        &["-p", "process.versions.modules + '-' + process.arch"],
    )
    .context("node -p process.versions.modules")?;
    let cache = cache_home().join("vpc").join(format!(
        "aws-lambda-ric-{AWS_LAMBDA_RIC_VERSION}-node{}.tar.gz",
        abi.trim()
    ));
    std::fs::create_dir_all(&dir)?;
    let d = dir.display().to_string();
    if cache.exists() {
        let c = cache.display().to_string();
        step(
            &format!("aws-lambda-ric {AWS_LAMBDA_RIC_VERSION} (built before, from {c})"),
            "tar",
            &["xzf", &c, "-C", &d],
            &[],
        )?;
        if built.exists() {
            return Ok(());
        }
    }
    let debs: Vec<&str> = RIC_BUILD_DEBS
        .iter()
        .filter(|(tool, _)| !have(tool))
        .map(|(_, pkg)| *pkg)
        .collect();
    apt_install(&debs)?;
    let pkg = format!("aws-lambda-ric@{AWS_LAMBDA_RIC_VERSION}");
    step(
        &format!("{pkg} from npm (builds aws-lambda-cpp: a few minutes)"),
        "npm",
        &[
            "install",
            "--prefix",
            &d,
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--loglevel",
            "error",
            &pkg,
        ],
        &[],
    )?;
    if !built.exists() {
        bail!("{pkg} installed, but {} is missing", built.display());
    }
    // Kept for the next clone: the package without its build tree.
    if let Some(parent) = cache.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = cache.with_extension("partial");
    let t = tmp.display().to_string();
    step(
        &format!("a copy of the built package in {}", cache.display()),
        "tar",
        &[
            "czf",
            &t,
            "-C",
            &d,
            "--exclude",
            "node_modules/aws-lambda-ric/deps",
            "node_modules",
        ],
        &[],
    )?;
    std::fs::rename(&tmp, &cache)?;
    Ok(())
}

/// aws-cdk-lib and constructs in `target/cdk` (`node_modules`), pinned:
/// what the tests' CDK apps `require` (through `NODE_PATH`) to synthesize
/// with `node app.js`, as `cdk synth` runs them. npm keeps what it
/// downloads in its own cache (`~/.npm`), so a fresh clone installs from
/// there.
fn cdk_lib() -> Result<()> {
    let dir = root().join("target/cdk");
    let manifest = dir.join("node_modules/aws-cdk-lib/package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| package_version(&t));
    if installed.as_deref() == Some(AWS_CDK_LIB_VERSION)
        && dir.join("node_modules/constructs/package.json").exists()
    {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    let d = dir.display().to_string();
    let lib = format!("aws-cdk-lib@{AWS_CDK_LIB_VERSION}");
    let constructs = format!("constructs@{CONSTRUCTS_VERSION}");
    step(
        &format!("{lib} and {constructs} from npm (into target/cdk)"),
        "npm",
        &[
            "install",
            "--prefix",
            &d,
            "--no-save",
            "--no-audit",
            "--no-fund",
            "--loglevel",
            "error",
            &lib,
            &constructs,
        ],
        &[],
    )
}

/// `"version"` of a package.json, without a JSON parser (xtask builds
/// with nothing but std and anyhow).
fn package_version(text: &str) -> Option<String> {
    let rest = &text[text.find("\"version\"")? + "\"version\"".len()..];
    let rest = &rest[rest.find('"')? + 1..];
    Some(rest[..rest.find('"')?].to_string())
}

fn cache_home() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"))
}
