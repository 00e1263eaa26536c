//! The cluster store (issue 21): one VPC across several hosts, its shared
//! state in etcd under `/vpc/<cluster>/`:
//! - `hosts/<host>`: a [`Member`], under the host's lease (kept alive by
//!   its agent, gone when the agent leaves or stops renewing);
//! - `desired/...`: the desired state, one key per element ([`layout`]),
//!   and `desired/rev`, whose mod revision is the desired state's revision
//!   that writers compare in their transaction;
//! - `slices/<i>`, `cooling/<i>`: NAT port slices ([`Cluster::slices`]);
//! - `lock/...`, `lock-holder`: the write lock (etcd's lock service).
//!
//! A blocking facade: the agent's loop and the CLI are synchronous. Each
//! handle owns a runtime with one worker thread, which keeps the leases
//! alive and runs the watch; the methods block on it (do not call them
//! from inside another tokio runtime).
//!
//! etcd's limits: a request is at most `--max-request-bytes` (1.5 MiB by
//! default) and a transaction at most `--max-txn-ops` operations (128). A
//! write of the desired state puts only the keys that changed, one
//! transaction each, so what bounds it is the largest change at once (a
//! first write of a large model, a batch of functions). The etcd of the
//! tests and of `vpc cluster simulate` is started with both raised
//! (`--max-txn-ops 20000 --max-request-bytes 33554432`: 10,000 functions
//! of a few hundred bytes in one write); an etcd with the defaults refuses a
//! larger change with an error that names the flags. Reads page through
//! the keys ([`PAGE`] at a time, at one revision), so the desired state as
//! a whole may exceed both limits and the 4 MiB of a gRPC message.
use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    net::Ipv4Addr,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{anyhow, bail, Context, Result};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue,
    LockOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use serde::{Deserialize, Serialize};
use tokio::{runtime::Runtime, task::JoinHandle};

pub mod layout;
pub mod local;
pub mod simulate;
mod slices;
pub use slices::share;

/// How a host reaches and names itself in the cluster.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// etcd's client URLs (`http://10.0.0.1:2379`).
    pub endpoints: Vec<String>,
    pub cluster: String,
    pub host: String,
    /// The address other hosts reach this one on (the overlay's outer IP).
    pub underlay: Ipv4Addr,
    /// The agent's API endpoint, for the other hosts.
    pub api_addr: Option<String>,
    /// The membership lease: a host that stops renewing it is gone after this.
    pub lease_ttl_s: i64,
}

/// A live host of the cluster (`hosts/<host>`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Member {
    pub host: String,
    pub underlay: Ipv4Addr,
    pub api_addr: Option<String>,
    pub joined_unix_ms: u64,
}

/// What [`Cluster::wait_change`] saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The desired state's revision as the watch last saw it.
    pub desired_rev: i64,
    /// It moved past the revision the caller gave.
    pub desired: bool,
    /// A member joined or left since the previous call.
    pub members: bool,
}

/// What this handle's watch received (the desired state and the members).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    pub events: u64,
    /// Keys and values of those events.
    pub bytes: u64,
    pub desired_rev: i64,
}

/// What [`Cluster::usage`] counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub keys: u64,
    pub bytes: u64,
    pub etcd_db_bytes: u64,
}

/// NAT port slices: the ephemeral range cut into this many.
pub const SLICES: u32 = 16;
/// Keys a read of the desired state fetches per request.
pub const PAGE: i64 = 2000;
/// How long [`Cluster::connect`] waits for etcd's first answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Any other request (a lock waits for [`LOCK_TIMEOUT`] instead).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// The lease of a lock: a holder that dies releases it after this.
const LOCK_TTL_S: i64 = 10;

pub struct Cluster {
    inner: Arc<Inner>,
    joined: Option<Joined>,
    /// Slices this host allocates from (the last [`Cluster::slices`]).
    active: BTreeSet<u32>,
    /// Members seen by the last [`Cluster::wait_change`].
    members_seen: AtomicU64,
    /// The desired state last read or written, with its revision: a
    /// writer diffs against it without reading every key again.
    cache: Mutex<Option<(i64, layout::Layout)>>,
}

