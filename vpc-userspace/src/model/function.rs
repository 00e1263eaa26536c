//! Lambda functions: `AWS::Lambda::Function`, its `VpcConfig` and AWS's
//! validation of it, its execution environments in the Lambda service range.
use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr},
};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{res_path, string_list, Builder, Model, Subnet};
use crate::template::{ModelError, Result};

pub const FUNCTION: &str = "AWS::Lambda::Function";

/// The Lambda service VPC's range, where execution environments live.
/// AWS does not document its own; 198.19.0.0/16 is from the benchmarking
/// block (RFC 2544), so it does not collide with customer VPC ranges.
pub const LAMBDA_SERVICE_CIDR: &str = "198.19.0.0/16";
/// The Lambda-side gateway execution environments route through.
pub const LAMBDA_GATEWAY: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The Lambda service VPC's IPv6 range: the IPv6 benchmarking block
/// (RFC 5180), as 198.19.0.0/16 is IPv4's. A VPC's IPv6 block may not
/// overlap it.
pub const LAMBDA_SERVICE_CIDR6: &str = "2001:2::/48";

pub const MAX_VPC_CONFIG_SUBNETS: usize = 16;
pub const MAX_VPC_CONFIG_GROUPS: usize = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FunctionVpc {
    pub vpc: String,
    pub subnets: Vec<String>,
    pub groups: Vec<String>,
    pub ipv6_allowed_for_dual_stack: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Function {
    pub id: String,
    pub name: String,
    pub vpc_config: Option<FunctionVpc>,
    pub environment: BTreeMap<String, String>,
    /// The execution environment's address in the Lambda service range.
    pub exec_ip: Ipv4Addr,
    /// 1-based index of the Hyperplane ENI its execution environment uses.
    pub eni: Option<u32>,
    /// The execution environment's IPv6 address (`LAMBDA_SERVICE_CIDR6`),
    /// when every subnet of its `VpcConfig` is dual-stack.
    #[serde(default)]
    pub exec_ip6: Option<Ipv6Addr>,
    /// The Hyperplane ENI of each subnet of its `VpcConfig`, in order: its
    /// execution environment `i` (1-based) sends through `enis[i - 1]`
    /// (`eni` is `enis[0]`).
    #[serde(default)]
    pub enis: Vec<u32>,
    /// Inline code (`Code.ZipFile`): the handler's source (`index.py`,
    /// `index.js`, `bootstrap`), or without `Runtime` a script run by `sh
    /// -c` in an execution environment with the invocation's payload on
    /// stdin (its stdout is the response). None (and no package): the
    /// payload is echoed.
    #[serde(default)]
    pub code: Option<String>,
    /// A deployment package (a zip's files, laid out under the task root:
    /// [`crate::lambda::code`]), from a local path, a CDK asset or a
    /// request's `ZipFile`; `code` is then `None`.
    #[serde(default)]
    pub package: Option<crate::lambda::code::Package>,
    /// A participant account owning the function (`None`: the owner).
    #[serde(default)]
    pub account: Option<String>,
    /// A published version's own execution environments: (function id,
    /// version). Its id is `<id>.v<N>` and its name `<FunctionName>:<N>`.
    #[serde(default)]
    pub version_of: Option<(String, u32)>,
    /// `Runtime`, `Handler`, `Timeout`, `MemorySize`: how its code runs
    /// ([`Runtime`]).
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// The execution environments Lambda started beside the first ones for
    /// concurrent invocations (none when idle): see [`Function::envs`].
    #[serde(default)]
    pub replicas: Vec<Replica>,
    /// The execution role's ARN (`Role`), as given.
    #[serde(default)]
    pub role: Option<String>,
    /// The deployment knew the role when it was given (declared or created
    /// through IAM), so its permissions were checked: once it is gone,
    /// Lambda cannot delete the function's ENIs ([`crate::iam::lambda`]).
    #[serde(default)]
    pub role_known: bool,
}

/// One more execution environment of a function, for concurrency: its
/// number (after the first ones, one per subnet) and its address, taken
/// from the upper half of its subnet's stride ([`Model::add_exec_env`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Replica {
    pub n: usize,
    pub ip: Ipv4Addr,
}

/// AWS's default `Timeout` (seconds) and its bounds.
pub const DEFAULT_TIMEOUT: u32 = 3;
pub const MAX_TIMEOUT: u32 = 900;
/// AWS's default `MemorySize` (MB) and its bounds.
pub const DEFAULT_MEMORY_SIZE: u32 = 128;
pub const MIN_MEMORY_SIZE: u32 = 128;
pub const MAX_MEMORY_SIZE: u32 = 10_240;
/// An account's concurrency (AWS's default quota).
pub const MAX_RESERVED_CONCURRENCY: u32 = 1_000;
/// What reservations must leave unreserved in an account.
pub const MIN_UNRESERVED_CONCURRENCY: u32 = 100;
/// Lambda's answer to reservations that would leave less.
pub const UNRESERVED_BELOW_MINIMUM: &str = "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [100].";

