//! EC2's query API on the agent's endpoint (requests signed for `ec2`),
//! over the same desired state as templates: the API's resources live in
//! one internal stack of the deployment, [`stack::EC2_STACK`], whose
//! template (JSON, `AWS::EC2::*` resources with CloudFormation's property
//! names) each mutating call edits and then applies with every stack of
//! the deployment through the reconciler
//! ([`crate::reconcile::apply_stacks`]): validation, nothing half-applied
//! and the datapath come from the one path templates take. Reads see
//! every stack's resources, under AWS-shaped ids ([`ids`]).
//!
//! One file per resource family (VPCs, subnets, security groups, network
//! ACLs, route tables, gateways, tags), this one with the query
//! protocol's plumbing: parameters, answers, errors
//! (`<Response><Errors><Error>`, HTTP 400). See docs/ec2.md.
use std::{collections::BTreeMap, sync::Arc};

use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Router,
};

use crate::cloudformation::xml::Xml;

mod cidr_reservations;
mod default_vpc;
mod dhcp_options;
mod filters;
mod flow_logs;
mod gateways;
pub mod ids;
mod instances;
mod nat_gateways;
mod network_acls;
mod network_interfaces;
mod prefix_lists;
mod route_tables;
mod security_group_rules;
mod security_groups;
pub mod stack;
mod subnets;
mod tags;
mod view;
mod vpc_endpoints;
mod vpcs;

pub use stack::EC2_STACK;
pub use view::View;

/// EC2's XML namespace (API version 2016-11-15).
pub const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// The largest request taken.
const BODY_LIMIT: usize = 4 << 20;

/// An EC2 error: its code (`InvalidVpcID.NotFound`, ...) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Ec2Error {
    pub code: String,
    pub message: String,
}

impl Ec2Error {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterValue", message)
    }

    pub fn missing(param: &str) -> Self {
        Self::new(
            "MissingParameter",
            format!("The request must contain the parameter {param}"),
        )
    }

    /// `<Kind>ID.NotFound` for a physical id: `The vpc ID 'vpc-x' does not exist`.
    pub fn not_found(code: &str, what: &str, id: &str) -> Self {
        Self::new(code, format!("The {what} ID '{id}' does not exist"))
    }
}

impl From<anyhow::Error> for Ec2Error {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<Ec2Error>() {
            Ok(e) => e,
            Err(e) => stack::model_error(&format!("{e:#}")),
        }
    }
}

pub type Ec2Result<T> = std::result::Result<T, Ec2Error>;

/// A request's parameters: its query and its form body, in EC2's query
/// shape (`VpcId.1`, `Filter.1.Name`, `Filter.1.Value.1`, ...).
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(a, _)| a == k).map(|(_, v)| v.as_str())
    }

    pub fn required(&self, k: &str) -> Ec2Result<&str> {
        self.get(k).ok_or_else(|| Ec2Error::missing(k))
    }

    pub fn flag(&self, k: &str) -> Option<bool> {
        self.get(k).map(|v| v.eq_ignore_ascii_case("true"))
    }

    pub fn int(&self, k: &str) -> Ec2Result<Option<i64>> {
        self.get(k)
            .map(|v| {
                v.parse().map_err(|_| {
                    Ec2Error::invalid(format!("Value ({v}) for parameter {k} is invalid."))
                })
            })
            .transpose()
    }

    /// `Prefix.N` values, in N's order.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let p = format!("{prefix}.");
        let mut v: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(&p)?.parse().ok()?, v.clone())))
            .collect();
        v.sort();
        v.into_iter().map(|(_, v)| v).collect()
    }

    /// `Prefix.N.*` structures, in N's order, each with its keys relative
    /// to `Prefix.N.`.
    pub fn structs(&self, prefix: &str) -> Vec<Params> {
        let p = format!("{prefix}.");
        let mut by: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix(&p) else {
                continue;
            };
            let Some((n, field)) = rest.split_once('.') else {
                continue;
            };
            if let Ok(n) = n.parse() {
                by.entry(n).or_default().push((field.into(), v.clone()));
            }
        }
        by.into_values().map(Params).collect()
    }

    /// `Tag.N.Key` / `Tag.N.Value` (under `prefix`).
    pub fn tags(&self, prefix: &str) -> Vec<(String, String)> {
        self.structs(prefix)
            .into_iter()
            .filter_map(|t| {
                Some((
                    t.get("Key")?.to_string(),
                    t.get("Value").unwrap_or_default().to_string(),
                ))
            })
            .collect()
    }

    /// The tags `TagSpecification.N` gives resources of type `kind`.
    pub fn tag_specs(&self, kind: &str) -> Vec<(String, String)> {
        self.structs("TagSpecification")
            .into_iter()
            .filter(|s| s.get("ResourceType").is_none_or(|t| t == kind))
            .flat_map(|s| s.tags("Tag"))
            .collect()
    }
}

