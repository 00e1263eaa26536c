//! One flow-log record and its text, field by field as AWS writes it.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogStatus {
    Ok,
    NoData,
    SkipData,
}

impl LogStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStatus::Ok => "OK",
            LogStatus::NoData => "NODATA",
            LogStatus::SkipData => "SKIPDATA",
        }
    }
}

/// Relative to the interface the record is for.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

/// The interface a record is for, as its fields describe it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Interface {
    pub eni_id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// Instances only (`-` for network interfaces and Hyperplane ENIs).
    pub instance_id: Option<String>,
    pub az_id: String,
    /// A Hyperplane ENI: `pkt-srcaddr` / `pkt-dstaddr` show the execution
    /// environment's address, before NAT.
    pub hyperplane: bool,
    /// A NAT gateway's interface (its logical id): an intermediate
    /// interface, whose records show the gateway's private address and the
    /// `pkt-` fields the original ones (AWS's "Traffic through a NAT
    /// gateway" example).
    #[serde(default)]
    pub nat_gateway: Option<String>,
    pub addrs: Vec<IpAddr>,
}

/// The flow part of an `OK` record: as seen on the interface.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Flow {
    pub srcaddr: IpAddr,
    pub dstaddr: IpAddr,
    pub srcport: u16,
    pub dstport: u16,
    pub protocol: u8,
    pub pkt_srcaddr: IpAddr,
    pub pkt_dstaddr: IpAddr,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_flags: u8,
    pub accepted: bool,
    pub direction: Direction,
    /// AWS's `traffic-path` code of an egress record.
    #[serde(default)]
    pub traffic_path: Option<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub version: u8,
    pub account: String,
    pub region: String,
    pub interface: Interface,
    pub start: u64,
    pub end: u64,
    /// `None` for NODATA and SKIPDATA.
    pub flow: Option<Flow>,
    pub status: LogStatus,
}

impl Record {
    /// One field's text (`-` where it does not apply).
    pub fn field(&self, name: &str) -> String {
        let dash = || "-".to_string();
        let f = self.flow.as_ref();
        let flow = |g: &dyn Fn(&Flow) -> String| f.map(g).unwrap_or_else(dash);
        match name {
            "version" => self.version.to_string(),
            "account-id" => self.account.clone(),
            "interface-id" => self.interface.eni_id.clone(),
            "srcaddr" => flow(&|f| f.srcaddr.to_string()),
            "dstaddr" => flow(&|f| f.dstaddr.to_string()),
            "srcport" => flow(&|f| f.srcport.to_string()),
            "dstport" => flow(&|f| f.dstport.to_string()),
            "protocol" => flow(&|f| f.protocol.to_string()),
            "packets" => flow(&|f| f.packets.to_string()),
            "bytes" => flow(&|f| f.bytes.to_string()),
            "start" => self.start.to_string(),
            "end" => self.end.to_string(),
            "action" => flow(&|f| if f.accepted { "ACCEPT" } else { "REJECT" }.to_string()),
            "log-status" => self.status.as_str().to_string(),
            "vpc-id" => self.interface.vpc_id.clone(),
            "subnet-id" => self.interface.subnet_id.clone(),
            "instance-id" => self.interface.instance_id.clone().unwrap_or_else(dash),
            "tcp-flags" => flow(&|f| f.tcp_flags.to_string()),
            "type" => flow(&|f| if f.srcaddr.is_ipv4() { "IPv4" } else { "IPv6" }.to_string()),
            "pkt-srcaddr" => flow(&|f| f.pkt_srcaddr.to_string()),
            "pkt-dstaddr" => flow(&|f| f.pkt_dstaddr.to_string()),
            "region" => self.region.clone(),
            "az-id" => self.interface.az_id.clone(),
            "flow-direction" => flow(&|f| match f.direction {
                Direction::Ingress => "ingress".into(),
                Direction::Egress => "egress".into(),
            }),
            // Egress only, by the route it took (`flowlogs::traffic_path`).
            "traffic-path" => flow(&|f| f.traffic_path.map_or_else(dash, |p| p.to_string())),
            "pkt-src-aws-service" => {
                flow(&|f| aws_service(f.pkt_srcaddr).map_or_else(dash, Into::into))
            }
            "pkt-dst-aws-service" => {
                flow(&|f| aws_service(f.pkt_dstaddr).map_or_else(dash, Into::into))
            }
            // Wavelength / Outposts / Local Zones, AWS service ranges: none here.
            _ => dash(),
        }
    }

