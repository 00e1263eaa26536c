//! Resources kept in the stack that do not change the network: IAM roles
//! and instance profiles, log groups, Lambda permissions and versions,
//! SSM parameters, custom resources, queues, topics, buckets, ... Each has
//! its `Ref` and its documented `Fn::GetAtt` attributes (names generated
//! as CloudFormation generates them, `<stack>-<logical id>-<suffix>`, the
//! suffix derived from both so it is stable), so references to it resolve;
//! nothing of it is built. Every other type that is not a network
//! resource this project models is refused, naming the resource: a type
//! that would change the network is never skipped.
//!
//! One custom resource does change the network and is applied:
//! `Custom::VpcRestrictDefaultSG` (CDK's `restrictDefaultSecurityGroup`,
//! on by default) removes every rule of the VPC's default group, as its
//! handler does at AWS.
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{fnv1a, res_path, Builder};
use crate::template::{self, ModelError, Result};

/// One kept resource, as DescribeStackResources would show it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StackResource {
    pub logical_id: String,
    pub resource_type: String,
    /// What `Ref` returns.
    pub physical_id: String,
    /// `Fn::GetAtt` attributes.
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    /// Its properties, every intrinsic resolved.
    #[serde(default)]
    pub properties: Value,
}

/// CDK's custom resource that empties the default group.
pub const RESTRICT_DEFAULT_SG: &str = "Custom::VpcRestrictDefaultSG";

/// Types kept in the stack (they do not change the network).
const KEPT: &[&str] = &[
    "AWS::CDK::Metadata",
    "AWS::CloudFormation::CustomResource",
    "AWS::CloudFormation::WaitCondition",
    "AWS::CloudFormation::WaitConditionHandle",
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::DynamoDB::Table",
    "AWS::EC2::KeyPair",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::PlacementGroup",
    "AWS::EC2::Volume",
    "AWS::EC2::VolumeAttachment",
    "AWS::ECR::Repository",
    "AWS::Events::Rule",
    "AWS::IAM::AccessKey",
    "AWS::IAM::Group",
    "AWS::IAM::GroupPolicy",
    "AWS::IAM::InstanceProfile",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::Policy",
    "AWS::IAM::Role",
    "AWS::IAM::RolePolicy",
    "AWS::IAM::ServiceLinkedRole",
    "AWS::IAM::User",
    "AWS::IAM::UserPolicy",
    "AWS::IAM::UserToGroupAddition",
    "AWS::KMS::Alias",
    "AWS::KMS::Key",
    "AWS::Lambda::Alias",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::Lambda::EventSourceMapping",
    "AWS::Lambda::LayerVersion",
    "AWS::Lambda::LayerVersionPermission",
    "AWS::Lambda::Permission",
    "AWS::Lambda::Url",
    "AWS::Lambda::Version",
    "AWS::Logs::LogGroup",
    "AWS::Logs::LogStream",
    "AWS::Logs::MetricFilter",
    "AWS::Logs::ResourcePolicy",
    "AWS::Logs::SubscriptionFilter",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::SNS::Subscription",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::SSM::Parameter",
    "AWS::SecretsManager::Secret",
    "AWS::StepFunctions::StateMachine",
];

/// Namespaces whose resources put interfaces in subnets, route, filter or
/// resolve: refused with that reason (as is any unmodelled `AWS::EC2::`).
const NETWORK_PREFIXES: &[&str] = &[
    "AWS::EC2::",
    "AWS::ApiGateway::VpcLink",
    "AWS::ApiGatewayV2::VpcLink",
    "AWS::AutoScaling::",
    "AWS::CloudFormation::Stack",
    "AWS::DirectConnect::",
    "AWS::DocDB::",
    "AWS::ECS::",
    "AWS::EFS::",
    "AWS::EKS::",
    "AWS::ElastiCache::",
    "AWS::ElasticLoadBalancing::",
    "AWS::ElasticLoadBalancingV2::",
    "AWS::Elasticsearch::",
    "AWS::GlobalAccelerator::",
    "AWS::MSK::",
    "AWS::MemoryDB::",
    "AWS::Neptune::",
    "AWS::NetworkFirewall::",
    "AWS::NetworkManager::",
    "AWS::OpenSearchService::",
    "AWS::RDS::",
    "AWS::Redshift::",
    "AWS::Route53::",
    "AWS::Route53Resolver::",
    "AWS::Serverless::",
    "AWS::VpcLattice::",
];

