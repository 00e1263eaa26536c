//! What the EC2 API reads: the deployment's model (every stack's
//! resources, built), the stacks' templates as written (names, tags and
//! descriptions the model does not keep) and every resource's EC2 id,
//! both ways.
use std::collections::HashMap;

use serde_json::Value;

use super::{ids, stack::Template, Ec2Error, Ec2Result, EC2_STACK};
use crate::{
    cloudformation::Stack,
    model::{HostKind, Model, NetworkAcl, RouteTable, SecurityGroup, Subnet, Vpc},
};

/// A region's Availability Zones: `<region>a`, `b` and `c`.
pub fn zones_of(region: &str) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|z| format!("{region}{z}"))
        .collect()
}

pub struct View {
    pub name: String,
    pub model: Model,
    /// The API's template.
    pub api: Template,
    /// Each applied stack's resources as written: logical id → (stack, resource).
    written: HashMap<String, (String, Value)>,
    /// Logical id → EC2 id, and back.
    to_physical: HashMap<String, String>,
    to_logical: HashMap<String, String>,
    /// When each stack was created (ms): a template's instances' launch time.
    stack_created: HashMap<String, u64>,
}

impl View {
    /// The deployment's running desired state.
    pub fn load(name: &str) -> Ec2Result<Self> {
        let s = crate::state::State::load(name)?;
        let stacks = crate::cloudformation::load(name)?;
        Ok(Self::new(name, &s.model, &stacks))
    }

    pub fn new(name: &str, model: &Model, stacks: &[Stack]) -> Self {
        let mut written = HashMap::new();
        for s in stacks.iter().filter(|s| s.applied()) {
            let doc = if s.name == EC2_STACK {
                serde_json::from_str(&s.template_body).ok()
            } else {
                crate::template::document(&s.template_body).ok()
            };
            let Some(Value::Object(res)) = doc.map(|d| d["Resources"].clone()) else {
                continue;
            };
            for (id, r) in res {
                written.insert(id, (s.name.clone(), r));
            }
        }
        let mut v = Self {
            name: name.into(),
            model: model.clone(),
            api: Template::of(stacks),
            written,
            to_physical: HashMap::new(),
            to_logical: HashMap::new(),
            stack_created: stacks
                .iter()
                .map(|s| (s.name.clone(), s.created_ms))
                .collect(),
        };
        let m = &v.model;
        let mut all: Vec<(&str, String)> = vec![];
        all.extend(m.vpcs.iter().map(|x| ("vpc", x.id.clone())));
        all.extend(m.subnets.iter().map(|x| ("subnet", x.id.clone())));
        all.extend(
            m.subnets
                .iter()
                .flat_map(|s| s.reservations.iter().map(|r| ("scr", r.id.clone()))),
        );
        all.extend(m.groups.iter().map(|x| ("sg", x.id.clone())));
        all.extend(m.acls.iter().map(|x| ("acl", x.id.clone())));
        all.extend(m.route_tables.iter().map(|x| ("rtb", x.id.clone())));
        all.extend(m.internet_gateways.iter().map(|x| ("igw", x.id.clone())));
        all.extend(
            m.egress_only_internet_gateways
                .iter()
                .map(|x| ("eigw", x.id.clone())),
        );
        all.extend(m.nat_gateways.iter().map(|x| ("nat", x.id.clone())));
        all.extend(
            m.hosts
                .iter()
                .filter(|h| h.kind == HostKind::Instance)
                .map(|x| ("i", x.id.clone())),
        );
        // AWS-managed lists (`pl-` ids already) are named as they are.
        all.extend(
            m.prefix_lists
                .iter()
                .filter(|x| !x.id.starts_with("pl-"))
                .map(|x| ("pl", x.id.clone())),
        );
        all.extend(m.dhcp_options.iter().map(|x| ("dopt", x.id.clone())));
        // Endpoints and flow logs keep the ids the model gives them (what
        // a template's `!Ref` gives).
        let named: Vec<(String, String)> = m
            .vpc_endpoints
            .iter()
            .map(|e| (e.id.clone(), e.vpce_id.clone()))
            .chain(
                m.flow_logs
                    .iter()
                    .map(|f| (f.id.clone(), f.flow_log_id.clone())),
            )
            // Standalone interfaces: their host's ENI id (the flow logs').
            .chain(
                m.hosts
                    .iter()
                    .filter(|h| h.kind == HostKind::NetworkInterface)
                    .map(|h| {
                        (
                            h.id.clone(),
                            crate::model::flowlog::host_eni_id(&m.stack_name, &h.id),
                        )
                    }),
            )
            .collect();
        let eips: Vec<String> = m.elastic_ips.iter().map(|(e, _)| e.clone()).collect();
        for (prefix, logical) in all {
            let p = v.derive(prefix, &logical);
            v.to_logical.insert(p.clone(), logical.clone());
            v.to_physical.insert(logical, p);
        }
        for (logical, p) in named {
            v.to_logical.insert(p.clone(), logical.clone());
            v.to_physical.insert(logical, p);
        }
        // Elastic IPs are named by their allocation ids, as templates' are.
        for eip in eips {
            let p = crate::model::internet::allocation_id(&eip);
            v.to_logical.insert(p.clone(), eip.clone());
            v.to_physical.insert(eip, p);
        }
        v
    }

