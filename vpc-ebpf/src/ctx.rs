//! The two hooks the router runs at, behind one trait: XDP (frames, before
//! any socket buffer exists: the small-packet path) and TC ingress (socket
//! buffers, GSO superpackets kept whole: the bulk-TCP path). The pipeline
//! is written once against `Ctx`; a hook says how to reach the bytes, how to
//! fix a checksum and how to act. Every access to the bytes goes through
//! the bounds checks here (`ptr_at`, `read`, `write`).
use aya_ebpf::{
    bindings::bpf_tunnel_key,
    bindings::{xdp_action, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, TC_ACT_REDIRECT, TC_ACT_SHOT},
    helpers::{bpf_redirect, bpf_skb_get_tunnel_key, bpf_skb_set_tunnel_key},
    programs::{TcContext, XdpContext},
};
use vpc_common::{DropReason, RemotePort};

use crate::csum;

/// The pipeline's verdicts; the entry points turn them into their hook's
/// actions (the XDP values, so that XDP needs no translation).
pub const VERDICT_DROP: u32 = xdp_action::XDP_DROP;
pub const VERDICT_REDIRECT: u32 = xdp_action::XDP_REDIRECT;
/// Inside the pipeline a verdict also carries, above its action byte, what
/// `vpc trace` reports (`trace`): a drop's `DropReason` (bits 8-15), a
/// redirect's egress ifindex (bits 8-31: its low 24 bits). Setting it costs
/// an OR where the verdict is made; the entry points keep the action
/// (`action`).
pub const VERDICT_DETAIL_SHIFT: u32 = 8;
/// A drop decided before the packet's addresses and ports were parsed:
/// the trace has no tuple to show.
pub const VERDICT_NO_TUPLE: u32 = vpc_common::cfg::TRACE_NO_TUPLE << VERDICT_DETAIL_SHIFT;

/// The hook's action of a pipeline verdict.
#[inline(always)]
pub fn action(verdict: u32) -> u32 {
    verdict & 0xff
}

/// Checksum-update flags, as the kernel's `bpf_l4_csum_replace` takes them.
/// The value is part of the pseudo-header (an address).
pub const CSUM_PSEUDO: u64 = BPF_F_PSEUDO_HDR as u64;
/// A zero checksum means "none" (IPv4 UDP) and stays zero.
pub const CSUM_ZERO_IS_NONE: u64 = BPF_F_MARK_MANGLED_0 as u64;

pub trait Ctx {
    /// Whether the hook can send into a tunnel (the overlay): TC only.
    const TUNNELS: bool;
    fn data(&self) -> usize;
    fn data_end(&self) -> usize;
    /// Length of the whole packet from the Ethernet header (for a socket
    /// buffer, paged data included).
    fn len(&self) -> usize;
    fn ingress_ifindex(&self) -> u32;
    /// Packets on the wire this one stands for (a GSO superpacket's segments).
    fn segs(&self) -> u32;
    /// Updates the IPv4 header checksum at `off` for a 4-byte change.
    fn l3_csum_replace(&self, off: usize, from: u32, to: u32) -> Result<(), DropReason>;
    /// Updates the L4 checksum at `off` for a change of `size` (2 or 4)
    /// bytes, with `CSUM_*` flags.
    fn l4_csum_replace(
        &self,
        off: usize,
        from: u32,
        to: u32,
        size: u64,
        flags: u64,
    ) -> Result<(), DropReason>;
    /// Redirects to `ifindex`'s transmit side.
    fn redirect(&self, ifindex: u32) -> bool;
    /// The tunnel a packet from the overlay device came through: its
    /// sending host's underlay address and the VNI (`None`: no tunnel
    /// metadata).
    fn tunnel(&self) -> Option<RemotePort>;
    /// Redirects to the overlay device `ifindex`, to be sent in a tunnel
    /// to `to` (the device encapsulates).
    fn redirect_tunnel(&self, ifindex: u32, to: &RemotePort) -> Result<(), DropReason>;
}