/// Is `kind` kept in the stack without being built?
pub fn is_kept(kind: &str) -> bool {
    KEPT.contains(&kind) || is_custom(kind)
}

fn is_custom(kind: &str) -> bool {
    kind.starts_with("Custom::") || kind == "AWS::CloudFormation::CustomResource"
}

/// Why `kind` (neither modelled nor kept) is refused.
pub fn refusal(kind: &str) -> String {
    if NETWORK_PREFIXES.iter().any(|p| kind.starts_with(p)) {
        format!("{kind} would change the network and is not modelled by this project: refused rather than skipped (docs/templates.md lists what is supported)")
    } else {
        format!("{kind} is not supported by this project: it is neither a network resource it models nor one of the types it keeps without building (docs/templates.md lists both)")
    }
}

/// A name CloudFormation would generate: `<stack>-<id>-<13 characters>`,
/// cut to `max`.
fn generated(stack: &str, id: &str, max: usize) -> String {
    let suffix = alnum(&format!("{stack}/{id}"), 13, true);
    let mut base = format!("{stack}-{id}");
    base.truncate(max.saturating_sub(14));
    format!("{base}-{suffix}")
}

/// `n` characters `A-Z0-9` (or `a-z0-9`) derived from `seed`.
fn alnum(seed: &str, n: usize, upper: bool) -> String {
    let chars: &[u8] = if upper {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    } else {
        b"abcdefghijklmnopqrstuvwxyz0123456789"
    };
    let mut h = fnv1a(seed);
    (0..n)
        .map(|i| {
            if i % 12 == 11 {
                h = fnv1a(&format!("{seed}/{i}"));
            }
            let c = chars[(h % chars.len() as u64) as usize] as char;
            h /= chars.len() as u64;
            c
        })
        .collect()
}

fn hex(seed: &str, n: usize) -> String {
    let mut s = format!("{:016x}{:016x}", fnv1a(seed), fnv1a(&format!("{seed}/2")));
    s.truncate(n);
    s
}