    /// The stack a resource (or what it brings: `Vpc.DefaultSecurityGroup`)
    /// belongs to.
    pub fn stack_of(&self, logical: &str) -> &str {
        let base = logical.split('.').next().unwrap_or(logical);
        self.written
            .get(base)
            .map(|(s, _)| s.as_str())
            .unwrap_or_default()
    }

    fn derive(&self, prefix: &str, logical: &str) -> String {
        ids::physical(prefix, &self.name, self.stack_of(logical), logical)
    }

    /// The EC2 id of model resource `logical`.
    pub fn id(&self, logical: &str) -> String {
        self.to_physical
            .get(logical)
            .cloned()
            .unwrap_or_else(|| logical.to_string())
    }

    /// The model's id of EC2 id `physical`, if the model has it.
    pub fn logical(&self, physical: &str) -> Option<&str> {
        self.to_logical.get(physical).map(String::as_str)
    }

    /// Whether the API's own stack declares `logical`.
    pub fn is_api(&self, logical: &str) -> bool {
        self.api.has(logical)
    }

    /// When the API made `logical` (ms), else when its stack was created.
    pub fn created_ms(&self, logical: &str) -> u64 {
        self.api
            .created(logical)
            .map(|ns| ns / 1_000_000)
            .or_else(|| self.stack_created.get(self.stack_of(logical)).copied())
            .unwrap_or_default()
    }

    /// The model's id of prefix list `id`: an API or template list's
    /// logical id, or an AWS-managed list's own `pl-` id.
    pub fn prefix_list_id(&self, id: &str) -> String {
        self.logical(id)
            .map(str::to_string)
            .or_else(|| ids::logical(id))
            .unwrap_or_else(|| id.to_string())
    }

    /// A resource as its template writes it.
    pub fn written(&self, logical: &str) -> Option<&Value> {
        self.written.get(logical).map(|(_, r)| r)
    }

    /// A literal string property of a resource as written.
    pub fn prop(&self, logical: &str, field: &str) -> Option<&str> {
        self.written(logical)?["Properties"][field].as_str()
    }

    /// A resource's tags: its template's literal `Tags`, then those the API
    /// gave it.
    pub fn tags(&self, logical: &str) -> Vec<(String, String)> {
        let mut t = self
            .written(logical)
            .map(|r| super::stack::tags_of(&r["Properties"]["Tags"]))
            .unwrap_or_default();
        if !self.is_api(logical) {
            for (k, v) in self.api.overlay_tags(&self.id(logical)) {
                t.retain(|(x, _)| *x != k);
                t.push((k, v));
            }
        }
        t
    }

    /// Our metadata on an API resource (`Metadata.Vpc::Ec2Api.<key>`).
    pub fn meta(&self, logical: &str, key: &str) -> Option<&Value> {
        self.written(logical)?
            .get("Metadata")?
            .get(super::stack::META)?
            .get(key)
    }

    pub fn vpc(&self, physical: &str) -> Ec2Result<&Vpc> {
        self.logical(physical)
            .and_then(|l| self.model.vpc(l))
            .ok_or_else(|| Ec2Error::not_found("InvalidVpcID.NotFound", "vpc", physical))
    }

    pub fn subnet(&self, physical: &str) -> Ec2Result<&Subnet> {
        self.logical(physical)
            .and_then(|l| self.model.subnet(l))
            .ok_or_else(|| Ec2Error::not_found("InvalidSubnetID.NotFound", "subnet", physical))
    }

    pub fn group(&self, physical: &str) -> Ec2Result<&SecurityGroup> {
        self.logical(physical)
            .and_then(|l| self.model.group(l))
            .ok_or_else(|| {
                Ec2Error::new(
                    "InvalidGroup.NotFound",
                    format!("The security group '{physical}' does not exist"),
                )
            })
    }

