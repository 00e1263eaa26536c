//! The function and Hyperplane ENI lifecycle, as AWS documents it (pure:
//! no kernel; the agent applies what it decides through `reconcile`).
//!
//! ```text
//!  create / up ──► Pending (Creating) ──ENI ready──► Active ──idle period──► Inactive (Idle)
//!                      │ no address / ENI quota          ▲ │                   │ invoke: fails,
//!                      ▼                                 │ │ UpdateFunction-   ▼ ResourceNotReady
//!                  Failed (SubnetOutOfIPAddresses,       │ │ Configuration     Pending (Restoring)
//!                          EniLimitExceeded, ...)        │ ▼                     │ ENI ready
//!                                                LastUpdateStatus InProgress     └──► Active
//!                                                 └─► Successful | Failed (reason)
//! ```
//!
//! Times are on the deployment's [`Clock`]: real time, or a test clock that
//! only moves when told (`POST /_vpc/clock`), so days of idleness pass in
//! milliseconds.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::model::{Function, FunctionVpc, HyperplaneEniSpec, Model};

/// The deployment's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// A test clock: stands still at `now_ms` until advanced.
    pub test: bool,
    pub now_ms: u64,
}

pub fn real_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Clock {
    /// A test clock starts at the real time (timestamps look like dates).
    pub fn new(test: bool) -> Self {
        Self {
            test,
            now_ms: real_ms(),
        }
    }
    pub fn now_ms(&self) -> u64 {
        if self.test {
            self.now_ms
        } else {
            real_ms()
        }
    }
}

/// Delays and quotas of the lifecycle (`vpc up` flags).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// A function unused this long loses its ENI and becomes Inactive
    /// (the seed's figure: 30 days; AWS says "consecutive weeks").
    pub idle_reclaim: Duration,
    /// An ENI no function or version uses is deleted after this (AWS: up
    /// to 20 minutes).
    pub eni_delete_delay: Duration,
    /// Hyperplane ENIs per VPC (AWS: 250 by default).
    pub eni_limit: usize,
    /// An execution environment idle this long is reaped (AWS: minutes,
    /// undocumented; ours: 10 minutes).
    #[serde(default = "default_env_idle")]
    pub env_idle: Duration,
}

fn default_env_idle() -> Duration {
    Duration::from_secs(600)
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle_reclaim: Duration::from_secs(30 * 86_400),
            eni_delete_delay: Duration::from_secs(20 * 60),
            eni_limit: 250,
            env_idle: default_env_idle(),
        }
    }
}

/// A published version: its own `VpcConfig`, which keeps its ENIs alive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub version: u32,
    pub vpc_config: Option<FunctionVpc>,
    pub last_modified_ms: u64,
}

/// An `UpdateFunctionConfiguration` whose ENIs are being created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingUpdate {
    pub vpc_config: Option<FunctionVpc>,
    pub ready_at_ms: u64,
}

/// The timers and history of one function (kept with its status).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionLife {
    /// Pending until then (its ENIs are being created).
    #[serde(default)]
    pub pending_until_ms: Option<u64>,
    #[serde(default)]
    pub last_invoked_ms: u64,
    #[serde(default)]
    pub last_modified_ms: u64,
    #[serde(default)]
    pub update: Option<PendingUpdate>,
    #[serde(default)]
    pub last_update_status_reason: Option<String>,
    #[serde(default)]
    pub last_update_status_reason_code: Option<String>,
    #[serde(default)]
    pub versions: Vec<Version>,
    /// Bumped by every change (`RevisionId`).
    #[serde(default)]
    pub revision: u64,
}

/// Lambda function lifecycle, as `GetFunction` reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FunctionStatus {
    pub state: String,
    pub state_reason_code: String,
    pub last_update_status: String,
    /// Why, in words (`StateReason`), when the agent could not scale.
    #[serde(default)]
    pub state_reason: Option<String>,
    /// Timers, pending update, versions (`lifecycle`).
    #[serde(default)]
    pub life: FunctionLife,
}