fn uuid(seed: &str) -> String {
    let h = hex(seed, 32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A Lambda function's name from a `FunctionName` that may be its name,
/// its ARN or a partial ARN (`123456789012:function:name`).
fn function_name(v: &str) -> &str {
    match v.split_once("function:") {
        Some((_, rest)) => rest.split(':').next().unwrap_or(rest),
        None => v,
    }
}

impl Builder<'_> {
    /// A property of `res` resolved to a string, if it is there.
    fn prop_str(&self, res: &template::Resource, key: &str) -> Result<Option<String>> {
        match res.properties.get(key) {
            None => Ok(None),
            Some(v) => {
                let path = format!("{}.{key}", res_path(&res.logical_id));
                match self.r.resolve(v, &path)? {
                    Value::String(s) => Ok(Some(s)),
                    v @ (Value::Number(_) | Value::Bool(_)) => Ok(Some(v.to_string())),
                    _ => Err(ModelError::new(path, "must be a string")),
                }
            }
        }
    }

    /// Refuses every resource whose type is neither modelled (`modelled`)
    /// nor kept.
    pub(super) fn check_types(&self, modelled: &[&str]) -> Result<()> {
        for r in self.t.resources.values() {
            if !modelled.contains(&r.kind.as_str()) && !is_kept(&r.kind) {
                return Err(ModelError::new(
                    format!("Resources.{}.Type", r.logical_id),
                    refusal(&r.kind),
                ));
            }
        }
        Ok(())
    }

    /// `Ref` and attributes of every kept resource, before the network
    /// resources (which refer to them: a function's role, an instance's
    /// profile) are built; and a function's `Ref` (its name) and `Arn`.
    /// A name that refers to what is not built yet is retried at the end.
    pub(super) fn stack_resource_ids(&mut self) -> Result<()> {
        for res in self.of_type(super::FUNCTION) {
            let id = res.logical_id.clone();
            let name = match self.prop_str(res, "FunctionName") {
                Ok(Some(n)) => n,
                Ok(None) => format!("{}-{id}", self.r.stack_of(&id)),
                Err(_) => continue,
            };
            let arn = format!(
                "arn:aws:lambda:{}:{}:function:{name}",
                self.m.region, self.m.account
            );
            self.r.refs.insert(id.clone(), Value::String(name));
            self.attr(&id, "Arn", arn);
        }
        let mut pending: Vec<&template::Resource> = self
            .t
            .resources
            .values()
            .filter(|r| is_kept(&r.kind))
            .collect();
        let mut versions: HashMap<String, u32> = HashMap::new();
        loop {
            let before = pending.len();
            let mut retry = vec![];
            for res in pending {
                match self.identity(res, &mut versions) {
                    Ok(()) => {}
                    Err(_) => retry.push(res),
                }
            }
            pending = retry;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        Ok(())
    }

    /// Records `res`'s `Ref` and attributes.
    fn identity(
        &mut self,
        res: &template::Resource,
        versions: &mut HashMap<String, u32>,
    ) -> Result<()> {
        let id = res.logical_id.as_str();
        let (stack, region, acct) = (
            self.r.stack_of(id).to_string(),
            self.m.region.clone(),
            self.m.account.clone(),
        );
        let name_or = |this: &Self, key: &str, max: usize| -> Result<String> {
            Ok(this
                .prop_str(res, key)?
                .unwrap_or_else(|| generated(&stack, id, max)))
        };
        let path_of = |this: &Self| -> Result<String> {
            Ok(this.prop_str(res, "Path")?.unwrap_or_else(|| "/".into()))
        };
        let mut attrs: Vec<(&str, Value)> = vec![];
        let physical: String = match res.kind.as_str() {
            "AWS::IAM::Role" => {
                let name = name_or(self, "RoleName", 64)?;
                let arn = format!("arn:aws:iam::{acct}:role{}{name}", path_of(self)?);
                attrs.push(("Arn", arn.into()));
                attrs.push((
                    "RoleId",
                    format!("AROA{}", alnum(&format!("{stack}/{id}/id"), 17, true)).into(),
                ));
                name
            }
            "AWS::IAM::InstanceProfile" => {
                let name = name_or(self, "InstanceProfileName", 128)?;
                let arn = format!(
                    "arn:aws:iam::{acct}:instance-profile{}{name}",
                    path_of(self)?
                );
                attrs.push(("Arn", arn.into()));
                name
            }
            "AWS::IAM::ManagedPolicy" => {
                let name = name_or(self, "ManagedPolicyName", 128)?;
                let arn = format!("arn:aws:iam::{acct}:policy{}{name}", path_of(self)?);
                attrs.push(("PolicyArn", arn.clone().into()));
                attrs.push((
                    "PolicyId",
                    format!("ANPA{}", alnum(&format!("{stack}/{id}/id"), 17, true)).into(),
                ));
                attrs.push(("DefaultVersionId", "v1".into()));
                arn
            }
            "AWS::IAM::User" | "AWS::IAM::Group" => {
                let (key, what) = if res.kind == "AWS::IAM::User" {
                    ("UserName", "user")
                } else {
                    ("GroupName", "group")
                };
                let name = name_or(self, key, 64)?;
                attrs.push((
                    "Arn",
                    format!("arn:aws:iam::{acct}:{what}{}{name}", path_of(self)?).into(),
                ));
                name
            }
            "AWS::IAM::AccessKey" => {
                attrs.push((
                    "SecretAccessKey",
                    alnum(&format!("{stack}/{id}/secret"), 40, false).into(),
                ));
                format!("AKIA{}", alnum(&format!("{stack}/{id}"), 16, true))
            }
            "AWS::Logs::LogGroup" => {
                let name = name_or(self, "LogGroupName", 512)?;
                attrs.push((
                    "Arn",
                    format!("arn:aws:logs:{region}:{acct}:log-group:{name}:*").into(),
                ));
                name
            }
            "AWS::Logs::LogStream" => name_or(self, "LogStreamName", 512)?,
            "AWS::Logs::MetricFilter" | "AWS::Logs::SubscriptionFilter" => {
                name_or(self, "FilterName", 512)?
            }
            "AWS::Logs::ResourcePolicy" => name_or(self, "PolicyName", 255)?,
            "AWS::Lambda::Version" | "AWS::Lambda::Alias" => {
                let f = self.prop_str(res, "FunctionName")?.ok_or_else(|| {
                    ModelError::new(format!("{}.FunctionName", res_path(id)), "is required")
                })?;
                let f = function_name(&f).to_string();
                let fn_arn = format!("arn:aws:lambda:{region}:{acct}:function:{f}");
                if res.kind == "AWS::Lambda::Version" {
                    let n = versions.entry(f).or_insert(0);
                    *n += 1;
                    attrs.push(("Version", n.to_string().into()));
                    attrs.push(("FunctionArn", fn_arn.clone().into()));
                    format!("{fn_arn}:{n}")
                } else {
                    let name = self.prop_str(res, "Name")?.ok_or_else(|| {
                        ModelError::new(format!("{}.Name", res_path(id)), "is required")
                    })?;
                    let arn = format!("{fn_arn}:{name}");
                    attrs.push(("AliasArn", arn.clone().into()));
                    arn
                }
            }
            "AWS::Lambda::Url" => {
                if let Some(t) = self.prop_str(res, "TargetFunctionArn")? {
                    let f = function_name(&t);
                    attrs.push((
                        "FunctionArn",
                        format!("arn:aws:lambda:{region}:{acct}:function:{f}").into(),
                    ));
                }
                let url = format!(
                    "https://{}.lambda-url.{region}.on.aws/",
                    alnum(&format!("{stack}/{id}"), 32, false)
                );
                attrs.push(("FunctionUrl", url.clone().into()));
                url
            }
            "AWS::Lambda::EventSourceMapping" => {
                let u = uuid(&format!("{stack}/{id}"));
                attrs.push(("Id", u.clone().into()));
                u
            }
            "AWS::Lambda::LayerVersion" => {
                let name = name_or(self, "LayerName", 140)?;
                let arn = format!("arn:aws:lambda:{region}:{acct}:layer:{name}:1");
                attrs.push(("LayerVersionArn", arn.clone().into()));
                arn
            }
            "AWS::SSM::Parameter" => {
                let name = self.prop_str(res, "Name")?.unwrap_or_else(|| {
                    format!("CFN-{id}-{}", alnum(&format!("{stack}/{id}"), 12, true))
                });
                attrs.push((
                    "Type",
                    self.prop_str(res, "Type")?
                        .unwrap_or_else(|| "String".into())
                        .into(),
                ));
                attrs.push((
                    "Value",
                    self.prop_str(res, "Value")?.unwrap_or_default().into(),
                ));
                name
            }
            "AWS::CloudFormation::WaitConditionHandle" => format!(
                "https://cloudformation-waitcondition-{region}.s3.amazonaws.com/{}",
                alnum(&format!("{stack}/{id}"), 24, false)
            ),
            "AWS::CloudFormation::WaitCondition" => {
                attrs.push(("Data", "{}".into()));
                generated(&stack, id, 255)
            }
            "AWS::SQS::Queue" => {
                let fifo = self
                    .prop_str(res, "FifoQueue")?
                    .is_some_and(|f| f == "true");
                let name = match self.prop_str(res, "QueueName")? {
                    Some(n) => n,
                    None if fifo => format!("{}.fifo", generated(&stack, id, 75)),
                    None => generated(&stack, id, 80),
                };
                let url = format!("https://sqs.{region}.amazonaws.com/{acct}/{name}");
                attrs.push(("Arn", format!("arn:aws:sqs:{region}:{acct}:{name}").into()));
                attrs.push(("QueueName", name.into()));
                attrs.push(("QueueUrl", url.clone().into()));
                url
            }
            "AWS::SNS::Topic" => {
                let name = name_or(self, "TopicName", 256)?;
                let arn = format!("arn:aws:sns:{region}:{acct}:{name}");
                attrs.push(("TopicArn", arn.clone().into()));
                attrs.push(("TopicName", name.into()));
                arn
            }
            "AWS::S3::Bucket" => {
                let name = match self.prop_str(res, "BucketName")? {
                    Some(n) => n,
                    None => generated(&stack, id, 63).to_lowercase(),
                };
                attrs.push(("Arn", format!("arn:aws:s3:::{name}").into()));
                attrs.push(("DomainName", format!("{name}.s3.amazonaws.com").into()));
                attrs.push((
                    "RegionalDomainName",
                    format!("{name}.s3.{region}.amazonaws.com").into(),
                ));
                attrs.push((
                    "DualStackDomainName",
                    format!("{name}.s3.dualstack.{region}.amazonaws.com").into(),
                ));
                attrs.push((
                    "WebsiteURL",
                    format!("http://{name}.s3-website-{region}.amazonaws.com").into(),
                ));
                name
            }
            "AWS::DynamoDB::Table" => {
                let name = name_or(self, "TableName", 255)?;
                let arn = format!("arn:aws:dynamodb:{region}:{acct}:table/{name}");
                attrs.push((
                    "StreamArn",
                    format!("{arn}/stream/1970-01-01T00:00:00.000").into(),
                ));
                attrs.push(("Arn", arn.into()));
                name
            }
            "AWS::KMS::Key" => {
                let key = uuid(&format!("{stack}/{id}"));
                attrs.push((
                    "Arn",
                    format!("arn:aws:kms:{region}:{acct}:key/{key}").into(),
                ));
                attrs.push(("KeyId", key.clone().into()));
                key
            }
            "AWS::KMS::Alias" => name_or(self, "AliasName", 256)?,
            "AWS::SecretsManager::Secret" => {
                let name = name_or(self, "Name", 256)?;
                let arn = format!(
                    "arn:aws:secretsmanager:{region}:{acct}:secret:{name}-{}",
                    alnum(&format!("{stack}/{id}"), 6, false)
                );
                attrs.push(("Id", arn.clone().into()));
                arn
            }
            "AWS::Events::Rule" => {
                let name = name_or(self, "Name", 64)?;
                attrs.push((
                    "Arn",
                    format!("arn:aws:events:{region}:{acct}:rule/{name}").into(),
                ));
                name
            }
            "AWS::CloudWatch::Alarm" => {
                let name = name_or(self, "AlarmName", 255)?;
                attrs.push((
                    "Arn",
                    format!("arn:aws:cloudwatch:{region}:{acct}:alarm:{name}").into(),
                ));
                name
            }
            "AWS::CloudWatch::Dashboard" => name_or(self, "DashboardName", 255)?,
            "AWS::StepFunctions::StateMachine" => {
                let name = name_or(self, "StateMachineName", 80)?;
                let arn = format!("arn:aws:states:{region}:{acct}:stateMachine:{name}");
                attrs.push(("Arn", arn.clone().into()));
                attrs.push(("Name", name.into()));
                arn
            }
            "AWS::ECR::Repository" => {
                let name = match self.prop_str(res, "RepositoryName")? {
                    Some(n) => n,
                    None => generated(&stack, id, 256).to_lowercase(),
                };
                attrs.push((
                    "Arn",
                    format!("arn:aws:ecr:{region}:{acct}:repository/{name}").into(),
                ));
                attrs.push((
                    "RepositoryUri",
                    format!("{acct}.dkr.ecr.{region}.amazonaws.com/{name}").into(),
                ));
                name
            }
            "AWS::EC2::LaunchTemplate" => {
                let lt = format!("lt-0{}", hex(&format!("{stack}/{id}"), 16));
                attrs.push(("LaunchTemplateId", lt.clone().into()));
                attrs.push(("LatestVersionNumber", "1".into()));
                attrs.push(("DefaultVersionNumber", "1".into()));
                lt
            }
            "AWS::EC2::KeyPair" => {
                let name = name_or(self, "KeyName", 255)?;
                attrs.push((
                    "KeyPairId",
                    format!("key-0{}", hex(&format!("{stack}/{id}"), 16)).into(),
                ));
                attrs.push((
                    "KeyFingerprint",
                    hex(&format!("{stack}/{id}/fp"), 32).into(),
                ));
                name
            }
            "AWS::EC2::Volume" => {
                let v = format!("vol-0{}", hex(&format!("{stack}/{id}"), 16));
                attrs.push(("VolumeId", v.clone().into()));
                v
            }
            "AWS::EC2::PlacementGroup" => name_or(self, "GroupName", 255)?,
            "AWS::IAM::Policy" => {
                let p = generated(&stack, id, 128);
                attrs.push(("Id", p.clone().into()));
                p
            }
            "AWS::Lambda::Permission" => {
                let p = generated(&stack, id, 128);
                attrs.push(("Id", p.clone().into()));
                p
            }
            // Custom resources: their attributes come from a handler that
            // does not run here, so they have none.
            _ => generated(&stack, id, 128),
        };
        for (k, v) in attrs {
            self.attr(id, k, v);
        }
        self.r.refs.insert(id.to_string(), Value::String(physical));
        Ok(())
    }

    /// `Custom::VpcRestrictDefaultSG`: the default group named by its
    /// `DefaultSecurityGroupId` loses every rule.
    pub(super) fn restrict_default_groups(&mut self) -> Result<()> {
        for res in self.of_type(RESTRICT_DEFAULT_SG) {
            let path = format!("{}.DefaultSecurityGroupId", res_path(&res.logical_id));
            let g = self
                .prop_str(res, "DefaultSecurityGroupId")?
                .ok_or_else(|| ModelError::new(&path, "is required"))?;
            let Some(group) = self.m.groups.iter_mut().find(|x| x.id == g && x.is_default) else {
                return Err(ModelError::new(
                    path,
                    format!("{g:?} is not the default security group of a VPC of this template"),
                ));
            };
            group.ingress.clear();
            group.egress.clear();
        }
        Ok(())
    }

    /// Once everything is built: every resource's properties resolved
    /// (a reference this project cannot resolve is an error naming it),
    /// kept resources recorded with their attributes, outputs evaluated.
    pub(super) fn finish_stack(&mut self) -> Result<()> {
        // Kept resources whose names waited for a network resource.
        let mut versions = HashMap::new();
        let waiting: Vec<&template::Resource> = self
            .t
            .resources
            .values()
            .filter(|r| is_kept(&r.kind) && !self.r.refs.contains_key(&r.logical_id))
            .collect();
        for res in waiting {
            self.identity(res, &mut versions)?;
        }
        self.extra_attributes();
        let mut kept = vec![];
        for res in self.t.resources.values() {
            let props = self.props(res)?;
            if is_kept(&res.kind) {
                let id = &res.logical_id;
                kept.push(StackResource {
                    logical_id: id.clone(),
                    resource_type: res.kind.clone(),
                    physical_id: self
                        .r
                        .refs
                        .get(id)
                        .map(template::scalar_string)
                        .unwrap_or_else(|| id.clone()),
                    attributes: self
                        .r
                        .attrs
                        .iter()
                        .filter(|((r, _), _)| r == id)
                        .map(|((_, a), v)| (a.clone(), v.clone()))
                        .collect(),
                    properties: props,
                });
            }
        }
        self.m.stack_resources = kept;
        self.finish_stacks()?;
        self.m.imports = self.r.imports.borrow().iter().cloned().collect();
        self.m.stack_id = template::stack_id(&self.m.region, &self.m.account, &self.m.stack_name);
        Ok(())
    }

    /// Documented attributes of network resources that only the finished
    /// model knows (an instance's DNS names, ...).
    pub(super) fn extra_attributes(&mut self) {
        let domain = self.m.private_dns_domain();
        let mut add = vec![];
        for h in &self.m.hosts {
            let dns = format!("ip-{}.{domain}", h.ip.to_string().replace('.', "-"));
            add.push((h.id.clone(), "PrivateDnsName", Value::String(dns)));
            let public = self.m.public_ips.iter().find(|p| p.host == h.id);
            let public_dns = public
                .map(|p| {
                    let region = &self.m.region;
                    let zone = if region == "us-east-1" {
                        "compute-1.amazonaws.com".to_string()
                    } else {
                        format!("{region}.compute.amazonaws.com")
                    };
                    format!("ec2-{}.{zone}", p.ip.to_string().replace('.', "-"))
                })
                .unwrap_or_default();
            add.push((h.id.clone(), "PublicDnsName", Value::String(public_dns)));
            add.push((h.id.clone(), "InstanceId", Value::String(h.id.clone())));
            add.push((
                h.id.clone(),
                "SecondaryPrivateIpAddresses",
                Value::Array(vec![]),
            ));
        }
        for s in &self.m.subnets {
            add.push((
                s.id.clone(),
                "NetworkAclAssociationId",
                Value::String(format!("aclassoc-0{}", hex(&s.id, 16))),
            ));
            let az_id = format!(
                "use1-az{}",
                (s.az.bytes().last().unwrap_or(b'a') - b'a') + 1
            );
            add.push((s.id.clone(), "AvailabilityZoneId", Value::String(az_id)));
        }
        for (id, k, v) in add {
            self.r.attrs.entry((id, k.to_string())).or_insert(v);
        }
    }
}

#[cfg(test)]
mod tests;
