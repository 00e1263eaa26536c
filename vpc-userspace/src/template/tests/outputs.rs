use super::*;

const T: &str = "Parameters:
  Env: {Type: String, Default: prod}
Conditions:
  IsDev: !Equals [!Ref Env, dev]
Resources:
  W: {Type: AWS::EC2::VPC}
Outputs:
  VpcCidr:
    Description: !Sub 'the ${Env} VPC'
    Value: !GetAtt W.CidrBlock
    Export: {Name: !Sub '${AWS::StackName}-VpcCidr'}
  Count: {Value: 3}
  DevOnly: {Value: dev, Condition: IsDev}
";

fn outputs(text: &str, ctx: Context) -> Result<Vec<StackOutput>> {
    let (t, env) = inst_in(text, &[], ctx)?;
    let mut r = Resolver::new(&t, env);
    r.attrs
        .insert(("W".into(), "CidrBlock".into()), "10.0.0.0/16".into());
    r.outputs()
}

#[test]
fn outputs_are_evaluated_with_their_exports() {
    let o = outputs(T, Context::new("stack")).unwrap();
    assert_eq!(
        o,
        [
            StackOutput {
                key: "Count".into(),
                value: "3".into(),
                description: None,
                export_name: None
            },
            StackOutput {
                key: "VpcCidr".into(),
                value: "10.0.0.0/16".into(),
                description: Some("the prod VPC".into()),
                export_name: Some("stack-VpcCidr".into())
            },
        ]
    );
}

#[test]
fn output_errors() {
    let mut ctx = Context::new("stack");
    ctx.exports.insert(
        "stack-VpcCidr".into(),
        Export {
            name: "stack-VpcCidr".into(),
            value: "x".into(),
            stack: "other".into(),
        },
    );
    let e = outputs(T, ctx).unwrap_err();
    assert_eq!(e.path, "Outputs.VpcCidr.Export.Name");
    assert_eq!(
        e.message,
        "Export with name stack-VpcCidr is already exported by stack other"
    );
    let list = T.replace("Value: !GetAtt W.CidrBlock", "Value: !GetAZs ''");
    let e = outputs(&list, Context::new("stack")).unwrap_err();
    assert_eq!(e.path, "Outputs.VpcCidr.Value");
    let none = T.replace("  Count: {Value: 3}\n", "  Count: {Description: x}\n");
    let e = outputs(&none, Context::new("stack")).unwrap_err();
    assert!(e.message.contains("must contain a Value"), "{e}");
    let dup = T.replace(
        "  Count: {Value: 3}\n",
        "  Count: {Value: 3, Export: {Name: stack-VpcCidr}}\n",
    );
    let e = outputs(&dup, Context::new("stack")).unwrap_err();
    assert!(
        e.message.contains("duplicate Export name stack-VpcCidr"),
        "{e}"
    );
}
