//! The namespaces and veth pairs of a deployment, built with iproute2.
//!
//! Why iproute2 and not a netlink crate: every step is one `ip` command a
//! network engineer can read in `--verbose` output and replay by hand, and
//! `ip` creates a veth pair directly across two named namespaces, so no
//! interface ever exists in the root namespace where parallel deployments
//! could collide.
use std::{
    net::{Ipv4Addr, Ipv6Addr},
    process::Command,
};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::{compile::LinkInfo, model::Model};

/// One namespace joined to the router by a veth pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Node {
    /// Resource logical id (host), or an execution environment's id: its
    /// function's logical id for the first, `<id>.<n>` for environment n.
    pub id: String,
    pub role: Role,
    pub netns: String,
    /// Router-side interface name (in the router namespace).
    pub router_if: String,
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub link: LinkInfo,
    /// Its IPv6 address (dual-stack subnet, or an execution environment
    /// whose function's subnets are all dual-stack); the gateway is
    /// `model::VPC_ROUTER6`.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// Whether it has an IPv6 default route (`NodeSpec::ip6_route`).
    #[serde(default)]
    pub ip6_route: bool,
    /// Its secondary IPv4 addresses, as on its `eth0`.
    #[serde(default)]
    pub secondary: Vec<Ipv4Addr>,
    /// A stopped instance's: `eth0` down, its processes killed.
    #[serde(default)]
    pub stopped: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Role {
    Instance,
    NetworkInterface,
    ExecutionEnvironment,
    /// A test host on the internet (`Metadata: Vpc::Internet`).
    InternetHost,
    /// A VPC's DNS resolver (base + 2), served by the agent.
    Resolver,
    /// An interface endpoint's ENI: the agent serves its service there.
    VpcEndpoint,
    /// The simulated regional AWS services behind gateway endpoints
    /// (`<deployment>-AwsServices`), served by the agent.
    AwsServices,
    /// AWS's public endpoints on the internet (`<deployment>-AwsPublic`):
    /// Lambda's public API and function URLs, and the internet's DNS,
    /// served by the agent.
    AwsPublic,
}

pub fn router_netns(deployment: &str) -> String {
    format!("{deployment}-router")
}

/// Namespace name of a resource: `<deployment>-<logical id>`.
pub fn node_netns(deployment: &str, id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{deployment}-{clean}")
}

/// Namespace of execution environment `n` (1-based) of function `id`:
/// `<deployment>-fn-<id>` for the first, `<deployment>-fn-<id>.<n>` for the
/// others (logical ids are alphanumeric, so no other name looks like it).
pub fn exec_env_netns(deployment: &str, id: &str, n: usize) -> String {
    let first = node_netns(deployment, &format!("fn-{id}"));
    if n <= 1 {
        first
    } else {
        format!("{first}.{n}")
    }
}

/// Runs a command; its stderr becomes the error.
pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    if std::env::var_os("VPC_VERBOSE").is_some() {
        eprintln!("+ {cmd} {}", args.join(" "));
    }
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> Result<String> {
    run("ip", args)
}

fn in_ns(ns: &str, cmd: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["netns", "exec", ns, cmd];
    all.extend_from_slice(args);
    ip(&all)
}