/// The router of deployment `name`'s EC2 API.
pub fn router(name: &str) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Arc::new(name.to_string()))
}

async fn handle(State(name): State<Arc<String>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let id = crate::cloudformation::xml::request_id("ec2");
    // moto's reset between tests (`POST /moto-api/reset`): the API's
    // resources go (docs/ec2.md).
    if parts.uri.path().starts_with("/moto-api/reset") {
        let n = name.to_string();
        let r = tokio::task::spawn_blocking(move || stack::reset(&n)).await;
        return match r {
            Ok(Ok(())) => (StatusCode::OK, "{\"status\": \"ok\"}").into_response(),
            Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
    }
    let mut params: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    params.extend(form_urlencoded::parse(&body).into_owned());
    let params = Params(params);
    let action = params.get("Action").unwrap_or_default().to_string();
    let caller = parts
        .extensions
        .get::<crate::agent::request::Caller>()
        .cloned()
        .unwrap_or_default();
    let region = caller.region.clone();
    // The CLI's reads (`vpc eni list`) do not make the default VPC appear.
    let cli = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|u| u.starts_with("vpc-cli/"));
    let (n, a) = (name.to_string(), action.clone());
    let answer = tokio::task::spawn_blocking(move || {
        let ctx = Ctx {
            name: n,
            region: region.unwrap_or_else(|| "us-east-1".into()),
            cli,
        };
        dispatch(&ctx, &a, &params)
    })
    .await
    .unwrap_or_else(|e| Err(Ec2Error::new("InternalError", e.to_string())));
    tracing::debug!(action, ok = answer.is_ok(), "ec2");
    let (status, text) = match answer {
        Ok(body) => (StatusCode::OK, response(&action, &body, &id)),
        Err(e) => {
            let status = match e.code.as_str() {
                "InternalError" => StatusCode::INTERNAL_SERVER_ERROR,
                // What the SDKs expect of a dry run that would succeed.
                "DryRunOperation" => StatusCode::PRECONDITION_FAILED,
                _ => StatusCode::BAD_REQUEST,
            };
            (status, error(&e.code, &e.message, &id))
        }
    };
    crate::cloudformation::xml::reply(status, text, &id)
}

/// Who asks: the deployment, and the region the signature names.
pub struct Ctx {
    pub name: String,
    pub region: String,
    /// The deployment's own CLI asks (it reads; no default VPC for it).
    pub cli: bool,
}

/// `<ActionResponse xmlns=...><requestId>id</requestId>body</ActionResponse>`.
pub fn response(action: &str, body: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{NS}\"><requestId>{request_id}</requestId>{body}</{action}Response>"
    )
}

/// EC2's error document.
pub fn error(code: &str, message: &str, request_id: &str) -> String {
    use crate::cloudformation::xml::escape;
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>",
        escape(code),
        escape(message)
    )
}

/// `<return>true</return>`: the answer of most mutating calls.
fn ok() -> Ec2Result<String> {
    Ok("<return>true</return>".into())
}

