//! VPC Flow Logs: which interfaces a flow log covers, how observations of
//! the datapath become one record per (flow log, ENI, 5-tuple, window),
//! and the NODATA / SKIPDATA records. Pure: the agent side (maps, ring
//! buffer, clock) is in [`agent`].
pub mod agent;
pub mod recent;
pub mod record;
pub mod writer;

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use serde::{Deserialize, Serialize};

use crate::model::{
    flowlog::{ec2_id, host_eni_id, FlowLogResource},
    FlowLog, HostKind, Model,
};
pub use record::{aws_service, Direction, Flow, Interface, LogStatus, Record};

/// `vpc up` settings for flow logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowLogOptions {
    /// The directory standing for buckets and log groups (default
    /// `/var/log/vpc/<name>`).
    pub dir: Option<PathBuf>,
    /// Ring-buffer size in bytes (a power of two, at least a page).
    pub ringbuf_bytes: u32,
}

impl Default for FlowLogOptions {
    fn default() -> Self {
        Self {
            dir: None,
            ringbuf_bytes: vpc_common::FL_RINGBUF_BYTES,
        }
    }
}

impl FlowLogOptions {
    pub fn root(&self, name: &str) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/var/log/vpc/{name}")))
    }
}

/// A flow log as `vpc status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowLogView {
    pub id: String,
    pub flow_log_id: String,
    pub resource: String,
    pub traffic_type: String,
    pub interval_s: u32,
    /// The directory standing for its bucket or log group.
    pub destination: PathBuf,
    /// Interfaces it covers now.
    pub interfaces: usize,
}

/// The flow logs of deployment `name` (its `model`, written under `opts`).
pub fn views(name: &str, opts: &FlowLogOptions, model: &Model) -> Vec<FlowLogView> {
    use crate::model::flowlog::FlowLogDestination;
    let root = opts.root(name);
    let ifaces = interfaces(name, model);
    model
        .flow_logs
        .iter()
        .map(|fl| FlowLogView {
            id: fl.id.clone(),
            flow_log_id: fl.flow_log_id.clone(),
            resource: format!("{:?} {}", fl.resource_type, fl.resource_id),
            traffic_type: format!("{:?}", fl.traffic_type).to_uppercase(),
            interval_s: fl.interval_s,
            destination: match &fl.destination {
                FlowLogDestination::S3 { bucket, prefix } => {
                    root.join("s3").join(bucket).join(prefix)
                }
                FlowLogDestination::CloudWatchLogs { log_group } => root
                    .join("cloudwatch")
                    .join(log_group.trim_start_matches('/')),
            },
            interfaces: ifaces.iter().filter(|i| covers(fl, i)).count(),
        })
        .collect()
}

/// Who rejected a packet, hence which interfaces log it how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Both interfaces: ACCEPT (egress on the sender's, ingress on the receiver's).
    Accepted,
    /// The sender's outbound rules or ACL: REJECT on the sender's interface.
    RejectedBySender,
    /// The receiver's inbound rules or ACL: ACCEPT leaving the sender's
    /// interface (it did leave), REJECT on the receiver's.
    RejectedByReceiver,
    /// No connection to belong to (unsolicited to a Hyperplane ENI, TCP
    /// after the connection closed): REJECT on the receiver's interface.
    Unsolicited,
}

/// A flow as the datapath counted it in one window: addresses as seen in
/// the VPC (after source NAT, before the reverse NAT) and before NAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub proto: u8,
    pub pkt_src: IpAddr,
    pub pkt_dst: IpAddr,
    pub packets: u64,
    pub bytes: u64,
    /// Unix seconds of the first and last packet.
    pub first: u64,
    pub last: u64,
    pub tcp_flags: u8,
    pub verdict: Verdict,
    /// Through a NAT gateway: its interface logs the flow too.
    pub nat_gateway: Option<NatGatewayHop>,
}

/// A flow through a NAT gateway, as its interface sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatGatewayHop {
    /// The gateway's `ENIS` id (`compile::nat_gateway_id`); 0: the gateway
    /// the sender's route leads to.
    pub pool: u32,
    /// Its port toward the internet (none yet for a refused packet: the
    /// sender's own).
    pub port: u16,
    /// The direction from the internet back to the sender.
    pub reply: bool,
    /// Refused by the gateway subnet's ACL, entering the gateway or leaving
    /// it (None: it passed the gateway, or never reached it).
    pub refused: Option<GatewayLeg>,
}

/// Where on a gateway's interface a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayLeg {
    Entering,
    Leaving,
}

