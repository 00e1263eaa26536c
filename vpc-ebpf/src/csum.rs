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

/// Checksum after `old` bytes became `new` (even length, at most 16).
#[inline(always)]
pub fn replace_bytes<const N: usize>(mut csum: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    let mut i = 0;
    while i + 1 < N {
        let o = u16::from_ne_bytes([old[i], old[i + 1]]);
        let n = u16::from_ne_bytes([new[i], new[i + 1]]);
        csum = replace16(csum, o, n);
        i += 2;
    }
    csum
}
