//! Public IPv4 addresses to `PUBLIC_TO_PRIVATE` and `PRIVATE_TO_PUBLIC`
//! entries: the internet gateways' one-to-one NAT.
use vpc_common::{v4_mapped, AddrKey};

use super::Entries;
use crate::model::Model;

/// The internet gateway's 1:1 NAT table, both ways.
pub(super) fn public_ips(model: &Model, out: &mut Entries) {
    for p in &model.public_ips {
        let host = model
            .hosts
            .iter()
            .find(|h| h.id == p.host)
            .expect("validated");
        let vpc = model.subnet(&host.subnet).expect("validated").vpc.clone();
        let vpc = model.vpc(&vpc).expect("validated").index;
        let public = v4_mapped(p.ip.octets());
        let private = model.private_of(p).expect("validated");
        let private = AddrKey::of(vpc, v4_mapped(private.octets()));
        out.public_to_private.push((public, private));
        out.private_to_public.push((private, public));
    }
}