/// A function's `Runtime`, `Handler`, `Timeout` and `MemorySize`.
///
/// `runtime: None` (no `Runtime` property) keeps this project's first
/// convention: `Code.ZipFile` is a shell script run with `sh -c` for each
/// invocation, the payload on stdin and the response on stdout. So does a
/// `provided.*` runtime whose code never mentions `AWS_LAMBDA_RUNTIME_API`
/// (a script, not a bootstrap). `python3.*`, `nodejs*` and a `provided.*`
/// bootstrap run through the Lambda Runtime API ([`crate::lambda::runtime`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuntimeConfig {
    #[serde(default)]
    pub runtime: Option<String>,
    #[serde(default)]
    pub handler: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    #[serde(default = "default_memory_size")]
    pub memory_size: u32,
    /// `ReservedConcurrentExecutions`: at most this many invocations of
    /// the function (its versions included) at once; more are throttled
    /// (429 `TooManyRequestsException`). 0 throttles every invocation.
    #[serde(default)]
    pub reserved_concurrency: Option<u32>,
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT
}

fn default_memory_size() -> u32 {
    DEFAULT_MEMORY_SIZE
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            runtime: None,
            handler: None,
            timeout: DEFAULT_TIMEOUT,
            memory_size: DEFAULT_MEMORY_SIZE,
            reserved_concurrency: None,
        }
    }
}

/// The runtime families this project runs through the Runtime API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `python3.*`: `python -m awslambdaric <Handler>`; code in `index.py`.
    Python,
    /// `nodejs*`: aws-lambda-ric's `index.mjs <Handler>`; code in `index.js`.
    Node,
    /// `provided`, `provided.al2`, `provided.al2023`: the code is `bootstrap`.
    Provided,
}

impl Runtime {
    /// The family of a `Runtime` value, or an error naming what is supported.
    pub fn parse(s: &str) -> std::result::Result<Runtime, String> {
        let digits = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit());
        if s.strip_prefix("python3.").is_some_and(digits) {
            return Ok(Runtime::Python);
        }
        if s.strip_prefix("nodejs")
            .and_then(|v| v.strip_suffix(".x"))
            .is_some_and(digits)
        {
            return Ok(Runtime::Node);
        }
        if matches!(s, "provided" | "provided.al2" | "provided.al2023") {
            return Ok(Runtime::Provided);
        }
        Err(format!(
            "unsupported runtime {s:?}: python3.N, nodejsN.x, provided, provided.al2 or provided.al2023"
        ))
    }

    /// The file `Code.ZipFile` becomes in the task root, as CloudFormation
    /// names it.
    pub fn code_file(self) -> &'static str {
        match self {
            Runtime::Python => "index.py",
            Runtime::Node => "index.js",
            Runtime::Provided => "bootstrap",
        }
    }
}

impl RuntimeConfig {
    /// Checks AWS's bounds and the runtime; `field` names where each
    /// property came from (`Resources.F.Properties` or the request).
    pub fn validate(
        &self,
        field: &dyn Fn(&str) -> String,
    ) -> std::result::Result<(), (String, String)> {
        if let Some(r) = &self.runtime {
            let family = Runtime::parse(r).map_err(|e| (field("Runtime"), e))?;
            if family != Runtime::Provided && self.handler.is_none() {
                return Err((
                    field("Handler"),
                    format!("a {r} function needs a Handler (file.function, e.g. index.handler)"),
                ));
            }
        }
        if let Some(h) = &self.handler {
            if h.is_empty() || h.len() > 128 || h.chars().any(|c| c.is_whitespace()) {
                return Err((field("Handler"), "1-128 characters, no spaces".into()));
            }
        }
        if !(1..=MAX_TIMEOUT).contains(&self.timeout) {
            return Err((field("Timeout"), format!("1-{MAX_TIMEOUT} seconds")));
        }
        if self
            .reserved_concurrency
            .is_some_and(|n| n > MAX_RESERVED_CONCURRENCY)
        {
            return Err((
                field("ReservedConcurrentExecutions"),
                format!("0-{MAX_RESERVED_CONCURRENCY} (the account's concurrency)"),
            ));
        }
        if !(MIN_MEMORY_SIZE..=MAX_MEMORY_SIZE).contains(&self.memory_size) {
            return Err((
                field("MemorySize"),
                format!("{MIN_MEMORY_SIZE}-{MAX_MEMORY_SIZE} MB"),
            ));
        }
        Ok(())
    }
}

