//! `vpc sg`: EC2's security-group rule edits on the running deployment.
use anyhow::Result;
use vpc::{
    deploy,
    model::security_group_edit::{self as sg_edit, Action, Direction, Edit, RuleSpec},
};

#[derive(clap::Subcommand)]
pub enum SgOp {
    AuthorizeIngress(SgRuleArgs),
    RevokeIngress(SgRuleArgs),
    AuthorizeEgress(SgRuleArgs),
    RevokeEgress(SgRuleArgs),
}

#[derive(clap::Args)]
pub struct SgRuleArgs {
    /// The group (logical id, or `VPC.DefaultSecurityGroup`).
    group: String,
    /// tcp, udp, icmp, icmpv6, a number, or -1.
    #[arg(long)]
    protocol: String,
    /// A port or FROM-TO (ICMP: TYPE or TYPE-CODE); ignored for -1.
    #[arg(long)]
    port: Option<String>,
    #[arg(long, conflicts_with_all = ["group_peer", "prefix_list"])]
    cidr: Option<String>,
    /// The peer group (source for ingress, destination for egress).
    #[arg(long = "peer-group", conflicts_with = "prefix_list")]
    group_peer: Option<String>,
    #[arg(long)]
    prefix_list: Option<String>,
}

/// One rule edit, validated like a template rule, then `vpc apply`'s path.
pub fn edit(name: &str, op: SgOp) -> Result<()> {
    let (a, direction, action) = match op {
        SgOp::AuthorizeIngress(a) => (a, Direction::Ingress, Action::Authorize),
        SgOp::RevokeIngress(a) => (a, Direction::Ingress, Action::Revoke),
        SgOp::AuthorizeEgress(a) => (a, Direction::Egress, Action::Authorize),
        SgOp::RevokeEgress(a) => (a, Direction::Egress, Action::Revoke),
    };
    let e = Edit {
        group: a.group,
        direction,
        action,
        rule: RuleSpec {
            protocol: a.protocol,
            port: a.port,
            cidr: a.cidr,
            peer_group: a.group_peer,
            prefix_list: a.prefix_list,
        },
    };
    let gen = deploy::apply_edit(name, |m, state, _| {
        sg_edit::edit(m, &e, state.quotas.rules_per_group)
    })?;
    println!("{name}: {} updated (policy generation {gen})", e.group);
    Ok(())
}
