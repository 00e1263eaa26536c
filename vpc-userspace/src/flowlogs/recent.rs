//! The recent rejected flows, flow log or not: what the console's flows
//! view lists as drops (`/console/api/flows`).
//!
//! While the agent runs it sets `cfg::RECORD_DROPS`: the datapath records
//! every REJECT in `FL_REJECTS` and announces it on `FL_EVENTS` as for a
//! flow log, under the flow-log window in force or, with none,
//! `FL_DROPS_WINDOW`. The agent's [`Recorder`] is the ring buffer's one
//! reader: it keeps every announced key, reads its counts about twice a
//! second, hands the flow-log windows' keys on to the flow-log agent
//! (which takes them out when it writes their window, telling the
//! recorder their last counts) and takes the reserved window's out itself
//! once idle, so they never fill the map. The flows, aggregated by flow
//! and reason, are kept in memory, the last [`MAX_FLOWS`].
//!
//! They live in a process-global ([`RECENT`]): the recorder runs on the
//! agent's loop thread, which owns the maps, and the console's handlers on
//! the runtime's blocking pool of the same process; a mutex held for a
//! copy is all they share, and no handler touches `FL_EVENTS` (one reader
//! only) or takes entries out behind the loop's back.
use std::{
    collections::HashMap,
    sync::{LazyLock, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData, RingBuf};
use vpc_common::{cfg, map_names, FlowRejectKey, FlowWindow, FL_DROPS_WINDOW};

use super::{
    agent::{clock_offset, from_reject, stats},
    Observation,
};
use crate::{datapath::Maps, paths::pin_dir};

/// Rejected flows kept (by flow and reason): past it the one seen last
/// the longest ago goes.
pub const MAX_FLOWS: usize = 1024;

/// How often the recorder reads the counts of the keys it knows.
const COLLECT_EVERY: Duration = Duration::from_millis(500);

/// One rejected flow's counts: what windows already ended added up, and
/// the windows still counting as last read.
#[derive(Default)]
struct Flow {
    first_ns: u64,
    last_ns: u64,
    packets: u64,
    bytes: u64,
    /// (window, its counts as last read).
    live: Vec<(u32, FlowWindow)>,
}

#[derive(Default)]
struct Recent {
    deployment: String,
    /// By `FlowRejectKey` with window 0: the flow and its reason.
    flows: HashMap<FlowRejectKey, Flow>,
}

static RECENT: LazyLock<Mutex<Recent>> = LazyLock::new(Default::default);

fn recent() -> std::sync::MutexGuard<'static, Recent> {
    // A panic elsewhere leaves plain counters behind: still readable.
    RECENT.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recent {
    /// `v`: key `k`'s counts in its window, as read now; `done`: final
    /// (the window ended, or the entry was taken out).
    fn count(&mut self, k: &FlowRejectKey, v: &FlowWindow, done: bool) {
        let id = FlowRejectKey { window: 0, ..*k };
        if !self.flows.contains_key(&id) && self.flows.len() >= MAX_FLOWS {
            let oldest = self.flows.iter().min_by_key(|(_, f)| f.last_ns);
            if let Some(old) = oldest.map(|(k, _)| *k) {
                self.flows.remove(&old);
            }
        }
        let f = self.flows.entry(id).or_default();
        if v.packets > 0 {
            if f.first_ns == 0 || v.first_ns < f.first_ns {
                f.first_ns = v.first_ns;
            }
            f.last_ns = f.last_ns.max(v.last_ns);
        }
        f.live.retain(|(w, _)| *w != k.window);
        if done {
            f.packets += v.packets as u64;
            f.bytes += v.bytes;
        } else {
            f.live.push((k.window, *v));
        }
    }
}

/// A recorded rejected flow: its key (window 0: the flow and its reason)
/// and its counts over every window seen.
pub struct RecentDrop {
    pub reason: u8,
    /// As flow logs see it; `packets`, `bytes`, `first`, `last` summed.
    pub flow: Observation,
}

/// The rejected flows deployment `name`'s agent (this process) recorded,
/// seen last first. None when this process runs no agent of `name`.
pub fn snapshot(name: &str) -> Vec<RecentDrop> {
    let offset = clock_offset();
    let r = recent();
    if r.deployment != name {
        return vec![];
    }
    let mut out: Vec<RecentDrop> = r
        .flows
        .iter()
        .filter_map(|(k, f)| {
            let live = f.live.iter().map(|(_, v)| v);
            let v = FlowWindow {
                packets: 0,
                bytes: f.bytes + live.clone().map(|v| v.bytes).sum::<u64>(),
                first_ns: f.first_ns,
                last_ns: f.last_ns,
                ..Default::default()
            };
            let packets = f.packets + live.map(|v| v.packets as u64).sum::<u64>();
            // Announced, not yet read: nothing to show yet.
            (packets > 0).then(|| {
                let mut flow = from_reject(k, &v, offset);
                flow.packets = packets;
                RecentDrop {
                    reason: k.reason,
                    flow,
                }
            })
        })
        .collect();
    out.sort_by_key(|d| std::cmp::Reverse(d.flow.last));
    out
}

/// The agent loop's side: reads `FL_EVENTS` (its one reader) and the
/// counts of the keys announced, into [`RECENT`].
pub struct Recorder {
    events: RingBuf<MapData>,
    /// `CONFIG`, its own handle: `Drop` clears `RECORD_DROPS` with it.
    config: Array<MapData, u64>,
    /// Keys announced and not yet gone, with their counts as last read.
    live: HashMap<FlowRejectKey, FlowWindow>,
    last_collect: Instant,
    lost_seen: u64,
}

fn pinned(name: &str, map: &str) -> Result<Map> {
    let pin = pin_dir(name).join("maps").join(map);
    Ok(Map::from_map_data(
        MapData::from_pin(&pin).with_context(|| format!("opening {}", pin.display()))?,
    )?)
}

impl Recorder {
    /// Starts recording drops for deployment `name`: the datapath records
    /// every REJECT from now on. What a predecessor left under the reserved
    /// window (a crash: nobody took it out) is taken first.
    pub fn start(name: &str, maps: &mut impl Maps) -> Result<Self> {
        *recent() = Recent {
            deployment: name.to_string(),
            ..Default::default()
        };
        let events = RingBuf::try_from(pinned(name, map_names::FL_EVENTS)?)?;
        let mut config: Array<MapData, u64> = Array::try_from(pinned(name, map_names::CONFIG)?)?;
        if let Err(e) = config.set(cfg::RECORD_DROPS, 1, 0) {
            // A datapath pinned by a version without the switch: rejects
            // are recorded while a flow log exists only.
            tracing::warn!("recording drops without a flow log: {e}");
        }
        let mut r = Self {
            events,
            config,
            live: HashMap::new(),
            last_collect: Instant::now(),
            lost_seen: stats(maps)?.events_lost,
        };
        r.sweep(maps)?;
        Ok(r)
    }

    /// Reads the ring buffer: every key announced is recorded; returns the
    /// flow-log windows' (for the flow-log agent), not the reserved one's.
    pub fn drain(&mut self) -> Vec<FlowRejectKey> {
        let mut logged = vec![];
        while let Some(item) = self.events.next() {
            if item.len() >= std::mem::size_of::<FlowRejectKey>() {
                // SAFETY: the datapath writes whole `FlowRejectKey`s (Pod).
                let k: FlowRejectKey =
                    unsafe { std::ptr::read_unaligned(item.as_ptr() as *const FlowRejectKey) };
                self.live.entry(k).or_default();
                if k.window != FL_DROPS_WINDOW {
                    logged.push(k);
                }
            }
        }
        logged
    }

    /// The flow-log agent read key `k`'s last counts `v` and takes it out.
    pub fn settled(&mut self, k: &FlowRejectKey, v: &FlowWindow) {
        self.live.remove(k);
        recent().count(k, v, true);
    }

    /// Called often (the agent's loop): reads the known keys' counts about
    /// twice a second.
    pub fn poll(&mut self, maps: &mut impl Maps) -> Result<()> {
        if self.last_collect.elapsed() < COLLECT_EVERY {
            return Ok(());
        }
        self.last_collect = Instant::now();
        // Keys whose events were lost (a full ring buffer) are found in
        // the map instead.
        let lost = stats(maps)?.events_lost;
        if lost > self.lost_seen {
            self.lost_seen = lost;
            self.sweep(maps)?;
        }
        self.collect(maps, false)
    }

    /// Every reserved-window key in the map, known from now on.
    fn sweep(&mut self, maps: &mut impl Maps) -> Result<()> {
        let m: BpfHashMap<_, FlowRejectKey, FlowWindow> =
            BpfHashMap::try_from(maps.map(map_names::FL_REJECTS)?)?;
        for k in m.keys().filter_map(|k| k.ok()) {
            if k.window == FL_DROPS_WINDOW {
                self.live.entry(k).or_default();
            }
        }
        Ok(())
    }

    /// Reads every known key. A reserved-window key idle since the last
    /// read (or every one: `all`) is taken out, its counts final (a packet
    /// counted between the read and the removal is the most it loses); a
    /// key gone (its flow log's window written, or evicted) is final at
    /// its last counts.
    fn collect(&mut self, maps: &mut impl Maps, all: bool) -> Result<()> {
        let mut m: BpfHashMap<_, FlowRejectKey, FlowWindow> =
            BpfHashMap::try_from(maps.map(map_names::FL_REJECTS)?)?;
        let mut r = recent();
        self.live.retain(|k, last| match m.get(k, 0) {
            Ok(v) if k.window == FL_DROPS_WINDOW && (all || v == *last) => {
                let _ = m.remove(k);
                r.count(k, &v, true);
                false
            }
            Ok(v) => {
                if v != *last {
                    r.count(k, &v, false);
                    *last = v;
                }
                true
            }
            Err(_) => {
                r.count(k, last, true);
                false
            }
        });
        Ok(())
    }

    /// The agent stops cleanly: rejects are no longer recorded (unless a
    /// flow log's window is in force), and what the reserved window holds
    /// is taken out.
    pub fn finish(&mut self, maps: &mut impl Maps) -> Result<()> {
        let _ = self.config.set(cfg::RECORD_DROPS, 0, 0);
        // Packets run under RCU and take microseconds.
        std::thread::sleep(Duration::from_millis(20));
        self.drain();
        self.sweep(maps)?;
        self.collect(maps, true)
    }
}

impl Drop for Recorder {
    /// However the agent's loop ends: nothing records rejects for a
    /// reader that is gone (a crash leaves it set; the next agent takes
    /// what piled up).
    fn drop(&mut self) {
        let _ = self.config.set(cfg::RECORD_DROPS, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dport: u16, window: u32) -> FlowRejectKey {
        FlowRejectKey {
            saddr: vpc_common::v4_mapped([10, 0, 1, 4]),
            daddr: vpc_common::v4_mapped([10, 0, 1, 10]),
            pkt_saddr: vpc_common::v4_mapped([169, 254, 76, 1]),
            pkt_daddr: vpc_common::v4_mapped([10, 0, 1, 10]),
            sport: 40000u16.to_be(),
            dport: dport.to_be(),
            proto: 6,
            reason: vpc_common::DropReason::SgIngressDenied as u8,
            window,
            ..Default::default()
        }
    }

    fn counts(packets: u32, at: u64) -> FlowWindow {
        FlowWindow {
            packets,
            bytes: packets as u64 * 60,
            first_ns: 1_000,
            last_ns: at,
            ..Default::default()
        }
    }

    /// A flow's windows add up, a live window counts as last read, and the
    /// oldest flow goes past `MAX_FLOWS`.
    #[test]
    fn windows_add_up_and_the_oldest_flow_goes() {
        let mut r = Recent::default();
        r.count(&key(22, 3), &counts(2, 5_000), true);
        r.count(&key(22, FL_DROPS_WINDOW), &counts(1, 6_000), false);
        r.count(&key(22, FL_DROPS_WINDOW), &counts(4, 9_000), false);
        assert_eq!(r.flows.len(), 1);
        let f = &r.flows[&key(22, 0)];
        let live: u32 = f.live.iter().map(|(_, v)| v.packets).sum();
        assert_eq!((f.packets, live, f.last_ns), (2, 4, 9_000));
        r.count(&key(22, FL_DROPS_WINDOW), &counts(5, 9_500), true);
        let f = &r.flows[&key(22, 0)];
        assert_eq!((f.packets, f.bytes, f.live.len()), (7, 420, 0));
        for port in 1..=MAX_FLOWS as u16 {
            r.count(&key(1000 + port, 1), &counts(1, 10_000 + port as u64), true);
        }
        assert_eq!(r.flows.len(), MAX_FLOWS);
        assert!(!r.flows.contains_key(&key(22, 0)), "the oldest went");
    }
}
