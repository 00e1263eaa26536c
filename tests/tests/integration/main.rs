//! The integration tests, in one binary (as aya's are): a module per AWS
//! concept. Run as root: `cargo test -p vpc-tests --test integration`, or
//! one module with a filter (`-- routing::`).
mod datapath;
mod e2e;
mod endpoints;
mod flow_logs;
mod gateways;
mod lifecycle;
mod observability;
mod reference;
mod resolver;
mod routing;
mod sdk;
