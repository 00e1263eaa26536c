//! The harness: a deployment's entries in the host maps, one frame at a
//! time through the router at either hook, and what it counted.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
};

use aya_ebpf::{
    bindings::{__sk_buff, xdp_md},
    host::{self, Hook},
    maps::lpm_trie::Key,
    programs::{TcContext, XdpContext},
};
use vpc::{
    compile::{self, Entries, LinkInfo},
    datapath::Timeouts,
    model::{self, Model},
};
use vpc_common::{
    cfg, nat_bitmap_bit, port_slot, DropReason, NatPortKey, CT_DIR_ORIG, STATS_LEN, STAT_FORWARDED,
};

use crate::{maps::*, parse, router};

pub const XDP_DROP: u32 = 1;
pub const XDP_REDIRECT: u32 = 4;

/// The maps are process-wide (as in the kernel): one user at a time.
static LOCK: Mutex<()> = Mutex::new(());
/// What the maps hold, as its installer tagged it (`Host::installed`).
static INSTALLED: Mutex<Option<usize>> = Mutex::new(None);

/// What the parser made of a frame (`parse::Packet`'s fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub v6: bool,
    /// IPv4 as `::ffff:a.b.c.d`, as the datapath keeps it.
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub proto: u8,
    /// Host order.
    pub sport: u16,
    pub dport: u16,
    pub l4_off: usize,
    pub ip_len: u32,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// 0 whole, 1 first fragment, 2 a later one.
    pub frag: u8,
    pub ip_id: u16,
}

/// A frame through the router: its action, where it was redirected to,
/// the frame as it leaves.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub action: u32,
    pub redirect: Option<u32>,
    pub frame: Vec<u8>,
}

/// The host datapath, exclusively: maps cleared when taken.
pub struct Host {
    _guard: MutexGuard<'static, ()>,
}

/// Every map's state gone: connections, claims, fragments, counters,
/// scratch, and (`policy`) the deployment's entries and settings too.
fn clear(policy: bool) {
    CT.host_clear();
    NAT_PORTS.host_clear();
    NAT_PORT_BITMAP.host_clear();
    FRAGS.host_clear();
    FRAG_IDS.host_clear();
    FL_REJECTS.host_clear();
    FL_EVENTS.host_take();
    STATS.host_clear();
    PORT_STATS.host_clear();
    PORT_DROPS.host_clear();
    ENI_STATS.host_clear();
    NAT_STATS.host_clear();
    FL_STATS.host_clear();
    SCRATCH.host_clear();
    PORT_CONNECTIONS.host_clear();
    LINKLOCAL_BUCKETS.host_clear();
    ALLOWANCE_STATS.host_clear();
    RELAYS.host_clear();
    if policy {
        PORTS.host_clear();
        ENDPOINTS.host_clear();
        ENIS.host_clear();
        ENI_GROUPS.host_clear();
        SG_PREFIXES.host_clear();
        SG_PORTS.host_clear();
        ACL_PREFIXES.host_clear();
        ACL_PORTS.host_clear();
        SUBNET_ACLS.host_clear();
        ROUTES.host_clear();
        SUBNET_ROUTE_TABLES.host_clear();
        PUBLIC_TO_PRIVATE.host_clear();
        PRIVATE_TO_PUBLIC.host_clear();
        CONFIG.host_clear();
        REMOTE_PORTS.host_clear();
        PORT_SLICES.host_clear();
    }
}

impl Host {
    /// Takes the datapath (waiting for another user), empty, with the
    /// default timeouts and a conntrack table of `ct_max` entries.
    pub fn new(ct_max: u32) -> Self {
        let mut h = Host::take();
        h.clear_all(ct_max);
        host::seed(1);
        host::set_now(1_000_000_000_000);
        h
    }

