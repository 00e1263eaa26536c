//! `MemorySize` as the runtime process's memory limit: a memory cgroup per
//! execution environment, as Lambda's own sandbox has one. These machines
//! mount cgroup v1's memory controller at `/sys/fs/cgroup/memory` (their
//! v2 hierarchy has no memory controller); a v2 hierarchy that has it
//! (`memory` in `cgroup.controllers`) is used the same way. Swap is not
//! counted as room: a process over its size is killed by the kernel's OOM
//! killer inside its cgroup, as at AWS.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

const V1: &str = "/sys/fs/cgroup/memory";
const V2: &str = "/sys/fs/cgroup";

/// One execution environment's memory cgroup; removed when dropped (its
/// processes are gone by then: the environment kills its process group
/// first).
#[derive(Debug)]
pub struct MemoryLimit {
    dir: PathBuf,
    v2: bool,
}

fn write(path: &Path, v: &str) -> Result<()> {
    std::fs::write(path, v).with_context(|| format!("writing {v} to {}", path.display()))
}

fn v2_has_memory() -> bool {
    std::fs::read_to_string(Path::new(V2).join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|x| x == "memory"))
}

impl MemoryLimit {
    /// The cgroup `vpc/<deployment>/<env>` limited to `bytes`.
    pub fn create(deployment: &str, env: &str, bytes: u64) -> Result<Self> {
        if Path::new(V1).join("memory.limit_in_bytes").exists() {
            let dir = Path::new(V1).join("vpc").join(deployment).join(env);
            // A leftover of a crashed agent: the same environment again.
            let _ = std::fs::remove_dir(&dir);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let me = Self { dir, v2: false };
            write(&me.dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
            // Where swap accounting exists: no swap beyond the limit.
            let memsw = me.dir.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                write(&memsw, &bytes.to_string())?;
            }
            let _ = write(&me.dir.join("memory.swappiness"), "0");
            return Ok(me);
        }
        if v2_has_memory() {
            // Each level hands the controller to the next.
            let mut parent = PathBuf::from(V2);
            for level in ["vpc", deployment] {
                let _ = write(&parent.join("cgroup.subtree_control"), "+memory");
                parent = parent.join(level);
                std::fs::create_dir_all(&parent)?;
            }
            write(&parent.join("cgroup.subtree_control"), "+memory")?;
            let dir = parent.join(env);
            let _ = std::fs::remove_dir(&dir);
            std::fs::create_dir_all(&dir)?;
            let me = Self { dir, v2: true };
            write(&me.dir.join("memory.max"), &bytes.to_string())?;
            let _ = write(&me.dir.join("memory.swap.max"), "0");
            return Ok(me);
        }
        bail!(
            "no memory cgroup controller (cgroup v1 at {V1}, or memory in {V2}/cgroup.controllers)"
        )
    }

    /// Puts process `pid` (and so what it starts afterwards) in the cgroup.
    pub fn add(&self, pid: u32) -> Result<()> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    /// Whether the kernel's OOM killer killed a process of the cgroup.
    pub fn oom_killed(&self) -> bool {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        std::fs::read_to_string(self.dir.join(file)).is_ok_and(|s| {
            s.lines().any(|l| {
                l.split_once(' ')
                    .is_some_and(|(k, v)| k == key && v.trim() != "0")
            })
        })
    }

    /// The most memory its processes used at once, bytes.
    pub fn peak(&self) -> Option<u64> {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Removes cgroup `dir` once its processes are gone (a moment after a
/// kill); `false` if it stays.
fn remove(dir: &Path) -> bool {
    for _ in 0..40 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    false
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        if !remove(&self.dir) {
            tracing::warn!("could not remove {}", self.dir.display());
        }
    }
}

/// Every memory cgroup of a deployment (`vpc down`, after its namespaces
/// and so its processes are gone), and the shared `vpc` one with its last.
pub fn remove_all(deployment: &str) -> Vec<String> {
    let mut errors = vec![];
    for root in [V1, V2] {
        let dir = Path::new(root).join("vpc").join(deployment);
        let Ok(envs) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in envs.flatten().filter(|e| e.path().is_dir()) {
            if !remove(&e.path()) {
                errors.push(format!("removing {}", e.path().display()));
            }
        }
        if !remove(&dir) {
            errors.push(format!("removing {}", dir.display()));
        }
        let _ = std::fs::remove_dir(Path::new(root).join("vpc"));
    }
    errors
}
