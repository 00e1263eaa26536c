//! ENIs Lambda cannot delete: a function whose execution role was deleted
//! first (the deployment knew the role, and it is gone) leaves its
//! Hyperplane ENIs behind when it is deleted or leaves its VPC settings:
//! Lambda manages ENIs with the function's role, and AWS documents that an
//! ENI whose role was deleted first stays and must be deleted by hand. They
//! stay `available`, with their addresses and entries, until
//! deleted by hand (`vpc eni delete`, `reconcile::delete_network_interface`).
//! They are stranded in the change that leaves them (DeleteFunction's, the
//! update's attachment), so a crash never leaves them half-way.
use crate::{
    iam::{lambda::role_gone, Iam},
    lambda::lifecycle::{self, Combination},
    model::{Function, Model},
    state::Lifecycle,
};

/// Is `f`'s role one the deployment knew and has lost?
pub(super) fn lost_role(m: &Model, f: &Function) -> bool {
    role_gone(&Iam::of(m), f.role.as_deref(), f.role_known)
}

/// The combinations `f` (with its versions' configurations) uses.
pub(super) fn combinations_of(m: &Model, lc: &Lifecycle, f: &Function) -> Vec<Combination> {
    let account = f.account.as_deref();
    let mut out = lifecycle::combinations(account, f.vpc_config.as_ref());
    if let Some(st) = lc.functions.get(&f.id) {
        for v in &st.life.versions {
            out.extend(lifecycle::combinations(account, v.vpc_config.as_ref()));
        }
    }
    for v in m
        .functions
        .iter()
        .filter(|v| v.version_of.as_ref().is_some_and(|(of, _)| *of == f.id))
    {
        out.extend(lifecycle::combinations(account, v.vpc_config.as_ref()));
    }
    out.sort();
    out.dedup();
    out
}

/// Says which ENIs `f` left behind, if any.
pub(super) fn log(f: Option<&Function>, ids: &[String]) {
    let Some(f) = f.filter(|_| !ids.is_empty()) else {
        return;
    };
    tracing::warn!(
        "function {}'s execution role {} no longer exists: Lambda cannot delete its network interface(s) {}; they stay available until deleted by hand (vpc eni delete)",
        f.name,
        f.role.as_deref().unwrap_or_default(),
        ids.join(", ")
    );
}