impl FunctionStatus {
    /// `Pending` / `Creating` until `until_ms` on the deployment's clock.
    pub fn pending(code: &str, until_ms: u64) -> Self {
        Self {
            state: "Pending".into(),
            state_reason_code: code.into(),
            last_update_status: "InProgress".into(),
            state_reason: None,
            life: FunctionLife {
                pending_until_ms: Some(until_ms),
                ..Default::default()
            },
        }
    }
    pub fn active() -> Self {
        Self {
            state: "Active".into(),
            state_reason_code: "Idle".into(),
            last_update_status: "Successful".into(),
            ..Default::default()
        }
    }
}

/// A lifecycle failure: AWS's reason code, the invocation error it maps
/// to, and why in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: &'static str,
    pub reason: String,
}

impl Failure {
    /// The `Invoke` error (HTTP 502) of a function failed for this reason.
    pub fn invoke_error(code: &str) -> &'static str {
        match code {
            "SubnetOutOfIPAddresses" => "SubnetIPAddressLimitReachedException",
            "EniLimitExceeded" => "ENILimitReachedException",
            "InvalidSubnet" => "InvalidSubnetIDException",
            "InvalidSecurityGroup" => "InvalidSecurityGroupIDException",
            _ => "ResourceNotReadyException",
        }
    }
}

/// A (subnet, security-group set) in an account (`None`: the owner's):
/// one Hyperplane ENI group.
pub type Combination = (String, Vec<String>, Option<String>);

pub fn combinations(account: Option<&str>, vc: Option<&FunctionVpc>) -> Vec<Combination> {
    vc.map(|v| {
        v.subnets
            .iter()
            .map(|s| (s.clone(), v.groups.clone(), account.map(str::to_string)))
            .collect()
    })
    .unwrap_or_default()
}

/// Is `e` Lambda's ENI of combination `c`? (One Lambda lost, `available`,
/// is no combination's.)
fn is_of(e: &HyperplaneEniSpec, c: &Combination) -> bool {
    !e.available && e.subnet == c.0 && e.groups == c.1 && e.account == c.2
}

/// The first ENI of a combination's group, if it has one.
pub fn group_first(m: &Model, c: &Combination) -> Option<u32> {
    m.enis.iter().filter(|e| is_of(e, c)).map(|e| e.index).min()
}

/// Does every combination of `vc` have an ENI already (reused at once)?
pub fn enis_exist(m: &Model, account: Option<&str>, vc: Option<&FunctionVpc>) -> bool {
    combinations(account, vc)
        .iter()
        .all(|c| group_first(m, c).is_some())
}

fn unshared(c: &Combination) -> Failure {
    Failure {
        code: "InvalidSubnet",
        reason: format!(
            "The subnet {} is not shared with account {}: the function has no connection to its VPC",
            c.0,
            c.2.as_deref().unwrap_or_default()
        ),
    }
}

/// Creates the ENI of `c` in `m` ([`Model::allocate_eni`]: an address of
/// its subnet, and of its IPv6 block in a dual-stack subnet), after the
/// checks of the Lambda service: the subnet exists and is shared with the
/// function's account, the groups exist, the VPC's ENI quota.
fn create_eni(m: &mut Model, c: &Combination, limit: usize) -> Result<u32, Failure> {
    let sn = m.subnet(&c.0).cloned().ok_or_else(|| Failure {
        code: "InvalidSubnet",
        reason: format!("The subnet {} does not exist", c.0),
    })?;
    if !m.subnet_usable(&c.0, c.2.as_deref()) {
        return Err(unshared(c));
    }
    if let Some(g) = c.1.iter().find(|g| m.group(g).is_none()) {
        return Err(Failure {
            code: "InvalidSecurityGroup",
            reason: format!("The security group {g} does not exist"),
        });
    }
    let in_vpc = m.enis.iter().filter(|e| e.vpc == sn.vpc).count();
    if in_vpc >= limit {
        return Err(Failure {
            code: "EniLimitExceeded",
            reason: format!(
                "Lambda was not able to create an ENI in the VPC {} of the Lambda function because the limit for Network Interfaces ({limit}) has been reached",
                sn.vpc
            ),
        });
    }
    m.allocate_eni(&c.0, &c.1, c.2.as_deref(), false)
        .map_err(|e| Failure {
            code: e.code(),
            reason: e.reason(),
        })
}