/// The id of a NAT gateway's network interface in deployment `deployment`:
/// the one EC2's DescribeNatGateways and DescribeNetworkInterfaces show.
pub fn nat_gateway_eni_id(deployment: &str, gateway: &str) -> String {
    crate::ec2::ids::derived("eni", deployment, "", gateway)
}

/// An interface with what coverage needs to know.
#[derive(Debug, Clone)]
pub struct Iface {
    /// Logical id of a host (instances and network interfaces).
    pub host: Option<String>,
    pub subnet: String,
    pub vpc: String,
    pub rec: Interface,
}

/// AWS's AZ ids map letters to zones per account; here `us-east-1a` is
/// `use1-az1` (AWS's region code, `apne1` for ap-northeast-1, then the
/// letter's rank).
pub fn az_id(region: &str, az: &str) -> String {
    let short: String = region
        .split('-')
        .enumerate()
        .map(|(i, p)| match p {
            _ if i == 0 || p.chars().all(|c| c.is_ascii_digit()) => p.to_string(),
            "northeast" => "ne".into(),
            "southeast" => "se".into(),
            "northwest" => "nw".into(),
            "southwest" => "sw".into(),
            _ => p.chars().next().map(String::from).unwrap_or_default(),
        })
        .collect();
    let n = az
        .strip_prefix(region)
        .and_then(|l| l.chars().next())
        .filter(|c| c.is_ascii_lowercase())
        .map(|c| (c as u8 - b'a' + 1) as u32)
        .unwrap_or(1);
    format!("{short}-az{n}")
}

/// Every interface of the model (deployment `deployment`): hosts' (interface
/// endpoints' ENIs among them), Hyperplane ENIs, NAT gateways'.
pub fn interfaces(deployment: &str, m: &Model) -> Vec<Iface> {
    let mk = |host: Option<String>,
              subnet: &str,
              eni_id: String,
              instance: Option<String>,
              hyperplane: bool,
              addrs: Vec<IpAddr>| {
        let sn = m.subnet(subnet);
        let vpc = sn.map(|s| s.vpc.clone()).unwrap_or_default();
        let az = sn.map(|s| s.az.clone()).unwrap_or_default();
        Iface {
            host,
            subnet: subnet.to_string(),
            vpc: vpc.clone(),
            rec: Interface {
                eni_id,
                vpc_id: ec2_id("vpc", &m.stack_name, &vpc),
                subnet_id: ec2_id("subnet", &m.stack_name, subnet),
                instance_id: instance,
                az_id: az_id(&m.region, &az),
                hyperplane,
                nat_gateway: None,
                addrs,
            },
        }
    };
    let hosts = m.hosts.iter().map(|h| {
        let mut addrs: Vec<IpAddr> = h.ips().map(IpAddr::V4).collect();
        addrs.extend(h.ip6.map(IpAddr::V6));
        let instance = (h.kind == HostKind::Instance).then(|| ec2_id("i", &m.stack_name, &h.id));
        mk(
            Some(h.id.clone()),
            &h.subnet,
            host_eni_id(&m.stack_name, &h.id),
            instance,
            false,
            addrs,
        )
    });
    let enis = m.enis.iter().map(|e| {
        let mut addrs = vec![IpAddr::V4(e.ip)];
        addrs.extend(e.ip6.map(IpAddr::V6));
        mk(None, &e.subnet, e.id.clone(), None, true, addrs)
    });
    // Requester-managed: no instance (`-`).
    let gateways = m.nat_gateways.iter().map(|g| {
        let eni = nat_gateway_eni_id(deployment, &g.id);
        let mut i = mk(None, &g.subnet, eni, None, false, vec![IpAddr::V4(g.ip)]);
        i.rec.nat_gateway = Some(g.id.clone());
        i
    });
    hosts.chain(enis).chain(gateways).collect()
}

/// Does flow log `fl` cover interface `i`?
pub fn covers(fl: &FlowLog, i: &Iface) -> bool {
    match fl.resource_type {
        FlowLogResource::Vpc => i.vpc == fl.resource_id,
        FlowLogResource::Subnet => i.subnet == fl.resource_id,
        FlowLogResource::NetworkInterface => {
            i.host.as_deref() == Some(fl.resource_id.as_str()) || i.rec.eni_id == fl.resource_id
        }
    }
}

