//! Incremental Internet checksum updates (RFC 1624, eqn. 3).
//! One's-complement sums do not depend on byte order, so words are read and
//! written in native order straight from the packet.

#[inline(always)]
fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// Checksum after one 16-bit word changed from `old` to `new`.
#[inline(always)]
pub fn replace16(csum: u16, old: u16, new: u16) -> u16 {
    !fold((!csum) as u32 + (!old) as u32 + new as u32)
}

/// Checksum after a 32-bit value (as read from the packet) changed.
#[inline(always)]
pub fn replace32(csum: u16, old: u32, new: u32) -> u16 {
    let c = replace16(csum, old as u16, new as u16);
    replace16(c, (old >> 16) as u16, (new >> 16) as u16)
}