/// Gives function `id` the configuration `vc` and attaches its execution
/// environments to the ENIs of its combinations, creating those missing.
/// Nothing changes on failure.
pub fn attach(
    m: &mut Model,
    id: &str,
    vc: Option<FunctionVpc>,
    limit: usize,
) -> Result<(), Failure> {
    let mut next = m.clone();
    let mut enis = vec![];
    let account = m.function(id).and_then(|f| f.account.clone());
    for c in combinations(account.as_deref(), vc.as_ref()) {
        // An ENI that still exists is no way into a subnet no longer shared.
        if !next.subnet_usable(&c.0, c.2.as_deref()) {
            return Err(unshared(&c));
        }
        let i = match group_first(&next, &c) {
            Some(i) => i,
            None => create_eni(&mut next, &c, limit)?,
        };
        enis.push(i);
    }
    let f = next
        .functions
        .iter_mut()
        .find(|f| f.id == id)
        .expect("known function");
    // Replicas were placed by subnet number: other subnets, none (the
    // next concurrent invocations start them again).
    if f.vpc_config.as_ref().map(|v| &v.subnets) != vc.as_ref().map(|v| &v.subnets) {
        f.replicas.clear();
    }
    f.vpc_config = vc;
    f.eni = enis.first().copied();
    f.enis = enis;
    refresh_eni_functions(&mut next);
    *m = next;
    Ok(())
}

/// Addresses for a new function's execution environments: the next offset
/// in the Lambda service range (`model::FUNCTION_OFFSETS`), and IPv6 when
/// every subnet is dual-stack. `None`: the range is full.
pub fn exec_addresses(
    m: &Model,
    vc: Option<&crate::model::FunctionVpc>,
) -> Option<(std::net::Ipv4Addr, Option<std::net::Ipv6Addr>)> {
    let base = u32::from(crate::model::LAMBDA_GATEWAY) - 1;
    let offset = m
        .functions
        .iter()
        .map(|f| u32::from(f.exec_ip) - base + 1)
        .max()
        .unwrap_or(10)
        .max(10);
    if offset >= crate::model::FUNCTION_OFFSETS {
        return None;
    }
    let dual = vc.is_some_and(|v| {
        v.subnets
            .iter()
            .all(|x| m.subnet(x).is_some_and(|sn| sn.is_dual_stack()))
    });
    let lambda6: ipnet::Ipv6Net = crate::model::LAMBDA_SERVICE_CIDR6
        .parse()
        .expect("constant");
    Some((
        std::net::Ipv4Addr::from(base + offset),
        dual.then(|| std::net::Ipv6Addr::from(u128::from(lambda6.network()) + offset as u128)),
    ))
}

/// UpdateFunctionConfiguration's `VpcConfig` (`target`) for function `id`
/// with status `st`: an `Active` function keeps its ENIs until the new
/// ones are ready (`LastUpdateStatus` `InProgress`, then the agent's timer
/// attaches it); an `Inactive` or `Failed` one takes the configuration
/// only, its ENIs come with the next activation.
pub fn stage_vpc_config(
    m: &mut Model,
    st: &mut FunctionStatus,
    id: &str,
    target: Option<FunctionVpc>,
    now: u64,
    eni_delay_ms: u64,
) {
    let Some(f) = m.functions.iter().find(|x| x.id == id) else {
        return;
    };
    if target == f.vpc_config {
        st.last_update_status = "Successful".into();
    } else if st.state == state::ACTIVE {
        let ready = enis_exist(m, f.account.as_deref(), target.as_ref());
        st.last_update_status = "InProgress".into();
        st.life.update = Some(PendingUpdate {
            vpc_config: target,
            ready_at_ms: now + if ready { 0 } else { eni_delay_ms },
        });
    } else {
        if let Some(f) = m.functions.iter_mut().find(|x| x.id == id) {
            f.vpc_config = target;
        }
        st.last_update_status = "Successful".into();
    }
}

/// Detaches function `id` from its ENIs (no route into any VPC); its
/// configuration stays.
pub fn detach(m: &mut Model, id: &str) {
    if let Some(f) = m.functions.iter_mut().find(|f| f.id == id) {
        f.eni = None;
        f.enis.clear();
        f.replicas.clear();
    }
    refresh_eni_functions(m);
}

