//! The agent's side of the lifecycle: applies what `lifecycle` decides to
//! the running datapath (ENIs created and deleted, execution environments
//! attached and detached, connections ended), runs the timers, and serves
//! the API's changes. Everything here runs on the agent's one loop, so
//! changes never interleave; each one is written to the store.
use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vpc_common::{
    map_names, v4_mapped, CtEntry, CtKey, Endpoint, HyperplaneEni, NatPortKey, PortInfo,
};

mod converge;
pub use converge::{apply, apply_edit, check_update, converge, Converged, FAULT_ENV};

use crate::{
    compile,
    datapath::{self, Hook, Maps, PinnedMaps},
    lifecycle::{self, state, ApiError, Failure, FunctionStatus, PendingUpdate, Version},
    model::Model,
    state::{lock, transact, Lifecycle, State},
    topology::{self, Node},
};

/// A change asked through the API, answered on `reply`. The API sends
/// them over [`Ops`]; the agent's loop takes them one at a time.
pub struct Request {
    pub op: Op,
    pub reply: tokio::sync::oneshot::Sender<Result<Value, ApiError>>,
}

/// The way from the API to the agent's loop: unbounded (as a std channel
/// is), sent to from the API's blocking pool, received on the loop's thread.
pub type Ops = tokio::sync::mpsc::UnboundedSender<Request>;

pub enum Op {
    /// CreateFunction: `body` as Lambda takes it; `account` from the
    /// caller's credentials (`None`: the owner).
    Create {
        body: Value,
        account: Option<String>,
    },
    /// An invocation starts: may it run, and where (`env`, 1-based; a
    /// published version's own environments with `qualifier`)?
    Claim {
        function: String,
        env: usize,
        qualifier: Option<u32>,
    },
    Update {
        function: String,
        body: Value,
    },
    Delete {
        function: String,
    },
    Publish {
        function: String,
    },
    /// Moves the test clock forward.
    AdvanceClock {
        ms: u64,
    },
    /// Shares (`associate`) or unshares subnets, or adds or removes
    /// participants, of a resource share.
    Share {
        share: String,
        subnets: Vec<String>,
        principals: Vec<String>,
        associate: bool,
    },
}

/// Serves one API change.
pub fn handle(name: &str, maps: &mut PinnedMaps, op: Op) -> Result<Value, ApiError> {
    let internal = |e: anyhow::Error| ApiError::new(500, "ServiceException", format!("{e:#}"));
    let r = match op {
        Op::Create { body, account } => create(name, maps, &body, account),
        Op::Claim {
            function,
            env,
            qualifier,
        } => claim(name, &function, env, qualifier),
        Op::Update { function, body } => update(name, &function, &body),
        Op::Delete { function } => delete(name, maps, &function),
        Op::Publish { function } => publish(name, maps, &function),
        Op::AdvanceClock { ms } => advance(name, maps, ms),
        Op::Share {
            share,
            subnets,
            principals,
            associate,
        } => reshare(name, maps, &share, &subnets, &principals, associate),
    };
    let r = r.map_err(internal)?;
    // A change may be due at once (an ENI that exists is reused at once).
    if r.is_ok() {
        step(name, maps).map_err(internal)?;
    }
    r
}

type Answer = Result<Result<Value, ApiError>>;

fn find(s: &State, function: &str) -> Result<String, ApiError> {
    s.model
        .function(function)
        .map(|f| f.id.clone())
        .ok_or_else(|| ApiError::not_found(function))
}

fn arn(s: &State, fname: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:function:{fname}",
        s.model.region, s.model.account
    )
}