/// `02:52:54:00:00:01`, as `ip` takes it.
pub fn mac_str(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Names of every namespace a model needs (so a failed `up` can be undone).
pub fn planned_namespaces(deployment: &str, model: &Model) -> Vec<String> {
    let mut v = vec![router_netns(deployment)];
    v.extend(node_specs(deployment, model).into_iter().map(|s| s.netns));
    v
}

/// Namespace names a model may use: distinct, and short enough.
pub fn check_namespaces(namespaces: &[String]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = namespaces.iter().find(|ns| !seen.insert(ns.as_str())) {
        bail!("two parts of the deployment map to namespace {dup} (a resource named like the router?): rename the resource");
    }
    // A namespace is a file in /run/netns: NAME_MAX.
    if let Some(ns) = namespaces.iter().find(|ns| ns.len() > 255) {
        bail!("namespace name {ns} is longer than 255 bytes: shorten the logical id or the deployment name");
    }
    Ok(())
}

/// Where `ip netns exec` finds a namespace's own `/etc` files.
fn etc_netns(ns: &str) -> std::path::PathBuf {
    std::path::Path::new("/etc/netns").join(ns)
}

/// Writes the namespace's `resolv.conf` (what `ip netns exec`, so `vpc
/// exec` and `vpc invoke`, mounts over `/etc/resolv.conf`) as its VPC's
/// DHCP options say (by default the VPC's resolver, also when the VPC has
/// `EnableDnsSupport: false`, where queries then go unanswered), unless it
/// says so already. Whether it changed.
pub fn set_dns(ns: &str, dns: &crate::model::DnsSettings) -> Result<bool> {
    let dir = etc_netns(ns);
    let mut text = String::from("# vpc: the VPC's DHCP options\n");
    for s in &dns.servers {
        text += &format!("nameserver {s}\n");
    }
    if !dns.search.is_empty() {
        text += &format!("search {}\n", dns.search.join(" "));
    }
    text += "options timeout:1 attempts:2\n";
    let path = dir.join("resolv.conf");
    if std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
        return Ok(false);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// The DNS settings of a VPC node (an instance, an interface, an endpoint
/// ENI, an execution environment of a function in a VPC): its VPC's DHCP
/// options; of a function without `VpcConfig`, the internet's resolver.
/// `None` for the others.
pub fn dns_of(model: &Model, node: &Node) -> Option<crate::model::DnsSettings> {
    let vpc = match node.role {
        Role::Instance | Role::NetworkInterface | Role::VpcEndpoint => model
            .hosts
            .iter()
            .find(|h| h.id == node.id)
            .and_then(|h| model.subnet(&h.subnet))
            .and_then(|s| model.vpc(&s.vpc)),
        Role::ExecutionEnvironment => {
            let f = model
                .functions
                .iter()
                .find(|f| f.envs().iter().any(|e| e.id == node.id))?;
            match &f.vpc_config {
                Some(c) => model.vpc(&c.vpc),
                // Lambda's own VPC: the internet's resolver, if any.
                None if model.has_internet() => {
                    return Some(crate::model::DnsSettings {
                        servers: vec![crate::model::internet::LAMBDA_PUBLIC],
                        search: vec![],
                    })
                }
                None => None,
            }
        }
        _ => None,
    }?;
    Some(model.dns_settings(vpc))
}

/// Points an internet host's `resolv.conf` at the internet's resolver on
/// AWS's public endpoints (`model::internet::LAMBDA_PUBLIC`), which answers
/// the public names (Lambda's endpoints, function URLs, the test hosts).
pub fn set_public_resolver(ns: &str, resolver: Ipv4Addr) -> Result<()> {
    let dir = etc_netns(ns);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("resolv.conf"),
        format!("# vpc: the internet's resolver (AWS's public endpoints)\nnameserver {resolver}\noptions timeout:1 attempts:2\n"),
    )
    .with_context(|| format!("writing {}/resolv.conf", dir.display()))
}

/// Creates the router namespace: no addresses and forwarding off, so only
/// the programs attached to its veths move packets between them.
pub fn build_router(deployment: &str) -> Result<()> {
    let router = router_netns(deployment);
    ip(&["netns", "add", &router])?;
    in_ns(
        &router,
        "sysctl",
        &[
            "-qw",
            "net.ipv4.ip_forward=0",
            "net.ipv6.conf.all.forwarding=0",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ],
    )?;
    ip(&["-n", &router, "link", "set", "lo", "up"])?;
    Ok(())
}

/// What one node of a model is: the namespace, its addresses and gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub id: String,
    pub role: Role,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    /// An IPv6 default route (off for a function without
    /// `Ipv6AllowedForDualStack`: IPv6 then fails at once, as at AWS).
    pub ip6_route: bool,
    /// Secondary IPv4 addresses (an interface's): added and removed in
    /// place, the node kept.
    pub secondary: Vec<Ipv4Addr>,
    /// A stopped instance: stopped and started in place.
    pub stopped: bool,
}