impl Function {
    /// How an invocation runs: through the Runtime API (`Some(family)`),
    /// or as a shell script (`None`): no `Runtime`, or a `provided.*` one
    /// whose code is not a bootstrap (never mentions
    /// `AWS_LAMBDA_RUNTIME_API`).
    pub fn runtime_api(&self) -> Option<Runtime> {
        let family = Runtime::parse(self.runtime.runtime.as_deref()?).ok()?;
        // A package's `bootstrap` is one.
        if family == Runtime::Provided
            && self.package.is_none()
            && !self
                .code
                .as_deref()
                .is_some_and(|c| c.contains("AWS_LAMBDA_RUNTIME_API"))
        {
            return None;
        }
        Some(family)
    }
}

/// Execution environments of one function are this far apart in the
/// Lambda service range: environment `n` of the function at offset `o` is
/// `198.19.0.0 + (n - 1) * EXEC_ENV_STRIDE + o` (198.19.16.10 next to
/// 198.19.0.10), so at most 16 environments (`MAX_VPC_CONFIG_SUBNETS`) of
/// up to `FUNCTION_OFFSETS - 10` functions fill the lower half of each
/// stride; the upper half holds the environments started for concurrency
/// ([`Replica`]) in that subnet, of every function.
pub const EXEC_ENV_STRIDE: u32 = 1 << 12;
/// The offsets functions take in each stride (the rest is replicas').
pub const FUNCTION_OFFSETS: u32 = EXEC_ENV_STRIDE / 2;

/// One execution environment of a function: environment `n` runs in the
/// `n`th subnet of its `VpcConfig` and sends through that subnet's ENI.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecEnv {
    /// 1-based.
    pub n: usize,
    /// Its node id: the function's logical id for the first, `<id>.<n>`
    /// for the others (logical ids are alphanumeric: no collision).
    pub id: String,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    /// Its subnet and the 1-based index of that subnet's Hyperplane ENI
    /// (`None` without `VpcConfig`).
    pub subnet: Option<String>,
    pub eni: Option<u32>,
}

/// Node id of execution environment `n` (1-based) of function `id`.
pub fn exec_env_id(id: &str, n: usize) -> String {
    if n <= 1 {
        id.to_string()
    } else {
        format!("{id}.{n}")
    }
}

impl Function {
    /// May its IPv6 traffic leave through its ENI (`Ipv6AllowedForDualStack`)?
    pub fn ipv6_allowed(&self) -> bool {
        self.exec_ip6.is_some()
            && self
                .vpc_config
                .as_ref()
                .is_some_and(|v| v.ipv6_allowed_for_dual_stack)
    }

    /// Its execution environments: one per subnet of its `VpcConfig`, in
    /// the order of `SubnetIds` (one without `VpcConfig`), then the
    /// replicas, each in the subnet its number gives (round robin, as
    /// Lambda spreads environments over the function's subnets). The first
    /// keeps the function's own address and node id.
    pub fn envs(&self) -> Vec<ExecEnv> {
        let subnets: Vec<Option<String>> = match &self.vpc_config {
            Some(vc) if !vc.subnets.is_empty() => vc.subnets.iter().cloned().map(Some).collect(),
            _ => vec![None],
        };
        let slots = subnets.len();
        let env = |n: usize, ip: Ipv4Addr| {
            let i = (n - 1) % slots;
            let base = u32::from(LAMBDA_GATEWAY) - 1;
            // IPv6 mirrors IPv4: the stride's number, then the offset.
            let offset = u32::from(ip) - base - i as u32 * EXEC_ENV_STRIDE;
            ExecEnv {
                n,
                id: exec_env_id(&self.id, n),
                ip,
                ip6: self.exec_ip6.map(|a| {
                    let net = u128::from(a) & !0xffff_ffff_ffff_ffff_ffff;
                    Ipv6Addr::from(net + ((i as u128) << 64) + offset as u128)
                }),
                eni: self
                    .enis
                    .get(i)
                    .copied()
                    .or(if i == 0 { self.eni } else { None }),
                subnet: subnets[i].clone(),
            }
        };
        (0..slots)
            .map(|i| {
                env(
                    i + 1,
                    Ipv4Addr::from(u32::from(self.exec_ip) + i as u32 * EXEC_ENV_STRIDE),
                )
            })
            .chain(self.replicas.iter().map(|r| env(r.n, r.ip)))
            .collect()
    }

    /// The number of its first execution environments (one per subnet).
    pub fn first_envs(&self) -> usize {
        self.vpc_config
            .as_ref()
            .map_or(1, |vc| vc.subnets.len().max(1))
    }
}

impl Model {
    /// A function by logical id or `FunctionName`.
    pub fn function(&self, name: &str) -> Option<&Function> {
        self.functions
            .iter()
            .find(|f| f.id == name || f.name == name)
    }

