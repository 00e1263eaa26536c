//! The map types the router uses, as Rust collections with the kernel's
//! semantics where the router can observe them. Every map also has
//! `host_*` methods for the harness: clear, resize, count, read.
use std::{
    borrow::Borrow,
    collections::BTreeMap,
    hash::{BuildHasherDefault, DefaultHasher},
    marker::PhantomData,
};

/// A hash map with a fixed hasher: iteration order (which element an LRU
/// map gives up when full) is the same on every run, so an input replays.
type StdHashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<DefaultHasher>>;

use crate::{
    bindings::{BPF_EXIST, BPF_NOEXIST},
    Lazy,
};

const EEXIST: i32 = -17;
const ENOENT: i32 = -2;
const E2BIG: i32 = -7;
const EINVAL: i32 = -22;

/// A value's bytes as the kernel keys it (keys have no implicit padding:
/// vpc-common checks it).
fn bytes<K>(k: &K) -> Vec<u8> {
    // SAFETY: reads `size_of::<K>()` bytes of a live value.
    unsafe { std::slice::from_raw_parts(k as *const K as *const u8, size_of::<K>()).to_vec() }
}

/// A copy of `v` on the heap (map values are plain data).
fn boxed<V>(v: &V) -> Box<V> {
    // SAFETY: a bitwise copy of plain data, as the kernel's memcpy.
    Box::new(unsafe { std::ptr::read(v) })
}

struct Hash<V> {
    items: StdHashMap<Vec<u8>, Box<V>>,
    max: u32,
    /// Replaced and removed values, kept readable until cleared.
    old: Vec<Box<V>>,
}

macro_rules! hash_map {
    ($name:ident, $lru:expr) => {
        pub struct $name<K, V> {
            max: u32,
            state: Lazy<Hash<V>>,
            _k: PhantomData<K>,
        }

        impl<K, V> $name<K, V> {
            pub const fn with_max_entries(max_entries: u32, _flags: u32) -> Self {
                Self {
                    max: max_entries,
                    state: Lazy::new(),
                    _k: PhantomData,
                }
            }

            fn h(&self) -> &mut Hash<V> {
                self.state.get(|| Hash {
                    items: StdHashMap::default(),
                    max: self.max,
                    old: vec![],
                })
            }

            /// # Safety
            /// As aya's: the value may be replaced behind the reference.
            pub unsafe fn get(&self, key: impl Borrow<K>) -> Option<&V> {
                self.get_ptr(key).map(|p| unsafe { &*p })
            }

            pub fn get_ptr(&self, key: impl Borrow<K>) -> Option<*const V> {
                self.get_ptr_mut(key).map(|p| p as *const V)
            }

            pub fn get_ptr_mut(&self, key: impl Borrow<K>) -> Option<*mut V> {
                self.h()
                    .items
                    .get_mut(&bytes(key.borrow()))
                    .map(|b| &mut **b as *mut V)
            }

            pub fn insert(
                &self,
                key: impl Borrow<K>,
                value: impl Borrow<V>,
                flags: u64,
            ) -> Result<(), i32> {
                if flags > 2 {
                    return Err(EINVAL);
                }
                let h = self.h();
                let k = bytes(key.borrow());
                let exists = h.items.contains_key(&k);
                if exists && flags == BPF_NOEXIST as u64 {
                    return Err(EEXIST);
                }
                if !exists && flags == BPF_EXIST as u64 {
                    return Err(ENOENT);
                }
                if !exists && h.items.len() >= h.max as usize {
                    if !$lru {
                        return Err(E2BIG);
                    }
                    // LRU: some element goes (the kernel's choice is
                    // approximate too).
                    if let Some(victim) = h.items.keys().next().cloned() {
                        let b = h.items.remove(&victim).unwrap();
                        h.old.push(b);
                    }
                }
                if let Some(b) = h.items.insert(k, boxed(value.borrow())) {
                    h.old.push(b);
                }
                Ok(())
            }

            pub fn remove(&self, key: impl Borrow<K>) -> Result<(), i32> {
                let h = self.h();
                match h.items.remove(&bytes(key.borrow())) {
                    Some(b) => {
                        h.old.push(b);
                        Ok(())
                    }
                    None => Err(ENOENT),
                }
            }

            /// Empties the map (and frees what was replaced or removed).
            pub fn host_clear(&self) {
                let h = self.h();
                h.items.clear();
                h.old.clear();
            }

            /// Sets `max_entries`, as userspace does before loading.
            pub fn host_set_max(&self, max: u32) {
                self.h().max = max;
            }

            pub fn host_len(&self) -> usize {
                self.h().items.len()
            }

            /// Every (key, value), copied.
            pub fn host_entries(&self) -> Vec<(K, V)> {
                self.h()
                    .items
                    .iter()
                    .map(|(k, v)| {
                        // SAFETY: `k` holds a K's bytes (inserted from one).
                        let key = unsafe { std::ptr::read_unaligned(k.as_ptr() as *const K) };
                        (key, *boxed(&**v))
                    })
                    .collect()
            }
        }
    };
}

