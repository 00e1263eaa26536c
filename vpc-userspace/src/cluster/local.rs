//! An etcd of its own on loopback, for `vpc bench --cluster` and the
//! tests: Debian's `/usr/bin/etcd` with a data directory of its own and
//! free ports, gone (process and data) when dropped.
use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

pub const ETCD: &str = "/usr/bin/etcd";

pub struct LocalEtcd {
    child: Child,
    dir: PathBuf,
    url: String,
}

/// A port free on loopback now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl LocalEtcd {
    /// Started and answering; its limits raised for whole templates in one
    /// transaction (`--max-txn-ops`, `--max-request-bytes`).
    pub fn start() -> Result<Self> {
        let (client, peer) = (free_port()?, free_port()?);
        let dir = std::env::temp_dir().join(format!("vpc-etcd-{}-{client}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(ETCD)
            .args(["--name", "local", "--data-dir"])
            .arg(&dir)
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .arg("--initial-cluster")
            .arg(format!("local={peer_url}"))
            .args(["--max-txn-ops", "100000", "--max-request-bytes", "33554432"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {ETCD} (apt-get install etcd-server)"))?;
        let mut e = LocalEtcd { child, dir, url };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", client)).is_err() {
            if let Ok(Some(st)) = e.child.try_wait() {
                bail!("{ETCD} exited at start ({st})");
            }
            if Instant::now() > deadline {
                bail!("{ETCD} did not listen on {} within 30 s", e.url);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(e)
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