    /// One more execution environment for function `id`: the next number,
    /// in the subnet that number gives, at the lowest free address of the
    /// upper half of that subnet's stride. `None`: that half is full.
    pub fn add_exec_env(&mut self, id: &str) -> Option<usize> {
        let f = self.functions.iter().find(|f| f.id == id)?;
        let n = (f.first_envs() + 1..)
            .find(|n| !f.replicas.iter().any(|r| r.n == *n))
            .expect("unbounded");
        let i = ((n - 1) % f.first_envs()) as u32;
        let start = u32::from(LAMBDA_GATEWAY) - 1 + i * EXEC_ENV_STRIDE + FUNCTION_OFFSETS;
        let used: std::collections::HashSet<u32> = self
            .functions
            .iter()
            .flat_map(|f| f.replicas.iter().map(|r| u32::from(r.ip)))
            .collect();
        let ip = (start..start + EXEC_ENV_STRIDE - FUNCTION_OFFSETS).find(|a| !used.contains(a))?;
        let f = self.functions.iter_mut().find(|f| f.id == id)?;
        f.replicas.push(Replica {
            n,
            ip: Ipv4Addr::from(ip),
        });
        Some(n)
    }
}

impl Builder<'_> {
    pub(super) fn functions(&mut self) -> Result<()> {
        let lambda: Ipv4Net = LAMBDA_SERVICE_CIDR.parse().expect("constant");
        let lambda6: Ipv6Net = LAMBDA_SERVICE_CIDR6.parse().expect("constant");
        for (offset, res) in (10u32..).zip(self.of_type(FUNCTION)) {
            let next_exec = u32::from(lambda.network()) + offset;
            let id = res.logical_id.clone();
            let path = res_path(&id);
            let raw = Value::Object(res.properties.clone());
            let name = match raw.get("FunctionName") {
                Some(v) => self
                    .r
                    .resolve(v, &format!("{path}.FunctionName"))?
                    .as_str()
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ModelError::new(format!("{path}.FunctionName"), "must be a string")
                    })?,
                // Named after its own stack, as CloudFormation names it.
                None => format!("{}-{id}", self.r.stack_of(&id)),
            };
            let vpc_config = match raw.get("VpcConfig") {
                None => None,
                Some(v) => {
                    let vc = self.r.resolve(v, &format!("{path}.VpcConfig"))?;
                    self.vpc_config(&id, &vc)?
                }
            };
            let account = self.resource_account(res)?;
            if let Some(vc) = &vpc_config {
                for (i, s) in vc.subnets.iter().enumerate() {
                    if !self.m.subnet_usable(s, account.as_deref()) {
                        return Err(ModelError::new(
                            format!("{path}.VpcConfig.SubnetIds[{i}]"),
                            format!(
                                "InvalidParameterValueException: subnet {s} is not shared with account {} (AWS::RAM::ResourceShare)",
                                account.as_deref().unwrap_or_default()
                            ),
                        ));
                    }
                }
                for (i, g) in vc.groups.iter().enumerate() {
                    if !self.m.group_usable(g, account.as_deref()) {
                        return Err(ModelError::new(
                            format!("{path}.VpcConfig.SecurityGroupIds[{i}]"),
                            format!(
                                "InvalidParameterValueException: Error occurred while DescribeSecurityGroups. EC2 Error Code: InvalidGroup.NotFound. EC2 Error Message: The security group '{g}' does not exist (it is {}'s, not shared with account {}: a participant uses its own groups in a shared VPC, or the owner's shared with it)",
                                self.m.group(g).and_then(|x| x.account.clone()).unwrap_or_else(|| self.m.account.clone()),
                                account.as_deref().unwrap_or(&self.m.account)
                            ),
                        ));
                    }
                }
            }
            self.attr(
                &id,
                "Arn",
                format!(
                    "arn:aws:lambda:{}:{}:function:{name}",
                    self.m.region, self.m.account
                ),
            );
            if offset >= FUNCTION_OFFSETS {
                return Err(ModelError::new(
                    path,
                    format!(
                        "more than {} functions: the Lambda service range is full",
                        FUNCTION_OFFSETS - 10
                    ),
                ));
            }
            let role = match raw.get("Role") {
                None => None,
                Some(v) => match self.r.resolve(v, &format!("{path}.Role"))? {
                    Value::String(s) => Some(s),
                    _ => {
                        return Err(ModelError::new(
                            format!("{path}.Role"),
                            "must be a string (a role's ARN)",
                        ))
                    }
                },
            };
            let (code, package) = self.function_code(&raw, &path)?;
            let runtime = self.runtime_config(&raw, &path)?;
            if package.is_some() && runtime.runtime.is_none() {
                return Err(ModelError::new(
                    format!("{path}.Runtime"),
                    crate::lambda::code::RUNTIME_NEEDED,
                ));
            }
            let mut enis = vec![];
            if let Some(vc) = &vpc_config {
                for s in &vc.subnets {
                    enis.push(self.eni_for(
                        s,
                        &vc.groups,
                        &name,
                        account.as_deref(),
                        &format!("{path}.VpcConfig.SubnetIds"),
                    )?);
                }
            }
            let eni = enis.first().copied();
            // The execution environment is dual-stack when its function could
            // use IPv6: every subnet of its VpcConfig is dual-stack.
            let dual = vpc_config.as_ref().is_some_and(|vc| {
                vc.subnets
                    .iter()
                    .all(|s| self.m.subnet(s).is_some_and(Subnet::is_dual_stack))
            });
            let exec_ip6 =
                dual.then(|| Ipv6Addr::from(u128::from(lambda6.network()) + offset as u128));
            self.m.functions.push(Function {
                id: id.clone(),
                name,
                vpc_config,
                environment: BTreeMap::new(),
                exec_ip: Ipv4Addr::from(next_exec),
                eni,
                exec_ip6,
                enis,
                code,
                package,
                account,
                version_of: None,
                runtime,
                replicas: vec![],
                role,
                role_known: false,
            });
        }
        for f in self
            .m
            .functions
            .iter()
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
        {
            if self.m.functions.iter().filter(|g| g.name == f).count() > 1 {
                return Err(ModelError::new(
                    "Resources",
                    format!("two functions are named {f:?}"),
                ));
            }
        }
        // Reservations leave the account's minimum unreserved, as
        // PutFunctionConcurrency (which CloudFormation calls) checks.
        let mut reserved = 0;
        for f in &self.m.functions {
            reserved += f.runtime.reserved_concurrency.unwrap_or(0);
            if reserved > MAX_RESERVED_CONCURRENCY - MIN_UNRESERVED_CONCURRENCY {
                return Err(ModelError::new(
                    format!("{}.ReservedConcurrentExecutions", res_path(&f.id)),
                    format!("InvalidParameterValueException: {UNRESERVED_BELOW_MINIMUM}"),
                ));
            }
        }
        // Function URLs next (`model::function_url`): a function's variables
        // may name one (`!GetAtt Url.FunctionUrl`).
        self.function_urls()?;
        // Environment last: it may refer to any address assigned above.
        for i in 0..self.m.functions.len() {
            let id = self.m.functions[i].id.clone();
            let res = &self.t.resources[&id];
            let path = format!("{}.Environment.Variables", res_path(&id));
            let Some(vars) = res
                .properties
                .get("Environment")
                .and_then(|e| e.get("Variables"))
            else {
                continue;
            };
            let vars = self.r.resolve(vars, &path)?;
            let Value::Object(vars) = vars else {
                return Err(ModelError::new(path, "must be a mapping"));
            };
            let env = vars
                .into_iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k, s)),
                    Value::Number(n) => Ok((k, n.to_string())),
                    Value::Bool(b) => Ok((k, b.to_string())),
                    _ => Err(ModelError::new(format!("{path}.{k}"), "must be a string")),
                })
                .collect::<Result<_>>()?;
            self.m.functions[i].environment = env;
        }
        self.m.functions.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(())
    }

    /// `Runtime`, `Handler`, `Timeout` (default 3) and `MemorySize`
    /// (default 128), with AWS's bounds.
    fn runtime_config(&self, raw: &Value, path: &str) -> Result<RuntimeConfig> {
        let field = |f: &str| format!("{path}.{f}");
        let string = |f: &str| -> Result<Option<String>> {
            match raw.get(f) {
                None => Ok(None),
                Some(v) => match self.r.resolve(v, &field(f))? {
                    Value::String(s) => Ok(Some(s)),
                    _ => Err(ModelError::new(field(f), "must be a string")),
                },
            }
        };
        let number = |f: &str, default: u32| -> Result<u32> {
            match raw.get(f) {
                None => Ok(default),
                Some(v) => match self.r.resolve(v, &field(f))? {
                    Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                    Value::String(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .ok_or_else(|| ModelError::new(field(f), "must be a whole number")),
            }
        };
        let rc = RuntimeConfig {
            runtime: string("Runtime")?,
            handler: string("Handler")?,
            timeout: number("Timeout", DEFAULT_TIMEOUT)?,
            memory_size: number("MemorySize", DEFAULT_MEMORY_SIZE)?,
            reserved_concurrency: match raw.get("ReservedConcurrentExecutions") {
                None | Some(Value::Null) => None,
                Some(_) => Some(number("ReservedConcurrentExecutions", 0)?),
            },
        };
        rc.validate(&field)
            .map_err(|(f, e)| ModelError::new(f, e))?;
        Ok(rc)
    }

    /// AWS's `VpcConfig` validation.
    fn vpc_config(&self, id: &str, vc: &Value) -> Result<Option<FunctionVpc>> {
        let path = format!("{}.VpcConfig", res_path(id));
        let field = |f: &str| format!("{path}.{f}");
        let list = |f: &str| string_list(vc.get(f), &field(f));
        // A subnet listed twice is one subnet (one execution environment).
        let mut subnets = list("SubnetIds")?;
        let mut seen = std::collections::HashSet::new();
        subnets.retain(|s| seen.insert(s.clone()));
        let mut groups = list("SecurityGroupIds")?;
        let ipv6 = match vc.get("Ipv6AllowedForDualStack") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            Some(_) => {
                return Err(ModelError::new(
                    field("Ipv6AllowedForDualStack"),
                    "must be true or false",
                ))
            }
        };
        if subnets.is_empty() && groups.is_empty() {
            return Ok(None);
        }
        if subnets.is_empty() || groups.is_empty() {
            return Err(ModelError::new(path, "InvalidParameterValueException: SubnetIds and SecurityGroupIds must both be given or both be empty"));
        }
        if subnets.len() > MAX_VPC_CONFIG_SUBNETS {
            return Err(ModelError::new(
                field("SubnetIds"),
                format!("InvalidParameterValueException: at most {MAX_VPC_CONFIG_SUBNETS} subnets"),
            ));
        }
        if groups.len() > MAX_VPC_CONFIG_GROUPS {
            return Err(ModelError::new(field("SecurityGroupIds"), format!("InvalidParameterValueException: at most {MAX_VPC_CONFIG_GROUPS} security groups")));
        }
        let mut vpc: Option<String> = None;
        for (i, s) in subnets.iter().enumerate() {
            if self.ipv6_only.contains_key(s) {
                return Err(ModelError::new(
                    format!("{}[{i}]", field("SubnetIds")),
                    format!("InvalidParameterValueException: Lambda does not support IPv6-only subnets ({s} is Ipv6Native)"),
                ));
            }
            let sn = self.m.subnet(s).ok_or_else(|| {
                ModelError::new(format!("{}[{i}]", field("SubnetIds")), format!("InvalidSubnetIDException: {s:?} is not an AWS::EC2::Subnet of this template"))
            })?;
            match &vpc {
                Some(v) if *v != sn.vpc => {
                    return Err(ModelError::new(
                        field("SubnetIds"),
                        "InvalidParameterValueException: all subnets must be in one VPC",
                    ))
                }
                _ => vpc = Some(sn.vpc.clone()),
            }
        }
        let vpc = vpc.expect("non-empty");
        for (i, g) in groups.iter().enumerate() {
            match self.m.group(g) {
                None => {
                    return Err(ModelError::new(format!("{}[{i}]", field("SecurityGroupIds")), format!("InvalidSecurityGroupIDException: {g:?} does not exist")))
                }
                Some(sg) if sg.vpc != vpc => {
                    return Err(ModelError::new(
                        format!("{}[{i}]", field("SecurityGroupIds")),
                        format!("InvalidParameterValueException: security group {g:?} is not in the subnets' VPC {vpc}"),
                    ))
                }
                _ => {}
            }
        }
        if ipv6 {
            if let Some(s) = subnets
                .iter()
                .find(|s| !self.m.subnet(s).is_some_and(Subnet::is_dual_stack))
            {
                return Err(ModelError::new(
                    field("Ipv6AllowedForDualStack"),
                    format!("InvalidParameterValueException: Ipv6AllowedForDualStack needs dual-stack subnets, and subnet {s} has no IPv6 block"),
                ));
            }
        }
        groups.sort();
        groups.dedup();
        self.check_rules_x_groups(&groups, &field("SecurityGroupIds"))?;
        Ok(Some(FunctionVpc {
            vpc,
            subnets,
            groups,
            ipv6_allowed_for_dual_stack: ipv6,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::model::tests::{build_err, build_ok, dual, BASE};
    use crate::model::Runtime;

    #[test]
    fn runtime_handler_timeout_and_memory_with_awss_defaults_and_bounds() {
        let m = build_ok(&format!(
            "{BASE}
  P: {{Type: AWS::Lambda::Function, Properties: {{Runtime: python3.12, Handler: index.handler, Timeout: 30, MemorySize: \"512\", Code: {{ZipFile: 'def handler(e, c): return e'}}}}}}
  N: {{Type: AWS::Lambda::Function, Properties: {{Runtime: nodejs20.x, Handler: index.handler}}}}
  S: {{Type: AWS::Lambda::Function, Properties: {{Code: {{ZipFile: cat}}}}}}
  Boot: {{Type: AWS::Lambda::Function, Properties: {{Runtime: provided.al2023, Code: {{ZipFile: 'curl http://$AWS_LAMBDA_RUNTIME_API/'}}}}}}
  Q: {{Type: AWS::Lambda::Function, Properties: {{Runtime: provided.al2023, Handler: bootstrap, Code: {{ZipFile: cat}}}}}}
"
        ));
        let p = m.function("P").unwrap();
        assert_eq!(p.runtime.runtime.as_deref(), Some("python3.12"));
        assert_eq!(p.runtime.handler.as_deref(), Some("index.handler"));
        assert_eq!((p.runtime.timeout, p.runtime.memory_size), (30, 512));
        assert_eq!(p.runtime_api(), Some(Runtime::Python));
        let n = m.function("N").unwrap();
        assert_eq!((n.runtime.timeout, n.runtime.memory_size), (3, 128));
        assert_eq!(n.runtime_api(), Some(Runtime::Node));
        // No Runtime, or a provided.* script that is no bootstrap: sh -c.
        assert_eq!(m.function("S").unwrap().runtime_api(), None);
        assert_eq!(m.function("Q").unwrap().runtime_api(), None);
        assert_eq!(
            m.function("Boot").unwrap().runtime_api(),
            Some(Runtime::Provided)
        );
        for (props, path, what) in [
            (
                "{Runtime: ruby3.3, Handler: x.y}",
                "Runtime",
                "unsupported runtime",
            ),
            ("{Runtime: python3.11}", "Handler", "needs a Handler"),
            (
                "{Runtime: [python3.11], Handler: x.y}",
                "Runtime",
                "must be a string",
            ),
            ("{Timeout: 0}", "Timeout", "1-900"),
            ("{Timeout: 901}", "Timeout", "1-900"),
            ("{Timeout: soon}", "Timeout", "whole number"),
            ("{MemorySize: 64}", "MemorySize", "128-10240"),
        ] {
            let e = build_err(&format!(
                "{BASE}\n  F: {{Type: AWS::Lambda::Function, Properties: {props}}}\n"
            ));
            assert_eq!(e.path, format!("Resources.F.Properties.{path}"), "{props}");
            assert!(e.message.contains(what), "{props}: {}", e.message);
        }
    }

    #[test]
    fn replicas_go_round_robin_over_the_subnets_in_the_upper_half_of_their_strides() {
        let mut m = build_ok(&dual(
            r#"
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A, !Ref B], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}
  G: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg]}}}
"#,
        ));
        // F: 3 in A's slot, 4 in B's, 5 in A's again; G's share A's half.
        assert_eq!(m.add_exec_env("F"), Some(3));
        assert_eq!(m.add_exec_env("F"), Some(4));
        assert_eq!(m.add_exec_env("G"), Some(2));
        assert_eq!(m.add_exec_env("F"), Some(5));
        let f = m.function("F").unwrap().clone();
        let envs = f.envs();
        let at = |n: usize| envs.iter().find(|e| e.n == n).unwrap().clone();
        let (a, b) = (at(1), at(2));
        for (n, ip, ip6, like) in [
            (3, "198.19.8.0", "2001:2::800", &a),
            (4, "198.19.24.0", "2001:2:0:1::800", &b),
            (5, "198.19.8.2", "2001:2::802", &a),
        ] {
            let e = at(n);
            assert_eq!(e.id, format!("F.{n}"));
            assert_eq!(e.ip.to_string(), ip, "{e:?}");
            assert_eq!(e.ip6.unwrap().to_string(), ip6, "{e:?}");
            assert_eq!((&e.subnet, e.eni), (&like.subnet, like.eni), "the same ENI");
        }
        let g = m.function("G").unwrap().envs();
        assert_eq!(g[1].ip.to_string(), "198.19.8.1");
        // A gap left by a reaped replica is taken again; addresses too.
        m.functions
            .iter_mut()
            .find(|f| f.id == "F")
            .unwrap()
            .replicas
            .retain(|r| r.n != 3);
        assert_eq!(m.add_exec_env("F"), Some(3));
        let all: Vec<_> = m.functions.iter().flat_map(|f| f.envs()).collect();
        let v4: std::collections::BTreeSet<_> = all.iter().map(|e| e.ip).collect();
        assert_eq!(v4.len(), all.len(), "{all:?}");
        // A change of subnets drops them.
        let vc = f.vpc_config.clone().map(|mut v| {
            v.subnets.reverse();
            v
        });
        crate::lambda::lifecycle::attach(&mut m, "F", vc, 250).unwrap();
        assert_eq!(m.function("F").unwrap().envs().len(), 2);
    }

    #[test]
    fn a_function_with_several_subnets_gets_one_execution_environment_per_subnet() {
        use crate::compile::{compile, env_enis, LinkInfo, ENI_V4_ONLY};
        // F: A then B (B listed twice: one subnet); G shares (A, Sg); H has no
        // VpcConfig; V is IPv4-only in the dual-stack subnets.
        let m = build_ok(&dual(
            r#"
  F: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A, !Ref B, !Ref B], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}
  G: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref A], SecurityGroupIds: [!Ref Sg], Ipv6AllowedForDualStack: true}}}
  H: {Type: AWS::Lambda::Function, Properties: {}}
  V: {Type: AWS::Lambda::Function, Properties: {VpcConfig: {SubnetIds: [!Ref B, !Ref A], SecurityGroupIds: [!Ref Sg]}}}
