//! A deployment's stacks built as one model: [`build_stacks`] (one stack
//! is the common case, `build_at`), and what the model keeps of each stack
//! ([`ModelStack`]: its resources, outputs, parameters, conditions), for
//! `vpc status` and the CloudFormation API.
use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::{keep_indices, Builder, Model, Quotas};
use crate::template::{
    self,
    stacks::{in_stack, instantiate_stacks, StackTemplate},
    Context, ModelError, Result, Scope, StackOutput, StackParameter,
};

/// One stack of a deployment, as the model is built from it.
#[derive(Debug, Clone, Copy)]
pub struct StackSource<'s> {
    pub name: &'s str,
    /// Its template, YAML or JSON (SAM's transform is expanded here).
    pub text: &'s str,
    pub params: &'s HashMap<String, String>,
    /// Its template's directory (local code paths are relative to it).
    pub dir: Option<&'s Path>,
}

/// What the model keeps of each of its stacks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStack {
    pub name: String,
    /// `AWS::StackId`.
    pub stack_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its resources (those whose condition holds): logical id and type.
    pub resources: Vec<(String, String)>,
    pub outputs: Vec<StackOutput>,
    pub parameters: Vec<StackParameter>,
    pub conditions: BTreeMap<String, bool>,
}

impl Model {
    /// The stack named `name`.
    pub fn stack(&self, name: &str) -> Option<&ModelStack> {
        self.stacks.iter().find(|s| s.name == name)
    }

    /// The stack a resource of the model belongs to (the first stack for
    /// what no template declared: the Lambda API's functions).
    pub fn stack_of(&self, logical_id: &str) -> Option<&ModelStack> {
        self.stacks
            .iter()
            .find(|s| s.resources.iter().any(|(id, _)| id == logical_id))
    }
}

/// Builds the model of a deployment's stacks, side by side, for the
/// deployment `ctx` describes (its name, region, account, parameter store,
/// the other deployments' exports and outputs), as a replacement of
/// `prior` (see `build_over`). Each stack is instantiated in its own scope
/// (its name is its `AWS::StackName`); their resources are built together,
/// so a function of one stack may sit in a subnet of another, reached
/// through exports and outputs. With several stacks, an error's path names
/// its stack (`stack App: Resources.Orders.Properties...`).
pub fn build_stacks(
    stacks: &[StackSource],
    ctx: &Context,
    quotas: Quotas,
    prior: Option<&Model>,
) -> Result<Model> {
    quotas.check().map_err(|e| ModelError::new("quotas", e))?;
    let several = stacks.len() > 1;
    let wrap = |e: ModelError, stack: &str| if several { in_stack(e, stack) } else { e };
    let mut parsed = Vec::with_capacity(stacks.len());
    for s in stacks {
        let mut c = ctx.clone();
        c.stack_name = s.name.to_string();
        // SAM's transform first, as CloudFormation runs transforms before
        // it reads anything else of the template.
        let t = template::document(s.text)
            .and_then(|doc| template::sam::expand(doc, s.params, &c, s.dir))
            .and_then(template::parse_document)
            .map_err(|e| wrap(e, s.name))?;
        parsed.push(StackTemplate {
            name: s.name.to_string(),
            template: t,
            params: s.params.clone(),
        });
    }
    let st = instantiate_stacks(parsed, ctx)?;
    let names: Vec<String> = st
        .stacks
        .iter()
        .map(|(_, e)| e.ctx.stack_name.clone())
        .collect();
    let scopes: Vec<Scope> = st.stacks[1..]
        .iter()
        .map(|(t, env)| Scope {
            template: t,
            env: env.clone(),
        })
        .collect();
    let mut b = Builder::new(&st.merged, st.stacks[0].1.clone());
    b.m.stack_name = ctx.stack_name.clone();
    b.r.add_stacks(scopes, st.owner.clone());
    b.quotas = quotas;
    b.code_dirs = stacks
        .iter()
        .map(|s| s.dir.map(Path::to_path_buf))
        .collect();
    if let Some(p) = prior {
        b.keep(p);
    }
    // An error's stack, named when there are several.
    let owned = |e: ModelError| {
        if !several {
            return e;
        }
        let owner = e
            .path
            .strip_prefix("Resources.")
            .map(str::to_string)
            .or_else(|| {
                e.path
                    .strip_prefix("Metadata.Vpc::Internet.Hosts.")
                    .map(|h| format!("Metadata:{h}"))
            })
            .and_then(|rest| {
                let key = rest.split(['.', '[']).next().unwrap_or_default();
                st.owner.get(key)
            });
        match owner {
            Some(k) => in_stack(e, &names[*k]),
            None => e,
        }
    };
    let mut m = b.run().map_err(owned)?;
    if let Some(p) = prior {
        keep_indices(&mut m, p);
        // The IAM API's entities are the deployment's, not a template's.
        m.iam = p.iam.clone();
        // Resources stay on their hosts (`placement::place` drops the gone).
        m.placement.hosts = p.placement.hosts.clone();
    }
    crate::iam::check_model(&mut m, prior).map_err(owned)?;
    Ok(m)
}

