//! VPC Flow Logs: which interfaces a flow log covers, how observations of
//! the datapath become one record per (flow log, ENI, 5-tuple, window),
//! and the NODATA / SKIPDATA records. Pure: the agent side (maps, ring
//! buffer, clock) is in [`agent`].
pub mod agent;
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
    let ifaces = interfaces(model);
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

/// Every interface of the model: hosts' and Hyperplane ENIs.
pub fn interfaces(m: &Model) -> Vec<Iface> {
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
                addrs,
            },
        }
    };
    let hosts = m.hosts.iter().map(|h| {
        let mut addrs = vec![IpAddr::V4(h.ip)];
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
    hosts.chain(enis).collect()
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
    account: String,
    region: String,
    model: Model,
    ifaces: Vec<Iface>,
    open: Vec<Open>,
}

impl Aggregator {
    /// Windows start at the last boundary (a multiple of the interval)
    /// at or before `now`.
    pub fn new(m: &Model, now: u64) -> Self {
        let ifaces = interfaces(m);
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
        if m.enis == self.model.enis && m.hosts == self.model.hosts {
            return;
        }
        let ifaces = interfaces(m);
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
        for &(iface, direction, accepted) in sides {
            let Some(iface) = iface else { continue };
            // Addresses before NAT show only on the Hyperplane ENI.
            let (pkt_src, pkt_dst) = if self.ifaces[iface].rec.hyperplane {
                (o.pkt_src, o.pkt_dst)
            } else {
                (o.src, o.dst)
            };
            // ICMP has no ports: a record per (addresses, protocol).
            let icmp = o.proto == 1 || o.proto == 58;
            let key = Key {
                iface,
                accepted,
                direction,
                src: o.src,
                sport: if icmp { 0 } else { o.sport },
                dst: o.dst,
                dport: if icmp { 0 } else { o.dport },
                proto: o.proto,
                pkt_src,
                pkt_dst,
                path: match direction {
                    Direction::Egress => traffic_path(&self.model, &self.ifaces[iface], o.dst),
                    Direction::Ingress => None,
                },
            };
            for w in &mut self.open {
                if !w.fl.traffic_type.logs(accepted) || !w.ifaces.contains(&iface) {
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
