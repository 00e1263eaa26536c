//! NAT port slices in etcd (`slices/<i>`, `cooling/<i>`): each live host's
//! share, claimed, drained and given back; a gone host's cooled.
use super::*;

/// The holder of `slices/<i>`. Not under its lease: a gone member's slices
/// stay taken until the leader moves them to `cooling/` (atomically), so
/// they are never free while its connections may still use them.
#[derive(Serialize, Deserialize)]
struct SliceHolder {
    host: String,
    lease: i64,
}

impl Cluster {
    /// Hosts, slices and cooling slices at one revision.
    fn slice_view(&self) -> Result<SliceView> {
        let inner = &self.inner;
        let get = |rest: &str| TxnOp::get(inner.key(rest), Some(GetOptions::new().with_prefix()));
        let txn = Txn::new().and_then([get("hosts/"), get("slices/"), get("cooling/")]);
        let mut c = inner.client.clone();
        let r = inner.call("reading the slices", async move { c.txn(txn).await })?;
        let mut ranges = r.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(mut g) => g.take_kvs(),
            _ => vec![],
        });
        let (hosts, slices, cooling) = (
            ranges.next().unwrap_or_default(),
            ranges.next().unwrap_or_default(),
            ranges.next().unwrap_or_default(),
        );
        let slice_of = |kv: &KeyValue| {
            kv.key_str()
                .ok()
                .and_then(|k| k.rsplit('/').next())
                .and_then(|i| i.parse::<u32>().ok())
        };
        let mut v = SliceView {
            members: members_of(&hosts)?.into_iter().map(|m| m.host).collect(),
            live_leases: hosts.iter().map(|kv| kv.lease()).collect(),
            ..Default::default()
        };
        for kv in &slices {
            if let (Some(i), Ok(h)) = (
                slice_of(kv),
                serde_json::from_slice::<SliceHolder>(kv.value()),
            ) {
                v.taken.insert(i, (h, kv.mod_revision()));
            }
        }
        for kv in &cooling {
            if let Some(i) = slice_of(kv) {
                v.cooling.insert(
                    i,
                    (kv.value_str().unwrap_or("").to_string(), kv.mod_revision()),
                );
            }
        }
        Ok(v)
    }

    /// NAT port slices: one rebalancing step, called by the joined agent
    /// each tick. The target share is the [`SLICES`] split evenly over the
    /// live members (the first `16 % n` by name one more). Below it, claims
    /// free slices (create-if-absent in a transaction), its own first (held
    /// under a lease of its previous agent, or cooling under its name), then
    /// the lowest free ones, never one cooling for another host. Above it,
    /// stops using the extra ones at once (they leave the returned list) and
    /// deletes their keys once `in_use(slice)` is false (their connections
    /// ended). Returns the slices this host may allocate from, sorted.
    pub fn slices(&mut self, in_use: &dyn Fn(u32) -> bool) -> Result<Vec<u32>> {
        let Some(j) = &self.joined else {
            bail!("cluster: slices need the membership (join first)");
        };
        if j.lost.load(Ordering::Relaxed) {
            bail!("cluster: this host's lease expired; join again");
        }
        let lease = j.lease;
        let me = self.inner.s.host.clone();
        let v = self.slice_view()?;
        let Some(share) = share(&v.members, &me) else {
            bail!("cluster: {me} is not among the live members");
        };
        let held: BTreeSet<u32> = v
            .taken
            .iter()
            .filter(|(_, (h, _))| h.lease == lease)
            .map(|(i, _)| *i)
            .collect();
        // Keep the slices in use, then the ones draining, lowest first.
        let mut active: BTreeSet<u32> = self.active.intersection(&held).copied().collect();
        for i in &held {
            if active.len() < share {
                active.insert(*i);
            }
        }
        while active.len() > share {
            let last = *active.iter().next_back().unwrap();
            active.remove(&last);
        }
        let holder = serde_json::to_vec(&SliceHolder {
            host: me.clone(),
            lease,
        })?;
        for i in held.difference(&active) {
            if !in_use(*i) {
                let key = self.inner.key(&format!("slices/{i:02}"));
                let txn = Txn::new()
                    .when([Compare::value(
                        key.clone(),
                        CompareOp::Equal,
                        holder.clone(),
                    )])
                    .and_then([TxnOp::delete(key, None)]);
                self.txn("releasing a slice", txn)?;
            }
        }
        for (i, cmp, extra) in v.candidates(&me) {
            if active.len() >= share {
                break;
            }
            let key = self.inner.key(&format!("slices/{i:02}"));
            let cool = self.inner.key(&format!("cooling/{i:02}"));
            let mut ops = vec![TxnOp::put(key.clone(), holder.clone(), None)];
            let when = match cmp {
                Claim::Free => vec![
                    Compare::create_revision(key, CompareOp::Equal, 0),
                    Compare::create_revision(cool, CompareOp::Equal, 0),
                ],
                Claim::Previous => vec![Compare::mod_revision(key, CompareOp::Equal, extra)],
                Claim::Cooling => {
                    ops.push(TxnOp::delete(cool.clone(), None));
                    vec![
                        Compare::create_revision(key, CompareOp::Equal, 0),
                        Compare::mod_revision(cool, CompareOp::Equal, extra),
                    ]
                }
            };
            if self.txn("claiming a slice", Txn::new().when(when).and_then(ops))? {
                active.insert(i);
            }
        }
        self.active = active.clone();
        Ok(active.into_iter().collect())
    }

    fn txn(&self, what: &str, txn: Txn) -> Result<bool> {
        let mut c = self.inner.client.clone();
        Ok(self
            .inner
            .call(what, async move { c.txn(txn).await })?
            .succeeded())
    }

    /// Moves the slices of members whose lease expired to `cooling/<i>`,
    /// under a lease of `cool_s` seconds (the connections' timeout at the
    /// peers): nobody else claims them before. Meant for the leader
    /// ([`Cluster::is_leader`]); safe from anyone (each move is a
    /// transaction on the slice's revision).
    pub fn cool_slices_of_gone_members(&self, cool_s: i64) -> Result<()> {
        let v = self.slice_view()?;
        let gone: Vec<(u32, &SliceHolder, i64)> = v
            .taken
            .iter()
            .filter(|(_, (h, _))| !v.live_leases.contains(&h.lease))
            .map(|(i, (h, rev))| (*i, h, *rev))
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let mut c = self.inner.client.clone();
        let cool_lease = self
            .inner
            .call("granting a lease", async move {
                c.lease_grant(cool_s, None).await
            })?
            .id();
        for (i, h, rev) in gone {
            let key = self.inner.key(&format!("slices/{i:02}"));
            let cool = self.inner.key(&format!("cooling/{i:02}"));
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, rev)])
                .and_then([
                    TxnOp::delete(key, None),
                    TxnOp::put(
                        cool,
                        h.host.clone(),
                        Some(PutOptions::new().with_lease(cool_lease)),
                    ),
                ]);
            self.txn("cooling a slice", txn)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct SliceView {
    members: Vec<String>,
    live_leases: BTreeSet<i64>,
    /// Slice: holder, mod revision.
    taken: BTreeMap<u32, (SliceHolder, i64)>,
    /// Slice: whose it was, mod revision.
    cooling: BTreeMap<u32, (String, i64)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Claim {
    /// Not taken, not cooling.
    Free,
    /// Taken by this host under a lease that expired (its previous agent).
    Previous,
    /// Cooling under this host's name.
    Cooling,
}

impl SliceView {
    /// The slices `me` may claim, its own first; with the revision a
    /// claim compares.
    fn candidates(&self, me: &str) -> Vec<(u32, Claim, i64)> {
        let previous = self.taken.iter().filter_map(|(i, (h, rev))| {
            (h.host == me && !self.live_leases.contains(&h.lease)).then_some((
                *i,
                Claim::Previous,
                *rev,
            ))
        });
        let cooling = self.cooling.iter().filter_map(|(i, (h, rev))| {
            (h == me && !self.taken.contains_key(i)).then_some((*i, Claim::Cooling, *rev))
        });
        let free = (0..SLICES)
            .filter(|i| !self.taken.contains_key(i) && !self.cooling.contains_key(i))
            .map(|i| (i, Claim::Free, 0));
        previous.chain(cooling).chain(free).collect()
    }
}

/// `host`'s share of the [`SLICES`] among `members` (sorted by name): an
/// even split, the first `16 % n` one more; `None` when not a member.
pub fn share(members: &[String], host: &str) -> Option<usize> {
    let n = members.len();
    let i = members.iter().position(|m| m == host)?;
    let s = SLICES as usize;
    Some(s / n + usize::from(i < s % n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_sixteen_evenly_the_first_by_name_one_more() {
        let hosts = |n: usize| (0..n).map(|i| format!("h{i:02}")).collect::<Vec<_>>();
        for n in 1..=20 {
            let h = hosts(n);
            let shares: Vec<usize> = h.iter().map(|m| share(&h, m).unwrap()).collect();
            assert_eq!(shares.iter().sum::<usize>(), SLICES as usize, "{n}");
            assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{n}: {shares:?}");
            assert!(shares[0] - shares[n - 1] <= 1, "{n}: {shares:?}");
        }
        assert_eq!(share(&hosts(3), "h00"), Some(6));
        assert_eq!(share(&hosts(3), "h02"), Some(5));
        assert_eq!(share(&hosts(3), "other"), None);
        // More members than slices: the last ones get none.
        assert_eq!(share(&hosts(20), "h19"), Some(0));
    }

    #[test]
    fn own_slices_are_claimed_first_others_cooling_never() {
        let mut v = SliceView {
            members: vec!["a".into(), "b".into()],
            live_leases: [1, 2].into(),
            ..Default::default()
        };
        let holder = |host: &str, lease| SliceHolder {
            host: host.into(),
            lease,
        };
        v.taken.insert(0, (holder("b", 2), 10));
        v.taken.insert(5, (holder("a", 99), 11));
        v.cooling.insert(3, ("a".into(), 12));
        v.cooling.insert(1, ("c".into(), 13));
        let c = v.candidates("a");
        assert_eq!(c[0], (5, Claim::Previous, 11));
        assert_eq!(c[1], (3, Claim::Cooling, 12));
        let free: Vec<u32> = c[2..].iter().map(|(i, _, _)| *i).collect();
        assert_eq!(free, [2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    }
}
