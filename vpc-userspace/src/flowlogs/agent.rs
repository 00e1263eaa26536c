//! The agent's side of flow logs: switches the datapath's window at each
//! tick, reads the window just closed (the conntrack entries' slots, the
//! rejected flows the ring buffer announced, what the GC removed meanwhile),
//! aggregates, and writes each flow log's windows when they end.
use std::{
    collections::BTreeMap,
    io::Write,
    net::IpAddr,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Result;
use aya::maps::{Array, HashMap, PerCpuArray};
use serde::{Deserialize, Serialize};
use vpc_common::{
    cfg, map_names, route_kind, CtEntry, CtKey, DropReason, FlowRejectKey, FlowWindow,
    HyperplaneEni, CT_F_DNAT, CT_F_SNAT, FL_DROPS_WINDOW, FL_GW_NAT_IN, FL_GW_NAT_OUT,
    FL_GW_NAT_REPLY_IN, FL_GW_NAT_REPLY_OUT, FL_GW_NAT_REPLY_SENDER, FL_STAT_EVENTS, FL_STAT_LOST,
};

use super::{
    recent::Recorder, Aggregator, GatewayLeg, NatGatewayHop, Observation, Record, Verdict, Window,
};
use crate::{
    datapath::{mono_ns, Maps},
    model::flowlog::FlowLogDestination,
    paths::state_dir,
    state::State,
};

/// One line of the journal `vpc flows tail` follows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalEntry {
    pub flow_log: String,
    /// The line as written to the destination.
    pub line: String,
    pub record: Record,
}

/// The journal's size before it starts over (the previous one is kept as
/// `flows.jsonl.1`).
const JOURNAL_MAX_BYTES: u64 = 16 << 20;

/// `<state dir>/flows.jsonl`: every record written, as JSON lines.
pub fn journal_path(name: &str) -> PathBuf {
    state_dir(name).join("flows.jsonl")
}

fn addr(a: &[u8; 16]) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(*a);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Realtime minus the datapath's monotonic clock, in ns.
pub(crate) fn clock_offset() -> i128 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    real - mono_ns() as i128
}

/// A connection direction's slot as the VPC sees it: a Hyperplane ENI's
/// connection after the function's source NAT and before the reverse NAT,
/// with the function's address as `pkt-`; a gateway's NAT (internet
/// gateway, NAT gateway: its address is no Hyperplane ENI's, which
/// `hyperplane` tells) on its private side, as the host's interface sees it.
/// A function's connection through a NAT gateway (both translations in one
/// rewrite) is seen from the address and port of the Hyperplane ENI it
/// left from (`CtEntry::fn_eni`, `fn_eni_port`; `eni_addr`: an ENI's
/// index to its address), with the function's address as `pkt-`.
pub fn from_ct(
    k: &CtKey,
    e: &CtEntry,
    slot: &FlowWindow,
    offset: i128,
    hyperplane: &dyn Fn(IpAddr) -> bool,
    eni_addr: &dyn Fn(u32) -> Option<IpAddr>,
) -> Observation {
    let unix = |ns: u64| ((ns as i128 + offset).max(0) / 1_000_000_000) as u64;
    let (mut src, mut sport) = (addr(&k.saddr), k.sport);
    let (mut dst, mut dport) = (addr(&k.daddr), k.dport);
    let (snat, dnat) = (e.flags & CT_F_SNAT != 0, e.flags & CT_F_DNAT != 0);
    // A function's packets leave from the ENI's address; replies come to it.
    let hyperplane = (snat && hyperplane(addr(&e.nat_addr))) || (dnat && hyperplane(dst));
    let (mut pkt_src, mut pkt_dst) = (src, dst);
    if hyperplane && snat {
        // A function's packet: out of the ENI's address and port.
        src = addr(&e.nat_addr);
        sport = e.nat_port;
    } else if hyperplane && dnat {
        // A reply to a function: to the ENI, then to its environment.
        pkt_dst = addr(&e.nat_addr);
    } else if dnat {
        // From the internet to a public address: the host's private one.
        dst = addr(&e.nat_addr);
        dport = e.nat_port;
        pkt_dst = dst;
    }
    if !(hyperplane && snat) {
        pkt_src = src;
    }
    let through_nat = e.route == route_kind::NAT_GATEWAY;
    let fn_eni = (through_nat && e.fn_eni != 0)
        .then(|| eni_addr(e.fn_eni as u32))
        .flatten();
    if let Some(eni) = fn_eni {
        if snat {
            (src, sport) = (eni, e.fn_eni_port);
        } else if dnat {
            (dst, dport) = (eni, e.fn_eni_port);
        }
    }
    // A NAT gateway's connection: its port toward the internet is the
    // original direction's rewrite, the reply's destination.
    let nat_gateway = through_nat.then(|| NatGatewayHop {
        pool: e.eni as u32,
        port: u16::from_be(if snat { e.nat_port } else { k.dport }),
        reply: !snat,
        refused: None,
    });
    Observation {
        src,
        sport: u16::from_be(sport),
        dst,
        dport: u16::from_be(dport),
        proto: k.proto,
        pkt_src,
        pkt_dst,
        packets: slot.packets as u64,
        bytes: slot.bytes,
        first: unix(slot.first_ns),
        last: unix(slot.last_ns),
        tcp_flags: slot.tcp_flags,
        verdict: Verdict::Accepted,
        nat_gateway,
    }
}

