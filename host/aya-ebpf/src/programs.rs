//! The XDP and TC contexts over a host buffer the harness owns.
use crate::bindings::{__sk_buff, xdp_md, BPF_F_HDR_FIELD_MASK, BPF_F_MARK_MANGLED_0};

pub struct XdpContext {
    pub ctx: *mut xdp_md,
}

impl XdpContext {
    pub const fn new(ctx: *mut xdp_md) -> Self {
        Self { ctx }
    }

    pub fn data(&self) -> usize {
        unsafe { (*self.ctx).data }
    }

    pub fn data_end(&self) -> usize {
        unsafe { (*self.ctx).data_end }
    }

    pub fn ingress_ifindex(&self) -> usize {
        unsafe { (*self.ctx).ingress_ifindex as usize }
    }
}

pub struct SkBuff {
    pub skb: *mut __sk_buff,
}

pub struct TcContext {
    pub skb: SkBuff,
}

/// RFC 1624 on a 16-bit checksum, as the kernel's `csum_replace*`.
fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

fn replace(c: u16, from: u32, to: u32, size: u64) -> u16 {
    let r16 = |c: u16, o: u16, n: u16| !fold((!c) as u32 + (!o) as u32 + n as u32);
    if size == 2 {
        r16(c, from as u16, to as u16)
    } else {
        let c = r16(c, from as u16, to as u16);
        r16(c, (from >> 16) as u16, (to >> 16) as u16)
    }
}

impl TcContext {
    pub const fn new(skb: *mut __sk_buff) -> Self {
        Self {
            skb: SkBuff { skb },
        }
    }

    pub fn data(&self) -> usize {
        unsafe { (*self.skb.skb).data }
    }

    pub fn data_end(&self) -> usize {
        unsafe { (*self.skb.skb).data_end }
    }

    pub fn len(&self) -> u32 {
        unsafe { (*self.skb.skb).len }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The 2-byte field at `offset` of the linear data, if it is there.
    fn field(&self, offset: usize) -> Result<*mut u16, i64> {
        if self.data() + offset + 2 > self.data_end() {
            return Err(-14);
        }
        Ok((self.data() + offset) as *mut u16)
    }

    /// As `bpf_l3_csum_replace` (size 2 or 4).
    pub fn l3_csum_replace(&self, offset: usize, from: u64, to: u64, size: u64) -> Result<(), i64> {
        if size != 2 && size != 4 {
            return Err(-22);
        }
        let p = self.field(offset)?;
        unsafe {
            let c = p.read_unaligned();
            p.write_unaligned(replace(c, from as u32, to as u32, size));
        }
        Ok(())
    }

    /// As `bpf_l4_csum_replace` on a buffer with a complete checksum (no
    /// offload state: the host's buffers are frames).
    pub fn l4_csum_replace(
        &self,
        offset: usize,
        from: u64,
        to: u64,
        flags: u64,
    ) -> Result<(), i64> {
        let size = flags & BPF_F_HDR_FIELD_MASK;
        if size != 2 && size != 4 {
            return Err(-22);
        }
        let mangled = flags & BPF_F_MARK_MANGLED_0 as u64 != 0;
        let p = self.field(offset)?;
        unsafe {
            let c = p.read_unaligned();
            if mangled && c == 0 {
                return Ok(());
            }
            let mut n = replace(c, from as u32, to as u32, size);
            if mangled && n == 0 {
                n = 0xffff;
            }
            p.write_unaligned(n);
        }
        Ok(())
    }
}
