//! An etcd of its own on loopback, for `vpc cluster demo`, `vpc bench
//! --cluster` and the tests: Debian's `/usr/bin/etcd` (`etcd-server`, which
//! `cargo xtask` installs) with free ports and a data directory of its own
//! on tmpfs, killed and removed (process and data) when dropped.
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