/// A rejected flow the datapath aggregated.
pub fn from_reject(k: &FlowRejectKey, v: &FlowWindow, offset: i128) -> Observation {
    let unix = |ns: u64| ((ns as i128 + offset).max(0) / 1_000_000_000) as u64;
    let verdict = match k.reason as u32 {
        r if r == DropReason::SgEgressDenied as u32 || r == DropReason::NaclEgressDenied as u32 => {
            Verdict::RejectedBySender
        }
        r if r == DropReason::SgIngressDenied as u32
            || r == DropReason::NaclIngressDenied as u32 =>
        {
            Verdict::RejectedByReceiver
        }
        _ => Verdict::Unsolicited,
    };
    // Refused on the way to, through or back from a NAT gateway: the
    // gateway's interface logs it too, as far as it went.
    let hop = |reply, refused| {
        Some(NatGatewayHop {
            pool: k.gw_id as u32,
            port: u16::from_be(k.gw_port),
            reply,
            refused,
        })
    };
    let (nat_gateway, verdict) = match k.gateway {
        FL_GW_NAT_IN => {
            let entering = verdict == Verdict::RejectedByReceiver;
            (
                hop(false, entering.then_some(GatewayLeg::Entering)),
                verdict,
            )
        }
        FL_GW_NAT_OUT => (
            hop(false, Some(GatewayLeg::Leaving)),
            Verdict::RejectedByReceiver,
        ),
        // Back: neither the internet host nor the sender logs it ...
        FL_GW_NAT_REPLY_IN => (
            hop(true, Some(GatewayLeg::Entering)),
            Verdict::RejectedBySender,
        ),
        FL_GW_NAT_REPLY_OUT => (
            hop(true, Some(GatewayLeg::Leaving)),
            Verdict::RejectedBySender,
        ),
        // ... but the sender, when its own subnet refused it.
        FL_GW_NAT_REPLY_SENDER => (hop(true, None), Verdict::RejectedByReceiver),
        _ => (None, verdict),
    };
    Observation {
        src: addr(&k.saddr),
        sport: u16::from_be(k.sport),
        dst: addr(&k.daddr),
        dport: u16::from_be(k.dport),
        proto: k.proto,
        pkt_src: addr(&k.pkt_saddr),
        pkt_dst: addr(&k.pkt_daddr),
        packets: v.packets as u64,
        bytes: v.bytes,
        first: unix(v.first_ns),
        last: unix(v.last_ns),
        tcp_flags: v.tcp_flags,
        verdict,
        nat_gateway,
    }
}

/// Flow-log counters of the datapath, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct FlowLogStats {
    pub events: u64,
    pub events_lost: u64,
}

