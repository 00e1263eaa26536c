//! The Amazon-provided DNS resolver of each VPC (base + 2), served by the
//! agent in a namespace of its own behind the router.
//!
//! What it answers, from inside the VPC (as at AWS):
//! * private DNS names of instances, network interfaces and Hyperplane
//!   ENIs: `ip-10-0-1-5.ec2.internal` in us-east-1,
//!   `ip-10-0-1-5.<region>.compute.internal` elsewhere (A records), and
//!   their reverse names (PTR, `5.1.0.10.in-addr.arpa`);
//! * the internet's test hosts (`Metadata: Vpc::Internet`), ours:
//!   `<id in lower case>.internet.test` (RFC 6761 reserves `.test`), A and,
//!   for a host with an `Ipv6Address`, AAAA;
//! * the gateway services' regional names (`s3.<region>.amazonaws.com`,
//!   `dynamodb.<region>.amazonaws.com`) as public DNS answers them: their
//!   simulated addresses; interface endpoints' own names
//!   (`vpce-<id>-<8 chars>[-<az>].<service>.<region>.vpce.amazonaws.com`),
//!   and with `PrivateDnsEnabled`, in the endpoint's VPC, the service's
//!   regional name: the endpoint's ENI addresses;
//! * AWS's public names, where the deployment has an internet, as public
//!   DNS answers them: Lambda's regional endpoint
//!   `lambda.<region>.amazonaws.com` (A: IPv4 only, as at AWS; an interface
//!   endpoint's private DNS answers it instead in its VPC), the dual-stack
//!   `lambda.<region>.api.aws` (A and AAAA) and every function URL,
//!   `<url-id>.lambda-url.<region>.on.aws` (A and AAAA): the addresses of
//!   AWS's public endpoints, reached through an internet or NAT gateway;
//! * anything else: NXDOMAIN. Nothing is forwarded: no query ever leaves
//!   the project's namespaces.
//!
//! The internet has a resolver of its own, on AWS's public endpoints
//! (`model::internet::LAMBDA_PUBLIC`, port 53), which every test host's
//! `resolv.conf` names: it answers the public names above and the test
//! hosts' ([`Zone::public`]).
//!
//! The datapath lets DNS (UDP and TCP port 53) reach it past every group
//! and ACL, and nothing else (`resolver_not_dns`). UDP only: every answer
//! fits in 512 bytes. `EnableDnsSupport: false` builds no resolver. The
//! wire format is hickory-proto's.
use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use anyhow::{Context, Result};
use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{
        rdata::{A, AAAA, PTR},
        Name, RData, Record, RecordType,
    },
};
use tokio::net::UdpSocket;

use crate::model::{
    endpoint::{regional_name, PUBLIC_SERVICES},
    function_url::url_host,
    internet::{AWS_PUBLIC_ID, LAMBDA_PUBLIC, LAMBDA_PUBLIC6},
    Model, Vpc,
};

/// Seconds a client may cache an answer.
const TTL: u32 = 60;

/// The names one VPC's resolver knows, lower-case and fully qualified.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Zone {
    /// Names to their addresses (several for an interface endpoint with
    /// an ENI in more than one subnet).
    pub a: HashMap<String, Vec<Ipv4Addr>>,
    /// Names that also have an IPv6 address (every one of them has an A).
    pub aaaa: HashMap<String, Ipv6Addr>,
    pub ptr: HashMap<Ipv4Addr, String>,
}

/// `ip-10-0-1-5.<domain>.`
pub fn private_dns_name(ip: Ipv4Addr, domain: &str) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}.{domain}.")
}

/// A public IPv4 address's public DNS hostname, as EC2 names it:
/// `ec2-198-51-100-11.compute-1.amazonaws.com.` in us-east-1,
/// `ec2-...<region>.compute.amazonaws.com.` elsewhere.
pub fn public_dns_name(ip: Ipv4Addr, region: &str) -> String {
    let [a, b, c, d] = ip.octets();
    if region == "us-east-1" {
        format!("ec2-{a}-{b}-{c}-{d}.compute-1.amazonaws.com.")
    } else {
        format!("ec2-{a}-{b}-{c}-{d}.{region}.compute.amazonaws.com.")
    }
}

/// An internet test host's name (ours): `<id in lower case>.internet.test.`
pub fn internet_host_name(id: &str) -> String {
    format!("{}.internet.test.", id.to_ascii_lowercase())
}