fn claim(name: &str, function: &str, env: usize, qualifier: Option<u32>) -> Answer {
    transact(name, |s, lc| {
        let id = match find(s, function) {
            Ok(id) => id,
            Err(e) => return Ok(Err(e)),
        };
        let id = match qualifier {
            None => id,
            Some(n) => match lifecycle::version_id(&id, n) {
                v if s.model.function(&v).is_some() => v,
                _ => return Ok(Err(ApiError::not_found(&format!("{function}:{n}")))),
            },
        };
        let f = s.model.function(&id).expect("found").clone();
        let now = lc.clock.now_ms();
        let eni_delay = s.eni_delay.as_millis() as u64;
        let st = lc.functions.entry(id.clone()).or_default();
        let not_ready = |m: String| Ok(Err(ApiError::new(502, "ResourceNotReadyException", m)));
        match st.state.as_str() {
            state::ACTIVE => {}
            state::INACTIVE => {
                // The next invocation fails and brings the ENI back.
                let ready =
                    lifecycle::enis_exist(&s.model, f.account.as_deref(), f.vpc_config.as_ref());
                let code = st.state_reason_code.clone();
                let why = st.state_reason.clone().unwrap_or_default();
                *st = FunctionStatus {
                    life: std::mem::take(&mut st.life),
                    ..FunctionStatus::pending("Restoring", 0)
                };
                st.life.pending_until_ms = Some(now + if ready { 0 } else { eni_delay });
                st.life.revision += 1;
                // Reclaimed: ResourceNotReadyException; cut off (a subnet
                // no longer shared): the reason's own error.
                if code != "Idle" {
                    return Ok(Err(ApiError::new(502, Failure::invoke_error(&code), why)));
                }
                return not_ready(
                    "The function is inactive and its VPC connection is no longer available. Wait for the VPC connection to be reestablished and try again.".into(),
                );
            }
            state::FAILED => {
                let code = st.state_reason_code.clone();
                return Ok(Err(ApiError::new(
                    502,
                    Failure::invoke_error(&code),
                    st.state_reason.clone().unwrap_or(code),
                )));
            }
            other => {
                return not_ready(format!(
                    "The operation cannot be performed at this time. The function is currently in the following state: {other}"
                ))
            }
        }
        let envs = f.envs().len();
        if env == 0 || env > envs {
            return Ok(Err(ApiError::invalid(format!(
                "--env {env}: function {} has {envs} execution environment(s) (one per subnet), 1-{envs}",
                f.name
            ))));
        }
        st.life.last_invoked_ms = now;
        let mut vars = f.environment.clone();
        // As at AWS: the function's name, and the version apart.
        let (fname, version) = match &f.version_of {
            Some((of, n)) => (
                s.model
                    .function(of)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                n.to_string(),
            ),
            None => (f.name.clone(), "$LATEST".to_string()),
        };
        vars.insert("AWS_LAMBDA_FUNCTION_NAME".into(), fname);
        vars.insert("AWS_LAMBDA_FUNCTION_VERSION".into(), version);
        vars.insert("AWS_REGION".into(), s.model.region.clone());
        Ok(Ok(json!({
            "Netns": crate::topology::exec_env_netns(name, &f.id, env),
            "Environment": vars,
            "Code": f.code,
            "Version": vars["AWS_LAMBDA_FUNCTION_VERSION"],
        })))
    })
}

/// 409 while the function cannot take a change.
fn conflict(s: &State, fname: &str, st: &FunctionStatus) -> Option<ApiError> {
    if st.state == state::PENDING {
        return Some(ApiError::new(
            409,
            "ResourceConflictException",
            format!(
                "The operation cannot be performed at this time. The function is currently in the following state: {}",
                st.state
            ),
        ));
    }
    (st.last_update_status == "InProgress").then(|| {
        ApiError::new(
            409,
            "ResourceConflictException",
            format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                arn(s, fname)
            ),
        )
    })
}

/// The function a change names (id, function, now), if it can take one.
fn changeable(
    s: &State,
    lc: &mut Lifecycle,
    function: &str,
) -> Result<(String, crate::model::Function, u64), ApiError> {
    let id = find(s, function)?;
    let f = s.model.function(&id).expect("found").clone();
    if let Some(e) = conflict(s, &f.name, lc.functions.entry(id.clone()).or_default()) {
        return Err(e);
    }
    Ok((id, f, lc.clock.now_ms()))
}

/// Detaches function `id` from its ENIs (its connections end).
fn detach(name: &str, maps: &mut PinnedMaps, id: &str) -> Result<()> {
    rewire(name, maps, |m| {
        lifecycle::detach(m, id);
        Ok(())
    })?
    .map_err(|f| anyhow::anyhow!("{}: {}", f.code, f.reason))
}