pub fn stats(maps: &mut impl Maps) -> Result<FlowLogStats> {
    let a: PerCpuArray<_, u64> = PerCpuArray::try_from(maps.map(map_names::FL_STATS)?)?;
    let sum = |i: u32| -> Result<u64> { Ok(a.get(&i, 0)?.iter().sum()) };
    Ok(FlowLogStats {
        events: sum(FL_STAT_EVENTS)?,
        events_lost: sum(FL_STAT_LOST)?,
    })
}

pub struct FlowLogAgent {
    name: String,
    root: PathBuf,
    agg: Aggregator,
    tick: u64,
    /// The next tick boundary (Unix seconds).
    next: u64,
    /// The datapath's window in force.
    window: u32,
    /// What the GC removed before its window was read, by window.
    removed: BTreeMap<u32, Vec<Observation>>,
    /// Rejected flows announced by the ring buffer (read by the drop
    /// recorder, its one reader), by window.
    rejects: BTreeMap<u32, Vec<FlowRejectKey>>,
    lost_seen: u64,
    /// Hyperplane ENIs' indices -> their addresses (`eni_addrs`), as of
    /// the last window read.
    eni_addrs: BTreeMap<u32, IpAddr>,
}

/// Every Hyperplane ENI's index and IPv4 address (the address a function's
/// connection through a NAT gateway leaves from).
fn eni_addrs(maps: &mut impl Maps) -> Result<BTreeMap<u32, IpAddr>> {
    let m: HashMap<_, u32, HyperplaneEni> = HashMap::try_from(maps.map(map_names::ENIS)?)?;
    Ok(m.iter()
        .filter_map(|r| r.ok())
        .filter(|(i, eni)| eni.pool == *i)
        .map(|(i, eni)| (i, addr(&eni.addr4)))
        .collect())
}

impl FlowLogAgent {
    /// `None` when the deployment has no flow log.
    pub fn start(name: &str, s: &State, maps: &mut impl Maps) -> Result<Option<Self>> {
        Self::open(name, s, maps, false)
    }

    /// The flow logs of the model changed (`vpc apply`): every window of
    /// the old ones is written (`finish`), then the new ones start from
    /// the window in force, missing nothing. With none left the datapath
    /// stops counting.
    pub fn reconfigure(
        old: Option<Self>,
        name: &str,
        s: &State,
        maps: &mut impl Maps,
        drops: &mut Recorder,
    ) -> Result<Option<Self>> {
        if let Some(mut f) = old {
            f.finish(maps, drops)?;
        }
        if s.model.flow_logs.is_empty() {
            let mut conf: Array<_, u64> = Array::try_from(maps.map(map_names::CONFIG)?)?;
            conf.set(cfg::FLOW_WINDOW, 0, 0)?;
        }
        Self::open(name, s, maps, true)
    }

    /// `handover`: the previous flow-log agent of this process finished
    /// cleanly; else a nonzero window means a predecessor died.
    fn open(name: &str, s: &State, maps: &mut impl Maps, handover: bool) -> Result<Option<Self>> {
        let Some(tick) = Aggregator::tick(&s.model) else {
            return Ok(None);
        };
        let mut conf: Array<_, u64> = Array::try_from(maps.map(map_names::CONFIG)?)?;
        // A restarted agent goes on from the window in force.
        let mut window = conf.get(&cfg::FLOW_WINDOW, 0)? as u32;
        let restarted = window != 0 && !handover;
        if window == 0 {
            window = 1;
            conf.set(cfg::FLOW_WINDOW, 1, 0)?;
        }
        // After a restart: the rejected flows its predecessor was told of
        // are still in the map; what it held in memory (connections the GC
        // had removed) is gone, so the first windows say SKIPDATA.
        let mut rejects: BTreeMap<u32, Vec<FlowRejectKey>> = BTreeMap::new();
        let mut agg = Aggregator::new(name, &s.model, unix_now());
        if restarted {
            let m: HashMap<_, FlowRejectKey, FlowWindow> =
                HashMap::try_from(maps.map(map_names::FL_REJECTS)?)?;
            for k in m.keys().filter_map(|k| k.ok()) {
                // The drop recorder's reserved window is no flow log's.
                if k.window != FL_DROPS_WINDOW && k.window + 1 >= window {
                    rejects.entry(k.window).or_default().push(k);
                }
            }
            agg.skipped();
        }
        let now = unix_now();
        Ok(Some(Self {
            name: name.to_string(),
            root: s.flow_logs.root(name),
            agg,
            tick,
            next: now - now % tick + tick,
            window,
            removed: BTreeMap::new(),
            rejects,
            lost_seen: stats(maps)?.events_lost,
            eni_addrs: eni_addrs(maps).unwrap_or_default(),
        }))
    }