impl Zone {
    pub fn of(model: &Model, vpc: &Vpc) -> Self {
        let domain = model.private_dns_domain();
        let mut z = Zone::default();
        let in_vpc = |subnet: &str| model.subnet(subnet).is_some_and(|s| s.vpc == vpc.id);
        let private = model
            .hosts
            .iter()
            .filter(|h| in_vpc(&h.subnet))
            .map(|h| h.ip)
            .chain(model.enis.iter().filter(|e| e.vpc == vpc.id).map(|e| e.ip));
        // Amazon-provided hostnames need both DNS attributes, as at AWS
        // (the zone exists only with `EnableDnsSupport`).
        if vpc.enable_dns_hostnames {
            for ip in private {
                let name = private_dns_name(ip, &domain);
                z.a.insert(name.clone(), vec![ip]);
                z.ptr.insert(ip, name);
            }
            // Public DNS hostnames: the private address inside the VPC.
            for p in &model.public_ips {
                if let Some(h) = model
                    .hosts
                    .iter()
                    .find(|h| h.id == p.host && in_vpc(&h.subnet))
                {
                    let private = p.private.unwrap_or(h.ip);
                    z.a.insert(public_dns_name(p.ip, &model.region), vec![private]);
                }
            }
        }
        z.internet_hosts(model);
        z.public_names(model);
        // The services' regional names, as public DNS answers them.
        for (service, ip) in PUBLIC_SERVICES {
            z.a.insert(fqdn(&regional_name(&model.region, service)), vec![ip]);
        }
        // Interface endpoints: their own names (public at AWS), and with
        // private DNS, in their VPC, the service's regional name.
        for e in &model.vpc_endpoints {
            let ip_of = |host: &str| model.hosts.iter().find(|h| h.id == host).map(|h| h.ip);
            let all: Vec<Ipv4Addr> = e.enis.iter().filter_map(|(_, h)| ip_of(h)).collect();
            if all.is_empty() {
                continue;
            }
            z.a.insert(fqdn(&e.dns_name(&model.region)), all.clone());
            for (s, h) in &e.enis {
                let (Some(sn), Some(ip)) = (model.subnet(s), ip_of(h)) else {
                    continue;
                };
                z.a.insert(fqdn(&e.zonal_dns_name(&model.region, &sn.az)), vec![ip]);
            }
            if e.private_dns && e.vpc == vpc.id {
                z.a.insert(fqdn(&regional_name(&model.region, &e.service)), all);
            }
        }
        z
    }

    /// The internet's own zone, served on AWS's public endpoints: the
    /// public names and the test hosts'.
    pub fn public(model: &Model) -> Self {
        let mut z = Zone::default();
        z.internet_hosts(model);
        z.public_names(model);
        for (service, ip) in PUBLIC_SERVICES {
            z.a.insert(fqdn(&regional_name(&model.region, service)), vec![ip]);
        }
        // Public DNS hostnames of instances in VPCs with DNS hostnames on:
        // their public address, from the internet.
        for p in &model.public_ips {
            let on = model
                .hosts
                .iter()
                .find(|h| h.id == p.host)
                .and_then(|h| model.subnet(&h.subnet))
                .and_then(|s| model.vpc(&s.vpc))
                .is_some_and(|v| v.enable_dns_support && v.enable_dns_hostnames);
            if on {
                z.a.insert(public_dns_name(p.ip, &model.region), vec![p.ip]);
            }
        }
        z
    }

    /// The internet's test hosts: `<id>.internet.test`, A and AAAA.
    fn internet_hosts(&mut self, model: &Model) {
        for h in &model.internet_hosts {
            self.a.insert(internet_host_name(&h.id), vec![h.ip]);
            if let Some(ip6) = h.ip6 {
                self.aaaa.insert(internet_host_name(&h.id), ip6);
            }
        }
    }

    /// Lambda's public names, as public DNS answers them, where there is
    /// an internet to reach them on: the regional endpoint (IPv4 only, as
    /// AWS's), the dual-stack one and every function URL.
    fn public_names(&mut self, model: &Model) {
        if !model.has_internet() {
            return;
        }
        let r = &model.region;
        self.a.insert(
            fqdn(&format!("lambda.{r}.amazonaws.com")),
            vec![LAMBDA_PUBLIC],
        );
        let dual = std::iter::once(format!("lambda.{r}.api.aws"))
            .chain(model.function_urls.iter().map(|u| url_host(&u.url_id, r)));
        for name in dual {
            self.a.insert(fqdn(&name), vec![LAMBDA_PUBLIC]);
            self.aaaa.insert(fqdn(&name), LAMBDA_PUBLIC6);
        }
    }

