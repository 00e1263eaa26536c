//! The lifecycle's timers: activations, updates that are due, idle
//! reclaim and ENI deletion ([`step`], run by the agent's loop and after
//! every change), and the test clock's jumps, which stop at every timer due
//! on the way ([`advance`]).
use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::json;

use super::{detach, set_status, Answer};
use crate::{
    datapath::{Maps, PinnedMaps},
    lambda::lifecycle::{self, state, ApiError, FunctionStatus},
    reconcile::change,
    state::{transact, Lifecycle, State},
};

/// Moves the test clock `ms` forward, stopping at every timer due on the
/// way (activations, updates, idle reclaim, ENI deletion), in order, and
/// running it then: a jump of 30 days does what 30 days of ticks would
/// (the idle function's ENIs reclaimed on day 30 and deleted 20 minutes
/// later), not everything at the end of the jump.
pub(super) fn advance(name: &str, maps: &mut PinnedMaps, ms: u64) -> Answer {
    let lc = Lifecycle::load(name)?;
    if !lc.clock.test {
        return Ok(Err(ApiError::invalid(
            "the deployment runs on the real clock (`vpc up --clock test` for one the tests move)",
        )));
    }
    let target = lc.clock.now_ms.saturating_add(ms);
    loop {
        // What is due now first (the last stop's is run by the caller).
        step(name, maps)?;
        let (s, lc) = (State::load(name)?, Lifecycle::load(name)?);
        let now = lc.clock.now_ms;
        let to = next_due(&s, &lc)
            .filter(|t| *t > now && *t < target)
            .unwrap_or(target);
        transact(name, |_, lc| {
            lc.clock.now_ms = to;
            Ok(())
        })?;
        // Connections' idle times too (the NAT gateway's 350 s, ...), once
        // the store holds the new time: a failed commit moves neither clock.
        maps.advance_clock((to - now).saturating_mul(1_000_000))?;
        if to == target {
            break;
        }
    }
    Ok(Ok(
        json!({ "Now": lifecycle::iso8601(target), "NowMs": target }),
    ))
}

/// When the lifecycle's next timer is due (`None`: none is set): what
/// [`step`] acts on.
fn next_due(s: &State, lc: &Lifecycle) -> Option<u64> {
    let settings = lc.settings;
    let functions = lc.functions.iter().flat_map(|(id, st)| {
        let idle = (st.state == state::ACTIVE
            && st.life.update.is_none()
            && s.model.function(id).is_some_and(|f| f.vpc_config.is_some()))
        .then(|| st.life.last_invoked_ms + settings.idle_reclaim.as_millis() as u64);
        [
            st.life
                .pending_until_ms
                .filter(|_| st.state == state::PENDING),
            st.life.update.as_ref().map(|u| u.ready_at_ms),
            idle,
        ]
    });
    let enis = lc
        .unused_since_ms
        .values()
        .map(|t| Some(t + settings.eni_delete_delay.as_millis() as u64));
    functions.chain(enis).flatten().min()
}

/// A Pending function whose ENIs are due now.
fn activation_due(st: &FunctionStatus, now: u64) -> bool {
    st.state == state::PENDING && st.life.pending_until_ms.is_some_and(|t| t <= now)
}