    fn drain(&mut self, drops: &mut Recorder) {
        for k in drops.drain() {
            self.rejects.entry(k.window).or_default().push(k);
        }
    }

    /// Called often (the agent's loop): reads events (through `drops`,
    /// which records them too), and at a tick boundary closes the window.
    pub fn poll(&mut self, maps: &mut impl Maps, drops: &mut Recorder) -> Result<()> {
        self.drain(drops);
        if unix_now() >= self.next {
            self.flush(maps, false, drops)?;
        }
        Ok(())
    }

    /// The GC removes a connection: slots of windows not yet read go into
    /// those windows.
    pub fn removed(&mut self, k: &CtKey, e: &CtEntry) {
        let offset = clock_offset();
        for slot in &e.fl {
            if slot.window >= self.window {
                self.removed.entry(slot.window).or_default().push(from_ct(
                    k,
                    e,
                    slot,
                    offset,
                    &|a| self.agg.is_hyperplane(a),
                    &|i| self.eni_addrs.get(&i).copied(),
                ));
            }
        }
    }

    /// The agent stops: every window in progress is closed and written.
    pub fn finish(&mut self, maps: &mut impl Maps, drops: &mut Recorder) -> Result<()> {
        self.flush(maps, true, drops)
    }

    fn flush(&mut self, maps: &mut impl Maps, all: bool, drops: &mut Recorder) -> Result<()> {
        let w = self.window;
        {
            let mut conf: Array<_, u64> = Array::try_from(maps.map(map_names::CONFIG)?)?;
            conf.set(cfg::FLOW_WINDOW, (w + 1) as u64, 0)?;
        }
        self.window = w + 1;
        // Packets run under RCU and take microseconds: after this no packet
        // writes window `w` any more.
        std::thread::sleep(Duration::from_millis(20));
        self.drain(drops);
        let offset = clock_offset();
        let mut obs = vec![];
        if let Ok(m) = eni_addrs(maps) {
            self.eni_addrs = m;
        }
        {
            let ct: HashMap<_, CtKey, CtEntry> = HashMap::try_from(maps.map(map_names::CT)?)?;
            for (k, e) in ct.iter().filter_map(|r| r.ok()) {
                let slot = &e.fl[(w & 1) as usize];
                if slot.window == w {
                    obs.push(from_ct(
                        &k,
                        &e,
                        slot,
                        offset,
                        &|a| self.agg.is_hyperplane(a),
                        &|i| self.eni_addrs.get(&i).copied(),
                    ));
                }
            }
        }
        let later = self.removed.split_off(&(w + 1));
        for (_, o) in std::mem::replace(&mut self.removed, later) {
            obs.extend(o);
        }
        let mut lost_lookup = false;
        {
            let later = self.rejects.split_off(&(w + 1));
            let mine = std::mem::replace(&mut self.rejects, later);
            let mut m: HashMap<_, FlowRejectKey, FlowWindow> =
                HashMap::try_from(maps.map(map_names::FL_REJECTS)?)?;
            for k in mine.into_values().flatten() {
                match m.get(&k, 0) {
                    Ok(v) => {
                        obs.push(from_reject(&k, &v, offset));
                        drops.settled(&k, &v);
                        let _ = m.remove(&k);
                    }
                    // Evicted (LRU) before it was read: records lost.
                    Err(_) => lost_lookup = true,
                }
            }
        }
        let lost = stats(maps)?.events_lost;
        if lost > self.lost_seen || lost_lookup {
            self.agg.skipped();
        }
        self.lost_seen = lost;
        if let Ok(s) = State::load(&self.name) {
            self.agg.set_model(&s.model);
        }
        for o in &obs {
            self.agg.add(o);
        }
        let now = unix_now();
        let windows = if all {
            self.agg.close(now, true)
        } else {
            self.agg.close(self.next, false)
        };
        self.next = now - now % self.tick + self.tick;
        for win in &windows {
            if let Err(e) = self.write(win) {
                tracing::warn!("flow log {}: {e:#}", win.flow_log.id);
            }
        }
        Ok(())
    }