    /// The reply to one query message, or `None` for what deserves none
    /// (not a parseable query).
    pub fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let q = Message::from_vec(query).ok()?;
        if q.message_type() != MessageType::Query {
            return None;
        }
        let mut r = Message::new();
        r.set_id(q.id())
            .set_message_type(MessageType::Response)
            .set_op_code(q.op_code())
            .set_recursion_desired(q.recursion_desired())
            .set_recursion_available(true)
            .set_authoritative(true);
        let Some(question) = q.queries().first().cloned() else {
            r.set_response_code(ResponseCode::FormErr);
            return r.to_vec().ok();
        };
        r.add_query(question.clone());
        let name = question.name().to_lowercase();
        let mut fqdn = name.to_ascii();
        if !fqdn.ends_with('.') {
            fqdn.push('.');
        }
        let known = if let Some(ips) = self.a.get(&fqdn) {
            match (question.query_type(), self.aaaa.get(&fqdn)) {
                (RecordType::A, _) => {
                    for ip in ips {
                        r.add_answer(Record::from_rdata(name.clone(), TTL, RData::A(A(*ip))));
                    }
                }
                (RecordType::AAAA, Some(ip6)) => {
                    r.add_answer(Record::from_rdata(
                        name.clone(),
                        TTL,
                        RData::AAAA(AAAA(*ip6)),
                    ));
                }
                _ => {}
            }
            true
        } else if let Some(target) = reverse(&fqdn).and_then(|ip| self.ptr.get(&ip)) {
            if question.query_type() == RecordType::PTR {
                let target = Name::from_ascii(target).ok()?;
                r.add_answer(Record::from_rdata(name, TTL, RData::PTR(PTR(target))));
            }
            true
        } else {
            false
        };
        // A known name without a record of the asked type: NOERROR, empty.
        r.set_response_code(if known {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        });
        r.to_vec().ok()
    }
}

/// `name.`
fn fqdn(name: &str) -> String {
    format!("{}.", name.to_ascii_lowercase())
}

/// `d.c.b.a.in-addr.arpa.` -> a.b.c.d
fn reverse(fqdn: &str) -> Option<Ipv4Addr> {
    let rest = fqdn.strip_suffix(".in-addr.arpa.")?;
    let mut o: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if o.len() != 4 {
        return None;
    }
    o.reverse();
    Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
}

/// How often a resolver reloads its zone from the deployment's state.
const RELOAD: Duration = Duration::from_secs(2);

/// Each VPC's resolver socket: UDP, bound to base + 2 port 53 inside the
/// resolver's namespace, non-blocking. A socket keeps the namespace it was
/// created in, whichever thread uses it afterwards: each one is made on a
/// short-lived thread that entered the namespace
/// ([`crate::topology::in_netns`]), then handed to tokio
/// (`UdpSocket::from_std`). A runtime worker never enters a namespace:
/// `setns` holds for the calling thread, which would take the namespace to
/// every task it runs next. Blocking (the store, a thread per namespace).
fn bind(want: Vec<(Key, Ipv4Addr)>) -> Result<Vec<(Key, std::net::UdpSocket)>> {
    let mut sockets = vec![];
    for ((vpc, ns), ip) in want {
        let addr = (ip, 53);
        let sock = crate::topology::in_netns(&ns, || {
            let sock = std::net::UdpSocket::bind(addr)
                .with_context(|| format!("resolver of {vpc}: binding {addr:?}"))?;
            sock.set_nonblocking(true)?;
            Ok(sock)
        })?;
        sockets.push(((vpc, ns), sock));
    }
    Ok(sockets)
}

/// (VPC id or `AWS_PUBLIC_ID`, resolver namespace).
type Key = (String, String);