fn update(name: &str, function: &str, body: &Value) -> Answer {
    let r = transact(name, |s, lc| {
        let (id, f, now) = match changeable(s, lc, function) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let st = lc.functions.entry(id.clone()).or_default();
        let target = match body.get("VpcConfig") {
            None => f.vpc_config.clone(),
            Some(v) => match lifecycle::validate_vpc_config(&s.model, f.account.as_deref(), v) {
                Ok(vc) => vc,
                Err(e) => return Ok(Err(e)),
            },
        };
        // Execution environments were placed when the function was built:
        // each moves to the subnet at its position.
        let have = f.envs().len();
        let want = target.as_ref().map(|v| v.subnets.len()).unwrap_or(1);
        if want != have {
            return Ok(Err(ApiError::invalid(format!(
                "VpcConfig.SubnetIds: function {} has {have} execution environment(s), one per subnet it was created with; an update here keeps that number of subnets (got {want})",
                f.name
            ))));
        }
        if let Some(vars) = body.get("Environment").and_then(|e| e.get("Variables")) {
            let Some(vars) = vars.as_object() else {
                return Ok(Err(ApiError::invalid(
                    "Environment.Variables: a map expected",
                )));
            };
            let fm = s
                .model
                .functions
                .iter_mut()
                .find(|x| x.id == id)
                .expect("found");
            fm.environment = vars
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect();
        }
        st.life.revision += 1;
        st.life.last_modified_ms = now;
        st.life.last_update_status_reason = None;
        st.life.last_update_status_reason_code = None;
        if target != f.vpc_config {
            if st.state == state::ACTIVE {
                // Invocations keep the old ENI until the new one is ready.
                let ready = lifecycle::enis_exist(&s.model, f.account.as_deref(), target.as_ref());
                st.last_update_status = "InProgress".into();
                st.life.update = Some(PendingUpdate {
                    vpc_config: target,
                    ready_at_ms: now
                        + if ready {
                            0
                        } else {
                            s.eni_delay.as_millis() as u64
                        },
                });
            } else {
                // Inactive or Failed: the configuration only; the ENIs come
                // with the next activation.
                let fm = s
                    .model
                    .functions
                    .iter_mut()
                    .find(|x| x.id == id)
                    .expect("found");
                fm.vpc_config = target;
                st.last_update_status = "Successful".into();
            }
        } else {
            st.last_update_status = "Successful".into();
        }
        Ok(Ok(id))
    })?;
    let id = match r {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(configuration(name, &id, None)?))
}

fn publish(name: &str, maps: &mut PinnedMaps, function: &str) -> Answer {
    let r = transact(name, |s, lc| {
        let (id, f, now) = match changeable(s, lc, function) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let st = lc.functions.entry(id.clone()).or_default();
        let version = st
            .life
            .versions
            .iter()
            .map(|v| v.version)
            .max()
            .unwrap_or(0)
            + 1;
        st.life.versions.push(Version {
            version,
            vpc_config: f.vpc_config.clone(),
            last_modified_ms: now,
        });
        Ok(Ok((id, version)))
    })?;
    let (id, v) = match r {
        Ok(x) => x,
        Err(e) => return Ok(Err(e)),
    };
    // The version's own execution environments, on its VpcConfig's ENIs.
    let s = State::load(name)?;
    let f = s.model.function(&id).expect("found").clone();
    let Some((exec_ip, exec_ip6)) = lifecycle::exec_addresses(&s.model, f.vpc_config.as_ref())
    else {
        return Ok(Err(ApiError::new(
            429,
            "TooManyRequestsException",
            "the Lambda service range is full",
        )));
    };
    let version = crate::model::Function {
        id: lifecycle::version_id(&id, v),
        name: format!("{}:{v}", f.name),
        exec_ip,
        exec_ip6,
        eni: None,
        enis: vec![],
        version_of: Some((id.clone(), v)),
        ..f
    };
    if let Err(e) = launch(name, maps, version)? {
        return Ok(Err(e));
    }
    step(name, maps)?;
    Ok(Ok(configuration(name, &id, Some(v))?))
}

fn advance(name: &str, maps: &mut PinnedMaps, ms: u64) -> Answer {
    let answer = transact(name, |_, lc| {
        if !lc.clock.test {
            return Ok(Err(ApiError::invalid(
                "the deployment runs on the real clock (`vpc up --clock test` for one the tests move)",
            )));
        }
        lc.clock.now_ms += ms;
        Ok(Ok(
            json!({ "Now": lifecycle::iso8601(lc.clock.now_ms), "NowMs": lc.clock.now_ms }),
        ))
    })?;
    // Connections' idle times too (the NAT gateway's 350 s, ...), once the
    // store holds the new time: a failed commit moves neither clock.
    if answer.is_ok() {
        maps.advance_clock(ms.saturating_mul(1_000_000))?;
    }
    Ok(answer)
}