    fn write(&self, win: &Window) -> Result<()> {
        let fl = &win.flow_log;
        let lines: Vec<String> = win.records.iter().map(|r| r.line(&fl.fields)).collect();
        let (account, region) = match win.records.first() {
            Some(r) => (r.account.clone(), r.region.clone()),
            None => return Ok(()),
        };
        match &fl.destination {
            FlowLogDestination::S3 { .. } => {
                super::writer::write_s3(&self.root, fl, &account, &region, win.end, &lines)?;
            }
            FlowLogDestination::CloudWatchLogs { log_group } => {
                let mut streams: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                for (r, l) in win.records.iter().zip(&lines) {
                    streams
                        .entry(&r.interface.eni_id)
                        .or_default()
                        .push(l.clone());
                }
                for (eni, ls) in streams {
                    let stream = format!("{eni}-{}", fl.traffic_type.stream_suffix());
                    let path = super::writer::cwl_stream(&self.root, log_group, &stream);
                    super::writer::append_cwl(&path, &ls)?;
                }
            }
        }
        let mut text = String::new();
        for (r, l) in win.records.iter().zip(lines) {
            let e = JournalEntry {
                flow_log: fl.id.clone(),
                line: l,
                record: r.clone(),
            };
            text.push_str(&serde_json::to_string(&e)?);
            text.push('\n');
        }
        let path = journal_path(&self.name);
        // The state directory is in RAM (/run): past a bound, the journal
        // starts over (`vpc flows tail` follows it to the new file).
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > JOURNAL_MAX_BYTES) {
            std::fs::rename(&path, path.with_extension("jsonl.1"))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        f.write_all(text.as_bytes())?;
        Ok(())
    }
}