/// Traffic AWS does not log: the VPC resolver (base + 2, and fd00:ec2::253),
/// instance metadata and time sync (169.254.169.254 / .123, fd00:ec2::254 /
/// ::123), DHCP.
pub fn not_logged(m: &Model, o: &Observation) -> bool {
    let special = |a: IpAddr| match a {
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254)
                || v4 == Ipv4Addr::new(169, 254, 169, 123)
                || m.vpcs
                    .iter()
                    .any(|v| u32::from(v.cidr.network()) + 2 == u32::from(v4))
        }
        IpAddr::V6(v6) => [0x253u16, 0x254, 0x123]
            .iter()
            .any(|s| v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, *s)),
    };
    let dhcp = o.proto == 17 && [67, 68, 546, 547].contains(&o.dport);
    dhcp || special(o.src) || special(o.dst)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    iface: usize,
    accepted: bool,
    direction: Direction,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
    pkt_src: IpAddr,
    pkt_dst: IpAddr,
    /// `traffic-path` (egress only).
    path: Option<u8>,
}

/// One interface's view of an observation: addresses and ports as its
/// record shows them.
#[derive(Debug, Clone, Copy)]
struct Leg {
    iface: usize,
    direction: Direction,
    accepted: bool,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    /// `pkt-srcaddr`, `pkt-dstaddr`.
    pkt: (IpAddr, IpAddr),
}

#[derive(Debug, Clone, Copy, Default)]
struct Agg {
    packets: u64,
    bytes: u64,
    first: u64,
    last: u64,
    flags: u8,
}

/// One flow log's window in progress.
#[derive(Debug)]
struct Open {
    fl: FlowLog,
    ifaces: Vec<usize>,
    start: u64,
    acc: BTreeMap<Key, Agg>,
    skipped: bool,
}

/// A closed window of one flow log: its records, in order.
#[derive(Debug, Clone)]
pub struct Window {
    pub flow_log: FlowLog,
    pub start: u64,
    pub end: u64,
    pub records: Vec<Record>,
}

/// Aggregates observations into each flow log's windows.
#[derive(Debug)]
pub struct Aggregator {
    deployment: String,
    account: String,
    region: String,
    model: Model,
    ifaces: Vec<Iface>,
    open: Vec<Open>,
}

impl Aggregator {
    /// Windows start at the last boundary (a multiple of the interval)
    /// at or before `now`.
    pub fn new(deployment: &str, m: &Model, now: u64) -> Self {
        let ifaces = interfaces(deployment, m);
        let open = m
            .flow_logs
            .iter()
            .map(|fl| Open {
                fl: fl.clone(),
                ifaces: (0..ifaces.len())
                    .filter(|i| covers(fl, &ifaces[*i]))
                    .collect(),
                start: now - now % fl.interval_s as u64,
                acc: BTreeMap::new(),
                skipped: false,
            })
            .collect();
        Self {
            deployment: deployment.to_string(),
            account: m.account.clone(),
            region: m.region.clone(),
            model: m.clone(),
            ifaces,
            open,
        }
    }

    /// The model changed (the agent added or returned a Hyperplane ENI):
    /// coverage follows, windows in progress stay.
    pub fn set_model(&mut self, m: &Model) {
        if m.enis == self.model.enis
            && m.hosts == self.model.hosts
            && m.nat_gateways == self.model.nat_gateways
        {
            return;
        }
        let ifaces = interfaces(&self.deployment, m);
        for o in &mut self.open {
            // Keys hold interface indexes: remap them by ENI id.
            let old = std::mem::take(&mut o.acc);
            for (mut k, v) in old {
                let id = &self.ifaces[k.iface].rec.eni_id;
                if let Some(n) = ifaces.iter().position(|i| &i.rec.eni_id == id) {
                    k.iface = n;
                    o.acc.insert(k, v);
                }
            }
            o.ifaces = (0..ifaces.len())
                .filter(|i| covers(&o.fl, &ifaces[*i]))
                .collect();
        }
        self.ifaces = ifaces;
        self.model = m.clone();
    }

    /// The tick: the smallest window every flow log's interval is a
    /// multiple of (their greatest common divisor).
    pub fn tick(m: &Model) -> Option<u64> {
        fn gcd(a: u64, b: u64) -> u64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        m.flow_logs.iter().map(|f| f.interval_s as u64).reduce(gcd)
    }

    /// Is `a` a Hyperplane ENI's address?
    pub fn is_hyperplane(&self, a: IpAddr) -> bool {
        self.ifaces
            .iter()
            .any(|i| i.rec.hyperplane && i.rec.addrs.contains(&a))
    }

    fn iface_of(&self, a: IpAddr) -> Option<usize> {
        self.ifaces.iter().position(|i| i.rec.addrs.contains(&a))
    }

