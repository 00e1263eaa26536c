//! The constants the router uses, with the kernel's values.
pub const BPF_ANY: u32 = 0;
pub const BPF_NOEXIST: u32 = 1;
pub const BPF_EXIST: u32 = 2;
pub const BPF_F_NO_PREALLOC: u32 = 1;
pub const BPF_F_MMAPABLE: u32 = 1024;
pub const BPF_F_PSEUDO_HDR: u32 = 16;
pub const BPF_F_MARK_MANGLED_0: u32 = 32;
pub const BPF_F_HDR_FIELD_MASK: u64 = 0xf;
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
pub const TC_ACT_REDIRECT: u32 = 7;

pub mod xdp_action {
    pub type Type = u32;
    pub const XDP_ABORTED: Type = 0;
    pub const XDP_DROP: Type = 1;
    pub const XDP_PASS: Type = 2;
    pub const XDP_TX: Type = 3;
    pub const XDP_REDIRECT: Type = 4;
}

/// XDP's context, with host-sized pointers (the kernel's are 32-bit
/// offsets it rewrites).
#[repr(C)]
pub struct xdp_md {
    pub data: usize,
    pub data_end: usize,
    pub data_meta: usize,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
}

/// The fields of a socket buffer the router reads.
#[repr(C)]
pub struct __sk_buff {
    pub len: u32,
    pub ifindex: u32,
    pub gso_segs: u32,
    pub vlan_present: u32,
    pub data: usize,
    pub data_end: usize,
}

/// The kernel's tunnel key, opaque here: the host has no tunnels.
#[repr(C)]
pub struct bpf_tunnel_key {
    _private: [u8; 0],
}