/// `vpc flows tail`: prints records as the agent writes them (from the
/// journal), for one ENI or all, in the flow log's own format, the default
/// one (`default`) or a `${field} ...` format; stops after `count` records
/// if given. `from_start` prints what was written before too. `json`
/// prints each record's [`JournalEntry`] instead, one JSON object a line
/// (`format` must be `None` then).
pub fn tail(
    name: &str,
    eni: Option<&str>,
    format: Option<&str>,
    json: bool,
    from_start: bool,
    count: Option<usize>,
    out: &mut impl Write,
) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    if json && format.is_some() {
        anyhow::bail!("--format shapes text lines: JSON output has every field");
    }
    let fields: Option<Vec<String>> = match format {
        None => None,
        Some("default") => Some(
            crate::model::flowlog::DEFAULT_FIELDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
        Some(f) => Some(
            crate::model::flowlog::parse_log_format(f, "--format").map_err(anyhow::Error::msg)?,
        ),
    };
    let path = journal_path(name);
    // The deployment is up while its store exists.
    let state = state_dir(name).join(crate::store::FILE);
    let mut file = loop {
        match std::fs::File::open(&path) {
            Ok(f) => break f,
            Err(_) if state.exists() => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => anyhow::bail!("deployment {name:?} is not up"),
        }
    };
    if !from_start {
        file.seek(SeekFrom::End(0))?;
    }
    let mut printed = 0usize;
    let mut buf = Vec::new();
    loop {
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        if chunk.is_empty() {
            if !state.exists() {
                return Ok(());
            }
            // Started over (rotated): follow the new file from its start.
            use std::os::unix::fs::MetadataExt;
            let now = std::fs::metadata(&path).map(|m| m.ino()).ok();
            if now.is_some() && now != file.metadata().map(|m| m.ino()).ok() {
                file = std::fs::File::open(&path)?;
                continue;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        buf.extend_from_slice(&chunk);
        // Only whole lines: the agent appends whole windows.
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let Ok(e) = serde_json::from_slice::<JournalEntry>(&line) else {
                continue;
            };
            if eni.is_some_and(|id| id != e.record.interface.eni_id) {
                continue;
            }
            match &fields {
                _ if json => writeln!(out, "{}", serde_json::to_string(&e)?)?,
                None => writeln!(out, "{}", e.line)?,
                Some(f) => writeln!(out, "{}", e.record.line(f))?,
            }
            out.flush()?;
            printed += 1;
            if count.is_some_and(|c| printed >= c) {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a4(s: &str) -> [u8; 16] {
        vpc_common::v4_mapped(s.parse::<std::net::Ipv4Addr>().unwrap().octets())
    }

    fn key(s: &str, sp: u16, d: &str, dp: u16) -> CtKey {
        CtKey {
            saddr: a4(s),
            daddr: a4(d),
            sport: sp.to_be(),
            dport: dp.to_be(),
            proto: 6,
            ..Default::default()
        }
    }

    /// Each kind of entry, as the VPC's interfaces see its packets:
    /// (key, NAT flags, ENI, NAT address and port) -> (src, sport, dst,
    /// dport, pkt-src, pkt-dst).
    #[test]
    fn entries_as_the_vpc_sees_them() {
        type Case<'a> = (
            (&'a str, u16, &'a str, u16),
            (u8, u16, &'a str, u16),
            (&'a str, u16, &'a str, u16, &'a str, &'a str),
        );
        let cases: [Case; 5] = [
            // A function's connection through ENI 1 (10.0.1.4, NAT port 40000), both ways.
            (
                ("198.19.0.10", 5555, "10.0.1.10", 5432),
                (CT_F_SNAT, 1, "10.0.1.4", 40000),
                (
                    "10.0.1.4",
                    40000,
                    "10.0.1.10",
                    5432,
                    "198.19.0.10",
                    "10.0.1.10",
                ),
            ),
            (
                ("10.0.1.10", 5432, "10.0.1.4", 40000),
                (CT_F_DNAT, 1, "198.19.0.10", 5555),
                (
                    "10.0.1.10",
                    5432,
                    "10.0.1.4",
                    40000,
                    "10.0.1.10",
                    "198.19.0.10",
                ),
            ),
            // A host's connection through an internet gateway (public
            // 198.51.100.5; a NAT gateway's Elastic IP alike, whatever its
            // pool): its interface sees its private address both ways.
            (
                ("10.0.2.10", 6000, "203.0.113.7", 443),
                (CT_F_SNAT, 3, "198.51.100.5", 6000),
                (
                    "10.0.2.10",
                    6000,
                    "203.0.113.7",
                    443,
                    "10.0.2.10",
                    "203.0.113.7",
                ),
            ),
            (
                ("203.0.113.7", 443, "198.51.100.5", 6000),
                (CT_F_DNAT, 0, "10.0.2.10", 6000),
                (
                    "203.0.113.7",
                    443,
                    "10.0.2.10",
                    6000,
                    "203.0.113.7",
                    "10.0.2.10",
                ),
            ),
            // No NAT.
            (
                ("10.0.2.4", 7000, "10.0.1.10", 22),
                (0, 0, "0.0.0.0", 0),
                ("10.0.2.4", 7000, "10.0.1.10", 22, "10.0.2.4", "10.0.1.10"),
            ),
        ];
        for ((ks, ksp, kd, kdp), (flags, eni, nat_addr, nat_port), want) in cases {
            let e = CtEntry {
                flags,
                eni,
                nat_addr: a4(nat_addr),
                nat_port: nat_port.to_be(),
                ..Default::default()
            };
            let hp = |a: IpAddr| a.to_string() == "10.0.1.4";
            let o = from_ct(
                &key(ks, ksp, kd, kdp),
                &e,
                &FlowWindow::default(),
                0,
                &hp,
                &|_| None,
            );
            let got = (
                o.src.to_string(),
                o.sport,
                o.dst.to_string(),
                o.dport,
                o.pkt_src.to_string(),
                o.pkt_dst.to_string(),
            );
            let want = (
                want.0.to_string(),
                want.1,
                want.2.to_string(),
                want.3,
                want.4.to_string(),
                want.5.to_string(),
            );
            assert_eq!(got, want, "{ks}:{ksp} -> {kd}:{kdp}");
        }
    }
}
