//! The Lambda API's changes and the lifecycle's timers on the running
//! deployment: what `lifecycle` decides, written to the desired model and
//! applied by the reconciler ([`crate::reconcile::change`]): functions
//! created and deleted, ENIs created and deleted, execution environments
//! attached and detached. Everything here runs on the agent's one loop, so
//! changes never interleave; each one is written to the store.
use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::{
    code,
    lifecycle::{self, state, ApiError, Failure, FunctionStatus, Version},
};

mod function_code;
mod iam;
mod stranded;
mod timers;
use crate::{
    datapath::PinnedMaps,
    reconcile::change,
    state::{transact, Lifecycle, State},
};
use function_code::{check_unreserved, concurrency, update_code};
use timers::advance;
pub use timers::step;

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
        /// Its `Code`, read and checked off the loop ([`code::from_request`]).
        code: Option<code::Source>,
        /// The access key id that signed the request (IAM's caller).
        access_key: Option<String>,
    },
    /// An invocation starts: may it run, and where (`env`, 1-based, or 0:
    /// any of its environments, listed in `Envs`; a published version's own
    /// environments with `qualifier`)?
    Claim {
        function: String,
        env: usize,
        qualifier: Option<u32>,
        /// Invoke's `DryRun`: the checks only (not an invocation: nothing
        /// changes, not even the idle time, and an `Inactive` function is
        /// not restored).
        dry_run: bool,
    },
    Update {
        function: String,
        body: Value,
        /// The access key id that signed the request (IAM's caller).
        access_key: Option<String>,
    },
    Delete {
        function: String,
    },
    Publish {
        function: String,
        /// PublishVersion's `CodeSha256`: only if `$LATEST`'s is this.
        code_sha256: Option<String>,
    },
    /// UpdateFunctionCode (`publish`: and PublishVersion).
    UpdateCode {
        function: String,
        code: code::Source,
        publish: bool,
    },
    /// PutFunctionConcurrency (`Some`) or DeleteFunctionConcurrency.
    Concurrency {
        function: String,
        reserved: Option<u32>,
    },
    /// Every environment of the function (`function`: its id, a version's
    /// own) is busy: one more, up to its concurrency.
    AddEnv {
        function: String,
    },
    /// The reaper's: these replicas of `function` were idle too long.
    RemoveEnvs {
        function: String,
        envs: Vec<usize>,
    },
    /// Moves the test clock forward.
    AdvanceClock {
        ms: u64,
    },
    /// CreateFunctionUrlConfig, UpdateFunctionUrlConfig,
    /// DeleteFunctionUrlConfig ([`super::function_url_config`]).
    FunctionUrl {
        which: super::function_url_config::Which,
        change: super::function_url_config::Change,
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
    let collect = matches!(
        op,
        Op::Create { .. } | Op::UpdateCode { .. } | Op::Delete { .. }
    );
    let r = match op {
        Op::Create {
            body,
            account,
            code,
            access_key,
        } => create(name, maps, &body, account, code, access_key.as_deref()),
        Op::Claim {
            function,
            env,
            qualifier,
            dry_run,
        } => claim(name, &function, env, qualifier, dry_run),
        Op::AddEnv { function } => add_env(name, maps, &function),
        Op::RemoveEnvs { function, envs } => remove_envs(name, maps, &function, &envs),
        Op::Update {
            function,
            body,
            access_key,
        } => update(name, &function, &body, access_key.as_deref()),
        Op::Delete { function } => delete(name, maps, &function),
        Op::Publish {
            function,
            code_sha256,
        } => publish(name, maps, &function, code_sha256.as_deref()),
        Op::UpdateCode {
            function,
            code,
            publish,
        } => update_code(name, maps, &function, code, publish),
        Op::Concurrency { function, reserved } => concurrency(name, &function, reserved),
        Op::AdvanceClock { ms } => advance(name, maps, ms),
        Op::Share {
            share,
            subnets,
            principals,
            associate,
        } => reshare(name, maps, &share, &subnets, &principals, associate),
        Op::FunctionUrl { which, change } => {
            super::function_url_config::change(name, which, change)
        }
    };
    let r = r.map_err(internal)?;
    // Packages no function refers to any more (or that a refused change
    // stored) leave the store.
    if collect {
        if let Err(e) = code::gc(name) {
            tracing::warn!("the code store: {e:#}");
        }
    }
    // A change may be due at once (an ENI that exists is reused at once).
    if r.is_ok() {
        step(name, maps).map_err(internal)?;
    }
    r
}

pub(super) type Answer = Result<Result<Value, ApiError>>;

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