impl NodeSpec {
    /// `n` is this node as built: nothing of it needs to change.
    pub fn is_built_as(&self, n: &Node) -> bool {
        n.id == self.id
            && n.role == self.role
            && n.netns == self.netns
            && n.ip == self.ip
            && n.gateway == self.gateway
            && n.ip6 == self.ip6
    }
}

/// Every node a model needs: hosts, the internet's test hosts, execution
/// environments, each VPC's resolver, AWS's public endpoints and the
/// simulated AWS services.
pub fn node_specs(deployment: &str, model: &Model) -> Vec<NodeSpec> {
    let spec = |id: &str, role, ip, gateway, ip6: Option<Ipv6Addr>| NodeSpec {
        id: id.to_string(),
        role,
        netns: node_netns(deployment, id),
        ip,
        gateway,
        ip6,
        ip6_route: ip6.is_some(),
        secondary: vec![],
        stopped: false,
    };
    let mut specs = vec![];
    for h in &model.hosts {
        let gw = model.subnet(&h.subnet).expect("validated").gateway();
        let role = match h.kind {
            crate::model::HostKind::Instance => Role::Instance,
            crate::model::HostKind::NetworkInterface => Role::NetworkInterface,
            crate::model::HostKind::VpcEndpoint => Role::VpcEndpoint,
        };
        specs.push(NodeSpec {
            secondary: h.secondary.clone(),
            stopped: h.stopped,
            ..spec(&h.id, role, h.ip, gw, h.ip6)
        });
    }
    // The internet's hosts: each a namespace of its own, whose gateway is
    // the router's internet side (a link-local address, nobody's; for IPv6
    // fe80::1, as in the VPC).
    for h in &model.internet_hosts {
        let gw = crate::model::internet::INTERNET_GATEWAY_ADDRESS;
        specs.push(spec(&h.id, Role::InternetHost, h.ip, gw, h.ip6));
    }
    for f in &model.functions {
        specs.extend(function_specs(deployment, f));
    }
    // Each VPC's resolver, at base + 2 behind the VPC router (base + 1).
    for vpc in &model.vpcs {
        let Some(id) = vpc.resolver_id() else {
            continue;
        };
        let gw = Ipv4Addr::from(u32::from(vpc.cidr.network()) + 1);
        specs.push(spec(&id, Role::Resolver, vpc.resolver(), gw, None));
    }
    // The simulated AWS services, behind the router like the internet's
    // hosts: the first service's address here, the others added by
    // `build_node`.
    // AWS's public endpoints, a host of the internet like the test hosts.
    if model.has_internet() {
        use crate::model::internet::{AWS_PUBLIC_ID, LAMBDA_PUBLIC, LAMBDA_PUBLIC6};
        let gw = crate::model::internet::INTERNET_GATEWAY_ADDRESS;
        specs.push(spec(
            AWS_PUBLIC_ID,
            Role::AwsPublic,
            LAMBDA_PUBLIC,
            gw,
            Some(LAMBDA_PUBLIC6),
        ));
    }
    if model.has_aws_services() {
        let first = crate::model::endpoint::PUBLIC_SERVICES[0].1;
        let gw = crate::model::internet::INTERNET_GATEWAY_ADDRESS;
        specs.push(spec(
            crate::model::endpoint::AWS_SERVICES_ID,
            Role::AwsServices,
            first,
            gw,
            None,
        ));
    }
    specs
}

/// Builds one node joined to the router at port `r<n>`, with its resolver
/// configuration (and the AWS services' further addresses).
pub fn build_node(deployment: &str, model: &Model, spec: NodeSpec, n: u16) -> Result<Node> {
    let role = spec.role;
    let node = build_nodes(deployment, vec![spec], n)?.remove(0);
    if let Some(dns) = dns_of(model, &node) {
        set_dns(&node.netns, &dns)?;
    }
    match role {
        Role::Instance
        | Role::NetworkInterface
        | Role::VpcEndpoint
        | Role::ExecutionEnvironment => {}
        Role::AwsServices => {
            for (_, addr) in &crate::model::endpoint::PUBLIC_SERVICES[1..] {
                let a = format!("{addr}/32");
                ip(&["-n", &node.netns, "addr", "add", &a, "dev", "eth0"])?;
            }
        }
        Role::InternetHost => {
            set_public_resolver(&node.netns, crate::model::internet::LAMBDA_PUBLIC)?;
        }
        Role::Resolver | Role::AwsPublic => {}
    }
    Ok(node)
}

