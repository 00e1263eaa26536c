//! DHCP options sets (`AWS::EC2::DHCPOptions`) and their association with
//! a VPC (`AWS::EC2::VPCDHCPOptionsAssociation`): what every namespace of
//! the VPC finds in its `resolv.conf` (the DNS servers and the search
//! domain a DHCP lease would give it). A VPC without one has AWS's default
//! set: `AmazonProvidedDNS` and the region's private domain.
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{res_path, Builder, Model, Vpc};
use crate::template::{ModelError, Result};

pub const DHCP_OPTIONS: &str = "AWS::EC2::DHCPOptions";
pub const DHCP_OPTIONS_ASSOCIATION: &str = "AWS::EC2::VPCDHCPOptionsAssociation";
/// The VPC's own resolver (base + 2) in `DomainNameServers`.
pub const AMAZON_PROVIDED_DNS: &str = "AmazonProvidedDNS";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DhcpOptions {
    /// Logical id (`!Ref` gives it).
    pub id: String,
    /// `DomainName`: the search domains, space-separated as AWS takes them.
    pub domain_name: Option<String>,
    /// `DomainNameServers`: `AmazonProvidedDNS` or IPv4 addresses, up to 4.
    pub domain_name_servers: Vec<String>,
    /// `NtpServers`, `NetbiosNameServers`, `NetbiosNodeType`: kept, not used
    /// (nothing here asks DHCP for them).
    pub ntp_servers: Vec<String>,
    pub netbios_name_servers: Vec<String>,
    pub netbios_node_type: Option<u32>,
}

/// What a namespace's `resolv.conf` says: its name servers and search
/// domains.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    pub servers: Vec<Ipv4Addr>,
    pub search: Vec<String>,
}

impl Model {
    pub fn dhcp_options_set(&self, id: &str) -> Option<&DhcpOptions> {
        self.dhcp_options.iter().find(|o| o.id == id)
    }

    /// The DNS settings a namespace of `vpc` gets from its DHCP options
    /// set (AWS's default set without one).
    pub fn dns_settings(&self, vpc: &Vpc) -> DnsSettings {
        let default = self.private_dns_domain();
        match vpc
            .dhcp_options
            .as_deref()
            .and_then(|id| self.dhcp_options_set(id))
        {
            None => DnsSettings {
                servers: vec![vpc.resolver()],
                search: vec![default],
            },
            Some(o) => DnsSettings {
                servers: o
                    .domain_name_servers
                    .iter()
                    .filter_map(|s| match s.as_str() {
                        AMAZON_PROVIDED_DNS => Some(vpc.resolver()),
                        ip => ip.parse().ok(),
                    })
                    .collect(),
                search: match &o.domain_name {
                    Some(d) => d.split_whitespace().map(str::to_string).collect(),
                    None => vec![],
                },
            },
        }
    }
}

