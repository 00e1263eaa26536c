//! Instances: RunInstances, DescribeInstances, TerminateInstances,
//! DescribeInstanceStatus, Modify / DescribeInstanceAttribute. An instance
//! is an `AWS::EC2::Instance` of the API's stack, named by its `i-` id: a
//! host namespace with its interface, addresses and groups, as a
//! template's instance is. A template's instances are described too (a
//! reservation each).
//!
//! States as EC2 reports them: RunInstances answers `pending`, and the
//! instance is `running` once the call returned (its namespace is up);
//! TerminateInstances answers `shutting-down` and removes the resource
//! (the namespace goes), and DescribeInstances shows it `terminated` for
//! an hour, as AWS keeps terminated instances visible, from a record in
//! the API template's metadata.
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{
    filters, ids, network_interfaces, security_groups::group_name, stack, tags, vpcs, xml, Ctx,
    Ec2Error, Ec2Result, Params, View,
};
use crate::{
    cloudformation::xml::Xml,
    model::{flowlog::host_eni_id, Host, HostKind},
};

pub const INSTANCE: &str = "AWS::EC2::Instance";

/// The most instances one RunInstances launches here.
const MAX_COUNT: i64 = 20;
/// How long a terminated instance stays visible (AWS: about an hour).
const TERMINATED_VISIBLE_MS: u64 = 3_600_000;
/// The metadata key of the terminated instances' records.
const TERMINATED: &str = "TerminatedInstances";
/// EC2's default instance type when RunInstances names none.
const DEFAULT_TYPE: &str = "m1.small";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum State {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

impl State {
    fn code(self) -> u32 {
        match self {
            State::Pending => 0,
            State::Running => 16,
            State::ShuttingDown => 32,
            State::Terminated => 48,
            State::Stopping => 64,
            State::Stopped => 80,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::ShuttingDown => "shutting-down",
            State::Terminated => "terminated",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

/// An instance as Describe* shows it (also the record a terminated one
/// leaves).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Instance {
    logical: String,
    id: String,
    reservation: String,
    state: State,
    image: String,
    instance_type: String,
    key_name: Option<String>,
    launch_index: u32,
    launch_ms: u64,
    subnet: String,
    vpc: String,
    az: String,
    ip: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
    public_ip: Option<Ipv4Addr>,
    /// (id, name).
    groups: Vec<(String, String)>,
    eni: String,
    source_dest_check: bool,
    tags: Vec<(String, String)>,
    /// When it was terminated (ms).
    #[serde(default)]
    terminated_ms: Option<u64>,
}

fn now_ms() -> u64 {
    crate::cloudformation::now_ms()
}

/// The instance `id` of `everyone`, or EC2's error for it (`not_found`).
fn named<'a>(everyone: &'a [Instance], id: &str) -> Result<&'a Instance, Ec2Error> {
    everyone
        .iter()
        .find(|i| i.id == id)
        .ok_or_else(|| not_found(id))
}

/// `InvalidInstanceID.Malformed` for an id not shaped as EC2's, else
/// `.NotFound`.
fn not_found(id: &str) -> Ec2Error {
    if ids::well_formed("i", id) {
        Ec2Error::not_found("InvalidInstanceID.NotFound", "instance", id)
    } else {
        Ec2Error::new(
            "InvalidInstanceID.Malformed",
            format!("Invalid id: \"{id}\" (expecting \"i-...\")"),
        )
    }
}

const KIND: filters::Kind = filters::Kind {
    ids: "InstanceId",
    min_page: 5,
    not_found,
};

/// The running instance of host `h`.
fn of_host(v: &View, h: &Host) -> Instance {
    let m = &v.model;
    let subnet = m.subnet(&h.subnet);
    let meta = |k: &str| v.meta(&h.id, k).cloned();
    let written = |k: &str| v.prop(&h.id, k).map(str::to_string);
    Instance {
        logical: h.id.clone(),
        id: v.id(&h.id),
        reservation: meta("Reservation")
            .and_then(|r| r.as_str().map(str::to_string))
            .unwrap_or_else(|| ids::derived("r", &v.name, v.stack_of(&h.id), &h.id)),
        state: if h.stopped {
            State::Stopped
        } else {
            State::Running
        },
        image: written("ImageId").unwrap_or_default(),
        instance_type: written("InstanceType").unwrap_or_else(|| DEFAULT_TYPE.into()),
        key_name: written("KeyName"),
        launch_index: meta("LaunchIndex")
            .and_then(|n| n.as_u64())
            .unwrap_or_default() as u32,
        launch_ms: v.created_ms(&h.id),
        subnet: v.id(&h.subnet),
        vpc: subnet.map(|s| v.id(&s.vpc)).unwrap_or_default(),
        az: subnet.map(|s| s.az.clone()).unwrap_or_default(),
        ip: Some(h.ip),
        ip6: h.ip6,
        public_ip: m.public_ip(&h.id),
        groups: h
            .groups
            .iter()
            .map(|g| {
                let name = m.group(g).map(|sg| group_name(v, sg)).unwrap_or_default();
                (v.id(g), name)
            })
            .collect(),
        eni: host_eni_id(&m.stack_name, &h.id),
        source_dest_check: h.source_dest_check,
        tags: v.tags(&h.id),
        terminated_ms: None,
    }
}

/// The terminated instances' records still visible.
fn terminated(v: &View) -> Vec<Instance> {
    let now = now_ms();
    let mut out: Vec<Instance> = v
        .api
        .meta
        .get(TERMINATED)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(_, r)| serde_json::from_value::<Instance>(r.clone()).ok())
        .filter(|i| {
            i.terminated_ms
                .is_some_and(|t| now.saturating_sub(t) < TERMINATED_VISIBLE_MS)
        })
        .collect();
    out.sort_by_key(|i| i.launch_ms);
    out
}