"#,
        ));
        let f = m.function("F").unwrap();
        let envs = f.envs();
        assert_eq!(envs.len(), 2, "one per distinct subnet");
        let eni_of = |subnet: &str| m.enis.iter().find(|e| e.subnet == subnet).unwrap();
        let (a, b) = (eni_of("A"), eni_of("B"));
        assert_ne!(a.index, b.index);
        // The first keeps the function's id and address; the others are apart.
        assert_eq!(
            (envs[0].id.as_str(), envs[0].ip, envs[0].ip6),
            ("F", f.exec_ip, f.exec_ip6)
        );
        assert_eq!(envs[0].ip.to_string(), "198.19.0.10");
        assert_eq!(envs[0].ip6.unwrap().to_string(), "2001:2::a");
        assert_eq!(envs[1].id, "F.2");
        assert_eq!(envs[1].ip.to_string(), "198.19.16.10");
        assert_eq!(envs[1].ip6.unwrap().to_string(), "2001:2:0:1::a");
        assert_eq!(
            (envs[0].subnet.as_deref(), envs[0].eni),
            (Some("A"), Some(a.index))
        );
        assert_eq!(
            (envs[1].subnet.as_deref(), envs[1].eni),
            (Some("B"), Some(b.index))
        );
        assert_eq!(f.eni, Some(a.index));
        // Every ENI lists the function once.
        assert_eq!(a.functions.iter().filter(|n| *n == "s-F").count(), 1);
        assert_eq!(b.functions.iter().filter(|n| *n == "s-F").count(), 1);
        assert_eq!(m.function("H").unwrap().envs().len(), 1);
        assert_eq!(m.function("H").unwrap().envs()[0].eni, None);
        let v = m.function("V").unwrap();
        assert_eq!(
            env_enis(&m, v),
            vec![
                ("V".to_string(), b.index | ENI_V4_ONLY),
                ("V.2".to_string(), a.index | ENI_V4_ONLY)
            ]
        );
        // Every address of every environment is distinct.
        let all: Vec<_> = m.functions.iter().flat_map(|f| f.envs()).collect();
        assert_eq!(all.len(), 6);
        let v4: std::collections::BTreeSet<_> = all.iter().map(|e| e.ip).collect();
        let v6: std::collections::BTreeSet<_> = all.iter().filter_map(|e| e.ip6).collect();
        assert_eq!(v4.len(), 6);
        assert_eq!(v6.len(), 5, "H has no IPv6 address");
        // Compiled: a port per environment, each with its subnet's ENI group
        // and its own addresses.
        let links: HashMap<String, LinkInfo> = all
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let l = LinkInfo {
                    ifindex: i as u32 + 20,
                    mac: [2, 0, 0, 0, 0, i as u8],
                    router_mac: [2, 0, 0, 0, 1, i as u8],
                };
                (e.id.clone(), l)
            })
            .collect();
        let e = compile(&m, &links, 0).unwrap();
        let port = |id: &str| {
            let ifindex = links[id].ifindex;
            e.ports.iter().find(|(k, _)| *k == ifindex).unwrap().1
        };
        assert_eq!(port("F").eni_group, a.index);
        assert_eq!(port("F.2").eni_group, b.index);
        assert_eq!(port("G").eni_group, a.index);
        // H has no VpcConfig: Lambda's own VPC.
        assert_eq!(port("H").eni_group, vpc_common::LAMBDA_OWN_ENI);
        assert_eq!(port("V").eni_group, b.index | ENI_V4_ONLY);
        assert_eq!(port("V.2").eni_group, a.index | ENI_V4_ONLY);
        assert_eq!(
            port("F.2").addr4,
            vpc_common::v4_mapped(envs[1].ip.octets())
        );
        assert_eq!(port("F.2").addr6, envs[1].ip6.unwrap().octets());
        // Each environment's addresses deliver to its own port.
        let ep = |a: [u8; 16]| e.endpoints.iter().find(|(k, _)| k.addr == a).unwrap().1;
        assert_eq!(
            ep(vpc_common::v4_mapped(envs[1].ip.octets())).ifindex,
            links["F.2"].ifindex
        );
        assert_eq!(
            ep(envs[1].ip6.unwrap().octets()).ifindex,
            links["F.2"].ifindex
        );
        // Both groups (and both IPv4-only views) are in ENI_GROUPS.
        let groups: Vec<u32> = e.eni_groups.iter().map(|(k, _)| *k).collect();
        for g in [
            a.index,
            b.index,
            a.index | ENI_V4_ONLY,
            b.index | ENI_V4_ONLY,
        ] {
            assert!(groups.contains(&g), "{g:#x} in {groups:?}");
        }
        // Namespace names: the first as before, the others unambiguous.
        assert_eq!(crate::topology::exec_env_netns("d", "F", 1), "d-fn-F");
        assert_eq!(crate::topology::exec_env_netns("d", "F", 2), "d-fn-F.2");
    }
}