    /// The interface of the NAT gateway `h` names, or for a refused packet
    /// the one the sender's route to the destination leads to.
    fn nat_iface(&self, o: &Observation, h: &NatGatewayHop) -> Option<usize> {
        use crate::model::route_table::Target;
        // The private side: the sender, or for a reply its destination.
        let (private, peer) = if h.reply {
            (o.dst, o.src)
        } else {
            (o.src, o.dst)
        };
        let id = if h.pool != 0 {
            let index = h.pool.checked_sub(vpc_common::NAT_GATEWAY_ID_BASE)?;
            self.model
                .nat_gateways
                .iter()
                .find(|g| g.index == index)?
                .id
                .clone()
        } else {
            let sender = &self.ifaces[self.iface_of(private)?];
            let (_, r, _, _) = crate::reference::route(&self.model, &sender.subnet, peer)?;
            match &r.target {
                Target::NatGateway(g) => g.clone(),
                _ => return None,
            }
        };
        self.ifaces
            .iter()
            .position(|i| i.rec.nat_gateway.as_ref() == Some(&id))
    }

    pub fn add(&mut self, o: &Observation) {
        if not_logged(&self.model, o) {
            return;
        }
        let sender = self.iface_of(o.src);
        let receiver = self.iface_of(o.dst);
        let sides: &[(Option<usize>, Direction, bool)] = match o.verdict {
            Verdict::Accepted => &[
                (sender, Direction::Egress, true),
                (receiver, Direction::Ingress, true),
            ],
            Verdict::RejectedBySender => &[(sender, Direction::Egress, false)],
            Verdict::RejectedByReceiver => &[
                (sender, Direction::Egress, true),
                (receiver, Direction::Ingress, false),
            ],
            Verdict::Unsolicited => &[(receiver, Direction::Ingress, false)],
        };
        let mut legs = vec![];
        for &(iface, direction, accepted) in sides {
            let Some(iface) = iface else { continue };
            // Addresses before NAT show only on the Hyperplane ENI.
            let (pkt_src, pkt_dst) = if self.ifaces[iface].rec.hyperplane {
                (o.pkt_src, o.pkt_dst)
            } else {
                (o.src, o.dst)
            };
            legs.push(Leg {
                iface,
                direction,
                accepted,
                src: (o.src, o.sport),
                dst: (o.dst, o.dport),
                pkt: (pkt_src, pkt_dst),
            });
        }
        if let Some(h) = &o.nat_gateway {
            self.nat_legs(o, h, sender, receiver, &mut legs);
        }
        for l in legs {
            self.count(o, l);
        }
    }

    /// A NAT gateway's interface is an intermediate one (AWS's "Traffic
    /// through a NAT gateway" example): the private side's records show
    /// its private address where the packet names the internet host, with
    /// the original addresses as `pkt-`; the internet side's show its
    /// private address as theirs. The private side is logged when the
    /// sender's interface is known (a host's; a function's connection
    /// shows the internet side only: its ENI's port is not kept).
    fn nat_legs(
        &self,
        o: &Observation,
        h: &NatGatewayHop,
        sender: Option<usize>,
        receiver: Option<usize>,
        legs: &mut Vec<Leg>,
    ) {
        let Some(gw) = self.nat_iface(o, h) else {
            return;
        };
        let Some(&ip) = self.ifaces[gw].rec.addrs.first() else {
            return;
        };
        let leg = |direction, accepted, src, dst, pkt| Leg {
            iface: gw,
            direction,
            accepted,
            src,
            dst,
            pkt,
        };
        let (into, out) = match h.refused {
            Some(GatewayLeg::Entering) => (false, None),
            Some(GatewayLeg::Leaving) => (true, Some(false)),
            // Through the gateway (a reply the sender's subnet refused
            // passed it too) ...
            None if o.verdict == Verdict::Accepted || h.reply => (true, Some(true)),
            // ... or refused by the sender's own rules before reaching it.
            None => return,
        };
        if h.reply {
            // From the internet host to the gateway, then on to the sender.
            legs.push(leg(
                Direction::Ingress,
                into,
                (o.src, o.sport),
                (ip, h.port),
                (o.src, ip),
            ));
            if let (Some(accepted), Some(_)) = (out, receiver) {
                legs.push(leg(
                    Direction::Egress,
                    accepted,
                    (ip, o.sport),
                    (o.dst, o.dport),
                    (o.src, o.dst),
                ));
            }
            return;
        }
        if sender.is_some() {
            legs.push(leg(
                Direction::Ingress,
                into,
                (o.src, o.sport),
                (ip, o.dport),
                (o.src, o.dst),
            ));
        }
        if let Some(accepted) = out {
            let port = if h.port != 0 { h.port } else { o.sport };
            legs.push(leg(
                Direction::Egress,
                accepted,
                (ip, port),
                (o.dst, o.dport),
                (ip, o.dst),
            ));
        }
    }

