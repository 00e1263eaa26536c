//! Where each resource runs when one VPC spans several hosts
//! ([docs/multi-host.md](../../../docs/multi-host.md)): instances, network
//! interfaces, the internet's test hosts and functions (their execution
//! environments) are placed on one host each; a VPC's resolver, the AWS
//! services and interface endpoints' ENIs run on every host (as AWS's
//! resolver answers on every host of a VPC).
//!
//! A template asks for a host with `Metadata: {Vpc::Host: NAME}` on an
//! instance, network interface or function; otherwise the cluster spreads
//! them (`place`). Placement is part of the desired model, so every host
//! reads the same one.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Builder, Model, ModelError, Result, FUNCTION, INSTANCE, NETWORK_INTERFACE};

/// The resource metadata key naming a resource's host.
pub const HOST_METADATA: &str = "Vpc::Host";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Placement {
    /// Each resource's `Metadata: Vpc::Host`.
    #[serde(default)]
    pub hints: BTreeMap<String, String>,
    /// Where each placed resource runs, by logical id (a function's
    /// versions run with it).
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
}

/// Whether `name` can name a host: it becomes part of namespace and key
/// names.
pub fn valid_host_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Builder<'_> {
    /// Every `Metadata: Vpc::Host`, checked.
    pub(super) fn placement_hints(&mut self) -> Result<()> {
        for r in self.t.resources.values() {
            let Some(v) = r.metadata.get(HOST_METADATA) else {
                continue;
            };
            let path = format!("Resources.{}.Metadata.{HOST_METADATA}", r.logical_id);
            if ![INSTANCE, NETWORK_INTERFACE, FUNCTION].contains(&r.kind.as_str()) {
                return Err(ModelError::new(
                    &path,
                    format!(
                        "only instances, network interfaces and functions are placed on a host, not {}",
                        r.kind
                    ),
                ));
            }
            match v {
                Value::String(h) if valid_host_name(h) => {
                    self.m
                        .placement
                        .hints
                        .insert(r.logical_id.clone(), h.clone());
                }
                _ => {
                    return Err(ModelError::new(
                        &path,
                        "a host name (1-32 letters, digits, '-' or '_')",
                    ))
                }
            }
        }
        Ok(())
    }
}

/// The logical ids a model places: instances and network interfaces,
/// the internet's test hosts and functions (a version with its function).
pub fn placed(m: &Model) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = vec![];
    for h in &m.hosts {
        if h.kind != super::HostKind::VpcEndpoint {
            out.push((h.id.clone(), false));
        }
    }
    for h in &m.internet_hosts {
        out.push((h.id.clone(), false));
    }
    for f in m.functions.iter().filter(|f| f.version_of.is_none()) {
        out.push((f.id.clone(), true));
    }
    out
}

/// Places every resource of `m` on a host of `live` (sorted): one already
/// placed stays where it is (also on a host that has not joined yet, or
/// one that is `gone`: an instance goes with its host, as on failed
/// hardware) unless it is a function on a `gone` host, whose next
/// execution environments come up on a live one; a new one goes where its
/// hint says, whether or not that host has joined yet (it waits for it);
/// else (and a moved function whose hint is not live) to the live host with
/// the fewest resources (ties: by name). Returns the functions moved.
pub fn place(m: &mut Model, live: &[String], gone: &[String]) -> Vec<String> {
    let ids = placed(m);
    let p = &mut m.placement;
    p.hosts.retain(|id, _| ids.iter().any(|(x, _)| x == id));
    let mut load: BTreeMap<&str, usize> = live.iter().map(|h| (h.as_str(), 0)).collect();
    for h in p.hosts.values() {
        if let Some(n) = load.get_mut(h.as_str()) {
            *n += 1;
        }
    }
    let mut moved = vec![];
    for (id, function) in ids {
        let hint = p.hints.get(&id).cloned();
        match p.hosts.get(&id).cloned() {
            Some(h) if !function || !gone.contains(&h) => continue,
            Some(_) => moved.push(id.clone()),
            None => {}
        }
        let host = match hint {
            Some(h) if live.contains(&h) || !p.hosts.contains_key(&id) => h,
            _ => match load.iter().min_by_key(|(h, n)| (**n, **h)) {
                Some((h, _)) => h.to_string(),
                None => continue,
            },
        };
        if let Some(n) = load.get_mut(host.as_str()) {
            *n += 1;
        }
        p.hosts.insert(id, host);
    }
    moved
}

