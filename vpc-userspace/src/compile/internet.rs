//! Public IPv4 addresses to `PUBLIC_TO_PRIVATE` and `PRIVATE_TO_PUBLIC`
//! entries: the internet gateways' one-to-one NAT.
use vpc_common::v4_mapped;

use super::Entries;
use crate::model::Model;

/// The internet gateway's 1:1 NAT table, both ways.
pub(super) fn public_ips(model: &Model, out: &mut Entries) {
    for p in &model.public_ips {
        let private = model.private_of(p).expect("validated");
        let (public, private) = (v4_mapped(p.ip.octets()), v4_mapped(private.octets()));
        out.public_to_private.push((public, private));
        out.private_to_public.push((private, public));
    }
}