hash_map!(HashMap, false);
hash_map!(LruHashMap, true);
// One CPU on the host: a per-CPU hash is a hash.
hash_map!(LruPerCpuHashMap, true);

pub mod lpm_trie {
    use super::*;

    #[repr(C, packed)]
    pub struct Key<K> {
        pub prefix_len: u32,
        pub data: K,
    }

    impl<K> Key<K> {
        pub const fn new(prefix_len: u32, data: K) -> Self {
            Self { prefix_len, data }
        }
    }

    struct Trie<V> {
        /// Prefix length -> (masked data -> value).
        by_len: BTreeMap<u32, StdHashMap<Vec<u8>, Box<V>>>,
        count: usize,
        max: u32,
    }

    fn masked(data: &[u8], bits: u32) -> Vec<u8> {
        let mut v = data.to_vec();
        for (i, b) in v.iter_mut().enumerate() {
            let start = i as u32 * 8;
            if start >= bits {
                *b = 0;
            } else if start + 8 > bits {
                *b &= 0xffu8 << (8 - (bits - start));
            }
        }
        v
    }

    /// Longest-prefix match over `K`'s bytes, as the kernel's trie.
    pub struct LpmTrie<K, V> {
        max: u32,
        state: Lazy<Trie<V>>,
        _k: PhantomData<K>,
    }

    impl<K, V> LpmTrie<K, V> {
        pub const fn with_max_entries(max_entries: u32, _flags: u32) -> Self {
            Self {
                max: max_entries,
                state: Lazy::new(),
                _k: PhantomData,
            }
        }

        fn t(&self) -> &mut Trie<V> {
            self.state.get(|| Trie {
                by_len: BTreeMap::new(),
                count: 0,
                max: self.max,
            })
        }

        fn split(key: &Key<K>) -> (u32, Vec<u8>) {
            let plen = key.prefix_len;
            // SAFETY: `data` is a K inside the packed key.
            let data = unsafe {
                std::slice::from_raw_parts(
                    std::ptr::addr_of!(key.data) as *const u8,
                    size_of::<K>(),
                )
            };
            (plen, data.to_vec())
        }

        pub fn get(&self, key: impl Borrow<Key<K>>) -> Option<&V> {
            let (plen, data) = Self::split(key.borrow());
            let bits = (size_of::<K>() * 8) as u32;
            let t = self.t();
            for (&len, m) in t.by_len.range(..=plen.min(bits)).rev() {
                if let Some(v) = m.get(&masked(&data, len)) {
                    return Some(&**v);
                }
            }
            None
        }

        pub fn insert(
            &self,
            key: impl Borrow<Key<K>>,
            value: impl Borrow<V>,
            flags: u64,
        ) -> Result<(), i32> {
            let (plen, data) = Self::split(key.borrow());
            if plen > (size_of::<K>() * 8) as u32 || flags > 2 {
                return Err(EINVAL);
            }
            let t = self.t();
            let m = t.by_len.entry(plen).or_default();
            let k = masked(&data, plen);
            let exists = m.contains_key(&k);
            if exists && flags == BPF_NOEXIST as u64 {
                return Err(EEXIST);
            }
            if !exists && flags == BPF_EXIST as u64 {
                return Err(ENOENT);
            }
            if !exists && t.count >= t.max as usize {
                return Err(E2BIG);
            }
            // Values of a trie are read, never pointed into across an update.
            if m.insert(k, boxed(value.borrow())).is_none() {
                t.count += 1;
            }
            Ok(())
        }

