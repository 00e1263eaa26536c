//! A cluster on this machine, for `vpc cluster demo`, `vpc bench
//! --cluster` and the tests: an etcd of its own on loopback (Debian's
//! `/usr/bin/etcd`, `etcd-server`, which `cargo xtask` installs) with free
//! ports and a data directory of its own on tmpfs, and hosts brought up
//! with `vpc up` as users do, joined by an underlay bridge; all of it gone
//! (hosts, underlay, etcd and its data) when dropped.
use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

pub const ETCD: &str = "/usr/bin/etcd";
/// The limits the module documents: a write of thousands of keys in one
/// transaction (etcd's defaults: 128 operations, 1.5 MiB).
pub const MAX_TXN_OPS: u32 = 20_000;
pub const MAX_REQUEST_BYTES: u32 = 32 << 20;

pub struct LocalEtcd {
    child: Child,
    dir: PathBuf,
    url: String,
    port: u16,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalEtcd {
    /// Started, and answering `/health`.
    pub fn start() -> Result<Self> {
        if !std::path::Path::new(ETCD).exists() {
            bail!("{ETCD} missing: `cargo xtask provision` installs etcd-server");
        }
        let (port, peer) = (free_port()?, free_port()?);
        // tmpfs: etcd's fsyncs cost nothing there.
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("vpc-etcd-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("etcd.log"))?;
        let url = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let child = Command::new(ETCD)
            .args(["--name", "local", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("local={peer}")])
            .args(["--max-txn-ops", &MAX_TXN_OPS.to_string()])
            .args(["--max-request-bytes", &MAX_REQUEST_BYTES.to_string()])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {ETCD}"))?;
        let e = LocalEtcd {
            child,
            dir,
            url,
            port,
        };
        let t0 = Instant::now();
        while !e.healthy() {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!(
                    "etcd did not answer within 20 s:\n{}",
                    std::fs::read_to_string(e.dir.join("etcd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(e)
    }

    /// The client URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn healthy(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        let mut body = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut body).is_ok()
            && body.contains("\"health\":\"true\"")
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Hosts of one cluster on this machine, each a deployment brought up by
/// `vpc up` (this binary) as a user does; torn down, the last one taking
/// the underlay's namespace with it, when dropped.
pub struct LocalHosts {
    /// Deployment names are `<prefix><host>`.
    prefix: String,
    cluster: String,
    url: String,
    up: Vec<String>,
}

impl LocalHosts {
    pub fn new(etcd: &LocalEtcd, cluster: &str, prefix: &str) -> Self {
        LocalHosts {
            prefix: prefix.to_string(),
            cluster: cluster.to_string(),
            url: etcd.url().to_string(),
            up: vec![],
        }
    }

    /// The deployment of `host`.
    pub fn name(&self, host: &str) -> String {
        format!("{}{host}", self.prefix)
    }

    pub fn underlay_netns(&self) -> String {
        format!("{}-ul", self.cluster)
    }

    /// `vpc up` of host `h<k>` (underlay 10.251.0.k): the first with a
    /// template, the others joining; `extra` more options of `vpc up`.
    pub fn up(
        &mut self,
        k: usize,
        template: Option<&std::path::Path>,
        extra: &[&str],
    ) -> Result<String> {
        let host = format!("h{k}");
        let name = self.name(&host);
        let t = template.map_or("default".to_string(), |p| p.display().to_string());
        let out = Command::new(std::env::current_exe()?)
            .args(["--name", &name, "up", &t, "--cluster", &self.url])
            .args(["--cluster-name", &self.cluster, "--host", &host])
            .arg("--underlay")
            .arg(format!("10.251.0.{k}/24"))
            .arg("--underlay-netns")
            .arg(self.underlay_netns())
            .args(["--wait"])
            .args(extra)
            .output()?;
        self.up.push(name.clone());
        if !out.status.success() {
            bail!(
                "vpc --name {name} up: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(name)
    }
}

impl Drop for LocalHosts {
    fn drop(&mut self) {
        for h in self.up.iter().rev() {
            let _ = crate::deploy::down(h);
        }
        let _ = crate::topology::run("ip", &["netns", "del", &self.underlay_netns()]);
    }
}