    /// Takes the datapath as the last user left it.
    pub fn take() -> Self {
        Host {
            _guard: LOCK.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Empties every map, as `new` does (the lock already held), and
    /// writes the settings `vpc up` does: the default timeouts and each
    /// interface's conntrack allowance for a table of `ct_max` entries.
    pub fn clear_all(&mut self, ct_max: u32) {
        clear(true);
        *INSTALLED.lock().unwrap_or_else(|e| e.into_inner()) = None;
        CT.host_set_max(ct_max);
        NAT_PORTS.host_set_max(ct_max / 2);
        for (i, d) in Timeouts::default().by_index() {
            CONFIG.set(i, d.as_nanos() as u64, 0).unwrap();
        }
        let allowance = vpc::deploy::default_conntrack_allowance(ct_max);
        CONFIG.set(cfg::CT_ALLOWANCE, allowance as u64, 0).unwrap();
    }

    /// The tag of the deployment in the maps (`set_installed`), if any.
    pub fn installed(&self) -> Option<usize> {
        *INSTALLED.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_installed(&mut self, tag: usize) {
        *INSTALLED.lock().unwrap_or_else(|e| e.into_inner()) = Some(tag);
    }

    /// Forgets every connection and counter; the deployment stays.
    pub fn reset_state(&mut self) {
        clear(false);
    }

    /// Writes a deployment's entries, as `Maps::install` does.
    pub fn install(&mut self, e: &Entries) {
        for (len, k, class) in &e.sg_prefixes {
            SG_PREFIXES.insert(Key::new(*len, *k), *class, 0).unwrap();
        }
        for (len, k, class) in &e.acl_prefixes {
            ACL_PREFIXES.insert(Key::new(*len, *k), *class, 0).unwrap();
        }
        for (len, k) in &e.sg_ports {
            SG_PORTS.insert(Key::new(*len, *k), 1u8, 0).unwrap();
        }
        for (len, k, v) in &e.acl_ports {
            ACL_PORTS.insert(Key::new(*len, *k), *v, 0).unwrap();
        }
        for (i, acl) in &e.subnet_acls {
            SUBNET_ACLS.set(*i, *acl, 0).unwrap();
        }
        for (len, k, t) in &e.routes {
            ROUTES.insert(Key::new(*len, *k), *t, 0).unwrap();
        }
        for (i, t) in &e.subnet_route_tables {
            SUBNET_ROUTE_TABLES.set(*i, *t, 0).unwrap();
        }
        for (k, v) in &e.endpoints {
            ENDPOINTS.insert(k, v, 0).unwrap();
        }
        for (k, v) in &e.enis {
            ENIS.insert(k, v, 0).unwrap();
        }
        for (k, v) in &e.eni_groups {
            ENI_GROUPS.insert(k, v, 0).unwrap();
        }
        for (k, v) in &e.public_to_private {
            PUBLIC_TO_PRIVATE.insert(k, v, 0).unwrap();
        }
        for (k, v) in &e.private_to_public {
            PRIVATE_TO_PUBLIC.insert(k, v, 0).unwrap();
        }
        for (k, v) in &e.ports {
            PORTS.insert(k, v, 0).unwrap();
        }
    }

    /// Sets `CONFIG[idx]` (`vpc_common::cfg`).
    pub fn set_config(&mut self, idx: u32, v: u64) {
        CONFIG.set(idx, v, 0).unwrap();
    }

    /// The ENI group an execution environment's port sends through.
    pub fn set_port_eni(&mut self, ifindex: u32, group: u32) {
        let mut p = *unsafe { PORTS.get(ifindex) }.expect("a port");
        p.eni_group = group;
        PORTS.insert(ifindex, p, 0).unwrap();
    }

    /// The datapath's clock (idle times).
    pub fn set_now(&mut self, ns: u64) {
        host::set_now(ns);
    }

    /// Seeds the datapath's random numbers (NAT ports).
    pub fn seed(&mut self, s: u64) {
        host::seed(s);
    }

    /// Runs the router once on `frame` arriving on `ingress`.
    pub fn run(&mut self, hook: Hook, ingress: u32, frame: &[u8]) -> Outcome {
        host::set_hook(hook);
        host::take_redirect();
        // Exactly the frame's bytes on the heap: a read past its end is
        // the sanitizer's to catch.
        let mut buf = frame.to_vec().into_boxed_slice();
        let data = buf.as_mut_ptr() as usize;
        let action = match hook {
            Hook::Xdp => {
                let mut md = xdp_md {
                    data,
                    data_end: data + buf.len(),
                    data_meta: data,
                    ingress_ifindex: ingress,
                    rx_queue_index: 0,
                };
                router::run(&XdpContext::new(&mut md))
            }
            Hook::Tc => {
                let mut skb = __sk_buff {
                    len: buf.len() as u32,
                    ifindex: ingress,
                    gso_segs: 1,
                    vlan_present: 0,
                    data,
                    data_end: data + buf.len(),
                };
                router::run(&TcContext::new(&mut skb))
            }
        };
        Outcome {
            action,
            redirect: host::take_redirect(),
            frame: buf.into_vec(),
        }
    }

    /// `STATS`: forwarded, and dropped per reason (index = `DropReason`).
    pub fn stats(&self) -> Vec<u64> {
        (0..STATS_LEN).map(|i| *STATS.get(i).unwrap()).collect()
    }

    pub fn forwarded(&self) -> u64 {
        *STATS.get(STAT_FORWARDED).unwrap()
    }

    /// Live conntrack entries (both directions).
    pub fn conntrack_len(&self) -> usize {
        CT.host_len()
    }

    /// `CONFIG[CT_ALLOWANCE]`: connections each interface may have tracked.
    pub fn conntrack_allowance(&self) -> u64 {
        *CONFIG.get(cfg::CT_ALLOWANCE).unwrap()
    }

    /// `PORT_CONNECTIONS`: each router port's count of the connections it
    /// opened (its conntrack allowance's), as the datapath keeps it.
    pub fn port_connections(&self, ifindex: u32) -> i64 {
        *PORT_CONNECTIONS.get(port_slot(ifindex)).unwrap() as i64
    }

    /// What `PORT_CONNECTIONS` must hold: per router port slot, the
    /// original-direction entries in the table whose connection it opened
    /// (nothing else removes entries here: no GC runs on the host).
    pub fn connections_by_port(&self) -> BTreeMap<u32, i64> {
        let mut by = BTreeMap::new();
        for (_, e) in CT.host_entries() {
            if e.dir == CT_DIR_ORIG {
                *by.entry(port_slot(e.in_ifindex)).or_default() += 1;
            }
        }
        by
    }

    /// The claims of ENI pools in `NAT_PORTS` whose `NAT_PORT_BITMAP` bit
    /// is clear: none, whatever the packets (the allocator sets a bit
    /// before its claim, or just after when the scan found the port, and a
    /// release clears it only after the claim is gone).
    pub fn claims_without_bits(&self) -> Vec<NatPortKey> {
        NAT_PORTS
            .host_entries()
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| {
                nat_bitmap_bit(k)
                    .is_some_and(|(i, bit)| NAT_PORT_BITMAP.get(i).is_none_or(|w| *w & bit == 0))
            })
            .collect()
    }

    /// Every port slot whose `PORT_CONNECTIONS` count is not zero.
    pub fn port_counts(&self) -> BTreeMap<u32, i64> {
        (0..PORT_CONNECTIONS.host_len())
            .filter_map(|i| {
                let n = *PORT_CONNECTIONS.get(i).unwrap() as i64;
                (n != 0).then_some((i, n))
            })
            .collect()
    }
}

/// Parses `frame` as the router does (XDP's view).
pub fn parse_frame(frame: &[u8]) -> Result<Parsed, DropReason> {
    host::set_hook(Hook::Xdp);
    let mut buf = frame.to_vec().into_boxed_slice();
    let data = buf.as_mut_ptr() as usize;
    let mut md = xdp_md {
        data,
        data_end: data + buf.len(),
        data_meta: data,
        ingress_ifindex: 0,
        rx_queue_index: 0,
    };
    let ctx = XdpContext::new(&mut md);
    // SAFETY: a zeroed `Packet` is a valid one (plain data).
    let mut p: parse::Packet = unsafe { std::mem::zeroed() };
    parse::parse(&ctx, &mut p)?;
    Ok(Parsed {
        v6: p.v6,
        saddr: p.saddr,
        daddr: p.daddr,
        proto: p.proto,
        sport: u16::from_be(p.sport),
        // An ICMP echo's "port" is its type, kept as a number (not as on
        // the wire): conntrack keys it so.
        dport: if p.is_icmp() {
            p.dport
        } else {
            u16::from_be(p.dport)
        },
        l4_off: p.l4_off,
        ip_len: p.ip_len,
        tcp_flags: p.tcp_flags,
        icmp_type: p.icmp_type,
        icmp_code: p.icmp_code,
        frag: p.frag,
        ip_id: u16::from_be(p.ip_id),
    })
}

/// A quoted packet: (source, destination, protocol, source port,
/// destination port), addresses as the datapath keeps them.
pub type Quoted = ([u8; 16], [u8; 16], u8, u16, u16);

/// The quoted packet of an ICMP error the parser accepted:
/// (source, destination, protocol, source port, destination port);
/// `None` for a quote no connection can have (a fragment, neither TCP nor
/// UDP), which the router judges as any ICMP.
pub fn parse_quote(frame: &[u8]) -> Result<Option<Quoted>, DropReason> {
    let mut buf = frame.to_vec().into_boxed_slice();
    let data = buf.as_mut_ptr() as usize;
    let mut md = xdp_md {
        data,
        data_end: data + buf.len(),
        data_meta: data,
        ingress_ifindex: 0,
        rx_queue_index: 0,
    };
    let ctx = XdpContext::new(&mut md);
    // SAFETY: plain data.
    let mut p: parse::Packet = unsafe { std::mem::zeroed() };
    let mut q: parse::Quote = unsafe { std::mem::zeroed() };
    parse::parse(&ctx, &mut p)?;
    if !parse::quote(&ctx, &p, &mut q)? {
        return Ok(None);
    }
    Ok(Some((
        q.saddr,
        q.daddr,
        q.proto,
        u16::from_be(q.sport),
        u16::from_be(q.dport),
    )))
}

/// A template's deployment on the host: its model, entries and links
/// (ifindex 10, 11, ... and MACs as the kernel harness's), installed, its
/// execution environments active.
pub struct Deployment {
    pub model: Model,
    pub entries: Entries,
    pub links: HashMap<String, LinkInfo>,
}

impl Deployment {
    pub fn new(template: &str) -> Self {
        let model = model::build(template, &HashMap::new(), "fuzz").expect("template");
        let links = model_ids(&model)
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                (
                    id,
                    LinkInfo {
                        ifindex: 10 + i as u32,
                        mac: [2, 0, 0, 0, 0, i as u8 + 1],
                        router_mac: [2, 0, 0, 0, 1, i as u8 + 1],
                    },
                )
            })
            .collect();
        let entries = compile::compile(&model, &links, 0).expect("compile");
        Deployment {
            model,
            entries,
            links,
        }
    }