/// Every instance: the running ones (a template's first, then the API's in
/// launch order), then those terminated.
fn all(v: &View) -> Vec<Instance> {
    let mut running: Vec<&Host> = v
        .model
        .hosts
        .iter()
        .filter(|h| h.kind == HostKind::Instance)
        .collect();
    running.sort_by_key(|h| v.api.created(&h.id));
    let mut out: Vec<Instance> = running.into_iter().map(|h| of_host(v, h)).collect();
    out.extend(terminated(v));
    out
}

fn state_xml(x: &mut Xml, tag: &str, s: State) {
    x.open(tag)
        .leaf("code", &s.code().to_string())
        .leaf("name", s.name())
        .close(tag);
}

pub(super) fn dns_name(v: &View, ip: Ipv4Addr) -> String {
    format!(
        "ip-{}.{}",
        ip.to_string().replace('.', "-"),
        if v.model.region.is_empty() {
            "ec2.internal".to_string()
        } else {
            v.model.private_dns_domain()
        }
    )
}

/// The public DNS name of a public address, as EC2 names it.
pub(super) fn public_dns(v: &View, ip: Ipv4Addr) -> String {
    let dashed = ip.to_string().replace('.', "-");
    match v.model.region.as_str() {
        "" | "us-east-1" => format!("ec2-{dashed}.compute-1.amazonaws.com"),
        r => format!("ec2-{dashed}.{r}.compute.amazonaws.com"),
    }
}

