//! A real etcd for the cluster tests (`vpc::cluster::local`), killed and
//! removed on drop, also when the test panics.
pub use vpc::cluster::local::{MAX_REQUEST_BYTES, MAX_TXN_OPS};

pub struct Etcd(vpc::cluster::local::LocalEtcd);

impl Etcd {
    /// Starts etcd and waits until it answers `/health`.
    pub fn start() -> Etcd {
        Etcd(vpc::cluster::local::LocalEtcd::start().expect("a local etcd"))
    }

    /// The client URL.
    pub fn url(&self) -> String {
        self.0.url().to_string()
    }
}