fn claim(name: &str, function: &str, env: usize, qualifier: Option<u32>, dry_run: bool) -> Answer {
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
        // A host of a cluster runs the environments of its own functions.
        if let Some(c) = &s.cluster {
            match crate::model::placement::host_of(&s.model, &id) {
                Some(h) if h != c.host => {
                    return not_ready(format!(
                        "{function} runs on host {h} of cluster {}: invoke it through that host",
                        c.cluster
                    ))
                }
                _ => {}
            }
        }
        match st.state.as_str() {
            state::ACTIVE => {}
            state::INACTIVE if dry_run => {
                let code = st.state_reason_code.clone();
                let why = st.state_reason.clone().unwrap_or_default();
                if code != "Idle" {
                    return Ok(Err(ApiError::new(502, Failure::invoke_error(&code), why)));
                }
                return not_ready(
                    "The function is inactive and its VPC connection is no longer available. Wait for the VPC connection to be reestablished and try again.".into(),
                );
            }
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
            // Pending (creating, restoring): 409, as Lambda answers an
            // invocation of a function it is still configuring.
            other => {
                return Ok(Err(ApiError::new(
                    409,
                    "ResourceConflictException",
                    format!(
                        "The operation cannot be performed at this time. The function is currently in the following state: {other}"
                    ),
                )))
            }
        }
        let envs = f.envs();
        if env > envs.len() || (env > 0 && !envs.iter().any(|e| e.n == env)) {
            return Ok(Err(ApiError::invalid(format!(
                "--env {env}: function {} has {} execution environment(s) now (one per subnet, and those started for concurrent invocations): {}",
                f.name,
                envs.len(),
                envs.iter().map(|e| e.n.to_string()).collect::<Vec<_>>().join(", ")
            ))));
        }
        let env = env.max(1);
        if dry_run {
            return Ok(Ok(json!({})));
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
        let account = f.account.as_deref().unwrap_or(&s.model.account);
        let version_arn = match &f.version_of {
            Some((_, n)) => format!(":{n}"),
            None => String::new(),
        };
        // A function's reserved concurrency counts for its versions too.
        let reserved = match &f.version_of {
            Some((of, _)) => s
                .model
                .function(of)
                .and_then(|p| p.runtime.reserved_concurrency),
            None => f.runtime.reserved_concurrency,
        };
        Ok(Ok(json!({
            "Netns": crate::topology::exec_env_netns(name, &f.id, env),
            "Environment": vars,
            "Code": f.code,
            // Its package in the store, laid out in the task root.
            "Package": f.package.as_ref().map(|p| p.path(name)),
            "CodeSha256": code::digest(&f).0,
            "Version": vars["AWS_LAMBDA_FUNCTION_VERSION"],
            // The Runtime API's (`lambda::runtime`), when the function uses it.
            "RuntimeApi": f.runtime_api().is_some(),
            "Runtime": f.runtime.runtime,
            "Handler": f.runtime.handler,
            "Timeout": f.runtime.timeout,
            "MemorySize": f.runtime.memory_size,
            "ReservedConcurrentExecutions": reserved,
            // Concurrency counts a function with its versions.
            "ConcurrencyKey": f.version_of.as_ref().map_or(f.id.as_str(), |(of, _)| of.as_str()),
            "FunctionArn": format!(
                "arn:aws:lambda:{}:{account}:function:{}{version_arn}",
                s.model.region, vars["AWS_LAMBDA_FUNCTION_NAME"]
            ),
            "EnvId": crate::model::exec_env_id(&f.id, env),
            "N": env,
            "FunctionId": f.id,
            "Now": now,
            "Envs": envs.iter().map(|e| json!({
                "N": e.n,
                "Netns": crate::topology::exec_env_netns(name, &f.id, e.n),
                "EnvId": e.id,
                "Replica": e.n > f.first_envs(),
            })).collect::<Vec<_>>(),
        })))
    })
}

/// One more execution environment for function `id` (every one is busy),
/// unless it has as many as its concurrency allows (its reserved
/// concurrency, else the account's): `{"N": n}`, its number.
fn add_env(name: &str, maps: &mut PinnedMaps, id: &str) -> Answer {
    let mut added = None;
    let r = change(name, maps, |m| {
        let Some(f) = m.functions.iter().find(|f| f.id == id) else {
            return Err(Failure {
                code: "ResourceNotFoundException",
                reason: format!("Function not found: {id}"),
            });
        };
        let limit = f
            .runtime
            .reserved_concurrency
            .unwrap_or(crate::model::MAX_RESERVED_CONCURRENCY) as usize;
        if f.envs().len() >= limit.max(f.first_envs()) {
            return Err(Failure {
                code: "TooManyRequestsException",
                reason: format!(
                    "function {} runs {} execution environments, its concurrency",
                    f.name,
                    f.envs().len()
                ),
            });
        }
        added = m.add_exec_env(id);
        match added {
            Some(_) => Ok(()),
            None => Err(Failure {
                code: "TooManyRequestsException",
                reason: "the Lambda service range has no room for another execution environment in this subnet".into(),
            }),
        }
    })?;
    Ok(match r {
        Ok(()) => Ok(json!({ "N": added })),
        Err(f) => Err(ApiError::new(429, f.code, f.reason)),
    })
}