fn item(x: &mut Xml, v: &View, i: &Instance) {
    let live = i.state != State::Terminated;
    let launch = crate::cloudformation::xml::iso8601(i.launch_ms);
    x.leaf("instanceId", &i.id).leaf("imageId", &i.image);
    state_xml(x, "instanceState", i.state);
    x.leaf(
        "privateDnsName",
        &i.ip
            .filter(|_| live)
            .map(|ip| dns_name(v, ip))
            .unwrap_or_default(),
    )
    .leaf(
        "dnsName",
        &i.public_ip
            .filter(|_| live)
            .map(|ip| public_dns(v, ip))
            .unwrap_or_default(),
    )
    .leaf(
        "reason",
        &i.terminated_ms
            .map(|t| {
                format!(
                    "User initiated ({})",
                    crate::cloudformation::xml::iso8601(t).replace('T', " ")
                )
            })
            .unwrap_or_default(),
    )
    .opt("keyName", i.key_name.as_deref())
    .leaf("amiLaunchIndex", &i.launch_index.to_string())
    .items("productCodes", std::iter::empty::<()>(), |_, _| {})
    .leaf("instanceType", &i.instance_type)
    .leaf("launchTime", &launch)
    .open("placement")
    .leaf("availabilityZone", &i.az)
    .leaf("groupName", "")
    .leaf("tenancy", "default")
    .close("placement")
    .open("monitoring")
    .leaf("state", "disabled")
    .close("monitoring");
    if live {
        x.leaf("subnetId", &i.subnet).leaf("vpcId", &i.vpc);
        if let Some(ip) = i.ip {
            x.leaf("privateIpAddress", &ip.to_string());
        }
        x.opt("ipAddress", i.public_ip.map(|a| a.to_string()).as_deref())
            .flag("sourceDestCheck", i.source_dest_check);
    }
    x.items(
        "groupSet",
        i.groups.iter().filter(|_| live),
        |x, (id, name)| {
            x.leaf("groupId", id).leaf("groupName", name);
        },
    );
    if matches!(i.state, State::Terminated | State::Stopped) {
        x.open("stateReason")
            .leaf("code", "Client.UserInitiatedShutdown")
            .leaf(
                "message",
                "Client.UserInitiatedShutdown: User initiated shutdown",
            )
            .close("stateReason");
    }
    x.leaf("architecture", "x86_64")
        .leaf("rootDeviceType", "ebs")
        .leaf("rootDeviceName", "/dev/xvda")
        .items("blockDeviceMapping", std::iter::empty::<()>(), |_, _| {})
        .leaf("virtualizationType", "hvm")
        .leaf("hypervisor", "xen")
        .flag("ebsOptimized", false)
        .flag("enaSupport", true);
    // The interface as DescribeNetworkInterfaces shows it.
    let nic = v
        .model
        .hosts
        .iter()
        .find(|h| live && h.id == i.logical)
        .map(|h| network_interfaces::of_host(v, h));
    x.items("networkInterfaceSet", nic, |x, n| {
        network_interfaces::item(x, v, &n, true);
    });
    x.opt(
        "ipv6Address",
        i.ip6.filter(|_| live).map(|a| a.to_string()).as_deref(),
    );
    tags::tag_set(x, &i.tags);
}

/// `<reservationSet>`: the instances grouped by reservation, in order.
fn reservations(x: &mut Xml, v: &View, list: &[Instance]) {
    let mut groups: Vec<(&str, Vec<&Instance>)> = vec![];
    for i in list {
        match groups.iter_mut().find(|(r, _)| *r == i.reservation) {
            Some((_, is)) => is.push(i),
            None => groups.push((&i.reservation, vec![i])),
        }
    }
    x.items("reservationSet", groups, |x, (r, is)| {
        reservation(x, v, r, &is);
    });
}

fn reservation(x: &mut Xml, v: &View, id: &str, is: &[&Instance]) {
    x.leaf("reservationId", id)
        .leaf("ownerId", v.account())
        .items("groupSet", std::iter::empty::<()>(), |_, _| {})
        .items("instancesSet", is, |x, i| item(x, v, i));
}

fn field(v: &View, i: &Instance, n: &str) -> Option<Vec<String>> {
    let live = i.state != State::Terminated;
    let opt = |s: Option<String>| Some(s.into_iter().collect());
    let groups = |f: fn(&(String, String)) -> String| {
        Some(i.groups.iter().filter(|_| live).map(f).collect())
    };
    match n {
        "instance-id" => filters::one(i.id.clone()),
        "reservation-id" => filters::one(i.reservation.clone()),
        "instance-state-name" => filters::one(i.state.name()),
        "instance-state-code" => filters::one(i.state.code().to_string()),
        "instance-type" => filters::one(i.instance_type.clone()),
        "image-id" => filters::one(i.image.clone()),
        "key-name" => opt(i.key_name.clone()),
        "availability-zone" | "placement.availability-zone" => filters::one(i.az.clone()),
        "subnet-id" | "network-interface.subnet-id" => opt(live.then(|| i.subnet.clone())),
        "vpc-id" | "network-interface.vpc-id" => opt(live.then(|| i.vpc.clone())),
        "private-ip-address" | "network-interface.addresses.private-ip-address" => {
            opt(i.ip.filter(|_| live).map(|a| a.to_string()))
        }
        "ip-address" => opt(i.public_ip.filter(|_| live).map(|a| a.to_string())),
        "private-dns-name" => opt(i.ip.filter(|_| live).map(|a| dns_name(v, a))),
        "dns-name" => opt(i.public_ip.filter(|_| live).map(|a| public_dns(v, a))),
        "network-interface.network-interface-id" => opt(live.then(|| i.eni.clone())),
        "instance.group-id" | "group-id" | "network-interface.group-id" => {
            groups(|(id, _)| id.clone())
        }
        "instance.group-name" | "group-name" | "network-interface.group-name" => {
            groups(|(_, name)| name.clone())
        }
        "owner-id" => filters::one(v.account()),
        "source-dest-check" => filters::boolean(i.source_dest_check),
        "architecture" => filters::one("x86_64"),
        "root-device-type" => filters::one("ebs"),
        "tenancy" => filters::one("default"),
        "ami-launch-index" => filters::one(i.launch_index.to_string()),
        _ => None,
    }
}

