//! NAT gateways to `ENIS` entries: each hands out source ports as a
//! Hyperplane ENI does, under an id of its own.
use vpc_common::v4_mapped;

use super::Entries;
use crate::model::Model;

/// The `ENIS` id of NAT gateway `index`: NAT gateways hand out source
/// ports from `NAT_PORTS` as Hyperplane ENIs do, under ids of their own.
pub fn nat_gateway_id(index: u32) -> u32 {
    vpc_common::NAT_GATEWAY_ID_BASE + index
}

/// NAT gateways as `ENIS` entries: the address connections leave with
/// (the Elastic IP, or a private gateway's own address), the subnet, the
/// port pool; no groups.
pub(super) fn nat_gateways(model: &Model, out: &mut Entries) {
    for g in &model.nat_gateways {
        let subnet = model.subnet(&g.subnet).expect("validated");
        let id = nat_gateway_id(g.index);
        let eni = vpc_common::HyperplaneEni {
            addr4: v4_mapped(g.public_ip.octets()),
            vpc: model.vpc(&subnet.vpc).expect("validated").index,
            subnet: model.subnet_index(&g.subnet),
            pool: id,
            nat_private: g.private as u8,
            ..Default::default()
        };
        out.enis.push((id, eni));
    }
}