    pub fn acl(&self, physical: &str) -> Ec2Result<&NetworkAcl> {
        self.logical(physical)
            .and_then(|l| self.model.acl(l))
            .ok_or_else(|| {
                Ec2Error::not_found("InvalidNetworkAclID.NotFound", "network ACL", physical)
            })
    }

    pub fn route_table(&self, physical: &str) -> Ec2Result<&RouteTable> {
        self.logical(physical)
            .and_then(|l| self.model.route_table(l))
            .ok_or_else(|| {
                Ec2Error::not_found("InvalidRouteTableID.NotFound", "route table", physical)
            })
    }

    /// The deployment's region's Availability Zones, as `Fn::GetAZs`
    /// gives them.
    pub fn zones(&self) -> Vec<String> {
        let r = if self.model.region.is_empty() {
            "us-east-1"
        } else {
            &self.model.region
        };
        zones_of(r)
    }

    pub fn account(&self) -> &str {
        if self.model.account.is_empty() {
            "123456789012"
        } else {
            &self.model.account
        }
    }

    /// The model's id for an EC2 id the API is about to create or refer
    /// to: the API's own by shape, else the model's.
    pub fn logical_or_api(&self, physical: &str) -> Option<String> {
        self.logical(physical)
            .map(str::to_string)
            .or_else(|| ids::logical(physical))
    }

    /// Refuses a change to a resource another stack's template declares:
    /// that template is where it changes.
    pub fn owned(&self, logical: &str, physical: &str) -> Ec2Result<()> {
        let base = logical.split('.').next().unwrap_or(logical);
        if self.is_api(base) {
            return Ok(());
        }
        Err(Ec2Error::new(
            "OperationNotPermitted",
            format!(
                "{physical} is declared by stack {} of this deployment: change it in that stack's template (docs/ec2.md)",
                self.stack_of(logical)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::{build_stacks, Quotas, StackSource};

    /// A template's resources and what a VPC brings get derived ids, the
    /// API's keep theirs; both map back to the model.
    #[test]
    fn every_resource_has_an_ec2_id_both_ways() {
        let net = "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}\n  Sub: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}\n";
        let api = r#"{"Resources": {"subnet0123456789abcdef0": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": "Vpc", "CidrBlock": "10.0.2.0/24", "Tags": [{"Key": "k", "Value": "v"}]}}}}"#;
        let none = HashMap::new();
        let src = |name, text| StackSource {
            name,
            text,
            params: &none,
            dir: None,
        };
        let m = build_stacks(
            &[src("Net", net), src(EC2_STACK, api)],
            &crate::template::Context::new("dep"),
            Quotas::default(),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let stacks = [
            Stack {
                name: "Net".into(),
                template_body: net.into(),
                status: "CREATE_COMPLETE".into(),
                ..Default::default()
            },
            Stack {
                name: EC2_STACK.into(),
                template_body: api.into(),
                status: "UPDATE_COMPLETE".into(),
                ..Default::default()
            },
        ];
        let v = View::new("dep", &m, &stacks);
        let vpc = v.id("Vpc");
        assert_eq!(vpc, ids::derived("vpc", "dep", "Net", "Vpc"));
        assert_eq!(v.logical(&vpc), Some("Vpc"));
        assert_eq!(v.id("subnet0123456789abcdef0"), "subnet-0123456789abcdef0");
        assert_eq!(
            v.logical("subnet-0123456789abcdef0"),
            Some("subnet0123456789abcdef0")
        );
        let sg = v.id("Vpc.DefaultSecurityGroup");
        assert!(sg.starts_with("sg-") && sg.len() == 20, "{sg}");
        assert_eq!(v.group(&sg).unwrap().id, "Vpc.DefaultSecurityGroup");
        assert_eq!(v.stack_of("Vpc.DefaultSecurityGroup"), "Net");
        assert_eq!(
            v.tags("subnet0123456789abcdef0"),
            [("k".to_string(), "v".to_string())]
        );
        assert!(v.is_api("subnet0123456789abcdef0") && !v.is_api("Sub"));
        assert_eq!(
            v.owned("Sub", "subnet-x").unwrap_err().code,
            "OperationNotPermitted"
        );
        assert_eq!(
            v.vpc("vpc-0000000000000000a").unwrap_err().code,
            "InvalidVpcID.NotFound"
        );
    }
}
