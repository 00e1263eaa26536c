//! `vpc explain`: why a new connection would pass or not.
use std::process::ExitCode;

use anyhow::Result;
use vpc::deploy::State;

use super::{
    deploy::{load_model, TemplateArgs},
    output::print_json,
    Output,
};

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Sender: an instance, a network interface, or a function (which
    /// sends from its Hyperplane ENI).
    from: String,
    /// Destination: an address or a resource.
    to: String,
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Destination port (ICMP: type).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Explain this template instead of the running deployment.
    #[arg(long)]
    template: Option<String>,
}

/// Exit 0 when allowed, 3 when denied.
pub fn explain(name: &str, a: ExplainArgs, out: Output) -> Result<ExitCode> {
    let m = match a.template {
        Some(t) => load_model(&TemplateArgs::of(t), name)?.0,
        None => State::load(name)?.model,
    };
    let e = vpc::explain::explain(&m, &a.from, &a.to, &a.protocol, a.port)?;
    if out.is_json() {
        print_json(&e)?;
    } else {
        println!(
            "{} ({}) -> {} ({}) protocol {} {} {}",
            e.from,
            e.src,
            e.to,
            e.dst,
            e.protocol,
            if e.is_icmp() { "type" } else { "port" },
            e.port
        );
        for s in &e.steps {
            println!("  {s}");
        }
        if e.allowed {
            println!("ALLOW");
        } else {
            println!(
                "DENY {}: {}",
                e.reason.unwrap_or_default(),
                e.why.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(if e.allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