/// Each ENI's `functions`: those attached to its combination.
pub fn refresh_eni_functions(m: &mut Model) {
    let users: Vec<(Combination, String)> = m
        .functions
        .iter()
        .filter(|f| !f.enis.is_empty())
        .flat_map(|f| {
            combinations(f.account.as_deref(), f.vpc_config.as_ref())
                .into_iter()
                .map(|c| (c, f.name.clone()))
        })
        .collect();
    for e in &mut m.enis {
        let mut names: Vec<String> = users
            .iter()
            .filter(|(c, _)| is_of(e, c))
            .map(|(_, n)| n.clone())
            .collect();
        names.sort();
        names.dedup();
        e.functions = names;
    }
}

/// Combinations something still needs: attached functions, functions on
/// their way to a configuration (pending, or updating), published versions.
pub fn combinations_in_use<'a>(
    m: &Model,
    lives: impl Iterator<Item = (&'a str, &'a FunctionLife)>,
) -> BTreeSet<Combination> {
    let mut used: BTreeSet<Combination> = m
        .functions
        .iter()
        .filter(|f| !f.enis.is_empty())
        .flat_map(|f| combinations(f.account.as_deref(), f.vpc_config.as_ref()))
        .collect();
    for (id, life) in lives {
        let Some(f) = m.function(id) else { continue };
        let account = f.account.as_deref();
        if life.pending_until_ms.is_some() {
            used.extend(combinations(account, f.vpc_config.as_ref()));
        }
        if let Some(u) = &life.update {
            used.extend(combinations(account, u.vpc_config.as_ref()));
        }
        for v in &life.versions {
            used.extend(combinations(account, v.vpc_config.as_ref()));
        }
    }
    used
}

/// The combinations of `m`'s ENIs that nothing uses.
pub fn unused_combinations(m: &Model, used: &BTreeSet<Combination>) -> BTreeSet<Combination> {
    m.enis
        .iter()
        .filter(|e| !e.available)
        .map(|e| (e.subnet.clone(), e.groups.clone(), e.account.clone()))
        .filter(|c| !used.contains(c))
        .collect()
}

/// A function whose execution role is gone left combinations `left`: the
/// ENIs of those nothing uses any more (`lives`: the functions' pending
/// changes and versions) are ones Lambda cannot delete. They stay,
/// `available`, with no function, until deleted by hand
/// ([`Model::delete_network_interface`]). Returns their ids.
pub fn strand_enis<'a>(
    m: &mut Model,
    left: &[Combination],
    lives: impl Iterator<Item = (&'a str, &'a FunctionLife)>,
) -> Vec<String> {
    let used = combinations_in_use(m, lives);
    let mut ids = vec![];
    for c in left.iter().filter(|c| !used.contains(*c)) {
        for e in m.enis.iter_mut().filter(|e| is_of(e, c)) {
            e.available = true;
            e.functions.clear();
            ids.push(e.id.clone());
        }
    }
    ids
}

/// Deletes every ENI of combination `c`.
pub fn delete_enis(m: &mut Model, c: &Combination) {
    m.enis.retain(|e| !is_of(e, c));
}