/// CreateFunction on the running deployment: its execution environments
/// (one per subnet) are built and joined to the router with the pinned
/// router program, then it is `Pending` / `Creating` like a template's
/// function (`Active` at once without `VpcConfig`).
fn create(name: &str, maps: &mut PinnedMaps, body: &Value, account: Option<String>) -> Answer {
    use base64::Engine as _;
    let s = State::load(name)?;
    let account = account.filter(|a| *a != s.model.account);
    let fname = body["FunctionName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if fname.is_empty()
        || fname.len() > 64
        || !fname
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Ok(Err(ApiError::invalid(
            "FunctionName: 1-64 letters, digits, hyphens or underscores",
        )));
    }
    if s.model.function(&fname).is_some()
        || s.model.hosts.iter().any(|h| h.id == fname)
        || s.nodes.iter().any(|n| n.id == fname)
    {
        return Ok(Err(ApiError::new(
            409,
            "ResourceConflictException",
            format!("Function already exist: {fname}"),
        )));
    }
    let vc = match body.get("VpcConfig") {
        None => None,
        Some(v) => match lifecycle::validate_vpc_config(&s.model, account.as_deref(), v) {
            Ok(vc) => vc,
            Err(e) => return Ok(Err(e)),
        },
    };
    let code = match body["Code"]["ZipFile"].as_str() {
        None => None,
        Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(b) if b.starts_with(b"PK\x03\x04") => return Ok(Err(ApiError::invalid(
                "Code.ZipFile: a zip archive is not supported here; give the handler script itself",
            ))),
            Ok(b) => Some(String::from_utf8_lossy(&b).into_owned()),
            Err(_) => return Ok(Err(ApiError::invalid("Code.ZipFile: not base64"))),
        },
    };
    let environment = body["Environment"]["Variables"]
        .as_object()
        .map(|v| {
            v.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let Some((exec_ip, exec_ip6)) = lifecycle::exec_addresses(&s.model, vc.as_ref()) else {
        return Ok(Err(ApiError::new(
            429,
            "TooManyRequestsException",
            "the Lambda service range is full",
        )));
    };
    let f = crate::model::Function {
        id: fname.clone(),
        name: fname.clone(),
        vpc_config: vc,
        environment,
        exec_ip,
        eni: None,
        exec_ip6,
        enis: vec![],
        code,
        account,
        version_of: None,
    };
    if let Err(e) = launch(name, maps, f)? {
        return Ok(Err(e));
    }
    if body["Publish"].as_bool() == Some(true) {
        if let Ok(Err(e)) = publish(name, maps, &fname) {
            tracing::warn!("publishing {fname}: {e}");
        }
    }
    Ok(Ok(configuration(name, &fname, None)?))
}

/// Builds a new function's execution environments on the running router
/// and records it, `Pending` until its ENIs are ready (at once when its
/// combinations have them), `Active` at once without `VpcConfig`.
fn launch(
    name: &str,
    maps: &mut PinnedMaps,
    f: crate::model::Function,
) -> Result<Result<(), ApiError>> {
    let s = State::load(name)?;
    // Its namespaces go into the state before they exist: `vpc down`
    // removes them whatever happens next.
    let namespaces: Vec<String> = f
        .envs()
        .iter()
        .map(|e| crate::topology::exec_env_netns(name, &f.id, e.n))
        .collect();
    if let Some(ns) = namespaces
        .iter()
        .find(|ns| std::path::Path::new("/run/netns").join(ns).exists())
    {
        return Ok(Err(ApiError::new(
            409,
            "ResourceConflictException",
            format!("network namespace {ns} exists already"),
        )));
    }
    transact(name, |s, _| {
        s.namespaces.extend(namespaces.iter().cloned());
        Ok(())
    })?;
    let first = s
        .nodes
        .iter()
        .filter_map(|n| n.router_if.strip_prefix('r')?.parse::<u16>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let nodes = match add_ports(name, maps, &s, &f, first) {
        Ok(n) => n,
        Err(e) => {
            crate::topology::teardown(&namespaces);
            transact(name, |s, _| {
                s.namespaces.retain(|n| !namespaces.contains(n));
                Ok(())
            })?;
            return Err(e.context(format!("creating {}", f.name)));
        }
    };
    transact(name, |s, lc| {
        let now = lc.clock.now_ms();
        let eni_delay = s.eni_delay.as_millis() as u64;
        let ready = lifecycle::enis_exist(&s.model, f.account.as_deref(), f.vpc_config.as_ref());
        for n in &nodes {
            s.hooks.insert(n.router_if.clone(), s.default_hook);
        }
        s.nodes.extend(nodes.iter().cloned());
        let mut st = if f.vpc_config.is_some() {
            FunctionStatus::pending("Creating", now + if ready { 0 } else { eni_delay })
        } else {
            FunctionStatus::active()
        };
        st.life.last_modified_ms = now;
        st.life.last_invoked_ms = now;
        lc.functions.insert(f.id.clone(), st);
        s.model.functions.push(f);
        s.model.functions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    })?;
    Ok(Ok(()))
}

/// Builds `f`'s execution environments and joins them to the router:
/// their port and endpoint entries first (no ENI yet), then the pinned
/// router program on each new router-side interface (the deployment's
/// default hook).
fn add_ports(
    name: &str,
    maps: &mut PinnedMaps,
    s: &State,
    f: &crate::model::Function,
    first: u16,
) -> Result<Vec<crate::topology::Node>> {
    let nodes = crate::topology::build_function(name, f, first)?;
    let mut model = s.model.clone();
    model.functions.push(f.clone());
    crate::topology::set_function_resolver(name, &model, f)?;
    let links: std::collections::HashMap<String, compile::LinkInfo> = s
        .nodes
        .iter()
        .chain(&nodes)
        .map(|n| (n.id.clone(), n.link))
        .collect();
    let gen = maps.generation()?;
    let entries = compile::compile(&model, &links, gen).map_err(anyhow::Error::msg)?;
    let mine: HashSet<u32> = nodes.iter().map(|n| n.link.ifindex).collect();
    {
        let mut eps: aya::maps::HashMap<_, [u8; 16], Endpoint> =
            aya::maps::HashMap::try_from(maps.map(map_names::ENDPOINTS)?)?;
        for (k, v) in entries
            .endpoints
            .iter()
            .filter(|(_, v)| mine.contains(&v.ifindex))
        {
            eps.insert(k, v, 0)?;
        }
        let mut ports: aya::maps::HashMap<_, u32, PortInfo> =
            aya::maps::HashMap::try_from(maps.map(map_names::PORTS)?)?;
        for (k, v) in entries.ports.iter().filter(|(k, _)| mine.contains(k)) {
            ports.insert(k, v, 0)?;
        }
    }
    for n in &nodes {
        attach_port(name, &s.pin_dir, n, s.default_hook)?;
    }
    Ok(nodes)
}

/// Changes a resource share. Unsharing cuts a participant's functions off
/// at once: detached from their ENIs in the subnets they lost (their
/// connections end), `Inactive` with `InvalidSubnet`; their invocations fail
/// with `InvalidSubnetIDException` and start a restore, which succeeds once
/// the subnet is shared again.
fn reshare(
    name: &str,
    maps: &mut PinnedMaps,
    share: &str,
    subnets: &[String],
    principals: &[String],
    associate: bool,
) -> Answer {
    let s = State::load(name)?;
    let Some(sh) = s.model.share(share) else {
        return Ok(Err(ApiError::new(
            404,
            "UnknownResourceException",
            format!("no resource share {share}"),
        )));
    };
    if let Some(x) = subnets.iter().find(|x| s.model.subnet(x).is_none()) {
        return Ok(Err(ApiError::invalid(format!("no subnet {x}"))));
    }
    if let Some(p) = principals.iter().find(|p| !crate::model::is_account_id(p)) {
        return Ok(Err(ApiError::invalid(format!(
            "{p}: a 12-digit account id"
        ))));
    }
    let id = sh.id.clone();
    let mut cut = vec![];
    rewire(name, maps, |m| {
        let sh = m.shares.iter_mut().find(|x| x.id == id).expect("found");
        if associate {
            sh.subnets.extend(subnets.iter().cloned());
            sh.principals.extend(principals.iter().cloned());
            sh.subnets.sort();
            sh.subnets.dedup();
            sh.principals.sort();
            sh.principals.dedup();
        } else {
            sh.subnets.retain(|x| !subnets.contains(x));
            sh.principals.retain(|x| !principals.contains(x));
        }
        for f in m.functions.clone() {
            let lost: Vec<&String> = f
                .vpc_config
                .iter()
                .flat_map(|v| &v.subnets)
                .filter(|x| !m.subnet_usable(x, f.account.as_deref()))
                .collect();
            if let (Some(x), false) = (lost.first(), f.enis.is_empty()) {
                cut.push((
                    f.id.clone(),
                    (*x).clone(),
                    f.account.clone().unwrap_or_default(),
                ));
                lifecycle::detach(m, &f.id);
            }
        }
        Ok(())
    })?
    .map_err(|f| anyhow::anyhow!("{}", f.reason))?;
    for (fid, subnet, account) in &cut {
        set_status(name, fid, |st| {
            st.state = state::INACTIVE.into();
            st.state_reason_code = "InvalidSubnet".into();
            st.state_reason = Some(format!(
                "The subnet {subnet} is no longer shared with account {account}: the function lost its connection to the VPC"
            ));
            st.life.revision += 1;
        })?;
        tracing::info!("{fid} cut off: {subnet} is no longer shared with {account}");
    }
    let s = State::load(name)?;
    let sh = s.model.shares.iter().find(|x| x.id == id).expect("found");
    Ok(Ok(json!({
        "Name": sh.name,
        "SubnetIds": sh.subnets,
        "Principals": sh.principals,
        "FunctionsCutOff": cut.iter().map(|c| c.0.clone()).collect::<Vec<_>>(),
    })))
}

/// `FunctionConfiguration` of a function (or one of its versions), from the store.
pub fn configuration(name: &str, id: &str, version: Option<u32>) -> Result<Value> {
    let s = State::load(name)?;
    let lc = Lifecycle::load(name)?;
    let f = s.model.function(id).context("function")?;
    let st = lc.functions.get(&f.id).cloned().unwrap_or_default();
    let v = version.and_then(|n| st.life.versions.iter().find(|v| v.version == n));
    // A version reports its own execution environments' state.
    let vst = version.and_then(|n| lc.functions.get(&lifecycle::version_id(&f.id, n)));
    Ok(lifecycle::configuration(&s.model, f, vst.unwrap_or(&st), v))
}

/// DeleteFunction: the function and every published version.
fn delete(name: &str, maps: &mut PinnedMaps, function: &str) -> Answer {
    let s = State::load(name)?;
    let id = match find(&s, function) {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    let versions: Vec<String> = s
        .model
        .functions
        .iter()
        .filter(|f| f.version_of.as_ref().is_some_and(|(of, _)| *of == id))
        .map(|f| f.id.clone())
        .collect();
    for v in versions {
        if let Err(e) = delete_one(name, maps, &v)? {
            return Ok(Err(e));
        }
    }
    delete_one(name, maps, &id)
}

fn delete_one(name: &str, maps: &mut PinnedMaps, id: &str) -> Answer {
    let s = State::load(name)?;
    let id = id.to_string();
    let f = s.model.function(&id).expect("found").clone();
    // Detached first: its connections end, nothing sends through an ENI.
    detach(name, maps, &id)?;
    let nodes: Vec<crate::topology::Node> = f
        .envs()
        .iter()
        .filter_map(|e| s.node(&e.id).cloned())
        .collect();
    let namespaces: Vec<String> = nodes.iter().map(|n| n.netns.clone()).collect();
    // Gone from the model (nothing compiles its ports any more); its
    // namespaces stay listed until they are removed, for `vpc down`.
    transact(name, |s, lc| {
        s.model.functions.retain(|x| x.id != id);
        lifecycle::refresh_eni_functions(&mut s.model);
        s.nodes.retain(|n| !nodes.iter().any(|x| x.id == n.id));
        for n in &nodes {
            s.hooks.remove(&n.router_if);
        }
        lc.functions.remove(&id);
        Ok(())
    })?;
    {
        let mut ports: aya::maps::HashMap<_, u32, PortInfo> =
            aya::maps::HashMap::try_from(maps.map(map_names::PORTS)?)?;
        for n in &nodes {
            let _ = ports.remove(&n.link.ifindex);
        }
        let mut eps: aya::maps::HashMap<_, [u8; 16], Endpoint> =
            aya::maps::HashMap::try_from(maps.map(map_names::ENDPOINTS)?)?;
        for n in &nodes {
            let _ = eps.remove(&v4_mapped(n.ip.octets()));
            if let Some(a) = n.ip6 {
                let _ = eps.remove(&a.octets());
            }
        }
    }
    let errors = crate::topology::teardown(&namespaces);
    for n in &nodes {
        let _ = std::fs::remove_file(s.pin_dir.join("links").join(&n.router_if));
    }
    transact(name, |s, _| {
        s.namespaces.retain(|n| !namespaces.contains(n));
        Ok(())
    })?;
    if !errors.is_empty() {
        tracing::warn!("deleting {}: {}", f.name, errors.join("; "));
    }
    Ok(Ok(Value::Null))
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
    for (id, st) in &lc.functions {
        if st.state == state::PENDING && st.life.pending_until_ms.is_some_and(|t| t <= now) {
            let vc = vpc_of(id);
            let r = rewire(name, maps, |m| {
                lifecycle::attach(m, id, vc, settings.eni_limit)
            })?;
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
        } else if let Some(u) = st.life.update.as_ref().filter(|u| u.ready_at_ms <= now) {
            let vc = u.vpc_config.clone();
            let r = rewire(name, maps, |m| {
                lifecycle::attach(m, id, vc, settings.eni_limit)
            })?;
            set_status(name, id, |st| {
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
            rewire(name, maps, |m| {
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

fn set_status(name: &str, id: &str, f: impl FnOnce(&mut FunctionStatus)) -> Result<()> {
    transact(name, |_, lc| {
        if let Some(st) = lc.functions.get_mut(id) {
            f(st);
        }
        Ok(())
    })
}

/// Applies a change of the model's ENIs and attachments to the datapath:
/// new ENIs' entries, the policy switch (group references follow ENI
/// addresses), ENI groups, each execution environment's port (its
/// connections end when its ENI changes), then deleted ENIs' entries.
/// `Ok(Err)`: the change is refused (nothing changed).
pub fn rewire(
    name: &str,
    maps: &mut PinnedMaps,
    edit: impl FnOnce(&mut Model) -> Result<(), Failure>,
) -> Result<Result<(), Failure>> {
    let _lock = lock(name)?;
    let mut s = State::load(name)?;
    let old = s.model.clone();
    let mut model = old.clone();
    if let Err(f) = edit(&mut model) {
        return Ok(Err(f));
    }
    let (entries, next) = switch_model(&s, maps, &model)?;
    if model != old {
        {
            let mut m: aya::maps::HashMap<_, [u8; 16], Endpoint> =
                aya::maps::HashMap::try_from(maps.map(map_names::ENDPOINTS)?)?;
            for (k, v) in &entries.endpoints {
                if m.get(k, 0).is_err() {
                    m.insert(k, v, 0)?;
                }
            }
            let mut m: aya::maps::HashMap<_, u32, HyperplaneEni> =
                aya::maps::HashMap::try_from(maps.map(map_names::ENIS)?)?;
            for (k, v) in &entries.enis {
                if m.get(k, 0).is_err() {
                    m.insert(k, v, 0)?;
                }
            }
        }
        maps.switch_policy(&entries)?;
        // The policy in force knows the new ENIs: the state says so first.
        s.model = model.clone();
        s.save()?;
        for (id, g) in &entries.eni_groups {
            maps.set_eni_group(*id, g)?;
        }
    }
    // Ports: each execution environment's ENI group as the model has it.
    let addrs: BTreeMap<u32, Vec<[u8; 16]>> = s
        .nodes
        .iter()
        .map(|n| {
            let mut v = vec![v4_mapped(n.ip.octets())];
            v.extend(n.ip6.map(|a| a.octets()));
            (n.link.ifindex, v)
        })
        .collect();
    let mut ended = HashSet::new();
    for (ifindex, port) in entries
        .ports
        .iter()
        .filter(|(_, p)| p.kind == vpc_common::kind::EXEC_ENV)
    {
        let cur: PortInfo = {
            let m: aya::maps::HashMap<_, u32, PortInfo> =
                aya::maps::HashMap::try_from(maps.map(map_names::PORTS)?)?;
            m.get(ifindex, 0).context("port missing")?
        };
        if cur.eni_group != port.eni_group {
            maps.set_port_eni(*ifindex, port.eni_group)?;
            if cur.eni_group != 0 {
                ended.extend(addrs.get(ifindex).cloned().unwrap_or_default());
            }
        }
    }
    if !ended.is_empty() {
        end_connections(maps, &ended)?;
    }
    // IPv6 routes follow Ipv6AllowedForDualStack.
    for f in &model.functions {
        let before = old.function(&f.id).is_some_and(|o| o.ipv6_allowed());
        if f.ipv6_allowed() != before {
            for e in f.envs() {
                let ns = crate::topology::exec_env_netns(name, &f.id, e.n);
                let op = if f.ipv6_allowed() { "replace" } else { "del" };
                let _ = crate::topology::run(
                    "ip",
                    &[
                        "-n",
                        &ns,
                        "-6",
                        "route",
                        op,
                        "default",
                        "via",
                        &crate::model::VPC_ROUTER6.to_string(),
                        "dev",
                        "eth0",
                    ],
                );
            }
        }
    }
    if model != old {
        // Deleted ENIs: nothing sends through them any more.
        let gone: Vec<_> = old
            .enis
            .iter()
            .filter(|e| !model.enis.iter().any(|x| x.index == e.index))
            .collect();
        if !gone.is_empty() {
            let mut m: aya::maps::HashMap<_, u32, HyperplaneEni> =
                aya::maps::HashMap::try_from(maps.map(map_names::ENIS)?)?;
            for e in &gone {
                let _ = m.remove(&e.index);
                let _ = m.remove(&(e.index | compile::ENI_V4_ONLY));
            }
            let mut m: aya::maps::HashMap<_, [u8; 16], Endpoint> =
                aya::maps::HashMap::try_from(maps.map(map_names::ENDPOINTS)?)?;
            for e in &gone {
                let _ = m.remove(&v4_mapped(e.ip.octets()));
                if let Some(a) = e.ip6 {
                    let _ = m.remove(&a.octets());
                }
            }
            let mut m: aya::maps::HashMap<_, u32, vpc_common::EniGroup> =
                aya::maps::HashMap::try_from(maps.map(map_names::ENI_GROUPS)?)?;
            for e in &gone {
                for g in [e.index, e.index | compile::ENI_V4_ONLY] {
                    if !entries.eni_groups.iter().any(|(id, _)| *id == g) {
                        let _ = m.remove(&g);
                    }
                }
            }
        }
        maps.clear_old_generation(next)?;
    }
    Ok(Ok(()))
}

/// Ends the connections of the given (function-side) addresses: both
/// conntrack entries and the NAT port claim. Their next packets find no
/// connection and are dropped (`ct_invalid`, `hyperplane_unsolicited`).
pub fn end_connections(maps: &mut PinnedMaps, addrs: &HashSet<[u8; 16]>) -> Result<usize> {
    let all: Vec<(CtKey, CtEntry)> = maps
        .connections()?
        .into_iter()
        .filter(|(k, _)| addrs.contains(&k.saddr))
        .collect();
    let mut ct: aya::maps::HashMap<_, CtKey, CtEntry> =
        aya::maps::HashMap::try_from(maps.map(map_names::CT)?)?;
    let mut claims = vec![];
    for (k, e) in &all {
        let _ = ct.remove(&e.twin);
        let _ = ct.remove(k);
        claims.extend(datapath::nat_claim(k, e));
    }
    let mut ports: aya::maps::HashMap<_, NatPortKey, CtKey> =
        aya::maps::HashMap::try_from(maps.map(map_names::NAT_PORTS)?)?;
    for c in claims {
        let _ = ports.remove(&c);
    }
    Ok(all.len())
}

/// Attaches the deployment's pinned router program at `hook` on `n`'s
/// router port and pins the link; returns the attach mode. One place for
/// `vpc up` and for ports added at runtime.
pub fn attach_port(
    deployment: &str,
    pin_dir: &std::path::Path,
    n: &Node,
    hook: Hook,
) -> Result<&'static str> {
    let router = topology::router_netns(deployment);
    let pin = pin_dir.join("links").join(&n.router_if);
    match hook {
        Hook::Xdp => {
            let mut prog = datapath::pinned_router(pin_dir)?;
            let ifindex = n.link.ifindex;
            topology::in_netns(&router, || datapath::attach_xdp(&mut prog, ifindex, &pin))
        }
        Hook::Tc => {
            // No XDP on the port: the endpoint keeps its offloads.
            topology::set_tx_offload(deployment, n, true)?;
            let mut prog = datapath::pinned_router_tc(pin_dir)?;
            topology::in_netns(&router, || {
                datapath::attach_tc(&mut prog, &n.router_if, &pin)
            })
        }
    }
}

/// Policy generation switch for a model whose Hyperplane ENIs changed
/// (group references match ENI addresses), the caller holding the lock:
/// compiles `model` into the generation not in force (the caller writes
/// an added ENI's own entries, then switches).
pub(crate) fn switch_model(
    s: &State,
    maps: &mut PinnedMaps,
    model: &Model,
) -> Result<(compile::Entries, u32)> {
    let links: std::collections::HashMap<String, compile::LinkInfo> =
        s.nodes.iter().map(|n| (n.id.clone(), n.link)).collect();
    let next = 1 - maps.generation()?;
    let entries = compile::compile(model, &links, next).map_err(anyhow::Error::msg)?;
    Ok((entries, next))
}