impl Builder<'_> {
    /// Each stack's outputs, parameters and conditions, once everything is
    /// built; the model's own (`outputs`, ...) are all of them. An export
    /// name is one stack's only.
    pub(super) fn finish_stacks(&mut self) -> Result<()> {
        let n = self.r.scopes();
        let mut stacks = Vec::with_capacity(n);
        let mut exported: HashMap<String, String> = HashMap::new();
        for k in 0..n {
            let name = self.r.scope_name(k).to_string();
            let wrap = |e: ModelError| if n > 1 { in_stack(e, &name) } else { e };
            let outputs = self.r.outputs_in(k).map_err(wrap)?;
            for o in &outputs {
                let Some(export) = &o.export_name else {
                    continue;
                };
                if let Some(other) = exported.insert(export.clone(), name.clone()) {
                    return Err(wrap(ModelError::new(
                        format!("Outputs.{}.Export.Name", o.key),
                        format!("Export with name {export} is already exported by stack {other}"),
                    )));
                }
            }
            let env = self.r.scope_env(k);
            let mut resources: Vec<(String, String)> = self
                .t
                .resources
                .values()
                .filter(|r| self.r.scope_of(&r.logical_id) == k)
                .map(|r| (r.logical_id.clone(), r.kind.clone()))
                .collect();
            resources.sort();
            stacks.push(ModelStack {
                stack_id: template::stack_id(&self.m.region, &self.m.account, &name),
                description: self.r.scope_template(k).description.clone(),
                name,
                resources,
                outputs,
                parameters: env.parameters.clone(),
                conditions: env.conditions.clone(),
            });
        }
        self.m.outputs = stacks.iter().flat_map(|s| s.outputs.clone()).collect();
        self.m.parameters = stacks.iter().flat_map(|s| s.parameters.clone()).collect();
        self.m.conditions = stacks.iter().flat_map(|s| s.conditions.clone()).collect();
        self.m.stacks = stacks;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const NETWORK: &str = "
Parameters:
  Env: {Type: String, Default: net}
Resources:
  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.0.0.0/16}}
  Subnet: {Type: AWS::EC2::Subnet, Properties: {VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24}}
  Sg: {Type: AWS::EC2::SecurityGroup, Properties: {GroupDescription: !Sub '${AWS::StackName}-${Env}', VpcId: !Ref Vpc}}
Outputs:
  SubnetId: {Value: !Ref Subnet, Export: {Name: !Sub '${AWS::StackName}-subnet'}}
  SgId: {Value: !GetAtt Sg.GroupId}
";

    const APP: &str = "
Parameters:
  Env: {Type: String, Default: app}
Resources:
  Fn:
    Type: AWS::Lambda::Function
    Properties:
      Environment: {Variables: {STACK: !Ref AWS::StackName, ENV: !Ref Env}}
      VpcConfig:
        SubnetIds: [!ImportValue Network-subnet]
        SecurityGroupIds: [!GetStackOutput {StackName: Network, OutputName: SgId}]
Outputs:
  Name: {Value: !Ref Fn}