/// The resolvers the state has now, and their addresses: each VPC's, and
/// the internet's on AWS's public endpoints (keyed by `AWS_PUBLIC_ID`,
/// which no VPC can be: its namespace would be taken).
fn wanted(name: &str) -> Result<Vec<(Key, Ipv4Addr)>> {
    let s = crate::state::State::load(name)?;
    let mut out: Vec<(Key, Ipv4Addr)> = s
        .model
        .vpcs
        .iter()
        .filter_map(|v| {
            let node = s.node(&v.resolver_id()?)?;
            Some(((v.id.clone(), node.netns.clone()), v.resolver()))
        })
        .collect();
    if let Some(node) = s.node(AWS_PUBLIC_ID) {
        out.push(((AWS_PUBLIC_ID.into(), node.netns.clone()), node.ip));
    }
    Ok(out)
}

/// Serves every VPC's resolver of deployment `name` until `shutdown` turns
/// true (or its sender is gone): one task per VPC in the agent's runtime,
/// answering from its zone. The zones follow the deployment's state (ENIs
/// added or returned, functions created) within two seconds, and so do the
/// resolvers themselves ([`crate::supervise::follow`]): a VPC added at
/// runtime (`vpc apply`) gets one, a removed VPC's stops.
pub async fn serve(name: &str, shutdown: tokio::sync::watch::Receiver<bool>) -> Result<()> {
    let (n, task_name, stop) = (name.to_string(), name.to_string(), shutdown.clone());
    crate::supervise::follow(
        "the VPC resolver",
        shutdown,
        move || wanted(&n),
        bind,
        move |(vpc, _): &Key, sock| {
            let sock = UdpSocket::from_std(sock)?;
            Ok(serve_one(
                task_name.clone(),
                vpc.clone(),
                sock,
                stop.clone(),
            ))
        },
    )
    .await
}

/// The zone of `vpc` now (the internet's for `AWS_PUBLIC_ID`), read on
/// the blocking pool.
async fn zone_of(name: &str, vpc: &str) -> Result<Zone> {
    let (name, vpc) = (name.to_string(), vpc.to_string());
    tokio::task::spawn_blocking(move || {
        let s = crate::state::State::load(&name)?;
        if vpc == AWS_PUBLIC_ID {
            return Ok(Zone::public(&s.model));
        }
        let v = s.model.vpc(&vpc).context("the VPC is gone")?;
        Ok(Zone::of(&s.model, v))
    })
    .await
    .context("loading a zone")?
}