/// The host a node of the topology runs on (`None`: on every host). An
/// execution environment runs on its function's host.
pub fn host_of<'a>(m: &'a Model, node: &str) -> Option<&'a str> {
    if let Some(h) = m.placement.hosts.get(node) {
        return Some(h);
    }
    // An environment `<id>.<n>`, a version `<id>.v<n>` and its
    // environments: logical ids and function names have no dot.
    let base = node.split('.').next().unwrap_or(node);
    if let Some(h) = m.placement.hosts.get(base) {
        return Some(h);
    }
    let f = m
        .functions
        .iter()
        .find(|f| f.envs().iter().any(|e| e.id == node))?;
    let base = f
        .version_of
        .as_ref()
        .map_or(f.id.as_str(), |(b, _)| b.as_str());
    m.placement.hosts.get(base).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = r#"
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Sn: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Db:
    Type: AWS::EC2::Instance
    Metadata: {Vpc::Host: h2}
    Properties: {SubnetId: !Ref Sn}
  Web: {Type: AWS::EC2::Instance, Properties: {SubnetId: !Ref Sn}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: x, VpcId: !Ref Vpc}}
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Handler: index.handler
      Role: arn:aws:iam::123456789012:role/r
      Code: {ZipFile: "x"}
      VpcConfig: {SubnetIds: [!Ref Sn], SecurityGroupIds: [!Ref Sg]}
"#;

    fn model(t: &str) -> Model {
        super::super::build(t, &Default::default(), "s").unwrap()
    }

    #[test]
    fn hints_are_kept_and_the_rest_spread_over_live_hosts() {
        let mut m = model(T);
        assert_eq!(m.placement.hints.get("Db").map(String::as_str), Some("h2"));
        let live = vec!["h1".to_string(), "h2".to_string(), "h3".to_string()];
        assert!(place(&mut m, &live, &[]).is_empty());
        let h = &m.placement.hosts;
        assert_eq!(h["Db"], "h2");
        // Db loads h2: the others go to h1 and h3.
        let mut others = vec![h["Web"].clone(), h["Fn"].clone()];
        others.sort();
        assert_eq!(others, ["h1", "h3"]);
        assert_eq!(host_of(&m, "Fn"), Some(h["Fn"].as_str()));
        // Its other environments and its versions run with it.
        assert_eq!(host_of(&m, "Fn.2"), Some(h["Fn"].as_str()));
        assert_eq!(host_of(&m, "Fn.v1.2"), Some(h["Fn"].as_str()));
        assert_eq!(host_of(&m, "Vpc"), None);
        // Placed again: nothing moves.
        let before = m.placement.clone();
        place(&mut m, &live, &[]);
        assert_eq!(m.placement, before);
    }

    #[test]
    fn a_gone_hosts_functions_move_and_its_instances_stay() {
        let mut m = model(T);
        let live = vec!["h1".to_string(), "h2".to_string(), "h3".to_string()];
        place(&mut m, &live, &[]);
        let fn_host = m.placement.hosts["Fn"].clone();
        let web_host = m.placement.hosts["Web"].clone();
        let survivors: Vec<String> = live.iter().filter(|h| **h != fn_host).cloned().collect();
        // Not live yet is not gone: nothing moves.
        assert!(place(&mut m, &survivors, &[]).is_empty());
        assert_eq!(
            place(&mut m, &survivors, std::slice::from_ref(&fn_host)),
            ["Fn"]
        );
        assert!(survivors.contains(&m.placement.hosts["Fn"]));
        // An instance stays where it was, its host gone or not.
        assert_eq!(m.placement.hosts["Web"], web_host);
        // A hint to a host not (yet) live is kept: it waits for it.
        let mut m = model(T);
        place(&mut m, &["h1".to_string()], &[]);
        assert_eq!(m.placement.hosts["Db"], "h2");
    }

    #[test]
    fn a_bad_hint_names_its_resource_and_field() {
        let t = T.replace("{Vpc::Host: h2}", "{Vpc::Host: 'no spaces'}");
        let e = super::super::build(&t, &Default::default(), "s").unwrap_err();
        assert!(
            e.to_string().contains("Resources.Db.Metadata.Vpc::Host"),
            "{e}"
        );
        let t = T.replace(
            "Sg: {Type: AWS::EC2::SecurityGroup,",
            "Sg: {Type: AWS::EC2::SecurityGroup, Metadata: {Vpc::Host: h1},",
        );
        let e = super::super::build(&t, &Default::default(), "s").unwrap_err();
        assert!(
            e.to_string().contains("Resources.Sg.Metadata.Vpc::Host"),
            "{e}"
        );
    }
}