fn dispatch(ctx: &Ctx, action: &str, p: &Params) -> Ec2Result<String> {
    // The default VPC, when the deployment has one, appears on the first
    // call (docs/ec2.md).
    if !action.is_empty() && !ctx.cli {
        default_vpc::ensure(ctx)?;
    }
    if p.flag("DryRun") == Some(true) {
        return Err(Ec2Error::new(
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    match action {
        "DescribeVpcs" => vpcs::describe(ctx, p),
        "CreateVpc" => vpcs::create(ctx, p),
        "DeleteVpc" => vpcs::delete(ctx, p),
        "ModifyVpcAttribute" => vpcs::modify_attribute(ctx, p),
        "DescribeVpcAttribute" => vpcs::describe_attribute(ctx, p),
        "AssociateVpcCidrBlock" => vpcs::associate_cidr_block(ctx, p),
        "DisassociateVpcCidrBlock" => vpcs::disassociate_cidr_block(ctx, p),
        "CreateDefaultVpc" => default_vpc::create(ctx),
        "CreateDefaultSubnet" => default_vpc::create_subnet(ctx, p),
        "DescribeAvailabilityZones" => subnets::availability_zones(ctx, p),
        "DescribeSubnets" => subnets::describe(ctx, p),
        "CreateSubnet" => subnets::create(ctx, p),
        "DeleteSubnet" => subnets::delete(ctx, p),
        "ModifySubnetAttribute" => subnets::modify_attribute(ctx, p),
        "AssociateSubnetCidrBlock" => subnets::associate_cidr_block(ctx, p),
        "DisassociateSubnetCidrBlock" => subnets::disassociate_cidr_block(ctx, p),
        "CreateSubnetCidrReservation" => cidr_reservations::create(ctx, p),
        "GetSubnetCidrReservations" => cidr_reservations::get(ctx, p),
        "DeleteSubnetCidrReservation" => cidr_reservations::delete(ctx, p),
        "DescribeSecurityGroups" => security_groups::describe(ctx, p),
        "CreateSecurityGroup" => security_groups::create(ctx, p),
        "DeleteSecurityGroup" => security_groups::delete(ctx, p),
        "AuthorizeSecurityGroupIngress" => security_groups::authorize(ctx, p, true),
        "AuthorizeSecurityGroupEgress" => security_groups::authorize(ctx, p, false),
        "RevokeSecurityGroupIngress" => security_groups::revoke(ctx, p, true),
        "RevokeSecurityGroupEgress" => security_groups::revoke(ctx, p, false),
        "DescribeSecurityGroupRules" => security_groups::describe_rules(ctx, p),
        "ModifySecurityGroupRules" => security_groups::modify_rules(ctx, p),
        "UpdateSecurityGroupRuleDescriptionsIngress" => {
            security_groups::update_descriptions(ctx, p, true)
        }
        "UpdateSecurityGroupRuleDescriptionsEgress" => {
            security_groups::update_descriptions(ctx, p, false)
        }
        "DescribeNetworkAcls" => network_acls::describe(ctx, p),
        "CreateNetworkAcl" => network_acls::create(ctx, p),
        "DeleteNetworkAcl" => network_acls::delete(ctx, p),
        "CreateNetworkAclEntry" => network_acls::create_entry(ctx, p, false),
        "ReplaceNetworkAclEntry" => network_acls::create_entry(ctx, p, true),
        "DeleteNetworkAclEntry" => network_acls::delete_entry(ctx, p),
        "ReplaceNetworkAclAssociation" => network_acls::replace_association(ctx, p),
        "DescribeRouteTables" => route_tables::describe(ctx, p),
        "CreateRouteTable" => route_tables::create(ctx, p),
        "DeleteRouteTable" => route_tables::delete(ctx, p),
        "CreateRoute" => route_tables::create_route(ctx, p, false),
        "ReplaceRoute" => route_tables::create_route(ctx, p, true),
        "DeleteRoute" => route_tables::delete_route(ctx, p),
        "AssociateRouteTable" => route_tables::associate(ctx, p),
        "DisassociateRouteTable" => route_tables::disassociate(ctx, p),
        "ReplaceRouteTableAssociation" => route_tables::replace_association(ctx, p),
        "DescribeNetworkInterfaces" => network_interfaces::describe(ctx, p),
        "DeleteNetworkInterface" => network_interfaces::delete(ctx, p),
        "CreateNetworkInterface" => network_interfaces::create(ctx, p),
        "ModifyNetworkInterfaceAttribute" => network_interfaces::modify_attribute(ctx, p),
        "AttachNetworkInterface" => network_interfaces::attach(ctx, p, true),
        "DetachNetworkInterface" => network_interfaces::attach(ctx, p, false),
        "DescribeInternetGateways" => gateways::describe(ctx, p),
        "CreateInternetGateway" => gateways::create(ctx, p),
        "DeleteInternetGateway" => gateways::delete(ctx, p),
        "AttachInternetGateway" => gateways::attach(ctx, p, true),
        "DetachInternetGateway" => gateways::attach(ctx, p, false),
        "DescribeEgressOnlyInternetGateways" => gateways::describe_egress_only(ctx, p),
        "CreateEgressOnlyInternetGateway" => gateways::create_egress_only(ctx, p),
        "DeleteEgressOnlyInternetGateway" => gateways::delete_egress_only(ctx, p),
        "AllocateAddress" => nat_gateways::allocate(ctx, p),
        "ReleaseAddress" => nat_gateways::release(ctx, p),
        "DescribeAddresses" => nat_gateways::describe_addresses(ctx, p),
        "CreateNatGateway" => nat_gateways::create(ctx, p),
        "DeleteNatGateway" => nat_gateways::delete(ctx, p),
        "DescribeNatGateways" => nat_gateways::describe(ctx, p),
        "RunInstances" => instances::run(ctx, p),
        "DescribeInstances" => instances::describe(ctx, p),
        "TerminateInstances" => instances::terminate(ctx, p),
        "DescribeInstanceStatus" => instances::describe_status(ctx, p),
        "ModifyInstanceAttribute" => instances::modify_attribute(ctx, p),
        "DescribeInstanceAttribute" => instances::describe_attribute(ctx, p),
        "CreateVpcEndpoint" => vpc_endpoints::create(ctx, p),
        "ModifyVpcEndpoint" => vpc_endpoints::modify(ctx, p),
        "DescribeVpcEndpoints" => vpc_endpoints::describe(ctx, p),
        "DeleteVpcEndpoints" => vpc_endpoints::delete(ctx, p),
        "DescribeVpcEndpointServices" => vpc_endpoints::describe_services(ctx, p),
        "DescribePrefixLists" => vpc_endpoints::describe_prefix_lists(ctx, p),
        "CreateDhcpOptions" => dhcp_options::create(ctx, p),
        "AssociateDhcpOptions" => dhcp_options::associate(ctx, p),
        "DescribeDhcpOptions" => dhcp_options::describe(ctx, p),
        "DeleteDhcpOptions" => dhcp_options::delete(ctx, p),
        "CreateManagedPrefixList" => prefix_lists::create(ctx, p),
        "DescribeManagedPrefixLists" => prefix_lists::describe(ctx, p),
        "GetManagedPrefixListEntries" => prefix_lists::entries_of(ctx, p),
        "ModifyManagedPrefixList" => prefix_lists::modify(ctx, p),
        "DeleteManagedPrefixList" => prefix_lists::delete(ctx, p),
        "CreateFlowLogs" => flow_logs::create(ctx, p),
        "DescribeFlowLogs" => flow_logs::describe(ctx, p),
        "DeleteFlowLogs" => flow_logs::delete(ctx, p),
        "CreateTags" => tags::create(ctx, p),
        "DeleteTags" => tags::delete(ctx, p),
        "DescribeTags" => tags::describe(ctx, p),
        "" => Err(Ec2Error::new(
            "MissingAction",
            "The request must contain the parameter Action",
        )),
        other => Err(Ec2Error::new(
            "InvalidAction",
            format!(
                "The action {other} is not valid for this web service (this endpoint serves EC2's VPC operations: docs/ec2.md)."
            ),
        )),
    }
}

/// An XML fragment writer (CloudFormation's).
fn xml() -> Xml {
    Xml::default()
}

/// EC2's `unsuccessful` set of a batch operation: each id it could not
/// act on, with its error.
fn unsuccessful<'x>(x: &'x mut Xml, failed: &[(String, Ec2Error)]) -> &'x mut Xml {
    x.items("unsuccessful", failed, |x, (id, e)| {
        x.open("error")
            .leaf("code", &e.code)
            .leaf("message", &e.message)
            .close("error")
            .leaf("resourceId", id);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    #[test]
    fn query_lists_and_structures() {
        let p = params("Action=DescribeVpcs&VpcId.2=b&VpcId.1=a&Filter.1.Name=tag%3AName&Filter.1.Value.1=x&Filter.1.Value.2=y&TagSpecification.1.ResourceType=vpc&TagSpecification.1.Tag.1.Key=k&TagSpecification.1.Tag.1.Value=v");
        assert_eq!(p.list("VpcId"), ["a", "b"]);
        let f = p.structs("Filter");
        assert_eq!(f[0].get("Name"), Some("tag:Name"));
        assert_eq!(f[0].list("Value"), ["x", "y"]);
        assert_eq!(p.tag_specs("vpc"), [("k".to_string(), "v".to_string())]);
        assert!(p.tag_specs("subnet").is_empty());
        assert_eq!(p.required("Nope").unwrap_err().code, "MissingParameter");
    }

    #[test]
    fn errors_are_ec2s_shape() {
        let e = error(
            "InvalidVpcID.NotFound",
            "The vpc ID 'vpc-1' does not exist",
            "r",
        );
        assert!(e.contains("<Response><Errors><Error><Code>InvalidVpcID.NotFound</Code><Message>The vpc ID &apos;vpc-1&apos; does not exist</Message></Error></Errors><RequestID>r</RequestID></Response>"), "{e}");
        assert!(response("CreateTags", "<return>true</return>", "r").contains(
            "<CreateTagsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><return>true</return></CreateTagsResponse>"
        ));
    }
}