async fn serve_one(
    name: String,
    vpc: String,
    sock: UdpSocket,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    let mut zone = zone_of(&name, &vpc).await?;
    let mut reload = tokio::time::interval_at(tokio::time::Instant::now() + RELOAD, RELOAD);
    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; 1500];
    let stopped = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            () = &mut stopped => return Ok(()),
            _ = reload.tick() => {
                // A failed reload keeps the zone it has.
                if let Ok(z) = zone_of(&name, &vpc).await {
                    zone = z;
                }
            }
            r = sock.recv_from(&mut buf) => {
                let (n, peer) = r.context("resolver: receiving")?;
                if let Some(reply) = zone.answer(&buf[..n]) {
                    let _ = sock.send_to(&reply, peer).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn zone() -> Zone {
        let mut z = Zone::default();
        let ip = Ipv4Addr::new(10, 0, 1, 10);
        z.a.insert(private_dns_name(ip, "ec2.internal"), vec![ip]);
        z.ptr.insert(ip, private_dns_name(ip, "ec2.internal"));
        z
    }

    fn ask(z: &Zone, name: &str, t: RecordType) -> Message {
        let mut q = Message::new();
        q.set_id(4242).set_recursion_desired(true);
        q.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        Message::from_vec(&z.answer(&q.to_vec().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn an_instances_public_dns_hostname_is_private_inside_and_public_outside() {
        let t = |hostnames: bool| {
            format!(
                "Metadata: {{Vpc::Internet: {{Hosts: {{Example: {{Address: 203.0.113.10}}}}}}}}
Resources:
  Vpc: {{Type: AWS::EC2::VPC, Properties: {{CidrBlock: 10.0.0.0/16, EnableDnsHostnames: {hostnames}}}}}
  A: {{Type: AWS::EC2::Subnet, Properties: {{VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}}}
  Igw: {{Type: AWS::EC2::InternetGateway}}
  Att: {{Type: AWS::EC2::VPCGatewayAttachment, Properties: {{VpcId: !Ref Vpc, InternetGatewayId: !Ref Igw}}}}
  Web: {{Type: AWS::EC2::Instance, Properties: {{SubnetId: !Ref A, PrivateIpAddress: 10.0.1.10}}}}
  Ip: {{Type: AWS::EC2::EIP, Properties: {{InstanceId: !Ref Web}}}}
"
            )
        };
        let m = crate::model::build(&t(true), &HashMap::new(), "s").unwrap();
        let public = m.public_ip("Web").unwrap();
        let name = public_dns_name(public, "us-east-1");
        assert_eq!(
            name,
            format!(
                "ec2-{}.compute-1.amazonaws.com.",
                public.to_string().replace('.', "-")
            )
        );
        let inside = Zone::of(&m, &m.vpcs[0]);
        assert_eq!(inside.a[&name], vec![Ipv4Addr::new(10, 0, 1, 10)]);
        assert_eq!(Zone::public(&m).a[&name], vec![public]);
        // Without EnableDnsHostnames: neither, nor the private name.
        let m = crate::model::build(&t(false), &HashMap::new(), "s").unwrap();
        let inside = Zone::of(&m, &m.vpcs[0]);
        assert!(!inside.a.contains_key(&name) && !Zone::public(&m).a.contains_key(&name));
        assert!(!inside.a.contains_key("ip-10-0-1-10.ec2.internal."));
    }

    #[test]
    fn private_names_resolve_both_ways_case_insensitively() {
        let z = zone();
        let r = ask(&z, "IP-10-0-1-10.ec2.internal.", RecordType::A);
        assert_eq!(r.id(), 4242);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(r.answers().len(), 1);
        assert_eq!(
            r.answers()[0].data(),
            &RData::A(A(Ipv4Addr::new(10, 0, 1, 10)))
        );
        let r = ask(&z, "10.1.0.10.in-addr.arpa.", RecordType::PTR);
        assert_eq!(
            r.answers()[0].data(),
            &RData::PTR(PTR(Name::from_ascii("ip-10-0-1-10.ec2.internal.").unwrap()))
        );
        // Known name, no IPv6 record: NOERROR and no answer (not NXDOMAIN,
        // which would make resolvers give up on the A record too).
        let r = ask(&z, "ip-10-0-1-10.ec2.internal.", RecordType::AAAA);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.answers().is_empty());
    }

    #[test]
    fn unknown_names_are_nxdomain_and_garbage_gets_no_reply() {
        let z = zone();
        let r = ask(&z, "ip-10-0-1-11.ec2.internal.", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        let r = ask(&z, "example.com.", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
        assert!(z.answer(b"\x00\x01garbage").is_none());
    }

    #[test]
    fn a_test_host_with_an_ipv6_address_has_an_aaaa_record() {
        let mut z = zone();
        let name = internet_host_name("Example");
        z.a.insert(name.clone(), vec![Ipv4Addr::new(203, 0, 113, 10)]);
        let ip6: Ipv6Addr = "2001:db8:f00d::10".parse().unwrap();
        z.aaaa.insert(name, ip6);
        let r = ask(&z, "example.internet.test.", RecordType::AAAA);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(r.answers().len(), 1);
        assert_eq!(r.answers()[0].data(), &RData::AAAA(AAAA(ip6)));
        let r = ask(&z, "Example.internet.test.", RecordType::A);
        assert_eq!(
            r.answers()[0].data(),
            &RData::A(A(Ipv4Addr::new(203, 0, 113, 10)))
        );
    }

    const PUBLIC: &str = r#"
Metadata:
  Vpc::Internet:
    Hosts:
      Client: {Address: 203.0.113.10, Ipv6Address: 2001:db8:f00d::10}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16, EnableDnsHostnames: true}}
  Other: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16, EnableDnsHostnames: true}}
  Private: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.2.0/24}}
  LambdaEndpoint:
    Type: AWS::EC2::VPCEndpoint
    Properties: {VpcId: !Ref Vpc, VpcEndpointType: Interface, ServiceName: com.amazonaws.us-east-1.lambda, SubnetIds: [!Ref Private], PrivateDnsEnabled: true}
  Hello:
    Type: AWS::Lambda::Function
    Properties: {FunctionName: hello, Runtime: python3.11, Handler: index.handler, Code: {ZipFile: "def handler(e, c): return e"}}
  HelloUrl: {Type: AWS::Lambda::Url, Properties: {TargetFunctionArn: !Ref Hello, AuthType: NONE}}
"#;

    fn addrs(r: &Message) -> Vec<String> {
        r.answers()
            .iter()
            .map(|a| match a.data() {
                RData::A(A(ip)) => ip.to_string(),
                RData::AAAA(AAAA(ip)) => ip.to_string(),
                d => format!("{d:?}"),
            })
            .collect()
    }

    #[test]
    fn the_internets_resolver_answers_lambdas_public_names_and_the_test_hosts() {
        let m = crate::model::build(PUBLIC, &Default::default(), "s").unwrap();
        let host = format!("{}.", url_host(&m.function_urls[0].url_id, "us-east-1"));
        let z = Zone::public(&m);
        let (v4, v6) = ("198.18.1.10", "2001:2:ffff::10");
        for (name, t, want) in [
            ("lambda.us-east-1.amazonaws.com.", RecordType::A, vec![v4]),
            // IPv4 only, as AWS's: a known name, no AAAA.
            ("lambda.us-east-1.amazonaws.com.", RecordType::AAAA, vec![]),
            ("lambda.us-east-1.api.aws.", RecordType::A, vec![v4]),
            ("lambda.us-east-1.api.aws.", RecordType::AAAA, vec![v6]),
            (&host, RecordType::A, vec![v4]),
            (&host, RecordType::AAAA, vec![v6]),
            (
                "client.internet.test.",
                RecordType::AAAA,
                vec!["2001:db8:f00d::10"],
            ),
        ] {
            let r = ask(&z, name, t);
            assert_eq!(r.response_code(), ResponseCode::NoError, "{name}");
            assert_eq!(addrs(&r), want, "{name} {t}");
        }
        // AWS's public service endpoints, public.
        let r = ask(&z, "s3.us-east-1.amazonaws.com.", RecordType::A);
        assert_eq!(addrs(&r), vec!["198.18.0.10"]);
        // Nothing private, nothing else.
        for name in [
            "ip-10-0-2-4.ec2.internal.",
            "x.lambda-url.us-east-1.on.aws.",
        ] {
            assert_eq!(
                ask(&z, name, RecordType::A).response_code(),
                ResponseCode::NXDomain,
                "{name}"
            );
        }
    }

    #[test]
    fn vpc_resolvers_answer_public_names_but_private_dns_keeps_lambdas_regional_name() {
        let m = crate::model::build(PUBLIC, &Default::default(), "s").unwrap();
        let host = format!("{}.", url_host(&m.function_urls[0].url_id, "us-east-1"));
        let eni = m
            .hosts
            .iter()
            .find(|h| h.id.starts_with("LambdaEndpoint"))
            .unwrap()
            .ip;
        let with_endpoint = Zone::of(&m, m.vpc("Vpc").unwrap());
        let other = Zone::of(&m, m.vpc("Other").unwrap());
        let regional = "lambda.us-east-1.amazonaws.com.";
        assert_eq!(
            addrs(&ask(&with_endpoint, regional, RecordType::A)),
            [eni.to_string()]
        );
        assert_eq!(
            addrs(&ask(&other, regional, RecordType::A)),
            ["198.18.1.10"]
        );
        for z in [&with_endpoint, &other] {
            assert_eq!(addrs(&ask(z, &host, RecordType::AAAA)), ["2001:2:ffff::10"]);
            assert_eq!(
                addrs(&ask(z, "lambda.us-east-1.api.aws.", RecordType::A)),
                ["198.18.1.10"]
            );
        }
        // No internet: no public names.
        let none = PUBLIC.replace("Metadata:\n  Vpc::Internet:\n    Hosts:\n      Client: {Address: 203.0.113.10, Ipv6Address: 2001:db8:f00d::10}\n", "");
        let m = crate::model::build(&none, &Default::default(), "s").unwrap();
        assert!(!m.has_internet());
        let z = Zone::of(&m, m.vpc("Other").unwrap());
        assert_eq!(
            ask(&z, &host, RecordType::A).response_code(),
            ResponseCode::NXDomain
        );
    }

    #[test]
    fn names_follow_the_region() {
        let ip = Ipv4Addr::new(10, 0, 1, 5);
        assert_eq!(
            private_dns_name(ip, "eu-west-1.compute.internal"),
            "ip-10-0-1-5.eu-west-1.compute.internal."
        );
    }
}