impl Builder<'_> {
    /// DHCP options sets, then their associations (a VPC has one).
    pub(super) fn dhcp_options(&mut self) -> Result<()> {
        for res in self.of_type(DHCP_OPTIONS) {
            let id = res.logical_id.clone();
            let path = res_path(&id);
            let p = self.props(res)?;
            let list = |k: &str| -> Result<Vec<String>> {
                match p.get(k) {
                    None => Ok(vec![]),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| {
                            v.as_str().map(str::to_string).ok_or_else(|| {
                                ModelError::new(format!("{path}.{k}"), "a list of strings")
                            })
                        })
                        .collect(),
                    Some(_) => Err(ModelError::new(format!("{path}.{k}"), "a list of strings")),
                }
            };
            let servers = list("DomainNameServers")?;
            if servers.len() > 4 {
                return Err(ModelError::new(
                    format!("{path}.DomainNameServers"),
                    "InvalidParameterValue: at most 4 domain name servers",
                ));
            }
            for (i, s) in servers.iter().enumerate() {
                if s != AMAZON_PROVIDED_DNS && s.parse::<Ipv4Addr>().is_err() {
                    return Err(ModelError::new(
                        format!("{path}.DomainNameServers[{i}]"),
                        format!("InvalidParameterValue: {s:?} is neither {AMAZON_PROVIDED_DNS} nor an IPv4 address"),
                    ));
                }
            }
            let domain_name = match p.get("DomainName") {
                None => None,
                Some(Value::String(d)) if !d.trim().is_empty() => Some(d.trim().to_string()),
                Some(_) => {
                    return Err(ModelError::new(
                        format!("{path}.DomainName"),
                        "InvalidParameterValue: a domain name (space-separated for several)",
                    ))
                }
            };
            let ntp_servers = list("NtpServers")?;
            let netbios_name_servers = list("NetbiosNameServers")?;
            let netbios_node_type = match p.get("NetbiosNodeType") {
                None => None,
                Some(v) => Some(
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        .filter(|n| [1, 2, 4, 8].contains(n))
                        .ok_or_else(|| {
                            ModelError::new(
                                format!("{path}.NetbiosNodeType"),
                                "InvalidParameterValue: 1, 2, 4 or 8",
                            )
                        })? as u32,
                ),
            };
            if domain_name.is_none()
                && servers.is_empty()
                && ntp_servers.is_empty()
                && netbios_name_servers.is_empty()
                && netbios_node_type.is_none()
            {
                return Err(ModelError::new(
                    path,
                    "InvalidParameterValue: at least one of DomainName, DomainNameServers, NetbiosNameServers, NetbiosNodeType or NtpServers",
                ));
            }
            self.attr(&id, "DhcpOptionsId", id.clone());
            self.m.dhcp_options.push(DhcpOptions {
                id,
                domain_name,
                domain_name_servers: servers,
                ntp_servers,
                netbios_name_servers,
                netbios_node_type,
            });
        }
        for res in self.of_type(DHCP_OPTIONS_ASSOCIATION) {
            let id = res.logical_id.clone();
            let path = res_path(&id);
            let p = self.props(res)?;
            let vpc = self.vpc_ref(&p, &id, "VpcId")?;
            let options = p
                .get("DhcpOptionsId")
                .and_then(Value::as_str)
                .ok_or_else(|| ModelError::new(format!("{path}.DhcpOptionsId"), "required"))?
                .to_string();
            // `default`: AWS's default set.
            let set = match options.as_str() {
                "default" => None,
                o if self.m.dhcp_options_set(o).is_some() => Some(o.to_string()),
                o => {
                    return Err(ModelError::new(
                        format!("{path}.DhcpOptionsId"),
                        format!(
                            "InvalidDhcpOptionID.NotFound: The dhcpOption ID '{o}' does not exist"
                        ),
                    ))
                }
            };
            let v = self
                .m
                .vpcs
                .iter_mut()
                .find(|v| v.id == vpc)
                .expect("resolved");
            if v.dhcp_associated {
                return Err(ModelError::new(
                    format!("{path}.VpcId"),
                    format!("VPC {vpc} has another DHCP options association in this template"),
                ));
            }
            v.dhcp_associated = true;
            v.dhcp_options = set;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    const T: &str = "Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
";

    fn build(extra: &str) -> crate::template::Result<crate::model::Model> {
        crate::model::build(&format!("{T}{extra}"), &HashMap::new(), "t")
    }

    #[test]
    fn a_vpc_takes_its_sets_servers_and_domains() {
        let m = build("  D: {Type: AWS::EC2::DHCPOptions, Properties: {DomainName: corp.example lab.example, DomainNameServers: [AmazonProvidedDNS, 10.0.0.53]}}
  A: {Type: AWS::EC2::VPCDHCPOptionsAssociation, Properties: {VpcId: !Ref Vpc, DhcpOptionsId: !Ref D}}
").unwrap();
        let s = m.dns_settings(&m.vpcs[0]);
        assert_eq!(
            s.servers,
            [
                "10.0.0.2".parse::<std::net::Ipv4Addr>().unwrap(),
                "10.0.0.53".parse().unwrap()
            ]
        );
        assert_eq!(s.search, ["corp.example", "lab.example"]);
        // Without one: AWS's default set.
        let m = build("").unwrap();
        let s = m.dns_settings(&m.vpcs[0]);
        assert_eq!(
            s.servers,
            ["10.0.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(s.search, ["ec2.internal"]);
    }

    #[test]
    fn bad_sets_name_the_field() {
        for (extra, path, what) in [
            ("  D: {Type: AWS::EC2::DHCPOptions, Properties: {DomainNameServers: [a, b, c, d, e]}}\n", "Resources.D.Properties.DomainNameServers", "at most 4"),
            ("  D: {Type: AWS::EC2::DHCPOptions, Properties: {DomainNameServers: [dns.example]}}\n", "Resources.D.Properties.DomainNameServers[0]", "neither"),
            ("  D: {Type: AWS::EC2::DHCPOptions, Properties: {}}\n", "Resources.D.Properties", "at least one"),
            ("  A: {Type: AWS::EC2::VPCDHCPOptionsAssociation, Properties: {VpcId: !Ref Vpc, DhcpOptionsId: dopt-1}}\n", "Resources.A.Properties.DhcpOptionsId", "InvalidDhcpOptionID.NotFound"),
        ] {
            let e = build(extra).unwrap_err();
            assert_eq!(e.path, path, "{extra}");
            assert!(e.message.contains(what), "{extra}: {}", e.message);
        }
    }
}
