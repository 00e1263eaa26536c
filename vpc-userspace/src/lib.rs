//! `vpc`: the AWS Lambda VPC data path on Linux, enforced by eBPF at TC
//! and XDP.
//!
//! The AWS model ([`template`], [`model`]) is pure Rust; [`compile`] turns it
//! into map entries; [`datapath`] loads and feeds the kernel programs;
//! [`topology`] builds namespaces and veths; [`state`] is what a deployment
//! persists ([`paths`]: where); [`lifecycle`] decides function states,
//! [`reconcile`] applies them; [`deploy`] ties them together and runs the
//! agent; [`bench`] and [`throughput`] measure the datapath; [`trace`]
//! prints its verdicts; [`console`] shows it all in a browser.
pub mod agent;
pub mod bench;
pub mod cloudformation;
pub mod cluster;
pub mod compile;
pub mod conntrack;
pub mod console;
pub mod datapath;
pub mod deploy;
pub mod ec2;
pub mod explain;
pub mod flowlogs;
pub mod iam;
pub mod lambda;
pub mod metrics;
pub mod model;
pub mod packet;
pub mod paths;
pub mod reconcile;
pub mod reference;
pub mod resolver;
pub mod services;
pub mod ssm;
pub mod state;
pub mod store;
pub mod supervise;
pub mod template;
pub mod throughput;
pub mod topology;
pub mod trace;

/// The template `cargo xtask run` brings up when given none.
/// The Lambda API and lifecycle under their former paths.
pub use lambda::{api, lifecycle};

pub const DEFAULT_TEMPLATE: &str = include_str!("../templates/default.yaml");
/// One VPC over three hosts (`vpc cluster demo`, the multi-host tests): a
/// database on h2, a web host on h3, two functions sharing one Hyperplane
/// ENI on h1 and h3.
pub const MULTI_HOST_TEMPLATE: &str = include_str!("../templates/multi_host.yaml");