        pub fn remove(&self, key: impl Borrow<Key<K>>) -> Result<(), i32> {
            let (plen, data) = Self::split(key.borrow());
            let t = self.t();
            match t
                .by_len
                .get_mut(&plen)
                .and_then(|m| m.remove(&masked(&data, plen)))
            {
                Some(_) => {
                    t.count -= 1;
                    Ok(())
                }
                None => Err(ENOENT),
            }
        }

        pub fn host_clear(&self) {
            let t = self.t();
            t.by_len.clear();
            t.count = 0;
        }
    }
}

/// A zeroed, bounded array (`Array` and `PerCpuArray`: the host is one CPU).
struct Slots<T> {
    ptr: *mut T,
    len: u32,
}

impl<T> Slots<T> {
    fn new(len: u32) -> Self {
        let layout = std::alloc::Layout::array::<T>(len.max(1) as usize).expect("array size");
        // SAFETY: a non-zero layout; map values are plain data, zero is valid.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
        assert!(!ptr.is_null(), "out of memory");
        Slots { ptr, len }
    }
}

macro_rules! array {
    ($name:ident) => {
        pub struct $name<T> {
            max: u32,
            state: Lazy<Slots<T>>,
        }

        impl<T> $name<T> {
            pub const fn with_max_entries(max_entries: u32, _flags: u32) -> Self {
                Self {
                    max: max_entries,
                    state: Lazy::new(),
                }
            }

            fn s(&self) -> &mut Slots<T> {
                self.state.get(|| Slots::new(self.max))
            }

            pub fn get(&self, index: u32) -> Option<&T> {
                self.get_ptr(index).map(|p| unsafe { &*p })
            }

            pub fn get_ptr(&self, index: u32) -> Option<*const T> {
                self.get_ptr_mut(index).map(|p| p as *const T)
            }

            pub fn get_ptr_mut(&self, index: u32) -> Option<*mut T> {
                let s = self.s();
                // SAFETY: inside the allocation.
                (index < s.len).then(|| unsafe { s.ptr.add(index as usize) })
            }

            pub fn set(&self, index: u32, value: impl Borrow<T>, _flags: u64) -> Result<(), i32> {
                let p = self.get_ptr_mut(index).ok_or(E2BIG)?;
                // SAFETY: a slot of the array; plain data.
                unsafe { std::ptr::copy_nonoverlapping(value.borrow(), p, 1) };
                Ok(())
            }

            /// Zeroes every slot.
            pub fn host_clear(&self) {
                let s = self.s();
                // SAFETY: the whole allocation.
                unsafe { std::ptr::write_bytes(s.ptr, 0, s.len as usize) };
            }

            pub fn host_len(&self) -> u32 {
                self.s().len
            }
        }
    };
}

array!(Array);
array!(PerCpuArray);

/// A ring buffer: records are counted and kept until the harness takes
/// them; full (its byte size used) refuses as the kernel's.
pub struct RingBuf {
    size: u32,
    state: Lazy<(usize, Vec<Vec<u8>>)>,
}

impl RingBuf {
    pub const fn with_byte_size(byte_size: u32, _flags: u32) -> Self {
        Self {
            size: byte_size,
            state: Lazy::new(),
        }
    }

    pub fn output<T: ?Sized>(&self, data: impl Borrow<T>, _flags: u64) -> Result<(), i32> {
        let data = data.borrow();
        let n = size_of_val(data);
        let s = self.state.get(|| (0, vec![]));
        // Each record: an 8-byte header, the data rounded up to 8.
        let need = 8 + n.div_ceil(8) * 8;
        if s.0 + need > self.size as usize {
            return Err(-11);
        }
        s.0 += need;
        // SAFETY: `n` bytes of a live value.
        s.1.push(unsafe { std::slice::from_raw_parts(data as *const T as *const u8, n) }.to_vec());
        Ok(())
    }

    /// The records written since the last call; the space is free again.
    pub fn host_take(&self) -> Vec<Vec<u8>> {
        let s = self.state.get(|| (0, vec![]));
        s.0 = 0;
        std::mem::take(&mut s.1)
    }
}