struct Inner {
    rt: Runtime,
    client: Client,
    s: Settings,
    prefix: String,
    seen: Arc<Seen>,
}

struct Joined {
    lease: i64,
    keeper: JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

/// The watch's view, shared with the waiting callers.
#[derive(Default)]
struct Seen {
    state: Mutex<SeenState>,
    changed: Condvar,
}

#[derive(Clone, Copy, Default)]
struct SeenState {
    stats: WatchStats,
    members_gen: u64,
}

/// The cluster-wide write lock, released on drop.
pub struct ClusterLock {
    inner: Arc<Inner>,
    lease: i64,
    keeper: JoinHandle<()>,
}

impl Drop for ClusterLock {
    fn drop(&mut self) {
        self.keeper.abort();
        // The lock's key and the holder's are under the lease.
        let mut c = self.inner.client.clone();
        let lease = self.lease;
        let _ = self.inner.call("releasing the cluster lock", async move {
            c.lease_revoke(lease).await
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Not a leave: the lease runs out as after a crash, so the slices
        // stay reserved for this host's connections until they cool.
        if let Some(j) = self.joined.take() {
            j.keeper.abort();
        }
    }
}

impl Inner {
    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Runs `f` on the runtime, bounded by [`REQUEST_TIMEOUT`].
    fn call<T, F>(&self, what: &str, f: F) -> Result<T>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call_for(what, REQUEST_TIMEOUT, f)
    }

    fn call_for<T, F>(&self, what: &str, t: Duration, f: F) -> Result<T>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let eps = self.s.endpoints.join(", ");
        // The timer is made inside the runtime (a `Sleep` needs its driver).
        match self.rt.block_on(async { tokio::time::timeout(t, f).await }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(anyhow!("{what}: etcd at {eps}: {e}")),
            Err(_) => Err(anyhow!("{what}: etcd at {eps} did not answer within {t:?}")),
        }
    }

    fn get_prefix(&self, what: &str, rest: &str) -> Result<Vec<KeyValue>> {
        let mut c = self.client.clone();
        let key = self.key(rest);
        let mut r = self.call(what, async move {
            c.get(key, Some(GetOptions::new().with_prefix())).await
        })?;
        Ok(r.take_kvs())
    }