pub fn describe(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let (out, token) = filters::select(
        p,
        &KIND,
        all(&v),
        |i| i.id.clone(),
        |i| i.tags.clone(),
        |i, n| field(&v, i, n),
    )?;
    let mut x = xml();
    reservations(&mut x, &v, &out);
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// DescribeInstanceStatus: each running instance's checks (`ok`: its
/// namespace is up); with `IncludeAllInstances` the terminated too.
pub fn describe_status(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let all_too = p.flag("IncludeAllInstances") == Some(true);
    let list: Vec<Instance> = all(&v);
    let (mut out, token) = filters::select(
        p,
        &KIND,
        list,
        |i| i.id.clone(),
        |_| vec![],
        |i, n| match n {
            "instance-state-name" | "instance-state-code" | "availability-zone" => field(&v, i, n),
            "instance-status.status" | "system-status.status" => {
                filters::one(if i.state == State::Running {
                    "ok"
                } else {
                    "not-applicable"
                })
            }
            _ => None,
        },
    )?;
    // Only running ones without IncludeAllInstances; one named that is
    // not running is left out, not unknown.
    out.retain(|i| all_too || i.state == State::Running);
    let mut x = xml();
    x.items("instanceStatusSet", &out, |x, i| {
        let status = if i.state == State::Running {
            "ok"
        } else {
            "not-applicable"
        };
        x.leaf("instanceId", &i.id).leaf("availabilityZone", &i.az);
        state_xml(x, "instanceState", i.state);
        for tag in ["systemStatus", "instanceStatus"] {
            x.open(tag).leaf("status", status).items(
                "details",
                (i.state == State::Running).then_some(()),
                |x, ()| {
                    x.leaf("name", "reachability").leaf("status", "passed");
                },
            );
            x.close(tag);
        }
    });
    x.opt("nextToken", token.as_deref());
    Ok(x.0)
}

/// The security groups a launch names (`SecurityGroupId.N`, or names in
/// `SecurityGroup.N`), as model ids, in `vpc`.
fn launch_groups(v: &View, p: &Params, vpc: &str) -> Ec2Result<Vec<String>> {
    let mut out = vec![];
    for id in p.list("SecurityGroupId") {
        let g = v.group(&id)?;
        if g.vpc != vpc {
            return Err(Ec2Error::invalid(format!(
                "Security group {id} and subnet belong to different networks."
            )));
        }
        out.push(g.id.clone());
    }
    for name in p.list("SecurityGroup") {
        let g = v
            .model
            .groups
            .iter()
            .find(|g| g.vpc == vpc && group_name(v, g) == name)
            .ok_or_else(|| {
                Ec2Error::new(
                    "InvalidGroup.NotFound",
                    format!(
                        "The security group '{name}' does not exist in VPC '{}'",
                        v.id(vpc)
                    ),
                )
            })?;
        out.push(g.id.clone());
    }
    Ok(out)
}

/// The subnet a launch goes in (model id): `SubnetId`, the first
/// interface's, else the default VPC's default subnet (of
/// `Placement.AvailabilityZone`, else the first zone's).
fn launch_subnet(v: &View, p: &Params, nic: &Params) -> Ec2Result<String> {
    if let Some(s) = p.get("SubnetId").or(nic.get("SubnetId")) {
        return Ok(v.subnet(s)?.id.clone());
    }
    let vpc = v
        .model
        .vpcs
        .iter()
        .find(|x| vpcs::is_default(v, &x.id))
        .ok_or_else(|| Ec2Error::new("VPCIdNotSpecified", "No default VPC for this user"))?;
    let zone = p.get("Placement.AvailabilityZone");
    let mut subs: Vec<_> = v
        .model
        .subnets
        .iter()
        .filter(|s| s.vpc == vpc.id && v.meta(&s.id, "DefaultForAz").is_some())
        .filter(|s| zone.is_none_or(|z| s.az == z))
        .collect();
    subs.sort_by(|a, b| a.az.cmp(&b.az));
    subs.first().map(|s| s.id.clone()).ok_or_else(|| {
        Ec2Error::new(
            "InvalidParameterValue",
            format!(
                "No default subnet for availability zone: '{}'",
                zone.unwrap_or_default()
            ),
        )
    })
}

pub fn run(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let min = p
        .int("MinCount")?
        .ok_or_else(|| Ec2Error::missing("MinCount"))?;
    let max = p
        .int("MaxCount")?
        .ok_or_else(|| Ec2Error::missing("MaxCount"))?;
    if min < 1 || max < min {
        return Err(Ec2Error::invalid(format!(
            "MinCount ({min}) must be at least 1 and at most MaxCount ({max})"
        )));
    }
    if min > MAX_COUNT {
        return Err(Ec2Error::new(
            "InstanceLimitExceeded",
            format!("You have requested more instances ({min}) than your current instance limit of {MAX_COUNT} allows for the specified instance type."),
        ));
    }
    let count = max.min(MAX_COUNT) as usize;
    let nics = p.structs("NetworkInterface");
    if nics.len() > 1 {
        return Err(Ec2Error::invalid(
            "one network interface per instance here (docs/ec2.md)",
        ));
    }
    let nic = nics.into_iter().next().unwrap_or_default();
    let ip = p.get("PrivateIpAddress").or(nic.get("PrivateIpAddress"));
    if ip.is_some() && count > 1 {
        return Err(Ec2Error::new(
            "InvalidParameterCombination",
            "Cannot specify a private IP address when launching more than one instance",
        ));
    }
    let reservation_id = ids::new_id("r");
    let image = p.get("ImageId").unwrap_or_default().to_string();
    let instance_type = p.get("InstanceType").unwrap_or(DEFAULT_TYPE).to_string();
    let tags = p.tag_specs("instance");
    let made: Vec<String> = (0..count).map(|_| ids::new_id("i")).collect();
    stack::change(ctx, |t, v| {
        let subnet = launch_subnet(v, p, &nic)?;
        let vpc = v
            .model
            .subnet(&subnet)
            .map(|s| s.vpc.clone())
            .unwrap_or_default();
        let mut groups = launch_groups(v, p, &vpc)?;
        groups.extend(launch_groups(v, &nic, &vpc)?);
        for (n, id) in made.iter().enumerate() {
            let logical = ids::logical(id).expect("an id");
            let mut props = json!({"SubnetId": subnet, "InstanceType": instance_type});
            if !image.is_empty() {
                props["ImageId"] = image.clone().into();
            }
            if !groups.is_empty() {
                props["SecurityGroupIds"] = json!(groups);
            }
            if let Some(ip) = ip {
                props["PrivateIpAddress"] = ip.into();
            }
            if let Some(k) = p.get("KeyName") {
                props["KeyName"] = k.into();
            }
            if let Some(a) = nic.flag("AssociatePublicIpAddress") {
                // The one form that carries it: the interface's.
                let o = props.as_object_mut().expect("an object");
                iface_mut(o).insert("AssociatePublicIpAddress".into(), a.into());
            }
            if let Some(tv) = tags::initial(&tags) {
                props["Tags"] = tv;
            }
            t.put(&logical, INSTANCE, props);
            t.set_meta(&logical, "Reservation", reservation_id.clone().into());
            t.set_meta(&logical, "LaunchIndex", n.into());
        }
        Ok(())
    })?;
    let v = View::load(&ctx.name)?;
    let list: Vec<Instance> = all(&v)
        .into_iter()
        .filter(|i| made.contains(&i.id))
        .map(|mut i| {
            i.state = State::Pending;
            i
        })
        .collect();
    let mut x = xml();
    let refs: Vec<&Instance> = list.iter().collect();
    reservation(&mut x, &v, &reservation_id, &refs);
    Ok(x.0)
}

/// TerminateInstances: each instance's resource goes (its namespace with
/// it), a record stays for Describe; `shutting-down` as AWS answers.
pub fn terminate(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let wanted = p.list("InstanceId");
    if wanted.is_empty() {
        return Err(Ec2Error::missing("InstanceId"));
    }
    let changes = stack::change(ctx, |t, v| {
        let everyone = all(v);
        let now = now_ms();
        let mut records = t
            .meta
            .get(TERMINATED)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        records.retain(|_, r| {
            r["terminated_ms"]
                .as_u64()
                .is_some_and(|t| now.saturating_sub(t) < TERMINATED_VISIBLE_MS)
        });
        let mut changes = vec![];
        for w in &wanted {
            let i = named(&everyone, w)?;
            if i.state == State::Terminated {
                changes.push((w.clone(), State::Terminated, State::Terminated));
                continue;
            }
            v.owned(&i.logical, w)?;
            t.remove(&i.logical);
            let mut rec = i.clone();
            rec.state = State::Terminated;
            rec.terminated_ms = Some(now);
            records.insert(
                w.clone(),
                serde_json::to_value(&rec)
                    .map_err(|e| Ec2Error::new("InternalError", e.to_string()))?,
            );
            changes.push((w.clone(), i.state, State::ShuttingDown));
        }
        t.meta.insert(TERMINATED.into(), Value::Object(records));
        Ok(changes)
    })?;
    Ok(state_changes(&changes))
}

/// The `instancesSet` of Terminate / Stop / StartInstances' answers: each
/// instance's (id, previous state, current state).
fn state_changes(changes: &[(String, State, State)]) -> String {
    let mut x = xml();
    x.items("instancesSet", changes, |x, (id, prev, cur)| {
        x.leaf("instanceId", id);
        state_xml(x, "currentState", *cur);
        state_xml(x, "previousState", *prev);
    });
    x.0
}

/// Stop / StartInstances: each instance of the API moves to `stopped`
/// (answering `stopping`) or `running` (answering `pending`), as a mark in
/// its metadata the model follows: a stopped instance's namespace has its
/// link down and no processes, keeps its interface and private addresses,
/// and gives back the public address it was launched with (an Elastic IP
/// stays). A terminated instance is `IncorrectInstanceState`.
pub fn stop_start(ctx: &Ctx, p: &Params, stop: bool) -> Ec2Result<String> {
    let wanted = p.list("InstanceId");
    if wanted.is_empty() {
        return Err(Ec2Error::missing("InstanceId"));
    }
    let (from, to, answer) = if stop {
        (State::Running, State::Stopped, State::Stopping)
    } else {
        (State::Stopped, State::Running, State::Pending)
    };
    let changes = stack::change(ctx, |t, v| {
        let everyone = all(v);
        let mut changes = vec![];
        for w in &wanted {
            let i = named(&everyone, w)?;
            if i.state == to {
                changes.push((w.clone(), to, to));
                continue;
            }
            if i.state != from {
                return Err(incorrect_state(w, i.state, stop));
            }
            v.owned(&i.logical, w)?;
            t.set_meta(&i.logical, "Stopped", stop.into());
            changes.push((w.clone(), from, answer));
        }
        Ok(changes)
    })?;
    Ok(state_changes(&changes))
}

/// EC2's refusal of a state change from `state`.
fn incorrect_state(id: &str, state: State, stop: bool) -> Ec2Error {
    let what = if stop { "stopped" } else { "started" };
    Ec2Error::new(
        "IncorrectInstanceState",
        format!(
            "This instance '{id}' is not in a state from which it can be {what}. (It is {}.)",
            state.name()
        ),
    )
}

/// RebootInstances: a running instance's reboot is accepted and nothing
/// changes (there is no operating system here to restart: its namespace
/// and processes go on); a stopped or terminated one is
/// `IncorrectInstanceState`.
pub fn reboot(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let wanted = p.list("InstanceId");
    if wanted.is_empty() {
        return Err(Ec2Error::missing("InstanceId"));
    }
    let v = View::load(&ctx.name)?;
    let everyone = all(&v);
    for w in &wanted {
        let i = named(&everyone, w)?;
        if i.state != State::Running {
            return Err(Ec2Error::new(
                "IncorrectInstanceState",
                format!("The instance '{w}' is not in the 'running' state."),
            ));
        }
    }
    super::ok()
}

/// The API's running instance `id`: its model id (refused for a
/// template's).
pub(super) fn running(v: &View, id: &str) -> Ec2Result<String> {
    let l = v
        .logical(id)
        .filter(|l| {
            v.model
                .hosts
                .iter()
                .any(|h| h.kind == HostKind::Instance && h.id == *l)
        })
        .ok_or_else(|| not_found(id))?
        .to_string();
    Ok(l)
}

/// An instance's interface in its template: `NetworkInterfaces[0]`, made
/// from the instance's own `SubnetId`, `SecurityGroupIds` and
/// `PrivateIpAddress` when it has none (CloudFormation's one form for
/// what only an interface carries: a public address, secondary ones).
pub(super) fn iface_mut(
    props: &mut serde_json::Map<String, Value>,
) -> &mut serde_json::Map<String, Value> {
    if !props.contains_key("NetworkInterfaces") {
        let mut iface = serde_json::Map::new();
        iface.insert("DeviceIndex".into(), "0".into());
        for (k, to) in [
            ("SubnetId", "SubnetId"),
            ("SecurityGroupIds", "GroupSet"),
            ("PrivateIpAddress", "PrivateIpAddress"),
        ] {
            if let Some(x) = props.remove(k) {
                iface.insert(to.into(), x);
            }
        }
        props.insert("NetworkInterfaces".into(), json!([iface]));
    }
    props["NetworkInterfaces"][0]
        .as_object_mut()
        .expect("an interface object")
}

/// Sets an instance's groups where its template keeps them: its
/// interface's `GroupSet` when it has `NetworkInterfaces`, else
/// `SecurityGroupIds`.
pub(super) fn set_groups(props: &mut serde_json::Map<String, Value>, groups: Value) {
    match props
        .get_mut("NetworkInterfaces")
        .and_then(|n| n.get_mut(0))
    {
        Some(iface) => iface["GroupSet"] = groups,
        None => {
            props.insert("SecurityGroupIds".into(), groups);
        }
    }
}

/// ModifyInstanceAttribute: `GroupId.N` (the instance's groups, all at
/// once), `SourceDestCheck.Value`, `InstanceType.Value`.
pub fn modify_attribute(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let id = p.required("InstanceId")?.to_string();
    stack::change(ctx, |t, v| {
        let l = running(v, &id)?;
        v.owned(&l, &id)?;
        let groups = p.list("GroupId");
        let props = t.props_mut(&l).ok_or_else(|| not_found(&id))?;
        let mut did = false;
        if !groups.is_empty() {
            let mut ls = vec![];
            for g in &groups {
                ls.push(Value::String(v.group(g)?.id.clone()));
            }
            set_groups(props, Value::Array(ls));
            did = true;
        }
        for (param, prop) in [
            ("SourceDestCheck.Value", "SourceDestCheck"),
            ("InstanceType.Value", "InstanceType"),
        ] {
            if let Some(val) = p.get(param) {
                let val = if prop == "SourceDestCheck" {
                    Value::Bool(val.eq_ignore_ascii_case("true"))
                } else {
                    Value::String(val.into())
                };
                props.insert(prop.into(), val);
                did = true;
            }
        }
        if !did {
            return Err(Ec2Error::invalid(
                "ModifyInstanceAttribute takes GroupId.N, SourceDestCheck or InstanceType here (docs/ec2.md)",
            ));
        }
        Ok(())
    })?;
    super::ok()
}

/// DescribeInstanceAttribute: `groupSet`, `sourceDestCheck`, `instanceType`.
pub fn describe_attribute(ctx: &Ctx, p: &Params) -> Ec2Result<String> {
    let v = View::load(&ctx.name)?;
    let id = p.required("InstanceId")?;
    let attr = p.required("Attribute")?;
    let i = all(&v)
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| not_found(id))?;
    let mut x = xml();
    x.leaf("instanceId", &i.id);
    match attr {
        "groupSet" => {
            x.items("groupSet", &i.groups, |x, (g, _)| {
                x.leaf("groupId", g);
            });
        }
        "sourceDestCheck" => {
            x.open("sourceDestCheck")
                .flag("value", i.source_dest_check)
                .close("sourceDestCheck");
        }
        "instanceType" => {
            x.open("instanceType")
                .leaf("value", &i.instance_type)
                .close("instanceType");
        }
        other => {
            return Err(Ec2Error::invalid(format!(
                "Value ({other}) for parameter attribute is invalid. Served here: groupSet, sourceDestCheck, instanceType."
            )))
        }
    }
    Ok(x.0)
}