    fn count(&mut self, o: &Observation, l: Leg) {
        // ICMP has no ports: a record per (addresses, protocol).
        let icmp = o.proto == 1 || o.proto == 58;
        let key = Key {
            iface: l.iface,
            accepted: l.accepted,
            direction: l.direction,
            src: l.src.0,
            sport: if icmp { 0 } else { l.src.1 },
            dst: l.dst.0,
            dport: if icmp { 0 } else { l.dst.1 },
            proto: o.proto,
            pkt_src: l.pkt.0,
            pkt_dst: l.pkt.1,
            path: match l.direction {
                Direction::Egress => traffic_path(&self.model, &self.ifaces[l.iface], l.pkt.1),
                Direction::Ingress => None,
            },
        };
        for w in &mut self.open {
            if !w.fl.traffic_type.logs(l.accepted) || !w.ifaces.contains(&l.iface) {
                continue;
            }
            let a = w.acc.entry(key).or_insert(Agg {
                first: o.first,
                last: o.last,
                ..Default::default()
            });
            a.packets += o.packets;
            a.bytes += o.bytes;
            a.first = a.first.min(o.first);
            a.last = a.last.max(o.last);
            a.flags |= o.tcp_flags;
        }
    }

    /// Records were lost in the current windows (events lost): each flow
    /// log's window in progress gets SKIPDATA records.
    pub fn skipped(&mut self) {
        for w in &mut self.open {
            w.skipped = true;
        }
    }

    /// Closes the windows that end at `now` (a tick boundary), or every
    /// window when `all` (the agent stops): their records, NODATA for an
    /// interface without any, SKIPDATA where records were lost.
    pub fn close(&mut self, now: u64, all: bool) -> Vec<Window> {
        let mut out = vec![];
        for w in &mut self.open {
            let interval = w.fl.interval_s as u64;
            if !(all || now >= w.start + interval) {
                continue;
            }
            let (start, end) = (w.start, now.max(w.start + 1));
            let version = w.fl.version();
            let base = |iface: usize, status, s, e, flow| Record {
                version,
                account: self.account.clone(),
                region: self.region.clone(),
                interface: self.ifaces[iface].rec.clone(),
                start: s,
                end: e,
                flow,
                status,
            };
            let mut records = vec![];
            for &i in &w.ifaces {
                let mine: Vec<(&Key, &Agg)> = w.acc.iter().filter(|(k, _)| k.iface == i).collect();
                if w.skipped {
                    records.push(base(i, LogStatus::SkipData, start, end, None));
                }
                if mine.is_empty() && !w.skipped {
                    records.push(base(i, LogStatus::NoData, start, end, None));
                }
                for (k, a) in mine {
                    records.push(base(
                        i,
                        LogStatus::Ok,
                        a.first,
                        a.last,
                        Some(Flow {
                            srcaddr: k.src,
                            dstaddr: k.dst,
                            srcport: k.sport,
                            dstport: k.dport,
                            protocol: k.proto,
                            pkt_srcaddr: k.pkt_src,
                            pkt_dstaddr: k.pkt_dst,
                            packets: a.packets,
                            bytes: a.bytes,
                            tcp_flags: a.flags,
                            accepted: k.accepted,
                            direction: k.direction,
                            traffic_path: k.path,
                        }),
                    ));
                }
            }
            out.push(Window {
                flow_log: w.fl.clone(),
                start,
                end,
                records,
            });
            w.acc.clear();
            w.skipped = false;
            w.start = now - now % interval;
        }
        out
    }
}

#[cfg(test)]
mod tests;

/// AWS's `traffic-path` of egress from `iface` to `dst`, by the route its
/// subnet's table picks: 8 through an internet gateway (either kind), 7
/// through a gateway endpoint (AWS's Nitro values, as every current
/// instance and Lambda's ENIs are), 1 through another resource of the VPC
/// (the VPC itself, a NAT gateway, a middlebox's ENI).
fn traffic_path(m: &Model, iface: &Iface, dst: IpAddr) -> Option<u8> {
    use crate::model::route_table::Target;
    let (_, r, _, _) = crate::reference::route(m, &iface.subnet, dst)?;
    Some(match r.target {
        Target::InternetGateway(_) | Target::EgressOnlyInternetGateway(_) => 8,
        Target::VpcEndpoint(_) => 7,
        _ => 1,
    })
}