/// The kernel's `struct bpf_tunnel_key` with IPv4 addresses (host order),
/// the rest of each address union as padding: no union to build.
#[repr(C)]
struct TunnelKey {
    tunnel_id: u32,
    remote_ipv4: u32,
    _remote_ipv6: [u32; 3],
    tos: u8,
    ttl: u8,
    ext: u16,
    label: u32,
    local_ipv4: u32,
    _local_ipv6: [u32; 3],
}
const _: () = assert!(core::mem::size_of::<TunnelKey>() == 44);

impl Ctx for XdpContext {
    const TUNNELS: bool = false;
    #[inline(always)]
    fn data(&self) -> usize {
        XdpContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        XdpContext::data_end(self)
    }
    /// From volatile loads: LLVM cannot tie it to the bounds checks in
    /// `ptr_at`, so it never drops one of them (the verifier needs each).
    #[inline(always)]
    fn len(&self) -> usize {
        unsafe {
            let md = self.ctx;
            let end = core::ptr::read_volatile(&(*md).data_end) as usize;
            let start = core::ptr::read_volatile(&(*md).data) as usize;
            end.wrapping_sub(start)
        }
    }
    #[inline(always)]
    fn ingress_ifindex(&self) -> u32 {
        XdpContext::ingress_ifindex(self) as u32
    }
    #[inline(always)]
    fn segs(&self) -> u32 {
        1
    }
    #[inline(always)]
    fn l3_csum_replace(&self, off: usize, from: u32, to: u32) -> Result<(), DropReason> {
        let c = read::<u16>(self, off)?;
        write(self, off, csum::replace32(c, from, to))
    }
    /// Frames carry complete checksums (no offload state), so the RFC 1624
    /// update applies to every change, pseudo-header or not.
    #[inline(always)]
    fn l4_csum_replace(
        &self,
        off: usize,
        from: u32,
        to: u32,
        size: u64,
        flags: u64,
    ) -> Result<(), DropReason> {
        let c = read::<u16>(self, off)?;
        if flags & CSUM_ZERO_IS_NONE != 0 && c == 0 {
            return Ok(());
        }
        let mut n = if size == 2 {
            csum::replace16(c, from as u16, to as u16)
        } else {
            csum::replace32(c, from, to)
        };
        // A computed UDP checksum of zero is sent as all ones (RFC 768).
        if flags & CSUM_ZERO_IS_NONE != 0 && n == 0 {
            n = 0xffff;
        }
        write(self, off, n)
    }
    #[inline(always)]
    fn redirect(&self, ifindex: u32) -> bool {
        unsafe { bpf_redirect(ifindex, 0) as u32 == xdp_action::XDP_REDIRECT }
    }
    /// A frame carries no tunnel metadata.
    #[inline(always)]
    fn tunnel(&self) -> Option<RemotePort> {
        None
    }
    #[inline(always)]
    fn redirect_tunnel(&self, _ifindex: u32, _to: &RemotePort) -> Result<(), DropReason> {
        Err(DropReason::OverlayNeedsTc)
    }
}