    /// Installs it into `h` and activates every execution environment.
    pub fn install(&self, h: &mut Host) {
        h.install(&self.entries);
        h.set_config(cfg::GENERATION, 0);
        for f in &self.model.functions {
            for (env, group) in compile::env_enis(&self.model, f) {
                h.set_port_eni(self.links[&env].ifindex, group);
            }
        }
    }

    pub fn ifindex(&self, id: &str) -> u32 {
        self.links[id].ifindex
    }
}

/// Every node of a model that has a router port, in the kernel harness's
/// order (`vpc_tests::Harness`).
pub fn model_ids(model: &Model) -> Vec<String> {
    model
        .hosts
        .iter()
        .map(|h| h.id.clone())
        .chain(model.internet_hosts.iter().map(|h| h.id.clone()))
        .chain(
            model
                .functions
                .iter()
                .flat_map(|f| f.envs().into_iter().map(|e| e.id)),
        )
        .chain(model.vpcs.iter().filter_map(|v| v.resolver_id()))
        .chain(
            model
                .has_aws_services()
                .then(|| model::endpoint::AWS_SERVICES_ID.to_string()),
        )
        .chain(
            model
                .has_internet()
                .then(|| model::internet::AWS_PUBLIC_ID.to_string()),
        )
        .collect()
}
