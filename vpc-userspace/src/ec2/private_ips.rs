//! Secondary private IPv4 addresses: AssignPrivateIpAddresses (by
//! `PrivateIpAddress.N` or `SecondaryPrivateIpAddressCount`,
//! `AllowReassignment`) and UnassignPrivateIpAddresses, on an instance's
//! or a standalone interface the API made. The interface's template keeps
//! them as CloudFormation does, `PrivateIpAddresses` entries with
//! `Primary: false` (an instance's in its `NetworkInterfaces[0]`): the
//! model puts them on the host's namespace and the datapath, with the
//! interface's groups and its subnet's ACL.
use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::{
    instances, network_interfaces::api_host, stack, xml, Ctx, Ec2Error, Ec2Result, Params, View,
};
use crate::model::{HostKind, MAX_PRIVATE_IPS};

/// The interface object of host `l` in the API's template.
fn iface(props: &mut Map<String, Value>, kind: HostKind) -> &mut Map<String, Value> {
    match kind {
        HostKind::Instance => instances::iface_mut(props),
        _ => props,
    }
}

/// Writes `secondary` as the interface's secondary addresses: explicit
/// `PrivateIpAddresses` entries (a `Primary: true` one kept), no count
/// left to pick others.
fn write(iface: &mut Map<String, Value>, secondary: &[Ipv4Addr]) {
    let mut list: Vec<Value> = iface
        .get("PrivateIpAddresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("Primary").is_some_and(|p| p == true || p == "true"))
        .cloned()
        .collect();
    list.extend(
        secondary
            .iter()
            .map(|a| json!({"PrivateIpAddress": a.to_string(), "Primary": false})),
    );
    iface.remove("SecondaryPrivateIpAddressCount");
    if list.is_empty() {
        iface.remove("PrivateIpAddresses");
    } else {
        iface.insert("PrivateIpAddresses".into(), Value::Array(list));
    }
}

fn parse(a: &str) -> Ec2Result<Ipv4Addr> {
    a.parse()
        .map_err(|_| Ec2Error::invalid(format!("Invalid private IP address: '{a}'")))
}

/// The host of interface `id` (logical id), its kind and its secondary
/// addresses.
fn host(v: &View, id: &str) -> Ec2Result<(String, HostKind, Vec<Ipv4Addr>)> {
    let (l, kind) = api_host(v, id)?;
    let h = v.model.hosts.iter().find(|h| h.id == l).expect("found");
    Ok((l, kind, h.secondary.clone()))
}

pub fn assign(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("NetworkInterfaceId")?.to_string();
    let wanted = p
        .list("PrivateIpAddress")
        .iter()
        .map(|a| parse(a))
        .collect::<Ec2Result<Vec<_>>>()?;
    let count = p.int("SecondaryPrivateIpAddressCount")?;
    match (wanted.is_empty(), count) {
        (false, Some(_)) => {
            return Err(Ec2Error::new(
                "InvalidParameterCombination",
                "PrivateIpAddress and SecondaryPrivateIpAddressCount are mutually exclusive",
            ))
        }
        (true, None) => {
            return Err(Ec2Error::missing(
                "PrivateIpAddress or SecondaryPrivateIpAddressCount",
            ))
        }
        (_, Some(n)) if n < 1 => {
            return Err(Ec2Error::invalid(format!(
                "Value ({n}) for parameter SecondaryPrivateIpAddressCount is invalid."
            )))
        }
        _ => {}
    }
    let reassign = p.flag("AllowReassignment").unwrap_or(false);
    let added = stack::change(ctx, |t, v| {
        let (l, kind, mut secondary) = host(v, &id)?;
        let h = v.model.hosts.iter().find(|h| h.id == l).expect("found");
        let subnet = v.model.subnet(&h.subnet).expect("validated");
        let added = match count {
            Some(n) => {
                let free = v.model.free_ips(&subnet.id, n as usize);
                if free.len() < n as usize {
                    return Err(Ec2Error::new(
                        "InsufficientFreeAddressesInSubnet",
                        format!(
                            "The specified subnet {} does not have enough free addresses to satisfy the request.",
                            v.id(&subnet.id)
                        ),
                    ));
                }
                free
            }
            None => wanted.clone(),
        };
        if 1 + secondary.len() + added.len() > MAX_PRIVATE_IPS {
            return Err(Ec2Error::new(
                "PrivateIpAddressLimitExceeded",
                format!("Number of private addresses will exceed limit ({MAX_PRIVATE_IPS}) for interface {id}."),
            ));
        }
        for a in count.map_or(&added[..], |_| &[]) {
            let (base, last) = (
                u32::from(subnet.cidr.network()),
                u32::from(subnet.cidr.broadcast()),
            );
            let n = u32::from(*a);
            if !subnet.cidr.contains(a) || n < base + 4 || n == last {
                return Err(Ec2Error::invalid(format!(
                    "Address {a} does not fall within the subnet's address range"
                )));
            }
            if h.owns((*a).into()) {
                continue;
            }
            // Another interface's: a secondary one moves with
            // AllowReassignment; a primary one, or anything else's, stays.
            let other = v
                .model
                .hosts
                .iter()
                .find(|o| o.owns((*a).into()) && o.secondary.contains(a));
            let taken = v.model.hosts.iter().any(|o| o.owns((*a).into()))
                || v.model.enis.iter().any(|e| e.ip == *a)
                || v.model.nat_gateways.iter().any(|g| g.ip == *a);
            match other {
                Some(o) if reassign => {
                    let other_id = crate::model::flowlog::host_eni_id(&v.model.stack_name, &o.id);
                    v.owned(&o.id, &other_id)?;
                    let keep: Vec<Ipv4Addr> =
                        o.secondary.iter().copied().filter(|x| x != a).collect();
                    let props = t
                        .props_mut(&o.id)
                        .ok_or_else(|| super::network_interfaces::not_found(&other_id))?;
                    write(iface(props, o.kind), &keep);
                }
                _ if taken => {
                    return Err(Ec2Error::new(
                        "InvalidIPAddress.InUse",
                        format!("Address {a} is in use."),
                    ))
                }
                _ => {}
            }
        }
        let added: Vec<Ipv4Addr> = added
            .into_iter()
            .filter(|a| !secondary.contains(a) && *a != h.ip)
            .collect();
        secondary.extend(&added);
        let props = t
            .props_mut(&l)
            .ok_or_else(|| super::network_interfaces::not_found(&id))?;
        write(iface(props, kind), &secondary);
        Ok(added)
    })?;
    let mut x = xml();
    x.leaf("networkInterfaceId", &id);
    x.items("assignedPrivateIpAddressesSet", &added, |x, a| {
        x.leaf("privateIpAddress", &a.to_string());
    });
    Ok(x.0)
}

pub fn unassign(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("NetworkInterfaceId")?.to_string();
    let gone = p
        .list("PrivateIpAddress")
        .iter()
        .map(|a| parse(a))
        .collect::<Ec2Result<Vec<_>>>()?;
    if gone.is_empty() {
        return Err(Ec2Error::missing("PrivateIpAddress"));
    }
    stack::change(ctx, |t, v| {
        let (l, kind, secondary) = host(v, &id)?;
        if let Some(a) = gone.iter().find(|a| !secondary.contains(a)) {
            return Err(Ec2Error::invalid(format!(
                "Some of the specified addresses are not assigned to interface {id} ({a})"
            )));
        }
        let keep: Vec<Ipv4Addr> = secondary
            .into_iter()
            .filter(|a| !gone.contains(a))
            .collect();
        let props = t
            .props_mut(&l)
            .ok_or_else(|| super::network_interfaces::not_found(&id))?;
        write(iface(props, kind), &keep);
        Ok(())
    })?;
    super::ok()
}