/// The reaper's: replicas `envs` of function `id` leave the model (their
/// namespaces go with the next reconcile, this one).
fn remove_envs(name: &str, maps: &mut PinnedMaps, id: &str, envs: &[usize]) -> Answer {
    change(name, maps, |m| {
        if let Some(f) = m.functions.iter_mut().find(|f| f.id == id) {
            f.replicas.retain(|r| !envs.contains(&r.n));
        }
        Ok(())
    })?
    .map_err(|f| anyhow::anyhow!("{}", f.reason))?;
    Ok(Ok(json!({})))
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
pub(super) fn detach(name: &str, maps: &mut PinnedMaps, id: &str) -> Result<()> {
    change(name, maps, |m| {
        lifecycle::detach(m, id);
        Ok(())
    })?
    .map_err(|f| anyhow::anyhow!("{}: {}", f.code, f.reason))
}

fn update(name: &str, function: &str, body: &Value, access_key: Option<&str>) -> Answer {
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
        // IAM: the caller's policies, with the VPC settings the function
        // will have; the execution role. A new role is written only once
        // the whole request is valid (below).
        let new_role = match iam::update(&s.model, &f, body, target.as_ref(), access_key) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
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
        if let Some(r) = new_role {
            r.apply(&mut s.model, &id);
        }
        st.life.revision += 1;
        st.life.last_modified_ms = now;
        st.life.last_update_status_reason = None;
        st.life.last_update_status_reason_code = None;
        let delay = s.eni_delay.as_millis() as u64;
        lifecycle::stage_vpc_config(&mut s.model, st, &id, target, now, delay);
        Ok(Ok(id))
    })?;
    let id = match r {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(configuration(name, &id, None)?))
}

fn publish(name: &str, maps: &mut PinnedMaps, function: &str, sha: Option<&str>) -> Answer {
    let r = transact(name, |s, lc| {
        let (id, f, now) = match changeable(s, lc, function) {
            Ok(x) => x,
            Err(e) => return Ok(Err(e)),
        };
        let latest = code::digest(&f).0;
        if let Some(sha) = sha.filter(|h| *h != latest) {
            return Ok(Err(ApiError::invalid(format!(
                "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({latest}). Please try again with the CodeSHA256 in $LATEST."
            ))));
        }
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
        replicas: vec![],
        ..f
    };
    if let Err(e) = launch(name, maps, version)? {
        return Ok(Err(e));
    }
    step(name, maps)?;
    Ok(Ok(configuration(name, &id, Some(v))?))
}

/// CreateFunction on the running deployment: its execution environments
/// (one per subnet) are built and joined to the router with the pinned
/// router program, then it is `Pending` / `Creating` like a template's
/// function (`Active` at once without `VpcConfig`).
fn create(
    name: &str,
    maps: &mut PinnedMaps,
    body: &Value,
    account: Option<String>,
    source: Option<code::Source>,
    access_key: Option<&str>,
) -> Answer {
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
    // IAM: the caller's policies, then the execution role.
    let (role, role_known) = match iam::create(
        &s.model,
        body,
        account.as_deref(),
        &fname,
        vc.as_ref(),
        access_key,
    ) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let (code, package) = match source {
        None => (None, None),
        Some(code::Source::Inline(c)) => (Some(c), None),
        Some(code::Source::Package(p)) => (None, Some(p)),
    };
    let runtime = match runtime_config(body) {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
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
        package,
        account,
        version_of: None,
        runtime,
        replicas: vec![],
        role,
        role_known,
    };
    if let Some(e) = code::needs_runtime(&f) {
        return Ok(Err(ApiError::invalid(e)));
    }
    if let Some(n) = f.runtime.reserved_concurrency {
        if let Err(e) = check_unreserved(&s.model, &f.id, n) {
            return Ok(Err(e));
        }
    }
    if let Err(e) = launch(name, maps, f)? {
        return Ok(Err(e));
    }
    if body["Publish"].as_bool() == Some(true) {
        if let Ok(Err(e)) = publish(name, maps, &fname, None) {
            tracing::warn!("publishing {fname}: {e}");
        }
    }
    Ok(Ok(configuration(name, &fname, None)?))
}

/// CreateFunction's `Runtime`, `Handler`, `Timeout` and `MemorySize`, with
/// AWS's defaults and bounds.
fn runtime_config(body: &Value) -> Result<crate::model::RuntimeConfig, ApiError> {
    use crate::model::{DEFAULT_MEMORY_SIZE, DEFAULT_TIMEOUT};
    let string = |k: &str| -> Result<Option<String>, ApiError> {
        match &body[k] {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            _ => Err(ApiError::invalid(format!("{k}: a string expected"))),
        }
    };
    let number = |k: &str, default: u32| -> Result<u32, ApiError> {
        match &body[k] {
            Value::Null => Ok(default),
            v => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::invalid(format!("{k}: a whole number expected"))),
        }
    };
    let rc = crate::model::RuntimeConfig {
        runtime: string("Runtime")?,
        handler: string("Handler")?,
        timeout: number("Timeout", DEFAULT_TIMEOUT)?,
        memory_size: number("MemorySize", DEFAULT_MEMORY_SIZE)?,
        reserved_concurrency: match body.get("ReservedConcurrentExecutions") {
            None | Some(Value::Null) => None,
            Some(_) => Some(number("ReservedConcurrentExecutions", 0)?),
        },
    };
    rc.validate(&|f| f.to_string())
        .map_err(|(f, e)| ApiError::invalid(format!("{f}: {e}")))?;
    Ok(rc)
}

