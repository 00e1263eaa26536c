//! NAT gateways: `AWS::EC2::NatGateway`, public (with an Elastic IP) or
//! private (`ConnectivityType: private`: its own private address).
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{internet::allocation_id, res_path, str_field, Builder, Model};
use crate::template::{ModelError, Result};

pub const NAT_GATEWAY: &str = "AWS::EC2::NatGateway";
/// AWS: 55,000 simultaneous connections per destination (address, port,
/// protocol), adjustable for tests.
pub const DEFAULT_NAT_GATEWAY_CAPACITY: u32 = 55_000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NatGateway {
    pub id: String,
    /// 1-based.
    pub index: u32,
    pub subnet: String,
    /// Its private address in its subnet.
    pub ip: Ipv4Addr,
    /// The address connections leave with: its Elastic IP, or for a
    /// private gateway its private address.
    pub public_ip: Ipv4Addr,
    /// Its Elastic IP's logical id (empty for a private gateway).
    pub eip: String,
    /// `ConnectivityType: private`.
    #[serde(default)]
    pub private: bool,
}

impl Model {
    pub fn nat_gateway(&self, id: &str) -> Option<&NatGateway> {
        self.nat_gateways.iter().find(|g| g.id == id)
    }
}

impl Builder<'_> {
    /// The VPC of a NAT gateway of the template (before they are built:
    /// routes are checked first), or `None` if `id` is none.
    pub(super) fn nat_gateway_vpc(&self, id: &str) -> Result<Option<String>> {
        let Some(res) = self.t.resources.get(id).filter(|r| r.kind == NAT_GATEWAY) else {
            return Ok(None);
        };
        let p = self.props(res)?;
        let subnet = str_field(&p, id, "SubnetId")?.unwrap_or_default();
        Ok(self.m.subnet(subnet).map(|s| s.vpc.clone()))
    }

    /// After hosts and their public addresses: each gateway takes an
    /// address of its subnet and its Elastic IP.
    pub(super) fn nat_gateways(&mut self) -> Result<()> {
        for res in self.of_type(NAT_GATEWAY) {
            let id = res.logical_id.clone();
            let p = self.props(res)?;
            let path = res_path(&id);
            let private = match str_field(&p, &id, "ConnectivityType")? {
                None | Some("public") => false,
                Some("private") => true,
                Some(other) => {
                    return Err(ModelError::new(
                        format!("{path}.ConnectivityType"),
                        format!("{other:?}: public or private"),
                    ))
                }
            };
            let subnet_id = str_field(&p, &id, "SubnetId")?
                .ok_or_else(|| ModelError::new(format!("{path}.SubnetId"), "is required"))?;
            let subnet = self.m.subnet(subnet_id).cloned().ok_or_else(|| {
                ModelError::new(
                    format!("{path}.SubnetId"),
                    format!("InvalidSubnetID.NotFound: {subnet_id:?}"),
                )
            })?;
            let alloc = str_field(&p, &id, "AllocationId")?;
            if private {
                if alloc.is_some() {
                    return Err(ModelError::new(
                        format!("{path}.AllocationId"),
                        "a private NAT gateway has no Elastic IP (it translates to its private address)",
                    ));
                }
                let want = Self::parse_ip(&p, &id, "PrivateIpAddress", &path)?;
                let ip = match want {
                    Some(_) => self.take_ip(&subnet, want, &format!("{path}.PrivateIpAddress"))?,
                    None => self.take_kept_ip(&id, &subnet, &format!("{path}.PrivateIpAddress"))?,
                };
                self.attr(&id, "NatGatewayId", id.clone());
                self.m.nat_gateways.push(NatGateway {
                    index: self.m.nat_gateways.len() as u32 + 1,
                    id,
                    subnet: subnet.id.clone(),
                    ip,
                    public_ip: ip,
                    eip: String::new(),
                    private,
                });
                continue;
            }
            let alloc = alloc.ok_or_else(|| {
                ModelError::new(
                    format!("{path}.AllocationId"),
                    "is required for a public NAT gateway (an AWS::EC2::EIP's AllocationId)",
                )
            })?;
            let (eip, public_ip) = self
                .eips
                .iter()
                .find(|(e, _)| allocation_id(e) == alloc)
                .cloned()
                .ok_or_else(|| {
                    ModelError::new(
                        format!("{path}.AllocationId"),
                        format!("InvalidAllocationID.NotFound: {alloc:?}"),
                    )
                })?;
            let taken = self
                .m
                .public_ips
                .iter()
                .find(|x| x.eip.as_deref() == Some(eip.as_str()))
                .map(|x| x.host.clone())
                .or_else(|| {
                    self.m
                        .nat_gateways
                        .iter()
                        .find(|g| g.eip == eip)
                        .map(|g| g.id.clone())
                });
            if let Some(other) = taken {
                return Err(ModelError::new(
                    format!("{path}.AllocationId"),
                    format!("Resource.AlreadyAssociated: {eip} is already associated with {other}"),
                ));
            }
            let want = Self::parse_ip(&p, &id, "PrivateIpAddress", &path)?;
            let ip = match want {
                Some(_) => self.take_ip(&subnet, want, &format!("{path}.PrivateIpAddress"))?,
                None => self.take_kept_ip(&id, &subnet, &format!("{path}.PrivateIpAddress"))?,
            };
            self.attr(&id, "NatGatewayId", id.clone());
            self.m.nat_gateways.push(NatGateway {
                index: self.m.nat_gateways.len() as u32 + 1,
                id,
                subnet: subnet.id.clone(),
                ip,
                public_ip,
                eip,
                private,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::model::{build, route_table::Target};

    const BASE: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Public: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  NatIp: {Type: AWS::EC2::EIP, Properties: {Domain: vpc}}
  Nat: {Type: AWS::EC2::NatGateway, Properties: {SubnetId: !Ref Public, AllocationId: !GetAtt NatIp.AllocationId}}
  PrivateRt: {Type: AWS::EC2::RouteTable, Properties: {VpcId: !Ref Vpc}}
  ToNat: {Type: AWS::EC2::Route, Properties: {RouteTableId: !Ref PrivateRt, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}
"#;

    #[test]
    fn a_nat_gateway_takes_an_address_of_its_subnet_and_its_elastic_ip() {
        let m = build(BASE, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"));
        let g = m.nat_gateway("Nat").unwrap();
        assert_eq!((g.index, g.subnet.as_str()), (1, "Public"));
        assert_eq!(
            g.ip.to_string(),
            "10.0.1.4",
            "the first address after the reserved ones"
        );
        assert_eq!(g.public_ip.to_string(), "198.51.100.10");
        let rt = m.route_table("PrivateRt").unwrap();
        assert_eq!(rt.routes[0].target, Target::NatGateway("Nat".into()));
    }

    #[test]
    fn an_eni_created_at_runtime_never_takes_a_nat_gateways_address() {
        let m = build(BASE, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"));
        // 10.0.1.4 is the gateway's: the next ENI of its subnet gets .5.
        assert_eq!(m.free_ip("Public").unwrap().to_string(), "10.0.1.5");
    }

    #[test]
    fn a_private_nat_gateway_translates_to_its_own_private_address() {
        let t = BASE.replace(
            "SubnetId: !Ref Public, AllocationId: !GetAtt NatIp.AllocationId",
            "SubnetId: !Ref Public, ConnectivityType: private, PrivateIpAddress: 10.0.1.9",
        );
        let m = build(&t, &HashMap::new(), "s").unwrap_or_else(|e| panic!("{e}"));
        let g = m.nat_gateway("Nat").unwrap();
        assert!(g.private);
        assert_eq!((g.ip.to_string(), g.public_ip), ("10.0.1.9".into(), g.ip));
        assert_eq!(g.eip, "");
        let e = crate::compile::compile(&m, &HashMap::new(), 0).unwrap();
        let (_, eni) = e
            .enis
            .iter()
            .find(|(id, _)| *id >= vpc_common::NAT_GATEWAY_ID_BASE)
            .unwrap();
        assert_eq!(eni.addr4, vpc_common::v4_mapped([10, 0, 1, 9]));
        assert_eq!(eni.nat_private, 1);
    }

    #[test]
    fn bad_nat_gateways_and_routes_to_them_name_their_field() {
        let cases = [
            (BASE.replace("AllocationId: !GetAtt NatIp.AllocationId", "AllocationId: eipalloc-0"), "Nat.Properties.AllocationId", "InvalidAllocationID.NotFound"),
            (BASE.replace(", AllocationId: !GetAtt NatIp.AllocationId", ""), "Nat.Properties.AllocationId", "is required"),
            (BASE.replace("SubnetId: !Ref Public, ", "SubnetId: !Ref Public, ConnectivityType: private, "), "Nat.Properties.AllocationId", "no Elastic IP"),
            (BASE.replace("SubnetId: !Ref Public, ", "SubnetId: !Ref Public, ConnectivityType: privat, "), "Nat.Properties.ConnectivityType", "public or private"),
            (BASE.replace("NatGatewayId: !Ref Nat", "NatGatewayId: nat-0123"), "ToNat.Properties.NatGatewayId", "InvalidNatGatewayID.NotFound"),
            (BASE.replace("DestinationCidrBlock: 0.0.0.0/0", "DestinationIpv6CidrBlock: '::/0'"), "ToNat.Properties.NatGatewayId", "IPv4 destinations"),
            (format!("{BASE}  Web: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref Public}}}}\n  A: {{Type: AWS::EC2::EIPAssociation, Properties: {{AllocationId: !GetAtt NatIp.AllocationId, InstanceId: !Ref Web}}}}\n"), "Nat.Properties.AllocationId", "AlreadyAssociated"),
            (format!("{BASE}  Other: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: 10.1.0.0/16}}}}\n  OtherRt: {{Type: AWS::EC2::RouteTable, Properties: {{VpcId: !Ref Other}}}}\n  X: {{Type: AWS::EC2::Route, Properties: {{RouteTableId: !Ref OtherRt, DestinationCidrBlock: 0.0.0.0/0, NatGatewayId: !Ref Nat}}}}\n"), "X.Properties.NatGatewayId", "is in VPC Vpc"),
        ];
        for (t, path, msg) in cases {
            let e = build(&t, &HashMap::new(), "s").expect_err(path).to_string();
            assert!(
                e.contains(path) && e.contains(msg),
                "got {e:?}, want {path} / {msg}"
            );
        }
    }
}