/// A function's execution environments, one per subnet of its VpcConfig.
fn function_specs(deployment: &str, f: &crate::model::Function) -> Vec<NodeSpec> {
    // Without Ipv6AllowedForDualStack the execution environment keeps
    // its IPv6 address but has no IPv6 route: IPv6 fails at once with
    // ENETUNREACH, as at AWS (and the router drops it anyway).
    f.envs()
        .into_iter()
        .map(|e| NodeSpec {
            id: e.id.clone(),
            role: Role::ExecutionEnvironment,
            netns: exec_env_netns(deployment, &f.id, e.n),
            ip: e.ip,
            gateway: crate::model::LAMBDA_GATEWAY,
            ip6: e.ip6,
            ip6_route: e.ip6.is_some() && f.ipv6_allowed(),
            secondary: vec![],
            stopped: false,
        })
        .collect()
}

fn build_nodes(deployment: &str, specs: Vec<NodeSpec>, first: u16) -> Result<Vec<Node>> {
    let router = router_netns(deployment);
    let mut nodes = vec![];
    for (k, spec) in specs.into_iter().enumerate() {
        let NodeSpec {
            id,
            role,
            netns: ns,
            ip: addr,
            gateway: gw,
            ip6,
            ip6_route,
            secondary,
            stopped,
        } = spec;
        let v6 = ip6.map(|a| (a, ip6_route));
        let n = k as u16 + first;
        let router_if = format!("r{n}");
        let router_mac = [0x02, 0x52, 0x54, 0x00, (n >> 8) as u8, n as u8];
        let mac = [0x02, 0x48, 0x53, 0x54, (n >> 8) as u8, n as u8];
        ip(&["netns", "add", &ns])?;
        // Set before links come up. IPv4-only: IPv6 off, no DAD, RS or MLD
        // noise on the wire. Dual-stack: IPv6 on, but no link-local address,
        // no DAD (addresses usable at once), no router solicitations or
        // advertisements: the addresses and routes are static, as for IPv4.
        let sysctls: &[&str] = if v6.is_some() {
            &[
                "-qw",
                "net.ipv6.conf.all.addr_gen_mode=1",
                "net.ipv6.conf.default.addr_gen_mode=1",
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
                "net.ipv6.conf.default.dad_transmits=0",
                "net.ipv6.conf.default.router_solicitations=0",
                "net.ipv6.conf.all.accept_ra=0",
                "net.ipv6.conf.default.accept_ra=0",
            ]
        } else {
            &[
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]
        };
        in_ns(&ns, "sysctl", sysctls)?;
        ip(&[
            "-n",
            &router,
            "link",
            "add",
            &router_if,
            "address",
            &mac_str(&router_mac),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
            "address",
            &mac_str(&mac),
        ])?;
        // Full checksums from the sender (no CHECKSUM_PARTIAL through NAT);
        // GRO gives eth0 the NAPI instance XDP_REDIRECT into a veth needs.
        in_ns(&ns, "ethtool", &["-K", "eth0", "tx", "off", "gro", "on"])?;
        in_ns(&router, "ethtool", &["-K", &router_if, "tx", "off"])?;
        if v6.is_some() {
            // NOARP before the link comes up: the kernel then joins no
            // solicited-node groups, so no MLD report (from ::, which the
            // router would count as spoofed) ever leaves; neighbours are
            // static anyway.
            ip(&["-n", &ns, "link", "set", "eth0", "arp", "off"])?;
        }
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &router, "link", "set", &router_if, "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            "eth0",
        ])?;
        wire(&ns, gw, router_mac, v6)?;
        let ifindex = ifindex_of(&router, &router_if)?;
        nodes.push(Node {
            id,
            role,
            netns: ns,
            router_if,
            ip: addr,
            gateway: gw,
            link: LinkInfo {
                ifindex,
                mac,
                router_mac,
            },
            ip6: v6.map(|(a, _)| a),
            ip6_route: v6.is_some_and(|(_, r)| r),
            secondary: vec![],
            stopped: false,
        });
        let node = nodes.last_mut().expect("pushed");
        set_secondary(node, &secondary)?;
        set_stopped(node, stopped)?;
    }
    Ok(nodes)
}