/// An API error: HTTP status, `x-amzn-ErrorType`, message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterValueException", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            404,
            "ResourceNotFoundException",
            format!("Function not found: {what}"),
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// `VpcConfig` of an API request, validated as Lambda does, against the
/// running deployment: `None` for an empty one (no VPC).
pub fn validate_vpc_config(
    m: &Model,
    account: Option<&str>,
    v: &serde_json::Value,
) -> Result<Option<FunctionVpc>, ApiError> {
    let list = |k: &str| -> Result<Vec<String>, ApiError> {
        match v.get(k) {
            None | Some(serde_json::Value::Null) => Ok(vec![]),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::invalid(format!("VpcConfig.{k}: strings expected"))
                    })
                })
                .collect(),
            Some(_) => Err(ApiError::invalid(format!("VpcConfig.{k}: a list expected"))),
        }
    };
    // The EC2 API's subnets and groups by their EC2 ids too (docs/ec2.md).
    let ec2_id = |x: String, known: &dyn Fn(&str) -> bool| match crate::ec2::ids::logical(&x) {
        Some(l) if !known(&x) && known(&l) => l,
        _ => x,
    };
    let mut subnets: Vec<String> = list("SubnetIds")?
        .into_iter()
        .map(|s| ec2_id(s, &|x| m.subnet(x).is_some()))
        .collect();
    let mut seen = BTreeSet::new();
    subnets.retain(|s| seen.insert(s.clone()));
    let mut groups: Vec<String> = list("SecurityGroupIds")?
        .into_iter()
        .map(|g| ec2_id(g, &|x| m.group(x).is_some()))
        .collect();
    let ipv6 = v
        .get("Ipv6AllowedForDualStack")
        .and_then(|b| b.as_bool())
        .unwrap_or(false);
    if subnets.is_empty() && groups.is_empty() {
        return Ok(None);
    }
    if subnets.is_empty() || groups.is_empty() {
        return Err(ApiError::invalid(
            "Subnets and SecurityGroups must coexist or be both empty list.",
        ));
    }
    if subnets.len() > crate::model::MAX_VPC_CONFIG_SUBNETS {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value at 'vpcConfig.subnetIds' failed to satisfy constraint: Member must have length less than or equal to {}",
            crate::model::MAX_VPC_CONFIG_SUBNETS
        )));
    }
    if groups.len() > crate::model::MAX_VPC_CONFIG_GROUPS {
        return Err(ApiError::invalid(format!(
            "1 validation error detected: Value at 'vpcConfig.securityGroupIds' failed to satisfy constraint: Member must have length less than or equal to {}",
            crate::model::MAX_VPC_CONFIG_GROUPS
        )));
    }
    let mut vpc: Option<String> = None;
    for s in &subnets {
        let sn = m.subnet(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. EC2 Error Message: The subnet ID '{s}' does not exist"
            ))
        })?;
        if !m.subnet_usable(s, account) {
            return Err(ApiError::invalid(format!(
                "Error occurred while DescribeSubnets. EC2 Error Code: InvalidSubnetID.NotFound. EC2 Error Message: The subnet ID '{s}' does not exist (it is not shared with account {})",
                account.unwrap_or_default()
            )));
        }
        match &vpc {
            Some(x) if *x != sn.vpc => {
                return Err(ApiError::invalid(
                    "Subnets in the VpcConfig must all belong to the same VPC.",
                ))
            }
            _ => vpc = Some(sn.vpc.clone()),
        }
    }
    let vpc = vpc.expect("non-empty");
    for g in &groups {
        match m.group(g) {
            None => {
                return Err(ApiError::invalid(format!(
                    "Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. EC2 Error Message: The security group '{g}' does not exist"
                )))
            }
            Some(_) if !m.group_usable(g, account) => {
                return Err(ApiError::invalid(format!(
                    "Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. EC2 Error Message: The security group '{g}' does not exist (not shared with account {})",
                    account.unwrap_or_default()
                )))
            }
            Some(sg) if sg.vpc != vpc => {
                return Err(ApiError::invalid(format!(
                    "Security group {g} and the subnets are in different VPCs."
                )))
            }
            _ => {}
        }
    }
    if ipv6 {
        if let Some(s) = subnets
            .iter()
            .find(|s| !m.subnet(s).is_some_and(|x| x.is_dual_stack()))
        {
            return Err(ApiError::invalid(format!(
                "Ipv6AllowedForDualStack is set but subnet {s} is not dual-stack: every subnet must have an IPv6 CIDR block."
            )));
        }
    }
    groups.sort();
    groups.dedup();
    Ok(Some(FunctionVpc {
        vpc,
        subnets,
        groups,
        ipv6_allowed_for_dual_stack: ipv6,
    }))
}

/// What `VpcConfig` looks like in Lambda's responses.
pub fn vpc_config_json(vc: Option<&FunctionVpc>) -> serde_json::Value {
    match vc {
        Some(v) => serde_json::json!({
            "SubnetIds": v.subnets.iter().map(|x| crate::ec2::ids::shown(x)).collect::<Vec<_>>(),
            "SecurityGroupIds": v.groups.iter().map(|x| crate::ec2::ids::shown(x)).collect::<Vec<_>>(),
            "VpcId": crate::ec2::ids::shown(&v.vpc),
            "Ipv6AllowedForDualStack": v.ipv6_allowed_for_dual_stack,
        }),
        None => serde_json::json!({
            "SubnetIds": [], "SecurityGroupIds": [], "VpcId": "", "Ipv6AllowedForDualStack": false,
        }),
    }
}