";

    fn build(stacks: &[(&str, &str)]) -> Result<Model> {
        build_in(stacks, &Context::new("deployment"))
    }

    fn build_in(stacks: &[(&str, &str)], ctx: &Context) -> Result<Model> {
        let none = HashMap::new();
        let sources: Vec<StackSource> = stacks
            .iter()
            .map(|(name, text)| StackSource {
                name,
                text,
                params: &none,
                dir: None,
            })
            .collect();
        build_stacks(&sources, ctx, Quotas::default(), None)
    }

    /// Each stack resolves in its own scope (its parameters, its name),
    /// its resources built with the others' as one network, reached by
    /// exports and outputs; names CloudFormation generates are its own.
    #[test]
    fn stacks_build_as_one_network_each_in_its_own_scope() {
        let m = build(&[("Network", NETWORK), ("App", APP)]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.stack_name, "deployment");
        let f = m.function("Fn").unwrap();
        assert_eq!(f.name, "App-Fn");
        assert_eq!(f.environment["STACK"], "App");
        assert_eq!(f.environment["ENV"], "app");
        let vc = f.vpc_config.as_ref().unwrap();
        assert_eq!(
            (vc.subnets.as_slice(), vc.groups.as_slice()),
            (&["Subnet".to_string()][..], &["Sg".to_string()][..])
        );
        let names: Vec<&str> = m.stacks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["Network", "App"]);
        assert_eq!(m.stack_of("Subnet").unwrap().name, "Network");
        assert_eq!(m.stack_of("Fn").unwrap().name, "App");
        let net = m.stack("Network").unwrap();
        assert_eq!(
            net.outputs[1].export_name.as_deref(),
            Some("Network-subnet")
        );
        assert_eq!(net.parameters[0].value, "net");
        assert_eq!(m.stack("App").unwrap().outputs[0].value, "App-Fn");
        assert_eq!(
            net.stack_id,
            crate::template::stack_id("us-east-1", "123456789012", "Network")
        );
        assert_eq!(m.outputs.len(), 3, "every stack's");
    }

    #[test]
    fn one_logical_id_in_two_stacks_is_refused_naming_both() {
        let other =
            "Resources:\n  Subnet: {Type: AWS::EC2::VPC, Properties: {CidrBlock: 10.1.0.0/16}}\n";
        let e = build(&[("Network", NETWORK), ("Other", other)]).unwrap_err();
        assert_eq!(e.path, "stack Other: Resources.Subnet");
        assert!(
            e.message.contains("used by stacks Network and Other"),
            "{e}"
        );
        let e = build(&[("Network", NETWORK), ("Network", APP)]).unwrap_err();
        assert_eq!(e.message, "Stack [Network] already exists");
    }

    /// A stack's error names it; references to what another stack does not
    /// have are CloudFormation's errors.
    #[test]
    fn errors_name_their_stack() {
        let e = build(&[
            ("Network", NETWORK),
            ("App", &APP.replace("OutputName: SgId", "OutputName: Nope")),
        ])
        .unwrap_err();
        assert_eq!(
            e.path,
            "stack App: Resources.Fn.Properties.VpcConfig.SecurityGroupIds[0]"
        );
        assert_eq!(e.message, "Output Nope does not exist in stack Network");
        let e = build(&[
            ("Network", NETWORK),
            ("App", &APP.replace("StackName: Network", "StackName: Gone")),
        ])
        .unwrap_err();
        assert_eq!(e.message, "Stack with id Gone does not exist");
        let e = build(&[
            ("Network", NETWORK),
            ("App", &APP.replace("Network-subnet", "Other-subnet")),
        ])
        .unwrap_err();
        assert!(
            e.message.starts_with("No export named Other-subnet found"),
            "{e}"
        );
        // One export name, two stacks.
        let twice = format!("{APP}  Again: {{Value: x, Export: {{Name: Network-subnet}}}}\n");
        let e = build(&[("Network", NETWORK), ("App", &twice)]).unwrap_err();
        assert_eq!(e.path, "stack App: Outputs.Again.Export.Name");
        assert_eq!(
            e.message,
            "Export with name Network-subnet is already exported by stack Network"
        );
        // Parameters are each stack's own.
        let e = build(&[
            ("Network", NETWORK),
            ("App", &APP.replace("Default: app", "AllowedValues: [a]")),
        ])
        .unwrap_err();
        assert!(e.path.starts_with("stack App: Parameters.Env"), "{e}");
    }

    /// Stacks that import from one another in a circle are refused.
    #[test]
    fn a_circle_of_cross_stack_references_is_refused() {
        let a = "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: !ImportValue b-cidr}}\nOutputs:\n  Cidr: {Value: !ImportValue b-cidr, Export: {Name: a-cidr}}\n";
        let b = "Resources:\n  W: {Type: AWS::SSM::Parameter, Properties: {Type: String, Value: x}}\nOutputs:\n  Cidr: {Value: !ImportValue a-cidr, Export: {Name: b-cidr}}\n";
        let e = build(&[("A", a), ("B", b)]).unwrap_err();
        assert!(
            e.message.contains("Circular dependency between stacks"),
            "{e}"
        );
    }

    /// `Fn::GetStackOutput` of a stack of another deployment.
    #[test]
    fn get_stack_output_reads_another_deployments_stack() {
        let mut ctx = Context::new("d");
        ctx.stack_outputs.insert(
            "Shared".into(),
            [("Cidr".to_string(), "10.9.0.0/16".to_string())].into(),
        );
        let t = "Resources:\n  Vpc: {Type: AWS::EC2::VPC, Properties: {CidrBlock: !GetStackOutput {StackName: Shared, OutputName: Cidr}}}\n";
        let m = build_in(&[("d", t)], &ctx).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.vpcs[0].cidr.to_string(), "10.9.0.0/16");
        let wrong = t.replace("StackName: Shared", "StackName: Shared, Region: eu-west-1");
        let e = build_in(&[("d", &wrong)], &ctx).unwrap_err();
        assert_eq!(e.message, "Stack with id Shared does not exist");
    }
}
