//! Lambda: the function and Hyperplane ENI lifecycle as AWS documents it
//! ([`lifecycle`], pure), the API's changes and the lifecycle's timers on
//! a running deployment ([`operations`], through the reconciler), the
//! Lambda API itself ([`api`]), real handlers through the Runtime API
//! ([`runtime`]), their code (inline or a package: [`code`]), their logs,
//! CloudWatch-Logs-shaped ([`logs`]), function URLs ([`function_url`],
//! served on Lambda's public endpoint, and the API's operations on them,
//! [`function_url_config`]) and the scaling of Hyperplane ENI groups
//! ([`eni_scaling`]).
pub mod api;
pub mod cgroup;
pub mod code;
pub mod eni_scaling;
pub mod function_url;
pub mod function_url_config;
pub mod function_url_cors;
pub mod lifecycle;
pub mod logs;
pub mod operations;
pub mod runtime;
