//! UpdateFunctionCode and the reserved-concurrency API
//! (Put/DeleteFunctionConcurrency) on the desired model, and the
//! account's unreserved minimum that CreateFunction checks too.
use serde_json::json;

use super::{changeable, configuration, find, publish, Answer};
use crate::{
    datapath::PinnedMaps,
    lambda::{code, lifecycle::ApiError},
    state::{transact, State},
};

/// The function (not a version) a change of `$LATEST` names.
fn unqualified(s: &State, function: &str) -> Result<String, ApiError> {
    let id = find(s, function)?;
    match s.model.function(&id).and_then(|f| f.version_of.as_ref()) {
        Some(_) => Err(ApiError::invalid(format!(
            "{function}: a published version cannot be changed; name the function"
        ))),
        None => Ok(id),
    }
}

/// UpdateFunctionCode: `$LATEST`'s code becomes `source` (published
/// versions keep theirs); its next invocation starts a new process. With
/// `publish`, a version of it is published and its configuration answered.
pub(super) fn update_code(
    name: &str,
    maps: &mut PinnedMaps,
    function: &str,
    source: code::Source,
    publish_too: bool,
) -> Answer {
    let r = transact(name, |s, lc| {
        if let Err(e) = unqualified(s, function) {
            return Ok(Err(e));
        }
        let (id, f, now) = match changeable(s, lc, function) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let (inline, package) = match source {
            code::Source::Inline(c) => (Some(c), None),
            code::Source::Package(p) => (None, Some(p)),
        };
        if package.is_some() && f.runtime.runtime.is_none() {
            return Ok(Err(ApiError::invalid(code::RUNTIME_NEEDED)));
        }
        // Stored with the model that refers to it (under the lock).
        if let Some(p) = &package {
            code::store(name, p)?;
        }
        let fm = s
            .model
            .functions
            .iter_mut()
            .find(|x| x.id == id)
            .expect("found");
        fm.code = inline;
        fm.package = package;
        let st = lc.functions.entry(id.clone()).or_default();
        st.life.revision += 1;
        st.life.last_modified_ms = now;
        Ok(Ok(id))
    })?;
    let id = match r {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    if publish_too {
        return publish(name, maps, &id, None);
    }
    Ok(Ok(configuration(name, &id, None)?))
}

/// Would function `id` reserving `n` leave the account less than AWS's
/// minimum of unreserved concurrency?
pub(super) fn check_unreserved(m: &crate::model::Model, id: &str, n: u32) -> Result<(), ApiError> {
    let others: u32 = m
        .functions
        .iter()
        .filter(|f| f.version_of.is_none() && f.id != id)
        .filter_map(|f| f.runtime.reserved_concurrency)
        .sum();
    if others + n
        > crate::model::MAX_RESERVED_CONCURRENCY - crate::model::MIN_UNRESERVED_CONCURRENCY
    {
        return Err(ApiError::invalid(crate::model::UNRESERVED_BELOW_MINIMUM));
    }
    Ok(())
}

/// PutFunctionConcurrency (`Some`) and DeleteFunctionConcurrency (`None`):
/// the function's `ReservedConcurrentExecutions` in the desired model
/// (its versions count against it), in force for the next invocation.
pub(super) fn concurrency(name: &str, function: &str, reserved: Option<u32>) -> Answer {
    transact(name, |s, _| {
        let id = match unqualified(s, function) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(n) = reserved {
            if let Err(e) = check_unreserved(&s.model, &id, n) {
                return Ok(Err(e));
            }
        }
        let fm = s
            .model
            .functions
            .iter_mut()
            .find(|x| x.id == id)
            .expect("found");
        fm.runtime.reserved_concurrency = reserved;
        Ok(Ok(match reserved {
            Some(n) => json!({ "ReservedConcurrentExecutions": n }),
            None => json!({}),
        }))
    })
}