    /// The record's line in a format (field names, in order).
    pub fn line(&self, fields: &[String]) -> String {
        fields
            .iter()
            .map(|f| self.field(f))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The subset of AWS's IP ranges an address belongs to, as
/// `pkt-src-aws-service` names it: the simulated public services (S3 and
/// DynamoDB have ranges of their own, the others are `AMAZON`) and AWS's
/// public endpoints (Lambda's API, function URLs).
pub fn aws_service(a: IpAddr) -> Option<&'static str> {
    use crate::model::{endpoint::PUBLIC_SERVICES, internet};
    let v4 = match a {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(v) => v.to_ipv4_mapped(),
    };
    if a == IpAddr::V6(internet::LAMBDA_PUBLIC6) || v4 == Some(internet::LAMBDA_PUBLIC) {
        return Some("AMAZON");
    }
    let (name, _) = PUBLIC_SERVICES.iter().find(|(_, ip)| Some(*ip) == v4)?;
    Some(match *name {
        "s3" => "S3",
        "dynamodb" => "DYNAMODB",
        _ => "AMAZON",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flowlog::DEFAULT_FIELDS;

    fn iface() -> Interface {
        Interface {
            eni_id: "eni-1235b8ca123456789".into(),
            vpc_id: "vpc-0a1b2c3d4e5f60718".into(),
            subnet_id: "subnet-0123456789abcdef0".into(),
            instance_id: Some("i-01234567890123456".into()),
            az_id: "use1-az1".into(),
            hyperplane: false,
            nat_gateway: None,
            addrs: vec![],
        }
    }

    fn default_fields() -> Vec<String> {
        DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect()
    }

    /// AWS's documented examples of the default format, byte for byte.
    #[test]
    fn default_format_matches_aws_examples() {
        let r = Record {
            version: 2,
            account: "123456789010".into(),
            region: "us-east-1".into(),
            interface: iface(),
            start: 1418530010,
            end: 1418530070,
            flow: Some(Flow {
                srcaddr: "172.31.16.139".parse().unwrap(),
                dstaddr: "172.31.16.21".parse().unwrap(),
                srcport: 20641,
                dstport: 22,
                protocol: 6,
                pkt_srcaddr: "172.31.16.139".parse().unwrap(),
                pkt_dstaddr: "172.31.16.21".parse().unwrap(),
                packets: 20,
                bytes: 4249,
                tcp_flags: 0,
                accepted: true,
                direction: Direction::Ingress,
                traffic_path: None,
            }),
            status: LogStatus::Ok,
        };
        assert_eq!(
            r.line(&default_fields()),
            "2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"
        );
        let nodata = Record {
            start: 1431280876,
            end: 1431280934,
            flow: None,
            status: LogStatus::NoData,
            ..r.clone()
        };
        assert_eq!(
            nodata.line(&default_fields()),
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA"
        );
        let skip = Record {
            status: LogStatus::SkipData,
            ..nodata
        };
        assert_eq!(
            skip.line(&default_fields()),
            "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - SKIPDATA"
        );
    }

    /// A custom format with version 3-5 fields, the Hyperplane ENI's view
    /// of a function's connection (pkt-srcaddr before NAT).
    #[test]
    fn custom_format_v5_fields() {
        let fields: Vec<String> = "version vpc-id subnet-id instance-id interface-id srcaddr pkt-srcaddr dstaddr pkt-dstaddr srcport dstport protocol tcp-flags type region az-id sublocation-type sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path action log-status"
            .split(' ')
            .map(String::from)
            .collect();
        let r = Record {
            version: 5,
            account: "123456789010".into(),
            region: "us-east-1".into(),
            interface: Interface {
                instance_id: None,
                hyperplane: true,
                ..iface()
            },
            start: 1,
            end: 2,
            flow: Some(Flow {
                srcaddr: "10.0.1.4".parse().unwrap(),
                dstaddr: "10.0.1.10".parse().unwrap(),
                srcport: 40000,
                dstport: 5432,
                protocol: 6,
                pkt_srcaddr: "198.19.0.10".parse().unwrap(),
                pkt_dstaddr: "10.0.1.10".parse().unwrap(),
                packets: 3,
                bytes: 180,
                tcp_flags: 19,
                accepted: true,
                direction: Direction::Egress,
                traffic_path: Some(1),
            }),
            status: LogStatus::Ok,
        };
        assert_eq!(
            r.line(&fields),
            "5 vpc-0a1b2c3d4e5f60718 subnet-0123456789abcdef0 - eni-1235b8ca123456789 10.0.1.4 198.19.0.10 10.0.1.10 10.0.1.10 40000 5432 6 19 IPv4 us-east-1 use1-az1 - - - - egress 1 ACCEPT OK"
        );
    }
}
