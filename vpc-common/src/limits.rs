//! Map capacities and policy generations.

/// Maximum entries of the connection-tracking table (full: new connections
/// are dropped with `ct_full`, as at AWS).
pub const CT_MAX_ENTRIES: u32 = 262_144;
/// AWS: the Amazon-provided DNS resolver (and the other link-local
/// services) answer at most 1,024 packets per second per interface.
pub const DEFAULT_LINKLOCAL_PPS: u32 = 1024;
/// Ports (router-side veths) and endpoints the router knows about.
pub const MAX_PORTS: u32 = 4096;
pub const MAX_ENDPOINTS: u32 = 8192;
pub const MAX_ENIS: u32 = 1024;
/// Stand-in ports of nodes on other hosts (`REMOTE_PORTS`).
pub const MAX_REMOTE_PORTS: u32 = MAX_ENDPOINTS;
/// Flows owned by other hosts and delivered here (`RELAYS`, LRU).
pub const MAX_RELAYS: u32 = 65_536;
/// Subnets (1-based index; 0 is "no subnet": the Lambda side).
pub const MAX_SUBNETS: u32 = 4096;

/// Entries of each policy trie: prefixes (`SG_PREFIXES`, `ACL_PREFIXES`)
/// and port prefixes (`SG_PORTS`, `ACL_PORTS`).
pub const MAX_POLICY_PREFIXES: u32 = 65_536;
pub const MAX_POLICY_PORTS: u32 = 262_144;

/// Public IPv4 addresses (one entry each in `PUBLIC_TO_PRIVATE` and
/// `PRIVATE_TO_PUBLIC`).
pub const MAX_PUBLIC_IPS: u32 = 1024;

/// Route tables: at most this many `ROUTES` trie entries (local routes,
/// static routes and expanded prefix-list routes of both generations).
pub const MAX_ROUTES: u32 = 16_384;

/// Policy generations. A change is written into the generation not in use
/// and switched on with one write of `CONFIG[cfg::GENERATION]`, so no packet
/// is judged by a half-written policy. Every policy, ACL and class id carries
/// its generation in a high bit; `SUBNET_ACLS` has one block per generation.
pub const GENERATIONS: u32 = 2;
pub const ID_GEN_SHIFT: u32 = 26;
pub const CLASS_GEN_SHIFT: u32 = 29;

/// `SUBNET_ACLS` index of `subnet` in generation `gen`.
#[inline(always)]
pub const fn subnet_acl_index(gen: u32, subnet: u32) -> u32 {
    gen * MAX_SUBNETS + subnet
}

/// The value of a per-generation pair for `gen` (a branch, not an index:
/// no bounds check, and a shape the verifier follows).
#[inline(always)]
pub fn for_gen(pair: &[u32; 2], gen: u32) -> u32 {
    if gen == 0 {
        pair[0]
    } else {
        pair[1]
    }
}
