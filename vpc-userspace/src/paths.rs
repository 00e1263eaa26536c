//! Where a deployment lives on the host: its state directory and its pins.
//! The lowest layer: everything that names these paths imports them here.
use std::path::{Path, PathBuf};

/// Deployments' state directories (`/run/vpc/<name>`): the store, the
/// API socket, the agent's log and locks.
pub const STATE_ROOT: &str = "/run/vpc";
/// The standard bpffs mount.
pub const BPFFS: &str = "/sys/fs/bpf";

pub fn state_dir(name: &str) -> PathBuf {
    Path::new(STATE_ROOT).join(name)
}

pub fn pin_dir(name: &str) -> PathBuf {
    Path::new(BPFFS).join("vpc").join(name)
}