/// A node's routes and static neighbours on its `eth0` (again once the
/// link comes back up: a link down drops them): the gateway, the default
/// route, and for IPv6 (`v6`: the address, whether it has a default
/// route) the router's link-local address.
fn wire(ns: &str, gw: Ipv4Addr, router_mac: [u8; 6], v6: Option<(Ipv6Addr, bool)>) -> Result<()> {
    ip(&[
        "-n",
        ns,
        "route",
        "replace",
        &gw.to_string(),
        "dev",
        "eth0",
        "scope",
        "link",
    ])?;
    ip(&[
        "-n",
        ns,
        "route",
        "replace",
        "default",
        "via",
        &gw.to_string(),
        "dev",
        "eth0",
    ])?;
    // The VPC router answers for its gateway address: a static entry, so
    // no ARP ever needs to cross the XDP path.
    ip(&[
        "-n",
        ns,
        "neigh",
        "replace",
        &gw.to_string(),
        "lladdr",
        &mac_str(&router_mac),
        "dev",
        "eth0",
        "nud",
        "permanent",
    ])?;
    if let Some((addr6, route)) = v6 {
        let gw6 = crate::model::VPC_ROUTER6.to_string();
        ip(&[
            "-n",
            ns,
            "-6",
            "addr",
            "replace",
            &format!("{addr6}/128"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        // The router's link-local address, static like the IPv4 gateway:
        // no neighbour discovery crosses the XDP path either.
        ip(&[
            "-n",
            ns,
            "-6",
            "neigh",
            "replace",
            &gw6,
            "lladdr",
            &mac_str(&router_mac),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
        if route {
            ip(&[
                "-n", ns, "-6", "route", "replace", "default", "via", &gw6, "dev", "eth0",
            ])?;
        }
    }
    Ok(())
}

/// Stops (`eth0` down, every process of the namespace killed) or starts
/// (`eth0` up, its routes back) a node in place: its namespace, addresses
/// and port stay.
pub fn set_stopped(node: &mut Node, stopped: bool) -> Result<()> {
    if node.stopped == stopped {
        return Ok(());
    }
    if stopped {
        ip(&["-n", &node.netns, "link", "set", "eth0", "down"])?;
        let pids = ip(&["netns", "pids", &node.netns])?;
        for pid in pids.split_whitespace() {
            // Gone already is fine.
            let _ = run("kill", &["-KILL", pid]);
        }
    } else {
        ip(&["-n", &node.netns, "link", "set", "eth0", "up"])?;
        let v6 = node.ip6.map(|a| (a, node.ip6_route));
        wire(&node.netns, node.gateway, node.link.router_mac, v6)?;
    }
    node.stopped = stopped;
    Ok(())
}

/// Puts a node's secondary IPv4 addresses on its `eth0` as `want` lists
/// them (added and removed in place: its processes and connections on
/// other addresses go on).
pub fn set_secondary(node: &mut Node, want: &[Ipv4Addr]) -> Result<()> {
    for a in node.secondary.clone() {
        if !want.contains(&a) {
            let a = format!("{a}/32");
            ip(&["-n", &node.netns, "addr", "del", &a, "dev", "eth0"])?;
        }
    }
    for a in want {
        if !node.secondary.contains(a) {
            let a = format!("{a}/32");
            ip(&["-n", &node.netns, "addr", "replace", &a, "dev", "eth0"])?;
        }
    }
    node.secondary = want.to_vec();
    Ok(())
}

fn ifindex_of(ns: &str, ifname: &str) -> Result<u32> {
    let out = ip(&["-n", ns, "-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("parsing `ip -j link`")?;
    v.get(0)
        .and_then(|l| l.get("ifindex"))
        .and_then(|i| i.as_u64())
        .map(|i| i as u32)
        .with_context(|| format!("no ifindex for {ifname} in {ns}"))
}

/// Deletes namespaces (their veths go with them). Processes still running
/// inside (a server started with `vpc exec ... &`) are killed first, or they
/// would keep the namespace alive, unnamed. Missing namespaces are fine.
pub fn teardown(namespaces: &[String]) -> Vec<String> {
    let mut errors = vec![];
    for ns in namespaces.iter().rev() {
        if std::path::Path::new("/run/netns").join(ns).exists() {
            if let Ok(pids) = ip(&["netns", "pids", ns]) {
                for pid in pids
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if let Err(e) = ip(&["netns", "del", ns]) {
                errors.push(e.to_string());
            }
        }
        let etc = etc_netns(ns);
        if etc.exists() {
            if let Err(e) = std::fs::remove_dir_all(&etc) {
                errors.push(format!("removing {}: {e}", etc.display()));
            }
        }
    }
    errors
}

/// Adds or removes a node's IPv6 default route (via the VPC router's
/// link-local address): `Ipv6AllowedForDualStack` changed.
pub fn set_ip6_route(node: &Node, on: bool) -> Result<()> {
    let gw6 = crate::model::VPC_ROUTER6.to_string();
    let op = if on { "replace" } else { "del" };
    let r = ip(&[
        "-n",
        &node.netns,
        "-6",
        "route",
        op,
        "default",
        "via",
        &gw6,
        "dev",
        "eth0",
    ]);
    match r {
        // Gone already: what a second run after a crash finds.
        Err(e) if !on && e.to_string().contains("No such process") => Ok(()),
        r => r.map(|_| ()),
    }
}

/// The names of the router namespace's interfaces. A node's router-side
/// veth outlives `ip netns del` of its namespace for a moment (the kernel
/// tears a namespace down asynchronously), so a new port's name is chosen
/// among the names not there.
pub fn router_links(deployment: &str) -> Result<Vec<String>> {
    let out = ip(&["-n", &router_netns(deployment), "-j", "link", "show"])?;
    let v: serde_json::Value = serde_json::from_str(&out).context("parsing `ip -j link`")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect())
}

/// Runs `f` on a thread that has entered namespace `ns`.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let path = std::path::Path::new("/run/netns").join(ns);
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
    })
}

/// Transmit checksum offload (and with it TSO) on both ends of a node's
/// link. Built off, for XDP ports: a frame carries no offload state, so a
/// partial checksum would leave the router unfinished. A TC port keeps the
/// sender's socket buffers, and with them the offloads; its router side
/// also gets GRO, whose NAPI instance frames redirected into a veth need
/// (XDP ports have it from their program).
pub fn set_tx_offload(deployment: &str, node: &Node, on: bool) -> Result<()> {
    let v = if on { "on" } else { "off" };
    in_ns(&node.netns, "ethtool", &["-K", "eth0", "tx", v])?;
    in_ns(
        &router_netns(deployment),
        "ethtool",
        &["-K", &node.router_if, "tx", v, "gro", v],
    )?;
    Ok(())
}

/// The overlay device in each router namespace of a cluster: a kernel VXLAN
/// device in external mode (the router sets each packet's tunnel key: the
/// remote host's underlay address and the VPC's VNI), and the router's
/// underlay link.
pub const OVERLAY_IF: &str = "vx0";
pub const UNDERLAY_IF: &str = "underlay0";
/// VXLAN's IANA port.
pub const VXLAN_PORT: &str = "4789";
/// The overlay carries a VPC's 9,001-byte frames (AWS's MTU inside a VPC)
/// with VXLAN's 50 bytes on top, so no inner packet is ever fragmented or
/// refused on the way between hosts.
pub const OVERLAY_MTU: &str = "9001";
pub const UNDERLAY_MTU: &str = "9100";

/// How a router namespace reaches the underlay.
pub enum UnderlayLink<'a> {
    /// A veth into the bridge `br0` of this namespace (made when missing):
    /// the one-machine underlay every host of the cluster joins.
    Bridge(&'a str),
    /// A macvlan of this device of the machine (a VM's NIC on the network
    /// its hosts share), made in the router namespace.
    Device(&'a str),
}

/// The least MTU an underlay device needs: a 1,500-byte frame of a node
/// and VXLAN's 50 bytes.
pub const UNDERLAY_MIN_MTU: u32 = 1550;

/// A device the underlay can go through: there, its MTU big enough.
pub fn check_underlay_dev(dev: &str) -> Result<()> {
    let mtu: u32 = std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
        .ok()
        .and_then(|m| m.trim().parse().ok())
        .with_context(|| format!("--underlay-dev {dev}: no such device"))?;
    if mtu < UNDERLAY_MIN_MTU {
        bail!(
            "--underlay-dev {dev}: its MTU is {mtu}, and the overlay needs {UNDERLAY_MIN_MTU} (a 1,500-byte frame and VXLAN's 50 bytes): raise it on every host (`ip link set {dev} mtu 9100`, a jumbo-frame network)"
        );
    }
    Ok(())
}

/// Joins the router namespace to the underlay, puts the router's address
/// on it, and makes the VXLAN device. Returns the overlay device's ifindex.
pub fn build_overlay(deployment: &str, addr: ipnet::Ipv4Net, link: UnderlayLink) -> Result<u32> {
    let router = router_netns(deployment);
    match link {
        UnderlayLink::Bridge(bridge_ns) => {
            if !std::path::Path::new("/run/netns").join(bridge_ns).exists() {
                ip(&["netns", "add", bridge_ns])?;
                ip(&["-n", bridge_ns, "link", "add", "br0", "type", "bridge"])?;
                ip(&["-n", bridge_ns, "link", "set", "br0", "up"])?;
            }
            let peer = underlay_peer(deployment);
            let veth = format!("link add {UNDERLAY_IF} mtu {UNDERLAY_MTU} type veth peer name {peer} netns {bridge_ns} mtu {UNDERLAY_MTU}");
            let mut args = vec!["-n", &router];
            args.extend(veth.split(' '));
            ip(&args)?;
            ip(&["-n", bridge_ns, "link", "set", &peer, "master", "br0", "up"])?;
        }
        UnderlayLink::Device(dev) => {
            check_underlay_dev(dev)?;
            let macvlan = format!(
                "link add link {dev} name {UNDERLAY_IF} netns {router} type macvlan mode bridge"
            );
            ip(&macvlan.split(' ').collect::<Vec<_>>())?;
        }
    }
    ip(&[
        "-n",
        &router,
        "addr",
        "add",
        &addr.to_string(),
        "dev",
        UNDERLAY_IF,
    ])?;
    ip(&["-n", &router, "link", "set", UNDERLAY_IF, "up"])?;
    ip(&[
        "-n",
        &router,
        "link",
        "add",
        OVERLAY_IF,
        "mtu",
        OVERLAY_MTU,
        "type",
        "vxlan",
        "external",
        "dstport",
        VXLAN_PORT,
        "nolearning",
    ])?;
    ip(&["-n", &router, "link", "set", OVERLAY_IF, "up"])?;
    ifindex_in(&router, OVERLAY_IF)
}

/// The bridge side of a router's underlay veth (15 characters at most).
fn underlay_peer(deployment: &str) -> String {
    let mut s = format!("u-{deployment}");
    s.truncate(15);
    s
}

/// Removes the one-machine underlay namespace once no host's link is left
/// on its bridge (the last host of the cluster went).
pub fn remove_underlay_if_unused(bridge_ns: &str) -> Result<()> {
    if !std::path::Path::new("/run/netns").join(bridge_ns).exists() {
        return Ok(());
    }
    let ports = ip(&["-n", bridge_ns, "-o", "link", "show", "master", "br0"])?;
    if ports.trim().is_empty() {
        ip(&["netns", "del", bridge_ns])?;
    }
    Ok(())
}

/// The ifindex of `dev` in namespace `ns`.
pub fn ifindex_in(ns: &str, dev: &str) -> Result<u32> {
    let out = ip(&["-n", ns, "-o", "link", "show", "dev", dev])?;
    out.split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .with_context(|| format!("no ifindex for {dev} in {ns}: {out}"))
}