    /// Grants a lease of `ttl` seconds and keeps it alive in the
    /// background; `lost` is set when etcd says it has expired.
    fn lease(&self, ttl: i64) -> Result<(i64, JoinHandle<()>, Arc<AtomicBool>)> {
        let mut c = self.client.clone();
        let id = self
            .call(
                "granting a lease",
                async move { c.lease_grant(ttl, None).await },
            )?
            .id();
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = self
            .rt
            .spawn(keep_alive(self.client.clone(), id, ttl, lost.clone()));
        Ok((id, keeper, lost))
    }
}

impl Cluster {
    /// Connects (a clear error naming the endpoints and the cause when etcd
    /// cannot be reached, within ~3 s) and starts watching the desired
    /// state and the members.
    pub fn connect(s: &Settings) -> Result<Cluster> {
        for (what, v) in [("cluster", &s.cluster), ("host", &s.host)] {
            if v.is_empty() || v.contains('/') {
                bail!("cluster: the {what} name {v:?} must be non-empty without '/'");
            }
        }
        if s.lease_ttl_s < 1 {
            bail!("cluster: lease_ttl_s must be at least 1 s");
        }
        let eps = s.endpoints.join(", ");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vpc-cluster")
            .enable_all()
            .build()?;
        let prefix = format!("/vpc/{}/", s.cluster);
        let rev_key = format!("{prefix}desired/rev");
        let endpoints = s.endpoints.clone();
        let first = rt.block_on(async {
            tokio::time::timeout(CONNECT_TIMEOUT, async move {
                let opts = ConnectOptions::new()
                    .with_connect_timeout(CONNECT_TIMEOUT)
                    .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
                let mut c = Client::connect(&endpoints, Some(opts)).await?;
                let r = c.get(rev_key, None).await?;
                Ok::<_, etcd_client::Error>((c, r))
            })
            .await
        });
        let (client, r) = match first {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => bail!("cluster: cannot reach etcd at {eps}: {e}"),
            Err(_) => {
                bail!("cluster: cannot reach etcd at {eps}: no answer within {CONNECT_TIMEOUT:?}")
            }
        };
        let seen = Arc::new(Seen::default());
        seen.state.lock().unwrap().stats.desired_rev =
            r.kvs().first().map(|kv| kv.mod_revision()).unwrap_or(0);
        let from = r.header().map(|h| h.revision()).unwrap_or(0) + 1;
        rt.spawn(watch(client.clone(), prefix.clone(), seen.clone(), from));
        Ok(Cluster {
            inner: Arc::new(Inner {
                rt,
                client,
                s: s.clone(),
                prefix,
                seen,
            }),
            joined: None,
            active: BTreeSet::new(),
            members_seen: AtomicU64::new(0),
            cache: Mutex::new(None),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.s
    }

    /// Joins as the settings' host: a lease of `lease_ttl_s`, `hosts/<host>`
    /// = [`Member`] under it, kept alive in the background until
    /// [`Cluster::leave`] or the handle drops. The agent holds the
    /// membership; a CLI process only connects. Refused while a live member
    /// of that name holds another lease (another agent, or this host's
    /// previous one whose lease has not run out yet).
    pub fn join(&mut self) -> Result<()> {
        if self
            .joined
            .as_ref()
            .is_some_and(|j| !j.lost.load(Ordering::Relaxed))
        {
            return Ok(());
        }
        if let Some(j) = self.joined.take() {
            j.keeper.abort();
        }
        let inner = self.inner.clone();
        let s = &inner.s;
        let (lease, keeper, lost) = inner.lease(s.lease_ttl_s)?;
        let member = Member {
            host: s.host.clone(),
            underlay: s.underlay,
            api_addr: s.api_addr.clone(),
            joined_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
        };
        let key = inner.key(&format!("hosts/{}", s.host));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                serde_json::to_vec(&member)?,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut c = inner.client.clone();
        let r = inner.call("joining", async move { c.txn(txn).await });
        let refused = match r {
            Ok(r) if r.succeeded() => None,
            Ok(r) => Some(Ok(first_kv(&r).map(|kv| kv.lease()).unwrap_or(0))),
            Err(e) => Some(Err(e)),
        };
        if let Some(other) = refused {
            keeper.abort();
            let mut c = inner.client.clone();
            let _ = inner.call("revoking", async move { c.lease_revoke(lease).await });
            let other = other?;
            let mut c = inner.client.clone();
            let left = inner
                .call("reading a lease", async move {
                    c.lease_time_to_live(other, None).await
                })
                .map(|r| r.ttl())
                .unwrap_or(-1);
            bail!(
                "cluster {}: host {} is already a member under another lease ({other:x}, \
                 {left} s left): another agent runs as {}, or its lease has not run out yet",
                s.cluster,
                s.host,
                s.host
            );
        }
        self.joined = Some(Joined {
            lease,
            keeper,
            lost,
        });
        Ok(())
    }

    /// Leaves: revokes the lease, so the membership goes at once (and the
    /// slices, still taken, cool under the leader).
    pub fn leave(&mut self) -> Result<()> {
        self.active.clear();
        let Some(j) = self.joined.take() else {
            return Ok(());
        };
        j.keeper.abort();
        let mut c = self.inner.client.clone();
        self.inner
            .call("leaving", async move { c.lease_revoke(j.lease).await })?;
        Ok(())
    }

    /// Content-addressed bytes (a function's package) under `blobs/<key>`:
    /// written once, never changed, so no transaction.
    pub fn put_blob(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let mut c = self.inner.client.clone();
        let (k, v) = (self.inner.key(&format!("blobs/{key}")), bytes.to_vec());
        self.inner
            .call("writing a blob", async move { c.put(k, v, None).await })?;
        Ok(())
    }

    pub fn get_blob(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let mut c = self.inner.client.clone();
        let k = self.inner.key(&format!("blobs/{key}"));
        let mut r = self
            .inner
            .call("reading a blob", async move { c.get(k, None).await })?;
        Ok(r.take_kvs().pop().map(|kv| kv.into_key_value().1))
    }

    /// The live members, sorted by host.
    pub fn members(&self) -> Result<Vec<Member>> {
        let kvs = self.inner.get_prefix("reading the members", "hosts/")?;
        members_of(&kvs)
    }

    /// The desired state and its revision (`None`: nothing written yet).
    pub fn desired(&self) -> Result<Option<(serde_json::Value, i64)>> {
        let Some((rev, kvs)) = self.read_desired()? else {
            return Ok(None);
        };
        let (v, l) = layout::assemble(kvs)?;
        *self.cache.lock().unwrap() = Some((rev, l));
        Ok(Some((v, rev)))
    }

    /// Every key of the desired state at one revision and the desired
    /// revision (`None`: never written).
    fn read_desired(&self) -> Result<Option<(i64, layout::Kvs)>> {
        let mut rev = None;
        let mut kvs = layout::Kvs::new();
        for kv in self.read_prefix("reading the desired state", "desired/")? {
            let (k, v) = (kv.key_str()?.to_string(), kv.value().to_vec());
            match k.strip_prefix(&self.inner.key("desired/")) {
                Some("rev") => rev = Some(kv.mod_revision()),
                Some(k) => {
                    kvs.insert(k.to_string(), v);
                }
                None => {}
            }
        }
        Ok(rev.map(|r| (r, kvs)))
    }

    /// Every key under `rest` at one revision, [`PAGE`] keys a request.
    fn read_prefix(&self, what: &str, rest: &str) -> Result<Vec<KeyValue>> {
        let base = self.inner.key(rest);
        let end = prefix_end(&base);
        let (mut from, mut at, mut out) = (base.into_bytes(), 0, vec![]);
        loop {
            let mut o = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if at > 0 {
                o = o.with_revision(at);
            }
            let mut c = self.inner.client.clone();
            let key = from.clone();
            let mut r = self
                .inner
                .call(what, async move { c.get(key, Some(o)).await })?;
            if at == 0 {
                at = r.header().map(|h| h.revision()).unwrap_or(0);
            }
            let more = r.more();
            let kvs = r.take_kvs();
            if let Some(last) = kvs.last() {
                from = last.key().to_vec();
                from.push(0);
            }
            out.extend(kvs);
            if !more {
                return Ok(out);
            }
        }
    }

    /// What the cluster holds in etcd: its keys, their bytes (keys and
    /// values), and the size of etcd's database (all clusters, with history).
    pub fn usage(&self) -> Result<Usage> {
        let kvs = self.read_prefix("reading the cluster's keys", "")?;
        let mut c = self.inner.client.clone();
        let db = self
            .inner
            .call("reading etcd's status", async move { c.status().await })?;
        Ok(Usage {
            keys: kvs.len() as u64,
            bytes: kvs
                .iter()
                .map(|kv| (kv.key().len() + kv.value().len()) as u64)
                .sum(),
            etcd_db_bytes: db.db_size().max(0) as u64,
        })
    }

    /// Writes the desired state if its revision is still `expected` (0:
    /// nothing written yet), in one transaction that puts only the keys
    /// that changed: `Ok(Ok(new_rev))`, or `Ok(Err(current_rev))` when
    /// another writer came first.
    pub fn put_desired(
        &self,
        v: &serde_json::Value,
        expected: i64,
    ) -> Result<std::result::Result<i64, i64>> {
        let cached = self.cache.lock().unwrap().take();
        let prev = match cached {
            Some((rev, l)) if rev == expected => l,
            _ => match self.read_desired()? {
                None if expected == 0 => layout::Layout::default(),
                None => return Ok(Err(0)),
                Some((rev, _)) if rev != expected => return Ok(Err(rev)),
                Some((_, kvs)) => layout::assemble(kvs)?.1,
            },
        };
        let new = layout::split(v, &prev)?;
        let (puts, deletes) = layout::diff(&prev.kvs, &new.kvs);
        let base = self.inner.key("desired/");
        let rev_key = format!("{base}rev");
        let bytes: usize = puts
            .iter()
            .map(|(k, v)| base.len() + k.len() + v.len())
            .sum();
        let n = puts.len() + deletes.len() + 1;
        let mut ops: Vec<TxnOp> = puts
            .into_iter()
            .map(|(k, v)| TxnOp::put(format!("{base}{k}"), v.clone(), None))
            .collect();
        ops.extend(
            deletes
                .iter()
                .map(|k| TxnOp::delete(format!("{base}{k}"), None)),
        );
        let writer = serde_json::json!({ "host": self.inner.s.host });
        ops.push(TxnOp::put(rev_key.clone(), writer.to_string(), None));
        let txn = Txn::new()
            .when([Compare::mod_revision(
                rev_key.clone(),
                CompareOp::Equal,
                expected,
            )])
            .and_then(ops)
            .or_else([TxnOp::get(rev_key, None)]);
        let mut c = self.inner.client.clone();
        let r = self
            .inner
            .call("writing the desired state", async move { c.txn(txn).await })
            .with_context(|| {
                format!(
                    "a change of {n} keys, {bytes} bytes: etcd refuses more than its \
                     --max-txn-ops (128 by default) or --max-request-bytes (1.5 MiB)"
                )
            })?;
        if !r.succeeded() {
            return Ok(Err(first_kv(&r).map(|kv| kv.mod_revision()).unwrap_or(0)));
        }
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        *self.cache.lock().unwrap() = Some((rev, new));
        Ok(Ok(rev))
    }

    /// The cluster-wide write lock, [`LOCK_TIMEOUT`] at most.
    pub fn lock(&self) -> Result<ClusterLock> {
        self.lock_for(LOCK_TIMEOUT)
    }

    /// The write lock (etcd's lock service, under a short lease of its own
    /// kept alive while held, so a holder that dies releases it within
    /// [`LOCK_TTL_S`]), held until the guard drops; after `timeout` an
    /// error naming the holder.
    pub fn lock_for(&self, timeout: Duration) -> Result<ClusterLock> {
        let inner = &self.inner;
        let (lease, keeper, _) = inner.lease(LOCK_TTL_S)?;
        let mut c = inner.client.clone();
        let name = inner.key("lock");
        let got = inner.call_for("taking the cluster lock", timeout, async move {
            c.lock(name, Some(LockOptions::new().with_lease(lease)))
                .await
        });
        if let Err(e) = got {
            keeper.abort();
            let mut c = inner.client.clone();
            let _ = inner.call("revoking", async move { c.lease_revoke(lease).await });
            let holder = inner
                .get_prefix("reading the lock's holder", "lock-holder")
                .ok()
                .and_then(|kvs| {
                    kvs.first()
                        .map(|kv| kv.value_str().unwrap_or("?").to_string())
                })
                .unwrap_or_else(|| "an unknown holder".into());
            return Err(e.context(format!(
                "cluster {}: the write lock is held by {holder}",
                inner.s.cluster
            )));
        }
        let lock = ClusterLock {
            inner: inner.clone(),
            lease,
            keeper,
        };
        let holder = format!("host {} (pid {})", inner.s.host, std::process::id());
        let mut c = inner.client.clone();
        let key = inner.key("lock-holder");
        inner.call("naming the lock's holder", async move {
            c.put(key, holder, Some(PutOptions::new().with_lease(lease)))
                .await
        })?;
        Ok(lock)
    }

    /// Blocks up to `timeout` for a change of the desired state past `rev`
    /// or of the members (since the previous call); what changed.
    pub fn wait_change(&self, rev: i64, timeout: std::time::Duration) -> Result<Change> {
        let seen = &self.inner.seen;
        let last = self.members_seen.load(Ordering::Relaxed);
        let st = seen.state.lock().unwrap();
        let (st, _) = seen
            .changed
            .wait_timeout_while(st, timeout, |st| {
                st.stats.desired_rev <= rev && st.members_gen == last
            })
            .unwrap();
        self.members_seen.store(st.members_gen, Ordering::Relaxed);
        Ok(Change {
            desired_rev: st.stats.desired_rev,
            desired: st.stats.desired_rev > rev,
            members: st.members_gen != last,
        })
    }

    /// What this handle's watch has received so far.
    pub fn watch_stats(&self) -> WatchStats {
        self.inner.seen.state.lock().unwrap().stats
    }

    /// Deletes every key of this cluster (`vpc cluster simulate`'s own,
    /// after its run).
    pub fn delete_cluster(&self) -> Result<()> {
        let mut c = self.inner.client.clone();
        let key = self.inner.prefix.clone();
        self.inner.call("deleting the cluster's keys", async move {
            c.delete(key, Some(DeleteOptions::new().with_prefix()))
                .await
        })?;
        *self.cache.lock().unwrap() = None;
        Ok(())
    }

    /// The first live member by name (it cools the slices of gone members).
    pub fn is_leader(&self) -> Result<bool> {
        if self.joined.is_none() {
            return Ok(false);
        }
        let members = self.members()?;
        Ok(members.first().is_some_and(|m| m.host == self.inner.s.host))
    }
}

fn members_of(kvs: &[KeyValue]) -> Result<Vec<Member>> {
    let mut ms = kvs
        .iter()
        .map(|kv| {
            serde_json::from_slice::<Member>(kv.value())
                .with_context(|| format!("{}: not a member", kv.key_str().unwrap_or("?")))
        })
        .collect::<Result<Vec<_>>>()?;
    ms.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(ms)
}

fn first_kv(r: &etcd_client::TxnResponse) -> Option<KeyValue> {
    r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(mut g) => g.take_kvs().into_iter().next(),
        _ => None,
    })
}

/// The first key after every key that starts with `p`.
fn prefix_end(p: &str) -> Vec<u8> {
    let mut end = p.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Renews `lease` every third of its TTL; retries a broken stream; sets
/// `lost` when etcd says the lease is gone.
async fn keep_alive(mut c: Client, lease: i64, ttl: i64, lost: Arc<AtomicBool>) {
    let every = Duration::from_millis((ttl as u64 * 1000 / 3).max(300));
    loop {
        match c.lease_keep_alive(lease).await {
            Ok((mut keeper, mut stream)) => loop {
                tokio::time::sleep(every).await;
                if keeper.keep_alive().await.is_err() {
                    break;
                }
                match stream.message().await {
                    Ok(Some(r)) if r.ttl() > 0 => {}
                    Ok(Some(_)) => {
                        lost.store(true, Ordering::Relaxed);
                        return;
                    }
                    _ => break,
                }
            },
            Err(etcd_client::Error::LeaseKeepAliveError(_)) => {
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Watches `desired/` and `hosts/` from revision `from`, into `seen`;
/// resumes after the last event when the stream breaks.
async fn watch(mut c: Client, prefix: String, seen: Arc<Seen>, mut from: i64) {
    let rev_key = format!("{prefix}desired/rev");
    let hosts = format!("{prefix}hosts/");
    loop {
        let start = from;
        let o = || Some(WatchOptions::new().with_prefix().with_start_revision(start));
        let r: Result<(), etcd_client::Error> = async {
            let mut ws = c.watch(format!("{prefix}desired/"), o()).await?;
            ws.watch(hosts.clone(), o()).await?;
            while let Some(resp) = ws.message().await? {
                if resp.canceled() {
                    // Compacted past `from`: resume at what is left, and
                    // wake the callers to read everything again.
                    from = from.max(resp.compact_revision());
                    let mut st = seen.state.lock().unwrap();
                    st.members_gen += 1;
                    seen.changed.notify_all();
                    break;
                }
                let mut st = seen.state.lock().unwrap();
                for ev in resp.events() {
                    let Some(kv) = ev.kv() else { continue };
                    st.stats.events += 1;
                    st.stats.bytes += (kv.key().len() + kv.value().len()) as u64;
                    if kv.key().starts_with(hosts.as_bytes()) {
                        st.members_gen += 1;
                    } else if kv.key() == rev_key.as_bytes() && ev.event_type() == EventType::Put {
                        st.stats.desired_rev = st.stats.desired_rev.max(kv.mod_revision());
                    }
                    from = from.max(kv.mod_revision() + 1);
                }
                seen.changed.notify_all();
            }
            Ok(())
        }
        .await;
        let _ = r;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end("/a/"), b"/a0");
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80");
    }
}