/// Lambda's `LastModified` format.
pub fn iso8601(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}+0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The function's `FunctionConfiguration`.
#[allow(clippy::too_many_arguments)]
pub fn configuration(
    m: &Model,
    f: &Function,
    st: &FunctionStatus,
    version: Option<&Version>,
) -> serde_json::Value {
    let life = &st.life;
    let (vc, ver, modified) = match version {
        Some(v) => (
            v.vpc_config.as_ref(),
            v.version.to_string(),
            v.last_modified_ms,
        ),
        None => (
            f.vpc_config.as_ref(),
            "$LATEST".to_string(),
            life.last_modified_ms,
        ),
    };
    // A participant's function is in its own account.
    let account = f.account.as_deref().unwrap_or(&m.account);
    // A version's code is its own (what `$LATEST` had when published).
    let code_of = version
        .and_then(|v| m.function(&version_id(&f.id, v.version)))
        .unwrap_or(f);
    let (sha256, size) = crate::lambda::code::digest(code_of);
    let arn = format!("arn:aws:lambda:{}:{account}:function:{}", m.region, f.name);
    let mut c = serde_json::json!({
        "FunctionName": f.name,
        "FunctionArn": if version.is_some() { format!("{arn}:{ver}") } else { arn },
        // A function without `Runtime` (a shell script) reports what
        // runs it as a custom runtime would.
        "Runtime": f.runtime.runtime.as_deref().unwrap_or("provided.al2023"),
        "Role": f.role.clone().unwrap_or_else(|| format!("arn:aws:iam::{account}:role/{}-role", f.name)),
        "Handler": f.runtime.handler.as_deref().unwrap_or("bootstrap"),
        "CodeSize": size,
        "Description": "",
        "Timeout": f.runtime.timeout,
        "MemorySize": f.runtime.memory_size,
        "LastModified": iso8601(modified),
        "CodeSha256": sha256,
        "Version": ver,
        "VpcConfig": vpc_config_json(vc),
        "Environment": {"Variables": f.environment},
        "RevisionId": format!("{:08x}-0000-4000-8000-{:012x}", crate::model::fnv1a(&f.id) as u32, life.revision),
        "State": st.state,
        "LastUpdateStatus": st.last_update_status,
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
    });
    let o = c.as_object_mut().expect("object");
    if st.state != "Active" || st.state_reason_code != "Idle" {
        o.insert(
            "StateReasonCode".into(),
            st.state_reason_code.clone().into(),
        );
    }
    if let Some(r) = &st.state_reason {
        o.insert("StateReason".into(), r.clone().into());
    }
    if let Some(r) = &life.last_update_status_reason {
        o.insert("LastUpdateStatusReason".into(), r.clone().into());
    }
    if let Some(r) = &life.last_update_status_reason_code {
        o.insert("LastUpdateStatusReasonCode".into(), r.clone().into());
    }
    c
}

/// The model id of version `n` of function `id` (its own execution
/// environments): `<id>.v<n>`, which no logical id or FunctionName is.
pub fn version_id(id: &str, n: u32) -> String {
    format!("{id}.v{n}")
}

/// Functions' state names, as AWS spells them.
pub mod state {
    pub const PENDING: &str = "Pending";
    pub const ACTIVE: &str = "Active";
    pub const INACTIVE: &str = "Inactive";
    pub const FAILED: &str = "Failed";
}

/// `BTreeMap` of the function statuses, for iteration with their lives.
pub fn lives(fs: &BTreeMap<String, FunctionStatus>) -> impl Iterator<Item = (&str, &FunctionLife)> {
    fs.iter().map(|(k, v)| (k.as_str(), &v.life))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const T: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}
  A: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  B: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/28}}
  C: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Other, CidrBlock: 10.1.1.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: fn, VpcId: !Ref Vpc}}
  Sg2: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: fn, VpcId: !Ref Vpc}}
  F:
    Type: AWS::Lambda::Function
    Properties:
      VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}