impl Ctx for TcContext {
    const TUNNELS: bool = true;
    #[inline(always)]
    fn data(&self) -> usize {
        TcContext::data(self)
    }
    #[inline(always)]
    fn data_end(&self) -> usize {
        TcContext::data_end(self)
    }
    #[inline(always)]
    fn len(&self) -> usize {
        TcContext::len(self) as usize
    }
    #[inline(always)]
    fn ingress_ifindex(&self) -> u32 {
        // At TC ingress the buffer's device is the port it arrived on.
        unsafe { (*self.skb.skb).ifindex }
    }
    #[inline(always)]
    fn segs(&self) -> u32 {
        let n = unsafe { (*self.skb.skb).gso_segs };
        if n == 0 {
            1
        } else {
            n
        }
    }
    #[inline(always)]
    fn l3_csum_replace(&self, off: usize, from: u32, to: u32) -> Result<(), DropReason> {
        TcContext::l3_csum_replace(self, off, from as u64, to as u64, 4)
            .map_err(|_| DropReason::Malformed)
    }
    /// The kernel's helper: it knows the buffer's checksum state (a GSO
    /// buffer's L4 field holds only the pseudo-header sum, which a port
    /// change must not touch). Veths never hand over CHECKSUM_COMPLETE
    /// buffers; on a device that does, an IPv6 address change through
    /// `BPF_F_PSEUDO_HDR` would leave `skb->csum` off and the receiver would
    /// verify in software.
    #[inline(always)]
    fn l4_csum_replace(
        &self,
        off: usize,
        from: u32,
        to: u32,
        size: u64,
        flags: u64,
    ) -> Result<(), DropReason> {
        TcContext::l4_csum_replace(self, off, from as u64, to as u64, size | flags)
            .map_err(|_| DropReason::Malformed)
    }
    #[inline(always)]
    fn redirect(&self, ifindex: u32) -> bool {
        unsafe { bpf_redirect(ifindex, 0) as u32 == TC_ACT_REDIRECT as u32 }
    }
    #[inline(always)]
    fn tunnel(&self) -> Option<RemotePort> {
        let mut k = core::mem::MaybeUninit::<TunnelKey>::uninit();
        let r = unsafe {
            bpf_skb_get_tunnel_key(
                self.skb.skb,
                k.as_mut_ptr() as *mut bpf_tunnel_key,
                core::mem::size_of::<TunnelKey>() as u32,
                0,
            )
        };
        if r != 0 {
            return None;
        }
        let k = unsafe { k.assume_init_ref() };
        Some(RemotePort {
            underlay: k.remote_ipv4.to_be_bytes(),
            vni: k.tunnel_id,
        })
    }
    /// TTL 64 on the underlay; the device picks the local address.
    #[inline(always)]
    fn redirect_tunnel(&self, ifindex: u32, to: &RemotePort) -> Result<(), DropReason> {
        let mut k = TunnelKey {
            tunnel_id: to.vni,
            remote_ipv4: u32::from_be_bytes(to.underlay),
            _remote_ipv6: [0; 3],
            tos: 0,
            ttl: 64,
            ext: 0,
            label: 0,
            local_ipv4: 0,
            _local_ipv6: [0; 3],
        };
        let r = unsafe {
            bpf_skb_set_tunnel_key(
                self.skb.skb,
                &mut k as *mut TunnelKey as *mut bpf_tunnel_key,
                core::mem::size_of::<TunnelKey>() as u32,
                0,
            )
        };
        if r != 0 || !self.redirect(ifindex) {
            return Err(DropReason::NoEgressPort);
        }
        Ok(())
    }
}

/// Pointer to a `T` at `off`, if the whole `T` is inside the packet.
#[inline(always)]
pub fn ptr_at<T>(ctx: &impl Ctx, off: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + off) as *mut T)
}

/// Reads a `T` at `off`, bounds checked (`malformed` if it is not all there).
#[inline(always)]
pub fn read<T: Copy>(ctx: &impl Ctx, off: usize) -> Result<T, DropReason> {
    let p = ptr_at::<T>(ctx, off).ok_or(DropReason::Malformed)?;
    Ok(unsafe { core::ptr::read_unaligned(p) })
}

/// Writes a `T` at `off`, bounds checked.
#[inline(always)]
pub fn write<T: Copy>(ctx: &impl Ctx, off: usize, v: T) -> Result<(), DropReason> {
    let p = ptr_at::<T>(ctx, off).ok_or(DropReason::Malformed)?;
    unsafe { core::ptr::write_unaligned(p, v) };
    Ok(())
}

/// The TC action for a pipeline verdict: anything but a redirect drops.
#[inline(always)]
pub fn tc_action(verdict: u32) -> i32 {
    if action(verdict) == VERDICT_REDIRECT {
        TC_ACT_REDIRECT as i32
    } else {
        TC_ACT_SHOT as i32
    }
}