/// Runs the lifecycle's timers once: activations, updates that are due,
/// idle reclaim, and ENIs nothing has used for the delete delay.
pub fn step(name: &str, maps: &mut PinnedMaps) -> Result<()> {
    let lc = Lifecycle::load(name)?;
    // Configurations as they stand (each function's own changes below
    // touch only that function).
    let at_start = State::load(name)?;
    let vpc_of = |id: &str| {
        at_start
            .model
            .function(id)
            .and_then(|f| f.vpc_config.clone())
    };
    let now = lc.clock.now_ms();
    let settings = lc.settings;
    // On a host of a cluster, only the function's own host counts its
    // invocations, so only it reclaims an idle function's ENI.
    let runs_here = |id: &str| match &at_start.cluster {
        None => true,
        Some(c) => {
            crate::model::placement::host_of(&at_start.model, id).is_none_or(|h| h == c.host)
        }
    };
    // Activations due: one change attaches them all (each attached or
    // refused on its own), so a thousand functions coming up at once cost
    // one reconcile, not a thousand.
    let due: Vec<(String, _)> = lc
        .functions
        .iter()
        .filter(|(_, st)| activation_due(st, now))
        .map(|(id, _)| (id.clone(), vpc_of(id)))
        .collect();
    if !due.is_empty() {
        let mut results = Vec::with_capacity(due.len());
        change(name, maps, |m| {
            for (id, vc) in &due {
                results.push(lifecycle::attach(m, id, vc.clone(), settings.eni_limit));
            }
            Ok(())
        })?
        // Never refused as a whole: each attachment's refusal is its own.
        .ok();
        for ((id, _), r) in due.iter().zip(results) {
            set_status(name, id, |st| {
                st.life.pending_until_ms = None;
                st.life.revision += 1;
                match &r {
                    Ok(()) => {
                        let life = std::mem::take(&mut st.life);
                        *st = FunctionStatus {
                            life,
                            ..FunctionStatus::active()
                        };
                        st.life.last_invoked_ms = now;
                    }
                    Err(f) => {
                        // A restore that fails leaves the function Inactive.
                        st.state = if st.state_reason_code == "Restoring" {
                            state::INACTIVE
                        } else {
                            state::FAILED
                        }
                        .into();
                        st.state_reason_code = f.code.into();
                        st.state_reason = Some(f.reason.clone());
                        st.last_update_status = "Failed".into();
                        st.life.last_update_status_reason = Some(f.reason.clone());
                        st.life.last_update_status_reason_code = Some(f.code.into());
                    }
                }
            })?;
        }
    }
    for (id, st) in &lc.functions {
        if activation_due(st, now) {
            // Done above.
        } else if let Some(u) = st.life.update.as_ref().filter(|u| u.ready_at_ms <= now) {
            let (u, vc) = (u.clone(), u.vpc_config.clone());
            // The ENIs it leaves, if Lambda has lost its role (they stay).
            let lost = at_start
                .model
                .function(id)
                .filter(|f| super::stranded::lost_role(&at_start.model, f))
                .cloned();
            let r = change(name, maps, |m| {
                lifecycle::attach(m, id, vc, settings.eni_limit)?;
                // In the same change: a crash never leaves them half-way.
                if let Some(f) = &lost {
                    let left = lifecycle::combinations(f.account.as_deref(), f.vpc_config.as_ref());
                    let kept = lifecycle::strand_enis(m, &left, lifecycle::lives(&lc.functions));
                    super::stranded::log(Some(f), &kept);
                }
                Ok(())
            })?;
            set_status(name, id, |st| {
                // A newer update staged meanwhile is the next tick's.
                if st.life.update.as_ref() != Some(&u) {
                    return;
                }
                st.life.update = None;
                st.life.revision += 1;
                match &r {
                    Ok(()) => st.last_update_status = "Successful".into(),
                    Err(f) => {
                        st.last_update_status = "Failed".into();
                        st.life.last_update_status_reason = Some(f.reason.clone());
                        st.life.last_update_status_reason_code = Some(f.code.into());
                    }
                }
            })?;
        } else if st.state == state::ACTIVE
            && st.life.update.is_none()
            && now.saturating_sub(st.life.last_invoked_ms)
                >= settings.idle_reclaim.as_millis() as u64
            && vpc_of(id).is_some()
            && runs_here(id)
        {
            detach(name, maps, id)?;
            set_status(name, id, |st| {
                st.state = state::INACTIVE.into();
                st.state_reason_code = "Idle".into();
                st.state_reason = Some(
                    "The function is inactive because it has not been invoked for the idle period; Lambda reclaimed its Hyperplane ENI".into(),
                );
                st.life.revision += 1;
            })?;
        }
    }
    // ENIs nothing uses are deleted after the delete delay.
    let s = State::load(name)?;
    let lc = Lifecycle::load(name)?;
    let used = lifecycle::combinations_in_use(&s.model, lifecycle::lives(&lc.functions));
    let unused = lifecycle::unused_combinations(&s.model, &used);
    let key = |c: &lifecycle::Combination| {
        format!(
            "{}|{}|{}",
            c.0,
            c.1.join(","),
            c.2.as_deref().unwrap_or_default()
        )
    };
    let mut since: BTreeMap<String, u64> = lc
        .unused_since_ms
        .iter()
        .filter(|(k, _)| unused.iter().any(|c| key(c) == **k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for c in &unused {
        let t = *since.entry(key(c)).or_insert(now);
        if now.saturating_sub(t) >= settings.eni_delete_delay.as_millis() as u64 {
            change(name, maps, |m| {
                lifecycle::delete_enis(m, c);
                Ok(())
            })?
            .map_err(|f| anyhow::anyhow!("{}", f.reason))?;
            since.remove(&key(c));
            tracing::info!(
                "deleted the Hyperplane ENI(s) of ({}, [{}]): unused",
                c.0,
                c.1.join(", ")
            );
        }
    }
    if since != lc.unused_since_ms {
        transact(name, |_, lc| {
            lc.unused_since_ms = since;
            Ok(())
        })?;
    }
    Ok(())
}