"#;

    fn model() -> Model {
        crate::model::build(T, &HashMap::new(), "t").unwrap()
    }

    #[test]
    fn vpc_config_is_validated_as_lambda_does() {
        let m = model();
        let err = |v: serde_json::Value| validate_vpc_config(&m, None, &v).unwrap_err().message;
        let subnets: Vec<String> = (0..17).map(|_| "A".to_string()).collect();
        // A subnet listed twice counts once, as at AWS; 17 distinct would not fit.
        assert!(validate_vpc_config(
            &m,
            None,
            &serde_json::json!({"SubnetIds": subnets, "SecurityGroupIds": ["Sg"]})
        )
        .is_ok());
        let many: Vec<String> = (0..17).map(|i| format!("S{i}")).collect();
        assert!(
            err(serde_json::json!({"SubnetIds": many, "SecurityGroupIds": ["Sg"]}))
                .contains("less than or equal to 16")
        );
        let groups: Vec<String> = (0..6).map(|i| format!("G{i}")).collect();
        assert!(
            err(serde_json::json!({"SubnetIds": ["A"], "SecurityGroupIds": groups}))
                .contains("less than or equal to 5")
        );
        assert!(err(serde_json::json!({"SecurityGroupIds": ["Sg"]})).contains("coexist"));
        assert!(
            err(serde_json::json!({"SubnetIds": ["A", "C"], "SecurityGroupIds": ["Sg"]}))
                .contains("same VPC")
        );
        assert!(err(serde_json::json!({"SubnetIds": ["A"], "SecurityGroupIds": ["Sg"], "Ipv6AllowedForDualStack": true})).contains("dual-stack"));
        assert!(
            err(serde_json::json!({"SubnetIds": ["Nope"], "SecurityGroupIds": ["Sg"]}))
                .contains("InvalidSubnetID.NotFound")
        );
        assert!(
            err(serde_json::json!({"SubnetIds": ["A"], "SecurityGroupIds": ["Nope"]}))
                .contains("InvalidGroup.NotFound")
        );
        assert_eq!(
            validate_vpc_config(&m, None, &serde_json::json!({})).unwrap(),
            None
        );
    }

    #[test]
    fn a_combination_with_an_eni_is_reused_and_new_ones_are_created_within_quota() {
        let mut m = model();
        let n = m.enis.len();
        let vc = |s: &str, g: &str| FunctionVpc {
            vpc: "Vpc".into(),
            subnets: vec![s.into()],
            groups: vec![g.into()],
            ipv6_allowed_for_dual_stack: false,
        };
        assert!(enis_exist(&m, None, Some(&vc("A", "Sg"))));
        attach(&mut m, "F", Some(vc("A", "Sg")), 250).unwrap();
        assert_eq!(m.enis.len(), n);
        assert!(!enis_exist(&m, None, Some(&vc("B", "Sg"))));
        // The quota counts the VPC's ENIs: one exists, a limit of 1 refuses a second.
        let f = attach(&mut m, "F", Some(vc("B", "Sg")), 1).unwrap_err();
        assert_eq!(f.code, "EniLimitExceeded");
        assert_eq!(
            m.functions[0].vpc_config,
            Some(vc("A", "Sg")),
            "nothing changed"
        );
        attach(&mut m, "F", Some(vc("B", "Sg")), 250).unwrap();
        assert_eq!(m.enis.len(), n + 1);
        // Created by the one allocator: the next index, the one id rule.
        let e = m.enis.last().unwrap();
        assert_eq!(e.index, n as u32 + 1);
        assert_eq!(
            e.id,
            crate::model::eni_id("t", "B", &["Sg".to_string()], None, e.index)
        );
        assert_eq!(
            m.enis.last().unwrap().functions,
            vec![m.functions[0].name.clone()]
        );
        // B is a /28: 11 usable addresses; fill them with ENIs of other groups.
        for _ in 0..10 {
            let c = ("B".to_string(), vec!["Sg2".to_string()], None);
            let _ = create_eni(&mut m, &c, 250);
            m.enis.last_mut().unwrap().groups = vec![format!("x{}", m.enis.len())];
        }
        let f = attach(&mut m, "F", Some(vc("B", "Sg2")), 250).unwrap_err();
        assert_eq!(f.code, "SubnetOutOfIPAddresses");
        // Detached, A's ENI is unused; a version keeps B's alive.
        detach(&mut m, "F");
        let life = FunctionLife {
            versions: vec![Version {
                version: 1,
                vpc_config: Some(vc("B", "Sg")),
                last_modified_ms: 0,
            }],
            ..Default::default()
        };
        let used = combinations_in_use(&m, [("F", &life)].into_iter());
        let unused = unused_combinations(&m, &used);
        assert!(unused.contains(&("A".to_string(), vec!["Sg".to_string()], None)));
        assert!(!unused.contains(&("B".to_string(), vec!["Sg".to_string()], None)));
    }

    #[test]
    fn a_participant_function_needs_a_shared_subnet_and_groups() {
        let share = |subnet: &str| {
            format!(
                "{T}  Share: {{Type: AWS::RAM::ResourceShare, Properties: {{Name: s, ResourceArns: [!Ref {subnet}, !Sub 'arn:aws:ec2:us-east-1:123456789012:security-group/${{Sg}}'], Principals: [\"210987654321\"]}}}}
  P:
    Type: AWS::Lambda::Function
    Metadata: {{Account: \"210987654321\"}}
    Properties:
      VpcConfig: {{SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}
"
            )
        };
        let m = crate::model::build(&share("A"), &HashMap::new(), "t").unwrap();
        let p = m.function("P").unwrap();
        assert_eq!(p.account.as_deref(), Some("210987654321"));
        // Its own ENI, next to the owner's in the same subnet and groups.
        let pe = m.enis.iter().find(|e| e.index == p.eni.unwrap()).unwrap();
        assert_eq!(pe.account.as_deref(), Some("210987654321"));
        assert_ne!(Some(pe.index), m.function("F").unwrap().eni);
        let e = crate::model::build(&share("B"), &HashMap::new(), "t").unwrap_err();
        assert!(
            e.to_string()
                .contains("Resources.P.Properties.VpcConfig.SubnetIds[0]")
                && e.to_string()
                    .contains("not shared with account 210987654321"),
            "{e}"
        );
        // The owner's group unshared: refused; the default group can never be shared.
        let unshared = share("A").replace(
            ", !Sub 'arn:aws:ec2:us-east-1:123456789012:security-group/${Sg}'",
            "",
        );
        let e = crate::model::build(&unshared, &HashMap::new(), "t").unwrap_err();
        assert!(
            e.to_string()
                .contains("Resources.P.Properties.VpcConfig.SecurityGroupIds[0]")
                && e.to_string().contains("InvalidGroup.NotFound"),
            "{e}"
        );
        let default = share("A").replace("${Sg}", "${Vpc.DefaultSecurityGroup}");
        let e = crate::model::build(&default, &HashMap::new(), "t").unwrap_err();
        assert!(
            e.to_string()
                .contains("default security group cannot be shared"),
            "{e}"
        );
    }

    #[test]
    fn a_stranded_eni_is_available_until_deleted_by_hand() {
        let mut m = model();
        let eni = m.enis[0].id.clone();
        let c = ("A".to_string(), vec!["Sg".to_string()], None);
        // In use: EC2 refuses.
        let e = m.delete_network_interface(&eni).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert_eq!(
            e.message,
            format!("Network interface '{eni}' is currently in use.")
        );
        // F still uses it: nothing strands.
        assert!(strand_enis(&mut m, std::slice::from_ref(&c), std::iter::empty()).is_empty());
        // F gone (its role too): available, no longer the combination's.
        m.functions.clear();
        assert_eq!(
            strand_enis(&mut m, std::slice::from_ref(&c), std::iter::empty()),
            vec![eni.clone()]
        );
        assert!(m.enis[0].available && m.enis[0].functions.is_empty());
        assert_eq!(group_first(&m, &c), None, "a new function gets a new ENI");
        assert!(
            unused_combinations(&m, &BTreeSet::new()).is_empty(),
            "not Lambda's to delete"
        );
        delete_enis(&mut m, &c);
        assert_eq!(m.enis.len(), 1, "Lambda does not delete it");
        let gone = m.delete_network_interface(&eni).unwrap();
        assert_eq!(gone.id, eni);
        assert!(m.enis.is_empty());
        let e = m.delete_network_interface(&eni).unwrap_err();
        assert_eq!(e.code, "InvalidNetworkInterfaceID.NotFound");
    }

    #[test]
    fn last_modified_is_iso8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123+0000");
    }
}
