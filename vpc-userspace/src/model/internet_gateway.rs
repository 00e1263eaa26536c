//! Internet gateways: `AWS::EC2::InternetGateway` with its
//! `AWS::EC2::VPCGatewayAttachment`, and `AWS::EC2::EgressOnlyInternetGateway`.
use serde::{Deserialize, Serialize};

use super::{required_str, res_path, str_field, Builder, Model};
use crate::template::{ModelError, Result};

pub const INTERNET_GATEWAY: &str = "AWS::EC2::InternetGateway";
pub const VPC_GATEWAY_ATTACHMENT: &str = "AWS::EC2::VPCGatewayAttachment";
pub const EGRESS_ONLY_INTERNET_GATEWAY: &str = "AWS::EC2::EgressOnlyInternetGateway";

/// `AWS::EC2::InternetGateway`, attached to at most one VPC.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InternetGateway {
    pub id: String,
    /// The VPC it is attached to (`AWS::EC2::VPCGatewayAttachment`).
    pub vpc: Option<String>,
}

/// `AWS::EC2::EgressOnlyInternetGateway`: created in its VPC (`VpcId`),
/// nothing to attach. IPv6 out and its replies; nothing in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EgressOnlyInternetGateway {
    pub id: String,
    pub vpc: String,
}

impl Model {
    pub fn internet_gateway(&self, id: &str) -> Option<&InternetGateway> {
        self.internet_gateways.iter().find(|g| g.id == id)
    }

    pub fn egress_only_internet_gateway(&self, id: &str) -> Option<&EgressOnlyInternetGateway> {
        self.egress_only_internet_gateways
            .iter()
            .find(|g| g.id == id)
    }
}

impl Builder<'_> {
    /// Gateways and their attachments: the first step of `route_tables`.
    pub(super) fn internet_gateways(&mut self) -> Result<()> {
        for res in self.of_type(INTERNET_GATEWAY) {
            let id = res.logical_id.clone();
            self.m.internet_gateways.push(InternetGateway {
                id: id.clone(),
                vpc: None,
            });
        }
        for res in self.of_type(VPC_GATEWAY_ATTACHMENT) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, &id, "VpcId")?;
            if str_field(&p, &id, "VpnGatewayId")?.is_some() {
                return Err(ModelError::new(
                    format!("{}.VpnGatewayId", res_path(&id)),
                    "virtual private gateways are not supported",
                ));
            }
            let igw = required_str(&p, &id, "InternetGatewayId")?.to_string();
            let path = format!("{}.InternetGatewayId", res_path(&id));
            if self
                .m
                .internet_gateways
                .iter()
                .any(|g| g.vpc.as_deref() == Some(&vpc))
            {
                return Err(ModelError::new(
                    path,
                    format!("{vpc} already has an internet gateway attached (one per VPC)"),
                ));
            }
            let g = self
                .m
                .internet_gateways
                .iter_mut()
                .find(|g| g.id == igw)
                .ok_or_else(|| {
                    ModelError::new(&path, format!("InvalidInternetGatewayID.NotFound: {igw:?}"))
                })?;
            if let Some(other) = &g.vpc {
                return Err(ModelError::new(
                    path,
                    format!("Resource.AlreadyAssociated: {igw} is already attached to {other}"),
                ));
            }
            g.vpc = Some(vpc);
        }
        for res in self.of_type(EGRESS_ONLY_INTERNET_GATEWAY) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, &id, "VpcId")?;
            self.m
                .egress_only_internet_gateways
                .push(EgressOnlyInternetGateway { id, vpc });
        }
        Ok(())
    }
}