/// Adds a new function to the desired model and reconciles: its
/// execution environments are built on the running router, and it is
/// `Pending` until its ENIs are ready (at once when its combinations have
/// them), `Active` at once without `VpcConfig`. If it cannot be built it
/// is taken out again and the error returned.
fn launch(
    name: &str,
    maps: &mut PinnedMaps,
    f: crate::model::Function,
) -> Result<Result<(), ApiError>> {
    if let Some(ns) = f
        .envs()
        .iter()
        .map(|e| crate::topology::exec_env_netns(name, &f.id, e.n))
        .find(|ns| std::path::Path::new("/run/netns").join(ns).exists())
    {
        return Ok(Err(ApiError::new(
            409,
            "ResourceConflictException",
            format!("network namespace {ns} exists already"),
        )));
    }
    let (id, fname) = (f.id.clone(), f.name.clone());
    let built = change(name, maps, |m| {
        // Stored with the model that refers to it (under the lock).
        if let Some(p) = &f.package {
            code::store(name, p).map_err(|e| Failure {
                code: "ServiceException",
                reason: format!("{e:#}"),
            })?;
        }
        m.functions.push(f);
        m.functions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    });
    match built {
        Ok(r) => Ok(r.map_err(|f| ApiError::invalid(f.reason))),
        Err(e) => {
            let _ = change(name, maps, |m| {
                m.functions.retain(|x| x.id != id);
                Ok(())
            });
            Err(e.context(format!("creating {fname}")))
        }
    }
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
    change(name, maps, |m| {
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
    // Lambda deletes the ENIs with the function's role: gone, they stay.
    let f = s.model.function(&id).expect("found").clone();
    let lc = Lifecycle::load(name)?;
    let left = if stranded::lost_role(&s.model, &f) {
        stranded::combinations_of(&s.model, &lc, &f)
    } else {
        vec![]
    };
    for v in versions {
        if let Err(e) = delete_one(name, maps, &v, &[], &lc)? {
            return Ok(Err(e));
        }
    }
    delete_one(name, maps, &id, &left, &lc)
}

/// Out of the desired model (detached first: its connections end,
/// nothing sends through an ENI), then reconciled: its execution
/// environments go, and its lifecycle state.
/// `left`: combinations whose ENIs Lambda cannot delete (its role is
/// gone), stranded in the same change if nothing else uses them.
fn delete_one(
    name: &str,
    maps: &mut PinnedMaps,
    id: &str,
    left: &[lifecycle::Combination],
    lc: &Lifecycle,
) -> Answer {
    let id = id.to_string();
    let mut kept = vec![];
    change(name, maps, |m| {
        let f = m.function(&id).cloned();
        lifecycle::detach(m, &id);
        m.functions.retain(|x| x.id != id);
        // Its function URL goes with it, as at AWS.
        m.function_urls.retain(|u| u.function != id);
        lifecycle::refresh_eni_functions(m);
        kept = lifecycle::strand_enis(m, left, lifecycle::lives(&lc.functions));
        stranded::log(f.as_ref(), &kept);
        Ok(())
    })?
    .map_err(|f| anyhow::anyhow!("{}", f.reason))?;
    Ok(Ok(Value::Null))
}

pub(super) fn set_status(name: &str, id: &str, f: impl FnOnce(&mut FunctionStatus)) -> Result<()> {
    transact(name, |_, lc| {
        if let Some(st) = lc.functions.get_mut(id) {
            f(st);
        }
        Ok(())
    })
}
